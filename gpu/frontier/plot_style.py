"""What the frontier's figures share: each family's colour and marker, a title naming the sweeps and their budget."""

from __future__ import annotations

import textwrap
from collections.abc import Collection

from mqarkit.gpu.frontier.stats import BOTH_LAYERS

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


def default_title(records: list[dict]) -> str:
    """The sweeps drawn, their epochs and learning rates, and any reduction from the sweep as shipped."""
    sweeps = sorted({r["sweep"] for r in records})
    epochs = sorted({r["epochs_max"] for r in records if "epochs_max" in r})
    lrs = sorted({r["lr"] for r in records})
    seeds = sorted({r.get("seed", 0) for r in records})
    notes = sorted({n for r in records for n in r.get("notes", [])})
    budget = f"{'/'.join(map(str, epochs))} epochs, {len(lrs)} lrs, {len(seeds)} seed(s)"
    title = f"MQAR recall vs state: {', '.join(sweeps)} ({budget})"
    reduced = textwrap.fill("reduced: " + "; ".join(notes), TITLE_WIDTH) if notes else ""
    return textwrap.fill(title, TITLE_WIDTH) + ("\n" + reduced if reduced else "")
