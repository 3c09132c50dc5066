"""A device reached over SSH (`ssh://user@host[:port]`): copy bundles there, install the runtime if needed, run
`edgeft bench` (or `edgeft race`) there and pull the JSON back.

It uses the system's `ssh` and `scp` (the process boundary, so your ~/.ssh/config, agent and keys apply; extra
options go in EDGEFT_SSH_OPTIONS). A wheel of edgeft's base install is copied when the device lacks edgeft or has
another version. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeft import __version__
from edgeft.errors import BadInput, DeviceUnreachable, StageFailed
from edgeft.runtime.bundle import manifest_digest

# On the device, relative to the login's home (or absolute): venv/, bundles/, wheels/. EDGEFT_RUNNER_DIR overrides.
DEFAULT_RUNNER_DIR = ".edgeft-runner"
SSH_TIMEOUT_S = 15


@dataclass(frozen=True)
class SshDevice:
    user: str | None
    host: str
    port: int

    @property
    def target(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def _base(self, program: str) -> list[str]:
        port = ["-p", str(self.port)] if program == "ssh" else ["-P", str(self.port)]
        options = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={SSH_TIMEOUT_S}"]
        return [program, *port, *options, *shlex.split(os.environ.get("EDGEFT_SSH_OPTIONS", ""))]

    def run(self, command: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self._base("ssh"), self.target, command], capture_output=True, text=True,
                              timeout=timeout)

    def copy_to(self, local: Path, remote: str) -> None:
        done = subprocess.run([*self._base("scp"), "-q", "-r", str(local), f"{self.target}:{remote}"],
                              capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise StageFailed(f"scp of {local} to {self.target}:{remote} failed: {last_line(done.stderr)}")

    def copy_from(self, remote: str, local: Path) -> None:
        done = subprocess.run([*self._base("scp"), "-q", f"{self.target}:{remote}", str(local)],
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise StageFailed(f"scp of {self.target}:{remote} back failed: {last_line(done.stderr)}")

    @property
    def url(self) -> str:
        return f"ssh://{self.target}:{self.port}"


def probe(device: SshDevice) -> dict[str, Any]:
    """Reach the device and describe it as runtime.bench.host_description does (machine, cpu, isa), before any
    work: a build that will race on it must not find out after an hour's fine-tuning that it is unreachable."""
    script = ("echo edgeft-ok; uname -m; python3 -c 'import sys; print(sys.version.split()[0])'; "
              "grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || echo 'flags :'; "
              "grep -m1 -E '^(model name|Model)' /proc/cpuinfo 2>/dev/null || echo 'model name :'")
    done = device.run(script, timeout=SSH_TIMEOUT_S + 10)
    lines = done.stdout.splitlines()
    if done.returncode != 0 or not lines or lines[0] != "edgeft-ok" or len(lines) < 5:
        raise DeviceUnreachable(f"cannot reach {device.target} port {device.port} over ssh: "
                                f"{last_line(done.stderr) or 'no answer'}")
    flags = set(lines[3].split(":", 1)[-1].split())
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return {"machine": lines[1].strip(), "python": lines[2].strip(), "cpu": lines[4].split(":", 1)[-1].strip(),
            "isa": isa}


def bench_over_ssh(device: SshDevice, bundle: Path, data: Path | None, bench_args: list[str]) -> dict[str, Any]:
    """Copy, install if needed, bench on the device, and return its JSON (with where it ran)."""
    host = probe(device)
    home, edgeft = _runner(device)
    remote_bundle = _push_bundle(device, home, bundle)
    remote_data = []
    if data is not None:
        device.copy_to(data, f"{home}/{data.name}")
        remote_data = ["--data", f"{home}/{data.name}"]
    remote_json = f"{home}/bench-{manifest_digest(bundle)[:16]}.json"
    command = " ".join(shlex.quote(a) for a in [*remote_data, *bench_args])
    result = _run_and_fetch(device, f"{edgeft} bench {remote_bundle} --json {remote_json} {command}", remote_json,
                            "edgeft bench")
    result["device"] = {"kind": "ssh", "target": device.target, "port": device.port, "machine": host["machine"],
                        "bundle": remote_bundle}
    return result


def race_over_ssh(device: SshDevice, bundles: list[Path], texts: list[str], rounds: int, warmup: int,
                  threads: int) -> dict[str, Any]:
    """`edgeft race` on the device over these bundles (copied once each, by manifest digest) and texts."""
    home, edgeft = _runner(device)
    remote = [_push_bundle(device, home, b) for b in bundles]
    lines = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    # Named for what it races, so two builds racing on one device never read each other's files.
    name = "race-" + hashlib.sha256((lines + " ".join(remote)).encode("utf-8")).hexdigest()[:16]
    with tempfile.TemporaryDirectory() as tmp:
        local_texts = Path(tmp) / f"{name}.jsonl"
        local_texts.write_text(lines, encoding="utf-8")
        device.copy_to(local_texts, f"{home}/{name}.jsonl")
    remote_json = f"{home}/{name}.json"
    command = (f"{edgeft} race {' '.join(remote)} --texts {home}/{name}.jsonl --rounds {rounds} "
               f"--warmup {warmup} --threads {threads} --json {remote_json}")
    result = _run_and_fetch(device, command, remote_json, "edgeft race")
    result["device"] = {"kind": "ssh", "target": device.target, "port": device.port, "url": device.url}
    return result


def _runner(device: SshDevice) -> tuple[str, str]:
    """The runner folder on the device and its `edgeft`, installed from this edgeft's wheel if missing or another
    version."""
    home = runner_dir()
    edgeft = f"{home}/venv/bin/edgeft"
    version = device.run(f"{edgeft} --version 2>/dev/null || true").stdout.strip()
    if version != __version__:
        _install_runner(device, home)
    return home, edgeft


def _push_bundle(device: SshDevice, home: str, bundle: Path) -> str:
    """Copy a bundle to HOME/bundles/DIGEST unless it is there already; returns that path."""
    remote_bundle = f"{home}/bundles/{manifest_digest(bundle)[:16]}"
    if device.run(f"test -f {remote_bundle}/manifest.json").returncode != 0:
        device.run(f"rm -rf {remote_bundle}.tmp && mkdir -p {remote_bundle}.tmp")
        for item in bundle.iterdir():
            device.copy_to(item, f"{remote_bundle}.tmp/")
        # Renamed into place only when whole: a dropped connection never leaves a bundle that looks complete.
        if device.run(f"mv {remote_bundle}.tmp {remote_bundle}").returncode != 0:
            raise StageFailed(f"could not finish copying the bundle to {device.target}:{remote_bundle}")
    return remote_bundle


def _run_and_fetch(device: SshDevice, command: str, remote_json: str, what: str) -> dict[str, Any]:
    done = device.run(command)
    if done.returncode == 2:
        raise BadInput(f"on {device.target}: {last_line(done.stderr)}")
    if done.returncode != 0:
        raise StageFailed(f"{what} failed on {device.target}: {last_line(done.stderr)}")
    with tempfile.TemporaryDirectory() as tmp:
        device.copy_from(remote_json, Path(tmp) / "result.json")
        return json.loads((Path(tmp) / "result.json").read_text(encoding="utf-8"))


def runner_dir() -> str:
    return os.environ.get("EDGEFT_RUNNER_DIR", DEFAULT_RUNNER_DIR)


def _install_runner(device: SshDevice, home: str) -> None:
    """A wheel of this edgeft (base install: runtime only, no torch) into HOME/venv on the device."""
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _wheel(Path(tmp))
        device.run(f"mkdir -p {home}/wheels")
        device.copy_to(wheel, f"{home}/wheels/")
    install = f"python3 -m venv {home}/venv && {home}/venv/bin/pip install -q --upgrade {home}/wheels/{wheel.name}"
    done = device.run(install)
    if done.returncode != 0:
        raise StageFailed(f"installing edgeft on {device.target} failed: {last_line(done.stderr)}; the device "
                          f"needs python3 with venv and pip access to PyPI (or a mirror) for the runtime set")


def _wheel(out: Path) -> Path:
    """This installation's own wheel: from the source tree when running from one, else from a dist/ beside it."""
    source = Path(__file__).resolve().parents[2]  # edgeft/devices/ssh.py -> the source tree
    if (source / "pyproject.toml").is_file():
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
                              capture_output=True, text=True)
        if done.returncode == 0:
            return next(out.glob("edgeft-*.whl"))
        raise StageFailed(f"could not build edgeft's wheel for the device: {last_line(done.stderr)}")
    raise StageFailed("this edgeft was not installed from a source tree, so it cannot build the wheel to copy to the "
                      "device; install edgeft on the device yourself (pip install edgeft) and run again")


def last_line(text: str) -> str:
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1] if lines else ""
