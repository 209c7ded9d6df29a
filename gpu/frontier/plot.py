"""``mqarkit plot``: the state-size-vs-recall frontier (accuracy vs measured state bytes, log2 x-axis).

    mqarkit plot --results docs/results/frontier.jsonl --out docs/results/figures/frontier

draws, from the JSONL records: each model config's best test accuracy over its learning rates (the mean over the test
slices, as the reference harness reports it: :func:`slice_mean_accuracy`), one marker per family (or plain module);
the Pareto front over all families (no point with less state has higher accuracy); the information-theoretic limit
L6; the constructions' exact-recall points at the longest test slice (:func:`construction_points`: sign-code
attention, Taylor linear attention, data-independent BaseConv; state measured from the built model, or the claimed
closed form where the model is too large to build, labelled as such); where sliding-window runs are drawn, their
accuracy predicted by U8 (``mqarkit.constructions.predicted_sliding_window_accuracy``); and, with ``--points FILE``,
checkpoints exported in the reference layout and measured there (:func:`load_points_file`; a construction, no
training), e.g. ``docs/results/reference_exports.json``::

    mqarkit plot --results docs/results/frontier.jsonl --points docs/results/reference_exports.json \
        --out docs/results/figures/frontier

:func:`frontier_figure`
returns the matplotlib ``Figure`` (built without pyplot, so the global backend is never switched); :func:`draw` and
the command write ``<out>.png`` and ``<out>.svg``.

L6 (theory.md §3.2, :mod:`mqarkit.information`): with ``V`` values drawn without replacement for ``D`` keys and ``S``
bits of state, Fano bounds the best accuracy at ``S`` for each slice. The
curve drawn is the mean of the slices' limits (each slice bounded at the same ``S``), with
``S = 8·bytes`` (the state's bytes at the records' precision) and ``V = c/2``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mqarkit.cli import CommandParser, reports_usage_errors
from mqarkit.errors import usage_errors
from mqarkit.gpu.frontier.plot_style import default_title, label_order, style
from mqarkit.gpu.frontier.stats import markdown_table, summarise
from mqarkit.information import fano_max_accuracy
from mqarkit.outputs import check_output_file

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def best_per_config(records: list[dict]) -> list[dict]:
    """For each (sweep, model config): a record of its chosen learning rate (:func:`~.stats.summarise`: the best mean
    over seeds; with one seed, the best run)."""
    return [result.runs[0] for result in summarise(records)]


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points (state, accuracy) not dominated by one with no more state and higher accuracy, by increasing state."""
    front, top = [], -1.0
    for s, a in sorted(points, key=lambda p: (p[0], -p[1])):
        if a > top:
            front.append((s, a))
            top = a
    return front


CONSTRUCTIONS = ("attention_signcode", "based_taylor", "baseconv_data_independent")
BUILD_LIMIT = 10**8  # build (and measure) a construction only if its claimed dense parameter count is below this


def construction_points(vocab_size: int, seq_len: int, num_kv_pairs: int) -> list[dict]:
    """The constructions' exact-recall points at the longest test slice: state bytes at float32 (4 per number).

    The state is measured from the built model (``resources().measured``) where the construction is small enough to
    build; above :data:`BUILD_LIMIT` parameters the claimed closed form is used (claimed == measured is checked at
    smaller sizes by ``mqarkit verify``) and the point says so. Sizes outside a construction's range are skipped.
    """
    from mqarkit.constructions import build, claimed_resources

    points = []
    for name in CONSTRUCTIONS:
        sizes = {"vocab_size": vocab_size, "seq_len": seq_len, "num_kv_pairs": num_kv_pairs}
        try:
            claimed = claimed_resources(name, **sizes)
        except ValueError:
            continue
        if claimed.parameters <= BUILD_LIMIT:
            state, source = build(name, **sizes).resources().measured.state_numbers, "measured"
        else:
            state, source = claimed.state_numbers, "claimed"
        points.append({"name": name, "state_bytes": 4 * state, "accuracy": 1.0, "source": source})
    return points


POINTS_LABEL = "exported checkpoints (construction, no training)"


def load_points_file(path: str | Path) -> list[dict]:
    """Measured exported checkpoints to place on the frontier: ``[{"name", "state_bytes", "accuracy", "family"}]``.

    The file is JSON with a list ``"checkpoints"`` (the schema of ``docs/results/reference_exports.json``, written by
    ``benchmarks/reference_exports.py``); each entry needs ``name`` (a string), ``state_bytes`` (a number > 0: the
    state measured from the recurrent modes at the longest test slice, 4 bytes per number, the frontier's x-axis) and
    ``accuracy`` (a number in [0, 1]: the mean over the test slices); ``construction`` is kept as the family when
    present. ``ValueError`` naming the file and the first problem otherwise. This wing reads the file only: it does
    not import the construction wing that measured it.
    """
    import json

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--points: {path} is not a file")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"--points: {path} is not a readable JSON file ({e})") from None
    entries = data.get("checkpoints") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"--points: {path} needs a non-empty list 'checkpoints'")
    points = []
    for i, entry in enumerate(entries):
        where = f"--points: {path}: checkpoints[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be an object")
        name, state, accuracy = entry.get("name"), entry.get("state_bytes"), entry.get("accuracy")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}.name must be a non-empty string")
        if isinstance(state, bool) or not isinstance(state, (int, float)) or not math.isfinite(state) or state <= 0:
            raise ValueError(f"{where}.state_bytes={state!r} must be a number > 0")
        if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not 0 <= accuracy <= 1:
            raise ValueError(f"{where}.accuracy={accuracy!r} must be a number in [0, 1]")
        family = entry.get("construction", "")
        points.append({"name": name, "state_bytes": state, "accuracy": float(accuracy), "family": str(family)})
    return points


def frontier_figure(records: list[dict], *, title: str | None = None, points: list[dict] | None = None) -> Figure:
    """The frontier of ``records`` as a matplotlib ``Figure`` (built without pyplot: the global backend is untouched).

    Runs whose state is unmeasured (a plain module exposing none) have no x-coordinate: they are left out, and the
    figure says how many. ``points`` (:func:`load_points_file`): exported checkpoints drawn as hollow diamonds,
    labelled :data:`POINTS_LABEL`, at their measured state and accuracy.
    """
    from matplotlib.figure import Figure

    if not records:
        raise ValueError("records: no finished runs to plot")
    measured = [r for r in records if r.get("state_bytes") is not None]
    if not measured:
        raise ValueError("records: no run has a measured state; nothing to place on the state axis")
    results = [r for r in summarise(measured) if r.state_bytes is not None]
    fig = Figure(figsize=(10.5, 5.5))
    ax = fig.add_subplot()
    labels = sorted({r.label for r in results}, key=label_order)
    for i, name in enumerate(labels):
        color, marker = style(name, i, labels)
        mine = sorted((r for r in results if r.label == name), key=lambda r: r.state_bytes)
        xs_, ys_ = [r.state_bytes for r in mine], [r.mean for r in mine]
        errors = [[r.mean - r.low for r in mine], [r.high - r.mean for r in mine]]
        ax.errorbar(xs_, ys_, yerr=errors, color=color, marker=marker, ls="none", capsize=2, label=name, zorder=3)
    front = pareto_front([(r.state_bytes, r.mean) for r in results])
    ax.step(*zip(*front), where="post", color="black", lw=1, ls="--", label="Pareto front (means)", zorder=2)
    slices = measured[0]["accuracy"]
    vocab = measured[0]["model"]["vocab_size"]
    longest = max(slices, key=lambda s: s["seq_len"])
    stars = construction_points(vocab, longest["seq_len"], longest["num_kv_pairs"])
    points = points or []
    drawn = [r.state_bytes for r in results] + [p["state_bytes"] for p in stars + points]
    xs = np.logspace(math.log2(min(64, min(drawn) / 4)), math.log2(max(drawn) * 2), 200, base=2)
    weights = np.full(len(slices), 1.0 / len(slices))  # the y-axis is the mean over slices
    limit = [
        sum(w * fano_max_accuracy(8 * x, s["num_kv_pairs"], vocab // 2) for w, s in zip(weights, slices)) for x in xs
    ]
    ax.plot(xs, limit, color="black", lw=1.5, label="L6 limit (Fano, mean over slices)")
    sw = sorted((r for r in results if r.label == "sliding_window"), key=lambda r: r.state_bytes)
    if sw:
        from mqarkit.constructions import predicted_sliding_window_accuracy as predicted

        window_mean = [  # U8's accuracy of each window, averaged over the test slices like the y-axis
            sum(w * predicted(r.model["window"], s["seq_len"], s["num_kv_pairs"]) for w, s in zip(weights, slices))
            for r in sw
        ]
        ax.plot([r.state_bytes for r in sw], window_mean, color="tab:green", ls=":", label="sliding window (U8)")
    for k, point in enumerate(stars):
        ax.scatter(
            point["state_bytes"],
            point["accuracy"],
            marker="*",
            s=140,
            color="gold",
            edgecolor="black",
            zorder=4,
            label=f"construction {k + 1}: {point['name']} ({point['source']}; exact recall)",
        )
        ax.annotate(  # its number beside the star; the name is in the legend, clear of the data
            str(k + 1),
            (point["state_bytes"], point["accuracy"]),
            xytext=(0, -12),
            textcoords="offset points",
            fontsize=7,
            ha="center",
        )
    if points:
        ax.scatter(
            [p["state_bytes"] for p in points],
            [p["accuracy"] for p in points],
            marker="D",
            s=36,
            facecolor="none",
            edgecolor="tab:red",
            linewidth=1.2,
            zorder=5,
            label=POINTS_LABEL,
            gid="exported-checkpoints",
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("state size (bytes, measured from the recurrent state, float32)")
    seeds = sorted({r.seeds for r in results})
    ax.set_ylabel(f"test accuracy (mean over the test slices; mean over {'/'.join(map(str, seeds))} seed(s))")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title or default_title(records), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    notes = []
    unmeasured = len(records) - len(measured)
    if unmeasured:
        notes.append(f"{unmeasured} run(s) without a measured state not drawn")
    diverged = sum(r.diverged for r in results)
    if diverged:
        notes.append(f"{diverged} diverged run(s) left out of the learning-rate choice")
    if any(r.seeds > 1 for r in results):
        notes.append("bars: 95% bootstrap interval over seeds")
    if notes:
        fig.text(0.01, 0.01, "; ".join(notes), fontsize=7)
    fig.tight_layout()
    return fig


def draw(
    records: list[dict], out: str | Path, *, title: str | None = None, points: list[dict] | None = None
) -> list[Path]:
    """:func:`frontier_figure` written to ``<out>.png`` and ``<out>.svg``; returns the paths."""
    return save(frontier_figure(records, title=title, points=points), out)


SVG_ID_SALT = "mqarkit"  # matplotlib's SVG element ids hash this with their content, instead of a random salt


def save(fig: Figure, out: str | Path) -> list[Path]:
    """``fig`` written to ``<out>.png`` and ``<out>.svg``; the SVG without a date and with ids salted by
    :data:`SVG_ID_SALT`, so a redraw from the same records is the same file."""
    import matplotlib

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".png"), out.with_suffix(".svg")]
    with matplotlib.rc_context({"svg.hashsalt": SVG_ID_SALT}):
        for p in paths:
            svg = {"metadata": {"Date": None}} if p.suffix == ".svg" else {}
            fig.savefig(p, dpi=150, bbox_inches="tight", **svg)
    return paths


def build_parser() -> CommandParser:
    ap = CommandParser(prog="mqarkit plot", description="draw the state-size-vs-recall frontier")
    ap.add_argument("--results", nargs="+", required=True, help="JSONL record files")
    ap.add_argument("--out", required=True, help="output path without suffix (writes .png and .svg)")
    ap.add_argument("--sweep", default=None, help="only records of this sweep")
    ap.add_argument("--title", default=None, help="the figure's title (default: the sweeps, budget and reductions)")
    ap.add_argument("--table", default=None, help="also write the Markdown table of mean ± interval per configuration")
    ap.add_argument(
        "--points",
        default=None,
        metavar="FILE.json",
        help="also place measured exported checkpoints (e.g. docs/results/reference_exports.json; --kind frontier)",
    )
    ap.add_argument(
        "--kind",
        choices=("frontier", "width"),
        default="frontier",
        help="frontier: accuracy against measured state ([B] Fig. 2); width: accuracy against d_model, a panel per "
        "sweep ([Z] Fig. 2)",
    )
    return ap


@reports_usage_errors("mqarkit plot")
def main(argv: list[str] | None = None) -> int:
    from mqarkit.gpu.frontier.records import RECORD_STATUSES, read_records

    args = build_parser().parse_args(argv)
    with usage_errors():
        missing = [p for p in args.results if not Path(p).is_file()]
        if missing:
            raise ValueError(f"--results: {missing[0]} is not a file")
        check_output_file(Path(args.out).with_suffix(".png"), parameter="out")
        if args.table:
            check_output_file(args.table, parameter="table")
        if args.points is not None and args.kind != "frontier":
            raise ValueError(f"--points: only with --kind frontier (got --kind {args.kind})")
        points = load_points_file(args.points) if args.points is not None else None
        records = [
            r
            for p in args.results
            for r in read_records(p, statuses=RECORD_STATUSES)  # diverged runs: left out of the choice and counted
            if args.sweep in (None, r["sweep"])
        ]
        if not records and args.sweep is not None:
            raise ValueError(f"--sweep={args.sweep!r}: no finished run of that sweep in {args.results}")
        if args.kind == "width":
            from mqarkit.gpu.frontier.width_plot import width_figure

            fig = width_figure(records, title=args.title)
        else:
            fig = frontier_figure(records, title=args.title, points=points)
    for p in save(fig, args.out):
        print(p)
    if args.table:
        Path(args.table).write_text(markdown_table(summarise(r for r in records if r.get("state_bytes") is not None)))
        print(args.table)
    return 0
