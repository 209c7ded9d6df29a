"""Test configuration: hypothesis profiles, the `gpu` marker and the workspace's `../shared` folder.

Hypothesis profile, chosen by the environment variable ``MQARKIT_HYPOTHESIS_PROFILE``; when it is unset the profile is
``ci`` if ``CI`` is set (as in `.ci/run`) and ``dev`` otherwise:

- ``ci``: derandomised, few examples, no example database: fast and reproducible;
- ``dev``: random, more examples, local database;
- ``exhaustive``: many examples, for a long local run.

``--report-as-you-go``: print each test's outcome, duration and failure the moment it ends, for runs that a time limit
may cut short (a lent GPU machine's command limit): pytest's own summary, which holds the failures, comes only at the
end and is lost with a killed run.

``shared_dir``: the workspace's ``shared/`` folder beside the repository, for the few tests that compare against it.
Where it is absent such a test skips, except under ``CI`` (whose checkout has it), where it fails: a missing folder
must not turn into a silently green run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=15,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("exhaustive", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _profile() -> str:
    chosen = os.environ.get("MQARKIT_HYPOTHESIS_PROFILE")
    if chosen:
        return chosen
    return "ci" if os.environ.get("CI") else "dev"


settings.load_profile(_profile())


SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def shared_dir() -> Path:
    """``<repository>/../shared``; skips when absent, fails instead under ``CI``."""
    if not SHARED_DIR.is_dir():
        message = f"the workspace's shared folder is not at {SHARED_DIR}"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI must have it)")
        pytest.skip(message)
    return SHARED_DIR


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--report-as-you-go",
        action="store_true",
        help="print each test's outcome, duration and failure as soon as it ends (for runs a time limit may cut)",
    )


class ReportAsYouGo:
    """The ``--report-as-you-go`` plugin (see the module docstring)."""

    failure_chars = 3000  # the end of a failure's report, where the assertion's message is

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not (report.when == "call" or report.failed):
            return
        print(f"\n== {report.outcome.upper()} {report.nodeid} ({report.when}, {report.duration:.1f} s)", flush=True)
        if report.failed:
            print(str(report.longrepr)[-self.failure_chars :], flush=True)


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--report-as-you-go"):
        config.pluginmanager.register(ReportAsYouGo(), "report-as-you-go")


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _cuda_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU (marked `gpu`)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip_gpu)
