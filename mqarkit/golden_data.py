"""Where the golden reference files are read from: the copy shipped in the package, or ``MQARKIT_GOLDEN_DIR``.

The golden files are outputs of the reference implementation (HazyResearch/zoology; ``mqarkit/golden/README.md`` says
how each was made): MQAR generator arrays that :mod:`mqarkit.zoology` must reproduce and mixer parameters and outputs
that :mod:`mqarkit.gpu.golden` must reproduce. They are the workspace's ``shared/golden/`` folder, copied into the
package (``mqarkit/golden/``, 0.5 MB, package data in ``pyproject.toml``) so that every install has them, a
non-editable ``pip install .`` included; ``tests/core/test_golden_data.py`` checks that the copy equals
``../shared/golden`` byte for byte wherever that folder sits beside the repository (under CI it must).

``MQARKIT_GOLDEN_DIR`` names another folder laid out the same way (``<folder>/zoology/...``), e.g. a newer set of
golden files to test against; it must exist.
"""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN_DIR_ENV = "MQARKIT_GOLDEN_DIR"
PACKAGED_GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def golden_dir() -> Path:
    """The folder of golden files: ``$MQARKIT_GOLDEN_DIR`` if set, else the packaged copy."""
    chosen = os.environ.get(GOLDEN_DIR_ENV)
    if chosen:
        path = Path(chosen)
        if not path.is_dir():
            raise FileNotFoundError(
                f"{GOLDEN_DIR_ENV}={chosen!r}: not a folder; unset it to use the golden files shipped with mqarkit "
                f"({PACKAGED_GOLDEN_DIR})"
            )
        return path
    if not PACKAGED_GOLDEN_DIR.is_dir():
        raise FileNotFoundError(
            f"the golden files shipped with mqarkit are missing from {PACKAGED_GOLDEN_DIR} (a broken install: "
            f"reinstall mqarkit), and {GOLDEN_DIR_ENV} is not set to a copy of them (e.g. shared/golden)"
        )
    return PACKAGED_GOLDEN_DIR


def zoology_golden_dir() -> Path:
    """``golden_dir() / "zoology"``: the reference implementation's files."""
    path = golden_dir() / "zoology"
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no zoology/ folder of golden files there (see {GOLDEN_DIR_ENV})")
    return path


def golden_file(name: str) -> Path:
    """``zoology_golden_dir() / name``, which must exist (the error names the folder and how to choose another)."""
    folder = zoology_golden_dir()
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(
            f"golden file {name!r} not found in {folder} (set {GOLDEN_DIR_ENV} to choose the folder)"
        )
    return path
