"""A selective SSM with a scalar decay per head (the Mamba-2 / SSD form), in its quadratic ("attention-like") view.

Per run, with state size ``n`` (the knob), inner width ``d_i = 2d`` split into ``H = d_i / 32`` heads of ``P = 32``
channels, and ``u (B, N, d)`` layer 1's input::

    x, z   = u W_in                                  (d × 2 d_i, no bias)
    x      = SiLU(conv_4(x))                         (causal depthwise, 4 taps, per channel)
    B_t, C_t = u_t W_B, u_t W_C                      (d × n each: input-dependent, shared by the heads)
    Δ_t    = softplus(u_t W_Δ + b_Δ)                 (d × H: one step size per head)
    A      = −exp(a_log)                             (one decay rate per head)
    y_t    = Σ_{s≤t} exp(A Σ_{s<ρ≤t} Δ_ρ) (C_t·B_s) Δ_s x_s + D x_t          (per head)
    out    = (y ⊙ SiLU(z)) W_o

Recurrent mode: ``h_t = exp(Δ_t A) h_{t−1} + Δ_t x_t B_tᵀ`` (``H × P × n``), ``y_t = h_t C_t + D x_t``, and the conv
keeps its last 3 inputs: ``d_i·n + 3·d_i`` numbers whatever ``N``. Runs of one stack may have different ``n``:
``W_B, W_C`` are padded to the largest and masked, so padded state rows stay 0.

The quadratic view builds ``(R, B, H, N, N)`` decays (``(R, B, D, N, H)`` at the query rows): fine at the [B] Fig. 2
sizes, not a linear-memory scan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from mqarkit.gpu.frontier.ops import causal_cumsum, causal_depthwise_conv, gather_rows, init_conv, init_normal, linear
from mqarkit.gpu.frontier.protocol import Knob, KnobValue, StackedMixer

EXPAND = 2  # d_i = EXPAND · d
HEAD_DIM = 32  # P, channels per head
CONV = 4  # taps of the causal depthwise conv on x


def decay_matrix(log_a: torch.Tensor) -> torch.Tensor:
    """``L[t, s] = exp(Σ_{r=s+1..t} log_a_r)`` for ``s ≤ t``, else 0; ``log_a (..., N)`` -> ``(..., N, N)``."""
    cs = torch.cumsum(log_a.to(torch.promote_types(log_a.dtype, torch.float32)), dim=-1)
    diff = cs[..., :, None] - cs[..., None, :]
    n = log_a.shape[-1]
    mask = torch.ones(n, n, dtype=torch.bool, device=log_a.device).tril()
    return torch.exp(diff.masked_fill(~mask, float("-inf")))


class SSM(StackedMixer):
    name = "ssm"
    knobs = (Knob("d_state", "n", help="n, the state size of each channel"),)

    @classmethod
    def check(cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue]) -> None:
        if (EXPAND * d_model) % HEAD_DIM:
            raise ValueError(f"d_model={d_model}: ssm needs {EXPAND}*d_model divisible by its head size {HEAD_DIM}")

    @classmethod
    def init_run(
        cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        d, n = d_model, int(knobs["d_state"])
        di = EXPAND * d
        h = di // HEAD_DIM
        p = {"in_w": init_normal((d, 2 * di), generator)}
        p |= {"b_w": init_normal((d, n), generator), "c_w": init_normal((d, n), generator)}
        p["dt_w"] = init_normal((d, h), generator)
        # Δ = softplus(b_Δ) log-uniform in [1e-3, 1e-1] at initialisation, b_Δ stored as softplus^{-1}(Δ)
        dt = torch.exp(torch.rand(h, generator=generator) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        p["dt_b"] = dt + torch.log(-torch.expm1(-dt))
        p["a_log"] = torch.log(torch.rand(h, generator=generator) * 15 + 1)  # A = −exp(a_log) in [−16, −1]
        p["skip"] = torch.ones(h)  # D
        p |= {"x_k": init_conv((di, CONV), generator), "x_kb": torch.zeros(di)}
        p["o_w"] = init_normal((di, d), generator)
        return p

    def heads(self) -> int:
        return EXPAND * self.d // HEAD_DIM

    def intermediate_elements(self, seq_len: int) -> int:
        return self.runs * self.heads() * seq_len * seq_len

    # ---------------------------------------------------------------- fast path (stacked)
    def parts(self, u: torch.Tensor):
        """``x (R, B, N, d_i)`` after conv and SiLU, ``z``, ``B, C (R, B, N, n)``, ``Δ (R, B, N, H)``, ``A (R, H)``
        and ``x`` by head ``(R, B, N, H, P)``, the last five in float32 at least."""
        r, b, n, _ = u.shape
        acc = torch.promote_types(u.dtype, torch.float32)  # float32 under autocast; float64 stays float64
        x, z = linear(u, self.in_w).chunk(2, dim=-1)
        x = F.silu(causal_depthwise_conv(x, self.x_k, self.x_kb))
        ns = self.b_w.shape[-1]
        bm, cm = linear(u, torch.cat([self.masked("b_w"), self.masked("c_w")], dim=-1)).to(acc).split([ns, ns], -1)
        with torch.autocast(u.device.type, enabled=False):  # Δ sets every decay exp(AΔ): its projection in float32
            dt = F.softplus(linear(u.to(acc), self.dt_w.to(acc)) + self.dt_b[:, None, None, :])
        a = -torch.exp(self.a_log.to(acc))
        xh = x.to(acc).reshape(r, b, n, self.heads(), HEAD_DIM)
        return x, z, bm, cm, dt, a, xh

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        r, b, n, _ = u.shape
        x, z, bm, cm, dt, a, xh = self.parts(u)
        decay = decay_matrix((dt * a[:, None, None, :]).permute(0, 1, 3, 2))  # (R, B, H, N, N)
        scores = torch.matmul(cm, bm.transpose(-1, -2))  # (R, B, N, N)
        xdt = (xh * dt[..., None]).permute(0, 1, 3, 2, 4)  # (R, B, H, N, P)
        y = torch.matmul(decay * scores[:, :, None], xdt).permute(0, 1, 3, 2, 4)  # (R, B, N, H, P)
        y = y + xh * self.skip.to(xh.dtype)[:, None, None, :, None]
        return linear(y.reshape(r, b, n, -1).to(u.dtype) * F.silu(z), self.o_w)

    def forward_at(self, u: torch.Tensor, qpos: torch.Tensor) -> torch.Tensor:
        """The quadratic form at the query times ``t_j``: ``(R, B, D, N, H)`` decays instead of ``(…, N, N)``."""
        x, z, bm, cm, dt, a, xh = self.parts(u)
        cs = causal_cumsum(dt * a[:, None, None, :])  # (R, B, N, H): Σ_{ρ≤t} Δ_ρ A
        gap = gather_rows(cs, qpos)[:, :, :, None] - cs[:, :, None]  # (R, B, D, N, H): Σ_{s<ρ≤t_j} Δ_ρ A
        causal = (torch.arange(u.shape[2], device=u.device) <= qpos[..., None])[None, :, :, :, None]
        decay = torch.exp(gap.masked_fill(~causal, float("-inf")))
        scores = torch.matmul(gather_rows(cm, qpos), bm.transpose(-1, -2))  # (R, B, D, N)
        xdt = xh * dt[..., None]  # (R, B, N, H, P)
        y = torch.einsum("rbjsh,rbshp->rbjhp", decay * scores[..., None], xdt)  # (R, B, D, H, P)
        y = (
            y
            + gather_rows(xh.flatten(3), qpos).unflatten(3, xh.shape[3:])
            * self.skip.to(xh.dtype)[:, None, None, :, None]
        )
        return linear(y.flatten(3).to(u.dtype) * F.silu(gather_rows(z, qpos)), self.o_w)

    # ---------------------------------------------------------------- naive reference and recurrent mode (one run)
    def reference(self, run: int, u: torch.Tensor) -> torch.Tensor:
        """The quadratic form written out for one run: the weights ``exp(A Σ Δ)`` by an explicit double loop-free
        cumulative sum, no stacking, no masking."""
        p = self.run_parameters(run)
        b, n, _ = u.shape
        x, z = (u @ p["in_w"]).chunk(2, dim=-1)
        taps = p["x_k"].shape[-1]
        x = F.silu(sum(F.pad(x, (0, 0, s, 0))[:, :n] * p["x_k"][:, s] for s in range(taps)) + p["x_kb"])
        bm, cm, dt = u @ p["b_w"], u @ p["c_w"], F.softplus(u @ p["dt_w"] + p["dt_b"])  # dt (B, N, H)
        a = -torch.exp(p["a_log"])
        cs = torch.cumsum(dt * a, dim=1)  # (B, N, H)
        gap = cs[:, :, None] - cs[:, None]  # (B, t, s, H)
        causal = torch.ones(n, n, dtype=torch.bool, device=u.device).tril()[None, :, :, None]
        weight = (
            torch.where(causal, torch.exp(gap.masked_fill(~causal, 0.0)), 0.0) * (cm @ bm.transpose(1, 2))[..., None]
        )
        xh = x.reshape(b, n, -1, HEAD_DIM)  # (B, N, H, P)
        y = torch.einsum("btsh,bshp->bthp", weight, xh * dt[..., None]) + xh * p["skip"][:, None]
        return (y.reshape(b, n, -1) * F.silu(z)) @ p["o_w"]

    def step(self, run: int, u_t: torch.Tensor, state: dict[str, torch.Tensor] | None):
        p = self.run_parameters(run)
        b = u_t.shape[0]
        x_in, z = (u_t @ p["in_w"]).chunk(2, dim=-1)  # (B, d_i)
        cache = torch.zeros(b, CONV - 1, x_in.shape[-1], dtype=u_t.dtype) if state is None else state["conv_cache"]
        window = torch.cat([cache, x_in[:, None]], dim=1)  # (B, CONV, d_i): oldest first, x_t last
        x = F.silu((window * p["x_k"].T.flip(0)).sum(1) + p["x_kb"])  # tap s reads x_{t−s}
        dt = F.softplus(u_t @ p["dt_w"] + p["dt_b"])  # (B, H)
        a = -torch.exp(p["a_log"])
        xh = x.reshape(b, -1, HEAD_DIM)  # (B, H, P)
        bm, cm = u_t @ p["b_w"], u_t @ p["c_w"]  # (B, n)
        h = 0 if state is None else state["ssm"]
        h = torch.exp(dt * a)[..., None, None] * h + (dt[..., None] * xh)[..., None] * bm[:, None, None, :]
        y = (h @ cm[:, None, :, None])[..., 0] + xh * p["skip"][:, None]  # (B, H, P)
        return (y.reshape(b, -1) * F.silu(z)) @ p["o_w"], {"ssm": h, "conv_cache": window[:, 1:]}

    @torch.no_grad()
    def recurrent_state(self, run: int, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """``h_N`` and the conv's last 3 inputs after ``u (N, d)``, in one pass (tests compare with :meth:`step`)."""
        p = self.run_parameters(run)
        n = u.shape[0]
        x_in, _ = (u @ p["in_w"]).chunk(2, dim=-1)
        cache = F.pad(x_in, (0, 0, CONV - 1, 0))[-(CONV - 1) :]  # zeros before the first token, as step starts
        taps = p["x_k"].shape[-1]
        x = F.silu(sum(F.pad(x_in, (0, 0, s, 0))[:n] * p["x_k"][:, s] for s in range(taps)) + p["x_kb"])
        dt = F.softplus(u @ p["dt_w"] + p["dt_b"])  # (N, H)
        log_decay = dt * -torch.exp(p["a_log"])  # (N, H)
        weight = torch.exp(log_decay.flip(0).cumsum(0).flip(0) - log_decay)  # (N, H): Σ_{s<ρ≤N−1} Δ_ρ A
        xh = x.reshape(n, -1, HEAD_DIM)  # (N, H, P)
        h = torch.einsum("sh,shp,sn->hpn", weight, xh * dt[..., None], u @ p["b_w"])
        return {"ssm": h, "conv_cache": cache}

    @classmethod
    def state_formula(cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], seq_len: int) -> int:
        di = EXPAND * d_model
        return di * int(knobs["d_state"]) + (CONV - 1) * di
