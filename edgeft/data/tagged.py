"""Tagged tokens for NER (token classification, BIO tags): CoNLL-style or JSONL files, or a packaged set.

Every problem is a `BadInput` that names the file, the line and the fix. Tags are kept as written: IOB1 files, where
I-X may open an entity, are legal because entities are read with conlleval semantics (edgeft.runtime.entities).
Exact duplicate sentences are dropped (first one kept) before splitting, so none sits in both train and held-out.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeft.data.assets import DATASETS, packaged_data
from edgeft.data.text import Split, decode, held_out_fractions, read_bytes
from edgeft.errors import BadInput

CONLL_SUFFIXES = (".conll", ".txt", ".tsv", ".bio", ".iob")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
CONLL_HINT = "write one token and its tag per line, with a blank line between sentences"
JSONL_HINT = 'write one {"tokens": [...], "tags": [...]} object per line'
MIN_SENTENCES = 10

# Only tabs and spaces separate columns: tweets hold other Unicode spaces (NBSP, thin space) inside tokens.
_COLUMNS = re.compile(r"[ \t]+")

Sentence = tuple[list[str], list[str]]  # (tokens, tags)


@dataclass(frozen=True)
class TaggedDataset:
    sentences: list[list[str]]  # tokens, one list per sentence
    tags: list[list[str]]  # one BIO tag per token, as written in the file
    source: str  # what the user named: a path or packaged:NAME
    sha256: str  # of the raw bytes read, so the manifest pins the exact input
    dropped: dict[str, int] = field(default_factory=dict)  # sentences left out, by reason

    @property
    def entity_types(self) -> list[str]:
        return sorted({tag[2:] for sentence in self.tags for tag in sentence if tag != "O"})

    @property
    def tag_names(self) -> list[str]:
        # B- and I- of every type, even one never written: an IOB1 file has no B- tags, yet a model must be able to
        # emit them (and a BIO model the I- of a one-token-only type).
        return ["O", *(f"{prefix}-{kind}" for kind in self.entity_types for prefix in ("B", "I"))]

    @property
    def texts(self) -> list[str]:
        return [" ".join(tokens) for tokens in self.sentences]


def load_tagged(source: str, encoding: str = "utf-8") -> TaggedDataset:
    """Read `source` (a CoNLL-style or JSONL file, or `packaged:NAME`) and check it can train a NER model."""
    if source.startswith("packaged:"):
        name = source.removeprefix("packaged:")
        pkg = packaged_data(name)
        if pkg.layout != "conll":
            tagged = ", ".join(sorted(n for n, p in DATASETS.items() if p.layout == "conll"))
            raise BadInput(f"packaged dataset '{name}' holds labelled texts, not tagged tokens; "
                           f"choose a NER set: {tagged}")
        path, encoding, suffix = pkg.path, pkg.encoding, ".conll"  # a packaged set fixes its own encoding
    else:
        path = Path(source)
        if not path.is_file():
            state = "is a folder" if path.is_dir() else "does not exist"
            raise BadInput(f"data file {path} {state}; pass a CoNLL-style ({', '.join(CONLL_SUFFIXES)}) "
                           f"or JSONL file of tagged tokens")
        suffix = path.suffix.lower()
        if suffix not in CONLL_SUFFIXES + JSONL_SUFFIXES:
            raise BadInput(f"data file {path}: unknown extension '{path.suffix}' for tagged tokens; use "
                           f"{', '.join(CONLL_SUFFIXES)} (token and tag per line) or .jsonl")
    raw = _read_bytes(path)
    text = _decode(raw, path, encoding)
    if suffix in JSONL_SUFFIXES:
        sentences, dropped, hint = _parse_jsonl(text, path), Counter(), JSONL_HINT
        dropped["empty sentence"] = sum(1 for tokens, _ in sentences if not tokens)
        sentences = [s for s in sentences if s[0]]
    else:
        sentences, dropped, hint = _parse_conll(text, path), Counter(), CONLL_HINT
    return _validated(sentences, path, source, hashlib.sha256(raw).hexdigest(), dropped, hint)


def _read_bytes(path: Path) -> bytes:
    return read_bytes(path, f"{CONLL_HINT} (or use JSONL)")


def _decode(raw: bytes, path: Path, encoding: str) -> str:
    # A byte-order mark (Windows editors write one) would otherwise glue itself to the first token.
    return decode(raw, path, encoding).removeprefix("\ufeff")


def _lines(text: str):
    # Split on "\n" only, not str.splitlines(): U+2028 or U+0085 inside a tweet is text, not a line break, and line
    # numbers must be the ones an editor shows.
    for number, line in enumerate(text.split("\n"), start=1):
        yield number, line.rstrip("\r")


def _parse_conll(text: str, path: Path) -> list[Sentence]:
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []

    def flush() -> None:
        nonlocal tokens, tags
        if tokens:
            sentences.append((tokens, tags))
        tokens, tags = [], []

    for number, line in _lines(text):
        if not line.strip():
            flush()
            continue
        # A line with a tab is tab-separated, so a token may hold a space ("New York<TAB>B-LOC" is one token, not
        # "New" tagged B-LOC with "York" lost); a line without one is split on spaces (CoNLL-2003's own files).
        stripped = line.strip(" \t")
        columns = ([c.strip(" ") for c in stripped.split("\t") if c.strip(" ")] if "\t" in stripped
                   else _COLUMNS.split(stripped))
        if columns[0] == "-DOCSTART-":  # CoNLL-2003 document marker: a boundary, not a token
            flush()
            continue
        if len(columns) < 2:
            raise BadInput(f"data file {path} line {number}: one column ({columns[0][:40]!r}); {CONLL_HINT}, "
                           f"separated by a tab or spaces")
        # The tag is the last column, the token the first: 4-column CoNLL-2003 files (token POS chunk tag) work too.
        tokens.append(columns[0])
        tags.append(_checked_tag(columns[-1], f"data file {path} line {number}"))
    flush()
    return sentences


def _parse_jsonl(text: str, path: Path) -> list[Sentence]:
    sentences: list[Sentence] = []
    for number, line in _lines(text):
        if not line.strip():
            continue
        where = f"data file {path} line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{where}: invalid JSON ({exc.msg}); {JSONL_HINT}") from None
        if not isinstance(obj, dict):
            raise BadInput(f"{where}: expected a JSON object, got {type(obj).__name__}; {JSONL_HINT}")
        # "ner_tags" is the Hugging Face datasets name; accepted when it holds tag names rather than class ids.
        tag_key = "tags" if "tags" in obj else "ner_tags" if "ner_tags" in obj else None
        if "tokens" not in obj or tag_key is None:
            missing = "tokens" if "tokens" not in obj else "tags"
            raise BadInput(f"{where}: no key '{missing}' (keys: {', '.join(obj) or 'none'}); {JSONL_HINT}")
        tokens, tags = obj["tokens"], obj[tag_key]
        for key, value in (("tokens", tokens), (tag_key, tags)):
            if not isinstance(value, list):
                raise BadInput(f"{where}: '{key}' is a {type(value).__name__}, not a list; {JSONL_HINT}")
        if len(tokens) != len(tags):
            raise BadInput(f"{where}: {len(tokens)} tokens but {len(tags)} tags; give exactly one tag per token")
        for i, token in enumerate(tokens):
            if not isinstance(token, str):
                raise BadInput(f"{where}: token {i} is {json.dumps(token)} ({type(token).__name__}), not a string; "
                               f"quote every token")
            if not token.strip():
                # A blank token has no subwords, so its tag could never be predicted: fix the file, do not guess.
                raise BadInput(f"{where}: token {i} is blank; remove whitespace-only tokens and their tags")
        for i, tag in enumerate(tags):
            if not isinstance(tag, str):
                if isinstance(tag, int):
                    raise BadInput(f"{where}: '{tag_key}' holds class ids ({tag}), not tag names; write the tag "
                                   f"strings (for example \"B-person\") under 'tags'")
                raise BadInput(f"{where}: tag {i} is {json.dumps(tag)}, not a string; write O, B-TYPE or I-TYPE")
            _checked_tag(tag, f"{where}, tag {i}")
        sentences.append((tokens, tags))
    return sentences


def _checked_tag(tag: str, where: str) -> str:
    if tag == "O" or (tag[:2] in ("B-", "I-") and len(tag) > 2):
        return tag
    # BIOES (S-, E-) read as BIO would cut entities in the wrong places; refuse rather than mis-train silently.
    raise BadInput(f"{where}: tag {tag[:40]!r} is not O, B-TYPE or I-TYPE; edgeft reads BIO tags "
                   f"(convert BIOES/IOBES tags to BIO, and keep the tag in the last column)")


def _validated(sentences: list[Sentence], path: Path, source: str, sha256: str, dropped: Counter[str],
               hint: str) -> TaggedDataset:
    kept_tokens, kept_tags, seen = [], [], set()
    for tokens, tags in sentences:
        key = tuple(tokens)
        if key in seen:
            dropped["duplicate sentence"] += 1
            continue
        seen.add(key)
        kept_tokens.append(tokens)
        kept_tags.append(tags)
    if not kept_tokens:
        raise BadInput(f"data file {path} has no sentences; {hint}")
    ds = TaggedDataset(kept_tokens, kept_tags, source, sha256, {k: v for k, v in sorted(dropped.items()) if v})
    if not ds.entity_types:
        raise BadInput(f"data file {path} has no entity: every tag is O; a NER model needs at least one B-TYPE "
                       f"or I-TYPE tag (is the tag the last column?)")
    return ds


def split_tagged(ds: TaggedDataset, seed: int, dev_fraction: float | None = None,
                 test_fraction: float | None = None) -> Split:
    """Seeded random split of sentence indices (not stratified: a sentence holds several entity types).

    Shares: at least 10 % each (a sentence holds fewer entities than a text has labels: WNUT-16 about one in two),
    more for a small set as `held_out_fractions` says for texts, so that a few hundred sentences still leave a test
    split that can tell a tagger from the lexicon baseline."""
    default_dev, default_test = held_out_fractions(len(ds.sentences))
    dev_fraction = max(0.1, default_dev) if dev_fraction is None else dev_fraction
    test_fraction = max(0.1, default_test) if test_fraction is None else test_fraction
    n = len(ds.sentences)
    if n < MIN_SENTENCES:
        raise BadInput(f"data {ds.source} has only {n} sentences; a NER train/dev/test split needs at least "
                       f"{MIN_SENTENCES}")
    if not (0 < dev_fraction and 0 < test_fraction and dev_fraction + test_fraction < 1):
        raise BadInput(f"dev fraction {dev_fraction} and test fraction {test_fraction}: each must be above 0 and "
                       f"together below 1")
    n_test = max(1, round(n * test_fraction))
    n_dev = max(1, round(n * dev_fraction))
    if n - n_test - n_dev < 1:
        raise BadInput(f"data {ds.source}: {n} sentences leave none for training after {n_dev} dev and {n_test} "
                       f"test; lower the dev and test fractions")
    order = np.random.default_rng(seed).permutation(n)
    test, dev, train = order[:n_test], order[n_test:n_test + n_dev], order[n_test + n_dev:]
    return Split(sorted(train.tolist()), sorted(dev.tolist()), sorted(test.tolist()))
