"""X3: the delta rule's capacity, ``D <= d_k`` exact and what happens beyond (issue 19, after the delta-rule
construction of U10).

Glossary (``mqarkit.constructions.delta_rule``): ``S`` the ``d_k x d_v`` state, ``beta = 1`` the write strength,
``S' = S + k^T (v - k S)`` a write, ``q S`` a read; ``K`` the ``D x d_k`` matrix of the keys written, ``V`` their
values.

U10's lemma: orthonormal keys (so ``D <= d_k``) are read back exactly whatever the write order. Beyond ``d_k``:

- **rank bound** (:func:`check_rank_bound`, exact over Q): every state is a ``d_k x d_v`` matrix, so the reads
  ``K S`` of any ``D`` keys have rank ``<= d_k``; ``D > d_k`` linearly independent values can therefore never all be
  read back, whatever the keys (orthonormal or not) and the order. Checked on random rational keys, values the rows
  of ``I_D``: the rank of the reads is computed exactly and is ``<= d_k < D``;
- **the last write survives** (:func:`check_last_write_exact`, exact over Q): for a unit key ``k`` (``k kᵀ = 1``), a
  write of ``(k, v)`` leaves ``k S' = k S + (k kᵀ)(v - k S) = v``, so the most recent pair is read exactly at any
  ``D``. Checked with sign-code keys ``±1/sqrt(d_k)`` (rational for ``d_k = 4, 16``) and ``D`` up to ``4 d_k``; how
  many of the earlier pairs are still exact is reported;
- **the capacity curve** (:func:`check_capacity_curve`, numeric, float64): with an argmax readout over one-hot values,
  orthonormal keys give recall 1 up to ``D = d_k``; ``D`` random unit keys beyond give a recall below 1 that falls
  as ``D/d_k`` grows (measured over 24 sequences per point, with standard errors).

The registered ``delta_rule`` construction uses one-hot keys, ``d_k = c``, and MQAR has ``D <= c/2 - 1`` distinct keys,
so it never leaves the exact regime; the curve is about the state, not about that construction.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from mqarkit.proofs_checks.delta_storage import run_writes
from mqarkit.proofs_checks.point_runner import run_points
from mqarkit.proofs_checks.registry import CheckContext, CheckOutcome, failed, passed
from mqarkit.tolerances import assert_close

SEED = 20241107
TRIALS = 24


def exact_rank(rows: np.ndarray) -> int:
    """Rank over Q of an object array of Fractions (Gaussian elimination)."""
    m = [[Fraction(x) for x in row] for row in rows]
    rank, cols = 0, len(m[0]) if m else 0
    for col in range(cols):
        pivot = next((r for r in range(rank, len(m)) if m[r][col] != 0), None)
        if pivot is None:
            continue
        m[rank], m[pivot] = m[pivot], m[rank]
        for r in range(len(m)):
            if r != rank and m[r][col] != 0:
                f = m[r][col] / m[rank][col]
                m[r] = [a - f * b for a, b in zip(m[r], m[rank])]
        rank += 1
    return rank


def _fractions(a: np.ndarray) -> np.ndarray:
    return np.vectorize(Fraction, otypes=[object])(a)


def check_rank_bound(ctx: CheckContext) -> CheckOutcome:
    """See the module docstring."""
    dims = (2, 3, 4, 6) + ((8,) if ctx.budget.full else ())
    points = [(dk, d) for dk in dims for d in (dk + 1, 2 * dk)]
    counts = {"sequences": 0}

    def step(point: tuple[int, int]) -> dict[str, Any] | None:
        dk, d = point
        rng = np.random.default_rng(SEED + 31 * dk + d)
        for _ in range(3):
            keys = _fractions(rng.integers(-3, 4, size=(d, dk)))
            values = _fractions(np.eye(d, dtype=np.int64))
            reads = run_writes(keys, values, np.arange(d))
            counts["sequences"] += 1
            rank = exact_rank(reads)
            if rank > dk or (reads == values).all():
                return {"d_k": dk, "D": d, "rank": rank, "keys": keys.astype(str).tolist()}
        return None

    ran, bad = run_points(points, step)
    covered = (
        f"exact over Q: {counts['sequences']} write sequences of D random rational keys in d_k dimensions, (d_k, D) in "
        f"{[list(p) for p in ran]}, values the rows of I_D: the reads have rank <= d_k < D, so they are not the values"
    )
    if bad is not None:
        return failed(covered, bad, "the reads of D > d_k keys have rank above d_k (or equal the values)")
    return passed(covered, **counts)


def check_last_write_exact(ctx: CheckContext) -> CheckOutcome:
    """See the module docstring."""
    points = [(dk, d) for dk in (4, 16) for d in (dk, 2 * dk, 4 * dk)]
    counts = {"sequences": 0, "earlier_exact": 0, "earlier": 0}

    def step(point: tuple[int, int]) -> dict[str, Any] | None:
        dk, d = point
        rng = np.random.default_rng(SEED + 7 * dk + d)
        scale = Fraction(1, int(round(dk**0.5)))  # 1/sqrt(d_k): rational for d_k = 4, 16
        for _ in range(2):
            signs = np.unique(rng.choice([-1, 1], size=(4 * d, dk)), axis=0)[:d]  # distinct sign codes
            keys = _fractions(signs) * scale
            values = _fractions(rng.integers(-5, 6, size=(len(keys), 3)))
            reads = run_writes(keys, values, np.arange(len(keys)))
            counts["sequences"] += 1
            counts["earlier"] += len(keys) - 1
            counts["earlier_exact"] += int((reads[:-1] == values[:-1]).all(axis=1).sum())
            if not (reads[-1] == values[-1]).all():
                return {"d_k": dk, "D": len(keys), "read": reads[-1].astype(str).tolist()}
        return None

    ran, bad = run_points(points, step)
    covered = (
        f"exact over Q: unit sign-code keys (+-1/sqrt(d_k)), (d_k, D) in {[list(p) for p in ran]}, "
        f"{counts['sequences']} sequences: the last write is read back exactly every time; of the earlier pairs "
        f"{counts['earlier_exact']} of {counts['earlier']} are"
    )
    if bad is not None:
        return failed(covered, bad, "the last write of a unit key is not read back exactly")
    return passed(covered, **counts)


def float_reads(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Write ``(keys[i], values[i])`` in order (beta = 1, float64, through ``mqarkit.polynomials.DeltaRule``), then
    read every key: ``(D, d_v)``."""
    from mqarkit.polynomials import DeltaRule, evaluate

    d, dk = keys.shape
    dv = values.shape[1]
    eye_k, zk = np.eye(dk), np.zeros((dk, dk))
    op = DeltaRule(wq=np.vstack([zk, eye_k, np.zeros((dv, dk))]), wk=np.vstack([eye_k, zk, np.zeros((dv, dk))]),
                   wv=np.vstack([np.zeros((2 * dk, dv)), np.eye(dv)]), beta=1)  # fmt: skip
    u = np.zeros((2 * d, 2 * dk + dv))
    u[:d, :dk], u[:d, 2 * dk :] = keys, values
    u[d:, dk : 2 * dk] = keys
    return np.asarray(evaluate(op, u, backend="float64"))[d:]


def check_capacity_curve(ctx: CheckContext) -> CheckOutcome:
    """See the module docstring."""
    dims = (16, 64) if ctx.budget.full else (16,)
    rows: list[dict[str, Any]] = []

    def step(dk: int) -> dict[str, Any] | None:
        rng = np.random.default_rng(SEED + dk)
        for d in (dk // 4, dk // 2, dk, 2 * dk, 4 * dk, 8 * dk):
            recall = []
            for _ in range(TRIALS):
                if d <= dk:  # orthonormal rows of a random orthogonal matrix
                    keys = np.linalg.qr(rng.normal(size=(dk, dk)))[0][:d]
                else:
                    g = rng.normal(size=(d, dk))
                    keys = g / np.linalg.norm(g, axis=1, keepdims=True)
                reads = float_reads(keys, np.eye(d))
                if d <= dk:
                    assert_close(reads, np.eye(d), context=f"orthonormal keys, d_k={dk}, D={d}")
                recall.append(float((reads.argmax(axis=1) == np.arange(d)).mean()))
            mean = float(np.mean(recall))
            se = float(np.std(recall, ddof=1) / np.sqrt(TRIALS))
            rows.append({"d_k": dk, "D": d, "D/d_k": d / dk, "keys": "orthonormal" if d <= dk else "random unit",
                         "recall": round(mean, 4), "se": round(se, 4)})  # fmt: skip
        beyond = [r for r in rows if r["d_k"] == dk and r["D"] > dk]
        inside = [r for r in rows if r["d_k"] == dk and r["D"] <= dk]
        if any(r["recall"] != 1.0 for r in inside):
            return {"d_k": dk, "rows": inside, "reason": "orthonormal keys missed a pair"}
        if any(a["recall"] <= b["recall"] for a, b in zip(beyond, beyond[1:])) or beyond[0]["recall"] >= 1.0:
            return {"d_k": dk, "rows": beyond, "reason": "recall beyond d_k is not below 1 and falling"}
        return None

    ran, bad = run_points(dims, step)
    text = "; ".join(f"d_k={r['d_k']}, D/d_k={r['D/d_k']:g}: {r['recall']:.3f} +- {r['se']:.3f}" for r in rows)
    covered = (
        f"float64, {TRIALS} write sequences per point, argmax over one-hot values: orthonormal keys recall every pair "
        f"(reads == values, assert_close) for D <= d_k; random unit keys beyond recall less, falling with D/d_k, at "
        f"d_k in {list(ran)}: {text}"
    )
    if bad is not None:
        return failed(covered, bad, bad["reason"], table=rows)
    return passed(covered, table=rows)
