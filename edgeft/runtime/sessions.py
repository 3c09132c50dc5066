"""The device half of every backend: open a model file as a session (named int64 inputs in, logits out) with the
bundle's threads and precision. One table maps a runtime to its session module; nothing else branches on it.

Only the runtime's own libraries are imported here (onnxruntime or openvino, on demand), never the build half
(export, quantize, convert), so a device installs just what it runs.
"""

from __future__ import annotations

import importlib
from enum import Enum
from pathlib import Path
from typing import Protocol

import numpy as np

from edgeft.errors import StageFailed


class Runtime(str, Enum):
    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"


class Session(Protocol):
    input_names: tuple[str, ...]

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Logits for one batch; `feeds` holds exactly `input_names`."""
        ...


_MODULES = {Runtime.ONNXRUNTIME: "edgeft.runtime.onnxruntime_session",
            Runtime.OPENVINO: "edgeft.runtime.openvino_session"}


def _module(runtime: Runtime | str):
    # Imported on demand so that a device with only onnxruntime never imports openvino, and vice versa.
    return importlib.import_module(_MODULES[Runtime(runtime)])


def open_session(runtime: Runtime | str, path: Path, threads: int, provided: tuple[str, ...],
                 exact_int8: bool = False) -> Session:
    """A ready session for `path`, refusing a graph that needs an input the tokenizer does not give. `exact_int8`:
    int8 products computed as a target without x86's saturating u8 x s8 kernels does (profile.Isa.exact_int8)."""
    session = _module(runtime).Session(path, threads, exact_int8)
    check_inputs(path.name, session.input_names, provided)
    return session


def runtime_version(runtime: Runtime | str) -> str:
    return _module(runtime).runtime_version()


def check_inputs(model_file: str, required: tuple[str, ...], provided: tuple[str, ...]) -> None:
    # A graph whose input was renamed can run on a partial feed and silently return garbage (STACK.md trap 7).
    missing = [n for n in required if n not in provided]
    if missing:
        raise StageFailed(f"{model_file} needs inputs {missing} that the tokenizer does not produce "
                          f"(it gives {list(provided)}); re-export the model from its Hugging Face folder")
