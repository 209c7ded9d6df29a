"""Arithmetic circuits: DAGs of input, constant, ``+`` and ``×`` gates (theory.md §2.2, §3 U5).

A :class:`Circuit` wraps a ``networkx.DiGraph``. Every node has an attribute ``gate``:

- ``"input"`` with ``index`` ``i >= 0`` (reads input variable ``i``; in a compiled model, sequence position ``i``);
- ``"const"`` with ``value`` (an int or ``Fraction``);
- ``"add"`` / ``"mul"`` with ``args = (a, b)`` (fan-in 2; ``a == b`` is allowed, e.g. ``x*x``). The graph has an
  edge ``a -> g`` for each distinct argument (a ``DiGraph`` has no parallel edges, hence ``args``).

``outputs`` is a tuple of nodes: output ``j`` is the value of node ``outputs[j]``. Resources: ``size`` = number of
non-input gates (constants, sums, products), ``depth`` = the longest chain of ``+``/``×`` gates (inputs and constants
have depth 0), ``width`` = the largest number of ``+``/``×`` gates of one depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import networkx as nx
import numpy as np

from mqarkit.checks import check_int, check_real, check_rng

from .weights import to_fraction

GATES = ("input", "const", "add", "mul")


class Circuit:
    def __init__(self, graph: nx.DiGraph, outputs: Sequence[Any]) -> None:
        if not isinstance(graph, nx.DiGraph):
            raise ValueError(f"graph: {type(graph).__name__} is not a networkx.DiGraph")
        if not nx.is_directed_acyclic_graph(graph):
            raise ValueError("graph: has a cycle; a circuit is a DAG")
        indices: dict[int, Any] = {}
        for node, data in graph.nodes(data=True):
            gate = data.get("gate")
            if gate not in GATES:
                raise ValueError(f"gate {node!r}: gate={gate!r} must be one of {GATES}")
            if gate == "input":
                i = data.get("index")
                if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 0:
                    raise ValueError(f"gate {node!r}: input index={i!r} must be an int >= 0")
                if int(i) in indices:
                    raise ValueError(f"gate {node!r}: input index {i} is already read by gate {indices[int(i)]!r}")
                indices[int(i)] = node
                expected: set = set()
            elif gate == "const":
                to_fraction(data.get("value"), f"gate {node!r} value")
                expected = set()
            else:
                args = data.get("args")
                if not isinstance(args, tuple) or len(args) != 2:
                    raise ValueError(f"gate {node!r}: {gate} needs args=(a, b) (fan-in 2), got {args!r}")
                for a in args:
                    if a not in graph:
                        raise ValueError(f"gate {node!r}: argument {a!r} is not a gate of the circuit")
                expected = set(args)
            if set(graph.predecessors(node)) != expected:
                raise ValueError(
                    f"gate {node!r}: incoming edges {sorted(map(repr, graph.predecessors(node)))} do not match its "
                    f"arguments {sorted(map(repr, expected))}"
                )
        outputs = tuple(outputs)
        for o in outputs:
            if o not in graph:
                raise ValueError(f"outputs: {o!r} is not a gate of the circuit")
        self.graph = graph
        self.outputs = outputs
        self._order = list(nx.topological_sort(graph))

    # --- structure ---------------------------------------------------------------------------------------------
    def gate(self, node: Any) -> str:
        return self.graph.nodes[node]["gate"]

    @property
    def order(self) -> list[Any]:
        """Nodes in a topological order."""
        return list(self._order)

    @property
    def num_inputs(self) -> int:
        """``1 + `` the largest input index (0 without inputs)."""
        idx = [d["index"] for _, d in self.graph.nodes(data=True) if d["gate"] == "input"]
        return max(idx) + 1 if idx else 0

    @property
    def size(self) -> int:
        return sum(1 for _, d in self.graph.nodes(data=True) if d["gate"] != "input")

    def depths(self) -> dict[Any, int]:
        depth: dict[Any, int] = {}
        for node in self._order:
            data = self.graph.nodes[node]
            depth[node] = 1 + max(depth[a] for a in data["args"]) if data["gate"] in ("add", "mul") else 0
        return depth

    @property
    def depth(self) -> int:
        return max(self.depths().values(), default=0)

    @property
    def width(self) -> int:
        levels = [d for d in self.depths().values() if d > 0]
        return max((levels.count(level) for level in set(levels)), default=0)

    def support(self) -> dict[Any, frozenset[int]]:
        """Input indices each node depends on."""
        sup: dict[Any, frozenset[int]] = {}
        for node in self._order:
            data = self.graph.nodes[node]
            if data["gate"] == "input":
                sup[node] = frozenset({int(data["index"])})
            elif data["gate"] == "const":
                sup[node] = frozenset()
            else:
                sup[node] = frozenset().union(*(sup[a] for a in data["args"]))
        return sup

    def causal_violations(self) -> list[tuple[int, Any, int]]:
        """``(j, outputs[j], i)`` for every output ``j`` that reads an input ``i > j`` (a later position)."""
        sup = self.support()
        return [(j, o, i) for j, o in enumerate(self.outputs) for i in sorted(sup[o]) if i > j]

    def is_causal(self) -> bool:
        return not self.causal_violations()

    # --- semantics ---------------------------------------------------------------------------------------------
    def _run(self, values: Sequence[Any], zero: Any, const: Any) -> tuple[Any, ...]:
        if len(values) < self.num_inputs:
            raise ValueError(f"values: {len(values)} given; the circuit reads {self.num_inputs} inputs")
        val: dict[Any, Any] = {}
        for node in self._order:
            data = self.graph.nodes[node]
            g = data["gate"]
            if g == "input":
                val[node] = values[data["index"]]
            elif g == "const":
                val[node] = const(data["value"])
            elif g == "add":
                a, b = data["args"]
                val[node] = val[a] + val[b]
            else:
                a, b = data["args"]
                val[node] = val[a] * val[b]
        return tuple(val[o] for o in self.outputs)

    def evaluate(self, values: Sequence[Any]) -> tuple[Fraction, ...]:
        """Exact value of each output at the input ``values`` (ints / Fractions)."""
        vals = [to_fraction(v, f"values[{i}]") for i, v in enumerate(values)]
        return self._run(vals, Fraction(0), lambda c: to_fraction(c))

    def polynomial(self, symbols: Sequence[Any]) -> tuple[Any, ...]:
        """Each output as an expanded sympy polynomial in ``symbols`` (input ``i`` = ``symbols[i]``)."""
        import sympy

        outs = self._run(list(symbols), sympy.Integer(0), lambda c: sympy.Rational(to_fraction(c)))
        return tuple(sympy.expand(sympy.sympify(o)) for o in outs)

    def __repr__(self) -> str:
        return f"Circuit(inputs={self.num_inputs}, size={self.size}, depth={self.depth}, outputs={len(self.outputs)})"


class CircuitBuilder:
    """Build a circuit gate by gate: ``b = CircuitBuilder(); x = b.input(0); y = b.mul(x, b.const(3))``."""

    def __init__(self) -> None:
        self.graph = nx.DiGraph()

    def _new(self, **attrs: Any) -> int:
        node = self.graph.number_of_nodes()
        self.graph.add_node(node, **attrs)
        return node

    def input(self, index: int) -> int:
        return self._new(gate="input", index=int(index))

    def const(self, value: int | Fraction) -> int:
        return self._new(gate="const", value=to_fraction(value, "const value"))

    def _binary(self, gate: str, a: int, b: int) -> int:
        for x in (a, b):
            if x not in self.graph:
                raise ValueError(f"{gate}: argument {x!r} is not a gate built so far")
        node = self._new(gate=gate, args=(a, b))
        self.graph.add_edge(a, node)
        self.graph.add_edge(b, node)
        return node

    def add(self, a: int, b: int) -> int:
        return self._binary("add", a, b)

    def mul(self, a: int, b: int) -> int:
        return self._binary("mul", a, b)

    def build(self, outputs: Sequence[int]) -> Circuit:
        return Circuit(self.graph.copy(), outputs)


def random_circuit(
    rng: np.random.Generator,
    *,
    num_inputs: int,
    num_gates: int,
    num_outputs: int,
    const_range: int = 3,
    const_probability: float = 0.15,
) -> Circuit:
    """A random circuit: ``num_inputs`` inputs, then ``num_gates`` gates each a constant in
    ``[-const_range, const_range]`` (probability ``const_probability``) or a sum / product (equally likely) of two
    earlier nodes drawn uniformly; outputs drawn uniformly among all nodes (with repetition)."""
    check_rng(rng)
    num_inputs, num_gates = check_int("num_inputs", num_inputs, 1), check_int("num_gates", num_gates, 0)
    num_outputs, const_range = check_int("num_outputs", num_outputs, 1), check_int("const_range", const_range, 0)
    check_real("const_probability", const_probability, minimum=0.0, maximum=1.0)
    b = CircuitBuilder()
    nodes = [b.input(i) for i in range(num_inputs)]
    for _ in range(num_gates):
        if rng.random() < const_probability:
            nodes.append(b.const(int(rng.integers(-const_range, const_range + 1))))
        else:
            a, c = (nodes[int(k)] for k in rng.integers(0, len(nodes), size=2))
            nodes.append(b.add(a, c) if rng.random() < 0.5 else b.mul(a, c))
    outputs = [nodes[int(k)] for k in rng.integers(0, len(nodes), size=num_outputs)]
    return b.build(outputs)


def circuits(max_inputs: int = 4, max_gates: int = 6, max_outputs: int = 4, const_range: int = 3):
    """A hypothesis strategy of small circuits (sizes, gates, arguments and outputs all drawn by hypothesis)."""
    from hypothesis import strategies as st

    @st.composite
    def _draw(draw: Any) -> Circuit:
        n_in = draw(st.integers(1, max_inputs))
        n_gates = draw(st.integers(0, max_gates))
        n_out = draw(st.integers(1, max_outputs))
        b = CircuitBuilder()
        nodes = [b.input(i) for i in range(n_in)]
        for _ in range(n_gates):
            kind = draw(st.sampled_from(("add", "mul", "const")))
            if kind == "const":
                nodes.append(b.const(draw(st.integers(-const_range, const_range))))
            else:
                a = nodes[draw(st.integers(0, len(nodes) - 1))]
                c = nodes[draw(st.integers(0, len(nodes) - 1))]
                nodes.append(b.add(a, c) if kind == "add" else b.mul(a, c))
        outs = [nodes[draw(st.integers(0, len(nodes) - 1))] for _ in range(n_out)]
        return b.build(outs)

    return _draw()
