"""Is edgeft's training loop `transformers.Trainer`'s? Both train the same initial weights on the same batches in the
same order with `Trainer`'s settings and no dropout; equivalent loops end with the same model to float rounding.

Data: the tweets-2000 draw of `bench_recipes.py` (its split; the training texts cut to a multiple of the batch, so no
epoch ends on a short batch). The head is drawn after `torch.manual_seed(seed)` on both sides, as the fine-tune stage
draws it. Batches: one seeded permutation per epoch, given to edgeft's loop in place of its length-grouped batches
and to `Trainer` as one pass over the epochs' permutations through a sequential sampler (so its linear schedule spans
the same steps). Settings: lr 5e-5, batch 8, 3 epochs, no warm-up, no weight decay, trainable embeddings, dropout
0, the last epoch kept (edgeft is shown a rising dev score). Prints test accuracy, how many test predictions differ,
the largest weight differences and each side's training seconds (docs/experiments/recipes.md, section 11).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers

import bench_recipes
import edgeft.stages.finetune as finetune_stage
import edgeft.stages.training as training
from edgeft.data.assets import DEFAULT_MODEL, packaged_model
from edgeft.data.text import Split, split_dataset
from edgeft.runtime.bench import host_description
from edgeft.stages.torch_model import load_classifier, set_training_options

BATCH, EPOCHS = 8, 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="the tweets-2000 draw, and the head's seed")
    args = parser.parse_args()
    ds = bench_recipes.draw("tweets-2000", args.seed)
    full = split_dataset(ds, args.seed)
    n = len(full.train) // BATCH * BATCH
    split = Split(full.train[:n], full.dev, full.test)
    labels, folder = ds.label_names, packaged_model(DEFAULT_MODEL).path
    orders = [np.random.default_rng(500 + e).permutation(n) for e in range(EPOCHS)]
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)

    def rows(indices: list[int]) -> list[dict]:
        return bench_recipes.trainer_rows(ds, tokenizer, indices)

    def test_predictions(model) -> tuple[float, np.ndarray]:
        gold, predicted = bench_recipes.trainer_predictions(model, tokenizer, rows(split.test))
        return float(np.mean(np.array(gold) == np.array(predicted))), np.array(predicted)

    # edgeft: its fine-tune stage, with the fixed batches and the last epoch kept.
    epochs = iter(orders)
    grouped, loop = training.length_grouped_batches, finetune_stage.train
    training.length_grouped_batches = lambda lengths, size, rng: np.array_split(next(epochs), n // size)
    finetune_stage.train = bench_recipes.keep_last_epoch(loop)
    spec = finetune_stage.FinetuneSpec.for_task("classification", seed=args.seed, device="cpu",
                                                **{**bench_recipes.TRAINER_SETTINGS, "dropout": 0.0})
    try:
        with tempfile.TemporaryDirectory() as tmp:
            art = finetune_stage.finetune(folder, ds, split, spec, Path(tmp))
            ours = load_classifier(art.path, task="classification")
            ours_seconds = art.manifest["metrics"]["train_seconds"]
    finally:
        training.length_grouped_batches, finetune_stage.train = grouped, loop

    # Trainer: the same head, one sequential pass over the same batches.
    torch.manual_seed(args.seed)
    theirs = load_classifier(folder, labels)
    set_training_options(theirs, 0.0, freeze_embeddings=False)
    order = [split.train[i] for epoch in orders for i in epoch]
    with tempfile.TemporaryDirectory() as tmp:
        settings = transformers.TrainingArguments(
            output_dir=tmp, report_to=[], save_strategy="no", logging_strategy="no", seed=args.seed, use_cpu=True,
            disable_tqdm=True, num_train_epochs=1, per_device_train_batch_size=BATCH)
        trainer = transformers.Trainer(model=theirs, args=settings, train_dataset=rows(order),
                                       data_collator=transformers.DataCollatorWithPadding(tokenizer))
        trainer._get_train_sampler = lambda *a, **k: torch.utils.data.SequentialSampler(range(len(order)))
        started = time.perf_counter()
        trainer.train()
        theirs_seconds = time.perf_counter() - started

    ours_accuracy, ours_predicted = test_predictions(ours)
    theirs_accuracy, theirs_predicted = test_predictions(theirs)
    a, b = ours.state_dict(), theirs.state_dict()
    differences = sorted(((float((a[k].float() - b[k].float()).abs().max()), k) for k in a), reverse=True)[:3]
    host = host_description()
    print(json.dumps({"host": f"{host['cpu']} ({', '.join(host['isa'])})", "seed": args.seed,
                      "steps": n // BATCH * EPOCHS, "trainer_optimizer": str(settings.optim),
                      "edgeft_test_accuracy": ours_accuracy, "trainer_test_accuracy": theirs_accuracy,
                      "test_predictions_differing": int((ours_predicted != theirs_predicted).sum()),
                      "largest_weight_differences": differences,
                      "edgeft_train_seconds": ours_seconds, "trainer_train_seconds": round(theirs_seconds, 1)},
                     indent=1))


if __name__ == "__main__":
    main()
