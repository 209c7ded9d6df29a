"""The input-dependent one-hot lag lookup (U3) stored per lag group, in the ``{I_c, J_c}`` block basis: no ``d x d``.

Glossary (as :mod:`._baseconv_onehot_lookup`): ``c`` = ``vocab_size``, ``N`` = ``seq_len``, ``D`` = ``num_kv_pairs``,
``S = (s_0, .., s_{t-1})`` the chosen lags (``t`` groups), ``e(x)`` the one-hot code, ``M`` / ``V`` the match and
value blocks of a group (``c`` channels each, group width ``2c``, ``d = 2tc``), ``G_s[i]`` the position gate of lag
``s`` (:func:`._baseconv_layout.lag_gate`), ``I_c`` the identity and ``J_c = 1_{c x c}`` the all-ones matrix.

Why a group is a handful of numbers. :func:`._baseconv_onehot_lookup.onehot_lookup_weights` gives group ``j`` (lag
``s_j``) the channels ``[2jc, 2jc + 2c)``: ``M`` then ``V``. Every weight acts inside one group or copies/sums across
groups, and every ``c x c`` block of it is ``α·I_c + β·J_c``: the construction treats the ``c`` token ids alike (it
commutes with relabelling the alphabet), and ``span{I_c, J_c}`` is exactly the matrices that commute with every
permutation. So with the block basis (block ``0`` = ``M``, block ``1`` = ``V``):

- embed ``(c, d)``: ``[I | I]`` in every group                -> ``embed (2,) = (1, 1)`` (block ``b``: ``embed[b]·I``);
- unembed ``(d, c)``: ``[0 ; I]`` in every group              -> ``unembed (2,) = (0, 1)`` (summed over groups);
- layer A ``W``: ``[[I, 0], [0, 0]]`` in every group          -> ``identity (2, 2)`` with ``[0, 0] = 1``, ``ones = 0``;
- layer A filters ``(N, d)``: one tap of value 1 at ``s_j`` (``M``) and ``s_j - 1`` (``V``) -> ``tap (2,) = (1, 1)`` at
  ``s_j - offset``, ``offset (2,) = (0, 1)``;
- layer A ``b1 (N, d)``: ``G_{s_j}[i]`` on ``V``, 0 on ``M`` -> ``gate (2,) = (0, 1)``:
  ``b1[i, block b] = gate[b]·G_s[i]`` (a formula in ``(N, D, s_j)``, never stored);
- layer B ``W``: ``[[0, J], [0, 0]]`` in every group          -> ``ones (2, 2)`` with ``[0, 1] = 1``, ``identity = 0``;
- layer B filters ``(1, d)``: ``0`` on ``M``, ``1`` on ``V``  -> ``tap (2,) = (0, 1)``; no biases.

Hence the model is ``O(1)`` coefficients plus the ``t`` lags, against ``2d² = 8t²c²`` dense entries (at N = 4,096,
c = 4,097, t = 64: 4.4e11). The evaluation runs the groups as a batch axis: ``(x @ (A ⊗ I + B ⊗ J))`` on a block
``x_b (.., c)`` is ``Σ_a A[a, b]·x_a + B[a, b]·(Σ_q x_a[.., q])·1`` (``O(c)``, not ``O(c²)``), and with ``u0`` the
embedded code (the same in every group):

    layer A, group j:  y_b[i] = (Σ_a u0_a[i] ∘ (A, B)[a, b] + gate[b]·G_{s_j}[i]) ⊙ tap[b]·u0_b[i - (s_j - offset[b])]
    layer B:           z_b[i] = (Σ_a y_a[i] ∘ (A', B')[a, b]) ⊙ tap'[b]·y_b[i]
    out[i]          =  Σ_j Σ_b unembed[b]·z_{j,b}[i]

(the shifted read is 0 where ``i < s_j - offset[b]``: causal, not cyclic), which is (*) of
:mod:`._baseconv_onehot_lookup`. :func:`densify` rebuilds the dense ``StackWeights`` (the tests check it equals
``onehot_lookup_weights`` entry for entry) and :func:`grouped_output` is the NumPy grouped evaluation, with one lag set
per example (the tests check it equals the IR's output with the construction's own ``lags_for``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mqarkit.constructions._baseconv_groups import group_gates
from mqarkit.constructions._baseconv_onehot_lookup import check_lags
from mqarkit.constructions._baseconv_reference import ConvWeights
from mqarkit.constructions._baseconv_stack import StackWeights

BLOCKS = 2  # M (match) and V (value): the c-channel blocks of one group


@dataclass(frozen=True)
class BlockLayer:
    """One BaseConv layer of every group in the block basis. Channel ``q`` of block ``b`` of the group of lag ``s``:

    ``W[block a -> block b] = identity[a, b]·I_c + ones[a, b]·J_c``; one filter tap ``tap[b]`` at position
    ``s - offset[b]`` if ``lag_taps`` (layer A) else at ``offset[b]`` for every group (layer B); linear bias
    ``gate[b]·G_s[i]``; no conv bias."""

    identity: np.ndarray  # (2, 2) float64
    ones: np.ndarray  # (2, 2) float64
    tap: np.ndarray  # (2,) float64
    offset: np.ndarray  # (2,) int64: the tap sits at s - offset (lag_taps) or at offset (not lag_taps)
    gate: np.ndarray  # (2,) float64
    lag_taps: bool  # True: the taps move with the group's lag; False: shared taps at ``offset``
    filter_len: int  # K, the stored filter length (N for layer A, 1 for layer B)


@dataclass(frozen=True)
class LookupGroupWeights:
    """U3's weights per group: ``embed (2,)``, layers A and B in the block basis, ``unembed (2,)``; ``lags (t,)``."""

    seq_len: int
    num_kv_pairs: int
    vocab_size: int
    lags: np.ndarray  # (t,) int64, distinct, in [1, N)
    embed: np.ndarray  # (2,) float64: block b of every group gets embed[b]·e(x)
    layers: tuple[BlockLayer, ...]
    unembed: np.ndarray  # (2,) float64: out = Σ_j Σ_b unembed[b]·(block b of group j)

    @property
    def groups(self) -> int:
        return int(self.lags.shape[0])

    @property
    def group_width(self) -> int:
        return BLOCKS * self.vocab_size

    @property
    def width(self) -> int:
        """``d = 2tc``, the width of the dense stream this stands for."""
        return self.group_width * self.groups

    def stored_numbers(self) -> int:
        """Numbers this representation stores (coefficients and lags), to set against the dense ``2cd + 2d² + ..``."""
        arrays = [self.lags, self.embed, self.unembed]
        for layer in self.layers:
            arrays += [layer.identity, layer.ones, layer.tap, layer.offset, layer.gate]
        return int(sum(np.asarray(a).size for a in arrays))


def group_lookup_weights(
    seq_len: int, num_kv_pairs: int, vocab_size: int, lags: Sequence[int] | np.ndarray
) -> LookupGroupWeights:
    """``onehot_lookup_weights(seq_len, num_kv_pairs, vocab_size, lags)`` per group (see the module docstring)."""
    for name, v in (("seq_len", seq_len), ("num_kv_pairs", num_kv_pairs), ("vocab_size", vocab_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}={v!r}: must be a positive int")
    chosen = np.asarray(check_lags(list(np.asarray(lags).ravel()), seq_len), dtype=np.int64)
    m_only = np.array([[1.0, 0.0], [0.0, 0.0]])  # M -> M
    m_to_v = np.array([[0.0, 1.0], [0.0, 0.0]])  # M -> V
    zero = np.zeros((BLOCKS, BLOCKS))
    layer_a = BlockLayer(
        identity=m_only,  # M: e_q(x_i)
        ones=zero,
        tap=np.array([1.0, 1.0]),  # M: e_q(x_{i-s}); V: e_q(x_{i-s+1})
        offset=np.array([0, 1], dtype=np.int64),
        gate=np.array([0.0, 1.0]),  # V carries G_s[i] (erratum 6)
        lag_taps=True,
        filter_len=seq_len,
    )
    layer_b = BlockLayer(
        identity=zero,
        ones=m_to_v,  # V: Σ_q m_q[i], the broadcast match
        tap=np.array([0.0, 1.0]),  # V: its own value, unshifted
        offset=np.array([0, 0], dtype=np.int64),
        gate=np.zeros(BLOCKS),
        lag_taps=False,
        filter_len=1,
    )
    return LookupGroupWeights(
        seq_len=seq_len,
        num_kv_pairs=num_kv_pairs,
        vocab_size=vocab_size,
        lags=chosen,
        embed=np.ones(BLOCKS),
        layers=(layer_a, layer_b),
        unembed=np.array([0.0, 1.0]),
    )


def block_matrix(identity: np.ndarray, ones: np.ndarray, c: int) -> np.ndarray:
    """``(2c, 2c)``: ``identity ⊗ I_c + ones ⊗ J_c``, one group's dense ``W``."""
    return np.kron(identity, np.eye(c)) + np.kron(ones, np.ones((c, c)))


def densify(weights: LookupGroupWeights) -> StackWeights:
    """The dense ``StackWeights`` these grouped weights stand for (``d x d`` matrices: small sizes only)."""
    n, c, t, g = weights.seq_len, weights.vocab_size, weights.groups, weights.group_width
    d = weights.width
    gates = group_gates(n, weights.num_kv_pairs, weights.lags)  # (t, N)
    eye = np.eye(c)
    layers = []
    for layer in weights.layers:
        w, h, b1 = np.zeros((d, d)), np.zeros((layer.filter_len, d)), np.zeros((n, d))
        block = block_matrix(layer.identity, layer.ones, c)
        for j, s in enumerate(weights.lags):
            w[j * g : (j + 1) * g, j * g : (j + 1) * g] = block
            for b in range(BLOCKS):
                cols = slice(j * g + b * c, j * g + (b + 1) * c)
                pos = int(s) - int(layer.offset[b]) if layer.lag_taps else int(layer.offset[b])
                h[pos, cols] = layer.tap[b]
                b1[:, cols] = layer.gate[b] * gates[j][:, None]
        any_gate = bool(np.any(layer.gate))
        layers.append(ConvWeights(weight=w, filters=h, bias_linear=b1 if any_gate else None, bias_conv=None))
    embed = np.tile(np.concatenate([weights.embed[b] * eye for b in range(BLOCKS)], axis=1), (1, t))  # (c, d)
    unembed = np.tile(np.concatenate([weights.unembed[b] * eye for b in range(BLOCKS)], axis=0), (t, 1))  # (d, c)
    return StackWeights(embed=embed, layers=layers, unembed=unembed)


def _block_mix(x: np.ndarray, identity: np.ndarray, ones: np.ndarray) -> np.ndarray:
    """``x (.., 2, c)`` -> ``x @ (identity ⊗ I + ones ⊗ J)``; block ``b``:
    ``Σ_a identity[a, b] x_a + ones[a, b] Σ x_a``
    (the ``J`` term needs only the block sums: ``O(c)``, not ``O(c²)``)."""
    sums = x.sum(axis=-1, keepdims=True)  # (.., 2, 1)
    return np.einsum("...aq,ab->...bq", x, identity) + np.einsum("...aq,ab->...bq", sums, ones)


def _shifted(x: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``x (n, N, 2, c)``, ``shift (n, t, 2)`` int >= 0 -> ``(n, t, N, 2, c)``: ``x[e, i - shift[e, j, b], b]``, zero
    for ``i < shift``."""
    n_pos = x.shape[1]
    src = np.arange(n_pos)[None, None, :, None] - shift[:, :, None, :]  # (n, t, N, 2)
    e = np.arange(x.shape[0])[:, None, None, None]
    b = np.arange(BLOCKS)[None, None, None, :]
    read = x[e, np.clip(src, 0, None), b]  # (n, t, N, 2, c)
    return np.where((src >= 0)[..., None], read, 0.0)


def grouped_output(weights: LookupGroupWeights, code: np.ndarray, lags: np.ndarray | None = None) -> np.ndarray:
    """The model's ``out`` block, groups as a batch axis: ``code (n, N, c)`` or ``(N, c)`` -> same shape, float64.

    ``lags (n, t)`` gives each example its own lag set (the input-dependent construction); default ``weights.lags``
    for every example."""
    code = np.asarray(code, dtype=np.float64)
    single = code.ndim == 2
    batch = code[None] if single else code
    n_pos, c = weights.seq_len, weights.vocab_size
    if batch.ndim != 3 or batch.shape[1:] != (n_pos, c):
        raise ValueError(f"code: shape {code.shape} must be (n, N, c) with (N, c) = {(n_pos, c)}")
    per_example = _lag_table(weights, lags, batch.shape[0])  # (n, t)
    gates = group_gates(n_pos, weights.num_kv_pairs, per_example.ravel()).reshape(*per_example.shape, n_pos)
    x = batch[:, :, None, :] * weights.embed[:, None]  # (n, N, 2, c): the same in every group
    x = np.broadcast_to(x[:, None], (batch.shape[0], per_example.shape[1], *x.shape[1:]))  # (n, t, N, 2, c)
    for layer in weights.layers:
        lin = _block_mix(x, layer.identity, layer.ones) + (gates[..., None] * layer.gate)[..., None]
        if layer.lag_taps:
            shift = per_example[:, :, None] - layer.offset  # (n, t, 2)
            flat = x.reshape(-1, *x.shape[2:])  # rows (e, j) each read their own group
            conv = _shifted(flat, shift.reshape(-1, 1, BLOCKS))[:, 0].reshape(x.shape)
        else:
            conv = np.zeros_like(x)
            for b in range(BLOCKS):
                k = int(layer.offset[b])
                conv[:, :, k:, b] = x[:, :, : n_pos - k, b]
        x = lin * (conv * layer.tap[:, None])
    out = np.einsum("etibq,b->eiq", x, weights.unembed)
    return out[0] if single else out


def _lag_table(weights: LookupGroupWeights, lags: np.ndarray | None, n: int) -> np.ndarray:
    if lags is None:
        return np.broadcast_to(weights.lags, (n, weights.groups))
    table = np.asarray(lags, dtype=np.int64)
    if table.shape != (n, weights.groups):
        raise ValueError(f"lags: shape {table.shape} must be (n, t) = {(n, weights.groups)}")
    for row in table:
        check_lags(list(row), weights.seq_len)
    return table
