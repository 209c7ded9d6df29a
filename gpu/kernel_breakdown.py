"""Where a profiled step's GPU time goes: its CUDA kernels summed by kind.

``torch.profiler``'s ``key_averages()`` lists CPU ops (``aten::mul``) and the kernels they launched (``void
at::native::elementwise_kernel<…>``), each op's self device time being its kernels' again: only the kernel rows
(``device_type`` CUDA, not user annotations) are summed here, so nothing is counted twice. A kernel's kind is read
from its name:

- ``fla``, ``mqarkit``: a Triton kernel defined in fla's modules or in ours (the names of the ``triton.jit``
  functions of the loaded ``fla.*`` and ``mqarkit.*`` modules, :func:`triton_kernel_names`);
- ``inductor``: a kernel that ``torch.compile`` generated (inductor names them ``triton_poi_…``, ``triton_red_…``,
  ``triton_per_…``, ``triton_tem_…``);
- ``matmul``: cuBLAS / CUTLASS GEMMs (``gemm``, ``nvjet``, ``cutlass``, ``xmma`` in the name);
- ``fft``: cuFFT's kernels;
- ``aten``: PyTorch's own eager kernels (``at::native``, ``at_cuda_detail``: elementwise passes, reductions, copies,
  index operations);
- ``memcpy/memset``: the runtime's copies and fills;
- ``other``: the rest (cuDNN, unnamed).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping

import torch

KINDS = ("fla", "mqarkit", "inductor", "matmul", "fft", "aten", "memcpy/memset", "other")
INDUCTOR_PREFIXES = ("triton_poi_", "triton_red_", "triton_per_", "triton_tem_")
MATMUL_MARKS = ("gemm", "nvjet", "cutlass", "xmma")
ATEN_MARKS = ("at::native", "at_cuda_detail")
WRAPPERS = 4  # the most decorators unwrapped to reach a triton.jit function


def triton_kernel_names() -> dict[str, str]:
    """``{kernel name: "fla" | "mqarkit"}`` for the ``triton.jit`` functions (plain, autotuned or with heuristics: the
    wrapped function's name is the launched kernel's) of the loaded ``fla.*`` and ``mqarkit.*`` modules; empty
    without triton."""
    try:
        from triton.runtime.jit import JITFunction
    except ImportError:  # pragma: no cover - depends on the environment
        return {}
    names: dict[str, str] = {}
    for module_name, module in list(sys.modules.items()):
        owner = module_name.split(".")[0]
        if owner not in ("fla", "mqarkit") or module is None:
            continue
        for value in list(vars(module).values()):
            for _ in range(WRAPPERS):  # Autotuner / Heuristics wrap the JITFunction, each as its .fn
                if isinstance(value, JITFunction) or not hasattr(value, "fn"):
                    break
                value = value.fn
            if isinstance(value, JITFunction):
                names[value.fn.__name__] = owner
    return names


def kernel_kind(name: str, triton_names: Mapping[str, str]) -> str:
    """The kind (one of :data:`KINDS`) of a CUDA kernel named ``name``."""
    if name in triton_names:
        return triton_names[name]
    lowered = name.lower()
    if name.startswith(INDUCTOR_PREFIXES):
        return "inductor"
    if any(mark in lowered for mark in MATMUL_MARKS):
        return "matmul"
    if "fft" in lowered:
        return "fft"
    if any(mark in name for mark in ATEN_MARKS):
        return "aten"
    if lowered.startswith(("memcpy", "memset")):
        return "memcpy/memset"
    return "other"


def breakdown(events: Iterable, triton_names: Mapping[str, str]) -> dict[str, float]:
    """``{kind: milliseconds}`` of the CUDA kernels among ``events`` (a profiler's ``key_averages()``), every kind of
    :data:`KINDS` present (0 where none ran), and ``"total"``."""
    out = dict.fromkeys(KINDS, 0.0)
    for event in events:
        if event.device_type != torch.autograd.DeviceType.CUDA or getattr(event, "is_user_annotation", False):
            continue
        out[kernel_kind(event.key, triton_names)] += event.self_device_time_total / 1e3  # µs -> ms
    out["total"] = sum(out[kind] for kind in KINDS)
    return out


def shares(ms: Mapping[str, float]) -> str:
    """``"aten 88%, fla 8%, …"``: the kinds of a :func:`breakdown` with any time, largest first, of its total."""
    total = ms["total"]
    if total <= 0:
        return "no CUDA kernels"
    ranked = sorted((kind for kind in KINDS if ms[kind] > 0), key=lambda kind: -ms[kind])
    return ", ".join(f"{kind} {100 * ms[kind] / total:.0f}%" for kind in ranked)
