"""ONNX Runtime: sessions for .onnx / .ort files, Optimum export, and quantization with Optimum's ORTQuantizer."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from edgeft.backends.session import check_inputs
from edgeft.errors import MissingBackend, StageFailed
from edgeft.profile import Isa, ModelFormat, Quantization, Scheme

MODEL_FILES = {ModelFormat.ONNX: "model.onnx", ModelFormat.ORT: "model.ort"}
SCHEMES = (Scheme.FP32, Scheme.DYNAMIC_INT8, Scheme.STATIC_INT8)


class OrtSession:
    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Benchmarks on shared machines: spinning worker threads steal the other core's time.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0" if threads == 1 else "1")
        if path.suffix == ".ort":
            # A .ort file was saved with its optimisations applied; re-applying them at load fails (STACK.md trap 8).
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise StageFailed(f"onnxruntime {ort.__version__} cannot load {path}: {exc}") from None
        self.input_names = tuple(i.name for i in self._session.get_inputs())
        self._output = self._session.get_outputs()[0].name

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self._session.run([self._output], feeds)[0]


def open_session(path: Path, threads: int, provided: tuple[str, ...]) -> OrtSession:
    session = OrtSession(path, threads)
    check_inputs(path.name, session.input_names, provided)
    return session


def runtime_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


# ---- build side: everything below imports Optimum inside the call ----

def _optimum_ort():
    try:
        import optimum.onnxruntime as optimum_ort
    except ImportError:
        raise MissingBackend("optimum-onnx (Optimum's ONNX Runtime exporter)", "build") from None
    return optimum_ort


def export(hf_dir: Path, out: Path) -> Path:
    """Optimum's ONNX export of a sequence-classification model folder: out/model.onnx + config.json."""
    optimum_ort = _optimum_ort()
    model = optimum_ort.ORTModelForSequenceClassification.from_pretrained(hf_dir, export=True)
    model.save_pretrained(out)
    return out / MODEL_FILES[ModelFormat.ONNX]


def quantize(src: Path, out: Path, quantization: Quantization, isa: Isa,
             calibration: list[dict[str, np.ndarray]] | None) -> Path:
    """Quantize src/model.onnx into out/model.onnx with Optimum's ISA preset (`AutoQuantizationConfig.<isa>`)."""
    optimum_ort = _optimum_ort()
    from optimum.onnxruntime.configuration import AutoCalibrationConfig, AutoQuantizationConfig

    out.mkdir(parents=True, exist_ok=True)
    if quantization.scheme is Scheme.FP32:
        shutil.copy2(src / "model.onnx", out / "model.onnx")
        return out / "model.onnx"
    static = quantization.scheme is Scheme.STATIC_INT8
    preset = getattr(AutoQuantizationConfig, isa.value)
    operators = list(quantization.operators) or None
    qconfig = preset(is_static=static, per_channel=quantization.per_channel, operators_to_quantize=operators)
    quantizer = optimum_ort.ORTQuantizer.from_pretrained(src, file_name="model.onnx")
    ranges = None
    if static:
        if not calibration:
            raise StageFailed("static int8 needs calibration texts; the calibration recipe selected none")
        from datasets import Dataset

        columns = {name: [feed[name][0].tolist() for feed in calibration] for name in calibration[0]}
        dataset = Dataset.from_dict(columns)
        # MinMax only: histogram calibration fails on BERT's -3.4e38 attention-mask values (STACK.md trap 1).
        calib_config = AutoCalibrationConfig.minmax(dataset)
        # The augmented graph defaults to the current directory: keep it inside the stage's temporary folder.
        augmented = out / "augmented_model.onnx"
        ranges = quantizer.fit(dataset=dataset, calibration_config=calib_config, onnx_augmented_model_name=augmented,
                               operators_to_quantize=qconfig.operators_to_quantize, batch_size=1, use_gpu=False)
        augmented.unlink(missing_ok=True)
    quantizer.quantize(save_dir=out, quantization_config=qconfig, calibration_tensors_range=ranges)
    produced = out / "model_quantized.onnx"
    if not produced.is_file():
        raise StageFailed(f"ORTQuantizer wrote no {produced.name} in {out}")
    # ort_config.json stays beside it: Optimum's own record of the exact quantization config.
    produced.rename(out / "model.onnx")
    return out / "model.onnx"


def convert(src_model: Path, out: Path, fmt: ModelFormat) -> Path:
    """Write the shipped format: a plain copy for .onnx, ONNX Runtime's converter for .ort (ORT Mobile)."""
    out.mkdir(parents=True, exist_ok=True)
    if fmt is ModelFormat.ONNX:
        shutil.copy2(src_model, out / "model.onnx")
        return out / "model.onnx"
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    work = out / ".ort-work"
    work.mkdir()
    shutil.copy2(src_model, work / "model.onnx")
    # Fixed optimisations: the .ort file then runs on any ORT Mobile build without runtime graph rewrites.
    convert_onnx_models_to_ort(work, output_dir=work, optimization_styles=[OptimizationStyle.Fixed],
                               enable_type_reduction=False)
    produced = work / "model.ort"
    config = work / "required_operators.config"
    if not produced.is_file() or not config.is_file():
        raise StageFailed(f"onnxruntime's .ort converter did not write model.ort and required_operators.config in {work}")
    shutil.move(produced, out / "model.ort")
    shutil.move(config, out / "required_operators.config")
    shutil.rmtree(work)
    return out / "model.ort"
