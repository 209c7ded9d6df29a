"""The MQAR task (theory.md section 1.1): its specification, a batch of instances, and the vectorised generator.

Symbols: ``c`` = ``vocab_size``, ``N`` = ``seq_len`` (tokens, not triples), ``D`` = ``num_kv_pairs``,
``P`` = ``num_passes``, ``a`` = ``power_a``, ``S`` = ``num_query_slots`` = ``(N - 2DP) / 2``.

Layout of one example (positions ``0 .. N-1``)::

    pass p = 0..P-1:  k_0 v_0 k_1 v_1 ... k_{D-1} v_{D-1}      positions [2Dp, 2D(p+1)), key j at 2Dp + 2j
    query region:     positions [2DP, N); slot s = 0..S-1 is position 2DP + 2s
                      key j is queried exactly once, at slot g_j - 1, where the gaps g_0..g_{D-1} are drawn
                      from {1..S} without replacement with p(g) proportional to a * g^(a-1)
    filler:           every other position of the query region (all odd offsets, and the unused slots)

Keys are distinct tokens of ``[1, c//2)``, values distinct tokens of ``[c//2, c)`` (both without replacement inside an
example, so key ``j`` determines value ``j``). Labels are next-token targets: ``labels[b, i] = v_j`` at the query of
key ``j`` and ``-100`` everywhere else. For ``P = 1`` this is exactly zoology's ``multiquery_ar`` layout (its gap index
``g - 1`` is our slot). For ``P > 1`` the key-value block is repeated ``P`` times verbatim before the query region: the
"just read twice" (JRT) variant that zoology's ``num_passes`` intends (its code fails with a shape error there). Every
key occurs once in each pass and once as a query; the *previous* occurrence of a queried key is always in the last
pass, followed by its value, so the brute-force reading of recall agrees with the labels on ``clean`` instances.

Filler modes:

- ``"zero"``: token 0 (never a key or value). Every paper configuration uses this.
- ``"random"``: i.i.d. uniform over the whole vocabulary ``[0, c)`` (zoology's ``random_non_queries=True``). Fillers can
  then equal a key of the example; when that happens before the key's query, the query is ambiguous (see
  :func:`mqarkit.oracle.ambiguous_queries`).
- ``"clean"``: i.i.d. uniform over ``[0, c)`` minus the example's ``D`` keys *and* its ``D`` values (``c - 2D`` tokens,
  0 included). Excluding the keys makes every query unambiguous; excluding the values as well means that a value token
  occurs only right after its key, so no filler imitates half of a key-value pair either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mqarkit.checks import INT64_LIMIT, check_int, check_real, check_rng, check_rows_in_int64
from mqarkit.memory import check_memory
from mqarkit.sampling import sample_distinct, sample_excluding, sample_weighted_distinct

IGNORE_INDEX = -100
FILLERS = ("zero", "random", "clean")
Filler = Literal["zero", "random", "clean"]
# log of the least positive normal float64 and of the largest float64: the gap law must stay between them
_LOG_TINY, _LOG_HUGE = math.log(np.finfo(np.float64).tiny), math.log(np.finfo(np.float64).max)


def gap_law_problem(power_a: float, num_slots: int) -> str | None:
    """Why ``p(g) ~ a g^(a-1)``, ``g = 1..S``, cannot be computed in float64, or ``None``: every weight, their sum and
    every normalised probability must be finite and at least the least normal float64 (so none rounds to 0 or inf).
    ``w(g)`` is monotone in ``g``, so the extremes sit at ``g = 1`` and ``g = S``: checked in logs, no array."""
    log_w = sorted((math.log(power_a), math.log(power_a) + (power_a - 1.0) * math.log(num_slots)))
    log_sum_bound = log_w[1] + math.log(num_slots)
    if log_sum_bound >= _LOG_HUGE:
        return f"the gap weights a*g^(a-1) up to g=S={num_slots} overflow float64"
    if log_w[0] <= _LOG_TINY or log_w[0] - log_sum_bound <= _LOG_TINY:
        return f"the gap probabilities a*g^(a-1)/sum for g=1..S={num_slots} underflow to 0 in float64"
    return None


@dataclass(frozen=True)
class MQARSpec:
    """One MQAR task family: vocabulary, length, number of pairs, gap law, filler mode and number of passes.

    Rules checked in ``__post_init__`` (each failure is a ``ValueError`` that names the field), in this order:

    1. ``vocab_size``, ``seq_len``, ``num_kv_pairs``, ``num_passes`` are ints (not bools) and ``>= 1``;
       ``vocab_size < 2**63`` (token ids are int64);
    2. ``seq_len`` is even (queries sit at even offsets, as in the reference);
    3. the queries fit: ``S = (N - 2DP) / 2 >= D``, i.e. ``2 D (P + 1) <= N`` (``4D <= N`` for one pass, the
       reference's assertion);
    4. enough key tokens: ``c//2 - 1 >= D`` distinct keys in ``[1, c//2)``; the value range ``[c//2, c)`` then has
       ``c - c//2 >= c//2 > D`` tokens, and ``clean`` filler has ``c - 2D >= 2`` tokens, so neither needs a rule of its
       own;
    5. ``vocab_size > seq_len``, as zoology's ``multiquery_ar`` asserts (kept so that every spec is also a valid
       reference configuration);
    6. ``power_a`` is a finite real number ``> 0`` (``a = 1`` is uniform over the slots; smaller ``a`` favours short
       gaps) whose gap law is computable in float64 (:func:`gap_law_problem`: e.g. ``a = 1e308`` overflows);
    7. ``filler`` is one of ``"zero"``, ``"random"``, ``"clean"``.
    """

    vocab_size: int
    seq_len: int
    num_kv_pairs: int
    power_a: float = 0.01
    filler: Filler = "zero"
    num_passes: int = 1

    def __post_init__(self) -> None:
        for name in ("vocab_size", "seq_len", "num_kv_pairs", "num_passes"):
            object.__setattr__(self, name, check_int(name, getattr(self, name), 1))
        check_int("vocab_size", self.vocab_size, maximum=INT64_LIMIT - 1)
        c, N, D, P = self.vocab_size, self.seq_len, self.num_kv_pairs, self.num_passes
        if N % 2:
            raise ValueError(f"seq_len={N}: must be even (queries sit at even offsets)")
        if 2 * D * (P + 1) > N:
            raise ValueError(
                f"num_kv_pairs={D}: needs 2*num_kv_pairs*(num_passes+1) <= seq_len, i.e. {2 * D * (P + 1)} <= {N} "
                f"(num_passes={P} key-value blocks of {2 * D} tokens plus {D} query slots of 2 tokens)"
            )
        if c // 2 - 1 < D:
            raise ValueError(
                f"vocab_size={c}: needs vocab_size//2 - 1 >= num_kv_pairs={D} distinct key tokens in [1, {c // 2})"
            )
        if c <= N:
            raise ValueError(f"vocab_size={c}: needs vocab_size > seq_len={N} (the reference generator asserts it)")
        a = check_real("power_a", self.power_a)
        if not a > 0:
            raise ValueError(f"power_a={a}: must be finite and > 0")
        problem = gap_law_problem(a, self.num_query_slots)
        if problem is not None:
            raise ValueError(f"power_a={self.power_a!r}: {problem}")
        object.__setattr__(self, "power_a", a)
        if not isinstance(self.filler, str) or self.filler not in FILLERS:
            raise ValueError(f"filler={self.filler!r}: must be one of {FILLERS}")

    # --- derived quantities -----------------------------------------------------------------------------------------
    @property
    def key_range(self) -> range:
        """Key tokens ``[1, c//2)`` (0 is reserved for filler)."""
        return range(1, self.vocab_size // 2)

    @property
    def value_range(self) -> range:
        """Value tokens ``[c//2, c)``."""
        return range(self.vocab_size // 2, self.vocab_size)

    @property
    def kv_block_len(self) -> int:
        """Tokens in one key-value block: ``2D``."""
        return 2 * self.num_kv_pairs

    @property
    def context_len(self) -> int:
        """Tokens before the query region: ``2DP`` (all passes)."""
        return self.kv_block_len * self.num_passes

    @property
    def query_region(self) -> range:
        """Positions of the query region, ``[2DP, N)``."""
        return range(self.context_len, self.seq_len)

    @property
    def num_query_slots(self) -> int:
        """``S = (N - 2DP) / 2``: the even positions of the query region, the space the gaps are drawn from."""
        return (self.seq_len - self.context_len) // 2

    @property
    def num_clean_filler_tokens(self) -> int:
        """Tokens a ``clean`` filler is drawn from: ``c - 2D`` (the vocabulary minus the example's keys and values)."""
        return self.vocab_size - 2 * self.num_kv_pairs

    def gap_probabilities(self) -> np.ndarray:
        """``p(g) = a g^(a-1) / sum_h a h^(a-1)`` for ``g = 1..S``: (S,) float64; entry ``s`` is slot ``s = g - 1``."""
        g = np.arange(1, self.num_query_slots + 1, dtype=np.float64)
        w = self.power_a * g ** (self.power_a - 1.0)
        return w / w.sum()


@dataclass(frozen=True, eq=False)
class MQARBatch:
    """``n`` MQAR instances of one spec, with the ground truth of how they were built.

    inputs:          (n, N) int64 tokens.
    labels:          (n, N) int64; ``-100`` except ``labels[b, query_positions[b, j]] = values[b, j]``.
    keys, values:    (n, D) int64; pair ``j`` of example ``b`` is ``(keys[b, j], values[b, j])``.
    key_positions:   (n, D) int64; position of key ``j`` in the *last* pass (the occurrence a query recalls);
                     in pass ``p`` it is ``key_positions - 2D (P - 1 - p)``.
    value_positions: (n, D) int64; ``key_positions + 1``.
    query_positions: (n, D) int64; position of the one query of key ``j``.
    """

    spec: MQARSpec
    inputs: np.ndarray
    labels: np.ndarray
    keys: np.ndarray
    values: np.ndarray
    key_positions: np.ndarray
    value_positions: np.ndarray
    query_positions: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.spec, MQARSpec):
            raise TypeError(f"spec: must be an MQARSpec, got {type(self.spec).__name__}")
        n = self.inputs.shape[0] if self.inputs.ndim == 2 else -1
        shapes = {
            "inputs": (n, self.spec.seq_len),
            "labels": (n, self.spec.seq_len),
            "keys": (n, self.spec.num_kv_pairs),
            "values": (n, self.spec.num_kv_pairs),
            "key_positions": (n, self.spec.num_kv_pairs),
            "value_positions": (n, self.spec.num_kv_pairs),
            "query_positions": (n, self.spec.num_kv_pairs),
        }
        for name, shape in shapes.items():
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.dtype != np.int64 or arr.shape != shape:
                got = f"{arr.dtype}{arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
                raise ValueError(f"{name}: must be an int64 array of shape {shape}, got {got}")

    @property
    def num_examples(self) -> int:
        return int(self.inputs.shape[0])


def _context(keys: np.ndarray, values: np.ndarray, num_passes: int) -> np.ndarray:
    """``k_0 v_0 ... k_{D-1} v_{D-1}`` repeated ``num_passes`` times: (n, 2DP) from keys, values (n, D)."""
    block = np.stack([keys, values], axis=2).reshape(keys.shape[0], -1)  # (n, 2D) interleaved
    return np.tile(block, (1, num_passes))


def generate(spec: MQARSpec, num_examples: int, rng: np.random.Generator) -> MQARBatch:
    """Draw ``num_examples`` instances of ``spec`` (layout in the module docstring), vectorised over examples.

    Draw order (for reproducibility with a given ``rng``): keys, values, query slots, then fillers (none for
    ``"zero"``). Keys and values: uniformly random ordered tuples of distinct tokens (:func:`sample_distinct`). Slots:
    successive sampling without replacement from ``p(g)`` by exponential races (:func:`sample_weighted_distinct`);
    key ``j`` takes the ``j``-th drawn gap, as in the reference. Cost ``O(n (N + D^2))``; a batch whose inputs and
    labels alone exceed the memory available is refused first (:func:`check_batch_size`).
    """
    if not isinstance(spec, MQARSpec):
        raise TypeError(f"spec: must be an MQARSpec, got {type(spec).__name__}")
    check_rng(rng)
    if isinstance(num_examples, bool) or not isinstance(num_examples, (int, np.integer)):
        raise TypeError(f"num_examples={num_examples!r}: must be an int, got {type(num_examples).__name__}")
    n, D = check_batch_size(spec, num_examples), spec.num_kv_pairs
    keys = spec.key_range.start + sample_distinct(rng, len(spec.key_range), n, D)  # (n, D)
    values = spec.value_range.start + sample_distinct(rng, len(spec.value_range), n, D)  # (n, D)
    slots = sample_weighted_distinct(rng, spec.gap_probabilities(), n, D)  # (n, D) in [0, S)
    region = spec.seq_len - spec.context_len
    filler = None
    if spec.filler == "random":
        filler = rng.integers(0, spec.vocab_size, size=(n, region), dtype=np.int64)
    elif spec.filler == "clean":
        excluded = np.concatenate([keys, values], axis=1)  # (n, 2D)
        filler = sample_excluding(rng, excluded, spec.vocab_size, region)
    return assemble_batch(spec, keys, values, slots, filler)


def check_batch_size(spec: MQARSpec, num_examples: int) -> int:
    """``num_examples`` as an int ``>= 1`` whose batch fits: its ``(n, N)`` int64 inputs and labels in memory, and the
    oracle's vectorised lookups (``n * (c + 1) < 2**63``). Shared by every generator of :class:`MQARBatch`."""
    n = check_int("num_examples", num_examples, 1)
    check_rows_in_int64(n, spec.vocab_size + 1, what=f"num_examples={n} with vocab_size={spec.vocab_size}")
    check_memory(
        2 * 8 * n * spec.seq_len,
        parameter=f"num_examples={n}",
        what=f"the int64 inputs and labels of {n} examples of seq_len={spec.seq_len}",
    )
    return n


def assemble_batch(
    spec: MQARSpec, keys: np.ndarray, values: np.ndarray, slots: np.ndarray, filler: np.ndarray | None = None
) -> MQARBatch:
    """Lay out drawn instances (module docstring): keys, values, slots (n, D) int64 -> :class:`MQARBatch`.

    ``filler`` (n, N - context_len) fills the query region before the queries are written into their slots (``None``
    leaves token 0 there). Shared by :func:`generate` and the zoology-compatible generator.
    """
    n, N, D = keys.shape[0], spec.seq_len, spec.num_kv_pairs
    query_positions = (spec.context_len + 2 * slots).astype(np.int64)  # (n, D)
    inputs = np.zeros((n, N), dtype=np.int64)
    inputs[:, : spec.context_len] = _context(keys, values, spec.num_passes)
    if filler is not None:
        inputs[:, spec.context_len :] = filler
    rows = np.arange(n)[:, None]
    inputs[rows, query_positions] = keys
    labels = np.full((n, N), IGNORE_INDEX, dtype=np.int64)
    labels[rows, query_positions] = values
    key_positions = np.broadcast_to(spec.context_len - 2 * D + 2 * np.arange(D, dtype=np.int64), (n, D)).copy()
    return MQARBatch(
        spec=spec,
        inputs=inputs,
        labels=labels,
        keys=np.asarray(keys, dtype=np.int64),
        values=np.asarray(values, dtype=np.int64),
        key_positions=key_positions,
        value_positions=key_positions + 1,
        query_positions=query_positions,
    )
