"""Torch mixers, weight loaders, measured state size and the frontier harness (imports torch, never sympy).

Mixers are batch-first ``(B, N, d)`` ``nn.Module``s with a fast path, a naive ``reference`` and a recurrent
``step`` mode; ``state_numbers(seq_len)`` is measured from the tensors the recurrent mode carries.
"""

from mqarkit.gpu.export import export_state_dict, fit_report
from mqarkit.gpu.golden import CONTRACTS, load_contract
from mqarkit.gpu.loaders import LoadedModel, load
from mqarkit.gpu.mixers import (
    BaseConv,
    BasedLinearAttention,
    SelectiveSSM,
    SlidingWindowAttention,
    SoftmaxAttention,
)
from mqarkit.gpu.state import RecurrentMixer, count_state_numbers

__all__ = [
    "CONTRACTS",
    "BaseConv",
    "BasedLinearAttention",
    "LoadedModel",
    "RecurrentMixer",
    "SelectiveSSM",
    "SlidingWindowAttention",
    "SoftmaxAttention",
    "count_state_numbers",
    "export_state_dict",
    "fit_report",
    "load",
    "load_contract",
]
