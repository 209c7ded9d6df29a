"""What importing the frontier costs: the package's lazy re-exports and the worker preload list (fresh interpreters)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import mqarkit.gpu
from mqarkit.gpu.frontier import WORKER_PRELOAD


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("name", mqarkit.gpu.__all__)
def test_every_reexport_resolves_to_its_submodule_object(name: str) -> None:
    module = importlib.import_module(f"mqarkit.gpu.{mqarkit.gpu._SUBMODULE[name]}")
    assert getattr(mqarkit.gpu, name) is getattr(module, name)
    assert name in dir(mqarkit.gpu)


def test_reexports_cover_all_and_unknown_names_fail() -> None:
    assert set(mqarkit.gpu._SUBMODULE) == set(mqarkit.gpu.__all__)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        mqarkit.gpu.not_a_name  # noqa: B018
    out = _run("from mqarkit.gpu import *; print(sorted(k for k in dir() if not k.startswith('_')))")
    assert out.strip() == repr(sorted(mqarkit.gpu.__all__))


def test_frontier_cli_loads_neither_exporter_nor_training_modules() -> None:
    """The parent of a multi-worker run needs presets and records only: no exporter (polynomials, networkx), no
    loaders, no training modules; the package alone loads no torch. (Triton may load: the presets' ModelConfig lives
    in mqarkit.gpu.frontier.model, which imports the fused trunk.)"""
    loaded = set(_run("import sys, mqarkit.gpu.frontier.cli; print(' '.join(sys.modules))").split())
    unwanted = {
        "networkx",
        "sympy",
        "mqarkit.polynomials",
        "mqarkit.gpu.export",
        "mqarkit.gpu.loaders",
        "mqarkit.gpu.golden",
        "mqarkit.gpu.mixers",
        "mqarkit.gpu.frontier.train",
        "mqarkit.gpu.frontier.cuda_graphs",
    }
    assert not (unwanted & loaded), sorted(unwanted & loaded)
    assert "torch" not in _run("import sys, mqarkit.gpu; print(' '.join(sys.modules))").split()


def test_worker_preload_imports_without_cuda_or_threads() -> None:
    """The forkserver imports WORKER_PRELOAD and forks the workers from itself: the modules must exist, and importing
    them must neither initialise CUDA (torch's state, and where a driver is installed the driver itself: a
    ``cuDeviceGetCount`` before ``cuInit`` answers 3, CUDA_ERROR_NOT_INITIALIZED) nor start Python threads."""
    code = (
        "import ctypes, threading, torch\n"
        f"for m in {list(WORKER_PRELOAD)!r}: __import__(m)\n"
        "try:\n"
        "    driver = ctypes.CDLL('libcuda.so.1').cuDeviceGetCount(ctypes.byref(ctypes.c_int()))\n"
        "except OSError:\n"
        "    driver = 3  # no driver installed: nothing to initialise\n"
        "print(torch.cuda.is_initialized(), driver, threading.active_count())\n"
    )
    assert _run(code).split() == ["False", "3", "1"]
