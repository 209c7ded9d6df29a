"""U7 ([B] Prop F.8: BaseConv simulates linear attention), checked for concrete instances.

The simulation is :mod:`mqarkit.constructions.baseconv_linear_attention`: causal *unnormalised* linear attention
``y_i = Σ_{j≤i} (φ(q_i)·φ(k_j)) v_j`` with the identity map or Based's Taylor map without the ``d'`` scalings
(``TaylorMap(scale=False)``, layouts ``full`` and ``compressed``) as a BaseConv stack of ``e + 3`` layers (4 or 5) and
width ``F·dv + F + max(d, dv)``. What the checks cover is constant depth and width ``O(F·dv)`` for these maps, not the
general statement with its poly-log blowup, which stays unverified; the normalised form is a rational function and no
BaseConv stack (a polynomial map) computes it exactly: :func:`check_symbolic` also exhibits the non-constant reduced
denominator.

- :func:`check_simulation` (numeric): per ``(N, d, dk, dv)`` and map, random float64 projections and a batch of 2
  inputs, the stack's output against ``mqarkit.polynomials.LinearAttention(normalise=False)`` and an independent loop
  (``assert_close``); claimed resources (layers, width, parameters, conv state, degree bound) ``==`` ``analyse``; where
  ``N·d <= 24`` also rational projections and inputs through the ``exact`` backend, ``==`` against both.
- :func:`check_symbolic` (symbolic): generic symbols ``u_i_q`` and rational projections at small sizes; the stack's
  output polynomial ``==`` the linear-attention polynomial (both references) and has degree ``2e + 1``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mqarkit.proofs_checks.point_runner import run_points
from mqarkit.proofs_checks.registry import CheckContext, CheckOutcome, failed, not_run, passed

MAPS = (("identity", "full"), ("taylor", "full"), ("taylor", "compressed"))
# (N, d, dk, dv): N = 1, odd N, d != dk != dv, d < dv (the aux block holds y), widths not powers of two
SIZES = [
    (1, 1, 1, 1),
    (2, 2, 1, 3),
    (3, 2, 2, 1),
    (5, 3, 2, 2),
    (7, 1, 3, 2),
    (8, 4, 2, 3),
    (16, 5, 3, 2),
    (33, 6, 4, 3),
]
FULL_SIZES = [(64, 8, 4, 4), (127, 12, 6, 5), (256, 16, 8, 8)]
SYMBOLIC_SIZES = [(1, 1, 1, 1), (2, 1, 1, 2), (3, 2, 2, 1), (2, 2, 2, 2)]
FULL_SYMBOLIC_SIZES = [(4, 2, 2, 2), (3, 3, 2, 2)]
EXACT_MAX_ENTRIES = 24  # N * d at or below which the exact backend runs too


def _module() -> Any:
    from mqarkit.constructions import baseconv_linear_attention

    return baseconv_linear_attention


def _points(sizes: list[tuple[int, int, int, int]], exact: bool) -> list[Any]:
    mod = _module()
    return [
        mod.SimulationPoint(n, d, dk, dv, fm, layout, exact=exact and n * d <= EXACT_MAX_ENTRIES)
        for n, d, dk, dv in sizes
        for fm, layout in MAPS
    ]


def check_simulation(ctx: CheckContext, builder: Callable[..., Any] | None = None) -> CheckOutcome:
    """See the module docstring. ``builder`` replaces the construction's (tests pass a broken one)."""
    try:
        mod = _module()
    except ImportError as exc:
        return not_run(f"mqarkit.constructions.baseconv_linear_attention is not importable: {exc}")
    build = builder or mod.linear_attention_as_baseconv
    points = _points(SIZES + (FULL_SIZES if ctx.budget.full else []), exact=True)
    ran, bad = run_points(ctx, points, lambda p: mod.check_point(p, builder=build))
    exact = sorted({(p.seq_len, p.in_width, p.key_width, p.value_width) for p in ran if p.exact})
    sizes = sorted({(p.seq_len, p.in_width, p.key_width, p.value_width) for p in ran})
    maps = sorted({p.label().split("(")[0] for p in ran})
    covered = (
        f"unnormalised causal linear attention ({', '.join(maps)} maps; Taylor unscaled) == its (e+3)-layer BaseConv "
        f"stack of width F*dv + F + max(d, dv): float64 (assert_close vs LinearAttention and a loop) and claimed "
        f"resources == analyse at (N, d, dk, dv) in {sizes}; exact over Q (==) at {exact}. Concrete instances with "
        f"constant depth (4 identity, 5 Taylor), not [B]'s general poly-log statement"
    )
    if bad is not None:
        return failed(covered, bad, "the BaseConv stack differs from linear attention (or its resources)")
    return passed(covered, points=len(ran))


def check_symbolic(ctx: CheckContext, builder: Callable[..., Any] | None = None) -> CheckOutcome:
    """See the module docstring."""
    try:
        mod = _module()
    except ImportError as exc:
        return not_run(f"mqarkit.constructions.baseconv_linear_attention is not importable: {exc}")
    build = builder or mod.linear_attention_as_baseconv
    points = _points(SYMBOLIC_SIZES + (FULL_SYMBOLIC_SIZES if ctx.budget.full else []), exact=False)
    ran, bad = run_points(ctx, points, lambda p: mod.check_symbolic(p, builder=build))
    denominators = {fm: mod.normalised_denominator_degree(fm) for fm in ("identity", "taylor")}
    sizes = sorted({(p.seq_len, p.in_width, p.key_width, p.value_width) for p in ran})
    covered = (
        f"BaseConv stack output == unnormalised linear-attention polynomial over Q (generic u, rational projections), "
        f"exact degree 2e+1, identity / Taylor full / Taylor compressed at (N, d, dk, dv) in {sizes}; normalised form "
        f"at N = 2: reduced denominator of degree {denominators} (> 0: not a polynomial, so no BaseConv computes it)"
    )
    if bad is not None:
        return failed(covered, bad, "the BaseConv polynomial differs from linear attention's")
    if min(denominators.values()) < 1:
        return failed(covered, denominators, "the normalised output reduced to a polynomial at N = 2")
    return passed(covered, normalised_denominator_degree=denominators)
