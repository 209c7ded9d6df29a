"""``max_stack_runs``: a group of runs cut into stacks of at most that many, in the sweep's order, the same cut
whichever runs are left to train; every run trained once, with the batches it gets in the whole stack; not a
reduction (no note), recorded; refused on one line where it is not an integer >= 1 (CLI, sweep file, config)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from mqarkit.gpu.frontier import get_preset, read_records, run_sweeps
from mqarkit.gpu.frontier.cli import main as frontier_main
from mqarkit.gpu.frontier.sweep import groups
from mqarkit.gpu.frontier.sweep_file import SweepFileError, load_sweep_file
from mqarkit.tolerances import assert_close


def _based(**changes):
    (sweep,) = get_preset("tiny", epochs=1, families=("based",))
    return replace(sweep, **changes)


def test_a_group_is_cut_in_the_sweeps_order_and_the_cut_does_not_move():
    whole = _based()
    (group,) = groups(whole)
    assert len(group) == 4 and group == whole.runs()
    cut = groups(replace(whole, max_stack_runs=3))
    assert cut == [group[:3], group[3:]]  # consecutive, the last one the rest
    assert groups(replace(whole, max_stack_runs=1)) == [[run] for run in group]
    assert groups(replace(whole, max_stack_runs=4)) == groups(replace(whole, max_stack_runs=9)) == [group]
    # the first stack recorded, one run of the second too: the rest keep their stacks (an interrupted stack resumes
    # as itself), not re-cut from the runs left
    left = {r.run_id for r in group[1:]}
    assert groups(replace(whole, max_stack_runs=3), left) == [group[1:3], group[3:]]
    assert groups(replace(whole, max_stack_runs=3), set()) == []


def test_groups_come_in_the_order_the_sweep_lists_their_models():
    from mqarkit.gpu.frontier.config import ModelConfig

    (base,) = get_preset("tiny", epochs=1)
    models = (ModelConfig("sliding_window", 32, window=4), ModelConfig("attention", 32), ModelConfig("based", 16))
    sweep = replace(base, models=models)
    assert [stack[0].model.family for stack in groups(sweep)] == ["sliding_window", "attention", "based"]
    flipped = replace(base, models=models[::-1])
    assert [stack[0].model.family for stack in groups(flipped)] == ["based", "attention", "sliding_window"]


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "4"])
def test_a_bad_max_stack_runs_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match=r"max_stack_runs=.*: needs an integer >= 1"):
        _based(max_stack_runs=bad).validate()


def test_stacks_of_one_run_train_every_run_as_the_whole_stack_does(tmp_path):
    """Four runs of one group, as one stack and as four: the same runs recorded, no note (not a reduction), each
    record saying its stack's size and the cut; each run's losses as in the whole stack (the same batches: the batch
    order is the group's), up to float32 rounding."""
    whole, single = tmp_path / "whole.jsonl", tmp_path / "single.jsonl"
    assert run_sweeps([_based()], whole, "cpu", log=lambda s: None) == 4
    assert run_sweeps([_based(max_stack_runs=1)], single, "cpu", log=lambda s: None) == 4
    together = {r["run_id"]: r for r in read_records(whole)}
    alone = {r["run_id"]: r for r in read_records(single)}
    assert together.keys() == alone.keys()
    for run_id, record in alone.items():
        assert (record["stack_size"], record["max_stack_runs"]) == (1, 1)
        assert (together[run_id]["stack_size"], together[run_id]["max_stack_runs"]) == (4, None)
        assert record["notes"] == together[run_id]["notes"]
        assert_close(
            torch.tensor(record["loss_history"]),
            torch.tensor(together[run_id]["loss_history"]),
            dtype="float32",
            context=f"{run_id}: losses alone against in the whole stack",
        )


def test_the_cli_cuts_the_stacks_and_refuses_a_bad_count(tmp_path, capsys):
    argv = ["run", "--preset", "tiny", "--families", "based", "--epochs", "1", "--out", str(tmp_path / "r.jsonl")]
    assert frontier_main([*argv, "--dry-run", "--max-stack-runs", "3"]) == 0
    (plan,) = json.loads(capsys.readouterr().out)
    assert (plan["runs"], plan["groups"]) == (4, 2)
    for bad in ("0", "-1"):
        assert frontier_main([*argv, "--max-stack-runs", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"max_stack_runs={bad}: needs an integer >= 1" in err
    assert not (tmp_path / "r.jsonl").exists()


def test_a_sweep_file_may_cut_its_stacks(tmp_path):
    text = """
name = "cut"
vocab_size = 64
epochs = 1
lrs = [0.003, 0.01, 0.03]
batch_size = 8
test_batch_size = 8
max_stack_runs = {value}

[[train]]
seq_len = 16
num_kv_pairs = 2
num_examples = 32

[[test]]
seq_len = 16
num_kv_pairs = 2
num_examples = 16

[[models]]
family = "attention"
d_model = 16
"""
    path = tmp_path / "cut.toml"
    path.write_text(text.format(value=2))
    (sweep,) = load_sweep_file(path)
    assert sweep.max_stack_runs == 2 and [len(s) for s in groups(sweep)] == [2, 1]
    path.write_text(text.format(value=0))
    with pytest.raises(SweepFileError, match=r"max_stack_runs=0: needs an integer >= 1"):
        load_sweep_file(path)


def test_a_dry_run_over_a_results_file_counts_the_runs_left_per_model(tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    argv = ["run", "--preset", "tiny", "--epochs", "1", "--out", str(out), "--device", "cpu", "--no-progress"]
    assert frontier_main([*argv, "--families", "based"]) == 0
    capsys.readouterr()
    with out.open("a") as f:  # a line that is no record: kept, reported, and not counted as a run done
        f.write("not a record\n")
    with pytest.warns(UserWarning, match="1 lines are not records"):
        assert frontier_main([*argv, "--families", "based", "mamba2", "--dry-run"]) == 0
    (plan,) = json.loads(capsys.readouterr().out)
    planned = {model: counts["planned"] for model, counts in plan["models"].items()}
    assert sum(planned.values()) == plan["runs"] and all(n > 0 for n in planned.values())
    assert {model: counts["left"] for model, counts in plan["models"].items()} == {
        model: (0 if model.startswith("based ") else n) for model, n in planned.items()
    }
    assert plan["left"] == sum(n for model, n in planned.items() if model.startswith("mamba2 "))
    assert "not a record" in out.read_text()


def test_a_dry_run_without_a_results_file_plans_only(tmp_path, capsys):
    out = tmp_path / "none.jsonl"
    argv = ["run", "--preset", "tiny", "--families", "based", "--out", str(out), "--dry-run"]
    assert frontier_main(argv) == 0
    (plan,) = json.loads(capsys.readouterr().out)
    assert "left" not in plan and "models" not in plan and not out.exists()


def test_a_dry_run_counts_the_training_tokens_at_the_budget(tmp_path, capsys):
    text = """
name = "tokens"
vocab_size = 64
epochs = 3
lrs = [0.003, 0.01]
seeds = [0, 1]
train = [{seq_len = 16, num_kv_pairs = 2, num_examples = 10}, {seq_len = 32, num_kv_pairs = 4, num_examples = 5}]
test = [{seq_len = 16, num_kv_pairs = 2, num_examples = 4}]
[[models]]
family = "attention"
d_model = 16
"""
    sweep = tmp_path / "tokens.toml"
    sweep.write_text(text)
    assert frontier_main(["run", "--sweep", str(sweep), "--out", str(tmp_path / "r.jsonl"), "--dry-run"]) == 0
    (plan,) = json.loads(capsys.readouterr().out)
    # 4 runs (2 learning rates x 2 seeds) x 3 epochs x (10 x 16 + 5 x 32 tokens an epoch)
    assert plan["runs"] == 4 and plan["training_tokens"] == 4 * 3 * 320
