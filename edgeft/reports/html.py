"""One self-contained HTML page (inline CSS and SVG, no scripts, no network) for one bundle or several.

People compare latency distributions and accuracy / latency / size trade-offs by eye, so the page draws them:
a latency histogram per bundle, and one scatter of accuracy against p50 latency across bundles, with the model
size as the marker's area. Standard library only: it also runs where only the runtime is installed.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from edgeft.errors import BadInput

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.6rem 0 1.2rem}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}
td:first-child,th:first-child,td.l{text-align:left}tr.chosen{background:#e8f5e9;font-weight:600}tr.baseline{color:#666;font-style:italic}
.fail{color:#b00020;font-weight:700}.pass{color:#1b5e20}h2{margin-top:2.2rem;border-bottom:1px solid #ddd}
svg text{font:11px system-ui,sans-serif}.note{color:#555}"""


def read_bundle_report(folder: Path) -> dict[str, Any]:
    path = folder / "report.json"
    if not path.is_file():
        raise BadInput(f"{folder} has no report.json; pass bundle folders written by `edgeft build`")
    return json.loads(path.read_text(encoding="utf-8"))


def render(reports: dict[str, dict[str, Any]]) -> str:
    """`reports`: a label (the bundle folder) -> its report.json."""
    sections = "\n".join(_bundle_section(label, r, COLOURS[i % len(COLOURS)]) for i, (label, r) in enumerate(reports.items()))
    overview = _overview(reports)
    title = "edgeft report: " + ", ".join(_what(r) for r in reports.values())
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>{overview}{sections}</body></html>\n")


def _what(report: dict[str, Any]) -> str:
    """The target, and the task where it is not sentence classification: an NER bundle and a classification bundle
    of one target would otherwise read alike on a page that shows both."""
    return report["target"] + (" (NER)" if report.get("task") == "ner" else "")


def headline(metrics: dict[str, Any], prefix: str = "") -> float:
    """The task's headline number: accuracy, or entity F1 for a NER bundle."""
    return metrics.get(f"{prefix}accuracy", metrics.get(f"{prefix}f1"))


def _overview(reports: dict[str, dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(_what(r))}</td><td class=l>{html.escape(r['quantization'].get('name', '?'))}</td>"
        f"<td>{headline(r['metrics']):.4f}</td><td>{headline(r['metrics'], 'teacher_'):.4f}</td>"
        f"<td>{r['latency_ms']['p50']:.2f}</td><td>{r['latency_ms']['p90']:.2f}</td><td>{r['size_mb']:.1f}</td>"
        f"<td>{'yes' if r.get('latency_on_target_hardware') else 'no (proxy)'}</td>"
        f"<td class={'pass' if all(c['passed'] for c in r['budgets']) else 'fail'}>"
        f"{'pass' if all(c['passed'] for c in r['budgets']) else 'FAIL'}</td></tr>" for r in reports.values())
    return (f"<h2>Targets</h2><table><tr><th>target</th><th>shipped</th><th>accuracy (NER: entity F1)</th><th>teacher</th>"
            f"<th>p50 ms</th><th>p90 ms</th><th>MiB</th><th>timed on target hardware</th><th>budgets</th></tr>{rows}"
            f"</table>{_scatter(reports)}")


def _device_check(candidate: dict[str, Any]) -> str:
    if "device_agreement" not in candidate:
        return "-"
    return f"{candidate['device_agreement']:.0%} of {candidate['device_texts']} texts labelled (NER: spans) as on the build host"


def _bundle_section(label: str, r: dict[str, Any], colour: str) -> str:
    models = "".join(f"<tr><td>{html.escape(m['model'])}</td><td class=l>{html.escape(m['runtime'])}</td>"
                     f"<td>{m.get('score', m['accuracy']):.4f}</td><td>{m['macro_f1']:.4f}</td><td>{m['p50_ms']:.2f}</td>"
                     f"<td>{m['p90_ms']:.2f}</td><td>{m['size_mb']:.1f}</td></tr>" for m in r.get("models", []))
    if r.get("baseline"):  # the floor every model must beat (gating.floor)
        b = r["baseline"]
        models += (f"<tr class=baseline><td>{html.escape(b['model'])}</td><td class=l>"
                   f"{html.escape(b['description'])}</td><td>{b['score']:.4f}</td><td>{b['macro_f1']:.4f}</td>"
                   f"<td>-</td><td>-</td><td>-</td></tr>")
    selection = r.get("selection") or {"decided_by": "-", "candidates": []}
    candidates = "".join(
        f"<tr class={'chosen' if c['status'] == 'chosen' else ''}><td>{html.escape(c['name'])}</td>"
        f"<td class=l>{html.escape(c['options'])}</td><td>{_num(c.get('dev_score', c.get('dev_accuracy')), '.4f')}</td>"
        f"<td>{_num(c.get('drop', c.get('accuracy_drop')), '+.4f')}</td><td>{_num(c.get('p50_ms'), '.2f')}</td>"
        f"<td class=l>{html.escape(c.get('timed_on', '-'))}</td>"
        f"<td class=l>{_device_check(c)}</td><td>{_num(c.get('size_mb'), '.1f')}</td><td class=l>{html.escape(c['status'])}</td>"
        f"<td class=l>{html.escape(c.get('reason', ''))}</td></tr>" for c in selection["candidates"])
    metric = html.escape(r.get("metric", "accuracy"))
    budgets = "".join(f"<li class={'pass' if c['passed'] else 'fail'}>{html.escape(c['name'])}: {c['observed']:.4g} "
                      f"(limit {c['limit']:.4g}) {'pass' if c['passed'] else 'FAIL'}</li>" for c in r["budgets"])
    where = "target hardware" if r.get("latency_on_target_hardware") else "the build host, not the target hardware"
    return (f"<h2>{html.escape(_what(r))} <small class=note>{html.escape(label)}</small></h2>"
            f"<table><tr><th>model</th><th>runtime</th><th>{metric}</th><th>macro-F1</th><th>p50 ms</th>"
            f"<th>p90 ms</th><th>MiB</th></tr>{models}</table><ul>{budgets}</ul>"
            f"<h3>Quantization candidates</h3><p class=note>Decided by {html.escape(selection['decided_by'])}.</p>"
            f"<table><tr><th>candidate</th><th>options</th><th>dev {metric}</th><th>drop</th><th>p50 ms</th>"
            f"<th>timed on</th><th>emulated device check</th><th>MiB</th>"
            f"<th>status</th><th>why</th></tr>{candidates}</table>"
            f"<h3>Latency distribution</h3><p class=note>Batch 1, {r.get('threads', 1)} thread(s), model call only, "
            f"on {where} ({html.escape(r.get('host', {}).get('cpu', '?'))}).</p>"
            f"{_histogram(r.get('latency_samples_ms') or [], colour)}")


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _histogram(samples: list[float], colour: str, width: int = 640, height: int = 180, bins: int = 40) -> str:
    if not samples:
        return "<p class=note>No latency samples in this report (built by an older edgeft).</p>"
    lo, hi = min(samples), max(samples)
    # Long tails squeeze the body of the distribution into one bar: clip the axis at p99 and say how many are beyond.
    cut = sorted(samples)[max(0, math.ceil(0.99 * len(samples)) - 1)]
    hi = max(cut, lo + 1e-6)
    step = (hi - lo) / bins
    counts = [0] * bins
    beyond = 0
    for s in samples:
        if s > hi:
            beyond += 1
            continue
        counts[min(int((s - lo) / step), bins - 1)] += 1
    top = max(counts) or 1
    pad, plot_h, bar_w = 40, height - 40, (width - 60) / bins
    bars = "".join(f"<rect x='{pad + i * bar_w:.1f}' y='{10 + plot_h - c / top * plot_h:.1f}' width='{bar_w - 1:.1f}' "
                   f"height='{c / top * plot_h:.1f}' fill='{colour}'/>" for i, c in enumerate(counts))
    ticks = "".join(f"<text x='{pad + f * (width - 60):.0f}' y='{height - 12}' text-anchor='middle'>"
                    f"{lo + f * (hi - lo):.2f}</text>" for f in (0, 0.25, 0.5, 0.75, 1))
    median = sorted(samples)[len(samples) // 2]
    mx = pad + (median - lo) / (hi - lo) * (width - 60) if hi > lo else pad
    return (f"<svg width='{width}' height='{height}' role='img' aria-label='latency histogram'>{bars}{ticks}"
            f"<line x1='{mx:.1f}' x2='{mx:.1f}' y1='10' y2='{10 + plot_h}' stroke='#000' stroke-dasharray='4 3'/>"
            f"<text x='{mx + 4:.1f}' y='20'>p50 {median:.2f} ms</text>"
            f"<text x='{width - 20}' y='{height - 1}' text-anchor='end'>ms ({len(samples)} calls"
            f"{f', {beyond} beyond p99 not drawn' if beyond else ''})</text></svg>")


def _scatter(reports: dict[str, dict[str, Any]], width: int = 640, height: int = 320) -> str:
    points = [(r["latency_ms"]["p50"], headline(r["metrics"]), r["size_mb"], r["target"]) for r in reports.values()]
    if len(points) < 2:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_lo, x_hi = 0.0, max(xs) * 1.4  # room for the labels right of the markers
    y_lo, y_hi = min(ys) - 0.01, max(ys) + 0.01
    big = max(p[2] for p in points)
    pad = 50

    def sx(x: float) -> float:
        return pad + (x - x_lo) / (x_hi - x_lo) * (width - pad - 20)

    def sy(y: float) -> float:
        return height - pad + 10 - (y - y_lo) / (y_hi - y_lo) * (height - pad - 20)

    marks = "".join(f"<circle cx='{sx(x):.1f}' cy='{sy(y):.1f}' r='{4 + 16 * math.sqrt(size / big):.1f}' "
                    f"fill='{COLOURS[i % len(COLOURS)]}' fill-opacity='.55'/><text x='{sx(x) + 6:.1f}' "
                    f"y='{sy(y) - 6:.1f}'>{html.escape(name)} ({size:.0f} MiB)</text>"
                    for i, (x, y, size, name) in enumerate(points))
    axes = (f"<line x1='{pad}' y1='{height - pad + 10}' x2='{width - 20}' y2='{height - pad + 10}' stroke='#888'/>"
            f"<line x1='{pad}' y1='10' x2='{pad}' y2='{height - pad + 10}' stroke='#888'/>"
            f"<text x='{width / 2:.0f}' y='{height - 8}' text-anchor='middle'>p50 latency, ms (batch 1)</text>"
            f"<text x='12' y='{height / 2:.0f}' transform='rotate(-90 12 {height / 2:.0f})' text-anchor='middle'>"
            f"held-out accuracy</text>"
            + "".join(f"<text x='{sx(x_lo + f * (x_hi - x_lo)):.0f}' y='{height - pad + 24}' text-anchor='middle'>"
                      f"{x_lo + f * (x_hi - x_lo):.1f}</text>" for f in (0, 0.5, 1))
            + "".join(f"<text x='{pad - 4}' y='{sy(y_lo + f * (y_hi - y_lo)) + 4:.0f}' text-anchor='end'>"
                      f"{y_lo + f * (y_hi - y_lo):.3f}</text>" for f in (0, 0.5, 1)))
    return (f"<h3>Accuracy vs latency vs size</h3><p class=note>Marker area: model size. Latency of targets whose "
            f"hardware the build host lacks is a host proxy.</p><svg width='{width}' height='{height}' role='img' "
            f"aria-label='accuracy against latency'>{axes}{marks}</svg>")
