"""`edgeft finetune` end to end: load and split the data, fine-tune (or search), score the best model on the
held-out test split with a per-class (per entity type) report, and write the output folder atomically."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from edgeft.artifact import Artifact, atomic_folder, read_manifest, write_manifest
from edgeft.stages.finetune import FinetuneSpec, dev_metric, finetune, labels_of
from edgeft.stages.training import Workers


def load_task_data(task: str, source: str, text_column: str, label_column: str, encoding: str, seed: int):
    """(data, split) of either task, split exactly as `edgeft build` splits it."""
    if task == "ner":
        from edgeft.data.tagged import load_tagged, split_tagged

        data = load_tagged(source, encoding)
        return data, split_tagged(data, seed)
    from edgeft.data.text import load_dataset, split_dataset

    data = load_dataset(source, text_column, label_column, encoding)
    return data, split_dataset(data, seed)


def run_finetune(model_dir: Path, source: str, spec: FinetuneSpec, out: Path, work_dir: Path,
                 grid: dict[str, list[str]] | None, time_budget: float | None, text_column: str, label_column: str, encoding: str) -> Artifact | None:
    from edgeft.data.text import dropped_text
    from edgeft.data.vocabulary_fit import fit_of_training_split
    from edgeft.runtime.scoring import Examples
    from edgeft.progress import console

    data, split = load_task_data(spec.task, source, text_column, label_column, encoding, spec.seed)
    workers = Workers.from_env()
    if workers.main:
        console.print(f"[bold]edgeft finetune[/] task {spec.task} · data {source} ({len(data.texts)} examples, "
                      f"{len(labels_of(data, spec.task))} labels, dropped: {dropped_text(data.dropped)}; train "
                      f"{len(split.train)} / dev {len(split.dev)} / "
                      f"test {len(split.test)}) · model {model_dir} · {workers.world_size} process(es)")
        fit = fit_of_training_split(model_dir / "tokenizer.json", data, split.train, spec.max_length, spec.seed)
    trials = None
    if grid:
        if workers.world_size > 1:
            from edgeft.errors import BadInput

            raise BadInput("--search runs its trials one after another in one process; drop torchrun / accelerate "
                           "launch for a search, or drop --search")
        from edgeft.stages.search import search as run_search

        art, trials = run_search(model_dir, data, split, spec, grid, time_budget, work_dir)
    else:
        art = finetune(model_dir, data, split, spec, work_dir)
    if not workers.main:
        return None
    test = Examples.of(data, list(split.test), spec.task)
    metrics = test_metrics(art, test, spec)
    with atomic_folder(out) as tmp:
        shutil.copytree(art.path, tmp, dirs_exist_ok=True)
        manifest = read_manifest(art.path)
        manifest.pop("files", None)
        manifest.pop("cache_hit", None)
        manifest["data"] = {"source": source, "sha256": data.sha256, "split": split.sha256, "dropped": data.dropped,
                            "vocabulary_fit": fit.as_dict()}
        manifest["test"] = metrics
        if trials is not None:
            manifest["search"] = trials
        write_manifest(tmp, manifest)
    print_report(out, art, metrics, trials, spec)
    return Artifact(out, read_manifest(out))


def test_metrics(art: Artifact, test, spec: FinetuneSpec) -> dict[str, Any]:
    from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
    from edgeft.runtime.scoring import score
    from edgeft.stages.torch_model import load_classifier, torch_runner

    model = load_classifier(art.path, task=spec.task)
    encode = TextEncoder(art.path / "tokenizer.json", spec.max_length, "right", TOKENIZER_OUTPUTS)
    return score(torch_runner(model), encode, test, art.manifest["labels"], batch_size=64)


def print_report(out: Path, art: Artifact, metrics: dict[str, Any], trials: list[dict[str, Any]] | None,
                 spec: FinetuneSpec) -> None:
    from rich.table import Table

    from edgeft.reports.tables import _console

    console = _console()
    train = art.manifest["metrics"]
    metric = dev_metric(spec)
    if trials:
        table = Table(title="hyperparameter search (dev split)")
        for col in ("trial", *trials[0]["params"], metric, "best epoch", "s", "status"):
            table.add_column(str(col), justify="right")
        for t in trials:
            table.add_row(str(t["trial"]), *(str(v) for v in t["params"].values()),
                          f"{t[metric]:.4f}" if metric in t else "-", str(t.get("best_epoch", "-")),
                          str(t.get("seconds", "-")), ("chosen" if t["chosen"] else t["status"]) + (
                              f": {t['reason']}" if "reason" in t else ""), style="bold green" if t["chosen"] else None)
        console.print(table)
    per = metrics.get("per_type") or metrics.get("per_class")
    table = Table(title=f"{out}: held-out test split ({metrics['n']} {'sentences' if spec.task == 'ner' else 'texts'}), "
                        f"PyTorch fp32")
    for col in ("entity type" if spec.task == "ner" else "class", "precision", "recall", "F1", "support"):
        table.add_column(col, justify="left" if col in ("class", "entity type") else "right")
    for name, row in per.items():
        table.add_row(name, f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}", str(row["support"]))
    console.print(table)
    headline = (f"entity F1 {metrics['f1']:.4f} (P {metrics['precision']:.4f}, R {metrics['recall']:.4f}), "
                f"macro-F1 {metrics['macro_f1']:.4f}" if spec.task == "ner"
                else f"accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}")
    console.print(f"test {headline}; best {metric.replace('_', ' ')} {train[metric]:.4f}; "
                  f"{train['train_samples_per_s']} samples/s on {art.manifest['device']} "
                  f"({train.get('precision', 'fp32')}, {train.get('processes', 1)} process(es)); wrote {out}")
