"""The golden files ship with the package and equal the workspace's shared/golden; MQARKIT_GOLDEN_DIR chooses another
folder, with a clear error when it is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from mqarkit.golden_data import GOLDEN_DIR_ENV, PACKAGED_GOLDEN_DIR, golden_dir, golden_file, zoology_golden_dir


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_packaged_copy_equals_shared_golden(shared_dir: Path) -> None:
    packaged, shared = _files(PACKAGED_GOLDEN_DIR), _files(shared_dir / "golden")
    assert sorted(packaged) == sorted(shared)
    assert [name for name in packaged if packaged[name] != shared[name]] == []


def test_default_is_the_packaged_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GOLDEN_DIR_ENV, raising=False)
    assert golden_dir() == PACKAGED_GOLDEN_DIR
    assert golden_file("mqar_index.json") == PACKAGED_GOLDEN_DIR / "zoology" / "mqar_index.json"
    assert len(list(zoology_golden_dir().glob("*.npz"))) == 19


def test_the_environment_variable_chooses_the_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "zoology").mkdir()
    (tmp_path / "zoology" / "mqar_index.json").write_text("[]")
    monkeypatch.setenv(GOLDEN_DIR_ENV, str(tmp_path))
    assert golden_file("mqar_index.json").read_text() == "[]"
    with pytest.raises(FileNotFoundError, match=r"golden file 'mha_1head.npz' not found in .*MQARKIT_GOLDEN_DIR"):
        golden_file("mha_1head.npz")
    monkeypatch.setenv(GOLDEN_DIR_ENV, str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match=r"MQARKIT_GOLDEN_DIR='.*absent': not a folder; unset it"):
        golden_dir()
