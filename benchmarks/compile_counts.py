"""How many graphs ``torch.compile`` makes of a family's compiled step as the sequence length changes, and how long
each length's first call takes.

For each family: a stack of ``--runs`` runs at ``--d-model`` in the topology and with the knobs of the speed table's
stack (``frontier_speed.FAMILY_KNOBS``), and :func:`mqarkit.gpu.frontier.model._hidden_at` (what the harness
compiles) under ``torch.compile`` with ``--backend``, dynamo's caches reset. It is called at each of ``--lengths`` in
turn, forward and backward, with the batch and length axes marked dynamic as the harness marks them; per length the
graphs dynamo compiled for that call (graph breaks make several; a graph compiled again for a new length counts
again) and the call's wall time, compilation included. The harness compiles only on CUDA; this script compiles on
``--device`` (the CPU by default): the guards dynamo takes from the Python code are the same there, but a backend's
code generation may add its own (inductor's CPU code made H3 compile again at N = 1,024, twenty-first session of
``docs/results/frontier_protocol.md``), and the CUDA step's autocast and graphs are not reproduced. Writes
``compile_counts.json`` and ``compile_counts.md`` under ``--out-dir``.

    python benchmarks/compile_counts.py --families h3 hyena long_conv sliding_window based mamba
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from frontier_speed import FAMILY_KNOBS
from torch._dynamo.testing import CompileCounterWithBackend

from mqarkit.gpu.frontier.config import ModelConfig
from mqarkit.gpu.frontier.model import StackedHybrid, _hidden_at, _mark_dynamic
from mqarkit.gpu.frontier.runner import environment, environment_line


def count(family: str, args: argparse.Namespace) -> dict:
    """One family's graphs and seconds per length (module docstring)."""
    entry = FAMILY_KNOBS[family]
    knobs = entry.settings(args.d_model)[0]
    configs = [ModelConfig(family, args.d_model, knobs=knobs, layers=entry.layers) for _ in range(args.runs)]
    model = StackedHybrid(configs, list(range(args.runs)), args.device)
    torch._dynamo.reset()
    counter = CompileCounterWithBackend(args.backend)
    compiled = torch.compile(_hidden_at, backend=counter)
    g = torch.Generator(device=args.device).manual_seed(0)
    per_length = []
    for n in args.lengths:
        x = torch.randint(0, configs[0].vocab_size, (args.batch, n), generator=g, device=args.device)
        qpos = torch.arange(n // 2, n, device=args.device).expand(args.batch, -1).contiguous()
        h = model.embed(x)
        _mark_dynamic((h, (1, 2)), (qpos, (0, 1)))
        before, t0 = counter.frame_count, time.perf_counter()
        compiled(model, h, qpos).square().sum().backward()
        per_length.append({"N": n, "graphs": counter.frame_count - before, "seconds": time.perf_counter() - t0})
    torch._dynamo.reset()
    return {"family": family, "layers": entry.layers, "knobs": knobs, "lengths": per_length}


def write_report(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "compile_counts.json").write_text(json.dumps(report, indent=1) + "\n")
    s = report["settings"]
    lines = [
        "# Graphs compiled per sequence length\n",
        environment_line(report) + "\n",
        f"Stacks of {s['runs']} runs at d = {s['d_model']}, batch {s['batch']}, backend `{s['backend']}`, dynamo's "
        "caches reset per family; each length's first call, forward and backward. Produced by "
        "`benchmarks/compile_counts.py` (its docstring says what is counted).\n",
        "| family | layers | " + " | ".join(f"N = {n}: graphs, s" for n in s["lengths"]) + " |",
        "|---|---|" + "---|" * len(s["lengths"]),
    ]
    for r in report["families"]:
        cells = [f"{x['graphs']}, {x['seconds']:.1f}" for x in r["lengths"]]
        lines.append(f"| {r['family']} | {r['layers']} | " + " | ".join(cells) + " |")
    (out / "compile_counts.md").write_text("\n".join(lines) + "\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", nargs="+", default=["h3", "hyena", "long_conv", "sliding_window", "based"])
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256, 512])
    ap.add_argument("--backend", default="inductor", help="torch.compile's backend (aot_eager: no code generation)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out-dir", default="docs/results")
    args = ap.parse_args(argv)
    unknown = [f for f in args.families if f not in FAMILY_KNOBS]
    if unknown:
        raise ValueError(f"--families: {unknown} have no benchmark stack (known: {sorted(FAMILY_KNOBS)})")
    for flag, value in (("--d-model", args.d_model), ("--runs", args.runs), ("--batch", args.batch)):
        if value < 1:
            raise ValueError(f"{flag}={value}: needs an integer >= 1")
    if any(n < 2 for n in args.lengths):
        raise ValueError(f"--lengths={args.lengths}: each needs to be >= 2 (the queries are the second half)")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_args(argv)
    except ValueError as exc:
        print(f"compile_counts.py: {exc}", file=sys.stderr)
        return 2
    report = {
        "env": environment(torch.device(args.device)),
        "command": "python benchmarks/compile_counts.py " + " ".join(argv),
    }
    report["settings"] = {k: getattr(args, k) for k in ("d_model", "runs", "batch", "lengths", "backend")}
    report["families"] = []
    for family in args.families:
        report["families"].append(count(family, args))
        cells = ", ".join(
            f"N={x['N']}: {x['graphs']} graphs {x['seconds']:.1f} s" for x in report["families"][-1]["lengths"]
        )
        print(f"{family}: {cells}", flush=True)
        write_report(report, Path(args.out_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
