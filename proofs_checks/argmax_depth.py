"""X1: the depth a data-independent BaseConv needs to solve MQAR with an argmax readout (sign codes, ``m = ⌈log2 c⌉``).

L2 ([B] Thm 3.2) bounds models whose output *equals* the answer: ``⌈log2(2m)⌉`` layers. Every construction reads out
with an argmax, and then the question is different. What is machine-checked here:

**Lower bounds** (:func:`check_lower_bounds`, exhaustive, any width):

- ``D = 1`` needs 1 layer: with 0 layers the output at a query is a function of the query token alone, and two
  instances with the same key and different values ask for different answers (the witness pair is checked);
- ``D >= 2`` needs 2 layers, for every ``m >= 3``. One layer makes every output a polynomial of degree ``<= 2`` in the
  code bits (each branch is affine), and the argmax must give the answer ``v``, so against ``u = v XOR e_r`` (a token)
  ``out_r·a_r(v) > 0``: ``out_r`` sign-represents bit ``r`` of the answer. Restrict to the instances where the two
  first keys differ in one bit ``b`` only, the query is one of them, and the values vary in bit ``r``: with
  ``x = a_b(query)``, ``y = a_b(k_1)`` (so ``a_b(k_2) = -y``), ``p = a_r(v_1)``, ``q = a_r(v_2)``, the answer's bit is
  ``g = p if xy = 1 else q``, and ``out_r`` restricted is still of degree ``<= 2``. The certificate
  ``h = xy(p - q)/2`` has ``h·g >= 0`` everywhere, ``h != 0``, and no Fourier weight of degree ``<= 2``
  (``Σ_z h(z) χ_S(z) = 0`` for ``|S| <= 2``), so ``Σ_z h·out_r = 0`` while ``h·out_r >= 0`` with equality nowhere
  ``h != 0``: no degree-2 sign representation exists. The check evaluates the certificate on all 16 points in
  integers and builds the 16 token-level instances at each listed ``(c, N, D)`` (valid clean instances, answer's bit
  ``r`` == ``g``, ``v XOR e_r`` a token).

**Upper bounds** (:func:`check_construction_depths`, by construction): ``baseconv_argmax_lookup`` at depth
``argmax_depth(c, D)`` (1 for ``D = 1``, 2 for ``D = 2`` at every ``m``, then ``2 + j`` sharpening levels) solves
random clean and random-filler instances and its worst instance (its proved condition is exact at ``c = 2^m``), and
one layer less fails on that worst instance, so the depth is the smallest *of this family*. The table reports it next
to the exact-output construction's ``1 + ⌈log2(m+1)⌉`` (which an argmax reads out too, so the smallest depth found is
the lesser of the two) and L2's ``⌈log2(2m)⌉``, for ``m`` in 4..17 and ``D`` up to 256.

Not settled: whether some other data-independent BaseConv needs fewer layers than the family for ``D >= 3`` (the
lower bound stays 2 there).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from mqarkit.proofs_checks.point_runner import run_points
from mqarkit.proofs_checks.registry import CheckContext, CheckOutcome, failed, passed

NAME = "baseconv_argmax_lookup"
SEED = 20240422
LOWER_POINTS = ((16, 8, 2), (32, 16, 3), (256, 64, 16), (8192, 16, 2), (65536, 32, 8))
TABLE_CODE_WIDTHS = (4, 5, 8, 13, 16, 17)
TABLE_PAIRS = (1, 2, 3, 4, 5, 6, 8, 16, 64, 256)
# (c, N, D) where the family is built and run: c = 2^m, every depth the table reaches at small N
BUILD_POINTS = ((16, 8, 1), (16, 8, 2), (32, 16, 3), (32, 16, 4), (64, 32, 8), (256, 16, 2), (256, 16, 3),
                (8192, 16, 2), (8192, 16, 3), (65536, 16, 3))  # fmt: skip
FULL_BUILD_POINTS = ((256, 32, 8), (8192, 32, 6), (65536, 32, 5), (256, 64, 16), (8192, 64, 16), (131072, 32, 4))


def _chi(z: tuple[int, ...], subset: tuple[int, ...]) -> int:
    return math.prod(z[i] for i in subset)


def certificate() -> dict[str, Any]:
    """The degree-2 obstruction on ``{-1,+1}^4``: ``g(x, y, p, q) = p if xy = 1 else q``, ``h = xy(p - q)/2``.
    Returns the checks' numbers: the largest ``|Σ h χ_S|`` over ``|S| <= 2`` (must be 0), the smallest ``h·g``
    (must be ``>= 0``) and ``Σ |h|`` (must be ``> 0``), in exact integers."""
    points = list(itertools.product((-1, 1), repeat=4))
    g = {z: (z[2] if z[0] * z[1] == 1 else z[3]) for z in points}
    h = {z: z[0] * z[1] * (z[2] - z[3]) // 2 for z in points}
    subsets = [s for k in range(3) for s in itertools.combinations(range(4), k)]
    low = max(abs(sum(h[z] * _chi(z, s) for z in points)) for s in subsets)
    return {"max_low_degree_correlation": low, "min_h_times_g": min(h[z] * g[z] for z in points),
            "total_weight": sum(abs(h[z]) for z in points), "subsets": len(subsets), "points": len(points)}  # fmt: skip


def restriction_instances(vocab_size: int, seq_len: int, num_kv_pairs: int) -> list[dict[str, Any]]:
    """The 16 token-level instances of the restriction (bit ``b = 0`` of the keys, bit ``r = 0`` of the values):
    ``k_1 = 2 + y'``, ``k_2 = k_1 XOR 1``; values ``c/2 + p' + 2`` and ``c/2 + q' + 4`` (distinct through bits 1-2);
    the other ``D - 2`` pairs fixed (keys 4, 5, .., values ``c/2 + 8, ..``); the query at ``2D``, zero filler."""
    c, d = vocab_size, num_kv_pairs
    out = []
    for x, y, p, q in itertools.product((-1, 1), repeat=4):
        k1 = 2 + (1 if y == 1 else 0)
        k2 = k1 ^ 1
        v1, v2 = c // 2 + (1 if p == 1 else 0) + 2, c // 2 + (1 if q == 1 else 0) + 4
        keys = [k1, k2, *range(4, 4 + d - 2)]
        values = [v1, v2, *range(c // 2 + 8, c // 2 + 8 + d - 2)]
        tokens = np.zeros(seq_len, dtype=np.int64)
        tokens[0 : 2 * d : 2], tokens[1 : 2 * d : 2] = keys, values
        query = k1 if x == y else k2
        tokens[2 * d] = query
        out.append({"z": (x, y, p, q), "tokens": tokens, "query_position": 2 * d})
    return out


def check_lower_bounds(ctx: CheckContext, cert: Callable[[], dict[str, Any]] = certificate) -> CheckOutcome:
    """See the module docstring. ``cert`` is injectable (a test passes a certificate with low-degree weight)."""
    from mqarkit.constructions._baseconv_sign_lookup import sign_codebook
    from mqarkit.proofs_checks.instances import oracle_labels

    numbers = cert()
    if numbers["max_low_degree_correlation"] != 0 or numbers["min_h_times_g"] < 0 or numbers["total_weight"] <= 0:
        return failed("", numbers, "the certificate does not rule out a degree-2 sign representation")
    checked = []

    def step(point: tuple[int, int, int]) -> dict[str, Any] | None:
        c, n, d = point
        book = sign_codebook(c)
        for inst in restriction_instances(c, n, d):
            tokens = inst["tokens"]
            keys, values = tokens[0 : 2 * d : 2], tokens[1 : 2 * d : 2]
            labels = oracle_labels(tokens[None], d)[0]
            answer = int(labels[inst["query_position"]])
            x, y, p, q = inst["z"]
            g = p if x * y == 1 else q
            valid = (len(set(keys.tolist())) == d and len(set(values.tolist())) == d and keys.min() >= 1
                     and keys.max() < c // 2 and values.min() >= c // 2 and values.max() < c)  # fmt: skip
            rival = answer ^ 1
            if not valid or int(book[answer, 0]) != g or not 0 <= rival < c or book[tokens[0], 0] != y:
                return {"c": c, "N": n, "D": d, "z": list(inst["z"]), "tokens": tokens.tolist(), "answer": answer}
        # D = 1 needs a layer: same query token, different answers
        one = np.zeros((2, n), dtype=np.int64)
        one[:, 0], one[:, 1], one[:, 2] = 1, [c // 2, c // 2 + 1], 1
        if len(set(oracle_labels(one, 1)[:, 2].tolist())) != 2:
            return {"c": c, "N": n, "reason": "the D = 1 witness pair does not ask for two answers"}
        checked.append(point)
        return None

    ran, bad = run_points(LOWER_POINTS, step)
    covered = (
        f"exhaustive: the degree-2 obstruction h = xy(p - q)/2 on all {numbers['points']} points of {{-1,+1}}^4 "
        f"(zero correlation with all {numbers['subsets']} monomials of degree <= 2, h g >= 0, weight "
        f"{numbers['total_weight']}), realised by 16 valid clean instances at each of {[list(p) for p in ran]} "
        f"((c, N, D), answer's bit 0 == g, its XOR-1 rival a token): no 1-layer BaseConv (any width, weights fixed "
        f"given the sizes) solves D >= 2 with an argmax readout; D = 1 needs 1 layer (a witness pair with the same "
        f"query and different answers)"
    )
    if bad is not None:
        return failed(covered, bad, "a restriction instance does not realise the obstruction")
    return passed(covered, **numbers)


def depth_table() -> list[dict[str, Any]]:
    """``argmax_depth`` against the exact-output construction and L2, for ``m`` in :data:`TABLE_CODE_WIDTHS` (c = 2^m)
    and ``D`` in :data:`TABLE_PAIRS` (where ``D`` keys exist)."""
    from mqarkit.constructions.baseconv_argmax_lookup import argmax_depth

    rows = []
    for m in TABLE_CODE_WIDTHS:
        for d in TABLE_PAIRS:
            if d > 2 ** (m - 1) - 1:
                continue
            depth = argmax_depth(2**m, d)
            exact = 1 + m.bit_length()  # baseconv_data_independent: 1 + ceil(log2(m + 1)), read out by argmax too
            best = exact if depth is None else min(depth, exact)
            rows.append({"m": m, "D": d, "lower bound": 1 if d == 1 else 2, "argmax construction": depth,
                         "exact-output construction": exact, "smallest found": best,
                         "L2 (exact output)": math.ceil(math.log2(2 * m))})  # fmt: skip
    return rows


def check_construction_depths(ctx: CheckContext, depth_rule: Callable[[int, int], int] | None = None) -> CheckOutcome:
    """See the module docstring. ``depth_rule(c, D)`` replaces ``argmax_depth`` (a test passes one layer too few)."""
    from mqarkit.constructions import build
    from mqarkit.constructions._baseconv_sign_lookup import sign_codebook
    from mqarkit.constructions._baseconv_stack import argmax_predict, as_ir_model, run_ir_model
    from mqarkit.constructions.baseconv_argmax_lookup import argmax_depth, argmax_weights, worst_instance
    from mqarkit.task import MQARSpec, generate

    rule = argmax_depth if depth_rule is None else depth_rule
    counts = {"queries": 0, "worst_instances": 0, "one_less_fails": 0}

    def predict_at(c: int, n: int, d: int, depth: int, tokens: np.ndarray) -> np.ndarray:
        model = as_ir_model(argmax_weights(n, d, c, depth))
        return argmax_predict(run_ir_model(model, sign_codebook(c)[tokens], "float64"), sign_codebook(c), "float64")

    def step(point: tuple[int, int, int]) -> dict[str, Any] | None:
        c, n, d = point
        depth = int(rule(c, d))
        con = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d)
        if con.resources().measured.layers != depth:
            return {"c": c, "N": n, "D": d, "depth": depth, "built": con.resources().measured.layers}
        for filler in ("clean", "random"):
            batch = generate(MQARSpec(c, n, d, filler=filler), 4, np.random.default_rng(SEED + c + n + d))
            q = batch.labels != -100
            pred = predict_at(c, n, d, depth, batch.inputs)
            counts["queries"] += int(q.sum())
            wrong = np.argwhere(q & (pred != batch.labels))
            if len(wrong):
                r, i = (int(v) for v in wrong[0])
                return {"c": c, "N": n, "D": d, "depth": depth, "filler": filler, "inputs": batch.inputs[r].tolist(),
                        "position": i, "reason": "the construction missed a query at its depth"}  # fmt: skip
        if depth >= 2:
            tokens, pos, answer = worst_instance(c, n, d, depth)
            counts["worst_instances"] += 1
            if int(predict_at(c, n, d, depth, tokens[None])[0, pos]) != answer:
                return {"c": c, "N": n, "D": d, "depth": depth, "reason": "the worst instance is missed at this depth"}
        if depth >= 3:
            tokens, pos, answer = worst_instance(c, n, d, depth - 1)
            if int(predict_at(c, n, d, depth - 1, tokens[None])[0, pos]) == answer:
                return {
                    "c": c,
                    "N": n,
                    "D": d,
                    "depth": depth - 1,
                    "tokens": tokens.tolist(),
                    "reason": "one layer less still solves the worst instance: the depth is not the smallest",
                }
            counts["one_less_fails"] += 1
        return None

    points = BUILD_POINTS + (FULL_BUILD_POINTS if ctx.budget.full else ())
    ran, bad = run_points(points, step)
    table = depth_table()
    by_m = {m: [r["smallest found"] for r in table if r["m"] == m] for m in TABLE_CODE_WIDTHS}
    covered = (
        f"{NAME} built at {len(ran)} (c = 2^m, N, D) points, m {min((p[0] - 1).bit_length() for p in ran)}.."
        f"{max((p[0] - 1).bit_length() for p in ran)}, D {min(p[2] for p in ran)}..{max(p[2] for p in ran)}: at "
        f"argmax_depth(c, D) it answers {counts['queries']} queries of clean and random-filler instances and "
        f"{counts['worst_instances']} worst instances; one layer less fails on the worst instance at all "
        f"{counts['one_less_fails']} points of depth >= 3. Smallest depth found (this family or the exact-output "
        f"construction's 1 + ceil(log2(m+1)), whichever is less) by m for D in {list(TABLE_PAIRS)}: {by_m}; "
        f"L2 (exact output) asks ceil(log2(2m))"
    )
    if bad is not None:
        return failed(covered, bad, bad.get("reason", "the depth is not what argmax_depth says"), table=table)
    return passed(covered, table=table, **counts)
