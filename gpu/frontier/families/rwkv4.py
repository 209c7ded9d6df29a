"""RWKV-4 time mixing, as the [Z] reference harness's ``RWKVTimeMixer`` (zoology ``mixers/rwkv.py``).

Glossary (one run; ``u (B, N, d)``; ``x_{t−1}`` the previous token's input, 0 before the first; per channel ``c``)::

    x^k_t = μ_k ⊙ u_t + (1 − μ_k) ⊙ u_{t−1}          likewise x^v (μ_v) and x^r (μ_r): the token shift
    k, v, r = x^k W_k, x^v W_v, x^r W_r              d × d each, no bias
    w = −e^{time_decay},   u_b = time_first          one decay and one bonus per channel
    wkv_t = (Σ_{s<t} e^{(t−1−s) w + k_s} v_s + e^{u_b + k_t} v_t) / (Σ_{s<t} e^{(t−1−s) w + k_s} + e^{u_b + k_t})
    out = (σ(r) ⊙ wkv) W_o

``wkv_t`` is a softmax over ``s ≤ t`` of the logits ``k_s + (t−1−s) w`` (``u_b + k_t`` for ``s = t``), channel by
channel: the parallel form below. Recurrently (the reference CUDA kernel's stable form, and fla's) each channel carries
the numerator ``α``, the denominator ``β`` and their common log-scale ``ε`` (both divided by ``e^{ε}``)::

    τ = max(ε, u_b + k_t):  wkv_t = (e^{ε−τ} α + e^{u_b+k_t−τ} v_t) / (e^{ε−τ} β + e^{u_b+k_t−τ})
    ε' = max(ε + w, k_t):   α ← e^{ε+w−ε'} α + e^{k_t−ε'} v_t,   β ← e^{ε+w−ε'} β + e^{k_t−ε'},   ε ← ε'

from ``α = β = 0``, ``ε = −1e38``. Recurrent mode carries ``α, β, ε`` and the shifted token: ``4·d`` numbers.

Parameters as the reference harness builds layer ``ℓ`` of the [Z] models (``layer_idx = ℓ``, ``n_layer = 12``, the
mixer's default; ``ℓ = 1`` in the hybrid, ``ℓ = 0`` and ``1`` under ``layers = "mixer"``, hence ``layer_init``): the
deterministic "fancy" ``time_decay``, ``time_first`` and ``μ``, which depend on ``ℓ``; the four projections
``N(0, 0.02²)`` (the harness's ``_init_weights`` for every ``nn.Linear``). No knobs: the state is ``4·d``.

Fast path: on CUDA with fla, ``fused_recurrent_rwkv4`` with the runs side by side in the channel axis
(:mod:`mqarkit.gpu.frontier.kernels.fla_rwkv`); elsewhere the parallel softmax form (``(N, N, d)`` logits per
example: the CPU path).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from mqarkit.gpu.frontier.families.heads import accumulation_dtype
from mqarkit.gpu.frontier.kernels.fla_rwkv import RWKV4_START_LOG_SCALE, fla_rwkv4, rwkv4_available
from mqarkit.gpu.frontier.ops import init_normal, linear
from mqarkit.gpu.frontier.protocol import KnobValue, StackedMixer

LAYERS = 12  # RWKVTimeMixer's default n_layer (the reference harness does not pass it)


def previous_tokens(u: torch.Tensor) -> torch.Tensor:
    """``u_{t−1}`` (0 for ``t = 0``) along the sequence axis ``-2`` of ``u (..., N, d)``."""
    return F.pad(u, (0, 0, 1, 0))[..., :-1, :]


def wkv_parallel(time_decay: torch.Tensor, time_first: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
    """``wkv`` of every position at once, as a per-channel softmax over ``s ≤ t``; float32 at least.

    ``time_decay, time_first (R, d)``, ``k, v (R, B, N, d)`` -> ``(R, B, N, d)``.
    """
    with torch.autocast(k.device.type, enabled=False):  # float32 logits, softmax and weighted sum
        return _wkv_parallel(time_decay, time_first, k, v)


def _wkv_parallel(time_decay, time_first, k, v) -> torch.Tensor:
    acc = accumulation_dtype(k)
    k, v, n = k.to(acc), v.to(acc), k.shape[2]
    w = -torch.exp(time_decay.to(acc))[:, None, None, None, :]  # (R, 1, 1, 1, d)
    pos = torch.arange(n, device=k.device)
    lag = (pos[:, None] - 1 - pos[None, :]).to(acc)  # (t, s): t − 1 − s
    logits = k[:, :, None] + lag[:, :, None] * w  # (R, B, t, s, d)
    bonus = (time_first.to(acc)[:, None, None, :] + k)[:, :, :, None]  # (R, B, t, 1, d): u_b + k_t at s = t
    diagonal = (pos[:, None] == pos[None, :])[:, :, None]
    logits = torch.where(diagonal, bonus, logits).masked_fill((pos[None, :] > pos[:, None])[:, :, None], float("-inf"))
    return torch.einsum("rbtsc,rbsc->rbtc", torch.softmax(logits, dim=3), v)


class RWKV4(StackedMixer):
    name = "rwkv4"
    layer_init = True  # the "fancy" initialisation depends on the layer index

    @classmethod
    def check(cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue]) -> None:
        if d_model < 2:
            raise ValueError(f"d_model={d_model}: rwkv4 needs d_model >= 2 (its decay initialisation spans d − 1)")

    @classmethod
    def init_run(
        cls,
        d_model: int,
        max_len: int,
        knobs: Mapping[str, KnobValue],
        generator: torch.Generator,
        layer: int = 1,
    ) -> dict[str, torch.Tensor]:
        d = d_model
        ratio_0_to_1, ratio_1_to_almost0 = layer / (LAYERS - 1), 1.0 - layer / LAYERS
        c = torch.arange(d, dtype=torch.float64)
        zigzag = torch.tensor([(i + 1) % 3 - 1 for i in range(d)], dtype=torch.float64) * 0.5
        mix = c / d
        p = {
            "time_decay": -5 + 8 * (c / (d - 1)) ** (0.7 + 1.3 * ratio_0_to_1),
            "time_first": torch.full((d,), math.log(0.3), dtype=torch.float64) + zigzag,
            "mix_k": mix**ratio_1_to_almost0,
            "mix_v": mix**ratio_1_to_almost0 + 0.3 * ratio_0_to_1,
            "mix_r": mix ** (0.5 * ratio_1_to_almost0),
        }
        p = {name: t.float() for name, t in p.items()}
        for name in ("k_w", "v_w", "r_w", "o_w"):
            p[name] = init_normal((d, d), generator)
        return p

    @classmethod
    def state_formula(cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], seq_len: int) -> int:
        return 4 * d_model

    def intermediate_elements(self, seq_len: int) -> int:
        if rwkv4_available(self.k_w.device):
            return self.runs * seq_len * self.d * 3  # fla keeps α, β, ε of every token for its backward
        return self.runs * seq_len * seq_len * self.d

    # ---------------------------------------------------------------- fast path (stacked)
    def forward(self, u: torch.Tensor) -> torch.Tensor:
        prev = previous_tokens(u)
        mixed = [u * m[:, None, None] + prev * (1 - m[:, None, None]) for m in (self.mix_k, self.mix_v, self.mix_r)]
        k, v, r = (linear(x, w) for x, w in zip(mixed, (self.k_w, self.v_w, self.r_w)))
        if rwkv4_available(u.device):
            wkv = fla_rwkv4(self.time_decay, self.time_first, k, v)
        else:
            wkv = wkv_parallel(self.time_decay, self.time_first, k, v)
        return linear((torch.sigmoid(r.to(wkv.dtype)) * wkv).to(r.dtype), self.o_w)

    # ---------------------------------------------------------------- naive reference and recurrent mode (one run)
    def run_inputs(self, run: int, u_t: torch.Tensor, prev: torch.Tensor):
        """One run: ``u_t, u_{t−1} (..., d)`` -> ``k, v, σ(r) (..., d)``."""
        p = self.run_parameters(run)
        k, v, r = (
            (u_t * p[m] + prev * (1 - p[m])) @ p[w] for m, w in (("mix_k", "k_w"), ("mix_v", "v_w"), ("mix_r", "r_w"))
        )
        return k, v, torch.sigmoid(r)

    def wkv_step(self, run: int, k: torch.Tensor, v: torch.Tensor, num, den, scale):
        """The stable recurrence of the module docstring, one token: ``(wkv_t, α, β, ε)``."""
        p = self.run_parameters(run)
        w, bonus = -torch.exp(p["time_decay"]), p["time_first"] + k
        tau = torch.maximum(scale, bonus)
        e_old, e_new = torch.exp(scale - tau), torch.exp(bonus - tau)
        wkv = (e_old * num + e_new * v) / (e_old * den + e_new)
        decayed = scale + w
        new_scale = torch.maximum(decayed, k)
        e_old, e_new = torch.exp(decayed - new_scale), torch.exp(k - new_scale)
        return wkv, e_old * num + e_new * v, e_old * den + e_new, new_scale

    def step(self, run: int, u_t: torch.Tensor, state: dict[str, torch.Tensor] | None):
        if state is None:
            zeros = torch.zeros_like(u_t)
            state = {
                "shift": zeros,
                "num": zeros,
                "den": zeros,
                "log_scale": torch.full_like(u_t, RWKV4_START_LOG_SCALE),
            }
        k, v, gate = self.run_inputs(run, u_t, state["shift"])
        wkv, num, den, scale = self.wkv_step(run, k, v, state["num"], state["den"], state["log_scale"])
        out = (gate * wkv) @ self.run_parameters(run)["o_w"]
        return out, {"shift": u_t, "num": num, "den": den, "log_scale": scale}

    def reference(self, run: int, u: torch.Tensor) -> torch.Tensor:
        """The stable recurrence token by token over the whole sequence's projections."""
        k, v, gate = self.run_inputs(run, u, previous_tokens(u))
        num, den = torch.zeros_like(k[:, 0]), torch.zeros_like(k[:, 0])
        scale = torch.full_like(k[:, 0], RWKV4_START_LOG_SCALE)
        outputs = []
        for t in range(u.shape[1]):
            wkv, num, den, scale = self.wkv_step(run, k[:, t], v[:, t], num, den, scale)
            outputs.append(wkv)
        return (gate * torch.stack(outputs, 1)) @ self.run_parameters(run)["o_w"]
