"""Mixer throughput on the GPU: forward and forward+backward tokens/s, with the device's measured ceilings.

Usage: ``python benchmarks/mixers.py --out DIR [--repeats 5]``; writes ``DIR/mixers.json`` and ``DIR/mixers.md``.

Sizes: ``B=256, N=256, d ∈ {64, 128, 256, 512}`` and ``B=8, N=4096, d=1024``; every mixer runs in bf16 (parameters
and activations); attention and Based use heads of width 64. Each figure is the median over ``--repeats`` timed
calls (CUDA events) after warm-up; tokens/s = ``B·N / median``. A combination that runs out of memory is recorded
as skipped with the reason. Ceilings measured in the same run: device-to-device copy bandwidth (a 1 GiB
``copy_``, read + write bytes) and dense bf16 matmul FLOP/s (``8192³``). Based runs three ways: our torch chunked
path, fla-core's ``parallel_based`` and ``fused_chunk_based`` (when importable).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from mqarkit.gpu.mixers import BaseConv, BasedLinearAttention, SelectiveSSM, SlidingWindowAttention, SoftmaxAttention
from mqarkit.gpu.mixers.based import fla_available
from mqarkit.gpu.timing import median_seconds

SIZES = [(256, 256, 64), (256, 256, 128), (256, 256, 256), (256, 256, 512), (8, 4096, 1024)]
DTYPE = torch.bfloat16


def mixers(n: int, d: int) -> dict[str, tuple[Callable[[], torch.nn.Module], str]]:
    """name -> (factory, which method runs: 'forward' or 'fla:<kernel>')."""
    h = max(1, d // 64)
    table = {
        "attention": (lambda: SoftmaxAttention(d, num_heads=h), "forward"),
        "sliding_w64": (lambda: SlidingWindowAttention(d, window=64, num_heads=h), "forward"),
        "baseconv_k3": (lambda: BaseConv(d, n, kernel_size=3), "forward"),
        "baseconv_long": (lambda: BaseConv(d, n), "forward"),
        "based_torch": (lambda: BasedLinearAttention(d, feature_dim=16, num_heads=h, impl="torch"), "forward"),
        "ssm": (lambda: SelectiveSSM(d, d_state=16), "forward"),
    }
    if fla_available():
        make = lambda: BasedLinearAttention(d, feature_dim=16, num_heads=h, impl="fla")  # noqa: E731
        table["based_fla_parallel"] = (make, "fla:parallel")
        table["based_fla_fused_chunk"] = (make, "fla:fused_chunk")
    return table


def ceilings(device: torch.device, repeats: int) -> dict[str, float]:
    src = torch.empty(2**29, dtype=torch.float16, device=device)  # 1 GiB
    dst = torch.empty_like(src)
    t_copy = median_seconds(lambda: dst.copy_(src), repeats=repeats, device=device)
    a = torch.randn(8192, 8192, dtype=torch.bfloat16, device=device)
    b = torch.randn(8192, 8192, dtype=torch.bfloat16, device=device)
    t_mm = median_seconds(lambda: a @ b, repeats=repeats, device=device)
    return {"copy_bytes_per_s": 2 * 2**30 / t_copy, "bf16_matmul_flop_per_s": 2 * 8192**3 / t_mm}


def bench_one(factory, how: str, b: int, n: int, d: int, device, repeats: int) -> dict[str, object]:
    module = factory().to(device, DTYPE)
    x = torch.randn(b, n, d, device=device, dtype=DTYPE, requires_grad=True)
    run = module if how == "forward" else (lambda t: module.fla(t, kernel=how.split(":")[1]))
    grad = torch.randn(b, n, d, device=device, dtype=DTYPE)

    def fwd() -> None:
        with torch.no_grad():
            run(x)

    def fwd_bwd() -> None:
        x.grad = None
        module.zero_grad(set_to_none=True)
        run(x).backward(grad)

    out: dict[str, object] = {}
    for label, fn in (("forward", fwd), ("forward_backward", fwd_bwd)):
        t = median_seconds(fn, warmup=2, repeats=repeats, device=device)
        out[f"{label}_ms"] = t * 1e3
        out[f"{label}_tokens_per_s"] = b * n / t
    return out


def versions() -> dict[str, str]:
    info = {"python": platform.python_version(), "torch": torch.__version__}
    for mod in ("triton", "fla"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception as err:
            info[mod] = f"unavailable ({type(err).__name__})"
    return info


def markdown(result: dict) -> str:
    c = result["ceilings"]
    lines = [
        "# Mixer throughput",
        "",
        f"Device: {result['device']}; versions: "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items())
        + f". bf16, median of {result['repeats']} CUDA-event timings after warm-up.",
        "",
        f"Ceilings measured in this run: copy {c['copy_bytes_per_s'] / 1e12:.2f} TB/s (read+write), "
        f"dense bf16 matmul {c['bf16_matmul_flop_per_s'] / 1e12:.0f} TFLOP/s.",
        "",
        "| B | N | d | mixer | fwd ms | fwd Mtok/s | fwd+bwd ms | fwd+bwd Mtok/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['B']} | {r['N']} | {r['d']} | {r['mixer']} | skipped: {r['skipped']} | | | |")
            continue
        lines.append(
            f"| {r['B']} | {r['N']} | {r['d']} | {r['mixer']} | {r['forward_ms']:.3f} | "
            f"{r['forward_tokens_per_s'] / 1e6:.1f} | {r['forward_backward_ms']:.3f} | "
            f"{r['forward_backward_tokens_per_s'] / 1e6:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for mixers.json and mixers.md")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks/mixers.py needs a CUDA GPU", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "device": torch.cuda.get_device_name(device),
        "versions": versions(),
        "repeats": args.repeats,
        "dtype": "bfloat16",
        "ceilings": ceilings(device, args.repeats),
        "rows": [],
    }
    for b, n, d in SIZES:
        for name, (factory, how) in mixers(n, d).items():
            row: dict[str, object] = {"B": b, "N": n, "d": d, "mixer": name}
            try:
                row.update(bench_one(factory, how, b, n, d, device, args.repeats))
            except torch.cuda.OutOfMemoryError:
                row["skipped"] = "out of GPU memory"
            except Exception as err:
                row["skipped"] = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
            torch.cuda.empty_cache()
            print(json.dumps(row), flush=True)
            result["rows"].append(row)
    (args.out / "mixers.json").write_text(json.dumps(result, indent=1))
    (args.out / "mixers.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
