"""The one error family edgeft raises on purpose.

Every message names the file, field or value at fault and says how to fix it; the CLI turns the kind into an exit
code in exactly one place (`edgeft.cli.app.main`). Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class EdgeftError(Exception):
    """Base class: a one-line, user-facing message and the process exit code it maps to."""

    exit_code = 3

    def __init__(self, message: str) -> None:
        # One line, always: CI logs and terminals show the first line only.
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self)


def shortened(value: str, width: int = 40) -> str:
    """A user's value as a message quotes it: whole if short, else cut with "..." (a label column that holds whole
    texts must not fill the terminal)."""
    return value if len(value) <= width else value[: width - 3] + "..."


class BadInput(EdgeftError):
    """The user's input or configuration is wrong (exit 2): a file, column, profile field or option."""

    exit_code = 2


class BudgetFailed(EdgeftError):
    """A gate or a profile budget did not hold (exit 1). The outputs were still written, for inspection."""

    exit_code = 1


class StageFailed(EdgeftError):
    """A stage failed at run time on valid input (exit 3): export parity, a backend crash, a device error."""

    exit_code = 3


class DeviceUnreachable(StageFailed):
    """A device named by --device could not be reached or set up (exit 3); the message gives the reason."""


class ExportParityError(StageFailed):
    """The exported graph disagrees with its PyTorch parent beyond the tolerance."""


class MissingBackend(BadInput):
    """An optional dependency is not installed; the message says which extra installs it."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed; install it with `pip install 'edgeft[{extra}]'` (or run `make build`)"
        )
