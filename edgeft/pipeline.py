"""`edgeft build`: data + base model -> a verified bundle for one target profile. Knows stages, not backends.

Everything that can be wrong with the input is checked before the first expensive step, and nothing is written
to `--out` until the bundle is complete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeft import __version__
from edgeft.artifact import check_output_folder, sha256_file
from edgeft.assets import DATASETS, DEFAULT_DATA, DEFAULT_MODEL, packaged_model
from edgeft.calibration import load_recipe, recipe_path
from edgeft.data import load_dataset, split_dataset
from pydantic import ValidationError

from edgeft.errors import BadInput, BudgetFailed
from edgeft.profile import describe_validation_error, load_profile, profile_path
from edgeft.progress import console


@dataclass(frozen=True)
class BuildRequest:
    target: str
    out: Path | None = None
    model: Path | None = None  # None: the packaged all-MiniLM-L6-v2
    data: str | None = None  # None: the packaged tweets
    text_column: str = "text"
    label_column: str = "label"
    encoding: str = "utf-8"
    seed: int = 0
    device: str = "auto"
    work_dir: Path = Path(".edgeft")
    finetune: dict[str, Any] = field(default_factory=dict)  # overrides of FinetuneSpec fields


@dataclass(frozen=True)
class BuildResult:
    bundle: Path
    report: dict[str, Any]
    manifest: dict[str, Any]


def build(req: BuildRequest) -> BuildResult:
    from edgeft.stages.finetune import FinetuneSpec, model_hash
    from edgeft.stages.package import HeldOut, package, versions
    from edgeft.stages.quantize import calibration_texts, check_supported
    from edgeft.stages.torch_model import check_model_folder

    started, timings = time.perf_counter(), {}
    # ---- validate everything first: a bad input must cost seconds and write nothing ----
    profile = load_profile(req.target)
    check_supported(profile)
    recipe = load_recipe(profile.quantization.calibration) if profile.quantization.calibration else None
    out = req.out or Path("bundles") / profile.name
    check_output_folder(out)
    model_dir, model_name, model_licence = _model(req.model)
    check_model_folder(model_dir)
    data_source = req.data or DEFAULT_DATA
    data = load_dataset(data_source, req.text_column, req.label_column, req.encoding)
    split = split_dataset(data, req.seed)
    try:
        spec = FinetuneSpec(**{"seed": req.seed, "device": req.device, "max_length": profile.input.max_length,
                               **req.finetune})
    except ValidationError as exc:
        raise BadInput(f"fine-tuning option {describe_validation_error(exc)}") from None
    console.print(f"[bold]edgeft build[/] target [cyan]{profile.name}[/] · data {data_source} "
                  f"({len(data.texts)} texts, {len(data.label_names)} labels) · model {model_name}")

    work = req.work_dir / "work"
    from edgeft.stages.export import export
    from edgeft.stages.finetune import finetune
    from edgeft.stages.quantize import quantize
    from edgeft.stages.evaluate import teacher_report

    def timed(name: str, fn, *args):
        t0 = time.perf_counter()
        console.print(f"[bold]→ {name}[/]")
        result = fn(*args)
        timings[name] = round(time.perf_counter() - t0, 2)
        if getattr(result, "manifest", {}).get("cache_hit"):
            console.print(f"  cached: {result.path}")
        return result

    teacher = timed("finetune", finetune, model_dir, data, split, spec, work)
    dev_texts = [data.texts[i] for i in split.dev]
    exported = timed("export", export, teacher, profile.runtime, profile.input, dev_texts[:32], work)
    calib = calibration_texts(data, split, recipe) if recipe else []
    quantized = timed("quantize", quantize, exported, profile, recipe, calib, work)

    labels = teacher.manifest["labels"]
    test_texts = [data.texts[i] for i in split.test]
    test_labels = [data.labels[i] for i in split.test]
    index = {label: i for i, label in enumerate(labels)}
    bench_texts = test_texts[: max(64, profile.bench.runs)]
    teacher_eval = timed("evaluate teacher", teacher_report, teacher.path, test_texts,
                         [index[l] for l in test_labels], labels, profile.input, profile.threads, bench_texts,
                         profile.bench.warmup, profile.bench.runs)
    manifest_body = {
        "edgeft_version": __version__, "seed": req.seed, "versions": versions(),
        "inputs": {
            "data": {"source": data_source, "sha256": data.sha256, "rows": len(data.texts), "dropped": data.dropped,
                     **_data_format(data_source, req)},
            "split": {"sha256": split.sha256, "seed": req.seed, "train": len(split.train), "dev": len(split.dev),
                      "test": len(split.test)},
            "base_model": {"name": model_name, "path": str(model_dir), "sha256": _digest(model_hash(model_dir)),
                           "licence": model_licence},
            "profile": {"name": profile.name, "path": str(profile_path(req.target)),
                        "sha256": sha256_file(profile_path(req.target)), "spec": profile.model_dump(mode="json")},
            "calibration": ({"recipe": recipe.name, "sha256": sha256_file(recipe_path(recipe.name)),
                             **quantized.manifest["calibration"]} if recipe else None),
        },
        "finetune": {k: teacher.manifest[k] for k in ("spec", "device", "train_samples", "metrics")},
        "parity": exported.manifest["parity"],
        "lineage": [{"stage": a.manifest["stage"], "cache_key": a.manifest["cache_key"], "path": str(a.path)}
                    for a in (teacher, exported, quantized)],
    }
    held_out = HeldOut(test_texts, test_labels, bench_texts)
    console.print("[bold]→ package, evaluate and bench on the target runtime[/]")
    manifest_body["timings"] = timings  # package() adds its own seconds and the total before writing
    bundle, written = package(quantized, profile, held_out, out, manifest_body, teacher_eval, started)
    result = BuildResult(bundle, written["report"], written["manifest"])
    failed = [c for c in result.report["budgets"] if not c["passed"]]
    if failed:
        raise BudgetFailed("; ".join(f"budget '{c['name']}' failed: {c['observed']:.4g} > {c['limit']:.4g}"
                                     for c in failed) + f" (bundle written to {bundle} for inspection)")
    return result


def _model(model: Path | None) -> tuple[Path, str, str]:
    if model is None:
        pkg = packaged_model(DEFAULT_MODEL)
        return pkg.path, pkg.name, pkg.licence
    return model, model.name, "as stated by the model's owner"


def _data_format(source: str, req: BuildRequest) -> dict[str, str]:
    """How the data was read: a packaged set fixes its own columns and encoding, whatever the flags said."""
    if source.startswith("packaged:"):
        pkg = DATASETS[source.removeprefix("packaged:")]
        return {"text_column": pkg.text_column, "label_column": pkg.label_column, "encoding": pkg.encoding,
                "licence": pkg.licence}
    return {"text_column": req.text_column, "label_column": req.label_column, "encoding": req.encoding, "licence": ""}


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()
