"""What every fla (flash-linear-attention, ``fla-core``) path of the frontier shares: the switch and the lazy import.

fla is an optional extra (``pip install "mqarkit[gpu]"``): pure Python over Triton, so it imports only where Triton
does, and its kernels serve CUDA tensors only. Each wrapper beside this module imports its fla op on first use
(:func:`fla_op`) and serves a call only where :func:`fla_enabled` says so; elsewhere (the CPU, no fla, or
``MQARKIT_FLA=0``) the family's own plain-torch path runs. Where fla refuses the gated part of its chunked backward
(:func:`gated_backward_refused`), our torch form of that one function can serve in its place (:func:`gated_backward`).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from collections.abc import Callable

import torch

HALF = (torch.bfloat16, torch.float16)  # the dtypes fla's kernels serve here (for float32 their products run in tf32)
SWITCH = "MQARKIT_FLA"  # "0" turns every fla path off (the plain-torch paths then run everywhere)
# "0": where fla refuses its gated backward, no torch form of its refused kernel either (Mamba-2 and Gated DeltaNet
# then take their plain-torch paths there, Gated DeltaNet unless in its DPLR trial: fla_delta.gated_route)
TORCH_BACKWARD_SWITCH = "MQARKIT_FLA_TORCH_BACKWARD"
BACKEND_TYPE = "mqarkit_torch"  # the name of this package's forms in fla's backend registry


def fla_enabled(device: torch.device) -> bool:
    """Whether fla may serve tensors on ``device``: CUDA and not turned off by ``MQARKIT_FLA=0``."""
    return device.type == "cuda" and os.environ.get(SWITCH, "1") != "0"


@functools.cache
def fla_op(module: str, name: str) -> Callable | None:
    """fla's ``module.name`` (``fla_op("fla.ops.gla", "chunk_gla")``), or None when fla (or Triton) does not import."""
    try:
        return getattr(importlib.import_module(module), name)
    except Exception:  # any import failure (no fla, no triton, no GPU build) means: not available
        return None


def fla_call(module: str, name: str) -> Callable:
    """fla's ``module.name``; a ``RuntimeError`` if it does not import (callers check availability first)."""
    fn = fla_op(module, name)
    if fn is None:
        raise RuntimeError(f"{module}.{name}: fla (flash-linear-attention) is not importable")
    return fn


@functools.cache
def gated_backward_refused() -> bool:
    """Whether fla refuses the backward of its gated chunked kernels here: fla 0.6's ``chunk_bwd_dqkwg`` with a gate
    (simple GLA, the gated delta rule) raises on Hopper GPUs with triton >= 3.4 and < 3.7.1 (wrong results, fla
    issue #640) unless tilelang serves it. fla's own flags decide (``fla.utils``); where it refuses,
    :func:`gated_backward` says what serves instead."""
    try:
        from fla.utils import IS_NVIDIA_HOPPER, TRITON_ABOVE_3_4_0, TRITON_ABOVE_3_7_1
    except Exception:  # fla or its flags absent: its paths are unavailable anyway (fla_op says so)
        return False
    broken = IS_NVIDIA_HOPPER and TRITON_ABOVE_3_4_0 and not TRITON_ABOVE_3_7_1
    return bool(broken) and importlib.util.find_spec("tilelang") is None


def gated_backward() -> str | None:
    """Who computes the one refusable function of fla's gated backward (``chunk_bwd_dqkwg``) here: ``"fla"`` (its own
    kernel: not refused), ``"torch"`` (refused, and this package's form of it, :mod:`.fla_dqkwg`, registered with fla
    in its place; Mamba-2's op and the gated delta rule's take it, :mod:`.fla_delta`), or None (refused,
    and that form switched off by ``MQARKIT_FLA_TORCH_BACKWARD=0``: fla's gated ops do not serve)."""
    if not gated_backward_refused():
        return "fla"
    return "torch" if os.environ.get(TORCH_BACKWARD_SWITCH, "1") != "0" else None


def register_torch_form(operation: str, function: str, serves: Callable, form: Callable) -> None:
    """Register ``form`` in fla's backend registry (``fla.backends``) as the implementation of ``function`` in
    ``operation``'s registry, for the calls ``serves`` accepts (fla's verifier contract: ``(accepted, reason)``); fla
    tries it before its Triton default. Each registration replaces an earlier one of this package for ``operation``."""
    from fla.backends import BaseBackend, register

    backend = type(
        f"MqarkitTorch_{function}",
        (BaseBackend,),
        {
            "backend_type": BACKEND_TYPE,
            f"{function}_verifier": lambda self, *args, **kwargs: serves(*args, **kwargs),
            function: lambda self, *args, **kwargs: form(*args, **kwargs),
        },
    )
    register(operation)(backend)
