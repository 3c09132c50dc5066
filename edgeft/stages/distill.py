"""Distillation: a fine-tuned teacher (hf-model) + labelled texts -> a smaller student (hf-model).

The student learns from the teacher's softened outputs (KL at a temperature) and from the hard labels, optionally
from the teacher's intermediate hidden states too. Texts without a label (extra unlabelled text) carry the soft
loss alone. The teacher's outputs are computed once, before training, so every epoch costs only the student's
forward and backward passes (unless intermediate-layer transfer needs the teacher's hidden states at every step).

Sentence classification and NER share the losses (logits [B, C] or [B, T, C] with a mask) and the loop; what differs
(soft targets per text or per sub-word, the dev figure) is each task's `_Lessons`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from edgeft.artifact import Artifact, cached_stage, library_versions, sha256_json
from edgeft.data.tagged import TaggedDataset
from edgeft.data.text import Split, TextDataset, stratified_subset
from edgeft.metrics import accuracy
from edgeft.profile import Candidate, Isa, Scheme, Student
from edgeft.progress import console
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
from edgeft.runtime.scoring import sentence_logits
from edgeft.stages.finetune import classification_dev_score, model_hash, resolve_device, save_model
from edgeft.stages.student import make_student, parameter_count, prepare_student
from edgeft.stages.torch_model import load_classifier, torch_logits, torch_modules, torch_runner
from edgeft.stages.training import PATIENCE_STEPS, Schedule, StepPlan, train, write_dev_predictions

IGNORE = -100  # no hard label here: unlabelled extra text, or (token tasks) padding and sub-word positions


class DistillSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    student: Student
    max_length: int = 128
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"


def distillation_loss(student_logits, teacher_logits, labels, mask, temperature: float, alpha: float):
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * cross-entropy on the hard labels.

    Shapes: logits [..., C], labels and mask [...] (mask: positions that count; labels IGNORE: no hard label).
    The T^2 factor keeps the soft gradients' size independent of the temperature (Hinton et al., 2015).
    """
    torch, _ = torch_modules()
    f = torch.nn.functional
    s, t = student_logits[mask].float(), teacher_logits[mask].float()
    soft = f.kl_div(f.log_softmax(s / temperature, -1), f.log_softmax(t / temperature, -1), log_target=True,
                    reduction="batchmean") * temperature ** 2
    y = labels[mask]
    hard = f.cross_entropy(s, y, ignore_index=IGNORE) if bool((y != IGNORE).any()) else s.sum() * 0.0
    return alpha * soft + (1 - alpha) * hard


def hidden_state_loss(student_hidden, teacher_hidden, layer_map: tuple[int, ...], attention_mask, projections=None):
    """Mean squared error between each student layer's output and its mapped teacher layer's, on real tokens only."""
    torch, _ = torch_modules()
    keep = attention_mask.bool()
    losses = []
    for i, j in enumerate(layer_map):
        s, t = student_hidden[i + 1][keep].float(), teacher_hidden[j + 1][keep].float()
        if projections is not None:
            s = projections[i](s)
        losses.append(torch.nn.functional.mse_loss(s, t))
    return torch.stack(losses).mean()


def distill(teacher: Artifact, data: TextDataset | TaggedDataset, split: Split, spec: DistillSpec, work_dir: Path,
            extra_texts: list[str] = ()) -> Artifact:
    labels = teacher.manifest["labels"]
    device = resolve_device(spec.device)
    key = {"teacher": teacher.manifest.get("cache_key") or model_hash(teacher.path), "data": data.sha256,
           "split": split.sha256, "labels": labels, "spec": spec.model_dump(exclude={"device"}, mode="json"),
           "student_model": model_hash(Path(spec.student.model)) if spec.student.model else None,
           "extra_texts": sha256_json(list(extra_texts)) if extra_texts else None,
           "versions": library_versions("torch", "transformers")}

    def build(tmp: Path) -> dict[str, Any]:
        return _distill(teacher, data, split, spec, list(extra_texts), device, tmp, work_dir)

    return cached_stage(work_dir, "distill", key, build)


@dataclass
class _Lessons:
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


def _distill(teacher_art: Artifact, data: TextDataset | TaggedDataset, split: Split, spec: DistillSpec,
             extra_texts: list[str], device: str, out: Path, work_dir: Path) -> dict[str, Any]:
    torch, _ = torch_modules()
    recipe = spec.student
    labels, task = teacher_art.manifest["labels"], teacher_art.manifest.get("task", "classification")
    torch.manual_seed(spec.seed)
    teacher = load_classifier(teacher_art.path, task=task).eval()
    student, plan = make_student(teacher, recipe, labels, task)
    teacher.to(device)
    student.to(device)
    encode = TextEncoder(teacher_art.path / "tokenizer.json", spec.max_length, "right", TOKENIZER_OUTPUTS)
    lessons = (_ner_lessons if task == "ner" else _classification_lessons)(
        teacher_art, teacher, data, split, recipe, encode, extra_texts, device, work_dir, spec.seed)
    if recipe.hidden_weight == 0:
        teacher.cpu()  # not needed during training: free the device's memory for the student

    projections = None
    t_width, s_width = teacher.config.hidden_size, student.config.hidden_size
    if recipe.hidden_weight > 0 and s_width != t_width:
        # A student of another width compares its hidden states through learned projections (TinyBERT-style).
        projections = torch.nn.ModuleList(torch.nn.Linear(s_width, t_width) for _ in plan.layers).to(device)

    def batch_loss(forward, batch: np.ndarray):
        feeds, y, mask, soft = lessons.batch(batch)
        want_hidden = recipe.hidden_weight > 0
        outputs = forward(**feeds, output_hidden_states=want_hidden)
        loss = distillation_loss(outputs.logits, soft, y, mask, recipe.temperature, recipe.alpha)
        if want_hidden:
            with torch.no_grad():
                t_hidden = teacher(**feeds, output_hidden_states=True).hidden_states
            loss = loss + recipe.hidden_weight * hidden_state_loss(outputs.hidden_states, t_hidden, plan.layers,
                                                                   feeds["attention_mask"], projections)
        return loss

    params = list(student.named_parameters())
    if projections is not None:
        params += [(f"projection.{n}", p) for n, p in projections.named_parameters()]
    n_examples = len(lessons.lengths)
    epochs = max(recipe.epochs, math.ceil(recipe.min_examples / n_examples))
    # Patience in steps as for the teacher: a small set's epochs are a few steps, and one noisy dev epoch must not
    # end the student's training (30,000 tweets: ~1,000 steps an epoch, patience stays one epoch).
    steps = StepPlan.of(n_examples, recipe.batch_size, epochs, 0, recipe.patience, PATIENCE_STEPS)
    schedule = Schedule(steps.epochs, recipe.learning_rate, recipe.batch_size, recipe.warmup_ratio,
                        recipe.weight_decay, steps.patience, spec.seed, metric=lessons.metric)
    metrics = train(student, params, lessons.lengths, schedule, device, batch_loss,
                    lambda: lessons.dev_score(student), "distill")
    save_model(student, teacher_art.path, out)
    if task == "classification":
        write_dev_predictions(out, lessons.evaluations, metrics, schedule.metric)
    teacher_key = "teacher_dev_accuracy" if task == "classification" else "teacher_dev_entity_f1"
    return {"kind": "hf-model", "task": task, "labels": labels, "device": device,
            "spec": spec.model_dump(mode="json"), "train_samples": lessons.train_samples,
            "extra_texts": len(extra_texts), "epochs": epochs, "patience_epochs": steps.patience,
            "student": {"layers": len(plan.layers), "teacher_layers": list(plan.layers), "copied": plan.copied,
                        "ffn": student.config.intermediate_size, "hidden_size": s_width,
                        "parameters": parameter_count(student), "teacher_parameters": parameter_count(teacher)},
            "metrics": {**metrics, teacher_key: lessons.teacher_dev,
                        f"soft_targets_{teacher_key.removeprefix('teacher_')}": lessons.soft_dev},
            "soft_targets": lessons.precision,
            "teacher": {"path": str(teacher_art.path), "cache_key": teacher_art.manifest.get("cache_key")},
            "versions": library_versions("torch", "transformers")}


def _classification_lessons(teacher_art: Artifact, teacher, data: TextDataset, split: Split, recipe: Student,
                            encode: TextEncoder, extra_texts: list[str], device: str, work_dir: Path,
                            seed: int) -> _Lessons:
    """Sentence labels: one soft target per text (the int8 teacher's on a CPU), dev accuracy and macro-F1."""
    torch, _ = torch_modules()
    labels = teacher_art.manifest["labels"]
    index = {label: i for i, label in enumerate(labels)}
    chosen = stratified_subset(split.train, data.labels, recipe.max_train_samples, seed)
    texts = [data.texts[i] for i in chosen] + list(extra_texts)
    hard = np.array([index[data.labels[i]] for i in chosen] + [IGNORE] * len(extra_texts))
    dev_texts = [data.texts[i] for i in split.dev]
    dev_y = [index[data.labels[i]] for i in split.dev]
    # The dev texts ride along: the accuracy of whatever produced the soft targets is recorded (an int8 teacher's
    # beside the fp32 fine-tune's own).
    precision = soft_target_precision(recipe, device)
    outputs = teacher_outputs(teacher_art, teacher, encode, texts + dev_texts, precision, device, work_dir)
    soft = torch.from_numpy(outputs[: len(texts)])
    soft_dev = accuracy(dev_y, outputs[len(texts):].argmax(-1))
    known_dev = teacher_art.manifest.get("metrics", {}).get("dev_accuracy")  # a fine-tune artifact's own figure

    def batch(rows: np.ndarray):
        feeds = {k: torch.from_numpy(v).to(device) for k, v in encode([texts[i] for i in rows]).items()}
        mask = torch.ones(len(rows), dtype=torch.bool, device=device)
        return feeds, torch.from_numpy(hard[rows]).to(device), mask, soft[rows].to(device)

    evaluations: list[list[int]] = []

    def dev_score(student) -> dict[str, float]:
        return classification_dev_score(student, encode, dev_texts, dev_y, len(labels), device, evaluations)

    lengths = np.array([len(e.ids) for e in encode.tokenizer.encode_batch(texts)])
    return _Lessons(lengths, batch, dev_score, "dev_accuracy", len(chosen), precision,
                    known_dev or (soft_dev if precision == "fp32" else None), soft_dev, evaluations)


def _ner_lessons(teacher_art: Artifact, teacher, data: TaggedDataset, split: Split, recipe: Student,
                 encode: TextEncoder, extra_texts: list[str], device: str, work_dir: Path, seed: int) -> _Lessons:
    """Word tags: a soft target for every sub-word under the attention mask, from the fp32 teacher (int8 embeddings
    cost NER more than sentence labels, STACK.md), the hard tag on each word's first sub-word, dev entity F1.
    Extra text is split on whitespace into words that carry soft targets only."""
    from edgeft.runtime.entities import entity_metrics
    from edgeft.runtime.tagging import first_subwords, tags_of, word_logits
    from edgeft.stages.finetune import DEV_METRIC

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
        predicted = tags_of(word_logits(torch_runner(model, device), encode, dev_sentences), dev_sentences, labels)
        return {metric: entity_metrics(dev_tags, predicted)["f1"]}

    known_dev = teacher_art.manifest.get("metrics", {}).get(metric)
    teacher_dev = known_dev if known_dev is not None else dev_score(teacher)[metric]
    lengths = np.array([len(e.ids) for e in encode.tokenizer.encode_batch(sentences, is_pretokenized=True)])
    # The soft targets are the fp32 teacher's own outputs: their dev F1 is the teacher's.
    return _Lessons(lengths, batch, dev_score, metric, len(chosen), "fp32", teacher_dev, teacher_dev, [])


def soft_target_precision(recipe: Student, device: str) -> str:
    if recipe.teacher_outputs != "auto":
        return recipe.teacher_outputs
    return "fp32" if device == "cuda" else "int8"


# The teacher's int8 copy for soft targets on a CPU: s8 weights with 7-bit range run the fast u8 x s8 kernels and
# cannot saturate on any x86 CPU (see profile.Candidate.weight_type).
TEACHER_INT8 = Candidate(name="teacher-int8", scheme=Scheme.DYNAMIC_INT8, per_channel=True, weight_type="s8",
                         reduce_range=True)


def teacher_outputs(teacher_art: Artifact, teacher, encode: TextEncoder, texts: list[str], precision: str,
                    device: str, work_dir: Path) -> np.ndarray:
    """The teacher's logits on `texts`, computed once and cached: every student trained from this teacher on
    these texts (another target, another student shape) reuses them. fp32: PyTorch on `device`; int8: the teacher
    exported with Optimum, parity-checked, quantized like TEACHER_INT8 and run by ONNX Runtime on every core."""
    key = {"teacher": teacher_art.manifest.get("cache_key") or model_hash(teacher_art.path),
           "texts": sha256_json(texts), "max_length": encode.max_length, "precision": precision,
           "versions": library_versions("torch", "transformers", "onnxruntime")}

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
        session = open_session(Runtime.ONNXRUNTIME, int8, os.cpu_count() or 1, TOKENIZER_OUTPUTS)
        feed = TextEncoder(teacher_art.path / "tokenizer.json", encode.max_length, "right", session.input_names)
        n_labels = len(teacher_art.manifest["labels"])
        np.save(tmp / "logits.npy", sentence_logits(session.run, feed, texts, n_labels, batch_size=16))
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


def open_teacher(folder: Path) -> Artifact:
    """An edgeft fine-tune artifact as it is, or any Hugging Face classifier folder (labels from its config)."""
    from edgeft.artifact import MANIFEST, read_manifest
    from edgeft.errors import BadInput
    from edgeft.stages.torch_model import check_model_folder

    check_model_folder(folder)
    if (folder / MANIFEST).is_file():
        manifest = read_manifest(folder)
        if manifest.get("kind") == "hf-model":
            return Artifact(folder, manifest)
    import json

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    id2label = config.get("id2label") or {}
    labels = [id2label[k] for k in sorted(id2label, key=int)]
    if not labels or all(label.startswith("LABEL_") for label in labels):
        raise BadInput(f"teacher {folder}/config.json names no labels (id2label); fine-tune it with `edgeft build` "
                       f"or save it with id2label set")
    architectures = config.get("architectures") or []
    task = "ner" if any(a.endswith("ForTokenClassification") for a in architectures) else "classification"
    return Artifact(folder, {"kind": "hf-model", "labels": labels, "task": task})


def distill_folder(teacher_dir: Path, data: TextDataset | TaggedDataset, split: Split, student: Student, out: Path,
                   work_dir: Path, extra_texts: list[str], max_length: int, seed: int, device: str) -> Artifact:
    """`edgeft distill`: distil, compare teacher and student on the held-out test split, write `out` atomically."""
    import shutil

    from edgeft.artifact import atomic_folder, read_manifest, write_manifest
    from edgeft.errors import BadInput
    from edgeft.reports.tables import print_rows

    teacher = open_teacher(teacher_dir)
    ner = teacher.manifest["task"] == "ner"
    # A tagger must know every tag the data uses (it may know more); a classifier's labels are the data's exactly.
    names = data.tag_names if ner else data.label_names
    known = teacher.manifest["labels"]
    if (not set(names) <= set(known)) if ner else sorted(known) != names:
        raise BadInput(f"the data's {'tags' if ner else 'labels'} {names} are not the teacher's "
                       f"{teacher.manifest['labels']}; distil on the data the teacher was fine-tuned on")
    student = prepare_student(student, teacher.path, work_dir)
    spec = DistillSpec(student=student, max_length=max_length, seed=seed, device=device)
    art = distill(teacher, data, split, spec, work_dir, extra_texts)
    labels = teacher.manifest["labels"]
    encode = TextEncoder(art.path / "tokenizer.json", max_length, "right", TOKENIZER_OUTPUTS)
    rows = []
    for name, folder in (("teacher fp32", teacher.path), ("student fp32", art.path)):
        model = load_classifier(folder, task=art.manifest["task"])
        row = {"model": name, **_test_metrics(model, encode, data, split.test, labels, ner),
               "parameters_m": round(parameter_count(model) / 1e6, 2), "layers": model.config.num_hidden_layers}
        rows.append(row)
    with atomic_folder(out) as tmp:
        shutil.copytree(art.path, tmp, dirs_exist_ok=True)
        manifest = read_manifest(art.path)
        manifest.pop("files", None)
        manifest["test"] = {"texts": len(split.test), "rows": rows}
        write_manifest(tmp, manifest)
    print_rows(f"distilled student: {out} ({len(split.test)} held-out test {'sentences' if ner else 'texts'}, PyTorch "
               f"fp32)", rows)
    return Artifact(out, read_manifest(out))


def _test_metrics(model, encode: TextEncoder, data, test: list[int], labels: list[str], ner: bool) -> dict:
    """Accuracy and macro-F1 on the test texts, or (NER) entity precision, recall and F1 on the test sentences."""
    if ner:
        from edgeft.runtime.entities import entity_metrics
        from edgeft.runtime.tagging import tags_of, word_logits

        sentences = [data.sentences[i] for i in test]
        predicted = tags_of(word_logits(torch_runner(model), encode, sentences), sentences, labels)
        m = entity_metrics([data.tags[i] for i in test], predicted)
        return {"entity_f1": m["f1"], "precision": m["precision"], "recall": m["recall"]}
    from edgeft.metrics import classification_metrics

    index = {label: i for i, label in enumerate(labels)}
    gold = [index[data.labels[i]] for i in test]
    m = classification_metrics(gold, torch_logits(model, encode, [data.texts[i] for i in test]).argmax(-1).tolist(),
                               labels)
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
