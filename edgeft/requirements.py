"""The oldest runtime a bundle's model file can run on, recorded in its manifest for app and device owners."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeft.profile import ModelFormat, Runtime

# From ONNX Runtime's version matrix (docs/Versioning.md): the first release implementing each opset / IR version.
# Where the matrix was ambiguous the later release is listed: a conservative minimum is safe, a low one is not.
ORT_FOR_OPSET = {11: "1.0", 12: "1.3", 13: "1.6", 14: "1.8", 15: "1.9", 16: "1.13", 17: "1.13", 18: "1.14",
                 19: "1.15", 20: "1.17", 21: "1.18"}
ORT_FOR_IR = {6: "1.0", 7: "1.3", 8: "1.13", 9: "1.15", 10: "1.18"}


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())


def runtime_requirements(runtime: Runtime, fmt: ModelFormat, model_file: Path) -> dict[str, Any]:
    from edgeft.runtime.sessions import runtime_version

    built_with = runtime_version(runtime)
    if fmt is ModelFormat.OPENVINO_IR:
        # IR v11 is read by every OpenVINO since 2022.1; the writer's version is the one proven here.
        return {"runtime": "openvino", "min_runtime_version": "2022.1", "built_with": built_with, "ir": "v11"}
    if fmt is ModelFormat.ORT:
        # ORT format files are read by the release that wrote them and later ones; older is not promised.
        return {"runtime": "onnxruntime-mobile", "min_runtime_version": built_with, "built_with": built_with,
                "format": "ort"}
    import onnx

    model = onnx.load(str(model_file), load_external_data=False)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    candidates = [ORT_FOR_OPSET.get(opset, built_with), ORT_FOR_IR.get(model.ir_version, built_with)]
    minimum = max(candidates, key=_version_key)
    return {"runtime": "onnxruntime", "min_runtime_version": minimum, "built_with": built_with,
            "onnx_opset": opset, "onnx_ir_version": model.ir_version,
            "custom_domains": sorted({o.domain for o in model.opset_import if o.domain not in ("", "ai.onnx")})}
