"""``mqarkit task ...``: command-line utilities for the MQAR task.

``mqarkit task sample`` generates instances with :func:`mqarkit.task.generate` and prints them with the key-value
block, the queries (marked ``?``, with their expected answer) and the filler highlighted, then a table of the pairs
and a legend. Bad arguments raise :class:`~mqarkit.errors.UsageError`, which the dispatcher (:mod:`mqarkit.cli`)
prints as one line with exit status 2.
"""

from __future__ import annotations

import argparse

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mqarkit.checks import check_int
from mqarkit.cli import CommandParser, parse_command, reports_usage_errors
from mqarkit.errors import usage_errors
from mqarkit.oracle import ambiguous_queries, expected_answers
from mqarkit.task import FILLERS, MQARBatch, MQARSpec, generate

STYLES = {
    "key": "bold cyan",
    "value": "bold green",
    "query": "bold black on yellow",
    "ambiguous": "bold white on red",
    "filler": "dim",
}


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="mqarkit task", description="MQAR task utilities.")
    sub = parser.add_subparsers(dest="subcommand", metavar="<subcommand>")
    sample = sub.add_parser("sample", help="generate MQAR instances and print them highlighted")
    sample.add_argument("--vocab-size", type=int, default=64, help="c: vocabulary size (> seq-len; default 64)")
    sample.add_argument("--seq-len", type=int, default=32, help="N: tokens per example (even; default 32)")
    sample.add_argument("--num-kv-pairs", type=int, default=4, help="D: key-value pairs (default 4)")
    sample.add_argument("--filler", choices=FILLERS, default="zero", help="filler mode (default zero)")
    sample.add_argument("--seed", type=int, default=0, help="seed of numpy.random.default_rng (default 0)")
    sample.add_argument("--power-a", type=float, default=0.01, help="a of the gap law p(g) ~ a g^(a-1) (default 0.01)")
    sample.add_argument("--num-passes", type=int, default=1, help="repetitions of the key-value block (default 1)")
    sample.add_argument("--num-examples", type=int, default=1, help="examples to print (default 1)")
    return parser


def _role_of_positions(batch: MQARBatch, b: int) -> list[str]:
    """The role of every position of example ``b``: key / value / query / ambiguous / filler."""
    spec = batch.spec
    roles = ["filler"] * spec.seq_len
    for p in range(spec.context_len):
        roles[p] = "key" if p % 2 == 0 else "value"
    ambiguous = ambiguous_queries(batch)[b]
    for q in batch.query_positions[b]:
        roles[int(q)] = "ambiguous" if ambiguous[q] else "query"
    return roles


def render_example(batch: MQARBatch, b: int, line_width: int = 80) -> Text:
    """Example ``b`` as rich text, as many tokens a line as fit ``line_width`` (an even number, so that a key and
    its value share a line), each line led by the position of its first token."""
    spec = batch.spec
    width = len(str(spec.vocab_size - 1))  # digits of the largest token
    per_line = max(2, ((line_width - 7) // (width + 2)) // 2 * 2)  # a cell is mark + digits + space
    answers = expected_answers(batch)[b]
    roles = _role_of_positions(batch, b)
    text = Text()
    for start in range(0, spec.seq_len, per_line):
        text.append(f"{start:>5} ", style="dim italic")
        for p in range(start, min(start + per_line, spec.seq_len)):
            token = int(batch.inputs[b, p])
            mark = "?" if roles[p] in ("query", "ambiguous") else " "
            text.append(f"{mark}{token:>{width}}", style=STYLES[roles[p]])
            text.append(" ")
        text.append("\n")
    queried = [int(q) for q in batch.query_positions[b]]
    text.append("answers: ", style="bold")
    text.append(", ".join(f"pos {q} -> {int(answers[q])}" for q in sorted(queried)))
    text.append("\n")
    return text


def pairs_table(batch: MQARBatch, b: int) -> Table:
    """One row per pair: key, value, key position (last pass), query position, gap."""
    table = Table(title=f"example {b}: key-value pairs", show_edge=False)
    for column in ("pair", "key", "value", "key pos", "query pos", "gap"):
        table.add_column(column, justify="right")
    spec = batch.spec
    for j in np.argsort(batch.query_positions[b], kind="stable"):
        q = int(batch.query_positions[b, j])
        table.add_row(
            str(j),
            Text(str(int(batch.keys[b, j])), style=STYLES["key"]),
            Text(str(int(batch.values[b, j])), style=STYLES["value"]),
            str(int(batch.key_positions[b, j])),
            Text(str(q), style=STYLES["query"]),
            str((q - spec.context_len) // 2 + 1),
        )
    return table


def legend() -> Text:
    text = Text("legend: ")
    entries = [
        ("key", "key (key-value block)"),
        ("value", "value"),
        ("query", "?query (key asked again; its label is the paired value)"),
        ("ambiguous", "?ambiguous query (its key also occurs earlier as filler)"),
        ("filler", f"filler ({'/'.join(FILLERS)})"),
    ]
    for i, (role, label) in enumerate(entries):
        text.append(label, style=STYLES[role])
        if i < len(entries) - 1:
            text.append("  ")
    return text


def _sample(args: argparse.Namespace, console: Console) -> int:
    with usage_errors():
        spec = MQARSpec(
            vocab_size=args.vocab_size,
            seq_len=args.seq_len,
            num_kv_pairs=args.num_kv_pairs,
            power_a=args.power_a,
            filler=args.filler,
            num_passes=args.num_passes,
        )
        check_int("num_examples", args.num_examples, 1)
        rng = np.random.default_rng(check_int("seed", args.seed, 0))
    batch = generate(spec, args.num_examples, rng)
    console.print(
        f"MQAR c={spec.vocab_size} N={spec.seq_len} D={spec.num_kv_pairs} passes={spec.num_passes} "
        f"filler={spec.filler} a={spec.power_a} seed={args.seed}",
        style="bold",
        highlight=False,
    )
    for b in range(batch.num_examples):
        console.print(render_example(batch, b, console.width), highlight=False)
        console.print(pairs_table(batch, b))
    console.print(legend())
    return 0


@reports_usage_errors("mqarkit task")
def main(argv: list[str] | None = None) -> int:
    args, status = parse_command(build_parser(), argv, "subcommand")
    if args is None:
        return status
    return _sample(args, Console(highlight=False))
