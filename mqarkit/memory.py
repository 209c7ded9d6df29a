"""Refusing sizes the machine cannot hold, before allocating: an estimate against the memory available.

A size that needs more memory than the machine has fails late and badly when nothing checks it: NumPy raises a bare
``MemoryError`` after minutes of work, or (with the kernel's overcommit) the process is killed by the out-of-memory
killer with no message at all. Functions that allocate from user sizes (task generators, constructions' dense
weights, torch mixers, scale checks) call :func:`check_memory` first with a **lower bound** of their peak need (the
arrays that must exist at once), so a request is refused only when it certainly cannot fit, and the message states the
estimate and what is available.

Available memory (:func:`available_memory_bytes`): the least of Linux's ``MemAvailable`` and the room left under the
process's cgroup limit (v2 ``memory.max - memory.current``, v1 ``memory.limit_in_bytes - memory.usage_in_bytes``:
containers and CI runners limit memory there); elsewhere the physical memory (``sysconf``); ``None`` (no check) where
nothing can be read.
"""

from __future__ import annotations

import os
from pathlib import Path

from mqarkit.errors import TooLargeError

UNLIMITED = 1 << 60  # cgroup limits at or above this are "no limit" (v1 reports 2^63 rounded down to a page)
_CGROUP_FILES = (
    (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),
    (Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"), Path("/sys/fs/cgroup/memory/memory.usage_in_bytes")),
)


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # cgroup v2 writes "max" for no limit


def _meminfo_available() -> int | None:
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024  # kB
    return None


def _cgroup_room() -> int | None:
    for limit_file, usage_file in _CGROUP_FILES:
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < UNLIMITED:
            return max(0, limit - usage)
    return None


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def available_memory_bytes() -> int | None:
    """Bytes this process can still allocate (see the module docstring), or ``None`` when unknown."""
    known = [b for b in (_meminfo_available(), _cgroup_room()) if b is not None]
    if known:
        return min(known)
    return _physical_memory()


def format_bytes(num_bytes: float) -> str:
    """``29.1 TiB``, ``512 B``: binary units, three significant digits."""
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def check_memory(num_bytes: int, *, parameter: str, what: str) -> None:
    """Raise :class:`TooLargeError` when ``num_bytes`` (a lower bound of the peak need of ``what``) exceeds the memory
    available. ``parameter`` names the size that drives it, as ``"name=value"``; the message reads e.g.
    ``num_examples=10000000000: the inputs and labels need at least 4.66 TiB of memory; 20.1 GiB are available``."""
    available = available_memory_bytes()
    if available is not None and num_bytes > available:
        raise TooLargeError(
            f"{parameter}: {what} need at least {format_bytes(num_bytes)} of memory; "
            f"{format_bytes(available)} are available"
        )
