"""`edgeft race`: several bundles timed in turn on the same texts, on the machine that runs it (the device).

This is what a build's candidate race runs on a device (`edgeft build --bench-device ssh://...`): the build writes
each quantization candidate as a small bundle, copies them and the dev texts over, runs `edgeft race` there and
reads the JSON back. The timing is the local race's (runtime.bench.interleaved_latency): batch 1, each model timed
on a block of consecutive texts (RACE_BLOCK) in a fresh random order of the models each time, so drift of the
device hits every model alike.

The JSON (`RACE_FORMAT` 1):
    {"kind": "race", "format_version": 1, "edgeft_version", "host": {machine, cpu, isa, python, os},
     "threads", "rounds", "warmup", "texts", "batch_size": 1, "block",
     "models": {NAME: {"p50", "p90", "p99", "mean", "std", "n", "bundle_manifest_sha256"}}}  (milliseconds)
NAME is the bundle manifest's `candidate` (what the build calls it), else the folder's name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeft.errors import BadInput
from edgeft.runtime.bench import RACE_BLOCK, host_description, interleaved_latency, percentiles
from edgeft.runtime.bundle import Bundle, manifest_digest

RACE_FORMAT = 1


def read_texts(path: Path) -> list[str]:
    """A .jsonl file of {"text": ...} objects (texts may hold line breaks), or plain text, one text per line."""
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"--texts {path} cannot be read as UTF-8 text: {exc}") from None
    if path.suffix != ".jsonl":
        return lines
    texts = []
    for number, line in enumerate(lines, 1):
        try:
            texts.append(str(json.loads(line)["text"]))
        except (ValueError, KeyError, TypeError):
            raise BadInput(f"--texts {path} line {number} is not a JSON object with a \"text\" field") from None
    return texts


def race_name(bundle: Bundle) -> str:
    return str(bundle.manifest.get("candidate") or bundle.path.name)


def race(bundles: list[Bundle], texts: list[str], rounds: int, warmup: int) -> dict[str, Any]:
    """Interleaved batch-1 latency of every bundle on `texts`; they must share one tokenizer (one set of inputs)."""
    if not bundles or not texts:
        raise BadInput("edgeft race needs at least one bundle and one text")
    names = [race_name(b) for b in bundles]
    if len(set(names)) != len(names):
        raise BadInput(f"edgeft race got two bundles named alike ({', '.join(names)}); name them apart")
    tokenizers = {(b.path / b.manifest["bundle"]["tokenizer_file"]).read_bytes() for b in bundles}
    if len(tokenizers) != 1:
        raise BadInput("edgeft race times models on the same inputs: these bundles ship different tokenizer files")
    # Tokenized once, outside the timing: the race compares the models, not the tokenizer.
    feeds = [bundles[0].encode([text]) for text in texts]
    samples = interleaved_latency({n: b.session for n, b in zip(names, bundles)}, feeds, rounds, warmup,
                                  block=RACE_BLOCK)
    return {"kind": "race", "format_version": RACE_FORMAT, "host": host_description(),
            "threads": bundles[0].threads, "rounds": rounds, "warmup": min(warmup, len(feeds)), "texts": len(texts),
            "batch_size": 1, "block": RACE_BLOCK,
            "models": {name: {**percentiles(samples[name]), "bundle_manifest_sha256": manifest_digest(bundle.path)}
                       for name, bundle in zip(names, bundles)}}
