"""U8 specific checks: the exact recall set and the expected accuracy of ``sliding_window``.

The construction (``mqarkit.constructions.sliding_window``) states two things about a window of width ``w``:

- **recall set** (exact): on zero / clean filler, the prediction at a query is correct *exactly* at the queries that
  ``recalled(batch, w)`` marks (``t - s* <= w - 1``, ``s*`` the last-pass value position). Checked query by query for
  several windows per size (``1``, around ``2D``, ``N/4``, ``N/2``, ``N - 1``, ``N``), not only ``w = N``, on batches
  drawn by ``mqarkit.task`` with short-gap (``a = 0.01``) and uniform (``a = 1``) gap laws;
- **expected accuracy** (Monte Carlo): at 12 random settings ``(N, D, power_a, w)`` (30 on full; drawn from a fixed
  seed), at least 20,000 queries in all (100,000 on full), the construction's measured accuracy against
  ``expected_accuracy(spec, w)``, with the z-score of the difference (example-level standard error); every ``|z|``
  must be at most ``Z_MAX = 4`` (where every example scores the same, the two must agree to the prediction's stated
  accuracy, ``RANK_TOLERANCE``), and the pooled error and its z-score are reported.

:func:`wilson_interval` (the 99.9% Wilson score interval, ``z = 3.2905``) stays for the other binomial checks.

``recall_rule`` / ``accuracy_rule`` are injectable so that a test can feed a wrong window and see ``failed``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from mqarkit.proofs_checks.point_runner import run_points
from mqarkit.proofs_checks.registry import CheckContext, CheckOutcome, failed, passed

SEED = 20240308
Z_999 = 3.2905  # two-sided 99.9% normal quantile


def wilson_interval(successes: int, trials: int, z: float = Z_999) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``successes / trials``."""
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"successes={successes}, trials={trials}: need trials >= 1 and 0 <= successes <= trials")
    p, n = successes / trials, trials
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def windows_for(seq_len: int, num_kv_pairs: int) -> list[int]:
    n, d = seq_len, num_kv_pairs
    return sorted({1, max(1, 2 * d - 1), 2 * d + 1, n // 4, n // 2, n - 1, n})


def recall_points(full: bool) -> list[tuple[int, int, float, str]]:
    """``(N, D, power_a, filler)``, smallest first."""
    lengths = (16, 32, 64, 128) if full else (16, 32, 64)
    return [(n, d, a, f) for n in lengths for d in sorted({1, n // 8}) for a, f in ((0.01, "zero"), (1.0, "clean"))]


def check_recall_set(ctx: CheckContext, recall_rule: Callable[[Any, int], np.ndarray] | None = None) -> CheckOutcome:
    from mqarkit.constructions import build
    from mqarkit.constructions.sliding_window import recalled
    from mqarkit.oracle import expected_answers
    from mqarkit.task import MQARSpec, generate

    rule = recalled if recall_rule is None else recall_rule
    n_ex = 24 if ctx.budget.full else 8
    counts = {"queries": 0, "recalled": 0, "missed": 0, "windows": 0}

    def step(point: tuple[int, int, float, str]) -> dict | None:
        n, d, a, filler = point
        spec = MQARSpec(n + 2, n, d, power_a=a, filler=filler)
        batch = generate(spec, n_ex, np.random.default_rng(SEED + 31 * n + d + int(a)))
        answers = np.take_along_axis(expected_answers(batch), batch.query_positions, axis=1)  # (n_ex, D)
        for w in windows_for(n, d):
            con = build("sliding_window", vocab_size=n + 2, seq_len=n, num_kv_pairs=d, window=w)
            pred = np.take_along_axis(con.predict(batch.inputs), batch.query_positions, axis=1)
            marked = np.asarray(rule(batch, w), dtype=bool)
            correct = pred == answers
            counts["windows"] += 1
            counts["queries"] += correct.size
            counts["recalled"] += int(correct.sum())
            counts["missed"] += int((~correct).sum())
            diff = np.argwhere(correct != marked)
            if len(diff):
                r, j = (int(v) for v in diff[0])
                return {
                    "seq_len": n, "num_kv_pairs": d, "power_a": a, "filler": filler, "window": w,
                    "inputs": batch.inputs[r].tolist(), "query_position": int(batch.query_positions[r, j]),
                    "predicted": int(pred[r, j]), "expected": int(answers[r, j]), "marked_recalled": bool(marked[r, j]),
                }  # fmt: skip
        return None

    ran, bad = run_points(recall_points(ctx.budget.full), step)
    ns = [p[0] for p in ran]
    covered = (
        f"{counts['queries']} (query, window) pairs over {counts['windows']} windows (1, ~2D, N/4, N/2, N-1, N) at "
        f"{len(ran)} (N, D, gap law, filler) points, N {min(ns)}..{max(ns)}, c = N + 2, zero and clean filler: "
        f"{counts['recalled']} recalled, {counts['missed']} missed, each as recalled(batch, w) marks"
    )
    if bad is not None:
        return failed(covered, bad, "a query is answered correctly iff marked recalled: violated", **counts)
    return passed(covered, **counts)


def monte_carlo_settings(full: bool) -> list[tuple[int, int, float, int]]:
    """``(N, D, power_a, w)`` drawn from ``Generator(PCG64(SEED))`` (the same list every run): ``N`` in
    ``{32, 48, 64}``, ``D`` uniform in ``[1, N/4]``, ``power_a`` log-uniform in ``[0.01, 1]`` (rounded to 4 digits),
    ``w`` uniform in ``[1, N]``; 12 settings (30 on full)."""
    rng = np.random.default_rng(SEED)
    out = []
    for _ in range(30 if full else 12):
        n = int(rng.choice([32, 48, 64]))
        d = int(rng.integers(1, n // 4 + 1))
        a = round(float(10.0 ** rng.uniform(-2.0, 0.0)), 4)
        w = int(rng.integers(1, n + 1))
        out.append((n, d, a, w))
    return out


MC_QUERIES = {"default": 20_000, "full": 100_000}  # Monte-Carlo queries in all, spread evenly over the settings
Z_MAX = 4.0  # |z| above this at any setting fails the check (two-sided p ~ 6e-5 per setting)


def z_score(per_example: np.ndarray, expected: float, tolerance: float = 0.0) -> tuple[float | None, float]:
    """``(z, standard error)`` of the mean of ``per_example`` accuracies (n,) against ``expected``. The error is the
    examples' standard deviation over ``sqrt(n)``: queries of one example share its gaps, so they are not independent
    Bernoulli draws. When every example scored the same (zero error) there is no sampling noise to measure against:
    ``z = 0`` if the mean is within ``tolerance`` (the prediction's own stated accuracy) of ``expected``, else
    ``None`` (a definite mismatch)."""
    x = np.asarray(per_example, dtype=np.float64)
    if x.size < 2:
        raise ValueError(f"per_example: needs at least 2 examples, got {x.size}")
    se = float(x.std(ddof=1) / np.sqrt(x.size))
    gap = float(x.mean()) - expected
    if se == 0.0:
        return (0.0 if abs(gap) <= tolerance else None), 0.0
    return gap / se, se


def check_expected_accuracy(
    ctx: CheckContext, accuracy_rule: Callable[[Any, int], float] | None = None
) -> CheckOutcome:
    """Monte Carlo: at each setting of :func:`monte_carlo_settings`, the construction's measured accuracy on
    zero-filler instances against ``expected_accuracy(spec, w)``, with its z-score (:func:`z_score`); fails when any
    ``|z| > Z_MAX``. ``accuracy_rule`` is injectable (tests feed a wrong one)."""
    from mqarkit.constructions import build
    from mqarkit.constructions.sliding_window import RANK_TOLERANCE, expected_accuracy
    from mqarkit.oracle import score
    from mqarkit.task import MQARSpec, generate

    rule = expected_accuracy if accuracy_rule is None else accuracy_rule
    settings = monte_carlo_settings(ctx.budget.full)
    per_setting = MC_QUERIES[ctx.budget.name] // len(settings)
    rows: list[dict] = []

    def step(point: tuple[int, int, float, int]) -> dict | None:
        n, d, a, w = point
        spec = MQARSpec(n + 2, n, d, power_a=a, filler="zero")
        predicted = float(rule(spec, w))
        examples = max(2, -(-per_setting // d))
        batch = generate(spec, examples, np.random.default_rng(SEED + 7 * len(rows) + n + d + w))
        con = build("sliding_window", vocab_size=n + 2, seq_len=n, num_kv_pairs=d, window=w)
        s = score(con.predict(batch.inputs), batch)
        z, se = z_score(s.per_example, predicted, tolerance=RANK_TOLERANCE)
        row = {"N": n, "D": d, "power_a": a, "window": w, "queries": s.num_queries, "measured": round(s.accuracy, 6),
               "expected": round(predicted, 6), "error": round(s.accuracy - predicted, 6), "se": round(se, 6),
               "z": None if z is None else round(z, 3)}  # fmt: skip
        rows.append(row)
        return None if z is not None and abs(z) <= Z_MAX else row

    ran, bad = run_points(settings, step)
    queries = sum(r["queries"] for r in rows)
    weights = np.array([r["queries"] for r in rows], dtype=np.float64)
    errors = np.array([r["measured"] - r["expected"] for r in rows])
    ses = np.array([r["se"] for r in rows])
    pooled_se = float(np.sqrt(np.sum((weights * ses) ** 2)) / weights.sum())
    pooled = float(np.sum(weights * errors) / weights.sum())
    pooled_z = pooled / pooled_se if pooled_se > 0 else 0.0
    zs = [r["z"] for r in rows if r["z"] is not None] or [float("nan")]
    covered = (
        f"Monte Carlo: {queries} queries of zero-filler instances at {len(ran)} random settings (N in 32..64, "
        f"D in 1..N/4, power_a log-uniform in [0.01, 1], w in 1..N; seeded), measured accuracy of the construction "
        f"vs expected_accuracy(spec, w): z-scores (example-level standard errors) in [{min(zs):.2f}, {max(zs):.2f}], "
        f"all |z| <= {Z_MAX}; pooled error {pooled:+.5f} (z = {pooled_z:.2f})"
    )
    if bad is not None:
        off = "deterministically different" if bad["z"] is None else f"{abs(bad['z'])} standard errors off"
        return failed(covered, bad, f"expected_accuracy(spec, w) is {off}", table=rows)
    return passed(covered, table=rows, pooled_error=round(pooled, 6), pooled_z=round(pooled_z, 3))
