"""The last stage: a quantized artifact -> a bundle (model for the runtime, tokenizer, labels, manifest, report,
model card), evaluated and timed with the device-side runtime itself before it is renamed into place."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeft.artifact import Artifact, atomic_folder, library_versions, write_manifest
from edgeft.backends import backend
from edgeft.gating.budgets import check_budgets, floor_checks
from edgeft.gating.floor import LEVEL, Baseline, baseline_metrics, beats, paired_margin
from edgeft.metrics import softmax
from edgeft.reports.html import render as render_html
from edgeft.reports.model_card import model_card
from edgeft.profile import ModelFormat, Runtime, TargetProfile
from edgeft.requirements import runtime_requirements
from edgeft.runtime.bench import bench
from edgeft.runtime.bundle import BUNDLE_FORMAT_VERSION, Bundle
from edgeft.runtime.samples import SAMPLES_FILE  # held-out texts + this build's predictions, for device checks
from edgeft.runtime.scoring import PRIMARY, PRIMARY_NAME, Examples, metrics_of, predict
from edgeft.stages.tokenizer_files import write_input_policy
from edgeft.stages.torch_model import TOKENIZER_FILES



@dataclass(frozen=True)
class HeldOut:
    examples: Examples  # the test split, seed-shuffled
    bench_texts: list[str]
    baseline: Baseline  # a trivial predictor on the same test split: the floor every model must beat
    sample_size: int = 64

    @property
    def texts(self) -> list[str]:
        return self.examples.texts


def package(quantized: Artifact, profile: TargetProfile, held_out: HeldOut, out: Path,
            manifest_body: dict[str, Any], references: list[dict[str, Any]],
            build_started: float) -> tuple[Path, dict[str, Any]]:
    """`references`: the fp32 models the shipped one is compared with, the teacher first (budgets are against it)."""
    teacher = references[0]
    started = time.perf_counter()
    runtime = Runtime(quantized.manifest["runtime"])
    labels = quantized.manifest["labels"]
    with atomic_folder(out) as tmp:
        model_file = backend(runtime).convert(quantized.path / quantized.manifest["model_file"], tmp, profile.format)
        for name in (*TOKENIZER_FILES, "config.json"):
            if (quantized.path / name).is_file():
                shutil.copy2(quantized.path / name, tmp / name)
        (tmp / "labels.json").write_text(json.dumps({"labels": labels}, indent=2) + "\n", encoding="utf-8")
        # An over-long text too, so the check covers truncation as well as padding.
        over_long = " ".join(["word"] * 2 * profile.input.max_length)
        policy = write_input_policy(tmp, profile.input, [*held_out.texts[:31], over_long])
        task = quantized.manifest["task"]
        spec = bundle_spec(profile, runtime, model_file.name, labels, tmp, task)
        spec["tokenizer_files"] = policy
        bundle = Bundle(tmp, {"bundle": spec})
        spec["model_inputs"] = list(bundle.session.input_names)
        result = bench(bundle, held_out.bench_texts, None, profile.bench.warmup, profile.bench.runs)
        predicted = predict(bundle.session.run, bundle.encoder, held_out.examples, bundle.labels)
        # The trivial baseline's scores, once: the metrics and the floor both report them.
        baseline = baseline_metrics(held_out.baseline, held_out.examples, labels)
        metrics = _metrics(bundle, held_out, teacher, predicted, baseline)
        size_mb = sum(f.stat().st_size for f in model_files(tmp, model_file)) / 2**20
        report = {"target": profile.name, "task": quantized.manifest["task"], "metrics": metrics,
                  "latency_ms": result["latency_ms"], "tokenize_ms": result["tokenize_ms"], "size_mb": size_mb,
                  "threads": profile.threads, "bench": {"texts": len(held_out.bench_texts), "runs": result["runs"],
                                                        "warmup": result["warmup"], "batch_size": 1},
                  "host": result["host"], "latency_on_target_hardware": profile.hardware_present(result["host"]),
                  "teacher": {"latency_ms": teacher["latency_ms"], "size_mb": teacher["size_mb"],
                              "runtime": teacher["runtime"]},
                  "quantization": quantized.manifest["quantization"], "selection": manifest_body["selection"],
                  # A trimmed or 4-bit word-embedding table (stages/vocabulary.py): rows kept, bits, chosen by what.
                  "word_embeddings": quantized.manifest.get("word_embeddings"),
                  "latency_samples_ms": result["latency_samples_ms"],
                  # Why a profile's student did not ship (gating.student), or None; and its dev figures either way.
                  "student_fallback": manifest_body.get("student_fallback"),
                  "student_check": manifest_body.get("student_check"),
                  "student_tries": manifest_body.get("student_tries", [])}
        report["metric"] = PRIMARY_NAME[task]
        report["models"] = [_row(r["name"], r["runtime"], r["metrics"], r["latency_ms"], r["size_mb"], task)
                            for r in references]
        report["models"].append(_row(f"shipped {report['quantization']['name']}", f"{runtime.value} {profile.format.value}",
                                     metrics, report["latency_ms"], size_mb, task))
        report["floor"] = _floor(held_out, teacher, predicted, baseline)
        report["baseline"] = {"model": f"{held_out.baseline.name} baseline", "description": held_out.baseline.description,
                              "metric": PRIMARY_NAME[task], "score": report["floor"]["baseline_score"],
                              "macro_f1": report["floor"]["baseline_macro_f1"]}
        report["budgets"] = check_budgets(profile, report) + floor_checks(report["floor"])
        # One verdict for every reader of the bundle (model card, `predict`, CI): exit 0 of the build means passed.
        report["verdict"] = {"passed": all(c["passed"] for c in report["budgets"]),
                             "failed": [c["name"] for c in report["budgets"] if not c["passed"]]}
        _write_samples(bundle, held_out, tmp / SAMPLES_FILE)
        if profile.format is ModelFormat.ORT:
            from edgeft.stages.mobile import write_mobile_files

            spec["mobile"] = write_mobile_files(tmp, profile, held_out.texts[: held_out.sample_size],
                                                bundle.session.input_names)
        (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        (tmp / "report.html").write_text(render_html({out.name: report}), encoding="utf-8")
        requires = runtime_requirements(runtime, profile.format, tmp / model_file.name)
        (tmp / "README.md").write_text(model_card(profile, report, manifest_body, spec, requires), encoding="utf-8")
        now = time.perf_counter()
        timings = {**manifest_body["timings"], "package": round(now - started, 2), "total": round(now - build_started, 2)}
        manifest = write_manifest(tmp, {"stage": "bundle", "kind": "bundle", "bundle": spec, "requires": requires,
                                        **manifest_body, "timings": timings, "metrics": report["metrics"] | {"size_mb": size_mb,
                                                                                         "latency_ms": report["latency_ms"]}})
        del bundle  # release the session's file handles before the folder is renamed
    return out, {"report": report, "manifest": manifest}


def _row(name: str, runtime: str, metrics: dict[str, Any], latency: dict[str, float], size_mb: float,
         task: str = "classification") -> dict[str, Any]:
    """One line of the side-by-side table in report.json, the build summary and the model card: `score` is the
    task's headline metric (`metric` names it), `accuracy` is there for classification only."""
    return {"model": name, "runtime": runtime, "metric": PRIMARY_NAME[task], "score": metrics[PRIMARY[task]],
            "accuracy": metrics.get("accuracy"), "macro_f1": metrics["macro_f1"],
            "p50_ms": latency["p50"], "p90_ms": latency["p90"], "p99_ms": latency["p99"], "size_mb": size_mb}


def bundle_spec(profile: TargetProfile, runtime: Runtime, model_file: str, labels: list[str], folder: Path,
                task: str = "classification") -> dict[str, Any]:
    from edgeft.runtime.encoder import pad_token_id

    return {"format_version": BUNDLE_FORMAT_VERSION, "target": profile.name, "task": task,
            "runtime": runtime.value, "format": profile.format.value, "model_file": model_file,
            "tokenizer_file": "tokenizer.json", "labels": labels,
            "pad_token_id": pad_token_id(folder / "tokenizer.json"), "input": profile.input.model_dump(),
            "threads": profile.threads, "execution_providers": list(profile.execution_providers),
            "bench": profile.bench.model_dump(),
            # Arm and VNNI targets: sessions off the device compute int8 exactly, as the device does (Isa.exact_int8).
            "exact_int8": profile.isa.exact_int8,
            # What hardware the target is: `edgeft bench` elsewhere says its latency is not the target's.
            "isa": profile.isa.value}


def model_files(folder: Path, model_file: Path) -> list[Path]:
    """The model and its weight side files (OpenVINO's .bin): every file sharing the model file's stem."""
    return [p for p in folder.iterdir() if p.is_file() and p.stem == model_file.stem]


def _floor(held_out: HeldOut, teacher: dict[str, Any], predicted: list, scored: dict[str, Any]) -> dict[str, Any]:
    """Teacher and shipped model against the trivial baseline (`scored`: its metrics) on the test split."""
    examples, baseline = held_out.examples, held_out.baseline
    # "enforced": bundles of edgeft before the NER floor carry False for NER, and `edgeft gate` skips theirs.
    return {"baseline": baseline.name, "description": baseline.description, "enforced": True,
            "rule": f"one-sided paired bootstrap over the test examples, {LEVEL:.0%}: the lower bound of (model - "
                    f"baseline) on {PRIMARY_NAME[examples.task]} must be above 0",
            "baseline_score": scored[PRIMARY[examples.task]], "baseline_macro_f1": scored["macro_f1"],
            "teacher": beats(examples, teacher["predicted"], baseline), "shipped": beats(examples, predicted, baseline)}


def _metrics(bundle: Bundle, held_out: HeldOut, teacher: dict[str, Any], predicted: list,
             baseline: dict[str, Any]) -> dict[str, Any]:
    shipped = metrics_of(held_out.examples, predicted, bundle.labels)
    t = teacher["metrics"]
    # How sure the test split is that the shipped model is worse at all: the budget forgives a drop it cannot tell
    # from noise (gating.budgets.check_budgets).
    _, drop_lower = paired_margin(held_out.examples, teacher["predicted"], predicted)
    if bundle.task == "ner":
        return {**{k: shipped[k] for k in ("f1", "precision", "recall", "macro_f1", "token_accuracy", "n",
                                            "gold_entities", "predicted_entities", "texts_sha256")},
                "lexicon_f1": baseline["f1"], "lexicon_macro_f1": baseline["macro_f1"],
                "teacher_f1": t["f1"], "teacher_macro_f1": t["macro_f1"], "f1_drop": t["f1"] - shipped["f1"],
                "drop_lower_bound": drop_lower,
                "per_type": shipped["per_type"], "teacher_per_type": t["per_type"]}
    return {"accuracy": shipped["accuracy"], "macro_f1": shipped["macro_f1"],
            "majority_accuracy": baseline["accuracy"], "majority_macro_f1": baseline["macro_f1"],
            "teacher_accuracy": t["accuracy"], "teacher_macro_f1": t["macro_f1"],
            "accuracy_drop": t["accuracy"] - shipped["accuracy"], "drop_lower_bound": drop_lower, "n": shipped["n"],
            "texts_sha256": shipped["texts_sha256"],
            "per_class": shipped["per_class"], "teacher_per_class": t["per_class"]}


def _write_samples(bundle: Bundle, held_out: HeldOut, path: Path) -> None:
    if bundle.task == "ner":
        _write_tagged_samples(bundle, held_out.examples.head(held_out.sample_size), path)
        return
    texts = held_out.texts[: held_out.sample_size]
    # Batch 1, as a device checks itself: dynamic int8 picks activation scales per call, so batches would differ.
    logits = bundle.logits(texts, batch_size=1)
    probs = softmax(logits)
    with open(path, "w", encoding="utf-8") as fh:
        for text, label, row, p in zip(texts, held_out.examples.labels, logits, probs):
            fh.write(json.dumps({"text": text, "label": label, "predicted": bundle.labels[int(np.argmax(p))],
                                 "logits": [round(float(x), 5) for x in row]}) + "\n")


def _write_tagged_samples(bundle: Bundle, examples: Examples, path: Path) -> None:
    """NER samples: the words, their gold tags, and the tags and spans this build's bundle predicts (batch 1)."""
    predicted = bundle.tags(examples.words, batch_size=1)
    spans = [bundle.entities([text], batch_size=1)[0] for text in examples.texts]
    with open(path, "w", encoding="utf-8") as fh:
        for text, words, tags, tagged, found in zip(examples.texts, examples.words, examples.tags, predicted, spans):
            fh.write(json.dumps({"text": text, "words": words, "tags": tags, "predicted": tagged,
                                 "entities": [s.to_dict() for s in found]}, ensure_ascii=False) + "\n")


def versions() -> dict[str, str]:
    return library_versions("edgeft", "torch", "transformers", "peft", "tokenizers", "optimum", "optimum-onnx",
                            "optimum-intel", "onnx", "onnxruntime", "openvino", "nncf", "numpy")
