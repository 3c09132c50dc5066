"""hf-model -> onnx | openvino-ir through Optimum, checked against PyTorch on real texts before it is accepted."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edgeft.artifact import Artifact, cached_stage, library_versions
from edgeft.backends import backend
from edgeft.errors import ExportParityError
from edgeft.profile import InputPolicy, Runtime
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
from edgeft.runtime.sessions import open_session
from edgeft.stages.torch_model import TOKENIZER_FILES, load_classifier, torch_runner

# fp32 graphs match PyTorch to ~1e-5 on these models; 1e-3 leaves room for fused kernels, not for a wrong graph.
PARITY_ATOL = 1e-3
EXPORT_KIND = {Runtime.ONNXRUNTIME: "onnx", Runtime.OPENVINO: "openvino-ir"}


def export(model: Artifact, runtime: Runtime, policy: InputPolicy, parity_texts: list[str], work_dir: Path) -> Artifact:
    key = {"parent": model.manifest["cache_key"], "runtime": runtime.value, "policy": policy.model_dump(),
           "parity_texts": parity_texts, "versions": library_versions("optimum", "optimum-onnx", "optimum-intel",
                                                                      "onnx", "onnxruntime", "openvino", "torch")}

    def build(tmp: Path) -> dict[str, Any]:
        task = model.manifest.get("task", "classification")
        model_file = backend(runtime).export(model.path, tmp, task)
        for name in TOKENIZER_FILES:
            if (model.path / name).is_file():
                shutil.copy2(model.path / name, tmp / name)
        parity = check_parity(model.path, model_file, runtime, policy, parity_texts, task)
        return {"kind": EXPORT_KIND[runtime], "runtime": runtime.value, "model_file": model_file.name,
                "labels": model.manifest["labels"], "task": model.manifest["task"], "parity": parity,
                "parent": {"stage": model.manifest["stage"], "cache_key": model.manifest["cache_key"]}}

    return cached_stage(work_dir, f"export-{runtime.value}", key, build)


def check_parity(hf_dir: Path, model_file: Path, runtime: Runtime, policy: InputPolicy,
                 texts: list[str], task: str = "classification") -> dict[str, Any]:
    """Max |logit difference| between PyTorch and the exported graph on the same encoded texts (token tasks: on
    every real token, padding left out)."""
    session = open_session(runtime, model_file, 1, TOKENIZER_OUTPUTS)
    encode = TextEncoder(hf_dir / "tokenizer.json", policy.max_length, policy.truncation, session.input_names)
    reference = torch_runner(load_classifier(hf_dir, task=task))
    diffs, agree = [], []
    for i in range(0, len(texts), 8):
        feeds = encode(texts[i:i + 8])
        want, got = reference(feeds), session.run(feeds)
        real = feeds["attention_mask"].astype(bool) if task == "ner" else np.ones(len(want), dtype=bool)
        diffs.append(float(np.abs(want - got)[real].max()))
        agree.append((want.argmax(-1) == got.argmax(-1))[real])
    diff, agree = max(diffs), float(np.concatenate(agree).mean())
    what = "tokens" if task == "ner" else "labels"
    if not diff <= PARITY_ATOL:
        raise ExportParityError(f"export to {runtime.value} disagrees with PyTorch: max |logit diff| {diff:.2e} "
                                f"> {PARITY_ATOL:.0e} on {len(texts)} texts ({agree:.1%} same {what}); "
                                f"report this model and the library versions")
    return {"texts": len(texts), "max_abs_diff": diff, "atol": PARITY_ATOL, "label_agreement": agree}
