"""Every claim of theory.md section 3 (U1-U10, L1-L6), section 7 (E1-E13) and the toolkit's own (X1-X3), in that
order."""

from __future__ import annotations

from mqarkit.proofs_checks import claims_errata, claims_lower, claims_new, claims_upper
from mqarkit.proofs_checks.registry import Claim

CLAIM_IDS: tuple[str, ...] = (
    *(f"U{i}" for i in range(1, 11)),
    *(f"L{i}" for i in range(1, 7)),
    *(f"E{i}" for i in range(1, 14)),
    *(f"X{i}" for i in range(1, 4)),
)


def all_claims() -> list[Claim]:
    claims = {c.id: c for c in (*claims_upper.CLAIMS, *claims_lower.CLAIMS, *claims_errata.CLAIMS, *claims_new.CLAIMS)}
    if set(claims) != set(CLAIM_IDS):
        raise AssertionError(f"catalog mismatch: {sorted(set(claims) ^ set(CLAIM_IDS))}")
    return [claims[i] for i in CLAIM_IDS]


def select(ids: list[str] | None) -> list[Claim]:
    """The claims with these ids (all when ``None``); an unknown id raises ``ValueError`` listing the known ones."""
    claims = all_claims()
    if ids is None:
        return claims
    unknown = [i for i in ids if i not in CLAIM_IDS]
    if unknown:
        raise ValueError(f"claims: unknown id(s) {', '.join(unknown)}; known ids: {', '.join(CLAIM_IDS)}")
    wanted = set(ids)
    return [c for c in claims if c.id in wanted]
