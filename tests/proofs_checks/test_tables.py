from __future__ import annotations

from pathlib import Path

from mqarkit.proofs_checks import lower_bounds as lb
from mqarkit.proofs_checks import tables

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
    assert r["L2 layers (binary, data-indep.)"] == 5  # m = 12, 2m = 24 <= 2^5


def test_grid_skips_points_without_enough_keys() -> None:
    assert all(d <= c // 2 - 1 for c, _, d in tables.grid())
    assert (2**8, 65536, 4096) not in tables.grid()
