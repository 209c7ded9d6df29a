"""Causal Taylor ("Based") attention through fla's flash-style Triton kernels, in the stacked layout.

fla's ``parallel_based`` (flash-linear-attention, ``fla.ops.based``) computes, per sequence and head::

    y_i = Σ_{j≤i} K_ij v_j / (Σ_{j≤i} K_ij + 1e-6),      K_ij = 1 + s_ij + s_ij²/2,   s_ij = scale · q_i·k_j

tile by tile in on-chip memory: the ``(N, N)`` scores are never written, and its backward recomputes them the same
way. It is the kernel of :func:`mqarkit.gpu.frontier.model.taylor_attention` (the reference beside it, which
materialises the quadratic tiles), so the model is unchanged; what differs, and is bounded by the tests:

- fla rounds ``K`` to the matmul dtype (bf16 under autocast) before the product with ``v``, and rounds the numerator
  and denominator to it before the division (ours keeps the constant 1 and both sums in float32);
- its epsilon is ``1e-6`` instead of ``1e-12``: immaterial, since ``K ≥ 1/2`` makes the denominator ``≥ (i + 1)/2``.

The stacked tensors ``(R, B, N, f)`` are fla's ``(batch, T, heads, K)`` with ``batch = R·B`` and one head; the per-run
scale ``1/√d'_r`` is already folded into ``q`` by the caller, so fla is called with ``scale = 1``. fla requires a
feature dim ``f ≤ 128``. ``MQARKIT_FLA=0`` turns this path off (then the reference kernel runs everywhere).
"""

from __future__ import annotations

import torch

from mqarkit.gpu.frontier.kernels.fla_common import fla_enabled, fla_op


def _parallel_based():
    """fla's ``parallel_based``, or None when fla (or triton) is not importable."""
    return fla_op("fla.ops.based", "parallel_based")


def fla_taylor_available(device: torch.device) -> bool:
    """Whether the fla path serves tensors on ``device``: CUDA, fla importable, not turned off by ``MQARKIT_FLA=0``."""
    return fla_enabled(device) and _parallel_based() is not None


def fla_taylor_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``y_i = Σ_{j≤i} K(q_i,k_j) v_j / Σ_{j≤i} K(q_i,k_j)``, ``K = 1 + q·k + (q·k)²/2`` (scale already in ``q``).

    ``q, k (R, B, N, f)``, ``v (R, B, N, d)`` -> ``(R, B, N, d)``; CUDA tensors, ``f ≤ 128``.
    """
    fn = _parallel_based()
    if fn is None:
        raise RuntimeError("fla_taylor_attention: fla (flash-linear-attention) is not importable")
    r, b, n, f = q.shape
    if k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"q, k, v: need q, k (R, B, N, f) and v (R, B, N, d), got {q.shape}, {k.shape}, {v.shape}")
    if f > 128:
        raise ValueError(f"q: fla's kernel needs feature dim f <= 128, got f={f}")
    d = v.shape[-1]
    y = fn(q.reshape(r * b, n, 1, f), k.reshape(r * b, n, 1, f), v.reshape(r * b, n, 1, d), scale=1.0)
    return y.reshape(r, b, n, d)
