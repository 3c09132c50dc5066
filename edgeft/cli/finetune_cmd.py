"""`edgeft finetune`: a base model + labelled data -> a fine-tuned model folder, scored on the held-out test split.

Runs as one process, or as several under `torchrun --nproc_per_node N $(which edgeft) finetune ...` or
`accelerate launch --num_processes N $(which edgeft) finetune ...` (one GPU per process; gloo on CPUs); the first
process writes the output and prints the report.
"""

from __future__ import annotations

from pathlib import Path

import typer

from edgeft.cli.options import (ClassWeights, Encoding, FreezeLayers, LabelColumn, MinSteps, PoolingOption,
                                SelectMetric, TextColumn, recipe_overrides)


def finetune(
    task: str = typer.Option("classification", "--task", help="classification or ner."),
    model: Path | None = typer.Option(None, "--model", help="Hugging Face model folder [default: packaged "
                                      "all-MiniLM-L6-v2]."),
    data: str | None = typer.Option(None, "--data", help="classification: CSV / TSV / JSONL, a folder per label, "
                                    "packaged:tweets / packaged:bbc; ner: CoNLL (token tag per line) or JSONL "
                                    "(tokens, tags), packaged:wnut16 [default: packaged:tweets / packaged:wnut16]."),
    out: Path = typer.Option(..., "--out", help="Model folder to write (safetensors, tokenizer, manifest.json)."),
    text_column: str = TextColumn,
    label_column: str = LabelColumn,
    encoding: str = Encoding,
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Epochs at most (early stopping on the dev split), "
                                      "no step floor [default: 2, or more to reach --min-steps; ner 10, or more "
                                      "to reach it]."),
    min_steps: int | None = MinSteps,
    class_weights: str | None = ClassWeights,
    select_metric: str | None = SelectMetric,
    freeze_layers: int | None = FreezeLayers,
    pooling: str | None = PoolingOption,
    learning_rate: float | None = typer.Option(None, "--learning-rate", help="Peak learning rate [default: 8e-5; "
                                               "ner 1e-4]."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=0, help="Batch size per process; 0 = automatic: "
                                          "32 on a CPU (16 under 2,000 training texts), on a GPU the largest that fits (up to 256; learning rate "
                                          "scaled by sqrt(batch/32)) [default: automatic; ner 16]."),
    max_train_samples: int | None = typer.Option(None, "--max-train-samples", min=0, help="Seeded subset of the train "
                                                 "split; 0 = all [default: 8000; ner all]."),
    max_length: int = typer.Option(128, "--max-length", min=3, help="Tokens per text, special tokens included."),
    device: str = typer.Option("auto", "--device", help="auto (a GPU when torch sees one), cpu or cuda."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 on a GPU that has it, else fp16; fp32 on "
                                  "a CPU), fp32, bf16 or fp16."),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the model (pays off on GPUs for "
                                       "long runs; the first steps compile)."),
    peft: str = typer.Option("none", "--peft", help="none, or lora: low-rank adapters, merged into the weights "
                             "before writing."),
    lora_r: int | None = typer.Option(None, "--lora-r", help="LoRA rank [default: 8]."),
    search: list[str] = typer.Option([], "--search", help="Hyperparameter grid, e.g. --search learning_rate=5e-5,1e-4 "
                                     "--search epochs=2,4; the best dev score wins, every trial is recorded."),
    time_budget: float | None = typer.Option(None, "--time-budget", help="Seconds the --search may take; trials "
                                             "that would not fit are skipped (and recorded)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the split (as in `edgeft build`), subset, init and order."),
    work_dir: Path = typer.Option(Path(".edgeft"), "--work-dir", help="Stage cache; an interrupted fine-tune "
                                  "resumes from its checkpoint here."),
) -> None:
    """Fine-tune a base model for classification or NER (GPU when present), keep the best epoch, score it."""
    from pydantic import ValidationError

    from edgeft.artifact import check_output_folder
    from edgeft.errors import BadInput
    from edgeft.pipeline import DEFAULT_TASK_DATA, base_model_folder
    from edgeft.profile import describe_validation_error
    from edgeft.stages.finetune import FinetuneSpec
    from edgeft.stages.torch_model import check_freeze_layers, check_model_folder
    from edgeft.stages.training import Workers

    if task not in DEFAULT_TASK_DATA:
        raise BadInput(f"--task '{task}' is not one of {', '.join(DEFAULT_TASK_DATA)}")
    if device not in ("auto", "cpu", "cuda"):
        raise BadInput(f"--device '{device}' is not one of auto, cpu, cuda")
    if time_budget is not None and not search:
        raise BadInput("--time-budget limits a --search; add --search KEY=V1,V2 or drop --time-budget")
    options = {"learning_rate": learning_rate, "max_length": max_length, "precision": precision,
               "compile": compile_model, "peft": peft, "lora_r": lora_r, "seed": seed, "device": device}
    # Options left unset keep the recipe's defaults; a named 0 (batch size, subset) stays None: automatic, all.
    given = {**{k: v for k, v in options.items() if v is not None},
             **recipe_overrides(epochs, min_steps, class_weights, select_metric, freeze_layers, max_train_samples,
                              pooling)}
    if batch_size is not None:
        given["batch_size"] = batch_size or None
    try:
        spec = FinetuneSpec.for_task(task, **given)
    except ValidationError as exc:
        raise BadInput(f"fine-tuning option {describe_validation_error(exc)}") from None
    from edgeft.stages.finetune import resolve_device
    from edgeft.stages.training import resolve_precision

    resolve_precision(spec.precision, resolve_device(spec.device))  # fp16 without a GPU fails here, not after loading
    grid = None
    if search:
        from edgeft.stages.search import parse_grid, trial_specs

        grid = parse_grid(search)
        trial_specs(spec, grid)  # every trial's values validated before any work
    check_output_folder(out)
    model_dir, _, _ = base_model_folder(model)
    check_model_folder(model_dir)
    check_freeze_layers(model_dir, spec.freeze_layers)
    from edgeft.stages.finetune_report import run_finetune

    workers = Workers.from_env()
    try:
        run_finetune(model_dir, data or DEFAULT_TASK_DATA[task], spec, out, work_dir / "work", grid, time_budget,
                     text_column, label_column, encoding)
    finally:
        workers.stop()
