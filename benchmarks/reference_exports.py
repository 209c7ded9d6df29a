"""Exported reference checkpoints measured on the CPU (float64): accuracy per [B] Fig. 2 test slice and state.

Usage: ``python benchmarks/reference_exports.py [--num-examples 64] [--out docs/results] [--construction NAME]``;
writes ``reference_exports.json`` (read by :func:`mqarkit.gpu.reference_points.load_points`) and
``reference_exports.md``. The checkpoints and what is measured: :mod:`mqarkit.gpu.reference_points`. Also records
the wall time of the run. ``--construction NAME`` re-measures only that construction's checkpoints and replaces them
in the existing ``reference_exports.json`` (the others are kept, with their run recorded in ``environment``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from _machine import cpu_name

from mqarkit.gpu.reference_points import FIG2_TEST_SLICES, checkpoints, measure_exports, slice_cells


def markdown(records: list[dict], header: str) -> str:
    lines = [
        "# Exported reference checkpoints (CPU, float64)",
        "",
        header,
        "",
        "Accuracy on unambiguous queries of the reference generator's data (random filler, its default / zero "
        "filler); state at N = 1024 measured from the recurrent modes, bytes at float32, next to the reference's own "
        "`state_size`. Sliding windows: `in window` counts the unambiguous queries whose pair lies in the window "
        "(U8's recall set) and `mismatches` the queries where correct != in window.",
        "",
        "| checkpoint | state bytes (measured, fp32) | reference state_size | mean accuracy (random filler) | "
        + " | ".join(f"({n},{d})" for n, d in FIG2_TEST_SLICES)
        + " | mismatches with U8 |",
        "|---|---|---|---|" + "---|" * len(FIG2_TEST_SLICES) + "---|",
    ]
    for r in records:
        cells, mismatches = slice_cells(r)
        window = r["knobs"].get("window")
        lines.append(
            f"| {r['name']} | {r['state_bytes']:,} | {r['state_bytes_reported_by_reference']:,} | "
            f"{r['accuracy']:.4f} | " + " | ".join(cells) + f" | {mismatches if window else '-'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-examples", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/results")
    ap.add_argument("--construction", default=None, help="re-measure only this construction's checkpoints")
    args = ap.parse_args()
    out = Path(args.out)
    names = None
    if args.construction is not None:
        names = [c["name"] for c in checkpoints() if c["construction"] == args.construction]
        if not names:
            raise SystemExit(f"--construction {args.construction!r}: no checkpoint of that construction")
    t0 = time.perf_counter()
    records = measure_exports(
        device=torch.device("cpu"), dtype=torch.float64, num_examples=args.num_examples, seed=args.seed, names=names
    )
    seconds = time.perf_counter() - t0
    env = {
        "device": "cpu",
        "cpu": cpu_name("unknown"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "num_examples_per_slice": args.num_examples,
        "seed": args.seed,
        "wall_seconds": round(seconds, 1),
    }
    command = f"python benchmarks/reference_exports.py --num-examples {args.num_examples}"
    header = (
        f"{env['cpu']}, torch {env['torch']}, {args.num_examples} examples per slice and filler, seed {args.seed}; "
        f"{seconds:.0f} s. Command: `{command}`."
    )
    if names is not None:
        previous = json.loads((out / "reference_exports.json").read_text())
        fresh = {r["name"]: r for r in records}
        records = [fresh.get(r["name"], r) for r in previous["checkpoints"]]
        env = {**previous["environment"], "remeasured": {**env, "checkpoints": names}}
        old = previous["environment"]
        header = (
            f"{old['cpu']}, torch {old['torch']}, {old['num_examples_per_slice']} examples per slice and filler, seed "
            f"{old['seed']}; {old['wall_seconds']:.0f} s. Command: `python benchmarks/reference_exports.py "
            f"--num-examples {old['num_examples_per_slice']}`. The {args.construction} rows were re-measured "
            f"afterwards ({env['remeasured']['cpu']}, torch {env['remeasured']['torch']}, {seconds:.0f} s): "
            f"`{command} --construction {args.construction}`."
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "reference_exports.json").write_text(json.dumps({"environment": env, "checkpoints": records}, indent=1))
    (out / "reference_exports.md").write_text(markdown(records, header))
    for r in records:
        print(f"{r['name']}: state {r['state_bytes']} B, mean accuracy {r['accuracy']:.4f}")


if __name__ == "__main__":
    main()
