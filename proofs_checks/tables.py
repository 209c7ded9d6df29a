"""``mqarkit tables``: the dimension-bound tables (Markdown, CSV, LaTeX), deterministic.

    mqarkit tables [--out docs/tables]

Writes, for the grid ``N in {64, 256, 1024, 4096, 16384, 65536}``, ``c in {2^8, 2^12, 2^16}``, ``D in {N/16, N/4}``:

- ``bounds.*``: the lower bounds that apply at each point: L1 (index reduction: ``D`` bits, one per stored value),
  L6 (zero-error information minimum ``log2(V!/(V-D)!)`` bits, ``V = c - c//2`` value tokens), L2 (data-independent
  BaseConv with binary codes and an exact output: ``ceil(log2(2m))`` layers, ``m = ceil(log2 c)``) and, beside it, X1's
  smallest depth found for an argmax readout (the sharpened lookup or the exact-output construction);
- ``constructions.*``: for every registered construction and knob variant checked by ``mqarkit verify``, its claimed
  layers, width, parameters (dense storage, and
  the non-zero entries where the construction states them, erratum 9; ``-`` otherwise) and state (numbers;
  bytes at fp32 and bf16), and the ratio of its state bits (fp32 and bf16) to the L6 minimum; a point outside the
  construction's range is marked ``out of range`` with the rule it broke;
- ``state_accounting.*``: the reference implementation's state formulas (theory.md 5.1) next to ours;
- ``claims.*``: every claim of the registry (``mqarkit verify``): id, source, statement, the checks it runs and the part
  of its statement no check reaches (what makes it at most ``partial``). Statuses are not in the table: they come
  from running the checks (``reports/verify.md``).

Regenerate after constructions change with ``mqarkit tables`` (one command); a test fails when the committed tables
are stale.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from mqarkit.cli import CommandParser, reports_usage_errors
from mqarkit.outputs import check_output_folder
from mqarkit.proofs_checks import lower_bounds as lb

LENGTHS = (64, 256, 1024, 4096, 16384, 65536)
VOCABS = (2**8, 2**12, 2**16)
PAIR_FRACTIONS = (16, 4)  # D = N / 16, N / 4


def grid() -> list[tuple[int, int, int]]:
    """(c, N, D) points where the task is well-formed for the bounds: ``D <= c//2 - 1`` distinct keys."""
    return [(c, n, n // f) for n in LENGTHS for c in VOCABS for f in PAIR_FRACTIONS if n // f <= c // 2 - 1]


def argmax_depth_found(vocab_size: int, num_kv_pairs: int) -> int:
    """X1: the smallest data-independent depth found with an argmax readout (``baseconv_argmax_lookup`` or the
    exact-output ``baseconv_data_independent``, whichever is shallower)."""
    from mqarkit.constructions.baseconv_argmax_lookup import argmax_depth

    exact = 1 + lb.code_bits(vocab_size).bit_length()
    found = argmax_depth(vocab_size, num_kv_pairs)
    return exact if found is None else min(found, exact)


def bound_rows() -> list[dict[str, object]]:
    rows = []
    for c, n, d in grid():
        v = c - c // 2
        m = lb.code_bits(c)
        rows.append({
            "N": n, "c": c, "D": d,
            "L1 bits (index)": d,
            "L6 bits (log2 V!/(V-D)!)": round(lb.information_minimum_bits(d, v), 1),
            "L2 layers (binary, data-indep., exact output)": lb.layers_for_degree(2 * m),
            "X1 layers found (argmax readout)": argmax_depth_found(c, d),
        })  # fmt: skip
    return rows


def construction_rows() -> list[dict[str, object]]:
    from mqarkit.constructions import claimed_resources, names
    from mqarkit.proofs_checks.construction_checks import knobs_for, variants_of

    rows = []
    for name, variant in ((n, v) for n in names() for v in variants_of(n)):
        for c, n, d in grid():
            knobs = {**knobs_for(name, c, n, d), **variant}
            row: dict[str, object] = {"construction": name, "N": n, "c": c, "D": d}
            row["knobs"] = ", ".join(f"{k}={v}" for k, v in knobs.items()) or "-"
            try:
                r = claimed_resources(name, vocab_size=c, seq_len=n, num_kv_pairs=d, **knobs)
            except ValueError as exc:
                row.update({"status": f"out of range: {exc}"})
                rows.append(row)
                continue
            minimum = lb.information_minimum_bits(d, c - c // 2)
            row.update({
                "status": "ok", "layers": r.layers, "width": r.width, "parameters": r.parameters,
                "nonzero parameters": "-" if r.nonzero_parameters is None else r.nonzero_parameters,
                "state numbers": r.state_numbers, "state bytes fp32": 4 * r.state_numbers,
                "state bytes bf16": 2 * r.state_numbers,
                "fp32 bits / L6": round(32 * r.state_numbers / minimum, 2),
                "bf16 bits / L6": round(16 * r.state_numbers / minimum, 2),
            })  # fmt: skip
            rows.append(row)
    return rows


# reference (theory.md 5.1) vs ours (the IR's analysis policy, constructions/api.py Resources)
STATE_ACCOUNTING: list[dict[str, str]] = [
    {"mixer": "softmax attention", "reference": "2·d·L", "ours": "(d_k + d_v)·N",
     "difference": "same when d_k = d_v = d; ours counts key and value widths separately and uses the length run"},
    {"mixer": "sliding window (width w)", "reference": "2·w·d", "ours": "(d_k + d_v)·(keys the mask admits)",
     "difference": "the reference mask admits w + 1 keys while the formula counts w; ours counts what is carried"},
    {"mixer": "BaseConv short conv (k taps)", "reference": "d·k", "ours": "(k - 1)·d",
     "difference": "a causal conv needs only the k - 1 previous inputs; the current one is the step's input"},
    {"mixer": "BaseConv long / implicit conv", "reference": "d·L", "ours": "(N - 1)·d",
     "difference": "same policy as the short conv: the cache holds the N - 1 previous inputs"},
    {"mixer": "Based linear attention", "reference": "h·(d/h)·F + h·F, F = 1 + d' + d'(d'+1)/2",
     "ours": "F·d_v + F per head, F = the feature width materialised",
     "difference": "the reference counts the compressed width (153 at d' = 16) while its module materialises "
     "1 + d' + d'^2 (273); ours counts what is carried, S (F x d_v) and the normaliser z (F)"},
    {"mixer": "DeltaNet (delta rule)", "reference": "H·d_k·d_v", "ours": "d_k·d_v per head (S)",
     "difference": "same for S; the reference leaves out DeltaNet's short-conv caches, ours counts a construction's "
     "shift cache as a convolution ((k - 1)·d)"},
]  # fmt: skip


def claim_rows() -> list[dict[str, object]]:
    """One row per registered claim: id, source, statement, its checks, and the part no check reaches."""
    from mqarkit.proofs_checks.catalog import all_claims

    rows = []
    for claim in all_claims():
        checks = claim.checks()
        rows.append({"claim": claim.id, "source": claim.source, "statement": claim.statement,
                     "checks": ", ".join(c.name for c in checks) or "-",
                     "not checked": claim.unchecked or (claim.open_reason if not checks else "") or "-"})  # fmt: skip
    return rows


def _markdown(rows: list[dict[str, object]], title: str, note: str) -> str:
    if not rows:
        return f"# {title}\n\n{note}\n\n(no rows: no construction is registered)\n"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    out = [f"# {title}", "", note, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r.get(k, "")).replace("|", "\\|") for k in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _csv(rows: list[dict[str, object]]) -> str:
    buf = io.StringIO()
    cols = list(dict.fromkeys(k for r in rows for k in r)) or ["empty"]
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _latex(rows: list[dict[str, object]], title: str) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    if not cols:
        return f"% {title}: no rows\n"

    def esc(x: object) -> str:
        s = str(x)
        for a, b in (("\\", "\\textbackslash{}"), ("&", "\\&"), ("%", "\\%"), ("_", "\\_"), ("#", "\\#"),
                     ("^", "\\^{}"), ("·", "$\\cdot$")):  # fmt: skip
            s = s.replace(a, b)
        return s

    out = [f"% {title} (generated by mqarkit tables)", "\\begin{tabular}{" + "l" * len(cols) + "}", "\\hline"]
    out.append(" & ".join(esc(c) for c in cols) + " \\\\ \\hline")
    out += [" & ".join(esc(r.get(c, "")) for c in cols) + " \\\\" for r in rows]
    out += ["\\hline", "\\end{tabular}"]
    return "\n".join(out) + "\n"


def render() -> dict[str, str]:
    """Every table file name -> its text (deterministic)."""
    tables = {
        "bounds": (bound_rows(), "Lower bounds", "L1: index reduction (one bit per value); L6: zero-error "
                   "information minimum; L2: layers of a data-independent BaseConv with binary codes and an exact "
                   "output; X1: the fewest layers found with an argmax readout (lower bound 2 for D >= 2)."),
        "constructions": (construction_rows(), "Construction resources (claimed)", "Claimed resources via "
                          "`claimed_resources`; `fp32 bits / L6` is state bits at fp32 over the L6 minimum."),
        "state_accounting": (STATE_ACCOUNTING, "State-size accounting", "Reference formulas (theory.md 5.1) "
                             "next to the toolkit's policy; `L` = longest test length, `N` = this sequence."),
        "claims": (claim_rows(), "Claims", "Every claim `mqarkit verify` checks, with its checks and the part of its "
                   "statement no check reaches (then it is at most `partial`); statuses: `reports/verify.md`."),
    }  # fmt: skip
    out = {}
    for stem, (rows, title, note) in tables.items():
        out[f"{stem}.md"] = _markdown(rows, title, note)
        out[f"{stem}.csv"] = _csv(rows)
        out[f"{stem}.tex"] = _latex(rows, title)
    return out


def write(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in render().items():
        path = out_dir / name
        path.write_text(text)
        paths.append(path)
    return paths


@reports_usage_errors("mqarkit tables")
def main(argv: list[str] | None = None) -> int:
    p = CommandParser(prog="mqarkit tables", description="Write the dimension-bound tables.")
    p.add_argument("--out", default="docs/tables", type=Path, help="output folder")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    check_output_folder(args.out, parameter="--out")  # before any table is computed
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
