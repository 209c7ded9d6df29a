"""U10 specific checks: the delta rule's storage lemma over Q, and that orthonormality is needed.

The lemma (``mqarkit.constructions.delta_rule``): with ``beta = 1`` and orthonormal keys ``k_1 .. k_D`` (``D <= d_k``),
writing ``(k_i, w)`` pairs in any order, any key any number of times, leaves ``k_i S`` equal to the value of the last
write of ``k_i``. Checked exactly (Fractions, through :class:`mqarkit.polynomials.DeltaRule` under the exact backend)
on random write sequences whose keys are the rows of a random *rational* orthogonal matrix: a signed permutation
times 2x2 rotations by ``(3/5, 4/5)``, so that the keys are dense, not one-hot. The read ``q_t = k_i`` after the last
write is compared with ``==``.

Witness for the hypothesis: with ``d_k + 1`` keys in ``d_k`` dimensions (so not orthonormal) some stored value is not
returned exactly; the check requires to find one (the lemma's hypothesis is not vacuous).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from mqarkit.proofs_checks.point_runner import run_points
from mqarkit.proofs_checks.registry import CheckContext, CheckOutcome, failed, passed

SEED = 20241010


def rational_orthogonal(dim: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``dim x dim`` orthogonal matrix with rational entries (object array of Fractions)."""
    q = np.zeros((dim, dim), dtype=object)
    perm, signs = rng.permutation(dim), rng.choice([-1, 1], size=dim)
    for i in range(dim):
        for j in range(dim):
            q[i, j] = Fraction(int(signs[i])) if perm[i] == j else Fraction(0)
    c, s = Fraction(3, 5), Fraction(4, 5)
    for a in range(0, dim - 1, 2):  # rotate disjoint coordinate pairs: still orthogonal, now dense
        rot = np.eye(dim, dtype=object) * Fraction(1)
        rot[a, a], rot[a, a + 1], rot[a + 1, a], rot[a + 1, a + 1] = c, -s, s, c
        q = q @ rot
    return q


def run_writes(keys: np.ndarray, values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Write ``(keys[order[t]], values[t])`` for ``t = 0, 1, ...`` with ``beta = 1``, then read every key: ``(D, dv)``.

    The DeltaRule op reads the stream ``[k; q; v]`` (one position per write, then one read per key with a zero
    write: ``k = 0``, ``v = 0``), exactly over Q."""
    from mqarkit.polynomials import DeltaRule, evaluate

    dk, dv = keys.shape[1], values.shape[1]
    d = 2 * dk + dv
    eye_k, zk = np.eye(dk, dtype=np.int64), np.zeros((dk, dk), dtype=np.int64)
    op = DeltaRule(
        wq=np.vstack([zk, eye_k, np.zeros((dv, dk), dtype=np.int64)]),
        wk=np.vstack([eye_k, zk, np.zeros((dv, dk), dtype=np.int64)]),
        wv=np.vstack([np.zeros((2 * dk, dv), dtype=np.int64), np.eye(dv, dtype=np.int64)]),
        beta=1,
    )
    steps = len(order) + len(keys)
    u = np.full((steps, d), Fraction(0), dtype=object)
    for t, i in enumerate(order):
        u[t, :dk], u[t, 2 * dk :] = keys[i], values[t]
    for r in range(len(keys)):
        u[len(order) + r, dk : 2 * dk] = keys[r]
    y = np.asarray(evaluate(op, u, backend="exact"))
    return y[len(order) :]


def check_storage_lemma(ctx: CheckContext) -> CheckOutcome:
    """Orthonormal keys, random repeated writes: every read equals the last write, over Q."""
    points = [(dk, D) for dk in (2, 3, 4, 6, 8, 12) for D in sorted({1, dk // 2, dk})]
    tally = {"sequences": 0, "reads": 0}

    def step(point: tuple[int, int]) -> dict | None:
        dk, D = point
        rng = np.random.default_rng(SEED + 97 * dk + D)
        for _ in range(3):
            keys = rational_orthogonal(dk, rng)[:D]
            order = rng.integers(0, D, size=3 * D)  # repeats: later writes of a key replace earlier ones
            pool = np.vectorize(Fraction, otypes=[object])(rng.integers(-5, 6, size=(3 * D, 3)))
            got = run_writes(keys, pool, order)
            want = np.full((D, 3), Fraction(0), dtype=object)
            for t, i in enumerate(order):
                want[i] = pool[t]
            tally["sequences"] += 1
            tally["reads"] += D
            if not (got == want).all():
                return {"d_k": dk, "D": D, "order": order.tolist()}
        return None

    ran, bad = run_points(points, step)
    dks = [p[0] for p in ran]
    covered = f"exact over Q: d_k {min(dks)}..{max(dks)}, D <= d_k, {tally['sequences']} write sequences"
    if bad is not None:
        return failed(covered, bad, "a read after the writes differs from the key's last written value")
    return passed(covered, **tally)


def check_orthogonality_needed(ctx: CheckContext) -> CheckOutcome:
    """``d_k + 1`` keys in ``d_k`` dimensions (not orthonormal): some read differs from its key's value."""
    for dk in (2, 3, 4):
        rng = np.random.default_rng(SEED + dk)
        keys = np.vstack([rational_orthogonal(dk, rng), rational_orthogonal(dk, rng)[:1]])  # dk + 1 unit keys
        order = np.arange(dk + 1)
        values = np.vectorize(Fraction, otypes=[object])(np.eye(dk + 1, 3, dtype=np.int64) + 1)
        got = run_writes(keys, values, order)
        if not (got == values).all():
            return passed(f"witness found at d_k = {dk} with {dk + 1} keys", d_k=dk)
    return failed("d_k 2..4", {"d_k": [2, 3, 4]}, "every read was exact although the keys were not orthonormal")
