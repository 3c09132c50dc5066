"""ONNX Runtime sessions for .onnx and .ort files (CPU execution provider)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeft.errors import StageFailed


class Session:
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


def runtime_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
