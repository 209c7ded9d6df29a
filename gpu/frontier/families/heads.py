"""What the multi-head fla-style families share: head-explicit stacked parameters, the short convolution, the norms.

Stacked runs may differ in their number of heads ``H`` and head widths ``K, V`` (the knobs that set the state size
``H·K·V``). Every head-shaped parameter is therefore stored with its head axes explicit (a projection ``(d, H, K)``,
a conv filter ``(H, K, taps)``, a norm weight ``(V,)``) and padded by the base class at the end of each axis, so a run
with fewer or narrower heads occupies the leading block; its padded heads and channels project to exactly 0, and the
norms below divide by each run's own width, so the padding changes nothing and stays 0 (the state too).

Conventions of fla's layers (``fla.layers``, ``fla.modules``) written here once:

- the short convolution (``ShortConvolution``): causal, depthwise, ``CONV_TAPS = 4`` taps, no bias, then SiLU;
- ``l2_normalize``: ``x / √(Σx² + 1e-6)`` (fla's ``l2norm``);
- ``rms_norm``: ``x / √(mean(x²) + 1e-5) · w`` over each head's value channels (``RMSNorm``, float32), and the gated
  ``rms_norm(x) · w · SiLU(g)`` (``FusedRMSNormGated``, swish).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mqarkit.gpu.frontier.kernels.fla_heads import GroupsOnDevice, width_groups
from mqarkit.gpu.frontier.ops import causal_depthwise_conv, linear

CONV_TAPS = 4  # fla's ShortConvolution default
L2_EPS = 1e-6  # fla's l2norm
NORM_EPS = 1e-5  # fla's layers' norm_eps


def accumulation_dtype(x: torch.Tensor) -> torch.dtype:
    """float32 under autocast (bf16 activations), float64 for float64 inputs."""
    return torch.promote_types(x.dtype, torch.float32)


def short_conv(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """SiLU of the causal depthwise convolution: ``x (R, B, N, C)``, ``w (R, C, taps)`` (tap ``s`` = lag ``s``)."""
    return F.silu(causal_depthwise_conv(x, w, torch.zeros_like(w[..., 0])))


def short_conv_sequence(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The same for one run, written out: ``x (B, N, C)``, ``w (C, taps)``; ``y_t = SiLU(Σ_s w[:, s] x_{t−s})``."""
    n = x.shape[1]
    return F.silu(sum(F.pad(x, (0, 0, s, 0))[:, :n] * w[:, s] for s in range(w.shape[-1])))


def short_conv_step(cache: torch.Tensor | None, x_t: torch.Tensor, w: torch.Tensor):
    """One token: ``cache (B, taps − 1, C)`` (oldest first; None: zeros), ``x_t (B, C)``, ``w (C, taps)`` ->
    ``(SiLU(Σ_s w[:, s] x_{t−s}) (B, C), the new cache)``: the last ``taps − 1`` inputs, what the next token reads."""
    taps = w.shape[-1]
    if cache is None:
        cache = x_t.new_zeros(x_t.shape[0], taps - 1, x_t.shape[-1])
    window = torch.cat([cache, x_t[:, None]], dim=1)  # (B, taps, C): x_{t−taps+1} … x_t
    return F.silu((window * w.T.flip(0)).sum(1)), window[:, 1:]


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """``x / √(Σ x² + 1e-6)`` over the last axis (a padded zero channel changes nothing)."""
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + L2_EPS)


def rms_norm(x: torch.Tensor, w: torch.Tensor, width: torch.Tensor | int, gate: torch.Tensor | None = None):
    """``x / √(Σx² / width + 1e-5) · w`` over the last axis, times ``SiLU(gate)`` if given; float32 at least.

    ``x (..., V)`` whose channels past ``width`` are 0 (padding), ``w (..., V)`` broadcastable, ``width`` the true
    ``V`` (an int, or a tensor broadcastable to ``x[..., :1]``: one per run).
    """
    acc = accumulation_dtype(x)
    x = x.to(acc)
    y = x * torch.rsqrt((x * x).sum(-1, keepdim=True) / width + NORM_EPS) * w.to(acc)
    return y if gate is None else y * F.silu(gate.to(acc))


def per_run(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """An ``(R,)`` tensor shaped to broadcast against ``like (R, ...)``: ``(R, 1, ..., 1)``."""
    return t.view(-1, *([1] * (like.dim() - 1)))


DT_MIN, DT_MAX, DT_FLOOR = 1e-3, 1e-1, 1e-4  # Mamba-2's (and fla's Gated DeltaNet's) initial step sizes


def init_dt_bias(heads: int, generator: torch.Generator) -> torch.Tensor:
    """``b_Δ (H,)`` with ``softplus(b_Δ) = Δ`` log-uniform in ``[1e-3, 1e-1]`` (floored at ``1e-4``), as Mamba-2."""
    dt = torch.exp(torch.rand(heads, generator=generator) * (math.log(DT_MAX) - math.log(DT_MIN)) + math.log(DT_MIN))
    dt = dt.clamp(min=DT_FLOOR)
    return dt + torch.log(-torch.expm1(-dt))  # softplus^{-1}(Δ)


def decay_projection(u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``linear(u, w)`` in float32 at least, autocast off: for the projections that set decays (``e^{g}`` compounds
    over the sequence; in bf16 the GPU tests saw a step size's gradient 12% off the float32 reference)."""
    acc = accumulation_dtype(u)
    with torch.autocast(u.device.type, enabled=False):
        return linear(u.to(acc), w.to(acc))


class RunsGroupedByWidth:
    """For a family that calls fla once per group of runs of one ``(H, K, V)`` (a mixin before ``StackedMixer``; the
    family's ``widths(knobs)`` gives a run's): the stack's
    :class:`~mqarkit.gpu.frontier.kernels.fla_heads.WidthGroups`, None where every run has the same widths, and their
    orders as buffers (not saved: they follow from the knobs), so that no index reaches the device per step (CUDA
    graphs)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.width_groups = width_groups([self.widths(knobs) for knobs in self.run_knobs])
        if self.width_groups is not None:
            self.register_buffer("width_order", torch.tensor(self.width_groups.order), persistent=False)
            self.register_buffer("width_unorder", torch.tensor(self.width_groups.unorder), persistent=False)

    def fla_groups(self) -> GroupsOnDevice | None:
        """The groups and their orders on the stack's device, as the fla calls take them (None: one call)."""
        if self.width_groups is None:
            return None
        return self.width_groups, self.get_buffer("width_order"), self.get_buffer("width_unorder")
