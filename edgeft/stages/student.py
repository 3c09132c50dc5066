"""Making a student from a teacher: keep some of its layers (DistilBERT-style initialisation), prune the
feed-forward blocks to the units with the largest weights, or start from a smaller pretrained model.

Latency on a CPU is close to linear in depth x width (measured: docs/experiments/distillation.md), so these are the
two knobs that buy speed; the weights copied from the teacher give the student a head start the loss then refines.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeft.errors import BadInput
from edgeft.student_recipe import Student
from edgeft.stages.pooling import POOLING_KEY
from edgeft.stages.torch_model import check_model_folder, load_classifier, set_training_options, torch_modules


@dataclass(frozen=True)
class StudentPlan:
    layers: tuple[int, ...]  # for each student layer, the teacher layer its hidden state is compared with
    copied: bool  # True: student layer i started as a copy of teacher layer layers[i]
    basis: Any = None  # a narrower student: teacher width x student width, student hidden state -> teacher's space
    kept_energy: float | None = None  # the share of the teacher's hidden-state energy the basis keeps


def spread_layers(teacher_layers: int, keep: int) -> tuple[int, ...]:
    """K of N layers, evenly spaced, the last one always kept (it is the one the classifier was trained on)."""
    return tuple(round((i + 1) * teacher_layers / keep) - 1 for i in range(keep))


def encoder_layers(model):
    """The ModuleList of transformer blocks of a BERT-family encoder (BERT, RoBERTa, ELECTRA, XLM-R...)."""
    encoder = getattr(model.base_model, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if layers is None:
        raise BadInput(f"student from teacher layers needs a BERT-family encoder (base_model.encoder.layer); "
                       f"{type(model).__name__} has none; pass --student with a smaller model folder instead")
    return layers


def materialize_student(student: Student, work_dir: Path) -> Student:
    """`model: packaged:NAME` -> a Hugging Face folder in the work dir (converted from ONNX once, then cached)."""
    if student.model is None or not student.model.startswith("packaged:"):
        return student
    from edgeft.artifact import cached_stage, sha256_file
    from edgeft.data.assets import DEFAULT_MODEL, packaged_model
    from edgeft.stages import onnx_bert

    pkg = packaged_model(student.model.removeprefix("packaged:"))
    if pkg.path.is_dir():
        return student.model_copy(update={"model": str(pkg.path)})
    tokenizer_from = packaged_model(DEFAULT_MODEL).path  # same vocabulary (checked by the converter)

    def build(tmp: Path) -> dict:
        onnx_bert.convert(pkg.path, tokenizer_from, tmp)
        return {"kind": "hf-model", "source": pkg.name, "licence": pkg.licence}

    art = cached_stage(work_dir, f"packaged-{pkg.name}", {"onnx": sha256_file(pkg.path)}, build)
    return student.model_copy(update={"model": str(art.path)})


def prepare_student(student: Student, teacher_dir: Path, work_dir: Path) -> Student:
    """Before any training: packaged students made into folders, and the student checked against the teacher."""
    student = materialize_student(student, work_dir)
    check_student(student, teacher_dir)
    return student


def check_student(student: Student, teacher_dir: Path) -> None:
    """Before any training: the student's layers and width must fit the teacher's config."""
    import json

    config = json.loads((teacher_dir / "config.json").read_text(encoding="utf-8"))
    if student.model is not None:
        check_model_folder(Path(student.model), "--student")
        from tokenizers import Tokenizer

        # The student is trained on the teacher's token ids: a different vocabulary would be silent garbage.
        if (Tokenizer.from_file(str(Path(student.model) / "tokenizer.json")).get_vocab()
                != Tokenizer.from_file(str(teacher_dir / "tokenizer.json")).get_vocab()):
            raise BadInput(f"student model {student.model} has another vocabulary than the teacher {teacher_dir}; "
                           f"a student must share the teacher's tokenizer")
        return
    kept_layers(student, config["num_hidden_layers"], config["intermediate_size"])
    student_width(student, config["hidden_size"], config["num_attention_heads"])


def student_width(student: Student, width: int, heads: int) -> tuple[int, int]:
    """The hidden width and head count of a `layers:` student; a narrower one must keep whole heads of the teacher's
    size (the attention's scale and each head's weights stay as trained)."""
    head_size = width // heads
    hidden = student.hidden or (student.heads * head_size if student.heads else width)
    n_heads = student.heads or hidden // head_size
    if hidden > width or hidden != n_heads * head_size:
        raise BadInput(f"student hidden:{hidden} heads:{n_heads} do not fit the teacher ({width} wide, {heads} heads "
                       f"of {head_size}); use a width of at most {width} that is a multiple of {head_size}, "
                       f"e.g. hidden:{max(head_size, width * 2 // 3 // head_size * head_size)}")
    return hidden, n_heads


def kept_layers(student: Student, teacher_layers: int, teacher_ffn: int) -> tuple[int, ...]:
    """The teacher layers a `layers:` student keeps, once its layers and width are known to fit the teacher."""
    if isinstance(student.layers, int):
        if student.layers > teacher_layers:
            raise BadInput(f"--student layers:{student.layers}: the teacher has {teacher_layers} layers; keep at most "
                           f"{teacher_layers}")
        keep = spread_layers(teacher_layers, student.layers)
    else:
        keep = tuple(student.layers)
        if list(keep) != sorted(set(keep)) or max(keep) >= teacher_layers:
            # A layer list is the teacher's layers bottom to top, each once: 5-2 would stack them upside down.
            raise BadInput(f"--student layers:{'-'.join(map(str, keep))}: a list of teacher layers, each once and in "
                           f"increasing order, among 0..{teacher_layers - 1} (e.g. layers:0-2-5)")
    if student.ffn is not None and student.ffn > teacher_ffn:
        raise BadInput(f"student ffn:{student.ffn} is wider than the teacher's feed-forward blocks ({teacher_ffn})")
    return keep


def make_student(teacher, student: Student, labels: list[str], task: str,
                 sample: Callable[[], Iterable[dict]] | None = None) -> tuple[object, StudentPlan]:
    """A new student model (on the CPU, trainable) and the layer map for intermediate-layer transfer.

    `sample` yields batches of the teacher's inputs: a narrower student (`hidden`) needs them for its basis.
    """
    torch, _ = torch_modules()
    teacher_n = len(encoder_layers(teacher))
    if student.model is not None:
        folder = Path(student.model)
        check_model_folder(folder, "--student")
        # The student reads its sentence vector as the teacher does ([CLS] pooler or the mean), so that the logits it
        # imitates come from the same kind of summary; a copied or narrowed student inherits it with the weights.
        pooling = "mean" if getattr(teacher.config, POOLING_KEY, None) == "mean" else "cls"
        model = load_classifier(folder, labels, task, pooling=pooling)
        n = len(encoder_layers(model))
        return _prepare(model, student), StudentPlan(spread_layers(teacher_n, n), copied=False)

    keep = kept_layers(student, teacher_n, teacher.config.intermediate_size)
    hidden, heads = student_width(student, teacher.config.hidden_size, teacher.config.num_attention_heads)
    if (hidden, heads) != (teacher.config.hidden_size, teacher.config.num_attention_heads):
        from edgeft.stages.narrow import hidden_basis, narrow

        if sample is None:
            raise ValueError("a narrower student needs sample batches of the teacher's inputs for its basis")
        basis, kept_energy = hidden_basis(teacher.cpu(), sample(), hidden)
        model = narrow(teacher, keep, hidden, heads, student.ffn or teacher.config.intermediate_size, basis)
        return _prepare(model, student), StudentPlan(keep, copied=True, basis=basis, kept_energy=kept_energy)
    model = copy.deepcopy(teacher).cpu()
    source = encoder_layers(model)
    encoder = model.base_model.encoder
    encoder.layer = torch.nn.ModuleList([source[i] for i in keep])
    model.config.num_hidden_layers = len(keep)
    if student.ffn is not None:
        for block in encoder.layer:
            prune_feed_forward(block, student.ffn)
        model.config.intermediate_size = student.ffn
    return _prepare(model, student), StudentPlan(keep, copied=True)


def _prepare(model, student: Student):
    set_training_options(model, student.dropout, student.freeze_embeddings, student.freeze_layers)
    return model.train()


def strongest_units(block, keep: int):
    """The indices (ascending) of the `keep` feed-forward units whose in- and out-weights have the largest norms."""
    torch, _ = torch_modules()
    score = block.intermediate.dense.weight.norm(dim=1) * block.output.dense.weight.norm(dim=0)
    return torch.sort(torch.topk(score, keep).indices).values


def prune_feed_forward(block, keep: int) -> None:
    """Keep the `keep` feed-forward units whose in- and out-weights have the largest norms (structured pruning)."""
    torch, _ = torch_modules()
    up, down = block.intermediate.dense, block.output.dense
    units = strongest_units(block, keep)
    new_up = torch.nn.Linear(up.in_features, keep, dtype=up.weight.dtype)
    new_down = torch.nn.Linear(keep, down.out_features, dtype=down.weight.dtype)
    with torch.no_grad():
        new_up.weight.copy_(up.weight[units])
        new_up.bias.copy_(up.bias[units])
        new_down.weight.copy_(down.weight[:, units])
        new_down.bias.copy_(down.bias)
    block.intermediate.dense, block.output.dense = new_up, new_down


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())
