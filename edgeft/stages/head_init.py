"""A classifier head that starts where a linear probe ends (LP-FT: Kumar et al., 2022, "Fine-Tuning can Distort
Pretrained Features").

A fresh head is random, so the first fine-tuning steps push large, random gradients into the pretrained encoder; on a
few hundred texts that distortion is a large share of all training. Fitting the head first as a logistic regression
on the frozen encoder's features (one forward pass over the training texts, then L-BFGS) starts fine-tuning from a
head that already separates the classes. Measured in docs/experiments/recipes.md, section 9.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgeft.stages.torch_model import torch_modules

# scikit-learn's LogisticRegression defaults: C = 1 (the L2 term is 1 / (2 C n) of the mean loss), at most 100
# L-BFGS iterations.
PROBE_C = 1.0
PROBE_ITERATIONS = 100


def head_features(model, feeds_of: Callable[[list[int]], dict[str, Any]], n: int, device: str,
                  batch_size: int = 64) -> np.ndarray | None:
    """What the model's last Linear (`model.classifier`) reads for each of `n` examples, or None when the head is
    not one Linear layer (RoBERTa's two-layer head, say): those models keep their random head."""
    torch, _ = torch_modules()
    head = getattr(model, "classifier", None)
    if not isinstance(head, torch.nn.Linear):
        return None
    seen: list[Any] = []
    hook = head.register_forward_pre_hook(lambda _module, args: seen.append(args[0].detach().float().cpu()))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, n, batch_size):
                feeds = feeds_of(list(range(start, min(n, start + batch_size))))
                model(**{k: torch.from_numpy(v).to(device) for k, v in feeds.items()})
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(seen).numpy()


def fit_probe(features: np.ndarray, y: np.ndarray, n_labels: int,
              class_weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """(weight [n_labels, dim], bias [n_labels], training accuracy) of an L2 multinomial logistic regression."""
    torch, _ = torch_modules()
    x = torch.from_numpy(features.astype(np.float32))
    target = torch.from_numpy(y.astype(np.int64))
    weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
    w = torch.zeros((n_labels, x.shape[1]), requires_grad=True)
    b = torch.zeros(n_labels, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=PROBE_ITERATIONS, line_search_fn="strong_wolfe")
    l2 = 1.0 / (2 * PROBE_C * len(y))

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ w.T + b, target, weight=weights) + l2 * (w * w).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        train_accuracy = float(((x @ w.T + b).argmax(-1) == target).float().mean())
    return w.detach().numpy(), b.detach().numpy(), train_accuracy


def init_head_from_probe(model, feeds_of: Callable[[list[int]], dict[str, Any]], y: np.ndarray, n_labels: int,
                         device: str, class_weights: np.ndarray | None = None) -> dict[str, Any]:
    """Replace `model.classifier`'s random weights by a probe fitted on the training examples; what happened, for the
    manifest."""
    torch, _ = torch_modules()
    features = head_features(model, feeds_of, len(y), device)
    if features is None:
        return {"head_init": "random", "reason": f"{type(model).__name__}'s head is not one Linear layer"}
    weight, bias, train_accuracy = fit_probe(features, y, n_labels, class_weights)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(weight))
        model.classifier.bias.copy_(torch.from_numpy(bias))
    return {"head_init": "probe", "probe_train_accuracy": round(train_accuracy, 4)}
