"""The experiment behind the default distillation recipe (docs/experiments/distillation.md).

Distils the default build's fine-tuned teacher into students of different shapes and losses on the packaged tweets,
each on the same seeded subset, and prints the dev accuracy (the split used for early stopping, never the test
split) and the training time of each. Run: `.venv/bin/python benchmarks/distill_experiment.py [--samples N]`.
The teacher is the default `edgeft build` fine-tune (cached in .edgeft/work after `make build`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgeft.data.assets import DEFAULT_DATA, DEFAULT_MODEL, packaged_model
from edgeft.data.text import load_dataset, split_dataset
from edgeft.student_recipe import Student
from edgeft.stages.distill import DistillSpec, distill
from edgeft.stages.finetune import FinetuneSpec, finetune

VARIANTS: dict[str, dict] = {
    "L2 spread [2,5] ffn768": {"layers": 2, "ffn": 768},
    "L2 spread [2,5] ffn768, dropout 0.1, embeddings trained": {"layers": 2, "ffn": 768, "dropout": 0.1,
                                                               "freeze_embeddings": False},
    "L2 bottom [0,1] ffn768": {"layers": (0, 1), "ffn": 768},
    "L2 ends [0,5] ffn768": {"layers": (0, 5), "ffn": 768},
    "L2 spread ffn768 + hidden-state loss": {"layers": 2, "ffn": 768, "hidden_weight": 1.0},
    "L2 spread ffn768 soft targets only (alpha 1)": {"layers": 2, "ffn": 768, "alpha": 1.0},
    "L2 spread ffn768 hard labels only (alpha 0)": {"layers": 2, "ffn": 768, "alpha": 0.0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=8000, help="training texts per variant (0: the whole train split)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="run these variants only")
    parser.add_argument("--extra", type=str, default="", help="JSON dict of extra variants")
    parser.add_argument("--out", type=Path, default=Path("docs/experiments/distillation.json"))
    args = parser.parse_args()
    variants = dict(VARIANTS, **(json.loads(args.extra) if args.extra else {}))
    if args.only:
        variants = {k: variants[k] for k in args.only}

    data = load_dataset(DEFAULT_DATA, "text", "label", "utf-8")
    split = split_dataset(data, 0)
    work = Path(".edgeft/work")
    teacher = finetune(packaged_model(DEFAULT_MODEL).path, data, split, FinetuneSpec(device="cpu"), work)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for name, fields in variants.items():
        student = Student(**{"epochs": args.epochs, "max_train_samples": args.samples or None, **fields})
        t0 = time.perf_counter()
        # The build's own stage cache: the teacher's outputs are shared, and a variant equal to a profile's recipe
        # is the very student `edgeft build` made.
        art = distill(teacher, data, split, DistillSpec(student=student, device="cpu"), work)
        m = art.manifest["metrics"]
        results[name] = {"student": student.model_dump(mode="json"), "dev_accuracy": m["dev_accuracy"],
                         "teacher_dev_accuracy": m["teacher_dev_accuracy"], "history": m["history"],
                         "soft_targets": art.manifest.get("soft_targets", "fp32"),
                         "soft_targets_dev_accuracy": m.get("soft_targets_dev_accuracy"),
                         "train_seconds": m["train_seconds"], "samples_per_s": m["train_samples_per_s"],
                         "wall_seconds": round(time.perf_counter() - t0, 1)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    table = Table(title="distillation variants (dev split, tweets)")
    for col in ("variant", "samples", "epochs", "dev acc", "teacher dev", "train s", "samples/s"):
        table.add_column(col)
    for name, r in results.items():
        table.add_row(name, str(r["student"]["max_train_samples"]), str(r["student"]["epochs"]),
                      f"{r['dev_accuracy']:.4f}", f"{r['teacher_dev_accuracy']:.4f}", str(r["train_seconds"]),
                      str(r["samples_per_s"]))
    Console().print(table)


if __name__ == "__main__":
    main()
