"""Target profiles: one YAML file per device in `targets/`, loaded into a frozen, validated `TargetProfile`.

Unknown keys and bad values are errors that name the file and the field; nothing is defaulted silently except
the documented defaults below. Light on purpose (pydantic + yaml): `edgeft gate` and `edgeft targets` import it; the device runtime does not.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgeft.errors import BadInput
from edgeft.resources import list_resource_files, resource_dir
from edgeft.runtime.sessions import Runtime  # the runtime owns the name; profiles choose one
from edgeft.student_recipe import Student


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
    WEIGHT_INT8 = "weight-int8"  # weights stored int8 and decompressed at run time (OpenVINO/NNCF): size, not speed


class Isa(str, Enum):
    """The instruction set a profile is built for. Names follow Optimum's quantization presets."""

    AVX2 = "avx2"
    AVX512 = "avx512"
    AVX512_VNNI = "avx512_vnni"
    ARM64 = "arm64"

    @property
    def exact_int8(self) -> bool:
        """Whether the target's int8 matmul is exact: Arm dot products and VNNI accumulate in int32, where x86
        without VNNI sums u8 x s8 pairs into saturating int16. A build host of the second kind scores the first
        kind's models with exact kernels (runtime.onnxruntime_session), so that accuracy is the target's."""
        return self in (Isa.ARM64, Isa.AVX512_VNNI)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Exclude(str, Enum):
    """Parts of an encoder that a candidate keeps in fp32; each backend maps them to its own op types or nodes."""

    EMBEDDINGS = "embeddings"  # the embedding lookups (Gather): a third of MiniLM's weights, and range-sensitive
    LAYERNORM = "layernorm"
    GELU = "gelu"
    SOFTMAX = "softmax"
    RESIDUAL_ADD = "residual-add"
    CLASSIFIER = "classifier"  # the pooler and classifier matmuls between the [CLS] vector and the logits


class Candidate(_Strict):
    """One way to make the exported fp32 model smaller or faster. A profile lists several; the build measures them."""

    # Short id shown in the candidate table and recorded in the manifest, e.g. dynamic-int8-pc.
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    scheme: Scheme
    # Symmetric per-channel weights cost a little size and often save accuracy on int8 matmuls.
    per_channel: bool = False
    # Static schemes: zero-point-free ranges. Symmetric weights are the presets' default; symmetric activations
    # suit s8s8 kernels (VNNI, Arm dot-product), asymmetric ones suit ReLU-free encoders' skewed activations.
    symmetric_weights: bool = True
    symmetric_activations: bool = False
    # Name of a recipe in calibration/ (static schemes only): which data, how many samples, which seed.
    calibration: str | None = None
    # ONNX operator types to quantize (ONNX Runtime only); empty means the ISA preset's own list. Static presets also
    # quantize LayerNormalization, Gather and more, which costs accuracy on small encoders: MatMul carries the FLOPs.
    operators: tuple[str, ...] = ()
    # Parts kept in fp32 whatever the operator list says.
    exclude: tuple[Exclude, ...] = ()
    # ONNX Runtime fp32 only: graph optimisation written into the file (Optimum's ORTOptimizer): 1 = basic fusions,
    # 2 = + transformer fusions (attention, GELU, LayerNorm), 99 = + layout rewrites. None leaves the file as
    # exported (the runtime still applies its own online optimisations when loading it). Not for int8: ORT's
    # quantizer cannot type the fused contrib ops (measured: "Unable to find data type" on fused MiniLM).
    optimization: Literal[1, 2, 99] | None = None
    # ONNX Runtime int8 only: the weights' integer type and range, overriding the ISA preset's. Optimum's avx2
    # preset stores u8 weights (u8 x u8 kernels); s8 weights run ONNX Runtime's u8 x s8 kernels (VNNI vpdpbusd,
    # AVX2 vpmaddubsw), measured 1.5x faster on the 2-core build host. On AVX2 / AVX-512 without VNNI,
    # vpmaddubsw adds two u8 x s8 products into a saturating int16, so s8 weights there need reduce_range (7-bit
    # symmetric weights in [-64, 64]: 2 x 255 x 64 < 32767), which the profile check enforces.
    weight_type: Literal["u8", "s8"] | None = None
    reduce_range: bool | None = None
    # OpenVINO static-int8 only: NNCF's accuracy-aware quantization, which reverts the most harmful quantized
    # operations to fp32 until the dev-split drop is within the profile's accuracy budget.
    accuracy_control: bool = False
    # ONNX graphs only (stages/vocabulary.py): 'train' keeps the word-embedding rows of the pieces the training split
    # uses (plus special tokens) and sends every other id to [UNK]'s row through an id remap inside the graph; the
    # tokenizer is unchanged. Whether unseen pieces cost accuracy is measured on dev like every other option.
    vocabulary: Literal["full", "train"] = "full"
    # ONNX graphs only: the word-embedding table as 4-bit codes with a scale and zero point per row (a quarter of
    # fp32, half of the int8 presets' table), dequantized after the lookup.
    embedding_bits: Literal[4] | None = None

    @model_validator(mode="after")
    def _options_match_scheme(self) -> Candidate:
        static = self.scheme is Scheme.STATIC_INT8
        if static and not self.calibration:
            raise ValueError(f"candidate '{self.name}': scheme 'static-int8' needs 'calibration: <recipe name in calibration/>'")
        if not static and self.calibration:
            raise ValueError(f"candidate '{self.name}': 'calibration' is only used by 'static-int8', not by '{self.scheme.value}'")
        if self.accuracy_control and not static:
            raise ValueError(f"candidate '{self.name}': 'accuracy_control' needs scheme 'static-int8'")
        if self.scheme is Scheme.FP32 and (self.operators or self.exclude or self.per_channel):
            raise ValueError(f"candidate '{self.name}': fp32 quantizes nothing; drop operators / exclude / per_channel")
        if (self.weight_type or self.reduce_range is not None) and self.scheme not in (Scheme.DYNAMIC_INT8,
                                                                                      Scheme.STATIC_INT8):
            raise ValueError(f"candidate '{self.name}': 'weight_type' / 'reduce_range' are for dynamic-int8 and "
                             f"static-int8, not '{self.scheme.value}'")
        if self.optimization is not None and self.scheme is not Scheme.FP32:
            raise ValueError(f"candidate '{self.name}': 'optimization' is for fp32 candidates; ONNX Runtime's "
                             f"quantizer cannot read the fused graph")
        return self

    def summary(self) -> str:
        """The options in a few words, for tables."""
        parts = [self.scheme.value]
        if self.per_channel:
            parts.append("per-channel")
        if self.scheme is Scheme.STATIC_INT8:
            parts.append(f"{'sym' if self.symmetric_activations else 'asym'} act, {self.calibration}")
        if self.weight_type:
            parts.append(f"{self.weight_type} weights{', 7-bit' if self.reduce_range else ''}")
        if self.operators:
            parts.append("+".join(self.operators) + " only")
        if self.exclude:
            parts.append("fp32 " + "+".join(e.value for e in self.exclude))
        if self.optimization is not None:
            parts.append(f"ORT opt level {self.optimization}")
        if self.accuracy_control:
            parts.append("accuracy control")
        if self.vocabulary != "full":
            parts.append(f"{self.vocabulary} vocabulary")
        if self.embedding_bits:
            parts.append(f"{self.embedding_bits}-bit embeddings")
        return ", ".join(parts)


class Quantization(_Strict):
    """The candidates a build measures, in the profile's order of preference, or one pinned candidate."""

    # Order matters: it is the preference order when latency cannot be measured on this host (arm64 on x86, say)
    # and breaks near-ties when it can.
    candidates: tuple[Candidate, ...] = Field(min_length=1)
    # Name of one candidate to ship without a search (no dev-split evaluation, no latency race).
    pin: str | None = None

    @model_validator(mode="after")
    def _usable(self) -> Quantization:
        names = [c.name for c in self.candidates]
        if len(set(names)) != len(names):
            raise ValueError(f"candidate names must be unique, got {names}")
        if self.pin is not None and self.pin not in names:
            raise ValueError(f"'pin' is '{self.pin}', which is not a candidate; use one of {names}")
        if self.pin is None and not any(c.scheme is Scheme.FP32 for c in self.candidates):
            # fp32 is both the accuracy reference and the latency floor: int8 slower than it is never shipped.
            raise ValueError("a search needs an fp32 candidate (the latency floor no shipped model may exceed); "
                             "add {name: fp32, scheme: fp32} or pin one candidate")
        return self

    def searched(self) -> tuple[Candidate, ...]:
        """What the build makes: the pinned candidate alone, or every candidate."""
        return tuple(c for c in self.candidates if self.pin in (None, c.name))


class InputPolicy(_Strict):
    # Tokens per text, special tokens included. Tweets average ~30 tokens; 128 keeps every one whole.
    max_length: int = Field(128, ge=8, le=512)
    # Which end of an over-long text is cut.
    truncation: Literal["right", "left"] = "right"


class Budgets(_Strict):
    # Shipped model's accuracy may be at most this much below the fp32 teacher's on the same held-out split.
    max_accuracy_drop: float = Field(0.01, ge=0.0, le=1.0)
    # NER: the shipped model's entity F1 may be at most this much below the fp32 model's (2 points).
    max_f1_drop: float = Field(0.02, ge=0.0, le=1.0)
    max_latency_p50_ms: float | None = Field(None, gt=0)
    max_size_mb: float | None = Field(None, gt=0)

    def max_drop(self, task: str) -> float:
        """The budget of the task's headline metric: accuracy (classification) or entity F1 (NER)."""
        return self.max_f1_drop if task == "ner" else self.max_accuracy_drop


class Bench(_Strict):
    # Warm-up calls are discarded: the first runs pay for allocation and kernel selection.
    warmup: int = Field(20, ge=0)
    # Timed batch-1 calls per round; 200 gives stable p90 and a usable p99 on texts of mixed length.
    runs: int = Field(200, ge=10)
    # `edgeft bench` repeats the timed calls this many times: the spread of the rounds' p50 is the noise a gate
    # allows for. (The build's own bench is one round.)
    rounds: int = Field(5, ge=1)


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
    # Ship a distilled student instead of the fine-tuned teacher (None: ship the teacher).
    student: Student | None = None
    # The student of `--task ner` builds, where it differs (token tags are measured apart from sentence labels).
    ner_student: Student | None = None

    def student_for(self, task: str) -> Student | None:
        return self.ner_student if task == "ner" and self.ner_student is not None else self.student

    def hardware_present(self, host: dict[str, Any]) -> bool:
        """Whether a host (`runtime.bench.host_description()`) has the ISA this profile is built for."""
        from edgeft.runtime.bench import isa_present  # the rule lives with the runtime: `edgeft bench` needs it too

        return isa_present(self.isa.value, host)

    @model_validator(mode="after")
    def _format_fits_runtime(self) -> TargetProfile:
        if FORMAT_RUNTIME[self.format] is not self.runtime:
            raise ValueError(f"format '{self.format.value}' is not read by runtime '{self.runtime.value}'; "
                             f"use runtime '{FORMAT_RUNTIME[self.format].value}'")
        if self.isa in (Isa.AVX2, Isa.AVX512):
            for c in self.quantization.candidates:
                if c.weight_type == "s8" and not c.reduce_range:
                    raise ValueError(f"candidate '{c.name}': s8 weights on {self.isa.value} without VNNI saturate "
                                     f"(vpmaddubsw sums into int16); add 'reduce_range: true' or use 'weight_type: u8'")
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
