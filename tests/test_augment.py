"""Word-dropped copies of the training texts: more distinct inputs for the teacher to label, so that a student
learns from more text than the training split holds (`Student.augment_views`, soft targets only)."""

from __future__ import annotations

import pytest

from conftest import run_edgeft, tiny_ner_args
from edgeft.data.augment import word_dropped
from edgeft.data.text import load_dataset, split_dataset
from edgeft.student_recipe import Student
from edgeft.stages.distill import DistillSpec, distill
from edgeft.stages.finetune import FinetuneSpec, finetune

TEXTS = ["the table is very good today", "so sad", "my car was broken and it was a very bad day"]


def test_each_copy_drops_at_least_one_word_and_keeps_the_rest_in_order():
    copies = word_dropped(TEXTS, views=2, rate=0.15, seed=0)
    # Two views of each text of three or more words; "so sad" is too short to lose a word and stay a text.
    sources = [TEXTS[0], TEXTS[2], TEXTS[0], TEXTS[2]]
    assert len(copies) == 4
    for copy, source in zip(copies, sources):
        words, kept = source.split(), copy.split()
        assert 0 < len(kept) < len(words)
        it = iter(words)
        assert all(word in it for word in kept)  # a subsequence: words dropped, none moved or invented


def test_copies_are_seeded_and_the_drop_rate_is_what_was_asked():
    assert word_dropped(TEXTS, 1, 0.15, seed=3) == word_dropped(TEXTS, 1, 0.15, seed=3)
    assert word_dropped(TEXTS, 0, 0.15, seed=3) == []
    long_text = " ".join(f"w{i}" for i in range(2000))
    kept = len(word_dropped([long_text], 1, 0.3, seed=1)[0].split())
    assert 0.27 < 1 - kept / 2000 < 0.33


def test_a_student_trains_on_the_copies_too_and_its_manifest_counts_them(tiny_model, tiny_csv, work_dir):
    data = load_dataset(str(tiny_csv))
    split = split_dataset(data, seed=0)
    teacher = finetune(tiny_model, data, split, FinetuneSpec(epochs=1, min_steps=0, max_train_samples=None,
                                                             learning_rate=3e-3, batch_size=16, device="cpu"),
                       work_dir)
    recipe = Student(layers=1, ffn=64, epochs=1, batch_size=16, augment_views=2)
    student = distill(teacher, data, split, DistillSpec(student=recipe, device="cpu"), work_dir)
    train_texts = [data.texts[i] for i in split.train]
    expected = len(word_dropped(train_texts, 2, recipe.augment_drop, 0))
    assert expected > len(train_texts)  # the tiny texts are long enough: both views of (almost) every text
    assert student.manifest["augmented"] == expected
    # One pass over the training texts and their copies, in batches of 16.
    assert student.manifest["metrics"]["steps_run"] == -(-(len(train_texts) + expected) // 16)


def test_a_ner_build_refuses_word_dropped_copies_before_any_training(tiny_model, tiny_conll, tmp_path):
    code, _, err = run_edgeft(["build", "--target", "x86-avx2", "--task", "ner", *tiny_ner_args("x86-avx2"),
                               "--model", str(tiny_model), "--data", str(tiny_conll), "--out", str(tmp_path / "bundle"),
                               "--work-dir", str(tmp_path), "--distill", "augment_views=1"])
    assert code == 2
    assert "augment_views=1 is for sentence labels" in " ".join(err.split())
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").glob("finetune-*"))
