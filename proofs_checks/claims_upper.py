"""Claims U1-U10 (theory.md section 3.1). Their checks are the claim-specific checks of :data:`SPECIFIC` (each in its
own module: the statement's quantities, not only "it solves MQAR") followed by the generic construction checks
(:mod:`construction_checks`) of every registered construction that lists the claim in its ``claim_ids``. A claim with
neither stays ``open`` and says so.

U5 is about ``mqarkit.polynomials.compile_to_baseconv``, not a ``Construction``: its specific check is wired here
directly."""

from __future__ import annotations

from mqarkit.proofs_checks import (
    baseconv_depth,
    circuit_compile,
    delta_storage,
    h3_simulation,
    signcode_beta,
    taylor_capacity,
    u6_depth,
    u7_linear_attention,
    window_recall,
)
from mqarkit.proofs_checks.construction_checks import construction_checks
from mqarkit.proofs_checks.registry import Check, Claim, not_run

# claim id -> its specific checks (name, kind, description, function, time share)
SPECIFIC: dict[str, list[Check]] = {
    "U2": [
        Check(
            "attention_signcode:sufficient-beta",
            "numeric",
            "at beta = sufficient_beta(N, m) every clean query (and the decoy instance) has margin >= 1/m",
            signcode_beta.check_sufficient_beta,
            share=0.5,
        ),
        Check(
            "attention_signcode:decoy-below",
            "numeric",
            "at 0.9 failure_beta(K, m) a decoy instance is answered wrongly (the bound is tight up to (m/2) ln 4)",
            signcode_beta.check_decoy_fails_below,
            share=0.5,
        ),
    ],
    "U4": [
        Check(
            "baseconv_data_independent:depth-vs-L2",
            "numeric",
            "measured layers vs L2's ceil(log2(2m)): meets or exceeds, by how much",
            baseconv_depth.check_depth_vs_l2,
            share=0.25,
        ),
    ],
    "U5": [
        Check(
            "compile_to_baseconv:random-circuits",
            "symbolic",
            "cyclic and causal compiles == circuit polynomial over Q; causal compile refuses a later input",
            circuit_compile.check_circuits_compile,
            share=0.75,
        ),
        Check(
            "h3_gated:h3-as-baseconv",
            "numeric",
            "one H3 layer == its 4-layer width-2d BaseConv model (float64 assert_close; exact == at small sizes)",
            h3_simulation.check_h3_equals_baseconv,
            share=0.25,
        ),
    ],
    "U6": [
        Check(
            "baseconv_data_independent:depth-loglog",
            "numeric",
            "measured depth == 1 + ceil(log2(m+1)) <= 3 + log2 log2 c at c > N, clean queries answered (float64)",
            u6_depth.check_depth_loglog,
        ),
    ],
    "U7": [
        Check(
            "baseconv_linear_attention:simulation",
            "numeric",
            "unnormalised linear attention == its BaseConv stack (float64; exact == at small sizes); resources",
            u7_linear_attention.check_simulation,
            share=0.75,
        ),
        Check(
            "baseconv_linear_attention:polynomial",
            "symbolic",
            "BaseConv polynomial == linear-attention polynomial over Q; the normalised form is not a polynomial",
            u7_linear_attention.check_symbolic,
            share=0.75,
        ),
    ],
    "U8": [
        Check(
            "sliding_window:recall-set",
            "property",
            "correct exactly at the queries recalled(batch, w) marks, several windows per size",
            window_recall.check_recall_set,
        ),
        Check(
            "sliding_window:expected-accuracy",
            "numeric",
            "expected_accuracy(spec, w) inside the 99.9% Wilson interval of the measured accuracy",
            window_recall.check_expected_accuracy,
            share=2.5,
        ),
    ],
    "U9": [
        Check(
            "based_taylor:regime-a-zero-filler",
            "property",
            "one-hot values: every query of zero-filler instances (the claimed range) exact",
            taylor_capacity.check_regime_a_zero_filler,
        ),
        Check(
            "based_taylor:regime-b-capacity",
            "numeric",
            "sign-code values: measured recall vs predicted_recall within the construction's stated 0.08",
            taylor_capacity.check_regime_b_capacity,
            share=0.75,
        ),
        Check(
            "based_taylor:regime-b-exact-condition",
            "property",
            "sign-code values: a query is recalled iff the stated exact condition holds (integer arithmetic)",
            taylor_capacity.check_regime_b_exact_condition,
            share=0.5,
        ),
    ],
    "U10": [
        Check(
            "delta_rule:storage-lemma",
            "property",
            "beta = 1, orthonormal (dense rational) keys, repeated writes in random order: every read == last write",
            delta_storage.check_storage_lemma,
            share=0.5,
        ),
        Check(
            "delta_rule:orthogonality-needed",
            "property",
            "d_k + 1 keys in d_k dimensions: some read differs (the hypothesis is not vacuous)",
            delta_storage.check_orthogonality_needed,
            share=0.25,
        ),
    ],
}

UPPER: list[tuple[str, str, str]] = [
    (
        "U1",
        "Softmax-free attention solves MQAR in 2 layers with O(c^2) parameters (one-hot width c), width "
        "independent of N; layer 2 is a one-hot QK^T V lookup with a strict mask j < i.",
        "[Z] Prop 4.3",
    ),
    (
        "U2",
        "Softmax attention with sign codes of width m solves MQAR at inverse temperature beta = O(m log(N m)), "
        "width O(log c) independent of N.",
        "[ours]",
    ),
    (
        "U3",
        "Input-dependent BaseConv solves MQAR with O(t N c) parameters and O(1) layers when at most t distinct "
        "interaction distances occur (position gates for keys, raw offsets 3D+2 / 3D+1).",
        "[Z] Thm 4.5",
    ),
    (
        "U4",
        "Data-independent BaseConv solves MQAR with O~(N log c) parameters and O~(1) layers (construction "
        "ours: all distances, sign-code equality trees of depth ceil(log2(2m))).",
        "[Z] Thm 4.4; construction [ours]",
    ),
    (
        "U5",
        "BaseConv simulates any arithmetic circuit: 2 layers per circuit level, width inputs + size; causal-only "
        "BaseConv cannot read a later input, the cyclic variant can.",
        "[Z] Thm 4.2, [F]",
    ),
    (
        "U6",
        "O(max(log log c, log log N)) BaseConv layers suffice in some settings (the depth bound is tight).",
        "[B] Thm F.30",
    ),
    ("U7", "BaseConv simulates linear attention with poly-log blowup in layers.", "[B] Prop F.8"),
    (
        "U8",
        "Sliding-window attention of width w recalls a query iff its key-value pair lies inside the window.",
        "[ours]",
    ),
    (
        "U9",
        "Linear attention recalls exactly when the keys present are orthogonal in feature space and the readout "
        "is sharp enough.",
        "[ours]",
    ),
    (
        "U10",
        "The delta rule (beta = 1) stores D key-value pairs exactly in a d_k x d_v state when the keys are "
        "orthonormal (D <= d_k); with a shift and one-hot keys (d_k = c) it solves MQAR with state c + c m.",
        "[ours]",
    ),
]


def _checks_for(claim_id: str) -> list[Check]:
    checks = SPECIFIC.get(claim_id, []) + construction_checks(claim_id)
    if checks:
        return checks

    def _open(ctx: object, _id: str = claim_id) -> object:
        return not_run(f"no registered construction lists {_id} in its claim_ids")

    return [
        Check(f"{claim_id}:constructions", "property", f"generic checks of constructions listing {claim_id}", _open)
    ]


CLAIMS = [Claim(cid, text, src, (lambda c=cid: _checks_for(c))) for cid, text, src in UPPER]
