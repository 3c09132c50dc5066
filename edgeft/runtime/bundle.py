"""A bundle on disk -> a ready session with its tokenizer and labels."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeft.artifact import hash_tree, read_manifest
from edgeft.errors import BadInput
from edgeft.metrics import softmax
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
from edgeft.runtime.scoring import SCORING_BATCH, Examples, score, sentence_logits
from edgeft.runtime.sessions import Runtime, open_session
from edgeft.runtime.tagging import Span

BUNDLE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Bundle:
    """A loaded bundle. `predict` is what apps call; `encode` + `session.run` is what latency benches time."""

    def __init__(self, path: Path, manifest: dict[str, Any], threads: int | None = None) -> None:
        spec = manifest.get("bundle")
        if not isinstance(spec, dict) and manifest.get("kind") == "hf-model":
            # A fine-tuned or distilled model folder (edgeft finetune / distill --out): the PyTorch model, not a bundle.
            raise BadInput(f"{path} is a {manifest.get('stage', 'trained')} model folder, not a bundle; make one "
                           f"with `edgeft build --target TARGET --finetuned {path}` (same --data)")
        if not isinstance(spec, dict) or spec.get("format_version") != BUNDLE_FORMAT_VERSION:
            raise BadInput(f"{path}/manifest.json: not a bundle of format version {BUNDLE_FORMAT_VERSION}; "
                           f"rebuild it with this edgeft ({spec.get('format_version') if isinstance(spec, dict) else 'none'} found)")
        self.path = path
        self.manifest = manifest
        self.runtime = Runtime(spec["runtime"])
        self.labels: list[str] = list(spec["labels"])
        self.max_length: int = spec["input"]["max_length"]
        self.threads: int = threads or spec["threads"]
        # Bundles written before the flag have none: their sessions keep the host's own int8 kernels.
        self.session = open_session(self.runtime, path / spec["model_file"], self.threads, TOKENIZER_OUTPUTS,
                                    exact_int8=bool(spec.get("exact_int8", False)))
        # The graph's own input names decide what is fed; manifest "model_inputs" records them for app authors.
        self.encoder = TextEncoder(path / spec["tokenizer_file"], self.max_length, spec["input"]["truncation"],
                                   self.session.input_names)

    @property
    def target(self) -> str:
        return self.manifest["bundle"]["target"]

    @property
    def task(self) -> str:
        return self.manifest["bundle"].get("task", "classification")

    def encode(self, texts: list[str]) -> dict[str, np.ndarray]:
        return self.encoder(texts)

    def logits(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Sentence logits [texts, labels] (classification bundles)."""
        return sentence_logits(self.session.run, self.encoder, texts, len(self.labels), batch_size)

    def predict(self, texts: list[str], batch_size: int = 32) -> list[Prediction] | list[list[Span]]:
        """A label and its score per text; for a NER bundle, the entity spans of each text."""
        if self.task == "ner":
            return self.entities(list(texts), batch_size)
        probs = softmax(self.logits(list(texts), batch_size))
        best = probs.argmax(axis=-1)
        return [Prediction(self.labels[i], float(p[i])) for i, p in zip(best, probs)]

    def decisions(self, texts: list[str]) -> list:
        """What a device check compares, text by text, at batch 1 (dynamic int8 scales depend on batching): the label
        (classification) or the entity spans as [type, start, end] (NER)."""
        if self.task == "ner":
            return [[[s.type, s.start, s.end] for s in spans] for spans in self.entities(list(texts), batch_size=1)]
        return [self.labels[i] for i in self.logits(list(texts), batch_size=1).argmax(-1).tolist()]

    def tags(self, sentences: list[list[str]], batch_size: int = 32) -> list[list[str]]:
        """One BIO tag per word of pre-split sentences (NER bundles): what entity F1 is scored on."""
        from edgeft.runtime.tagging import tags_of, word_logits

        return tags_of(word_logits(self.session.run, self.encoder, sentences, batch_size), sentences, self.labels)

    def entities(self, texts: list[str], batch_size: int = 32) -> list[list[Span]]:
        """Entity spans (text, type, character start and end, score) of raw texts."""
        from edgeft.runtime.tagging import entities_of

        found: list[list[Span]] = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start:start + batch_size]
            encodings = self.encoder.tokenizer.encode_batch(chunk)
            logits = self.session.run(self.encoder.pad(encodings))
            found += [entities_of(text, enc.word_ids, enc.offsets, row, self.labels)
                      for text, enc, row in zip(chunk, encodings, logits)]
        return found

    def score(self, examples: Examples, batch_size: int = SCORING_BATCH) -> dict[str, Any]:
        """This bundle's metrics on labelled examples, computed on its own runtime, one text per call."""
        return score(self.session.run, self.encoder, examples, self.labels, batch_size)


def load(path: str | Path, threads: int | None = None, verify: bool = True) -> Bundle:
    """Open a bundle folder. With `verify`, every file must match the hash its manifest recorded."""
    folder = Path(path)
    if not folder.is_dir():
        raise BadInput(f"bundle {folder} does not exist or is not a folder; pass the folder `edgeft build` wrote")
    manifest = read_manifest(folder)
    if verify:
        verify_files(folder, manifest)
    return Bundle(folder, manifest, threads)


def manifest_digest(folder: Path) -> str:
    """The bundle's identity: the sha256 of its manifest, which pins every other file's hash."""
    import hashlib

    return hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()


def verify_files(folder: Path, manifest: dict[str, Any]) -> None:
    expected: dict[str, str] = manifest.get("files", {})
    actual = hash_tree(folder)
    for name, digest in expected.items():
        if name not in actual:
            raise BadInput(f"bundle {folder}: {name} is missing; copy the whole bundle folder again")
        if actual[name] != digest:
            raise BadInput(f"bundle {folder}: {name} does not match its manifest hash (modified or corrupt); "
                           f"copy the bundle again or rebuild it")

