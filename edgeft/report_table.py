"""Human-readable tables of build and bench results (rich), on stdout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def print_build_summary(bundle: Path, report: dict[str, Any]) -> None:
    m, t = report["metrics"], report["teacher"]
    table = Table(title=f"{report['target']} bundle: {bundle}")
    for col in ("model", "accuracy", "macro-F1", "p50 ms", "p90 ms", "p99 ms", "size MiB"):
        table.add_column(col, justify="left" if col == "model" else "right")
    tl, sl = t["latency_ms"], report["latency_ms"]
    table.add_row("teacher fp32 (PyTorch)", f"{m['teacher_accuracy']:.4f}", f"{m['teacher_macro_f1']:.4f}",
                  f"{tl['p50']:.2f}", f"{tl['p90']:.2f}", f"{tl['p99']:.2f}", f"{t['size_mb']:.1f}")
    table.add_row(f"shipped {report['quantization']['scheme']}", f"{m['accuracy']:.4f}", f"{m['macro_f1']:.4f}",
                  f"{sl['p50']:.2f}", f"{sl['p90']:.2f}", f"{sl['p99']:.2f}", f"{report['size_mb']:.1f}")
    console = Console()
    console.print(table)
    where = "target hardware" if report["latency_on_target_hardware"] else "this host (not the target hardware)"
    console.print(f"{m['n']} held-out texts; latency batch 1, {report['threads']} thread(s), on {where}: "
                  f"{report['host']['cpu']}")
    for check in report["budgets"]:
        mark = "[green]pass[/]" if check["passed"] else "[red]FAIL[/]"
        console.print(f"budget {check['name']}: {check['observed']:.4f} (limit {check['limit']}) {mark}")


def print_bench(result: dict[str, Any]) -> None:
    table = Table(title=f"bench {result['bundle']} ({result['runtime']}, {result['threads']} thread(s), batch 1)")
    for col in ("p50 ms", "p90 ms", "p99 ms", "mean ms", "std ms", "peak RSS MiB", "accuracy", "macro-F1"):
        table.add_column(col, justify="right")
    lat, metrics = result["latency_ms"], result.get("metrics")
    table.add_row(*(f"{lat[k]:.2f}" for k in ("p50", "p90", "p99", "mean", "std")), f"{result['peak_rss_mb']:.0f}",
                  f"{metrics['accuracy']:.4f}" if metrics else "-", f"{metrics['macro_f1']:.4f}" if metrics else "-")
    Console().print(table)
