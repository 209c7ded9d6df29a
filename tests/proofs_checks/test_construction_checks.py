"""The generic construction checks, run against fake constructions injected in place of ``build``."""

from __future__ import annotations

import numpy as np
import pytest

import mqarkit.constructions as constructions
from mqarkit.constructions import Resources
from mqarkit.proofs_checks import construction_checks as cc
from mqarkit.proofs_checks.instances import IGNORE, clean_instances
from mqarkit.proofs_checks.registry import CheckContext, budget


class OracleModel:
    """Answers each query by looking back for the key (causal), optionally wrong at one query."""

    def __init__(self, vocab_size: int, seq_len: int, num_kv_pairs: int, wrong: bool = False) -> None:
        self.d, self.wrong = num_kv_pairs, wrong

    def predict(self, inputs: np.ndarray, backend: str = "float64") -> np.ndarray:
        out = np.zeros_like(inputs)
        for r, x in enumerate(inputs):
            first = True
            for i in range(len(x)):
                prev = [j for j in range(0, min(2 * self.d, i), 2) if x[j] == x[i]]
                out[r, i] = x[prev[0] + 1] if prev and i >= 2 * self.d else 0
                if prev and i >= 2 * self.d and self.wrong and first:  # wrong at the first query: still causal
                    out[r, i] += 1
                    first = False
        return out

    def resources(self) -> object:
        claimed = Resources(layers=2, width=4, parameters=8, state_numbers=self.d)
        measured = Resources(layers=2, width=4, parameters=8 if not self.wrong else 9, state_numbers=self.d)
        return constructions.ResourceReport(claimed=claimed, measured=measured)


def _fake_build(wrong: bool):
    def build(name: str, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: object) -> OracleModel:
        if seq_len > 16:
            raise ValueError(f"seq_len={seq_len}: fake is claimed for seq_len <= 16")
        return OracleModel(vocab_size, seq_len, num_kv_pairs, wrong)

    return build


def _fake_cost(name: str, knobs: dict, point: tuple[int, int, int], backend: str) -> int:
    if point[1] > 16:
        raise ValueError(f"seq_len={point[1]}: fake is claimed for seq_len <= 16")
    return 1


@pytest.mark.parametrize("wrong", [False, True])
def test_solves_and_resources_checks(monkeypatch: pytest.MonkeyPatch, wrong: bool) -> None:
    monkeypatch.setattr(constructions, "build", _fake_build(wrong))
    monkeypatch.setattr(cc, "point_cost", _fake_cost)
    ctx = CheckContext(budget=budget("default"))
    solves = cc.check_solves("fake", ctx)
    res = cc.check_resources("fake", CheckContext(budget=budget("default")))
    causal = cc.check_causal("fake", CheckContext(budget=budget("default")))
    assert causal.outcome == "passed"
    if wrong:
        assert solves.outcome == "failed"
        assert solves.counterexample["predicted"] == solves.counterexample["expected"] + 1
        assert res.outcome == "failed"
        assert res.counterexample["mismatches"] == {"parameters": {"claimed": 8, "measured": 9}}
    else:
        assert solves.outcome == "passed"
        assert "N 8..16" in solves.covered  # only points the fake accepts ran
        assert solves.details["skipped"] > 0
        assert res.outcome == "passed"


def test_no_point_in_range_is_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(name: str, knobs: dict, point: tuple[int, int, int], backend: str) -> int:
        raise ValueError("vocab_size: never")

    monkeypatch.setattr(cc, "point_cost", refuse)
    out = cc.check_resources("fake", CheckContext(budget=budget("default")))
    assert out.outcome == "not_run"


def test_points_above_the_cost_limit_do_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constructions, "build", _fake_build(False))
    monkeypatch.setattr(cc, "point_cost", lambda name, knobs, point, backend: 10**12 if point[1] > 8 else 1)
    out = cc.check_solves("fake", CheckContext(budget=budget("default")))
    assert out.outcome == "passed" and "N 8..8" in out.covered


def test_based_taylor_is_checked_on_the_filler_it_claims() -> None:
    out = cc.check_solves("based_taylor", CheckContext(budget=budget("default")))
    assert out.outcome == "passed" and "zero-filler instances" in out.covered
    assert cc.CHECK_FILLERS == {"based_taylor": "zero"}


def test_the_grid_and_the_variants_are_fixed_by_the_budget() -> None:
    assert cc.grid(budget("default")) == cc.grid(budget("default"))
    assert max(n for _, n, _ in cc.grid(budget("full"))) > max(n for _, n, _ in cc.grid(budget("default")))
    assert cc.variants_of("baseconv_data_independent") == [{}, {"gate": "shared"}]
    assert cc.variant_label("x", {"b": 1, "a": 2}) == "x[a=2,b=1]"
    names = [c.name for c in cc.construction_checks("U3")]
    assert "baseconv_input_dependent[broadcast=factored]:solves" in names
    assert "attention_signcode:solves-exact" not in [c.name for c in cc.construction_checks("U2")]


def test_clean_instances_follow_the_layout() -> None:
    inputs, labels = clean_instances(34, 16, 4, 5, np.random.default_rng(0))
    keys, values = inputs[:, 0:8:2], inputs[:, 1:8:2]
    assert ((keys >= 1) & (keys < 17)).all() and ((values >= 17) & (values < 34)).all()
    assert ((labels != IGNORE).sum(axis=1) == 4).all()
    with pytest.raises(ValueError, match="num_kv_pairs"):
        clean_instances(34, 16, 5, 1, np.random.default_rng(0))
