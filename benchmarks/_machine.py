"""The CPU a benchmark ran on, for its results file (imported by the CPU benchmark scripts of this folder, which
``python benchmarks/<script>.py`` puts on ``sys.path``)."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_name(fallback: str) -> str:
    """The ``model name`` of ``/proc/cpuinfo``; else ``platform.processor()``, else ``fallback``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or fallback
