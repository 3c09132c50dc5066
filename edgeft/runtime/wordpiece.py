"""BERT WordPiece tokenization in plain Python: the reference that a phone app's tokenizer port is tested against.

Why this file exists: on a phone (ONNX Runtime Mobile) there is no Python and no `tokenizers` library, so an app
re-implements the tokenizer in Kotlin or Swift. A bundle therefore ships the tokenizer as data an app can read:

    vocab.txt             one token per line, line N (from 0) is token id N
    tokenizer_spec.json   the settings below and the algorithm's steps, in order
    reference.jsonl       texts and the exact token ids this file gives for them (tricky cases included)

(written and read by edgeft.runtime.wordpiece_files).
This module is the algorithm written out step by step, standard library only, so that it can be ported line by
line; the tests check it gives exactly the ids of Hugging Face `tokenizers` (what the build and the desktop
runtime use), and an app's port is checked against reference.jsonl the same way.

    spec = WordPieceSpec.from_tokenizer_json("tokenizer.json", max_length=128, truncation="right")
    encode(spec, "Café déjà vu!")  # {"input_ids": [101, 7668, 2139, 3900, 24728, 999, 102], ...}

Only BERT-style WordPiece tokenizers are accepted (BertNormalizer, BertPreTokenizer, WordPiece model,
[CLS] text [SEP]); anything else is refused with `BadInput` rather than tokenized slightly wrong.

Unicode notes for porters: character classes below are Unicode general categories (Python's `unicodedata`, ICU,
`Character.getType` on Android, `Unicode.Scalar.Properties` on iOS). Work on code points (not UTF-16 units), and
lowercase one code point at a time (not a whole string: Greek final sigma must stay σ, as `tokenizers` does).
Known, accepted difference: `tokenizers` takes its control, format, punctuation and non-spacing-mark classes from
Unicode 8.0 tables (crate unicode_categories 0.1.1), while this file and phone platforms use newer Unicode. Some
560 code points of rare scripts assigned since (e.g. U+2E43..U+2E4F punctuation, U+0898..U+089F marks, U+13430..
U+13438 format characters) are classed differently and may tokenize differently; no common letter, digit, symbol,
emoji or punctuation mark is among them.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from edgeft.errors import BadInput

# BERT's "Chinese character" blocks: CJK Unified Ideographs and their extensions, and compatibility ideographs.
# Hiragana, Katakana and Hangul are not in them and are tokenized like any other letters. 0x2B920 (not 0x2B820,
# where Extension E starts) is BERT's original value, which `tokenizers` keeps: copy it as is.
CJK_RANGES = [
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
    (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
]

# Unicode's White_Space property (what Rust's char::is_whitespace tests, and so `tokenizers`). Not Python's
# str.isspace, which also counts U+001C..U+001F, nor Java's Character.isWhitespace, which also misses no-break spaces.
WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


@dataclass(frozen=True)
class WordPieceSpec:
    """Everything `encode` needs; `tokenizer_spec.json` + `vocab.txt` hold exactly this."""

    vocab: list[str]  # token strings in id order: vocab[i] is token id i
    lowercase: bool
    strip_accents: bool
    clean_text: bool
    handle_chinese_chars: bool
    unk_token: str
    unk_id: int
    cls_token: str
    cls_id: int
    sep_token: str
    sep_id: int
    pad_token: str
    pad_id: int
    max_length: int  # of the whole sequence, [CLS] and [SEP] included
    truncation: str = "right"  # which side loses word pieces when the text is too long: "right" or "left"
    continuing_subword_prefix: str = "##"
    max_input_chars_per_word: int = 100
    # Tokens matched verbatim in the raw text before any other step ([CLS], [SEP], [MASK]...), as `tokenizers` does.
    added_tokens: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # A spec read from files an app or a person edited must still be coherent: check it once, here.
        if self.truncation not in ("right", "left"):
            raise BadInput(f"truncation must be 'right' or 'left', not '{self.truncation}'")
        if self.max_length < 2:
            raise BadInput(f"max_length must be at least 2 ([CLS] and [SEP]), not {self.max_length}")
        for name in ("unk", "cls", "sep", "pad"):
            token, token_id = getattr(self, f"{name}_token"), getattr(self, f"{name}_id")
            if not 0 <= token_id < len(self.vocab) or self.vocab[token_id] != token:
                raise BadInput(f"{name}_token '{token}' is not token id {token_id} "
                               f"of the {len(self.vocab)}-token vocabulary")
        for token in self.added_tokens:
            if token not in self.token_to_id:
                raise BadInput(f"added token '{token}' is not in the vocabulary")

    @cached_property
    def token_to_id(self) -> dict[str, int]:
        return {token: i for i, token in enumerate(self.vocab)}

    @classmethod
    def from_tokenizer_json(cls, path: str | Path, max_length: int, truncation: str = "right") -> WordPieceSpec:
        """Read a Hugging Face tokenizer.json; refuse (BadInput) any tokenizer `encode` would not reproduce exactly.

        The file's own "truncation" and "padding" sections are ignored: max_length and truncation given here rule,
        as in the runtime's TextEncoder.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadInput(f"tokenizer file {path} cannot be read as JSON: {exc}") from None

        def refuse(part: str, found: object, wanted: str) -> BadInput:
            return BadInput(f"tokenizer file {path} is not a BERT WordPiece tokenizer: {part} is "
                            f"{json.dumps(found)[:120]}, the phone tokenizer needs {wanted}")

        model = data.get("model") or {}
        if model.get("type") != "WordPiece":
            raise refuse("model.type", model.get("type"), "WordPiece")
        vocab_map = model.get("vocab")
        if not isinstance(vocab_map, dict) or sorted(vocab_map.values()) != list(range(len(vocab_map))):
            raise refuse("model.vocab", "(ids not 0..n-1)", "ids 0..n-1, one per token")
        vocab = sorted(vocab_map, key=vocab_map.__getitem__)

        normalizer = data.get("normalizer") or {}
        if normalizer.get("type") != "BertNormalizer":
            raise refuse("normalizer", normalizer.get("type"), "BertNormalizer")
        pre_tokenizer = data.get("pre_tokenizer") or {}
        if pre_tokenizer.get("type") != "BertPreTokenizer":
            raise refuse("pre_tokenizer", pre_tokenizer.get("type"), "BertPreTokenizer")
        (cls_token, cls_id), (sep_token, sep_id) = _bert_specials(data.get("post_processor") or {}, refuse)
        if (vocab_map.get(cls_token), vocab_map.get(sep_token)) != (cls_id, sep_id):
            raise refuse("post_processor", [[cls_token, cls_id], [sep_token, sep_id]], "the ids of model.vocab")

        added = []
        for entry in data.get("added_tokens") or []:
            # Other flags change where a token matches (inside words, eating spaces, after normalization).
            flags = {key: entry.get(key) for key in ("single_word", "lstrip", "rstrip", "normalized")}
            if any(flags.values()):
                raise refuse(f"added token {entry.get('content')!r}", flags, "all of these false")
            if vocab_map.get(entry.get("content")) != entry.get("id"):
                raise refuse(f"added token {entry.get('content')!r}", entry.get("id"), "its id in model.vocab")
            added.append(entry["content"])

        lowercase = bool(normalizer.get("lowercase", True))
        strip_accents = normalizer.get("strip_accents")
        unk_token = model.get("unk_token", "[UNK]")
        pad_token = (data.get("padding") or {}).get("pad_token", "[PAD]")
        for token in (unk_token, pad_token):
            if token not in vocab_map:
                raise refuse("special token", token, "it in model.vocab")
        return cls(
            vocab=vocab,
            lowercase=lowercase,
            # Hugging Face semantics: null means "strip accents if and only if lowercasing".
            strip_accents=lowercase if strip_accents is None else bool(strip_accents),
            clean_text=bool(normalizer.get("clean_text", True)),
            handle_chinese_chars=bool(normalizer.get("handle_chinese_chars", True)),
            unk_token=unk_token, unk_id=vocab_map[unk_token],
            cls_token=cls_token, cls_id=cls_id,
            sep_token=sep_token, sep_id=sep_id,
            pad_token=pad_token, pad_id=vocab_map[pad_token],
            max_length=max_length,
            truncation=truncation,
            continuing_subword_prefix=model.get("continuing_subword_prefix", "##"),
            max_input_chars_per_word=int(model.get("max_input_chars_per_word", 100)),
            added_tokens=tuple(added),
        )


def _bert_specials(post: dict, refuse: Callable[[str, object, str], BadInput]) -> tuple[tuple[str, int], ...]:
    """((cls_token, cls_id), (sep_token, sep_id)) of a post-processor making [CLS] text [SEP], type ids all 0."""
    if post.get("type") == "BertProcessing":
        return tuple(post["cls"]), tuple(post["sep"])
    if post.get("type") == "TemplateProcessing":
        single = post.get("single") or []
        kinds = [next(iter(item)) for item in single]
        if (kinds == ["SpecialToken", "Sequence", "SpecialToken"] and single[1]["Sequence"]["id"] == "A"
                and all(next(iter(item.values()))["type_id"] == 0 for item in single)):
            first, last = single[0]["SpecialToken"]["id"], single[2]["SpecialToken"]["id"]
            specials = post.get("special_tokens") or {}
            # A template token may stand for several ids; BERT's stand for one each.
            if all(len((specials.get(t) or {}).get("ids") or []) == 1 for t in (first, last)):
                return tuple((specials[t]["tokens"][0], specials[t]["ids"][0]) for t in (first, last))
        raise refuse("post_processor.single", single, "[CLS] $A [SEP] with type id 0")
    raise refuse("post_processor", post.get("type"), "TemplateProcessing or BertProcessing")


# ---------------------------------------------------------------------------------------------- the algorithm


def encode(spec: WordPieceSpec, text: str) -> dict[str, list[int]]:
    """Token ids of one text: [CLS] word pieces [SEP], truncated to spec.max_length, not padded."""
    encoded = encode_with_offsets(spec, text)
    return {key: encoded[key] for key in ("input_ids", "attention_mask", "token_type_ids")}


def encode_with_offsets(spec: WordPieceSpec, text: str) -> dict[str, list]:
    """`encode` plus, per token, its `offsets` [start, end) in code points of `text` and its `word_ids` (step 10):
    what a token classifier needs to turn per-token tags into spans of the user's text."""
    pieces: list[tuple[int, int, int, int]] = []  # (id, start, end, word)
    word = 0
    for segment, is_added_token, at in split_added_tokens(spec, text):
        if is_added_token:
            pieces.append((spec.token_to_id[segment], at, at + len(segment), word))
            word += 1
            continue
        for chars in pre_tokenize_traced(normalize_traced(spec, segment, at)):
            pieces.extend((piece, chars[a][1], chars[b - 1][2], word) for piece, a, b in wordpiece_traced(spec, chars))
            word += 1

    keep = spec.max_length - 2  # room left by [CLS] and [SEP], which always stay
    if len(pieces) > keep:
        pieces = pieces[:keep] if spec.truncation == "right" else pieces[len(pieces) - keep:]
    input_ids = [spec.cls_id, *(p[0] for p in pieces), spec.sep_id]
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "token_type_ids": [0] * len(input_ids),  # one sentence: all segment A
        "offsets": [[0, 0], *([p[1], p[2]] for p in pieces), [0, 0]],
        "word_ids": [None, *(p[3] for p in pieces), None],
    }


def split_added_tokens(spec: WordPieceSpec, text: str) -> list[tuple[str, bool, int]]:
    """Step 1: [(segment, is_added_token, start)]; at each position the longest added token wins (leftmost-longest)."""
    segments: list[tuple[str, bool, int]] = []
    start = i = 0
    while i < len(text):
        match = max((t for t in spec.added_tokens if text.startswith(t, i)), key=len, default=None)
        if match is None:
            i += 1
            continue
        if i > start:
            segments.append((text[start:i], False, start))
        segments.append((match, True, i))
        i = start = i + len(match)
    if start < len(text):
        segments.append((text[start:], False, start))
    return segments


# A character of the normalized text and the span [start, end) of input code points it came from.
Traced = tuple[str, int, int]


def normalize(spec: WordPieceSpec, text: str) -> str:
    """Steps 2-5, in this order (accents are stripped before lowercasing, as in `tokenizers`)."""
    return "".join(c for c, _, _ in normalize_traced(spec, text))


def normalize_traced(spec: WordPieceSpec, text: str, at: int = 0) -> list[Traced]:
    """Steps 2-5 on `text` (which starts at code point `at` of the input), each output character traced (step 10)."""
    chars: list[Traced] = [(c, at + i, at + i + 1) for i, c in enumerate(text)]
    if spec.clean_text:
        chars = [(" " if c in WHITESPACE else c, a, b) for c, a, b in chars if not _is_removed_by_cleaning(c)]
    if spec.handle_chinese_chars:
        chars = [out for c, a, b in chars
                 for out in (((" ", a, b), (c, a, b), (" ", a, b)) if _is_cjk(c) else ((c, a, b),))]
    if spec.strip_accents:
        chars = [(c, a, b) for c, a, b in _nfd_traced(chars) if unicodedata.category(c) != "Mn"]
    if spec.lowercase:
        # One code point at a time: str.lower() on the whole string would apply Greek final-sigma rules.
        chars = [(low, a, b) for c, a, b in chars for low in c.lower()]
    return chars


def _nfd_traced(chars: list[Traced]) -> list[Traced]:
    """Unicode NFD of the whole string, traced. Each character decomposes on its own, except that NFD then puts a
    run of combining marks in canonical order, which can move a mark away from the character it came from: each
    mark keeps its own source's span wherever it moves."""
    whole = unicodedata.normalize("NFD", "".join(c for c, _, _ in chars))
    apart = [(d, a, b) for c, a, b in chars for d in unicodedata.normalize("NFD", c)]
    if whole == "".join(d for d, _, _ in apart):
        return apart
    out: list[Traced] = []
    i = 0
    while i < len(apart):  # clusters: a character and the combining marks (combining class > 0) after it
        j = i + 1
        while j < len(apart) and unicodedata.combining(apart[j][0]):
            j += 1
        # Reordering stays inside a cluster (same length, same place): match each reordered mark to its source.
        unused = list(apart[i:j])
        for c in whole[i:j]:
            k = next(k for k, (d, _, _) in enumerate(unused) if d == c)
            out.append(unused.pop(k))
        i = j
    return out


def pre_tokenize(text: str) -> list[str]:
    """Step 6: words split on whitespace, and every punctuation character a word of its own."""
    return ["".join(c for c, _, _ in word) for word in pre_tokenize_traced([(c, 0, 0) for c in text])]


def pre_tokenize_traced(chars: list[Traced]) -> list[list[Traced]]:
    """Step 6 on traced characters: the words, each a list of its characters."""
    words: list[list[Traced]] = []
    current: list[Traced] = []
    for char in chars:
        c = char[0]
        if c in WHITESPACE or _is_punctuation(c):
            if current:
                words.append(current)
            current = []
            if c not in WHITESPACE:
                words.append([char])
        else:
            current.append(char)
    if current:
        words.append(current)
    return words


def wordpiece(spec: WordPieceSpec, word: str) -> list[int]:
    """Step 7: greedy longest-match-first; any part that matches nothing makes the whole word [UNK]."""
    return [piece for piece, _, _ in wordpiece_traced(spec, word)]


def wordpiece_traced(spec: WordPieceSpec, word: str | list[Traced]) -> list[tuple[int, int, int]]:
    """Step 7 with each piece's character range in the word: [(id, first, end)]."""
    if not isinstance(word, str):
        word = "".join(c for c, _, _ in word)
    if len(word) > spec.max_input_chars_per_word:  # len counts code points, as it must
        return [(spec.unk_id, 0, len(word))]
    pieces: list[tuple[int, int, int]] = []
    start = 0
    while start < len(word):
        end = len(word)
        found = None
        while start < end:
            piece = word[start:end] if start == 0 else spec.continuing_subword_prefix + word[start:end]
            if piece in spec.token_to_id:
                found = spec.token_to_id[piece]
                break
            end -= 1
        if found is None:
            return [(spec.unk_id, 0, len(word))]
        pieces.append((found, start, end))
        start = end
    return pieces


def _is_removed_by_cleaning(c: str) -> bool:
    # Tab, LF and CR are control characters too, but they separate words: they become spaces instead.
    if c in "\t\n\r":
        return False
    # Unassigned code points (Cn) stay: `tokenizers` keeps them, and they are often emoji newer than the tables.
    return c in "\x00\ufffd" or unicodedata.category(c) in ("Cc", "Cf", "Co")


def _is_cjk(c: str) -> bool:
    return any(low <= ord(c) <= high for low, high in CJK_RANGES)


def _is_punctuation(c: str) -> bool:
    # BERT also counts ASCII symbols such as $ + < = > ^ ` | ~ (categories S*) as punctuation.
    code = ord(c)
    return (33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126
            or unicodedata.category(c).startswith("P"))
