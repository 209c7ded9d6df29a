"""The frontier harness: train many MQAR models at once across state sizes and record their recall.

Its parts (each a module of this package): sweeps and model configs (:mod:`.sweep`), the shipped presets
(:mod:`.presets`), the results store (:mod:`.records`), the one-device runner (:mod:`.runner`) and the launchers
beyond one process (:mod:`.launchers`), the stacked model (:mod:`.model`), the optimiser (:mod:`.optim`), one training
step (:mod:`.steps`) and the training loop (:mod:`.train`), CUDA graphs (:mod:`.cuda_graphs`), the data generator
(:mod:`.data`), the figure (:mod:`.plot`), the command line (:mod:`.cli`), and the Triton kernels (:mod:`.kernels`).

The names below load on first access (PEP 562), so that importing one submodule does not load the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_SUBMODULE = {
    "ModelConfig": "model",
    "StackedHybrid": "model",
    "RunSpec": "sweep",
    "SweepConfig": "sweep",
    "groups": "sweep",
    "sweep_summary": "sweep",
    "PRESETS": "presets",
    "get_preset": "presets",
    "read_records": "records",
    "append_records": "records",
    "environment": "runner",
    "make_data": "runner",
    "run_groups": "runner",
    "run_sweeps": "runner",
    "elapsed_log": "runner",
    "WORKER_PRELOAD": "launchers",
    "run_multiprocess": "launchers",
    "run_ray": "launchers",
}

__all__ = [
    "ModelConfig",
    "PRESETS",
    "RunSpec",
    "StackedHybrid",
    "SweepConfig",
    "WORKER_PRELOAD",
    "append_records",
    "elapsed_log",
    "environment",
    "get_preset",
    "groups",
    "make_data",
    "read_records",
    "run_groups",
    "run_multiprocess",
    "run_ray",
    "run_sweeps",
    "sweep_summary",
]

if TYPE_CHECKING:  # for type checkers and editors; at run time the names come from __getattr__
    from mqarkit.gpu.frontier.launchers import WORKER_PRELOAD, run_multiprocess, run_ray
    from mqarkit.gpu.frontier.model import ModelConfig, StackedHybrid
    from mqarkit.gpu.frontier.presets import PRESETS, get_preset
    from mqarkit.gpu.frontier.records import append_records, read_records
    from mqarkit.gpu.frontier.runner import elapsed_log, environment, make_data, run_groups, run_sweeps
    from mqarkit.gpu.frontier.sweep import RunSpec, SweepConfig, groups, sweep_summary


def __getattr__(name: str) -> object:
    module = _SUBMODULE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
