"""Accuracy and latency of an fp32 PyTorch model (the teacher, or the student before export) on the same held-out
texts and input policy as the bundle."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edgeft.profile import InputPolicy
from edgeft.runtime.bench import percentiles
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
from edgeft.runtime.scoring import Examples, metrics_of, predict
from edgeft.stages.torch_model import load_classifier, torch_modules, torch_runner

def fp32_report(name: str, hf_dir: Path, examples: Examples, labels: list[str], policy: InputPolicy,
                threads: int, latency_texts: list[str], warmup: int, runs: int) -> dict[str, Any]:
    torch, _ = torch_modules()
    model = load_classifier(hf_dir, task=examples.task).eval()
    encode = TextEncoder(hf_dir / "tokenizer.json", policy.max_length, policy.truncation, TOKENIZER_OUTPUTS)
    predicted = predict(torch_runner(model), encode, examples, labels, batch_size=64)
    metrics = metrics_of(examples, predicted, labels)
    # Same thread count and batch-1 protocol as the bundle's own bench, so the two columns compare.
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        feeds = [{k: torch.from_numpy(v) for k, v in encode([t]).items()} for t in latency_texts]
        samples = []
        with torch.inference_mode():
            for i in range(warmup + runs):
                t0 = time.perf_counter()
                model(**feeds[i % len(feeds)])
                if i >= warmup:
                    samples.append((time.perf_counter() - t0) * 1e3)
    finally:
        torch.set_num_threads(previous)
    size_mb = sum(p.stat().st_size for p in hf_dir.glob("*.safetensors")) / 2**20
    # `predicted` (labels or tags per test example) feeds the floor check against trivial baselines (gating.floor).
    return {"name": name, "metrics": metrics, "predicted": predicted, "latency_ms": {k: v for k, v in percentiles(samples).items() if k != "n"},
            "size_mb": size_mb, "runtime": f"pytorch {torch.__version__} fp32"}
