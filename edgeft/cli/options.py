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
