"""Gated DeltaNet: DeltaNet with a decay per head and an output gate, as fla's ``GatedDeltaNet`` layer (defaults).

Glossary (one run; ``u (B, N, d)``; the knobs ``H`` heads of key width ``K``; value width ``V = 2K``, fla's
``expand_v = 2``); everything of :mod:`.delta_net` (``q̂, k̂, v, β``, the short convolutions) and::

    g_t = −e^{A_log} · softplus(u_t W_a + b_Δ)                 one log decay per head (Mamba-2's parameterisation)
    S_t = e^{g_t} S_{t−1} + β_t k̂_t (v_t − e^{g_t} S_{t−1}ᵀ k̂_t)ᵀ
    o_t = S_tᵀ q̂_t
    out = (RMSNorm(o) ⊙ SiLU(u W_g)) W_o                        fla's FusedRMSNormGated (use_gate=True, swish)

Parameters as fla's layer: ``A = e^{A_log} ~ U(0, 16)``, ``softplus(b_Δ)`` log-uniform in ``[1e-3, 1e-1]``;
projections ``N(0, 0.02²)``, convolutions ``U(±1/√4)``, norm weight 1 (see :mod:`.delta_net`).

Fast path: fla's ``chunk_gated_delta_rule`` (half precision; :mod:`mqarkit.gpu.frontier.kernels.fla_delta`; where fla
refuses the gated part of its backward, Hopper with triton 3.4–3.7.1, with our forms of two of its backward kernels: see
``delta_rule_available``; ``MQARKIT_FLA_GATED_DELTA_RULE=0`` takes the plain-torch form there, ``=dplr``, a trial, fla's
DPLR op with the same ``a, b`` as below), the runs folded into the batch axis, ``g`` in float32 computed here (fla's
layer fuses it into the kernel, ``use_gate_in_kernel``: the same formula); elsewhere the parallel form of
:mod:`.recurrences` (``g`` per head, ``a = k̂``, ``b = −β e^{g} k̂``, key ``β k̂``). Recurrent mode carries ``S`` and
the convolutions' last 3 inputs: ``H·K·V + 3·(2·H·K + H·V)`` numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mqarkit.gpu.frontier.families.delta_net import DeltaNet
from mqarkit.gpu.frontier.families.heads import decay_projection, init_dt_bias, rms_norm
from mqarkit.gpu.frontier.ops import init_normal, linear

A_MAX = 16.0  # A = e^{A_log} ~ U(0, A_MAX) (fla's GatedDeltaNet)


class GatedDeltaNet(DeltaNet):
    name = "gated_delta_net"
    VALUE_EXPAND = 2  # fla's expand_v
    gated = True

    @classmethod
    def init_gates(cls, d: int, h: int, v: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {
            "a_w": init_normal((d, h), generator),
            "a_log": torch.log(torch.rand(h, generator=generator) * A_MAX),
            "dt_b": init_dt_bias(h, generator),
            "g_w": init_normal((d, h, v), generator),
        }

    def log_decay(self, u: torch.Tensor) -> torch.Tensor:
        a = decay_projection(u, self.masked("a_w"))  # float32 even under autocast
        acc = a.dtype
        dt = F.softplus(a + self.masked("dt_b").to(acc)[:, None, None, :])
        return -torch.exp(self.masked("a_log").to(acc))[:, None, None, :] * dt

    def output(self, o: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        gate = linear(u, self.masked("g_w").flatten(2)).unflatten(-1, self.g_w.shape[-2:])
        return self.head_norm(o, gate)

    def run_log_decay(self, p: dict[str, torch.Tensor], u: torch.Tensor) -> torch.Tensor:
        return -torch.exp(p["a_log"]) * F.softplus(u @ p["a_w"] + p["dt_b"])

    def run_output(self, p: dict[str, torch.Tensor], o: torch.Tensor, u: torch.Tensor, run: int) -> torch.Tensor:
        gate = (u @ p["g_w"].flatten(1)).unflatten(-1, p["g_w"].shape[1:])
        v = self.widths(self.run_knobs[run])[2]
        return rms_norm(o, p["norm_w"], v, gate).flatten(-2) @ p["o_w"].flatten(0, 1)
