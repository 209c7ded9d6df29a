"""The small glue between the attention-family constructions and the operator IR (``mqarkit.polynomials``).

Every construction of the family has the same shape: a residual stream whose first block holds the code of the
current token, a first layer that writes the previous token's code, a lookup layer that writes a ``lookup`` block,
and an argmax readout of the ``lookup`` block against a codebook. This module builds the input stream from tokens,
runs the model through :func:`mqarkit.polynomials.evaluate`, applies the readout, and reads the resources off the
model with :func:`mqarkit.polynomials.analyse`.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from mqarkit.constructions.api import Resources
from mqarkit.polynomials import CausalConv, Layer, Model, Stream, UnnormalisedAttention, analyse, evaluate


def input_stream(model, inputs: np.ndarray, token_codebook: np.ndarray, backend: str) -> np.ndarray:
    """Tokens (n, N) -> stream (n, N, width): ``token`` block = ``token_codebook[x]``, every other block 0.

    Under the exact backends the entries are Python ints / Fractions in an object array.
    """
    n, N = inputs.shape
    sl = model.stream.slice("token")
    if backend == "float64":
        u = np.zeros((n, N, model.stream.width), dtype=np.float64)
        u[..., sl] = np.asarray(token_codebook, dtype=np.float64)[inputs]
        return u
    u = np.full((n, N, model.stream.width), Fraction(0), dtype=object)
    book = np.asarray(token_codebook, dtype=object)
    u[..., sl] = np.vectorize(Fraction, otypes=[object])(book[inputs])
    return u


def lookup_block(model, inputs: np.ndarray, token_codebook: np.ndarray, backend: str) -> np.ndarray:
    """Run the model and return its ``lookup`` block as float64: (n, N, d_lookup).

    The exact backend's Fractions are converted to float64 only after the whole model has run exactly; the
    conversion is monotone, and the readouts compare sums of a few such numbers against each other.
    """
    u = input_stream(model, inputs, token_codebook, backend)
    y = evaluate(model, u, backend=backend)
    block = np.asarray(y)[..., model.stream.slice("lookup")]
    return block.astype(np.float64)


def lookup_block_exact(model, inputs: np.ndarray, token_codebook: np.ndarray) -> np.ndarray:
    """The ``lookup`` block under the exact backend, as an object array of Fractions: (n, N, d_lookup)."""
    u = input_stream(model, inputs, token_codebook, "exact")
    return np.asarray(evaluate(model, u, backend="exact"))[..., model.stream.slice("lookup")]


def measured(model, seq_len: int) -> Resources:
    """Resources read off the IR model by :func:`mqarkit.polynomials.analyse`."""
    a = analyse(model, seq_len)
    return Resources.from_analysis(a, degree=a.degree_bound)


def onehot_lookup_model(vocab_size: int, mask: str, window: int | None = None) -> Model:
    """The two-layer one-hot lookup of U1 (and, with ``mask="window"``, of U8); derivation in ``attention_onehot``.

    Blocks ``token``, ``prev_token``, ``lookup`` (each of width ``c``): a causal conv ``h = X^1`` writes
    ``prev_token[s] = e_{x_{s-1}}``; an unnormalised attention with ``q_t = e_{x_t}``, ``k_s = e_{x_{s-1}}``,
    ``v_s = e_{x_s}`` under ``mask`` writes ``lookup``.
    """
    c = vocab_size
    eye, zero = np.eye(c, dtype=np.int64), np.zeros((c, c), dtype=np.int64)
    taps = np.zeros((2, c), dtype=np.int64)
    taps[1] = 1  # h = X^1 on every channel: prev_token[s] = token[s-1]
    lookup = UnnormalisedAttention(
        wq=np.vstack([eye, zero]),  # q_t = e_{x_t}
        wk=np.vstack([zero, eye]),  # k_s = e_{x_{s-1}}
        wv=np.vstack([eye, zero]),  # v_s = e_{x_s}
        mask=mask,
        window=window,
    )
    return Model(
        Stream.of(("token", c), ("prev_token", c), ("lookup", c)),
        (
            Layer(CausalConv(taps), reads=("token",), writes=("prev_token",)),
            Layer(lookup, reads=("token", "prev_token"), writes=("lookup",)),
        ),
    )
