"""Small sets of long texts: the student also learns from later windows of each training text (soft targets only),
and a student that fails the dev rule gets one deeper try before the teacher ships."""

from __future__ import annotations

import json

import pytest

from conftest import FILLER, WORDS, run_edgeft, tiny_build_args
from edgeft.student_recipe import Student
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder, whole_text_tokenizer
from edgeft.stages.lessons import later_windows

VOCAB = FILLER + [w for ws in WORDS.values() for w in ws]


@pytest.fixture
def encode(tiny_model) -> TextEncoder:
    # 12 pieces a text: [CLS], 10 of the text, [SEP]; windows are 10 pieces, every 5.
    return TextEncoder(tiny_model / "tokenizer.json", 12, "right", TOKENIZER_OUTPUTS)


def pieces(encode: TextEncoder, text: str) -> list[int]:
    return whole_text_tokenizer(encode.tokenizer_file).encode(text, add_special_tokens=False).ids


def test_a_long_text_gives_half_overlapping_windows_of_the_input_length_with_the_same_pieces(encode):
    text = " ".join(VOCAB[i % len(VOCAB)] for i in range(31))  # 31 words, one piece each
    windows = later_windows([text], encode, per_text=8, room=100)
    full = pieces(encode, text)
    # Windows start at pieces 5, 10, 15, 20, 25 (the input keeps 0-9); each is 10 pieces or the rest of the text.
    assert [pieces(encode, w) for w in windows] == [full[s:s + 10] for s in (5, 10, 15, 20, 25)]


def test_texts_that_fit_the_input_give_no_windows_and_the_cap_takes_every_texts_first_window_first(encode):
    short = "good day"
    long_a = " ".join(["good"] * 25)
    long_b = " ".join(["bad"] * 25)
    assert later_windows([short], encode, per_text=8, room=100) == []
    assert later_windows([long_a], encode, per_text=0, room=100) == []
    assert later_windows([long_a], encode, per_text=8, room=0) == []
    capped = later_windows([long_a, short, long_b], encode, per_text=8, room=2)
    assert capped == [" ".join(["good"] * 10), " ".join(["bad"] * 10)]


@pytest.mark.real
def test_a_window_starts_on_a_word_and_keeps_the_pieces_the_whole_text_had_there():
    # The packaged MiniLM tokenizer splits long words into sub-words (##...): a window that would start inside a
    # word moves to the next word, so the text it cuts out tokenizes to exactly the whole text's pieces there.
    from edgeft.data.assets import DEFAULT_MODEL, packaged_model

    encode = TextEncoder(packaged_model(DEFAULT_MODEL).path / "tokenizer.json", 12, "right", TOKENIZER_OUTPUTS)
    text = " ".join(["extraordinarily unbelievable internationalization of the tokenizers"] * 4)
    full = pieces(encode, text)
    # Several of the plain starts (every 5 pieces) fall inside a word: the case under test does arise.
    assert any(encode.tokenizer.id_to_token(full[s]).startswith("##") for s in range(5, len(full), 5))
    windows = later_windows([text], encode, per_text=8, room=100)
    assert len(windows) >= 3
    for window in windows:
        # A window cut inside a word would tokenize its first fragment afresh (pieces the whole text never had).
        got = pieces(encode, window)
        assert 0 < len(got) <= 10 and any(full[s:s + len(got)] == got for s in range(len(full)))


def test_retry_layers_must_be_deeper_than_the_student_and_a_student_spec_replaces_it():
    assert Student(layers=2, retry_layers=3).retry_layers == 3
    with pytest.raises(ValueError, match="'retry_layers' 2 must be more than 'layers'"):
        Student(layers=2, retry_layers=2)
    with pytest.raises(ValueError, match="retry_layers"):
        Student(model="some/folder", retry_layers=3)
    from edgeft.student_recipe import SHAPE_FIELDS

    assert "retry_layers" in SHAPE_FIELDS  # --student layers:4 must not inherit the profile's retry of 3


def test_a_student_that_fails_the_dev_rule_is_retried_deeper_and_the_retry_ships(tiny_model, tiny_csv, work_dir,
                                                                                 tmp_path):
    # Neither student trains (learning rate 1e-9), so each is what it starts as: the 1-layer one with a single
    # feed-forward unit is far from its teacher and fails the dev rule; the retry keeps both of the tiny teacher's
    # layers (attention whole, one feed-forward unit each), scores dev as the teacher does, and ships.
    out = tmp_path / "bundle"
    code, stdout, err = run_edgeft(tiny_build_args(
        "x86-avx2", tiny_model, tiny_csv, out, work_dir, "--student", "layers:1,ffn:1", "--distill", "retry_layers=2",
        "--distill", "learning_rate=1e-9", "--distill", "min_examples=0", "--distill", "epochs=1",
        "--quantization", "fp32"))
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    first, retry = manifest["student_tries"]
    assert (first["layers"], first["check"]["passed"], retry["layers"], retry["check"]["passed"]) == (1, False, 2, True)
    assert manifest["student_check"] == retry["check"] and manifest["student_fallback"] is None
    assert manifest["distill"]["student"]["layers"] == 2
    assert "distilling a 2-layer one (retry_layers)" in " ".join((stdout + err).split())
    card = " ".join((out / "README.md").read_text().split())
    assert "A 1-layer student was tried first and failed the dev rule" in card
