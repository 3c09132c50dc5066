"""Which vector of the frozen packaged MiniLM carries the label: a linear probe on [CLS], the pooler, or the mean?

all-MiniLM-L6-v2 was trained as a sentence-embedding model through the mean over its token vectors; its [CLS] vector
and pooler never were. This fits a logistic regression on each of the three frozen vectors of the training split of
a `bench_recipes.py` draw and scores it on the test split (docs/experiments/recipes.md, section 17).

    .venv/bin/python benchmarks/pooling_probe.py --set tweets-2000 --seeds 3

A benchmark, not a test: it prints one line per draw.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_recipes import draw  # noqa: E402

from edgeft.data.assets import DEFAULT_MODEL, packaged_model  # noqa: E402
from edgeft.data.text import split_dataset  # noqa: E402


def features(model, tokenizer, texts: list[str]) -> dict[str, np.ndarray]:
    import torch

    out: dict[str, list] = {"cls": [], "pooler": [], "mean": []}
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            batch = tokenizer(texts[start:start + 64], padding=True, truncation=True, max_length=128,
                              return_tensors="pt")
            result = model(**batch)
            hidden, mask = result.last_hidden_state, batch["attention_mask"].unsqueeze(-1).float()
            out["cls"].append(hidden[:, 0])
            out["pooler"].append(result.pooler_output)
            out["mean"].append((hidden * mask).sum(1) / mask.sum(1))
    return {k: torch.cat(v).numpy() for k, v in out.items()}


def main() -> None:
    import torch
    import transformers
    from sklearn.linear_model import LogisticRegression

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="tweets-2000")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    folder = packaged_model(DEFAULT_MODEL).path
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.BertModel.from_pretrained(folder, use_safetensors=True).eval()
    torch.set_num_threads(2)
    for seed in range(args.seeds):
        ds = draw(args.set, seed)
        split = split_dataset(ds, seed)
        train = features(model, tokenizer, [ds.texts[i] for i in split.train])
        test = features(model, tokenizer, [ds.texts[i] for i in split.test])
        y_train, y_test = [ds.labels[i] for i in split.train], [ds.labels[i] for i in split.test]
        scores = {k: LogisticRegression(max_iter=2000).fit(train[k], y_train).score(test[k], y_test) for k in train}
        print(f"{args.set} draw {seed}: {len(split.train)} train / {len(split.test)} test texts; probe accuracy "
              + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()), flush=True)


if __name__ == "__main__":
    main()
