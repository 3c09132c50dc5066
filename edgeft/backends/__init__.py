"""The one place that maps a runtime to the code that serves it.

Each backend module offers the same functions: `open_session` (device side: numpy in, logits out; imports only its
runtime) and `export` / `quantize` (build side: they import Optimum and friends inside the call). Callers ask
`backend(runtime)` and never branch on the runtime themselves.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from edgeft.profile import Runtime

_MODULES = {Runtime.ONNXRUNTIME: "edgeft.backends.onnxruntime", Runtime.OPENVINO: "edgeft.backends.openvino"}


def backend(runtime: Runtime) -> ModuleType:
    # Imported on demand so that a device with only onnxruntime never imports openvino, and vice versa.
    return importlib.import_module(_MODULES[Runtime(runtime)])
