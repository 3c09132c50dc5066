"""`make bench-recipes`: does edgeft's default recipe learn on the data users bring, against plain `Trainer` defaults?

Data sets (each drawn once per seed from the packaged corpora, then split by edgeft's own `split_dataset` with that
seed, so both sides train, stop and are tested on exactly the same texts):
- `tweets-N` (N = 200, 600, 2000, 8000): N tweets drawn at random (3 classes, majority ~43 %);
- `bbc-N` (N = 200, 600, 2000): N BBC News articles (5 topics; the corpus ends at 2,125);
- `tweets-imb-600`: 600 tweets, 65 % negative, 20 % neutral, 15 % positive (majority >= 60 %).

Sides, per data set and seed:
- `edgeft`: `edgeft build --target x86-avx2` as a user runs it (a subprocess, its own work folder): the shipped
  bundle's test accuracy / macro-F1 on ONNX Runtime from its report.json, wall-clock of the whole build. A build that
  exits 1 on the floor (no better than the majority class) counts with its bundle's figures and is flagged.
- `trainer`: `transformers.Trainer` with its defaults (3 epochs, batch 8, lr 5e-5, linear decay, dropout as the
  model's config) on the full train split, scored on the test split in PyTorch fp32; wall-clock of training.
- `majority`: the majority class of the train split, scored on the test split.

`--stage finetune` replaces the `edgeft` side by edgeft's fine-tune stage alone under named recipe variants (the
experiment that chose the defaults; docs/experiments/recipes.md): the teacher's test figures in PyTorch fp32.

Rows are appended to a JSONL file as they finish (`--results`), and a rerun skips rows already there, so a long run
can be stopped and resumed. The summary table gives, per data set and side, mean and 95 % t-interval over the seeds.
"""

from __future__ import annotations

import argparse
import collections
import csv
import hashlib
import itertools
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeft.data.text import TextDataset, load_dataset, split_dataset
from edgeft.metrics import accuracy, macro_f1
from edgeft.runtime.bench import host_description

ROOT = Path(__file__).resolve().parent.parent
SETS = ["tweets-200", "tweets-600", "tweets-imb-600", "bbc-200", "bbc-600", "tweets-2000", "bbc-2000", "tweets-8000"]
# Every TrainingArguments default as FinetuneSpec fields: 3 epochs of batch 8, lr 5e-5, no warm-up, no weight decay,
# trainable embeddings, dropout 0.1, no early stopping.
TRAINER_SETTINGS: dict[str, Any] = {"batch_size": 8, "learning_rate": 5e-5, "epochs": 3, "min_steps": 0, "patience": 3,
                                    "patience_steps": 0, "warmup_ratio": 0.0, "weight_decay": 0.0,
                                    "freeze_embeddings": False, "dropout": 0.1}
# Named fine-tune variants for --stage finetune: FinetuneSpec fields on top of the task default.
VARIANTS: dict[str, dict[str, Any]] = {
    # The recipe before the adaptive one: 2 epochs of batch 32, patience one epoch, whatever the data size.
    "fixed-epochs": {"min_steps": 0, "patience_steps": 0, "batch_size": 32},
    "default": {},
    # The head's pooling (stages/pooling.py): the mean over real tokens that the packaged sentence-embedding model
    # was trained with, against BERT's [CLS] pooler (the default).
    "default+mean-pool": {"pooling": "mean"},
    "default+unfrozen": {"freeze_embeddings": False, "dropout": 0.1},
    "default+macro-f1": {"select_metric": "macro_f1"},
    "default+class-weights": {"class_weights": "balanced", "select_metric": "macro_f1"},
    # Early stopping that cannot end a run before the 300-step floor (patience as long as the floor).
    "default+patience300": {"patience_steps": 300},
    # Trainer's step count at 2,000 texts (1,700 training texts: 638 steps of batch 8): twice the floor, and early
    # stopping that waits as long as the floor.
    "default+steps600": {"min_steps": 600, "patience_steps": 300},
    # Trainer's batch (twice the steps per epoch), the rate unscaled.
    "default+batch8": {"batch_size": 8, "learning_rate": 5e-5},
    # Every TrainingArguments default in edgeft's loop; only the best of the 3 epochs on dev is kept.
    "trainer-like": TRAINER_SETTINGS,
    # Batches drawn at random as Trainer draws them, not grouped by length (experiment only: the loop's batcher is
    # swapped for the run).
    "default+random-batches": {},
    # The last epoch's weights, as Trainer keeps them, instead of the best epoch on dev (experiment only: the dev
    # score the loop sees rises every epoch, so it neither stops early nor goes back to an earlier epoch).
    "default+last": {},
    # Trainer's settings, batches and kept epoch: only the random streams (batch order, dropout masks) differ.
    "trainer-like+last": TRAINER_SETTINGS,
}
# Any variant + "+reseeded" (or "+reseeded2", ...): a control for the random streams, the same draw and split with
# training seeded by seed + RESEED (x 2, ...); the sides `trainer-reseeded[2]` do the same for Trainer itself. On a run
# that early stopping did not end, `default+patience300+reseeded` is `default+reseeded` to the text.
RESEED = 100
RESEEDED = re.compile(r"[+-]reseeded(\d*)$")
RANDOM_BATCHES = {"default+random-batches", "trainer-like+last"}
LAST_EPOCH = {"default+last", "trainer-like+last"}
IMBALANCED = {"negative": 0.65, "neutral": 0.20, "positive": 0.15}


def reseeding(variant: str) -> tuple[str, int]:
    """The recipe a variant names and what it adds to the draw's seed to seed its training: 0, RESEED
    (`+reseeded`), 2 x RESEED (`+reseeded2`)."""
    found = RESEEDED.search(variant)
    if found is None:
        return variant, 0
    return variant[:found.start()], RESEED * int(found.group(1) or 1)


def random_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Trainer's batching: one random permutation cut into batches, lengths mixed."""
    order = rng.permutation(len(lengths))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def keep_last_epoch(train: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """The training loop, shown a dev score that rises every epoch: it keeps the last epoch and never stops early.
    The real dev scores go into the history as `real_<metric>`."""

    def wrapped(model, params, lengths, schedule, device, batch_loss, dev_score, label, *args, **kwargs):
        epochs = itertools.count(1)

        def rising() -> dict[str, float]:
            scores = dev_score()
            scores = scores if isinstance(scores, dict) else {schedule.metric: scores}
            return {**scores, f"real_{schedule.metric}": scores[schedule.metric], schedule.metric: next(epochs)}

        return train(model, params, lengths, schedule, device, batch_loss, rising, label, *args, **kwargs)

    return wrapped


def draw(name: str, seed: int) -> TextDataset:
    """The data set `name` for this seed: a random draw from a packaged corpus (class mix as the corpus has it, or
    the fixed imbalanced mix)."""
    corpus, _, size = name.rpartition("-")
    source = "packaged:bbc" if corpus.startswith("bbc") else "packaged:tweets"
    full = load_dataset(source)
    rng = np.random.default_rng(1000 + seed)
    n = int(size)
    if corpus.endswith("imb"):
        by_label = collections.defaultdict(list)
        for i, label in enumerate(full.labels):
            by_label[label].append(i)
        chosen = []
        for label, share in IMBALANCED.items():
            chosen += rng.choice(by_label[label], round(n * share), replace=False).tolist()
    else:
        chosen = rng.choice(len(full.texts), min(n, len(full.texts)), replace=False).tolist()
    chosen.sort()
    texts, labels = [full.texts[i] for i in chosen], [full.labels[i] for i in chosen]
    digest = hashlib.sha256(json.dumps([texts, labels]).encode()).hexdigest()
    return TextDataset(texts, labels, f"{name}/seed{seed}", digest, {})


def write_csv(ds: TextDataset, path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(zip(ds.texts, ds.labels))


def majority_row(ds: TextDataset, seed: int) -> dict[str, Any]:
    split = split_dataset(ds, seed)
    labels = ds.label_names
    top = collections.Counter(ds.labels[i] for i in split.train).most_common(1)[0][0]
    gold = [labels.index(ds.labels[i]) for i in split.test]
    pred = [labels.index(top)] * len(gold)
    return {"accuracy": accuracy(gold, pred), "macro_f1": macro_f1(gold, pred, len(labels)), "seconds": 0.0,
            "train": len(split.train), "dev": len(split.dev), "test": len(split.test)}


def edgeft_row(ds: TextDataset, seed: int, work: Path) -> dict[str, Any]:
    data = work / "data.csv"
    write_csv(ds, data)
    bundle = work / "bundle"
    command = [str(Path(sys.executable).parent / "edgeft"), "build", "--target", "x86-avx2", "--data", str(data),
               "--seed", str(seed), "--out", str(bundle), "--work-dir", str(work / "cache")]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1) or not (bundle / "report.json").is_file():
        raise RuntimeError(f"edgeft build exited {done.returncode}: {done.stderr[-2000:]}")
    report = json.loads((bundle / "report.json").read_text(encoding="utf-8"))
    metrics = report["metrics"]
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    finetune = manifest.get("finetune", {}).get("metrics", {})
    floor = report.get("floor") or {}
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "seconds": round(seconds, 1),
            "exit": done.returncode,
            "floor_failed": any(not floor.get(who, {}).get("passed", True) for who in ("teacher", "shipped")),
            "budgets_failed": [c["name"] for c in report["budgets"] if not c["passed"]],
            "teacher_accuracy": metrics.get("teacher_accuracy"), "shipped": report["quantization"]["name"],
            "student_fallback": report.get("student_fallback") is not None,
            "student_shipped": manifest.get("distill") is not None,
            # The student's dev figures against its teacher's, whichever way the rule went (recipes.md, section 10).
            "student_check": report.get("student_check"),
            # Every student tried (the profile's, then its retry_layers one) and whether it passed the dev rule.
            "student_tries": [{"layers": t["layers"], "passed": bool(t["check"] and t["check"]["passed"])}
                              for t in manifest.get("student_tries", [])],
            "windows": (manifest.get("distill") or {}).get("windows"),
            "teacher_epochs": finetune.get("epochs_run"), "teacher_steps": finetune.get("steps_run")}


def finetune_row(ds: TextDataset, seed: int, work: Path, variant: str) -> dict[str, Any]:
    from edgeft.data.assets import DEFAULT_MODEL, packaged_model
    from edgeft.metrics import classification_metrics
    from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
    from edgeft.stages.finetune import FinetuneSpec, finetune
    from edgeft.stages.torch_model import load_classifier, torch_logits

    split = split_dataset(ds, seed)
    variant, offset = reseeding(variant)
    spec = FinetuneSpec.for_task("classification", seed=seed + offset, device="cpu", **VARIANTS[variant])
    import edgeft.stages.finetune as finetune_stage
    import edgeft.stages.training as training

    grouped, loop = training.length_grouped_batches, finetune_stage.train
    training.length_grouped_batches = random_batches if variant in RANDOM_BATCHES else grouped
    finetune_stage.train = keep_last_epoch(loop) if variant in LAST_EPOCH else loop
    try:
        started = time.perf_counter()
        art = finetune(packaged_model(DEFAULT_MODEL).path, ds, split, spec, work)
        seconds = time.perf_counter() - started
    finally:
        training.length_grouped_batches, finetune_stage.train = grouped, loop
    labels = art.manifest["labels"]
    model = load_classifier(art.path, task="classification")
    encode = TextEncoder(art.path / "tokenizer.json", spec.max_length, "right", TOKENIZER_OUTPUTS)
    predicted = torch_logits(model, encode, [ds.texts[i] for i in split.test]).argmax(-1).tolist()
    metrics = classification_metrics([labels.index(ds.labels[i]) for i in split.test], predicted, labels)
    trained = art.manifest["metrics"]
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "seconds": round(seconds, 1),
            "epochs_run": trained.get("epochs_run"), "steps_run": trained.get("steps_run"),
            "batch_size": art.manifest.get("batch_size"),
            # The dev score of every epoch (the real one where a variant showed the loop a rising one).
            "dev_history": [round(h.get("real_dev_accuracy", h.get("dev_accuracy", math.nan)), 4)
                            for h in trained.get("history", [])]}


def trainer_rows(ds: TextDataset, tokenizer, indices: list[int]) -> list[dict[str, Any]]:
    """Texts `indices` of `ds` as `Trainer` takes them: token ids (truncated at 128, not padded) and a label index."""
    encoded = tokenizer([ds.texts[i] for i in indices], truncation=True, max_length=128)
    return [{"input_ids": encoded["input_ids"][k], "attention_mask": encoded["attention_mask"][k],
             "token_type_ids": encoded["token_type_ids"][k], "labels": ds.label_names.index(ds.labels[i])}
            for k, i in enumerate(indices)]


def trainer_predictions(model, tokenizer, rows: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """(gold, predicted) label indices for `rows`, in batches of 32 padded as `Trainer` pads them."""
    import torch
    import transformers

    model.eval()
    gold, predicted = [], []
    with torch.no_grad():
        for start in range(0, len(rows), 32):
            batch = [dict(r) for r in rows[start:start + 32]]
            gold += [r.pop("labels") for r in batch]
            predicted += model(**transformers.DataCollatorWithPadding(tokenizer)(batch)).logits.argmax(-1).tolist()
    return gold, predicted


def trainer_row(ds: TextDataset, seed: int, work: Path, train_seed: int | None = None) -> dict[str, Any]:
    """`Trainer` with every default on the draw's split; `train_seed` (default: the draw's seed) seeds its run."""
    import transformers

    from edgeft.data.assets import DEFAULT_MODEL, packaged_model

    split = split_dataset(ds, seed)
    labels = ds.label_names
    folder = packaged_model(DEFAULT_MODEL).path
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    train_seed = seed if train_seed is None else train_seed
    transformers.set_seed(train_seed)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})

    # Every TrainingArguments default stays (3 epochs, batch 8, lr 5e-5, linear decay, no warm-up); only what would
    # write files or reach the network is switched off.
    args = transformers.TrainingArguments(output_dir=str(work / "trainer"), report_to=[], save_strategy="no",
                                          logging_strategy="no", seed=train_seed, use_cpu=True, disable_tqdm=True)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=trainer_rows(ds, tokenizer, split.train),
                                   data_collator=transformers.DataCollatorWithPadding(tokenizer))
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    gold, predicted = trainer_predictions(model, tokenizer, trainer_rows(ds, tokenizer, split.test))
    return {"accuracy": accuracy(gold, predicted), "macro_f1": macro_f1(gold, predicted, len(labels)),
            "seconds": round(seconds, 1)}


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of a 95 % t-interval (0 for one value)."""
    from scipy.stats import t

    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, 0.0
    return mean, float(t.ppf(0.975, len(values) - 1)) * float(np.std(values, ddof=1)) / math.sqrt(len(values))


def summary(results: list[dict[str, Any]]) -> str:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = collections.defaultdict(list)
    for row in results:
        groups[(row["set"], row["side"])].append(row)
    lines = ["| data set | side | seeds | test accuracy | macro-F1 | wall-clock s | note |", "|---|---|---|---|---|---|---|"]
    for name in SETS:
        sides = sorted({side for (s, side) in groups if s == name}, key=lambda x: (x != "majority", x))
        for side in sides:
            rows = groups[(name, side)]
            acc, acc_ci = interval([r["accuracy"] for r in rows])
            f1, f1_ci = interval([r["macro_f1"] for r in rows])
            secs = float(np.mean([r["seconds"] for r in rows]))
            failed = sum(bool(r.get("floor_failed")) for r in rows)
            over = sum(r.get("exit") == 1 and not r.get("floor_failed") for r in rows)
            teacher = sum(r.get("student_shipped") is False for r in rows)
            note = "; ".join(part for part in (
                f"floor failed {failed}/{len(rows)}" if failed else "",
                f"exit 1 on a budget {over}/{len(rows)}" if over else "",
                f"shipped the teacher {teacher}/{len(rows)}" if teacher else "") if part)
            lines.append(f"| {name} | {side} | {len(rows)} | {acc:.3f} ± {acc_ci:.3f} | {f1:.3f} ± {f1_ci:.3f} | "
                         f"{secs:.0f} | {note} |")
        for side in sides:
            if side in ("majority", "trainer"):
                continue
            # Paired by seed (same draw, same split): the comparison the noise of one small split cannot blur.
            mine = {r["seed"]: r for r in groups[(name, side)]}
            theirs = {r["seed"]: r for r in groups.get((name, "trainer"), [])}
            seeds = sorted(set(mine) & set(theirs))
            if not seeds:
                continue
            acc, acc_ci = interval([mine[k]["accuracy"] - theirs[k]["accuracy"] for k in seeds])
            f1, f1_ci = interval([mine[k]["macro_f1"] - theirs[k]["macro_f1"] for k in seeds])
            lines.append(f"| {name} | {side} minus trainer (paired) | {len(seeds)} | {acc:+.3f} ± {acc_ci:.3f} | "
                         f"{f1:+.3f} ± {f1_ci:.3f} | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--seeds", type=int, default=5, help="seeded draws + splits for sets under 2,000 texts")
    parser.add_argument("--large-seeds", type=int, default=1, help="draws for sets of 2,000 texts and more")
    parser.add_argument("--only-seeds", default=None,
                        help="comma-separated draws to run (e.g. 1,3), instead of 0 .. --seeds/--large-seeds - 1")
    parser.add_argument("--stage", choices=["build", "finetune"], default="build")
    parser.add_argument("--variants", default="fixed-epochs,default")
    parser.add_argument("--no-trainer", action="store_true")
    parser.add_argument("--results", type=Path, default=None,
                        help="JSONL rows (default: docs/experiments/recipes.jsonl, recipes-finetune.jsonl for "
                             "--stage finetune, where a rerun then skips the rows already made)")
    args = parser.parse_args()
    if args.results is None:
        args.results = ROOT / "docs" / "experiments" / ("recipes-finetune.jsonl" if args.stage == "finetune"
                                                        else "recipes.jsonl")
    unknown = [v for v in args.variants.split(",") if reseeding(v)[0] not in VARIANTS and reseeding(v)[0] != "trainer"]
    if args.stage == "finetune" and unknown:
        parser.error(f"unknown --variants {unknown}; known: {', '.join(VARIANTS)} (each may end in +reseeded[N]), "
                     f"trainer-reseeded[N]")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(line) for line in args.results.read_text().splitlines()] if args.results.is_file() else []
    have = {(r["set"], r["side"], r["seed"]) for r in done}
    host = host_description()
    # The model name alone does not tell the session's hosts apart (both EPYCs say "AMD EPYC"): name the ISA too.
    cpu = f"{host['cpu']} ({', '.join(host['isa'])})"
    print(f"host: {cpu}, {os.cpu_count()} cores; results in {args.results}")
    sides = ["majority"] + ([] if args.no_trainer else ["trainer"])
    sides += ["edgeft"] if args.stage == "build" else [f"finetune:{v}" for v in args.variants.split(",")]
    for name in args.sets.split(","):
        seeds = args.seeds if int(name.rpartition("-")[2]) < 2000 else args.large_seeds
        for seed in (range(seeds) if args.only_seeds is None else [int(k) for k in args.only_seeds.split(",")]):
            ds = None
            for side in sides:
                if (name, side, seed) in have:
                    continue
                ds = ds or draw(name, seed)
                with tempfile.TemporaryDirectory(prefix="edgeft-recipes-") as tmp:
                    if side == "majority":
                        row = majority_row(ds, seed)
                    elif side == "trainer":
                        row = trainer_row(ds, seed, Path(tmp))
                    elif side == "edgeft":
                        row = edgeft_row(ds, seed, Path(tmp))
                    elif side.startswith("finetune:trainer-reseeded"):
                        row = trainer_row(ds, seed, Path(tmp), train_seed=seed + reseeding(side)[1])
                    else:
                        row = finetune_row(ds, seed, Path(tmp), side.partition(":")[2])
                row = {"set": name, "side": side, "seed": seed, "cpu": cpu, **row}
                print(json.dumps(row), flush=True)
                with args.results.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
                done.append(row)
    print(f"\nhost: {cpu}, {os.cpu_count()} cores")
    print(summary([r for r in done if r["set"] in args.sets.split(",") and r["side"] in sides]))


if __name__ == "__main__":
    main()
