"""U2 specific checks: the proven inverse temperature of ``attention_signcode`` and its tightness.

The construction (``mqarkit.constructions.attention_signcode``) proves: at ``beta >= sufficient_beta(N, m) =
(m/2) ln(4 max(N-2, 1))`` every query of a clean instance is read out correctly with margin
``>= guaranteed_margin(m) = 1/m`` (unit-code units: ``<o, c(v)> - max_{u != v} <o, c(u)>``); and below
``failure_beta(K, m) = (m/2) ln K`` the decoy instance of ``decoy_batch`` (``K`` one-bit decoy pairs before the last
query) is answered wrongly. Two numeric checks over a grid of ``(c, N, D)``:

- **sufficient beta**: on clean instances drawn by ``mqarkit.task`` *and* on the decoy instance (which is clean too),
  the measured margin at every query is ``>= 1/m`` (up to the float64 tolerance of ``mqarkit.tolerances``); the minimum
  measured margin and its ratio to ``1/m`` are reported;
- **tight below**: at ``beta = 0.9 failure_beta(K, m)`` a decoy instance's last query is answered wrongly (at each
  point some draw of ``decoy_batch`` fails; not every draw does, see :func:`check_decoy_fails_below`).

The margin is measured here from ``readout_scores`` (``(n, N, c)``), independently of the construction's own
``min_readout_margin``. ``beta_rule`` is injectable so that a test can feed a too-small ``beta`` and see ``failed``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mqarkit.proofs_checks.point_runner import run_points, size_ranges
from mqarkit.proofs_checks.registry import CheckContext, CheckOutcome, failed, passed
from mqarkit.tolerances import tolerance_for

SEED = 20240302
BELOW = 0.9  # the decoy check runs at BELOW * failure_beta(K, m)
DRAWS = 8  # decoy instances tried per point before the point counts as a counterexample


def points(full: bool) -> list[tuple[int, int, int]]:
    """``(c, N, D)`` with ``c > N`` (the task's rule) and ``N - 4D >= 4`` (at least 2 decoys), smallest first."""
    lengths = (16, 32, 64, 128, 256) if full else (16, 32, 64)
    out = []
    for n in lengths:
        for c in (2 * n + 2, 4 * n + 6):
            for d in sorted({1, n // 8}):
                out.append((c, n, d))
    return out


def query_margins(scores: np.ndarray, query_positions: np.ndarray, answers: np.ndarray) -> np.ndarray:
    """``scores`` (n, N, c), ``query_positions`` / ``answers`` (n, D) -> margins (n, D): the answer's score minus the
    best other token's score."""
    at = np.take_along_axis(scores, query_positions[..., None], axis=1)  # (n, D, c)
    right = np.take_along_axis(at, answers[..., None], axis=2)[..., 0]  # (n, D)
    others = at.copy()
    np.put_along_axis(others, answers[..., None], -np.inf, axis=2)
    return right - others.max(axis=2)


def check_sufficient_beta(
    ctx: CheckContext, beta_rule: Callable[[int, int], float] | None = None, examples: int | None = None
) -> CheckOutcome:
    from mqarkit.constructions import build
    from mqarkit.constructions.attention_signcode import decoy_batch, guaranteed_margin, sufficient_beta
    from mqarkit.oracle import expected_answers
    from mqarkit.task import MQARSpec, generate

    rule = sufficient_beta if beta_rule is None else beta_rule
    n_ex = examples or (32 if ctx.budget.full else 12)
    tol = tolerance_for("float64")
    stats = {"queries": 0, "min_ratio": np.inf, "min_margin": np.inf}

    def step(point: tuple[int, int, int]) -> dict | None:
        c, n, d = point
        rng = np.random.default_rng(SEED + c * 1000 + n + d)
        spec = MQARSpec(c, n, d, filler="clean")
        m = build("attention_signcode", vocab_size=c, seq_len=n, num_kv_pairs=d).code_width
        beta = float(rule(n, m))
        con = build(
            "attention_signcode", vocab_size=c, seq_len=n, num_kv_pairs=d, beta=beta, outside_claimed_range=True
        )  # an injected beta_rule may go below the proven bound
        decoy, _ = decoy_batch(spec, m, rng)
        for batch, kind in ((generate(spec, n_ex, rng), "clean"), (decoy, "decoy")):
            answers = np.take_along_axis(expected_answers(batch), batch.query_positions, axis=1)
            margins = query_margins(con.readout_scores(batch.inputs), batch.query_positions, answers)
            stats["queries"] += margins.size
            low = float(margins.min())
            stats["min_margin"] = min(stats["min_margin"], low)
            stats["min_ratio"] = min(stats["min_ratio"], low * m)  # margin / guaranteed (1/m)
            need = guaranteed_margin(m)
            if low < need - (tol.atol + tol.rtol * need):
                r, j = (int(v) for v in np.argwhere(margins == low)[0])
                return {
                    "vocab_size": c, "seq_len": n, "num_kv_pairs": d, "code_width": m, "beta": beta, "instance": kind,
                    "inputs": batch.inputs[r].tolist(), "query_position": int(batch.query_positions[r, j]),
                    "margin": low, "guaranteed_margin": need,
                }  # fmt: skip
        return None

    ran, bad = run_points(points(ctx.budget.full), step)
    covered = (
        f"{len(ran)} (c, N, D) points, {size_ranges(ran)}: "
        f"{stats['queries']} queries of {n_ex} clean instances + 1 decoy instance per point at beta = "
        f"{'sufficient_beta(N, m)' if beta_rule is None else 'beta_rule(N, m)'}; minimum measured margin "
        f"{stats['min_margin']:.4g} = {stats['min_ratio']:.3f} x guaranteed 1/m"
    )
    if bad is not None:
        return failed(covered, bad, "a query's readout margin is below the guaranteed 1/m")
    return passed(covered, min_margin=stats["min_margin"], min_margin_over_guaranteed=stats["min_ratio"])


def check_decoy_fails_below(ctx: CheckContext, factor: float = BELOW, draws: int = DRAWS) -> CheckOutcome:
    """Tightness as theory.md 4.2 asks it: at every point, *some* decoy instance fails at ``factor x failure_beta``.

    Up to ``draws`` decoy instances are drawn per point (stopping at the first failure); the point fails when none is
    answered wrongly. Not every decoy instance fails there: the other visible pairs also weigh about
    ``e^{-2 beta/m}`` at such small ``beta`` and their values can side with the answer on the one bit where the decoy
    value differs, so the count of draws that did not fail is reported next to the ones that did."""
    from mqarkit.constructions import build
    from mqarkit.constructions.attention_signcode import decoy_batch, failure_beta, sufficient_beta
    from mqarkit.oracle import expected_answers
    from mqarkit.task import MQARSpec

    rows: list[dict] = []

    def step(point: tuple[int, int, int]) -> dict | None:
        c, n, d = point
        rng = np.random.default_rng(SEED + 17 + c * 1000 + n + d)
        spec = MQARSpec(c, n, d, filler="clean")
        m = build("attention_signcode", vocab_size=c, seq_len=n, num_kv_pairs=d).code_width
        for tried in range(1, draws + 1):
            batch, k = decoy_batch(spec, m, rng)
            beta = factor * failure_beta(k, m)
            con = build(
                "attention_signcode", vocab_size=c, seq_len=n, num_kv_pairs=d, beta=beta, outside_claimed_range=True
            )  # below the proven bound on purpose
            last = batch.query_positions[0, -1]  # the decoyed query (position N - 2)
            predicted = int(con.predict(batch.inputs)[0, last])
            if predicted != int(expected_answers(batch)[0, last]):
                rows.append({
                    "c": c, "N": n, "D": d, "K": k, "m": m, "beta": beta, "draws_tried": tried,
                    "sufficient_over_failure": sufficient_beta(n, m) / failure_beta(k, m),
                })  # fmt: skip
                return None
        return {
            "vocab_size": c, "seq_len": n, "num_kv_pairs": d, "decoys": k, "beta": beta, "draws": draws,
            "inputs": batch.inputs[0].tolist(), "query_position": int(last), "predicted": predicted,
        }  # fmt: skip

    ran, bad = run_points(points(ctx.budget.full), step)
    ns = [p[1] for p in ran]
    solved = sum(r["draws_tried"] - 1 for r in rows)
    ratios = [r["sufficient_over_failure"] for r in rows] or [float("nan")]
    covered = (
        f"{len(ran)} (c, N, D) points, N {min(ns)}..{max(ns)}, K = (N - 4D)/2 decoys, at beta = {factor} x "
        f"failure_beta(K, m) = {factor} (m/2) ln K: a decoy instance answered wrongly at {len(rows)} of them "
        f"({solved} other decoy draws were still solved); sufficient_beta / failure_beta there "
        f"{min(ratios):.2f}..{max(ratios):.2f}"
    )
    if bad is not None:
        return failed(covered, bad, f"no decoy instance of {draws} fails at {factor} x failure_beta: not tight there")
    return passed(covered, rows=rows, decoys_still_solved=solved)
