"""Sliding-window softmax attention: :mod:`.attention` with each query seeing only the ``w`` most recent tokens.

Per run, with window ``w`` (the knob, per run: runs of one stack may have different windows)::

    y_i = Σ_{i−w < j ≤ i} softmax_j(q_i·k_j / √d) v_j          (the token itself included)

Recurrent mode keeps the last ``w − 1`` keys and values (the next token sees them and itself):
``2·min(N, w − 1)·d`` numbers after ``N`` tokens.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from mqarkit.gpu.frontier.families.attention import Attention
from mqarkit.gpu.frontier.ops import linear
from mqarkit.gpu.frontier.protocol import Knob, KnobValue


class SlidingWindow(Attention):
    name = "sliding_window"
    knobs = (Knob("window", "w", help="the number of most recent tokens a query sees, itself included"),)

    def visible(self, pos: torch.Tensor, n: int) -> torch.Tensor:
        """``(R, *pos.shape, N)`` bool: a query at position ``pos`` sees key ``s`` iff ``0 ≤ pos − s < w_r``."""
        lag = pos[..., None] - torch.arange(n, device=pos.device)
        windows = self.knob_tensor("window")
        return (lag >= 0) & (lag < windows.view(-1, *([1] * lag.dim())))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        q, k, v = linear(u, self.qkv_w, self.qkv_b).chunk(3, dim=-1)
        band = self.visible(torch.arange(u.shape[2], device=u.device), u.shape[2])[:, None]  # (R, 1, N, N)
        return linear(F.scaled_dot_product_attention(q, k, v, attn_mask=band), self.o_w, self.o_b)

    def cache_limit(self, run: int) -> int | None:
        return int(self.run_knobs[run]["window"]) - 1

    @classmethod
    def state_formula(cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], seq_len: int) -> int:
        return 2 * min(seq_len, int(knobs["window"]) - 1) * d_model
