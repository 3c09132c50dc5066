"""What a student learns from, per task: the examples, their hard labels, the teacher's soft targets (computed once
and cached as a "teacher-outputs" stage) and the dev figure that keeps the best epoch.

Sentence classification: one soft target per text, on a CPU from the teacher's int8 ONNX Runtime copy. NER: a soft
target for every sub-word, from the fp32 teacher (int8 embeddings cost NER more than sentence labels, STACK.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeft.artifact import Artifact, cached_stage, library_versions, sha256_json
from edgeft.data.augment import check_task, word_dropped
from edgeft.data.tagged import TaggedDataset
from edgeft.data.text import Split, TextDataset, stratified_subset
from edgeft.metrics import accuracy
from edgeft.profile import Candidate, Isa, Scheme
from edgeft.student_recipe import Student
from edgeft.progress import console
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
from edgeft.runtime.scoring import sentence_logits
from edgeft.stages.finetune import classification_dev_score, model_hash
from edgeft.stages.torch_model import torch_logits, torch_modules, torch_tags

IGNORE = -100  # no hard label here: unlabelled extra text, or (token tasks) padding and sub-word positions


@dataclass
class Lessons:
    """What the student learns from, per task: the examples' token lengths (for batching), the hard labels and the
    teacher's soft targets of a batch, and the dev figure that keeps the best epoch."""

    lengths: np.ndarray
    batch: Callable[[np.ndarray], tuple[dict[str, Any], Any, Any, Any]]  # -> feeds, hard labels, mask, soft targets
    dev_score: Callable[[Any], dict[str, float]]
    metric: str
    train_samples: int
    precision: str
    teacher_dev: float | None
    soft_dev: float | None
    evaluations: list[list[int]]
    windows: int = 0  # later windows of long training texts among the examples (soft targets only)
    augmented: int = 0  # word-dropped copies of training texts among the examples (soft targets only)


def classification_lessons(teacher_art: Artifact, teacher, data: TextDataset, split: Split, recipe: Student,
                            encode: TextEncoder, extra_texts: list[str], device: str, work_dir: Path,
                            seed: int) -> Lessons:
    """Sentence labels: one soft target per text (the int8 teacher's on a CPU), dev accuracy and macro-F1."""
    torch, _ = torch_modules()
    labels = teacher_art.manifest["labels"]
    index = {label: i for i, label in enumerate(labels)}
    chosen = stratified_subset(split.train, data.labels, recipe.max_train_samples, seed)
    windows = later_windows([data.texts[i] for i in chosen], encode, recipe.windows,
                            recipe.min_examples - len(chosen) - len(extra_texts))
    if windows:
        console.print(f"  {len(windows)} later windows of the training texts longer than {encode.max_length} pieces "
                      f"carry soft targets too")
    augmented = word_dropped([data.texts[i] for i in chosen], recipe.augment_views, recipe.augment_drop, seed)
    if augmented:
        console.print(f"  {len(augmented)} word-dropped copies of the training texts carry soft targets too "
                      f"(augment_views {recipe.augment_views}, augment_drop {recipe.augment_drop:g})")
    unlabelled = list(extra_texts) + windows + augmented
    texts = [data.texts[i] for i in chosen] + unlabelled
    hard = np.array([index[data.labels[i]] for i in chosen] + [IGNORE] * len(unlabelled))
    dev_texts = [data.texts[i] for i in split.dev]
    dev_y = [index[data.labels[i]] for i in split.dev]
    # The dev texts ride along: the accuracy of whatever produced the soft targets is recorded (an int8 teacher's
    # beside the fp32 fine-tune's own).
    precision = soft_target_precision(recipe, device)
    outputs = teacher_outputs(teacher_art, teacher, encode, texts + dev_texts, precision, device, work_dir)
    soft = torch.from_numpy(outputs[: len(texts)])
    soft_dev = accuracy(dev_y, outputs[len(texts):].argmax(-1))
    known_dev = teacher_art.manifest.get("metrics", {}).get("dev_accuracy")  # a fine-tune artifact's own figure

    # Each text is tokenized once, here, not again in every batch of every epoch (about 4 ms a batch, 10 s of
    # the default build's 2,970 student steps on a 2-core host).
    encodings = encode.tokenizer.encode_batch(texts)

    def batch(rows: np.ndarray):
        feeds = {k: torch.from_numpy(v).to(device) for k, v in encode.pad([encodings[i] for i in rows]).items()}
        mask = torch.ones(len(rows), dtype=torch.bool, device=device)
        return feeds, torch.from_numpy(hard[rows]).to(device), mask, soft[rows].to(device)

    evaluations: list[list[int]] = []

    def dev_score(student) -> dict[str, float]:
        return classification_dev_score(student, encode, dev_texts, dev_y, len(labels), device, evaluations)

    lengths = np.array([len(e.ids) for e in encodings])
    return Lessons(lengths, batch, dev_score, "dev_accuracy", len(chosen), precision,
                    known_dev or (soft_dev if precision == "fp32" else None), soft_dev, evaluations,
                    len(windows), len(augmented))


def later_windows(texts: list[str], encode: TextEncoder, per_text: int, room: int) -> list[str]:
    """Up to `per_text` more windows of each text longer than the input, at most `room` in all: the pieces past the
    truncation, in half-overlapping windows of the input's length that start on a word. The teacher labels them
    (soft targets only): on a small set of long texts (BBC News: 1,808 articles of ~300 pieces, 128 kept) they
    teach the student what the repeated first windows cannot (docs/experiments/distillation.md, section 8).
    Taken round-robin (every text's first extra window, then every second one) so that a cap spreads over all texts.
    """
    from edgeft.runtime.encoder import whole_text_tokenizer

    if per_text <= 0 or room <= 0:
        return []
    width = encode.max_length - 2  # [CLS] and [SEP]
    stride = max(1, width // 2)
    whole = whole_text_tokenizer(encode.tokenizer_file)  # the encoder truncates; windows need every piece
    rounds: list[list[str]] = [[] for _ in range(per_text)]
    for text, encoding in zip(texts, whole.encode_batch(texts, add_special_tokens=False)):
        offsets, words = encoding.offsets, encoding.word_ids
        if len(offsets) <= width:
            continue  # the input holds all of it
        for w in range(per_text):
            start = (w + 1) * stride
            while 0 < start < len(words) and words[start] is not None and words[start] == words[start - 1]:
                start += 1  # a window starts on a word, so the text it cuts out tokenizes to the same pieces
            if start >= len(offsets):
                break
            end = min(start + width, len(offsets))
            rounds[w].append(text[offsets[start][0]:offsets[end - 1][1]])
            if end == len(offsets):
                break  # this window reaches the text's end: a later one would only repeat its tail
    return [window for round_ in rounds for window in round_][:room]


def ner_lessons(teacher_art: Artifact, teacher, data: TaggedDataset, split: Split, recipe: Student,
                 encode: TextEncoder, extra_texts: list[str], device: str, work_dir: Path, seed: int) -> Lessons:
    """Word tags: a soft target for every sub-word under the attention mask, from the fp32 teacher (int8 embeddings
    cost NER more than sentence labels, STACK.md), the hard tag on each word's first sub-word, dev entity F1.
    Extra text is split on whitespace into words that carry soft targets only."""
    from edgeft.runtime.entities import entity_metrics
    from edgeft.runtime.tagging import first_subwords
    from edgeft.stages.finetune import DEV_METRIC

    check_task(recipe.augment_views, "ner")
    torch, _ = torch_modules()
    labels = teacher_art.manifest["labels"]
    index = {tag: i for i, tag in enumerate(labels)}
    chosen = list(split.train)
    if recipe.max_train_samples is not None and recipe.max_train_samples < len(chosen):
        rng = np.random.default_rng(seed)
        chosen = sorted(rng.choice(chosen, recipe.max_train_samples, replace=False).tolist())
    sentences = [data.sentences[i] for i in chosen] + [text.split() for text in extra_texts if text.split()]
    tags = [[index[t] for t in data.tags[i]] for i in chosen] + [None] * (len(sentences) - len(chosen))
    soft = torch.from_numpy(token_teacher_outputs(teacher_art, teacher, encode, sentences, device, work_dir))
    dev_sentences = [data.sentences[i] for i in split.dev]
    dev_tags = [data.tags[i] for i in split.dev]

    def batch(rows: np.ndarray):
        feeds, word_ids = encode.words([sentences[i] for i in rows])
        y = np.full(feeds["input_ids"].shape, IGNORE, dtype=np.int64)
        for row, i in enumerate(rows):
            if tags[i] is not None:
                for position in first_subwords(word_ids[row]):
                    y[row, position] = tags[i][word_ids[row][position]]
        feeds = {k: torch.from_numpy(v).to(device) for k, v in feeds.items()}
        width = feeds["input_ids"].shape[1]
        return feeds, torch.from_numpy(y).to(device), feeds["attention_mask"].bool(), soft[rows, :width].to(device)

    metric = DEV_METRIC["ner"]

    def dev_score(model) -> dict[str, float]:
        return {metric: entity_metrics(dev_tags, torch_tags(model, encode, dev_sentences, labels, device))["f1"]}

    known_dev = teacher_art.manifest.get("metrics", {}).get(metric)
    teacher_dev = known_dev if known_dev is not None else dev_score(teacher)[metric]
    lengths = np.array([len(e.ids) for e in encode.tokenizer.encode_batch(sentences, is_pretokenized=True)])
    # The soft targets are the fp32 teacher's own outputs: their dev F1 is the teacher's.
    return Lessons(lengths, batch, dev_score, metric, len(chosen), "fp32", teacher_dev, teacher_dev, [])


def soft_target_precision(recipe: Student, device: str) -> str:
    if recipe.teacher_outputs != "auto":
        return recipe.teacher_outputs
    return "fp32" if device == "cuda" else "int8"


# The teacher's int8 copy for soft targets on a CPU: s8 weights with 7-bit range run the fast u8 x s8 kernels and
# cannot saturate on any x86 CPU (see profile.Candidate.weight_type).
TEACHER_INT8 = Candidate(name="teacher-int8", scheme=Scheme.DYNAMIC_INT8, per_channel=True, weight_type="s8",
                         reduce_range=True)


SOFT_TARGET_BATCH = 16


def teacher_outputs(teacher_art: Artifact, teacher, encode: TextEncoder, texts: list[str], precision: str,
                    device: str, work_dir: Path) -> np.ndarray:
    """The teacher's logits on `texts`, computed once and cached: every student trained from this teacher on
    these texts (another target, another student shape) reuses them. fp32: PyTorch on `device`; int8: the teacher
    exported with Optimum, parity-checked, quantized like TEACHER_INT8 and run by ONNX Runtime on every core."""
    key = {"teacher": teacher_art.manifest.get("cache_key") or model_hash(teacher_art.path),
           "texts": sha256_json(texts), "max_length": encode.max_length, "precision": precision,
           "versions": library_versions("torch", "transformers", "onnxruntime"),
           # Dynamic int8 scales each batch by its own range: which texts share a batch is part of the result.
           "batches": f"by pieces, {SOFT_TARGET_BATCH}"}

    def build(tmp: Path) -> dict[str, Any]:
        console.print(f"  teacher outputs on {len(texts)} texts ({precision})")
        if precision == "fp32":
            np.save(tmp / "logits.npy", torch_logits(teacher, encode, texts, device=device))
            return {"kind": "teacher-outputs", "texts": len(texts), "precision": precision, "device": device}
        import os
        import shutil

        from edgeft.backends import backend
        from edgeft.profile import InputPolicy, Runtime
        from edgeft.runtime.sessions import open_session, runtime_version
        from edgeft.stages.export import check_parity

        ort = backend(Runtime.ONNXRUNTIME)
        fp32 = ort.export(teacher_art.path, tmp / "onnx")
        parity = check_parity(teacher_art.path, fp32, Runtime.ONNXRUNTIME, InputPolicy(max_length=encode.max_length),
                              texts[:8])
        int8 = ort.quantize(tmp / "onnx", tmp / "int8", TEACHER_INT8, Isa.AVX2, None)
        # One single-thread session a core (at most 8), each taking the next batch: faster than one session
        # on every core, and the batches (so each batch's int8 scales) do not depend on the number of cores.
        cores = os.cpu_count() or 1
        sessions = [open_session(Runtime.ONNXRUNTIME, int8, max(1, cores // min(cores, 8)), TOKENIZER_OUTPUTS)
                    for _ in range(min(cores, 8))]
        feed = TextEncoder(teacher_art.path / "tokenizer.json", encode.max_length, "right", sessions[0].input_names)
        n_labels = len(teacher_art.manifest["labels"])
        logits = sentence_logits([s.run for s in sessions], feed, texts, n_labels, batch_size=SOFT_TARGET_BATCH)
        np.save(tmp / "logits.npy", logits)
        shutil.rmtree(tmp / "onnx")
        shutil.rmtree(tmp / "int8")
        return {"kind": "teacher-outputs", "texts": len(texts), "precision": precision,
                "runtime": f"onnxruntime {runtime_version(Runtime.ONNXRUNTIME)}", "candidate": TEACHER_INT8.summary(),
                "export_parity": parity}

    art = cached_stage(work_dir, "teacher-outputs", key, build)
    return np.load(art.path / "logits.npy", allow_pickle=False)


def token_teacher_outputs(teacher_art: Artifact, teacher, encode: TextEncoder, sentences: list[list[str]],
                          device: str, work_dir: Path) -> np.ndarray:
    """The fp32 teacher's logits for every sub-word of every sentence, [sentences, longest, tags] (zeros past a
    sentence's end), computed once and cached like `teacher_outputs`."""
    key = {"teacher": teacher_art.manifest.get("cache_key") or model_hash(teacher_art.path), "task": "ner",
           "sentences": sha256_json(sentences), "max_length": encode.max_length, "precision": "fp32",
           "versions": library_versions("torch", "transformers")}

    def build(tmp: Path) -> dict[str, Any]:
        torch, _ = torch_modules()
        console.print(f"  teacher outputs on {len(sentences)} sentences (fp32, every sub-word)")
        lengths = [len(e.ids) for e in encode.tokenizer.encode_batch(sentences, is_pretokenized=True)]
        logits = np.zeros((len(sentences), max(lengths, default=1), teacher.config.num_labels), dtype=np.float32)
        order = np.argsort(lengths, kind="stable")  # similar lengths together: little padding
        teacher.eval().to(device)
        with torch.inference_mode():
            for start in range(0, len(order), 64):
                rows = order[start:start + 64]
                feeds, _ = encode.words([sentences[i] for i in rows])
                out = teacher(**{k: torch.from_numpy(v).to(device) for k, v in feeds.items()}).logits
                logits[rows, : out.shape[1]] = out.float().cpu().numpy()
        np.save(tmp / "logits.npy", logits)
        return {"kind": "teacher-outputs", "task": "ner", "sentences": len(sentences), "precision": "fp32",
                "device": device}

    art = cached_stage(work_dir, "teacher-outputs", key, build)
    return np.load(art.path / "logits.npy", allow_pickle=False)
