"""Index of the torch mixers (one module per mixer; this module only gathers them).

Every mixer maps ``x: (B, N, d_model) -> (B, N, d_model)`` and offers ``forward`` (fast path), ``reference``
(naive), ``init_state`` / ``step`` / ``recurrent`` (recurrent form), ``state_numbers`` (measured, see
:mod:`mqarkit.gpu.state` for the unit and policy) and ``state_formula`` (closed form).
"""

from __future__ import annotations

from mqarkit.gpu.mixers.attention import SlidingWindowAttention, SoftmaxAttention
from mqarkit.gpu.mixers.baseconv import BaseConv
from mqarkit.gpu.mixers.based import BasedLinearAttention
from mqarkit.gpu.mixers.ssm import SelectiveSSM
from mqarkit.gpu.state import RecurrentMixer, count_state_numbers

__all__ = [
    "BaseConv",
    "BasedLinearAttention",
    "RecurrentMixer",
    "SelectiveSSM",
    "SlidingWindowAttention",
    "SoftmaxAttention",
    "count_state_numbers",
]
