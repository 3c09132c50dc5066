"""`make bench-student-seeds`: how often the default student passes the build's dev rule, over batch orders.

The build distils one student (seed 0) and ships it only if it holds the dev rule: its dev accuracy's drop to the
fp32 teacher plus the drop's paired standard error at most the profile's budget (`gating.student.student_check`).
The student's dev accuracy moves with the batch order, and a float-level difference on another CPU moves it as much
as another seed does, so the share of seeds that pass is how often the 2-layer student should be expected to ship
elsewhere (issue 16: where it fails, a slower deeper retry or the teacher ships).

For the build's teacher (edgeft's fine-tune stage with the build's recipe and seed 0, cached like the build's) and
each distillation seed, it distils the target profile's student, runs the build's dev rule and scores the student on
the test split in PyTorch fp32, then as the build would ship it (the profile's first candidate, ONNX Runtime, one
text per call, dev and test): a student that passes the dev rule can still fail the build's test budget. The seed
changes the batch order only (the student is cut from the teacher).
`--distill KEY=VALUE` measures a variant of the recipe (e.g. `augment_views=1`); give each variant its own
`--results` file. Rows are appended to that JSONL file and a rerun skips seeds already there.

Run: `.venv/bin/python benchmarks/student_seeds.py --seeds 0 1 2 3` (about 3 minutes a seed on a 2-core host, after
the teacher); `--data packaged:bbc` for BBC News (the student with its later windows, `--distill layers=3` for the
build's retry).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from edgeft.data.text import load_dataset, split_dataset
from edgeft.gating.student import student_check
from edgeft.pipeline import base_model_folder
from edgeft.profile import load_profile
from edgeft.student_recipe import Student
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
from edgeft.runtime.scoring import Examples
from edgeft.stages.distill import DistillSpec, distill, test_metrics
from edgeft.stages.finetune import FinetuneSpec, finetune
from edgeft.stages.student import prepare_student
from edgeft.stages.torch_model import load_classifier


def variant_of(pairs: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs as Student fields, typed by the model (so `epochs=4` and `epochs=04` are one variant)."""
    raw = dict(pair.split("=", 1) for pair in pairs)
    typed = Student(**{"layers": 1, **raw}).model_dump()
    return {key: typed[key] for key in raw}


def test_accuracy(folder: Path, data, test: list[int], names: list[str], max_length: int) -> float:
    encode = TextEncoder(folder / "tokenizer.json", max_length, "right", TOKENIZER_OUTPUTS)
    return test_metrics(load_classifier(folder, task="classification"), encode, data, test, names, False)["accuracy"]


def shipped_accuracy(student, data, split, profile, work: Path) -> dict[str, Any]:
    """The student as the build ships it when the race takes the profile's first candidate (on x86-avx2 the usual
    winner: the int8 candidates tie on speed and the preference order decides): exported, quantized, scored by ONNX
    Runtime one text per call on dev and test. The race itself is not run."""
    from edgeft.runtime.scoring import score
    from edgeft.runtime.sessions import open_session
    from edgeft.stages.export import export
    from edgeft.stages.quantize import quantize
    from edgeft.stages.vocabulary import pieces_of

    candidate = profile.quantization.candidates[0]
    if candidate.calibration is not None or candidate.accuracy_control:
        raise SystemExit(f"{profile.name}'s first candidate '{candidate.name}' needs calibration: not measured here")
    dev_texts = [data.texts[i] for i in split.dev]
    exported = export(student, profile.runtime, profile.input, dev_texts[:32], work)
    pieces = (pieces_of(exported.path / "tokenizer.json", [data.texts[i] for i in split.train])
              if candidate.vocabulary == "train" else None)
    made = quantize(exported, candidate, profile, None, [], work, None, pieces)
    session = open_session(profile.runtime, made.path / made.manifest["model_file"], 2, TOKENIZER_OUTPUTS)
    encode = TextEncoder(made.path / "tokenizer.json", profile.input.max_length, profile.input.truncation,
                         session.input_names)
    figures = {"shipped_candidate": candidate.name}
    for part, rows in (("dev", split.dev), ("test", split.test)):
        scored = score(session.run, encode, Examples.of(data, rows, "classification"), student.manifest["labels"],
                       batch_size=1)
        figures[f"shipped_{part}"] = round(scored["accuracy"], 4)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--data", default="packaged:tweets")
    parser.add_argument("--target", default="x86-avx2")
    parser.add_argument("--distill", action="append", default=[], metavar="KEY=VALUE",
                        help="a student field on top of the profile's recipe; use its own --results file")
    parser.add_argument("--work", type=Path, default=Path(".edgeft/work"), help="stage cache (the build's by default)")
    parser.add_argument("--results", type=Path, default=Path("bench-results/student-seeds.jsonl"))
    args = parser.parse_args()
    variant = variant_of(args.distill)
    done: dict[int, dict[str, Any]] = {}
    if args.results.is_file():
        rows = [json.loads(line) for line in args.results.read_text(encoding="utf-8").splitlines()]
        if any(r["variant"] != variant or r["data"] != args.data or r["target"] != args.target for r in rows):
            raise SystemExit(f"{args.results} holds rows of another variant, data set or target; give this run its "
                             f"own --results")
        done = {r["seed"]: r for r in rows}
    args.results.parent.mkdir(parents=True, exist_ok=True)

    profile = load_profile(args.target)
    max_length, budget = profile.input.max_length, profile.budgets.max_drop("classification")
    data = load_dataset(args.data)
    split = split_dataset(data, 0)
    model_dir = base_model_folder(None)[0]
    teacher = finetune(model_dir, data, split, FinetuneSpec.for_task("classification", seed=0, device="cpu",
                                                                     max_length=max_length), args.work)
    names = teacher.manifest["labels"]
    base = profile.student_for("classification").model_dump()
    if "layers" in variant:  # the build's retry is its own try: another depth, no retry after it (pipeline.py)
        base["retry_layers"] = None
    recipe = prepare_student(Student(**{**base, **variant}), teacher.path, args.work)
    dev = Examples.of(data, split.dev, "classification")
    teacher_test = test_accuracy(teacher.path, data, split.test, names, max_length)
    rows = []
    for seed in sorted(args.seeds):
        if seed in done:
            rows.append(done[seed])
            continue
        t0 = time.perf_counter()
        student = distill(teacher, data, split, DistillSpec(student=recipe, max_length=max_length, seed=seed,
                                                            device="cpu"), args.work)
        seconds = time.perf_counter() - t0
        check = student_check(teacher.path, student.path, student.manifest, dev, names, budget, max_length)
        metrics = student.manifest["metrics"]
        row = {"seed": seed, "data": args.data, "target": args.target, "variant": variant,
               "teacher_dev": round(check["teacher_dev_accuracy"], 4),
               "student_dev": round(check["student_dev_accuracy"], 4),
               "drop": check["drop"], "drop_se": check["drop_se"], "scored_differently": check["scored_differently"],
               "passed": check["passed"], "margin": round(budget - check["drop"] - check["drop_se"], 4),
               "dev_by_epoch": [round(h["dev_accuracy"], 4) for h in metrics["history"]],
               "teacher_test": round(teacher_test, 4),
               "student_test": round(test_accuracy(student.path, data, split.test, names, max_length), 4),
               "steps": metrics["steps_run"],
               "augmented": student.manifest.get("augmented", 0), "windows": student.manifest.get("windows", 0),
               "train_s": metrics["train_seconds"], "distill_s": round(seconds),
               **shipped_accuracy(student, data, split, profile, args.work)}
        rows.append(row)
        with args.results.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
    Console(width=150).print(summary(rows, variant, args.data))


def summary(rows: list[dict[str, Any]], variant: dict[str, Any], data: str) -> Table:
    name = ", ".join(f"{k}={v}" for k, v in variant.items()) or "the profile's recipe"
    table = Table(title=f"{data}: the student by distillation seed ({name}); dev rule: drop + error <= budget")
    for column in ("seed", "dev: teacher / student", "drop ± error", "differ", "rule", "margin", "test: teacher / "
                   "student (fp32)", "shipped: candidate, test (drop)", "train s"):
        table.add_column(column, justify="right")
    for r in rows:
        # Rows written before the bench scored the shipped candidate have no shipped figures.
        shipped = (f"{r['shipped_candidate']}, {r['shipped_test']:.4f} ({r['teacher_test'] - r['shipped_test']:+.4f})"
                   if "shipped_test" in r else "-")
        table.add_row(str(r["seed"]), f"{r['teacher_dev']:.4f} / {r['student_dev']:.4f}",
                      f"{r['drop']:+.4f} ± {r['drop_se']:.4f}", str(r["scored_differently"]),
                      "passes" if r["passed"] else "fails", f"{r['margin']:+.4f}",
                      f"{r['teacher_test']:.4f} / {r['student_test']:.4f}", shipped, f"{r['train_s']:.0f}")
    if len(rows) > 1:
        passes = sum(r["passed"] for r in rows)
        shipped = [r["teacher_test"] - r["shipped_test"] for r in rows if "shipped_test" in r]
        table.add_row("all", f"mean {statistics.mean(r['student_dev'] for r in rows):.4f}",
                      f"mean {statistics.mean(r['drop'] for r in rows):+.4f}", "", f"{passes} of {len(rows)}", "",
                      f"mean {statistics.mean(r['student_test'] for r in rows):.4f}",
                      f"mean drop {statistics.mean(shipped):+.4f}" if shipped else "", "")
    return table


if __name__ == "__main__":
    main()
