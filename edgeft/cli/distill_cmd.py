"""`edgeft distill`: a fine-tuned teacher folder + labelled data -> a smaller student model folder."""

from __future__ import annotations

from pathlib import Path

import typer

from edgeft.cli.options import Encoding, LabelColumn, TextColumn


def distill(
    teacher: Path = typer.Option(..., "--teacher", help="Fine-tuned teacher: a Hugging Face classifier folder "
                                 "(for example a build's .edgeft/work/finetune-* artifact)."),
    data: str = typer.Option(..., "--data", help="The teacher's labelled data: CSV / TSV / JSONL, a folder per "
                             "label, or packaged:tweets / packaged:bbc; for a token-classification (NER) teacher, "
                             "CoNLL / JSONL tagged sentences or packaged:wnut16."),
    student: str = typer.Option(..., "--student", help="layers:K (keep K teacher layers), layers:0-2-5 (those "
                                "layers), optionally ,ffn:N (feed-forward units kept) and ,hidden:W (a narrower "
                                "stream, seeded by projecting the teacher); or a smaller model folder."),
    out: Path = typer.Option(..., "--out", help="Student model folder to write (safetensors + tokenizer + manifest)."),
    text_column: str = TextColumn,
    label_column: str = LabelColumn,
    encoding: str = Encoding,
    extra_text: str | None = typer.Option(None, "--extra-text", help="Unlabelled texts the teacher labels for the "
                                          "student: a file (one per line) or a packaged data set's texts "
                                          "(packaged:tweets)."),
    max_extra_texts: int | None = typer.Option(None, "--max-extra-texts", min=1, help="Use the first N extra texts "
                                               "[default: all]."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Distillation epochs [default: 2]."),
    learning_rate: float | None = typer.Option(None, "--learning-rate", help="Peak learning rate [default: 1e-4]."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Batch size [default: 32]."),
    temperature: float | None = typer.Option(None, "--temperature", help="Softmax temperature of the soft targets "
                                             "[default: 2]."),
    alpha: float | None = typer.Option(None, "--alpha", help="Weight of the soft-target loss; 1 - alpha goes to the "
                                       "hard labels [default: 0.8]."),
    hidden_weight: float | None = typer.Option(None, "--hidden-weight", help="Weight of the intermediate-layer "
                                               "(hidden-state) loss; 0 = off [default: 0]."),
    max_train_samples: int | None = typer.Option(None, "--max-train-samples", min=0, help="Seeded, stratified subset of "
                                                 "the train split; 0 = all [default: all]."),
    max_length: int = typer.Option(128, "--max-length", min=3, help="Tokens per text, special tokens included."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the split (as in `edgeft build`), initialisation and order."),
    device: str = typer.Option("auto", "--device", help="auto (a GPU when torch sees one), cpu or cuda."),
    work_dir: Path = typer.Option(Path(".edgeft"), "--work-dir", help="Where stage artifacts are cached."),
) -> None:
    """Distil a fine-tuned teacher into a smaller, faster student (soft targets + hard labels)."""
    from edgeft.artifact import check_output_folder
    from edgeft.data.text import load_dataset, split_dataset
    from edgeft.data.unlabelled import read_extra_text
    from edgeft.errors import BadInput
    from edgeft.pipeline import EXTRA_LIMIT_ALONE, parse_student
    from edgeft.stages.distill import distill_folder, open_teacher

    given = {"epochs": epochs, "learning_rate": learning_rate, "batch_size": batch_size, "temperature": temperature,
             "alpha": alpha, "hidden_weight": hidden_weight,
             "max_train_samples": (max_train_samples or None) if max_train_samples is not None else None}
    recipe = parse_student(student, **{k: v for k, v in given.items() if v is not None})
    if device not in ("auto", "cpu", "cuda"):
        raise BadInput(f"--device '{device}' is not one of auto, cpu, cuda")
    if max_extra_texts is not None and not extra_text:
        raise BadInput(EXTRA_LIMIT_ALONE)
    check_output_folder(out)
    # The teacher's head says the task: a token classifier distils on tagged sentences (CoNLL / JSONL), by entity F1.
    if open_teacher(teacher).manifest["task"] == "ner":
        from edgeft.data.tagged import load_tagged, split_tagged

        dataset = load_tagged(data, encoding)
        split = split_tagged(dataset, seed)
    else:
        dataset = load_dataset(data, text_column, label_column, encoding)
        split = split_dataset(dataset, seed)
    extra = read_extra_text(extra_text, max_extra_texts) if extra_text else []
    distill_folder(teacher, dataset, split, recipe, out, work_dir / "work", extra, max_length=max_length, seed=seed,
                   device=device)
