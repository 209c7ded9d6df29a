"""Causal unnormalised linear attention as a BaseConv stack (theory.md §3, U7; [B] Prop F.8 for concrete instances).

Glossary (theory.md §2.1, §2.3; [B] = Based, arXiv 2402.18668):

| symbol | here | shape | meaning |
|---|---|---|---|
| ``u`` | ``u`` | (N, d) | the layer input |
| ``W_q, W_k, W_v`` | ``wq, wk, wv`` | (d, dk), (d, dk), (d, dv) | ``q = u wq``, ``k = u wk``, ``v = u wv`` |
| ``φ`` | ``feature_map`` | (dk,) -> (F,) | ``"identity"`` (``F = dk``) or ``"taylor"`` (unscaled, below) |
| ``S_i`` | | (F, dv) | ``Σ_{j≤i} φ(k_j)ᵀ v_j``, the recurrent state |
| ``y_i`` | | (dv,) | ``φ(q_i) S_i = Σ_{j≤i} (φ(q_i)·φ(k_j)) v_j`` (``normalise=False``) |

The Taylor map is Based's second-order map without the ``d'`` scalings (``TaylorMap(dk, scale=False)``), whose kernel is
``φ(q)·φ(k) = 1 + q·k + (q·k)²/2``. Its entries are ``1``, ``x_a`` and ``x_a x_b / √2``: written literally the weights
would hold ``1/√2``, which is not rational. The construction splits the constant unevenly, ``1`` on the key side and
``1/2`` on the query side (coefficient ``c_f`` below): the products ``φ(q)_f φ(k)_f`` and therefore the kernel, the
state width ``F`` and the output are exactly those of ``TaylorMap(scale=False)``, and every weight is rational, so the
exact backend (Fractions, ``==``) applies. Layouts as in ``mqarkit.polynomials.TaylorMap``: ``"full"`` keeps all
``dk²`` ordered products (``c_f = 1/2``), ``"compressed"`` each unordered pair once (``c_f = 1/2`` on the diagonal,
``1`` off it, since ``q_a q_b k_a k_b`` occurs twice in the full sum).

**Features as monomials.** Each feature ``f`` is ``φ(k)_f = Π_{a ∈ K_f} k_a`` and ``φ(q)_f = c_f Π_{a ∈ Q_f} q_a``
with ``K_f = Q_f`` a tuple of at most two key indices (identity: ``(a,)``, ``c_f = 1``; Taylor: ``()``, ``(a,)``,
``(a, b)``). ``e = max_f |K_f|`` is the map's degree (1 identity, 2 Taylor).

**The stack.** A BaseConv layer is ``(u W + b1) ⊙ (h ∗ u + b2)`` with a *depthwise* convolution of its own input
(theory.md §4.1): a channel's conv branch sees only that channel. So a product ``φ(k)_f v_c`` must be built in a channel
that already holds one factor, and the projections come first as a linear-map layer. The stream has three blocks,
``main`` (``F·dv`` channels, one per pair ``(f, c)``), ``feat`` (``F``: ``φ(q)``) and ``aux`` (``max(d, dv)``: the input
``u`` in its first ``d`` channels, the output ``y`` in its first ``dv``); width ``w = F·dv + F + max(d, dv)``. Layer
by layer (``h = 0`` is a single zero tap, ``X⁰`` the identity tap, ``1_N`` the all-ones filter of length ``N``; every
bias is per channel):

- **0, project** (``h = 0``, ``b2 = 1``: a linear map). main ``(f, c)`` ``← v_c``; feat ``f`` ``← q_b`` when
  ``K_f = (a, b)`` (else 0); aux ``← u`` (identity).
- **t = 1..e, gate** (``h = X⁰``). main ``(f, c)`` ``← (u wk)_{K_f[t]} ⊙ main`` when ``t ≤ |K_f|``, else
  ``1 ⊙ main`` (``b1 = 1``). feat ``f`` at ``t = 1``: ``c_f`` (``b1 = c_f``, ``b2 = 1``), ``c_f q_a`` (``b2 = 1``) or
  ``c_f q_a ⊙ feat`` (the ``q_b`` of layer 0); at ``t > 1``: carried (``W = I``, ``b2 = 1``). aux: carries ``u``
  while ``t < e``, then 0.
- **e+1, cumsum**. main ``(f, c)`` ``← feat_f ⊙ (1_N ∗ main)`` ``= φ(q_i)_f S_{i,fc}``; feat, aux ``← 0``.
- **e+2, sum** (``h = 0``). aux ``c`` ``← Σ_f main_{(f, c)}`` (``W`` sums, ``b2 = 1``); main, feat ``← 0``.

Why each entry: after layer 0 every channel is linear in ``u``; gate ``t`` multiplies channel ``(f, c)`` by the key
factor ``k_{K_f[t]}`` read through the linear branch from the carried ``u`` (pass-through ``b1 = 1`` when ``f`` has
fewer factors), so after gate ``e`` it holds ``φ(k_i)_f v_{i,c}``; ``feat`` is complete after gate 1 (a query feature
has degree ``≤ 2``: one factor projected in layer 0, one gated in). The all-ones filter of length ``N`` is the causal
prefix sum (theory.md §4.1 "cumulative sum"), so the cumsum layer's conv branch is ``S_{i,fc}`` and its linear branch
broadcasts ``φ(q_i)_f`` to the ``dv`` channels ``(f, ·)``. The last layer is the contraction over ``f``.

**Resources** (claimed in :func:`claimed_resources`, measured by ``mqarkit.polynomials.analyse``):
``L = e + 3`` BaseConv layers (4 identity, 5 Taylor), width ``w = F·dv + F + max(d, dv)``, filter taps
``1, 1 (×e), N, 1``, so ``parameters = L·w² + w·(N + L - 1) + 2·L·w`` (dense ``W``, every filter tap, ``b1`` and
``b2`` per channel), conv-cache ``state_numbers = (N - 1)·w`` (only the length-``N`` filter carries a cache; the
linear attention itself carries ``F·dv``), degree bound ``2^L``, exact output degree ``2e + 1`` (3 or 5) for generic
weights (``output_degree`` measures it).

**What this shows, honestly.** [B] Prop F.8 claims a simulation of linear attention with poly-log blowup in layers in
general. This module checks *concrete instances*: unnormalised causal linear attention with the identity or the
unscaled Taylor map is computed exactly by a constant-depth (4 or 5 layers) BaseConv stack of width ``O(F·dv)``; it
does not verify the general statement or its blowup. The *normalised* form ``φ(q_i) S_i / φ(q_i) z_i`` is a rational
function and not a polynomial (:func:`normalised_denominator_degree` exhibits a non-constant reduced denominator),
while every BaseConv stack computes a polynomial of degree ``≤ 2^L``: no BaseConv stack computes it exactly, whatever
its size.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from mqarkit.polynomials import (
    BaseConv,
    IdentityMap,
    Layer,
    LinearAttention,
    Model,
    Stream,
    TaylorMap,
    embed,
    evaluate,
    read,
)
from mqarkit.polynomials.weights import as_weight

FEATURE_MAPS = ("identity", "taylor")
LAYOUTS = ("full", "compressed")
BLOCKS = ("main", "feat", "aux")

# --------------------------------------------------------------------------------------------------------------------
# the feature map as monomials


@dataclass(frozen=True)
class Feature:
    """``φ(k)_f = Π_{a in keys} k_a`` and ``φ(q)_f = q_coef · Π_{a in keys} q_a`` (empty product = 1)."""

    keys: tuple[int, ...]
    q_coef: Fraction


def feature_plan(feature_map: str, key_width: int, layout: str = "full") -> tuple[Feature, ...]:
    """The ``F`` features of the map at key width ``dk``, in ``TaylorMap``'s order (1, linear, quadratic)."""
    if feature_map not in FEATURE_MAPS:
        raise ValueError(f"feature_map={feature_map!r}: must be one of {FEATURE_MAPS}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r}: must be one of {LAYOUTS}")
    if isinstance(key_width, bool) or not isinstance(key_width, (int, np.integer)) or key_width < 1:
        raise ValueError(f"key_width={key_width!r}: must be an int >= 1")
    dk = int(key_width)
    linear = tuple(Feature((a,), Fraction(1)) for a in range(dk))
    if feature_map == "identity":
        return linear
    if layout == "full":
        quad = tuple(Feature((a, b), Fraction(1, 2)) for a in range(dk) for b in range(dk))
    else:
        quad = tuple(
            Feature((a, b), Fraction(1, 2) if a == b else Fraction(1)) for a in range(dk) for b in range(a, dk)
        )
    return (Feature((), Fraction(1)), *linear, *quad)


def map_degree(feature_map: str) -> int:
    """``e``: the degree of ``φ`` (number of key factors of its largest feature)."""
    if feature_map not in FEATURE_MAPS:
        raise ValueError(f"feature_map={feature_map!r}: must be one of {FEATURE_MAPS}")
    return 1 if feature_map == "identity" else 2


# --------------------------------------------------------------------------------------------------------------------
# parameters


@dataclass(frozen=True, eq=False)
class LinearAttentionParams:
    """Projections of one linear-attention head. Entries ints, finite floats or Fractions (object arrays): all-rational
    parameters make the simulation exact over Q."""

    wq: np.ndarray  # (d, dk)
    wk: np.ndarray  # (d, dk)
    wv: np.ndarray  # (d, dv)

    def __post_init__(self) -> None:
        for name in ("wq", "wk", "wv"):
            arr = as_weight(getattr(self, name), op="LinearAttentionParams", field=name, ndim=2)
            if arr.shape[0] < 1 or arr.shape[1] < 1:
                raise ValueError(f"LinearAttentionParams.{name}: shape {arr.shape} must be (d >= 1, >= 1)")
            object.__setattr__(self, name, arr)
        d, dk = self.wq.shape
        if self.wk.shape != (d, dk):
            raise ValueError(f"LinearAttentionParams.wk: shape {self.wk.shape} must equal wq's {(d, dk)}")
        if self.wv.shape[0] != d:
            raise ValueError(f"LinearAttentionParams.wv: shape {self.wv.shape} must have d={d} rows")

    @property
    def in_width(self) -> int:  # d
        return int(self.wq.shape[0])

    @property
    def key_width(self) -> int:  # dk
        return int(self.wq.shape[1])

    @property
    def value_width(self) -> int:  # dv
        return int(self.wv.shape[1])

    @property
    def is_exact(self) -> bool:
        return all(getattr(self, n).dtype != np.float64 for n in ("wq", "wk", "wv"))


def random_params(
    rng: np.random.Generator, in_width: int, key_width: int, value_width: int, *, exact: bool = False
) -> LinearAttentionParams:
    """Random projections. ``exact=False``: Gaussian, scaled by ``d^(-1/2)``. ``exact=True``: non-zero Fractions
    ``p/q`` with ``1 <= |p| <= 3``, ``1 <= q <= 3`` (non-zero, so no monomial of the output cancels by accident)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng={rng!r}: must be a numpy.random.Generator")
    for name, value in (("in_width", in_width), ("key_width", key_width), ("value_width", value_width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}={value!r}: must be an int >= 1")
    shapes = {"wq": (in_width, key_width), "wk": (in_width, key_width), "wv": (in_width, value_width)}
    out: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        if exact:
            ps = rng.integers(1, 4, size=shape) * rng.choice([-1, 1], size=shape)
            qs = rng.integers(1, 4, size=shape)
            arr = np.empty(shape, dtype=object)
            for idx in np.ndindex(*shape):
                arr[idx] = Fraction(int(ps[idx]), int(qs[idx]))
            out[name] = arr
        else:
            out[name] = rng.normal(0.0, 1.0 / np.sqrt(in_width), size=shape)
    return LinearAttentionParams(**out)


# --------------------------------------------------------------------------------------------------------------------
# the direct implementations: the IR op, and an independent loop


def reference_op(params: LinearAttentionParams, feature_map: str = "identity", layout: str = "full") -> LinearAttention:
    """``mqarkit.polynomials.LinearAttention`` with ``normalise=False`` and the same map (Taylor: ``scale=False``)."""
    feature_plan(feature_map, params.key_width, layout)  # validates the names
    fmap = IdentityMap() if feature_map == "identity" else TaylorMap(params.key_width, layout=layout, scale=False)
    return LinearAttention(params.wq, params.wk, params.wv, feature_map=fmap, normalise=False)


def _kernel(s: Any, feature_map: str) -> Any:
    """``φ(q)·φ(k)`` from ``s = q·k``: ``s`` or ``1 + s + s²/2``."""
    return s if feature_map == "identity" else 1 + s + s * s * Fraction(1, 2)


def linear_attention_direct(u: np.ndarray, params: LinearAttentionParams, feature_map: str = "identity") -> np.ndarray:
    """``y_i = Σ_{j≤i} κ(q_i, k_j) v_j`` by a double loop over positions. ``u: (N, d)`` -> ``(N, dv)``.

    Float input gives float64 (the parameters rounded to float64); an object input (Fractions, sympy symbols) keeps
    its number system with the parameters as given. Independent of ``mqarkit.polynomials``."""
    feature_plan(feature_map, params.key_width)
    arr = np.asarray(u)
    if arr.ndim != 2 or arr.shape[1] != params.in_width or arr.shape[0] < 1:
        raise ValueError(f"u: shape {arr.shape} must be (N >= 1, d={params.in_width})")
    exact = arr.dtype == object
    wq, wk, wv = (
        (p if exact else p.astype(np.float64)) for p in (params.wq, params.wk, params.wv)
    )  # (d, dk), (d, dk), (d, dv)
    if not exact:
        arr = arr.astype(np.float64)
    q, k, v = arr @ wq, arr @ wk, arr @ wv  # (N, dk), (N, dk), (N, dv)
    n = arr.shape[0]
    y = np.full((n, params.value_width), 0, dtype=object) if exact else np.zeros((n, params.value_width))
    for i in range(n):
        for j in range(i + 1):
            s = sum(q[i, a] * k[j, a] for a in range(params.key_width))
            y[i] = y[i] + _kernel(s, feature_map) * v[j]
    return y


# --------------------------------------------------------------------------------------------------------------------
# the BaseConv stack (the table in the module docstring)


@dataclass(frozen=True)
class Layout:
    """Channel indices of the stream ``[main (F·dv), feat (F), aux (max(d, dv))]``."""

    features: int  # F
    value_width: int  # dv
    aux_width: int  # max(d, dv)

    @property
    def width(self) -> int:
        return self.features * self.value_width + self.features + self.aux_width

    def main(self, f: int, c: int) -> int:
        return f * self.value_width + c

    def feat(self, f: int) -> int:
        return self.features * self.value_width + f

    def aux(self, r: int) -> int:
        return self.features * self.value_width + self.features + r


class _LayerWeights:
    """Mutable ``W (w, w)``, ``h (taps, w)``, ``b1 (w,)``, ``b2 (w,)`` in one number system (exact: object ints)."""

    def __init__(self, width: int, taps: int, exact: bool) -> None:
        def zeros(*shape: int) -> np.ndarray:
            return np.full(shape, 0, dtype=object) if exact else np.zeros(shape)

        self.weight, self.filters, self.b1, self.b2 = (
            zeros(width, width),
            zeros(taps, width),
            zeros(width),
            zeros(width),
        )

    def op(self) -> BaseConv:
        return BaseConv(weight=self.weight, filters=self.filters, bias_linear=self.b1, bias_conv=self.b2, cyclic=False)


def _check_seq_len(seq_len: int) -> int:
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len < 1:
        raise ValueError(f"seq_len={seq_len!r}: must be an int >= 1")
    return int(seq_len)


def linear_attention_as_baseconv(
    params: LinearAttentionParams, seq_len: int, *, feature_map: str = "identity", layout: str = "full"
) -> Model:
    """The linear-attention head as ``map_degree + 3`` BaseConv layers (module docstring); input ``aux[:, :d] = u``,
    output ``aux[:, :dv] = y``. Use :func:`run_baseconv` to embed ``u`` and read ``y``."""
    if not isinstance(params, LinearAttentionParams):
        raise TypeError(f"params={params!r}: must be a LinearAttentionParams")
    n = _check_seq_len(seq_len)
    plan = feature_plan(feature_map, params.key_width, layout)
    d, dv, e = params.in_width, params.value_width, map_degree(feature_map)
    lay = Layout(len(plan), dv, max(d, dv))
    exact = params.is_exact
    coef = [f.q_coef if exact else float(f.q_coef) for f in plan]
    w = lay.width
    rows = [lay.aux(r) for r in range(d)]  # the channels holding u

    # layer 0: project. main (f, c) <- v_c; feat f <- q_b for a quadratic feature (a, b); aux <- u
    l0 = _LayerWeights(w, 1, exact)
    l0.b2[:] = 1
    for f, feat in enumerate(plan):
        for c in range(dv):
            l0.weight[rows, lay.main(f, c)] = params.wv[:, c]
        if len(feat.keys) == 2:
            l0.weight[rows, lay.feat(f)] = params.wq[:, feat.keys[1]]
    for r in range(d):
        l0.weight[lay.aux(r), lay.aux(r)] = 1
    layers = [l0]

    # gates t = 1..e: main gains the key factor K_f[t]; feat is completed at t = 1; aux carries u until t = e
    for t in range(1, e + 1):
        g = _LayerWeights(w, 1, exact)
        for f, feat in enumerate(plan):
            for c in range(dv):
                ch = lay.main(f, c)
                g.filters[0, ch] = 1
                if t <= len(feat.keys):
                    g.weight[rows, ch] = params.wk[:, feat.keys[t - 1]]
                else:
                    g.b1[ch] = 1
            ch = lay.feat(f)
            if t > 1:  # carry
                g.weight[ch, ch], g.b2[ch] = 1, 1
            elif not feat.keys:  # the constant feature c_f
                g.b1[ch], g.b2[ch] = coef[f], 1
            else:  # c_f q_a, times q_b (already in this channel) for a quadratic feature
                g.weight[rows, ch] = params.wq[:, feat.keys[0]] * coef[f]
                if len(feat.keys) == 2:
                    g.filters[0, ch] = 1
                else:
                    g.b2[ch] = 1
        if t < e:
            for r in range(d):
                g.weight[lay.aux(r), lay.aux(r)], g.b2[lay.aux(r)] = 1, 1
        layers.append(g)

    # cumsum: main (f, c) <- feat_f ⊙ (1_N ∗ main (f, c)) = φ(q_i)_f S_{i, f c}
    cs = _LayerWeights(w, n, exact)
    for f in range(len(plan)):
        for c in range(dv):
            cs.weight[lay.feat(f), lay.main(f, c)] = 1
            cs.filters[:, lay.main(f, c)] = 1
    layers.append(cs)

    # sum: aux c <- Σ_f main (f, c)
    sm = _LayerWeights(w, 1, exact)
    for c in range(dv):
        sm.b2[lay.aux(c)] = 1
        for f in range(len(plan)):
            sm.weight[lay.main(f, c), lay.aux(c)] = 1
    layers.append(sm)

    stream = Stream.of((BLOCKS[0], len(plan) * dv), (BLOCKS[1], len(plan)), (BLOCKS[2], lay.aux_width))
    return Model(
        stream,
        tuple(Layer(lw.op(), BLOCKS, BLOCKS, residual=False) for lw in layers),
        name=f"linear-attention-as-baseconv({feature_map}, d={d}, dk={params.key_width}, dv={dv}, N={n})",
    )


def run_baseconv(model: Model, u: np.ndarray, value_width: int, *, backend: str = "float64") -> np.ndarray:
    """Evaluate :func:`linear_attention_as_baseconv`'s model on ``u: (..., N, d)``; returns ``y: (..., N, dv)``."""
    arr = np.asarray(u)
    aux = model.stream.block_width(BLOCKS[2])
    if arr.ndim < 2 or not 1 <= arr.shape[-1] <= aux:
        raise ValueError(f"u: shape {arr.shape} must be (..., N, d) with d <= the aux width {aux}")
    if not 1 <= value_width <= aux:
        raise ValueError(f"value_width={value_width}: must be in [1, aux width {aux}]")
    pad = np.full((*arr.shape[:-1], aux - arr.shape[-1]), 0, dtype=arr.dtype)
    state = embed(model, {BLOCKS[2]: np.concatenate([arr, pad], axis=-1)})
    return read(model, evaluate(model, state, backend=backend), BLOCKS[2])[..., :value_width]


# --------------------------------------------------------------------------------------------------------------------
# resources


@dataclass(frozen=True)
class SimulationResources:
    layers: int
    width: int
    parameters: int
    state_numbers: int  # conv caches of the BaseConv form (analyse's policy)
    degree_bound: int  # 2^layers
    degree: int  # exact output degree for generic weights: 2e + 1
    attention_state_numbers: int  # F·dv: the linear attention's own state S


def claimed_resources(
    in_width: int, key_width: int, value_width: int, seq_len: int, feature_map: str = "identity", layout: str = "full"
) -> SimulationResources:
    """The closed forms of the module docstring."""
    n = _check_seq_len(seq_len)
    for name, value in (("in_width", in_width), ("value_width", value_width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}={value!r}: must be an int >= 1")
    f = len(feature_plan(feature_map, key_width, layout))
    e = map_degree(feature_map)
    layers = e + 3
    w = f * value_width + f + max(in_width, value_width)
    return SimulationResources(
        layers=layers,
        width=w,
        parameters=layers * w * w + w * (n + layers - 1) + 2 * layers * w,
        state_numbers=(n - 1) * w,
        degree_bound=2**layers,
        degree=2 * e + 1,
        attention_state_numbers=f * value_width,
    )


# --------------------------------------------------------------------------------------------------------------------
# the normalised form is not a polynomial


def normalised_denominator_degree(feature_map: str = "identity") -> int:
    """Total degree of the reduced denominator of normalised linear attention's output at position 1, ``N = 2``,
    ``d = dk = dv = 1``, ``wq = wk = wv = 1`` (so ``q = k = v = u``), ``eps = 0``.

    Identity: ``y_1 = (u_1 u_0 u_0 + u_1 u_1 u_1) / (u_1 u_0 + u_1 u_1) = (u_0² + u_1²) / (u_0 + u_1)``, already
    reduced (``u_0 + u_1`` does not divide ``u_0² + u_1²``: at ``u_0 = -u_1`` it is ``2u_1² ≠ 0``): degree 1. A
    positive degree means the output is not a polynomial, so no BaseConv stack (a polynomial map) computes it."""
    import sympy

    feature_plan(feature_map, 1)
    u0, u1 = sympy.symbols("u_0 u_1")
    kern = [_kernel(u1 * u0, feature_map), _kernel(u1 * u1, feature_map)]  # κ(q_1, k_0), κ(q_1, k_1)
    y1 = sympy.cancel((kern[0] * u0 + kern[1] * u1) / (kern[0] + kern[1]))
    _, den = sympy.fraction(y1)
    return int(sympy.Poly(den, u0, u1).total_degree())


__all__ = [
    "BLOCKS",
    "FEATURE_MAPS",
    "LAYOUTS",
    "Feature",
    "LinearAttentionParams",
    "SimulationResources",
    "claimed_resources",
    "feature_plan",
    "linear_attention_as_baseconv",
    "linear_attention_direct",
    "map_degree",
    "normalised_denominator_degree",
    "random_params",
    "reference_op",
    "run_baseconv",
]
