"""A device reached over SSH (`ssh://user@host[:port]`): copy bundles there, install the runtime if needed, run
`edgeft bench` (or `edgeft race`) there and pull the JSON back.

It uses the system's `ssh` and `scp` (the process boundary, so your ~/.ssh/config, agent and keys apply; extra
options go in EDGEFT_SSH_OPTIONS). A wheel of edgeft's base install is copied when the device lacks edgeft or has
another version. Nothing here imports torch.
"""

from __future__ import annotations

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


def bench_over_ssh(device: SshDevice, bundle: Path, data: Path | None, bench_args: list[str]) -> dict[str, Any]:
    """Copy, install if needed, bench on the device, and return its JSON (with where it ran)."""
    probe = device.run("echo edgeft-ok; uname -m; python3 -c 'import sys; print(sys.version.split()[0])'",
                       timeout=SSH_TIMEOUT_S + 10)
    if probe.returncode != 0 or "edgeft-ok" not in probe.stdout:
        raise DeviceUnreachable(f"cannot reach {device.target} port {device.port} over ssh: "
                                f"{last_line(probe.stderr) or 'no answer'}")
    machine = probe.stdout.split()[1] if len(probe.stdout.split()) > 1 else "?"
    home = runner_dir()
    edgeft = f"{home}/venv/bin/edgeft"
    version = device.run(f"{edgeft} --version 2>/dev/null || true").stdout.strip()
    if version != __version__:
        _install_runner(device, home)
    digest = manifest_digest(bundle)[:16]
    remote_bundle = f"{home}/bundles/{digest}"
    if device.run(f"test -f {remote_bundle}/manifest.json").returncode != 0:
        device.run(f"rm -rf {remote_bundle}.tmp && mkdir -p {remote_bundle}.tmp")
        for item in bundle.iterdir():
            device.copy_to(item, f"{remote_bundle}.tmp/")
        # Renamed into place only when whole: a dropped connection never leaves a bundle that looks complete.
        if device.run(f"mv {remote_bundle}.tmp {remote_bundle}").returncode != 0:
            raise StageFailed(f"could not finish copying the bundle to {device.target}:{remote_bundle}")
    remote_data = []
    if data is not None:
        device.copy_to(data, f"{home}/{data.name}")
        remote_data = ["--data", f"{home}/{data.name}"]
    remote_json = f"{home}/bench-{digest}.json"
    command = " ".join(shlex.quote(a) for a in [*remote_data, *bench_args])
    done = device.run(f"{edgeft} bench {remote_bundle} --json {remote_json} {command}")
    if done.returncode == 2:
        raise BadInput(f"on {device.target}: {last_line(done.stderr)}")
    if done.returncode != 0:
        raise StageFailed(f"edgeft bench failed on {device.target}: {last_line(done.stderr)}")
    with tempfile.TemporaryDirectory() as tmp:
        device.copy_from(remote_json, Path(tmp) / "bench.json")
        result = json.loads((Path(tmp) / "bench.json").read_text(encoding="utf-8"))
    result["device"] = {"kind": "ssh", "target": device.target, "port": device.port, "machine": machine,
                        "bundle": remote_bundle}
    return result


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
