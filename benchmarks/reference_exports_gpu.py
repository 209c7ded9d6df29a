"""Reference checkpoints and fla's layers on the GPU: the measurements item 3 and the bf16 export need a CUDA device.

Usage (on a CUDA machine with ``pip install -e ".[gpu]"``)::

    python benchmarks/reference_exports_gpu.py --out docs/results [--num-examples 1000]

1. The exported checkpoints of :mod:`mqarkit.gpu.reference_points` (attention, sliding windows, Based) in our
   reference-layout model on the GPU, in bfloat16 and float32, on every [B] Fig. 2 test slice (``--num-examples``
   examples per slice and filler): accuracy on unambiguous queries, and for the sliding windows the queries where
   "correct" differs from U8's "pair in the window".
2. ``delta_rule`` inside ``fla.layers.DeltaNet`` (modes ``chunk`` in bf16, ``fused_recurrent`` in bf16 and float32)
   and ``based_taylor`` inside ``fla.layers.BasedLinearAttention`` (``parallel``, bf16 and float32): accuracy on
   clean instances (:mod:`mqarkit.gpu.load_fla_layers`).

Prints every figure and writes ``reference_exports_gpu.json`` and ``reference_exports_gpu.md`` after each stage (bf16
exports, fla's layers, float32 exports; a run stopped early keeps what it measured) with the device name,
torch, triton and fla versions.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from mqarkit.constructions import build
from mqarkit.gpu.load_fla_layers import load_fla_based, load_fla_deltanet
from mqarkit.gpu.reference_points import FIG2_TEST_SLICES, measure_exports, slice_cells
from mqarkit.gpu.report import environment
from mqarkit.oracle import score
from mqarkit.task import MQARSpec, generate

# (construction, c, N, D, filler): fla's chunk kernel allows head_k_dim <= 256, so delta_rule stays at c <= 256
FLA_CASES = [
    ("delta_rule", 96, 64, 8, "zero"),
    ("delta_rule", 256, 128, 32, "clean"),
    ("delta_rule", 256, 254, 62, "clean"),
    ("based_taylor", 96, 64, 8, "zero"),
    ("based_taylor", 512, 256, 64, "zero"),
    ("based_taylor", 2048, 1024, 256, "zero"),
]
FLA_RUNS = {
    "delta_rule": [("chunk", torch.bfloat16), ("fused_recurrent", torch.bfloat16), ("fused_recurrent", torch.float32)],
    "based_taylor": [("parallel", torch.bfloat16), ("parallel", torch.float32)],
}


def fla_rows(num_examples: int, seed: int) -> list[dict]:
    rows = []
    for name, c, n, d, filler in FLA_CASES:
        con = build(name, vocab_size=c, seq_len=n, num_kv_pairs=d)
        batch = generate(
            MQARSpec(vocab_size=c, seq_len=n, num_kv_pairs=d, filler=filler), num_examples, np.random.default_rng(seed)
        )
        for mode, dtype in FLA_RUNS[name]:
            load = load_fla_deltanet if name == "delta_rule" else load_fla_based
            model = load(con, device="cuda", dtype=dtype, mode=mode)
            pred = torch.cat(
                [
                    model.predict(torch.from_numpy(batch.inputs[s : s + 64]).cuda()).cpu()
                    for s in range(0, num_examples, 64)
                ]
            )
            s = score(pred.numpy(), batch)
            layer = "fla.layers.DeltaNet" if name == "delta_rule" else "fla.layers.BasedLinearAttention"
            row = {"construction": name, "layer": layer,
                   "mode": mode, "dtype": str(dtype).removeprefix("torch."), "vocab_size": c, "seq_len": n,
                   "num_kv_pairs": d, "filler": filler, "num_queries": s.num_queries, "num_correct": s.num_correct,
                   "accuracy": s.accuracy}  # fmt: skip
            what = f"{row['layer']} {mode} {row['dtype']} c={c} N={n} D={d}"
            print(f"{what}: {s.num_correct}/{s.num_queries}", flush=True)
            rows.append(row)
    return rows


def markdown(env: dict, exports: dict[str, list[dict]], fla: list[dict], command: str, seconds: float) -> str:
    lines = [
        "# Reference checkpoints and fla's layers (GPU)",
        "",
        f"{env.get('device_name')}, torch {env['torch']}, triton {env.get('triton')}, fla {env.get('fla')}; "
        f"{seconds:.0f} s. Command: `{command}`.",
        "",
        "## Exported checkpoints in our reference-layout model",
        "",
        "Accuracy on unambiguous queries (random filler / zero filler) per [B] Fig. 2 test slice; sliding windows: "
        "queries where correct != pair in window (U8), both fillers together.",
        "",
        "| checkpoint | dtype | " + " | ".join(f"({n},{d})" for n, d in FIG2_TEST_SLICES) + " | U8 mismatches |",
        "|---|---|" + "---|" * len(FIG2_TEST_SLICES) + "---|",
    ]
    for dtype, records in exports.items():
        for r in records:
            cells, mism = slice_cells(r)
            window = r["knobs"].get("window")
            lines.append(f"| {r['name']} | {dtype} | " + " | ".join(cells) + f" | {mism if window else '-'} |")
    lines += ["", "## Constructions inside fla's layers", "", "| layer | mode | dtype | c | N | D | filler | correct |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in fla:
        lines.append(
            f"| {r['layer']} | {r['mode']} | {r['dtype']} | {r['vocab_size']} | {r['seq_len']} | {r['num_kv_pairs']} "
            f"| {r['filler']} | {r['num_correct']}/{r['num_queries']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-examples", type=int, default=1000)
    ap.add_argument("--fla-examples", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/results")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("reference_exports_gpu.py: needs a CUDA device")
    device = torch.device("cuda")
    env = environment(device)
    import fla  # the GPU extra; a missing fla-core fails here, loudly

    env["fla"] = getattr(fla, "__version__", "unknown")
    t0 = time.perf_counter()
    command = f"python benchmarks/reference_exports_gpu.py --num-examples {args.num_examples} --out {args.out}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    exports: dict[str, list[dict]] = {}
    fla_results: list[dict] = []
    stages = ["exports bfloat16", "fla layers", "exports float32"]  # the GPU-only results first

    def write(done: list[str]) -> None:
        """Both files after every stage, so a run stopped by a time limit keeps what it measured."""
        seconds = time.perf_counter() - t0
        missing = [stage for stage in stages if stage not in done]
        payload = {"environment": env, "command": command, "seconds": seconds, "not_measured": missing,
                   "exports": exports, "fla": fla_results}  # fmt: skip
        (out / "reference_exports_gpu.json").write_text(json.dumps(payload, indent=1))
        text = markdown(env, exports, fla_results, command, seconds)
        if missing:
            text += f"\nNot measured (the run stopped first): {', '.join(missing)}.\n"
        (out / "reference_exports_gpu.md").write_text(text)
        print(f"wrote {out / 'reference_exports_gpu.json'} and .md ({', '.join(done)} done)", flush=True)

    done: list[str] = []
    for stage in stages:
        if stage == "fla layers":
            fla_results.extend(fla_rows(args.fla_examples, args.seed))
        else:
            dtype = getattr(torch, stage.split()[-1])
            exports[stage.split()[-1]] = records = measure_exports(
                device=device, dtype=dtype, num_examples=args.num_examples, seed=args.seed
            )
            for r in records:
                print(f"{r['name']} {r['dtype']}: mean accuracy {r['accuracy']:.4f}, state {r['state_bytes']} B")
        done.append(stage)
        write(done)


if __name__ == "__main__":
    main()
