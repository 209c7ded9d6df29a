"""The results store: a JSONL file of run records that loses nothing, under concurrent writers and ``kill -9``.

Files, beside the results file ``RESULTS.jsonl``:

- ``RESULTS.jsonl``: one record per line. A *record* is a JSON object with a non-empty string ``run_id`` and a
  ``status`` in :data:`RECORD_STATUSES`; ``finished`` records are the results (:func:`read_records`);
- ``RESULTS.jsonl.lock``: the lock a writer holds while it reads, merges and replaces the file (left in place);
- ``RESULTS.jsonl.rejected``: every line of the results file that is not a record (not JSON, JSON that is not a
  record, a truncated last line), moved there verbatim by the next writer, which says so. Appended to, never rewritten.

Concurrency: one lock, not per-writer files. Every write is a read-merge-replace done while holding an exclusive lock
on the lock file (``filelock``: ``flock`` on POSIX, released by the kernel when a holder dies, ``kill -9`` included),
so writers are serialised and none can overwrite another's records (without it, two writers each read the file, add
their records and replace it, and the second replace drops the first one's). Per-writer files merged at the end would
need the same lock for the merge, and every reader would have to read and merge them all; one locked file keeps one
place to look. Over NFS ``flock`` works where the lock daemon runs (Linux maps it onto POSIX locks); otherwise keep
the results on a local disk.

Crash safety: atomic replace, not append. The merged content is written to a temporary file in the same folder,
``fsync``'ed, and ``os.replace``'d over the results file (atomic on one file system), then the folder is ``fsync``'ed.
A writer killed at any point leaves the old file or the new one, each complete; the next writer removes its temporary
file. Readers therefore never need the lock: every version they can see is whole. Appending in place would leave a
partial last line behind a killed writer and let a reader see half a line; the cost of replacing is a rewrite of the
file per write (the runner writes once per group: a few MB at most). Lines moved out are first appended to the side
file and ``fsync``'ed, then removed from the results by the replace, so a kill between the two leaves them in both
files (a line already in the side file is not added again), never in neither.

Modes: new files are created with ``os.open(..., 0o666)``, so the user's umask decides (``tempfile.mkstemp`` would make
every results file ``0600``).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from mqarkit.outputs import check_output_file

RECORD_STATUSES = ("finished", "diverged")  # a run with a record of either status is done: a rerun skips it
LOCK_SUFFIX = ".lock"
REJECTED_SUFFIX = ".rejected"
TEMPORARY_SUFFIX = ".tmp"
Log = Callable[[str], None]


@dataclass(frozen=True)
class RejectedLine:
    """A line of the results file that is not a record: its 1-based number, why, and its text (no newline)."""

    line_number: int
    reason: str
    text: str


@dataclass(frozen=True)
class Contents:
    """What the results file holds: its records (every status, file order) and the lines that are not records."""

    records: list[dict]
    rejected: list[RejectedLine]
    record_lines: list[str] = field(default_factory=list, repr=False)  # each record's line, verbatim

    def finished(self) -> list[dict]:
        return [r for r in self.records if r["status"] == "finished"]


@dataclass(frozen=True)
class AppendSummary:
    """What :meth:`RecordsStore.append` did: records written, records not written because their ``run_id`` already
    had a record (or was given twice), and the lines it moved to the side file."""

    written: int
    duplicates: int
    moved: list[RejectedLine] = field(default_factory=list)


@dataclass(frozen=True)
class ResumeReport:
    """What a rerun finds: ``records`` in the file (all sweeps), the expected runs ``done`` (skipped) and ``to_do``,
    and the ``rejected`` lines (kept; moved to the side file at the next write)."""

    records: int
    done: int
    to_do: int
    rejected: int

    def line(self, out: str | os.PathLike[str]) -> str:
        text = f"{out}: {self.records} records found; {self.done} runs already done (skipped), {self.to_do} to do"
        if self.rejected:
            text += f"; {self.rejected} lines are not records (kept, moved to the .rejected file at the next write)"
        return text


def record_problem(value: object) -> str | None:
    """Why ``value`` (a parsed line, or a record given to :meth:`RecordsStore.append`) is not a record, or ``None``."""
    if not isinstance(value, dict):
        return f"not a JSON object ({type(value).__name__})"
    run_id = value.get("run_id")
    if not isinstance(run_id, str) or not run_id:
        return f"run_id={run_id!r}: must be a non-empty string"
    if value.get("status") not in RECORD_STATUSES:
        return f"status={value.get('status')!r}: must be one of {RECORD_STATUSES}"
    return None


def parse_lines(text: str) -> Contents:
    """Split the text of a results file into records and rejected lines (blank lines carry nothing and are dropped)."""
    records: list[dict] = []
    record_lines: list[str] = []
    rejected: list[RejectedLine] = []
    lines = text.split("\n")
    truncated = lines[-1] != ""  # the text does not end with a newline: its last line was cut short (or hand-edited)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            last = truncated and number == len(lines)
            reason = "truncated last line (no newline at the end)" if last else f"not JSON ({err.msg})"
            rejected.append(RejectedLine(number, reason, line))
            continue
        problem = record_problem(value)
        if problem is None:
            records.append(value)
            record_lines.append(line)
        else:
            rejected.append(RejectedLine(number, f"not a record: {problem}", line))
    return Contents(records, rejected, record_lines)


class RecordsStore:
    """The results file ``path`` and its lock and side files (module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + LOCK_SUFFIX)
        self.rejected_path = self.path.with_name(self.path.name + REJECTED_SUFFIX)

    # ------------------------------------------------------------ reading (no lock: every visible version is whole)
    def read(self) -> Contents:
        """The records and rejected lines of the file as it is now (a missing file holds none)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return Contents([], [])
        return parse_lines(text)

    def resume_report(self, run_ids: Iterable[str]) -> ResumeReport:
        """How many of ``run_ids`` (the runs a sweep expects) already have a record and how many are left to do."""
        contents = self.read()
        expected = set(run_ids)
        done = expected & {r["run_id"] for r in contents.records}
        return ResumeReport(len(contents.records), len(done), len(expected - done), len(contents.rejected))

    # ------------------------------------------------------------ writing
    def check_writable(self) -> Path:
        """Before any work: the folder exists (created if missing) and accepts files, and the results file, if it
        exists, is writable; the lock can be taken. Raises ``UsageError`` (a ``ValueError``) or
        ``OutputNotWritableError`` (a ``PermissionError``) naming ``out``."""
        check_output_file(self.path, parameter="out")
        with self._lock():
            pass
        return self.path

    def append(self, records: Iterable[dict], *, log: Log | None = None) -> AppendSummary:
        """Add ``records`` whose ``run_id`` has no record yet (the first record of a run wins), atomically, under the
        lock. Lines of the file that are not records are moved to the side file and reported through ``log``
        (default: a warning). Raises ``ValueError`` naming the first bad record before anything is written."""
        new = list(records)
        for i, rec in enumerate(new):
            problem = record_problem(rec)
            if problem is not None:
                raise ValueError(f"records[{i}]: {problem}")
        lines = [json.dumps(rec, sort_keys=True) for rec in new]  # a record that is not JSON fails here, unwritten
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock():
            self._remove_temporaries()
            contents = self.read()
            if contents.rejected:
                self._keep_rejected(contents.rejected)
            seen = {r["run_id"] for r in contents.records}
            kept = []
            for rec, line in zip(new, lines):
                if rec["run_id"] not in seen:
                    seen.add(rec["run_id"])
                    kept.append(line)
            if kept or contents.rejected:  # the records already there keep their lines, verbatim
                self._replace("".join(line + "\n" for line in contents.record_lines + kept))
        if contents.rejected:
            _report(log, self._moved_message(contents.rejected))
        return AppendSummary(len(kept), len(new) - len(kept), contents.rejected)

    # ------------------------------------------------------------ helpers
    def _lock(self) -> FileLock:
        return FileLock(self.lock_path)  # no mode given: created with the umask (filelock >= 3.24)

    def _temporary_prefix(self) -> str:
        return f"{self.path.name}."

    def _remove_temporaries(self) -> None:
        """Temporary files of writers killed before their replace (only the lock holder writes one)."""
        for tmp in self.path.parent.glob(f"{self._temporary_prefix()}*{TEMPORARY_SUFFIX}"):
            tmp.unlink(missing_ok=True)

    def _replace(self, text: str) -> None:
        tmp = self.path.with_name(f"{self._temporary_prefix()}{os.getpid()}{TEMPORARY_SUFFIX}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)  # the umask applies
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_folder(self.path.parent)

    def _keep_rejected(self, rejected: list[RejectedLine]) -> None:
        """Append the rejected lines to the side file (each once), ``fsync``'ed, before they leave the results."""
        try:
            present = set(self.rejected_path.read_text().split("\n"))
        except FileNotFoundError:
            present = set()
        missing = [r.text for r in rejected if r.text not in present]
        if not missing:
            return
        fd = os.open(self.rejected_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        with os.fdopen(fd, "a") as f:
            f.write("".join(text + "\n" for text in missing))
            f.flush()
            os.fsync(f.fileno())

    def _moved_message(self, rejected: list[RejectedLine]) -> str:
        first = rejected[0]
        return (
            f"{self.path}: moved {len(rejected)} lines that are not records to {self.rejected_path} "
            f"(first: line {first.line_number}, {first.reason})"
        )


def _fsync_folder(folder: Path) -> None:
    """Make a replace in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _report(log: Log | None, message: str) -> None:
    if log is None:
        warnings.warn(message, stacklevel=3)
    else:
        log(message)


# ---------------------------------------------------------------- the functions callers used before the store
def done_run_ids(path: str | os.PathLike[str], *, log: Log | None = None) -> set[str]:
    """The run ids with a record in ``path`` whose status is one of :data:`RECORD_STATUSES` (a diverged run is done
    too): the runs a rerun with this results file skips."""
    return {r["run_id"] for r in read_records(path, log=log, statuses=RECORD_STATUSES)}


def read_records(
    path: str | os.PathLike[str], *, log: Log | None = None, statuses: tuple[str, ...] = ("finished",)
) -> list[dict]:
    """The records of a results file whose status is in ``statuses`` (default: the ``finished`` ones, the results;
    :data:`RECORD_STATUSES`: every run that is done, diverged ones included). A missing file holds none. Lines that are
    not records are reported through ``log`` (default: a warning) and left in place."""
    store = RecordsStore(path)
    contents = store.read()
    if contents.rejected:
        first = contents.rejected[0]
        _report(
            log,
            f"{store.path}: {len(contents.rejected)} lines are not records and were skipped (first: line "
            f"{first.line_number}, {first.reason}); the next write moves them to {store.rejected_path}",
        )
    return [r for r in contents.records if r["status"] in statuses]


def append_records(path: str | os.PathLike[str], records: Iterable[dict], *, log: Log | None = None) -> AppendSummary:
    """:meth:`RecordsStore.append` on ``path``."""
    return RecordsStore(path).append(records, log=log)
