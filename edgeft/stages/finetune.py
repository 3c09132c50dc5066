"""Fine-tune a pretrained encoder on labelled texts -> an hf-model artifact (safetensors + tokenizer + config).

A plain PyTorch loop (`stages/training.py`) rather than `Trainer`: dynamic padding over length-grouped batches is most
of the speed on a CPU, and bf16 autocast + a fused optimizer on a GPU; the best epoch on the dev split is kept.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeft.artifact import Artifact, cached_stage, library_versions, sha256_file
from edgeft.data import Split, TextDataset, stratified_subset
from edgeft.metrics import accuracy
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
from edgeft.stages.torch_model import (TOKENIZER_FILES, load_classifier, set_training_options, torch_logits,
                                       torch_modules)
from edgeft.stages.training import Schedule, train


class FinetuneSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(2, ge=1)
    # MiniLM-L6 (a sentence-embedding model) wants a higher rate than BERT-base's usual 2e-5 to move its head.
    learning_rate: float = Field(8e-5, gt=0)
    batch_size: int = Field(32, ge=1)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    # The default recipe's budget: a seeded, stratified subset keeps `make build` under 15 min on 2 CPU cores.
    max_train_samples: int | None = Field(8000, ge=1)
    max_length: int = Field(128, ge=8, le=512)
    # Stop when the dev accuracy has not improved for this many epochs; the best epoch is kept either way.
    patience: int = Field(1, ge=1)
    # Word embeddings as pretrained, and no dropout: 1.6x faster steps on a CPU (torch profiler), which pays for the
    # distilled student in the same 15-minute default build; accuracy measured in docs/experiments/distillation.md.
    freeze_embeddings: bool = True
    dropout: float = Field(0.0, ge=0, lt=1)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"


def resolve_device(requested: str) -> str:
    torch, _ = torch_modules()
    if requested == "cuda" and not torch.cuda.is_available():
        from edgeft.errors import BadInput

        raise BadInput("--device cuda was asked for but torch sees no CUDA GPU; use --device auto or cpu")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def model_hash(model_dir: Path) -> str:
    files = sorted(p for p in model_dir.iterdir() if p.is_file() and (p.suffix in (".json", ".safetensors", ".txt")))
    return "|".join(f"{p.name}:{sha256_file(p)}" for p in files)


def finetune(base_model: Path, data: TextDataset, split: Split, spec: FinetuneSpec, work_dir: Path) -> Artifact:
    labels = data.label_names
    device = resolve_device(spec.device)
    key = {"base_model": model_hash(base_model), "data": data.sha256, "split": split.sha256, "labels": labels,
           "spec": spec.model_dump(exclude={"device"}), "versions": library_versions("torch", "transformers")}

    def build(tmp: Path) -> dict[str, Any]:
        return _train(base_model, data, split, spec, labels, device, tmp)

    return cached_stage(work_dir, "finetune", key, build)


def _train(base_model: Path, data: TextDataset, split: Split, spec: FinetuneSpec, labels: list[str],
           device: str, out: Path) -> dict[str, Any]:
    torch, _ = torch_modules()
    torch.manual_seed(spec.seed)
    encode = TextEncoder(base_model / "tokenizer.json", spec.max_length, "right", TOKENIZER_OUTPUTS)
    model = load_classifier(base_model, labels).to(device)
    set_training_options(model, spec.dropout, spec.freeze_embeddings)
    index = {label: i for i, label in enumerate(labels)}
    train_idx = stratified_subset(split.train, data.labels, spec.max_train_samples, spec.seed)
    train_texts = [data.texts[i] for i in train_idx]
    train_y = np.array([index[data.labels[i]] for i in train_idx])
    dev_texts = [data.texts[i] for i in split.dev]
    dev_y = [index[data.labels[i]] for i in split.dev]
    lengths = np.array([len(e.ids) for e in encode.tokenizer.encode_batch(train_texts)])

    def batch_loss(batch: np.ndarray):
        feeds = {k: torch.from_numpy(v).to(device) for k, v in encode([train_texts[i] for i in batch]).items()}
        return model(**feeds, labels=torch.from_numpy(train_y[batch]).to(device)).loss

    def dev_score() -> float:
        return accuracy(dev_y, torch_logits(model, encode, dev_texts, device=device).argmax(-1))

    schedule = Schedule(spec.epochs, spec.learning_rate, spec.batch_size, spec.warmup_ratio, spec.weight_decay,
                        spec.patience, spec.seed)
    metrics = train(model, list(model.named_parameters()), lengths, schedule, device, batch_loss, dev_score,
                    "fine-tune")
    save_model(model, base_model, out)
    return {"kind": "hf-model", "task": "classification", "labels": labels, "device": device,
            "spec": spec.model_dump(), "train_samples": len(train_idx), "metrics": metrics,
            "versions": library_versions("torch", "transformers")}


def save_model(model, tokenizer_from: Path, out: Path) -> None:
    """safetensors weights + config, and the tokenizer files the model was trained with."""
    model.to("cpu").save_pretrained(out, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (tokenizer_from / name).is_file():
            shutil.copy2(tokenizer_from / name, out / name)
