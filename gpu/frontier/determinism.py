"""The harness's deterministic mode: the same sweep, seeds and machine give bitwise the same records, run after run.

Without it, a GPU run is *not* bitwise reproducible even with every seed fixed (the harness seeds each run's weights,
the data and the batch order from explicit generators; it never seeds a global RNG): some CUDA kernels add in an
order that depends on thread timing, so the last bits of a gradient change from one run to the next and training
amplifies them. ``benchmarks/determinism.py`` measures how much (``docs/results/determinism.md``).

What :func:`deterministic_mode` turns on, for the process, while it is active:

- ``torch.use_deterministic_algorithms(True)`` (strict, not ``warn_only``): torch's CUDA ops that add with atomics
  take their deterministic form, and an op that has none raises instead of running. In this harness that concerns
  the embedding's and the query-row gather's backward (``index_put_`` with accumulation), the gradient of duplicated
  query rows in the fused trunk's backward (``index_add_``), ``scatter_`` with repeated positions, and
  ``scaled_dot_product_attention``'s backward (the memory-efficient kernel without its split over keys; the cuDNN
  backend is not chosen). From torch 2.6 on, ``torch.cumsum`` on CUDA has a deterministic form too. torch also turns
  on Inductor's deterministic mode with it (no choice of kernel configurations by timing); for torch versions that
  do not, :data:`ENVIRONMENT` sets ``TORCHINDUCTOR_DETERMINISTIC=1`` and the config flag is set where Inductor is
  loaded already.
- ``CUBLAS_WORKSPACE_CONFIG=:4096:8``: cuBLAS is reproducible only with a fixed workspace, and it reads the variable
  when its handle is created, so it must be in the environment before CUDA work starts in the process (the command,
  each ``--devices`` worker and the benchmark set it there; :func:`deterministic_mode` refuses a process whose CUDA is
  already initialised without it).
- ``torch.backends.cudnn.deterministic = True``, ``torch.backends.cudnn.benchmark = False``.
- ``torch.utils.deterministic.fill_uninitialized_memory`` stays torch's default (on): ``torch.empty`` then fills its
  memory, so a kernel that read memory it never wrote would still read the same values.

What needed no change: our Triton kernels (``kernels/fused_head.py``, ``fused_trunk.py``, ``fused_adamw.py``) have no
atomics and no autotuning (every output has one writer; parameter gradients are summed from per-program slots by
torch), and fla's kernels on the paths the families call (``parallel_based``; the chunked GLA, simple GLA, delta-rule
and RWKV kernels) use no atomic adds. CUDA graphs replay the same kernels, so they stay on.

What remains not guaranteed, even in this mode:

- fla's chunked kernels (``gla``, ``mamba2`` through simple GLA, ``delta_net``, ``gated_delta_net``, ``rwkv7``; not
  ``based``, whose kernel has fixed tile sizes) choose their tile configuration with ``triton.autotune``, by timing,
  the first time a shape is seen; Triton caches the choice on disk (fla's ``FLA_CACHE_RESULTS=1``, its default,
  which this mode sets), so later runs on the machine reuse it, but a run with a cold cache may choose another
  configuration, which can change the order of float additions;
- ``torch.cumsum`` inside compiled code (Based's plain-torch Taylor attention, where fla's kernel does not serve;
  the ``mamba`` torch scan and the recurrences of ``families/recurrences.py`` are kept out of compilation and run
  torch's own, deterministic, ``cumsum``): Inductor generates its own scan there, which pytorch issue 190946
  reports adding in a timing-dependent order even in deterministic mode, in torch versions before its fix;
- another GPU model, driver, CUDA, torch, Triton or fla version, or another number of runs in a stack (batched
  kernels may tile differently), may give other bits: the mode makes one setup repeat itself, it does not make
  setups agree;
- a plain ``nn.Module`` mixer (``mixer = ...``) is the user's code: torch's ops in it are held to the mode, its own
  kernels are not.

The cost in speed is measured, not assumed: ``docs/results/determinism.md``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch

CUBLAS_VARIABLE = "CUBLAS_WORKSPACE_CONFIG"
DETERMINISTIC_CUBLAS_CONFIGS = (":4096:8", ":16:8")  # the values NVIDIA documents as reproducible
ENVIRONMENT = {  # set before CUDA (and Inductor) start in a deterministic process
    CUBLAS_VARIABLE: DETERMINISTIC_CUBLAS_CONFIGS[0],
    "TORCHINDUCTOR_DETERMINISTIC": "1",
    "FLA_CACHE_RESULTS": "1",
}


def check_flag(deterministic: object, parameter: str = "deterministic") -> bool:
    """``deterministic`` itself, or a ``ValueError`` naming ``parameter`` (a bool is required, not a truthy value)."""
    if not isinstance(deterministic, bool):
        raise ValueError(f"{parameter}={deterministic!r}: needs true or false")
    return deterministic


def check_environment(environ: dict[str, str] | None = None) -> None:
    """``CUBLAS_WORKSPACE_CONFIG``, where set, is a reproducible value; else a ``ValueError`` naming it and the rule."""
    value = (os.environ if environ is None else environ).get(CUBLAS_VARIABLE)
    if value is not None and value not in DETERMINISTIC_CUBLAS_CONFIGS:
        raise ValueError(
            f"{CUBLAS_VARIABLE}={value!r}: deterministic mode needs one of {list(DETERMINISTIC_CUBLAS_CONFIGS)} "
            "(or the variable unset, and it sets :4096:8)"
        )


def prepare_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Add :data:`ENVIRONMENT` to ``environ`` (default ``os.environ``) where a variable is unset; returns ``environ``.
    For a process about to start (a worker, a benchmark's child) or this one before it uses CUDA."""
    environ = os.environ if environ is None else environ
    check_environment(environ)
    for name, value in ENVIRONMENT.items():
        environ.setdefault(name, value)
    return environ


def deterministic_enabled() -> bool:
    """Whether the harness runs deterministically now: torch's deterministic algorithms are on and strict, and the
    cuBLAS workspace is a reproducible one. What a record's ``deterministic`` field says."""
    return (
        torch.are_deterministic_algorithms_enabled()
        and not torch.is_deterministic_algorithms_warn_only_enabled()
        and os.environ.get(CUBLAS_VARIABLE) in DETERMINISTIC_CUBLAS_CONFIGS
    )


@contextmanager
def deterministic_mode(on: bool = True) -> Iterator[None]:
    """Run the block in deterministic mode (see the module docstring); with ``on=False`` change nothing. The torch
    and cuDNN flags are restored afterwards; the environment variables stay (cuBLAS has read them)."""
    check_flag(on, "deterministic")
    if not on:
        yield
        return
    had_cublas = os.environ.get(CUBLAS_VARIABLE) is not None
    check_environment()
    if not had_cublas and torch.cuda.is_initialized():
        raise ValueError(
            f"deterministic=True: this process initialised CUDA before {CUBLAS_VARIABLE} was set, so cuBLAS may "
            f"already run with a workspace that is not reproducible; set {CUBLAS_VARIABLE}=:4096:8 in the "
            "environment before starting Python (the mqarkit command does this itself)"
        )
    prepare_environment()
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        _inductor_deterministic(),
    )
    torch.use_deterministic_algorithms(True, warn_only=False)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    _set_inductor_deterministic(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
        _set_inductor_deterministic(saved[4])


def _inductor_config():
    """Inductor's config module where it is loaded already, else None (importing it here would start CUDA's driver in
    a process that must not, e.g. the launchers' fork server)."""
    config = sys.modules.get("torch._inductor.config")
    return config if config is not None and hasattr(config, "deterministic") else None


def _inductor_deterministic() -> bool | None:
    config = _inductor_config()
    return None if config is None else config.deterministic


def _set_inductor_deterministic(value: bool | None) -> None:
    config = _inductor_config()
    if config is not None and value is not None:
        config.deterministic = value
