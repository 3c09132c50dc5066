"""`edgeft build`: data + base model -> a verified bundle for one target profile. Knows stages, not backends.

Everything that can be wrong with the input is checked before the first expensive step, and nothing is written
to `--out` until the bundle is complete.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgeft import __version__
from edgeft.artifact import Artifact, check_output_folder, code_fingerprint, sha256_file, sha256_json
from edgeft.data.assets import DATASETS, DEFAULT_DATA, DEFAULT_MODEL, packaged_model
from edgeft.data.augment import check_task
from edgeft.data.calibration import load_recipe, recipe_path
from edgeft.data.text import dropped_text, load_dataset, split_dataset
from edgeft.data.unlabelled import read_extra_text
from edgeft.data.vocabulary_fit import fit_of_training_split
from edgeft.errors import BadInput, BudgetFailed
from edgeft.profile import ModelFormat, TargetProfile, describe_validation_error, load_profile, profile_path
from edgeft.progress import console
from edgeft.student_recipe import SHAPE_FIELDS, Student
from edgeft.reports.tables import print_selection
from edgeft.gating.floor import floor_message, lexicon_baseline, majority_baseline
from edgeft.gating.student import fallback_of, passed_line, rule_figures, student_check
from edgeft.runtime.scoring import PRIMARY_NAME, Examples

EXTRA_LIMIT_ALONE = ("--max-extra-texts limits the texts of --extra-text, which is not given; add --extra-text FILE "
                     "(or packaged:tweets), or drop --max-extra-texts")

# What `edgeft build --task T` trains on when --data is not given.
DEFAULT_TASK_DATA = {"classification": DEFAULT_DATA, "ner": "packaged:wnut16"}


@dataclass(frozen=True)
class BuildRequest:
    target: str
    task: str = "classification"  # or "ner" (token classification, BIO tags)
    out: Path | None = None
    model: Path | None = None  # None: the packaged all-MiniLM-L6-v2
    data: str | None = None  # None: the packaged tweets (classification) or WNUT-16 (ner)
    text_column: str = "text"
    label_column: str = "label"
    encoding: str = "utf-8"
    seed: int = 0
    device: str = "auto"
    work_dir: Path = Path(".edgeft")
    finetune: dict[str, Any] = field(default_factory=dict)  # overrides of FinetuneSpec fields
    # None: as the profile says; "none": ship the teacher; otherwise a --student spec (layers:2,ffn:768 or a folder).
    student: str | None = None
    distill: dict[str, Any] = field(default_factory=dict)  # overrides of the profile's student: training fields
    extra_text: str | None = None  # unlabelled texts the teacher labels for the student: a file, or packaged:NAME
    max_extra_texts: int | None = None  # the first N of them
    quantization: str | None = None  # pin one of the profile's quantization candidates by name (skips the search)
    finetuned: Path | None = None  # an already fine-tuned model folder (`edgeft finetune --out`): no fine-tuning
    # Where the candidates race: "local" (this host, when it has the target's hardware), ssh://user@host[:port]
    # (timed there with `edgeft race`), or qemu-arm64 (labels on the emulated aarch64 runtime, never timed).
    bench_device: str = "local"


@dataclass(frozen=True)
class BuildResult:
    bundle: Path
    report: dict[str, Any]
    manifest: dict[str, Any]


def build(req: BuildRequest) -> BuildResult:
    from edgeft.stages.finetune import FinetuneSpec, model_hash
    from edgeft.stages.package import HeldOut, package, versions
    from edgeft.stages.pooling import saved_pooling
    from edgeft.stages.quantize import calibration_texts, check_supported
    from edgeft.stages.torch_model import check_freeze_layers, check_model_folder

    started, timings = time.perf_counter(), {}
    # ---- validate everything first: a bad input must cost seconds and write nothing ----
    profile = load_profile(req.target)
    check_supported(profile)
    if req.task not in DEFAULT_TASK_DATA:
        raise BadInput(f"--task '{req.task}' is not one of {', '.join(DEFAULT_TASK_DATA)}")
    ner = req.task == "ner"
    pinned = pinned_candidate(req, profile)
    candidates = [c for c in profile.quantization.candidates if pinned in (None, c.name)]
    skipped = []
    if ner:
        # NNCF's accuracy control validates with sentence accuracy; for NER the selection's entity-F1 check on the
        # dev split is what guards the budget, so these candidates are left out, and the record says so.
        skipped = [{"name": c.name, "scheme": c.scheme.value, "options": c.summary(), "status": "skipped",
                    "reason": "accuracy control validates sentence accuracy, not entity F1"}
                   for c in candidates if c.accuracy_control]
        candidates = [c for c in candidates if not c.accuracy_control]
        if not candidates:
            raise BadInput(f"--quantization '{pinned}' uses accuracy control, which NER builds do not take; pin "
                           f"another candidate of '{profile.name}'")
    recipes = {c.calibration: load_recipe(c.calibration) for c in candidates if c.calibration}
    from edgeft.stages.device_race import open_bench_device

    if pinned is not None and req.bench_device != "local":
        how = "--quantization" if req.quantization else f"target '{profile.name}' (its quantization pin)"
        raise BadInput(f"{how} ships candidate '{pinned}' without a race, so --bench-device has nothing to decide; "
                       f"drop one of them")
    # Reached and checked now: an unreachable device or one of the wrong kind must cost seconds, not a fine-tune.
    bench_device = open_bench_device(req.bench_device, profile, req.task)
    out = req.out or Path("bundles") / profile.name
    check_output_folder(out)
    model_dir, model_name, model_licence = base_model_folder(req.model)
    check_model_folder(model_dir)
    if profile.format is ModelFormat.ORT:
        from edgeft.stages.mobile import check_tokenizer

        check_tokenizer(model_dir / "tokenizer.json", profile)
    # The --finetuned folder's task first: NER data read as classification would blame the data file.
    given = finetuned_task(req.finetuned, req.task) if req.finetuned is not None else None
    data_source = req.data or DEFAULT_TASK_DATA[req.task]
    if ner:
        from edgeft.data.tagged import load_tagged, split_tagged

        data = load_tagged(data_source, req.encoding)
        split = split_tagged(data, req.seed)
    else:
        data = load_dataset(data_source, req.text_column, req.label_column, req.encoding)
        split = split_dataset(data, req.seed)
    try:
        spec = FinetuneSpec.for_task(req.task, **{"seed": req.seed, "device": req.device,
                                                  "max_length": profile.input.max_length, **req.finetune})
    except ValidationError as exc:
        raise BadInput(f"fine-tuning option {describe_validation_error(exc)}") from None
    check_freeze_layers(model_dir, spec.freeze_layers)
    from edgeft.stages.finetune import labels_of, resolve_device
    from edgeft.stages.training import Workers, resolve_precision

    if Workers.from_env().world_size > 1:
        raise BadInput("edgeft build runs as one process; fine-tune on several GPUs with `torchrun ... edgeft "
                       "finetune --out DIR`, then `edgeft build --finetuned DIR`")
    finetuned = open_finetuned(given, labels_of(data, req.task)) if given is not None else None
    resolve_precision(spec.precision, resolve_device(spec.device))
    student = resolve_student(req, profile)
    if student is not None:
        from edgeft.stages.student import prepare_student

        student = prepare_student(student, model_dir, req.work_dir / "work")
    if req.max_extra_texts is not None and not req.extra_text:
        raise BadInput(EXTRA_LIMIT_ALONE)
    extra_texts = read_extra_text(req.extra_text, req.max_extra_texts) if req.extra_text else []
    console.print(f"[bold]edgeft build[/] target [cyan]{profile.name}[/] · task {req.task} · data {data_source} "
                  f"({len(data.texts)} {'sentences' if ner else 'texts'}, {len(labels_of(data, req.task))} "
                  f"{'tags' if ner else 'labels'}; dropped: {dropped_text(data.dropped)}) · model {model_name}")
    fit = fit_of_training_split((req.finetuned or model_dir) / "tokenizer.json", data, split.train,
                                profile.input.max_length, req.seed)

    work = req.work_dir / "work"
    from edgeft.stages.export import export
    from edgeft.stages.finetune import finetune
    from edgeft.stages.quantize import DevSplit, quantize
    from edgeft.stages.evaluate import fp32_report
    from edgeft.stages.select import select

    def timed(name: str, fn, *args):
        t0 = time.perf_counter()
        console.print(f"[bold]→ {name}[/]")
        result = fn(*args)
        timings[name] = round(time.perf_counter() - t0, 2)
        if getattr(result, "manifest", {}).get("cache_hit"):
            console.print(f"  cached: {result.path}")
        return result

    teacher = finetuned or timed("finetune", finetune, model_dir, data, split, spec, work)
    shipped_source, fallback, check, tries = teacher, None, None, []
    dev_examples = Examples.of(data, split.dev, req.task)
    if student is not None:
        from edgeft.stages.distill import DistillSpec, distill

        # The profile's student first; if it fails the dev rule, its deeper retry (retry_layers), then the teacher.
        attempts = [student] + ([student.model_copy(update={"layers": student.retry_layers, "retry_layers": None})]
                                if student.retry_layers else [])
        for attempt in attempts:
            dspec = DistillSpec(student=attempt, max_length=profile.input.max_length, seed=req.seed,
                                device=req.device)
            shipped_source = timed("distill" if not tries else "distill (retry)", distill, teacher, data, split, dspec,
                                   work, extra_texts)
            check = student_check(teacher.path, shipped_source.path, shipped_source.manifest,
                                  dev_examples, teacher.manifest["labels"],
                                  profile.budgets.max_drop(req.task), profile.input.max_length)
            tries.append({"layers": attempt.layers, "check": check})
            fallback = fallback_of(check)
            if fallback is None:
                if check is not None:
                    console.print(f"  {passed_line(check)}")
                break
            if attempt.retry_layers is None:
                console.print(f"  [yellow]{fallback['reason']}[/]")
                shipped_source = teacher
                break
            console.print(f"  [yellow]the {attempt.layers}-layer student fails the dev rule ({rule_figures(check)}): "
                          f"distilling a {attempt.retry_layers}-layer one (retry_layers)[/]")
    dev_texts = [data.texts[i] for i in split.dev]
    exported = timed("export", export, shipped_source, profile.runtime, profile.input, dev_texts[:32], work)
    labels = teacher.manifest["labels"]
    index = {label: i for i, label in enumerate(labels)}
    dev = None if ner else DevSplit(dev_texts, [index[data.labels[i]] for i in split.dev])
    calib = {name: calibration_texts(data, split, recipe) for name, recipe in recipes.items()}
    # A trimmed vocabulary keeps the pieces of the training split only: dev then measures what unseen pieces cost.
    train_pieces = None
    if any(c.vocabulary == "train" for c in candidates):
        from edgeft.stages.vocabulary import pieces_of

        train_pieces = pieces_of(exported.path / "tokenizer.json", [data.texts[i] for i in split.train])

    def quantize_all() -> dict[str, Any]:
        made = {}
        for i, c in enumerate(candidates, 1):
            t0 = time.perf_counter()
            made[c.name] = (c, quantize(exported, c, profile, recipes.get(c.calibration), calib.get(c.calibration, []),
                                        work, dev, train_pieces))
            how = "cached" if made[c.name][1].manifest.get("cache_hit") else f"{time.perf_counter() - t0:.1f} s"
            console.print(f"  candidate {i}/{len(candidates)} {c.name} ({c.summary()}): {how}")
        return made

    made = timed("quantize", quantize_all)
    selection = timed("select", select, exported, made, profile, dev_examples, pinned, bench_device)
    if skipped:
        selection.record["candidates"] += skipped
    print_selection(selection.record)
    quantized = selection.chosen
    recipe = recipes.get(made[quantized.manifest["quantization"]["name"]][0].calibration)

    # The split lists the test texts class by class; a seeded shuffle makes every prefix of it (the bench texts, the
    # 64 samples a device checks itself on, the mobile reference texts) a fair mix. Metrics do not depend on order.
    test_order = random.Random(req.seed).sample(list(split.test), len(split.test))
    test = Examples.of(data, test_order, req.task)
    bench_texts = test.texts[: max(64, profile.bench.runs)]
    references = [timed("evaluate teacher", fp32_report, "teacher fp32" if not ner else "fine-tuned fp32",
                        teacher.path, test, labels, profile.input, profile.threads, bench_texts,
                        profile.bench.warmup, profile.bench.runs)]
    if shipped_source is not teacher:
        references.append(timed("evaluate student", fp32_report, "student fp32", shipped_source.path, test,
                                labels, profile.input, profile.threads, bench_texts, profile.bench.warmup,
                                profile.bench.runs))
    manifest_body = {
        "edgeft_version": __version__, "edgeft_code_sha256": code_fingerprint(), "seed": req.seed,
        "versions": versions(),
        "inputs": {
            "data": {"source": data_source, "sha256": data.sha256, "rows": len(data.texts), "dropped": data.dropped,
                     "task": req.task, **_data_format(data_source, req), "vocabulary_fit": fit.as_dict()},
            "split": {"sha256": split.sha256, "seed": req.seed, "train": len(split.train), "dev": len(split.dev),
                      "test": len(split.test)},
            "base_model": {"name": model_name, "path": str(model_dir), "sha256": _digest(model_hash(model_dir)),
                           "licence": model_licence},
            "profile": {"name": profile.name, "path": str(profile_path(req.target)),
                        "sha256": sha256_file(profile_path(req.target)), "spec": profile.model_dump(mode="json")},
            "calibration": ({"recipe": recipe.name, "sha256": sha256_file(recipe_path(recipe.name)),
                             **quantized.manifest["calibration"]} if recipe else None),
            # Every recipe any candidate calibrated with: the candidates' numbers depend on them too.
            "calibration_recipes": {name: {"sha256": sha256_file(recipe_path(name)), "texts": len(calib[name]),
                                           "texts_sha256": sha256_json(calib[name])} for name in recipes},
        },
        "selection": selection.record,
        "finetune": {k: teacher.manifest[k] for k in ("spec", "device", "train_samples", "metrics")}
                    | {"pooling": saved_pooling(teacher.path) if req.task == "classification" else None},
        "distill": ({k: shipped_source.manifest[k] for k in ("spec", "device", "train_samples", "extra_texts",
                                                              "student", "metrics", "soft_targets",
                                                              "windows", "augmented")}
                    | {"extra_text": {"source": req.extra_text, "texts": len(extra_texts),
                                      "sha256": sha256_json(extra_texts)} if extra_texts else None}
                    if shipped_source is not teacher else None),
        "student_fallback": fallback,
        "student_check": check,
        "student_tries": tries,
        "parity": exported.manifest["parity"],
        "lineage": [{"stage": a.manifest["stage"], "cache_key": a.manifest["cache_key"], "path": str(a.path)}
                    for a in ((teacher, shipped_source, exported, quantized) if shipped_source is not teacher
                              else (teacher, exported, quantized))],
    }
    baseline = (lexicon_baseline([data.sentences[i] for i in split.train], [data.tags[i] for i in split.train], test)
                if ner else majority_baseline([data.labels[i] for i in split.train], test))
    held_out = HeldOut(test, bench_texts, baseline)
    console.print("[bold]→ package, evaluate and bench on the target runtime[/]")
    manifest_body["timings"] = timings  # package() adds its own seconds and the total before writing
    bundle, written = package(quantized, profile, held_out, out, manifest_body, references, started)
    result = BuildResult(bundle, written["report"], written["manifest"])
    failed = [c for c in result.report["budgets"] if not c["passed"] and not c.get("floor")]
    floor = result.report["floor"]
    below = [f"the {who} model" for who in ("teacher", "shipped") if not floor[who]["passed"]]
    if below:
        # The floor first: a model that learned nothing makes every other verdict meaningless.
        metric = PRIMARY_NAME[req.task]
        # A text the vocabulary cannot read is the likeliest cause of all: the message names it when it is one.
        raise BudgetFailed(floor_message(below, held_out.baseline, floor["baseline_score"], metric, req.task)
                           + "".join(f"; above all, {w}" for w in fit.warnings())
                           + f" (bundle written to {bundle} for inspection)")
    if failed:
        raise BudgetFailed("; ".join(f"budget '{c['name']}' failed: {c['observed']:.4g} > {c['limit']:.4g}"
                                     for c in failed) + f" (bundle written to {bundle} for inspection)")
    return result


def finetuned_task(folder: Path, task: str) -> Artifact:
    """The --finetuned folder as an artifact, once its task is the build's."""
    from edgeft.stages.distill import open_teacher

    art = open_teacher(folder, "--finetuned")
    if art.manifest.get("task", "classification") != task:
        raise BadInput(f"--finetuned {folder} is a {art.manifest.get('task')} model; this build has --task {task} "
                       f"(pass --task {art.manifest.get('task')})")
    return art


def open_finetuned(art: Artifact, labels: list[str]) -> Artifact:
    """A model folder `edgeft finetune` wrote (or any fine-tuned Hugging Face classifier with id2label), opened by
    finetuned_task, as the build's fine-tuned model; its labels must be the build's."""
    from edgeft.stages.finetune import model_hash

    folder = art.path
    if sorted(art.manifest["labels"]) != sorted(labels):
        raise BadInput(f"--finetuned {folder} has labels {art.manifest['labels']}, the data has {labels}; "
                       f"build with the data it was fine-tuned on")
    manifest = {"stage": "finetune", "spec": None, "device": None, "train_samples": None, "metrics": {},
                **art.manifest, "kind": "hf-model"}
    # Stages below key their cache on the parent's key: a folder from elsewhere is keyed by its files' hashes.
    manifest.setdefault("cache_key", _digest(model_hash(folder)))
    return Artifact(folder, manifest)


def pinned_candidate(req: BuildRequest, profile: TargetProfile) -> str | None:
    """--quantization NAME pins one candidate over the profile's own `pin`; unknown names are refused."""
    if req.quantization is None:
        return profile.quantization.pin
    names = [c.name for c in profile.quantization.candidates]
    if req.quantization not in names:
        raise BadInput(f"--quantization '{req.quantization}' is not a candidate of target '{profile.name}'; "
                       f"use one of {', '.join(names)}")
    return req.quantization


def resolve_student(req: BuildRequest, profile: TargetProfile) -> Student | None:
    """The student to distil: --student overrides the profile's student section (`ner_student:` for NER builds when
    the profile has one, else `student:`), `none` ships the teacher."""
    section = profile.student_for(req.task)
    if req.student == "none" or (req.student is None and section is None):
        if req.distill:
            raise BadInput(f"--distill was given but this build ships no student (target '{profile.name}', "
                           f"--student {req.student or 'not given'}); add --student layers:2 or drop --distill")
        return None
    if req.student is not None:
        base = section.model_dump(exclude=SHAPE_FIELDS) if section else {}
        student = parse_student(req.student, **{**base, **req.distill})
    else:
        student = parse_student(None, **{**section.model_dump(), **req.distill})
    check_task(student.augment_views, req.task)  # before the fine-tune, not minutes later at the distillation
    return student


def parse_student(spec: str | None, **fields: Any) -> Student:
    """A student from a --student spec plus fields (or from the fields alone); bad values are one BadInput line."""
    try:
        return Student.from_spec(spec, **fields) if spec is not None else Student(**fields)
    except ValidationError as exc:
        raise BadInput(f"--student / --distill: {describe_validation_error(exc)} (the recipe's fields: "
                       f"{', '.join(Student.model_fields)})") from None
    except ValueError as exc:
        raise BadInput(f"--student: {exc}") from None


def base_model_folder(model: Path | None) -> tuple[Path, str, str]:
    if model is None:
        pkg = packaged_model(DEFAULT_MODEL)
        return pkg.path, pkg.name, pkg.licence
    return model, model.name, "as stated by the model's owner"


def _data_format(source: str, req: BuildRequest) -> dict[str, str]:
    """How the data was read: a packaged set fixes its own columns and encoding, whatever the flags said."""
    if req.task == "ner":
        pkg = DATASETS.get(source.removeprefix("packaged:")) if source.startswith("packaged:") else None
        return {"format": "conll" if pkg else Path(source).suffix.lstrip("."),
                "encoding": pkg.encoding if pkg else req.encoding, "licence": pkg.licence if pkg else ""}
    if source.startswith("packaged:"):
        pkg = DATASETS[source.removeprefix("packaged:")]
        return {"text_column": pkg.text_column, "label_column": pkg.label_column, "encoding": pkg.encoding,
                "licence": pkg.licence}
    return {"text_column": req.text_column, "label_column": req.label_column, "encoding": req.encoding, "licence": ""}


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()
