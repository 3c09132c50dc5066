"""Token classification (NER) at run time, numpy only: token logits -> one tag per word -> entity spans.

A word's tag is read from its first sub-word token, as it was trained (the other sub-words carry no label). Words
cut off by the input policy's maximum length get "O": they are scored as missed entities, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgeft.metrics import softmax
from edgeft.runtime.encoder import TextEncoder
from edgeft.runtime.entities import bio_entities


@dataclass(frozen=True)
class Span:
    """One entity found in a text: its characters text[start:end], its type and the model's mean confidence."""

    text: str
    type: str
    start: int
    end: int
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def first_subwords(word_ids: list[int | None]) -> list[int]:
    """Token positions of each word's first sub-word, in word order."""
    positions, seen = [], set()
    for position, word in enumerate(word_ids):
        if word is not None and word not in seen:
            seen.add(word)
            positions.append(position)
    return positions


def word_logits(run: Callable[[dict[str, np.ndarray]], np.ndarray], encoder: TextEncoder,
                sentences: list[list[str]], batch_size: int = 32) -> list[np.ndarray]:
    """Per sentence, the logits [words kept, tags] of its words' first sub-words; `run` is a session's run."""
    out: list[np.ndarray] = [np.zeros((0, 0), dtype=np.float32)] * len(sentences)
    # Batched by piece count as sentence texts are (characters are a poor proxy for pieces in tweets); results go
    # back to each sentence's own slot.
    for rows, encodings in encoder.sorted_encodings(sentences, batch_size, pretokenized=True):
        logits = run(encoder.pad(encodings))
        for row, (i, encoding) in enumerate(zip(rows, encodings)):
            out[i] = logits[row, first_subwords(list(encoding.word_ids))]
    return out


def tags_of(logits: list[np.ndarray], sentences: list[list[str]], labels: list[str]) -> list[list[str]]:
    """The argmax tag of every word; words beyond the maximum length are "O"."""
    tags = []
    for rows, words in zip(logits, sentences):
        predicted = [labels[int(k)] for k in rows.argmax(-1)] if len(rows) else []
        tags.append(predicted + ["O"] * (len(words) - len(predicted)))
    return tags


def entities_of(text: str, word_ids: Sequence[int | None], offsets: Sequence[Sequence[int]], token_logits: np.ndarray,
                labels: list[str]) -> list[Span]:
    """Entity spans of one raw text from its tokens' word ids and offsets (a `tokenizers` encoding's, or the portable
    WordPiece port's `encode_with_offsets`: the same numbers) and its token logits.

    The decoding a phone app ports (stages/mobile.py describes it): each word's tag is the argmax of its first
    token; the word tags are chunked by conlleval's BIO rules; a chunk spans from its first word's first offset to its
    last word's last offset, in code points of `text`; its score is the mean top probability of its words."""
    probs = softmax(token_logits[: len(word_ids)])
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    first: dict[int, int] = {}
    for position, word in enumerate(word_ids):
        if word is None:
            continue
        first.setdefault(word, position)
        starts.setdefault(word, offsets[position][0])
        ends[word] = offsets[position][1]
    words = sorted(first)
    tags = [labels[int(probs[first[w]].argmax())] for w in words]
    scores = [float(probs[first[w]].max()) for w in words]
    found = []
    for kind, a, b in bio_entities(tags):
        start, end = starts[words[a]], ends[words[b - 1]]
        found.append(Span(text[start:end], kind, start, end, round(float(np.mean(scores[a:b])), 4)))
    return found
