"""Mixers of a user's own, as a user would write them (the tests put this file's folder on the import path).

Not part of mqarkit: each class stands for a kind of module the frontier accepts by import path.
"""

from __future__ import annotations

import torch
from torch import nn

from mqarkit.gpu.frontier.ops import init_normal, linear
from mqarkit.gpu.frontier.protocol import Knob, StackedMixer


class DeltaMemory(nn.Module):
    """A delta-rule memory ``S_t = S_{t−1} + (v_t − S_{t−1} k_t) k_tᵀ``, ``y_t = S_t q_t``; has ``recurrent_state``."""

    def __init__(self, d_model: int, key_dim: int = 8):
        super().__init__()
        self.qkv = nn.Linear(d_model, 2 * key_dim + d_model, bias=False)
        self.key_dim = key_dim

    def _scan(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v = self.qkv(x).split([self.key_dim, self.key_dim, x.shape[-1]], dim=-1)
        k = nn.functional.normalize(k, dim=-1)
        s = x.new_zeros(x.shape[0], x.shape[-1], self.key_dim)
        ys = []
        for t in range(x.shape[1]):
            s = s + torch.einsum("bv,bk->bvk", v[:, t] - torch.einsum("bvk,bk->bv", s, k[:, t]), k[:, t])
            ys.append(torch.einsum("bvk,bk->bv", s, q[:, t]))
        return torch.stack(ys, 1), s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._scan(x)[0]

    def recurrent_state(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"S": self._scan(x)[1]}


class ToyCache:
    """A cache with fla's interface: ``update(..., layer_idx)`` and ``cache[layer_idx]`` (a dict of states)."""

    def __init__(self):
        self.states: list[dict] = []

    def update(self, recurrent_state=None, conv_state=None, layer_idx: int = 0, offset: int = 1):
        while len(self.states) <= layer_idx:
            self.states.append({})
        self.states[layer_idx] = {"recurrent_state": recurrent_state, "conv_state": conv_state}
        return self.states[layer_idx]

    def __getitem__(self, layer_idx: int) -> dict:
        return self.states[layer_idx]


class CachedDecay(nn.Module):
    """An fla-style layer: ``hidden_size``, ``layer_idx``, ``forward(hidden_states, past_key_values, use_cache)``
    returning ``(o, None, past_key_values)``; carries a running sum of ``d`` numbers and a 2-token conv cache."""

    def __init__(self, hidden_size: int, layer_idx: int | None = None):
        super().__init__()
        self.proj = nn.Linear(hidden_size, hidden_size)
        self.layer_idx = layer_idx

    def forward(self, hidden_states, attention_mask=None, past_key_values=None, use_cache=False, **kwargs):
        v = self.proj(hidden_states)
        o = torch.cumsum(v, dim=1) / torch.arange(1, v.shape[1] + 1, device=v.device)[:, None]
        if use_cache:
            past_key_values.update(
                recurrent_state=v.sum(1), conv_state=(hidden_states[:, -2:],), layer_idx=self.layer_idx
            )
        return o, None, past_key_values


class StatelessMix(nn.Module):
    """A module that exposes no state (its state is recorded as unmeasured), reporting a size of its own."""

    def __init__(self, d_model: int, expand: int = 2, **kwargs):
        super().__init__()
        self.up = nn.Linear(d_model, expand * d_model)
        self.down = nn.Linear(expand * d_model, d_model)
        self.extra = kwargs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        causal_mean = torch.cumsum(x, 1) / torch.arange(1, x.shape[1] + 1)[:, None]
        return self.down(torch.relu(self.up(causal_mean)))

    def state_size(self, seq_len: int) -> int:
        return self.up.in_features


class WrongShape(nn.Module):
    def __init__(self, d_model: int):
        super().__init__()
        self.lin = nn.Linear(d_model, d_model + 1)

    def forward(self, x):
        return self.lin(x)


class StackedEMA(StackedMixer):
    """A user's own stacked family: an exponential moving average of ``u W`` with decay ``1 − 2^−b`` per run (the knob
    ``bits`` = ``b``), then ``W_o``. State: ``d`` numbers."""

    name = "stacked-ema"
    knobs = (Knob("bits", "b", help="the decay is 1 - 2^-bits"),)

    @classmethod
    def init_run(cls, d_model, max_len, knobs, generator):
        return {"w": init_normal((d_model, d_model), generator), "o_w": init_normal((d_model, d_model), generator)}

    def decays(self) -> torch.Tensor:
        return 1 - 2.0 ** -self.knob_tensor("bits").float()

    def forward(self, u):
        v = linear(u, self.w)  # (R, B, N, d)
        n = u.shape[2]
        lam = self.decays()[:, None, None]  # (R, 1, 1)
        lag = torch.arange(n)[:, None] - torch.arange(n)[None, :]
        weights = torch.where(lag >= 0, lam ** lag.clamp(min=0), 0.0)  # (R, N, N)
        return linear(torch.einsum("rts,rbsd->rbtd", weights, v), self.o_w)

    def reference(self, run, u):
        p, lam = self.run_parameters(run), 1 - 2.0 ** -self.run_knobs[run]["bits"]
        state, ys = torch.zeros(u.shape[0], u.shape[-1]), []
        for t in range(u.shape[1]):
            state = lam * state + u[:, t] @ p["w"]
            ys.append(state @ p["o_w"])
        return torch.stack(ys, 1)

    def step(self, run, u_t, state):
        p, lam = self.run_parameters(run), 1 - 2.0 ** -self.run_knobs[run]["bits"]
        h = u_t @ p["w"] + (0 if state is None else lam * state["h"])
        return h @ p["o_w"], {"h": h}

    @classmethod
    def state_formula(cls, d_model, max_len, knobs, seq_len):
        return d_model
