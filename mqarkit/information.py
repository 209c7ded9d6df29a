"""Information-theoretic limits of recall (theory.md §3.2, L6), shared by the checks and the frontier plot.

A state of ``S`` bits after the key-value block carries at most ``S`` bits about the ``D`` values (drawn without
replacement from ``V`` value tokens), so by Fano the mean query error ``P_e`` satisfies::

    D · (h(P_e) + P_e · log2(V − 1))  >=  log2(V! / (V − D)!) − S.

``h(p) + p·log2(V−1)`` increases on ``[0, 1 − 1/V]`` from 0 to ``log2 V``, and the right side per query is at most
``log2 V``, so bisection on that interval finds the least admissible ``P_e``.
"""

from __future__ import annotations

import math

from mqarkit.checks import check_int, check_real

MAX_NUM_VALUES = 2**1000  # num_values enters float arithmetic (log2, 1/V); larger ints do not convert to float


def log2_falling_factorial(n: int, k: int) -> float:
    """``log2(n!/(n-k)!)``, from the exact integer (``math.log2`` is correctly rounded for big ints)."""
    n, k = check_int("n", n, 0), check_int("k", k, 0)
    if not k <= n:
        raise ValueError(f"k={k}: must satisfy 0 <= k <= n={n}")
    return math.log2(math.perm(n, k))


def binary_entropy(p: float) -> float:
    """``h(p) = −p log2 p − (1−p) log2(1−p)`` (0 at the ends)."""
    p = check_real("p", p, minimum=0.0, maximum=1.0)
    if p in (0.0, 1.0):
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def _fano_lhs(p: float, num_values: int) -> float:
    return binary_entropy(p) + (p * math.log2(num_values - 1) if num_values > 1 else 0.0)


def fano_min_error(state_bits: float, num_pairs: int, num_values: int, *, tol: float = 1e-12) -> float:
    """Smallest mean query error ``P_e`` with ``D (h(P_e) + P_e log2(V-1)) >= log2(V!/(V-D)!) - S``; 0 when ``S``
    covers ``log2(V!/(V-D)!)``."""
    state_bits = check_real("state_bits", state_bits, minimum=0.0, finite=False)  # +inf: an unbounded state
    num_values = check_int("num_values", num_values, 2, MAX_NUM_VALUES)
    num_pairs = check_int("num_pairs", num_pairs, 1)
    if not num_pairs <= num_values:
        raise ValueError(f"num_pairs={num_pairs}: must satisfy 1 <= D <= num_values={num_values}")
    need = (log2_falling_factorial(num_values, num_pairs) - state_bits) / num_pairs
    if need <= 0:
        return 0.0
    lo, hi = 0.0, 1.0 - 1.0 / num_values
    if _fano_lhs(hi, num_values) <= need + 1e-12:  # the maximum log2 V is reached only at the guessing error
        return hi
    while hi - lo > tol:
        mid = (lo + hi) / 2
        if _fano_lhs(mid, num_values) >= need:
            hi = mid
        else:
            lo = mid
    return hi


def fano_max_accuracy(state_bits: float, num_pairs: int, num_values: int) -> float:
    """Largest mean query accuracy a state of ``state_bits`` bits allows: ``1 - fano_min_error``."""
    return 1.0 - fano_min_error(state_bits, num_pairs, num_values)


def information_minimum_bits(num_pairs: int, num_values: int) -> float:
    """``log2(V!/(V-D)!)``: bits a zero-error state must hold about the values (L6 at ``P_e = 0``)."""
    num_values, num_pairs = check_int("num_values", num_values, 1), check_int("num_pairs", num_pairs, 0)
    if not num_pairs <= num_values:
        raise ValueError(f"num_pairs={num_pairs}: must satisfy num_pairs <= num_values={num_values}")
    return log2_falling_factorial(num_values, num_pairs)
