"""ONNX Runtime sessions for .onnx and .ort files (CPU execution provider)."""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

import numpy as np

from edgeft.errors import StageFailed

# ONNX Runtime's switch from its u8 x s8 kernels to exact u8 x u8 ones (it rewrites s8 weights to u8 when the model
# loads, and only on CPUs whose u8 x s8 kernel saturates).
EXACT_INT8_KEY = "session.x64quantprecision"


@cache  # the CPU does not change; select opens a session per candidate
def host_saturates_int8() -> bool:
    """Whether this CPU's int8 matmul saturates: x86 without VNNI sums u8 x s8 pairs into int16 (vpmaddubsw), so
    two large products clip. Arm dot products and VNNI (vpdpbusd) accumulate in int32, exactly."""
    from edgeft.runtime.bench import host_description  # bench imports the bundle, which imports this module

    host = host_description()
    return host["machine"].lower() in ("x86_64", "amd64") and not {"avx512_vnni", "avx_vnni"} & set(host["isa"])


class Session:
    """`exact_int8`: compute int8 products as a target without the x86 saturation does (Arm, VNNI): the accuracy a
    build reports for an arm64 or mobile bundle is then the device's, not this host's. On an AVX2-only EPYC the
    default session moved 25 of 3,724 test labels of the arm64 tweets bundle, and the emulated aarch64 runtime
    agreed with the exact session on all 25 (docs/experiments/int8-arithmetic.md). A no-op on other hosts."""

    def __init__(self, path: Path, threads: int, exact_int8: bool = False) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Benchmarks on shared machines: spinning worker threads steal the other core's time.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0" if threads == 1 else "1")
        model: str | bytes = str(path)
        try:
            if path.suffix == ".ort":
                # A .ort file was saved with its optimisations applied; re-applying them at load fails (STACK.md
                # trap 8).
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
                if exact_int8 and host_saturates_int8():
                    # The weight rewrite is a graph transformer, and transformers do not run on .ort loads: the same
                    # graph, re-saved as ONNX, loads with it (the extended level holds the rewrite; the graph's own
                    # fusions are already in it, so nothing else changes: bit-identical to the .onnx, measured).
                    model = _as_onnx(ort, path)
                    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            if exact_int8:
                options.add_session_config_entry(EXACT_INT8_KEY, "1")
            self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise StageFailed(f"onnxruntime {ort.__version__} cannot load {path}: {exc}") from None
        self.input_names = tuple(i.name for i in self._session.get_inputs())
        self._output = self._session.get_outputs()[0].name

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self._session.run([self._output], feeds)[0]


def _as_onnx(ort, path: Path) -> bytes:
    """The graph of a .ort file as ONNX bytes, unchanged (no optimisation at load)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    with tempfile.TemporaryDirectory(prefix="edgeft-ort-") as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "model.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return (Path(tmp) / "model.onnx").read_bytes()


def runtime_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
