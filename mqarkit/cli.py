"""The ``mqarkit`` command line.

Each sub-command lives in the module that owns its subject and exposes ``main(argv: list[str]) -> int``. This file
only dispatches, importing the owner lazily so that ``mqarkit --help`` and the core commands load neither torch nor
sympy.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module that owns it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "task": ("mqarkit.task_cli", "MQAR task utilities: `mqarkit task sample` prints a highlighted instance"),
    "verify": ("mqarkit.proofs_checks.verify", "run the claim registry's machine checks (the main job)"),
    "tables": ("mqarkit.proofs_checks.tables", "write the dimension-bound tables (Markdown, CSV, LaTeX)"),
    "frontier": ("mqarkit.gpu.frontier.cli", "train MQAR models across state sizes (GPU) and record results"),
    "plot": ("mqarkit.gpu.frontier.plot", "draw the state-size-vs-recall frontier from recorded results"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    if not argv or argv[0] in ("-h", "--help", "--version"):
        parser.parse_args(argv or ["--help"])
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        parser.error(f"unknown command {command!r}; choose from {', '.join(COMMANDS)}")
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
