"""U5 through a gated-convolution model: one H3 layer equals a 4-layer width-``2d`` BaseConv model
(``mqarkit.constructions.h3_gated``, an instance of [Z] Thm 4.2's "BaseConv simulates gated convolutions").

The comparison itself is the construction's ``check_h3_simulation(sizes)``: per ``(seq_len, width)``, random float64
parameters and inputs compared through ``assert_close``, rational ones through the exact backend with ``==`` where
``seq_len * width <= 24``, and claimed resources against the IR's analysis. Here it is wired as a registry check with
budget-dependent sizes, including awkward ones (``N = 1``, odd ``N``, ``d`` not a power of two).
"""

from __future__ import annotations

from mqarkit.proofs_checks.registry import CheckContext, CheckOutcome, failed, not_run, passed

SIZES = [(1, 1), (2, 2), (3, 5), (4, 3), (6, 4), (7, 3), (8, 4), (16, 8), (32, 16)]
FULL_SIZES = [(64, 16), (127, 12), (128, 32), (256, 64)]


def check_h3_equals_baseconv(ctx: CheckContext) -> CheckOutcome:
    try:
        from mqarkit.constructions.h3_gated import check_h3_simulation
    except ImportError as exc:
        return not_run(f"mqarkit.constructions.h3_gated is not importable: {exc}")
    ok, covered, counterexample = check_h3_simulation(SIZES + (FULL_SIZES if ctx.budget.full else []))
    if not ok:
        return failed(covered, counterexample, "the 4-layer BaseConv model differs from the H3 layer")
    return passed(covered)
