"""A run whose loss stops being finite is recorded as diverged, with its epoch and last finite loss, and stops alone:
its stack-mates train exactly as they would without it (CPU, a divergence forced by a huge learning rate)."""

from __future__ import annotations

from mqarkit.gpu.frontier import get_preset, read_records, run
from mqarkit.gpu.frontier.records import RECORD_STATUSES
from mqarkit.gpu.frontier.stats import summarise
from mqarkit.tolerances import assert_close

HUGE = 1e30  # parameters of 1e30 overflow the products: the loss becomes inf - inf = NaN within the first epoch


def test_a_diverged_run_is_recorded_and_its_stack_mates_train_on(tmp_path):
    both, alone = tmp_path / "both.jsonl", tmp_path / "alone.jsonl"
    with_huge = get_preset("tiny", epochs=2, lrs=(0.01, HUGE), families=("based",))
    assert run(with_huge, both, "cpu", log=lambda s: None) == 4
    assert run(get_preset("tiny", epochs=2, lrs=(0.01,), families=("based",)), alone, "cpu", log=lambda s: None) == 2
    records = {r["run_id"]: r for r in read_records(both, statuses=RECORD_STATUSES)}
    diverged = [r for r in records.values() if r["lr"] == HUGE]
    assert len(diverged) == 2 and all(r["status"] == "diverged" for r in diverged)
    assert {r["diverged_at_epoch"] for r in diverged} == {1} and {r["last_finite_loss"] for r in diverged} == {None}
    assert read_records(both) == [r for r in records.values() if r["status"] == "finished"]  # results: finished only
    for r in read_records(alone):  # the same runs, trained without the diverging stack-mates: the same numbers
        mate = records[r["run_id"]]
        assert mate["status"] == "finished" and mate["diverged_at_epoch"] is None
        assert_close(mate["loss_history"], r["loss_history"], dtype="float32", context=r["run_id"])
        assert mate["last_finite_loss"] == mate["loss_history"][-1]
        assert mate["history"] == r["history"]
    # left out of a configuration's choice, and counted
    results = summarise(records.values())
    assert {r.lr for r in results} == {0.01} and {r.diverged for r in results} == {1}
    # a rerun counts diverged runs as done
    assert (
        run(get_preset("tiny", epochs=2, lrs=(0.01, HUGE), families=("based",)), both, "cpu", log=lambda s: None) == 0
    )
