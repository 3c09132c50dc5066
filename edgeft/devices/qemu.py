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


# Runs inside the emulated aarch64 python: labelled rows in samples.jsonl's form (the bundle's held-out samples, or
# --data with this host's predictions), batch 1 (dynamic int8 scales depend on batching), accuracy (NER: entity F1
# over the words' tags) and agreement with the rows' predictions (labels; NER: every word's tag of a sentence). No
# timing: emulated latency is not a device's.
_QEMU_SCRIPT = """
import json, platform, sys
from pathlib import Path
import onnxruntime
import edgeft.runtime
from edgeft.metrics import classification_metrics
from edgeft.runtime.entities import entity_metrics
bundle = edgeft.runtime.load(sys.argv[1])
rows = [json.loads(l) for l in Path(sys.argv[2]).read_text(encoding="utf-8").splitlines() if l.strip()]
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
                  "agreement": agree, "texts": len(rows), "target": bundle.target, "task": bundle.task}))
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


def arm64_roots() -> list[Path]:
    """Where the emulated aarch64 runtime is looked for: EDGEFT_ARM64_ROOT alone when set; else .edgeft/arm64 under
    the current folder, then under the edgeft checkout (where `make arm64-runtime` puts it), so a bench started from
    another folder still finds it."""
    if os.environ.get("EDGEFT_ARM64_ROOT"):
        return [Path(os.environ["EDGEFT_ARM64_ROOT"])]
    here, repo = Path(".edgeft/arm64"), Path(__file__).resolve().parents[2]
    checkout = repo / ".edgeft" / "arm64"
    # Only a source checkout has one (an installed wheel's parent folder is site-packages' own).
    return [here] if here.resolve() == checkout or not (repo / "pyproject.toml").is_file() else [here, checkout]


def arm64_root() -> Path:
    """The emulated aarch64 runtime's folder; DeviceUnreachable (exit 3) with the fix when it is not set up."""
    roots = arm64_roots()
    for root in roots:
        if (root / "python").is_file():
            return root
    raise DeviceUnreachable(f"no emulated aarch64 runtime at {' or '.join(str(r.resolve()) for r in roots)}; set "
                            f"it up with `make arm64-runtime` (tests/arm64/setup.sh) or point EDGEFT_ARM64_ROOT at one")


def _run_emulated(script: str, args: list[str], what: str, texts: int) -> dict[str, Any]:
    from edgeft.progress import console

    python = arm64_root() / "python"
    with tempfile.TemporaryDirectory() as tmp:
        # Only the edgeft package goes on the emulated path: the host's site-packages hold x86 binaries.
        (Path(tmp) / "edgeft").symlink_to(Path(__file__).resolve().parents[1])  # the edgeft package
        env = {"PATH": "/usr/bin:/bin", "EDGEFT_ARM64_PYTHONPATH": tmp}
        # Emulation is far slower than the host: say so before minutes pass in silence (a line for logs, a
        # spinner with the clock for a terminal).
        console.print(f"{what}: {texts} texts, batch 1, on the emulated aarch64 runtime at {python.parent} (QEMU "
                      f"user mode: minutes; nothing is timed)")
        with console.status("emulated aarch64 at work"):
            done = subprocess.run([str(python), "-c", script, *args], capture_output=True, text=True, env=env,
                                  timeout=3600)
    if done.returncode != 0:
        raise StageFailed(f"{what} failed on the emulated aarch64 runtime: {last_line(done.stderr)}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_on_qemu_arm64(bundle: Path, rows: Path | None = None) -> dict[str, Any]:
    """Predictions and accuracy of the bundle on the emulated aarch64 runtime (make arm64-runtime sets it up).

    `rows`: labelled texts in samples.jsonl's form whose `predicted` are this host's (`host_rows`); agreement is
    then with this host's run of the same bundle (`agreement_with_host`). Without: the bundle's own held-out samples,
    agreement with the build's predictions (`agreement_with_build`)."""
    from edgeft.runtime.samples import SAMPLES_FILE

    root = arm64_root()
    path = rows or bundle / SAMPLES_FILE
    count = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    result = _run_emulated(_QEMU_SCRIPT, [str(bundle.resolve()), str(path.resolve())], "the bundle", count)
    agreement = result.pop("agreement")
    return {**result, "bundle": str(bundle), "device": {"kind": "qemu-arm64", "root": str(root)},
            ("agreement_with_host" if rows else "agreement_with_build"): agreement,
            "latency_ms": None, "latency_note": "emulated: latency under QEMU is not device latency and is not measured"}


def host_rows(bundle, examples, path: Path) -> Path:
    """`examples` as samples.jsonl rows with this host's predictions (batch 1), for `bench_on_qemu_arm64(rows=)`:
    labels, or NER words, gold tags and predicted tags."""
    if bundle.task == "ner":
        tagged = bundle.tags(examples.words, batch_size=1)
        rows = [{"words": w, "tags": t, "predicted": p} for w, t, p in zip(examples.words, examples.tags, tagged)]
    else:
        predicted = bundle.logits(examples.texts, batch_size=1).argmax(-1).tolist()
        rows = [{"text": t, "label": y, "predicted": bundle.labels[p]}
                for t, y, p in zip(examples.texts, examples.labels, predicted)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def labels_on_qemu_arm64(bundles: list[Path], texts: list[str]) -> dict[str, Any]:
    """Each bundle's decision for every text (batch 1: a label, or NER spans) on the emulated aarch64 runtime, named
    as `edgeft race` names bundles: {"machine", "onnxruntime", "labels": {NAME: [decision, ...]}}. Nothing is
    timed."""
    root = arm64_root()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "texts.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
        result = _run_emulated(_QEMU_LABELS_SCRIPT, [str(path), *(str(b.resolve()) for b in bundles)],
                               f"{len(bundles)} candidate bundle(s)", len(texts))
    return {**result, "device": {"kind": "qemu-arm64", "root": str(root)}}
