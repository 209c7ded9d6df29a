"""Checking that an output can be written, before any work is done.

A read-only or missing output folder used to be found only when the first result was written: after a group had
trained, or after every check of ``mqarkit verify`` had run. Commands call these checks first. Each creates the folder
(with its parents) when it is missing, then creates and removes a probe file in it, so a read-only file system, a
folder without write permission and a path through a regular file are all found; the error names the parameter
(``OutputNotWritableError``, a ``PermissionError``; a folder given where a file is needed, or the reverse, is a
``UsageError``, a ``ValueError``).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from mqarkit.errors import OutputNotWritableError, UsageError


def check_output_folder(folder: str | os.PathLike[str], *, parameter: str) -> Path:
    """Create ``folder`` if missing and check that files can be created in it; returns it as a ``Path``."""
    path = Path(folder)
    _check_folder(path, f"{parameter}={str(path)!r}", "")
    return path


def check_output_file(file: str | os.PathLike[str], *, parameter: str) -> Path:
    """Check that ``file`` can be written (created, or replaced if it exists), creating its folder if missing;
    returns it as a ``Path``. The file itself is not created."""
    path = Path(file)
    label = f"{parameter}={str(path)!r}"
    if path.is_dir():
        raise UsageError(f"{label}: is a folder; give a file path")
    _check_folder(path.parent, label, f"its folder {str(path.parent)!r} ")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputNotWritableError(f"{label}: the file exists and is not writable")
    return path


def _check_folder(path: Path, label: str, which: str) -> None:
    """The folder checks; messages start with ``label`` (``"out='runs/x.jsonl'"``) and name the folder as ``which``
    (empty when ``label`` names the folder itself)."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{label}: {which}is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as err:
        blocker = next((a for a in path.parents if a.exists() and not a.is_dir()), path)
        raise UsageError(f"{label}: {which}cannot be created: {str(blocker)!r} is a file") from err
    except OSError as err:
        raise OutputNotWritableError(f"{label}: {which}cannot be created ({err.strerror or err})") from err
    probe = path / f".mqarkit-write-probe-{os.getpid()}-{uuid.uuid4().hex}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as err:
        where = f"{which}is not writable" if which else "is not writable"
        raise OutputNotWritableError(f"{label}: {where} ({err.strerror or err})") from err
    os.close(fd)
    probe.unlink()
