"""Human-readable tables of build and bench results (rich), on stdout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def _console() -> Console:
    # Off a terminal (CI logs, pipes) rich assumes 80 columns and squeezes every column name; logs have room.
    return Console() if sys.stdout.isatty() else Console(width=140)


def print_build_summary(bundle: Path, report: dict[str, Any]) -> None:
    m = report["metrics"]
    table = Table(title=f"{report['target']} bundle: {bundle}")
    for col in ("model", "runtime", report.get("metric", "accuracy"), "macro-F1", "p50 ms", "p90 ms", "p99 ms",
                "size MiB"):
        table.add_column(col, justify="left" if col in ("model", "runtime") else "right")
    for row in report["models"]:
        table.add_row(row["model"], row["runtime"], f"{row.get('score', row['accuracy']):.4f}", f"{row['macro_f1']:.4f}",
                      f"{row['p50_ms']:.2f}", f"{row['p90_ms']:.2f}", f"{row['p99_ms']:.2f}", f"{row['size_mb']:.1f}")
    if report.get("baseline"):  # the floor: what a model that learned nothing scores on the same texts
        b = report["baseline"]
        table.add_row(b["model"], "trivial", f"{b['score']:.4f}", f"{b['macro_f1']:.4f}", "-", "-", "-", "-",
                      style="dim")
    console = _console()
    console.print(table)
    where = "target hardware" if report["latency_on_target_hardware"] else "this host (not the target hardware)"
    console.print(f"{m['n']} held-out {'sentences' if report.get('task') == 'ner' else 'texts'}; latency batch 1, {report['threads']} thread(s), on {where}: "
                  f"{report['host']['cpu']}")
    for check in report["budgets"]:
        mark = "[green]pass[/]" if check["passed"] else "[red]FAIL[/]"
        note = f" ({check['note']})" if check.get("note") else ""
        console.print(f"budget {check['name']}: {check['observed']:.4f} (limit {check['limit']}) {mark}{note}")
    if report.get("baseline"):
        console.print(f"{report['baseline']['model']}: {report['baseline']['description']}; "
                      f"{report['floor']['rule']}")
    if report.get("student_fallback"):
        console.print(f"[yellow]{report['student_fallback']['reason']}[/]")


def print_bench(result: dict[str, Any]) -> None:
    table = Table(title=f"bench {result['bundle']} ({result['runtime']}, {result['threads']} thread(s), batch 1)")
    lat, metrics = result["latency_ms"], result.get("metrics")
    headline = "entity F1" if metrics and "f1" in metrics and "accuracy" not in metrics else "accuracy"
    for col in ("p50 ms", "p90 ms", "p99 ms", "mean ms", "p50 spread", "cold start ms", "peak RSS MiB", headline,
                "macro-F1"):
        table.add_column(col, justify="right")
    table.add_row(*(f"{lat[k]:.2f}" for k in ("p50", "p90", "p99", "mean")), f"{result.get('p50_spread', 0):.1%}",
                  f"{result['cold_start_ms']:.0f}" if "cold_start_ms" in result else "-", f"{result['peak_rss_mb']:.0f}",
                  f"{metrics.get('accuracy', metrics.get('f1')):.4f}" if metrics else "-",
                  f"{metrics['macro_f1']:.4f}" if metrics else "-")
    _console().print(table)
    if result.get("batched"):
        b = result["batched"]
        _console().print(f"batched: {b['batch_size']} texts per call, p50 {b['p50_ms']:.2f} ms per call, "
                         f"{b['ms_per_text']:.2f} ms per text ({b['texts_per_s']:.0f} texts/s)")


def print_rows(title: str, rows: list[dict[str, Any]]) -> None:
    """Any list of same-keyed dicts as a table; floats to 4 places."""
    table = Table(title=title)
    for col in rows[0]:
        # Keys are for JSON readers ("entity_f1", "parameters_m"); a person reads "entity F1", "parameters (M)".
        header = col[:-2] + " (M)" if col.endswith("_m") else col
        header = header.replace("macro_f1", "macro-F1").replace("_f1", " F1").replace("_", " ")
        table.add_column(header, justify="left" if isinstance(rows[0][col], str) else "right")
    for row in rows:
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()))
    _console().print(table)


def selection_rows(record: dict[str, Any]) -> list[dict[str, str]]:
    """The candidate table as strings, shared by the build's printout and the model card."""
    def num(row: dict[str, Any], key: str, fmt: str) -> str:
        return format(row[key], fmt) if row.get(key) is not None else "-"

    metric = record.get("metric", "accuracy")
    emulated = any("device_agreement" in r for r in record["candidates"])
    rows = []
    for r in record["candidates"]:
        row = {"candidate": r["name"], "options": r["options"],
               f"dev {metric}": num(r, "dev_score" if "dev_score" in r else "dev_accuracy", ".4f"),
               "drop": num(r, "drop" if "drop" in r else "accuracy_drop", "+.4f")
               + (f" ±{r['drop_se']:.4f}" if r.get("drop_se") else ""), "p50 ms": num(r, "p50_ms", ".2f"),
               # Where each latency was measured: this host, or the device the build raced on.
               "timed on": r.get("timed_on", "-")}
        if emulated:
            row["emulated aarch64"] = (f"{r['device_agreement']:.0%} of {r['device_texts']} texts as here"
                                       if "device_agreement" in r else "-")
        rows.append({**row, "size MiB": num(r, "size_mb", ".1f"), "status": r["status"], "why": r.get("reason", "")})
    return rows


def print_selection(record: dict[str, Any]) -> None:
    table = Table(title=f"quantization candidates: decided by {record['decided_by']}")
    rows = selection_rows(record)
    for col in rows[0]:
        # Where a latency was measured is never cut short: a long device address folds onto a second line.
        table.add_column(col, justify="left" if col in ("candidate", "options", "status", "why", "timed on") else "right",
                         overflow="fold" if col == "timed on" else "ellipsis")
    for row in rows:
        style = "bold green" if row["status"] == "chosen" else None
        table.add_row(*row.values(), style=style)
    _console().print(table)


def print_race(result: dict[str, Any]) -> None:
    host = result["host"]
    block = f" in blocks of {result['block']}" if result.get("block") else ""  # an older edgeft wrote none
    table = Table(title=f"edgeft race on {host['machine']} {host['cpu'] or ''}: batch 1, {result['threads']} thread(s), "
                        f"{result['texts']} texts x {result['rounds']} rounds, interleaved{block}")
    for col in ("model", "p50 ms", "p90 ms", "p99 ms", "vs fastest"):
        table.add_column(col, justify="left" if col == "model" else "right")
    fastest = min(m["p50"] for m in result["models"].values())
    for name, m in sorted(result["models"].items(), key=lambda item: item[1]["p50"]):
        table.add_row(name, f"{m['p50']:.3f}", f"{m['p90']:.3f}", f"{m['p99']:.3f}", f"{m['p50'] / fastest:.2f}x")
    _console().print(table)


def print_gate(verdict: Any, profile: str) -> None:
    table = Table(title=f"edgeft gate {verdict.target}: {'PASS' if verdict.passed else 'FAIL'} (budgets of {profile})")
    for col in ("check", "observed", "limit", "result", "detail"):
        table.add_column(col, justify="right" if col in ("observed", "limit") else "left")
    for c in verdict.checks:
        table.add_row(c.name, f"{c.observed:.4g}", f"{c.limit:.4g}", "pass" if c.passed else "[red]FAIL[/]", c.detail)
    _console().print(table)
