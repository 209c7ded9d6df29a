"""What the frontier's figures share: each family's colour and marker, a title naming the sweeps and their budget."""

from __future__ import annotations

import textwrap
from collections.abc import Collection

from mqarkit.gpu.frontier.presets import SELECTION_PREFIXES, get_preset, note_reduces, preset_names
from mqarkit.gpu.frontier.stats import BOTH_LAYERS
from mqarkit.gpu.frontier.sweep import planned_runs

FAMILY_STYLE = {
    "attention": ("tab:red", "o"),
    "based": ("tab:blue", "s"),
    "sliding_window": ("tab:green", "^"),
    "ssm": ("tab:purple", "D"),
    "long_conv": ("tab:gray", "v"),
    "mamba": ("tab:orange", "P"),
    "mamba2": ("tab:purple", "d"),
    "h3": ("tab:pink", "X"),
    "hyena": ("tab:olive", "h"),
    "rwkv4": ("tab:cyan", "<"),
    "rwkv7": ("tab:cyan", ">"),
    "gla": ("tab:brown", "p"),
    "delta_net": ("navy", "8"),
    "gated_delta_net": ("darkgreen", "H"),
}
EXTRA_COLORS = ("black", "gold", "crimson", "teal", "slateblue")  # users' own families and plain modules
EXTRA_MARKERS = ("*", "x", "+", "1", "2")
TITLE_WIDTH = 100  # characters per line of a default title (a long reduction note wraps)


def style(label: str, index: int, labels: Collection[str] = ()) -> tuple[str, str]:
    """The registered families' fixed colours and markers; others take the next free ones. A family built in both
    layers (label ``family + BOTH_LAYERS``) takes its family's style unless the family's hybrid is also among the
    figure's ``labels``."""
    base = label.removesuffix(BOTH_LAYERS)
    if label in FAMILY_STYLE:
        return FAMILY_STYLE[label]
    if base in FAMILY_STYLE and base not in labels:
        return FAMILY_STYLE[base]
    return EXTRA_COLORS[index % len(EXTRA_COLORS)], EXTRA_MARKERS[index % len(EXTRA_MARKERS)]


def label_order(label: str) -> tuple[bool, str]:
    """Sort key of a figure's series: the registered families first (in either topology), then by name."""
    return label.removesuffix(BOTH_LAYERS) not in FAMILY_STYLE, label


def shipped_coverage(records: list[dict]) -> tuple[list[str], set[str]]:
    """For each drawn sweep that a shipped preset defines: ``"<sweep>: K of M runs"`` when the records hold fewer
    of its runs than it has, and the names of those shipped sweeps (whose selection notes this count replaces). The
    sweep's runs are counted at its shipped seeds and every seed of its records (``--seeds 0 1 2`` plans three runs
    where the preset ships one)."""
    shipped = {sw.name: sw for p in preset_names() for sw in get_preset(p)}
    lines, names = [], set()
    for name in sorted({r["sweep"] for r in records} & set(shipped)):
        names.add(name)
        ours = [r for r in records if r["sweep"] == name]
        planned = {run.run_id for run in planned_runs(shipped[name], ours)}
        have = {r["run_id"] for r in ours} & planned
        if len(have) < len(planned):
            lines.append(f"{name}: {len(have)} of its {len(planned)} runs")
    return lines, names


def default_title(records: list[dict]) -> str:
    """The sweeps drawn, their epochs and learning rates, how the runs differ from the sweep as shipped (reductions
    of the budget, :func:`~mqarkit.gpu.frontier.presets.note_reduces`, apart from changes that keep it, such as more
    seeds), and, for a shipped sweep whose runs are not all in the records, how many are (instead of the commands'
    selections)."""
    sweeps = sorted({r["sweep"] for r in records})
    epochs = sorted({r["epochs_max"] for r in records if "epochs_max" in r})
    lrs = sorted({r["lr"] for r in records})
    seeds = sorted({r.get("seed", 0) for r in records})
    coverage, shipped = shipped_coverage(records)
    notes = sorted(
        {
            n
            for r in records
            for n in r.get("notes", [])
            if not (r["sweep"] in shipped and n.startswith(SELECTION_PREFIXES))
        }
    )
    budget = f"{'/'.join(map(str, epochs))} epochs, {len(lrs)} lrs, {len(seeds)} seed(s)"
    title = f"MQAR recall vs state: {', '.join(sweeps)} ({budget})"
    lines = [textwrap.fill(title, TITLE_WIDTH)]
    chosen = [n for n in notes if n.startswith(SELECTION_PREFIXES)]  # a sweep file's runs chosen by family or width
    reduced = [n for n in notes if note_reduces(n)]
    changed = [n for n in notes if n not in chosen and not note_reduces(n)]  # more seeds, another data seed
    for label, kind in (("reduced", reduced), ("selected", chosen), ("changed", changed)):
        if kind:
            lines.append(textwrap.fill(f"{label}: " + "; ".join(kind), TITLE_WIDTH))
    if coverage:
        lines.append(textwrap.fill("not all run: " + "; ".join(coverage), TITLE_WIDTH))
    return "\n".join(lines)
