"""OpenVINO sessions: an IR (openvino_model.xml + .bin) compiled for the CPU plugin."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeft.errors import MissingBackend, StageFailed


# f32 precision: on CPUs with bf16 units (Zen 4, Sapphire Rapids) the CPU plugin would otherwise run an fp32 IR in
# bf16, so accuracy would depend on the device. The model card hands the same setting to optimum-intel's OVModel.
F32_PRECISION = {"INFERENCE_PRECISION_HINT": "f32"}


def openvino_module():
    try:
        import openvino
    except ImportError:
        raise MissingBackend("openvino", "openvino") from None
    return openvino


class Session:
    def __init__(self, path: Path, threads: int, exact_int8: bool = False) -> None:
        # exact_int8 (sessions.open_session) is ONNX Runtime's switch and is not read here: OpenVINO's CPU plugin
        # picks its own int8 kernels, and the profiles that use it target x86 CPUs (avx2), as the build host is.
        ov = openvino_module()
        core = ov.Core()
        try:
            model = core.read_model(str(path))
            # LATENCY: one stream, the batch-1 case an app or a CI gate measures; F32_PRECISION says why f32.
            self._compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                               "PERFORMANCE_HINT": "LATENCY", **F32_PRECISION})
        except Exception as exc:  # openvino raises RuntimeError subclasses without a stable type
            raise StageFailed(f"openvino {ov.__version__} cannot compile {path}: {exc}") from None
        self.input_names = tuple(port.get_any_name() for port in self._compiled.inputs)
        self._request = self._compiled.create_infer_request()

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self._request.infer(feeds)[0].copy()


def runtime_version() -> str:
    return openvino_module().__version__
