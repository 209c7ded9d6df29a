"""Measured state size: one unit, one policy, and the base class every mixer's recurrent mode follows.

Unit: **numbers per sequence** (a batch of one), whatever their precision; bytes = numbers x bytes per number is
left to the caller (the frontier plot states the precision it assumes).

Policy (the same for every mixer; theory.md §5.2):

- The state is *what the recurrent mode carries from step t to step t+1*: the dict returned by ``step``. It is
  measured, never declared: :meth:`RecurrentMixer.state_numbers` runs ``step`` over ``seq_len`` positions on a batch
  of one and sums ``numel()`` of the floating tensors of the final state dict.
- KV caches hold exactly the key/value pairs a later step still reads: all ``t`` past pairs for causal / strict
  attention (``2·d·N``), the last ``w - 1`` pairs for a window of ``w`` keys that includes the current token.
- Convolution caches hold the last ``k - 1`` inputs per channel for a filter of ``k`` taps (tap 0 is the current
  input, which arrives with the step, so it is not state). A long convolution is the case ``k = seq_len``.
- Normalisers are state: linear attention carries ``z`` (``F`` numbers per head) beside ``S`` (``F x d_v``).
- An integer step counter (the position ``t``, needed by position-dependent biases) is bookkeeping, not model state;
  it is carried as an ``int64`` tensor and is *not* counted (only floating tensors count).

Each mixer also gives ``state_formula(seq_len)``, the closed form; tests check ``state_numbers == state_formula``.
"""

from __future__ import annotations

import torch
from torch import nn

from mqarkit.gpu.device import check_positive_int, resolve_device, resolve_dtype

State = dict[str, torch.Tensor]


def count_state_numbers(state: State) -> int:
    """Sum of ``numel()`` over the floating tensors of ``state`` (integer counters are bookkeeping, not counted)."""
    if not isinstance(state, dict):
        raise TypeError(f"state: must be a dict[str, Tensor], got {type(state).__name__}")
    return int(sum(t.numel() for t in state.values() if t.is_floating_point()))


class RecurrentMixer(nn.Module):
    """A sequence mixer ``(B, N, d) -> (B, N, d)`` with a parallel form, a naive reference and a recurrent form."""

    d_model: int

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """Naive, obviously-correct evaluation: ``x: (B, N, d) -> (B, N, d)``."""
        raise NotImplementedError(f"{type(self).__name__}.reference")

    def init_state(self, batch_size: int, *, device=None, dtype=None) -> State:
        """The state before the first step."""
        raise NotImplementedError(f"{type(self).__name__}.init_state")

    def step(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One recurrent step: ``x_t: (B, d) -> y_t: (B, d)`` and the new state (the old dict is not modified)."""
        raise NotImplementedError(f"{type(self).__name__}.step")

    def state_formula(self, seq_len: int) -> int:
        """Closed form of :meth:`state_numbers` (numbers per sequence after ``seq_len`` steps)."""
        raise NotImplementedError(f"{type(self).__name__}.state_formula")

    def _param_device_dtype(self) -> tuple[torch.device, torch.dtype]:
        p = next(self.parameters())
        return p.device, p.dtype

    def _state_device_dtype(self, device, dtype) -> tuple[torch.device, torch.dtype]:
        """``device`` / ``dtype`` of a new state: validated, defaulting to the parameters'."""
        dev, dt = self._param_device_dtype()
        return (dev if device is None else resolve_device(device)), (dt if dtype is None else resolve_dtype(dtype))

    def recurrent(self, x: torch.Tensor) -> torch.Tensor:
        """Run :meth:`step` over the sequence: ``x: (B, N, d) -> (B, N, d)``."""
        state = self.init_state(x.shape[0], device=x.device, dtype=x.dtype)
        outputs = []
        for t in range(x.shape[1]):
            y_t, state = self.step(x[:, t], state)
            outputs.append(y_t)
        return torch.stack(outputs, dim=1)

    @torch.no_grad()
    def state_numbers(self, seq_len: int) -> int:
        """Measured state: run ``seq_len`` steps on a batch of one, count the floating numbers carried at the end."""
        check_positive_int(seq_len, "seq_len")
        device, dtype = self._param_device_dtype()
        gen = torch.Generator(device="cpu").manual_seed(0)
        x = torch.randn(1, seq_len, self.d_model, generator=gen, dtype=dtype).to(device)
        state = self.init_state(1, device=device, dtype=dtype)
        for t in range(seq_len):
            _, state = self.step(x[:, t], state)
        return count_state_numbers(state)
