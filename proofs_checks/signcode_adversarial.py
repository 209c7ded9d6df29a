"""U2 at its worst: the adversarial instance family of ``attention_signcode`` drives the readout margin to its analytic
minimum, and the margin still clears the proven bound, in float64 and in float32.

The construction proves a margin ``>= 1/m`` at ``beta* = sufficient_beta(N, m)`` and, sharper, that no clean instance
of even length ``N`` does worse than ``worst_case_margin(N, m, beta*) = (2/m)(1 - r)/(1 + r)``,
``r = (N - 4)/(4(N - 2)) + e^{-beta*}`` (strict mask; ``N - 3`` and ``4(N - 1)`` causal), which decreases towards
``1.2/m`` as ``N`` grows. ``worst_case_batch`` attains it (derivations in the construction's docstring). Per
``(c = 2^m, N)`` of a fixed grid reaching ``N = 1024`` (``4096`` on full) and per mask:

- the construction's float64 margin on the family's query (``readout_scores`` through the IR) ``==`` the formula
  (``assert_close``, float64) and is ``>= 1/m``; the family is a valid clean instance (the oracle answers it and flags
  no ambiguous query);
- the same lookup evaluated in float32 (:func:`lookup_scores`, NumPy, the construction's own weights; in float64 it is
  checked equal to the IR) gives a margin within the float32 tolerance of the float64 one and ``>= 1/m`` (the
  margin is the quantity claimed; other scores near 0 carry absolute rounding of order ``sqrt(N)·2^-24``);
- random clean instances (16 per point, at the points with ``c·N <= 2^18``) never go below the family's margin (it is
  the minimum).

The bf16 run of the same family on a GPU is ``benchmarks/u2_margin_gpu.py`` (torch), results in ``docs/results/``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mqarkit.proofs_checks.point_runner import run_points
from mqarkit.proofs_checks.registry import CheckContext, CheckOutcome, failed, passed
from mqarkit.tolerances import assert_close

SEED = 20240317
MASKS = ("strict", "causal")
RANDOM_MAX_CELLS = 2**18  # random instances (16 per point) only where c * N is at most this: the scores are (N, c)


def adversarial_points(full: bool) -> list[tuple[int, int]]:
    """``(c, N)`` with ``c = 2^m > N``, ``N`` even; ``m`` from 5 to 13 (and 16 on full)."""
    pts = [(32, 16), (64, 32), (128, 64), (256, 128), (1024, 256), (2048, 512), (8192, 1024)]
    return pts + ([(65536, 2048), (65536, 4096)] if full else [])


def lookup_scores(con: Any, inputs: np.ndarray, dtype: type, rows: list[int] | None = None) -> np.ndarray:
    """The lookup and readout of ``attention_signcode`` (conv shift) evaluated in ``dtype`` with NumPy:
    ``inputs`` (n, N) -> readout scores (n, R, c) in unit-code units at the query positions ``rows`` (every position
    when ``None``, R = N), computed in ``dtype`` throughout."""
    op = con.model.layers[1].op  # the lookup: SoftmaxAttention on [token; prev_token]
    book = con.codebook().astype(dtype)  # (c, m)
    m = book.shape[1]
    token = book[inputs]  # (n, N, m)
    prev = np.zeros_like(token)
    prev[:, 1:] = token[:, :-1]  # the conv shift h = X^1
    stream = np.concatenate([token, prev], axis=-1)  # (n, N, 2m)
    n_pos = inputs.shape[1]
    t = np.arange(n_pos) if rows is None else np.asarray(rows)
    q = stream[:, t] @ np.asarray(op.wq, dtype=dtype)  # (n, R, m)
    k = stream @ np.asarray(op.wk, dtype=dtype)
    v = stream @ np.asarray(op.wv, dtype=dtype)
    logits = dtype(op.beta) * (q @ np.swapaxes(k, -1, -2))  # (n, R, N)
    s = np.arange(n_pos)[None, :]
    allowed = s < t[:, None] if op.mask == "strict" else s <= t[:, None]
    logits = np.where(allowed, logits, dtype(-np.inf))
    top = np.max(logits, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, dtype(0))
    weights = np.where(allowed, np.exp(logits - top), dtype(0))
    total = weights.sum(axis=-1, keepdims=True)
    probs = np.where(total > 0, weights / np.where(total > 0, total, dtype(1)), dtype(0))
    out = probs @ v  # (n, R, m)
    return (out @ book.T) / dtype(m)


def query_margin(scores: np.ndarray, position: int, answer: int) -> float:
    """``scores`` (N, c): the answer's score minus the best other token's, at ``position``."""
    row = np.asarray(scores[position], dtype=np.float64)
    others = np.delete(row, answer)
    return float(row[answer] - others.max())


def check_worst_case_margin(
    ctx: CheckContext, margin_rule: Callable[[int, int, float, str], float] | None = None
) -> CheckOutcome:
    """See the module docstring. ``margin_rule`` replaces ``worst_case_margin`` (a test passes a wrong one)."""
    from mqarkit.constructions import build
    from mqarkit.constructions._attention_ir import lookup_block
    from mqarkit.constructions.attention_signcode import (
        guaranteed_margin,
        sufficient_beta,
        worst_case_batch,
        worst_case_margin,
    )
    from mqarkit.oracle import ambiguous_queries, expected_answers
    from mqarkit.task import MQARSpec, generate

    rule = worst_case_margin if margin_rule is None else margin_rule
    rows: list[dict[str, Any]] = []
    random_min = {"ratio": np.inf, "queries": 0}

    def step(point: tuple[int, int]) -> dict[str, Any] | None:
        c, n = point
        m = (c - 1).bit_length()
        spec = MQARSpec(c, n, 1, filler="clean")
        for mask in MASKS:
            beta = sufficient_beta(n, m, mask=mask)
            con = build("attention_signcode", vocab_size=c, seq_len=n, num_kv_pairs=1, mask=mask)
            batch = worst_case_batch(spec, mask)
            t = int(batch.query_positions[0, 0])
            answer = int(expected_answers(batch)[0, t])
            if ambiguous_queries(batch).any() or answer != int(batch.labels[0, t]):
                return {"c": c, "N": n, "mask": mask, "reason": "the family is not a valid clean instance"}
            book = con.codebook()
            lookup = lookup_block(con.model, batch.inputs, book, "float64")[0, t]  # (m,) through the IR
            f64 = (lookup @ book.T / con.code_width)[None]  # (1, c): the query's readout scores
            f32 = lookup_scores(con, batch.inputs, np.float32, [t])[0]
            assert_close(lookup_scores(con, batch.inputs, np.float64, [t])[0], f64, context="NumPy lookup vs the IR")
            got, got32 = query_margin(f64, 0, answer), query_margin(f32, 0, answer)
            want = rule(n, m, beta, mask)
            row = {"c": c, "N": n, "m": m, "mask": mask, "beta": round(beta, 6),
                   "margin_x_m": round(got * m, 6), "margin32_x_m": round(got32 * m, 6),
                   "formula_x_m": round(want * m, 6), "proven_x_m": 1.0}  # fmt: skip
            rows.append(row)
            try:
                assert_close(got, want, context=f"family margin vs worst_case_margin, c={c}, N={n}, {mask}")
                assert_close(got32, got, dtype="float32", context=f"float32 margin, c={c}, N={n}, {mask}")
            except AssertionError as err:
                return {**row, "reason": str(err)[:300]}
            if min(got, got32) < guaranteed_margin(m):
                return {**row, "reason": "the family's margin is below the proven 1/m"}
        if c * n > RANDOM_MAX_CELLS:
            return None
        rng = np.random.default_rng(SEED + c + n)
        con = build("attention_signcode", vocab_size=c, seq_len=n, num_kv_pairs=1)
        randoms = generate(spec, 16, rng)
        scores = con.readout_scores(randoms.inputs)
        answers = expected_answers(randoms)
        for r, t in enumerate(randoms.query_positions[:, 0]):
            low = query_margin(scores[r], int(t), int(answers[r, t]))
            random_min["ratio"] = min(random_min["ratio"], low * m)
            random_min["queries"] += 1
            if low < worst_case_margin(n, m, sufficient_beta(n, m)) - 1e-12:
                return {"c": c, "N": n, "inputs": randoms.inputs[r].tolist(), "margin": low,
                        "reason": "a random clean instance has a smaller margin than the family"}  # fmt: skip
        return None

    ran, bad = run_points(adversarial_points(ctx.budget.full), step)
    strict = [r for r in rows if r["mask"] == "strict"]
    lowest = min(rows, key=lambda r: r["margin_x_m"]) if rows else {}
    covered = (
        f"attention_signcode at beta* on the adversarial family, {len(ran)} (c = 2^m, N) points, N "
        f"{min(p[1] for p in ran)}..{max(p[1] for p in ran)}, m {min(r['m'] for r in rows)}.."
        f"{max(r['m'] for r in rows)}, strict and causal masks: float64 margin == worst_case_margin, float32 margin "
        f"within the float32 tolerance of it; "
        f"smallest margin achieved {lowest.get('margin_x_m')}/m (float32 {lowest.get('margin32_x_m')}/m) at "
        f"(c={lowest.get('c')}, N={lowest.get('N')}, {lowest.get('mask')}) against the proven 1/m and the analytic "
        f"infimum 1.2/m (strict margins x m: {[r['margin_x_m'] for r in strict]}); {random_min['queries']} random "
        f"clean queries never below the family (their smallest {random_min['ratio']:.4f}/m)"
    )
    if bad is not None:
        return failed(covered, bad, bad.get("reason", "adversarial margin check failed"), table=rows)
    return passed(covered, table=rows)
