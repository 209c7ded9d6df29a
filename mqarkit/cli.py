"""The ``mqarkit`` command line.

Each sub-command lives in the module that owns its subject and exposes ``main(argv: list[str]) -> int``. This file
only dispatches, importing the owner lazily so that ``mqarkit --help`` and the core commands load neither torch nor
sympy.

Errors (one contract for every command): a :class:`~mqarkit.errors.UsageError` raised by a command (its argument
parser, if it is a :class:`CommandParser`; its validation, inside :func:`~mqarkit.errors.usage_errors`; a size refused
for memory; an output that cannot be written) is printed as one line, ``mqarkit <command>: error: <message>``, on
stderr, and the exit status is 2 (:func:`report_usage_error`). The dispatcher does it for every command; a command's
``main`` decorated with :func:`reports_usage_errors` does it itself too, so that calling it directly (tests,
``python -m``) behaves the same. Any other exception is a bug and keeps its traceback. Ctrl-C exits 130 with one line.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
from collections.abc import Callable
from typing import NoReturn

from mqarkit.errors import UsageError, one_line

# command -> (module that owns it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "task": ("mqarkit.task_cli", "MQAR task utilities: `mqarkit task sample` prints a highlighted instance"),
    "verify": ("mqarkit.proofs_checks.verify", "run the claim registry's machine checks (the main job)"),
    "tables": ("mqarkit.proofs_checks.tables", "write the dimension-bound tables (Markdown, CSV, LaTeX)"),
    "frontier": ("mqarkit.gpu.frontier.cli", "train MQAR models across state sizes (GPU) and record results"),
    "plot": ("mqarkit.gpu.frontier.plot", "draw the state-size-vs-recall frontier from recorded results"),
    "export": ("mqarkit.gpu.export_cli", "write a construction as a reference (zoology) checkpoint that recalls"),
}


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are :class:`UsageError` (one line from the dispatcher, exit 2) instead of
    argparse's usage text and ``sys.exit(2)``. Sub-parsers made by ``add_subparsers`` inherit the class."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)", prog=self.prog)


def report_usage_error(err: UsageError, prog: str) -> int:
    """Print ``err`` as ``<prog>: error: <message>`` on one line of stderr; returns the exit status, 2."""
    print(f"{err.prog or prog}: error: {one_line(err)}", file=sys.stderr)
    return 2


def reports_usage_errors(prog: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorate a command's ``main(argv) -> int`` so that a :class:`UsageError` becomes one line and exit status 2."""

    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            try:
                return main(argv)
            except UsageError as err:
                return report_usage_error(err, prog)

        return run

    return decorate


def parse_command(
    parser: argparse.ArgumentParser, argv: list[str] | None, subcommand: str
) -> tuple[argparse.Namespace | None, int]:
    """``argv`` (default ``sys.argv[1:]``) parsed by a command with sub-commands stored at ``subcommand``:
    ``(args, 0)``, or ``(None, status)`` when there is nothing to run: ``--help`` (0), no sub-command (help printed,
    2)."""
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help
        return None, int(exc.code or 0)
    if getattr(args, subcommand) is None:
        parser.print_help()
        return None, 2
    return args, 0


def run_as_script(main: Callable[[list[str] | None], object], prog: str) -> int:
    """The exit status of a ``python -m`` script: ``main(None)`` run, a :class:`UsageError` printed as one line (2),
    else 0. For scripts whose ``main`` returns data rather than a status (the GPU check scripts)."""
    try:
        main(None)
    except UsageError as err:
        return report_usage_error(err, prog)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="mqarkit",
        description="Executable theory of associative recall (MQAR) in efficient sequence models.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `mqarkit <command> --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"mqarkit {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _version() -> str:
    from mqarkit import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    prog = parser.prog
    try:
        if not argv or argv[0] in ("-h", "--help", "--version"):
            parser.parse_args(argv or ["--help"])
            return 0
        command, rest = argv[0], argv[1:]
        if command not in COMMANDS:
            parser.error(f"unknown command {command!r}; choose from {', '.join(COMMANDS)}")
        prog = f"{parser.prog} {command}"
        module = importlib.import_module(COMMANDS[command][0])
        return int(module.main(rest) or 0)
    except UsageError as err:
        return report_usage_error(err, prog)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
