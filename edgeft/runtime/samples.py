"""Which texts a bench runs on: the user's labelled file, or the held-out samples shipped inside the bundle."""

from __future__ import annotations

import json

from edgeft.errors import BadInput
from edgeft.runtime.bundle import Bundle

SAMPLES_FILE = "samples.jsonl"


def bench_texts(bundle: Bundle, data: str | None, text_column: str, label_column: str,
                encoding: str) -> tuple[list[str], list[str]]:
    if data is not None:
        from edgeft.data import load_dataset

        ds = load_dataset(data, text_column, label_column, encoding)
        return ds.texts, ds.labels
    path = bundle.path / SAMPLES_FILE
    if not path.is_file():
        raise BadInput(f"bundle {bundle.path} has no {SAMPLES_FILE}; pass --data with labelled texts")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["text"] for r in rows], [r["label"] for r in rows]
