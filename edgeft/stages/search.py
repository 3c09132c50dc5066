"""A small hyperparameter search for fine-tuning: a grid (learning rate, epochs, ...) tried in order under a
wall-clock budget, every trial recorded, the best dev score wins.

Each trial is an ordinary cached fine-tune stage, so a repeated search (or a later build with the winning values)
costs nothing for the trials already run. The test split is never looked at.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgeft.artifact import Artifact
from edgeft.data.text import Split
from edgeft.errors import BadInput
from edgeft.profile import describe_validation_error
from edgeft.progress import console
from edgeft.stages.finetune import FinetuneSpec, dev_metric, finetune

SEARCHABLE = ("learning_rate", "epochs", "batch_size", "warmup_ratio", "weight_decay", "lora_r", "max_train_samples")


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """`--search learning_rate=3e-5,1e-4 --search epochs=2,4` -> {"learning_rate": [...], "epochs": [...]}."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or key not in SEARCHABLE or not values.strip():
            raise BadInput(f"--search '{item}' is not KEY=V1,V2,... with KEY one of {', '.join(SEARCHABLE)}")
        grid[key] = [v.strip() for v in values.split(",") if v.strip()]
    return grid


def trial_specs(spec: FinetuneSpec, grid: dict[str, list[str]]) -> list[FinetuneSpec]:
    keys = list(grid)
    specs = []
    for values in itertools.product(*(grid[k] for k in keys)):
        try:
            # Validated like any spec (model_copy would skip validation): "abc" or -1 is a one-line error.
            # A trial that names its epochs runs exactly those (no step floor), as --epochs does; one that names
            # its epochs or subset size trains that subset for those epochs (no one pass over fresh texts).
            floor = {"min_steps": 0} if "epochs" in keys and "min_steps" not in keys else {}
            exact = {"fresh_texts": False} if {"epochs", "max_train_samples"} & set(keys) else {}
            specs.append(FinetuneSpec(**{**spec.model_dump(), **floor, **exact, **dict(zip(keys, values))}))
        except ValidationError as exc:
            raise BadInput(f"--search value {describe_validation_error(exc)}") from None
    return specs


def search(base_model: Path, data, split: Split, spec: FinetuneSpec, grid: dict[str, list[str]],
           time_budget_s: float | None, work_dir: Path) -> tuple[Artifact, list[dict[str, Any]]]:
    """Run the grid's trials in order until the budget would be exceeded; returns the best artifact and the record.

    A trial starts only if the time spent so far plus the longest trial yet fits the budget, so the search ends
    near the budget instead of far past it; the first trial always runs.
    """
    metric = dev_metric(spec)
    specs = trial_specs(spec, grid)
    started, longest = time.perf_counter(), 0.0
    trials: list[dict[str, Any]] = []
    best: Artifact | None = None
    for number, trial in enumerate(specs, 1):
        params = {k: getattr(trial, k) for k in grid}
        spent = time.perf_counter() - started
        if best is not None and time_budget_s is not None and spent + longest > time_budget_s:
            trials.append({"trial": number, "params": params, "status": "skipped",
                           "reason": f"time budget {time_budget_s:.0f} s: {spent:.0f} s spent, a trial takes "
                                     f"up to {longest:.0f} s"})
            continue
        console.print(f"[bold]trial {number}/{len(specs)}[/] {params}")
        t0 = time.perf_counter()
        art = finetune(base_model, data, split, trial, work_dir)
        seconds = time.perf_counter() - t0
        longest = max(longest, seconds)
        score = art.manifest["metrics"][metric]
        trials.append({"trial": number, "params": params, "status": "cached" if art.manifest.get("cache_hit") else "ran",
                       metric: score, "seconds": round(seconds, 1), "best_epoch": _best_epoch(art, metric),
                       "artifact": str(art.path)})
        if best is None or score > best.manifest["metrics"][metric]:
            best = art
    for row in trials:
        row["chosen"] = best is not None and row.get("artifact") == str(best.path)
    assert best is not None  # the first trial always runs
    return best, trials


def _best_epoch(art: Artifact, metric: str) -> int | None:
    history = art.manifest["metrics"].get("history", [])
    return max(history, key=lambda h: h[metric])["epoch"] if history else None
