"""Machine checks of the errata of theory.md section 7 (E1-E13), where a check is possible.

Each function takes a :class:`CheckContext` and returns a :class:`CheckOutcome`. Several errata say "X is false":
their check *finds the witness* (a counterexample to the printed statement) and passes when it does, reporting the
witness in ``details``; the check fails when the search space is exhausted without one.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np

from mqarkit.proofs_checks.instances import IGNORE, clean_instances
from mqarkit.proofs_checks.registry import CheckContext, CheckOutcome, failed, passed

# ------------------------------------------------------------------------------------------------------------ E1


def answer_sets(triples: tuple[tuple[int, int, int], ...]) -> list[set[int]]:
    """Triple-form MQAR: for each ``i >= 1``, the set ``{v_j : j < i, k_j = q_i}`` of admissible answers."""
    return [{v for (k, v, _) in triples[:i] if k == triples[i][2]} for i in range(1, len(triples))]


def check_e1_ambiguity(ctx: CheckContext) -> CheckOutcome:
    """Smallest ambiguous instance has 3 triples; with unique keys, or a consistent dictionary, none is ambiguous."""
    alphabet, n_max = (3, 4) if ctx.budget.full else (3, 3)
    first = None
    counted = 0
    for n in range(1, n_max + 1):
        for flat in itertools.product(range(alphabet), repeat=3 * n):
            triples = tuple(tuple(flat[3 * i : 3 * i + 3]) for i in range(n))
            counted += 1
            ambiguous = any(len(s) > 1 for s in answer_sets(triples))
            keys = [t[0] for t in triples]
            consistent = all(v1 == v2 for (k1, v1, _), (k2, v2, _) in itertools.combinations(triples, 2) if k1 == k2)
            if ambiguous and first is None:
                first = triples
            if ambiguous and (len(set(keys)) == n or consistent):
                return failed("", {"triples": triples}, "ambiguous although keys unique / dictionary consistent")
    covered = f"exhaustive over all {counted} triple sequences of length <= {n_max} over an alphabet of {alphabet}"
    if first is None or len(first) != 3:
        return failed(covered, {"smallest_ambiguous": first}, "expected the smallest ambiguous instance at 3 triples")
    return passed(covered, witness=[list(t) for t in first])


# ------------------------------------------------------------------------------------------------------------ E2


MASKS_E2 = ("none", "key<=t", "causal", "strict")


def onehot_lookup(inputs: np.ndarray, vocab_size: int, mask: str) -> np.ndarray:
    """The layer-2 lookup of U1 in raw-token form: query ``e(x_t)``, key ``e(x_{s-1})``, value ``e(x_s)``.

    ``mask`` (which value positions ``s`` query ``t`` reads): ``"none"`` (every ``s``, as printed), ``"key<=t"`` (key
    position ``s - 1 <= t``: the pair right after the query too), ``"causal"`` (``s <= t``: the query's own pair, a
    token sees itself) or ``"strict"`` (``s < t``). Returns the argmax token (n, N) int64; -1 where no position
    matched or the best count is tied."""
    x = np.asarray(inputs, dtype=np.int64)
    n, length = x.shape
    prev = np.concatenate([np.full((n, 1), -1), x[:, :-1]], axis=1)  # x_{s-1}, -1 at s = 0 (no key)
    t = np.arange(length)[:, None]
    s = np.arange(length)[None, :]
    allowed = {"none": np.ones((length, length), bool), "key<=t": s - 1 <= t, "causal": s <= t, "strict": s < t}[mask]
    out = np.full((n, length), -1, dtype=np.int64)
    for r in range(n):
        scores = (x[r][:, None] == prev[r][None, :]) & allowed  # (N_t, N_s) one-hot dot products
        counts = np.zeros((length, vocab_size), dtype=np.int64)
        for ti, si in zip(*np.nonzero(scores)):
            counts[ti, x[r, si]] += 1
        hit = counts.max(axis=1) > 0
        best = counts.argmax(axis=1)
        tie = (counts == counts.max(axis=1, keepdims=True)).sum(axis=1) > 1
        out[r] = np.where(hit & ~tie, best, -1)
    return out


def check_e2_mask(ctx: CheckContext) -> CheckOutcome:
    """On clean instances the causal and the strict lookups answer every query; the unmasked one and the one that
    also reads the pair after the query do not (the witnesses are reported)."""
    rng = np.random.default_rng(2)
    sizes = [(34, 16, 2), (66, 32, 4), (130, 64, 8)] + ([(258, 128, 16), (514, 256, 32)] if ctx.budget.full else [])
    witnesses, queries = {}, 0
    for c, n, d in sizes:
        inputs, labels = clean_instances(c, n, d, 16, rng)
        q = labels != IGNORE
        queries += int(q.sum())
        for mask in MASKS_E2:
            pred = onehot_lookup(inputs, c, mask)
            wrong = np.argwhere(q & (pred != labels))
            if mask in ("causal", "strict") and len(wrong):
                r, i = (int(v) for v in wrong[0])
                return failed("", {"inputs": inputs[r].tolist(), "position": i, "mask": mask}, f"{mask} lookup missed")
            if mask not in ("causal", "strict") and len(wrong) and mask not in witnesses:
                r, i = (int(v) for v in wrong[0])
                witnesses[mask] = {"N": n, "position": i, "predicted": int(pred[r, i]), "expected": int(labels[r, i])}
    covered = (
        f"{queries} queries of clean instances, N <= {sizes[-1][1]}: causal (s <= t) and strict (s < t) lookups answer "
        f"all; unmasked and key<=t (reads the pair after the query) fail"
    )
    if set(witnesses) != {"none", "key<=t"}:
        return failed(covered, {"witnesses": witnesses}, "expected the unmasked and key<=t lookups to fail")
    return passed(covered, witnesses=witnesses)


# ------------------------------------------------------------------------------------------------------------ E3, E4


def check_e3_shift(ctx: CheckContext) -> CheckOutcome:
    import sympy as sp

    from mqarkit.proofs_checks.symbolic_conv import causal_conv, impulse

    n_max = 10 if ctx.budget.full else 6
    for n in range(1, n_max + 1):
        u = list(sp.symbols(f"u0:{n}"))
        for s in range(n):
            got = causal_conv(impulse(s, n), u)
            want = [u[i - s] if i >= s else 0 for i in range(n)]
            if got != want:
                return failed(f"N <= {n}", {"N": n, "s": s, "got": [str(g) for g in got]}, "X^s is not shift s")
            if s + 1 < n and causal_conv(impulse(s + 1, n), u) == want:
                return failed(f"N <= {n}", {"N": n, "s": s}, "X^(s+1) also shifts by s")
    return passed(f"symbolic (sympy, mod X^N) for every N <= {n_max} and shift 0 <= s < N; X^(s+1) differs")


def check_e4_cyclic(ctx: CheckContext) -> CheckOutcome:
    import sympy as sp

    from mqarkit.proofs_checks.symbolic_conv import cyclic_conv, impulse

    n_max = 10 if ctx.budget.full else 6
    for n in range(2, n_max + 1):
        u = list(sp.symbols(f"u0:{n}"))
        ident = cyclic_conv(impulse(0, n), u)
        if ident != u or ident == u[::-1]:
            return failed(f"N <= {n}", {"N": n}, "cyclic identity filter is not the identity / is a reversal")
        for s in range(1, n):
            rolled = cyclic_conv(impulse(n - s, n), u)
            masked = [rolled[i] * (1 if i + s < n else 0) for i in range(n)]
            want = [u[i + s] if i + s < n else 0 for i in range(n)]
            if masked != want:
                return failed(f"N <= {n}", {"N": n, "s": s}, "cyclic impulse X^(N-s) + mask is not shift up by s")
    return passed(
        f"symbolic (sympy, mod X^N - 1) for every 2 <= N <= {n_max}: identity filter == identity "
        "(not reversal); X^(N-s) with mask 1[i+s<N] == shift up by s, every s"
    )


# ------------------------------------------------------------------------------------------------------------ E5


def check_e5_offsets(ctx: CheckContext) -> CheckOutcome:
    """On the raw stream of n triples, key j sits at 3j, value at 3j+1, query i at 3i+2: offsets 3Δ+2, 3Δ+1."""
    n_max = 64 if ctx.budget.full else 24
    pairs = 0
    for n in range(2, n_max + 1):
        # token ids: key j -> j, value j -> n + j, query i asks key of triple perm(i) with distinct markers
        stream = []
        for j in range(n):
            stream += [("k", j), ("v", j), ("q", j)]
        pos = {tok: p for p, tok in enumerate(stream)}
        for i in range(1, n):
            for j in range(i):
                delta = i - j
                if pos[("q", i)] - pos[("k", j)] != 3 * delta + 2 or pos[("q", i)] - pos[("v", j)] != 3 * delta + 1:
                    return failed(f"n <= {n}", {"n": n, "i": i, "j": j}, "offsets differ from 3Δ+2 / 3Δ+1")
                pairs += 1
    return passed(f"exhaustive over {pairs} (query i, key j < i) pairs of raw streams of n <= {n_max} triples")


# ------------------------------------------------------------------------------------------------------------ E6


def check_e6_keys_only(ctx: CheckContext) -> CheckOutcome:
    """No shared W maps ``e_k`` to ``e_k`` at the key position and to 0 at a query of the same key: on untagged
    one-hot input both positions hold the same vector ``e_k``, so ``W`` sees the same row (sympy ``linsolve`` over a
    fully symbolic W returns the empty set). A position gate ``F ⊙ u`` (theory.md 4.1) is what the fix uses."""
    import sympy as sp

    c_max = 6 if ctx.budget.full else 4
    for c in range(2, c_max + 1):
        w = sp.Matrix(c, c, lambda a, b: sp.Symbol(f"w_{a}_{b}"))
        for k in range(c):
            e = sp.Matrix([1 if t == k else 0 for t in range(c)])
            # key position must give e_k (keep the key), query position of the same token must give 0
            eqs = list(w.T * e - e) + list(w.T * e)
            if sp.linsolve(eqs, list(w)) != sp.EmptySet:
                return failed(f"c <= {c}", {"c": c, "k": k}, "found a shared W separating key and query")
    return passed(f"symbolic: the linear system is infeasible for every token of every c <= {c_max}")


# ------------------------------------------------------------------------------------------------------------ E7


def autocorrelation(x: np.ndarray) -> np.ndarray:
    """``A[s] = #{i : x_i == x_{i-s}}`` for ``s = 0..N-1`` (A[0] = N)."""
    n = len(x)
    return np.array([int(np.sum(x[s:] == x[: n - s])) for s in range(n)], dtype=np.int64)


def needed_lags(x: np.ndarray, num_kv_pairs: int) -> set[int]:
    """Key -> query lags that an input-dependent BaseConv needs (query position minus key position)."""
    d = num_kv_pairs
    keys = {int(x[2 * j]): 2 * j for j in range(d)}
    return {i - keys[int(x[i])] for i in range(2 * d, len(x)) if int(x[i]) in keys}


def check_e7_autocorrelation(ctx: CheckContext) -> CheckOutcome:
    """Search clean zero-filler instances for a needed lag that is not among the top-t autocorrelation peaks
    (t = number of distinct needed lags; a lag is *missed* when at least t other lags score strictly higher)."""
    rng = np.random.default_rng(7)
    tried = 0
    for c, n, d in [(34, 16, 2), (66, 32, 4), (130, 64, 8)]:
        inputs, _ = clean_instances(c, n, d, 200, rng)
        for x in inputs:
            tried += 1
            a = autocorrelation(x)
            need = needed_lags(x, d)
            for lag in sorted(need):
                higher = int(np.sum(a[1:] > a[lag]))
                if higher >= len(need):
                    return passed(
                        f"random search, {tried} clean instances (zero filler), N <= {n}: witness found",
                        witness={"inputs": x.tolist(), "missed_lag": lag, "t": len(need), "higher_lags": higher},
                    )
    return failed(f"{tried} instances", {"searched": tried}, "no instance with a missed lag found")


# ------------------------------------------------------------------------------------------------------------ E8, E9


def check_e8_causal_circuit(ctx: CheckContext) -> CheckOutcome:
    """With generic symbolic weights, output row i of a causal BaseConv stack involves only inputs u[0..i]; a cyclic
    layer reads u[1] at row 0 (so it can serve a circuit reading a later input)."""
    import sympy as sp

    from mqarkit.proofs_checks.symbolic_conv import cyclic_conv, generic_baseconv_layer, impulse

    sizes = [(3, 1, 2), (3, 2, 1), (4, 1, 2)] + ([(4, 2, 2), (5, 2, 1)] if ctx.budget.full else [])
    for n, d, layers in sizes:
        u = [[sp.Symbol(f"u_{i}_{q}") for q in range(d)] for i in range(n)]
        y = u
        for layer in range(layers):
            y = generic_baseconv_layer(y, f"L{layer}")
        for i in range(n):
            later = {u[j][q] for j in range(i + 1, n) for q in range(d)}
            used = set().union(*(e.free_symbols for e in y[i]))
            if used & later:
                return failed("", {"N": n, "d": d, "L": layers, "row": i}, "causal output reads a later input")
    col = [sp.Symbol(f"u_{i}") for i in range(3)]
    if cyclic_conv(impulse(2, 3), col)[0] != col[1]:
        return failed("", {"N": 3}, "cyclic shift-up did not read u[1] at row 0")
    dims = ", ".join(f"(N={n}, d={d}, L={L})" for n, d, L in sizes)
    return passed(f"symbolic, generic weights, {dims}; cyclic witness at N = 3")


def check_e9_parameters(ctx: CheckContext) -> CheckOutcome:
    """Parameters of one dense BaseConv layer, counted as the free weight symbols of a generic layer, are
    d^2 + 3Nd; their ratio to N d is d/N + 3, unbounded in d/N: O(Nd) needs structured W."""
    import sympy as sp

    from mqarkit.proofs_checks.symbolic_conv import generic_baseconv_layer

    rows = []
    sizes = [(2, 1), (2, 3), (3, 2), (4, 4), (2, 6)] + ([(5, 7), (3, 9)] if ctx.budget.full else [])
    for n, d in sizes:
        u = [[sp.Symbol(f"u_{i}_{q}") for q in range(d)] for i in range(n)]
        y = generic_baseconv_layer(u, "P")
        inputs = {s for row in u for s in row}
        params = len(set().union(*(e.free_symbols for row in y for e in row)) - inputs)
        if params != d * d + 3 * n * d:
            return failed("", {"N": n, "d": d, "counted": params}, "dense layer parameter count != d^2 + 3Nd")
        rows.append({"N": n, "d": d, "parameters": params, "per_Nd": params / (n * d)})
    return passed(f"symbolic count for (N, d) in {sizes}", rows=rows)


# ------------------------------------------------------------------------------------------------------------ E10


def check_e10_precision(ctx: CheckContext) -> CheckOutcome:
    """One exact rational number of state answers every index query for any n: bit bounds need bounded precision."""
    n_max = 14 if ctx.budget.full else 10
    total = 0
    for n in range(1, n_max + 1):
        for x in range(1 << n):
            state = sum((Fraction((x >> i) & 1, 2 ** (i + 1)) for i in range(n)), Fraction(0))
            for i in range(n):
                if math.floor(state * 2 ** (i + 1)) % 2 != (x >> i) & 1:
                    return failed(f"n <= {n}", {"n": n, "x": x, "i": i}, "exact decoding failed")
            total += 1
    return passed(
        f"exhaustive over all {total} inputs x in {{0,1}}^n, n <= {n_max}: a single exact number of state "
        "answers all n index queries"
    )


# ------------------------------------------------------------------------------------------------------------ E11


def check_e11_ranges(ctx: CheckContext) -> CheckOutcome:
    """Evaluate Thm 3.4's width range log2 c <= d <= 2^((log2 N)^(1-eps)) against the misreading N^(1-eps), and Rem
    3.3's width p c^(1/p) at exact roots (p = 1: one-hot c; p = log2 c: 2 log2 c)."""
    rows = []
    for n_exp in (6, 8, 10, 12, 14, 16, 20, 24, 32):
        for eps in (0.1, 0.25, 0.5):
            upper = 2.0 ** (n_exp ** (1 - eps))
            misread = 2.0 ** ((1 - eps) * n_exp)
            if not upper <= misread:
                return failed("", {"log2N": n_exp, "eps": eps}, "2^((log N)^(1-eps)) exceeds N^(1-eps)")
            rows.append(
                {
                    "log2N": n_exp,
                    "eps": eps,
                    "d_max": upper,
                    "d_max_misread": misread,
                    "nonempty_for_c=N": upper >= n_exp,
                }
            )
    widths = []
    for c_exp in (8, 12, 16):
        c = 2**c_exp
        for p in [q for q in range(1, c_exp + 1) if c_exp % q == 0]:
            root = 2 ** (c_exp // p)
            if root**p != c:
                return failed("", {"c": c, "p": p}, "inexact root")
            widths.append({"c": c, "p": p, "width": p * root})
        if widths[-1]["width"] != 2 * c_exp or [w for w in widths if w["c"] == c][0]["width"] != c:
            return failed("", {"c": c}, "p-hot width does not interpolate one-hot c .. binary 2 log2 c")
    return passed(
        f"numeric: {len(rows)} (N, eps) points with log2 N <= 32; p-hot widths for c in 2^8, 2^12, 2^16",
        ranges=rows,
        widths=widths,
    )


# ------------------------------------------------------------------------------------------------------------ E13


def taylor_feature_map(x: list, *, compressed: bool) -> list:
    """Based's Taylor map over exact sympy numbers (theory.md 2.3): ``[1, x / d'^(1/4), x x^T / (sqrt(2) sqrt(d'))]``;
    ``compressed`` keeps each unordered product once (diagonal / (sqrt 2 sqrt d'), off-diagonal / d'^(1/2))."""
    import sympy as sp

    d = len(x)
    out = [sp.Integer(1)] + [xi / sp.root(d, 4) for xi in x]
    if compressed:
        for a in range(d):
            for b in range(a, d):
                scale = sp.sqrt(2) * sp.sqrt(d) if a == b else sp.sqrt(d)
                out.append(x[a] * x[b] / scale)
    else:
        out += [x[a] * x[b] / (sp.sqrt(2) * sp.sqrt(d)) for a in range(d) for b in range(d)]
    return out


def check_e13_taylor(ctx: CheckContext) -> CheckOutcome:
    import sympy as sp

    rng = np.random.default_rng(13)
    dims = (1, 2, 4, 8, 16) if ctx.budget.full else (2, 4, 16)
    trials = 3
    widths = {}
    for d in dims:
        for _ in range(trials):
            q = [sp.Integer(int(v)) for v in rng.integers(-3, 4, size=d)]
            k = [sp.Integer(int(v)) for v in rng.integers(-3, 4, size=d)]
            w = sum(a * b for a, b in zip(q, k)) / sp.sqrt(d)
            kernel = 1 + w + w**2 / 2
            for compressed in (False, True):
                fq, fk = taylor_feature_map(q, compressed=compressed), taylor_feature_map(k, compressed=compressed)
                dot = sp.nsimplify(sp.expand(sum(a * b for a, b in zip(fq, fk))))
                if sp.simplify(dot - kernel) != 0:
                    return failed("", {"d": d, "q": str(q), "k": str(k), "compressed": compressed}, "kernel mismatch")
                widths[(d, compressed)] = len(fq)
                if sp.simplify(kernel - sp.Rational(1, 2) * ((w + 1) ** 2 + 1)) != 0:
                    return failed("", {"d": d}, "kernel != ((w+1)^2+1)/2")
    for d in dims:
        if widths[(d, False)] != 1 + d + d * d or widths[(d, True)] != 1 + d + d * (d + 1) // 2:
            return failed("", {"d": d, "widths": [widths[(d, False)], widths[(d, True)]]}, "widths")
    return passed(
        f"symbolic (exact sympy), {trials} integer (q, k) per d' in {dims}: both maps give 1 + w + w^2/2 "
        f"(w = q.k/sqrt d'); widths at d' = 16: {widths.get((16, False))} materialised vs {widths.get((16, True))} "
        "compressed",
    )
