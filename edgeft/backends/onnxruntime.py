"""ONNX Runtime, build side: Optimum export, quantization with Optimum's ORTQuantizer, .ort conversion. Sessions are
the runtime's (edgeft.runtime.sessions)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from edgeft.backends.validation import Validation
from edgeft.errors import MissingBackend, StageFailed
from edgeft.profile import Candidate, Exclude, Isa, ModelFormat, Scheme
from edgeft.stages.pooling import is_mean_pooled
from edgeft.stages.torch_model import load_classifier

MODEL_FILES = {ModelFormat.ONNX: "model.onnx", ModelFormat.ORT: "model.ort"}
SCHEMES = (Scheme.FP32, Scheme.DYNAMIC_INT8, Scheme.STATIC_INT8, Scheme.WEIGHT_INT8)
# Candidate options this backend implements (the others are refused before any work).
OPTIONS = ("per_channel", "symmetric_weights", "symmetric_activations", "operators", "exclude", "optimization",
           "weight_type", "reduce_range", "vocabulary", "embedding_bits")
# Schemes that take fewer of them: weight-only int8 has fixed symmetric blocks and may keep the classifier float.
SCHEME_OPTIONS = {Scheme.WEIGHT_INT8: ("exclude",)}


# Everything below imports Optimum inside the call: importing this module stays cheap.

def _optimum_ort():
    try:
        import optimum.onnxruntime as optimum_ort
    except ImportError:
        raise MissingBackend("optimum-onnx (Optimum's ONNX Runtime exporter)", "build") from None
    return optimum_ort


def export(hf_dir: Path, out: Path, task: str = "classification") -> Path:
    """Optimum's ONNX export of a sequence- or token-classification model folder: out/model.onnx + config.json."""
    optimum_ort = _optimum_ort()
    if is_mean_pooled(hf_dir, task):
        # Optimum's folder export would build the stock [CLS]-pooled class; the mean-pooled model goes in as loaded.
        from optimum.exporters.onnx import onnx_export_from_model

        onnx_export_from_model(load_classifier(hf_dir), out, task="text-classification")
        return out / MODEL_FILES[ModelFormat.ONNX]
    cls = optimum_ort.ORTModelForTokenClassification if task == "ner" else optimum_ort.ORTModelForSequenceClassification
    model = cls.from_pretrained(hf_dir, export=True)
    model.save_pretrained(out)
    return out / MODEL_FILES[ModelFormat.ONNX]


# Which ONNX op types each excluded part is made of (fused and unfused forms), and what the default lists hold.
EXCLUDED_OPS = {
    Exclude.EMBEDDINGS: ("Gather", "GatherElements", "EmbedLayerNormalization"),
    Exclude.LAYERNORM: ("LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization"),
    Exclude.GELU: ("Gelu", "FastGelu", "BiasGelu", "Erf"),
    Exclude.SOFTMAX: ("Softmax",),
    Exclude.RESIDUAL_ADD: ("Add",),
    Exclude.CLASSIFIER: (),  # by node name: see classifier_nodes
}


def quantize(src: Path, out: Path, candidate: Candidate, isa: Isa,
             calibration: list[dict[str, np.ndarray]] | None,
             validation: Validation | None = None, keep_float: tuple[str, ...] = ()) -> Path:
    """src/model.onnx -> out/model.onnx as the candidate says: fp32 (optionally graph-optimised by ORTOptimizer), or
    quantized with Optimum's ISA preset (`AutoQuantizationConfig.<isa>`) narrowed by the candidate's options.
    `keep_float`: nodes no quantizer may touch (the decoding of a 4-bit embedding table, stages/vocabulary.py)."""
    optimum_ort = _optimum_ort()
    from optimum.onnxruntime.configuration import AutoCalibrationConfig, AutoQuantizationConfig

    del validation  # accuracy-controlled quantization is NNCF's (OpenVINO); ONNX Runtime candidates never ask for it
    out.mkdir(parents=True, exist_ok=True)
    if candidate.scheme is Scheme.FP32:
        source = _optimize(src, out / ".optimized", candidate.optimization) if candidate.optimization else src
        shutil.copy2(source / "model.onnx", out / "model.onnx")
        shutil.rmtree(out / ".optimized", ignore_errors=True)
        return out / "model.onnx"
    if candidate.scheme is Scheme.WEIGHT_INT8:
        return _weight_only(src / "model.onnx", out, candidate, keep_float)
    source = src
    static = candidate.scheme is Scheme.STATIC_INT8
    preset = getattr(AutoQuantizationConfig, isa.value)
    qconfig = preset(is_static=static, per_channel=candidate.per_channel,
                     use_symmetric_weights=candidate.symmetric_weights,
                     use_symmetric_activations=candidate.symmetric_activations)
    if candidate.weight_type:
        from onnxruntime.quantization import QuantType

        qconfig.weights_dtype = QuantType.QInt8 if candidate.weight_type == "s8" else QuantType.QUInt8
    if candidate.reduce_range is not None:
        qconfig.reduce_range = candidate.reduce_range
    excluded_ops = {op for part in candidate.exclude for op in EXCLUDED_OPS[part]}
    qconfig.operators_to_quantize = [op for op in (candidate.operators or qconfig.operators_to_quantize)
                                     if op not in excluded_ops]
    qconfig.nodes_to_exclude = [*keep_float, *(classifier_nodes(source / "model.onnx")
                                               if Exclude.CLASSIFIER in candidate.exclude else [])]
    quantizer = optimum_ort.ORTQuantizer.from_pretrained(source, file_name="model.onnx")
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


def _weight_only(src_model: Path, out: Path, candidate: Candidate, keep_float: tuple[str, ...]) -> Path:
    """MatMul weights as int8 blocks (ONNX Runtime's MatMulNBits, 8 bits, 32 per block, symmetric); activations stay
    float, and accuracy level 4 lets the kernel use int8 dot products inside. Few predictions change (NER on
    WNUT-16: 3 of 230 dev sentences, against 13 to 30 for dynamic or static int8), the file shrinks by the
    matmuls' share, the embeddings (Gather) stay fp32."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    excluded = [*keep_float, *(classifier_nodes(src_model) if Exclude.CLASSIFIER in candidate.exclude else [])]
    config = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, accuracy_level=4, bits=8)
    quantizer = MatMulNBitsQuantizer(onnx.load(str(src_model)), nodes_to_exclude=excluded, algo_config=config)
    quantizer.process()
    quantizer.model.save_model_to_file(str(out / "model.onnx"), use_external_data_format=False)
    return out / "model.onnx"


def _optimize(src: Path, out: Path, level: int) -> Path:
    """Optimum's ORTOptimizer at `level`, into out/model.onnx (+ config.json, which the quantizer reads)."""
    optimum_ort = _optimum_ort()
    from optimum.onnxruntime.configuration import OptimizationConfig

    optimizer = optimum_ort.ORTOptimizer.from_pretrained(src, file_names=["model.onnx"])
    optimizer.optimize(OptimizationConfig(optimization_level=level), save_dir=out)
    produced = out / "model_optimized.onnx"
    if not produced.is_file():
        raise StageFailed(f"ORTOptimizer wrote no {produced.name} in {out}")
    produced.rename(out / "model.onnx")
    if not (out / "config.json").is_file():
        shutil.copy2(src / "config.json", out / "config.json")
    return out


def classifier_nodes(model_file: Path) -> list[str]:
    """Names of the matmuls between the [CLS] vector and the logits (pooler + classifier), found by walking back
    from the graph's first output until the token-selecting Gather/Slice or a LayerNorm."""
    import onnx

    graph = onnx.load(str(model_file), load_external_data=False).graph
    producer = {name: node for node in graph.node for name in node.output}
    stop = {"Gather", "Slice", "LayerNormalization", "SkipLayerNormalization"}
    found, todo, seen = [], [graph.output[0].name], set()
    while todo:
        node = producer.get(todo.pop())
        if node is None or node.name in seen or node.op_type in stop:
            continue
        seen.add(node.name)
        if node.op_type in ("MatMul", "Gemm"):
            found.append(node.name)
        todo.extend(node.input)
    if not found:
        raise StageFailed(f"{model_file}: found no classifier matmul between the logits and the [CLS] selection")
    return found


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
    # Fixed optimisations: the .ort file then runs on any ORT Mobile build without runtime graph rewrites. No
    # target_platform="arm": with the presets' u8 activations it gives the same nodes and initializer types, and with
    # s8 activations it keeps s8 x s8 QLinearMatMul nodes that x86 ONNX Runtime cannot load, so an x86 build host
    # could not score the file it ships (onnxruntime 1.32; docs/experiments/int8-arithmetic.md, last section).
    convert_onnx_models_to_ort(work, output_dir=work, optimization_styles=[OptimizationStyle.Fixed],
                               enable_type_reduction=False)
    produced = work / "model.ort"
    config = work / "required_operators.config"
    if not produced.is_file() or not config.is_file():
        raise StageFailed(f"onnxruntime's .ort converter did not write model.ort and required_operators.config "
                          f"in {work}")
    shutil.move(produced, out / "model.ort")
    # The converter's header names the file it read by its absolute path, a temporary folder of this build: the
    # shipped config names model.ort, so it holds no path of the build machine and two builds write the same bytes.
    header = re.compile(r"^# - .*model\.ort$", re.MULTILINE)
    (out / "required_operators.config").write_text(header.sub("# - model.ort", config.read_text(encoding="utf-8")),
                                                   encoding="utf-8")
    shutil.rmtree(work)
    return out / "model.ort"
