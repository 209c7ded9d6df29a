"""Hyena of order 2, as the reference's ``zoology.mixers.hyena.Hyena`` with the papers' arguments (``l_max`` only:
one head, one block, filter MLP width 64, positional embedding of 3, short filter of 3, exponential modulation).

Glossary (per run; ``u (B, N, d)`` is layer 1's input, ``L = max_len``)::

    x1, x2, v = conv_3(u W_in + b_in) + b_s           (d × 3d; a causal depthwise filter of 3 taps on all 3d channels)
    implicit filter h (L × d), one tap per lag ℓ:
        z_ℓ  = [t_ℓ, cos(2π f ℓ/L), −sin(2π f ℓ/L)]  (t_ℓ = ℓ/(L−1), f = 1e-4; trained, from this start)
        φ(a) = sin(ω ⊙ a)                              (one trained frequency vector ω of width 64, shared)
        g_ℓ  = φ(φ(φ(z_ℓ W_0 + b_0) W_1 + b_1) W_2 + b_2) W_3        (3 → 64 → 64 → 64 → d)
        h_ℓ  = g_ℓ ⊙ exp(−t_ℓ |δ|)                    (δ: d decay rates from log(1e-2)/1.5 to log(1e-2)/0.3, fixed)
    w_t = v_t ⊙ x1_t                                    (pre-gate)
    c_t = Σ_{ℓ≤t} h_ℓ ⊙ w_{t−ℓ} + β ⊙ w_t              (long convolution; β the filter's trained bias)
    out = (c ⊙ x2) W_o + b_o

Recurrent mode carries the short filter's last 2 inputs (``3d`` channels each) and the long filter's inputs ``w``
that it still reaches, the last ``L − 1``: ``2·3d + min(N, L − 1)·d`` numbers after ``N`` tokens.

Fast path (stacked): the filter MLP of every run as batched matmuls (``L × 64`` per run), the long convolution by
``ops.causal_long_conv`` (a Toeplitz matmul up to 256 positions, FFT beyond), everything but ``W_o`` in float32 at least
with autocast off. The reference convolves lag by lag.

How it differs from the reference implementation: the same function (``fftconv_ref`` without GELU or dropout; our
convolution runs in float32 at least, the reference's in the module's dtype; under bf16 autocast the reference rounds
its projections to bf16, ours keeps everything but ``W_o`` in float32). The constants ``t`` and ``δ`` (buffers there)
are computed in the computation's dtype; the golden map checks that they equal the reference's. Initialisation as the
reference's inside Zoology's model: ``W_in``, the filter MLP's ``W_0..W_3`` ``N(0, 0.02²)`` with zero biases and ``W_o``
``N(0, 0.01²)`` (Zoology re-initialises every ``nn.Linear``, ``out_proj`` at ``0.02/√(2·2 layers)``); the short filter
and its bias as PyTorch's ``Conv1d`` (``U(±1/√3)``); ``ω = 1``; ``β ~ N(0, 1)``; ``z`` as above. The reference gives
``z`` a learning rate of ``1e-5`` and the filter weights ``1e-3`` through ``_optim`` attributes that its own trainer
ignores: every parameter trains at the run's learning rate there and here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from mqarkit.gpu.frontier.ops import (
    causal_depthwise_conv,
    causal_long_conv,
    gather_rows,
    init_conv,
    init_normal,
    linear,
)
from mqarkit.gpu.frontier.protocol import KnobValue, StackedMixer

FILTER_WIDTH = 64  # the filter MLP's width (the reference's filter_order; the papers never change it)
EMBED_DIM = 3  # the positional embedding: t and one (cos, sin) band
BAND = 1e-4  # that band's frequency (the reference's linspace(1e-4, bands − 1, bands) with one band)
SHORT_TAPS = 3  # the short filter on the projections
# the modulation exp(−t|δ|) falls to DECAY_TARGET at t = FAST_DECAY in the fastest channel, at SLOW_DECAY in the slowest
DECAY_TARGET, FAST_DECAY, SLOW_DECAY = 1e-2, 0.3, 1.5
OUT_STD = 0.02 / math.sqrt(2 * 2)  # Zoology's out_proj initialisation in a 2-layer model


def filter_positions(max_len: int, dtype: torch.dtype, device: torch.device | None = None) -> torch.Tensor:
    """``t_ℓ = ℓ/(L − 1)``, ``(L,)``: the filter's time axis (the reference's ``pos_emb.t``)."""
    return torch.linspace(0, 1, max_len, dtype=dtype, device=device)


def decay_rates(d_model: int, dtype: torch.dtype, device: torch.device | None = None) -> torch.Tensor:
    """``δ``, ``(d,)``: the modulation's decay rates (the reference's ``modulation.deltas``)."""
    target = math.log(DECAY_TARGET)
    return torch.linspace(target / SLOW_DECAY, target / FAST_DECAY, d_model, dtype=dtype, device=device)


def positional_embedding(max_len: int) -> torch.Tensor:
    """``z (L, 3)``: ``[t_ℓ, cos(2π f ℓ/L), −sin(2π f ℓ/L)]``, the filter MLP's input at initialisation."""
    angle = 2 * math.pi * BAND * torch.arange(max_len, dtype=torch.float64) / max_len
    return torch.stack([filter_positions(max_len, torch.float64), angle.cos(), -angle.sin()], dim=-1).float()


class Hyena(StackedMixer):
    name = "hyena"

    @classmethod
    def init_run(
        cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        d, w = d_model, FILTER_WIDTH
        p = {"in_w": init_normal((d, 3 * d), generator), "in_b": torch.zeros(3 * d)}
        p["short_k"] = init_conv((3 * d, SHORT_TAPS), generator)
        p["short_b"] = (torch.rand(3 * d, generator=generator) * 2 - 1) / math.sqrt(SHORT_TAPS)  # Conv1d's bias
        p["filter_z"] = positional_embedding(max_len)
        p |= {"filter_w0": init_normal((EMBED_DIM, w), generator), "filter_b0": torch.zeros(w)}
        p["filter_freq"] = torch.ones(w)
        p |= {"filter_w1": init_normal((w, w), generator), "filter_b1": torch.zeros(w)}
        p |= {"filter_w2": init_normal((w, w), generator), "filter_b2": torch.zeros(w)}
        p["filter_w3"] = init_normal((w, d), generator)
        p["filter_skip"] = torch.randn(d, generator=generator)
        p |= {"o_w": init_normal((d, d), generator, std=OUT_STD), "o_b": torch.zeros(d)}
        return p

    def intermediate_elements(self, seq_len: int) -> int:
        # the projections; the FFT's spectrum of w (up to TOEPLITZ_MAX_LEN positions the Toeplitz matmul's output,
        # smaller)
        return self.runs * max(3 * seq_len, 2 * (seq_len + 1)) * self.d

    # ---------------------------------------------------------------- fast path (stacked)
    def filters(self, n: int, dtype: torch.dtype) -> torch.Tensor:
        """Every run's implicit filter over its first ``n`` lags, ``(R, d, n)``, computed in ``dtype``, autocast off."""
        z = self.filter_z[:, :n].to(dtype)
        with torch.autocast(z.device.type, enabled=False):
            freq = self.filter_freq.to(dtype)[:, None]
            a = torch.sin(freq * linear(z, self.filter_w0.to(dtype), self.filter_b0.to(dtype)))
            a = torch.sin(freq * linear(a, self.filter_w1.to(dtype), self.filter_b1.to(dtype)))
            a = torch.sin(freq * linear(a, self.filter_w2.to(dtype), self.filter_b2.to(dtype)))
            g = linear(a, self.filter_w3.to(dtype))  # (R, n, d)
            t = filter_positions(self.max_len, dtype, z.device)[:n, None]
            return (g * torch.exp(-t * decay_rates(self.d, dtype, z.device).abs())).transpose(1, 2)

    def gated(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The long convolution's output ``c`` and the post-gate ``x2``, ``(R, B, N, d)`` each, in float32 at least
        with autocast off: ``c ⊙ x2`` is a product of three projections, each of which bf16 would round (about 1% on
        gradients). Only ``W_o`` runs in the autocast dtype."""
        acc = torch.promote_types(u.dtype, torch.float32)  # float32 under autocast; float64 stays float64
        with torch.autocast(u.device.type, enabled=False):
            x = linear(u.to(acc), self.in_w.to(acc), self.in_b.to(acc))
            x1, x2, v = causal_depthwise_conv(x, self.short_k.to(acc), self.short_b.to(acc)).chunk(3, dim=-1)
        w = v * x1
        return causal_long_conv(w, self.filters(u.shape[2], acc)) + w * self.filter_skip.to(acc)[:, None, None], x2

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        c, x2 = self.gated(u)
        return linear(c * x2, self.o_w, self.o_b)

    def forward_at(self, u: torch.Tensor, qpos: torch.Tensor) -> torch.Tensor:
        """The convolutions at every position; the post-gate and ``W_o`` at the query rows only."""
        c, x2 = self.gated(u)
        return linear(gather_rows(c, qpos) * gather_rows(x2, qpos), self.o_w, self.o_b)

    # ---------------------------------------------------------------- naive reference and recurrent mode (one run)
    def reference_filter(self, run: int, n: int) -> torch.Tensor:
        """Run ``run``'s filter ``h (n, d)`` over its first ``n`` lags, layer by layer."""
        p = self.run_parameters(run)
        a = p["filter_z"][:n]
        for i in range(3):
            a = torch.sin(p["filter_freq"] * (a @ p[f"filter_w{i}"] + p[f"filter_b{i}"]))
        t = filter_positions(self.max_len, a.dtype, a.device)[:n, None]
        return (a @ p["filter_w3"]) * torch.exp(-t * decay_rates(self.d, a.dtype, a.device).abs())

    def projections(self, run: int, u: torch.Tensor) -> torch.Tensor:
        """``conv_3(u W_in + b_in) + b_s`` of run ``run`` lag by lag: ``u (B, N, d)`` -> ``(B, N, 3d)``."""
        p = self.run_parameters(run)
        x = u @ p["in_w"] + p["in_b"]
        n = x.shape[1]
        return p["short_b"] + sum(F.pad(x, (0, 0, s, 0))[:, :n] * p["short_k"][:, s] for s in range(SHORT_TAPS))

    def reference(self, run: int, u: torch.Tensor) -> torch.Tensor:
        p = self.run_parameters(run)
        n = u.shape[1]
        x1, x2, v = self.projections(run, u).chunk(3, dim=-1)
        w = v * x1
        h = self.reference_filter(run, n)
        c = w * p["filter_skip"]
        for lag in range(n):  # h_lag ⊙ w_{t−lag} for every t ≥ lag
            c = c + F.pad(h[lag] * w[:, : n - lag], (0, 0, lag, 0))
        return (c * x2) @ p["o_w"] + p["o_b"]

    def step(self, run: int, u_t: torch.Tensor, state: dict[str, torch.Tensor] | None):
        p = self.run_parameters(run)
        x = u_t @ p["in_w"] + p["in_b"]  # (B, 3d)
        if state is None:
            cache = torch.zeros(u_t.shape[0], SHORT_TAPS - 1, 3 * self.d, dtype=u_t.dtype, device=u_t.device)
        else:
            cache = state["short_cache"]
        window = torch.cat([cache, x[:, None]], dim=1)  # (B, 3, 3d): oldest first, x_t last
        x1, x2, v = ((window * p["short_k"].T.flip(0)).sum(1) + p["short_b"]).chunk(3, dim=-1)
        w = v * x1
        seen = w[:, None] if state is None else torch.cat([state["long_cache"], w[:, None]], dim=1)  # (B, t, d)
        lags = seen.shape[1]
        c = (seen.flip(1) * self.reference_filter(run, lags)).sum(1) + p["filter_skip"] * w
        keep = min(lags, self.max_len - 1)  # the next step's filter reaches back L − 1 inputs
        out = (c * x2) @ p["o_w"] + p["o_b"]
        return out, {"short_cache": window[:, 1:], "long_cache": seen[:, lags - keep :]}

    @torch.no_grad()
    def recurrent_state(self, run: int, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """The short filter's last 2 inputs and the last ``min(N, L − 1)`` pre-gated ``w`` after ``u (N, d)``, in one
        pass (tests compare with :meth:`step`)."""
        p = self.run_parameters(run)
        n = u.shape[0]
        x = u @ p["in_w"] + p["in_b"]
        x1, _, v = self.projections(run, u[None])[0].chunk(3, dim=-1)
        keep = min(n, self.max_len - 1)
        return {"short_cache": F.pad(x, (0, 0, SHORT_TAPS - 1, 0))[n:], "long_cache": (v * x1)[n - keep :]}

    @classmethod
    def state_formula(cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], seq_len: int) -> int:
        return (SHORT_TAPS - 1) * 3 * d_model + min(seq_len, max_len - 1) * d_model
