"""The training loop that fine-tuning and distillation share: length-grouped batches, fused AdamW with linear warm-up
and decay, mixed precision and TF32 on a GPU, optional `torch.compile`, several processes under
`torchrun` / `accelerate launch` (DistributedDataParallel: NCCL on GPUs, gloo on CPUs), evaluation on the dev split
after every epoch, early stopping, the best epoch's weights restored at the end, and checkpoints to resume from.

What differs between callers (which loss, which model, what the dev score is) comes in as functions.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeft.errors import BadInput
from edgeft.progress import console, progress_bar
from edgeft.stages.torch_model import torch_modules

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Devices whose torch build has a fused AdamW kernel (CPU since torch 2.4).
FUSED_ADAMW = ("cuda", "cpu")


@dataclass(frozen=True)
class Schedule:
    epochs: int
    learning_rate: float
    batch_size: int  # per process
    warmup_ratio: float
    weight_decay: float
    patience: int
    seed: int
    # auto: bf16 on a GPU that has it, else fp16 with loss scaling; fp32 on a CPU (bf16 there is asked for by name).
    precision: str = "auto"
    compile: bool = False
    metric: str = "dev_accuracy"  # what dev_score() measures, as history and logs name it
    # > 0: dev is scored on, and the model ends holding, an exponential moving average of the weights (decay warmed
    # up as (1 + t) / (10 + t), which stays under 0.998 until step 4,490: shorter runs average by the warm-up alone,
    # docs/experiments/distillation.md section 14); the trained weights go on training underneath it.
    ema_decay: float = 0.0


@dataclass(frozen=True)
class Workers:
    """This process's place among the processes `torchrun` or `accelerate launch` started (1 of 1 otherwise)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Workers:
        # Both launchers export the torch.distributed variables; nothing else is needed from them.
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def start(self, device: str) -> None:
        if self.world_size == 1:
            return
        torch, _ = torch_modules()
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")

    def barrier(self) -> None:
        if self.world_size > 1:
            torch, _ = torch_modules()
            torch.distributed.barrier()

    def stop(self) -> None:
        torch, _ = torch_modules()
        if self.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


# Early stopping waits at least this many optimizer steps without a better dev score (FinetuneSpec.patience_steps).
PATIENCE_STEPS = 100


@dataclass(frozen=True)
class StepPlan:
    """How long a run may train, in optimizer steps rather than epochs: a small set (500 texts = 16 steps an epoch)
    is repeated until it has had `min_steps`, and early stopping waits `patience_steps` without a better dev score
    before it stops, so a noisy dev split of 30 texts cannot end training after one short epoch."""

    epochs: int
    steps_per_epoch: int
    patience: int  # in evaluations (one per epoch)

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @classmethod
    def of(cls, n_examples: int, batch_size: int, epochs: int, min_steps: int, patience: int, patience_steps: int,
           world_size: int = 1) -> StepPlan:
        per_epoch = max(1, math.ceil(n_examples / batch_size) // world_size)
        return cls(max(epochs, math.ceil(min_steps / per_epoch)), per_epoch,
                   max(patience, math.ceil(patience_steps / per_epoch)))


# The best evaluation's dev predictions (label indices), written beside a trained model: the build compares a
# student with its teacher on them, paired, text by text (gating.student).
DEV_PREDICTIONS = "dev_predictions.json"


def best_evaluation(history: list[dict[str, Any]], metric: str) -> int | None:
    """Index of the evaluation whose weights train() kept: the last one with the best score."""
    scores = [h[metric] for h in history if isinstance(h.get(metric), (int, float)) and not math.isnan(h[metric])]
    if len(scores) != len(history) or not scores:
        return None
    return len(scores) - 1 - scores[::-1].index(max(scores))


def write_dev_predictions(out: Path, evaluations: list[list[int]], metrics: dict[str, Any], metric: str) -> None:
    """The kept evaluation's predictions, when every evaluation of this run was seen (not after a resume)."""
    best = best_evaluation(metrics["history"], metric)
    if best is not None and len(evaluations) == len(metrics["history"]):
        (out / DEV_PREDICTIONS).write_text(json.dumps(evaluations[best]), encoding="utf-8")


def read_dev_predictions(folder: Path) -> list[int] | None:
    path = folder / DEV_PREDICTIONS
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def resolve_precision(requested: str, device: str) -> str:
    torch, _ = torch_modules()
    if requested not in PRECISIONS:
        raise BadInput(f"--precision '{requested}' is not one of {', '.join(PRECISIONS)}")
    if device.startswith("cuda"):
        if requested == "auto":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if requested == "bf16" and not torch.cuda.is_bf16_supported():
            raise BadInput("--precision bf16: this GPU has no bf16; use --precision fp16 or auto")
        return requested
    if requested == "fp16":
        raise BadInput("--precision fp16 needs a CUDA GPU; on a CPU use fp32 (default) or bf16")
    return "fp32" if requested == "auto" else requested


class WeightAverage:
    """An exponential moving average of a model's floating-point weights (Schedule.ema_decay), its decay warmed up as
    (1 + t) / (10 + t) so that the first steps do not hold it back."""

    def __init__(self, model, decay: float) -> None:
        # state_dict() tensors share the parameters' storage: the average reads and swaps them in place.
        self.live = [v for v in model.state_dict().values() if v.is_floating_point()]
        self.average = [v.detach().clone() for v in self.live]
        self.decay = decay

    def update(self, step: int) -> None:
        """Fold in the weights after optimizer step `step` (counted from 1)."""
        torch, _ = torch_modules()
        with torch.no_grad():
            torch._foreach_lerp_(self.average, self.live, 1 - min(self.decay, (1 + step) / (10 + step)))

    @contextlib.contextmanager
    def swapped_in(self):
        """The model holds the average inside the block, and its trained weights again after it."""
        torch, _ = torch_modules()
        trained = [v.clone() for v in self.live]
        with torch.no_grad():
            torch._foreach_copy_(self.live, self.average)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.live, trained)


def train(model, params: list, lengths: np.ndarray, schedule: Schedule, device: str,
          batch_loss: Callable[[Any, np.ndarray], Any], dev_score: Callable[[], float | dict[str, float]], label: str,
          checkpoint: Path | None = None, checkpoint_seconds: float = 300.0) -> dict[str, Any]:
    """Train `params` of `model` on examples 0..len(lengths)-1; `batch_loss(forward, indices)` returns the loss
    tensor, calling `forward` (the model, or its compiled / DistributedDataParallel wrapper) for the outputs.

    With `checkpoint`, the state is saved there after every epoch and every `checkpoint_seconds` of training, and a
    run that finds one resumes from it (same batches, same schedule); it is removed when training ends.
    Returns the history, the best dev score and the speed; `model` ends holding the best epoch's weights.
    """
    if schedule.ema_decay > 0 and checkpoint is not None:
        raise ValueError("a moving average of the weights is not checkpointed: train it without a checkpoint")
    torch, transformers = torch_modules()
    workers = Workers.from_env()
    workers.start(device)
    precision = resolve_precision(schedule.precision, device)
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    no_decay = ("bias", "LayerNorm.weight")
    named = [(n, p) for n, p in params if p.requires_grad]
    groups = [{"params": [p for n, p in named if not n.endswith(no_decay)], "weight_decay": schedule.weight_decay},
              {"params": [p for n, p in named if n.endswith(no_decay)], "weight_decay": 0.0}]
    # Fused AdamW on the CPU too: one kernel instead of a chain of foreach ops. The teacher's optimizer step takes
    # 6.7 instead of 18.8 ms on 2 cores (2-4 % of a training step), the same update to 1e-8 (`make bench-optimizer`,
    # docs/experiments/speed.md section 11).
    optimizer = torch.optim.AdamW(groups, lr=schedule.learning_rate, fused=device.split(":")[0] in FUSED_ADAMW)
    # Every process draws the same batches from the same seed and takes every world_size-th one.
    steps_per_epoch = math.ceil(len(lengths) / schedule.batch_size) // workers.world_size
    if steps_per_epoch == 0:
        raise BadInput(f"{len(lengths)} training examples make no batch of {schedule.batch_size} for each of "
                       f"{workers.world_size} processes; lower --batch-size")
    total = steps_per_epoch * schedule.epochs
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, int(total * schedule.warmup_ratio), total)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype is not None)
    forward = model
    if workers.world_size > 1:
        forward = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[workers.local_rank] if device.startswith("cuda") else None)
    if schedule.compile:
        # dynamic=True: batches are padded to their own longest text, so shapes change from step to step.
        forward = torch.compile(forward, dynamic=True)

    rng = np.random.default_rng(schedule.seed)
    state = {"epoch": 1, "step": 0, "history": [], "best": -math.inf, "stale": 0, "seen": 0, "seconds": 0.0,
             "epoch_rng": rng.bit_generator.state}
    best_state = None
    if checkpoint is not None and (checkpoint / "progress.json").is_file():
        state, best_state = _load_checkpoint(checkpoint, model, optimizer, scheduler, scaler)
        if workers.main:
            console.print(f"  resuming {label} from {checkpoint} (epoch {state['epoch']}, step {state['step']})")

    average = WeightAverage(model, schedule.ema_decay) if schedule.ema_decay > 0 else None
    started = time.perf_counter() - state["seconds"]
    last_save = time.perf_counter()
    stop = False
    with progress_bar(enabled=workers.main) as progress:
        task = progress.add_task(f"{label} on {device}", total=total,
                                 completed=(state["epoch"] - 1) * steps_per_epoch + state["step"])
        while state["epoch"] <= schedule.epochs and not stop:
            epoch = state["epoch"]
            rng.bit_generator.state = state["epoch_rng"]
            batches = length_grouped_batches(lengths, schedule.batch_size, rng)
            mine = batches[workers.rank: steps_per_epoch * workers.world_size: workers.world_size]
            model.train()
            description = f"{label} on {device} · epoch {epoch}"
            for batch in mine[state["step"]:]:
                with autocast:
                    loss = batch_loss(forward, batch)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state["step"] += 1
                if average is not None:
                    average.update((epoch - 1) * steps_per_epoch + state["step"])
                state["seen"] += len(batch) * workers.world_size
                # loss.item() waits for the GPU: read it for the bar only every 20 steps, not every step.
                if state["step"] % 20 == 1:
                    description = f"{label} on {device} · epoch {epoch} · loss {loss.item():.3f}"
                progress.update(task, advance=1, description=description)
                if checkpoint is not None and time.perf_counter() - last_save >= checkpoint_seconds:
                    state["seconds"] = time.perf_counter() - started
                    _save_checkpoint(checkpoint, state, model, optimizer, scheduler, scaler, best_state, workers)
                    last_save = time.perf_counter()
            model.eval()
            # Averaging: dev scores the average, and training resumes from the trained weights after the block.
            with average.swapped_in() if average is not None else contextlib.nullcontext():
                scores = dev_score()
                # A caller may measure several figures (dev accuracy and macro-F1): all are logged, one decides.
                scores = scores if isinstance(scores, dict) else {schedule.metric: scores}
                score = scores[schedule.metric]
                elapsed = time.perf_counter() - started
                state["history"].append({"epoch": epoch, **scores, "steps": epoch * steps_per_epoch,
                                         "seconds": round(elapsed, 1)})
                if workers.main:
                    shown = " · ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in scores.items())
                    console.print(f"  epoch {epoch} (step {epoch * steps_per_epoch}): {shown} ({elapsed:.0f} s)")
                if score >= state["best"]:
                    # The later of tied epochs is kept: it has trained longer for the same dev score. A small dev
                    # split that is right on every text from the first epoch on (100 texts of an easy set) would
                    # otherwise keep that first epoch, still in its warm-up, with probabilities near uniform.
                    # While averaging, the model holds the average here: the best epoch keeps the average.
                    state["best"], best_state, state["stale"] = score, copy.deepcopy(model.state_dict()), 0
                    state["best_scores"] = scores
                elif score < state["best"]:
                    # Only a worse epoch counts against patience: on a small dev split (BBC: 105 articles) equal
                    # scores are common and say nothing about progress.
                    state["stale"] += 1
                    stop = state["stale"] >= schedule.patience
            state.update(epoch=epoch + 1, step=0, epoch_rng=rng.bit_generator.state, seconds=elapsed)
            if checkpoint is not None and not stop and state["epoch"] <= schedule.epochs:
                _save_checkpoint(checkpoint, state, model, optimizer, scheduler, scaler, best_state, workers)
                last_save = time.perf_counter()
    seconds = time.perf_counter() - started
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32  # leave the process as found
    if best_state is not None:  # None only if every dev score was NaN: the last weights stay
        model.load_state_dict(best_state)
    if checkpoint is not None and workers.main:
        shutil.rmtree(checkpoint, ignore_errors=True)
    kept = best_evaluation(state["history"], schedule.metric)
    return {**state.get("best_scores", {}), schedule.metric: state["best"], "history": state["history"],
            "kept_epoch": state["history"][kept]["epoch"] if kept is not None else None,
            "epochs_run": len(state["history"]), "steps_run": len(state["history"]) * steps_per_epoch,
            "train_samples_per_s": round(state["seen"] / seconds, 1), "train_seconds": round(seconds, 1),
            "precision": precision, "compiled": schedule.compile, "processes": workers.world_size,
            "batch_size_per_process": schedule.batch_size}


def _save_checkpoint(folder: Path, state: dict[str, Any], model, optimizer, scheduler, scaler, best_state,
                     workers: Workers) -> None:
    """Tensors with torch.save (read back with weights_only=True: no code runs on load), the rest as JSON; written
    to a temporary sibling and renamed, so an interruption while saving leaves the previous checkpoint intact."""
    if not workers.main:
        return
    torch, _ = torch_modules()
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else {}, "best": best_state or {},
                "torch_rng": torch.get_rng_state()}, tmp / "state.pt")
    (tmp / "progress.json").write_text(json.dumps({**state, "best": state["best"] if state["best"] > -math.inf
                                                   else None}), encoding="utf-8")
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        os.rename(folder, old)
    os.rename(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(folder: Path, model, optimizer, scheduler, scaler) -> tuple[dict[str, Any], Any]:
    torch, _ = torch_modules()
    state = json.loads((folder / "progress.json").read_text(encoding="utf-8"))
    state["best"] = -math.inf if state["best"] is None else state["best"]
    tensors = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(tensors["model"])
    optimizer.load_state_dict(tensors["optimizer"])
    scheduler.load_state_dict(tensors["scheduler"])
    if scaler is not None and tensors["scaler"]:
        scaler.load_state_dict(tensors["scaler"])
    torch.set_rng_state(tensors["torch_rng"])
    return state, (tensors["best"] or None)


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
