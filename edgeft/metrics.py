"""Classification metrics in plain numpy: the device-side runner computes them too, without scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def accuracy(gold: Sequence[int], pred: Sequence[int]) -> float:
    gold_a, pred_a = np.asarray(gold), np.asarray(pred)
    return float((gold_a == pred_a).mean()) if len(gold_a) else 0.0


def per_class(gold: Sequence[int], pred: Sequence[int], n_classes: int) -> list[dict[str, float]]:
    gold_a, pred_a = np.asarray(gold), np.asarray(pred)
    rows = []
    for c in range(n_classes):
        tp = int(((pred_a == c) & (gold_a == c)).sum())
        fp = int(((pred_a == c) & (gold_a != c)).sum())
        fn = int(((pred_a != c) & (gold_a == c)).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"precision": precision, "recall": recall, "f1": f1, "support": tp + fn})
    return rows


def macro_f1(gold: Sequence[int], pred: Sequence[int], n_classes: int) -> float:
    """Unweighted mean F1 over the classes present in gold or pred (as scikit-learn's f1_score(average='macro'))."""
    gold_a, pred_a = np.asarray(gold), np.asarray(pred)
    present = sorted(set(gold_a.tolist()) | set(pred_a.tolist()))
    rows = per_class(gold_a, pred_a, n_classes)
    return float(np.mean([rows[c]["f1"] for c in present])) if present else 0.0


def classification_metrics(gold: Sequence[int], pred: Sequence[int], labels: Sequence[str]) -> dict[str, object]:
    rows = per_class(gold, pred, len(labels))
    return {"accuracy": accuracy(gold, pred), "macro_f1": macro_f1(gold, pred, len(labels)), "n": len(gold),
            "per_class": {label: row for label, row in zip(labels, rows)}}


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)
