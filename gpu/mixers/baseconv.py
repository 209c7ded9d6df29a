"""BaseConv: a gated convolution, in the paper's semantics and in zoology's module semantics.

Glossary (theory.md §2.1, §4.5): ``u: (N, d)`` input, ``W: (d, d)`` projection (stored as ``nn.Linear``, so
``u W = projection(u)`` with ``W = projection.weight.T``), ``h: (k, d)`` per-channel causal filter with ``k`` taps,
stored lag-first per channel as ``filter[q, s] = h[s, q]`` (tap ``s`` multiplies the input ``s`` steps back).

- ``semantics="paper"``: ``y = (u W + b1) ⊙ (h ∗ u + b2)`` with **position-dependent** ``b1, b2: (N, d)``
  (``bias_proj``, ``bias_conv``) and ``(h ∗ u)[i, q] = Σ_{s <= min(i, k-1)} h[s, q] u[i-s, q]``.
- ``semantics="zoology"``: ``y = conv(u) ⊙ (u W + b) + u`` with a per-channel bias ``b: (d,)``. The short conv is
  ``nn.Conv1d(d, d, k, groups=d, padding=k-1)`` truncated to ``N`` outputs, stored in Conv1d layout
  ``conv_weight: (d, 1, k)`` plus ``conv_bias: (d,)``; cross-correlation with left padding ``k-1`` puts the tap of lag
  ``s`` at ``conv_weight[..., k-1-s]``. The long conv (``k = seq_len``) has no bias and its FFT path adds the input
  once more: ``conv(u) = h ∗ u + u`` (the filter gets ``+ e_0``).

``kernel_size=None`` (or ``= seq_len``) is the long convolution, computed by FFT of size ``2N`` (no wrap-around:
linear convolution of two length-``N`` signals has length ``2N - 1``). A short convolution uses ``conv1d``.
Inputs may be shorter than ``seq_len`` (the first ``N`` rows of position-dependent biases are used).

Recurrent form: the cache holds the last ``k - 1`` inputs per channel, ``d·(k-1)`` numbers (the current input is tap
0); the paper form also carries the integer position for its biases (not counted, see ``mqarkit.gpu.state``).
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

SEMANTICS = ("paper", "zoology")


class BaseConv(RecurrentMixer):
    """Gated convolution ``(B, N, d) -> (B, N, d)``, ``N <= seq_len``."""

    def __init__(self, d_model: int, seq_len: int, kernel_size: int | None = None, semantics: str = "paper") -> None:
        super().__init__()
        check_positive_int(d_model, "d_model")
        check_positive_int(seq_len, "seq_len")
        self.semantics = check_choice(semantics, "semantics", SEMANTICS)
        if kernel_size is None:
            kernel_size = seq_len
        check_positive_int(kernel_size, "kernel_size")
        if kernel_size > seq_len:
            raise ValueError(f"kernel_size={kernel_size}: must be <= seq_len={seq_len} (None means a long conv)")
        self.d_model, self.seq_len, self.kernel_size = d_model, seq_len, kernel_size
        self.long = kernel_size == seq_len
        d, k = d_model, kernel_size
        check_parameter_memory(
            type(self).__name__, d * d + d * k, parameter=f"d_model={d_model}, seq_len={seq_len}, kernel_size={k}"
        )
        bound = 1.0 / math.sqrt(k)
        if semantics == "paper":
            self.projection = nn.Linear(d, d, bias=False)
            self.filter = nn.Parameter(torch.empty(d, k).uniform_(-bound, bound))
            self.bias_proj = nn.Parameter(torch.zeros(seq_len, d))
            self.bias_conv = nn.Parameter(torch.zeros(seq_len, d))
        else:
            self.projection = nn.Linear(d, d, bias=True)
            if self.long:
                self.filter = nn.Parameter(torch.empty(d, k).uniform_(-bound, bound))
            else:
                self.conv_weight = nn.Parameter(torch.empty(d, 1, k).uniform_(-bound, bound))
                self.conv_bias = nn.Parameter(torch.empty(d).uniform_(-bound, bound))

    # ---- the parts every path shares ------------------------------------------------------------------------------
    def lag_filter(self) -> torch.Tensor:
        """``(d, k)``: entry ``[q, s]`` multiplies ``u[i - s, q]`` (zoology long conv: its ``+ u`` is ``+ e_0``)."""
        if self.semantics == "zoology" and not self.long:
            return self.conv_weight[:, 0, :].flip(-1)
        if self.semantics == "zoology":
            identity = torch.zeros_like(self.filter)
            identity[:, 0] = 1
            return self.filter + identity
        return self.filter

    def _conv_bias(self, positions: torch.Tensor | slice) -> torch.Tensor | None:
        """Bias added to the convolution at the given positions: ``(n, d)``, ``(d,)`` or ``None``."""
        if self.semantics == "paper":
            return self.bias_conv[positions]
        return None if self.long else self.conv_bias

    def _gate(self, u: torch.Tensor, conv: torch.Tensor, positions: torch.Tensor | slice) -> torch.Tensor:
        """Combine projection and convolution: ``u, conv: (..., d)``."""
        if self.semantics == "paper":
            return (self.projection(u) + self.bias_proj[positions]) * conv
        return conv * self.projection(u) + u

    def _check_length(self, x: torch.Tensor) -> None:
        check_sequence_input(x, self.d_model)
        if x.shape[1] > self.seq_len:
            raise ValueError(f"x.shape[1]={x.shape[1]}: must be <= seq_len={self.seq_len}")

    # ---- fast path -----------------------------------------------------------------------------------------------
    def causal_conv(self, u: torch.Tensor) -> torch.Tensor:
        """``(h ∗ u)`` without bias, ``u: (B, N, d) -> (B, N, d)``: conv1d (short) or FFT (long)."""
        n = u.shape[1]
        h = self.lag_filter()[:, :n]  # taps beyond lag n-1 never reach an output
        ut = u.transpose(1, 2)  # (B, d, N)
        if self.long:
            size = 2 * n
            # torch.fft has no bf16/fp16 kernels at every size: half inputs are transformed in float32.
            work = ut.dtype if ut.dtype in (torch.float32, torch.float64) else torch.float32
            spec = torch.fft.rfft(ut.to(work), n=size) * torch.fft.rfft(h.to(work), n=size)
            y = torch.fft.irfft(spec, n=size)[..., :n].to(ut.dtype)
        else:
            k = h.shape[1]
            y = F.conv1d(ut, h.flip(-1).unsqueeze(1), padding=k - 1, groups=self.d_model)[..., :n]
        return y.transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_length(x)
        n = x.shape[1]
        conv = self.causal_conv(x)
        bias = self._conv_bias(slice(0, n))
        if bias is not None:
            conv = conv + bias
        return self._gate(x, conv, slice(0, n))

    # ---- reference -----------------------------------------------------------------------------------------------
    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """Direct causal sum ``conv[i] = Σ_{s <= min(i, k-1)} h[s] ⊙ u[i - s]``, one lag at a time."""
        self._check_length(x)
        n = x.shape[1]
        h = self.lag_filter()  # (d, k)
        conv = torch.zeros_like(x)
        for s in range(min(n, self.kernel_size)):
            conv[:, s:] = conv[:, s:] + h[:, s] * x[:, : n - s]
        bias = self._conv_bias(slice(0, n))
        if bias is not None:
            conv = conv + bias
        return self._gate(x, conv, slice(0, n))

    # ---- recurrent -----------------------------------------------------------------------------------------------
    def init_state(self, batch_size: int, *, device=None, dtype=None) -> State:
        check_positive_int(batch_size, "batch_size")
        device, dtype = self._state_device_dtype(device, dtype)
        state = {"cache": torch.zeros(batch_size, self.d_model, self.kernel_size - 1, device=device, dtype=dtype)}
        if self.semantics == "paper":
            state["position"] = torch.zeros((), dtype=torch.int64, device=device)
        return state

    def step(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        check_step_input(x_t, self.d_model)
        window = torch.cat([state["cache"], x_t.unsqueeze(-1)], dim=-1)  # (B, d, k): oldest ... current
        conv = (window * self.lag_filter().flip(-1)).sum(-1)  # lag s sits at window[..., k-1-s]
        new_state = {"cache": window[..., 1:]}
        if self.semantics == "paper":
            t = int(state["position"])
            if t >= self.seq_len:
                raise ValueError(f"step: position {t} is past seq_len={self.seq_len}")
            conv = conv + self.bias_conv[t]
            y = self._gate(x_t, conv, t)
            new_state["position"] = state["position"] + 1
        else:
            bias = self._conv_bias(slice(None))
            conv = conv if bias is None else conv + bias
            y = self._gate(x_t, conv, slice(None))
        return y, new_state

    def state_formula(self, seq_len: int) -> int:
        check_positive_int(seq_len, "seq_len")
        return self.d_model * (self.kernel_size - 1)
