"""A moving average of the weights (Student.ema_decay): dev scores it and the model ends holding it, while the
weights underneath train exactly as they would without it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgeft.student_recipe import Student
from edgeft.stages.training import Schedule, train

STEPS_PER_EPOCH, EPOCHS = 8, 2


def run(ema_decay: float, checkpoint=None, dev_scores=None, epochs: int = EPOCHS, patience: int = 5
        ) -> tuple[torch.nn.Linear, list[torch.Tensor], list[float]]:
    """A linear regression trained for `epochs` epochs; returns the model, the weights each step started from and the
    losses. Dev scores rise every epoch unless given, so the last epoch is the one kept."""
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    model = torch.nn.Linear(4, 1)
    starts, losses = [], []

    def batch_loss(forward, rows: np.ndarray):
        starts.append(torch.cat([model.weight.detach().flatten(), model.bias.detach()]).clone())
        loss = ((forward(x[rows]).squeeze(-1) - y[rows]) ** 2).mean()
        losses.append(loss.item())
        return loss

    scores = iter(dev_scores or range(100))
    schedule = Schedule(epochs=epochs, learning_rate=0.05, batch_size=8, warmup_ratio=0.0, weight_decay=0.0,
                        patience=patience, seed=0, ema_decay=ema_decay)
    train(model, list(model.named_parameters()), np.ones(64, dtype=int), schedule, "cpu", batch_loss,
          lambda: float(next(scores)), "test", checkpoint=checkpoint)
    return model, starts, losses


def flat(model: torch.nn.Linear) -> torch.Tensor:
    return torch.cat([model.weight.detach().flatten(), model.bias.detach()])


def moving_average(weights: list[torch.Tensor], decay: float) -> torch.Tensor:
    """The average of w_0 .. w_T as the loop keeps it, written out step by step."""
    average = weights[0].clone()
    for t, w in enumerate(weights[1:], start=1):
        d = min(decay, (1 + t) / (10 + t))  # warmed up: early weights do not dominate a short run
        average = d * average + (1 - d) * w
    return average


def test_the_model_ends_holding_the_moving_average_of_the_weights_it_trained():
    plain, starts, _ = run(0.0)
    trained = starts + [flat(plain)]  # w_0 .. w_T: each step's start, and the end
    assert len(trained) == STEPS_PER_EPOCH * EPOCHS + 1
    expected = moving_average(trained, 0.9)
    averaged, _, _ = run(0.9)
    assert torch.allclose(flat(averaged), expected, atol=1e-6)
    assert not torch.allclose(flat(averaged), flat(plain), atol=1e-3)


def test_scoring_the_average_on_dev_does_not_disturb_the_training_beneath_it():
    _, plain_starts, plain_losses = run(0.0)
    _, ema_starts, ema_losses = run(0.9)
    assert ema_losses == plain_losses
    assert all(torch.equal(a, b) for a, b in zip(plain_starts, ema_starts))


def test_patience_still_ends_an_averaged_run_and_the_best_epochs_average_is_kept():
    # Epoch 2 scores worse than epoch 1: one epoch of patience ends the run there, as it does without the average.
    averaged, starts, _ = run(0.9, dev_scores=[2.0, 1.0, 3.0], epochs=3, patience=1)
    assert len(starts) == 2 * STEPS_PER_EPOCH
    plain, plain_starts, _ = run(0.0, dev_scores=[2.0, 1.0, 3.0], epochs=3, patience=1)
    assert len(plain_starts) == 2 * STEPS_PER_EPOCH
    # Epoch 1's average is kept: not epoch 2's trained weights, nor epoch 1's.
    trained_after_epoch_1 = plain_starts[STEPS_PER_EPOCH]
    assert not torch.allclose(flat(averaged), trained_after_epoch_1, atol=1e-3)
    expected = moving_average(plain_starts[:STEPS_PER_EPOCH + 1], 0.9)
    assert torch.allclose(flat(averaged), expected, atol=1e-6)


def test_the_average_is_off_by_default_and_a_decay_of_one_is_refused():
    assert Student(layers=2).ema_decay == 0.0
    with pytest.raises(ValueError):
        Student(layers=2, ema_decay=1.0)


def test_a_checkpointed_run_cannot_average_because_a_resume_would_lose_the_average(tmp_path):
    with pytest.raises(ValueError, match="not checkpointed"):
        run(0.9, checkpoint=tmp_path / "ckpt")


def test_the_later_of_tied_epochs_is_kept_and_a_tie_does_not_count_against_patience():
    # A small, easy dev split is right on every text from the first epoch on: the model must not go back to that
    # first, barely trained epoch. It ends where a run with rising scores ends: the last epoch's weights.
    tied, starts, _ = run(0.0, dev_scores=[1.0, 1.0, 1.0], epochs=3, patience=1)
    assert len(starts) == 3 * STEPS_PER_EPOCH  # patience 1, yet all three epochs ran
    rising, _, _ = run(0.0, epochs=3)
    assert torch.equal(flat(tied), flat(rising))
    # The later of two best evaluations is the one kept: its dev predictions are those the student rule reads.
    from edgeft.stages.training import best_evaluation

    history = [{"epoch": e, "dev_accuracy": s} for e, s in ((1, 0.9), (2, 0.95), (3, 0.95), (4, 0.9))]
    assert best_evaluation(history, "dev_accuracy") == 2
