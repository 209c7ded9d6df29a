"""A Mamba-style selective state-space mixer (input-dependent ``Δ, B, C``; diagonal ``A``; short conv; gating).

Glossary: ``d`` = ``d_model``, ``E = expand·d`` inner width, ``n`` = ``d_state``, ``k`` = ``d_conv``,
``r = ceil(d/16)`` the rank of ``Δ``'s projection.

    [u, g] = x W_in^T                                  u, g: (B, N, E)
    u      = silu(causal depthwise conv_k(u) + b_conv)
    [δ, B_t, C_t] = u W_x^T                            δ: (B, N, r), B_t, C_t: (B, N, n)
    Δ      = softplus(δ W_dt^T + b_dt)                 (B, N, E), > 0
    A      = -exp(A_log)                               (E, n), < 0 (diagonal, per channel and state)
    h_t    = exp(Δ_t A) ⊙ h_{t-1} + (Δ_t u_t) ⊗ B_t    h: (B, E, n)
    y_t    = h_t C_t + D ⊙ u_t,   out = (y ⊙ silu(g)) W_out^T

Reference: the sequential scan over ``t``. Fast path: a chunked scan. Inside a chunk of ``L`` steps with
``a_t = Δ_t A <= 0`` and cumulative ``S_t = Σ_{s<=t} a_s`` (within the chunk), unrolling the recurrence gives
``h_t = exp(S_t) ⊙ (h_0 + Σ_{s<=t} exp(-S_s) ⊙ x_s)`` with ``x_s = (Δ_s u_s) ⊗ B_s``: two cumulative sums and
elementwise work, ``O(N·E·n)``, with a Python loop over ``N / L`` chunks only. Every term of the prefix satisfies
``exp(S_t - S_s) <= 1``, so the rounding error stays relative to ``max |x_s|``; the only hazard is overflow of
``exp(-S_s)``, so the chunk length is halved until every chunk's total decay ``-S_L`` is below ``½·log(max float)``
(44 in float32, 354 in float64); at ``L = 1`` it is the sequential scan. Nothing is clipped.

Recurrent state: ``h`` (``E·n``) and the conv cache (``E·(k-1)``), ``E·(n + k - 1)`` numbers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mqarkit.gpu.device import check_parameter_memory, check_positive_int, check_sequence_input, check_step_input
from mqarkit.gpu.state import RecurrentMixer, State


class SelectiveSSM(RecurrentMixer):
    """Selective SSM ``(B, N, d) -> (B, N, d)``."""

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 1, chunk_size: int = 64) -> None:
        super().__init__()
        for value, name in ((d_model, "d_model"), (d_state, "d_state"), (d_conv, "d_conv"), (expand, "expand")):
            check_positive_int(value, name)
        check_positive_int(chunk_size, "chunk_size")
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner, self.dt_rank, self.chunk_size = expand * d_model, math.ceil(d_model / 16), chunk_size
        e, n, r = self.d_inner, d_state, self.dt_rank
        check_parameter_memory(
            type(self).__name__,
            3 * d_model * e + 2 * e * n,
            parameter=f"d_model={d_model}, d_state={d_state}, expand={expand}",
        )
        self.in_proj = nn.Linear(d_model, 2 * e, bias=False)
        bound = 1.0 / math.sqrt(d_conv)
        self.conv_weight = nn.Parameter(torch.empty(e, d_conv).uniform_(-bound, bound))  # [c, s]: tap of lag s
        self.conv_bias = nn.Parameter(torch.zeros(e))
        self.x_proj = nn.Linear(e, r + 2 * n, bias=False)
        self.dt_proj = nn.Linear(r, e, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(e, 1))
        self.D = nn.Parameter(torch.ones(e))
        self.out_proj = nn.Linear(e, d_model, bias=False)

    # ---- pieces shared by every form ------------------------------------------------------------------------------
    def _selective(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``u: (..., E)`` -> ``Δ: (..., E)``, ``B_t, C_t: (..., n)``."""
        delta_low, b, c = self.x_proj(u).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        return F.softplus(self.dt_proj(delta_low)), b, c

    def _finish(self, y: torch.Tensor, u: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return self.out_proj((y + self.D * u) * F.silu(g))

    def _conv_sequence(self, u: torch.Tensor) -> torch.Tensor:
        """Causal depthwise conv + bias + silu: ``(B, N, E) -> (B, N, E)``."""
        n = u.shape[1]
        w = self.conv_weight.flip(-1).unsqueeze(1)  # Conv1d layout: lag s at index k-1-s
        y = F.conv1d(u.transpose(1, 2), w, self.conv_bias, padding=self.d_conv - 1, groups=self.d_inner)
        return F.silu(y[..., :n].transpose(1, 2))

    def _inputs(self, x: torch.Tensor):
        check_sequence_input(x, self.d_model)
        u, g = self.in_proj(x).chunk(2, dim=-1)
        u = self._conv_sequence(u)
        delta, b, c = self._selective(u)
        log_decay = delta.unsqueeze(-1) * -torch.exp(self.A_log)  # (B, N, E, n), <= 0
        drive = (delta * u).unsqueeze(-1) * b.unsqueeze(-2)  # (B, N, E, n)
        return u, g, c, log_decay, drive

    # ---- reference: sequential scan --------------------------------------------------------------------------------
    def reference(self, x: torch.Tensor) -> torch.Tensor:
        u, g, c, log_decay, drive = self._inputs(x)
        h = torch.zeros_like(drive[:, 0])
        ys = []
        for t in range(x.shape[1]):
            h = torch.exp(log_decay[:, t]) * h + drive[:, t]
            ys.append((h * c[:, t].unsqueeze(-2)).sum(-1))
        return self._finish(torch.stack(ys, dim=1), u, g)

    # ---- fast path: chunked scan ------------------------------------------------------------------------------------
    def stable_chunk_size(self, log_decay: torch.Tensor) -> int:
        """Largest ``L <= chunk_size`` (halving) whose every chunk has total decay ``-S_L < ½·log(max float)``."""
        limit = 0.5 * math.log(torch.finfo(log_decay.dtype).max)
        n = log_decay.shape[1]
        size = min(self.chunk_size, n)
        with torch.no_grad():
            while size > 1:
                pad = (-n) % size
                totals = F.pad(log_decay, (0, 0, 0, 0, 0, pad)).unflatten(1, (-1, size)).sum(2)
                if float(-totals.min()) < limit:
                    break
                size //= 2
        return size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, g, c, log_decay, drive = self._inputs(x)
        size = self.stable_chunk_size(log_decay)
        h = torch.zeros_like(drive[:, 0])  # (B, E, n)
        ys = []
        for start in range(0, x.shape[1], size):
            a, xs, cs = (t[:, start : start + size] for t in (log_decay, drive, c))
            if a.shape[1] == 1:  # L = 1: the recurrence itself (exp(-a) might overflow)
                h = torch.exp(a[:, 0]) * h + xs[:, 0]
                hs = h.unsqueeze(1)
            else:
                cum = torch.cumsum(a, dim=1)  # S_t, (B, L, E, n)
                hs = torch.exp(cum) * (h.unsqueeze(1) + torch.cumsum(torch.exp(-cum) * xs, dim=1))
                h = hs[:, -1]
            ys.append((hs * cs.unsqueeze(-2)).sum(-1))
        return self._finish(torch.cat(ys, dim=1), u, g)

    # ---- recurrent -------------------------------------------------------------------------------------------------
    def init_state(self, batch_size: int, *, device=None, dtype=None) -> State:
        check_positive_int(batch_size, "batch_size")
        device, dtype = self._state_device_dtype(device, dtype)
        return {
            "h": torch.zeros(batch_size, self.d_inner, self.d_state, device=device, dtype=dtype),
            "conv": torch.zeros(batch_size, self.d_inner, self.d_conv - 1, device=device, dtype=dtype),
        }

    def step(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        check_step_input(x_t, self.d_model)
        u_raw, g = self.in_proj(x_t).chunk(2, dim=-1)  # (B, E)
        window = torch.cat([state["conv"], u_raw.unsqueeze(-1)], dim=-1)  # (B, E, k): oldest ... current
        u = F.silu((window * self.conv_weight.flip(-1)).sum(-1) + self.conv_bias)
        delta, b, c = self._selective(u)
        decay = torch.exp(delta.unsqueeze(-1) * -torch.exp(self.A_log))
        h = decay * state["h"] + (delta * u).unsqueeze(-1) * b.unsqueeze(-2)
        y = (h * c.unsqueeze(-2)).sum(-1)
        return self._finish(y, u, g), {"h": h, "conv": window[..., 1:]}

    def state_formula(self, seq_len: int) -> int:
        check_positive_int(seq_len, "seq_len")
        return self.d_inner * (self.d_state + self.d_conv - 1)
