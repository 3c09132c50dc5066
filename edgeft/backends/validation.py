"""What accuracy-aware quantization is given to check itself with (the build side only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Validation:
    """Labelled dev-split feeds for accuracy-aware quantization: one feed per text, gold label indices beside."""

    feeds: list[dict[str, np.ndarray]]
    gold: list[int]
    max_drop: float  # absolute accuracy the quantized model may lose against the fp32 one
