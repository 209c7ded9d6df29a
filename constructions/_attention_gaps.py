"""Marginal laws of successive sampling without replacement (the MQAR generator's query gaps).

The generator draws the query slots of the ``D`` keys one after another: draw ``i`` is slot ``g`` with probability
``w_g / sum of w over the slots not drawn yet`` (``mqarkit.sampling.sample_weighted_distinct``), and key ``i`` takes
draw ``i``. :func:`rank_probabilities` gives ``R[i, g] = P(draw i is slot g)`` for ``i < D``.

Derivation (exponential races). Give slot ``h`` an arrival time ``T_h ~ Exp(w_h)``, independent; the arrival order is
the successive-sampling order. Slot ``g`` is draw ``i`` iff it arrives at some time ``t`` and exactly ``i`` other slots
arrived before ``t``::

    R[i, g] = int_0^inf  w_g exp(-w_g t) * PB_{-g}(i; t) dt,

where ``PB_{-g}(.; t)`` is the Poisson-binomial law of the number of arrivals among the other slots, each arrived by
``t`` with probability ``pi_h(t) = 1 - exp(-w_h t)``. This identity is exact; the only approximation is the quadrature.

Numerical method (stated): substitute ``t = e^y`` and use the trapezoid rule on a uniform ``y`` grid of step
``step`` over ``[ln(1e-16 / w_max), ln(60 / w_min)]`` (weights normalised to sum 1). The integrand in ``y`` is
analytic and decays like ``e^y`` on the left and doubly exponentially on the right, so the trapezoid rule converges
exponentially in ``1/step``; the truncated tails are below ``1e-16`` and ``e^-60``. ``PB`` of *all* slots is built by
the usual product recurrence; the leave-one-out law ``PB_{-g}`` is obtained by dividing out the factor
``(1 - pi_g) + pi_g z``, forward from degree 0 when ``pi_g <= 1/2`` and backward from the top degree otherwise, so
that each step multiplies rounding errors by ``min(pi, 1 - pi) / max(pi, 1 - pi) <= 1`` (stable). The result is
checked by ``sum_g R[i, g] = 1`` (returned as ``max_row_error``) and, in the tests, against exact enumeration
(:func:`rank_probabilities_exact`) on small cases. Cost ``O(Y * S^2)`` time for ``Y`` grid points and ``S`` slots.
"""

from __future__ import annotations

import itertools

import numpy as np


def _check(weights: np.ndarray, num_draws: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0 or not (np.isfinite(w).all() and (w > 0).all()):
        raise ValueError("weights: needs a non-empty 1-d array of finite positive numbers")
    if isinstance(num_draws, bool) or not isinstance(num_draws, (int, np.integer)) or not 1 <= num_draws <= w.size:
        raise ValueError(f"num_draws={num_draws!r}: needs an int with 1 <= num_draws <= len(weights)={w.size}")
    return w / w.sum()


def rank_probabilities(weights: np.ndarray, num_draws: int, *, step: float = 0.2) -> tuple[np.ndarray, float]:
    """``R[i, g] = P(draw i of successive sampling is index g)``: ((num_draws, S) float64, max_row_error).

    weights: (S,) positive. ``max_row_error = max_i |sum_g R[i, g] - 1|`` measures the quadrature error.
    """
    w = _check(weights, num_draws)
    if not 0 < step <= 0.5:
        raise ValueError(f"step={step}: must lie in (0, 0.5]")
    S, D = w.size, int(num_draws)
    y = np.arange(np.log(1e-16 / w.max()), np.log(60.0 / w.min()) + step, step)  # (Y,)
    t = np.exp(y)  # (Y,)
    arrived = -np.expm1(-np.outer(t, w))  # (Y, S) pi_h(t)
    stay = np.exp(-np.outer(t, w))  # (Y, S) 1 - pi_h(t), computed directly for accuracy near 0
    full = np.zeros((t.size, S + 1))  # (Y, S+1) PB of all S arrival indicators
    full[:, 0] = 1.0
    for h in range(S):
        full[:, 1:] = full[:, 1:] * stay[:, h : h + 1] + full[:, :-1] * arrived[:, h : h + 1]
        full[:, 0] *= stay[:, h]
    # leave-one-out: Q_g(z) = full(z) / (stay_g + arrived_g z); arrays (Y, S) over (grid, g)
    forward = np.empty((D, t.size, S))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        prev = full[:, :1] / stay
        forward[0] = prev
        for i in range(1, D):
            prev = (full[:, i : i + 1] - arrived * prev) / stay
            forward[i] = prev
        backward = np.empty((D, t.size, S))
        nxt = full[:, S : S + 1] / arrived  # Q_{S-1}
        for i in range(S - 1, 0, -1):  # Q_{i-1} from Q_i
            if i < D:
                backward[i] = nxt
            nxt = (full[:, i : i + 1] - stay * nxt) / arrived
        backward[0] = nxt
    use_forward = arrived <= 0.5  # (Y, S)
    loo = np.where(use_forward[None], forward, backward)  # (D, Y, S)
    density = w[None, :] * stay * t[:, None]  # (Y, S) w_g e^{-w_g t} dt/dy
    integrand = loo * density[None]
    R = step * (integrand.sum(axis=1) - 0.5 * (integrand[:, 0] + integrand[:, -1]))  # (D, S) trapezoid
    return R, float(np.abs(R.sum(axis=1) - 1.0).max())


def rank_probabilities_exact(weights: np.ndarray, num_draws: int) -> np.ndarray:
    """Reference for :func:`rank_probabilities`: enumerate every ordered prefix of draws (small ``S`` only).

    (num_draws, S) float64; cost ``S! / (S - num_draws)!`` prefixes.
    """
    w = _check(weights, num_draws)
    if w.size > 9:
        raise ValueError(f"weights: exact enumeration is limited to 9 indices, got {w.size}")
    R = np.zeros((num_draws, w.size))
    for prefix in itertools.permutations(range(w.size), num_draws):
        prob, left = 1.0, 1.0
        for g in prefix:
            prob *= w[g] / left
            left -= w[g]
        for i, g in enumerate(prefix):
            R[i, g] += prob
    return R
