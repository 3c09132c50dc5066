"""The tokenizer files a bundle ships for a phone app's port (see edgeft.runtime.wordpiece for the algorithm):

    vocab.txt             one token per line, line N (from 0) is token id N
    tokenizer_spec.json   the spec's settings and the algorithm's steps (ALGORITHM), in order
    reference.jsonl       texts and the exact ids, offsets and word ids the algorithm gives them (edge cases first)
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from edgeft.errors import BadInput
from edgeft.runtime.wordpiece import CJK_RANGES, WHITESPACE, WordPieceSpec, encode_with_offsets

VOCAB_FILE = "vocab.txt"
SPEC_FILE = "tokenizer_spec.json"

# The steps of `encode`, in order; written into tokenizer_spec.json for the app developer.
ALGORITHM = [
    "1. added tokens: scan the raw text left to right; where one of `added_tokens` starts, take the longest one as "
    "its own id (so '[SEP]' typed by a user is the [SEP] id); tokenize the text between them with steps 2-7",
    "2. clean_text: drop U+0000, U+FFFD and control, format and private-use characters (categories Cc, Cf, Co) "
    "except tab, LF and CR; keep unassigned code points (newer emoji); replace whitespace (the code points in "
    "`whitespace`: Unicode White_Space, not Java's Character.isWhitespace) by a space",
    "3. handle_chinese_chars: put a space before and after each CJK ideograph (the code point ranges in "
    "`cjk_ranges`)",
    "4. strip_accents: Unicode NFD, then drop non-spacing marks (category Mn)",
    "5. lowercase: map each code point to its lowercase on its own (no context rules)",
    "6. pre-tokenize: split on `whitespace` (dropped), then make each punctuation character (categories P*, or ASCII "
    "33-47, 58-64, 91-96, 123-126) a word of its own",
    "7. WordPiece, per word: a word longer than `max_input_chars_per_word` code points is `unk_token`; else take "
    "the longest prefix in the vocabulary, then repeatedly the longest `continuing_subword_prefix` + rest-prefix in "
    "the vocabulary; if at some point nothing matches, the whole word is `unk_token`",
    "8. truncate: keep at most max_length - 2 word pieces, dropping from the end ('right') or the start ('left')",
    "9. add specials: [cls_id] + pieces + [sep_id]; attention_mask is all 1, token_type_ids all 0; no padding "
    "(pad with pad_id, mask 0, type 0 if the model needs a fixed length)",
    "10. offsets and word ids (token classification): every character of the normalized text remembers the span of "
    "input code points it came from (a character NFD or lowercasing produced, or a space around a CJK ideograph, "
    "has its source character's span; a combining mark that NFD's canonical reordering moves keeps its own "
    "source's span). A piece's offsets are [start of its first character's span, end of its last character's "
    "span), in Unicode code points of the input string (not UTF-16 units, not bytes); an [UNK] word covers its whole "
    "word; [CLS] and [SEP] are [0, 0]. A piece's word id is the index of its word among the words of step 6, counted "
    "over the whole text, where an added token of step 1 counts as one word; [CLS] and [SEP] have word id null",
]


def write_spec(spec: WordPieceSpec, folder: str | Path) -> None:
    """Write vocab.txt and tokenizer_spec.json into `folder`: everything an app's tokenizer needs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bad = [t for t in spec.vocab if "\n" in t or "\r" in t]
    if bad:  # one token per line cannot hold them
        raise BadInput(f"vocabulary token {bad[0]!r} holds a line break; it cannot be written to {VOCAB_FILE}")
    # "\n" only, whatever the platform: readers split on "\n" (and must not split on U+2028 or U+0085).
    with open(folder / VOCAB_FILE, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("".join(token + "\n" for token in spec.vocab))
    settings = {key: value for key, value in asdict(spec).items() if key != "vocab"}
    settings["added_tokens"] = list(spec.added_tokens)
    settings["vocab_file"] = VOCAB_FILE
    settings["vocab_size"] = len(spec.vocab)
    settings["whitespace"] = [f"U+{ord(c):04X}" for c in sorted(WHITESPACE)]
    settings["cjk_ranges"] = [[f"U+{low:04X}", f"U+{high:04X}"] for low, high in CJK_RANGES]
    settings["algorithm"] = ALGORITHM
    (folder / SPEC_FILE).write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_spec(folder: str | Path) -> WordPieceSpec:
    """The spec that write_spec wrote into `folder` (what an app loads, in Python)."""
    folder = Path(folder)
    try:
        settings = json.loads((folder / SPEC_FILE).read_text(encoding="utf-8"))
        lines = (folder / settings.get("vocab_file", VOCAB_FILE)).read_text(encoding="utf-8").split("\n")
    except (OSError, ValueError) as exc:
        raise BadInput(f"tokenizer spec in {folder} cannot be read: {exc}") from None
    vocab = lines[:-1] if lines and lines[-1] == "" else lines  # the last line ends with "\n" too
    if len(vocab) != settings.get("vocab_size"):
        raise BadInput(f"{folder / VOCAB_FILE} has {len(vocab)} tokens, {SPEC_FILE} says {settings.get('vocab_size')}")
    known = set(WordPieceSpec.__dataclass_fields__) - {"vocab"}
    fields = {key: value for key, value in settings.items() if key in known}
    fields["added_tokens"] = tuple(fields.get("added_tokens", ()))
    return WordPieceSpec(vocab=vocab, **fields)


def write_reference(spec: WordPieceSpec, texts: list[str], path: str | Path) -> None:
    """JSONL, one line per text: {"text", "input_ids", "attention_mask", "token_type_ids", "offsets", "word_ids"};
    an app's port must give the same ids for every text, and a token classifier's port the same offsets and word
    ids too."""
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for text in texts:
            # ensure_ascii: every line is plain ASCII, so no reader splits a line at a U+2028 or U+0085 in a text.
            fh.write(json.dumps({"text": text, **encode_with_offsets(spec, text)}, ensure_ascii=True) + "\n")


# Texts where a port most often goes wrong; a bundle's reference.jsonl starts with them.
REFERENCE_EDGE_CASES: list[str] = [
    "Café déjà vu, naïve façade",  # accents stripped (NFD + drop marks)
    "THIS Is SHOUTING and İstanbul ΟΔΟΣ",  # lowercase per code point: dotted İ, Greek final sigma stays σ
    # Emoji, a skin-tone modifier, a variation selector (Mn: stripped) and U+1FAE8 (Unicode 15: kept as unassigned).
    "I love it 😍🔥👍🏽 so much ❤️ 🫨",
    "我爱北京天安门 and 東京タワー",  # CJK ideographs split one by one; katakana is not
    "wait...what?!?! (really) [no] {yes} <tag> ~x~ $5 50% a+b=c a|b `q` ^_^",  # ASCII symbols count as punctuation
    "see https://example.com/path?q=1&lang=en#top or www.test.org",
    "@user_name thanks! #BlessedDay #100DaysOfCode",
    "bell\x07here, null\x00there, zero\u200bwidth, bom\ufeff, replacement\ufffdchar",  # control/format chars dropped
    "tabs\tand\nnewlines\r\nand\u00a0no-break\u3000ideographic\u2028separator   spaces",
    "a" * 101 + " short " + "supercalifragilisticexpialidocious" * 3,  # > 100 code points: one [UNK]
    " ".join(f"word{i} with, some punctuation!" for i in range(60)),  # needs truncation
    "\x00\ufffd\x07 \t\n",  # empty after cleaning: [CLS] [SEP]
    "1,000,000 people paid $3,499.99 on 12/31/2024 at 10:30pm",
    "user typed [SEP] and [MASK] and [cls] literally",  # added tokens match verbatim, case-sensitively
]
