"""The frontier harness: train many MQAR models at once across state sizes and record their recall.

Its parts (each a module of this package): sweeps and model configs (:mod:`.sweep`), the shipped presets
(:mod:`.presets`), the results store (:mod:`.records`), the one-device runner (:mod:`.runner`) and the launchers
beyond one process (:mod:`.launchers`; Ray: :mod:`.ray_launcher`), what watches a run (:mod:`.observers`,
:mod:`.progress`, :mod:`.tracking`), the stacked model (:mod:`.model`), the optimiser (:mod:`.optim`), one training
step (:mod:`.steps`) and the training loop (:mod:`.train`), CUDA graphs (:mod:`.cuda_graphs`), the deterministic mode
(:mod:`.determinism`), the data generator (:mod:`.data`), the figure (:mod:`.plot`), the command line (:mod:`.cli`),
and the Triton kernels (:mod:`.kernels`).

The names below load on first access (PEP 562), so that importing one submodule does not load the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mqarkit.gpu.lazy_exports import lazy_exports

_SUBMODULE = {
    "ModelConfig": "config",
    "StackedHybrid": "model",
    "StackedMixer": "protocol",
    "Knob": "protocol",
    "FAMILIES": "families",
    "family_class": "families",
    "load_sweep_file": "sweep_file",
    "parse_sweeps": "sweep_file",
    "load_preset": "presets",
    "preset_names": "presets",
    "reduce": "presets",
    "RunSpec": "sweep",
    "SweepConfig": "sweep",
    "groups": "sweep",
    "sweep_summary": "sweep",
    "get_preset": "presets",
    "read_records": "records",
    "append_records": "records",
    "environment": "runner",
    "make_data": "runner",
    "run_groups": "runner",
    "run_sweeps": "runner",
    "run": "runner",
    "load_results": "results",
    "result_rows": "results",
    "frontier_figure": "plot",
    "draw": "plot",
    "elapsed_log": "runner",
    "WORKER_PRELOAD": "launchers",
    "run_multiprocess": "launchers",
    "run_ray": "ray_launcher",
    "RayTasksFailed": "ray_launcher",
    "Tracking": "tracking",
    "ProgressDisplay": "progress",
    "StackObserver": "observers",
    "deterministic_mode": "determinism",
    "deterministic_enabled": "determinism",
}

__all__ = [
    "FAMILIES",
    "Knob",
    "ModelConfig",
    "ProgressDisplay",
    "RayTasksFailed",
    "RunSpec",
    "StackedHybrid",
    "StackObserver",
    "StackedMixer",
    "SweepConfig",
    "Tracking",
    "WORKER_PRELOAD",
    "append_records",
    "deterministic_enabled",
    "deterministic_mode",
    "draw",
    "elapsed_log",
    "environment",
    "family_class",
    "frontier_figure",
    "get_preset",
    "groups",
    "load_preset",
    "load_results",
    "load_sweep_file",
    "make_data",
    "parse_sweeps",
    "preset_names",
    "read_records",
    "reduce",
    "result_rows",
    "run",
    "run_groups",
    "run_multiprocess",
    "run_ray",
    "run_sweeps",
    "sweep_summary",
]

if TYPE_CHECKING:  # for type checkers and editors; at run time the names come from __getattr__
    from mqarkit.gpu.frontier.config import ModelConfig
    from mqarkit.gpu.frontier.determinism import deterministic_enabled, deterministic_mode
    from mqarkit.gpu.frontier.families import FAMILIES, family_class
    from mqarkit.gpu.frontier.launchers import WORKER_PRELOAD, run_multiprocess
    from mqarkit.gpu.frontier.model import StackedHybrid
    from mqarkit.gpu.frontier.observers import StackObserver
    from mqarkit.gpu.frontier.plot import draw, frontier_figure
    from mqarkit.gpu.frontier.presets import get_preset, load_preset, preset_names, reduce
    from mqarkit.gpu.frontier.progress import ProgressDisplay
    from mqarkit.gpu.frontier.protocol import Knob, StackedMixer
    from mqarkit.gpu.frontier.ray_launcher import RayTasksFailed, run_ray
    from mqarkit.gpu.frontier.records import append_records, read_records
    from mqarkit.gpu.frontier.results import load_results, result_rows
    from mqarkit.gpu.frontier.runner import elapsed_log, environment, make_data, run, run_groups, run_sweeps
    from mqarkit.gpu.frontier.sweep import RunSpec, SweepConfig, groups, sweep_summary
    from mqarkit.gpu.frontier.sweep_file import load_sweep_file, parse_sweeps
    from mqarkit.gpu.frontier.tracking import Tracking


__getattr__, __dir__ = lazy_exports(__name__, _SUBMODULE)
