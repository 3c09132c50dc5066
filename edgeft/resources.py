"""Where edgeft's data folders (targets/, calibration/) live: beside the package in a checkout, inside it in a wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    # A wheel carries the folders as edgeft/_data/<name> (see pyproject.toml); a checkout has them at the top level.
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    return _PACKAGE.parent / name


def list_resource_files(name: str, suffix: str) -> list[Path]:
    folder = resource_dir(name)
    return sorted(folder.glob(f"*{suffix}")) if folder.is_dir() else []
