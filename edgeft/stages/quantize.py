"""onnx | openvino-ir -> the same kind, quantized as the target profile says (or copied through for fp32)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from edgeft.artifact import Artifact, cached_stage, library_versions, sha256_json
from edgeft.backends import backend
from edgeft.calibration import CalibrationRecipe
from edgeft.data import TextDataset, Split, stratified_subset
from edgeft.errors import BadInput
from edgeft.profile import Runtime, Scheme, TargetProfile
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
from edgeft.stages.torch_model import TOKENIZER_FILES


def check_supported(profile: TargetProfile) -> None:
    """Fail before any work if the profile asks its runtime for a scheme it has no implementation of."""
    schemes = backend(profile.runtime).SCHEMES
    if profile.quantization.scheme not in schemes:
        raise BadInput(f"target '{profile.name}': field 'quantization.scheme' '{profile.quantization.scheme.value}' "
                       f"is not available for runtime '{profile.runtime.value}'; use one of "
                       f"{', '.join(s.value for s in schemes)}")


def calibration_texts(data: TextDataset, split: Split, recipe: CalibrationRecipe) -> list[str]:
    chosen = stratified_subset(split.train, data.labels, recipe.samples, recipe.seed)
    return [data.texts[i] for i in chosen]


def quantize(exported: Artifact, profile: TargetProfile, recipe: CalibrationRecipe | None,
             calib_texts: list[str], work_dir: Path) -> Artifact:
    runtime = Runtime(exported.manifest["runtime"])
    q = profile.quantization
    key = {"parent": exported.manifest["cache_key"], "quantization": q.model_dump(), "isa": profile.isa.value,
           "policy": profile.input.model_dump(), "recipe": recipe.model_dump() if recipe else None,
           "calibration_texts": sha256_json(calib_texts) if recipe else None,
           "versions": library_versions("onnxruntime", "optimum", "optimum-onnx", "openvino", "nncf")}

    def build(tmp: Path) -> dict[str, Any]:
        calibration = None
        if q.scheme is Scheme.STATIC_INT8:
            src_file = exported.path / exported.manifest["model_file"]
            session = backend(runtime).open_session(src_file, 1, TOKENIZER_OUTPUTS)
            encode = TextEncoder(exported.path / "tokenizer.json", profile.input.max_length, profile.input.truncation,
                                 session.input_names)
            # One text per sample, unpadded: ranges then come from real token positions only.
            calibration = [encode([text]) for text in calib_texts]
        model_file = backend(runtime).quantize(exported.path, tmp, q, profile.isa, calibration)
        for name in (*TOKENIZER_FILES, "config.json"):
            if (exported.path / name).is_file():
                shutil.copy2(exported.path / name, tmp / name)
        return {"kind": exported.kind, "runtime": runtime.value, "model_file": model_file.name,
                "labels": exported.manifest["labels"], "task": exported.manifest["task"],
                "quantization": q.model_dump(mode="json"), "isa": profile.isa.value,
                "calibration": ({"recipe": recipe.model_dump(mode="json"), "texts": len(calib_texts),
                                 "texts_sha256": sha256_json(calib_texts)} if recipe else None),
                "parent": {"stage": exported.manifest["stage"], "cache_key": exported.manifest["cache_key"]}}

    return cached_stage(work_dir, f"quantize-{runtime.value}", key, build)
