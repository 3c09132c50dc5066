"""`make bench-optimizer`: one training step of edgeft's CPU recipes with PyTorch's fused AdamW against the foreach
AdamW that the loop used before, interleaved in one process on this host.

Two shapes, as `edgeft build` trains them on a CPU: the teacher fine-tune (all-MiniLM-L6-v2, word embeddings frozen,
no dropout, batch 32) and the default student (3 layers, feed-forward 768, embeddings frozen, batch 32; randomly
initialised, which changes nothing about the time of a step). Batches are real packaged tweets, padded to their own
longest text as the loop pads them. A step is forward, backward, gradient clipping and the optimizer step; the two
optimizers take turns in blocks of steps so that a drift of the machine's speed hits both alike. Also printed: the
optimizer step alone, and the largest difference between the weights after one identical step with each (the two
implement the same update; they differ in the order of float operations only).

A benchmark, not a test: it prints a table and writes bench-results/bench-optimizer.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from edgeft.data.assets import DEFAULT_MODEL, packaged_model
from edgeft.data.text import load_dataset
from edgeft.runtime.bench import host_description
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
from edgeft.stages.torch_model import load_classifier, set_training_options

ROOT = Path(__file__).resolve().parent.parent
BATCH = 32
LABELS = ["negative", "neutral", "positive"]


def models(folder: Path) -> dict[str, Any]:
    import transformers

    teacher = load_classifier(folder, LABELS)
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers, config.intermediate_size = 3, 768
    student = transformers.BertForSequenceClassification(config)
    for model in (teacher, student):
        set_training_options(model, 0.0, freeze_embeddings=True)
        model.train()
    return {"teacher fine-tune (MiniLM-L6)": teacher, "student (3 layers, FFN 768)": student}


def step_seconds(model, optimizer, batches: list[dict[str, torch.Tensor]], labels: torch.Tensor) -> list[float]:
    params = [p for p in model.parameters() if p.requires_grad]
    times = []
    for feeds in batches:
        started = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(**feeds).logits, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    return times


def optimizer_only(params: list, fused: bool, repeats: int) -> float:
    for p in params:
        p.grad = torch.full_like(p, 1e-3)
    optimizer = torch.optim.AdamW(params, lr=1e-5, fused=fused)
    optimizer.step()
    started = time.perf_counter()
    for _ in range(repeats):
        optimizer.step()
    return (time.perf_counter() - started) / repeats


def update_difference(model) -> float:
    """Max |w_fused - w_foreach| after one AdamW step from the same weights and gradients."""
    results = []
    for fused in (False, True):
        twin = copy.deepcopy(model)
        params = [p for p in twin.parameters() if p.requires_grad]
        generator = torch.Generator().manual_seed(0)
        for p in params:
            p.grad = torch.randn(p.shape, generator=generator) * 1e-2
        torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, fused=fused).step()
        results.append([p.detach() for p in params])
    return max(float((a - b).abs().max()) for a, b in zip(*results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=6, help="blocks per optimizer (they alternate)")
    parser.add_argument("--steps", type=int, default=10, help="training steps per block")
    parser.add_argument("--json", type=Path, default=ROOT / "bench-results" / "bench-optimizer.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    folder = packaged_model(DEFAULT_MODEL).path
    encode = TextEncoder(folder / "tokenizer.json", 128, "right", TOKENIZER_OUTPUTS)
    texts = load_dataset("packaged:tweets").texts[: BATCH * args.steps]
    batches = [{k: torch.from_numpy(v) for k, v in encode(texts[i:i + BATCH]).items()}
               for i in range(0, len(texts), BATCH)]
    labels = torch.zeros(BATCH, dtype=torch.long)
    host = host_description()
    rows = []
    for name, model in models(folder).items():
        params = [p for p in model.parameters() if p.requires_grad]
        optimizers = {fused: torch.optim.AdamW(params, lr=1e-5, fused=fused) for fused in (False, True)}
        step_seconds(model, optimizers[False], batches[:2], labels)  # warm-up: allocator, first kernels
        times: dict[bool, list[float]] = {False: [], True: []}
        for block in range(args.blocks * 2):
            fused = bool(block % 2)
            times[fused] += step_seconds(model, optimizers[fused], batches, labels)
        optimizer_ms = {fused: optimizer_only(params, fused, 20) * 1000 for fused in (False, True)}
        before, after = (statistics.median(times[f]) * 1000 for f in (False, True))
        rows.append({"model": name, "trainable_parameters_m": round(sum(p.numel() for p in params) / 1e6, 1),
                     "step_ms_foreach": round(before, 1), "step_ms_fused": round(after, 1),
                     "step_saving": round(1 - after / before, 3),
                     "optimizer_ms_foreach": round(optimizer_ms[False], 1),
                     "optimizer_ms_fused": round(optimizer_ms[True], 1),
                     "max_weight_difference_one_step": update_difference(model)})
    table = Table(title=f"AdamW foreach vs fused, batch {BATCH} of tweets, {torch.get_num_threads()} threads, "
                        f"{host['cpu']} ({', '.join(host['isa'])}), torch {torch.__version__}")
    for column in ("model", "trainable M", "step ms foreach", "step ms fused", "saving", "optimizer ms foreach",
                   "optimizer ms fused", "weights differ by"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["model"], f"{r['trainable_parameters_m']}", f"{r['step_ms_foreach']}", f"{r['step_ms_fused']}",
                      f"{r['step_saving']:.1%}", f"{r['optimizer_ms_foreach']}", f"{r['optimizer_ms_fused']}",
                      f"{r['max_weight_difference_one_step']:.1e}")
    Console(width=160).print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"host": host, "torch": torch.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
