"""The pure-Python WordPiece reference (edgeft.runtime.wordpiece) gives exactly the token ids of Hugging Face
`tokenizers`, and writes the files an app's Kotlin/Swift port is built and tested from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from edgeft.errors import BadInput
from edgeft.runtime.wordpiece import WordPieceSpec, encode, encode_with_offsets
from edgeft.runtime.wordpiece_files import (REFERENCE_EDGE_CASES, SPEC_FILE, VOCAB_FILE, read_spec, write_reference,
                                            write_spec)

LENGTHS_AND_SIDES = [(128, "right"), (128, "left"), (64, "right"), (64, "left")]


def minilm_tokenizer_json() -> Path:
    from edgeft.data.assets import packaged_model

    return packaged_model("all-MiniLM-L6-v2").path / "tokenizer.json"


def hf_encoder(path: Path, max_length: int, truncation: str):
    """What the build and the desktop runtime do (edgeft.runtime.encoder.TextEncoder): the file's own padding and
    truncation replaced by ours."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length, direction=truncation)

    def hf_encode(text: str) -> dict[str, list]:
        enc = tokenizer.encode(text)
        return {"input_ids": enc.ids, "attention_mask": enc.attention_mask, "token_type_ids": enc.type_ids,
                "offsets": [list(o) for o in enc.offsets], "word_ids": list(enc.word_ids)}

    return hf_encode


# Where offsets go wrong: accents precomposed and decomposed (combining marks out of canonical order, which NFD
# reorders), dotted capitals that lowercase to two code points, emoji outside the BMP (two UTF-16 units each, one
# code point), flags, curly apostrophes.
OFFSET_CASES = ["Café déjà vu", "Cafe\u0301 s\u0323\u0307 a\u0301\u0323 q\u0307\u0323 e\u0301\u0301\u0323x İİ ΟΔΟΣ",
                "😍🔥👍🏽 Zoë’s naïve résumé 🇫🇷 in São Paulo", "Ünïcödé 🫨 and 東京 at 3:30"]


def assert_same_as_tokenizers(path: Path, texts: list[str], max_length: int, truncation: str) -> None:
    """Same ids, and the same offsets (code points of the text) and word ids, token by token."""
    spec = WordPieceSpec.from_tokenizer_json(path, max_length, truncation)
    hf_encode = hf_encoder(path, max_length, truncation)
    for text in texts:
        expected = hf_encode(text)
        assert encode(spec, text) == {k: expected[k] for k in ("input_ids", "attention_mask", "token_type_ids")}, \
            f"differs from tokenizers on {text!r}"
        assert encode_with_offsets(spec, text) == expected, f"offsets or word ids differ from tokenizers on {text!r}"


def trained_bert_tokenizer(folder: Path, **normalizer_flags) -> Path:
    """A small BERT WordPiece tokenizer trained on the edge cases themselves, so that accented letters, CJK and
    emoji have pieces of their own (the conftest tiny vocabulary maps most of them to [UNK])."""
    from tokenizers.implementations import BertWordPieceTokenizer
    from tokenizers.processors import BertProcessing

    tokenizer = BertWordPieceTokenizer(**normalizer_flags)
    tokenizer.train_from_iterator(REFERENCE_EDGE_CASES * 3, vocab_size=400, min_frequency=1, show_progress=False)
    # Trained from nothing, it has no post-processor yet: BERT's [CLS] A [SEP], in its older BertProcessing form.
    tokenizer.post_processor = BertProcessing(("[SEP]", tokenizer.token_to_id("[SEP]")),
                                              ("[CLS]", tokenizer.token_to_id("[CLS]")))
    path = folder / "tokenizer.json"
    tokenizer.save(str(path))
    return path


# ---------------------------------------------------------------------------------- same ids as `tokenizers`


@pytest.mark.parametrize("max_length,truncation", LENGTHS_AND_SIDES)
def test_edge_cases_match_tokenizers_on_the_tiny_bert(tiny_model, max_length, truncation):
    texts = [*REFERENCE_EDGE_CASES, *OFFSET_CASES, "the great day was very good", "my report is broken and sad"]
    assert_same_as_tokenizers(tiny_model / "tokenizer.json", texts, max_length, truncation)


@pytest.mark.real
@pytest.mark.parametrize("max_length,truncation", LENGTHS_AND_SIDES)
def test_edge_cases_match_tokenizers_on_all_minilm(max_length, truncation):
    assert_same_as_tokenizers(minilm_tokenizer_json(), REFERENCE_EDGE_CASES + OFFSET_CASES, max_length, truncation)


@pytest.mark.real
@pytest.mark.parametrize("max_length,truncation", LENGTHS_AND_SIDES)
def test_packaged_tweets_match_tokenizers_on_all_minilm(max_length, truncation):
    from edgeft.data.text import load_dataset

    texts = load_dataset("packaged:tweets").texts[:2000]
    assert len(texts) == 2000
    assert_same_as_tokenizers(minilm_tokenizer_json(), texts, max_length, truncation)


@pytest.mark.parametrize("flags", [
    {},  # uncased BERT: lowercase, strip accents
    {"lowercase": False},  # cased BERT: strip_accents null follows lowercase, so accents stay
    {"lowercase": False, "strip_accents": True},
    {"lowercase": True, "strip_accents": False},
    {"clean_text": False, "handle_chinese_chars": False},
])
def test_every_normalizer_setting_matches_tokenizers(tmp_path, flags):
    path = trained_bert_tokenizer(tmp_path, **flags)
    assert json.loads(path.read_text())["post_processor"]["type"] == "BertProcessing"  # the other [CLS] A [SEP] form
    assert_same_as_tokenizers(path, REFERENCE_EDGE_CASES + OFFSET_CASES, 32, "right")


def test_hugging_face_strip_accents_null_means_follow_lowercase(tmp_path):
    cased = WordPieceSpec.from_tokenizer_json(trained_bert_tokenizer(tmp_path, lowercase=False), 32)
    assert (cased.lowercase, cased.strip_accents) == (False, False)
    uncased = WordPieceSpec.from_tokenizer_json(trained_bert_tokenizer(tmp_path, lowercase=True), 32)
    assert (uncased.lowercase, uncased.strip_accents) == (True, True)


def test_specials_stay_when_truncating_and_an_empty_text_is_cls_sep(tiny_model):
    spec = WordPieceSpec.from_tokenizer_json(tiny_model / "tokenizer.json", max_length=5, truncation="left")
    ids = encode(spec, "the day was very good")["input_ids"]
    assert len(ids) == 5 and ids[0] == spec.cls_id and ids[-1] == spec.sep_id
    assert [spec.vocab[i] for i in ids[1:-1]] == ["was", "very", "good"]  # left truncation keeps the end
    assert encode(spec, "\x00\t\ufffd ") == {"input_ids": [spec.cls_id, spec.sep_id], "attention_mask": [1, 1],
                                             "token_type_ids": [0, 0]}


# ---------------------------------------------------------------------------------- what is refused


def test_a_bpe_tokenizer_is_refused_naming_the_file(tmp_path):
    from tokenizers import models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=60, show_progress=False)
    bpe.train_from_iterator(["a tiny corpus", "for a tiny bpe"], trainer)
    path = tmp_path / "bpe-tokenizer.json"
    bpe.save(str(path))
    refusal = r"bpe-tokenizer\.json is not a BERT WordPiece tokenizer: model\.type is \"BPE\""
    with pytest.raises(BadInput, match=refusal):
        WordPieceSpec.from_tokenizer_json(path, 128)


@pytest.mark.parametrize("part,value,named", [
    ("pre_tokenizer", {"type": "Whitespace"}, "pre_tokenizer"),
    ("normalizer", {"type": "Lowercase"}, "normalizer"),
    ("post_processor", {"type": "RobertaProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]}, "post_processor"),
])
def test_a_wordpiece_tokenizer_with_other_steps_is_refused_naming_the_step(tiny_model, tmp_path, part, value, named):
    data = json.loads((tiny_model / "tokenizer.json").read_text())
    data[part] = value
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BadInput, match=rf"{path.name} is not a BERT WordPiece tokenizer: {named}"):
        WordPieceSpec.from_tokenizer_json(path, 128)


def test_a_bad_truncation_side_is_refused(tiny_model):
    with pytest.raises(BadInput, match="truncation must be 'right' or 'left'"):
        WordPieceSpec.from_tokenizer_json(tiny_model / "tokenizer.json", 128, "middle")


# ---------------------------------------------------------------------------------- the files an app reads


def test_spec_files_round_trip_to_the_same_encoding(tmp_path):
    spec = WordPieceSpec.from_tokenizer_json(trained_bert_tokenizer(tmp_path), 64, "left")
    write_spec(spec, tmp_path / "app")

    settings = json.loads((tmp_path / "app" / SPEC_FILE).read_text(encoding="utf-8"))
    assert "vocab" not in settings and settings["vocab_size"] == len(spec.vocab)
    assert settings["algorithm"][0].startswith("1. added tokens") and len(settings["algorithm"]) == 10
    assert (tmp_path / "app" / VOCAB_FILE).read_text(encoding="utf-8").split("\n")[:-1] == spec.vocab

    again = read_spec(tmp_path / "app")
    assert again == spec
    for text in REFERENCE_EDGE_CASES:
        assert encode(again, text) == encode(spec, text)


def test_vocab_txt_is_the_bert_vocab_file_it_came_from(tiny_model, tmp_path):
    write_spec(WordPieceSpec.from_tokenizer_json(tiny_model / "tokenizer.json", 128), tmp_path)
    assert (tmp_path / VOCAB_FILE).read_text(encoding="utf-8") == (tiny_model / "vocab.txt").read_text(encoding="utf-8")


def test_reference_vectors_hold_the_exact_texts_and_ids(tiny_model, tmp_path):
    spec = WordPieceSpec.from_tokenizer_json(tiny_model / "tokenizer.json", 64)
    path = tmp_path / "reference.jsonl"
    write_reference(spec, REFERENCE_EDGE_CASES, path)

    raw = path.read_bytes()
    assert raw.isascii()  # no reader can split a line at a U+2028 or U+0085 inside a text
    lines = [json.loads(line) for line in raw.decode("ascii").split("\n")[:-1]]
    assert [line["text"] for line in lines] == REFERENCE_EDGE_CASES  # control characters and all
    for line in lines:
        ids = {key: line[key] for key in ("input_ids", "attention_mask", "token_type_ids")}
        assert ids == encode(spec, line["text"])
