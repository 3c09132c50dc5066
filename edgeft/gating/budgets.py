"""A profile's budgets against a build report: a pure function to a list of checks (the later `gate` builds on it)."""

from __future__ import annotations

from typing import Any

from edgeft.profile import TargetProfile


def floor_checks(floor: dict[str, Any]) -> list[dict[str, Any]]:
    """The teacher and the shipped model against the trivial baseline (gating.floor): observed is the lower bound
    of their margin over it, which must be above the limit 0."""
    return [{"name": f"{who} beats the {floor['baseline']} baseline (95 % lower bound of the margin)",
             "observed": floor[who]["lower_bound"], "limit": 0.0, "passed": floor[who]["passed"], "floor": True}
            for who in ("teacher", "shipped")]


def check_budgets(profile: TargetProfile, report: dict[str, Any]) -> list[dict[str, Any]]:
    """The accuracy (NER: entity F1) budget fails when the shipped model's drop against the fp32 teacher is over the
    limit *and* the test split shows it worse at all (the one-sided 95 % paired-bootstrap lower bound of the drop is
    above 0). Two texts in 40 that flip are not a regression anyone can see; on the 3,724 default test tweets a drop
    over the limit is significant long before it matters, so there the rule is the plain limit."""
    b = profile.budgets
    m = report["metrics"]
    name, drop, limit = (("entity F1 drop vs fp32 model", m["f1_drop"], b.max_f1_drop) if report.get("task") == "ner"
                         else ("accuracy drop vs fp32 teacher", m["accuracy_drop"], b.max_accuracy_drop))
    lower = m.get("drop_lower_bound")
    within_noise = drop > limit and lower is not None and lower <= 0
    checks = [{"name": name, "observed": drop, "limit": limit, "passed": drop <= limit or within_noise,
               **({"note": f"over the limit but within noise: the test split cannot tell the shipped model from "
                           f"the teacher (95 % lower bound of the drop {lower:+.4f} <= 0, {m.get('n')} examples)"}
                  if within_noise else {})}]
    if b.max_latency_p50_ms is not None:
        p50 = report["latency_ms"]["p50"]
        checks.append({"name": "latency p50 (ms)", "observed": p50, "limit": b.max_latency_p50_ms,
                       "passed": p50 <= b.max_latency_p50_ms})
    if b.max_size_mb is not None:
        checks.append({"name": "model size (MiB)", "observed": report["size_mb"], "limit": b.max_size_mb,
                       "passed": report["size_mb"] <= b.max_size_mb})
    return checks
