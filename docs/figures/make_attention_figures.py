"""Figures of walkthrough 2: the residual stream of the one-hot construction and the softmax lookup's attention.

Run ``python docs/figures/make_attention_figures.py`` from the repository root; it writes
``docs/figures/attention_stream.png`` and ``docs/figures/attention_pattern.png``. Every array drawn here is computed by
the construction itself (the IR's float64 trace), not drawn by hand.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from mqarkit.constructions import build
from mqarkit.constructions._attention_ir import input_stream
from mqarkit.polynomials import evaluate
from mqarkit.task import MQARSpec, generate

OUT = Path(__file__).resolve().parent


def example(seed: int = 3):
    spec = MQARSpec(vocab_size=16, seq_len=14, num_kv_pairs=3, filler="clean")
    return spec, generate(spec, 1, np.random.default_rng(seed))


def stream_trace(spec: MQARSpec, batch) -> tuple[object, list[np.ndarray]]:
    """The one-hot construction's stream after each layer: list of (N, 3c) arrays (index 0 = input)."""
    con = build("attention_onehot", vocab_size=spec.vocab_size, seq_len=spec.seq_len, num_kv_pairs=spec.num_kv_pairs)
    u = input_stream(con.model, batch.inputs, np.eye(spec.vocab_size, dtype=np.int64), "float64")[0]
    return con, evaluate(con.model, u, backend="float64", trace=True)


def softmax_pattern(spec: MQARSpec, batch, beta: float) -> np.ndarray:
    """Attention weights of the sign-code lookup at inverse temperature ``beta``: (N, N), strict causal mask."""
    con = build(
        "attention_signcode",
        vocab_size=spec.vocab_size,
        seq_len=spec.seq_len,
        num_kv_pairs=spec.num_kv_pairs,
        beta=beta,
        outside_claimed_range=True,  # the left panel shows beta = 1, below the proven bound
    )
    codes = con.codebook()[batch.inputs[0]] / np.sqrt(con.code_width)  # (N, m) unit codes c(x_t)
    keys = np.vstack([np.zeros((1, codes.shape[1])), codes[:-1]])  # c(x_{s-1})
    logits = beta * codes @ keys.T  # (N, N)
    N = spec.seq_len
    allowed = np.tril(np.ones((N, N), dtype=bool), k=-1)  # strict: s < t
    logits = np.where(allowed, logits, -np.inf)
    weights = np.zeros((N, N))
    rows = allowed.any(axis=1)
    shifted = np.exp(logits[rows] - logits[rows].max(axis=1, keepdims=True))
    weights[rows] = shifted / shifted.sum(axis=1, keepdims=True)
    return weights


def main() -> None:
    spec, batch = example()
    con, states = stream_trace(spec, batch)
    tokens = batch.inputs[0]
    labels = [str(t) for t in tokens]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharey=True)
    c = spec.vocab_size
    for ax, (title, sl) in zip(
        axes, [("token", slice(0, c)), ("prev_token", slice(c, 2 * c)), ("lookup", slice(2 * c, 3 * c))]
    ):
        ax.imshow(states[-1][:, sl], cmap="Greys", aspect="auto", vmin=0, vmax=1)
        ax.set_title(f"block `{title}` after layer 2")
        ax.set_xlabel("token id (one-hot channel)")
    axes[0].set_yticks(range(spec.seq_len), labels)
    axes[0].set_ylabel("position t (token x_t)")
    for q in batch.query_positions[0]:
        for ax in axes:
            ax.axhline(q, color="tab:orange", lw=0.6, alpha=0.6)
    fig.suptitle("attention_onehot: the residual stream (queries marked in orange)")
    fig.tight_layout()
    fig.savefig(OUT / "attention_stream.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    from mqarkit.constructions.attention_signcode import sufficient_beta

    m = max(int(np.ceil(np.log2(spec.vocab_size))), 2)
    for ax, beta in zip(axes, [1.0, sufficient_beta(spec.seq_len, m)]):
        weights = softmax_pattern(spec, batch, beta)
        ax.imshow(weights, cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"sign-code lookup, beta = {beta:.1f}")
        ax.set_xlabel("key position s (reads x_{s-1}, returns x_s)")
        ax.set_xticks(range(spec.seq_len), labels, fontsize=7)
        ax.set_yticks(range(spec.seq_len), labels, fontsize=7)
    axes[0].set_ylabel("query position t")
    fig.tight_layout()
    fig.savefig(OUT / "attention_pattern.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
