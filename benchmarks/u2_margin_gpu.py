"""U2's adversarial family in low precision: the readout margin of ``attention_signcode`` at its proven ``beta*`` on the
worst-case instances, computed with torch in bf16 (default) on a GPU, against the proven bound ``1/m``.

Usage::

    python benchmarks/u2_margin_gpu.py                      # CUDA, bf16; writes docs/results/u2_margin_cuda.{json,md}
    python benchmarks/u2_margin_gpu.py --device cpu         # the same on the CPU (torch's bf16 kernels there)
    python benchmarks/u2_margin_gpu.py --dtype float32 --out /tmp/u2

For each ``(c = 2^m, N)`` and each mask (strict, causal), ``worst_case_batch`` builds the instance whose float64 margin
is the exact minimum over clean instances, ``worst_case_margin`` (``(2/m)(1 - r)/(1 + r)``, towards ``1.2/m``;
``mqarkit verify`` checks float64 == formula and float32). Here the lookup runs as a model would run it: the
construction's own projections as torch tensors of ``--dtype``, logits ``(beta/m) q kᵀ``, the mask, ``torch.softmax``,
the weighted values, the readout against every code, all in ``--dtype`` on ``--device``. Reported per row: the margin
times ``m`` in that dtype and in float64 (same torch code), the formula's, and whether it clears the proven ``1``.
The exit status is 0 when every margin clears ``1/m``, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _machine import cpu_name

from mqarkit.constructions import build
from mqarkit.constructions.attention_signcode import (
    guaranteed_margin,
    sufficient_beta,
    worst_case_batch,
    worst_case_margin,
)
from mqarkit.task import MQARSpec

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
SIZES = [(32, 16), (128, 64), (1024, 256), (2048, 512), (8192, 1024), (65536, 2048), (65536, 4096)]
MASKS = ("strict", "causal")
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32, "float64": torch.float64}


def margin(con: object, inputs: torch.Tensor, position: int, answer: int, dtype: torch.dtype) -> float:
    """The readout margin (unit codes) at ``position``, the lookup computed in ``dtype`` on ``inputs.device``."""
    op = con.model.layers[1].op  # the lookup: SoftmaxAttention on [token; prev_token]
    device = inputs.device
    book = torch.as_tensor(con.codebook(), device=device).to(dtype)  # (c, m)
    m = book.shape[1]
    token = book[inputs]  # (N, m)
    prev = torch.zeros_like(token)
    prev[1:] = token[:-1]
    stream = torch.cat([token, prev], dim=-1)
    q, k, v = (stream @ torch.tensor(np.array(w), device=device).to(dtype) for w in (op.wq, op.wk, op.wv))
    logits = (q @ k.T) * torch.tensor(op.beta, dtype=dtype, device=device)  # (N, N)
    n = inputs.shape[0]
    t, s = torch.arange(n, device=device)[:, None], torch.arange(n, device=device)[None, :]
    allowed = s < t if op.mask == "strict" else s <= t
    logits = logits.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(logits[position], dim=-1)  # the query's row (every row has a visible position here)
    scores = (probs @ v) @ book.T / m  # (c,)
    others = scores.clone()
    others[answer] = float("-inf")
    return float((scores[answer] - others.max()).double())


def run(device: torch.device, dtype: torch.dtype, sizes: list[tuple[int, int]]) -> list[dict[str, object]]:
    rows = []
    for c, n in sizes:
        m = (c - 1).bit_length()
        for mask in MASKS:
            con = build("attention_signcode", vocab_size=c, seq_len=n, num_kv_pairs=1, mask=mask)
            batch = worst_case_batch(MQARSpec(c, n, 1, filler="clean"), mask)
            position = int(batch.query_positions[0, 0])
            answer = int(batch.labels[0, position])
            inputs = torch.as_tensor(batch.inputs[0], device=device)
            low = margin(con, inputs, position, answer, dtype)
            exact = margin(con, inputs, position, answer, torch.float64)
            formula = worst_case_margin(n, m, sufficient_beta(n, m, mask=mask), mask)
            rows.append({"c": c, "N": n, "m": m, "mask": mask, "margin_x_m": round(low * m, 6),
                         "float64_x_m": round(exact * m, 6), "formula_x_m": round(formula * m, 6), "proven_x_m": 1.0,
                         "clears_proven": low >= guaranteed_margin(m)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    return rows


def versions() -> dict[str, str]:
    info = {"python": platform.python_version(), "torch": torch.__version__}
    try:
        info["triton"] = __import__("triton").__version__
    except Exception as err:
        info["triton"] = f"unavailable ({type(err).__name__})"
    return info


def markdown(result: dict) -> str:
    lines = [
        f"# U2: adversarial margin in {result['dtype']}",
        "",
        f"Device: {result['device']}; versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
        f"Command: `{result['command']}` ({result['seconds']} s).",
        "",
        "`attention_signcode` at its proven `beta*` on `worst_case_batch` (the exact minimum over clean instances in "
        "float64, towards 1.2/m), the lookup computed in the dtype below with torch; margins times `m` (proven: 1).",
        "",
        "| c | N | m | mask | margin x m | float64 x m | formula x m | >= 1/m |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['c']} | {r['N']} | {r['m']} | {r['mask']} | {r['margin_x_m']} | {r['float64_x_m']} | "
                     f"{r['formula_x_m']} | {'yes' if r['clears_proven'] else 'NO'} |")  # fmt: skip
    worst = min(result["rows"], key=lambda r: r["margin_x_m"])
    lines += ["", f"Smallest {result['dtype']} margin: {worst['margin_x_m']}/m at (c={worst['c']}, N={worst['N']}, "
              f"{worst['mask']}); proven bound 1/m; analytic infimum 1.2/m."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="torch device (default cuda; cpu to run without a GPU)")
    parser.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES))
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for u2_margin_<device>.json and .md")
    parser.add_argument("--max-seq-len", type=int, default=max(n for _, n in SIZES), help="skip larger sizes")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("benchmarks/u2_margin_gpu.py: --device cuda needs a CUDA GPU (or pass --device cpu)", file=sys.stderr)
        return 2
    if args.max_seq_len < SIZES[0][1]:
        print(f"--max-seq-len={args.max_seq_len}: must be >= {SIZES[0][1]}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    rows = run(device, DTYPES[args.dtype], [(c, n) for c, n in SIZES if n <= args.max_seq_len])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU: {cpu_name('unknown CPU')}"
    command = "python benchmarks/u2_margin_gpu.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {"device": name, "versions": versions(), "dtype": args.dtype, "command": command.strip(),
              "seconds": round(time.perf_counter() - t0, 2), "rows": rows}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"u2_margin_{device.type}" + ("" if args.dtype == "bfloat16" else f"_{args.dtype}")
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))
    return 0 if all(r["clears_proven"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
