"""The Typer application and the one place where an `EdgeftError` becomes a one-line message and an exit code.

Commands import the library inside their bodies so that `edgeft --help` and `edgeft predict` never import torch.
"""

from __future__ import annotations

import sys

import typer

from edgeft.cli import build_cmd, run_cmds, targets_cmd
from edgeft.errors import EdgeftError

app = typer.Typer(name="edgeft", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Fine-tune, quantize and export transformer encoders for named devices, and verify them there.\n\n"
                       "Exit codes: 0 success, 1 a gate or budget failed, 2 bad input, 3 a stage failed at run time.")
app.command("build")(build_cmd.build)
app.command("predict")(run_cmds.predict)
app.command("bench")(run_cmds.bench)
app.add_typer(targets_cmd.app, name="targets")


def main() -> None:
    try:
        app(standalone_mode=False)
    except EdgeftError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted: no output was written (partial work is kept only in hidden temporary folders, "
                   "removed by the next run)", err=True)
        sys.exit(130)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # click's usage errors carry their own exit code (2)
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
