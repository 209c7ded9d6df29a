"""Records set against what a paper reports for its figure (``mqarkit frontier compare``).

A configuration's result is :func:`mqarkit.gpu.frontier.stats.summarise`'s: the mean over seeds at its best learning
rate, with a 95% bootstrap interval ``[low, high]`` (diverged runs left out and counted). An anchor
(:mod:`mqarkit.gpu.frontier.paper_anchors`) is a value read off the paper's plot, good to ``READ_OFF`` = τ either way.
The verdict on one anchor, for a result with interval ``[low, high]``:

- ``≈ v``: ``below`` when ``high < v − τ``, ``above`` when ``low > v + τ``, else ``agrees``;
- ``> v``: ``below`` when ``high ≤ v − τ``, else ``agrees``;
- ``≤ v``: ``above`` when ``low > v + τ``, else ``agrees``.

With one seed the interval is the single value, so the verdict rests on the read-off tolerance alone; the tables say
how many seeds each result has.

A family of [B] Fig. 2 whose planned runs (the preset's, at the records' seeds) are not all in the records is shown
with how many are, and its range is ``not judged``: a configuration still to run may hold either end of it.

[B] Fig. 2 also orders the families on its Pareto front: at equal state, attention ≥ Based ≥ the others. For each
result of a family of lower rank (Based, then every other family the paper shows) and each higher rank, the best
result of that rank whose measured state is at most its own is found; the ordering ``holds`` when that result's mean
is at least its mean, is ``within intervals`` when it is below but the two intervals overlap, and is ``reversed``
when the intervals are apart. Where the higher rank has no result at that state or below, nothing is compared and the
row says so. Families the paper does not show (a user's mixer, GLA, ...) are listed but never ordered.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from mqarkit.gpu.frontier.paper_anchors import (
    FIGURES,
    ORDER_RANK,
    OTHERS_RANK,
    READ_OFF,
    RELATIONS,
    PointAnchor,
    RangeAnchor,
)
from mqarkit.gpu.frontier.plot_style import default_title
from mqarkit.gpu.frontier.presets import load_preset
from mqarkit.gpu.frontier.stats import ConfigResult, summarise
from mqarkit.gpu.frontier.sweep import planned_runs

VERDICTS = ("agrees", "above", "below")
INCOMPLETE = "not judged"  # the verdict on a family range whose runs are not all in the records
ORDER_VERDICTS = ("holds", "within intervals", "reversed", "no point at or below its state")


def verdict(relation: str, value: float, low: float, high: float, tolerance: float = READ_OFF) -> str:
    """One of :data:`VERDICTS` for a result with interval ``[low, high]`` against ``relation value`` (module docs)."""
    if relation not in RELATIONS:
        raise ValueError(f"relation={relation!r}: choose from {', '.join(RELATIONS)}")
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ValueError(f"low={low}, high={high}: needs finite numbers with low <= high")
    if relation == "≈":
        return "below" if high < value - tolerance else "above" if low > value + tolerance else "agrees"
    if relation == ">":
        return "below" if high <= value - tolerance else "agrees"
    return "above" if low > value + tolerance else "agrees"


def figure_records(records: Sequence[dict], paper: str, sweeps: Sequence[str] | None = None) -> list[dict]:
    """The records that belong to the figure ``paper`` (a key of ``FIGURES``): those of the sweeps named ``sweeps``
    (default: the preset's own sweep names). A ``ValueError`` names the sweeps when there is none."""
    if paper not in FIGURES:
        raise ValueError(f"paper={paper!r}: choose from {', '.join(FIGURES)}")
    names = set(sweeps) if sweeps else {s.name for s in load_preset(paper)}
    mine = [r for r in records if r["sweep"] in names]
    if not mine:
        raise ValueError(f"records: no run of the sweeps of {paper} ({', '.join(sorted(names))})")
    return mine


def family(result: ConfigResult) -> str | None:
    """The built-in family of a result (``None`` for a plain module)."""
    return result.model.get("family")


def family_coverage(records: Sequence[dict], paper: str) -> dict[str, tuple[int, int]]:
    """Per family of the figure's preset: ``(runs in the records, runs planned)``, each sweep's plan counted as
    :func:`~mqarkit.gpu.frontier.sweep.planned_runs` counts it. Only the preset's sweeps that the records hold count:
    a user's own sweeps (``--sweeps``) have no plan here."""
    coverage: dict[str, tuple[int, int]] = {}
    for sweep in load_preset(paper):
        ours = [r for r in records if r["sweep"] == sweep.name]
        have_ids = {r["run_id"] for r in ours}
        for run in planned_runs(sweep, ours) if ours else ():
            have, planned = coverage.get(run.model.family, (0, 0))
            coverage[run.model.family] = (have + (run.run_id in have_ids), planned + 1)
    return coverage


def compare_ranges(
    results: Sequence[ConfigResult],
    anchors: Sequence[RangeAnchor],
    coverage: Mapping[str, tuple[int, int]] | None = None,
) -> list[dict]:
    """[B] Fig. 2: per anchored family, its lowest and highest result against the paper's, and the state ranges. A
    family whose runs are not all in the records (``coverage``, :func:`family_coverage`) is shown but not judged
    (verdicts ``INCOMPLETE``): a missing configuration may hold either end of its range."""
    rows = []
    for anchor in anchors:
        mine = [r for r in results if family(r) == anchor.family]
        row: dict = {"anchor": anchor, "configurations": len(mine)}
        have, planned = (coverage or {}).get(anchor.family, (0, 0))
        if have < planned:
            row["runs"] = (have, planned)
        if mine:
            lowest, highest = min(mine, key=lambda r: r.mean), max(mine, key=lambda r: r.mean)
            judged = "runs" not in row
            row |= {
                "lowest": lowest,
                "highest": highest,
                "lowest_verdict": verdict("≈", anchor.lowest, lowest.low, lowest.high) if judged else INCOMPLETE,
                "highest_verdict": verdict("≈", anchor.highest, highest.low, highest.high) if judged else INCOMPLETE,
            }
            states = [r.state_bytes for r in mine if r.state_bytes is not None]
            row["log2_bytes"] = (math.log2(min(states)), math.log2(max(states))) if states else None
        rows.append(row)
    return rows


def compare_points(results: Sequence[ConfigResult], anchors: Sequence[PointAnchor]) -> list[dict]:
    """[Z] Fig. 2: each anchored ``(family, N, d)`` against the result of that family, test length and width."""
    rows = []
    for anchor in anchors:
        match = [
            r
            for r in results
            if family(r) == anchor.family and r.model["d_model"] == anchor.d_model and _seq_len(r) == anchor.seq_len
        ]
        row: dict = {"anchor": anchor, "result": None, "verdict": None}
        if match:
            best = max(match, key=lambda r: r.mean)  # one per (family, N, d) in the preset; the best if a user has more
            row |= {"result": best, "verdict": verdict(anchor.relation, anchor.value, best.low, best.high)}
        rows.append(row)
    return rows


def front_order(results: Sequence[ConfigResult], shown: set[str]) -> list[dict]:
    """[B] Fig. 2's ordering (module docs), for the results of the families in ``shown`` with a measured state."""
    ranked = [r for r in results if family(r) in shown and r.state_bytes is not None]
    rows = []
    for lower in ranked:
        rank = ORDER_RANK.get(family(lower), OTHERS_RANK)
        for above in range(rank):
            rivals = [
                r
                for r in ranked
                if ORDER_RANK.get(family(r), OTHERS_RANK) == above and r.state_bytes <= lower.state_bytes
            ]
            row: dict = {"lower": lower, "rank": above, "higher": None}
            if not rivals:
                row["verdict"] = ORDER_VERDICTS[3]
            else:
                best = max(rivals, key=lambda r: r.mean)
                row["higher"] = best
                if best.mean >= lower.mean:
                    row["verdict"] = ORDER_VERDICTS[0]
                elif best.high >= lower.low:
                    row["verdict"] = ORDER_VERDICTS[1]
                else:
                    row["verdict"] = ORDER_VERDICTS[2]
            rows.append(row)
    return rows


# ---------------------------------------------------------------- Markdown
def comparison_markdown(records: Sequence[dict], paper: str, sweeps: Sequence[str] | None = None) -> str:
    """The comparison of ``records`` with the figure ``paper`` as Markdown (a heading, the budget, the tables);
    ``sweeps``: see :func:`figure_records`."""
    kept = figure_records(records, paper, sweeps)
    results = summarise(kept)
    if not results:
        raise ValueError(f"records: every run of {paper}'s sweeps diverged; nothing to compare")
    anchors = FIGURES[paper]
    lines = [
        f"# Records against the paper: {paper}",
        "",
        f"Records: {default_title(kept)}.".replace("\n", " "),
        "",
        f"The paper's values were read off its plot (good to ±{READ_OFF} either way; "
        "`mqarkit.gpu.frontier.paper_anchors`); ours are the mean over seeds at the best learning rate with its 95% "
        "bootstrap interval (`mqarkit.gpu.frontier.compare` states the verdicts' rule).",
        "",
    ]
    if paper == "based-fig2":
        lines += _ranges_table(compare_ranges(results, anchors, family_coverage(kept, paper)))
        shown = {a.family for a in anchors}
        lines += _order_table(front_order(results, shown))
        extra = sorted({r.label for r in results if family(r) not in shown})
        if extra:
            lines += ["", f"Not in the paper's figure, so not compared: {', '.join(extra)}."]
    else:
        lines += _points_table(compare_points(results, anchors))
    return "\n".join(lines) + "\n"


def _result_cell(r: ConfigResult | None) -> str:
    if r is None:
        return "not in the records"
    interval = f" [{r.low:.3f}, {r.high:.3f}]" if r.seeds > 1 else ""
    state = "unmeasured" if r.state_bytes is None else f"2^{math.log2(r.state_bytes):.1f} B"
    return f"{r.mean:.3f}{interval} ({r.seeds} seed{'s' if r.seeds > 1 else ''}, {_knobs(r)}, {state})"


def _knobs(r: ConfigResult) -> str:
    skip = {"family", "mixer", "vocab_size", "max_len", "conv_kernel", "tie_head", "mixer_cache", "mixer_kwargs"}
    return ", ".join(f"{k} {v}" for k, v in sorted(r.model.items()) if k not in skip and v is not None)


def _ranges_table(rows: list[dict]) -> list[str]:
    out = [
        "## The families' ranges",
        "",
        "| family | configurations | paper | ours: lowest | verdict | ours: highest | verdict | states, ours "
        "(measured) | states, paper (reference count) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        a = row["anchor"]
        paper_states = f"2^{a.log2_bytes[0]:g}–2^{a.log2_bytes[1]:g} B"
        if not row["configurations"]:
            out.append(f"| {a.family} | 0 | {a.source} | not in the records | — | — | — | — | {paper_states} |")
            continue
        span = row["log2_bytes"]
        ours = "unmeasured" if span is None else f"2^{span[0]:.1f}–2^{span[1]:.1f} B"
        runs = f" ({row['runs'][0]} of {row['runs'][1]} runs)" if "runs" in row else ""
        out.append(
            f"| {a.family} | {row['configurations']}{runs} | {a.source} | "
            f"{_result_cell(row['lowest'])} vs ≈ {a.lowest} | {row['lowest_verdict']} | "
            f"{_result_cell(row['highest'])} vs ≈ {a.highest} | {row['highest_verdict']} | {ours} | {paper_states} |"
        )
    return out


def _order_table(rows: list[dict]) -> list[str]:
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ORDER_VERDICTS}
    out = [
        "",
        "## Ordering on the front (attention ≥ Based ≥ the others at equal state)",
        "",
        "Comparisons: " + ", ".join(f"{v} {n}" for v, n in counts.items()) + ".",
        "",
        "The rows below are the comparisons made (a reversed one first); the others found no result of the higher "
        "rank at or below the state.",
        "",
        "| result | rank compared | best of that rank at ≤ its state | verdict |",
        "|---|---|---|---|",
    ]
    names = {rank: name for name, rank in ORDER_RANK.items()}
    compared = [r for r in rows if r["higher"] is not None]
    for row in sorted(compared, key=lambda r: (r["verdict"] != "reversed", r["lower"].label, r["lower"].state_bytes)):
        higher = _result_cell(row["higher"]) if row["higher"] is not None else "—"
        out.append(
            f"| {row['lower'].label}: {_result_cell(row['lower'])} | {names[row['rank']]} | {higher} | "
            f"{row['verdict']} |"
        )
    return out


def _points_table(rows: list[dict]) -> list[str]:
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    missing = sum(r["result"] is None for r in rows)
    out = [
        "## The figure's statements, point by point",
        "",
        "Verdicts: " + ", ".join(f"{v} {n}" for v, n in counts.items()) + f"; not in the records {missing}.",
        "",
        "| N | d | family | paper | ours | verdict | paper's statement |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        a = row["anchor"]
        out.append(
            f"| {a.seq_len} | {a.d_model} | {a.family} | {a.relation} {a.value} | {_result_cell(row['result'])} | "
            f"{row['verdict'] or '—'} | {a.source} |"
        )
    return out


def _seq_len(r: ConfigResult) -> int:
    return max(s["seq_len"] for s in r.slice_means)
