"""Shared fixtures: a tiny random BERT built offline, a small labelled dataset with a learnable signal, and one
tiny build per target that several tests read (built once per session: every stage runs for real, in seconds)."""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

import pytest

WORDS = {
    "positive": ["good", "great", "happy", "love", "excellent", "nice"],
    "negative": ["bad", "awful", "sad", "hate", "terrible", "broken"],
    "neutral": ["table", "monday", "report", "car", "window", "paper"],
}
FILLER = ["the", "a", "is", "was", "today", "this", "it", "very", "my", "day", "and", "so"]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer, 64-wide BERT with a 50-word vocabulary: random weights, real architecture and tokenizer files."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *FILLER, *(w for ws in WORDS.values() for w in ws)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
    # As sentence-transformers ships its models (the packaged MiniLM too): tokenizer.json pads every text to a fixed
    # 128 tokens. A bundle must not pass that on to apps that read its tokenizer files (tests/test_tokenizer_files.py).
    from tokenizers import Tokenizer

    fixed = Tokenizer.from_file(str(folder / "tokenizer.json"))
    fixed.enable_padding(length=128, pad_id=0, pad_token="[PAD]")
    fixed.enable_truncation(128)
    fixed.save(str(folder / "tokenizer.json"))
    config = BertConfig(vocab_size=len(vocab), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=128)
    import torch

    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    # Also as sentence-transformers ships them: trained through a mean over token vectors, which `--pooling auto`
    # follows (stages/pooling.py; the default is BERT's [CLS] pooler).
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": false, '
                                                      '"pooling_mode_mean_tokens": true}', encoding="utf-8")
    return folder


def make_rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = ("positive", "negative", "neutral")[i % 3]
        words = rng.sample(FILLER, 4) + rng.sample(WORDS[label], 2)
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(make_rows(480, seed=1))
    return path


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory) -> Path:
    # One stage cache for the whole session: the tiny fine-tune runs once and every target reuses it.
    return tmp_path_factory.mktemp("work")


def run_edgeft(args: list[str], monkeypatch=None) -> tuple[int, str, str]:
    """Run the real `edgeft` entry point (error mapping included) in-process; return (exit code, stdout, stderr)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from edgeft.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["edgeft", *args]
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


def tiny_build_args(target: str, model: Path, data: Path, out: Path, work: Path, *extra: str) -> list[str]:
    from edgeft.profile import load_profile

    # A profile's student (2 of 6 layers, 192 of 384 wide, 384 feed-forward units) does not fit the 2-layer, 64-wide
    # tiny model: the same path (narrowed, then distilled) runs with 1 layer, 32 of 64 wide, the rest of the profile's
    # recipe kept. A later --student in `extra` wins.
    student = (["--student", "layers:1,hidden:32", *TINY_DISTILLATION] if load_profile(target).student is not None
               else [])
    return ["build", "--target", target, "--model", str(model), "--data", str(data), "--out", str(out),
            "--work-dir", str(work), *TINY_TRAINING, "--device", "cpu", *student, *extra]


# A 64-wide random model learns the word signal in ~100 steps at a high rate (its random word embeddings stay
# frozen, as the default keeps pretrained ones); the real default is 8e-5.
TINY_TRAINING = ["--epochs", "5", "--max-train-samples", "0", "--learning-rate", "3e-3", "--batch-size", "16"]
TINY_DISTILLATION = ["--distill", "epochs=6", "--distill", "learning_rate=1e-3", "--distill", "batch_size=16"]


@pytest.fixture(scope="session")
def tiny_bundles(tiny_model, tiny_csv, work_dir, tmp_path_factory) -> dict[str, Path]:
    """One real bundle per target profile, built from the tiny model; built on first use."""
    root = tmp_path_factory.mktemp("bundles")
    built: dict[str, Path] = {}

    class Bundles(dict):
        def __missing__(self, target: str) -> Path:
            out = root / target
            code, _, err = run_edgeft(tiny_build_args(target, tiny_model, tiny_csv, out, work_dir))
            assert code == 0, err
            self[target] = out
            return out

    return Bundles(built)


# Entity words of the tiny vocabulary (WORDS). A "person" is three distinct words of twelve, so most test names are
# combinations the training split never showed: a lexicon of training entities finds the places and few of the
# people (entity F1 about 0.7), a model that learned which words make a name finds them all. That gap is what the NER
# floor checks (gating/floor.py).
PEOPLE = WORDS["positive"] + WORDS["negative"]
PLACES = WORDS["neutral"]
TINY_NER_TRAINING = ["--epochs", "6", "--learning-rate", "3e-3", "--device", "cpu"]


def tiny_ner_args(target: str) -> list[str]:
    """The tiny NER recipe, and a 1-layer student where the target's profile distils one (as tiny_build_args)."""
    from edgeft.profile import load_profile

    student = ["--student", "layers:1", *TINY_DISTILLATION] if load_profile(target).student is not None else []
    return [*TINY_NER_TRAINING, *student]


def tagged_sentences(n: int, seed: int) -> list[tuple[list[str], list[str]]]:
    rng = random.Random(seed)
    sentences = []
    for i in range(n):
        words = rng.sample(FILLER, 5)
        tags = ["O"] * 5
        at = rng.randrange(5)
        if i % 2:
            words[at:at] = rng.sample(PEOPLE, 3)
            tags[at:at] = ["B-person", "I-person", "I-person"]
        else:
            words[at:at] = [rng.choice(PLACES)]
            tags[at:at] = ["B-place"]
        sentences.append((words, tags))
    return sentences


@pytest.fixture(scope="session")
def tiny_conll(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ner") / "tiny.conll"
    blocks = ["\n".join(f"{w}\t{t}" for w, t in zip(words, tags)) for words, tags in tagged_sentences(300, seed=0)]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def ner_bundles(tiny_model, tiny_conll, tmp_path_factory) -> dict[str, Path]:
    """One tiny NER bundle per target, built on first use; one stage cache, so targets that share an input policy
    share the fine-tune."""
    root = tmp_path_factory.mktemp("ner-bundles")

    class Bundles(dict):
        work = root / "work"  # the stage cache, for a test's own build of the same model and data

        def __missing__(self, target: str) -> Path:
            out = root / target
            code, _, err = run_edgeft(["build", "--task", "ner", "--target", target, "--model", str(tiny_model),
                                       "--data", str(tiny_conll), "--out", str(out), "--work-dir", str(self.work),
                                       *tiny_ner_args(target)])
            assert code == 0, err
            self[target] = out
            return out

    return Bundles()


# The real packaged model and tweets, trained briefly: 1,500 texts for one epoch of batch 32 (minutes on 2 cores,
# clearly above chance; the small-set default would be batch 16). Every real bundle of the session shares one stage
# cache, so the fine-tune runs once.
REAL_TRAINING = ["--epochs", "1", "--max-train-samples", "1500", "--batch-size", "32", "--student", "none"]


@pytest.fixture(scope="session")
def real_bundles(tmp_path_factory) -> dict[str, tuple[Path, int]]:
    """target -> (bundle folder, exit code of its build) for the packaged model and data; built on first use."""
    root = tmp_path_factory.mktemp("real")

    class Bundles(dict):
        def __missing__(self, target: str) -> tuple[Path, int]:
            out = root / target
            code, _, err = run_edgeft(["build", "--target", target, "--out", str(out), "--work-dir",
                                       str(root / "work"), *REAL_TRAINING])
            assert code in (0, 1), err  # 1: a budget failed, the bundle is written and the test says which
            self[target] = (out, code)
            return self[target]

    return Bundles()
