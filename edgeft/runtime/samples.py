"""Which texts a bench runs on: the user's labelled file, or the held-out samples shipped inside the bundle."""

from __future__ import annotations

import json

from edgeft.errors import BadInput
from edgeft.runtime.bundle import Bundle
from edgeft.runtime.scoring import Examples

SAMPLES_FILE = "samples.jsonl"


def bench_texts(bundle: Bundle, data: str | None, text_column: str, label_column: str,
                encoding: str) -> tuple[list[str], Examples]:
    """The texts to time and the labelled examples to score (NER: words + tags; the texts are the words joined)."""
    if data is not None:
        if bundle.task == "ner":
            from edgeft.data.tagged import load_tagged

            tagged = load_tagged(data, encoding)
            examples = Examples.tagged(tagged.sentences, tagged.tags)
        else:
            from edgeft.data.text import load_dataset

            ds = load_dataset(data, text_column, label_column, encoding)
            examples = Examples("classification", ds.texts, ds.labels)
        return examples.texts, examples
    path = bundle.path / SAMPLES_FILE
    if not path.is_file():
        raise BadInput(f"bundle {bundle.path} has no {SAMPLES_FILE}; pass --data with labelled texts")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if bundle.task == "ner":
        examples = Examples.tagged([r["words"] for r in rows], [r["tags"] for r in rows])
    else:
        examples = Examples("classification", [r["text"] for r in rows], [r["label"] for r in rows])
    return examples.texts, examples
