"""Training-step time with the lowest encoder layers frozen (`--freeze-layers N`, `--distill freeze_layers=N`).

The packaged all-MiniLM-L6-v2 (the teacher's shape) and the default student (its layers 1, 3, 5 with 768-unit
feed-forward blocks), each with 0 to N of its lowest layers frozen, take the same batches of 32 real tweets (sorted by
length, as the build's length-grouped batches are), forward + backward + AdamW step, interleaved so that every
setting sees the same machine. Frozen embeddings and no dropout, as the default recipe trains. Speed only: what a
frozen layer costs in accuracy is measured by whole builds (docs/experiments/speed.md, section 7).
Run: `.venv/bin/python benchmarks/frozen_layers.py`.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from edgeft.data.assets import DEFAULT_MODEL, packaged_model
from edgeft.data.text import load_dataset
from edgeft.student_recipe import Student
from edgeft.runtime.bench import host_description
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
from edgeft.stages.student import make_student
from edgeft.stages.torch_model import load_classifier, set_training_options

BATCH, BATCHES, ROUNDS = 32, 20, 3
SETTINGS = [("teacher", 0), ("teacher", 1), ("teacher", 2), ("teacher", 3), ("student", 0), ("student", 1)]
LABELS = ["negative", "neutral", "positive"]


def model_for(kind: str, frozen: int):
    torch.manual_seed(0)
    model = load_classifier(packaged_model(DEFAULT_MODEL).path, LABELS)
    if kind == "student":  # make_student applies the student's own training options, frozen layers included
        model, _ = make_student(model, Student(layers=3, ffn=768, freeze_layers=frozen), LABELS, "classification")
    else:
        set_training_options(model, 0.0, True, frozen)
    model.train()
    return model, torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)


def main() -> None:
    data = load_dataset("packaged:tweets")
    rng = np.random.default_rng(0)
    texts = sorted((data.texts[i] for i in rng.choice(len(data.texts), BATCH * BATCHES, replace=False)), key=len)
    encode = TextEncoder(packaged_model(DEFAULT_MODEL).path / "tokenizer.json", 128, "right", TOKENIZER_OUTPUTS)
    batches = [{k: torch.from_numpy(v) for k, v in encode(texts[i:i + BATCH]).items()}
               for i in range(0, len(texts), BATCH)]
    gold = torch.zeros(BATCH, dtype=torch.long)
    models = {s: model_for(*s) for s in SETTINGS}
    seconds: dict[tuple[str, int], list[float]] = {s: [] for s in SETTINGS}
    for round_ in range(ROUNDS):
        for setting in SETTINGS:
            model, optimizer = models[setting]
            for i, batch in enumerate(batches):
                started = time.perf_counter()
                torch.nn.functional.cross_entropy(model(**batch).logits, gold).backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if round_ > 0 or i >= 3:  # the first steps warm the allocator and Adam's state
                    seconds[setting].append(time.perf_counter() - started)
    host = host_description()
    table = Table(title=f"training step, batch {BATCH}, {torch.get_num_threads()} threads, "
                        f"{host.get('cpu')} ({', '.join(host.get('isa', []))})")
    for column in ("model", "frozen layers", "trainable parameters", "ms / step", "speed-up"):
        table.add_column(column)
    for kind, frozen in SETTINGS:
        model, _ = models[(kind, frozen)]
        mean = float(np.mean(seconds[(kind, frozen)]))
        table.add_row(kind, str(frozen), f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,}",
                      f"{mean * 1e3:.0f}", f"{np.mean(seconds[(kind, 0)]) / mean:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
