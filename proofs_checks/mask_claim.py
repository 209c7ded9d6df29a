"""X2: the lookup's mask only matters at ambiguous queries (issue 18: causal vs strict).

The raw-token lookup (U1 one-hot, U2 sign codes) reads pairs ``(x_{s-1}, x_s)``. With the strict mask ``s < t`` the
query ``t`` sees the pairs before its own position; with the causal mask ``s <= t`` (Zoology's attention: a token sees
itself) it also sees its own pair ``(x_{t-1}, x_t)``, which matches iff ``x_{t-1} = x_t``. At a query that the oracle
does not flag ambiguous (``mqarkit.oracle.ambiguous_queries``: no filler equal to the key before the query),
``x_{t-1}`` is the last value (``t = 2D``), another query (a different key) or a filler that is not the key, so the
extra pair never matches: the one-hot lookup is unchanged, and the softmax lookup has one more non-matching position,
which moves its proven inverse temperature from ``(m/2) ln 4(N-2)`` to ``(m/2) ln 4(N-1)``
(``attention_signcode.sufficient_beta(..., mask)``). At an ambiguous query with ``x_{t-1} = x_t`` the causal lookup adds
the query token itself and the predictions can differ.

Checks:

- :func:`check_masks_exhaustive` (exhaustive): every random-filler instance of two tiny sizes
  (``(c, N, D) = (8, 6, 1)`` and ``(10, 8, 2)``; all keys, values, query orders and filler tokens), both
  constructions (one-hot; sign codes at each mask's ``beta*``): at every unambiguous query both masks answer the value,
  so they agree; the ambiguous queries where they differ are counted and one is reported (none would leave the
  "only at ambiguous queries" half of the statement without a witness, and fails);
- :func:`check_masks_random_filler` (property): Zoology-style random-filler batches (many ambiguous queries) up to
  ``N = 64`` (128 on full): the same agreement at unambiguous queries, and the sign-code margin under the causal mask
  at its ``beta*`` is ``>= 1/m`` there.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from mqarkit.proofs_checks.point_runner import run_points
from mqarkit.proofs_checks.registry import CheckContext, CheckOutcome, failed, passed
from mqarkit.tolerances import tolerance_for

CONSTRUCTIONS = ("attention_onehot", "attention_signcode")
MASKS = ("strict", "causal")
TINY = ((8, 6, 1), (10, 8, 2))
SEED = 20240418


def all_random_filler_instances(vocab_size: int, seq_len: int, num_kv_pairs: int) -> Any:
    """Every instance of ``MQARSpec(c, N, D, filler="random")``: every ordered key tuple, value tuple, assignment of
    the keys to the query slots, and filler token at every other position of the query region (an ``MQARBatch``)."""
    from mqarkit.task import MQARSpec, assemble_batch

    spec = MQARSpec(vocab_size, seq_len, num_kv_pairs, filler="random", power_a=1.0)
    d = num_kv_pairs
    keys = list(itertools.permutations(spec.key_range, d))
    values = list(itertools.permutations(spec.value_range, d))
    slot_orders = list(itertools.permutations(range(spec.num_query_slots), d))
    region = seq_len - spec.context_len
    rows_k, rows_v, rows_s, rows_f = [], [], [], []
    for slots in slot_orders:
        taken = {2 * g for g in slots}
        free = [p for p in range(region) if p not in taken]
        for fill in itertools.product(range(vocab_size), repeat=len(free)):
            filler = np.zeros(region, dtype=np.int64)
            filler[free] = fill
            for k, v in itertools.product(keys, values):
                rows_k.append(k)
                rows_v.append(v)
                rows_s.append(slots)
                rows_f.append(filler)
    as_int = [np.asarray(a, dtype=np.int64) for a in (rows_k, rows_v, rows_s, rows_f)]
    return assemble_batch(spec, *as_int)


def _predict_both(name: str, batch: Any) -> dict[str, np.ndarray]:
    """Predictions (n, N) of construction ``name`` under each mask (default knobs: ``beta*`` of that mask)."""
    from mqarkit.constructions import build

    spec = batch.spec
    return {
        mask: build(name, vocab_size=spec.vocab_size, seq_len=spec.seq_len, num_kv_pairs=spec.num_kv_pairs,
                    mask=mask).predict(batch.inputs)
        for mask in MASKS
    }  # fmt: skip


def compare_masks(name: str, batch: Any, predict: Callable[[str, Any], dict[str, np.ndarray]] = _predict_both) -> dict:
    """Counts for one batch: unambiguous queries (and those wrong under either mask), ambiguous queries (and those the
    masks disagree on), the first unambiguous failure and the first ambiguous disagreement."""
    from mqarkit.oracle import ambiguous_queries, expected_answers

    preds = predict(name, batch)
    answers = np.take_along_axis(expected_answers(batch), batch.query_positions, axis=1)
    ambiguous = np.take_along_axis(ambiguous_queries(batch), batch.query_positions, axis=1)
    at = {mask: np.take_along_axis(p, batch.query_positions, axis=1) for mask, p in preds.items()}
    wrong = ~ambiguous & ((at["strict"] != answers) | (at["causal"] != answers))
    differ = ambiguous & (at["strict"] != at["causal"])
    out: dict[str, Any] = {"unambiguous": int((~ambiguous).sum()), "ambiguous": int(ambiguous.sum()),
                           "unambiguous_wrong": int(wrong.sum()), "ambiguous_differ": int(differ.sum())}  # fmt: skip
    for key, where in (("failure", wrong), ("witness", differ)):
        hits = np.argwhere(where)
        if len(hits):
            r, j = (int(v) for v in hits[0])
            t = int(batch.query_positions[r, j])
            out[key] = {"construction": name, "inputs": batch.inputs[r].tolist(), "query_position": t,
                        "answer": int(answers[r, j]), "strict": int(at["strict"][r, j]),
                        "causal": int(at["causal"][r, j])}  # fmt: skip
    return out


def _tally(total: dict[str, int], part: dict[str, Any]) -> None:
    for key in ("unambiguous", "ambiguous", "unambiguous_wrong", "ambiguous_differ"):
        total[key] = total.get(key, 0) + part[key]


def check_masks_exhaustive(
    ctx: CheckContext, predict: Callable[[str, Any], dict[str, np.ndarray]] = _predict_both
) -> CheckOutcome:
    """See the module docstring. ``predict`` is injectable (a test feeds a lookup that also reads the next pair)."""
    total: dict[str, int] = {}
    witness: dict[str, Any] | None = None
    instances = 0

    def step(point: tuple[int, int, int]) -> dict[str, Any] | None:
        nonlocal witness, instances
        batch = all_random_filler_instances(*point)
        instances += batch.num_examples
        for name in CONSTRUCTIONS:
            part = compare_masks(name, batch, predict)
            _tally(total, part)
            if "failure" in part:
                return {"size": list(point), **part["failure"]}
            witness = witness or part.get("witness")
        return None

    ran, bad = run_points(TINY, step)
    covered = (
        f"exhaustive over all {instances} random-filler instances of (c, N, D) in {[list(p) for p in ran]} (every key, "
        f"value, query order and filler), {' and '.join(CONSTRUCTIONS)} (sign codes at each mask's beta*), counts over "
        f"both constructions: {total.get('unambiguous', 0)} unambiguous queries answered by both masks; "
        f"{total.get('ambiguous', 0)} ambiguous queries, the masks disagree on {total.get('ambiguous_differ', 0)}"
    )
    if bad is not None:
        return failed(covered, bad, "the masks disagree with the answer at an unambiguous query", **total)
    if witness is None:
        return failed(covered, dict(total), "no ambiguous query where the masks differ: the statement has no witness")
    return passed(covered, witness=witness, **total)


def random_filler_points(full: bool) -> list[tuple[int, int, int]]:
    lengths = (16, 32, 64, 128) if full else (16, 32, 64)
    return [(c, n, d) for n in lengths for c in (n + 2, 2 * n + 2) for d in sorted({1, n // 8, n // 4})]


def check_masks_random_filler(ctx: CheckContext) -> CheckOutcome:
    from mqarkit.constructions import build
    from mqarkit.constructions.attention_signcode import guaranteed_margin
    from mqarkit.oracle import ambiguous_queries, expected_answers
    from mqarkit.proofs_checks.signcode_adversarial import query_margin
    from mqarkit.task import MQARSpec, generate

    total: dict[str, int] = {}
    margin = {"min_x_m": np.inf}
    examples = 16 if ctx.budget.full else 6
    tol = tolerance_for("float64")

    def step(point: tuple[int, int, int]) -> dict[str, Any] | None:
        c, n, d = point
        batch = generate(MQARSpec(c, n, d, filler="random"), examples, np.random.default_rng(SEED + c + n + d))
        for name in CONSTRUCTIONS:
            part = compare_masks(name, batch)
            _tally(total, part)
            if "failure" in part:
                return {"size": [c, n, d], **part["failure"]}
        con = build("attention_signcode", vocab_size=c, seq_len=n, num_kv_pairs=d, mask="causal")
        scores = con.readout_scores(batch.inputs)
        answers = expected_answers(batch)
        ambiguous = ambiguous_queries(batch)
        m = con.code_width
        for r, j in np.argwhere(~np.take_along_axis(ambiguous, batch.query_positions, axis=1)):
            t = int(batch.query_positions[r, j])
            low = query_margin(scores[r], t, int(answers[r, t]))
            margin["min_x_m"] = min(margin["min_x_m"], low * m)
            need = guaranteed_margin(m)
            if low < need - (tol.atol + tol.rtol * need):
                return {"size": [c, n, d], "inputs": batch.inputs[r].tolist(), "query_position": t, "margin": low,
                        "reason": "causal-mask margin below 1/m at beta*(mask='causal')"}  # fmt: skip
        return None

    ran, bad = run_points(random_filler_points(ctx.budget.full), step)
    covered = (
        f"{len(ran)} random-filler (c, N, D) points, N {min(p[1] for p in ran)}..{max(p[1] for p in ran)}, c = N + 2 "
        f"and 2N + 2, {examples} instances each, counts over {' and '.join(CONSTRUCTIONS)}: "
        f"{total.get('unambiguous', 0)} unambiguous queries answered by both masks; {total.get('ambiguous', 0)} "
        f"ambiguous queries, the masks disagree on {total.get('ambiguous_differ', 0)}; sign-code margin under the "
        f"causal mask at (m/2) ln 4(N-1) >= 1/m at every unambiguous query (smallest {margin['min_x_m']:.4f}/m)"
    )
    if bad is not None:
        return failed(covered, bad, bad.get("reason", "a mask changed an unambiguous query"), **total)
    return passed(covered, min_margin_x_m=margin["min_x_m"], **total)
