"""Torch mixers, weight loaders, measured state size and the frontier harness (imports torch, never sympy).

Mixers are batch-first ``(B, N, d)`` ``nn.Module``s with a fast path, a naive ``reference`` and a recurrent
``step`` mode; ``state_numbers(seq_len)`` is measured from the tensors the recurrent mode carries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mqarkit.gpu.lazy_exports import lazy_exports

# The re-exports load on first access (PEP 562): importing a submodule such as ``mqarkit.gpu.frontier.runner`` runs this
# file first, and eager imports here would make every such import pay for the loaders and the exporter (which pull in
# ``mqarkit.polynomials`` and networkx) whether it needs them or not.
_SUBMODULE = {
    "CONTRACTS": "golden",
    "BaseConv": "mixers",
    "BasedLinearAttention": "mixers",
    "LoadedModel": "loaders",
    "RecurrentMixer": "state",
    "SelectiveSSM": "mixers",
    "SlidingWindowAttention": "mixers",
    "SoftmaxAttention": "mixers",
    "count_state_numbers": "state",
    "export_state_dict": "export",
    "fit_report": "export",
    "load": "loaders",
    "load_contract": "golden",
}

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

if TYPE_CHECKING:  # for type checkers and editors; at run time the names come from __getattr__
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


__getattr__, __dir__ = lazy_exports(__name__, _SUBMODULE)
