"""Benchmark of the operator IR's evaluators (CPU, one core).

1. float64: a 2-layer BaseConv model, N = 1024, d = 512, batch 8, long filters (k = N: FFT path), position-dependent
   biases. Target: median <= 1 s.
2. symbolic: a 2-layer BaseConv model on generic symbols (one per input entry) with sparse weights (each projection
   column and each filter with at most two non-zeros) at N = 16, d = 8. Target: <= 10 s.
3. growth of the symbolic cost with N (d = 8), sparse vs dense weights, until one run exceeds a time cap.

Run: ``python benchmarks/operators.py``; writes ``docs/results/operators.json`` and ``.md``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one core, set before NumPy loads its BLAS

import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import sympy  # noqa: E402
from _machine import cpu_name  # noqa: E402

from mqarkit.polynomials import BaseConv, Model, evaluate, generic_input  # noqa: E402
from mqarkit.polynomials.analysis import total_degree  # noqa: E402
from mqarkit.polynomials.evaluate import evaluate_ring  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def float64_model(rng: np.random.Generator, n: int, d: int) -> Model:
    ops = [
        BaseConv(
            rng.normal(size=(d, d)) / np.sqrt(d),
            rng.normal(size=(n, d)) / np.sqrt(n),
            rng.normal(size=(n, d)),
            rng.normal(size=(n, d)),
        )
        for _ in range(2)
    ]
    return Model.sequential(ops, d, name="bench-float64")


def sparse_columns(rng: np.random.Generator, rows: int, cols: int, nonzeros: int | None) -> np.ndarray:
    """Integer matrix in [-3, 3] \\ {0}; each column has ``nonzeros`` non-zero entries (all when None)."""
    values = rng.integers(1, 4, (rows, cols)) * rng.choice([-1, 1], (rows, cols))
    if nonzeros is None:
        return values
    out = np.zeros((rows, cols), dtype=np.int64)
    for c in range(cols):
        idx = rng.choice(rows, size=min(nonzeros, rows), replace=False)
        out[idx, c] = values[idx, c]
    return out


def symbolic_model(rng: np.random.Generator, n: int, d: int, nonzeros: int | None) -> Model:
    ops = [
        BaseConv(
            sparse_columns(rng, d, d, nonzeros),
            sparse_columns(rng, n, d, nonzeros),
            rng.integers(-2, 3, (n, d)),
            rng.integers(-2, 3, (n, d)),
        )
        for _ in range(2)
    ]
    return Model.sequential(ops, d, name="bench-symbolic")


def time_float64(repeats: int = 5) -> dict:
    rng = np.random.default_rng(0)
    n, d, batch = 1024, 512, 8
    model = float64_model(rng, n, d)
    u = rng.normal(size=(batch, n, d))
    evaluate(model, u)  # warm-up: converts weights, caches filter spectra
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = evaluate(model, u)
        times.append(time.perf_counter() - t0)
    assert out.shape == (batch, n, d) and np.isfinite(out).all()
    return {
        "N": n,
        "d": d,
        "batch": batch,
        "kernel_size": n,
        "repeats": repeats,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "target_s": 1.0,
    }


def time_symbolic(n: int, d: int, nonzeros: int | None) -> dict:
    rng = np.random.default_rng(n * 31 + d)
    model = symbolic_model(rng, n, d, nonzeros)
    u = generic_input(n, d)
    t0 = time.perf_counter()
    states, _ = evaluate_ring(model, u)
    ring_s = time.perf_counter() - t0
    out = states[-1]
    terms = sum(len(p) for p in out.ravel())
    degree = max(total_degree(p) for p in out.ravel())
    t1 = time.perf_counter()
    exprs = evaluate(model, u, backend="symbolic")  # the public path, including conversion to sympy expressions
    public_s = time.perf_counter() - t1
    assert isinstance(exprs[0, 0], sympy.Basic)
    return {
        "N": n,
        "d": d,
        "nonzeros_per_column": nonzeros,
        "ring_s": ring_s,
        "evaluate_s": public_s,
        "terms": terms,
        "max_degree": degree,
    }


def growth(nonzeros: int | None, cap_s: float, sizes: list[int]) -> list[dict]:
    rows = []
    for n in sizes:
        row = time_symbolic(n, 8, nonzeros)
        rows.append(row)
        print(
            f"  symbolic N={n:3d} d=8 {'sparse' if nonzeros else 'dense '}: {row['evaluate_s']:.2f} s, "
            f"{row['terms']} terms"
        )
        if row["evaluate_s"] > cap_s:
            break
    return rows


def main() -> None:
    print("float64 2-layer BaseConv, N=1024, d=512, batch 8, k=N (FFT):")
    f64 = time_float64()
    print(f"  median {f64['median_s']:.3f} s (target <= {f64['target_s']} s)")
    print("symbolic 2-layer BaseConv, sparse (<= 2 non-zeros per column), N=16, d=8:")
    sym = time_symbolic(16, 8, 2)
    print(f"  {sym['evaluate_s']:.2f} s, {sym['terms']} terms, degree {sym['max_degree']} (target <= 10 s)")
    print("symbolic cost vs N (d=8):")
    sparse_rows = growth(2, 20.0, [2, 4, 8, 16, 32, 64])
    dense_rows = growth(None, 20.0, [2, 3, 4, 6, 8, 12, 16])
    result = {
        "cpu": platform.processor() or platform.machine(),
        "cpu_count_used": 1,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "sympy": sympy.__version__,
        "float64_baseconv": f64,
        "symbolic_sparse_N16_d8": sym,
        "symbolic_growth_sparse": sparse_rows,
        "symbolic_growth_dense": dense_rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "operators.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "operators.md").write_text(markdown(result))
    print(f"wrote {RESULTS / 'operators.json'} and operators.md")


def markdown(r: dict) -> str:
    f, s = r["float64_baseconv"], r["symbolic_sparse_N16_d8"]
    lines = [
        "# Operator IR benchmarks",
        "",
        f"CPU: {cpu_name(platform.machine())} (one core: BLAS threads = 1); Python {r['python']}, NumPy {r['numpy']}, "
        f"sympy {r['sympy']}. Generated by `python benchmarks/operators.py`.",
        "",
        "| benchmark | result | target |",
        "|---|---|---|",
        f"| float64 2-layer BaseConv, N={f['N']}, d={f['d']}, batch {f['batch']}, k=N (FFT), median of "
        f"{f['repeats']} | {f['median_s']:.3f} s | <= {f['target_s']} s |",
        f"| symbolic 2-layer BaseConv, N=16, d=8, <= 2 non-zeros per column | {s['evaluate_s']:.2f} s "
        f"({s['terms']} terms, degree {s['max_degree']}) | <= 10 s |",
        "",
        "## Symbolic cost versus N (d = 8, generic symbols, 2 layers)",
        "",
        "`ring` = evaluation in the sparse polynomial ring; `evaluate` = the public call, including the conversion",
        "of every output to an expanded sympy expression.",
        "",
        "| weights | N | ring (s) | evaluate (s) | output terms |",
        "|---|---|---|---|---|",
    ]
    for label, rows in (("sparse (<= 2 / column)", r["symbolic_growth_sparse"]), ("dense", r["symbolic_growth_dense"])):
        for row in rows:
            lines.append(f"| {label} | {row['N']} | {row['ring_s']:.2f} | {row['evaluate_s']:.2f} | {row['terms']} |")
    sp, de = r["symbolic_growth_sparse"][-1], r["symbolic_growth_dense"][-1]
    lines += [
        "",
        "The cost follows the number of output terms. With sparse weights a layer-1 entry has O(1) terms and a",
        "layer-2 entry O(1) products of them, so the cost grows about linearly in N·d; with dense weights every",
        "layer-2 entry is a product of two dense quadratic forms in all N·d inputs, O((N·d)^4) terms over the",
        f"stream, so the practical limit (runs over ~20 s) is reached near N = {de['N']} (dense) versus beyond",
        f"N = {sp['N']} (sparse) at d = 8.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
