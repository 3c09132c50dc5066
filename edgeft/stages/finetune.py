"""Fine-tune a pretrained encoder on labelled texts -> an hf-model artifact (safetensors + tokenizer + config).

A plain PyTorch loop rather than `Trainer`: dynamic padding over length-grouped batches is most of the speed on a
CPU, and bf16 autocast + a fused optimizer on a GPU; the best epoch on the dev split is the one kept.
"""

from __future__ import annotations

import copy
import math
import shutil
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeft.artifact import Artifact, cached_stage, library_versions, sha256_file
from edgeft.data import Split, TextDataset, stratified_subset
from edgeft.metrics import accuracy
from edgeft.progress import console, progress_bar
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
from edgeft.stages.torch_model import TOKENIZER_FILES, load_classifier, torch_logits, torch_modules


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
    torch, transformers = torch_modules()
    torch.manual_seed(spec.seed)
    encode = TextEncoder(base_model / "tokenizer.json", spec.max_length, "right", TOKENIZER_OUTPUTS)
    model = load_classifier(base_model, labels).to(device)
    index = {label: i for i, label in enumerate(labels)}
    train_idx = stratified_subset(split.train, data.labels, spec.max_train_samples, spec.seed)
    train_texts = [data.texts[i] for i in train_idx]
    train_y = np.array([index[data.labels[i]] for i in train_idx])
    dev_texts = [data.texts[i] for i in split.dev]
    dev_y = [index[data.labels[i]] for i in split.dev]
    lengths = np.array([len(e.ids) for e in encode.tokenizer.encode_batch(train_texts)])

    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    no_decay = ("bias", "LayerNorm.weight")
    groups = [{"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)], "weight_decay": spec.weight_decay},
              {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=spec.learning_rate, fused=device == "cuda")
    steps_per_epoch = math.ceil(len(train_idx) / spec.batch_size)
    total = steps_per_epoch * spec.epochs
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, int(total * spec.warmup_ratio), total)
    rng = np.random.default_rng(spec.seed)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)

    history, best, best_state, stale, seen, started = [], -1.0, None, 0, 0, time.perf_counter()
    with progress_bar() as progress:
        task = progress.add_task(f"fine-tune on {device}", total=total)
        for epoch in range(1, spec.epochs + 1):
            model.train()
            for batch in length_grouped_batches(lengths, spec.batch_size, rng):
                feeds = {k: torch.from_numpy(v).to(device) for k, v in encode([train_texts[i] for i in batch]).items()}
                target = torch.from_numpy(train_y[batch]).to(device)
                with autocast:
                    loss = model(**feeds, labels=target).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                seen += len(batch)
                progress.update(task, advance=1, description=f"fine-tune on {device} · epoch {epoch} · loss {loss.item():.3f}")
            dev_acc = accuracy(dev_y, torch_logits(model, encode, dev_texts, device=device).argmax(-1))
            history.append({"epoch": epoch, "dev_accuracy": dev_acc})
            console.print(f"  epoch {epoch}: dev accuracy {dev_acc:.4f}")
            if dev_acc > best:
                best, best_state, stale = dev_acc, copy.deepcopy(model.state_dict()), 0
            else:
                stale += 1
                if stale >= spec.patience:
                    break
    seconds = time.perf_counter() - started
    model.load_state_dict(best_state)
    model.to("cpu").save_pretrained(out, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (base_model / name).is_file():
            shutil.copy2(base_model / name, out / name)
    return {"kind": "hf-model", "task": "classification", "labels": labels, "device": device,
            "spec": spec.model_dump(), "train_samples": len(train_idx),
            "metrics": {"dev_accuracy": best, "history": history,
                        "train_samples_per_s": round(seen / seconds, 1), "train_seconds": round(seconds, 1)},
            "versions": library_versions("torch", "transformers")}


def length_grouped_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar-length texts: little padding, and still a fresh random order every epoch.

    Texts are shuffled, cut into pools of 50 batches, sorted by length inside each pool, batched, and the
    batches shuffled again, so no batch order is tied to length.
    """
    order = rng.permutation(len(lengths))
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches
