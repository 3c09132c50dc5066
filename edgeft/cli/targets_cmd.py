"""`edgeft targets` lists the device profiles; `edgeft targets show NAME` prints one."""

from __future__ import annotations

import typer

app = typer.Typer(help="List target device profiles, or show one.", invoke_without_command=True)


@app.callback()
def list_targets(ctx: typer.Context) -> None:
    """One line per profile in targets/: name, runtime / format / scheme, description."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console
    from rich.table import Table

    from edgeft.profile import available_targets, load_profile

    table = Table(title="edgeft targets")
    for col in ("name", "runtime", "format", "quantization candidates", "description"):
        # A name is what the user types next (`--target NAME`): never cut; the description wraps instead.
        table.add_column(col, no_wrap=col == "name", min_width=16 if col == "name" else None)
    for name in available_targets():
        p = load_profile(name)
        q = p.quantization
        shown = f"pinned: {q.pin}" if q.pin else f"{len(q.candidates)}, first {q.candidates[0].name}"
        table.add_row(p.name, p.runtime.value, p.format.value, shown, p.description)
    Console().print(table)


@app.command("show")
def show(name: str = typer.Argument(..., help="Profile name or YAML path.")) -> None:
    """Print a profile with every default filled in, as YAML."""
    import yaml

    from edgeft.profile import load_profile

    typer.echo(yaml.safe_dump(load_profile(name).model_dump(mode="json"), sort_keys=False).rstrip())
