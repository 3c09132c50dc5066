"""A BERT encoder shipped only as a sentence-transformers ONNX graph -> a Hugging Face model folder (safetensors).

The packaged paraphrase-MiniLM-L3-v2 exists only as ONNX. Its biases and LayerNorms are named initializers
(`model.0.auto_model.encoder.layer.0.attention.self.query.bias`); its MatMul weights are unnamed
(`onnx::MatMul_470`), but every MatMul node's output is named after its module
(`/model/model.0/auto_model/encoder/layer.0/attention/self/query/MatMul_output_0`), and ONNX stores x @ W where
PyTorch's Linear stores W.T. The result is checked against ONNX Runtime before it is accepted.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np

from edgeft.errors import StageFailed
from edgeft.stages.torch_model import TOKENIZER_FILES, torch_modules

PREFIX = "auto_model."
MATMUL_OUTPUT = re.compile(r"auto_model/(?P<module>.+)/MatMul_output_0$")
PARITY_ATOL = 1e-4


def bert_state_dict(onnx_file: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_file)).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    state = {name.split(PREFIX, 1)[1]: array for name, array in weights.items() if PREFIX in name}
    for node in graph.node:
        match = MATMUL_OUTPUT.search(node.output[0]) if node.op_type == "MatMul" else None
        if match and len(node.input) > 1 and node.input[1] in weights:
            state[match["module"].replace("/", ".") + ".weight"] = weights[node.input[1]].T.copy()
    return state


def convert(onnx_file: Path, config_from: Path, out: Path) -> Path:
    """Write `out` (config.json, model.safetensors, tokenizer files from `config_from`) and return it."""
    torch, transformers = torch_modules()
    state = bert_state_dict(onnx_file)
    config = json.loads((config_from / "config.json").read_text(encoding="utf-8"))
    layers = {int(m[1]) for key in state if (m := re.match(r"encoder\.layer\.(\d+)\.", key))}
    vocab, hidden = state["embeddings.word_embeddings.weight"].shape
    if vocab != config["vocab_size"] or hidden != config["hidden_size"]:
        raise StageFailed(f"{onnx_file.name}: vocabulary/width {vocab}x{hidden} does not match {config_from} "
                          f"({config['vocab_size']}x{config['hidden_size']}): not the same tokenizer family")
    config.update(num_hidden_layers=len(layers), intermediate_size=int(state["encoder.layer.0.intermediate.dense.bias"].shape[0]),
                  architectures=["BertModel"])
    for key in ("id2label", "label2id", "num_labels", "problem_type"):
        config.pop(key, None)
    model = transformers.BertModel(transformers.BertConfig(**config), add_pooling_layer=False).eval()
    missing, unexpected = model.load_state_dict({k: torch.tensor(v) for k, v in state.items()}, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise StageFailed(f"{onnx_file.name}: weights do not map onto BertModel (missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]})")
    _check_parity(onnx_file, model)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (config_from / name).is_file():
            shutil.copy2(config_from / name, out / name)
    return out


def _check_parity(onnx_file: Path, model) -> None:
    import onnxruntime as ort

    torch, _ = torch_modules()
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    ids = np.array([[101, 7592, 2088, 2003, 1037, 3231, 102, 0]], dtype=np.int64)
    mask = np.array([[1, 1, 1, 1, 1, 1, 1, 0]], dtype=np.int64)
    feeds = {i.name: (ids if i.name == "input_ids" else mask) for i in session.get_inputs()}
    with torch.no_grad():
        ours = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state.numpy()
    # The graph's outputs are the sentence embedding and the token embeddings; compare the token ones.
    candidates = [o for o in session.run(None, feeds) if o.shape == ours.shape]
    if not candidates:
        raise StageFailed(f"{onnx_file.name} has no token-embedding output of shape {ours.shape}")
    onnx_tokens = candidates[0]
    diff = float(np.abs(onnx_tokens[mask.astype(bool)] - ours[mask.astype(bool)]).max())
    if not diff <= PARITY_ATOL:
        raise StageFailed(f"{onnx_file.name} converted to BertModel differs from ONNX Runtime by {diff:.2e}")
