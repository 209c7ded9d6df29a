"""Softmax attention, one head, as the reference's [B] Fig. 2 attention model (``MHA``, ``num_heads = 1``).

Per run, with ``u (B, N, d)`` layer 1's input::

    q, k, v = u W_qkv + b_qkv                   (one fused biased projection, split in three)
    y_i     = Σ_{j ≤ i} softmax_j(q_i·k_j / √d) v_j      (causal: a token sees itself)
    out     = y W_o + b_o

Recurrent mode carries the keys and values seen so far (the KV cache): ``2·N·d`` numbers after ``N`` tokens.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from mqarkit.gpu.frontier.ops import gather_rows, init_normal, linear
from mqarkit.gpu.frontier.protocol import KnobValue, StackedMixer


class Attention(StackedMixer):
    name = "attention"

    @classmethod
    def init_run(
        cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        d = d_model
        return {
            "qkv_w": init_normal((d, 3 * d), generator),
            "qkv_b": torch.zeros(3 * d),
            "o_w": init_normal((d, d), generator),
            "o_b": torch.zeros(d),
        }

    # ---------------------------------------------------------------- fast path (stacked)
    def visible(self, pos: torch.Tensor, n: int) -> torch.Tensor:
        """Which keys a query at position ``pos`` sees: ``(*pos.shape, N)`` bool, key ``s`` iff ``s ≤ pos`` (a sliding
        window adds a run axis in front)."""
        return torch.arange(n, device=pos.device) <= pos[..., None]

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        r, b, n, d = u.shape
        q, k, v = (t.reshape(r * b, 1, n, d) for t in linear(u, self.qkv_w, self.qkv_b).chunk(3, dim=-1))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).reshape(r, b, n, d)
        return linear(y, self.o_w, self.o_b)

    def forward_at(self, u: torch.Tensor, qpos: torch.Tensor) -> torch.Tensor:
        """``D`` queries (at the query rows) against the ``N`` keys: ``O(N·D)`` instead of ``O(N²)``."""
        d = self.d
        q = linear(gather_rows(u, qpos), self.qkv_w[..., :d], self.qkv_b[..., :d])  # (R, B, D, d)
        k, v = linear(u, self.qkv_w[..., d:], self.qkv_b[..., d:]).chunk(2, dim=-1)  # (R, B, N, d) each
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.visible(qpos, u.shape[2]))
        return linear(y, self.o_w, self.o_b)

    # ---------------------------------------------------------------- naive reference and recurrent mode (one run)
    def reference(self, run: int, u: torch.Tensor) -> torch.Tensor:
        p = self.run_parameters(run)
        q, k, v = (u @ p["qkv_w"] + p["qkv_b"]).chunk(3, dim=-1)  # (B, N, d) each
        n = u.shape[1]
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d)  # (B, N, N)
        seen = self.visible(torch.arange(n, device=u.device), n)
        seen = seen if seen.dim() == 2 else seen[run]
        y = torch.softmax(scores.masked_fill(~seen, float("-inf")), dim=-1) @ v
        return y @ p["o_w"] + p["o_b"]

    def cache_limit(self, run: int) -> int | None:
        """How many past keys and values a later step still reads (None: all)."""
        return None

    def step(self, run: int, u_t: torch.Tensor, state: dict[str, torch.Tensor] | None):
        p = self.run_parameters(run)
        q, k, v = (u_t @ p["qkv_w"] + p["qkv_b"]).chunk(3, dim=-1)  # (B, d) each
        keys = k[:, None] if state is None else torch.cat([state["k_cache"], k[:, None]], dim=1)  # (B, t, d)
        values = v[:, None] if state is None else torch.cat([state["v_cache"], v[:, None]], dim=1)
        weights = torch.softmax((keys @ q[:, :, None])[..., 0] / math.sqrt(self.d), dim=-1)  # (B, t)
        y = (weights[:, None] @ values)[:, 0]
        keep = self.cache_limit(run)
        if keep is not None:  # what the next token will still see
            first = max(0, keys.shape[1] - keep)
            keys, values = keys[:, first:], values[:, first:]
        return y @ p["o_w"] + p["o_b"], {"k_cache": keys, "v_cache": values}

    @torch.no_grad()
    def recurrent_state(self, run: int, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """The KV cache after ``u (N, d)``, in one pass (what :meth:`step` carries; the tests compare the two)."""
        p = self.run_parameters(run)
        _, k, v = (u @ p["qkv_w"] + p["qkv_b"]).chunk(3, dim=-1)
        limit = self.cache_limit(run)
        first = 0 if limit is None else max(0, u.shape[0] - limit)
        return {"k_cache": k[first:], "v_cache": v[first:]}

    @classmethod
    def state_formula(cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], seq_len: int) -> int:
        return 2 * seq_len * d_model
