"""The records store loses nothing: concurrent writers, lines that are not records, kill -9, file modes, resume."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mqarkit.errors import OutputNotWritableError, UsageError
from mqarkit.gpu.frontier.records import RecordsStore, append_records, read_records

ROOT = Path(__file__).resolve().parents[2]


def record(run_id: str, **extra: object) -> dict:
    return {"run_id": run_id, "status": "finished", **extra}


def run_python(code: str, *args: str) -> subprocess.Popen:
    """A fresh interpreter (no state shared with this one) running ``code`` with ``args`` as ``sys.argv[1:]``."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


APPENDER = """
    import sys
    from mqarkit.gpu.frontier.records import append_records
    out, writer, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    for i in range(count):
        append_records(out, [{"run_id": f"w{writer}-{i}", "status": "finished", "i": i}])
"""


def test_four_processes_appending_200_records_each_lose_nothing(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    procs = [run_python(APPENDER, str(out), str(w), "200") for w in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    ids = [r["run_id"] for r in read_records(out)]
    assert sorted(ids) == sorted(f"w{w}-{i}" for w in range(4) for i in range(200))
    assert not RecordsStore(out).rejected_path.exists()


def test_truncated_and_foreign_lines_are_kept_and_reported(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    good = json.dumps(record("a", accuracy=0.5))
    diverged = json.dumps({"run_id": "d", "status": "diverged"})
    foreign = [
        "not json at all",
        "[1, 2, 3]",
        json.dumps({"status": "finished"}),
        json.dumps(record("r") | {"status": "running"}),
    ]
    truncated = json.dumps(record("t"))[:-7]
    out.write_text("\n".join([good, *foreign, diverged, "", truncated]))  # no newline at the end

    with pytest.warns(UserWarning, match=r"5 lines are not records .* line 2, not JSON"):
        assert [r["run_id"] for r in read_records(out)] == ["a"]  # finished records only
    assert out.read_text().count("\n") == 7  # reading changes nothing

    contents = RecordsStore(out).read()
    assert [r.line_number for r in contents.rejected] == [2, 3, 4, 5, 8]
    assert contents.rejected[-1].reason == "truncated last line (no newline at the end)"
    assert "run_id=None" in contents.rejected[2].reason and "status='running'" in contents.rejected[3].reason

    messages: list[str] = []
    summary = append_records(out, [record("b"), record("a")], log=messages.append)
    assert (summary.written, summary.duplicates, len(summary.moved)) == (1, 1, 5)
    assert len(messages) == 1 and "moved 5 lines that are not records" in messages[0]
    assert out.read_text() == "\n".join([good, diverged, json.dumps(record("b"), sort_keys=True)]) + "\n"
    rejected = RecordsStore(out).rejected_path
    assert rejected.read_text() == "\n".join([*foreign, truncated]) + "\n"  # verbatim, nothing lost

    out.write_text(out.read_text() + "not json at all\n")  # the same bad line again: kept once in the side file
    append_records(out, [record("c")], log=messages.append)
    assert rejected.read_text() == "\n".join([*foreign, truncated]) + "\n"
    assert [r["run_id"] for r in RecordsStore(out).read().records] == ["a", "d", "b", "c"]


def test_a_bad_record_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    append_records(out, [record("a")])
    before = out.read_text()
    with pytest.raises(ValueError, match=r"records\[1\]: status='done': must be one of"):
        append_records(out, [record("b"), {"run_id": "c", "status": "done"}])
    with pytest.raises(ValueError, match=r"records\[0\]: run_id='': must be a non-empty string"):
        append_records(out, [record("")])
    with pytest.raises(TypeError, match="not JSON serializable"):
        append_records(out, [record("b", value=object())])
    assert out.read_text() == before


KILLED_WRITER = """
    import sys
    from mqarkit.gpu.frontier.records import append_records
    out = sys.argv[1]
    payload = "x" * 200_000  # large records: a kill lands inside a write more often
    for i in range(10_000):
        append_records(out, [{"run_id": f"run-{i}", "status": "finished", "payload": payload}])
        print(f"run-{i}", flush=True)  # printed only once the append has returned
"""


def test_kill_9_at_random_moments_loses_no_finished_record(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    confirmed: set[str] = set()
    for delay in (0.8, 1.2, 1.7):
        proc = run_python(KILLED_WRITER.replace("run-", f"k{delay}-"), str(out))
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        stdout, _ = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        confirmed |= set(stdout.split())
        contents = RecordsStore(out).read()
        assert contents.rejected == []  # every version of the file is whole
        assert confirmed <= {r["run_id"] for r in contents.records}
    assert len(confirmed) >= 3
    append_records(out, [record("after")])  # the next writer removes what the killed ones left
    assert list(tmp_path.glob("*.tmp")) == []
    assert "after" in {r["run_id"] for r in read_records(out)}


STAGED_KILL = """
    import os, signal, sys
    from mqarkit.gpu.frontier import records
    out, stage = sys.argv[1], sys.argv[2]
    calls = []

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    def die_at_second_fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            die()
        return real_fsync(fd)

    real_fsync = os.fsync
    if stage == "side file written":
        os.fsync = die
    elif stage == "temporary written":
        os.fsync = die_at_second_fsync
    elif stage == "before replace":
        os.replace = die
    elif stage == "before folder sync":
        records._fsync_folder = die
    records.append_records(out, [{"run_id": "new", "status": "finished"}], log=print)
"""


@pytest.mark.parametrize("stage", ["side file written", "temporary written", "before replace", "before folder sync"])
def test_kill_9_at_each_stage_of_a_write_loses_nothing(tmp_path: Path, stage: str) -> None:
    out = tmp_path / "results.jsonl"
    old = json.dumps(record("old")) + "\nbroken line\n"
    out.write_text(old)
    proc = run_python(STAGED_KILL, str(out), stage)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    store = RecordsStore(out)
    text = out.read_text()
    assert text in (old, json.dumps(record("old")) + "\n" + json.dumps(record("new"), sort_keys=True) + "\n")
    kept = text + (store.rejected_path.read_text() if store.rejected_path.exists() else "")
    assert "broken line" in kept and "old" in kept
    append_records(out, [record("later")], log=lambda _: None)
    assert list(tmp_path.glob("*.tmp")) == []
    assert store.rejected_path.read_text() == "broken line\n"
    assert {r["run_id"] for r in store.read().records} >= {"old", "later"}


def test_files_are_created_with_the_umask(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "results.jsonl"
    out.parent.mkdir()
    (out.parent / "results.jsonl").write_text("garbage\n")
    old = os.umask(0o027)
    try:
        append_records(out, [record("a")], log=lambda _: None)
    finally:
        os.umask(old)
    store = RecordsStore(out)
    for path in (store.path, store.rejected_path, store.lock_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path


def test_check_writable_creates_the_folder_and_refuses_what_cannot_be_written(tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "results.jsonl"
    assert RecordsStore(out).check_writable() == out
    assert out.parent.is_dir() and not out.exists()
    with pytest.raises(UsageError, match=r"out='.*/new': is a folder"):
        RecordsStore(tmp_path / "new").check_writable()
    (tmp_path / "plain").write_text("")
    with pytest.raises(UsageError, match=r"out='.*plain/results\.jsonl': its folder '.*plain' is a file"):
        RecordsStore(tmp_path / "plain" / "results.jsonl").check_writable()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_check_writable_refuses_a_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(
            OutputNotWritableError, match=r"out='.*ro/results\.jsonl': its folder '.*ro' is not writable"
        ):
            RecordsStore(folder / "results.jsonl").check_writable()
    finally:
        folder.chmod(0o700)


def test_resume_report_counts_found_done_and_to_do(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    store = RecordsStore(out)
    assert store.resume_report(["a", "b"]).line(out).endswith("0 records found; 0 runs already done (skipped), 2 to do")
    append_records(out, [record("a"), record("other-sweep"), {"run_id": "b", "status": "diverged"}])
    out.write_text(out.read_text() + "oops\n")
    report = store.resume_report(["a", "b", "c"])
    assert (report.records, report.done, report.to_do, report.rejected) == (3, 2, 1, 1)
    assert "3 records found; 2 runs already done (skipped), 1 to do; 1 lines are not records" in report.line(out)


def test_source_digest_names_the_code_not_its_timestamps(tmp_path):
    """The digest of the sources a run executes (records carry it beside git's commit): the same files give the same
    digest whatever their times, an edit or a rename changes it, and the environment of a record holds it."""
    import torch

    from mqarkit.gpu.frontier.runner import environment, source_digest

    (tmp_path / "pkg").mkdir()
    module = tmp_path / "pkg" / "a.py"
    module.write_text("x = 1\n")
    (tmp_path / "pkg" / "notes.txt").write_text("not source")
    first = source_digest.__wrapped__((tmp_path,))
    os.utime(module, (0, 0))
    (tmp_path / "pkg" / "notes.txt").write_text("still not source")
    assert source_digest.__wrapped__((tmp_path,)) == first
    module.write_text("x = 2\n")
    edited = source_digest.__wrapped__((tmp_path,))
    module.rename(tmp_path / "pkg" / "b.py")
    assert len({first, edited, source_digest.__wrapped__((tmp_path,))}) == 3
    assert environment(torch.device("cpu"))["source_digest"] == source_digest()
    assert source_digest().startswith("sha256:") and len(source_digest()) == len("sha256:") + 64
