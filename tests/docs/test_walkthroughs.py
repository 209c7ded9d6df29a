"""The walkthroughs execute: every ```python block of each docs/walkthroughs/*.md runs, in order, in one namespace.

Blocks fenced as ```python run; ```text / ```bash / ```console blocks are shown, not run (GPU commands are shown with
their committed results). Numbers a walkthrough states are asserted by its own code blocks, so a stale number fails
here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
WALKTHROUGHS = sorted((DOCS / "walkthroughs").glob("*.md"))
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[str]:
    return FENCE.findall(path.read_text())


@pytest.mark.parametrize("path", WALKTHROUGHS, ids=[p.stem for p in WALKTHROUGHS])
def test_walkthrough_executes(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(path)
    assert blocks, f"{path.name} has no python blocks"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict[str, object] = {"__name__": f"walkthrough_{path.stem}", "DOCS_DIR": DOCS}
    for index, block in enumerate(blocks):
        code = compile(block, f"{path.name}[block {index}]", "exec")
        exec(code, namespace)


def test_there_are_walkthroughs() -> None:
    assert WALKTHROUGHS, "docs/walkthroughs/ holds no walkthrough"


def test_mkdocs_nav_lists_every_walkthrough() -> None:
    nav = (DOCS.parent / "mkdocs.yml").read_text()
    missing = [p.name for p in WALKTHROUGHS if f"walkthroughs/{p.name}" not in nav]
    assert not missing, f"walkthroughs missing from mkdocs.yml nav: {missing}"


@pytest.mark.skipif(os.environ.get("MQARKIT_SKIP_MKDOCS") == "1", reason="MQARKIT_SKIP_MKDOCS=1")
def test_mkdocs_builds_strict(tmp_path: Path) -> None:
    mkdocs = pytest.importorskip("mkdocs")
    del mkdocs
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=DOCS.parent,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
