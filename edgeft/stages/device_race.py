"""The candidate race on the device itself (`edgeft build --bench-device`), for targets whose hardware the build host
lacks (arm64, mobile) or whenever the real device should decide.

Each candidate that passed the accuracy check becomes a small bundle (its model in the shipped format, the tokenizer
files with the bundle's input policy, labels, a manifest), so the device runs exactly what it would ship:

- `ssh://user@host[:port]`: the bundles and the dev texts are copied over and `edgeft race` times them there, batch
  1, interleaved, as the local race does (runtime.race). The fastest within the accuracy budget ships.
- `qemu-arm64`: emulated latency is not a device's, so nothing is timed. Each candidate, in the profile's preference
  order, predicts a few dozen dev texts on the emulated aarch64 onnxruntime (about 1 s a text for int8 models); the
  first whose labels (NER: entity spans) there agree with this host's on at least `AGREEMENT` of them ships.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeft.artifact import Artifact, write_manifest
from edgeft.backends import backend
from edgeft.devices import parse_device
from edgeft.devices.ssh import SshDevice
from edgeft.errors import BadInput
from edgeft.profile import Runtime, TargetProfile
from edgeft.stages.package import bundle_spec
from edgeft.stages.tokenizer_files import write_input_policy
from edgeft.stages.torch_model import TOKENIZER_FILES

# Dev texts each candidate predicts on the emulator: enough to see a broken int8 kernel, few enough for ~1 s a text.
EMULATED_TEXTS = 32
# The share of those texts whose label must be the same on the emulated device as here (the arm64 checks' rule).
AGREEMENT = 0.9


@dataclass(frozen=True)
class BenchDevice:
    """Where the build's candidates are checked: a device reached over SSH (`host` as probed), or the emulator."""

    spec: str
    ssh: SshDevice | None = None
    host: dict[str, Any] | None = None

    @property
    def emulated(self) -> bool:
        return self.ssh is None

    @property
    def where(self) -> str:
        if self.ssh is None:
            return "qemu-arm64 (emulated aarch64: labels only, never latency)"
        return f"{self.ssh.url} ({self.host['machine']}, {self.host['cpu'] or 'cpu unknown'})"


def open_bench_device(spec: str, profile: TargetProfile, task: str) -> BenchDevice | None:
    """Before any work: reach the device and check it is the target's hardware (BadInput, exit 2, if not;
    DeviceUnreachable, exit 3, if it cannot be reached). `local` means no device."""
    where = parse_device(spec, "--bench-device")
    if where == "local":
        return None
    if where == "qemu-arm64":
        from edgeft.devices.qemu import arm64_root

        if profile.isa.value != "arm64":
            raise BadInput(f"--bench-device qemu-arm64 emulates aarch64, but target '{profile.name}' is built for "
                           f"{profile.isa.value}; use it with the arm64 or mobile target")
        arm64_root()
        return BenchDevice(spec)
    from edgeft.devices.ssh import probe

    host = probe(where)
    if not profile.hardware_present(host):
        raise BadInput(f"--bench-device {spec} is {host['machine']} ({', '.join(host['isa']) or 'no x86 SIMD flags'}"
                       f"), not the {profile.isa.value} hardware of target '{profile.name}': its latency would not be "
                       f"the target's; race on a device of that kind")
    return BenchDevice(spec, where, host)


def write_candidate_bundle(folder: Path, name: str, artifact: Artifact, profile: TargetProfile, runtime: Runtime,
                           labels: list[str], task: str, check_texts: list[str]) -> Path:
    """Turn `folder` (holding the candidate's model in the shipped format) into a bundle `edgeft race` can load."""
    model_file = folder / backend(runtime).MODEL_FILES[profile.format]
    for file in TOKENIZER_FILES:
        if (artifact.path / file).is_file():
            shutil.copy2(artifact.path / file, folder / file)
    write_input_policy(folder, profile.input, check_texts)
    (folder / "labels.json").write_text(json.dumps({"labels": labels}, indent=2) + "\n", encoding="utf-8")
    spec = bundle_spec(profile, runtime, model_file.name, labels, folder, task)
    write_manifest(folder, {"stage": "candidate", "kind": "bundle", "candidate": name, "bundle": spec})
    return folder


def race_on_device(device: BenchDevice, bundles: dict[str, Path], texts: list[str], rounds: int,
                   threads: int) -> dict[str, Any]:
    """`edgeft race` over SSH: {"models": {name: percentiles}, "host": the device, ...} (runtime.race's JSON)."""
    from edgeft.devices.ssh import race_over_ssh

    assert device.ssh is not None
    result = race_over_ssh(device.ssh, list(bundles.values()), texts, rounds, warmup=len(texts), threads=threads)
    missing = set(bundles) - set(result.get("models", {}))
    if missing:
        raise BadInput(f"edgeft race on {device.ssh.url} returned no figures for {sorted(missing)}")
    return result


def labels_here_and_on_emulator(bundles: dict[str, Path], texts: list[str]) -> tuple[dict[str, list[str]],
                                                                                     dict[str, Any]]:
    """Each bundle's decisions at batch 1 (labels; NER: entity spans) on this host and on the emulated aarch64
    runtime."""
    import edgeft.runtime
    from edgeft.devices.qemu import labels_on_qemu_arm64

    here = {}
    for name, folder in bundles.items():
        bundle = edgeft.runtime.load(folder)
        here[name] = bundle.decisions(texts)
        del bundle
    return here, labels_on_qemu_arm64(list(bundles.values()), texts)
