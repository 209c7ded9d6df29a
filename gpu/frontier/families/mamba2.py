"""Mamba-2 (SSD): a selective state-space mixer with one scalar decay per head, as the reference's ``Mamba2`` layer.

Glossary (one run; ``u (B, N, d)``; the knob ``n``, the state size per channel; ``d_i = 2d`` inner channels in
``H = d_i / 64`` heads of ``P = 64``; ``B_t, C_t`` shared by the heads, ``ngroups = 1``)::

    z, x, B, C, Δ̃ = u W_z, u W_x, u W_B, u W_C, u W_Δ          one input projection, split (d_i, d_i, n, n, H)
    x, B, C = SiLU(conv₄([x, B, C]) + b_conv)                   causal depthwise, 4 taps, with bias, per channel
    Δ_t     = softplus(Δ̃_t + b_Δ),   A = −e^{A_log}             one step size and one decay rate per head
    h_t     = e^{Δ_t A} h_{t−1} + Δ_t x_t B_tᵀ                   P × n per head, h_{−1} = 0
    y_t     = h_t C_t + D x_t
    out     = RMSNorm(y ⊙ SiLU(z)) W_o                           gated norm over d_i (norm_before_gate = False)

Parameters as the reference layer (``Mamba2`` of mamba_ssm, which [Z] trains): ``A ~ U(1, 16)``, ``softplus(b_Δ)``
log-uniform in ``[1e-3, 1e-1]``, ``D = 1``, the conv as PyTorch's ``Conv1d`` default ``U(±1/√4)`` (weights and bias),
the norm weight 1; the projections ``N(0, 0.02²)`` (the reference harness's rule for every linear map).

In fla's terms this is simple gated linear attention per head: query ``C_t``, key ``B_t``, value ``Δ_t x_t``, log decay
``g_t = Δ_t A``, scale 1 (``S_t = h_tᵀ``, ``n × P``). Fast path: on CUDA with fla, in half precision (training under
autocast), ``chunk_simple_gla`` with the runs folded into the batch axis (:mod:`mqarkit.gpu.frontier.kernels.fla_gla`;
where fla refuses the gated part of its backward, Hopper with triton 3.4–3.7.1, that part is our torch form,
:mod:`mqarkit.gpu.frontier.kernels.fla_dqkwg`); elsewhere (float32, the CPU) the chunked form of :mod:`.recurrences`.
(``chunk_gla`` with the head's decay on every key channel computes the same recurrence and is served on Hopper, but as
Mamba-2's path it failed the float32 family test on an H100 (docs/results/frontier_protocol.md, sixth session), so it is
not used.) Runs may have different ``n``: ``W_B, W_C`` and their filters are padded and masked, so padded state rows
stay 0. Recurrent mode carries ``h`` and the conv's last 3 inputs: ``d_i·n + 3·(d_i + 2n)`` numbers, whatever ``N``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from mqarkit.gpu.frontier.families.heads import NORM_EPS, accumulation_dtype, decay_projection, init_dt_bias
from mqarkit.gpu.frontier.families.recurrences import linear_recurrence
from mqarkit.gpu.frontier.kernels.fla_common import HALF
from mqarkit.gpu.frontier.kernels.fla_dqkwg import gated_op_elements
from mqarkit.gpu.frontier.kernels.fla_gla import fla_simple_gla, simple_gla_available
from mqarkit.gpu.frontier.ops import causal_depthwise_conv, fused_projection, init_conv, init_normal, linear
from mqarkit.gpu.frontier.protocol import Knob, KnobValue, StackedMixer

EXPAND = 2  # d_i = EXPAND · d
HEAD_DIM = 64  # P, the reference layer's headdim
CONV_TAPS = 4  # the reference layer's d_conv
A_RANGE = (1.0, 16.0)  # A = e^{A_log} ~ U(A_RANGE)


def gated_rms_norm(y: torch.Tensor, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``RMSNorm(y ⊙ SiLU(z)) · w`` over the last axis (eps ``1e-5``), float32 at least."""
    acc = accumulation_dtype(y)
    x = y.to(acc) * F.silu(z.to(acc))
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + NORM_EPS) * w.to(acc)


class Mamba2(StackedMixer):
    name = "mamba2"
    knobs = (Knob("d_state", "n", help="n, the state size of each channel"),)

    @classmethod
    def check(cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue]) -> None:
        if (EXPAND * d_model) % HEAD_DIM:
            raise ValueError(f"d_model={d_model}: mamba2 needs {EXPAND}*d_model divisible by its head size {HEAD_DIM}")

    @classmethod
    def init_run(
        cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        d, n = d_model, int(knobs["d_state"])
        di = EXPAND * d
        h = di // HEAD_DIM
        p = {name: init_normal((d, width), generator) for name, width in (("z_w", di), ("x_w", di))}
        p |= {"b_w": init_normal((d, n), generator), "c_w": init_normal((d, n), generator)}
        p["dt_w"] = init_normal((d, h), generator)
        for name, width in (("x", di), ("b", n), ("c", n)):  # the conv over [x, B, C]: weight, then bias
            p[f"{name}_conv"] = init_conv((width, CONV_TAPS), generator)
        for name, width in (("x", di), ("b", n), ("c", n)):
            p[f"{name}_conv_b"] = (torch.rand(width, generator=generator) * 2 - 1) / math.sqrt(CONV_TAPS)  # as Conv1d
        p["dt_b"] = init_dt_bias(h, generator)
        p["a_log"] = torch.log(torch.rand(h, generator=generator) * (A_RANGE[1] - A_RANGE[0]) + A_RANGE[0])
        p["skip"] = torch.ones(h)  # D
        p["norm_w"] = torch.ones(di)
        p["o_w"] = init_normal((di, d), generator)
        return p

    @classmethod
    def state_formula(cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], seq_len: int) -> int:
        di, n = EXPAND * d_model, int(knobs["d_state"])
        return di * n + (CONV_TAPS - 1) * (di + 2 * n)

    def heads(self) -> int:
        return EXPAND * self.d // HEAD_DIM

    def fla_serves(self, device: torch.device, dtype: torch.dtype) -> bool:
        """Whether fla's ``chunk_simple_gla`` computes the recurrence for inputs of ``dtype`` on ``device``: half
        precision only (for float32 inputs fla's products run in tf32), else the plain-torch chunked form."""
        return dtype in HALF and simple_gla_available(device, self.b_w.shape[-1], HEAD_DIM)

    def intermediate_elements(self, seq_len: int) -> int:
        if self.fla_serves(self.b_w.device, torch.bfloat16):  # training runs under autocast
            return gated_op_elements(self.runs * seq_len * EXPAND * self.d, self.runs, seq_len, self.heads())
        return self.runs * self.heads() * seq_len * seq_len

    # ---------------------------------------------------------------- fast path (stacked)
    def forward(self, u: torch.Tensor) -> torch.Tensor:
        r, b, n, _ = u.shape
        h, ns = self.heads(), self.b_w.shape[-1]
        weights = [self.z_w, self.x_w, self.masked("b_w"), self.masked("c_w")]
        z, x, bm, cm = fused_projection(u, weights)  # (R, B, N, d_i | n)
        work, acc = z.dtype, accumulation_dtype(z)
        x = F.silu(causal_depthwise_conv(x, self.x_conv, self.x_conv_b)).to(acc)
        bm = F.silu(causal_depthwise_conv(bm, self.masked("b_conv"), self.masked("b_conv_b"))).to(acc)
        cm = F.silu(causal_depthwise_conv(cm, self.masked("c_conv"), self.masked("c_conv_b"))).to(acc)
        dt = F.softplus(decay_projection(u, self.dt_w) + self.dt_b.to(acc)[:, None, None, :])  # (R, B, N, H)
        log_decay = dt * -torch.exp(self.a_log.to(acc))[:, None, None, :]
        xh = x.unflatten(-1, (h, HEAD_DIM))  # (R, B, N, H, P)
        values = xh * dt[..., None]
        if self.fla_serves(u.device, work):
            heads = (r, b, n, h, ns)
            o = fla_simple_gla(
                cm[:, :, :, None].expand(heads).to(work), bm[:, :, :, None].expand(heads), values, log_decay
            )
        else:  # the parallel form, heads before positions; B and C broadcast over the heads
            q, k = cm[:, :, None], bm[:, :, None]  # (R, B, 1, N, n)
            o = linear_recurrence(q, k, values.transpose(2, 3), log_decay.transpose(2, 3)[..., None]).transpose(2, 3)
        y = o.to(acc) + xh * self.skip.to(acc)[:, None, None, :, None]
        return linear(gated_rms_norm(y.flatten(3), z, self.norm_w[:, None, None]).to(work), self.o_w)

    # ---------------------------------------------------------------- naive reference and recurrent mode (one run)
    def run_inputs(self, run: int, u: torch.Tensor, xbc: torch.Tensor):
        """One run: ``u (..., d)`` and the convolved ``xbc (..., d_i + 2n)`` (before SiLU) -> ``x (..., H, P)``,
        ``B, C (..., n)``, ``Δ (..., H)``, ``A (H,)``."""
        p = self.run_parameters(run)
        n = p["b_w"].shape[-1]
        x, bm, cm = F.silu(xbc).split([EXPAND * self.d, n, n], dim=-1)
        dt = F.softplus(u @ p["dt_w"] + p["dt_b"])
        return x.unflatten(-1, (self.heads(), HEAD_DIM)), bm, cm, dt, -torch.exp(p["a_log"])

    def run_conv(self, run: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The conv over ``[x, B, C]`` of one run: filter ``(d_i + 2n, taps)`` and bias ``(d_i + 2n,)``."""
        p = self.run_parameters(run)
        return torch.cat([p[f"{c}_conv"] for c in "xbc"]), torch.cat([p[f"{c}_conv_b"] for c in "xbc"])

    def run_output(self, run: int, y: torch.Tensor, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``y = hC (..., H, P)`` -> ``out (..., d)``: ``+ D x``, the gated norm, ``W_o``."""
        p = self.run_parameters(run)
        y = (y + x * p["skip"][:, None]).flatten(-2)
        return gated_rms_norm(y, u @ p["z_w"], p["norm_w"]) @ p["o_w"]

    def run_projection(self, run: int, u: torch.Tensor) -> torch.Tensor:
        """``[x, B, C]`` before the conv: ``u (..., d)`` -> ``(..., d_i + 2n)``."""
        p = self.run_parameters(run)
        return u @ torch.cat([p["x_w"], p["b_w"], p["c_w"]], dim=-1)

    def reference(self, run: int, u: torch.Tensor) -> torch.Tensor:
        """The recurrence token by token: ``h ← e^{Δ_t A} h + Δ_t x_t B_tᵀ``, ``y_t = h C_t + D x_t``."""
        w, bias = self.run_conv(run)
        xbc, n = self.run_projection(run, u), u.shape[1]
        xbc = sum(F.pad(xbc, (0, 0, s, 0))[:, :n] * w[:, s] for s in range(CONV_TAPS)) + bias
        x, bm, cm, dt, a = self.run_inputs(run, u, xbc)
        h = u.new_zeros(u.shape[0], self.heads(), HEAD_DIM, bm.shape[-1])  # (B, H, P, n)
        ys = []
        for t in range(n):
            h = (
                torch.exp(dt[:, t] * a)[..., None, None] * h
                + (dt[:, t, :, None] * x[:, t])[..., None] * bm[:, t, None, None]
            )
            ys.append((h * cm[:, t, None, None]).sum(-1))
        return self.run_output(run, torch.stack(ys, 1), x, u)

    def step(self, run: int, u_t: torch.Tensor, state: dict[str, torch.Tensor] | None):
        w, bias = self.run_conv(run)
        xbc_t = self.run_projection(run, u_t)  # (B, d_i + 2n)
        cache = (
            xbc_t.new_zeros(xbc_t.shape[0], CONV_TAPS - 1, xbc_t.shape[-1]) if state is None else state["conv_cache"]
        )
        window = torch.cat([cache, xbc_t[:, None]], dim=1)  # (B, taps, ·): oldest first, the current input last
        x, bm, cm, dt, a = self.run_inputs(run, u_t, (window * w.T.flip(0)).sum(1) + bias)
        h = 0 if state is None else state["ssm"]
        h = torch.exp(dt * a)[..., None, None] * h + (dt[..., None] * x)[..., None] * bm[:, None, None]
        y = (h * cm[:, None, None]).sum(-1)  # (B, H, P)
        return self.run_output(run, y, x, u_t), {"ssm": h, "conv_cache": window[:, 1:]}
