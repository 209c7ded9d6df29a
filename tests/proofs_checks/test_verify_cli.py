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
    assert data["summary"] == {"verified": 2, "partial": 0, "open": 2, "failed": 0}
    assert "| L4 | open |" in md.read_text()


def test_failed_check_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = Claim("U1", "s", "[t]", lambda: [Check("c", "numeric", "d", lambda ctx: failed("n=1", {"n": 1}, "no"))])
    monkeypatch.setattr(catalog, "select", lambda ids: [bad])
    js = tmp_path / "v.json"
    rc = verify.main(["--json", str(js), "--markdown", str(tmp_path / "v.md"), "--quiet"])
    assert rc == 1
    assert json.loads(js.read_text())["claims"][0]["checks"][0]["counterexample"] == {"n": 1}


def _verify_json(tmp: Path, claims: str, hash_seed: str) -> dict:
    import os
    import subprocess
    import sys

    out = tmp / f"v{hash_seed}.json"
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    cmd = [sys.executable, "-m", "mqarkit.proofs_checks.verify", "--claims", claims, "--json", str(out),
           "--markdown", str(tmp / f"v{hash_seed}.md"), "--quiet"]  # fmt: skip
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    return json.loads(out.read_text())


def test_two_runs_give_the_same_report_apart_from_timings(tmp_path: Path) -> None:
    """Fixed grids and seeds: the same claims, statuses, ranges and details, whatever the hash seed or the clock."""
    from mqarkit.proofs_checks.report import without_timings

    claims = "U2,L2,L5,L6,E2"
    first, second = _verify_json(tmp_path, claims, "1"), _verify_json(tmp_path, claims, "2")
    assert without_timings(first) == without_timings(second)
    assert first["summary"] == {"verified": 4, "partial": 1, "open": 0, "failed": 0}


@pytest.mark.slow
def test_the_whole_default_report_is_reproducible(tmp_path: Path) -> None:
    from mqarkit.proofs_checks.report import without_timings

    ids = ",".join(c.id for c in catalog.all_claims())
    assert without_timings(_verify_json(tmp_path, ids, "3")) == without_timings(_verify_json(tmp_path, ids, "4"))


def test_without_timings_drops_only_the_clock() -> None:
    from mqarkit.proofs_checks.report import without_timings

    data = {"seconds": 1.0, "budget": "default", "claims": [{"id": "U1", "checks": [{"name": "a", "seconds": 2.0}]}]}
    assert without_timings(data) == {"budget": "default", "claims": [{"id": "U1", "checks": [{"name": "a"}]}]}
