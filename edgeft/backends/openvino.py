"""OpenVINO: compiled CPU models from IR, Optimum-Intel export, and NNCF post-training quantization."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from edgeft.backends.session import check_inputs
from edgeft.errors import MissingBackend, StageFailed
from edgeft.profile import Isa, ModelFormat, Quantization, Scheme

MODEL_FILES = {ModelFormat.OPENVINO_IR: "openvino_model.xml"}
SCHEMES = (Scheme.FP32, Scheme.STATIC_INT8)


def _openvino():
    try:
        import openvino
    except ImportError:
        raise MissingBackend("openvino", "openvino") from None
    return openvino


class OvSession:
    def __init__(self, path: Path, threads: int) -> None:
        ov = _openvino()
        core = ov.Core()
        try:
            model = core.read_model(str(path))
            # LATENCY: one stream, the batch-1 case an app or a CI gate measures. f32 precision: on CPUs with
            # bf16 units the plugin would otherwise run an fp32 IR in bf16, so accuracy would depend on the device.
            self._compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                               "PERFORMANCE_HINT": "LATENCY",
                                                               "INFERENCE_PRECISION_HINT": "f32"})
        except Exception as exc:  # openvino raises RuntimeError subclasses without a stable type
            raise StageFailed(f"openvino {ov.__version__} cannot compile {path}: {exc}") from None
        self.input_names = tuple(port.get_any_name() for port in self._compiled.inputs)
        self._request = self._compiled.create_infer_request()

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self._request.infer(feeds)[0].copy()


def open_session(path: Path, threads: int, provided: tuple[str, ...]) -> OvSession:
    session = OvSession(path, threads)
    check_inputs(path.name, session.input_names, provided)
    return session


def runtime_version() -> str:
    return _openvino().__version__


# ---- build side ----

def export(hf_dir: Path, out: Path) -> Path:
    """Optimum-Intel's OpenVINO export: out/openvino_model.xml + .bin + config.json, weights kept in fp32."""
    try:
        from optimum.intel import OVModelForSequenceClassification
    except ImportError:
        raise MissingBackend("optimum-intel", "build") from None
    # load_in_8bit=False: Optimum-Intel would otherwise decide on weight compression by model size.
    model = OVModelForSequenceClassification.from_pretrained(hf_dir, export=True, compile=False, load_in_8bit=False)
    model.save_pretrained(out)
    return out / MODEL_FILES[ModelFormat.OPENVINO_IR]


def quantize(src: Path, out: Path, quantization: Quantization, isa: Isa,
             calibration: list[dict[str, np.ndarray]] | None) -> Path:
    """NNCF post-training quantization of src/openvino_model.xml (the transformer preset keeps sensitive ops in fp32)."""
    ov = _openvino()
    out.mkdir(parents=True, exist_ok=True)
    source = src / MODEL_FILES[ModelFormat.OPENVINO_IR]
    if quantization.scheme is Scheme.FP32:
        for file in (source, source.with_suffix(".bin")):
            shutil.copy2(file, out / file.name)
        return out / source.name
    if not calibration:
        raise StageFailed("static int8 needs calibration texts; the calibration recipe selected none")
    try:
        import nncf
    except ImportError:
        raise MissingBackend("nncf", "build") from None
    model = ov.Core().read_model(str(source))
    quantized = nncf.quantize(model, nncf.Dataset(calibration), subset_size=len(calibration),
                              model_type=nncf.ModelType.TRANSFORMER, preset=nncf.QuantizationPreset.MIXED)
    # compress_to_fp16=False: save_model halves weights by default (STACK.md trap 7), which is not what was measured.
    ov.save_model(quantized, str(out / source.name), compress_to_fp16=False)
    return out / source.name


def convert(src_model: Path, out: Path, fmt: ModelFormat) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for file in (src_model, src_model.with_suffix(".bin")):
        shutil.copy2(file, out / file.name)
    return out / src_model.name
