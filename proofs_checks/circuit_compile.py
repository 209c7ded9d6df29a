"""U5 specific check: ``compile_to_baseconv`` simulates arithmetic circuits exactly (causal and cyclic), and the
causal compile refuses a circuit that reads a later input (erratum 8's side of U5).

U5 is not a ``Construction`` (there is no MQAR builder): its object is ``mqarkit.polynomials.compile_to_baseconv``.
For random circuits (``random_circuit``, an explicit seeded ``Generator``) of growing size, each circuit is compiled
with ``seq_len = max(inputs, outputs) + extra`` and evaluated **symbolically** (sympy, exact over Q) on the symbols
``x_0 .. x_{N-1}``; the output at position ``j`` must equal ``circuit.polynomial(x)[j]`` with ``==`` (and be 0 past the
last output). Also checked: the compiler's stated resources, ``2 depth + 4`` layers and width ``inputs + size``.

- ``cyclic=True``: every circuit;
- ``cyclic=False``: a circuit whose outputs read only inputs at positions ``<= j`` compiles and is exact; one that
  reads a later input must raise ``ValueError``. Among those, the ones whose *polynomial* depends on a later input
  (not only the wiring) are counted: no causal model computes them (erratum E8's generic check proves that output
  ``j`` of any causal BaseConv stack involves positions ``<= j`` only), and the cyclic compile computes them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mqarkit.proofs_checks.point_runner import run_points
from mqarkit.proofs_checks.registry import CheckContext, CheckOutcome, failed, passed

SEED = 20240315


def circuit_points(full: bool) -> list[tuple[int, int, int, int, int]]:
    """``(seed offset, inputs, gates, outputs, extra positions)``, smallest first."""
    sizes = [(1, 3, 1), (2, 3, 2), (2, 5, 3), (3, 6, 2), (3, 8, 4), (4, 8, 4), (4, 10, 6), (5, 12, 5)]
    if full:
        sizes += [(6, 14, 6), (6, 18, 8), (8, 20, 8), (8, 24, 10)]
    return [(k, i, g, o, k % 3) for k, (i, g, o) in enumerate(sizes) for _ in range(3)]


def _run(model: Any, values: np.ndarray) -> np.ndarray:
    from mqarkit.polynomials import embed, evaluate, read

    return read(model, evaluate(model, embed(model, {"x": values[:, None]}), backend="symbolic"), "x")[:, 0]


def _compare(circuit: Any, cyclic: bool, seq_len: int) -> dict[str, Any] | None:
    """Compile, evaluate symbolically, compare with the circuit polynomial; a mismatch as a dict, else None."""
    import sympy

    from mqarkit.polynomials import compile_to_baseconv

    model = compile_to_baseconv(circuit, seq_len=seq_len, cyclic=cyclic)
    xs = sympy.symbols(f"x0:{seq_len}")
    out = list(_run(model, np.array(xs, dtype=object)))
    expected = list(circuit.polynomial(xs))
    want = expected + [0] * (seq_len - len(expected))
    layers, width = len(model.layers), model.width
    if out != want or layers != 2 * circuit.depth + 4 or width != circuit.num_inputs + circuit.size:
        wrong = [j for j, (a, b) in enumerate(zip(out, want)) if a != b]
        return {"cyclic": cyclic, "seq_len": seq_len, "first_wrong_output": wrong[0] if wrong else None,
                "got": str(out[wrong[0]]) if wrong else None, "want": str(want[wrong[0]]) if wrong else None,
                "layers": layers, "claimed_layers": 2 * circuit.depth + 4, "width": width,
                "claimed_width": circuit.num_inputs + circuit.size}  # fmt: skip
    return None


def _describe(circuit: Any) -> dict[str, Any]:
    g = circuit.graph
    return {"gates": {str(nd): dict(g.nodes[nd], args=list(g.nodes[nd].get("args", ()))) for nd in circuit.order},
            "outputs": [str(o) for o in circuit.outputs]}  # fmt: skip


def check_circuits_compile(ctx: CheckContext) -> CheckOutcome:
    import sympy

    from mqarkit.polynomials import compile_to_baseconv, random_circuit

    counts = {"circuits": 0, "causal_exact": 0, "refused": 0, "refused_genuine": 0, "max_depth": 0, "max_size": 0}

    def step(point: tuple[int, int, int, int, int]) -> dict | None:
        k, n_in, n_gates, n_out, extra = point
        rng = np.random.default_rng(SEED + 1009 * k + counts["circuits"])
        circuit = random_circuit(rng, num_inputs=n_in, num_gates=n_gates, num_outputs=n_out)
        counts["circuits"] += 1
        counts["max_depth"] = max(counts["max_depth"], circuit.depth)
        counts["max_size"] = max(counts["max_size"], circuit.size)
        seq_len = max(n_in, n_out) + extra
        bad = _compare(circuit, True, seq_len)
        if bad is None and circuit.is_causal():
            bad = _compare(circuit, False, seq_len)
            counts["causal_exact"] += bad is None
        elif bad is None:
            try:
                compile_to_baseconv(circuit, seq_len=seq_len, cyclic=False)
            except ValueError:
                counts["refused"] += 1
                xs = sympy.symbols(f"x0:{seq_len}")
                polys = circuit.polynomial(xs)
                later = any(p.free_symbols & set(xs[j + 1 :]) for j, p in enumerate(polys))
                counts["refused_genuine"] += later
            else:
                bad = {"cyclic": False, "error": "the causal compile accepted a circuit reading a later input",
                       "violations": [list(map(str, v)) for v in circuit.causal_violations()]}  # fmt: skip
        return None if bad is None else {**bad, "circuit": _describe(circuit)}

    ran, bad = run_points(circuit_points(ctx.budget.full), step)
    ins = [p[1] for p in ran]
    covered = (
        f"symbolic (sympy, exact over Q): {counts['circuits']} random circuits, inputs <= {max(ins)}, size <= "
        f"{counts['max_size']}, depth <= {counts['max_depth']}: cyclic compile == circuit polynomial for all; causal "
        f"compile == polynomial for the {counts['causal_exact']} causal ones and refused (ValueError) for the "
        f"{counts['refused']} reading a later input ({counts['refused_genuine']} whose polynomial depends on it); "
        "layers == 2 depth + 4, width == inputs + size"
    )
    if bad is not None:
        return failed(covered, bad, "compiled BaseConv differs from the circuit (or the causal compile accepted it)")
    if counts["causal_exact"] == 0 or counts["refused_genuine"] == 0:
        return failed(covered, dict(counts), "the run drew no causal circuit or no circuit reading a later input")
    return passed(covered, **counts)
