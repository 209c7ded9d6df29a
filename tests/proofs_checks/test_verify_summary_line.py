"""``mqarkit verify`` ends with its summary line on the terminal (stdout), with or without ``--quiet``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mqarkit.proofs_checks import verify


@pytest.mark.parametrize("quiet", [["--quiet"], []], ids=["quiet", "table"])
def test_summary_line_is_printed_last(tmp_path: Path, capsys: pytest.CaptureFixture[str], quiet: list[str]) -> None:
    js, md = tmp_path / "v.json", tmp_path / "v.md"
    assert verify.main(["--claims", "L4,E5", "--json", str(js), "--markdown", str(md), *quiet]) == 0
    summary = json.loads(js.read_text())["summary"]
    expected = ", ".join(f"{n} {status}" for status, n in summary.items()) + f" ({md})"
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == expected
    assert {"1 verified", "0 failed", "1 open"} <= {part.strip() for part in last.split("(")[0].split(",")}
