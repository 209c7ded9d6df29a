from __future__ import annotations

import torch

from mqarkit.gpu.report import environment, markdown_table, measure_point


def test_markdown_table_formats_and_leaves_missing_cells_empty() -> None:
    table = markdown_table([{"a": 1.23456, "b": "x"}, {"a": 2.0}], [("A", "a", ".2f"), ("B", "b", None)])
    assert table.splitlines() == ["| A | B |", "|---|---|", "| 1.23 | x |", "| 2.00 |  |"]


def test_measure_point_records_median_and_rate_on_cpu() -> None:
    row: dict = {}
    measure_point(row, lambda: sum(range(1000)), tokens=1000, device=torch.device("cpu"), warmup=0, repeats=3)
    assert row["median_s"] > 0 and row["tokens_per_s"] == 1000 / row["median_s"]
    assert "peak_memory_gib" not in row  # CPU: no CUDA peak counter


def test_environment_names_torch_and_device() -> None:
    env = environment(torch.device("cpu"))
    assert env["torch"] == torch.__version__ and env["device"] == "cpu"


def test_parse_dtypes_defaults_and_rejects_unknown_names() -> None:
    import pytest

    from mqarkit.gpu.report import parse_dtypes

    assert parse_dtypes(None, "float64,float32") == ["float64", "float32"]
    assert parse_dtypes("bfloat16", "float32") == ["bfloat16"]
    with pytest.raises(ValueError, match="dtypes=\\['int8'\\]"):
        parse_dtypes("float32,int8", "float32")


def test_write_results_writes_json_and_markdown(tmp_path) -> None:
    import json

    from mqarkit.gpu.report import write_results

    rows = [{"a": 1}]
    write_results(tmp_path / "sub", "x", {"torch": "t"}, rows, lambda env, rs: f"{env['torch']} {len(rs)}")
    assert json.loads((tmp_path / "sub" / "x.json").read_text()) == {"environment": {"torch": "t"}, "rows": rows}
    assert (tmp_path / "sub" / "x.md").read_text() == "t 1"


def test_results_markdown_and_add_rows_write_the_page(tmp_path, capsys) -> None:
    import json

    from mqarkit.gpu.report import ERROR_COLUMN, add_rows, results_markdown, timing_columns

    columns = [("A", "a", None), *timing_columns(peak_spec=".3f"), ERROR_COLUMN]
    assert [h for h, _, _ in columns] == ["A", "tokens/s", "median s", "peak GiB", "error"]
    page = results_markdown({"torch": "t"}, [{"a": 1, "peak_memory_gib": 0.5}], columns, title="T")
    assert page.splitlines()[:3] == ["# T", "", "torch: t"]
    assert page.splitlines()[-1] == "| 1 |  |  | 0.500 |  |"
    assert not results_markdown({}, [], columns).startswith("#")
    rows: list[dict] = []
    markdown = lambda env, rs: results_markdown(env, rs, columns)  # noqa: E731
    add_rows(rows, [{"a": 1}], out=None, stem="x", env={}, markdown=markdown)
    assert not list(tmp_path.iterdir())
    add_rows(rows, [{"a": 2}], out=tmp_path, stem="x", env={}, markdown=markdown)
    assert json.loads((tmp_path / "x.json").read_text())["rows"] == [{"a": 1}, {"a": 2}]
    assert capsys.readouterr().out.splitlines() == ['[{"a": 1}]', '[{"a": 2}]']
