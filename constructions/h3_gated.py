"""One H3 layer (Fu, Dao et al., "Hungry Hungry Hippos", arXiv 2212.14052, §3.1) and the same layer as a 4-layer
BaseConv model: an instance of "BaseConv simulates gated convolutions" (theory.md §3, U5; [Z] Thm 4.2).

Glossary (H3 paper symbol -> here). The paper writes ``L`` for the sequence length and ``N`` for the SSM state size;
mqarkit writes ``N`` for the sequence length (theory.md), so the state sizes are ``s`` (shift SSM) and ``m`` (diagonal
SSM) here.

| paper | here | shape | meaning |
|---|---|---|---|
| ``u`` | ``u`` | (N, d) | the layer input, ``d`` channels (``d_model``) |
| ``W_Q, W_K, W_V`` | ``wq, wk, wv`` (+ ``bq, bk, bv``) | (d, d), (d,) | ``Q = uW_Q``, ``K = uW_K``, ``V = uW_V`` |
| ``SSM_shift`` | ``shift_b, shift_c, shift_d`` | (d, s) x 2, (d,) | per channel: ``A`` = the ``s x s`` shift matrix |
| ``SSM_diag`` | ``diag_a, diag_b, diag_c, diag_d`` | (d, m) x 3, (d,) | per channel: ``A = diag(diag_a)`` (real) |
| ``⊙`` | ``*`` | | elementwise (Hadamard) product |
| ``W_O`` | ``wo`` (+ ``bo``) | (d, d), (d,) | the output projection |

The layer (single-head form, ``head_dim = 1``, which is the H3 code's default; the multi-head form replaces ``K̄ ⊙ V``
by per-head outer products ``K̄_h V_hᵀ`` and ``Q ⊙`` by a contraction with ``Q_h``)::

    q = u wq + bq,  k = u wk + bk,  v = u wv + bv                      (N, d) each
    k̄ = SSM_shift(k)            x = k̄ ⊙ v
    z = SSM_diag(x)             y = q ⊙ z          out = y wo + bo      (N, d)

A single-input single-output SSM on one channel (the paper's Eq. (1), discrete form)::

    state_i = A state_{i-1} + B w_i,   state_{-1} = 0,   out_i = C state_i + D w_i

unrolls to ``out_i = sum_{j <= i} h[j] w_{i-j}`` with the kernel ``h[j] = C A^j B + D·[j = 0]``: the SSM *is* a causal
convolution with a materialised kernel (that is how H3 evaluates it, by FFT). Per kind:

- shift SSM: ``A`` moves the state down one slot (``(A x)_0 = 0``, ``(A x)_n = x_{n-1}``), so ``A^j B`` is ``B``
  moved down ``j`` slots and ``h[j] = sum_{n} C_{n+j} B_n`` (the cross-correlation of ``C`` with ``B``; the H3 code's
  ``irfft(conj(rfft B) rfft C)``), plus ``D`` at lag 0. It vanishes for ``j >= s``: a shift SSM of state size ``s``
  realises exactly the filters supported on lags ``0 .. s-1`` (with ``B = e_0``, ``h = C`` + ``D`` at lag 0). In this
  convention the state includes the current input, hence ``s - 1`` and not ``s`` as the largest lag.
- diagonal SSM: ``h[j] = sum_r C_r A_r^j B_r + D·[j = 0]``, a sum of ``m`` real exponentials. For rational
  ``A, B, C, D`` every tap is rational, so the whole layer is exact over Q.

Both kernels are truncated to the ``N`` taps a length-``N`` sequence can use (``j <= i < N``), so the convolution with
the truncated kernel equals the recurrent scan on every prefix: :func:`ssm_scan_shift` / :func:`ssm_scan_diag` are the
naive references and :func:`h3_layer_recurrent` the whole layer by scans.

The BaseConv model (:func:`h3_as_baseconv`). A BaseConv layer is ``(u W + b1) ⊙ (h ∗ u + b2)`` with a *depthwise*
convolution of its own input (theory.md §2.1, §4.1), so a convolution of a projection ``k = u wk`` needs a layer that
materialises ``k`` first, and whatever is gated later (``q``) must be carried. The stream has two blocks of ``d``
channels, ``main`` and ``aux`` (width ``2d``); the input is ``[u, 0]``, the output ``[out, 0]``. Layer by layer (block
rows of ``W`` = input blocks, columns = output blocks; ``I`` the identity, ``h_shift`` / ``h_diag`` the kernels):

| layer | W | h (main; aux) | b1 (main; aux) | b2 (main; aux) | output [main, aux] |
|---|---|---|---|---|---|
| 1 project k, carry u | ``[[wk, I], [0, 0]]`` | 0; 0 | bk; 0 | 1; 1 | ``[k, u]`` (``linear_map`` of §4.1) |
| 2 shift SSM, gate v, make q | ``[[0, 0], [wv, wq]]`` | h_shift; 0 | bv; bq | 0; 1 | ``[v ⊙ k̄, q]`` |
| 3 diag SSM, gate q | ``[[0, 0], [I, 0]]`` | h_diag; 0 | 0; 0 | 0; 0 | ``[q ⊙ (h_diag ∗ x), 0]`` |
| 4 output projection | ``[[wo, 0], [0, 0]]`` | 0; 0 | bo; 0 | 1; 0 | ``[y wo + bo, 0]`` (``linear_map``) |

Why each entry. Layer 1: with ``h = 0, b2 = 1`` the gate is 1 and the layer is the affine map ``u W + b1``; the
``I`` block copies ``u`` into ``aux`` because layer 2 still needs ``u`` for ``v`` and ``q``. Layer 2: the conv branch
of ``main`` reads ``main = k`` (depthwise), so ``h_shift ∗ k = k̄`` (``D`` sits in tap 0), and the linear branch of
``main`` projects ``aux = u`` to ``v``: the product ``v ⊙ k̄ = x`` lands in ``main``, where the conv read. The ``aux``
column is ``(u wq + bq)·(0 + 1) = q``: the "product" with a constant gate is how ``q`` is kept alive. Layer 3: the
conv branch of ``main`` reads ``x``, the linear branch copies ``aux = q`` across (``W[aux→main] = I``), so ``main``
becomes ``q ⊙ (h_diag ∗ x) = y``; ``aux`` is no longer needed and becomes ``0·0``. Layer 4: a linear map again.

Resources (claimed in :func:`claimed_resources`, measured by ``mqarkit.polynomials.analyse``): 4 BaseConv layers,
width ``2d``; filters of 1, ``min(s, N)``, ``N``, 1 taps; biases stored per channel (``(2d,)``, H3's biases do not
depend on the position); parameters ``16 d² + 2d(2 + min(s, N) + N) + 16d``; conv-cache state numbers
``2d(min(s, N) - 1) + 2d(N - 1)``. The H3 layer itself carries ``d(s + m)`` numbers (its two SSM states): the BaseConv
form pays for a long convolution with a cache of length ``N`` where the diagonal SSM needs ``m`` numbers per channel.
The polynomial degree bound of 4 BaseConv layers is ``2^4 = 16``; the map has degree 3 (``q·k·v``).

Not covered: the multi-head (``head_dim > 1``) outer-product form, and H3's short convolution / nonlinearity around
the layer (the paper's layer is exactly the equations above).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from fractions import Fraction

import numpy as np

from mqarkit.polynomials import BaseConv, Layer, Model, Stream, embed, evaluate, read
from mqarkit.polynomials.weights import as_weight, to_float64

# --------------------------------------------------------------------------------------------------------------------
# parameters

_MATRICES = ("wq", "wk", "wv", "wo")  # (d, d)
_BIASES = ("bq", "bk", "bv", "bo")  # (d,)
_SHIFT = ("shift_b", "shift_c")  # (d, s)
_DIAG = ("diag_a", "diag_b", "diag_c")  # (d, m)
_SKIPS = ("shift_d", "diag_d")  # (d,)


@dataclass(frozen=True, eq=False)
class H3Params:
    """Fixed parameters of one single-head H3 layer on ``d`` channels (see the module glossary).

    Entries are ints, finite floats, or ``Fraction`` (object arrays): all-rational parameters make the layer exact
    over Q. The diagonal SSM must be stable, ``|diag_a| <= 1`` (H3/S4D discretise ``A = exp(Δ a)`` with ``a < 0``).
    """

    wq: np.ndarray  # (d, d)
    wk: np.ndarray  # (d, d)
    wv: np.ndarray  # (d, d)
    wo: np.ndarray  # (d, d)
    shift_b: np.ndarray  # (d, s)
    shift_c: np.ndarray  # (d, s)
    shift_d: np.ndarray  # (d,)
    diag_a: np.ndarray  # (d, m)
    diag_b: np.ndarray  # (d, m)
    diag_c: np.ndarray  # (d, m)
    diag_d: np.ndarray  # (d,)
    bq: np.ndarray | None = None  # (d,); None = 0
    bk: np.ndarray | None = None
    bv: np.ndarray | None = None
    bo: np.ndarray | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                value = np.zeros(np.shape(self.wq)[-1:] or (0,), dtype=np.int64)
            ndim = 1 if f.name in _BIASES + _SKIPS else 2
            object.__setattr__(self, f.name, as_weight(value, op="H3Params", field=f.name, ndim=ndim))
        d = self.wq.shape[0]
        if d < 1:
            raise ValueError(f"H3Params.wq: shape {self.wq.shape}; needs d >= 1 channels")
        for name in _MATRICES:
            if getattr(self, name).shape != (d, d):
                raise ValueError(f"H3Params.{name}: shape {getattr(self, name).shape} must be (d, d) = {(d, d)}")
        for name in _BIASES + _SKIPS:
            if getattr(self, name).shape != (d,):
                raise ValueError(f"H3Params.{name}: shape {getattr(self, name).shape} must be (d,) = ({d},)")
        for group, label in ((_SHIFT, "s"), (_DIAG, "m")):
            first = getattr(self, group[0])
            if first.shape[0] != d or first.shape[1] < 1:
                raise ValueError(f"H3Params.{group[0]}: shape {first.shape} must be (d={d}, {label} >= 1)")
            for name in group[1:]:
                if getattr(self, name).shape != first.shape:
                    raise ValueError(
                        f"H3Params.{name}: shape {getattr(self, name).shape} must equal {group[0]}'s {first.shape}"
                    )
        bad = [idx for idx, a in np.ndenumerate(self.diag_a) if abs(a) > 1]
        if bad:
            raise ValueError(
                f"H3Params.diag_a: entry {list(bad[0])} = {self.diag_a[bad[0]]}; a stable diagonal SSM needs |A| <= 1"
            )

    @property
    def width(self) -> int:  # d
        return int(self.wq.shape[0])

    @property
    def shift_state(self) -> int:  # s
        return int(self.shift_b.shape[1])

    @property
    def diag_state(self) -> int:  # m
        return int(self.diag_a.shape[1])

    def to_float64(self) -> H3Params:
        """The same parameters rounded to float64 (for float inputs: keeps the float path free of object arrays)."""
        return H3Params(**{f.name: to_float64(getattr(self, f.name)) for f in fields(self)})

    @property
    def is_exact(self) -> bool:
        """True when no entry is a float, so every computation stays in Q."""
        return all(getattr(self, f.name).dtype != np.float64 for f in fields(self))


def random_h3_params(
    rng: np.random.Generator, width: int, shift_state: int, diag_state: int, *, exact: bool = False
) -> H3Params:
    """Random parameters. ``exact=False``: Gaussian projections scaled by ``d^(-1/2)``, ``A ~ U(-0.95, 0.95)``.
    ``exact=True``: ``Fraction`` entries ``p/q`` with ``|p| <= 3``, ``1 <= q <= 4`` (``A``: ``|p| < q``)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng={rng!r}: must be a numpy.random.Generator")
    for name, value in (("width", width), ("shift_state", shift_state), ("diag_state", diag_state)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}={value!r}: must be an int >= 1")
    d, s, m = int(width), int(shift_state), int(diag_state)
    shapes = {
        **{n: (d, d) for n in _MATRICES},
        **{n: (d,) for n in _BIASES + _SKIPS},
        **{n: (d, s) for n in _SHIFT},
        **{n: (d, m) for n in _DIAG},
    }
    values: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        if exact:
            qs = rng.integers(1, 5, size=shape)
            ps = rng.integers(-3, 4, size=shape)
            if name == "diag_a":
                ps = np.clip(ps, -(qs - 1), qs - 1)
            arr = np.empty(shape, dtype=object)
            for idx in np.ndindex(*shape):
                arr[idx] = Fraction(int(ps[idx]), int(qs[idx]))
            values[name] = arr
        elif name == "diag_a":
            values[name] = rng.uniform(-0.95, 0.95, size=shape)
        else:
            scale = 1.0 / np.sqrt(d) if name in _MATRICES else 1.0
            values[name] = rng.normal(0.0, scale, size=shape)
    return H3Params(**values)


# --------------------------------------------------------------------------------------------------------------------
# the SSMs: materialised kernels and recurrent scans (the naive references)


def _check_seq_len(seq_len: int) -> int:
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len < 1:
        raise ValueError(f"seq_len={seq_len!r}: must be an int >= 1")
    return int(seq_len)


def _exact(*arrays: np.ndarray) -> bool:
    """True when some array holds exact (or symbolic) entries, i.e. is an object array."""
    return any(a.dtype == object for a in arrays)


def _zeros(shape: tuple[int, ...], exact: bool) -> np.ndarray:
    """Zeros in the chosen number system: an object array of exact ints, or float64."""
    return np.full(shape, 0, dtype=object) if exact else np.zeros(shape, dtype=np.float64)


def shift_kernel(params: H3Params, seq_len: int) -> np.ndarray:
    """``(seq_len, d)``: ``h[j, c] = sum_n C[c, n + j] B[c, n] + D[c]·[j = 0]`` (zero for ``j >= s``)."""
    n = _check_seq_len(seq_len)
    b, c = params.shift_b, params.shift_c  # (d, s)
    s = params.shift_state
    h = _zeros((n, params.width), _exact(b, c, params.shift_d))
    for j in range(min(s, n)):  # C A^j B = sum_n C[n + j] B[n]: A^j moves B down j slots
        h[j] = (c[:, j:] * b[:, : s - j]).sum(axis=1)
    h[0] = h[0] + params.shift_d
    return h


def diag_kernel(params: H3Params, seq_len: int) -> np.ndarray:
    """``(seq_len, d)``: ``h[j, c] = sum_r C[c, r] A[c, r]^j B[c, r] + D[c]·[j = 0]``, exact for rational entries."""
    n = _check_seq_len(seq_len)
    a, b, c = params.diag_a, params.diag_b, params.diag_c  # (d, m)
    h = _zeros((n, params.width), _exact(a, b, c, params.diag_d))
    power = c * b  # C A^0 B, (d, m); then multiplied by A once per tap (no float pow, exact for Fractions)
    for j in range(n):
        h[j] = power.sum(axis=1)
        power = power * a
    h[0] = h[0] + params.diag_d
    return h


def causal_conv(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Depthwise causal convolution ``y[..., i, c] = sum_{j <= i} kernel[j, c] x[..., i - j, c]``.

    ``x: (..., N, d)``, ``kernel: (K, d)`` with any ``K`` (taps ``j >= N`` never reach an output). Direct sum over
    taps (exact for object arrays); independent of ``mqarkit.polynomials``' convolution kernels."""
    n = x.shape[-2]
    y = _zeros(x.shape, _exact(x, kernel))
    for j in range(min(kernel.shape[0], n)):
        y[..., j:, :] = y[..., j:, :] + kernel[j] * x[..., : n - j, :]
    return y


def ssm_scan_shift(w: np.ndarray, params: H3Params) -> np.ndarray:
    """The shift SSM by its recurrence: ``state_i = shift(state_{i-1}) + B w_i``, ``out_i = C·state_i + D w_i``.

    ``w: (..., N, d)``; the state is ``(..., d, s)``, ``shift`` moves every slot down by one and drops the last."""
    b, c, dd = params.shift_b, params.shift_c, params.shift_d
    exact = _exact(w, b, c, dd)
    state = _zeros((*w.shape[:-2], params.width, params.shift_state), exact)
    out = _zeros(w.shape, exact)
    for i in range(w.shape[-2]):
        moved = _zeros(state.shape, exact)
        moved[..., 1:] = state[..., :-1]
        state = moved + b * w[..., i, :, None]
        out[..., i, :] = (c * state).sum(axis=-1) + dd * w[..., i, :]
    return out


def ssm_scan_diag(w: np.ndarray, params: H3Params) -> np.ndarray:
    """The diagonal SSM by its recurrence: ``state_i = A ⊙ state_{i-1} + B w_i``, ``out_i = C·state_i + D w_i``."""
    a, b, c, dd = params.diag_a, params.diag_b, params.diag_c, params.diag_d
    exact = _exact(w, a, b, c, dd)
    state = _zeros((*w.shape[:-2], params.width, params.diag_state), exact)
    out = _zeros(w.shape, exact)
    for i in range(w.shape[-2]):
        state = a * state + b * w[..., i, :, None]
        out[..., i, :] = (c * state).sum(axis=-1) + dd * w[..., i, :]
    return out


# --------------------------------------------------------------------------------------------------------------------
# the H3 layer, directly


def _check_input(u: np.ndarray, params: H3Params) -> tuple[np.ndarray, H3Params]:
    """``u`` as float64 with float64 parameters, or as an object array (exact / symbolic) with the given ones."""
    if not isinstance(params, H3Params):
        raise TypeError(f"params={params!r}: must be an H3Params")
    arr = np.asarray(u)
    if arr.ndim not in (2, 3) or arr.shape[-1] != params.width or arr.shape[-2] < 1:
        raise ValueError(f"u: shape {arr.shape} must be (N >= 1, d={params.width}) or (B, N, d)")
    if arr.dtype == object:
        return arr, params
    return arr.astype(np.float64), params.to_float64()


def _projections(u: np.ndarray, p: H3Params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return u @ p.wq + p.bq, u @ p.wk + p.bk, u @ p.wv + p.bv


def h3_layer_direct(u: np.ndarray, params: H3Params) -> np.ndarray:
    """One H3 layer, ``u: (N, d)`` or ``(B, N, d)`` -> same shape, by the materialised SSM kernels.

    Floats give float64; ints / Fractions with all-rational ``params`` give an exact object array."""
    u, params = _check_input(u, params)
    n = u.shape[-2]
    q, k, v = _projections(u, params)  # (..., N, d) each
    x = causal_conv(k, shift_kernel(params, n)) * v  # k̄ ⊙ v
    y = q * causal_conv(x, diag_kernel(params, n))  # q ⊙ SSM_diag(x)
    return y @ params.wo + params.bo


def h3_layer_recurrent(u: np.ndarray, params: H3Params) -> np.ndarray:
    """The same layer with both SSMs run as recurrent scans (the naive reference of :func:`h3_layer_direct`)."""
    u, params = _check_input(u, params)
    q, k, v = _projections(u, params)
    x = ssm_scan_shift(k, params) * v
    y = q * ssm_scan_diag(x, params)
    return y @ params.wo + params.bo


# --------------------------------------------------------------------------------------------------------------------
# the H3 layer as a BaseConv model (the table in the module docstring)

BLOCKS = ("main", "aux")


def _blocks(d: int, exact: bool, rows: int) -> np.ndarray:
    """``(rows, 2d)`` zeros over the stream's channels (weights ``rows = 2d``, filters ``rows = taps``, biases 1)."""
    return np.full((rows, 2 * d), 0, dtype=object) if exact else np.zeros((rows, 2 * d))


def _baseconv(weight: np.ndarray, filters: np.ndarray, b1: np.ndarray, b2: np.ndarray) -> BaseConv:
    return BaseConv(weight=weight, filters=filters, bias_linear=b1[0], bias_conv=b2[0], cyclic=False)


def h3_as_baseconv(params: H3Params, seq_len: int) -> Model:
    """The H3 layer as 4 BaseConv layers on the stream ``[main (d), aux (d)]``; input ``[u, 0]``, output ``[out, 0]``.

    Use :func:`run_h3_baseconv` to embed ``u`` and read ``out``. Weights keep the parameters' number system
    (object arrays of Fractions for exact parameters)."""
    if not isinstance(params, H3Params):
        raise TypeError(f"params={params!r}: must be an H3Params")
    n = _check_seq_len(seq_len)
    d, exact = params.width, params.is_exact
    main, aux = slice(0, d), slice(d, 2 * d)
    eye = np.eye(d, dtype=np.int64)

    # layer 1: [u, 0] -> [k, u]; linear map (h = 0, b2 = 1)
    w1, b1_1, b2_1 = _blocks(d, exact, 2 * d), _blocks(d, exact, 1), _blocks(d, exact, 1)
    w1[main, main], w1[main, aux] = params.wk, eye
    b1_1[0, main] = params.bk
    b2_1[0, :] = 1
    l1 = _baseconv(w1, _blocks(d, exact, 1), b1_1, b2_1)

    # layer 2: [k, u] -> [v ⊙ (h_shift ∗ k), q]
    taps2 = min(params.shift_state, n)
    w2, b1_2, b2_2, h2 = (_blocks(d, exact, r) for r in (2 * d, 1, 1, taps2))
    w2[aux, main], w2[aux, aux] = params.wv, params.wq
    b1_2[0, main], b1_2[0, aux] = params.bv, params.bq
    b2_2[0, aux] = 1
    h2[:, main] = shift_kernel(params, n)[:taps2]
    l2 = _baseconv(w2, h2, b1_2, b2_2)

    # layer 3: [x, q] -> [q ⊙ (h_diag ∗ x), 0]
    w3, zero, h3 = _blocks(d, exact, 2 * d), _blocks(d, exact, 1), _blocks(d, exact, n)
    w3[aux, main] = eye
    h3[:, main] = diag_kernel(params, n)
    l3 = _baseconv(w3, h3, zero, zero)

    # layer 4: [y, 0] -> [y wo + bo, 0]; linear map on main
    w4, b1_4, b2_4 = _blocks(d, exact, 2 * d), _blocks(d, exact, 1), _blocks(d, exact, 1)
    w4[main, main] = params.wo
    b1_4[0, main] = params.bo
    b2_4[0, main] = 1
    l4 = _baseconv(w4, _blocks(d, exact, 1), b1_4, b2_4)

    stream = Stream.of((BLOCKS[0], d), (BLOCKS[1], d))
    layers = tuple(Layer(op, BLOCKS, BLOCKS, residual=False) for op in (l1, l2, l3, l4))
    return Model(stream, layers, name=f"h3-as-baseconv(d={d}, s={params.shift_state}, m={params.diag_state}, N={n})")


def run_h3_baseconv(model: Model, u: np.ndarray, *, backend: str = "float64") -> np.ndarray:
    """Evaluate :func:`h3_as_baseconv`'s model on ``u: (..., N, d)`` and return the ``main`` block ``(..., N, d)``."""
    state = embed(model, {BLOCKS[0]: u})
    return read(model, evaluate(model, state, backend=backend), BLOCKS[0])


@dataclass(frozen=True)
class H3BaseConvResources:
    layers: int
    width: int
    parameters: int
    state_numbers: int  # conv caches of the BaseConv form (analyse's policy)
    degree_bound: int  # 2^layers
    h3_state_numbers: int  # d (s + m): the two SSM states of the H3 layer itself


def claimed_resources(params: H3Params, seq_len: int) -> H3BaseConvResources:
    """The resources the module docstring claims for ``h3_as_baseconv(params, seq_len)``."""
    n = _check_seq_len(seq_len)
    d, s, m = params.width, params.shift_state, params.diag_state
    taps = (1, min(s, n), n, 1)
    return H3BaseConvResources(
        layers=4,
        width=2 * d,
        parameters=16 * d * d + 2 * d * sum(taps) + 16 * d,
        state_numbers=sum(2 * d * (k - 1) for k in taps),
        degree_bound=2**4,
        h3_state_numbers=d * (s + m),
    )
