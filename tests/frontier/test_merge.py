"""``mqarkit frontier merge``: the records of other results files added to one, through the store (the first record of
a run wins), with what each input gave said; bad inputs refused before any write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bad_inputs import CliCase, assert_cli_refuses, cli_params

from mqarkit.cli import main
from mqarkit.gpu.frontier.merge import merge_results
from mqarkit.gpu.frontier.records import RecordsStore


def _record(run_id: str, accuracy: float = 0.5, status: str = "finished") -> dict:
    return {"run_id": run_id, "status": status, "overall_accuracy": accuracy}


def _write(path: Path, records: list[dict], extra: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + extra)
    return path


def test_merge_adds_new_runs_keeps_the_first_record_and_says_what_differs(tmp_path):
    into = _write(tmp_path / "shared.jsonl", [_record("a"), _record("b")])
    one = _write(tmp_path / "machine1.jsonl", [_record("a"), _record("c"), _record("d", status="diverged")])
    two = _write(tmp_path / "machine2.jsonl", [_record("b", accuracy=0.9), _record("c", 0.1), _record("e")])
    first, second = merge_results(into, [one, two])
    assert (first.records, first.written, first.already, first.differing) == (3, 2, 1, [])  # "a" is the same record
    assert (second.records, second.written, second.already, second.differing) == (3, 1, 2, ["b", "c"])
    kept = {r["run_id"]: r for r in RecordsStore(into).read().records}
    assert sorted(kept) == ["a", "b", "c", "d", "e"]
    assert kept["b"]["overall_accuracy"] == 0.5 and kept["c"]["overall_accuracy"] == 0.5  # the first record wins
    assert kept["d"]["status"] == "diverged"  # every status a done run can have
    assert "3 records, 1 written, 2 already there (2 differ from the record kept: b, c)" in second.line()
    assert merge_results(into, [one, two])[0].written == 0  # merging again writes nothing


def test_lines_that_are_not_records_stay_in_the_input_and_are_counted(tmp_path):
    text = json.dumps(_record("a")) + "\nnot json\n" + json.dumps({"run_id": "x"}) + "\n"
    one = tmp_path / "machine1.jsonl"
    one.write_text(text)
    (merged,) = merge_results(tmp_path / "new" / "shared.jsonl", [one])
    assert (merged.records, merged.written, merged.not_records) == (1, 1, 2)
    assert one.read_text() == text  # the input is not touched
    assert "2 lines are not records (left in machine1.jsonl)" in merged.line()
    assert [r["run_id"] for r in RecordsStore(tmp_path / "new" / "shared.jsonl").read().records] == ["a"]


def test_a_run_twice_in_one_input_counts_as_already_there(tmp_path):
    one = _write(tmp_path / "m.jsonl", [_record("a"), _record("a", 0.7), _record("a")])
    (merged,) = merge_results(tmp_path / "shared.jsonl", [one])
    assert (merged.written, merged.already, merged.differing) == (1, 2, ["a"])


def test_the_command_prints_a_line_per_input(tmp_path, capsys):
    one = _write(tmp_path / "m1.jsonl", [_record("a")])
    two = _write(tmp_path / "m2.jsonl", [_record("a"), _record("b")])
    assert main(["frontier", "merge", "--into", str(tmp_path / "s.jsonl"), str(one), str(two)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{one}: 1 records, 1 written, 0 already there", f"{two}: 2 records, 1 written, 1 already there"]


MERGE = ("frontier", "merge", "--into", "{dir}/s.jsonl")
CASES = [
    CliCase("input-missing", (*MERGE, "{dir}/nope.jsonl"), "inputs: "),
    CliCase("input-is-into", ("frontier", "merge", "--into", "{file}", "{file}"), "is the --into file itself"),
    CliCase("input-twice", (*MERGE, "{file}", "{file}"), "is given twice"),
    CliCase("into-under-a-file", ("frontier", "merge", "--into", "{file}/s.jsonl", "{file}"), "into="),
    CliCase("no-inputs", MERGE, "OTHER.jsonl"),
]


@pytest.mark.parametrize("case", cli_params(CASES))
def test_merge_refuses_bad_inputs(case: CliCase, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert_cli_refuses(case, capsys, tmp_path)
    assert not (tmp_path / "s.jsonl").exists()  # refused before any write
