"""One console for status lines (stderr, so `--json` on stdout stays clean) and the progress bars of long stages."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# Off a terminal (CI logs) rich assumes 80 columns and wraps every status line; logs have room.
console = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=140)


def progress_bar(enabled: bool = True) -> Progress:
    """`enabled=False`: a bar that draws nothing (the other processes of a multi-process run stay quiet)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, transient=False, disable=not enabled)
