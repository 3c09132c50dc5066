"""The `edgeft` command: thin Typer commands over the library; errors become exit codes in `app.main` only."""
