"""U5 through a gated-convolution model: one H3 layer equals a 4-layer width-``2d`` BaseConv model
(``mqarkit.constructions.h3_gated``, an instance of [Z] Thm 4.2's "BaseConv simulates gated convolutions").

:func:`h3_simulation_mismatch` compares, per ``(seq_len, width)``, random float64 parameters and inputs through
``assert_close``, rational ones through the exact backend with ``==`` where ``seq_len * width <= 24``, and claimed
resources against the IR's analysis. :func:`check_h3_equals_baseconv` wires it as a registry check with budget-dependent
sizes, including awkward ones (``N = 1``, odd ``N``, ``d`` not a power of two).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from mqarkit.constructions import h3_gated
from mqarkit.constructions.h3_gated import (
    H3Params,
    claimed_resources,
    random_h3_params,
    run_h3_baseconv,
)
from mqarkit.polynomials import Model, analyse
from mqarkit.proofs_checks.registry import CheckContext, CheckOutcome, failed, passed
from mqarkit.tolerances import assert_close

SIZES = [(1, 1), (2, 2), (3, 5), (4, 3), (6, 4), (7, 3), (8, 4), (16, 8), (32, 16)]
FULL_SIZES = [(64, 16), (127, 12), (128, 32), (256, 64)]


def _point_seed(seq_len: int, width: int, exact: bool) -> int:
    return 1_000_003 * seq_len + 1009 * width + int(exact)


def _resources_mismatch(params: H3Params, model: Model, seq_len: int) -> dict[str, Any] | None:
    claimed = claimed_resources(params, seq_len)
    got = analyse(model, seq_len)
    pairs = {f: (getattr(claimed, f), getattr(got, f)) for f in ("layers", "width", "parameters", "state_numbers")}
    pairs["degree_bound"] = (claimed.degree_bound, got.degree_bound)
    bad = {f: {"claimed": c, "measured": g} for f, (c, g) in pairs.items() if c != g}
    return bad or None


def h3_simulation_mismatch(budget_sizes: Sequence[tuple[int, int]]) -> tuple[bool, str, dict[str, Any] | None]:
    """Check that the BaseConv model equals the H3 layer at each ``(seq_len, width)`` in ``budget_sizes``.

    Per size: state sizes ``s = 1 + seq_len // 3``, ``m = 2``; float64 parameters and a batch of 2 inputs (seeded
    ``numpy.random.Generator`` per size) compared with ``assert_close``; claimed resources == ``analyse``. Where
    ``seq_len * width <= 24`` also rational parameters and inputs through the ``exact`` backend, compared with ``==``.
    Returns ``(passed, covered, counterexample)``; stops at the first failure, whose size and reason it returns."""
    sizes = [(int(n), int(d)) for n, d in budget_sizes]
    for n, d in sizes:
        if n < 1 or d < 1:
            raise ValueError(f"budget_sizes: ({n}, {d}); every (seq_len, width) needs seq_len >= 1 and width >= 1")
    done_float: list[tuple[int, int]] = []
    done_exact: list[tuple[int, int]] = []

    def covered() -> str:
        return (
            f"H3 layer (single head, s = 1 + N//3, m = 2) == 4-layer width-2d BaseConv: float64 (assert_close, "
            f"random batch of 2) at (N, d) in {done_float}; exact over Q (==) at (N, d) in {done_exact}; "
            f"claimed resources == analyse at every float64 size"
        )

    for n, d in sizes:
        s, m = 1 + n // 3, 2
        rng = np.random.default_rng(_point_seed(n, d, False))
        params = random_h3_params(rng, d, s, m)
        u = rng.normal(size=(2, n, d))
        model = h3_gated.h3_as_baseconv(params, n)
        try:
            assert_close(run_h3_baseconv(model, u), h3_gated.h3_layer_direct(u, params), context=f"H3 at N={n}, d={d}")
        except AssertionError as err:
            return False, covered(), {"seq_len": n, "width": d, "backend": "float64", "error": str(err)[:500]}
        bad = _resources_mismatch(params, model, n)
        if bad:
            return False, covered(), {"seq_len": n, "width": d, "resources": bad}
        done_float.append((n, d))
        if n * d <= 24:
            rng = np.random.default_rng(_point_seed(n, d, True))
            params = random_h3_params(rng, d, s, m, exact=True)
            u_exact = np.array([[Fraction(int(x), 2) for x in row] for row in rng.integers(-4, 5, size=(n, d))])
            got = run_h3_baseconv(h3_gated.h3_as_baseconv(params, n), u_exact, backend="exact")
            want = h3_gated.h3_layer_direct(u_exact, params)
            if not (got == want).all():
                where = tuple(int(i) for i in np.argwhere(got != want)[0])
                return (
                    False,
                    covered(),
                    {
                        "seq_len": n,
                        "width": d,
                        "backend": "exact",
                        "entry": where,
                        "got": str(got[where]),
                        "want": str(want[where]),
                    },
                )
            done_exact.append((n, d))
    return True, covered(), None


def check_h3_equals_baseconv(ctx: CheckContext) -> CheckOutcome:
    ok, covered, counterexample = h3_simulation_mismatch(SIZES + (FULL_SIZES if ctx.budget.full else []))
    if not ok:
        return failed(covered, counterexample, "the 4-layer BaseConv model differs from the H3 layer")
    return passed(covered)
