"""RWKV-7 time mixing ("Goose"), as fla's ``RWKV7Attention`` layer (the first RWKV-7 layer of a model: no value
residual).

Glossary (one run; ``u (B, N, d)``; the knob ``K``, the head width; ``H = d / K`` heads, value width ``V = K``;
``δ_t = u_{t−1} − u_t`` the token shift, ``u_{−1} = 0``)::

    x^□_t = u_t + μ_□ ⊙ δ_t                        □ ∈ {r, w, k, v, a, g}: six mixes of the token and its predecessor
    r, k, v = x^r W_r, x^k W_k, x^v W_v            per head (K,)
    w_t = −e^{−1/2} σ(tanh(x^w W_w¹) W_w² + w₀)    log decay per key channel, in (−e^{−1/2}, 0)
    α_t = σ(x^a W_a¹ W_a² + a₀)                     in-context learning rate per key channel
    γ_t = σ(x^g W_g¹) W_g²                          output gate
    κ̂_t = normalize(k_t ⊙ κ)  (per head),  k̃_t = k_t ⊙ (1 + (α_t − 1) ⊙ κ_a)
    S_t = diag(e^{w_t}) S_{t−1} − (κ̂_t ⊙ α_t)(κ̂_tᵀ S_{t−1}) + k̃_t v_tᵀ          K × V per head, S_{−1} = 0
    o_t = S_tᵀ r_t                                                               (scale 1)
    out = ((GroupNorm_H(o) + (Σ_c r ⊙ k̃ ⊙ ρ) v) ⊙ γ) W_o

``GroupNorm_H``: one group per head, eps ``K · 1e-5``, affine. In fla's ``chunk_rwkv7`` terms: ``a = −κ̂``,
``b = κ̂ ⊙ α``. fla's layer with ``fuse_norm=False``; ``layer_idx = 0`` of a 2-layer model (the hybrid's mixer is
the model's only RWKV-7 layer, so there is no value residual ``v_first`` and no ``W_v`` LoRA), so its "fancy"
initialisation at ``layer_idx = 0``: ``μ_□ = 1 − (c/d)^{e_□}``, ``κ = 0.71 − 0.1·lin``, ``κ_a = 1.02``,
``ρ = −0.04``, ``w₀ = −6 + 6c/(d−1) + 0.5 + 2.5·zig``, ``a₀ = −0.19 + 0.3·zig + 0.4·lin``, GroupNorm weight
``(1/2)^{0.7}`` and bias 0; the low-rank widths by fla's formulas. The linear maps (``W_r, W_k, W_v, W_o`` and the
LoRA factors) are ``N(0, 0.02²)``: the reference harness re-initialises every ``nn.Linear`` so (fla's own orthogonal
and zero initialisations of them do not survive it).

Fast path: on CUDA with fla, under autocast (half precision), fla's ``chunk_rwkv7`` with the runs folded into the
batch axis (:mod:`mqarkit.gpu.frontier.kernels.fla_rwkv`); elsewhere the parallel form of :mod:`.recurrences`
(decay per key channel, ``a = −κ̂``, ``b = κ̂ ⊙ α``). Runs may have different ``K`` (so ``H``): every head-shaped
parameter is stored ``(…, H, K)`` and padded. Recurrent mode carries ``S`` and the previous token: ``d·K + d``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from mqarkit.gpu.frontier.families.heads import NORM_EPS, accumulation_dtype, decay_projection, per_run
from mqarkit.gpu.frontier.families.recurrences import linear_recurrence
from mqarkit.gpu.frontier.families.rwkv4 import previous_tokens
from mqarkit.gpu.frontier.kernels.fla_rwkv import (
    DPLR_FORWARD_PAIR_TENSORS,
    RWKV7_CHUNK,
    RWKV7_LOG_DECAY_BOUND,
    fla_rwkv7,
    rwkv7_available,
)
from mqarkit.gpu.frontier.ops import init_normal, linear
from mqarkit.gpu.frontier.protocol import Knob, KnobValue, StackedMixer

MIXES = ("r", "w", "k", "v", "a", "g")  # the six token-shift mixes, in fla's order
MIX_EXPONENTS = (0.2, 0.9, 0.7, 0.7, 0.9, 0.2)  # μ_□ = 1 − (c/d)^e at layer 0
LOW_RANK_MIN = 32


def low_rank_widths(d_model: int, head_dim: int) -> tuple[int, int, int]:
    """fla's default LoRA widths ``(decay, a, gate)``: ``max(32, round(2.5√d·K/64 / 32)·32)`` twice, then
    ``max(32, round(5√d / 32)·32)``."""
    factor = head_dim / 64
    decay = max(LOW_RANK_MIN, int(round((2.5 * d_model**0.5) * factor / 32) * 32))
    gate = max(LOW_RANK_MIN, int(round((5 * d_model**0.5) / 32) * 32))
    return decay, decay, gate


def group_norm(o: torch.Tensor, w: torch.Tensor, b: torch.Tensor, width: torch.Tensor, eps: torch.Tensor):
    """GroupNorm with one group per head over its first ``width`` channels (the rest is padding, left 0 by ``w, b``).

    ``o (R, B, N, H, V)``, ``w, b (R, 1, 1, H, V)``, ``width, eps (R, 1, 1, 1, 1)``; float32 at least.
    """
    acc = accumulation_dtype(o)
    o = o.to(acc)
    real = (torch.arange(o.shape[-1], device=o.device) < width).to(acc)  # (R, 1, 1, 1, V)
    mean = (o * real).sum(-1, keepdim=True) / width
    centred = (o - mean) * real
    var = centred.square().sum(-1, keepdim=True) / width
    return centred * torch.rsqrt(var + eps) * w.to(acc) + b.to(acc)


class RWKV7(StackedMixer):
    name = "rwkv7"
    knobs = (Knob("head_dim", "hd", minimum=2, help="K, the width of each head (H = d_model / K heads)"),)

    @classmethod
    def check(cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue]) -> None:
        k = int(knobs["head_dim"])
        if d_model % k:
            raise ValueError(f"head_dim={k}: rwkv7 needs d_model={d_model} divisible by head_dim")

    @classmethod
    def init_run(
        cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        d, k = d_model, int(knobs["head_dim"])
        h = d // k
        lw, la, lg = low_rank_widths(d, k)
        c = torch.arange(d, dtype=torch.float64)
        lin = c / (d - 1) - 0.5
        zig = ((c % k) - (k - 1) / 2) / ((k - 1) / 2)
        zig = zig * zig.abs()
        heads = lambda t: t.float().reshape(h, k)  # noqa: E731  (key channel c = head · K + i)
        p = {"mix": torch.stack([1 - (c / d) ** e for e in MIX_EXPONENTS]).float()}  # (6, d)
        p |= {"kappa": heads(0.71 - 0.1 * lin), "kappa_a": torch.full((h, k), 1.02), "rho": torch.full((h, k), -0.04)}
        p |= {name: init_normal((d, h, k), generator) for name in ("r_w", "k_w", "v_w")}
        p["w_down"], p["w_up"] = init_normal((d, lw), generator), init_normal((lw, h, k), generator)
        p["w_b"] = heads(-6 + 6 * c / (d - 1) + 0.5 + 2.5 * zig)
        p["a_down"], p["a_up"] = init_normal((d, la), generator), init_normal((la, h, k), generator)
        p["a_b"] = heads(-0.19 + 0.3 * zig + 0.4 * lin)
        p["g_down"], p["g_up"] = init_normal((d, lg), generator), init_normal((lg, h, k), generator)
        p["norm_w"], p["norm_b"] = torch.full((h, k), 0.5**0.7), torch.zeros(h, k)
        p["o_w"] = init_normal((h, k, d), generator)
        return p

    @classmethod
    def state_formula(cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], seq_len: int) -> int:
        return d_model * int(knobs["head_dim"]) + d_model

    def padded_widths(self) -> tuple[int, int]:
        return tuple(self.r_w.shape[-2:])

    def intermediate_elements(self, seq_len: int) -> int:
        h, k = self.padded_widths()
        if rwkv7_available(self.r_w.device, torch.bfloat16, k, k):  # training runs under autocast
            # fla's chunk tensors, all held at once: counting one of them let an evaluation at N = 1024 fill the budget
            # with each (d = 128 ran out of an H100's memory, fifteenth session)
            return self.runs * seq_len * h * max(k, RWKV7_CHUNK) * DPLR_FORWARD_PAIR_TENSORS
        return self.runs * h * seq_len * seq_len * k * 4  # the parallel form's per-channel decays, four pair weights

    # ---------------------------------------------------------------- fast path (stacked)
    def forward(self, u: torch.Tensor) -> torch.Tensor:
        h, k = self.padded_widths()
        mix = self.mix[:, :, None, None, :]  # (R, 6, 1, 1, d)
        xr, xw, xk, xv, xa, xg = (u[:, None] + (previous_tokens(u) - u)[:, None] * mix).unbind(1)
        heads = lambda t: t.unflatten(-1, (h, k))  # noqa: E731
        r = heads(linear(xr, self.masked("r_w").flatten(2)))
        work, acc = r.dtype, accumulation_dtype(r)
        kk = heads(linear(xk, self.masked("k_w").flatten(2))).to(acc)
        v = heads(linear(xv, self.masked("v_w").flatten(2))).to(acc)
        w = decay_projection(torch.tanh(decay_projection(xw, self.masked("w_down"))), self.masked("w_up").flatten(2))
        w = RWKV7_LOG_DECAY_BOUND * torch.sigmoid(heads(w) + self.masked("w_b").to(acc)[:, None, None])
        a = linear(linear(xa, self.masked("a_down")), self.masked("a_up").flatten(2)).to(acc)
        a = torch.sigmoid(heads(a) + self.masked("a_b").to(acc)[:, None, None])
        gate = heads(linear(torch.sigmoid(linear(xg, self.masked("g_down"))), self.masked("g_up").flatten(2)))
        kappa = F.normalize(kk * self.masked("kappa").to(acc)[:, None, None], dim=-1)
        kk = kk * (1 + (a - 1) * self.masked("kappa_a").to(acc)[:, None, None])
        if rwkv7_available(u.device, work, k, k):
            o = fla_rwkv7(r, w, kk, v, -kappa, kappa * a)
        else:  # the parallel form, heads before positions
            first = [t.transpose(2, 3) for t in (r, kk, v, w, -kappa, kappa * a)]
            o = linear_recurrence(*first[:4], a=first[4], b=first[5]).transpose(2, 3)
        widths = per_run(self.knob_tensor("head_dim").to(acc), o)
        o = group_norm(
            o, self.masked("norm_w")[:, None, None], self.masked("norm_b")[:, None, None], widths, widths * NORM_EPS
        )
        bonus = (r.to(acc) * kk * self.masked("rho").to(acc)[:, None, None]).sum(-1, keepdim=True) * v
        return linear(((o + bonus) * gate.to(acc)).flatten(3).to(work), self.masked("o_w").flatten(1, 2))

    # ---------------------------------------------------------------- naive reference and recurrent mode (one run)
    def run_inputs(self, run: int, u: torch.Tensor, prev: torch.Tensor):
        """One run: ``u_t, u_{t−1} (..., d)`` -> ``r, w, k̃, v, κ̂, α, γ (..., H, K)``."""
        p = self.run_parameters(run)
        k = int(self.run_knobs[run]["head_dim"])
        heads = lambda t: t.unflatten(-1, (self.d // k, k))  # noqa: E731
        xr, xw, xk, xv, xa, xg = (u + (prev - u) * p["mix"][i] for i in range(len(MIXES)))
        r, kk, v = (heads(x @ p[n].flatten(1)) for x, n in ((xr, "r_w"), (xk, "k_w"), (xv, "v_w")))
        w = -math.exp(-0.5) * torch.sigmoid(heads(torch.tanh(xw @ p["w_down"]) @ p["w_up"].flatten(1)) + p["w_b"])
        a = torch.sigmoid(heads(xa @ p["a_down"] @ p["a_up"].flatten(1)) + p["a_b"])
        gate = heads(torch.sigmoid(xg @ p["g_down"]) @ p["g_up"].flatten(1))
        kappa = F.normalize(kk * p["kappa"], dim=-1)
        return r, w, kk * (1 + (a - 1) * p["kappa_a"]), v, kappa, a, gate

    def run_output(self, run: int, o: torch.Tensor, r, k, v, gate) -> torch.Tensor:
        """``o (..., H, K)`` -> ``out (..., d)``: the per-head GroupNorm, the ``r·k̃`` bonus, the gate, ``W_o``."""
        p = self.run_parameters(run)
        h, k_width = o.shape[-2:]
        normed = F.group_norm(
            o.reshape(-1, h * k_width), h, p["norm_w"].flatten(), p["norm_b"].flatten(), eps=k_width * NORM_EPS
        )
        bonus = (r * k * p["rho"]).sum(-1, keepdim=True) * v
        return ((normed.reshape(o.shape) + bonus) * gate).flatten(-2) @ p["o_w"].flatten(0, 1)

    @staticmethod
    def update(state, r, w, k, v, kappa, a):
        """One token: ``S ← diag(e^{w}) S − (κ̂ ⊙ α)(κ̂ᵀ S) + k̃ vᵀ``, ``o = Sᵀ r``; ``state (B, H, K, V)``."""
        read = (kappa[..., None] * state).sum(-2, keepdim=True)  # κ̂ᵀ S, (B, H, 1, V)
        state = torch.exp(w)[..., None] * state - (kappa * a)[..., None] * read + k[..., None] * v[..., None, :]
        return state, (state * r[..., None]).sum(-2)

    def reference(self, run: int, u: torch.Tensor) -> torch.Tensor:
        r, w, k, v, kappa, a, gate = self.run_inputs(run, u, previous_tokens(u))  # (B, N, H, K)
        state = u.new_zeros(u.shape[0], *k.shape[2:], v.shape[-1])
        outputs = []
        for t in range(u.shape[1]):
            state, o_t = self.update(state, r[:, t], w[:, t], k[:, t], v[:, t], kappa[:, t], a[:, t])
            outputs.append(o_t)
        return self.run_output(run, torch.stack(outputs, 1), r, k, v, gate)

    def step(self, run: int, u_t: torch.Tensor, state: dict[str, torch.Tensor] | None):
        prev = torch.zeros_like(u_t) if state is None else state["shift"]
        r, w, k, v, kappa, a, gate = self.run_inputs(run, u_t, prev)  # (B, H, K)
        memory = u_t.new_zeros(*k.shape, v.shape[-1]) if state is None else state["memory"]
        memory, o = self.update(memory, r, w, k, v, kappa, a)
        return self.run_output(run, o, r, k, v, gate), {"shift": u_t, "memory": memory}
