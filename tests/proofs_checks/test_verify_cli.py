from __future__ import annotations

import json
from pathlib import Path

import pytest

from mqarkit.proofs_checks import catalog, verify
from mqarkit.proofs_checks.registry import Check, Claim, failed


def test_unknown_claim_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = verify.main(["--claims", "U1,Z9", "--json", str(tmp_path / "v.json"), "--quiet"])
    assert rc == 2
    assert "Z9" in capsys.readouterr().err
    assert not (tmp_path / "v.json").exists()


def test_selected_claims_json_and_markdown(tmp_path: Path) -> None:
    js, md = tmp_path / "v.json", tmp_path / "v.md"
    rc = verify.main(["--claims", "L4,L6,E5,E12", "--json", str(js), "--markdown", str(md), "--quiet"])
    data = json.loads(js.read_text())
    assert rc == 0
    status = {c["id"]: c["status"] for c in data["claims"]}
    assert status == {"L4": "open", "L6": "verified", "E5": "verified", "E12": "open"}
    e5 = next(c for c in data["claims"] if c["id"] == "E5")
    assert "n <= 24 triples" in e5["checks"][0]["covered"]
    assert data["summary"] == {"verified": 2, "failed": 0, "open": 2}
    assert "| L4 | open |" in md.read_text()


def test_failed_check_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = Claim("U1", "s", "[t]", lambda: [Check("c", "numeric", "d", lambda ctx: failed("n=1", {"n": 1}, "no"))])
    monkeypatch.setattr(catalog, "select", lambda ids: [bad])
    js = tmp_path / "v.json"
    rc = verify.main(["--json", str(js), "--markdown", str(tmp_path / "v.md"), "--quiet"])
    assert rc == 1
    assert json.loads(js.read_text())["claims"][0]["checks"][0]["counterexample"] == {"n": 1}
