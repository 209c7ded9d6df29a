"""``mqarkit frontier --help`` (and ``list``, ``run``) and ``mqarkit plot --help``: every flag says what it does, and
the frontier's help names the presets and the families."""

from __future__ import annotations

import argparse

import pytest

from mqarkit.gpu.frontier import FAMILIES, preset_names
from mqarkit.gpu.frontier.cli import build_parser as frontier_parser
from mqarkit.gpu.frontier.plot import build_parser as plot_parser


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and every sub-command parser under it."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _parsers(sub)
    return found


@pytest.mark.parametrize("make", [frontier_parser, plot_parser], ids=["frontier", "plot"])
def test_every_flag_has_help(make):
    parsers = _parsers(make())
    flags = [(p.prog, a) for p in parsers for a in p._actions if not isinstance(a, argparse._SubParsersAction)]
    assert len(flags) >= 5
    missing = [(prog, a.option_strings or a.dest) for prog, a in flags if not a.help or a.help == argparse.SUPPRESS]
    assert missing == []


def test_frontier_sub_commands_have_help():
    (subs,) = [a for a in frontier_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    expected = {"list": True, "run": True, "compare": True, "merge": True}
    assert {c.dest: bool(c.help) for c in subs._choices_actions} == expected


@pytest.mark.parametrize("path", [[], ["list"], ["run"]], ids=["frontier", "list", "run"])
def test_help_names_presets_and_families(path):
    parser = frontier_parser()
    for name in path:
        (subs,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = subs.choices[name]
    text = " ".join(parser.format_help().split())
    assert all(name in text for name in preset_names()) and all(family in text for family in FAMILIES)
