"""The one place that maps a runtime to the code that serves it.

The build half of each runtime: `export`, `quantize` and `convert` (they import Optimum and friends inside the call).
The device half (opening a session) is the runtime's own, in edgeft.runtime.sessions, which imports nothing from
here. Callers ask `backend(runtime)` and never branch on the runtime themselves.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from edgeft.runtime.sessions import Runtime

_MODULES = {Runtime.ONNXRUNTIME: "edgeft.backends.onnxruntime", Runtime.OPENVINO: "edgeft.backends.openvino"}


def backend(runtime: Runtime) -> ModuleType:
    # Imported on demand so that a device with only onnxruntime never imports openvino, and vice versa.
    return importlib.import_module(_MODULES[Runtime(runtime)])
