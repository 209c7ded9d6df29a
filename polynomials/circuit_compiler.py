"""Compile an arithmetic circuit into a BaseConv stack (theory.md §3 U5, the machine-checked fallback).

**Layout.** The circuit's inputs lie along the sequence: input ``i`` is position ``i`` of channel 0 (block ``"x"``);
output ``j`` is read back from position ``j`` of channel 0 (positions ``>=`` the number of outputs read 0). Inside,
every wire has a channel: channel ``i`` for input ``i`` (``i < n``, where ``n = circuit.num_inputs``), then one
channel per non-input gate (block ``"wires"`` holds channels ``1 ..``), so the width is ``inputs + size``. A wire's
channel holds the wire's value at every position where it is needed.

**Layers** (``cyclic`` only changes the broadcast filter of layer 2), all non-residual BaseConv
``y = (u W + b1) ⊙ (h * u + b2)``; a channel is *carried* by ``b1 = 1, h = impulse(0), W = b2 = 0`` (``y = u``):

1. *mask*: channel ``i`` gets ``u[p, 0] * 1[p = i]`` (linear branch copies channel 0, ``b2 = 1[p = i]``);
2. *broadcast*: channel ``i`` gets ``sum_j`` of that column through an all-ones filter of length ``N``
   (``b1 = 1``): causal gives ``u[i] * 1[p >= i]``, cyclic gives ``u[i]`` at every ``p``. Constants ``r`` are
   written here too (``b1 = r, b2 = 1``).
3. per circuit level ``l = 1..depth``, two layers: (a) every ``+`` gate of level ``l`` is ``W[a -> g] + W[b -> g]``
   with ``b2 = 1``, and every ``×`` gate copies its second argument into its own channel (``W[b -> g] = 1``,
   ``b2 = 1``); (b) every ``×`` gate multiplies: ``W[a -> g] = 1`` and ``h = impulse(0)`` on ``g`` give
   ``u_a ⊙ u_g = a * b`` (the conv branch is depthwise, hence the copy); everything else is carried.
4. *scatter*: (a) channel ``c`` keeps only the positions ``j`` whose output is the wire ``c``
   (``b1 = 1[outputs[j] = c]``, ``h = impulse(0)``); (b) channel 0 gets the sum of those channels
   (``W[c -> 0] = 1``, ``b2 = 1``): at position ``j`` only ``outputs[j]``'s channel survives.

So ``2 * depth + 4`` layers, width ``inputs + size``, filters of length ``N`` (layer 2; ``1`` elsewhere).
Correctness: with the cyclic broadcast every wire holds its exact value at every position. With the causal one,
position ``p`` sees the inputs ``i <= p`` only (the others read 0), so output ``j`` is right exactly when it reads no
input ``i > j``: the causal compile checks this and raises a ``ValueError`` naming the output gate and the input
otherwise (theory.md §7 item 8; no causal BaseConv can do better, since its output at ``j`` never depends on later
positions).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from .baseconv import BaseConv
from .circuits import Circuit
from .model import Layer, Model
from .op_base import check_seq_len
from .stream import Stream


def _carry(d: int, channels: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weights (W, h, b1, b2) as object arrays of Fraction that carry ``channels`` and zero the rest."""
    zero = Fraction(0)
    w = np.full((d, d), zero, dtype=object)
    h = np.full((1, d), zero, dtype=object)
    b1 = np.full((d,), zero, dtype=object)
    b2 = np.full((d,), zero, dtype=object)
    for c in channels:
        b1[c] = Fraction(1)
        h[0, c] = Fraction(1)
    return w, h, b1, b2


def compile_to_baseconv(circuit: Circuit, *, seq_len: int | None = None, cyclic: bool = False) -> Model:
    """A BaseConv model computing ``circuit`` (see the module docstring for layout and layers).

    ``seq_len`` defaults to ``max(inputs, outputs)``. Read the outputs with
    ``read(model, evaluate(model, embed(model, {"x": u})), "x")[:, 0]``.
    """
    if not isinstance(circuit, Circuit):
        raise ValueError(f"circuit: {circuit!r} is not a Circuit")
    n_in, n_out = circuit.num_inputs, len(circuit.outputs)
    if n_in < 1:
        raise ValueError("circuit: has no input gate; the compiled model reads its inputs from the sequence")
    n = max(n_in, n_out) if seq_len is None else check_seq_len(seq_len)
    if n < max(n_in, n_out):
        raise ValueError(f"seq_len={seq_len}: must be >= max(inputs={n_in}, outputs={n_out})")
    if not cyclic:
        bad = circuit.causal_violations()
        if bad:
            j, gate, i = bad[0]
            raise ValueError(
                f"gate {gate!r} (output {j}) reads input {i}, a later position: a causal BaseConv cannot compute it; "
                "use cyclic=True"
            )

    order = circuit.order
    depth = circuit.depths()
    channel: dict = {}
    for node in order:
        if circuit.gate(node) == "input":
            channel[node] = int(circuit.graph.nodes[node]["index"])
    for k, node in enumerate(nd for nd in order if circuit.gate(nd) != "input"):
        channel[node] = n_in + k
    d = n_in + circuit.size
    inputs = list(range(n_in))
    consts = [nd for nd in order if circuit.gate(nd) == "const"]
    ops: list[BaseConv] = []

    # 1. mask: channel i <- u[p, 0] * 1[p == i]
    w, h, _, _ = _carry(d, [])
    b2 = np.full((n, d), Fraction(0), dtype=object)
    for i in inputs:
        w[0, i] = Fraction(1)
        b2[i, i] = Fraction(1)
    ops.append(BaseConv(w, h, None, b2))

    # 2. broadcast along the sequence (all-ones filter of length N); constants written here
    w, _, b1, b2 = _carry(d, [])
    h = np.full((n, d), Fraction(0), dtype=object)
    for i in inputs:
        h[:, i] = Fraction(1)
        b1[i] = Fraction(1)
    for nd in consts:
        b1[channel[nd]] = Fraction(circuit.graph.nodes[nd]["value"])
        b2[channel[nd]] = Fraction(1)
    ops.append(BaseConv(w, h, b1, b2, cyclic=cyclic))

    # 3. two layers per level
    ready = [channel[nd] for nd in order if depth[nd] == 0]
    for level in range(1, circuit.depth + 1):
        gates = [nd for nd in order if depth[nd] == level]
        w, h, b1, b2 = _carry(d, ready)
        for g in gates:
            a, b = circuit.graph.nodes[g]["args"]
            cg = channel[g]
            if circuit.gate(g) == "add":
                w[channel[a], cg] += 1
                w[channel[b], cg] += 1
            else:
                w[channel[b], cg] += 1  # copy the second factor into the gate's own channel
            b2[cg] = Fraction(1)
        ops.append(BaseConv(w, h, b1, b2))
        ready = ready + [channel[g] for g in gates]
        muls = [g for g in gates if circuit.gate(g) == "mul"]
        w, h, b1, b2 = _carry(d, [c for c in ready if c not in {channel[g] for g in muls}])
        for g in muls:
            a, _ = circuit.graph.nodes[g]["args"]
            w[channel[a], channel[g]] = Fraction(1)
            h[0, channel[g]] = Fraction(1)
        ops.append(BaseConv(w, h, b1, b2))

    # 4. scatter: keep output j's wire at position j only, then sum into channel 0
    w, h, _, _ = _carry(d, [])
    b1 = np.full((n, d), Fraction(0), dtype=object)
    out_channels = sorted({channel[o] for o in circuit.outputs})
    for j, o in enumerate(circuit.outputs):
        b1[j, channel[o]] = Fraction(1)
    for c in out_channels:
        h[0, c] = Fraction(1)
    ops.append(BaseConv(w, h, b1, None))
    w, h, b1, b2 = _carry(d, [])
    for c in out_channels:
        w[c, 0] = Fraction(1)
    b2[0] = Fraction(1)
    ops.append(BaseConv(w, h, None, b2))

    blocks = (("x", 1),) + ((("wires", d - 1),) if d > 1 else ())
    stream = Stream(blocks)
    names = stream.names
    label = f"circuit->{'cyclic' if cyclic else 'causal'} BaseConv"
    return Model(stream, tuple(Layer(op, names, names, residual=False) for op in ops), name=label)
