"""Would a moving average of the NER student's weights ship where the student itself does not? (issue 14)

The classification students are scored on dev, and ship, as an exponential moving average of their trained weights
(`Student.ema_decay`, docs/experiments/distillation.md section 9); the WNUT-16 student of `make build TASK=ner` is
not, and its dev entity F1 swings by 5 to 7 points from epoch to epoch. One distillation per training seed measures
both: the build's recipe (the Makefile's NER_RECIPE, as `make bench-ner-seeds` reads it) with the average switched
on, and before every dev evaluation the trained weights are scored too. The trained weights follow exactly the
trajectory the build's student does (the average only reads them), so both columns come from the same run:

- each epoch: dev and test entity F1 of the trained weights and of their average, the share of sentences each tags
  as the teacher does, and the build's dev rule (drop + paired standard error <= the profile's budget);
- each sequence's kept epoch, found as the training loop finds it (best dev F1, stopped after `patience` worse
  epochs), and what it scores on test.

Run: `.venv/bin/python benchmarks/ner_ema_probe.py --seeds 0 1 2 --results F` (about 20 minutes a seed on a 2-core
host from an empty cache: the teacher's fine-tune, its soft targets, up to 20 student epochs). Findings and rows:
docs/experiments/distillation.md section 6d, ner-ema-probe.jsonl (not adopted: no closer, and lower test F1).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ner_seeds import ROOT, Setup, f1, makefile_recipe, same  # noqa: E402

import edgeft.stages.distill as distill_stage  # noqa: E402
import edgeft.stages.training as training  # noqa: E402
from edgeft.gating.student import tagged_rows  # noqa: E402
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder  # noqa: E402
from edgeft.runtime.scoring import example_stats  # noqa: E402
from edgeft.stages.distill import DistillSpec, distill  # noqa: E402
from edgeft.stages.finetune import FinetuneSpec, finetune  # noqa: E402
from edgeft.stages.select import paired_drop_se  # noqa: E402
from edgeft.stages.torch_model import torch_tags  # noqa: E402
from edgeft.student_recipe import Student  # noqa: E402


class Enough(Exception):
    """Both sequences have stopped as the training loop would have: the run need not go on."""


def kept_epoch(dev_f1: list[float], patience: int) -> tuple[int, bool]:
    """(index of the epoch the training loop keeps, whether it would have stopped by the last one): the best dev
    score, earlier of ties, stopping after `patience` epochs that score worse than the best."""
    best, best_i, stale = -math.inf, 0, 0
    for i, score in enumerate(dev_f1):
        if score > best:
            best, best_i, stale = score, i, 0
        elif score < best:
            stale += 1
            if stale >= patience:
                return best_i, True
    return best_i, False


def run_seed(seed: int, setup: Setup, work: Path, decay: float, patience: int) -> dict[str, Any]:
    max_length = setup.max_length
    teacher = finetune(setup.model_dir, setup.data, setup.split, FinetuneSpec.for_task(
        "ner", seed=seed, device="cpu", max_length=max_length), work)
    labels = teacher.manifest["labels"]
    reference = {name: tagged_rows(teacher.path, examples, labels, max_length)
                 for name, examples in (("dev", setup.dev), ("test", setup.test))}
    encode = TextEncoder(teacher.path / "tokenizer.json", max_length, "right", TOKENIZER_OUTPUTS)
    log: dict[str, list[dict[str, float]]] = {"trained": [], "average": []}
    held: dict[str, Any] = {}

    def score(kind: str) -> None:
        row = {}
        for name, examples in (("dev", setup.dev), ("test", setup.test)):
            tags = torch_tags(held["model"], encode, examples.words, labels)
            rows, (t_tags, t_rows) = example_stats(examples, tags), reference[name]
            row |= {f"{name}_f1": round(f1(rows), 4), f"{name}_same": round(same(t_tags, tags), 3),
                    f"{name}_drop": round(f1(t_rows) - f1(rows), 4),
                    f"{name}_se": round(paired_drop_se("ner", t_rows, rows), 4)}
        row["dev_rule_passes"] = row["dev_drop"] + row["dev_se"] <= setup.max_drop
        log[kind].append(row)
        Console().print(f"    epoch {len(log[kind])} {kind}: " + " ".join(f"{k} {v}" for k, v in row.items()))

    original_train, original_swap = distill_stage.train, training.WeightAverage.swapped_in

    def train(model, *args, **kwargs):
        held["model"] = model
        return original_train(model, *args, **kwargs)

    @contextlib.contextmanager
    def swapped_in(self):
        score("trained")  # the loop has just put the model in eval mode, trained weights in place
        with original_swap(self):
            score("average")
            yield
        stopped = [kept_epoch([r["dev_f1"] for r in rows], patience)[1] for rows in log.values()]
        if all(stopped):
            raise Enough

    # The build's recipe with the average on; patience is emulated above on both sequences, so the loop runs on.
    overrides, _, _ = makefile_recipe(ROOT / "Makefile")
    student = Student(**{**setup.student, **overrides, "ema_decay": decay, "patience": 999})
    distill_stage.train, training.WeightAverage.swapped_in = train, swapped_in
    try:
        distill(teacher, setup.data, setup.split, DistillSpec(student=student, max_length=max_length, seed=seed,
                                                             device="cpu"), work, setup.extra_texts)
    except Enough:
        pass
    finally:
        distill_stage.train, training.WeightAverage.swapped_in = original_train, original_swap
    out: dict[str, Any] = {"seed": seed, "decay": decay, "patience": patience,
                           "teacher_dev_f1": round(f1(reference["dev"][1]), 4),
                           "teacher_test_f1": round(f1(reference["test"][1]), 4), "epochs": log}
    for kind, rows in log.items():
        out[f"{kind}_kept"] = kept_epoch([r["dev_f1"] for r in rows], patience)[0] + 1
    return out


def summary(results: list[dict[str, Any]]) -> Table:
    table = Table(title="WNUT-16: the NER student's trained weights against their moving average, kept epoch")
    for column in ("seed", "teacher dev / test F1", "weights", "kept epoch", "dev F1", "dev rule (drop + se)",
                   "test F1", "test drop ± se", "test = teacher"):
        table.add_column(column, justify="right")
    for r in results:
        for kind in ("trained", "average"):
            row = r["epochs"][kind][r[f"{kind}_kept"] - 1]
            rule = "passes" if row["dev_rule_passes"] else "fails"
            table.add_row(str(r["seed"]), f"{r['teacher_dev_f1']:.4f} / {r['teacher_test_f1']:.4f}", kind,
                          str(r[f"{kind}_kept"]), f"{row['dev_f1']:.4f}",
                          f"{rule} ({row['dev_drop']:+.4f} + {row['dev_se']:.4f})", f"{row['test_f1']:.4f}",
                          f"{row['test_drop']:+.4f} ± {row['test_se']:.4f}", f"{row['test_same']:.0%}")
    for kind in ("trained", "average"):
        drops = [r["epochs"][kind][r[f"{kind}_kept"] - 1]["test_drop"] for r in results]
        table.add_row("mean", "", kind, "", "", "", "", f"{np.mean(drops):+.4f}", "")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--decay", type=float, default=0.998, help="the classification students' ema_decay")
    parser.add_argument("--patience", type=int, default=3, help="NER_RECIPE's patience, in epochs")
    parser.add_argument("--work", type=Path, default=Path(".edgeft/work"), help="stage cache (the build's by default)")
    parser.add_argument("--results", type=Path, default=Path("bench-results/ner-ema-probe.jsonl"))
    args = parser.parse_args()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if args.results.is_file():
        done = {r["seed"]: r for r in map(json.loads, args.results.read_text(encoding="utf-8").splitlines())}
    setup, results = None, []
    for seed in args.seeds:
        if seed not in done:
            setup = setup or Setup.load()
            done[seed] = run_seed(seed, setup, args.work, args.decay, args.patience)
            with args.results.open("a", encoding="utf-8") as f:
                f.write(json.dumps(done[seed]) + "\n")
        results.append(done[seed])
    Console().print(summary(results))


if __name__ == "__main__":
    main()
