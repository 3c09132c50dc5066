"""`make bench-ner-seeds`: how far apart two equally trained WNUT-16 taggers score on the test split.

Issue 14 asks for an NER student within 2 entity-F1 points of its teacher on WNUT-16's test split (230 sentences,
138 gold entities). This measures what such a gap means there. For each training seed, on the one split of seed 0
(the split `make build TASK=ner` uses):

- the teacher, fine-tuned by edgeft's fine-tune stage with the build's NER recipe and that seed;
- its student, distilled with `make build TASK=ner`'s recipe (the Makefile's NER_RECIPE, read from the Makefile:
  the profile's `ner_student`, its `--distill` overrides and the first N packaged tweets as soft-target text).

Per seed it prints the test entity F1 of both (PyTorch fp32), the share of test sentences the two tag identically,
the paired drop teacher - student with its bootstrap standard error, and the build's dev rule on the pair (drop +
error on the dev split within the profile's budget: the student ships, else the teacher's candidates race). Each
seed's teacher is also compared with seed 0's teacher: the gap between two teachers that differ only in their seed
is the floor any student's gap is read against. Rows are appended to `--results` (JSONL) and a rerun skips seeds
already there.

Run: `.venv/bin/python benchmarks/ner_seeds.py --seeds 0 1 2` (about 13 minutes a seed on a 2-core host); a variant
of the recipe: `--distill ffn=1536 --results F`.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from rich.console import Console
from rich.table import Table

from edgeft.data.tagged import TaggedDataset, load_tagged, split_tagged
from edgeft.data.text import Split
from edgeft.data.unlabelled import read_extra_text
from edgeft.pipeline import base_model_folder
from edgeft.profile import load_profile
from edgeft.student_recipe import Student
from edgeft.gating.student import student_check, tagged_rows
from edgeft.runtime.scoring import Examples, headline_of_sums
from edgeft.stages.distill import DistillSpec, distill
from edgeft.stages.finetune import FinetuneSpec, finetune
from edgeft.stages.select import paired_drop_se

ROOT = Path(__file__).resolve().parent.parent
TARGET = "x86-avx2"


def makefile_recipe(makefile: Path) -> tuple[dict[str, str], str, int]:
    """NER_RECIPE's `--distill k=v` overrides, extra-text source and count: the bench distils what the build does."""
    text = makefile.read_text(encoding="utf-8").replace("\\\n", " ")
    found = re.search(r"^NER_RECIPE\s*:=(.*)$", text, re.MULTILINE)
    if found is None:
        raise SystemExit(f"{makefile}: no NER_RECIPE line")
    words = shlex.split(found.group(1))
    value = {w: words[i + 1] for i, w in enumerate(words[:-1]) if w in ("--extra-text", "--max-extra-texts")}
    overrides = dict(words[i + 1].split("=", 1) for i, w in enumerate(words[:-1]) if w == "--distill")
    return overrides, value["--extra-text"], int(value["--max-extra-texts"])


def f1(rows: np.ndarray) -> float:
    return float(headline_of_sums("ner", rows.sum(0), len(rows)))


def same(a: list[list[str]], b: list[list[str]]) -> float:
    return float(np.mean([x == y for x, y in zip(a, b)]))


class Setup(NamedTuple):
    """What every seed shares: the data and its seed-0 split, the base model, the build's recipe and its extra text."""

    data: TaggedDataset
    split: Split
    test: Examples
    dev: Examples
    max_drop: float  # the profile's entity-F1 budget, which the build's dev rule for the student uses
    model_dir: Path
    max_length: int
    student: dict[str, Any]  # the profile's ner_student, before the recipe's overrides
    overrides: dict[str, str]
    source: str
    extra_texts: list[str]

    @classmethod
    def load(cls) -> Setup:
        data = load_tagged("packaged:wnut16", "utf-8")
        split = split_tagged(data, 0)
        overrides, source, count = makefile_recipe(ROOT / "Makefile")
        profile = load_profile(TARGET)
        return cls(data, split, Examples.of(data, split.test, "ner"), Examples.of(data, split.dev, "ner"),
                   profile.budgets.max_drop("ner"), base_model_folder(None)[0],
                   profile.input.max_length, profile.student_for("ner").model_dump(), overrides, source,
                   read_extra_text(source, count))


def run_seed(seed: int, setup: Setup, work: Path, reference: tuple[list, np.ndarray] | None,
             variant: dict[str, str]) -> tuple[dict[str, Any], tuple]:
    data, split, test, max_length, overrides = setup.data, setup.split, setup.test, setup.max_length, setup.overrides
    t0 = time.perf_counter()
    teacher = finetune(setup.model_dir, data, split, FinetuneSpec.for_task(
        "ner", seed=seed, device="cpu", max_length=max_length), work)
    finetune_s = time.perf_counter() - t0
    student_spec = Student(**{**setup.student, **overrides, **variant})
    t0 = time.perf_counter()
    student = distill(teacher, data, split, DistillSpec(student=student_spec, max_length=max_length, seed=seed,
                                                        device="cpu"), work, setup.extra_texts)
    distill_s = time.perf_counter() - t0
    labels = teacher.manifest["labels"]
    t_tags, t_rows = tagged_rows(teacher.path, test, labels, max_length)
    s_tags, s_rows = tagged_rows(student.path, test, labels, max_length)
    # The build's own decision on this pair: the dev rule that ships the student or falls back to the teacher.
    check = student_check(teacher.path, student.path, student.manifest, setup.dev, labels, setup.max_drop, max_length)
    row = {"seed": seed, "test_sentences": len(test), "test_entities": int(t_rows[:, 2].sum()),
           "teacher_dev_f1": teacher.manifest["metrics"].get("dev_entity_f1"),
           "student_dev_f1": student.manifest["metrics"].get("dev_entity_f1"),
           "teacher_test_f1": round(f1(t_rows), 4), "student_test_f1": round(f1(s_rows), 4),
           "drop": round(f1(t_rows) - f1(s_rows), 4), "drop_se": round(paired_drop_se("ner", t_rows, s_rows), 4),
           "student_same_as_teacher": round(same(t_tags, s_tags), 3),
           "dev_rule": None if check is None else {k: check[k] for k in ("drop", "drop_se", "scored_differently",
                                                                          "passed")},
           "finetune_s": round(finetune_s), "distill_s": round(distill_s),
           "recipe": {k: getattr(student_spec, k) for k in {**overrides, **variant}},
           "variant": {k: getattr(student_spec, k) for k in variant},
           "extra_text": {"source": setup.source, "texts": len(setup.extra_texts)}}
    if reference is not None:
        r_tags, r_rows = reference
        row.update(teacher_vs_seed0=round(f1(r_rows) - f1(t_rows), 4),
                   teacher_vs_seed0_se=round(paired_drop_se("ner", r_rows, t_rows), 4),
                   teacher_same_as_seed0=round(same(r_tags, t_tags), 3))
    return row, (t_tags, t_rows)


def dev_rule_cell(rule: dict[str, Any] | None) -> str:
    """Whether the build would ship this student: its dev drop plus the drop's paired standard error (rows written
    before the bench recorded it have none)."""
    if rule is None:
        return ""
    verdict = "passes" if rule["passed"] else "fails"
    return f"{verdict} ({rule['drop']:+.4f} + {rule['drop_se']:.4f})"


def summary(rows: list[dict[str, Any]]) -> Table:
    variant = ", ".join(f"{k}={v}" for k, v in (rows[0].get("variant") or {}).items()) if rows else ""
    table = Table(title="WNUT-16 test split: teachers and their students by training seed (PyTorch fp32)"
                  + (f", students with {variant}" if variant else ""))
    for column in ("seed", "teacher F1", "student F1", "drop ± se", "student = teacher", "seed-0 teacher - this",
                   "teacher = seed-0 teacher", "dev rule (drop + se)"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(str(r["seed"]), f"{r['teacher_test_f1']:.4f}", f"{r['student_test_f1']:.4f}",
                      f"{r['drop']:+.4f} ± {r['drop_se']:.4f}", f"{r['student_same_as_teacher']:.0%}",
                      f"{r['teacher_vs_seed0']:+.4f} ± {r['teacher_vs_seed0_se']:.4f}" if "teacher_vs_seed0" in r
                      else "", f"{r['teacher_same_as_seed0']:.0%}" if "teacher_same_as_seed0" in r else "",
                      dev_rule_cell(r.get("dev_rule")))
    if len(rows) > 1:
        def spread(key: str) -> str:
            values = [r[key] for r in rows]
            return f"{statistics.mean(values):.4f} (sd {statistics.stdev(values):.4f})"
        table.add_row("mean", spread("teacher_test_f1"), spread("student_test_f1"), spread("drop"), "", "", "", "")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", type=Path, default=Path(".edgeft/work"), help="stage cache (the build's by default)")
    parser.add_argument("--results", type=Path, default=Path("bench-results/ner-seeds.jsonl"))
    parser.add_argument("--distill", action="append", default=[], metavar="KEY=VALUE",
                        help="a student field on top of the build's recipe, to measure a variant (e.g. ffn=1536); "
                             "use its own --results file")
    args = parser.parse_args()
    variant = dict(item.split("=", 1) for item in args.distill)
    if 0 not in args.seeds:
        args.seeds = [0, *args.seeds]  # every teacher is read against seed 0's, the one `make build TASK=ner` ships
    args.results.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if args.results.is_file():
        done = {r["seed"]: r for r in map(json.loads, args.results.read_text(encoding="utf-8").splitlines())}
        asked = {k: str(v) for k, v in Student(**{"layers": 1, **variant}).model_dump().items() if k in variant}
        if any({k: str(v) for k, v in (r.get("variant") or {}).items()} != asked for r in done.values()):
            raise SystemExit(f"{args.results} holds rows of another recipe variant; give this one its own --results")
    rows, reference, setup = [], None, None
    for seed in sorted(args.seeds):
        if seed in done and (seed != 0 or all(s in done for s in args.seeds)):
            rows.append(done[seed])
            continue
        setup = setup or Setup.load()
        row, tags = run_seed(seed, setup, args.work, reference, variant)
        reference = tags if seed == 0 else reference
        rows.append(row)
        if seed not in done:
            with args.results.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
    Console().print(summary(rows))


if __name__ == "__main__":
    main()
