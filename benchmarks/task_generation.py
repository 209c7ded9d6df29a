"""Benchmark: generate the Based Figure-2 MQAR training set with `mqarkit.task.generate` on one CPU core.

The set (c = 8192, zero filler as in every paper configuration): (N, D) = (64, 4) x 100,000, (128, 8) x 20,000,
(256, 16) x 20,000, (256, 32) x 20,000, (256, 64) x 20,000. Each segment is generated ``--repeats`` times with a fresh
``numpy.random.default_rng``; the median wall time (``time.perf_counter``) per segment and of the per-repeat totals
is printed and written to ``docs/results/task_generation.{json,md}`` with the machine, CPU and NumPy version. The
``clean`` and ``random`` filler modes are timed the same way for comparison. Reference point: zoology's
``multiquery_ar`` takes about 57 s for the same set.

Run: ``python benchmarks/task_generation.py [--repeats 5]``. The thread-count variables are set before NumPy is
imported so that the BLAS/OpenMP pools use one core (generation itself is single-threaded NumPy).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _machine import cpu_name  # noqa: E402

from mqarkit.task import MQARSpec, generate  # noqa: E402

VOCAB = 8192
SEGMENTS = [(64, 4, 100_000), (128, 8, 20_000), (256, 16, 20_000), (256, 32, 20_000), (256, 64, 20_000)]
RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def time_mode(filler: str, repeats: int) -> dict:
    per_segment: dict[str, list[float]] = {f"({N},{D})x{n}": [] for N, D, n in SEGMENTS}
    totals: list[float] = []
    tokens = 0
    for r in range(repeats):
        rng = np.random.default_rng(r)
        total = 0.0
        tokens = 0
        for N, D, n in SEGMENTS:
            spec = MQARSpec(vocab_size=VOCAB, seq_len=N, num_kv_pairs=D, filler=filler)
            start = time.perf_counter()
            batch = generate(spec, n, rng)
            elapsed = time.perf_counter() - start
            assert batch.inputs.shape == (n, N)  # the work was done
            per_segment[f"({N},{D})x{n}"].append(elapsed)
            total += elapsed
            tokens += batch.inputs.size
        totals.append(total)
    return {
        "filler": filler,
        "median_s_per_segment": {k: statistics.median(v) for k, v in per_segment.items()},
        "median_total_s": statistics.median(totals),
        "min_total_s": min(totals),
        "max_total_s": max(totals),
        "tokens": tokens,
        "median_tokens_per_s": tokens / statistics.median(totals),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    modes = [time_mode(f, args.repeats) for f in ("zero", "clean", "random")]
    record = {
        "benchmark": "task_generation",
        "set": "Based Figure-2 MQAR training set, c=8192",
        "segments": [{"seq_len": N, "num_kv_pairs": D, "num_examples": n} for N, D, n in SEGMENTS],
        "repeats": args.repeats,
        "modes": modes,
        "target_total_s": 5.0,
        "reference_total_s": 57.0,
        "machine": {
            "cpu": cpu_name("unknown"),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "threads": "OMP/OPENBLAS/MKL/NUMEXPR_NUM_THREADS=1",
            "os_cpu_count": os.cpu_count(),
        },
    }
    lines = [
        "# MQAR task generation benchmark",
        "",
        f"`benchmarks/task_generation.py --repeats {args.repeats}`: {record['set']}, generated with "
        "`mqarkit.task.generate` on one CPU core; medians of the wall time over the repeats.",
        "",
        f"Machine: {record['machine']['cpu']} ({record['machine']['platform']}), Python "
        f"{record['machine']['python']}, NumPy {record['machine']['numpy']}, thread pools pinned to 1. The machine "
        "was shared with other jobs, so the spread (min-max of the totals) is reported too.",
        "",
        "| segment (N, D) x n | " + " | ".join(f"{m['filler']} filler (s)" for m in modes) + " |",
        "|---|" + "---:|" * len(modes),
    ]
    for key in modes[0]["median_s_per_segment"]:
        lines.append(f"| {key} | " + " | ".join(f"{m['median_s_per_segment'][key]:.3f}" for m in modes) + " |")
    lines.append("| **total** | " + " | ".join(f"**{m['median_total_s']:.3f}**" for m in modes) + " |")
    lines.append(
        "| total min-max | " + " | ".join(f"{m['min_total_s']:.2f}-{m['max_total_s']:.2f}" for m in modes) + " |"
    )
    lines += [
        "",
        f"Target: <= {record['target_total_s']} s total; zoology's `multiquery_ar` takes about "
        f"{record['reference_total_s']:.0f} s for the same set ({modes[0]['tokens']:,} tokens).",
        "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "task_generation.json").write_text(json.dumps(record, indent=1) + "\n")
    (RESULTS / "task_generation.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
