"""`edgeft build`: one command from data + base model to a verified bundle."""

from __future__ import annotations

from pathlib import Path

import typer

from edgeft.cli.options import (ClassWeights, Encoding, FreezeLayers, LabelColumn, MinSteps, PoolingOption,
                                SelectMetric, TextColumn, recipe_overrides)


def build(
    target: str = typer.Option(..., "--target", "-t", help="Target profile name (`edgeft targets`) or a YAML file."),
    task: str = typer.Option("classification", "--task", help="classification (a label per text) or ner (BIO tags "
                             "per word: CoNLL two-column or JSONL tokens/tags data)."),
    model: Path | None = typer.Option(None, "--model", help="Hugging Face model folder to fine-tune "
                                      "[default: packaged all-MiniLM-L6-v2]."),
    data: str | None = typer.Option(None, "--data", help="CSV / TSV / JSONL file, a folder per label, or "
                                    "packaged:tweets / packaged:bbc [default: packaged:tweets]; for --task ner a "
                                    "CoNLL / JSONL file or packaged:wnut16 [default: packaged:wnut16]."),
    text_column: str = TextColumn,
    label_column: str = LabelColumn,
    out: Path | None = typer.Option(None, "--out", help="Bundle folder [default: bundles/TARGET]."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the split, the subset, initialisation and data order."),
    encoding: str = Encoding,
    device: str = typer.Option("auto", "--device", help="auto (a GPU when torch sees one), cpu or cuda."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Fine-tuning epochs, exactly (no step floor) "
                                      "[default: 2, or more to reach --min-steps; ner 10, or more to reach it]."),
    min_steps: int | None = MinSteps,
    class_weights: str | None = ClassWeights,
    select_metric: str | None = SelectMetric,
    freeze_layers: int | None = FreezeLayers,
    pooling: str | None = PoolingOption,
    max_train_samples: int | None = typer.Option(None, "--max-train-samples", min=0,
                                                 help="Train on a seeded, stratified subset of this size [default: 8000; ner all]; 0 = all."),
    learning_rate: float | None = typer.Option(None, "--learning-rate", help="Peak learning rate [default: 8e-5; ner 1e-4]."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=0, help="Training batch size; 0 = automatic "
                                          "(32 on a CPU, 16 under 2,000 training texts; the largest that fits a GPU) [default: automatic; ner 16]."),
    finetuned: Path | None = typer.Option(None, "--finetuned", help="Skip fine-tuning: ship (or distil from) this "
                                          "fine-tuned model folder, e.g. what `edgeft finetune --out` wrote."),
    precision: str | None = typer.Option(None, "--precision", help="Fine-tuning precision: auto (bf16 on a GPU that "
                                         "has it, else fp16; fp32 on a CPU), fp32, bf16, fp16."),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the model while fine-tuning."),
    peft: str | None = typer.Option(None, "--peft", help="none or lora (adapters merged before export)."),
    student: str | None = typer.Option(None, "--student", help="Ship a distilled student: layers:K[,ffn:N]"
                                       "[,hidden:W], layers:0-2-5 (those teacher layers), a smaller model folder, or "
                                       "none to ship the teacher [default: the profile's student: section]."),
    distill: list[str] = typer.Option([], "--distill", help="Override a field of the student recipe, e.g. "
                                      "--distill epochs=2 --distill learning_rate=2e-4 (fields: `edgeft targets show "
                                      "x86-avx2`)."),
    extra_text: str | None = typer.Option(None, "--extra-text", help="Unlabelled texts the teacher labels for the "
                                          "student: a file (one per line) or a packaged data set's texts "
                                          "(packaged:tweets)."),
    max_extra_texts: int | None = typer.Option(None, "--max-extra-texts", min=1, help="Use the first N extra texts "
                                               "[default: all]."),
    quantization: str | None = typer.Option(None, "--quantization", help="Ship this quantization candidate of the "
                                            "profile without measuring the others (`edgeft targets show TARGET`)."),
    work_dir: Path = typer.Option(Path(".edgeft"), "--work-dir", help="Where stage artifacts are cached between builds."),
    bench_device: str = typer.Option("local", "--bench-device", help="Where the quantization candidates race: local "
                                     "(this host, if it has the target's hardware), ssh://user@host[:port] (timed on "
                                     "that device with `edgeft race`; extra ssh options in EDGEFT_SSH_OPTIONS), or "
                                     "qemu-arm64 (arm64/mobile: labels on emulated aarch64 only, never latency)."),
) -> None:
    """Fine-tune, export, quantize, evaluate on the target runtime, bench, and write a bundle."""
    from edgeft.errors import BadInput
    from edgeft.pipeline import BuildRequest
    from edgeft.pipeline import build as run_build
    from edgeft.reports.tables import print_build_summary

    if device not in ("auto", "cpu", "cuda"):
        raise BadInput(f"--device '{device}' is not one of auto, cpu, cuda")
    overrides: dict = recipe_overrides(epochs, min_steps, class_weights, select_metric, freeze_layers,
                                       max_train_samples, pooling)
    if learning_rate is not None:
        overrides["learning_rate"] = learning_rate
    if batch_size is not None:
        overrides["batch_size"] = batch_size or None
    if precision is not None:
        overrides["precision"] = precision
    if compile_model:
        overrides["compile"] = True
    if peft is not None:
        overrides["peft"] = peft
    distill_overrides = {}
    for item in distill:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInput(f"--distill '{item}' is not KEY=VALUE, e.g. --distill epochs=2")
        distill_overrides[key.strip()] = value.strip()
    # Column defaults follow the data: the packaged sets name their own columns.
    req = BuildRequest(target=target, task=task, out=out, model=model, data=data, text_column=text_column,
                       label_column=label_column, encoding=encoding, seed=seed, device=device, work_dir=work_dir,
                       finetune=overrides, student=student, distill=distill_overrides, extra_text=extra_text,
                       max_extra_texts=max_extra_texts,
                       quantization=quantization, finetuned=finetuned, bench_device=bench_device)
    result = run_build(req)
    print_build_summary(result.bundle, result.report)
