from __future__ import annotations

import numpy as np

from mqarkit.proofs_checks import errata_checks as ec
from mqarkit.proofs_checks.instances import IGNORE, clean_instances


def test_answer_sets_of_the_three_triple_counterexample() -> None:
    triples = ((1, 5, 0), (1, 6, 0), (0, 0, 1))
    assert ec.answer_sets(triples) == [set(), {5, 6}]


def test_causal_and_strict_lookups_solve_and_unmasked_reads_the_future() -> None:
    inputs, labels = clean_instances(66, 32, 4, 8, np.random.default_rng(1))
    q = labels != IGNORE
    assert (ec.onehot_lookup(inputs, 66, "causal")[q] == labels[q]).all()
    assert (ec.onehot_lookup(inputs, 66, "strict")[q] == labels[q]).all()
    assert (ec.onehot_lookup(inputs, 66, "none")[q] != labels[q]).any()


def test_e2_check_fails_when_the_causal_lookup_misses(monkeypatch: object) -> None:
    from mqarkit.proofs_checks.registry import CheckContext, budget

    real = ec.onehot_lookup
    broken = {"causal": "key<=t"}  # a "causal" lookup that also reads the pair after the query
    monkeypatch.setattr(ec, "onehot_lookup", lambda x, c, mask: real(x, c, broken.get(mask, mask)))  # type: ignore[attr-defined]
    out = ec.check_e2_mask(CheckContext(budget("default")))
    assert out.outcome == "failed" and out.counterexample["mask"] == "causal"


def test_autocorrelation_and_needed_lags() -> None:
    x = np.array([3, 9, 4, 8, 0, 0, 4, 0, 3, 0])
    assert ec.autocorrelation(x)[0] == 10
    assert ec.needed_lags(x, 2) == {4, 8}


def test_taylor_widths() -> None:
    import sympy as sp

    x = [sp.Integer(1)] * 16
    assert len(ec.taylor_feature_map(x, compressed=False)) == 273
    assert len(ec.taylor_feature_map(x, compressed=True)) == 153
