"""[Z] Figure 2's view: test accuracy against model width, one panel per data set ``(N, D)``.

Each panel is one sweep (the ``zoology-fig2`` preset has four: ``N = 64, 128, 256, 512``); in it, one line per family
(or plain module): at each width the configuration's mean over seeds at its best learning rate, with its 95% bootstrap
interval (:func:`mqarkit.gpu.frontier.stats.summarise`: diverged runs left out and counted). The x-axis is
``d_model`` (log2). Built without pyplot, like :func:`~mqarkit.gpu.frontier.plot.frontier_figure`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mqarkit.gpu.frontier.plot_style import default_title, label_order, style
from mqarkit.gpu.frontier.stats import summarise

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def width_figure(records: list[dict], *, title: str | None = None) -> Figure:
    """Accuracy against ``d_model``, a panel per sweep, from ``records`` (any statuses)."""
    from matplotlib.figure import Figure

    results = summarise(records)
    if not results:
        raise ValueError("records: no run that did not diverge; nothing to draw")
    sweeps = sorted({r.sweep for r in results}, key=lambda s: (_seq_len(results, s), s))
    labels = sorted({r.label for r in results}, key=label_order)
    fig = Figure(figsize=(3.2 * len(sweeps) + 1.6, 3.4))
    axes = fig.subplots(1, len(sweeps), sharey=True, squeeze=False)[0]
    for ax, sweep in zip(axes, sweeps):
        mine = [r for r in results if r.sweep == sweep]
        for i, name in enumerate(labels):
            color, marker = style(name, i, labels)
            line = sorted((r for r in mine if r.label == name), key=lambda r: r.model["d_model"])
            if not line:
                continue
            xs = [r.model["d_model"] for r in line]
            errors = [[r.mean - r.low for r in line], [r.high - r.mean for r in line]]
            ax.errorbar(xs, [r.mean for r in line], yerr=errors, color=color, marker=marker, capsize=2, label=name)
        slices = mine[0].slice_means
        ax.set_title(", ".join(f"N={s['seq_len']}, D={s['num_kv_pairs']}" for s in slices), fontsize=8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("model width d_model")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (mean over seeds)")
    handles, names = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in names:
                handles.append(h)
                names.append(n)
    fig.legend(handles, names, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 0.95))
    diverged = sum(r.diverged for r in results)
    seeds = sorted({r.seeds for r in results})
    fig.suptitle(title or default_title(records), fontsize=9)
    fig.text(
        0.01,
        0.0,
        f"bars: 95% bootstrap interval over {'/'.join(map(str, seeds))} seed(s)"
        + (f"; {diverged} diverged run(s) left out of the learning-rate choice" if diverged else ""),
        fontsize=7,
    )
    fig.tight_layout()
    return fig


def _seq_len(results: list, sweep: str) -> int:
    return max(s["seq_len"] for r in results if r.sweep == sweep for s in r.slice_means)
