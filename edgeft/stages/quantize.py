"""onnx | openvino-ir -> the same kind, made as one quantization candidate of the target profile says."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeft.artifact import Artifact, cached_stage, library_versions, sha256_json
from edgeft.backends import backend
from edgeft.data.calibration import CalibrationRecipe
from edgeft.data.text import TextDataset, Split, stratified_subset
from edgeft.errors import BadInput
from edgeft.backends.validation import Validation
from edgeft.profile import Candidate, ModelFormat, Runtime, Scheme, TargetProfile
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
from edgeft.runtime.sessions import open_session
from edgeft.stages.torch_model import TOKENIZER_FILES
from edgeft.stages.vocabulary import TABLE_FORMAT, Trim, quantize_table_4bit, trim_word_embeddings


def check_supported(profile: TargetProfile) -> None:
    """Fail before any work if a candidate asks the profile's runtime for a scheme or option it does not implement."""
    impl = backend(profile.runtime)
    defaults = Candidate(name="x", scheme=Scheme.FP32)
    for c in profile.quantization.candidates:
        where = f"target '{profile.name}': candidate '{c.name}'"
        if c.scheme not in impl.SCHEMES:
            raise BadInput(f"{where}: scheme '{c.scheme.value}' is not available for runtime "
                           f"'{profile.runtime.value}'; use one of {', '.join(s.value for s in impl.SCHEMES)}")
        unsupported = [f for f in Candidate.model_fields if f not in ("name", "scheme", "calibration")
                       and getattr(c, f) != getattr(defaults, f) and f not in impl.OPTIONS]
        if unsupported:
            raise BadInput(f"{where}: option '{unsupported[0]}' is not implemented for runtime "
                           f"'{profile.runtime.value}' (it takes {', '.join(impl.OPTIONS)}); remove it")
        allowed = getattr(impl, "SCHEME_OPTIONS", {}).get(c.scheme)
        if allowed is not None:
            extra = [f for f in Candidate.model_fields if f not in ("name", "scheme", "calibration", *allowed)
                     and getattr(c, f) != getattr(defaults, f)]
            if extra:
                raise BadInput(f"{where}: scheme '{c.scheme.value}' takes only {', '.join(allowed)} on runtime "
                               f"'{profile.runtime.value}', not '{extra[0]}'; remove it")


def calibration_texts(data, split: Split, recipe: CalibrationRecipe) -> list[str]:
    """Training texts to calibrate on: label-stratified for classification, a seeded sample of sentences for NER."""
    if isinstance(data, TextDataset):
        chosen = stratified_subset(split.train, data.labels, recipe.samples, recipe.seed)
    else:
        rng = np.random.default_rng(recipe.seed)
        chosen = sorted(rng.choice(split.train, min(recipe.samples, len(split.train)), replace=False).tolist())
    return [data.texts[i] for i in chosen]


@dataclass(frozen=True)
class DevSplit:
    """Labelled held-out texts that accuracy-controlled quantization may validate on (never the test split)."""

    texts: list[str]
    gold: list[int]


def quantize(exported: Artifact, candidate: Candidate, profile: TargetProfile, recipe: CalibrationRecipe | None,
             calib_texts: list[str], work_dir: Path, dev: DevSplit | None = None,
             train_pieces: Trim | None = None) -> Artifact:
    """One candidate, cached by everything it depends on (accuracy-controlled ones also by their dev texts, trimmed
    vocabularies by the pieces kept: `train_pieces`, `pieces_of` the training split)."""
    runtime = Runtime(exported.manifest["runtime"])
    dev = dev if candidate.accuracy_control else None
    trim = None
    if candidate.vocabulary == "train":
        if train_pieces is None:
            raise BadInput(f"candidate '{candidate.name}': 'vocabulary: train' needs the training split's pieces")
        trim = train_pieces
    key = {"parent": exported.manifest["cache_key"], "candidate": candidate.model_dump(mode="json"),
           "isa": profile.isa.value, "policy": profile.input.model_dump(),
           "recipe": recipe.model_dump() if recipe else None,
           "calibration_texts": sha256_json(calib_texts) if recipe else None,
           "validation": {"texts": sha256_json(dev.texts), "gold": sha256_json(dev.gold),
                          "max_drop": profile.budgets.max_accuracy_drop} if dev else None,
           "kept_pieces": sha256_json(trim.kept.tolist()) if trim is not None else None,
           "table_format": [TABLE_FORMAT, table_decode(profile)] if candidate.embedding_bits else None,
           "versions": library_versions("onnxruntime", "optimum", "optimum-onnx", "openvino", "nncf")}

    def build(tmp: Path) -> dict[str, Any]:
        calibration, validation = None, None
        source, table, keep_float = exported, None, ()
        if trim is not None or candidate.embedding_bits:
            source, table = _smaller_table(exported, tmp / ".vocabulary", trim, candidate.embedding_bits,
                                           table_decode(profile))
            keep_float = tuple(table.pop("nodes", ()))
        if recipe is not None:
            src_file = exported.path / exported.manifest["model_file"]
            session = open_session(runtime, src_file, 1, TOKENIZER_OUTPUTS)
            encode = TextEncoder(exported.path / "tokenizer.json", profile.input.max_length, profile.input.truncation,
                                 session.input_names)
            # One text per sample, unpadded: ranges then come from real token positions only.
            calibration = [encode([text]) for text in calib_texts]
            if dev is not None:
                validation = Validation([encode([text]) for text in dev.texts], dev.gold,
                                        profile.budgets.max_accuracy_drop)
        extra = {"keep_float": keep_float} if keep_float else {}
        model_file = backend(runtime).quantize(source.path, tmp, candidate, profile.isa, calibration, validation,
                                               **extra)
        shutil.rmtree(tmp / ".vocabulary", ignore_errors=True)
        for name in (*TOKENIZER_FILES, "config.json"):
            if (exported.path / name).is_file():
                shutil.copy2(exported.path / name, tmp / name)
        return {"kind": exported.kind, "runtime": runtime.value, "model_file": model_file.name,
                "labels": exported.manifest["labels"], "task": exported.manifest["task"],
                "quantization": candidate.model_dump(mode="json"), "isa": profile.isa.value,
                "calibration": ({"recipe": recipe.model_dump(mode="json"), "texts": len(calib_texts),
                                 "texts_sha256": sha256_json(calib_texts)} if recipe else None),
                "word_embeddings": ({**table, "chosen_by": "training split" if trim is not None else None}
                                    if table is not None else None),
                "parent": {"stage": exported.manifest["stage"], "cache_key": exported.manifest["cache_key"]}}

    return cached_stage(work_dir, f"quantize-{runtime.value}", key, build)


def table_decode(profile: TargetProfile) -> str:
    """Where the 4-bit table becomes bytes. A plain .onnx is decoded whole when the session loads (constant folding:
    the file stays small, calls and memory are the int8 table's); the .ort converter would fold it into the file
    itself, so mobile decodes the looked-up rows on each call instead."""
    return "load" if profile.format is ModelFormat.ONNX else "lookup"


def _smaller_table(exported: Artifact, out: Path, trim: Trim | None, bits: int | None,
                   decode: str) -> tuple[Artifact, dict]:
    """exported/model.onnx with a trimmed and/or 4-bit word-embedding table, as a sibling folder the backend reads
    like the export itself; returns it and what changed (rows kept, the 4-bit error, nodes to keep float)."""
    import onnx

    out.mkdir(parents=True)
    model = onnx.load(str(exported.path / exported.manifest["model_file"]))
    changed: dict[str, Any] = {"rows": None, "vocabulary": None, "bits": bits or 8}
    if trim is not None:
        counts = trim_word_embeddings(model, trim, exported.path / "tokenizer.json")
        changed.update(rows=counts["kept"], vocabulary=counts["vocabulary"])
    if bits == 4:
        packed = quantize_table_4bit(model, decode)
        changed.update(rows=packed["rows"], max_abs_error_4bit=packed["max_abs_error"], nodes=packed["nodes"],
                       decoded=("once, when the session loads" if decode == "load" else "per call, looked-up rows only"))
    onnx.save(model, str(out / "model.onnx"))
    for name in (*TOKENIZER_FILES, "config.json"):
        if (exported.path / name).is_file():
            shutil.copy2(exported.path / name, out / name)
    return Artifact(out, {**exported.manifest, "model_file": "model.onnx"}), changed
