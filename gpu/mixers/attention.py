"""Softmax attention (causal, strict or windowed) and sliding-window attention.

Math (theory.md §2.3): with ``q, k, v = split(x Wqkv^T + b)`` into ``H`` heads of width ``e = d / H``,
``y_i = Σ_{j ∈ V(i)} softmax_j(q_i·k_j / √e) v_j``, then ``out = y Wo^T + bo``. The visible set ``V(i)``:

- ``causal``: ``j <= i`` (the token sees itself, as zoology's MHA);
- ``strict``: ``j < i`` (erratum 2 of theory.md §7); row ``i = 0`` sees nothing and outputs ``0`` before ``Wo``;
- ``window`` of width ``w``: ``i - w < j <= i``: **w keys including the current token**. Zoology's ``SlidingAttn``
  with ``block_size = w`` admits ``i - w <= j <= i``, i.e. ``w + 1`` keys: it equals our window ``w + 1``.

Fast path: ``torch.nn.functional.scaled_dot_product_attention`` (``is_causal`` for causal; an explicit boolean mask
for strict; for a window, a banded blocked form that attends each block of ``w`` queries to its own and the previous
block, ``O(N·w)`` work instead of ``O(N²)``). Reference: scores, an explicit max-subtracted softmax over the visible
keys, a weighted sum. Recurrent: a KV cache (all pairs for causal/strict, the last ``w - 1`` for a window).

Fused projection layout (as zoology's MHA): ``Wqkv.weight: (3d, d)`` whose output splits as ``(three, H, e)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mqarkit.gpu.device import (
    check_choice,
    check_parameter_memory,
    check_positive_int,
    check_sequence_input,
    check_step_input,
)
from mqarkit.gpu.state import RecurrentMixer, State

MASKS = ("causal", "strict", "window")


def visible_keys(seq_len: int, mask: str, window: int | None, device=None) -> torch.Tensor:
    """Boolean ``(N, N)``: entry ``[i, j]`` is True when query ``i`` may attend to key ``j``."""
    i = torch.arange(seq_len, device=device)[:, None]
    j = torch.arange(seq_len, device=device)[None, :]
    if mask == "causal":
        return j <= i
    if mask == "strict":
        return j < i
    assert window is not None
    return (j <= i) & (j > i - window)


class SoftmaxAttention(RecurrentMixer):
    """Multi-head softmax attention ``(B, N, d) -> (B, N, d)`` with a fused biased ``Wqkv`` and ``out_proj``."""

    def __init__(
        self, d_model: int, num_heads: int = 1, mask: str = "causal", window: int | None = None, bias: bool = True
    ) -> None:
        super().__init__()
        check_positive_int(d_model, "d_model")
        check_positive_int(num_heads, "num_heads")
        if d_model % num_heads:
            raise ValueError(f"num_heads={num_heads}: must divide d_model={d_model}")
        self.mask = check_choice(mask, "mask", MASKS)
        if mask == "window":
            if window is None:
                raise ValueError("window=None: mask='window' needs a window width >= 1")
            check_positive_int(window, "window")
        elif window is not None:
            raise ValueError(f"window={window}: only allowed with mask='window' (mask={mask!r})")
        self.d_model, self.num_heads, self.window = d_model, num_heads, window
        self.head_dim = d_model // num_heads
        check_parameter_memory(type(self).__name__, 4 * d_model * d_model, parameter=f"d_model={d_model}")
        self.Wqkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    # ---- shared pieces -------------------------------------------------------------------------------------------
    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x: (..., d)`` -> q, k, v each ``(..., H, e)``."""
        qkv = self.Wqkv(x).unflatten(-1, (3, self.num_heads, self.head_dim))
        return qkv.unbind(dim=-3)

    # ---- fast path -----------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_sequence_input(x, self.d_model)
        q, k, v = (t.transpose(1, 2) for t in self._qkv(x))  # (B, H, N, e)
        n = x.shape[1]
        if self.mask == "causal":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif self.mask == "strict":
            allowed = visible_keys(n, "strict", None, device=x.device)
            # Row 0 has no visible key: SDPA would return NaN there; let it see key 0 and zero the row afterwards.
            allowed[0, 0] = True
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
            has_key = (torch.arange(n, device=x.device) > 0).to(y.dtype)[:, None]  # (N, 1)
            y = y * has_key
        elif n <= 2 * self.window:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=visible_keys(n, "window", self.window, x.device))
        else:
            y = _banded_window_attention(q, k, v, self.window)
        return self.out_proj(y.transpose(1, 2).flatten(2))

    # ---- reference -----------------------------------------------------------------------------------------------
    def reference(self, x: torch.Tensor) -> torch.Tensor:
        check_sequence_input(x, self.d_model)
        q, k, v = self._qkv(x)  # (B, N, H, e)
        n = x.shape[1]
        scores = torch.einsum("bihe,bjhe->bhij", q, k) / math.sqrt(self.head_dim)
        allowed = visible_keys(n, self.mask, self.window, device=x.device)
        scores = scores.masked_fill(~allowed, float("-inf"))
        row_max = scores.amax(dim=-1, keepdim=True)
        row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
        weights = torch.exp(scores - row_max)  # exp(-inf) = 0 on hidden keys
        denom = weights.sum(dim=-1, keepdim=True)
        weights = torch.where(denom > 0, weights / torch.where(denom > 0, denom, torch.ones_like(denom)), weights)
        y = torch.einsum("bhij,bjhe->bihe", weights, v)
        return self.out_proj(y.flatten(2))

    # ---- recurrent -----------------------------------------------------------------------------------------------
    def cache_capacity(self, seq_len: int) -> int:
        """How many (k, v) pairs the cache holds after ``seq_len`` steps."""
        return seq_len if self.mask != "window" else min(self.window - 1, seq_len)

    def init_state(self, batch_size: int, *, device=None, dtype=None) -> State:
        check_positive_int(batch_size, "batch_size")
        device, dtype = self._state_device_dtype(device, dtype)
        empty = torch.zeros(batch_size, self.num_heads, 0, self.head_dim, device=device, dtype=dtype)
        return {"k": empty, "v": empty.clone()}

    def step(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        check_step_input(x_t, self.d_model)
        q, k, v = (t.unsqueeze(2) for t in self._qkv(x_t))  # (B, H, 1, e)
        k_all = torch.cat([state["k"], k], dim=2)
        v_all = torch.cat([state["v"], v], dim=2)
        if self.mask == "strict":
            keys, values = state["k"], state["v"]
        else:
            keys, values = k_all, v_all
        if keys.shape[2] == 0:
            y = torch.zeros_like(q)
        else:
            scores = (q @ keys.transpose(-1, -2)) / math.sqrt(self.head_dim)  # (B, H, 1, t)
            y = torch.softmax(scores, dim=-1) @ values
        if self.mask == "window":
            start = max(0, k_all.shape[2] - (self.window - 1))  # keep the last w - 1 pairs
            k_all, v_all = k_all[:, :, start:], v_all[:, :, start:]
        return self.out_proj(y.squeeze(2).flatten(1)), {"k": k_all, "v": v_all}

    def state_formula(self, seq_len: int) -> int:
        check_positive_int(seq_len, "seq_len")
        return 2 * self.d_model * self.cache_capacity(seq_len)


def _banded_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
    """Window attention in blocks of ``w`` queries: block ``b`` sees key blocks ``b - 1`` and ``b``.

    ``q, k, v: (B, H, N, e)``. Query ``i`` needs keys ``(i - w, i]``, which lie in its own block and the previous one,
    so a ``(w, 2w)`` mask per block (plus "key position >= 0" for block 0) gives exact window attention.
    """
    b, h, n, e = q.shape
    w = window
    nb = -(-n // w)
    pad = nb * w - n
    qp, kp, vp = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))  # (B, H, nb*w, e)
    qb = qp.unflatten(2, (nb, w))  # (B, H, nb, w, e)
    kb, vb = kp.unflatten(2, (nb, w)), vp.unflatten(2, (nb, w))
    k_prev = F.pad(kb, (0, 0, 0, 0, 1, 0))[:, :, :nb]  # previous block (zeros before block 0)
    v_prev = F.pad(vb, (0, 0, 0, 0, 1, 0))[:, :, :nb]
    k2, v2 = torch.cat([k_prev, kb], dim=3), torch.cat([v_prev, vb], dim=3)  # (B, H, nb, 2w, e)
    qi = torch.arange(w, device=q.device)[:, None]  # query offset in its block
    kj = torch.arange(2 * w, device=q.device)[None, :] - w  # key offset relative to the block start
    band = (kj <= qi) & (kj > qi - w)  # (w, 2w)
    block_start = (torch.arange(nb, device=q.device) * w)[:, None, None]
    allowed = band[None] & (block_start + kj[None] >= 0)  # (nb, w, 2w)
    y = F.scaled_dot_product_attention(qb, k2, v2, attn_mask=allowed)
    return y.flatten(2, 3)[:, :, :n]


class SlidingWindowAttention(SoftmaxAttention):
    """Sliding-window softmax attention: each token attends to the last ``window`` tokens, itself included.

    State: the last ``window - 1`` (k, v) pairs, ``2·(w-1)·d`` numbers once ``N >= w - 1`` (the current pair arrives
    with the step). Zoology's ``SlidingAttn(block_size=w)`` admits ``w + 1`` keys and reports ``2·w·d``; it is our
    ``SlidingWindowAttention(window=w + 1)``, whose measured state is exactly ``2·w·d``.
    """

    def __init__(self, d_model: int, window: int, num_heads: int = 1, bias: bool = True) -> None:
        super().__init__(d_model, num_heads=num_heads, mask="window", window=window, bias=bias)
