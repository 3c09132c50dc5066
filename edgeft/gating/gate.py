"""`edgeft gate`: bench results (and a baseline) -> a list of checks and one verdict, as JSON, Markdown and JUnit.

Pure functions of the JSON files, so a CI job, a test or a benchmark gets the same verdict. Latency is judged
against the noise measured in the two runs themselves: a bench repeats its timed calls in rounds, and the round-to-
round spread of the p50 (relative MAD) sets how large a slowdown must be before it counts. A fixed floor keeps a
quiet machine from calling every 2 % wobble a regression; the ceiling keeps a noisy one from waving through a 30 %
slowdown; between them the tolerance grows with the spread the runs themselves showed.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from xml.etree import ElementTree

from edgeft.errors import BadInput
from edgeft.profile import Budgets, available_targets, load_profile
from edgeft.runtime.scoring import PRIMARY, PRIMARY_NAME

# Latency tolerance = clamp(SPREAD_FACTOR x (baseline spread + current spread), FLOOR, CEILING), as a ratio of p50s.
# Chosen by benchmarks/gate_noise.py on this 2-core machine: unchanged bundles moved up to ~5 % between processes.
LATENCY_FLOOR = 0.08
# A pair timed in turn moves far less (measured: 1-2 %), so its floor is lower.
PAIRED_FLOOR = 0.06
LATENCY_CEILING = 0.15
SPREAD_FACTOR = 4.0
# Accuracy and macro-F1 may move this much against the baseline: the same bundle on the same texts is exact, but a
# rebuilt model (another seed, another library version) moves by a few texts either way.
METRIC_TOLERANCE = 0.005
# Size may grow this much against the baseline (metadata, a new opset) before it counts.
SIZE_TOLERANCE = 0.01


@dataclass
class Check:
    name: str
    observed: float
    limit: float
    passed: bool
    detail: str = ""


@dataclass
class Verdict:
    target: str
    passed: bool
    checks: list[Check] = field(default_factory=list)
    baseline: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "passed": self.passed, "baseline": self.baseline,
                "checks": [asdict(c) for c in self.checks]}


def read_bench(path: Path) -> dict[str, Any]:
    """A bench JSON written by `edgeft bench --json`; anything else is one BadInput line naming the field."""
    if path.is_dir():
        raise BadInput(f"{path} is a folder; pass the JSON file that `edgeft bench BUNDLE --json FILE` wrote")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"{path} does not exist; write it with `edgeft bench BUNDLE --json {path}`") from None
    except OSError as exc:
        raise BadInput(f"{path} cannot be read ({exc.strerror}); pass a file written by `edgeft bench --json`"
                       ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"{path} is not JSON ({exc}); pass a file written by `edgeft bench --json`") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a JSON object from `edgeft bench --json`, got {type(data).__name__}")
    device = data.get("device")
    if isinstance(device, dict) and data.get("latency_ms") is None and data.get("latency_note"):
        # `bench --device qemu-arm64` checks labels on an emulated CPU and times nothing: no figure here to gate.
        raise BadInput(f"{path} is a bench under emulation ({device.get('kind')}): it checks the bundle's labels, "
                       f"not its speed, and has no latency to gate; gate a bench run on the device (`edgeft bench "
                       f"BUNDLE --json FILE` there, or `--device ssh://HOST`)")
    for key, kind in (("latency_ms", dict), ("report", dict), ("threads", int)):
        if not isinstance(data.get(key), kind):
            raise BadInput(f"{path}: field '{key}' is missing or not a {kind.__name__}; rebench with this edgeft "
                           f"(`edgeft bench BUNDLE --json {path}`)")
    if not isinstance(data["latency_ms"].get("p50"), (int, float)) or data["latency_ms"]["p50"] <= 0:
        raise BadInput(f"{path}: field 'latency_ms.p50' must be a positive number")
    report = data["report"]
    if not isinstance(report.get("metrics"), dict) or not ({"teacher_accuracy", "teacher_f1"} & set(report["metrics"])):
        raise BadInput(f"{path}: field 'report.metrics' lacks the build's teacher accuracy (or entity F1); bench a "
                       f"bundle that `edgeft build` wrote (its report.json travels into the bench JSON)")
    _check_fields(path, data)
    return data


NUMBER, OPTIONAL_NUMBER = (int, float), (int, float, type(None))
# Every other field the gate reads, by dotted path, and the types it may have; each is checked where present (a
# bench of another task, or one without a --reference pair, lacks some). The task's own scores are required.
FIELDS: dict[str, tuple[type, ...]] = {
    "report.target": (str,), "report.size_mb": OPTIONAL_NUMBER, "report.floor": (dict, type(None)),
    "report.floor.baseline": (str,), "report.floor.description": (str,), "report.floor.enforced": (bool,),
    "report.floor.shipped": (dict,), "report.floor.shipped.lower_bound": NUMBER, "report.floor.shipped.passed": (bool,),
    "report.metrics.teacher_macro_f1": OPTIONAL_NUMBER, "report.metrics.macro_f1": OPTIONAL_NUMBER,
    "report.metrics.majority_accuracy": NUMBER, "report.metrics.lexicon_f1": NUMBER,
    "report.metrics.drop_lower_bound": OPTIONAL_NUMBER, "metrics": (dict, type(None)),
    "metrics.macro_f1": OPTIONAL_NUMBER, "metrics.texts_sha256": (str,), "report.metrics.texts_sha256": (str,),
    "p50_spread": OPTIONAL_NUMBER, "paired": (dict, type(None)),
    "paired.ratio": NUMBER, "paired.ratio_spread": NUMBER, "paired.p50_ms": NUMBER, "paired.reference_p50_ms": NUMBER,
}
FLOOR_REQUIRED = ("baseline", "description", "shipped")
PAIRED_REQUIRED = ("ratio", "ratio_spread", "p50_ms", "reference_p50_ms")


def _check_fields(path: Path, data: dict[str, Any]) -> None:
    """Every field the gate reads has the type it needs, so a hand-edited or truncated file is one BadInput line
    naming the field, never a traceback and never exit 1 (which a CI job would read as a regression)."""
    def fail(field: str, what: str) -> NoReturn:
        raise BadInput(f"{path}: field '{field}' {what}; rebench with `edgeft bench BUNDLE --json {path}` (a "
                       f"bundle that `edgeft build` wrote)")

    def lookup(field: str) -> tuple[bool, Any]:
        node: Any = data
        for part in field.split("."):
            if not isinstance(node, dict) or part not in node:
                return False, None
            node = node[part]
        return True, node

    for field, kinds in FIELDS.items():
        present, value = lookup(field)
        if present and (not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)):
            fail(field, f"is {json.dumps(value)[:40]}, not {' or '.join(k.__name__ for k in kinds)}")
    task = task_of(data)
    key = PRIMARY[task]
    teacher = data["report"]["metrics"]
    if not isinstance(teacher.get(f"teacher_{key}"), NUMBER) or isinstance(teacher.get(f"teacher_{key}"), bool):
        fail(f"report.metrics.teacher_{key}", "must be a number")
    shipped = data.get("metrics") or teacher
    where = "metrics" if data.get("metrics") else "report.metrics"
    if not isinstance(shipped.get(key), NUMBER) or isinstance(shipped.get(key), bool):
        fail(f"{where}.{key}", "must be a number (the shipped model's score)")
    for parent, required in (("report.floor", FLOOR_REQUIRED), ("paired", PAIRED_REQUIRED)):
        present, node = lookup(parent)
        for name in required if present and node else ():
            if name not in node:
                fail(f"{parent}.{name}", "is missing")


def task_of(bench: dict[str, Any]) -> str:
    """The bundle's task: NER reports carry the fp32 model's entity F1, classification reports its accuracy."""
    return "ner" if "teacher_f1" in bench["report"]["metrics"] else "classification"


def budgets_for(bench: dict[str, Any], profile: str | None) -> tuple[str, Budgets, str | None]:
    """The profile whose budgets apply: --profile, else the bundle's own target if it is a known profile; and a
    note when --profile names another target's profile."""
    target = bench["report"].get("target") or bench.get("target")
    name = profile or target
    if profile is None and name not in available_targets():
        return f"{name} (no such profile: default budgets)", Budgets(), None
    loaded = load_profile(name)
    if target and loaded.name != target:
        # Another profile's budgets can be what a user means (a stricter copy of the target's own), but a mix-up
        # (an arm64 bench under x86-avx2's budgets) must be visible where the verdict is read.
        return (f"{loaded.name}, not the bundle's own target {target}", loaded.budgets,
                f"--profile {profile} is the {loaded.name} profile, but the bench is of a {target} bundle: its "
                f"budgets apply as asked (drop --profile for the bundle's own)")
    return loaded.name, loaded.budgets, None


def gate(bench: dict[str, Any], baseline: dict[str, Any] | None, budgets: Budgets) -> Verdict:
    target = bench["report"].get("target") or bench.get("target", "?")
    task = task_of(bench)
    key, name = PRIMARY[task], PRIMARY_NAME[task]  # accuracy, or (NER) entity F1
    unit = "sentences" if task == "ner" else "texts"
    metrics = _metrics(bench)
    teacher = bench["report"]["metrics"]
    # The teacher was scored on the build's held-out split: compare with a score on the same texts. A bench on the
    # bundle's 64 samples (or other data) is compared with the baseline below, not with the teacher.
    same_texts = _same_texts(metrics, teacher)
    shipped = metrics if same_texts else teacher
    where = (f"measured here on the {shipped.get('n')} held-out {unit}" if same_texts else
             f"build-time figure on {teacher.get('n')} held-out {unit} (this bench scored {metrics.get('n')} other "
             f"{unit})")
    limit = budgets.max_drop(task)
    # The build's noise verdict (its bootstrap over the held-out split) covers the build's own figures, and a figure
    # measured here on the same texts only while it is no worse than the build's; a larger drop is judged alone.
    def noise(metric: str) -> dict[str, Any]:
        return teacher if not same_texts or metrics.get(metric, -1.0) >= teacher.get(metric, 2.0) - 1e-9 else {}

    checks = [
        _drop_vs_teacher(f"{name} drop vs fp32 teacher", teacher[f"teacher_{key}"] - shipped[key], limit, noise(key),
                         f"{shipped[key]:.4f} vs teacher {teacher[f'teacher_{key}']:.4f}, {where}"),
    ]
    if teacher.get("teacher_macro_f1") is not None and shipped.get("macro_f1") is not None:
        checks.append(_drop_vs_teacher("macro-F1 drop vs fp32 teacher",
                                       teacher["teacher_macro_f1"] - shipped["macro_f1"], limit, noise("macro_f1"),
                                       f"{shipped['macro_f1']:.4f} vs teacher {teacher['teacher_macro_f1']:.4f}"))
    floor = bench["report"].get("floor")
    if floor and floor.get("enforced", True):  # the build's verdict against the trivial baseline (gating.floor)
        checks.append(Check(f"shipped model beats the {floor['baseline']} baseline", floor["shipped"]["lower_bound"],
                            0.0, floor["shipped"]["passed"],
                            f"build-time, 95 % lower bound of the margin over {floor['description']}"))
    trivial = {"classification": ("majority_accuracy", "majority"), "ner": ("lexicon_f1", "lexicon")}[task]
    if trivial[0] in teacher and shipped is metrics:
        score = teacher[trivial[0]]
        checks.append(Check(f"{name} above the {trivial[1]} baseline", shipped[key] - score, 0.0, shipped[key] > score,
                            f"{shipped[key]:.4f} vs {trivial[1]} {score:.4f}, {where}"))
    p50 = bench["latency_ms"]["p50"]
    if budgets.max_latency_p50_ms is not None:
        checks.append(_at_most("latency p50 (ms), profile budget", p50, budgets.max_latency_p50_ms, ""))
    size = bench["report"].get("size_mb")
    if budgets.max_size_mb is not None and size is not None:
        checks.append(_at_most("model size (MiB), profile budget", size, budgets.max_size_mb, ""))
    if baseline is not None:
        checks += _against_baseline(bench, baseline, metrics)
    return Verdict(target, all(c.passed for c in checks), checks)


def _against_baseline(bench: dict[str, Any], baseline: dict[str, Any], metrics: dict[str, Any]) -> list[Check]:
    if bench["threads"] != baseline["threads"]:
        raise BadInput(f"the bench ran {bench['threads']} thread(s) and the baseline {baseline['threads']}; "
                       f"rebench with --threads {baseline['threads']} or make a new baseline")
    base_target = baseline["report"].get("target")
    if base_target != bench["report"].get("target"):
        raise BadInput(f"the baseline is for target '{base_target}', the bench for '{bench['report'].get('target')}'; "
                       f"gate against a baseline of the same target")
    checks = []
    base_metrics = _metrics(baseline)
    if not _same_texts(metrics, base_metrics):
        # Another text set moves accuracy and latency (longer texts run slower): no figure would compare.
        raise BadInput(f"the bench scored other texts than the baseline ({metrics.get('n')} against "
                       f"{base_metrics.get('n')}, or the same number of different ones); bench both with the same "
                       f"--data (or both with none: the bundle's samples)")
    task = task_of(bench)
    if task_of(baseline) != task:
        raise BadInput(f"the baseline is a {task_of(baseline)} bundle's bench and this one a {task} bundle's; gate "
                       f"against a baseline of the same task")
    for key, label in ((PRIMARY[task], PRIMARY_NAME[task]), ("macro_f1", "macro-F1")):
        if metrics.get(key) is None or base_metrics.get(key) is None:
            continue
        checks.append(_at_most(f"{label} drop vs baseline", base_metrics[key] - metrics[key], METRIC_TOLERANCE,
                               f"{metrics[key]:.4f} vs baseline {base_metrics[key]:.4f} on {metrics.get('n', '?')} "
                               f"{'sentences' if task == 'ner' else 'texts'}"))
    paired = bench.get("paired")
    if paired and paired.get("reference_manifest_sha256") == baseline.get("bundle_manifest_sha256"):
        # The baseline's bundle was timed in turn with this one: the pair's ratio is immune to machine drift.
        spread = float(paired["ratio_spread"])
        tolerance = min(max(SPREAD_FACTOR * spread, PAIRED_FLOOR), LATENCY_CEILING)
        checks.append(_at_most("latency p50 vs baseline (paired ratio)", paired["ratio"], 1 + tolerance,
                               f"{paired['p50_ms']:.3f} vs {paired['reference_p50_ms']:.3f} ms timed in turn; "
                               f"tolerance {tolerance:.1%} from the rounds' spread {spread:.1%}"))
    else:
        spread = _spread(bench) + _spread(baseline)
        tolerance = min(max(SPREAD_FACTOR * spread, LATENCY_FLOOR), LATENCY_CEILING)
        ratio = bench["latency_ms"]["p50"] / baseline["latency_ms"]["p50"]
        # A bench gated against a copy of itself (a first baseline, say) is one run, not two.
        runs = "one run: the bench is its own baseline" if bench == baseline else "separate runs"
        checks.append(_at_most("latency p50 vs baseline (ratio)", ratio, 1 + tolerance,
                               f"{bench['latency_ms']['p50']:.3f} vs {baseline['latency_ms']['p50']:.3f} ms in "
                               f"{runs}; tolerance {tolerance:.1%} from the runs' spread {spread:.1%} (bench "
                               f"with --reference BASELINE_BUNDLE for a drift-proof pair)"))
    size, base_size = bench["report"].get("size_mb"), baseline["report"].get("size_mb")
    if size is not None and base_size:
        checks.append(_at_most("model size vs baseline (ratio)", size / base_size, 1 + SIZE_TOLERANCE,
                               f"{size:.2f} vs {base_size:.2f} MiB"))
    return checks


def _same_texts(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two sets of metrics were measured on the same labelled texts: by their digest where both carry one
    (benches and builds since 2026-12-07), else, for older files, by their number."""
    if a.get("texts_sha256") and b.get("texts_sha256"):
        return a["texts_sha256"] == b["texts_sha256"]
    return a.get("n") == b.get("n")


def _metrics(bench: dict[str, Any]) -> dict[str, Any]:
    # Accuracy measured by this bench (on the device) wins over the build's figure.
    return bench.get("metrics") or bench["report"]["metrics"]


def _spread(bench: dict[str, Any]) -> float:
    spread = bench.get("p50_spread")
    return float(spread) if isinstance(spread, (int, float)) and math.isfinite(spread) else 0.0


def _at_most(name: str, observed: float, limit: float, detail: str) -> Check:
    return Check(name, float(observed), float(limit), observed <= limit + 1e-12, detail)


def _drop_vs_teacher(name: str, drop: float, limit: float, build: dict[str, Any], detail: str) -> Check:
    """The build's own budget rule (gating.budgets.check_budgets): a drop over the limit that the held-out split
    cannot tell from noise (the build's one-sided 95 % paired-bootstrap lower bound of the drop <= 0) passes, so
    the gate never fails an unchanged bundle that its build verified."""
    check = _at_most(name, drop, limit, detail)
    lower = build.get("drop_lower_bound")
    if not check.passed and lower is not None and lower <= 0:
        check.passed = True
        check.detail += (f"; over the limit but within noise: the build's test split cannot tell the shipped model "
                         f"from the teacher (95 % lower bound of the drop {lower:+.4f} <= 0, {build.get('n')} "
                         f"examples)")
    return check


def markdown(verdict: Verdict) -> str:
    """For CI step summaries (GitHub's $GITHUB_STEP_SUMMARY) and pull-request comments."""
    head = "PASS" if verdict.passed else "FAIL"
    rows = "\n".join(f"| {c.name} | {c.observed:.4g} | {c.limit:.4g} | {'pass' if c.passed else '**FAIL**'} | "
                     f"{c.detail} |" for c in verdict.checks)
    base = f" against baseline `{verdict.baseline}`" if verdict.baseline else ""
    return (f"### edgeft gate: {head} ({verdict.target}{base})\n\n| check | observed | limit | result | detail |\n"
            f"|---|---|---|---|---|\n{rows}\n")


def junit(verdict: Verdict) -> str:
    """One test case per check, so CI systems list each regression by name."""
    suite = ElementTree.Element("testsuite", name=f"edgeft gate {verdict.target}", tests=str(len(verdict.checks)),
                                failures=str(sum(not c.passed for c in verdict.checks)), errors="0")
    for check in verdict.checks:
        case = ElementTree.SubElement(suite, "testcase", classname=f"edgeft.gating.gate.{verdict.target}", name=check.name)
        if not check.passed:
            failure = ElementTree.SubElement(case, "failure", message=f"{check.observed:.4g} > {check.limit:.4g}")
            failure.text = check.detail
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
