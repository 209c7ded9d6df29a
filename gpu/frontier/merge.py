"""Merging results files: the records of runs trained elsewhere (another machine, a GPU lent for one command) added
to one results file, through the store's own append (:mod:`.records`): locked, atomic, the first record of a run wins.

A sweep spread over several machines leaves one results file per machine, each resumed from a copy of the shared one;
merging them back is what this does, and what it says: per input, the records it holds, those written, those whose
run already had a record (and how many of those differ from the record kept: the same run trained twice, as two
commands each resumed from the same file would), and the lines that are not records (left in the input, untouched;
the store keeps such lines of the merged file, as on any write).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mqarkit.gpu.frontier.records import RecordsStore
from mqarkit.outputs import check_output_file


@dataclass(frozen=True)
class MergedInput:
    """What merging one input did."""

    path: Path
    records: int  # the input's records (every status)
    written: int
    already: int  # not written: their run had a record (in the merged file, or earlier in the inputs)
    differing: list[str] = field(default_factory=list)  # run_ids among ``already`` whose kept record differs
    not_records: int = 0  # lines of the input that are not records (left there)

    def line(self) -> str:
        text = f"{self.path}: {self.records} records, {self.written} written, {self.already} already there"
        if self.differing:
            shown = ", ".join(self.differing[:3]) + (", ..." if len(self.differing) > 3 else "")
            text += f" ({len(self.differing)} differ from the record kept: {shown})"
        if self.not_records:
            text += f"; {self.not_records} lines are not records (left in {self.path.name})"
        return text


def check_inputs(into: str | os.PathLike[str], inputs: list[str | os.PathLike[str]]) -> None:
    """Every rule before any write: a ``ValueError`` naming the parameter (``inputs`` files, none of them ``into``,
    none twice; ``into`` writable)."""
    if not inputs:
        raise ValueError("inputs: needs at least one results file")
    target = Path(into).resolve()
    seen: set[Path] = set()
    for path in inputs:
        resolved = Path(path).resolve()
        if not resolved.is_file():
            raise ValueError(f"inputs: {path} is not a file")
        if resolved == target:
            raise ValueError(f"inputs: {path} is the --into file itself")
        if resolved in seen:
            raise ValueError(f"inputs: {path} is given twice")
        seen.add(resolved)
    check_output_file(into, parameter="into")
    RecordsStore(into).check_writable()  # and its lock can be taken


def merge_results(into: str | os.PathLike[str], inputs: list[str | os.PathLike[str]]) -> list[MergedInput]:
    """Append the records of each input, in order, to ``into`` (created if missing): :func:`check_inputs` first."""
    check_inputs(into, inputs)
    return append_inputs(into, inputs)


def append_inputs(into: str | os.PathLike[str], inputs: list[str | os.PathLike[str]]) -> list[MergedInput]:
    """:func:`merge_results` for inputs :func:`check_inputs` has passed (the CLI checks them apart, to refuse bad
    input on one line)."""
    store = RecordsStore(into)
    kept = {r["run_id"]: r for r in store.read().records}
    done = []
    for path in inputs:
        contents = RecordsStore(path).read()
        differing = []
        for record in contents.records:  # against the record each run keeps: the merged file's, or an earlier one
            first = kept.setdefault(record["run_id"], record)
            if first is not record and first != record:
                differing.append(record["run_id"])
        summary = store.append(contents.records)
        counts = (len(contents.records), summary.written, summary.duplicates)
        done.append(MergedInput(Path(path), *counts, differing, len(contents.rejected)))
    return done
