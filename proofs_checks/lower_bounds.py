"""Lower bounds checked by machine (theory.md section 3.2: L1, L2, L3, L6).

**L2 (binary codes).** Equality of two ``m``-bit tokens ``x, y`` has the multilinear polynomial
``EQ_m = Π_b (x_b y_b + (1 - x_b)(1 - y_b))``. A Boolean function has exactly one multilinear representation, whose
coefficients are the Möbius transform of its truth table, ``a_S = Σ_{T ⊆ S} (-1)^{|S|-|T|} f(1_T)``; its degree is the
largest ``|S|`` with ``a_S != 0``. :func:`binary_eq_degree` computes that transform over all ``2^{2m}`` inputs and the
sympy expansion of the product, checks they agree coefficient by coefficient, and returns the degree (``2m``: the
monomial ``Π_b x_b y_b`` has coefficient ``2^m``). An ``L``-layer data-independent BaseConv computes polynomials of
degree ``<= 2^L`` (each layer at most squares the degree), hence ``L >= ceil(log2(2m))``
(:func:`layers_for_degree`). Sign codes ``{-1, +1}`` are an affine image of ``{0, 1}`` per coordinate, which keeps
the degree.

**L3 (p-hot codes).** Digits base ``b``, ``p`` digits, each one-hot: ``EQ = Π_d Σ_v x_{d,v} y_{d,v}`` has degree
``2p`` as written. The degree of the *function* on the valid inputs (one-hot per digit block) could a priori be
smaller, since there ``Σ_v x_{d,v} = 1``. :func:`phot_eq_degree` proves it is not, with a dual certificate checked by
exhaustive enumeration: ``w(x, y) = Π_{blocks} s(digit)`` with ``s(0) = 1, s(1) = -1, s(v >= 2) = 0``. Every
multilinear monomial of degree ``< 2p`` either vanishes on the domain (two variables of one block) or leaves some
block untouched, and summing ``w`` over that block gives ``s(0) + s(1) = 0``; so ``Σ w·mono = 0`` for all of them,
while ``Σ w·EQ = Π_d Σ_v s(v)^2 = 2^p != 0``. If ``EQ`` equalled a combination of lower-degree monomials on the
domain, ``Σ w·EQ`` would be 0: the degree is exactly ``2p`` and ``L >= ceil(log2(2p))`` layers.

**L1 / L6 in exact small form.** A causal recurrent model's outputs after the key-value block depend only on its state
``Z`` there and on the later inputs. Group the contexts (key-value blocks) by their *answer function*, the tuple of
correct answers over every query continuation: two contexts in different groups must reach different states, and a
model that stores the group suffices, so the minimal number of states is exactly the number of groups
(:func:`min_states_after_kv_block`). Index form: :func:`index_problem_min_states` and the brute-force
:func:`index_encoder_exists`.

**L6 (Fano).** With ``H = log2(V!/(V-D)!)`` bits of uncertainty in the ``D`` values (drawn without replacement) and a
state of ``S`` bits, ``H(values | state) >= H - S``; by the chain rule and Fano per query,
``H(values | state) <= Σ_i (h(P_i) + P_i log2(V-1)) <= D (h(P_e) + P_e log2(V-1))`` (concavity, ``P_e`` the mean
error). :func:`fano_min_error` returns the smallest ``P_e`` satisfying ``D (h(P_e) + P_e log2(V-1)) >= H - S``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from math import comb

import numpy as np

from mqarkit.information import (  # noqa: F401 - re-exported: L6 belongs to the lower bounds
    binary_entropy,
    fano_max_accuracy,
    fano_min_error,
    information_minimum_bits,
    log2_falling_factorial,
)

# ---------------------------------------------------------------------------------------------------------------
# degree bounds (L2, L3)


def layers_for_degree(degree: int) -> int:
    """Fewest layers ``L`` with ``2^L >= degree``: the BaseConv depth lower bound for a degree-``degree`` function."""
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 1:
        raise ValueError(f"degree={degree!r}: must be an int >= 1")
    return (degree - 1).bit_length()


def code_bits(vocab_size: int) -> int:
    """``m = ceil(log2 c)``: the width of a binary / sign code of ``c`` tokens."""
    if vocab_size < 2:
        raise ValueError(f"vocab_size={vocab_size}: must be >= 2")
    return (vocab_size - 1).bit_length()


def mobius_coefficients(truth_table: np.ndarray) -> np.ndarray:
    """Multilinear coefficients of ``f: {0,1}^n -> Z`` from its truth table.

    ``truth_table``: (2^n,) int64, entry ``z`` = ``f`` at the point whose bit ``k`` is variable ``k``.
    Returns (2^n,) int64, entry ``S`` = coefficient of ``Π_{k in S} z_k``.
    """
    a = np.array(truth_table, dtype=np.int64)
    size = a.shape[0]
    n = size.bit_length() - 1
    if size != 1 << n:
        raise ValueError(f"truth_table: length {size} must be a power of two")
    for k in range(n):
        view = a.reshape(-1, 2, 1 << k)  # axis 1 = bit k
        view[:, 1, :] -= view[:, 0, :]
    return a


def _popcounts(n: int) -> np.ndarray:
    idx = np.arange(1 << n, dtype=np.int64)
    return np.array([bin(int(i)).count("1") for i in idx], dtype=np.int64)


@dataclass(frozen=True)
class DegreeResult:
    m: int
    degree: int  # degree of the unique multilinear polynomial of EQ_m on {0,1}^{2m}
    terms: int  # number of nonzero coefficients
    sympy_agrees: bool | None  # product formula == Möbius polynomial (None: sympy part not run)


def binary_eq_degree(m: int, *, with_sympy: bool = True) -> DegreeResult:
    """Exact degree of equality of two ``m``-bit codes (variables ``x_b`` = bit ``b``, ``y_b`` = bit ``m + b``)."""
    if m < 1:
        raise ValueError(f"m={m}: must be >= 1")
    n = 2 * m
    z = np.arange(1 << n, dtype=np.int64)
    mask = (1 << m) - 1
    table = ((z & mask) == (z >> m)).astype(np.int64)  # (2^{2m},)
    coeffs = mobius_coefficients(table)
    nonzero = np.flatnonzero(coeffs)
    degree = int(_popcounts(n)[nonzero].max())
    agrees = None
    if with_sympy:
        import sympy as sp

        xs = sp.symbols(f"x0:{m}")
        ys = sp.symbols(f"y0:{m}")
        poly = sp.Poly(sp.prod([x * y + (1 - x) * (1 - y) for x, y in zip(xs, ys)]), *xs, *ys)
        expanded = {}
        for monom, coeff in poly.terms():
            key = sum(1 << k for k, e in enumerate(monom) if e)
            if max(monom) > 1:
                raise AssertionError("the product of disjoint multilinear factors is multilinear")
            expanded[key] = int(coeff)
        mob = {int(s): int(coeffs[s]) for s in nonzero}
        agrees = expanded == mob and poly.total_degree() == degree
    return DegreeResult(m=m, degree=degree, terms=len(nonzero), sympy_agrees=agrees)


@dataclass(frozen=True)
class PHotDegreeResult:
    base: int
    digits: int  # p
    formula_degree: int  # total degree of Π_d Σ_v x_{d,v} y_{d,v} (sympy)
    certificate_value: int  # Σ w·EQ over the domain (nonzero proves degree >= 2p)
    monomials_checked: int  # lower-degree monomials with Σ w·mono == 0 verified
    domain_size: int

    @property
    def degree(self) -> int:
        """Exact degree of EQ on the p-hot domain (certificate proves >= 2p, the formula gives <= its degree)."""
        return self.formula_degree


def phot_eq_degree(base: int, digits: int) -> PHotDegreeResult:
    """Exact degree of equality on p-hot codes, by formula (upper) and an exhaustively checked certificate (lower).

    Raises ``AssertionError`` if the certificate does not hold (it would mean the lower bound argument is wrong)."""
    import sympy as sp

    if base < 2:
        raise ValueError(f"base={base}: must be >= 2")
    if digits < 1:
        raise ValueError(f"digits={digits}: must be >= 1")
    b, p = base, digits
    nblocks = 2 * p  # x-blocks 0..p-1, y-blocks p..2p-1; variable (block, v) has index block*b + v
    # domain: every pair (x, y) of p-digit base-b numbers, one-hot encoded per digit
    vals = np.array(list(itertools.product(range(b), repeat=nblocks)), dtype=np.int64)  # (b^{2p}, 2p) digits
    onehot = np.zeros((vals.shape[0], nblocks * b), dtype=np.int64)
    for blk in range(nblocks):
        onehot[np.arange(vals.shape[0]), blk * b + vals[:, blk]] = 1
    eq = np.all(vals[:, :p] == vals[:, p:], axis=1).astype(np.int64)
    sign = np.where(vals == 0, 1, np.where(vals == 1, -1, 0))  # s(digit)
    w = np.prod(sign, axis=1)  # (b^{2p},)
    cert = int(w @ eq)
    if cert == 0:
        raise AssertionError(f"certificate vanishes on EQ at base={b}, digits={p}")
    checked = 0
    # monomials that do not vanish identically on the domain pick <= 1 variable per block; degree < 2p
    for choice in itertools.product(range(-1, b), repeat=nblocks):
        deg = sum(c >= 0 for c in choice)
        if deg >= nblocks:
            continue
        cols = [blk * b + c for blk, c in enumerate(choice) if c >= 0]
        mono = np.prod(onehot[:, cols], axis=1) if cols else np.ones(vals.shape[0], dtype=np.int64)
        if int(w @ mono) != 0:
            raise AssertionError(f"certificate fails on monomial {cols} at base={b}, digits={p}")
        checked += 1
    xs = [[sp.Symbol(f"x{d}_{v}") for v in range(b)] for d in range(p)]
    ys = [[sp.Symbol(f"y{d}_{v}") for v in range(b)] for d in range(p)]
    formula = sp.prod([sum(x * y for x, y in zip(xs[d], ys[d])) for d in range(p)])
    gens = [s for row in xs + ys for s in row]
    formula_degree = sp.Poly(formula, *gens).total_degree()
    # the formula is EQ on the domain: evaluate it exhaustively
    f = sp.lambdify(gens, formula, "numpy")
    values = np.asarray(f(*onehot.T), dtype=np.int64)
    if not np.array_equal(values, eq):
        raise AssertionError(f"the p-hot product formula is not EQ at base={b}, digits={p}")
    return PHotDegreeResult(b, p, int(formula_degree), cert, checked, int(vals.shape[0]))


# ---------------------------------------------------------------------------------------------------------------
# state lower bounds by enumeration (L1, L6)


def falling_factorial(n: int, k: int) -> int:
    """``n!/(n-k)!`` (exact)."""
    if not 0 <= k <= n:
        raise ValueError(f"k={k}: must satisfy 0 <= k <= n={n}")
    return math.perm(n, k)


def dictionary_count(num_keys: int, num_values: int, num_pairs: int, *, key_set: str) -> int:
    """Number of distinct dictionaries of ``num_pairs`` pairs (distinct keys, distinct values).

    ``key_set="fixed"``: the keys are a fixed set (index-problem form): ``V!/(V-D)!``.
    ``key_set="free"``:  the keys are any ``D`` of ``K``: ``C(K, D) · V!/(V-D)!``.
    """
    if key_set == "fixed":
        return falling_factorial(num_values, num_pairs)
    if key_set == "free":
        return comb(num_keys, num_pairs) * falling_factorial(num_values, num_pairs)
    raise ValueError(f"key_set={key_set!r}: must be 'fixed' or 'free'")


@dataclass(frozen=True)
class StateCount:
    contexts: int  # key-value blocks enumerated
    continuations: int  # query continuations enumerated per context
    min_states: int  # distinct answer functions = minimal number of states after the block

    @property
    def min_bits(self) -> float:
        return math.log2(self.min_states)


def min_states_after_kv_block(
    num_keys: int, num_values: int, num_pairs: int, *, key_set: str, max_queries: int = 2
) -> StateCount:
    """Minimal number of states any causal recurrent model must reach after the key-value block, by enumeration.

    Enumerated: every key-value block ``k_0 v_0 … k_{D-1} v_{D-1}`` with distinct keys from ``range(K)`` and
    distinct values from ``range(V)`` (ordered: different orders are different inputs); with ``key_set="fixed"``
    the key sequence is ``0, 1, …, D-1`` and only the values vary. Every continuation of 1 to ``max_queries`` query
    tokens, each any key of ``range(K)`` (``fixed``: of ``range(D)``); the correct output at a query is the value
    paired with it, or ``None`` ("not present": the answer a total specification must give to an absent key).
    Contexts with the same answers on every continuation form one group; the minimal number of states is the
    number of groups (different groups must differ in state; the group itself is a sufficient state).
    """
    for name, v in (("num_keys", num_keys), ("num_values", num_values), ("num_pairs", num_pairs)):
        if v < 1:
            raise ValueError(f"{name}={v}: must be >= 1")
    if num_pairs > min(num_keys, num_values):
        raise ValueError(f"num_pairs={num_pairs}: needs distinct keys and values, <= min(K, V)")
    if max_queries < 1:
        raise ValueError(f"max_queries={max_queries}: must be >= 1")
    if key_set == "fixed":
        key_seqs: list[tuple[int, ...]] = [tuple(range(num_pairs))]
        query_keys = range(num_pairs)
    elif key_set == "free":
        key_seqs = list(itertools.permutations(range(num_keys), num_pairs))
        query_keys = range(num_keys)
    else:
        raise ValueError(f"key_set={key_set!r}: must be 'fixed' or 'free'")
    continuations = [c for n in range(1, max_queries + 1) for c in itertools.product(query_keys, repeat=n)]
    groups: set[tuple] = set()
    contexts = 0
    for keys in key_seqs:
        for values in itertools.permutations(range(num_values), num_pairs):
            table = dict(zip(keys, values))
            groups.add(tuple(tuple(table.get(q) for q in cont) for cont in continuations))
            contexts += 1
    return StateCount(contexts=contexts, continuations=len(continuations), min_states=len(groups))


def index_problem_min_states(n: int) -> int:
    """Distinct answer functions ``i -> x_i`` over all ``x in {0,1}^n`` (enumerated): the minimal state count."""
    if n < 1:
        raise ValueError(f"n={n}: must be >= 1")
    return len({tuple((x >> i) & 1 for i in range(n)) for x in range(1 << n)})


def index_encoder_exists(n: int, state_bits: int) -> bool:
    """Brute force: is there an encoder ``{0,1}^n -> {0,1}^b`` after which every index query ``x_i`` is answerable?

    A decoder exists iff no two inputs with different answer functions share a state. The search enumerates every
    encoder (``2^{b·2^n}`` of them), so keep ``n <= 3``."""
    if n < 1 or state_bits < 0:
        raise ValueError(f"n={n}, state_bits={state_bits}: need n >= 1 and state_bits >= 0")
    if state_bits * (1 << n) > 20:
        raise ValueError(f"n={n}, state_bits={state_bits}: brute force over 2^{state_bits << n} encoders is too big")
    answers = [tuple((x >> i) & 1 for i in range(n)) for x in range(1 << n)]
    for enc in itertools.product(range(1 << state_bits), repeat=1 << n):
        seen: dict[int, tuple[int, ...]] = {}
        if all(seen.setdefault(s, a) == a for s, a in zip(enc, answers)):
            return True
    return False


# ---------------------------------------------------------------------------------------------------------------
# Fano (L6)


# The L6 functions (Fano) live in the core, ``mqarkit.information``, so that the frontier plot uses the same ones;
# they are imported above and are part of this module's interface.


def optimal_mean_error(num_values: int, num_pairs: int, state_bits: int) -> float:
    """The smallest mean query error any state of ``state_bits`` bits allows, by brute force (L6's ground truth).

    Fixed keys ``0..D-1``; the dictionary (the value tuple, ``V!/(V-D)!`` of them, uniform) is all there is to know.
    An encoder maps dictionaries to ``2^S`` states; the best decoder answers query ``i`` in a state with the value most
    frequent at position ``i`` among that state's dictionaries. Every partition of the dictionaries into at most
    ``2^S`` blocks is enumerated (restricted growth strings, so each partition once); the error is
    ``1 - Σ_blocks Σ_i max_v count / (#dictionaries · D)``. Refused (``ValueError``) beyond 12 dictionaries, or 20
    with at most 2 states (the enumeration grows like ``2^S`` to the number of dictionaries)."""
    if num_values < 2 or not 1 <= num_pairs <= num_values or state_bits < 0:
        raise ValueError(f"num_values={num_values}, num_pairs={num_pairs}, state_bits={state_bits}: need V >= 2, "
                         "1 <= D <= V, S >= 0")  # fmt: skip
    dicts = list(itertools.permutations(range(num_values), num_pairs))
    states = 1 << state_bits
    if len(dicts) > (20 if states <= 2 else 12):
        raise ValueError(f"num_values={num_values}, num_pairs={num_pairs}: {len(dicts)} dictionaries into {states} "
                         "states is too many partitions to enumerate")  # fmt: skip
    best = 0
    counts: list[list[list[int]]] = []  # per block, per query position, per value

    def score() -> int:
        return sum(max(position) for block in counts for position in block)

    def place(index: int) -> None:
        nonlocal best
        if index == len(dicts):
            best = max(best, score())
            return
        for block in range(min(len(counts) + 1, states)):
            if block == len(counts):
                counts.append([[0] * num_values for _ in range(num_pairs)])
            for i, v in enumerate(dicts[index]):
                counts[block][i][v] += 1
            place(index + 1)
            for i, v in enumerate(dicts[index]):
                counts[block][i][v] -= 1
            if block == len(counts) - 1 and not any(any(p) for p in counts[block]):
                counts.pop()

    place(0)
    return 1.0 - best / (len(dicts) * num_pairs)
