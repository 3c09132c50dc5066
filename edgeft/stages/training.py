"""The training loop that fine-tuning and distillation share: length-grouped batches, AdamW with linear warm-up and
decay, bf16 autocast and a fused optimizer on a GPU, evaluation on the dev split after every epoch, early stopping,
and the best epoch's weights restored at the end.

What differs between the two (which loss, which model, what the dev score is) comes in as functions.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeft.progress import console, progress_bar
from edgeft.stages.torch_model import torch_modules


@dataclass(frozen=True)
class Schedule:
    epochs: int
    learning_rate: float
    batch_size: int
    warmup_ratio: float
    weight_decay: float
    patience: int
    seed: int


def train(model, params: list, lengths: np.ndarray, schedule: Schedule, device: str,
          batch_loss: Callable[[np.ndarray], Any], dev_score: Callable[[], float], label: str) -> dict[str, Any]:
    """Train `params` of `model` on examples 0..len(lengths)-1; `batch_loss(indices)` returns the loss tensor.

    Returns the history, the best dev score and the speed; `model` ends holding the best epoch's weights.
    """
    torch, transformers = torch_modules()
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    no_decay = ("bias", "LayerNorm.weight")
    named = [(n, p) for n, p in params if p.requires_grad]
    groups = [{"params": [p for n, p in named if not n.endswith(no_decay)], "weight_decay": schedule.weight_decay},
              {"params": [p for n, p in named if n.endswith(no_decay)], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=schedule.learning_rate, fused=device == "cuda")
    steps_per_epoch = math.ceil(len(lengths) / schedule.batch_size)
    total = steps_per_epoch * schedule.epochs
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, int(total * schedule.warmup_ratio), total)
    rng = np.random.default_rng(schedule.seed)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda"
                else torch.autocast("cpu", enabled=False))

    history, best, best_state, stale, seen, started = [], -math.inf, None, 0, 0, time.perf_counter()
    with progress_bar() as progress:
        task = progress.add_task(f"{label} on {device}", total=total)
        for epoch in range(1, schedule.epochs + 1):
            model.train()
            for batch in length_grouped_batches(lengths, schedule.batch_size, rng):
                with autocast:
                    loss = batch_loss(batch)
                loss.backward()
                torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                seen += len(batch)
                progress.update(task, advance=1, description=f"{label} on {device} · epoch {epoch} · loss {loss.item():.3f}")
            model.eval()
            score = dev_score()
            history.append({"epoch": epoch, "dev_accuracy": score})
            console.print(f"  epoch {epoch}: dev accuracy {score:.4f}")
            if score > best:
                best, best_state, stale = score, copy.deepcopy(model.state_dict()), 0
            elif score < best:
                # Only a worse epoch counts against patience: on a small dev split (BBC: 105 articles) equal
                # accuracies are common and say nothing about progress. The earlier of tied epochs stays the best.
                stale += 1
                if stale >= schedule.patience:
                    break
    seconds = time.perf_counter() - started
    model.load_state_dict(best_state)
    return {"dev_accuracy": best, "history": history, "train_samples_per_s": round(seen / seconds, 1),
            "train_seconds": round(seconds, 1)}


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
