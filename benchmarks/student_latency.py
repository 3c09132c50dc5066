"""Latency of candidate student shapes, before any training: the runtime call does not depend on the weights' values.

Makes students from the packaged all-MiniLM-L6-v2 (kept layers, pruned feed-forward width), exports each with
Optimum, quantizes it two ways of the x86-avx2 profile (dynamic int8 per-channel with the avx2 preset's u8 weights,
which is also the peer chain of `make bench-peers`, and with s8 7-bit weights), and times all of them interleaved on
the same pre-tokenized tweets (batch 1, 1 thread). This chose the default student's shape
(docs/experiments/distillation.md). Run: `.venv/bin/python benchmarks/student_latency.py`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgeft.data.assets import DEFAULT_MODEL, packaged_model
from edgeft.backends import onnxruntime as ort_backend
from edgeft.data.text import load_dataset
from edgeft.profile import Candidate, Isa, Scheme
from edgeft.student_recipe import Student
from edgeft.runtime.bench import interleaved_latency, percentiles
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
from edgeft.runtime.sessions import Runtime, open_session
from edgeft.stages.finetune import save_model
from edgeft.stages.student import make_student
from edgeft.stages.torch_model import load_classifier

SHAPES = {"teacher: 6 layers, ffn 1536": None, "3 layers": Student(layers=3), "2 layers": Student(layers=2),
          "3 layers, ffn 1024": Student(layers=3, ffn=1024), "3 layers, ffn 768": Student(layers=3, ffn=768),
          "2 layers, ffn 768": Student(layers=2, ffn=768)}
WEIGHTS = {"u8 (avx2 preset)": Candidate(name="dynamic-int8", scheme=Scheme.DYNAMIC_INT8, per_channel=True),
           "s8 7-bit": Candidate(name="dynamic-int8-s8", scheme=Scheme.DYNAMIC_INT8, per_channel=True,
                                 weight_type="s8", reduce_range=True)}


def main() -> None:
    base = packaged_model(DEFAULT_MODEL).path
    teacher = load_classifier(base, ["a", "b", "c"])
    files, root = {}, Path(tempfile.mkdtemp(prefix="student-latency-"))
    for name, shape in SHAPES.items():
        folder = root / f"m{len(files)}"
        model = teacher if shape is None else make_student(teacher, shape, ["a", "b", "c"], "classification")[0]
        save_model(model, base, folder / "hf")
        ort_backend.export(folder / "hf", folder / "onnx")
        for weights, int8 in WEIGHTS.items():
            files[f"{name}, {weights}"] = ort_backend.quantize(folder / "onnx", folder / int8.name, int8, Isa.AVX2,
                                                               None)
    texts = load_dataset("packaged:tweets").texts[:300]
    encode = TextEncoder(base / "tokenizer.json", 128, "right", TOKENIZER_OUTPUTS)
    samples = interleaved_latency({k: open_session(Runtime.ONNXRUNTIME, v, 1, TOKENIZER_OUTPUTS) for k, v in files.items()},
                                  [encode([t]) for t in texts], rounds=3, warmup=30)
    teacher_p50 = percentiles(samples[next(iter(files))])["p50"]
    table = Table(title="int8 students, ONNX Runtime, batch 1, 1 thread, 300 tweets x 3 rounds, interleaved")
    for col in ("shape", "p50 ms", "p90 ms", "speed-up vs u8 int8 teacher", "size MiB"):
        table.add_column(col, justify="left" if col == "shape" else "right")
    for name, runs in samples.items():
        p = percentiles(runs)
        table.add_row(name, f"{p['p50']:.2f}", f"{p['p90']:.2f}", f"{teacher_p50 / p['p50']:.2f}x",
                      f"{files[name].stat().st_size / 2**20:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
