"""Claims U1-U9 (theory.md section 3.1). Their checks are the generic construction checks
(:mod:`construction_checks`) of every registered construction that lists the claim in its ``claim_ids``; a claim
that no registered construction lists stays ``open`` and says so."""

from __future__ import annotations

from mqarkit.proofs_checks.construction_checks import construction_checks
from mqarkit.proofs_checks.registry import Check, Claim, not_run

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
]


def _checks_for(claim_id: str) -> list[Check]:
    checks = construction_checks(claim_id)
    if checks:
        return checks

    def _open(ctx: object, _id: str = claim_id) -> object:
        return not_run(f"no registered construction lists {_id} in its claim_ids")

    return [
        Check(f"{claim_id}:constructions", "property", f"generic checks of constructions listing {claim_id}", _open)
    ]


CLAIMS = [Claim(cid, text, src, (lambda c=cid: _checks_for(c))) for cid, text, src in UPPER]
