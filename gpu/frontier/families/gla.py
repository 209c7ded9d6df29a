"""Gated linear attention (GLA): linear attention with a data-dependent decay per key channel, as fla's
``GatedLinearAttention`` layer (defaults).

Glossary (one run; ``u (B, N, d)``; the knobs ``H`` heads of key width ``K``; value width ``V = 2K``, fla's
``expand_v / expand_k = 1 / 0.5``)::

    q, k, v = u W_q, u W_k, u W_v                          per head (K,), (K,), (V,); no short convolution
    α_t     = logsigmoid(u_t W_α¹ W_α² + b_α) / 16          one log decay per key channel (rank-16 map, fla's gate)
    S_t     = diag(e^{α_t}) S_{t−1} + k_t v_tᵀ               K × V per head, S_{−1} = 0
    o_t     = S_tᵀ q_t / √K
    out     = (RMSNorm(o) ⊙ SiLU(u W_g)) W_o                 fla's FusedRMSNormGated (use_output_gate, swish)

fla's defaults followed: ``use_short_conv=False``, ``gate_low_rank_dim = 16``, ``gate_logit_normalizer = 16``, no
``clamp_min``, output gate with swish and a fused RMSNorm (``norm_eps = 1e-5``, one weight ``(V,)`` for all heads).
Parameters: every linear map ``N(0, 0.02²)`` (the reference harness's rule), ``b_α = 0``, the norm weight 1.

Fast path: on CUDA with fla, fla's ``chunk_gla`` with the runs folded into the batch axis
(:mod:`mqarkit.gpu.frontier.kernels.fla_gla`; float32 and half precision; runs of different heads or widths one call per
group at their own widths, :class:`~mqarkit.gpu.frontier.kernels.fla_heads.WidthGroups`); elsewhere the parallel form of
:mod:`.recurrences` (its ``(N, N, K)`` decays: the CPU path). Recurrent mode carries ``S``: ``H·K·V`` numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from mqarkit.gpu.frontier.families.heads import (
    RunsGroupedByWidth,
    accumulation_dtype,
    decay_projection,
    per_run,
    rms_norm,
)
from mqarkit.gpu.frontier.families.recurrences import linear_recurrence
from mqarkit.gpu.frontier.kernels.fla_gla import fla_gla, gla_available
from mqarkit.gpu.frontier.ops import fused_projection, init_normal, linear
from mqarkit.gpu.frontier.protocol import Knob, KnobValue, StackedMixer

VALUE_EXPAND = 2  # V = 2K
GATE_RANK = 16  # fla's gate_low_rank_dim
GATE_NORMALIZER = 16.0  # fla's gate_logit_normalizer


class GLA(RunsGroupedByWidth, StackedMixer):
    name = "gla"
    knobs = (
        Knob("heads", "h", help="H, the number of heads"),
        Knob("head_dim", "hd", help="K, the key width of each head (the value width is 2K)"),
    )

    @staticmethod
    def widths(knobs: Mapping[str, KnobValue]) -> tuple[int, int, int]:
        """``(H, K, V)`` of a run."""
        h, k = int(knobs["heads"]), int(knobs["head_dim"])
        return h, k, VALUE_EXPAND * k

    @classmethod
    def init_run(
        cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        d, (h, k, v) = d_model, cls.widths(knobs)
        return {
            "q_w": init_normal((d, h, k), generator),
            "k_w": init_normal((d, h, k), generator),
            "v_w": init_normal((d, h, v), generator),
            "g_w": init_normal((d, h, v), generator),
            "gate_down": init_normal((d, GATE_RANK), generator),
            "gate_up": init_normal((GATE_RANK, h, k), generator),
            "gate_b": torch.zeros(h, k),
            "norm_w": torch.ones(v),
            "o_w": init_normal((h, v, d), generator),
        }

    @classmethod
    def state_formula(cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], seq_len: int) -> int:
        h, k, v = cls.widths(knobs)
        return h * k * v

    def padded_widths(self) -> tuple[int, int, int]:
        return (*self.q_w.shape[-2:], self.v_w.shape[-1])

    def intermediate_elements(self, seq_len: int) -> int:
        h, k, v = self.padded_widths()
        if gla_available(self.q_w.device, k, v):
            return self.runs * seq_len * h * max(k, v, 64)
        return self.runs * h * seq_len * seq_len * k  # the parallel form's per-channel decays

    # ---------------------------------------------------------------- fast path (stacked)
    def forward(self, u: torch.Tensor) -> torch.Tensor:
        h, k, v = self.padded_widths()
        weights = [self.masked(n).flatten(2) for n in ("q_w", "k_w", "v_w", "g_w")]
        q, kk, vv, gate = fused_projection(u, weights)  # (R, B, N, H·K | H·V)
        work, acc = q.dtype, accumulation_dtype(q)
        alpha = decay_projection(decay_projection(u, self.masked("gate_down")), self.masked("gate_up").flatten(2))
        alpha = F.logsigmoid(alpha + self.masked("gate_b").flatten(1).to(acc)[:, None, None]) / GATE_NORMALIZER
        q, kk, vv, alpha = (t.unflatten(-1, (h, w)) for t, w in ((q, k), (kk, k), (vv, v), (alpha, k)))
        q = q.to(acc) * per_run(self.knob_tensor("head_dim").to(acc).rsqrt(), q)
        if gla_available(u.device, k, v):
            o = fla_gla(q.to(work), kk, vv, alpha, self.fla_groups())
        else:  # the parallel form, heads before positions
            o = linear_recurrence(*(t.transpose(2, 3) for t in (q, kk, vv, alpha))).transpose(2, 3)
        widths = per_run(VALUE_EXPAND * self.knob_tensor("head_dim"), o)
        y = rms_norm(o, self.masked("norm_w")[:, None, None, None, :], widths, gate.unflatten(-1, (h, v)))
        return linear(y.flatten(3).to(work), self.masked("o_w").flatten(1, 2))

    # ---------------------------------------------------------------- naive reference and recurrent mode (one run)
    def run_inputs(self, run: int, u: torch.Tensor):
        """One run: ``u (..., d)`` -> ``q/√K, k, α (..., H, K)``, ``v, gate (..., H, V)``."""
        p = self.run_parameters(run)
        h, k, v = self.widths(self.run_knobs[run])
        q, kk, vv, gate = ((u @ p[n].flatten(1)).unflatten(-1, p[n].shape[1:]) for n in ("q_w", "k_w", "v_w", "g_w"))
        alpha = F.logsigmoid((u @ p["gate_down"] @ p["gate_up"].flatten(1)).unflatten(-1, (h, k)) + p["gate_b"])
        return q / math.sqrt(k), kk, vv, alpha / GATE_NORMALIZER, gate

    def run_output(self, run: int, o: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        p = self.run_parameters(run)
        return rms_norm(o, p["norm_w"], o.shape[-1], gate).flatten(-2) @ p["o_w"].flatten(0, 1)

    def reference(self, run: int, u: torch.Tensor) -> torch.Tensor:
        """The recurrence token by token: ``S ← diag(e^{α_t}) S + k_t v_tᵀ``, ``o_t = Sᵀ q_t / √K``."""
        q, k, v, alpha, gate = self.run_inputs(run, u)  # (B, N, H, ·)
        state = u.new_zeros(u.shape[0], k.shape[2], k.shape[3], v.shape[3])  # (B, H, K, V)
        outputs = []
        for t in range(u.shape[1]):
            state = torch.exp(alpha[:, t])[..., None] * state + k[:, t, :, :, None] * v[:, t, :, None, :]
            outputs.append((state * q[:, t, :, :, None]).sum(-2))
        return self.run_output(run, torch.stack(outputs, 1), gate)

    def step(self, run: int, u_t: torch.Tensor, state: dict[str, torch.Tensor] | None):
        q, k, v, alpha, gate = self.run_inputs(run, u_t)  # (B, H, ·)
        memory = (
            torch.exp(alpha)[..., None] * (0 if state is None else state["memory"]) + k[..., None] * v[..., None, :]
        )
        return self.run_output(run, (memory * q[..., None]).sum(-2), gate), {"memory": memory}
