"""Errata E1-E13 (theory.md section 7) as claims: the corrected statement, its source, and its checks
(:mod:`errata_checks`; constructions that list the erratum in ``claim_ids`` add their generic checks)."""

from __future__ import annotations

from collections.abc import Callable

from mqarkit.proofs_checks import autocorrelation_witness, keys_only_gate
from mqarkit.proofs_checks import errata_checks as ec
from mqarkit.proofs_checks.construction_checks import construction_checks
from mqarkit.proofs_checks.registry import Check, CheckContext, CheckOutcome, Claim

Fn = Callable[[CheckContext], CheckOutcome]


def _with_constructions(cid: str, *own: tuple[str, str, str, Fn]) -> Callable[[], list[Check]]:
    """The claim's own checks, then the generic checks of constructions listing ``cid`` (none list an erratum today)."""

    def checks() -> list[Check]:
        return [Check(n, k, d, f) for n, k, d, f in own] + construction_checks(cid)

    return checks


CLAIMS = [
    Claim(
        "E1",
        "MQAR needs unique keys or a consistent dictionary (equal keys => equal values).",
        "[F]",
        _with_constructions(
            "E1",
            (
                "ambiguity",
                "exhaustive",
                "smallest ambiguous instance has 3 triples; none with unique keys or a consistent dictionary",
                ec.check_e1_ambiguity,
            ),
        ),
    ),
    Claim(
        "E2",
        "The printed attention lookup is unmasked: it reads pairs after the query, and a mask is needed. A causal "
        "mask s <= t (a token sees itself) suffices on unambiguous queries; a strict one s < t differs from it only "
        "at ambiguous queries (X2) [corrected: [F] asked for a strict mask].",
        "[F] on [Z] Prop 4.3; issue 18",
        _with_constructions(
            "E2",
            (
                "lookup-mask",
                "property",
                "causal and strict one-hot lookups answer every clean query; unmasked and key<=t lookups fail",
                ec.check_e2_mask,
            ),
        ),
    ),
    Claim(
        "E3",
        "Shift down by s is the impulse X^s, not X^(s+1).",
        "[F] on [Z]",
        _with_constructions(
            "E3", ("impulse-shift", "symbolic", "causal conv with X^s == shift by s", ec.check_e3_shift)
        ),
    ),
    Claim(
        "E4",
        "Cyclic convolution with the identity filter does not reverse; shift up = cyclic impulse at -s plus a mask.",
        "[F] on [Z]",
        _with_constructions(
            "E4",
            (
                "cyclic-shift-up",
                "symbolic",
                "identity filter is identity; X^(N-s) + mask == shift up",
                ec.check_e4_cyclic,
            ),
        ),
    ),
    Claim(
        "E5",
        "Data-dependent MQAR: key->query offset is 3D+2 and value->query 3D+1 on the raw triple stream.",
        "[F] on [Z] Thm 4.5",
        _with_constructions("E5", ("raw-offsets", "exhaustive", "positions on the raw 3n stream", ec.check_e5_offsets)),
    ),
    Claim(
        "E6",
        "Keys-only masking needs a position gate: a shared W cannot do it when a query repeats a key.",
        "[F] on [Z] Thm 4.5",
        _with_constructions(
            "E6",
            ("keys-only", "symbolic", "shared-W system infeasible; position gate works", ec.check_e6_keys_only),
            (
                "baseconv_data_independent:position-gates",
                "property",
                "position-gated construction answers every query when fillers repeat key tokens",
                keys_only_gate.check_position_gates_on_repeated_keys,
            ),
        ),
    ),
    Claim(
        "E7",
        "Top-t autocorrelation lags may miss a needed lag.",
        "[F] on [Z] Thm 4.5",
        _with_constructions(
            "E7",
            (
                "autocorrelation",
                "property",
                "find an instance whose needed lag is not a top-t peak",
                ec.check_e7_autocorrelation,
            ),
            (
                "baseconv_input_dependent:autocorrelation-lags",
                "property",
                "the U3 construction with lags='autocorrelation' misses a query that lags='exact' answers",
                autocorrelation_witness.check_construction_misses_a_lag,
            ),
        ),
    ),
    Claim(
        "E8",
        "Causal-only BaseConv cannot simulate a circuit that reads a later input (the cyclic variant can).",
        "[F] on [Z] Thm 4.2",
        _with_constructions(
            "E8",
            (
                "causal-reads",
                "symbolic",
                "generic causal stack output row i uses only u[0..i]",
                ec.check_e8_causal_circuit,
            ),
        ),
    ),
    Claim(
        "E9",
        "Per-layer O(Nd) cost needs structured (Kaleidoscope) W; dense W gives O(Nd + d^2) parameters.",
        "[F] on [Z]",
        _with_constructions(
            "E9", ("dense-params", "symbolic", "dense layer has d^2 + 3Nd parameters", ec.check_e9_parameters)
        ),
    ),
    Claim(
        "E10",
        "Bit lower bounds need bounded / finite-precision state.",
        "[F] on [B] Thm 3.1",
        _with_constructions(
            "E10",
            ("exact-real-state", "exhaustive", "one exact rational answers all index queries", ec.check_e10_precision),
        ),
    ),
    Claim(
        "E11",
        "Read [B] Thm 3.4's range as d <= 2^((log N)^(1-eps)) and Rem 3.3's width as p c^(1/p).",
        "[F]",
        _with_constructions("E11", ("bound-ranges", "numeric", "evaluate both ranges", ec.check_e11_ranges)),
        unchecked="which reading the authors meant is a matter of the text: the check shows the corrected ranges are "
        "consistent (non-empty, interpolating one-hot and binary widths), not that they are the intended ones",
    ),
    Claim(
        "E12",
        "Rem 3.3 says input-dependent, [J] says data-independent: the class of L3 is uncertain.",
        "[F]",
        lambda: [],
        open_reason="a disagreement between two texts; the degree argument checked under L3 needs a "
        "model whose output is a polynomial of bounded degree (data-independent), which is all a machine can check",
    ),
    Claim(
        "E13",
        "The Taylor map's docstring drops the sqrt(d') scalings the code applies; state count (153) and "
        "materialised width (273) disagree at d' = 16.",
        "[F] on [B] code",
        _with_constructions(
            "E13", ("taylor-map", "symbolic", "both Taylor maps give the kernel; widths", ec.check_e13_taylor)
        ),
    ),
]
