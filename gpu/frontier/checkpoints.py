"""A stack's training state on disk, so that a stack stopped between epochs resumes where it stopped.

A sweep already resumes by run (the runs with a record are skipped); this keeps the epochs of a stack that was
training when its process ended (a command's time limit on a lent GPU, a kill): after an epoch,
:func:`~mqarkit.gpu.frontier.train.train_stack` saves the weights, the optimiser's moments and step count, the data
generator's state, which runs are still training and the results so far, at most every ``seconds`` (default
:data:`CHECKPOINT_SECONDS`, or ``$MQARKIT_CHECKPOINT_SECONDS``); on the next call it loads them and trains the epochs
that are left, with the same batches in the same order as an uninterrupted stack. The runner keeps one file per stack
beside the results file (``RESULTS.jsonl.stacks/<name>.pt``, :func:`stacks_folder`) and deletes it once the stack's
records are written.

The file is written to a temporary name and renamed over the old one (a kill leaves the old or the new, never half of
one). It is named by the stack (its runs and everything that shapes their training) and holds a key that adds the
package's code (``source_digest``); on load the key is checked, and a file that cannot be read or has another key (the
stack's state under an older code) is kept, renamed ``<name>.<time>.unused``, and reported, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

CHECKPOINT_SECONDS = 60.0  # the least time between two saves of one stack (an epoch of a fast stack takes 2-5 s)
SECONDS_VARIABLE = "MQARKIT_CHECKPOINT_SECONDS"  # overrides it (0: after every epoch)


def checkpoint_seconds() -> float:
    """:data:`CHECKPOINT_SECONDS`, or the number in ``$MQARKIT_CHECKPOINT_SECONDS`` (a ``ValueError`` naming it if that
    is not a number >= 0)."""
    text = os.environ.get(SECONDS_VARIABLE)
    if text is None:
        return CHECKPOINT_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value >= 0 and value != float("inf")):
        raise ValueError(f"{SECONDS_VARIABLE}={text!r}: needs a finite number of seconds >= 0")
    return value


def stacks_folder(results: str | os.PathLike[str]) -> Path:
    """Where the runner keeps the saved states of the stacks that train into the results file ``results``."""
    return Path(f"{results}.stacks")


def stack_key(fields: dict) -> str:
    """A digest of ``fields`` (JSON with sorted keys): what makes a stack's training, and the code that trains it."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:32]


class StackCheckpoint:
    """The training state of the stack ``name`` at ``folder / f"{name}.pt"``, valid for ``key`` (module docstring)."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        name: str,
        key: str,
        *,
        seconds: float | None = None,
        log: Callable | None = None,
    ):
        seconds = checkpoint_seconds() if seconds is None else seconds
        if not (seconds >= 0):
            raise ValueError(f"seconds={seconds}: needs a number >= 0")
        self.path = Path(folder) / f"{name}.pt"
        self.key = key
        self.seconds = seconds
        self.log = log
        self._last_save = time.monotonic()

    def exists(self) -> bool:
        """Whether a saved state is on disk (not checked until :meth:`load`)."""
        return self.path.exists()

    def load(self) -> dict | None:
        """The saved state, or ``None`` when there is none (or it cannot be used: then kept as ``.unused``)."""
        if not self.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)  # tensors, numbers, lists, strings
            if not isinstance(state, dict) or state.get("key") != self.key:
                raise ValueError("its key is not this stack's and code's")
        except Exception as exc:  # whatever makes a file unusable (unpickling, a truncated file, a wrong key)
            kept = self.path.with_name(f"{self.path.stem}.{time.time_ns()}.unused")  # never over an earlier one
            os.replace(self.path, kept)
            self._report(f"{self.path}: not used ({exc}); kept as {kept}, the stack starts from epoch 0")
            return None
        return state

    def due(self) -> bool:
        """Whether :attr:`seconds` have passed since the last save (or since this object was made)."""
        return time.monotonic() - self._last_save >= self.seconds

    def save(self, state: dict) -> None:
        """Write ``state`` (with the key) atomically: a temporary file in the same folder, flushed, then renamed."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as fh:
            torch.save({**state, "key": self.key}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self._last_save = time.monotonic()

    def remove(self) -> None:
        """Delete the file (the stack's records are written), and the folder once it is empty."""
        self.path.unlink(missing_ok=True)
        try:
            self.path.parent.rmdir()
        except OSError:  # other stacks' files remain (or it was never made)
            pass

    def _report(self, message: str) -> None:
        if self.log is not None:
            self.log(message)
        else:
            warnings.warn(message, stacklevel=3)
