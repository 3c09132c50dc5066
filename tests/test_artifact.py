"""Stage caching: the same inputs and the same edgeft code are a cache hit; a change to either is a new folder. Outputs
appear whole, with the permissions the umask gives."""

from __future__ import annotations

import pytest

import shutil
from pathlib import Path

from edgeft import artifact
from edgeft.artifact import cached_stage


def _counting_build(runs: list[Path]):
    def build(folder: Path) -> dict:
        runs.append(folder)
        (folder / "weights.txt").write_text("trained", encoding="utf-8")
        return {"kind": "demo"}

    return build


def test_the_same_inputs_and_code_are_a_cache_hit(tmp_path):
    runs: list[Path] = []
    first = cached_stage(tmp_path, "demo", {"seed": 0}, _counting_build(runs))
    again = cached_stage(tmp_path, "demo", {"seed": 0}, _counting_build(runs))
    assert len(runs) == 1 and again.path == first.path and again.manifest["cache_hit"]


def test_edited_edgeft_code_never_reuses_an_artifact_the_old_code_made(tmp_path, monkeypatch):
    runs: list[Path] = []
    before = cached_stage(tmp_path, "demo", {"seed": 0}, _counting_build(runs))
    monkeypatch.setattr(artifact, "code_fingerprint", lambda: "sources after an edit")
    after = cached_stage(tmp_path, "demo", {"seed": 0}, _counting_build(runs))
    assert len(runs) == 2 and after.path != before.path and not after.manifest.get("cache_hit")


def test_the_code_fingerprint_changes_with_any_source_and_only_with_sources(tmp_path):
    package = tmp_path / "edgeft"
    shutil.copytree(Path(artifact.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    original = artifact.sources_digest(package)
    assert original == artifact.code_fingerprint()  # the copy is the installed package
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "pipeline.cpython-311.pyc").write_bytes(b"bytecode")
    assert artifact.sources_digest(package) == original
    loop = package / "stages" / "training.py"
    loop.write_text(loop.read_text(encoding="utf-8") + "\n# a one-line edit\n", encoding="utf-8")
    assert artifact.sources_digest(package) != original


@pytest.mark.parametrize("umask, folder_mode, file_mode", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)])
def test_outputs_get_the_permissions_the_umask_gives_not_the_temporary_files_private_ones(tmp_path, umask,
                                                                                         folder_mode, file_mode):
    import os
    import stat

    from edgeft.artifact import atomic_file_write, atomic_folder

    previous = os.umask(umask)
    try:
        with atomic_folder(tmp_path / "bundle") as tmp:
            (tmp / "model.onnx").write_bytes(b"x")
            # A writer that goes through a private temporary file of its own (safetensors does) leaves 0600.
            (tmp / "model.safetensors").write_bytes(b"x")
            os.chmod(tmp / "model.safetensors", 0o600)
            (tmp / "mobile").mkdir(mode=0o700)
        atomic_file_write(tmp_path / "bench.json", "{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "bundle").stat().st_mode) == folder_mode
    assert stat.S_IMODE((tmp_path / "bundle" / "mobile").stat().st_mode) == folder_mode
    for name in ("model.onnx", "model.safetensors"):
        assert stat.S_IMODE((tmp_path / "bundle" / name).stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "bench.json").stat().st_mode) == file_mode
