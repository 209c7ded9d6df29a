"""BaseConv with a long explicit filter, as the reference's ``BaseConv`` with ``l_max`` taps ([Z] Fig. 2, "BaseConv").

Per run, with ``u (B, N, d)`` layer 1's input and a per-channel filter ``h (d, L)`` of ``L = max_len`` taps::

    c_t = Σ_{s ≤ t} h[:, s] ⊙ u_{t−s}              (causal long convolution, ops.causal_long_conv)
    out = c ⊙ (u W + b) + u

The filter starts near-local (its taps decay as ``exp(−s/64)`` at initialisation). Recurrent mode keeps the inputs the
filter still reaches, the last ``L − 1``: ``min(N, L − 1)·d`` numbers after ``N`` tokens.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from mqarkit.gpu.frontier.ops import causal_long_conv, gather_rows, init_normal, linear
from mqarkit.gpu.frontier.protocol import KnobValue, StackedMixer

FILTER_DECAY = 64.0  # taps start as N(0, 0.02²)·exp(−s / FILTER_DECAY)


class LongConv(StackedMixer):
    name = "long_conv"
    keeps_float32_input = True  # the output adds u itself (not a product of it): the trunk hands it over in float32

    @classmethod
    def init_run(
        cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        d = d_model
        lags = torch.arange(max_len, dtype=torch.float32)
        return {
            "l_w": init_normal((d, d), generator),
            "l_b": torch.zeros(d),
            "l_h": init_normal((d, max_len), generator) * torch.exp(-lags / FILTER_DECAY),
        }

    # ---------------------------------------------------------------- fast path (stacked)
    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return causal_long_conv(u, self.l_h) * linear(u, self.l_w, self.l_b) + u

    def forward_at(self, u: torch.Tensor, qpos: torch.Tensor) -> torch.Tensor:
        """The convolution computes every position; the gate and the residual run on the query rows only."""
        conv, u_q = gather_rows(causal_long_conv(u, self.l_h), qpos), gather_rows(u, qpos)
        return conv * linear(u_q, self.l_w, self.l_b) + u_q

    # ---------------------------------------------------------------- naive reference and recurrent mode (one run)
    def reference(self, run: int, u: torch.Tensor) -> torch.Tensor:
        p = self.run_parameters(run)
        n = u.shape[1]
        conv = torch.zeros_like(u)
        for s in range(n):  # lag s: h[:, s] ⊙ u_{t−s} for every t ≥ s
            conv[:, s:] += p["l_h"][:, s] * u[:, : n - s]
        return conv * (u @ p["l_w"] + p["l_b"]) + u

    def step(self, run: int, u_t: torch.Tensor, state: dict[str, torch.Tensor] | None):
        p = self.run_parameters(run)
        seen = u_t[:, None] if state is None else torch.cat([state["input_cache"], u_t[:, None]], dim=1)  # (B, t, d)
        lags = seen.shape[1]
        conv = (seen.flip(1) * p["l_h"][:, :lags].T).sum(1)  # Σ_s h[:, s] ⊙ u_{t−s}
        keep = min(lags, self.max_len - 1)  # the next step's filter reaches back L − 1 inputs
        return conv * (u_t @ p["l_w"] + p["l_b"]) + u_t, {"input_cache": seen[:, lags - keep :]}

    @torch.no_grad()
    def recurrent_state(self, run: int, u: torch.Tensor) -> dict[str, torch.Tensor]:
        keep = min(u.shape[0], self.max_len - 1)
        return {"input_cache": u[u.shape[0] - keep :].clone()}

    @classmethod
    def state_formula(cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], seq_len: int) -> int:
        return min(seq_len, max_len - 1) * d_model
