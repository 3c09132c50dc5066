"""Target profiles: one YAML file per device in `targets/`, loaded into a frozen, validated `TargetProfile`.

Unknown keys and bad values are errors that name the file and the field; nothing is defaulted silently except
the documented defaults below. Light on purpose (pydantic + yaml): the device-side runner imports it.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgeft.errors import BadInput
from edgeft.resources import list_resource_files, resource_dir


class Runtime(str, Enum):
    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"


class ModelFormat(str, Enum):
    ONNX = "onnx"  # a plain .onnx file: desktop / server ONNX Runtime, and Optimum's ORTModel
    ORT = "ort"  # ONNX Runtime's flatbuffer format for ONNX Runtime Mobile (+ required_operators.config)
    OPENVINO_IR = "openvino-ir"  # openvino_model.xml + .bin


# Which runtime can read which format: the profile is rejected before any work if the pair is impossible.
FORMAT_RUNTIME = {ModelFormat.ONNX: Runtime.ONNXRUNTIME, ModelFormat.ORT: Runtime.ONNXRUNTIME,
                  ModelFormat.OPENVINO_IR: Runtime.OPENVINO}


class Scheme(str, Enum):
    FP32 = "fp32"
    DYNAMIC_INT8 = "dynamic-int8"  # weights int8 offline, activations quantized per call: no calibration data
    STATIC_INT8 = "static-int8"  # weights and activations int8 with ranges from a calibration recipe


class Isa(str, Enum):
    """The instruction set a profile is built for. Names follow Optimum's quantization presets."""

    AVX2 = "avx2"
    AVX512 = "avx512"
    AVX512_VNNI = "avx512_vnni"
    ARM64 = "arm64"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Quantization(_Strict):
    scheme: Scheme
    # Symmetric per-channel weights cost a little size and often save accuracy on int8 matmuls.
    per_channel: bool = False
    # Name of a recipe in calibration/ (static schemes only): which data, how many samples, which seed.
    calibration: str | None = None
    # ONNX operator types to quantize; empty means the ISA preset's own list. Static presets also quantize
    # LayerNormalization, Gather and more, which costs accuracy on small encoders: MatMul alone carries the FLOPs.
    operators: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _calibration_matches_scheme(self) -> Quantization:
        if self.scheme is Scheme.STATIC_INT8 and not self.calibration:
            raise ValueError("scheme 'static-int8' needs 'calibration: <recipe name in calibration/>'")
        if self.scheme is not Scheme.STATIC_INT8 and self.calibration:
            raise ValueError(f"'calibration' is only used by 'static-int8', not by '{self.scheme.value}'")
        return self


class InputPolicy(_Strict):
    # Tokens per text, special tokens included. Tweets average ~30 tokens; 128 keeps every one whole.
    max_length: int = Field(128, ge=8, le=512)
    # Which end of an over-long text is cut.
    truncation: Literal["right", "left"] = "right"


class Budgets(_Strict):
    # Shipped model's accuracy may be at most this much below the fp32 teacher's on the same held-out split.
    max_accuracy_drop: float = Field(0.01, ge=0.0, le=1.0)
    max_latency_p50_ms: float | None = Field(None, gt=0)
    max_size_mb: float | None = Field(None, gt=0)


class Bench(_Strict):
    # Warm-up calls are discarded: the first runs pay for allocation and kernel selection.
    warmup: int = Field(20, ge=0)
    # Timed batch-1 calls; 200 gives stable p90 and a usable p99 on texts of mixed length.
    runs: int = Field(200, ge=10)


class TargetProfile(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str
    runtime: Runtime
    format: ModelFormat
    isa: Isa
    quantization: Quantization
    input: InputPolicy = InputPolicy()
    # Intra-op threads on the device. 1 is the honest number for an app sharing a phone or a busy box.
    threads: int = Field(1, ge=1, le=256)
    budgets: Budgets = Budgets()
    bench: Bench = Bench()
    # Execution-provider hints written into the bundle for apps (ONNX Runtime Mobile: XNNPACK, NNAPI, CoreML).
    execution_providers: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _format_fits_runtime(self) -> TargetProfile:
        if FORMAT_RUNTIME[self.format] is not self.runtime:
            raise ValueError(f"format '{self.format.value}' is not read by runtime '{self.runtime.value}'; "
                             f"use runtime '{FORMAT_RUNTIME[self.format].value}'")
        return self


def targets_dir() -> Path:
    return resource_dir("targets")


def available_targets() -> list[str]:
    return sorted(p.stem for p in list_resource_files("targets", ".yaml"))


def profile_path(name_or_path: str) -> Path:
    """A profile name from targets/ or a path to a YAML file of the user's own."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.is_file():
            raise BadInput(f"target profile file {candidate} does not exist; pass a name from `edgeft targets` or a YAML path")
        return candidate
    path = targets_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        raise BadInput(f"unknown target '{name_or_path}'; choose one of: {', '.join(available_targets())} "
                       f"(`edgeft targets` lists them)")
    return path


def load_profile(name_or_path: str) -> TargetProfile:
    path = profile_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BadInput(f"{path}: cannot read the profile ({exc}); fix the YAML syntax") from None
    if not isinstance(raw, dict):
        raise BadInput(f"{path}: a profile must be a YAML mapping of fields, got {type(raw).__name__}")
    try:
        return TargetProfile.model_validate(raw)
    except ValidationError as exc:
        raise BadInput(f"{path}: {describe_validation_error(exc)}") from None


def describe_validation_error(exc: ValidationError) -> str:
    """Pydantic's first error as one line: the dotted field, what is wrong, the value given."""
    errors = exc.errors()
    # A misspelt key shows up as "unknown" plus "missing": the unknown one is the useful half, so it goes first.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    field = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"unknown field '{field}'; remove it or check its spelling"
    message = "is required" if err["type"] == "missing" else err["msg"].removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    shown = "" if err["type"] in ("missing", "value_error") else f", got {err.get('input')!r}"
    return f"field '{field}': {message}{shown}{more}"
