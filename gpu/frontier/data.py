"""MQAR batches generated directly on the GPU (or any torch device) from an explicit ``torch.Generator``.

The distribution is Zoology's ``multiquery_ar`` with ``random_non_queries=False`` (theory.md §1.1), drawn with torch
primitives instead of a per-row ``np.random.choice``:

- keys: ``D`` distinct tokens of ``[1, c/2)``; values: ``D`` distinct tokens of ``[c/2, c)``. A uniform ordered sample
  without replacement of size ``D`` from ``K`` items is the index list of the ``D`` largest of ``K`` i.i.d. uniforms,
  in decreasing order (``topk``): every ordered ``D``-tuple of distinct items is equally likely.
- query slots: ``D`` distinct slots ``x ∈ [0, S)``, ``S = (N − 2D)/2``, drawn *successively* (without replacement)
  with weights ``p(x) ∝ a·(x+1)^(a−1)``. Successive weighted sampling without replacement is exactly the Gumbel-top-k
  distribution: the ``D`` largest of ``log p(x) + G_x`` with ``G_x`` i.i.d. standard Gumbel, in decreasing order
  (Vieira 2014; Kool et al. 2019). Key ``i`` is queried at position ``2D + 2·x_i``.
- inputs: ``k_0 v_0 … k_{D−1} v_{D−1}`` then zeros with the keys at their query positions; labels: ``-100`` except the
  value of the queried key at each query position (labels are next-token targets, already shifted).

Memory: a chunk of ``m`` examples needs ``m·(c/2)`` floats for the two uniform tables; ``chunk`` bounds ``m``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Segment:
    """One data segment: ``num_examples`` MQAR examples of length ``seq_len`` with ``num_kv_pairs`` pairs."""

    seq_len: int
    num_kv_pairs: int
    num_examples: int

    def validate(self, vocab_size: int) -> None:
        validate_mqar(vocab_size, self.seq_len, self.num_kv_pairs)
        if self.num_examples < 1:
            raise ValueError(f"num_examples={self.num_examples}: needs num_examples >= 1")


def validate_mqar(vocab_size: int, seq_len: int, num_kv_pairs: int, power_a: float = 0.01) -> None:
    """Raise ``ValueError`` unless the MQAR parameters obey the reference generator's rules (theory.md §1.1)."""
    if num_kv_pairs < 1:
        raise ValueError(f"num_kv_pairs={num_kv_pairs}: needs num_kv_pairs >= 1")
    if seq_len % 2:
        raise ValueError(f"seq_len={seq_len}: needs an even seq_len")
    if 4 * num_kv_pairs > seq_len:
        raise ValueError(f"num_kv_pairs={num_kv_pairs}: needs 4*num_kv_pairs <= seq_len={seq_len}")
    if vocab_size <= seq_len:
        raise ValueError(f"vocab_size={vocab_size}: needs vocab_size > seq_len={seq_len}")
    if vocab_size % 2:
        raise ValueError(f"vocab_size={vocab_size}: needs an even vocab_size (keys [1, c/2), values [c/2, c))")
    if vocab_size // 2 - 1 < num_kv_pairs:
        raise ValueError(f"num_kv_pairs={num_kv_pairs}: needs num_kv_pairs <= vocab_size/2 - 1 distinct keys")
    if not (power_a > 0 and math.isfinite(power_a)):
        raise ValueError(f"power_a={power_a}: needs a finite power_a > 0")


def _ordered_sample(rows: int, population: int, k: int, generator: torch.Generator, device: torch.device):
    # (rows, k) int64: uniform ordered samples without replacement from range(population)
    u = torch.rand(rows, population, generator=generator, device=device)
    return u.topk(k, dim=1).indices


def gap_log_weights(seq_len: int, num_kv_pairs: int, power_a: float) -> torch.Tensor:
    """``log p(x)`` (up to a constant) for the query slots ``x = 0..S-1``: ``p ∝ a·(x+1)^(a−1)``. Shape ``(S,)``."""
    slots = (seq_len - 2 * num_kv_pairs) // 2
    g = torch.arange(1, slots + 1, dtype=torch.float64)
    return (math.log(power_a) + (power_a - 1.0) * torch.log(g)).float()


def mqar_batch(
    vocab_size: int,
    seq_len: int,
    num_kv_pairs: int,
    num_examples: int,
    *,
    generator: torch.Generator,
    power_a: float = 0.01,
    chunk: int = 8192,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, labels)``, both ``(num_examples, seq_len)`` int64 on ``generator.device``.

    ``generator`` fixes the device and the stream; the output for a seed does not depend on ``chunk`` only when
    ``num_examples <= chunk`` (chunks draw in sequence).
    """
    validate_mqar(vocab_size, seq_len, num_kv_pairs, power_a)
    if num_examples < 1:
        raise ValueError(f"num_examples={num_examples}: needs num_examples >= 1")
    if chunk < 1:
        raise ValueError(f"chunk={chunk}: needs chunk >= 1")
    device = generator.device
    d, half = num_kv_pairs, vocab_size // 2
    logw = gap_log_weights(seq_len, num_kv_pairs, power_a).to(device)  # (S,)
    inputs = torch.zeros(num_examples, seq_len, dtype=torch.long, device=device)
    labels = torch.full((num_examples, seq_len), IGNORE_INDEX, dtype=torch.long, device=device)
    for start in range(0, num_examples, chunk):
        m = min(chunk, num_examples - start)
        keys = _ordered_sample(m, half - 1, d, generator, device) + 1  # (m, D) in [1, c/2)
        values = _ordered_sample(m, half, d, generator, device) + half  # (m, D) in [c/2, c)
        u = torch.rand(m, logw.numel(), generator=generator, device=device).clamp_(min=1e-20)
        gumbel = -torch.log(-torch.log(u))
        slots = (logw + gumbel).topk(d, dim=1).indices  # (m, D) distinct slots, successive weighted draws
        qpos = 2 * d + 2 * slots  # (m, D) query positions
        rows = inputs[start : start + m]
        rows[:, 0 : 2 * d : 2] = keys
        rows[:, 1 : 2 * d : 2] = values
        rows.scatter_(1, qpos, keys)
        labels[start : start + m].scatter_(1, qpos, values)
    return inputs, labels


def make_segments(
    vocab_size: int, segments: list[Segment], *, generator: torch.Generator, power_a: float = 0.01
) -> list[tuple[Segment, torch.Tensor, torch.Tensor]]:
    """Generate every segment in order with one generator: ``[(segment, inputs (n, N), labels (n, N)), ...]``."""
    for seg in segments:
        seg.validate(vocab_size)
    return [
        (
            seg,
            *mqar_batch(
                vocab_size, seg.seq_len, seg.num_kv_pairs, seg.num_examples, generator=generator, power_a=power_a
            ),
        )
        for seg in segments
    ]
