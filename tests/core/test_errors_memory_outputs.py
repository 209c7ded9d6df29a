"""The error contract of the CLI, the memory guard and the output checks (mqarkit.errors, .memory, .outputs, .cli)."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from mqarkit import memory
from mqarkit.cli import COMMANDS, main
from mqarkit.errors import OutputNotWritableError, TooLargeError, UsageError, usage_errors
from mqarkit.outputs import check_output_file, check_output_folder


def test_refusals_are_both_usage_errors_and_their_builtin_kind() -> None:
    assert issubclass(TooLargeError, UsageError) and issubclass(TooLargeError, MemoryError)
    assert issubclass(OutputNotWritableError, UsageError) and issubclass(OutputNotWritableError, PermissionError)
    assert issubclass(UsageError, ValueError)
    with pytest.raises(UsageError, match="x=1: bad") as info, usage_errors():
        raise TypeError("x=1: bad")
    assert isinstance(info.value.__cause__, TypeError)
    with pytest.raises(KeyError), usage_errors():  # not a refusal of input: passes through
        raise KeyError("k")


def test_format_bytes() -> None:
    assert [memory.format_bytes(b) for b in (512, 1536, 3 * 2**30, 29.1 * 2**40)] == [
        "512 B",
        "1.5 KiB",
        "3 GiB",
        "29.1 TiB",
    ]


def test_check_memory_refuses_above_what_is_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 2**30)
    memory.check_memory(2**30, parameter="n=1", what="the arrays")
    with pytest.raises(TooLargeError, match=r"^n=2: the arrays need at least 2 GiB of memory; 1 GiB are available$"):
        memory.check_memory(2**31, parameter="n=2", what="the arrays")
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: None)  # unknown: no refusal
    memory.check_memory(2**80, parameter="n=3", what="the arrays")


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="reads Linux's /proc/meminfo")
def test_available_memory_is_read_on_linux() -> None:
    available = memory.available_memory_bytes()
    assert available is not None and 0 < available <= memory._physical_memory()


def test_output_checks(tmp_path: Path) -> None:
    assert check_output_folder(tmp_path / "a" / "b", parameter="--out") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir() and list((tmp_path / "a" / "b").iterdir()) == []  # the probe is gone
    assert check_output_file(tmp_path / "c" / "r.json", parameter="--json") == tmp_path / "c" / "r.json"
    (tmp_path / "f").write_text("")
    with pytest.raises(UsageError, match=r"--json='.*f/x/r\.json': its folder '.*f/x' cannot be created: '.*f' is a"):
        check_output_file(tmp_path / "f" / "x" / "r.json", parameter="--json")
    with pytest.raises(UsageError, match=r"--out='.*f': is a file, not a folder"):
        check_output_folder(tmp_path / "f", parameter="--out")
    with pytest.raises(UsageError, match=r"--json='.*a': is a folder; give a file path"):
        check_output_file(tmp_path / "a", parameter="--json")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_check_refuses_a_read_only_folder(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir(mode=0o500)
    try:
        with pytest.raises(OutputNotWritableError, match=r"--out='.*ro': is not writable"):
            check_output_folder(tmp_path / "ro", parameter="--out")
    finally:
        (tmp_path / "ro").chmod(0o700)


@pytest.fixture
def fake_command(monkeypatch: pytest.MonkeyPatch):
    """``mqarkit fake`` runs ``behaviour()`` (set by the test)."""
    module = types.ModuleType("mqarkit_fake_command")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(COMMANDS, "fake", (module.__name__, "a test command"))

    def set_behaviour(behaviour) -> None:
        module.main = lambda argv: behaviour()

    return set_behaviour


def test_a_usage_error_is_one_line_and_exit_2(fake_command, capsys: pytest.CaptureFixture[str]) -> None:
    def refuse() -> int:
        raise UsageError("size=3: must\nbe even")

    fake_command(refuse)
    assert main(["fake"]) == 2
    assert capsys.readouterr().err == "mqarkit fake: error: size=3: must be even\n"


def test_a_bug_keeps_its_traceback(fake_command) -> None:
    def bug() -> int:
        raise ValueError("an internal inconsistency")

    fake_command(bug)
    with pytest.raises(ValueError, match="an internal inconsistency"):
        main(["fake"])


def test_ctrl_c_exits_130_with_one_line(fake_command, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted() -> int:
        raise KeyboardInterrupt

    fake_command(interrupted)
    assert main(["fake"]) == 130
    assert capsys.readouterr().err == "mqarkit fake: interrupted\n"
