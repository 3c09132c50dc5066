"""OpenVINO, build side: Optimum-Intel export and NNCF post-training quantization. Sessions (compiled CPU models) are
the runtime's (edgeft.runtime.sessions)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from edgeft.backends.validation import Validation
from edgeft.errors import MissingBackend, StageFailed
from edgeft.runtime.openvino_session import openvino_module
from edgeft.profile import Candidate, Exclude, Isa, ModelFormat, Scheme
from edgeft.stages.pooling import saved_pooling
from edgeft.stages.torch_model import load_classifier

MODEL_FILES = {ModelFormat.OPENVINO_IR: "openvino_model.xml"}
SCHEMES = (Scheme.FP32, Scheme.STATIC_INT8, Scheme.WEIGHT_INT8)
# Candidate options this backend implements. NNCF's int8 weights are always symmetric and per-channel.
OPTIONS = ("symmetric_activations", "exclude", "accuracy_control")


def export(hf_dir: Path, out: Path, task: str = "classification") -> Path:
    """Optimum-Intel's OpenVINO export: out/openvino_model.xml + .bin + config.json, weights kept in fp32."""
    try:
        from optimum.intel import OVModelForSequenceClassification, OVModelForTokenClassification
    except ImportError:
        raise MissingBackend("optimum-intel", "build") from None
    if task == "classification" and saved_pooling(hf_dir) == "mean":
        # As for ONNX: the folder export would build the stock [CLS]-pooled class. No ov_config: weights stay fp32.
        from optimum.exporters.openvino import export_from_model

        export_from_model(load_classifier(hf_dir), out, task="text-classification")
        return out / MODEL_FILES[ModelFormat.OPENVINO_IR]
    cls = OVModelForTokenClassification if task == "ner" else OVModelForSequenceClassification
    # load_in_8bit=False: Optimum-Intel would otherwise decide on weight compression by model size.
    model = cls.from_pretrained(hf_dir, export=True, compile=False, load_in_8bit=False)
    model.save_pretrained(out)
    return out / MODEL_FILES[ModelFormat.OPENVINO_IR]


# OpenVINO op types of each part a candidate keeps in fp32 (the classifier goes by node name).
EXCLUDED_TYPES = {
    Exclude.EMBEDDINGS: ("Gather",),
    Exclude.LAYERNORM: ("MVN",),
    Exclude.GELU: ("Gelu",),
    Exclude.SOFTMAX: ("SoftMax",),
    Exclude.RESIDUAL_ADD: ("Add",),
    Exclude.CLASSIFIER: (),
}


def quantize(src: Path, out: Path, candidate: Candidate, isa: Isa,
             calibration: list[dict[str, np.ndarray]] | None,
             validation: Validation | None = None) -> Path:
    """NNCF on src/openvino_model.xml: post-training int8 (transformer preset, weights per-channel, optionally
    accuracy-controlled on the dev split), weight-only int8 compression, or a plain copy for fp32."""
    ov = openvino_module()
    del isa  # the CPU plugin picks its int8 kernels for the CPU it runs on
    out.mkdir(parents=True, exist_ok=True)
    source = src / MODEL_FILES[ModelFormat.OPENVINO_IR]
    if candidate.scheme is Scheme.FP32:
        for file in (source, source.with_suffix(".bin")):
            shutil.copy2(file, out / file.name)
        return out / source.name
    try:
        import nncf
    except ImportError:
        raise MissingBackend("nncf", "build") from None
    model = ov.Core().read_model(str(source))
    ignored = nncf.IgnoredScope(types=[t for part in candidate.exclude for t in EXCLUDED_TYPES[part]],
                                names=classifier_nodes(model) if Exclude.CLASSIFIER in candidate.exclude else [],
                                validate=False)
    if candidate.scheme is Scheme.WEIGHT_INT8:
        compressed = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM, ignored_scope=ignored)
        ov.save_model(compressed, str(out / source.name), compress_to_fp16=False)
        return out / source.name
    if not calibration:
        raise StageFailed("static int8 needs calibration texts; the calibration recipe selected none")
    # MIXED: symmetric weights, asymmetric activations; PERFORMANCE: both symmetric.
    preset = nncf.QuantizationPreset.PERFORMANCE if candidate.symmetric_activations else nncf.QuantizationPreset.MIXED
    options = dict(model_type=nncf.ModelType.TRANSFORMER, preset=preset, ignored_scope=ignored)
    if candidate.accuracy_control:
        if validation is None:
            raise StageFailed(f"candidate '{candidate.name}' asks for accuracy control but no dev texts were given")
        gold = validation.gold

        def accuracy(compiled, feeds) -> float:
            right = sum(int(np.argmax(compiled(feed)[0])) == label for feed, label in zip(feeds, gold))
            return right / len(gold)

        quantized = nncf.quantize_with_accuracy_control(
            model, nncf.Dataset(calibration), nncf.Dataset(validation.feeds), validation_fn=accuracy,
            max_drop=validation.max_drop, drop_type=nncf.DropType.ABSOLUTE, subset_size=len(calibration), **options)
    else:
        quantized = nncf.quantize(model, nncf.Dataset(calibration), subset_size=len(calibration), **options)
    # compress_to_fp16=False: save_model halves weights by default (STACK.md trap 7), which is not what was measured.
    ov.save_model(quantized, str(out / source.name), compress_to_fp16=False)
    return out / source.name


def classifier_nodes(model) -> list[str]:
    """Friendly names of the matmuls between the [CLS] vector and the logits, walking back from the first output
    until the token-selecting Gather / StridedSlice or a normalisation."""
    stop = {"Gather", "StridedSlice", "Slice", "MVN"}
    found, todo, seen = [], [model.outputs[0].get_node()], set()
    while todo:
        node = todo.pop()
        if node.get_friendly_name() in seen or node.get_type_name() in stop:
            continue
        seen.add(node.get_friendly_name())
        if node.get_type_name() == "MatMul":
            found.append(node.get_friendly_name())
        todo.extend(value.get_node() for value in node.input_values())
    if not found:
        raise StageFailed("found no classifier MatMul between the logits and the [CLS] selection in the OpenVINO model")
    return found


def convert(src_model: Path, out: Path, fmt: ModelFormat) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for file in (src_model, src_model.with_suffix(".bin")):
        shutil.copy2(file, out / file.name)
    return out / src_model.name
