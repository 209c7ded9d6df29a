"""Figures of walkthroughs 3 and 4: BaseConv degree per layer, the one-layer shift up, resources vs sequence length.

Run ``python docs/figures/make_baseconv_figures.py`` from the repository root; it writes
``docs/figures/baseconv_degree.png``, ``docs/figures/baseconv_shift_up.png`` and ``docs/figures/baseconv_width.png``.
Every number drawn is computed here: the degrees by symbolic evaluation of random BaseConv stacks
(``output_degree``), the shift matrices by running the operator on the standard basis, the resources by the
constructions' ``claimed_resources`` (each equal to the resources measured from the built model: walkthrough 4 and
``tests/constructions`` check that).

*Degree.* One BaseConv layer ``y = (u W + b1) ⊙ (h ∗ u + b2)`` multiplies two affine images of its input, so it at most
doubles the degree: ``L`` layers give degree ``<= 2^L``. With generic (random non-zero) weights no cancellation happens
and the degree is exactly ``2^L`` (theory.md §2.2).

*Shift up* (erratum 4). A cyclic convolution with the impulse ``X^(N-s)`` maps ``u[j]`` to position ``(j + N - s) mod N
= j - s`` for ``j >= s`` and wraps ``u[j]`` for ``j < s`` around to ``j + N - s``; the position gate
``b1 = 1[i + s < N]`` zeroes exactly the wrapped rows. The matrix of the map (column ``j`` = output on input ``e_j``)
is drawn for both.

*Resources vs N* (walkthrough 4). At ``c = 8192`` and ``D = 4`` pairs, for ``N = 64 .. 4096``: the width, the parameter
count (dense storage; for the data-independent sign construction also its non-zero entries) and the state of every
BaseConv and attention construction. ``loglog_slope`` gives the exponent between the two largest lengths.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from mqarkit.constructions import claimed_resources
from mqarkit.constructions.baseconv_data_independent import claimed_nonzero_parameters
from mqarkit.polynomials import BaseConv, Model, evaluate, output_degree
from mqarkit.polynomials.seqpoly import impulse, shift_up_op

OUT = Path(__file__).resolve().parent

# (seq_len, width, deepest stack): sizes whose symbolic evaluation stays under a second per stack
DEGREE_SIZES = ((2, 1, 5), (3, 2, 3))

# resources vs N (walkthrough 4): [B] Figure 2's vocabulary, the smallest [Z] Figure 2 slice's D
RESOURCE_VOCAB = 8192
RESOURCE_PAIRS = 4
RESOURCE_LENGTHS = (64, 128, 256, 512, 1024, 2048, 4096)
RESOURCE_CONSTRUCTIONS = (  # (label, registered name, knobs)
    ("attention_onehot", "attention_onehot", {}),
    ("attention_signcode", "attention_signcode", {}),
    ("baseconv_input_dependent (t = D)", "baseconv_input_dependent", {}),
    ("baseconv_data_independent, sign", "baseconv_data_independent", {}),
    ("baseconv_data_independent, one-hot", "baseconv_data_independent", {"encoding": "onehot"}),
)


def generic_stack(num_layers: int, seq_len: int, width: int, rng: np.random.Generator) -> Model:
    """``num_layers`` BaseConv layers with random non-zero integer weights in ``±{1, 2, 3}``: ``W`` (d, d), filters
    ``h`` (N, d), position-dependent biases ``b1, b2`` (N, d)."""

    def nonzero(shape: tuple[int, ...]) -> np.ndarray:
        return rng.integers(1, 4, shape) * rng.choice([-1, 1], shape)

    ops = [
        BaseConv(
            nonzero((width, width)),
            nonzero((seq_len, width)),
            nonzero((seq_len, width)),
            nonzero((seq_len, width)),
        )
        for _ in range(num_layers)
    ]
    return Model.sequential(ops, width)


def degrees_per_layer(max_layers: int, seq_len: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """For ``L = 1..max_layers``: the exact degree of every output entry of a generic ``L``-layer stack, (N, d)."""
    rng = np.random.default_rng(seed)
    return [output_degree(generic_stack(L, seq_len, width, rng), seq_len) for L in range(1, max_layers + 1)]


def shift_matrices(seq_len: int, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, N) float64 matrices of two one-layer cyclic BaseConv maps (column ``j`` = output on ``e_j``):
    the impulse ``X^(N-s)`` with ``b1 = 1`` (wraps around), and the same with the gate ``b1 = 1[i + s < N]``."""
    wrap = BaseConv(np.zeros((1, 1)), impulse(seq_len - shift, seq_len)[:, None], np.ones(1), None, cyclic=True)
    masked = shift_up_op(shift, seq_len)
    basis = np.eye(seq_len)
    columns = [(evaluate(wrap, e[:, None])[:, 0], evaluate(masked, e[:, None])[:, 0]) for e in basis]
    return np.stack([c[0] for c in columns], axis=1), np.stack([c[1] for c in columns], axis=1)


def resource_curves(
    lengths: tuple[int, ...] = RESOURCE_LENGTHS, vocab_size: int = RESOURCE_VOCAB, num_kv_pairs: int = RESOURCE_PAIRS
) -> dict[str, dict[str, np.ndarray]]:
    """``{label: {"width" | "parameters" | "state_numbers": (len(lengths),) float64}}`` from ``claimed_resources``;
    the sign construction also gets ``"nonzero_parameters"``."""
    curves: dict[str, dict[str, np.ndarray]] = {}
    for label, name, knobs in RESOURCE_CONSTRUCTIONS:
        rows = [
            claimed_resources(name, vocab_size=vocab_size, seq_len=n, num_kv_pairs=num_kv_pairs, **knobs)
            for n in lengths
        ]
        curves[label] = {
            field: np.array([float(getattr(r, field)) for r in rows])
            for field in ("width", "parameters", "state_numbers")
        }
        if name == "baseconv_data_independent" and not knobs:
            curves[label]["nonzero_parameters"] = np.array(
                [float(claimed_nonzero_parameters(n, num_kv_pairs, vocab_size)) for n in lengths]
            )
    return curves


def loglog_slope(lengths: tuple[int, ...], values: np.ndarray) -> float:
    """Exponent ``k`` of ``value ~ N^k`` between the two largest lengths."""
    return float(np.log(values[-1] / values[-2]) / np.log(lengths[-1] / lengths[-2]))


def draw_resources() -> None:
    curves = resource_curves()
    lengths = np.array(RESOURCE_LENGTHS)
    fig, axes = plt.subplots(1, 3, figsize=(15, 6.2))
    titles = {"width": "width (stream channels)", "parameters": "parameters (dense)", "state_numbers": "state numbers"}
    for ax, field in zip(axes, titles):
        for label, values in curves.items():
            slope = loglog_slope(RESOURCE_LENGTHS, values[field])
            line = ax.plot(lengths, values[field], "o-", ms=4, label=f"{label} (~N^{slope:.2f})")
            if field == "parameters" and "nonzero_parameters" in values:
                nz = values["nonzero_parameters"]
                slope = loglog_slope(RESOURCE_LENGTHS, nz)
                ax.plot(lengths, nz, "--", color=line[0].get_color(), label=f"  its non-zero entries (~N^{slope:.2f})")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=10)
        ax.set_xlabel("sequence length N")
        ax.set_title(titles[field])
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13))
    fig.suptitle(f"claimed (= measured) resources, c = {RESOURCE_VOCAB}, D = {RESOURCE_PAIRS}")
    fig.tight_layout()
    fig.savefig(OUT / "baseconv_width.png", dpi=110)
    plt.close(fig)


def main() -> None:
    fig, ax = plt.subplots(figsize=(6, 4.2))
    top = max(L for _, _, L in DEGREE_SIZES)
    layers = np.arange(1, top + 1)
    ax.plot(layers, 2.0**layers, "k--", lw=1, label="bound 2^L")
    for (n, d, max_layers), marker in zip(DEGREE_SIZES, ("o", "s")):
        degrees = degrees_per_layer(max_layers, n, d)
        measured = [int(deg.max()) for deg in degrees]
        lowest = [int(deg.min()) for deg in degrees]
        ax.plot(range(1, max_layers + 1), measured, marker, ms=9, mfc="none", label=f"max degree, N={n}, d={d}")
        ax.plot(range(1, max_layers + 1), lowest, "x", ms=6, label=f"min degree, N={n}, d={d}")
    ax.set_yscale("log", base=2)
    ax.set_xticks(layers)
    ax.set_xlabel("layers L")
    ax.set_ylabel("exact output degree (sympy)")
    ax.set_title("generic BaseConv stacks: degree exactly 2^L")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "baseconv_degree.png", dpi=110)
    plt.close(fig)

    n, s = 8, 3
    wrap, masked = shift_matrices(n, s)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, matrix, title in zip(
        axes, (wrap, masked), ("cyclic X^(N-s), b1 = 1: wraps", f"with gate b1 = 1[i+s<N]: shift up by s={s}")
    ):
        ax.imshow(matrix, cmap="Greys", vmin=0, vmax=1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("input position j")
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
    axes[0].set_ylabel("output position i")
    fig.suptitle(f"one cyclic BaseConv layer, N={n}: matrix of u -> y")
    fig.tight_layout()
    fig.savefig(OUT / "baseconv_shift_up.png", dpi=110)
    plt.close(fig)

    draw_resources()


if __name__ == "__main__":
    main()
