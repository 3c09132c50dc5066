"""The emulated aarch64 runtime (QEMU user mode, `make arm64-runtime`): a bundle's predictions and accuracy on a real
aarch64 onnxruntime. Emulated latency is not a device's, so nothing here is timed."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from edgeft.devices.ssh import last_line
from edgeft.errors import DeviceUnreachable, StageFailed


# Runs inside the emulated aarch64 python: the bundle's held-out samples, batch 1 (dynamic int8 scales depend on
# batching), accuracy (NER: entity F1 over the words' tags) and agreement with the build's own predictions (labels;
# NER: every word's tag of a sentence). No timing: emulated latency is not a device's.
_QEMU_SCRIPT = """
import json, platform, sys
import onnxruntime
import edgeft.runtime
from edgeft.metrics import classification_metrics
from edgeft.runtime.entities import entity_metrics
from edgeft.runtime.samples import SAMPLES_FILE
bundle = edgeft.runtime.load(sys.argv[1])
rows = [json.loads(l) for l in (bundle.path / SAMPLES_FILE).read_text(encoding="utf-8").splitlines() if l.strip()]
if bundle.task == "ner":
    words = [r["words"] for r in rows]
    tagged = bundle.tags(words, batch_size=1)
    metrics = entity_metrics([r["tags"] for r in rows], tagged)
    agree = sum(t == r["predicted"] for t, r in zip(tagged, rows)) / len(rows)
else:
    predicted = bundle.logits([r["text"] for r in rows], batch_size=1).argmax(-1).tolist()
    index = {label: i for i, label in enumerate(bundle.labels)}
    metrics = classification_metrics([index[r["label"]] for r in rows], predicted, bundle.labels)
    agree = sum(bundle.labels[p] == r["predicted"] for p, r in zip(predicted, rows)) / len(rows)
print(json.dumps({"machine": platform.machine(), "onnxruntime": onnxruntime.__version__, "metrics": metrics,
                  "agreement_with_build": agree, "texts": len(rows), "target": bundle.target, "task": bundle.task}))
"""


# Runs inside the emulated aarch64 python: each candidate bundle's decisions for the given texts, batch 1 (labels;
# NER: entity spans).
_QEMU_LABELS_SCRIPT = """
import json, platform, sys
import onnxruntime
import edgeft.runtime
from edgeft.runtime.race import race_name, read_texts
from pathlib import Path
texts = read_texts(Path(sys.argv[1]))
labels = {}
for folder in sys.argv[2:]:
    bundle = edgeft.runtime.load(folder)
    labels[race_name(bundle)] = bundle.decisions(texts)
print(json.dumps({"machine": platform.machine(), "onnxruntime": onnxruntime.__version__, "labels": labels}))
"""


def arm64_root() -> Path:
    """The emulated aarch64 runtime's folder; DeviceUnreachable (exit 3) with the fix when it is not set up."""
    root = Path(os.environ.get("EDGEFT_ARM64_ROOT", ".edgeft/arm64"))
    if not (root / "python").is_file():
        raise DeviceUnreachable(f"no emulated aarch64 runtime at {root}; set it up with `make arm64-runtime` "
                                f"(tests/arm64/setup.sh) or point EDGEFT_ARM64_ROOT at one")
    return root


def _run_emulated(script: str, args: list[str], what: str) -> dict[str, Any]:
    python = arm64_root() / "python"
    with tempfile.TemporaryDirectory() as tmp:
        # Only the edgeft package goes on the emulated path: the host's site-packages hold x86 binaries.
        (Path(tmp) / "edgeft").symlink_to(Path(__file__).resolve().parents[1])  # the edgeft package
        env = {"PATH": "/usr/bin:/bin", "EDGEFT_ARM64_PYTHONPATH": tmp}
        done = subprocess.run([str(python), "-c", script, *args], capture_output=True, text=True, env=env,
                              timeout=3600)
    if done.returncode != 0:
        raise StageFailed(f"{what} failed on the emulated aarch64 runtime: {last_line(done.stderr)}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_on_qemu_arm64(bundle: Path) -> dict[str, Any]:
    """Predictions and accuracy of the bundle on the emulated aarch64 runtime (make arm64-runtime sets it up)."""
    root = arm64_root()
    result = _run_emulated(_QEMU_SCRIPT, [str(bundle.resolve())], "the bundle")
    return {**result, "bundle": str(bundle), "device": {"kind": "qemu-arm64", "root": str(root)},
            "latency_ms": None, "latency_note": "emulated: latency under QEMU is not device latency and is not measured"}


def labels_on_qemu_arm64(bundles: list[Path], texts: list[str]) -> dict[str, Any]:
    """Each bundle's decision for every text (batch 1: a label, or NER spans) on the emulated aarch64 runtime, named
    as `edgeft race` names bundles: {"machine", "onnxruntime", "labels": {NAME: [decision, ...]}}. Nothing is
    timed."""
    root = arm64_root()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "texts.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
        result = _run_emulated(_QEMU_LABELS_SCRIPT, [str(path), *(str(b.resolve()) for b in bundles)],
                               "a candidate bundle")
    return {**result, "device": {"kind": "qemu-arm64", "root": str(root)}}
