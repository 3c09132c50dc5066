"""Fine-tune a pretrained encoder on labelled texts (classification) or tagged words (NER) -> an hf-model artifact
(safetensors + tokenizer + config).

A plain PyTorch loop (`stages/training.py`) rather than `Trainer`: dynamic padding over length-grouped batches is most
of the speed on a CPU, and bf16 autocast + a fused optimizer + large batches on a GPU (`make bench-train` measures
both against `Trainer`); the best epoch on the dev split is kept. Under `torchrun` / `accelerate launch` every process
trains its share of each batch and the first one writes the artifact.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgeft.artifact import Artifact, cached_stage, library_versions, sha256_file, stage_key
from edgeft.data.text import Split, TextDataset, stratified_subset
from edgeft.errors import BadInput
from edgeft.metrics import accuracy, macro_f1
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
from edgeft.stages.pooling import Pooling, resolve_pooling
from edgeft.stages.torch_model import (TOKENIZER_FILES, load_classifier, set_training_options, torch_logits,
                                       torch_modules, torch_runner)
from edgeft.stages.training import PATIENCE_STEPS, Schedule, StepPlan, Workers, train, write_dev_predictions

IGNORE = -100  # positions without a label: special tokens, padding, and every sub-word after a word's first
# What each task optimises on the dev split (and what the HPO search and early stopping compare).
DEV_METRIC = {"classification": "dev_accuracy", "ner": "dev_entity_f1"}
# Per task, what the default recipe changes: NER data (WNUT-16: 1,900 training tweets) is small, its head starts
# from nothing for 21 tags, and entity F1 keeps rising for many more epochs than sentence accuracy does.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "classification": {},
    "ner": {"epochs": 10, "learning_rate": 1e-4, "max_train_samples": None, "patience": 3, "batch_size": 16},
}


# Below this many training texts the automatic batch is 16 rather than 32 (docs/experiments/recipes.md).
SMALL_SET = 2000


class FinetuneSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Literal["classification", "ner"] = "classification"
    epochs: int = Field(2, ge=1)
    # MiniLM-L6 (a sentence-embedding model) wants a higher rate than BERT-base's usual 2e-5 to move its head.
    learning_rate: float = Field(8e-5, gt=0)
    # Per process. None: 32 on a CPU; on a GPU the largest power of two (up to 256) whose step fits its memory,
    # with the learning rate scaled by sqrt(batch / 32).
    batch_size: int | None = Field(None, ge=1)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    # The default recipe's budget: a seeded, stratified subset keeps `make build` under 15 min on 2 CPU cores.
    max_train_samples: int | None = Field(8000, ge=1)
    # A set with at least epochs x max_train_samples training texts is fine-tuned in one pass over that many distinct
    # texts instead: the same optimizer steps, no text seen twice, one dev evaluation. The packaged tweets gained
    # +0.6 / +0.2 test points on two seeds (docs/experiments/recipes.md, section 8). Off when the user names the
    # epochs or the subset size: those are then exact.
    fresh_texts: bool = True
    max_length: int = Field(128, ge=8, le=512)
    # Stop when the dev metric has not improved for this many epochs; the best epoch is kept either way.
    patience: int = Field(1, ge=1)
    # The unit is the optimizer step: a small set is repeated for more epochs until training has taken at least
    # min_steps (early stopping on dev still ends it sooner), and early stopping waits patience_steps without a
    # better dev score (at least `patience` epochs). 8,000 tweets (2 x 250 steps) are untouched; 500 texts get 300
    # steps instead of 32 (docs/experiments/recipes.md).
    min_steps: int = Field(300, ge=0)
    patience_steps: int = Field(PATIENCE_STEPS, ge=0)
    # Imbalanced data: balanced class weights in the loss (weights ~ 1 / class frequency), and which dev figure picks
    # the best epoch (accuracy, or macro-F1, which a majority-only model cannot score well on).
    class_weights: Literal["none", "balanced"] = "none"
    select_metric: Literal["accuracy", "macro_f1"] = "accuracy"
    # Word embeddings as pretrained, and no dropout: 1.6x faster steps on a CPU (torch profiler), which pays for the
    # distilled student in the same 15-minute default build; accuracy measured in docs/experiments/distillation.md.
    freeze_embeddings: bool = True
    # The lowest N encoder layers (and all embeddings) keep their pretrained weights: backward stops above them.
    freeze_layers: int = Field(0, ge=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    # Classification: the vector the head reads. cls = BERT's [CLS] pooler; mean = the mean over real tokens; auto =
    # what the base encoder was trained with (mean for a sentence-transformers folder that says so). Fine-tuned, the
    # mean-pooled MiniLM teacher is level with the [CLS] one (ten runs on 2,000 tweets: +0.3 points), and the
    # default 2-layer student of a mean-pooled teacher failed its dev rule on the packaged tweets, so the build
    # shipped a 3-layer one, 2x slower (docs/experiments/recipes.md, section 17): an option, not the default.
    pooling: Literal["auto", "cls", "mean"] = "cls"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    compile: bool = False
    # LoRA: low-rank adapters on the attention and feed-forward projections (peft); merged into the weights before
    # the artifact is written, so export and the runtime see a plain model.
    peft: Literal["none", "lora"] = "none"
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _classification_options_only_for_classification(self) -> FinetuneSpec:
        # NER keeps its epoch by dev entity F1 and has no sentence vector to pool: accepting these would record an
        # option that did nothing.
        if self.task == "ner":
            given = [f"{name} {value}" for name, value, neutral in (
                ("select_metric", self.select_metric, "accuracy"), ("class_weights", self.class_weights, "none"),
                ("pooling", self.pooling, "cls")) if value != neutral]
            if given:
                raise ValueError(f"{', '.join(given)}: classification only; an NER fine-tune keeps its best epoch "
                                 f"by dev entity F1 and has no sentence vector to pool, so drop it")
        return self

    @classmethod
    def for_task(cls, task: str, **fields: Any) -> FinetuneSpec:
        """The task's default recipe with `fields` (the profile's or the user's) on top."""
        return cls(**{"task": task, **TASK_DEFAULTS.get(task, {}), **fields})

    def passes(self, n_train: int) -> tuple[int | None, int]:
        """(the subset size to draw, or None for all; the epochs) for a train split of `n_train` texts."""
        if self.fresh_texts and self.max_train_samples is not None and n_train >= self.epochs * self.max_train_samples:
            return self.epochs * self.max_train_samples, 1
        return self.max_train_samples, self.epochs


def dev_metric(spec: FinetuneSpec) -> str:
    """The dev figure that picks the best epoch (and that the HPO search compares)."""
    if spec.task == "ner":
        return DEV_METRIC["ner"]
    return f"dev_{spec.select_metric}"


def resolve_device(requested: str) -> str:
    torch, _ = torch_modules()
    if requested == "cuda" and not torch.cuda.is_available():
        raise BadInput("--device cuda was asked for but torch sees no CUDA GPU; use --device auto or cpu")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if requested == "auto" else requested
    workers = Workers.from_env()
    if device == "cuda" and workers.world_size > 1:
        # One GPU per process: torchrun's LOCAL_RANK picks it.
        torch.cuda.set_device(workers.local_rank)
        return f"cuda:{workers.local_rank}"
    return device


def model_hash(model_dir: Path) -> str:
    files = sorted(p for p in model_dir.iterdir() if p.is_file() and (p.suffix in (".json", ".safetensors", ".txt")))
    return "|".join(f"{p.name}:{sha256_file(p)}" for p in files)


def labels_of(data, task: str) -> list[str]:
    return data.tag_names if task == "ner" else data.label_names


def finetune(base_model: Path, data, split: Split, spec: FinetuneSpec, work_dir: Path) -> Artifact:
    """`data`: a TextDataset (classification) or a TaggedDataset (ner), as `spec.task` says."""
    labels = labels_of(data, spec.task)
    device = resolve_device(spec.device)
    workers = Workers.from_env()
    # Resolved once: the cache key and the trained head must agree on what `auto` read from the base folder.
    pooling = resolve_pooling(spec.pooling, base_model, spec.task)
    key = {"base_model": model_hash(base_model), "pooling": pooling,
           "data": data.sha256, "split": split.sha256, "labels": labels,
           "spec": spec.model_dump(exclude={"device"}), "processes": workers.world_size,
           "versions": library_versions("torch", "transformers", "peft")}
    # An interrupted run leaves its last checkpoint here; the same command resumes from it.
    checkpoint = work_dir / f".finetune-{stage_key('finetune', key)[:16]}.resume"

    def build(tmp: Path) -> dict[str, Any]:
        return _train(base_model, data, split, spec, pooling, labels, device, tmp, checkpoint)

    if workers.main:
        art = cached_stage(work_dir, "finetune", key, build)
    else:
        # The other processes train their share and throw their copy away; the first one writes the artifact.
        art = cached_stage(work_dir, "finetune", key, build, publish=False)
    workers.barrier()
    return art if workers.main else Artifact.open(art.path)


def _train(base_model: Path, data, split: Split, spec: FinetuneSpec, pooling: Pooling, labels: list[str], device: str,
           out: Path, checkpoint: Path) -> dict[str, Any]:
    torch, _ = torch_modules()
    torch.manual_seed(spec.seed)
    encode = TextEncoder(base_model / "tokenizer.json", spec.max_length, "right", TOKENIZER_OUTPUTS)
    model = load_classifier(base_model, labels, spec.task, pooling).to(device)
    set_training_options(model, spec.dropout, spec.freeze_embeddings, spec.freeze_layers)
    if spec.peft == "lora":
        model = _with_lora(model, spec)
    examples = (_ner_examples if spec.task == "ner" else _classification_examples)(data, split, spec, labels, encode,
                                                                                   device)
    batch_size, learning_rate = spec.batch_size, spec.learning_rate
    if batch_size is None:
        batch_size = fit_batch_size(model, spec.max_length, device, len(examples.lengths))
        learning_rate *= math.sqrt(batch_size / 32)
    metric = dev_metric(spec)
    _, epochs = spec.passes(len(split.train))
    plan = StepPlan.of(len(examples.lengths), batch_size, epochs, spec.min_steps, spec.patience, spec.patience_steps,
                       Workers.from_env().world_size)
    schedule = Schedule(plan.epochs, learning_rate, batch_size, spec.warmup_ratio, spec.weight_decay,
                        plan.patience, spec.seed, spec.precision, spec.compile, metric)
    metrics = train(model, list(model.named_parameters()), examples.lengths, schedule, device, examples.batch_loss,
                    lambda: examples.dev_score(model), "fine-tune", checkpoint=checkpoint)
    if spec.task == "classification":
        write_dev_predictions(out, examples.evaluations, metrics, metric)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if spec.peft == "lora":
        model = model.merge_and_unload()  # plain weights: export and every runtime see an ordinary model
    save_model(model, base_model, out)
    return {"kind": "hf-model", "task": spec.task, "labels": labels, "device": device, "pooling": pooling,
            "spec": spec.model_dump(), "train_samples": len(examples.lengths),
            "trainable_parameters": trainable, "learning_rate": learning_rate, "batch_size": batch_size,
            "plan": {"epochs": plan.epochs, "steps_per_epoch": plan.steps_per_epoch, "max_steps": plan.steps,
                     "patience_epochs": plan.patience},
            "metrics": metrics, "versions": library_versions("torch", "transformers", "peft")}


@dataclass(frozen=True)
class _Examples:
    """What the training loop needs from a task: lengths (for batching), a batch's loss, the dev score of a model."""

    lengths: np.ndarray
    batch_loss: Callable[[Any, np.ndarray], Any]
    dev_score: Callable[[Any], float | dict[str, float]]
    evaluations: list[list[int]]  # classification: each evaluation's dev predictions, in order


def _classification_examples(data: TextDataset, split: Split, spec: FinetuneSpec, labels: list[str],
                             encode: TextEncoder, device: str) -> _Examples:
    torch, _ = torch_modules()
    index = {label: i for i, label in enumerate(labels)}
    train_idx = stratified_subset(split.train, data.labels, spec.passes(len(split.train))[0], spec.seed)
    texts = [data.texts[i] for i in train_idx]
    y = np.array([index[data.labels[i]] for i in train_idx])
    dev_texts = [data.texts[i] for i in split.dev]
    dev_y = [index[data.labels[i]] for i in split.dev]

    weights = None
    if spec.class_weights == "balanced":
        weights = torch.tensor(balanced_class_weights(y, len(labels)), dtype=torch.float32, device=device)

    def batch_loss(forward, batch: np.ndarray):
        feeds = {k: torch.from_numpy(v).to(device) for k, v in encode([texts[i] for i in batch]).items()}
        logits = forward(**feeds).logits
        return torch.nn.functional.cross_entropy(logits.float(), torch.from_numpy(y[batch]).to(device), weight=weights)

    evaluations: list[list[int]] = []

    def dev_score(model) -> dict[str, float]:
        return classification_dev_score(model, encode, dev_texts, dev_y, len(labels), device, evaluations)

    lengths = np.array([len(e.ids) for e in encode.tokenizer.encode_batch(texts)])
    return _Examples(lengths, batch_loss, dev_score, evaluations)


def classification_dev_score(model, encode: TextEncoder, texts: list[str], gold: list[int], n_labels: int,
                             device: str, evaluations: list[list[int]]) -> dict[str, float]:
    """Dev accuracy and macro-F1 of `model` (teacher or student); the predictions are appended to `evaluations`, so
    the kept evaluation's can be written beside the model (training.write_dev_predictions)."""
    predicted = torch_logits(model, encode, texts, device=device).argmax(-1)
    evaluations.append(predicted.tolist())
    return {"dev_accuracy": accuracy(gold, predicted), "dev_macro_f1": macro_f1(gold, predicted, n_labels)}


def _ner_examples(data, split: Split, spec: FinetuneSpec, labels: list[str], encode: TextEncoder,
                  device: str) -> _Examples:
    from edgeft.runtime.entities import entity_metrics
    from edgeft.runtime.tagging import first_subwords, tags_of, word_logits

    torch, _ = torch_modules()
    index = {tag: i for i, tag in enumerate(labels)}
    train_idx = list(split.train)
    subset = spec.passes(len(train_idx))[0]
    if subset is not None and subset < len(train_idx):
        rng = np.random.default_rng(spec.seed)
        train_idx = sorted(rng.choice(train_idx, subset, replace=False).tolist())
    sentences = [data.sentences[i] for i in train_idx]
    tags = [[index[t] for t in data.tags[i]] for i in train_idx]
    dev_sentences = [data.sentences[i] for i in split.dev]
    dev_tags = [data.tags[i] for i in split.dev]

    def batch_loss(forward, batch: np.ndarray):
        feeds, word_ids = encode.words([sentences[i] for i in batch])
        y = np.full(feeds["input_ids"].shape, IGNORE, dtype=np.int64)
        for row, i in enumerate(batch):
            for position in first_subwords(word_ids[row]):
                y[row, position] = tags[i][word_ids[row][position]]
        feeds = {k: torch.from_numpy(v).to(device) for k, v in feeds.items()}
        return forward(**feeds, labels=torch.from_numpy(y).to(device)).loss

    def dev_score(model) -> float:
        run = torch_runner(model, device)
        predicted = tags_of(word_logits(run, encode, dev_sentences), dev_sentences, labels)
        return entity_metrics(dev_tags, predicted)["f1"]

    lengths = np.array([len(e.ids) for e in encode.tokenizer.encode_batch(sentences, is_pretokenized=True)])
    return _Examples(lengths, batch_loss, dev_score, [])


def balanced_class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """scikit-learn's "balanced" weights, n / (classes x count): every class weighs as much in the loss as the
    others together would if they were as rare. A class absent from the training subset keeps weight 1."""
    counts = np.bincount(y, minlength=n_classes)
    return np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 1.0)


def fit_batch_size(model, max_length: int, device: str, n_examples: int) -> int:
    """The largest power-of-two batch (32..256) whose forward + backward at the maximum length fits the GPU, and
    that still leaves 20 steps per epoch. On a CPU: 32 (larger batches only slow convergence there), and 16 for a
    small set (under SMALL_SET texts), where more, noisier steps per epoch learn more from few texts."""
    if not device.startswith("cuda"):
        return 32 if n_examples >= SMALL_SET else 16
    torch, _ = torch_modules()
    best = 32
    for size in (64, 128, 256):
        if n_examples // size < 20:
            break
        try:
            ids = torch.ones((size, max_length), dtype=torch.long, device=device)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float().sum().backward()
            best = size
        except torch.OutOfMemoryError:
            break
        finally:
            model.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
    return best


def _with_lora(model, spec: FinetuneSpec):
    try:
        from peft import LoraConfig, TaskType, get_peft_model
    except ImportError:
        from edgeft.errors import MissingBackend

        raise MissingBackend("peft (LoRA adapters)", "build") from None
    task_type = TaskType.TOKEN_CLS if spec.task == "ner" else TaskType.SEQ_CLS
    # BERT-family module names: attention projections and both feed-forward layers (all named *.dense too).
    config = LoraConfig(task_type=task_type, r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.dropout,
                        target_modules=["query", "key", "value", "dense"])
    return get_peft_model(model, config)


def save_model(model, tokenizer_from: Path, out: Path) -> None:
    """safetensors weights + config, and the tokenizer files the model was trained with."""
    model.to("cpu").save_pretrained(out, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (tokenizer_from / name).is_file():
            shutil.copy2(tokenizer_from / name, out / name)
