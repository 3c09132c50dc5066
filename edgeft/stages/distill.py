"""Distillation: a fine-tuned teacher (hf-model) + labelled texts -> a smaller student (hf-model).

The student learns from the teacher's softened outputs (KL at a temperature) and from the hard labels, optionally
from the teacher's intermediate hidden states too. Texts without a label (extra unlabelled text) carry the soft
loss alone. The teacher's outputs are computed once, before training, so every epoch costs only the student's
forward and backward passes (unless intermediate-layer transfer needs the teacher's hidden states at every step).

Sentence classification and NER share the losses (logits [B, C] or [B, T, C] with a mask) and the loop; what differs
(soft targets per text or per sub-word, the dev figure) is each task's `Lessons` (stages/lessons.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from edgeft.artifact import Artifact, cached_stage, library_versions, sha256_json
from edgeft.data.tagged import TaggedDataset
from edgeft.data.text import Split, TextDataset
from edgeft.student_recipe import Student
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
from edgeft.stages.finetune import model_hash, resolve_device, save_model
from edgeft.stages.lessons import IGNORE, classification_lessons, ner_lessons
from edgeft.stages.student import make_student, parameter_count, prepare_student
from edgeft.stages.torch_model import load_classifier, torch_logits, torch_modules, torch_tags
from edgeft.stages.training import PATIENCE_STEPS, Schedule, StepPlan, train, write_dev_predictions


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


def _distill(teacher_art: Artifact, data: TextDataset | TaggedDataset, split: Split, spec: DistillSpec,
             extra_texts: list[str], device: str, out: Path, work_dir: Path) -> dict[str, Any]:
    torch, _ = torch_modules()
    recipe = spec.student
    labels, task = teacher_art.manifest["labels"], teacher_art.manifest.get("task", "classification")
    teacher = load_classifier(teacher_art.path, task=task).eval()
    encode = TextEncoder(teacher_art.path / "tokenizer.json", spec.max_length, "right", TOKENIZER_OUTPUTS)
    teacher.to(device)
    lessons = (ner_lessons if task == "ner" else classification_lessons)(
        teacher_art, teacher, data, split, recipe, encode, extra_texts, device, work_dir, spec.seed)

    def sample():
        """The first training examples (at most 2,048), the teacher's inputs for a narrower student's basis, in
        batches of similar length: the basis sums real tokens only, so padding would be wasted work."""
        first = np.arange(min(2048, len(lessons.lengths)))
        rows = first[np.argsort(lessons.lengths[first], kind="stable")]
        return ({k: v.cpu() for k, v in lessons.batch(rows[i:i + 64])[0].items()} for i in range(0, len(rows), 64))

    torch.manual_seed(spec.seed)
    student, plan = make_student(teacher, recipe, labels, task, sample)
    teacher.to(device)
    student.to(device)
    if recipe.hidden_weight == 0:
        teacher.cpu()  # not needed during training: free the device's memory for the student

    projections = None
    t_width, s_width = teacher.config.hidden_size, student.config.hidden_size
    if recipe.hidden_weight > 0 and s_width != t_width:
        # A student of another width compares its hidden states through learned projections (TinyBERT-style).
        projections = torch.nn.ModuleList(torch.nn.Linear(s_width, t_width) for _ in plan.layers).to(device)
        if plan.basis is not None:  # a narrowed student starts where its basis maps it: the teacher's own space
            with torch.no_grad():
                for p in projections:
                    p.weight.copy_(plan.basis)
                    p.bias.zero_()

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
                        recipe.weight_decay, steps.patience, spec.seed, metric=lessons.metric,
                        ema_decay=recipe.ema_decay)
    metrics = train(student, params, lessons.lengths, schedule, device, batch_loss,
                    lambda: lessons.dev_score(student), "distill")
    save_model(student, teacher_art.path, out)
    if task == "classification":
        write_dev_predictions(out, lessons.evaluations, metrics, schedule.metric)
    return {"kind": "hf-model", "task": task, "labels": labels, "device": device,
            "spec": spec.model_dump(mode="json"), "train_samples": lessons.train_samples,
            "extra_texts": len(extra_texts), "epochs": epochs, "patience_epochs": steps.patience,
            "student": {"layers": len(plan.layers), "teacher_layers": list(plan.layers), "copied": plan.copied,
                        "ffn": student.config.intermediate_size, "hidden_size": s_width,
                        "heads": student.config.num_attention_heads, "basis_energy": plan.kept_energy,
                        "parameters": parameter_count(student), "teacher_parameters": parameter_count(teacher)},
            "metrics": {**metrics, f"teacher_{lessons.metric}": lessons.teacher_dev,
                        f"soft_targets_{lessons.metric}": lessons.soft_dev},
            "soft_targets": lessons.precision, "windows": lessons.windows,
            "augmented": lessons.augmented,
            "teacher": {"path": str(teacher_art.path), "cache_key": teacher_art.manifest.get("cache_key")},
            "versions": library_versions("torch", "transformers")}


def open_teacher(folder: Path, flag: str = "--teacher") -> Artifact:
    """An edgeft fine-tune artifact as it is, or any Hugging Face classifier folder (labels from its config)."""
    from edgeft.artifact import MANIFEST, read_manifest
    from edgeft.errors import BadInput
    from edgeft.stages.torch_model import check_model_folder

    check_model_folder(folder, flag)
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
        raise BadInput(f"the data's {'tags' if ner else 'labels'} {names} are not the teacher's {known}; distil on "
                       f"the data the teacher was fine-tuned on")
    student = prepare_student(student, teacher.path, work_dir)
    spec = DistillSpec(student=student, max_length=max_length, seed=seed, device=device)
    art = distill(teacher, data, split, spec, work_dir, extra_texts)
    labels = teacher.manifest["labels"]
    encode = TextEncoder(art.path / "tokenizer.json", max_length, "right", TOKENIZER_OUTPUTS)
    rows = []
    for name, folder in (("teacher fp32", teacher.path), ("student fp32", art.path)):
        model = load_classifier(folder, task=art.manifest["task"])
        rows.append({"model": name, **test_metrics(model, encode, data, split.test, labels, ner),
                     "parameters_m": round(parameter_count(model) / 1e6, 2), "layers": model.config.num_hidden_layers})
    with atomic_folder(out) as tmp:
        shutil.copytree(art.path, tmp, dirs_exist_ok=True)
        manifest = read_manifest(art.path)
        manifest.pop("files", None)
        manifest["test"] = {"texts": len(split.test), "rows": rows}
        write_manifest(tmp, manifest)
    print_rows(f"distilled student: {out} ({len(split.test)} held-out test {'sentences' if ner else 'texts'}, PyTorch "
               f"fp32)", rows)
    return Artifact(out, read_manifest(out))


def test_metrics(model, encode: TextEncoder, data, test: list[int], labels: list[str], ner: bool) -> dict:
    """Accuracy and macro-F1 on the test texts, or (NER) entity precision, recall and F1 on the test sentences."""
    if ner:
        from edgeft.runtime.entities import entity_metrics

        m = entity_metrics([data.tags[i] for i in test], torch_tags(model, encode, [data.sentences[i] for i in test],
                                                                    labels))
        return {"entity_f1": m["f1"], "precision": m["precision"], "recall": m["recall"]}
    from edgeft.metrics import classification_metrics

    index = {label: i for i, label in enumerate(labels)}
    gold = [index[data.labels[i]] for i in test]
    m = classification_metrics(gold, torch_logits(model, encode, [data.texts[i] for i in test]).argmax(-1).tolist(),
                               labels)
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
