"""`edgeft gate`: exit 0 pass, 1 regression, 2 bad input; a table on stdout, JSON / Markdown / JUnit on request."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def gate(
    bench: Path = typer.Argument(..., help="Bench results from `edgeft bench BUNDLE --json BENCH.json`."),
    baseline: Path | None = typer.Option(None, "--baseline", help="An earlier bench JSON of the same target: "
                                         "latency, accuracy and size are also checked against it."),
    profile: str | None = typer.Option(None, "--profile", help="Profile whose budgets apply [default: the "
                                       "bundle's target]."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the verdict and every check as JSON."),
    markdown_out: Path | None = typer.Option(None, "--markdown", help="Write a Markdown summary (e.g. "
                                             "$GITHUB_STEP_SUMMARY; appended to if the file exists)."),
    junit_out: Path | None = typer.Option(None, "--junit", help="Write JUnit XML, one test case per check."),
    update_baseline: bool = typer.Option(False, "--update-baseline", help="After gating, copy BENCH to --baseline "
                                         "(the exit code still reports the verdict)."),
) -> None:
    """Check bench results against the profile's budgets and a baseline, with a noise-aware latency tolerance."""
    from edgeft.artifact import atomic_file_write
    from edgeft.errors import BadInput, BudgetFailed
    from edgeft.gating.gate import budgets_for, gate as run_gate, junit, markdown, read_bench
    from edgeft.reports.tables import print_gate

    from edgeft.artifact import check_output_file

    for flag, path in (("--json", json_out), ("--markdown", markdown_out), ("--junit", junit_out)):
        check_output_file(path, flag)
    if update_baseline and baseline is None:
        raise BadInput("--update-baseline needs --baseline PATH (where the new baseline is written)")
    current = read_bench(bench)
    base = read_bench(baseline) if baseline is not None and (baseline.exists() or not update_baseline) else None
    profile_name, budgets, note = budgets_for(current, profile)
    if note:
        typer.echo(f"note: {note}", err=True)
    verdict = run_gate(current, base, budgets)
    verdict.baseline = str(baseline) if base is not None else None
    print_gate(verdict, profile_name)
    if json_out is not None:
        atomic_file_write(json_out, json.dumps(verdict.to_json(), indent=2) + "\n")
    if markdown_out is not None:
        markdown_out.parent.mkdir(parents=True, exist_ok=True)  # as --json and --junit do
        with open(markdown_out, "a", encoding="utf-8") as fh:
            fh.write(markdown(verdict))
    if junit_out is not None:
        atomic_file_write(junit_out, junit(verdict))
    if update_baseline:
        atomic_file_write(baseline, bench.read_text(encoding="utf-8"))
        typer.echo(f"baseline {baseline} updated from {bench}", err=True)
    if not verdict.passed:
        failed = [c.name for c in verdict.checks if not c.passed]
        raise BudgetFailed(f"gate failed for {verdict.target}: {'; '.join(failed)}")
