from __future__ import annotations

from pathlib import Path

from mqarkit.proofs_checks import catalog, tables
from mqarkit.proofs_checks import lower_bounds as lb

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "tables"


def test_committed_tables_are_fresh(tmp_path: Path) -> None:
    tables.write(tmp_path)
    for path in sorted(tmp_path.iterdir()):
        committed = COMMITTED / path.name
        assert committed.exists(), f"{committed} missing: run `mqarkit tables`"
        assert committed.read_text() == path.read_text(), f"{committed.name} is stale: run `mqarkit tables`"


def test_render_is_deterministic() -> None:
    assert tables.render() == tables.render()


def test_bound_rows_match_the_bound_functions() -> None:
    rows = tables.bound_rows()
    assert len(rows) == len(tables.grid())
    r = next(r for r in rows if (r["N"], r["c"], r["D"]) == (1024, 2**12, 64))
    assert r["L1 bits (index)"] == 64
    assert r["L6 bits (log2 V!/(V-D)!)"] == round(lb.information_minimum_bits(64, 2048), 1)
    assert r["L2 layers (binary, data-indep., exact output)"] == 5  # m = 12, 2m = 24 <= 2^5
    assert r["X1 layers found (argmax readout)"] == 5  # D = 64 at m = 12: the sharpened lookup needs 5 as well


def test_claims_table_lists_every_claim_with_what_is_not_checked() -> None:
    rows = {r["claim"]: r for r in tables.claim_rows()}
    assert list(rows) == list(catalog.CLAIM_IDS)
    assert "log log N dominates" in rows["U6"]["not checked"] and rows["U1"]["not checked"] == "-"
    assert "argmax-depth:lower-bounds" in rows["X1"]["checks"] and "lookup-masks:exhaustive" in rows["X2"]["checks"]


def test_grid_skips_points_without_enough_keys() -> None:
    assert all(d <= c // 2 - 1 for c, _, d in tables.grid())
    assert (2**8, 65536, 4096) not in tables.grid()
