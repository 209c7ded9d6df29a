"""The harness of the bad-input tests: each row is one bad input and the outcome it must have.

- :class:`ApiCase`: a call that must raise exactly ``error`` (the class itself, not a subclass or a parent: a
  ``TooLargeError`` row fails if a plain ``ValueError`` comes, and the reverse), with a message that contains ``names``
  (the parameter, as the caller wrote it);
- :class:`CliCase`: a command line that must exit 2 with exactly one line on stderr, ``mqarkit <command>...: error:
  ...`` containing ``names``, and no traceback. ``argv`` may hold ``{file}``, replaced by the path of an existing
  regular file (so that ``{file}/x`` is a path whose folder cannot be created), and ``{dir}``, an existing folder.

Rows live in the test modules (``tests/test_bad_inputs.py``; other areas can add their own tables with these
helpers: ``from bad_inputs import ApiCase, CliCase, assert_api_refuses, assert_cli_refuses``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mqarkit.cli import COMMANDS, main


@dataclass(frozen=True)
class ApiCase:
    id: str
    error: type[BaseException]
    names: str
    call: Callable[[], object]


@dataclass(frozen=True)
class CliCase:
    id: str
    argv: tuple[str, ...]
    names: str


def api_params(cases: list[ApiCase]) -> list:
    return [pytest.param(case, id=case.id) for case in cases]


def cli_params(cases: list[CliCase]) -> list:
    return [pytest.param(case, id=case.id) for case in cases]


def assert_api_refuses(case: ApiCase) -> None:
    with pytest.raises(BaseException) as info:  # the exact class is asserted below
        case.call()
    err = info.value
    assert type(err) is case.error, f"{case.id}: raised {type(err).__name__}: {err}; expected {case.error.__name__}"
    assert case.names in str(err), f"{case.id}: the message does not name {case.names!r}: {err}"


def assert_cli_refuses(case: CliCase, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    argv = [a.format(file=tmp_path / "a_file", dir=tmp_path) for a in case.argv]
    assert main(argv) == 2, f"{case.id}: exit status"
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"{case.id}: stderr has {len(lines)} lines: {err!r}"
    prog, _, message = lines[0].partition(": error: ")
    assert prog.startswith(f"mqarkit {argv[0]}" if argv[0] in COMMANDS else "mqarkit"), lines[0]
    assert case.names in message, f"{case.id}: the message does not name {case.names!r}: {lines[0]}"
