"""A student recipe: what `edgeft build` distils from the fine-tuned teacher (a profile's `student:` and
`ner_student:` sections, `--student` and `--distill`): its shape, its loss and its training schedule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The fields that say what a student is made of; a --student spec replaces all of them, never only some.
SHAPE_FIELDS = frozenset({"layers", "ffn", "hidden", "heads", "model", "retry_layers"})


class Student(BaseModel):
    """A smaller model distilled from the fine-tuned teacher: `edgeft build` ships it instead of the teacher.

    Either `layers` (a copy of some of the teacher's layers, DistilBERT-style, optionally with narrower feed-forward
    blocks) or `model` (a smaller pretrained model folder that shares the teacher's tokenizer). The defaults of the
    loss were chosen by the experiment recorded in docs/experiments/distillation.md.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # K keeps K of the teacher's layers, spread evenly with the last one kept; a list keeps exactly those (0-based).
    layers: int | tuple[int, ...] | None = None
    # Feed-forward units kept per layer, the ones with the largest weight norms (structured pruning).
    ffn: int | None = Field(None, ge=1)
    # A narrower residual stream than the teacher's (with `layers`): the teacher's weights projected onto the top
    # principal directions of its hidden states (stages/narrow.py). `heads` defaults to hidden / the head size.
    hidden: int | None = Field(None, ge=8)
    heads: int | None = Field(None, ge=1)
    # A smaller pretrained model with the teacher's tokenizer: a folder, or packaged:paraphrase-MiniLM-L3-v2.
    model: str | None = None
    # Soft targets: KL(teacher || student) at this temperature, weighted alpha; the hard labels get 1 - alpha.
    temperature: float = Field(2.0, gt=0)
    alpha: float = Field(0.8, ge=0, le=1)
    # Weight of the intermediate-layer loss (MSE between mapped hidden states); 0 turns it off.
    hidden_weight: float = Field(0.0, ge=0)
    epochs: int = Field(2, ge=1)
    # A small training set is repeated for more epochs until the student has seen at least this many examples
    # (early stopping on the dev split still applies): one recipe then fits 30,000 tweets and 2,000 articles.
    min_examples: int = Field(0, ge=0)
    learning_rate: float = Field(1e-4, gt=0)
    batch_size: int = Field(32, ge=1)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    # The copied word embeddings stay as the teacher fine-tuned them: a third of the optimiser's work on a CPU saved,
    # and measured no loss of accuracy (docs/experiments/distillation.md).
    freeze_embeddings: bool = True
    # The student's lowest N layers (and all embeddings) keep the teacher's weights: cheaper steps, see FinetuneSpec.
    freeze_layers: int = Field(0, ge=0)
    # Dropout in the student. The soft targets already regularise, and on a CPU the dropout masks alone cost a
    # quarter of every training step (torch profiler, 2-layer MiniLM student).
    dropout: float = Field(0.0, ge=0, lt=1)
    # None: the whole train split (the student gets the teacher's soft labels on texts the teacher never trained on).
    max_train_samples: int | None = Field(None, ge=1)
    patience: int = Field(1, ge=1)
    # Dev scores, and the student that ships, use an exponential moving average of the trained weights with this
    # decay (0: the weights as trained). The average smooths the last steps' noise: over four batch orders the
    # narrow tweets student's dev accuracy varied less and its drop to the teacher shrank (distillation.md, 9).
    ema_decay: float = Field(0.0, ge=0, lt=1)
    # Where the teacher's soft targets come from. auto: on a CPU its int8 ONNX Runtime copy (s8 weights, 7-bit,
    # per-channel: 3.5x faster than PyTorch fp32 on the 2-core host, the difference between a default build under or
    # over 15 minutes), on a GPU PyTorch fp32. The int8 teacher's dev accuracy is recorded beside the fp32 one.
    teacher_outputs: Literal["auto", "fp32", "int8"] = "auto"
    # Sentence classification: texts longer than the input teach through their later windows too (soft targets only,
    # up to this many more per text) while the student has fewer than min_examples examples: new text where a small
    # set would repeat itself. NER sentences are short and keep their own lessons.
    windows: int = Field(0, ge=0)
    # Sentence classification: this many copies of every training text, each word dropped with probability
    # augment_drop, carry the teacher's soft targets too (data/augment.py): new text where a set would repeat
    # itself. Off by default: on the tweets one copy moved five seeds' students by -0.27 to +0.37 dev points (+0.05
    # on average; 4 passes of the dev rule instead of 3) for twice the training time and the teacher's outputs on
    # 31,523 more texts (docs/experiments/distillation.md, section 10).
    augment_views: int = Field(0, ge=0)
    augment_drop: float = Field(0.15, gt=0, lt=1)
    # A student that fails the dev rule gets one more try with this many layers (same width and recipe) before the
    # build falls back to the teacher's candidates: a small set (BBC News) needs the depth that 30,000 tweets do not.
    retry_layers: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_architecture(self) -> Student:
        if (self.layers is None) == (self.model is None):
            raise ValueError("a student needs exactly one of 'layers' (keep teacher layers) or 'model' (a folder)")
        if self.ffn is not None and self.layers is None:
            raise ValueError("'ffn' prunes the teacher's layers: use it with 'layers', not with 'model'")
        if (self.hidden is not None or self.heads is not None) and self.layers is None:
            raise ValueError("'hidden' and 'heads' narrow the teacher's layers: use them with 'layers', not 'model'")
        if isinstance(self.layers, int) and self.layers < 1:
            raise ValueError("'layers' must keep at least 1 layer")
        if isinstance(self.layers, tuple) and (not self.layers or len(set(self.layers)) != len(self.layers)
                                               or min(self.layers) < 0):
            raise ValueError("'layers' as a list needs distinct layer indices >= 0, e.g. [0, 5]")
        kept = self.layers if isinstance(self.layers, int) else len(self.layers or ())
        if self.retry_layers is not None and not (isinstance(self.layers, int) and self.retry_layers > self.layers):
            raise ValueError(f"'retry_layers' {self.retry_layers} must be more than 'layers' (a number) {self.layers}")
        if self.layers is not None and self.freeze_layers >= kept:
            raise ValueError(f"'freeze_layers' {self.freeze_layers} would freeze every one of the student's {kept} "
                             f"layers; freeze fewer, or 0")
        return self

    @classmethod
    def from_spec(cls, spec: str, **training: object) -> Student:
        """`layers:2,ffn:768`, `layers:2,hidden:256`, `layers:0-5` (exact indices), a model folder, or packaged:NAME."""
        fields: dict[str, object] = dict(training)
        if ":" not in spec or spec.startswith("packaged:") or Path(spec).is_dir():
            fields["model"] = spec
            return cls(**fields)
        for part in spec.split(","):
            key, _, value = part.strip().partition(":")
            if key == "layers" and "-" in value:
                fields["layers"] = tuple(_spec_int(key, v) for v in value.split("-"))
            elif key in ("layers", "ffn", "hidden", "heads"):
                fields[key] = _spec_int(key, value)
            else:
                raise ValueError(f"unknown student key '{key}' in '{spec}'; use layers:K, layers:I-J-.., ffn:N, "
                                 f"hidden:W, heads:H or a model folder")
        return cls(**fields)


def _spec_int(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"student '{key}:{value}' needs a whole number") from None
