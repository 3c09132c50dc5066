"""A narrower student cut from the teacher: hidden width W < the teacher's, seeded by a projection of its weights.

Depth alone cannot reach every latency target: on the 2-core hosts a 2-layer, 384-wide int8 student is ~4.6x the
Optimum int8 teacher and a 2-layer, 256-wide one ~7.8x (docs/experiments/speed.md, section 3), and no pretrained
256-wide model ships with the packaged assets. So the student is made from the teacher itself:

- one orthonormal basis U (teacher width x W) for the residual stream, the top principal directions of the teacher's
  hidden states on training text (uncentred, so the mean direction is kept). Post-LN BERT adds every block's output
  to its input, so all layers must share one basis;
- every weight that reads the stream is multiplied by U, every one that writes it by U^T; embeddings, biases and the
  head likewise; LayerNorm scales become the diagonal of U^T diag(g) U (an approximation: normalising in W
  dimensions is not normalising in the teacher's);
- attention keeps H' of H heads (head size unchanged, so the softmax scale stays right), the ones whose value and
  output weights carry most; feed-forward blocks keep their largest units, as `prune_feed_forward` does.

Distillation then repairs what the projection loses. The basis is returned too: it maps the student's hidden states
back to the teacher's space, the natural start for hidden-state transfer.
"""

from __future__ import annotations

import copy
import re

from edgeft.errors import BadInput
from edgeft.stages.student import strongest_units
from edgeft.stages.torch_model import torch_modules


def hidden_basis(teacher, batches, width: int):
    """U: the `width` leading left-singular vectors of the teacher's hidden states (every layer, real tokens only)."""
    torch, _ = torch_modules()
    size = teacher.config.hidden_size
    gram = torch.zeros(size, size, dtype=torch.float64)
    teacher.eval()
    with torch.inference_mode():
        for feeds in batches:
            states = teacher(**feeds, output_hidden_states=True).hidden_states
            real = feeds["attention_mask"].bool()
            for h in states:
                x = h[real].double()
                gram += x.T @ x
    values, vectors = torch.linalg.eigh(gram)
    order = torch.argsort(values, descending=True)[:width]
    return vectors[:, order].float(), float(values[order].sum() / values.sum())


def _head_order(attention, heads: int, head_size: int):
    """Heads ranked by the norm of their value and output weights (what they can write into the stream)."""
    torch, _ = torch_modules()
    v = attention.self.value.weight.view(-1, head_size, attention.self.value.weight.shape[1])
    o = attention.output.dense.weight.view(attention.output.dense.weight.shape[0], -1, head_size)
    score = v.norm(dim=(1, 2)) * o.norm(dim=(0, 2))
    keep = torch.sort(torch.topk(score, heads).indices).values
    return torch.cat([torch.arange(h * head_size, (h + 1) * head_size) for h in keep.tolist()])


def narrow(teacher, keep: tuple[int, ...], width: int, heads: int, ffn: int, basis):
    """A copy of `teacher` with layers `keep`, hidden width `width`, `heads` heads and `ffn` units, seeded through
    `basis` (teacher width x width); `student.student_width` has checked that the width is whole teacher heads."""
    torch, _ = torch_modules()
    config = copy.deepcopy(teacher.config)
    head_size = config.hidden_size // config.num_attention_heads
    config.hidden_size, config.num_attention_heads = width, heads
    config.intermediate_size, config.num_hidden_layers = ffn, len(keep)
    student = type(teacher)(config)
    t_layers = teacher.base_model.encoder.layer
    rows = {i: _head_order(t_layers[j].attention, heads, head_size) for i, j in enumerate(keep)}
    units = {i: strongest_units(t_layers[j], ffn) for i, j in enumerate(keep)}
    source = teacher.state_dict()
    U = basis

    def teacher_name(name: str) -> tuple[str, int | None]:
        m = re.search(r"\.layer\.(\d+)\.", name)
        if m is None:
            return name, None
        i = int(m.group(1))
        return name.replace(f".layer.{i}.", f".layer.{keep[i]}.", 1), i

    new = {}
    for name, target in student.state_dict().items():
        t_name, i = teacher_name(name)
        w = source[t_name].float()
        if "LayerNorm.weight" in name:
            v = torch.diagonal(U.T @ torch.diag(w) @ U)
        elif "LayerNorm.bias" in name:
            v = U.T @ w
        elif name.endswith("embeddings.weight"):  # word, position and token-type tables
            v = w @ U
        elif re.search(r"attention\.self\.(query|key|value)\.weight", name):
            v = w[rows[i]] @ U
        elif re.search(r"attention\.self\.(query|key|value)\.bias", name):
            v = w[rows[i]]
        elif "attention.output.dense.weight" in name:
            v = U.T @ w[:, rows[i]]
        elif "intermediate.dense.weight" in name:
            v = w[units[i]] @ U
        elif "intermediate.dense.bias" in name:
            v = w[units[i]]
        elif re.search(r"layer\.\d+\.output\.dense\.weight", name):
            v = U.T @ w[:, units[i]]
        elif re.search(r"output\.dense\.bias", name):
            v = U.T @ w
        elif "pooler.dense.weight" in name:
            v = U.T @ w @ U
        elif "pooler.dense.bias" in name:
            v = U.T @ w
        elif name.startswith("classifier.weight"):
            v = w @ U
        elif w.shape == target.shape:  # classifier bias, position ids and other buffers
            v = w
        else:
            raise BadInput(f"student hidden:{width}: no rule to narrow {type(teacher).__name__}'s {name}; narrowing "
                           f"knows BERT-style encoders, use a student without 'hidden' for this teacher")
        if v.shape != target.shape:
            raise ValueError(f"narrowing {name} gave {tuple(v.shape)}, expected {tuple(target.shape)}")
        new[name] = v.to(target.dtype)
    student.load_state_dict(new)
    return student
