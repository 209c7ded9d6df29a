"""What the frontier's figures share: each family's colour and marker, a title naming the sweeps and their budget."""

from __future__ import annotations

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


def style(label: str, index: int) -> tuple[str, str]:
    """The registered families' fixed colours and markers; others take the next free ones."""
    if label in FAMILY_STYLE:
        return FAMILY_STYLE[label]
    return EXTRA_COLORS[index % len(EXTRA_COLORS)], EXTRA_MARKERS[index % len(EXTRA_MARKERS)]


def default_title(records: list[dict]) -> str:
    """The sweeps drawn, their epochs and learning rates, and any reduction from the sweep as shipped."""
    sweeps = sorted({r["sweep"] for r in records})
    epochs = sorted({r["epochs_max"] for r in records if "epochs_max" in r})
    lrs = sorted({r["lr"] for r in records})
    seeds = sorted({r.get("seed", 0) for r in records})
    notes = sorted({n for r in records for n in r.get("notes", [])})
    budget = f"{'/'.join(map(str, epochs))} epochs, {len(lrs)} lrs, {len(seeds)} seed(s)"
    title = f"MQAR recall vs state: {', '.join(sweeps)} ({budget})"
    return title + ("\nreduced: " + "; ".join(notes) if notes else "")
