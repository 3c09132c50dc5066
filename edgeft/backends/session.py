"""What every backend's inference session looks like to the runtime: named int64 inputs in, logits out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgeft.errors import StageFailed


@dataclass(frozen=True)
class Validation:
    """Labelled dev-split feeds for accuracy-aware quantization: one feed per text, gold label indices beside."""

    feeds: list[dict[str, np.ndarray]]
    gold: list[int]
    max_drop: float  # absolute accuracy the quantized model may lose against the fp32 one


class Session(Protocol):
    input_names: tuple[str, ...]

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Logits for one batch; `feeds` holds exactly `input_names`."""
        ...


def check_inputs(model_file: str, required: tuple[str, ...], provided: tuple[str, ...]) -> None:
    # A graph whose input was renamed can run on a partial feed and silently return garbage (STACK.md trap 7).
    missing = [n for n in required if n not in provided]
    if missing:
        raise StageFailed(f"{model_file} needs inputs {missing} that the tokenizer does not produce "
                          f"(it gives {list(provided)}); re-export the model from its Hugging Face folder")
