"""Claims L1-L6 (theory.md section 3.2) and their checks; the mathematics is in :mod:`lower_bounds`."""

from __future__ import annotations

import math
from collections.abc import Callable

from mqarkit.proofs_checks import lower_bounds as lb
from mqarkit.proofs_checks.registry import Check, CheckContext, CheckOutcome, Claim, failed, passed
from mqarkit.tolerances import tolerance_for

# ------------------------------------------------------------------------------------------------------- L1 / L6


def state_count_sizes(full: bool) -> list[tuple[int, int, int]]:
    """``(K, V, D)`` with ``K, V <= 4`` (default) or ``<= 5`` (full), cheapest first."""
    top = 5 if full else 4
    sizes = [(k, v, d) for k in range(1, top + 1) for v in range(1, top + 1) for d in range(1, min(k, v) + 1)]
    return sorted(sizes, key=lambda s: (math.perm(s[0], s[2]) * math.perm(s[1], s[2]), s))


def check_state_enumeration(ctx: CheckContext) -> CheckOutcome:
    """Enumerated minimal state count after the key-value block == number of dictionaries, both key-set forms."""
    sizes = state_count_sizes(ctx.budget.full)
    ran = []
    for k, v, d in sizes:
        for key_set in ("fixed", "free"):
            got = lb.min_states_after_kv_block(k, v, d, key_set=key_set)
            want = lb.dictionary_count(k, v, d, key_set=key_set)
            if got.min_states != want:
                cex = {"K": k, "V": v, "D": d, "key_set": key_set, "enumerated": got.min_states, "formula": want}
                return failed(f"{len(ran)} sizes before this one", cex, "state count != dictionary count")
        ran.append((k, v, d))
    ks, vs, ds = zip(*ran)
    return passed(
        f"exhaustive for all {len(ran)} (K, V, D) with K <= {max(ks)}, V <= {max(vs)}, D <= {max(ds)}, "
        "query continuations of length <= 2, fixed and free key sets"
    )


def check_index_problem(ctx: CheckContext) -> CheckOutcome:
    """Index problem: 2^n answer functions (so n bits); brute force: no encoder with b < n bits, one with b = n."""
    n_max = 16 if ctx.budget.full else 12
    for n in range(1, n_max + 1):
        if lb.index_problem_min_states(n) != 2**n:
            return failed(f"n <= {n}", {"n": n}, "index problem state count != 2^n")
    brute = []
    for n in range(1, 4):
        for b in range(0, n + 1):
            if b * (1 << n) > 20:
                continue
            exists = lb.index_encoder_exists(n, b)
            if exists != (b >= n):
                return failed(f"n <= {n}", {"n": n, "state_bits": b, "encoder_exists": exists}, "brute force")
            brute.append((n, b))
    return passed(
        f"state counts enumerated for n <= {n_max}; every encoder enumerated for {len(brute)} (n, b) with n <= 3 "
        "(none with b < n, one with b = n)"
    )


def check_fano_function(ctx: CheckContext) -> CheckOutcome:
    """Edge cases and monotonicity of ``fano_min_error``, and its zero point == the enumerated zero-error minimum."""
    vmax = 64 if ctx.budget.full else 16
    cases = 0
    for v in range(2, vmax + 1):
        for d in range(1, v + 1):
            h = lb.information_minimum_bits(d, v)
            if lb.fano_min_error(h + 1e-9, d, v) != 0.0:
                return failed(f"V <= {v}", {"V": v, "D": d, "S": h}, "S >= log2(V!/(V-D)!) must allow zero error")
            errs = [lb.fano_min_error(s, d, v) for s in [h * t / 8 for t in range(9)]]
            if any(a < b for a, b in zip(errs, errs[1:])):
                return failed(f"V <= {v}", {"V": v, "D": d, "errors": errs}, "error must not grow with S")
            if not 0.0 <= errs[0] <= 1 - 1 / v + 1e-12:
                return failed(f"V <= {v}", {"V": v, "D": d, "error": errs[0]}, "S = 0 error outside [0, 1 - 1/V]")
            if d == 1 and abs(errs[0] - (1 - 1 / v)) > 1e-9:
                return failed(f"V <= {v}", {"V": v, "error": errs[0]}, "D = 1, S = 0 must give guessing error 1-1/V")
            cases += 1
    # V = 2, D = 1: one bit of uncertainty, S = 1/2 bit left -> h(P_e) = 1/2
    p = lb.fano_min_error(0.5, 1, 2)
    if abs(lb.binary_entropy(p) - 0.5) > 1e-9:
        return failed("V = 2", {"P_e": p}, "V = 2 must solve h(P_e) = 1 - S")
    for k, v, d in [(3, 3, 2), (4, 4, 2), (4, 4, 3)]:
        count = lb.min_states_after_kv_block(k, v, d, key_set="fixed").min_states
        if abs(math.log2(count) - lb.information_minimum_bits(d, v)) > 1e-9:
            return failed("", {"V": v, "D": d}, "enumerated zero-error bits != log2(V!/(V-D)!)")
    return passed(
        f"numeric, {cases} (V, D) with 2 <= V <= {vmax}, S on a 9-point grid; V = 2 closed form; "
        "zero point == enumerated minimum for 3 sizes"
    )


# ------------------------------------------------------------------------------------------------------- L2 / L3


def check_binary_eq_degree(ctx: CheckContext) -> CheckOutcome:
    m_max = 7 if ctx.budget.full else 5
    ran, rows = [], []
    for m in range(1, m_max + 1):
        r = lb.binary_eq_degree(m)
        if r.degree != 2 * m or not r.sympy_agrees:
            return failed(f"m <= {m}", {"m": m, "degree": r.degree, "sympy_agrees": r.sympy_agrees}, "deg EQ_m")
        rows.append({"m": m, "degree": r.degree, "layers_lower_bound": lb.layers_for_degree(r.degree)})
        ran.append(m)
    return passed(
        f"symbolic (sympy expansion) == Möbius transform of all 2^(2m) inputs, degree == 2m, for m <= {max(ran)}",
        rows=rows,
    )


def check_phot_degree(ctx: CheckContext) -> CheckOutcome:
    sizes = [(2, 1), (3, 1), (4, 1), (2, 2), (3, 2), (2, 3)] + ([(4, 2), (2, 4), (3, 3)] if ctx.budget.full else [])
    rows = []
    for b, p in sizes:
        r = lb.phot_eq_degree(b, p)  # raises AssertionError (-> failed) if the certificate breaks
        if r.degree != 2 * p:
            return failed("", {"base": b, "digits": p, "degree": r.degree}, "p-hot EQ degree != 2p")
        rows.append({"base": b, "digits": p, "degree": r.degree, "layers_lower_bound": lb.layers_for_degree(2 * p)})
    pairs = ", ".join(f"(b={b}, p={p})" for b, p in sizes)
    return passed(f"exhaustive certificate over the p-hot domain + sympy formula degree for {pairs}", rows=rows)


def check_depth_vs_construction(ctx: CheckContext) -> CheckOutcome:
    """The exact-output construction (``baseconv_data_independent``, both gates) is never shallower than
    ``ceil(log2(2m))``, and the gap is reported."""
    from mqarkit.constructions import claimed_resources

    name = "baseconv_data_independent"
    rows = []
    for c in (16, 64, 256, 1024, 4096, 65536):
        for n in (8, 16, 64):
            for gate in ("per_lag", "shared") if c > n else ():  # the construction's range: c > N
                res = claimed_resources(name, vocab_size=c, seq_len=n, num_kv_pairs=max(1, n // 8), gate=gate)
                bound = lb.layers_for_degree(2 * lb.code_bits(c))
                rows.append({"c": c, "N": n, "gate": gate, "layers": res.layers, "lower_bound": bound})
                if res.layers < bound:
                    return failed("", rows[-1], "an exact-output construction is shallower than the L2 lower bound")
    gaps = sorted({(r["gate"], r["layers"] - r["lower_bound"]) for r in rows})
    return passed(
        f"{len(rows)} (c, N, gate) points, c <= {max(r['c'] for r in rows)}: layers >= ceil(log2(2m)) for both gates "
        f"of baseconv_data_independent (its output is exact); (gate, layers over the bound) in {gaps}",
        table=rows,
    )


def check_layer_degree(ctx: CheckContext) -> CheckOutcome:
    """``L`` BaseConv layers with *generic* (symbolic) weights: the output's total degree in the inputs is exactly
    ``2^L`` (so at most ``2^L`` for every choice of weights): the other half of L2's argument."""
    import sympy as sp

    from mqarkit.proofs_checks.symbolic_conv import generic_baseconv_layer

    sizes = [(3, 1, 1), (2, 2, 1), (3, 1, 2), (2, 2, 2)] + ([(2, 1, 3)] if ctx.budget.full else [])
    for n, d, layers in sizes:
        u = [[sp.Symbol(f"u_{i}_{q}") for q in range(d)] for i in range(n)]
        y = u
        for layer in range(layers):
            y = generic_baseconv_layer(y, f"L{layer}")
        inputs = [s for row in u for s in row]
        degree = max(sp.Poly(e, *inputs).total_degree() for row in y for e in row)
        if degree != 2**layers:
            return failed("", {"N": n, "d": d, "L": layers, "degree": degree}, "degree of L generic layers != 2^L")
    dims = ", ".join(f"(N={n}, d={d}, L={L})" for n, d, L in sizes)
    return passed(f"symbolic, generic weights (every W, h, b1, b2 a symbol): degree in the inputs == 2^L at {dims}")


def fano_points(full: bool) -> list[tuple[int, int, int]]:
    """``(V, D, S)`` small enough to enumerate every encoder: ``V <= 4`` (and ``(4, 2, 2)``, ``(5, 2, 1)`` on full)."""
    pts = [(2, 1, 0), (3, 1, 0), (3, 1, 1), (3, 2, 0), (3, 2, 1), (3, 2, 2), (4, 1, 1), (4, 2, 1)]
    return pts + ([(4, 2, 2), (5, 2, 1)] if full else [])


def check_fano_against_optimum(ctx: CheckContext, bound: Callable[..., float] = lb.fano_min_error) -> CheckOutcome:
    """The Fano inequality itself, on models: the smallest mean error any ``S``-bit state allows (brute force over
    every encoder, :func:`lower_bounds.optimal_mean_error`) is at least ``fano_min_error(S, D, V)``. ``bound`` is
    injectable (a test passes a too-large one and sees the check fail)."""
    tol = tolerance_for("float64")
    rows = []
    for v, d, s in fano_points(ctx.budget.full):
        optimum, fano = lb.optimal_mean_error(v, d, s), bound(s, d, v)
        rows.append({"V": v, "D": d, "S": s, "optimal_error": round(optimum, 6), "fano_bound": round(fano, 6)})
        if optimum < fano - (tol.atol + tol.rtol * fano):
            return failed("", rows[-1], "an encoder does better than the Fano bound allows")
    return passed(
        f"brute force over every encoder (partitions of the dictionaries into 2^S states, best decoder) at {len(rows)} "
        f"(V, D, S) with V <= {max(r['V'] for r in rows)}: optimal mean error >= fano_min_error everywhere",
        table=rows,
    )


# ------------------------------------------------------------------------------------------------------- claims


def _claims() -> list[Claim]:
    state_count = Check(
        "state-count", "exhaustive", "min states after the KV block == #dictionaries", check_state_enumeration
    )
    return [
        Claim(
            "L1",
            "Any causal recurrent model solving MQAR needs Omega(N) bits of state (bounded entries); exact small form: "
            "b bits answering all index queries force n <= b.",
            "[B] Thm 3.1",
            lambda: [
                state_count,
                Check(
                    "index-problem",
                    "exhaustive",
                    "index problem: 2^n states, no encoder below n bits",
                    check_index_problem,
                ),
            ],
        ),
        Claim(
            "L2",
            "A data-independent BaseConv with binary encodings (d = log2 c) whose output is exact (a polynomial equal "
            "to the answer's code) needs ceil(log2(2d)) layers: EQ of two d-bit tokens has degree 2d, L layers reach "
            "degree 2^L. The bound needs the exact output: under an argmax readout it does not hold (X1).",
            "[B] Thm 3.2",
            lambda: [
                Check("eq-degree", "symbolic", "degree of multilinear EQ_m is exactly 2m", check_binary_eq_degree),
                Check(
                    "layer-degree", "symbolic", "L generic BaseConv layers have degree exactly 2^L", check_layer_degree
                ),
                Check(
                    "depth-vs-construction",
                    "numeric",
                    "the exact-output baseconv_data_independent (both gates) has depth >= ceil(log2(2m))",
                    check_depth_vs_construction,
                ),
            ],
        ),
        Claim(
            "L3",
            "With p-hot encodings (d = p c^(1/p)) at least log2(2p) layers: EQ has degree >= 2p there (class "
            "input- vs data-independent uncertain, erratum E12; the degree argument needs a polynomial model with an "
            "exact output).",
            "[B] Rem 3.3",
            lambda: [
                Check(
                    "phot-degree", "exhaustive", "exact degree of p-hot EQ on the p-hot domain is 2p", check_phot_degree
                )
            ],
            unchecked="the input-dependent class that [B] Rem 3.3 names: an input-dependent BaseConv is not a fixed "
            "polynomial of its input, so the degree argument (all that is checked) does not reach it",
        ),
        Claim(
            "L4",
            "For c <= N, log c <= d <= 2^((log N)^(1-eps)), O(log N)-bit parameters: Omega(eps log log N) layers "
            "for AR.",
            "[B] Thm 3.4",
            lambda: [],
            open_reason="asymptotic bound with an unstated constant (a communication/polynomial-method argument); "
            "no finite instance decides it, so there is no machine check",
        ),
        Claim(
            "L5",
            "Gated recurrences (RetNet-style) need Omega(N) bits for MQAR when d <= N.",
            "[Z] App. H",
            lambda: [state_count],
            unchecked="[Z] App. H's own argument (through the gated recurrence and its width d <= N) is not "
            "machine-checked; checked is its finite core, L1's state count, which holds for every causal recurrent "
            "model and so for gated recurrences",
        ),
        Claim(
            "L6",
            "Fano frontier: D (h(P_e) + P_e log2(V-1)) >= log2(V!/(V-D)!) - S for a state of S bits after the KV "
            "block.",
            "[ours]",
            lambda: [
                Check(
                    "fano",
                    "numeric",
                    "fano_min_error edge cases, monotone, zero point == enumeration",
                    check_fano_function,
                ),
                Check(
                    "fano-vs-optimum",
                    "exhaustive",
                    "the best S-bit encoder's mean error (brute force) >= the Fano bound",
                    check_fano_against_optimum,
                ),
            ],
        ),
    ]


CLAIMS = _claims()
