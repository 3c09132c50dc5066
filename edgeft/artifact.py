"""Artifacts: folders with a `manifest.json` written last, built in a temporary sibling and renamed into place.

A crash, Ctrl-C or kill therefore never leaves a half-written folder under the final name and never damages an
earlier one; leftovers are hidden `.NAME.tmp-*` siblings, removed by the next run.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeft.errors import BadInput

MANIFEST = "manifest.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def hash_tree(folder: Path, skip: tuple[str, ...] = (MANIFEST,)) -> dict[str, str]:
    """sha256 of every file under `folder`, keyed by its POSIX path relative to it."""
    return {p.relative_to(folder).as_posix(): sha256_file(p)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in skip}


def library_versions(*names: str) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"{folder} has no {MANIFEST}; it is not an edgeft artifact (build one with `edgeft build`)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInput(f"{path} is unreadable ({exc}); rebuild the artifact") from None


def write_manifest(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Add the hashes of every file already in `folder`, then write the manifest. Call it last."""
    manifest = {**manifest, "files": hash_tree(folder)}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    return manifest


def check_output_folder(out: Path) -> None:
    """Refuse to replace a folder that is not ours: `--out .` must never wipe a user's project, nor a web app whose
    own manifest.json happens to share our file name."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not _is_edgeft_output(out))):
        raise BadInput(f"--out {out} exists and is not an edgeft output folder; choose a new or empty folder")


def _is_edgeft_output(folder: Path) -> bool:
    """A manifest that write_manifest wrote: an object with the hashes of the folder's files and edgeft's stage or
    version (a bundle, or a fine-tuned / distilled model folder)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(manifest, dict) and isinstance(manifest.get("files"), dict)
            and ("stage" in manifest or "edgeft_version" in manifest))


@contextlib.contextmanager
def atomic_folder(out: Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces `out`, on any error it is removed and `out` untouched."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        _open_up(tmp)
        _replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace(new: Path, out: Path) -> None:
    # os.rename cannot replace a non-empty folder: move the old one aside first, then drop it once the new is in place.
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.tmp-old-{os.getpid()}")
        os.rename(out, old)
    os.rename(new, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _open_up(folder: Path) -> None:
    """The permissions the umask gives, for the folder and all in it: mkdtemp's 0700 is for the unfinished folder,
    and writers that go through a temporary file of their own (safetensors) leave 0600 behind."""
    mask = _umask()
    os.chmod(folder, 0o777 & ~mask)
    for path in folder.rglob("*"):
        if not path.is_symlink():
            os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def check_output_file(path: Path | None, flag: str) -> None:
    """Before any work: an output file's path must not be a folder (checked up front, so that a bench or a gate does
    not measure for minutes and then fail to write)."""
    if path is not None and path.is_dir():
        raise BadInput(f"{flag} {path} is a folder; pass a file path (for example {path / 'out.json'})")


def atomic_file_write(path: Path, text: str) -> None:
    """Write a file so that readers see the old content or the new, never a half-written one."""
    check_output_file(path, "the output")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # as open() would have made it; mkstemp's 0600 hides it from CI uploaders
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Artifact:
    """A finished artifact folder and its manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @classmethod
    def open(cls, path: Path) -> Artifact:
        return cls(path, read_manifest(path))


@functools.cache
def code_fingerprint() -> str:
    """sha256 over edgeft's own Python sources. Stage keys include it, so a cached artifact is reused only by the code
    that made it: an edited training loop or exporter, or an upgrade, never serves a stale model. Any edit counts,
    which is conservative: the cost of a false change is a rebuild, never a wrong result."""
    return sources_digest(Path(__file__).resolve().parent)


def sources_digest(package: Path) -> str:
    """sha256 over the `.py` files under `package`, keyed by relative path (bytecode caches do not count)."""
    return sha256_json({p.relative_to(package).as_posix(): sha256_file(p) for p in sorted(package.rglob("*.py"))})


def stage_key(stage: str, key_material: dict[str, Any]) -> str:
    return sha256_json({"stage": stage, "edgeft_code": code_fingerprint(), **key_material})


def cached_stage(work_dir: Path, stage: str, key_material: dict[str, Any],
                 build: Callable[[Path], dict[str, Any]], publish: bool = True) -> Artifact:
    """Run `build(tmp)` into `work_dir/<stage>-<key>` unless a finished artifact with the same key is there.

    `key_material` holds everything the output depends on (parent manifest hash, spec, seed, versions; stage_key adds
    edgeft's own code), so the same inputs are a cache hit and any change is a new folder. `build` fills tmp and
    returns the manifest body.
    `publish=False` (the non-first processes of a multi-process run) builds into a throwaway folder and returns the
    path where the first process publishes the same artifact.
    """
    key = stage_key(stage, key_material)
    out = work_dir / f"{stage}-{key[:16]}"
    if (out / MANIFEST).is_file():
        manifest = read_manifest(out)
        if manifest.get("cache_key") == key:
            return Artifact(out, {**manifest, "cache_hit": True})
    if not publish:
        with tempfile.TemporaryDirectory(prefix=f".{stage}-rank-") as tmp:
            build(Path(tmp))
        return Artifact(out, {})
    started = time.perf_counter()
    with atomic_folder(out) as tmp:
        body = build(tmp)
        manifest = write_manifest(tmp, {"stage": stage, "cache_key": key, **body,
                                        "seconds": round(time.perf_counter() - started, 3)})
    return Artifact(out, manifest)
