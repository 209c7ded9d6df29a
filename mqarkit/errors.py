"""The exception types that mark a request as the user's mistake, and the one place the CLI turns them into exit 2.

Validators everywhere raise ``ValueError`` (or ``TypeError`` for a wrong type) naming the parameter and the rule it
broke (CONTRIBUTING.md). A ``ValueError`` can also come from a bug, so the command line does not treat every
``ValueError`` as the user's: a command validates its arguments inside :func:`usage_errors`, which re-raises what the
validators raise there as :class:`UsageError`, and the dispatcher (:mod:`mqarkit.cli`) prints a :class:`UsageError` as
one line and exits 2. Anything else raised later is a bug and keeps its traceback.

Two refusals happen where the work starts rather than in a command's argument handling, so they are
:class:`UsageError` from the start: a size whose memory need exceeds what the machine has (:class:`TooLargeError`,
also a ``MemoryError``) and an output path that cannot be written (:class:`OutputNotWritableError`, also a
``PermissionError``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class UsageError(ValueError):
    """Bad input from the user; the message names the parameter and the rule (the CLI prints it and exits 2).

    ``prog``: the command that refused it (e.g. ``"mqarkit task sample"``), where the raiser knows it better than the
    dispatcher (argument parsers of sub-commands); ``None`` lets the dispatcher name the command."""

    def __init__(self, message: str, *, prog: str | None = None) -> None:
        super().__init__(message)
        self.prog = prog


class TooLargeError(UsageError, MemoryError):
    """A size whose memory need (an estimate, stated in the message) exceeds the memory available."""


class OutputNotWritableError(UsageError, PermissionError):
    """An output path that cannot be created or written (checked before any work starts)."""


@contextmanager
def usage_errors() -> Iterator[None]:
    """Inside this block, ``ValueError``, ``TypeError`` and ``OSError`` are the user's input being refused: they are
    re-raised as :class:`UsageError` with the same message (the original is chained)."""
    try:
        yield
    except UsageError:
        raise
    except (ValueError, TypeError, OSError) as err:
        raise UsageError(str(err)) from err


def one_line(message: object) -> str:
    """``message`` with its whitespace (newlines included) collapsed: what the CLI prints after ``error:``."""
    return " ".join(str(message).split())
