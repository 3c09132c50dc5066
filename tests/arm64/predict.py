"""Runs inside the emulated aarch64 python: load each bundle with edgeft.runtime (hashes verified), predict the
first N held-out texts of its samples.jsonl, print one JSON object with the logits (NER: token logits and entity
spans) and what ran them.

    .edgeft/arm64/python tests/arm64/predict.py N BUNDLE [BUNDLE ...]
"""

from __future__ import annotations

import json
import platform
import sys

import onnxruntime

import edgeft.runtime
from edgeft.runtime.samples import SAMPLES_FILE


def main() -> None:
    n, folders = int(sys.argv[1]), sys.argv[2:]
    result = {"machine": platform.machine(), "onnxruntime": onnxruntime.__version__, "bundles": {}}
    for folder in folders:
        bundle = edgeft.runtime.load(folder)
        lines = (bundle.path / SAMPLES_FILE).read_text(encoding="utf-8").splitlines()[:n]
        texts = [json.loads(line)["text"] for line in lines]
        # Batch 1: dynamic int8 picks activation scales per call, so batching (padding) would change the numbers.
        row = {"texts": texts, "task": bundle.task, "model_file": bundle.manifest["bundle"]["model_file"]}
        if bundle.task == "ner":
            row["token_logits"] = [bundle.session.run(bundle.encode([text]))[0].tolist() for text in texts]
            row["spans"] = [[span.to_dict() for span in bundle.entities([text], batch_size=1)[0]] for text in texts]
        else:
            row["logits"] = bundle.logits(texts, batch_size=1).tolist()
        result["bundles"][folder] = row
    print(json.dumps(result))


if __name__ == "__main__":
    main()
