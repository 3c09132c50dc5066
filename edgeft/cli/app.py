"""The Typer application and the one place where an `EdgeftError` becomes a one-line message and an exit code.

Commands import the library inside their bodies so that `edgeft --help` and `edgeft predict` never import torch.
"""

from __future__ import annotations

import sys

import typer

from edgeft.cli import build_cmd, distill_cmd, finetune_cmd, gate_cmd, run_cmds, targets_cmd
from edgeft.errors import EdgeftError

app = typer.Typer(name="edgeft", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  # Plain help text: Rich markup would eat every "[default: ...]" as an unknown style tag.
                  rich_markup_mode=None,
                  help="Fine-tune, quantize and export transformer encoders for named devices, and verify them there.\n\n"
                       "Exit codes: 0 success, 1 a gate or budget failed, 2 bad input, 3 a stage failed at run time.")


def _version(value: bool) -> None:
    if value:
        from edgeft import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                       help="Print edgeft's version and exit.")) -> None:
    """Fine-tune, quantize and export transformer encoders for named devices, and verify them there."""


app.command("build")(build_cmd.build)
app.command("finetune")(finetune_cmd.finetune)
app.command("distill")(distill_cmd.distill)
app.command("predict")(run_cmds.predict)
app.command("bench")(run_cmds.bench)
app.command("race")(run_cmds.race)
app.command("gate")(gate_cmd.gate)
app.command("report")(run_cmds.report)
app.add_typer(targets_cmd.app, name="targets")


def _terminated(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C: no half-written .tmp- folder stays


def main() -> None:
    import signal
    import threading

    main_thread = threading.current_thread() is threading.main_thread()  # only there may a handler be set
    previous = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
    try:
        # Not standalone: typer then returns exit codes (130 after Ctrl-C) and re-raises usage errors, so this
        # function alone decides what is printed and with which code the process ends.
        code = app(standalone_mode=False)
    except EdgeftError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:
        # Usage errors (typer's click: an unknown option, a value out of range) carry exit code 2 and, like every
        # other bad input, become one line that names the option and where the help is.
        if type(exc).__name__ == "NoArgsIsHelpError":  # `edgeft` alone: the help itself, as typed
            exc.show()
            sys.exit(exc.exit_code)
        if hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int):
            ctx = getattr(exc, "ctx", None)
            where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            typer.echo(f"error: {' '.join(exc.format_message().split())}{where}", err=True)
            sys.exit(exc.exit_code)
        raise
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)  # the caller's handler back (a test session, a notebook)
    if code == 130:
        typer.echo("interrupted: nothing was written to the output (unfinished work sits only in hidden .tmp- "
                   "folders, removed by the next run)", err=True)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
