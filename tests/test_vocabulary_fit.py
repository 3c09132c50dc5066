"""How the base model's tokenizer reads a user's texts, before any training: a build says when its vocabulary cannot
read them ([UNK] characters, or a script read letter by letter) and names the fix, and a build that then learns
nothing says that this is the likeliest cause."""

from __future__ import annotations

import csv
import json
import random

import pytest

from conftest import WORDS, make_rows, run_edgeft, tiny_build_args
from edgeft.data.assets import DEFAULT_MODEL, packaged_model
from edgeft.data.text import load_dataset
from edgeft.data.vocabulary_fit import vocabulary_fit

MINILM_TOKENIZER = packaged_model(DEFAULT_MODEL).path / "tokenizer.json"


def test_english_tweets_are_read_as_words_with_no_warning():
    fit = vocabulary_fit(MINILM_TOKENIZER, load_dataset("packaged:tweets").texts[:2000], 128)
    assert fit.texts == 2000 and fit.unknown == 0 and fit.single_letters < 0.25 and fit.truncated == 0
    assert fit.warnings() == []
    assert "0.0% [UNK]" in fit.line() and "128-piece input" in fit.line()


def test_characters_the_vocabulary_lacks_are_named_with_the_fix():
    fit = vocabulary_fit(MINILM_TOKENIZER, ["快递又迟到了，客服一直没有回复我的邮件。", "การจัดส่งล่าช้าอีกแล้ว"], 128)
    assert fit.unknown > 0.5
    warning = fit.warnings()[0]  # the few CJK characters it has are single letters too: a second warning
    assert "of the word pieces are [UNK]" in warning and "'快'" in warning and "--model DIR" in warning


@pytest.mark.parametrize("text", ["Доставка снова опоздала, и служба поддержки так и не ответила на мои письма.",
                                  "Η παράδοση καθυστέρησε ξανά και η ομάδα υποστήριξης δεν απάντησε ποτέ."])
def test_a_script_read_letter_by_letter_is_not_a_language_the_model_knows(text):
    fit = vocabulary_fit(MINILM_TOKENIZER, [text], 128)
    assert fit.unknown == 0 and fit.single_letters > 0.9
    (warning,) = fit.warnings()
    assert "letter by letter" in warning and "--model DIR" in warning


def test_long_texts_are_counted_as_cut_to_the_input():
    fit = vocabulary_fit(MINILM_TOKENIZER, ["word " * 200, "short text"], 128)
    assert fit.truncated == 0.5 and fit.warnings() == []


def test_a_large_set_is_read_from_a_seeded_sample(monkeypatch):
    import edgeft.data.vocabulary_fit as module

    monkeypatch.setattr(module, "MAX_TEXTS", 50)
    texts = load_dataset("packaged:tweets").texts[:500]
    first = vocabulary_fit(MINILM_TOKENIZER, texts, 128, seed=3)
    assert first.texts == 50 and first == vocabulary_fit(MINILM_TOKENIZER, texts, 128, seed=3)


def test_a_build_on_text_the_vocabulary_cannot_read_warns_and_its_floor_failure_names_it(tiny_model, tmp_path):
    # The labels follow keywords, but the tiny model's vocabulary has none of these words: every piece is [UNK].
    unreadable = {label: [f"слово{i}{label[:3]}" for i in range(len(words))] for label, words in WORDS.items()}
    rng = random.Random(3)
    rows = [(" ".join(rng.sample(unreadable[label], 2)), label) for _, label in make_rows(480, seed=2)]
    data = tmp_path / "cyrillic.csv"
    with open(data, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("text", "label"), *rows])
    out = tmp_path / "bundle"
    code, stdout, err = run_edgeft(tiny_build_args("x86-avx2-teacher", tiny_model, data, out, tmp_path / "work"))
    printed = " ".join((stdout + err).split())  # the console wraps long lines
    assert "warning: 100.0% of the word pieces are [UNK]" in printed
    assert code == 1, err
    assert "did not beat the majority baseline" in err and "above all, 100.0% of the word pieces are [UNK]" in err
    fit = json.loads((out / "manifest.json").read_text())["inputs"]["data"]["vocabulary_fit"]
    assert fit["unknown"] == 1.0 and fit["warnings"] and fit["texts"] == json.loads(
        (out / "manifest.json").read_text())["inputs"]["split"]["train"]
