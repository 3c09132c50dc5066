"""A profile's budgets against a build report: a pure function to a list of checks (the later `gate` builds on it)."""

from __future__ import annotations

from typing import Any

from edgeft.profile import TargetProfile


def floor_checks(floor: dict[str, Any]) -> list[dict[str, Any]]:
    """The teacher and the shipped model against the trivial baseline (gating.floor): observed is the lower bound
    of their margin over it, which must be above the limit 0."""
    if not floor.get("enforced", True):
        return []
    return [{"name": f"{who} beats the {floor['baseline']} baseline (95 % lower bound of the margin)",
             "observed": floor[who]["lower_bound"], "limit": 0.0, "passed": floor[who]["passed"], "floor": True}
            for who in ("teacher", "shipped")]


def check_budgets(profile: TargetProfile, report: dict[str, Any]) -> list[dict[str, Any]]:
    b = profile.budgets
    if report.get("task") == "ner":
        drop = report["metrics"]["f1_drop"]
        checks = [{"name": "entity F1 drop vs fp32 model", "observed": drop, "limit": b.max_f1_drop,
                   "passed": drop <= b.max_f1_drop}]
    else:
        drop = report["metrics"]["accuracy_drop"]
        checks = [{"name": "accuracy drop vs fp32 teacher", "observed": drop, "limit": b.max_accuracy_drop,
                   "passed": drop <= b.max_accuracy_drop}]
    if b.max_latency_p50_ms is not None:
        p50 = report["latency_ms"]["p50"]
        checks.append({"name": "latency p50 (ms)", "observed": p50, "limit": b.max_latency_p50_ms,
                       "passed": p50 <= b.max_latency_p50_ms})
    if b.max_size_mb is not None:
        checks.append({"name": "model size (MiB)", "observed": report["size_mb"], "limit": b.max_size_mb,
                       "passed": report["size_mb"] <= b.max_size_mb})
    return checks
