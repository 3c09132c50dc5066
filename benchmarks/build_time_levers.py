"""Levers on the default build's two compute stages, measured side by side in one process (docs/experiments/speed.md,
sections 18 and 20): the teacher's soft targets (the int8 ONNX Runtime pass over every training text) and a training
step.

Soft targets, texts per second on N packaged tweets, every core: the int8 teacher with texts batched in order of
their characters (the build before section 20) against batches in order of their word pieces at 16, 32 and 64 texts;
the fp32 export; PyTorch fp32 by characters and by pieces; the graph fused by ONNX Runtime's transformer optimizer,
then dynamic int8 (Optimum cannot quantize a fused graph, STACK trap 11: `quantize_dynamic` with a default tensor
type can); and two one-thread sessions taking turns over the batches by pieces (the build's now) instead of one
two-thread session. With `--compile`, also the teacher's training step (batch 32, length-grouped real tweets) eager
against `torch.compile` (first steps and steady state).

Weights do not change the cost: the packaged MiniLM with a new 3-label head stands in for a fine-tuned teacher.
Run: `.venv/bin/python benchmarks/build_time_levers.py [--texts 3000] [--compile]`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from edgeft.backends import onnxruntime as ort_backend
from edgeft.data.assets import DEFAULT_MODEL, packaged_model
from edgeft.data.text import load_dataset
from edgeft.profile import Isa
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
from edgeft.runtime.scoring import sentence_logits
from edgeft.runtime.sessions import Runtime, open_session
from edgeft.stages.finetune import save_model
from edgeft.stages.lessons import TEACHER_INT8
from edgeft.stages.torch_model import load_classifier, torch_logits, torch_runner

LABELS = ["a", "b", "c"]


def rate(n: int, run) -> float:
    started = time.perf_counter()
    run()
    return n / (time.perf_counter() - started)


def soft_target_rates(texts: list[str], root: Path) -> dict[str, float]:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    base = packaged_model(DEFAULT_MODEL).path
    teacher = load_classifier(base, LABELS)
    save_model(teacher, base, root / "hf")
    ort_backend.export(root / "hf", root / "onnx")
    int8 = ort_backend.quantize(root / "onnx", root / "int8", TEACHER_INT8, Isa.AVX2, None)
    fused = optimizer.optimize_model(str(root / "onnx" / "model.onnx"), model_type="bert", num_heads=12,
                                     hidden_size=384, opt_level=0)
    fused.save_model_to_file(str(root / "fused.onnx"))
    quantize_dynamic(str(root / "fused.onnx"), str(root / "fused-int8.onnx"), per_channel=True, reduce_range=True,
                     weight_type=QuantType.QInt8, extra_options={"DefaultTensorType": 1})  # 1: FLOAT
    cores = os.cpu_count() or 1
    rates = {}
    session = open_session(Runtime.ONNXRUNTIME, int8, cores, TOKENIZER_OUTPUTS)
    feed = TextEncoder(root / "hf" / "tokenizer.json", 128, "right", session.input_names)
    sentence_logits(session.run, feed, texts[:64], len(LABELS))  # warm-up
    rates[f"int8, by characters (before), batch 16, {cores} threads"] = rate(
        len(texts), lambda: by_characters(session.run, feed, texts, 16))
    variants = [("int8 by pieces", int8, (16, 32, 64)), ("fp32 export", root / "onnx" / "model.onnx",
                (16,)), ("fused graph, then dynamic int8", root / "fused-int8.onnx", (16,))]
    for name, path, sizes in variants:
        session = open_session(Runtime.ONNXRUNTIME, path, cores, TOKENIZER_OUTPUTS)
        feed = TextEncoder(root / "hf" / "tokenizer.json", 128, "right", session.input_names)
        sentence_logits(session.run, feed, texts[:64], len(LABELS))  # warm-up
        for batch in sizes:
            rates[f"{name}, batch {batch}, {cores} threads"] = rate(
                len(texts), lambda: sentence_logits(session.run, feed, texts, len(LABELS), batch_size=batch))
    singles = [open_session(Runtime.ONNXRUNTIME, int8, 1, TOKENIZER_OUTPUTS) for _ in range(2)]
    feed = TextEncoder(root / "hf" / "tokenizer.json", 128, "right", singles[0].input_names)
    rates["int8 by pieces, two 1-thread sessions taking turns (the build's), batch 16"] = rate(
        len(texts), lambda: sentence_logits([s.run for s in singles], feed, texts, len(LABELS), batch_size=16))
    encode = TextEncoder(base / "tokenizer.json", 128, "right", TOKENIZER_OUTPUTS)
    rates["PyTorch fp32, by characters (before), batch 64"] = rate(
        len(texts), lambda: by_characters(torch_runner(teacher), encode, texts, 64))
    rates["PyTorch fp32, by pieces, batch 64"] = rate(len(texts), lambda: torch_logits(teacher, encode, texts))
    return rates


def by_characters(run, encoder: TextEncoder, texts: list[str], batch_size: int) -> np.ndarray:
    """The batching of the build before section 20: texts in order of their characters."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), len(LABELS)), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        chunk = order[start:start + batch_size]
        out[chunk] = run(encoder([texts[i] for i in chunk]))
    return out


def step_times(texts: list[str], steps: int) -> dict[str, tuple[float, float]]:
    """(seconds of the first three steps, steady ms a step) for the teacher's training step, eager and compiled."""
    import torch

    base = packaged_model(DEFAULT_MODEL).path
    encode = TextEncoder(base / "tokenizer.json", 128, "right", TOKENIZER_OUTPUTS)
    lengths = np.array([len(encode.tokenizer.encode(t).ids) for t in texts])
    order = np.argsort(lengths, kind="stable")
    batches = [order[i:i + 32] for i in range(0, len(order) - 31, 32)]
    np.random.default_rng(0).shuffle(batches)
    feeds = [{k: torch.from_numpy(v) for k, v in encode([texts[i] for i in b]).items()} for b in batches[:steps]]
    out = {}
    for name in ("eager", "torch.compile"):
        torch.manual_seed(0)
        model = load_classifier(base, LABELS).train()
        model.base_model.embeddings.word_embeddings.weight.requires_grad = False  # as the build's teacher
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=True)
        forward = torch.compile(model, dynamic=True) if name == "torch.compile" else model
        labels = torch.zeros(32, dtype=torch.long)
        seconds = []
        for feed in feeds:
            started = time.perf_counter()
            logits = forward(**feed).logits
            torch.nn.functional.cross_entropy(logits, labels[: logits.shape[0]]).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            seconds.append(time.perf_counter() - started)
        out[name] = (sum(seconds[:3]), 1e3 * float(np.mean(seconds[10:])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=3000)
    parser.add_argument("--compile", action="store_true", help="also time the training step under torch.compile")
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    pool = load_dataset("packaged:tweets").texts
    texts = [pool[i] for i in np.random.default_rng(0).permutation(len(pool))[: args.texts]]
    console = Console()
    with tempfile.TemporaryDirectory(prefix="build-levers-") as tmp:
        rates = soft_target_rates(texts, Path(tmp))
    reference = rates[next(iter(rates))]
    table = Table(title=f"Soft targets on {len(texts)} packaged tweets (texts per second)")
    for column in ("how", "texts/s", "vs the first row"):
        table.add_column(column, justify="left" if column == "how" else "right")
    for name, value in rates.items():
        table.add_row(name, f"{value:.1f}", f"{value / reference:.2f}x")
    console.print(table)
    if args.compile:
        times = step_times(pool[:4000], args.steps)
        table = Table(title=f"Teacher training step, batch 32, {args.steps} steps")
        for column in ("how", "first 3 steps s", "steady ms/step"):
            table.add_column(column, justify="left" if column == "how" else "right")
        for name, (first, steady) in times.items():
            table.add_row(name, f"{first:.1f}", f"{steady:.0f}")
        console.print(table)


if __name__ == "__main__":
    main()
