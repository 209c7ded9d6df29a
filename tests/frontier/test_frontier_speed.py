"""Tests of the fast paths of the frontier harness (CPU): each equals the direct form it replaces."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from mqarkit.gpu.frontier.config import ModelConfig
from mqarkit.gpu.frontier.kernels.taylor_attention import _TaylorAttention, taylor_attention, taylor_kernel
from mqarkit.gpu.frontier.model import StackedHybrid
from mqarkit.gpu.frontier.ops import causal_depthwise_conv
from mqarkit.tolerances import assert_close


def _qkv(dtype, r=2, b=3, n=9, f=4, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(r, b, n, w, generator=g, dtype=dtype, requires_grad=True) for w in (f, f, d)]


def test_taylor_attention_gradcheck_float64():
    q, k, v = _qkv(torch.float64)
    assert torch.autograd.gradcheck(_TaylorAttention.apply, (q, k, v))


@pytest.mark.parametrize("n", [1, 2, 17])
def test_taylor_attention_equals_direct_quadratic_form(n):
    q, k, v = _qkv(torch.float64, n=n, seed=n)
    a = taylor_kernel(q, k, torch.ones(q.shape[0], dtype=q.dtype)).tril()  # (R, B, N, N)
    ref = a @ v / (a.sum(-1, keepdim=True) + 1e-12)  # the model's definition, epsilon included
    out = taylor_attention(q, k, v)
    assert_close(out, ref, dtype="float64", context=f"forward n={n}")
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(9), dtype=out.dtype)
    for t, name in zip(torch.autograd.grad(out, (q, k, v), g), "qkv"):
        ref_grad = torch.autograd.grad(ref, {"q": q, "k": k, "v": v}[name], g, retain_graph=True)[0]
        assert_close(t, ref_grad, dtype="float64", context=f"grad {name} n={n}")


def test_causal_depthwise_conv_equals_definition():
    g = torch.Generator().manual_seed(2)
    u, w, b = torch.randn(2, 3, 6, 4, generator=g), torch.randn(2, 4, 3, generator=g), torch.randn(2, 4, generator=g)
    ref = torch.zeros_like(u)
    for t in range(6):
        ref[:, :, t] = b[:, None] + sum(w[:, None, :, s] * u[:, :, t - s] for s in range(3) if t - s >= 0)
    assert_close(causal_depthwise_conv(u, w, b), ref, dtype="float32", context="conv")
    short = causal_depthwise_conv(u[:, :, :2], w, b)  # kernel longer than the sequence
    assert_close(short, ref[:, :, :2], dtype="float32", context="conv n < k")


def test_stacked_embedding_equals_indexing_and_its_gradient():
    cfgs = [ModelConfig("attention", 8, vocab_size=16, max_len=8)] * 3
    model = StackedHybrid(cfgs, [4, 5, 6])
    x = torch.zeros(5, 7, dtype=torch.long)  # mostly one repeated token, as MQAR inputs are
    x[:, ::3] = torch.randint(0, 16, (5, 3), generator=torch.Generator().manual_seed(3))
    fast = model.embed(x)
    ref = model.emb[:, x]
    assert torch.equal(fast, ref)
    g = torch.randn(fast.shape, generator=torch.Generator().manual_seed(4))
    (ga,) = torch.autograd.grad(fast, model.emb, g)
    (gb,) = torch.autograd.grad(ref, model.emb, g)
    assert_close(ga, gb, dtype="float32", context="embedding grad")


def _benchmark_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "frontier_speed.py"
    spec = importlib.util.spec_from_file_location("frontier_speed_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # registered before it runs, as its dataclasses need (importlib's recipe)
    spec.loader.exec_module(module)
    return module


def test_utilisation_sampler_samples_only_inside_its_window():
    import time

    bench = _benchmark_module()
    sampler = bench.UtilSampler(period=0.005, query=lambda: 50.0)
    sampler.start()
    try:
        time.sleep(0.05)
        assert sampler.samples == []  # inactive: nothing sampled
        first = sampler.activate()
        time.sleep(0.2)
        sampler.active.clear()
        time.sleep(0.05)  # a sample in flight when the window closed has landed by now
        taken = len(sampler.samples)
        time.sleep(0.05)
        assert len(sampler.samples) == taken > 0
        assert sampler.burst_mean(first, settle=0.0) == 50.0
        assert sampler.burst_mean(first, settle=60.0) is None  # every sample fell in the settling time
    finally:
        sampler.stop_flag.set()
    weighted = bench._step_weighted_util(
        [
            {"steps_per_epoch": 3, "median_step_s": 1.0, "gpu_util": 90.0},
            {"steps_per_epoch": 1, "median_step_s": 1.0, "gpu_util": 50.0},
            {"steps_per_epoch": 5, "median_step_s": 1.0, "gpu_util": None},
        ]
    )
    assert weighted == 80.0


# ---------------------------------------------------------------- the families mode (issue 16 item 7)
TINY = ["--data-preset", "tiny", "--widths", "16", "--runs-per-stack", "2", "--steps", "1", "--device", "cpu"]


def _families_report(tmp_path, *extra: str) -> dict:
    bench = _benchmark_module()
    assert bench.main(["--families", "attention", "based", *TINY, "--out-dir", str(tmp_path), *extra]) == 0
    return json.loads((tmp_path / "frontier_speed_families.json").read_text())


def test_families_mode_measures_each_family_beside_based_and_the_generic_path(tmp_path):
    report = _families_report(tmp_path)
    rows = report["rows"]
    # Based first (the reference row), then the families asked for, the generic path, fla (skipped on a CPU)
    assert [(r["path"], r["name"]) for r in rows] == [
        ("stacked", "based"),
        ("stacked", "attention"),
        ("generic", "reference:attention"),
        ("generic", "fla.layers:DeltaNet"),
    ]
    measured = rows[:3]
    for r in measured:
        assert r["status"] == "measured" and r["error"] is None, r
        assert r["runs"] == 2 and r["d_model"] == 16
        assert len(r["segments"]) == 2  # the tiny preset's two training segments
        assert all(s["median_step_s"] > 0 and s["first_step_s"] > 0 for s in r["segments"])
        assert r["epoch_s"] > 0 and r["eval_s"] > 0 and r["first_steps_s"] > 0 and r["wall_s"] > 0
        assert r["model_epochs_per_s"] == pytest.approx(2 / r["epoch_s"])
        assert r["meets_target"] is None  # d = 16: the target is stated at d = 64
    # the knob settings the row's 2 runs measured: the first two of Based's three (a projection asks for these)
    assert rows[0]["knob_settings"] == [{"feature_dim": 8}, {"feature_dim": 16}]
    assert rows[2]["family"] == "module" and rows[2]["knob_settings"][0]["family"] == "attention"
    assert rows[3]["status"] == "skipped" and "fla" in rows[3]["error"]
    assert report["not_measured"] == [f"fla.layers:DeltaNet d=16: skipped ({rows[3]['error']})"]
    assert {"device", "torch", "triton", "fla", "driver", "git_commit"} <= set(report["env"])
    assert report["settings"]["steps"] == 1 and report["data_s"] > 0
    table = (tmp_path / "frontier_speed_families.md").read_text()
    assert "| stacked | `based` | 16 | 2 |" in table and "| generic | `reference:attention` | 16 | 2 |" in table
    assert "| 1.00 |" in table  # Based against itself
    assert not (tmp_path / "frontier_speed.json").exists()  # the preset mode's outputs are left alone


def test_the_table_says_which_switches_its_command_and_each_row_ran_under(tmp_path, monkeypatch):
    """A switch's rows (Gated DeltaNet through DPLR, the delta rules compiled, Mamba's sequential scan) are told apart
    from the defaults' in the table itself, not only in the JSON: the command's switches in the first line, each
    measured row's beside its name (a resumed table's rows may come from commands under other switches)."""
    monkeypatch.setenv("MQARKIT_FLA_GATED_DELTA_RULE", "dplr")
    monkeypatch.setenv("MQARKIT_COMPILE_DELTA_RULE", "1")
    monkeypatch.setenv("MQARKIT_SCAN", "sequential")
    report = _families_report(tmp_path, "--no-fla")
    assert report["env"]["fla_gated_delta_rule_switch"] == "dplr" and report["env"]["delta_rule_compile_trial"] is True
    assert report["env"]["sequential_scan"] is True
    on = ["MQARKIT_FLA_GATED_DELTA_RULE=dplr", "MQARKIT_COMPILE_DELTA_RULE=1", "MQARKIT_SCAN=sequential"]
    assert all(r["switches"] == on for r in report["rows"] if r["status"] == "measured")
    table = (tmp_path / "frontier_speed_families.md").read_text()
    assert f"; switches set: {', '.join(on)}." in table.splitlines()[2]
    under = " under ".join(f"`{x}`" for x in on)
    assert f"| stacked | `based` under {under} | 16 |" in table
    monkeypatch.delenv("MQARKIT_FLA_GATED_DELTA_RULE")
    monkeypatch.delenv("MQARKIT_COMPILE_DELTA_RULE")
    monkeypatch.setenv("MQARKIT_SCAN", "log_depth")  # not the sequential kernels: no switch set
    monkeypatch.setenv("MQARKIT_FLA_GATED_DELTA_RULE", "1")  # the default, named
    report = _families_report(tmp_path / "again", "--no-fla")
    assert report["env"]["fla_gated_delta_rule_switch"] is None
    assert "MQARKIT_" not in (tmp_path / "again" / "frontier_speed_families.md").read_text()


def test_a_smaller_micro_batch_budget_reaches_the_steps_and_the_table(tmp_path, monkeypatch):
    """``--micro-batch-budget`` is the budget every training step and evaluation of a row divides (recorded in the
    settings and said in the table); a resume with another budget is refused, and a table written before the setting
    existed resumes as the harness's default."""
    bench = _benchmark_module()
    budgets = set()
    real_step, real_eval = bench.training_step, bench.evaluate
    monkeypatch.setattr(bench, "training_step", lambda *a, **k: budgets.add(k["budget"]) or real_step(*a, **k))
    monkeypatch.setattr(bench, "evaluate", lambda *a, **k: budgets.add(k["budget"]) or real_eval(*a, **k))

    def run(*extra: str) -> dict:
        argv = ["--families", "attention", "based", *TINY, "--out-dir", str(tmp_path), "--no-fla", "--generic"]
        assert bench.main([*argv, *extra]) == 0
        return json.loads((tmp_path / "frontier_speed_families.json").read_text())

    report = run("--micro-batch-budget", "4096")
    assert budgets == {4096} and report["settings"]["micro_batch_budget"] == 4096
    assert "micro-batch budget 4096 elements (the harness's: " in (tmp_path / "frontier_speed_families.md").read_text()
    with pytest.raises(ValueError, match="measured with other micro_batch_budget"):
        run("--resume")
    path = tmp_path / "frontier_speed_families.json"
    older = json.loads(path.read_text())
    del older["settings"]["micro_batch_budget"]  # a table from before the option
    path.write_text(json.dumps(older))
    budgets.clear()
    resumed = run("--resume")
    assert resumed["settings"]["micro_batch_budget"] == bench.BUDGET and budgets == set()  # both rows kept, none re-run
    assert "micro-batch budget" not in (tmp_path / "frontier_speed_families.md").read_text()


def test_remeasure_measures_a_resumed_row_again_and_keeps_the_earlier_one(tmp_path, monkeypatch):
    """``--resume --remeasure attention``: the attention row is measured again (Based's is kept), and the earlier
    attention row stays in the report and the table as superseded, naming the command that replaced it."""
    first = _families_report(tmp_path, "--no-fla", "--generic")
    bench = _benchmark_module()
    measured = _watch_rows(bench, monkeypatch)
    argv = ["--families", "attention", "based", *TINY, "--out-dir", str(tmp_path), "--no-fla", "--generic"]
    assert bench.main([*argv, "--resume", "--remeasure", "attention"]) == 0
    second = json.loads((tmp_path / "frontier_speed_families.json").read_text())
    assert measured == ["attention"]
    assert [(r["name"], r["status"], r.get("resumed", False)) for r in second["rows"]] == [
        ("based", "measured", True),
        ("attention", "measured", False),
    ]
    (old,) = second["superseded"]
    assert old["epoch_s"] == first["rows"][1]["epoch_s"] and "--remeasure attention" in old["superseded_by"]
    table = (tmp_path / "frontier_speed_families.md").read_text()
    assert "Superseded (measured again by a later command" in table and "- attention d=16 (layers hybrid): " in table


def test_resume_measures_again_a_row_of_other_models_and_reads_an_unnamed_topology_as_hybrid(tmp_path, monkeypatch):
    """An earlier row whose topology is not the plan's (the speed table's H3, Hyena, Mamba and RWKV-4 rows were
    measured hybrid before their presets' ``layers = "mixer"`` reached it) is set aside, saying why, and measured
    again; a row written before rows named their topology counts as hybrid, the default it was measured with."""
    _families_report(tmp_path, "--no-fla", "--generic")
    path = tmp_path / "frontier_speed_families.json"
    report = json.loads(path.read_text())
    based, attention = report["rows"]
    del based["layers"]  # as the rows written before the field existed
    attention["layers"] = "mixer"  # measured as other models than the plan's
    path.write_text(json.dumps(report))
    bench = _benchmark_module()
    measured = _watch_rows(bench, monkeypatch)
    argv = ["--families", "attention", "based", *TINY, "--out-dir", str(tmp_path), "--no-fla", "--generic"]
    assert bench.main([*argv, "--resume"]) == 0
    second = json.loads(path.read_text())
    assert measured == ["attention"]
    assert [(r["name"], r["layers"] if "layers" in r else None, r.get("resumed", False)) for r in second["rows"]] == [
        ("based", None, True),
        ("attention", "hybrid", False),
    ]
    (old,) = second["superseded"]
    assert old["layers"] == "mixer" and old["superseded_why"] == "other models than the plan's"
    table = (tmp_path / "frontier_speed_families.md").read_text()
    assert "- attention d=16 (layers mixer): " in table and "other models than the plan's" in table
    assert "| stacked | `based` (resumed) | 16 | 2 | based-fig2: feature_dim 8, 16, 24 | hybrid |" in table


def test_remeasure_sets_aside_only_the_widths_the_command_plans(tmp_path, monkeypatch):
    """``--remeasure attention --widths 16`` after a table of widths 16 and 32: attention's d = 16 row is measured
    again and superseded once; its d = 32 row, outside the command's plan, stays measured and is not superseded
    (the fourteenth session's table listed such a row both ways)."""
    bench = _benchmark_module()
    wide = [*TINY[:2], "--widths", "16", "32", *TINY[4:]]
    argv = ["--families", "attention", "based", "--out-dir", str(tmp_path), "--no-fla", "--generic"]
    assert bench.main([*argv, *wide]) == 0
    measured = _watch_rows(bench, monkeypatch)
    assert bench.main([*argv, *TINY, "--resume", "--remeasure", "attention"]) == 0
    report = json.loads((tmp_path / "frontier_speed_families.json").read_text())
    assert measured == ["attention"]
    assert [(r["name"], r["d_model"]) for r in report["superseded"]] == [("attention", 16)]
    rows = {(r["name"], r["d_model"]): r for r in report["rows"]}
    assert rows["attention", 32]["status"] == "measured" and rows["attention", 32]["resumed"]
    assert rows["attention", 16]["status"] == "measured" and not rows["attention", 16].get("resumed", False)


def test_a_remeasured_row_the_time_budget_does_not_reach_keeps_its_earlier_figure(tmp_path, monkeypatch):
    """``--remeasure attention`` under a time budget spent before the row begins: the earlier attention row stays
    measured (marked resumed), not superseded, so a command that runs out of time loses no figure."""
    first = _families_report(tmp_path, "--no-fla", "--generic")
    bench = _benchmark_module()
    measured = _watch_rows(bench, monkeypatch)
    argv = ["--families", "attention", "based", *TINY, "--out-dir", str(tmp_path), "--no-fla", "--generic"]
    assert bench.main([*argv, "--resume", "--remeasure", "attention", "--time-budget-s", "1e-9"]) == 0
    second = json.loads((tmp_path / "frontier_speed_families.json").read_text())
    assert measured == []
    assert [(r["name"], r["status"], r.get("resumed", False)) for r in second["rows"]] == [
        ("based", "measured", True),
        ("attention", "measured", True),
    ]
    assert second["rows"][1]["epoch_s"] == first["rows"][1]["epoch_s"] and "superseded_by" not in second["rows"][1]
    assert second["superseded"] == [] and second["not_measured"] == []
    assert "Superseded" not in (tmp_path / "frontier_speed_families.md").read_text()


def test_time_budget_stops_new_rows_and_says_which_were_not_measured(tmp_path):
    report = _families_report(tmp_path, "--time-budget-s", "1e-9", "--no-fla")
    assert [r["status"] for r in report["rows"]] == ["not measured"] * 3
    assert len(report["not_measured"]) == 3 and all("time budget" in x for x in report["not_measured"])
    assert "Not measured:" in (tmp_path / "frontier_speed_families.md").read_text()


def test_a_command_killed_mid_row_leaves_every_row_named(tmp_path, monkeypatch):
    """While Based's row is measured, the file on disk names it ``running`` and every later row ``not reached``: what
    a command killed at its time limit leaves."""
    bench = _benchmark_module()
    real, seen = bench.bench_group, []

    def watched(sweep, group, *args, **kwargs):
        if not seen:
            seen.append(json.loads((tmp_path / "frontier_speed_families.json").read_text())["rows"])
            seen.append((tmp_path / "frontier_speed_families.md").read_text())
        return real(sweep, group, *args, **kwargs)

    monkeypatch.setattr(bench, "bench_group", watched)
    assert bench.main(["--families", "attention", "based", *TINY, "--out-dir", str(tmp_path), "--no-fla"]) == 0
    rows, table = seen
    assert [(r["name"], r["status"]) for r in rows] == [
        ("based", "running"),
        ("attention", "not reached"),
        ("reference:attention", "not reached"),
    ]
    assert "not reached when the command ended" in table and "0 of 3 rows measured." in table
    assert "3 of 3 rows measured." in (tmp_path / "frontier_speed_families.md").read_text()


def test_a_failing_row_is_recorded_and_the_next_rows_still_run(tmp_path, monkeypatch):
    bench = _benchmark_module()
    real = bench.bench_group

    def failing_for_attention(sweep, group, *args, **kwargs):
        if group[0].model.family == "attention":
            raise RuntimeError("simulated kernel failure")
        return real(sweep, group, *args, **kwargs)

    monkeypatch.setattr(bench, "bench_group", failing_for_attention)
    argv = ["--families", "attention", "based", *TINY, "--generic", "--no-fla", "--out-dir", str(tmp_path)]
    assert bench.main(argv) == 0
    rows = json.loads((tmp_path / "frontier_speed_families.json").read_text())["rows"]
    assert [(r["name"], r["status"]) for r in rows] == [("based", "measured"), ("attention", "failed")]
    assert rows[1]["error"] == "RuntimeError: simulated kernel failure"
    assert "simulated kernel failure" in rows[1]["traceback_tail"]


def test_a_stack_out_of_memory_is_measured_again_with_half_its_runs_and_the_row_says_so(tmp_path, monkeypatch):
    bench = _benchmark_module()
    real, sizes = bench.bench_group, []

    def fits_one_based_run(sweep, group, *args, **kwargs):
        sizes.append((group[0].model.family, len(group)))
        if group[0].model.family == "based" and len(group) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.98 GiB.")
        return real(sweep, group, *args, **kwargs)

    monkeypatch.setattr(bench, "bench_group", fits_one_based_run)
    argv = ["--families", "attention", "based", *TINY, "--generic", "--no-fla", "--out-dir", str(tmp_path)]
    assert bench.main(argv) == 0
    assert sizes == [("based", 2), ("based", 1), ("attention", 2)]
    based, attention = json.loads((tmp_path / "frontier_speed_families.json").read_text())["rows"]
    assert based["status"] == "measured" and based["runs"] == 1 and based["out_of_memory_at_runs"] == [2]
    assert based["knob_settings"] == [{"feature_dim": 8}]  # what one run measured, so projections ask for no more
    assert based["model_epochs_per_s"] == pytest.approx(1 / based["epoch_s"])
    assert attention["runs"] == 2 and "out_of_memory_at_runs" not in attention and "out_of_memory" not in attention
    table = (tmp_path / "frontier_speed_families.md").read_text()
    assert "| stacked | `based` | 16 | 1 |" in table and "| measured (out of memory at 2 runs) |" in table
    monkeypatch.setattr(bench, "bench_group", real)  # a resume keeps the smaller row: the same models, fewer runs
    assert bench.main([*argv, "--resume"]) == 0
    resumed = json.loads((tmp_path / "frontier_speed_families.json").read_text())["rows"][0]
    assert resumed["resumed"] and resumed["runs"] == 1 and not resumed.get("superseded_by")


def _watch_rows(bench, monkeypatch, check=None) -> list[str]:
    """``bench.bench_group`` wrapped: the family of each row measured, in order (the list returned), after
    ``check(family)`` (what the report on disk says while that row runs)."""
    seen, real = [], bench.bench_group

    def watched(sweep, group, *args, **kwargs):
        family = group[0].model.family
        seen.append(family)
        if check is not None:
            check(family)
        return real(sweep, group, *args, **kwargs)

    monkeypatch.setattr(bench, "bench_group", watched)
    return seen


def test_resume_keeps_the_measured_rows_and_measures_the_rest(tmp_path, monkeypatch):
    """A second command with ``--resume`` measures only what the first left: a row the first was measuring when it
    ended (left as ``running``) is measured again and named; other settings are refused before any work."""
    bench = _benchmark_module()
    argv = ["--families", "attention", "based", *TINY, "--generic", "--no-fla", "--out-dir", str(tmp_path)]
    assert bench.main(argv) == 0
    path = tmp_path / "frontier_speed_families.json"
    first = json.loads(path.read_text())
    first["rows"][1] = {k: first["rows"][1][k] for k in ("path", "name", "family", "d_model", "runs", "knobs")} | {
        "status": "running",
        "error": None,
        "meets_target": None,
    }  # as a command killed mid-row leaves it
    path.write_text(json.dumps(first))

    def check(family):
        during = json.loads(path.read_text())["rows"]
        running = [i for i, r in enumerate(during) if r["status"] == "running"]
        assert len(running) == 1 and during[running[0]]["name"] == family
        assert {r["status"] for r in during[running[0] + 1 :]} <= {"not reached"}  # a kill now leaves them named

    seen = _watch_rows(bench, monkeypatch, check)
    assert bench.main([*argv, "--resume"]) == 0
    second = json.loads(path.read_text())
    assert seen == ["attention"]  # Based's row kept, attention's measured again
    assert [(r["name"], r["status"], r.get("resumed", False)) for r in second["rows"]] == [
        ("based", "measured", True),
        ("attention", "measured", False),
    ]
    assert second["rows"][0]["epoch_s"] == first["rows"][0]["epoch_s"]
    assert second["rows"][1]["code"]["source_digest"] == second["env"]["source_digest"]  # which code measured a row
    assert second["interrupted"] == ["attention d=16"] and len(second["resumed_from"]) == 1
    assert "`based` (resumed)" in (tmp_path / "frontier_speed_families.md").read_text()
    with pytest.raises(ValueError, match="--resume: .* was measured with other steps"):
        bench.main([*argv, "--resume", "--steps", "2"])


def test_resume_measures_an_interrupted_row_after_the_rows_never_begun(tmp_path, monkeypatch):
    """A row whose first steps outlast a command's limit would be measured first by every later command and hold up
    the rest: it goes last, and the table lists the rows in the order measured."""
    bench = _benchmark_module()
    argv = ["--families", "attention", "sliding_window", *TINY, "--generic", "--no-fla", "--out-dir", str(tmp_path)]
    assert bench.main(argv) == 0
    path = tmp_path / "frontier_speed_families.json"
    first = json.loads(path.read_text())
    assert [r["name"] for r in first["rows"]] == ["based", "attention", "sliding_window"]
    keep = ("path", "name", "family", "d_model", "runs", "knobs")
    first["rows"][1] = {k: first["rows"][1][k] for k in keep} | {"status": "running", "error": None}
    first["rows"][2] = {k: first["rows"][2][k] for k in keep} | {"status": "not reached", "error": None}
    path.write_text(json.dumps(first))
    seen = _watch_rows(bench, monkeypatch)
    assert bench.main([*argv, "--resume"]) == 0
    second = json.loads(path.read_text())
    assert seen == ["sliding_window", "attention"]
    assert [(r["name"], r["status"]) for r in second["rows"]] == [
        ("based", "measured"),
        ("sliding_window", "measured"),
        ("attention", "measured"),
    ]


def test_a_narrower_resume_keeps_the_rows_outside_its_plan(tmp_path, monkeypatch):
    """``--resume`` with fewer families than the first command measures only those, and the rows it does not plan
    stay in the report (written before any row is measured, so a command killed mid-row loses none of them)."""
    bench = _benchmark_module()
    common = [*TINY, "--generic", "--no-fla", "--out-dir", str(tmp_path)]
    assert bench.main(["--families", "attention", *common]) == 0
    path = tmp_path / "frontier_speed_families.json"
    first = json.loads(path.read_text())
    keep = ("path", "name", "family", "d_model", "runs", "knobs")
    unfinished = {k: first["rows"][1][k] for k in keep} | {"status": "not reached", "error": None}
    first["rows"].append(unfinished | {"name": "rwkv4", "family": "rwkv4"})  # as a command killed earlier leaves it
    path.write_text(json.dumps(first))

    def check(family):
        during = json.loads(path.read_text())["rows"]
        assert ("attention", "measured") in [(r["name"], r["status"]) for r in during]

    seen = _watch_rows(bench, monkeypatch, check)
    assert bench.main(["--families", "sliding_window", *common, "--resume"]) == 0
    second = json.loads(path.read_text())
    assert seen == ["sliding_window"]
    assert [(r["name"], r["status"], r.get("resumed", False)) for r in second["rows"]] == [
        ("attention", "measured", True),
        ("rwkv4", "not measured", False),
        ("based", "measured", True),
        ("sliding_window", "measured", False),
    ]
    assert second["rows"][0]["epoch_s"] == first["rows"][1]["epoch_s"]
    assert second["not_measured"] == ["rwkv4 d=16: not measured (outside the plan of the commands since)"]


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--families", "nope"], r"--families=\['nope'\]: \['nope'\] not registered"),
        (["--families", "all", "--generic", "nope"], r"--generic=\['nope'\]: \['nope'\] not registered"),
        (["--families", "based", "--runs-per-stack", "0"], "--runs-per-stack=0: needs an integer >= 1"),
        (["--families", "based", "--widths", "0"], r"--widths=\[0\]: needs distinct integers >= 1"),
        (["--families", "based", "--time-budget-s", "0"], "--time-budget-s=0.0: needs a finite number > 0"),
        (["--families", "based", "--steps", "0"], "--steps=0: needs an integer >= 1"),
        (["--families", "based", "--presets", "tiny"], "--families: a mode of its own"),
        (["--resume"], "--resume: belongs to the families mode"),
        (["--micro-batch-budget", "5"], "--micro-batch-budget: belongs to the families mode"),
        (["--remeasure", "based"], "--remeasure: belongs to the families mode"),
        (["--families", "based", "--remeasure", "based"], "--remeasure: only with --resume"),
        (["--families", "based", "--resume", "--remeasure", "h3"], r"--remeasure=\['h3'\]: \['h3'\] not among"),
        (["--families", "based", "--micro-batch-budget", "0"], "--micro-batch-budget=0: needs an integer >= 1"),
        (["--families", "h3", "--widths", "20"], "h3 d=20 cannot be built: .*d_state=5: h3 needs an even d_state"),
        (["--families", "based", "--data-preset", "zoology-fig2"], "needs a preset of one sweep, it has 4"),
    ],
)
def test_families_mode_bad_options_name_the_option_and_the_rule(argv, match, tmp_path):
    bench = _benchmark_module()
    with pytest.raises(ValueError, match=match):
        bench.main([*argv, "--device", "cpu", "--example-scale", "0.001", "--out-dir", str(tmp_path)])
    assert not (tmp_path / "frontier_speed_families.json").exists()  # refused before any work


def test_family_knobs_cover_every_family_and_are_their_presets_stacks():
    from mqarkit.gpu.frontier.families import FAMILIES
    from mqarkit.gpu.frontier.presets import load_preset

    bench = _benchmark_module()
    assert set(bench.FAMILY_KNOBS) == set(FAMILIES)
    for family, entry in bench.FAMILY_KNOBS.items():
        for d in (64, 128):
            ours = sorted(json.dumps(k, sort_keys=True) for k in entry.settings(d))
            if entry.preset is None:
                assert len(ours) >= 1
                continue
            models = [m for sw in load_preset(entry.preset) for m in sw.models if m.family == family and m.d_model == d]
            theirs = sorted({json.dumps(m.knob_dict(), sort_keys=True) for m in models})
            assert ours == theirs, (family, d, entry.preset)
            assert {m.layers for m in models} == {entry.layers}, (family, d, entry.preset)  # the preset's topology


def test_a_row_builds_its_models_in_the_table_s_topology():
    from mqarkit.gpu.frontier.presets import load_preset

    bench = _benchmark_module()
    (base,) = load_preset("based-fig2")
    items = bench.plan_items(["h3", "attention"], [64], [], False, base, torch.device("cpu"))
    by_name = {item.name: item for item in items}
    assert {m.layers for m in by_name["h3"].models} == {"mixer"}
    assert {m.layers for m in by_name["attention"].models} == {"hybrid"}


def test_a_stack_cycles_the_knob_settings_then_the_learning_rates_then_the_seeds_in_a_sweeps_order():
    from dataclasses import replace

    from mqarkit.gpu.frontier.presets import load_preset

    bench = _benchmark_module()
    (base,) = load_preset("based-fig2")
    based = replace(base, models=tuple(ModelConfig("based", 64, feature_dim=f) for f in (8, 16, 24)))
    runs = bench.stack_runs(based, 12)  # the preset's own stack: each feature dim at each learning rate
    assert [(r.model.knob_dict()["feature_dim"], r.lr, r.seed) for r in runs] == [
        (f, lr, 0) for f in (8, 16, 24) for lr in base.lrs
    ]  # a sweep's order: each model's runs together
    assert [r.run_id for r in runs] == [r.run_id for r in based.runs()]
    one = replace(base, models=(ModelConfig("attention", 64),))
    runs = bench.stack_runs(one, 6)  # the first two learning rates twice: with seeds 0 and 1, in a sweep's order
    lr0, lr1, lr2, lr3 = base.lrs
    assert [(r.lr, r.seed) for r in runs] == [(lr0, 0), (lr0, 1), (lr1, 0), (lr1, 1), (lr2, 0), (lr3, 0)]
    assert len({r.run_id for r in runs}) == 6


def test_target_mark_applies_to_stacked_rows_at_d64_on_the_full_data_only():
    bench = _benchmark_module()

    def row(path="stacked", d=64, rate=2.6):
        return {"path": path, "d_model": d, "model_epochs_per_s": rate}

    assert bench.target_mark(row(), 1.0) is True
    assert bench.target_mark(row(rate=2.4), 1.0) is False
    assert bench.target_mark(row(rate=2.5), 1.0) is True
    assert bench.target_mark(row(), 0.5) is None  # shrunken data: not the preset's epochs
    assert bench.target_mark(row(d=128), 1.0) is None
    assert bench.target_mark(row(path="generic"), 1.0) is None
    assert bench.target_mark(row(rate=None), 1.0) is None


def test_triton_cache_files_counts_the_cache_a_command_starts_with(tmp_path, monkeypatch):
    speed = _benchmark_module()
    cache = tmp_path / "triton"
    monkeypatch.setenv("TRITON_CACHE_DIR", str(cache))
    assert speed.triton_cache_files() == 0  # no folder yet: a cold start
    (cache / "a1").mkdir(parents=True)
    (cache / "a1" / "kernel.cubin").write_bytes(b"")
    (cache / "a1" / "kernel.json").write_text("{}")
    (cache / "b2").mkdir()
    (cache / "b2" / "autotune.json").write_text("{}")
    assert speed.triton_cache_files() == 3


def test_profile_in_the_families_mode_prints_each_measured_rows_kernels(tmp_path, capsys):
    report = _families_report(tmp_path, "--profile")
    measured = [r for r in report["rows"] if r["status"] == "measured"]
    assert [r["name"] for r in measured] == ["based", "attention", "reference:attention"]
    out = capsys.readouterr().out
    for family in ("based", "attention"):
        assert out.count(f"--- profile: {family} d=16 R=2 segment") == 2  # the shortest and the longest segment
    assert out.count("--- profile: evaluation") == len(measured) and "profile failed" not in out
    assert all(r["profile"] == {} for r in measured if r["path"] == "stacked")  # no CUDA kernels to sort on the CPU
    assert "Where the GPU time of a profiled row goes" not in (tmp_path / "frontier_speed_families.md").read_text()


def test_a_profiled_rows_kernel_kinds_reach_the_table():
    """A row's ``profile`` (GPU time by kernel kind per profiled phase, as measured on CUDA) is listed under the
    table, each phase's total and its shares."""
    bench = _benchmark_module()
    ms = dict.fromkeys(("fla", "mqarkit", "inductor", "matmul", "fft", "aten", "memcpy/memset", "other"), 0.0)
    row = {"name": "delta_net", "d_model": 64, "profile": {"train N=256": ms | {"aten": 270.0, "fla": 28.0}}}
    row["profile"]["train N=256"]["total"] = 298.0
    assert bench.profile_lines([row, {"name": "based", "d_model": 64}])[1:] == [
        "- delta_net d=64, train N=256: 298.0 ms: aten 91%, fla 9%"
    ]
    assert bench.profile_lines([{"name": "based", "d_model": 64, "profile": None}]) == []
