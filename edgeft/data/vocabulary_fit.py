"""How the base model's tokenizer reads a user's texts, measured on the training split before any training.

A model can only learn from the word pieces it is given. The packaged MiniLM has an English (uncased) WordPiece
vocabulary; measured with it (`whole_text_tokenizer`, every piece of every text):

| text | [UNK] pieces | letter pieces that are one letter |
|---|---|---|
| the packaged tweets, BBC News, WNUT-16 (English) | 0.000 % | 14.7 %, 5.5 %, 14.4 % |
| German, French, Spanish sentences | 0 % | 14-21 % |
| Russian, Greek, Arabic sentences | 0 % | 95-100 % (read letter by letter) |
| Hindi | 9 % | 100 % |
| Chinese, Thai | 70 %, 100 % | |
| a tweet of emoji and English words | 18 % (every emoji) | |

So two figures tell a script the vocabulary cannot read from one it can, with a wide gap between them: the share of
[UNK] pieces (characters the vocabulary lacks: their meaning is gone before training starts) and the share of
letter pieces that are a single letter (a script the vocabulary has letters for but no words: the model reads
spelling, not words). A build warns past UNKNOWN_WARN and LETTERS_WARN and names the fix; it does not refuse,
because a few [UNK] emoji in otherwise English text can be harmless, and the floor check (gating.floor) is what
stops a model that learned nothing. The share of texts longer than the input is reported too: the model sees only
their first pieces.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

# Past these the vocabulary does not read the text (table above: the readable ones at 0 % and at most 21 %).
UNKNOWN_WARN = 0.01
LETTERS_WARN = 0.5
# Enough texts for shares to a tenth of a percent; a million-row set is not tokenized twice.
MAX_TEXTS = 20_000


@dataclass(frozen=True)
class VocabularyFit:
    texts: int  # how many training texts were read
    pieces: int  # their word pieces, without [CLS] / [SEP]
    unknown: float  # share of the pieces that are [UNK]
    single_letters: float  # share of the letter pieces that are one letter
    truncated: float  # share of the texts with more pieces than the input holds
    median_pieces: int
    max_length: int
    unknown_examples: tuple[str, ...]  # the most frequent characters read as [UNK]

    def line(self) -> str:
        return (f"the base model reads the training texts as {self.median_pieces} word pieces a text (median) · "
                f"{self.unknown:.1%} [UNK] · {self.single_letters:.0%} single-letter pieces · {self.truncated:.0%} "
                f"longer than the {self.max_length}-piece input")

    def warnings(self) -> list[str]:
        out = []
        if self.unknown > UNKNOWN_WARN:
            seen = ", ".join(repr(c) for c in self.unknown_examples)
            out.append(f"{self.unknown:.1%} of the word pieces are [UNK] (characters the base model's vocabulary "
                       f"lacks, such as {seen}): the model cannot read them; fine-tune a base model whose vocabulary "
                       f"covers this text (--model DIR)")
        if self.single_letters > LETTERS_WARN:
            out.append(f"{self.single_letters:.0%} of the word pieces are single letters: the base model's "
                       f"vocabulary reads this text letter by letter (English, German, French: 5-21 %), so it is not a "
                       f"language the model was trained on; fine-tune a base model whose vocabulary covers it "
                       f"(--model DIR)")
        return out

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "unknown_examples": list(self.unknown_examples), "warnings": self.warnings()}


def vocabulary_fit(tokenizer_file: Path, texts: list[str], max_length: int, seed: int = 0) -> VocabularyFit:
    """Read `texts` (a seeded sample of at most MAX_TEXTS) with the tokenizer as training will, untruncated."""
    from edgeft.runtime.encoder import whole_text_tokenizer

    if len(texts) > MAX_TEXTS:
        texts = random.Random(seed).sample(texts, MAX_TEXTS)
    tokenizer = whole_text_tokenizer(tokenizer_file)
    unk = tokenizer.token_to_id("[UNK]")
    counts, unknown, letters, single = [], Counter(), 0, 0
    for text, encoding in zip(texts, tokenizer.encode_batch(texts)):
        counts.append(len(encoding.ids) - sum(encoding.special_tokens_mask))
        for token_id, token, special, (start, end) in zip(encoding.ids, encoding.tokens, encoding.special_tokens_mask,
                                                          encoding.offsets):
            if special:
                continue
            if token_id == unk:
                unknown[text[start:end][:1] or "?"] += 1
                continue
            body = token.removeprefix("##")
            if body.isalpha():
                letters += 1
                single += len(body) == 1
    counts.sort()
    pieces = sum(counts)
    return VocabularyFit(
        texts=len(texts), pieces=pieces, unknown=sum(unknown.values()) / max(pieces, 1),
        single_letters=single / max(letters, 1),
        truncated=sum(c > max_length - 2 for c in counts) / max(len(counts), 1),
        median_pieces=counts[len(counts) // 2] if counts else 0, max_length=max_length,
        unknown_examples=tuple(c for c, _ in unknown.most_common(5)))


def fit_of_training_split(tokenizer_file: Path, data, train: list[int], max_length: int, seed: int) -> VocabularyFit:
    """The fit of a split's training texts (an NER set's sentences joined by spaces), printed with its warnings."""
    from edgeft.progress import console

    sentences = getattr(data, "sentences", None)
    texts = [" ".join(sentences[i]) if sentences is not None else data.texts[i] for i in train]
    fit = vocabulary_fit(tokenizer_file, texts, max_length, seed)
    console.print(f"  {fit.line()}")
    for warning in fit.warnings():
        console.print(f"  [yellow]warning:[/] {warning}")
    return fit
