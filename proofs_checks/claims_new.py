"""The toolkit's own results beyond the papers (issue 19): X1 (depth under an argmax readout), X2 (the lookup's mask
only matters at ambiguous queries) and X3 (the delta rule's capacity). Each is a registered claim with its checks, a
row of ``docs/tables/claims.md`` and a paragraph in the lower-bounds walkthrough."""

from __future__ import annotations

from mqarkit.proofs_checks import argmax_depth, delta_capacity, mask_claim
from mqarkit.proofs_checks.construction_checks import construction_checks
from mqarkit.proofs_checks.registry import Check, Claim

CLAIMS = [
    Claim(
        "X1",
        "With an argmax readout, a data-independent BaseConv on sign codes (m = ceil(log2 c) >= 3) needs exactly 1 "
        "layer for D = 1 and exactly 2 for D = 2 at every m (any width), so L2's ceil(log2(2m)) (5 at m = 13, 16) "
        "bounds exact outputs only; for D >= 3 depth 2 + j suffices when the sharpened lookup's interference is below "
        "its match score (an exact condition), e.g. 4 layers for D <= 5 at m = 13, below both L2 and the exact-output "
        "construction's 5.",
        "[ours]",
        lambda: [
            Check(
                "argmax-depth:lower-bounds",
                "exhaustive",
                "0 layers fail D = 1; no degree-2 (1-layer) output solves D = 2: a sign-degree certificate on 16 "
                "instances",
                argmax_depth.check_lower_bounds,
            ),
            Check(
                "argmax-depth:constructions",
                "property",
                "baseconv_argmax_lookup at argmax_depth(c, D) solves random and worst instances; one layer less "
                "fails its worst instance",
                argmax_depth.check_construction_depths,
            ),
            *construction_checks("X1"),
        ],  # fmt: skip
        unchecked="the smallest depth for D >= 3 is bracketed, not settled: the lower bound there is 2, the upper "
        "bound the better of the sharpened lookup and the exact-output construction",
    ),
    Claim(
        "X2",
        "The raw-token lookups (U1 one-hot, U2 sign codes) give the same prediction under a causal mask (s <= t, a "
        "token sees itself) and a strict one (s < t) at every query the oracle does not flag ambiguous; they can "
        "differ only at ambiguous queries (a filler equal to the key right before it). The sign-code margin >= 1/m "
        "holds under the causal mask at beta* = (m/2) ln 4(N-1) instead of (m/2) ln 4(N-2).",
        "[ours]; issue 18",
        lambda: [
            Check(
                "lookup-masks:exhaustive",
                "exhaustive",
                "every random-filler instance of two tiny sizes: masks agree at unambiguous queries, differ at "
                "some ambiguous ones",
                mask_claim.check_masks_exhaustive,
            ),
            Check(
                "lookup-masks:random-filler",
                "property",
                "random-filler batches up to N = 64: masks agree at unambiguous queries; causal margin >= 1/m at "
                "its beta*",
                mask_claim.check_masks_random_filler,
            ),
        ],  # fmt: skip
    ),
    Claim(
        "X3",
        "The delta rule's capacity (beta = 1, keys in R^{d_k}): orthonormal keys store D <= d_k pairs exactly "
        "(U10); no keys store D > d_k pairs with linearly independent values exactly (the reads have rank <= d_k); a "
        "unit key's last write is always read back exactly; with an argmax readout, D random unit keys beyond d_k "
        "recall a fraction below 1 that falls as D/d_k grows (measured). The delta_rule construction (one-hot keys, "
        "d_k = c > 2D) stays in the exact regime.",
        "[ours]",
        lambda: [
            Check(
                "delta-capacity:rank-bound",
                "exhaustive",
                "D > d_k random rational keys, independent values: the reads' rank over Q is <= d_k",
                delta_capacity.check_rank_bound,
            ),
            Check(
                "delta-capacity:last-write",
                "property",
                "unit sign-code keys, D up to 4 d_k: the last write is read back exactly (over Q)",
                delta_capacity.check_last_write_exact,
            ),
            Check(
                "delta-capacity:curve",
                "numeric",
                "argmax recall vs D/d_k: 1 with orthonormal keys up to d_k, below 1 and falling beyond",
                delta_capacity.check_capacity_curve,
            ),
        ],  # fmt: skip
    ),
]
