"""Options shared by several commands, defined once."""

from __future__ import annotations

from pathlib import Path

import typer

TextColumn = typer.Option("text", "--text-column", help="Column (CSV/TSV) or key (JSONL) holding the text.")
LabelColumn = typer.Option("label", "--label-column", help="Column (CSV/TSV) or key (JSONL) holding the label.")
Encoding = typer.Option("utf-8", "--encoding", help="Text encoding of the data file, e.g. utf-8 or latin-1.")
Bundle = typer.Argument(..., help="A bundle folder written by `edgeft build`.", show_default=False)


def json_out(help_text: str) -> Path | None:
    return typer.Option(None, "--json", help=help_text)


MinSteps = typer.Option(None, "--min-steps", help="Fine-tuning runs at least this many optimizer steps, repeating a "
                        "small set for more epochs (early stopping on dev still ends it) [default: 300; with "
                        "--epochs: 0, the epochs exactly].")
ClassWeights = typer.Option(None, "--class-weights", help="none, or balanced: loss weights ~ 1 / class frequency, "
                            "for imbalanced labels [default: none].")
SelectMetric = typer.Option(None, "--select-metric", help="Dev figure that keeps the best epoch: accuracy or "
                            "macro_f1 (a majority-only model scores low on it) [default: accuracy].")
PoolingOption = typer.Option(None, "--pooling", help="Classification: what the head reads: cls (BERT's pooler), "
                             "mean (the mean over real tokens, as sentence-embedding models are trained; see "
                             "docs/experiments/recipes.md) or auto (the pooling the base model was trained with) "
                             "[default: cls].")
FreezeLayers = typer.Option(None, "--freeze-layers", help="The lowest N encoder layers (and the embeddings) keep "
                            "their pretrained weights: cheaper training steps [default: 0].")


def recipe_overrides(epochs: int | None, min_steps: int | None, class_weights: str | None,
                     select_metric: str | None, freeze_layers: int | None = None,
                     max_train_samples: int | None = None, pooling: str | None = None) -> dict[str, object]:
    """Fine-tuning fields the user named. --epochs alone means those epochs exactly: the step floor and the one pass
    over fresh texts are for the default recipe, not for a user who counted their epochs or chose the subset."""
    given: dict[str, object] = {}
    if epochs is not None:
        given["epochs"] = epochs
        given["min_steps"] = 0
        given["fresh_texts"] = False
    if max_train_samples is not None:
        given["max_train_samples"] = max_train_samples or None  # 0: all
        given["fresh_texts"] = False
    if min_steps is not None:
        given["min_steps"] = min_steps
    if class_weights is not None:
        given["class_weights"] = class_weights
    if select_metric is not None:
        given["select_metric"] = select_metric
    if freeze_layers is not None:
        given["freeze_layers"] = freeze_layers
    if pooling is not None:
        given["pooling"] = pooling
    return given
