"""Texts -> the int64 arrays a model graph takes, with the Hugging Face `tokenizers` library alone.

The build uses this same class for its parity checks and evaluation, so what is measured is what devices run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

# Texts tokenized and sorted together when many are scored: large enough that a build's soft-target texts (35,382
# on the packaged tweets) are one block, small enough that their encodings fit in memory whatever the file's size.
SORTED_BLOCK = 65_536

# Everything a BERT-style tokenizer gives; a graph takes these or a subset (see Session.input_names).
TOKENIZER_OUTPUTS = ("input_ids", "attention_mask", "token_type_ids")


def whole_text_tokenizer(tokenizer_file: Path):
    """The tokenizer of `tokenizer_file` with neither padding nor truncation: every piece of every text (a trimmed
    vocabulary's pieces, the later windows of long training texts)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


class TextEncoder:
    def __init__(self, tokenizer_file: Path, max_length: int, truncation: str, input_names: tuple[str, ...]) -> None:
        from tokenizers import Tokenizer

        self.tokenizer_file = tokenizer_file
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        # A saved tokenizer.json may carry its own padding / truncation (sentence-transformers sets 128): ours rules.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length, direction=truncation)
        self.max_length = max_length
        self.input_names = input_names
        self.pad_id = pad_token_id(tokenizer_file)

    def __call__(self, texts: list[str]) -> dict[str, np.ndarray]:
        """A batch padded to its longest text (dynamic padding), as the model's named inputs."""
        return self.pad(self.tokenizer.encode_batch(texts))

    def batches(self, texts: list[str], batch_size: int) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """Every text once, in padded batches of texts of similar token count: (the texts' indices, the feeds).

        Grouping by pieces, not characters, is what keeps padding out: on the packaged tweets, batches of 16 texts
        sorted by characters carry 35 % more tokens than their texts (52 % in batches of 64), sorted by pieces
        0.1 % (docs/experiments/speed.md, section 20)."""
        for rows, encodings in self.sorted_encodings(texts, batch_size):
            yield rows, self.pad(encodings)

    def sorted_encodings(self, texts: list, batch_size: int,
                         pretokenized: bool = False) -> Iterator[tuple[np.ndarray, list]]:
        """Every text (or, `pretokenized`, every sentence given as words) once, in batches of similar token count:
        (their indices, their `tokenizers` encodings). Each is tokenized once, a block of SORTED_BLOCK at a time, so
        memory stays bounded on a large file."""
        for first in range(0, len(texts), SORTED_BLOCK):
            encodings = self.tokenizer.encode_batch(texts[first:first + SORTED_BLOCK], is_pretokenized=pretokenized)
            order = np.argsort([len(e.ids) for e in encodings], kind="stable")
            for start in range(0, len(encodings), batch_size):
                chunk = order[start:start + batch_size]
                yield first + chunk, [encodings[i] for i in chunk]

    def words(self, sentences: list[list[str]]) -> tuple[dict[str, np.ndarray], list[list[int | None]]]:
        """Pre-split words (NER data) -> the padded batch and, per sentence, the word index of every token (None
        for special tokens): the first sub-word of each word carries the word's tag."""
        encodings = self.tokenizer.encode_batch(sentences, is_pretokenized=True)
        return self.pad(encodings), [list(e.word_ids) for e in encodings]

    def pad(self, encodings: list) -> dict[str, np.ndarray]:
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n], mask[row, :n], types[row, :n] = enc.ids, enc.attention_mask, enc.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return {name: feeds[name] for name in self.input_names}


def pad_token_id(tokenizer_file: Path) -> int:
    """The [PAD] id from tokenizer.json's own vocabulary (0 for BERT's, but never assumed)."""
    spec = json.loads(Path(tokenizer_file).read_text(encoding="utf-8"))
    padding = spec.get("padding") or {}
    if "pad_id" in padding:
        return int(padding["pad_id"])
    vocab = (spec.get("model") or {}).get("vocab") or {}
    for token in ("[PAD]", "<pad>"):
        if isinstance(vocab, dict) and token in vocab:
            return int(vocab[token])
    return 0
