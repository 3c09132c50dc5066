"""A floor under every verdict: the teacher and the shipped model must beat a trivial baseline on the test split.

A bundle that is within budget of its teacher proves nothing when the teacher learned nothing (too little data,
unlearnable labels, too few steps): both then predict the majority class, and the drop is 0. So the build scores
trivial baselines on the same test split and requires each model to beat them by a margin that survives
resampling:

- classification: the majority-class predictor (the training split's most common label for every text), on
  accuracy. Accuracy, not macro-F1: on balanced data a model guessing at random beats the majority predictor's
  macro-F1 (1/k of one class's F1) without having learned anything, while it cannot beat its accuracy.
- NER: a lexicon tagger (every entity string seen in the training split, tagged with its most frequent type wherever
  it occurs, longest match first, case-insensitive), on entity F1. An all-O tagger scores 0 and would be no floor.
  A model that only memorised the training entities ties the lexicon; one that learned to tag from context beats it
  on the entities the training split never showed it (WNUT-16: lexicon 0.29 against the fine-tuned model's 0.48,
  docs/experiments/recipes.md). On data where every test entity is memorisable no model can beat the lexicon, and
  such a test split cannot tell a tagger from a word list either: the build then exits 1 as for any other floor.

"Beats" is a one-sided paired bootstrap over the test examples at 95 %: the same resampled texts score both, and the
5th percentile of (model - baseline) must be above 0 (`LEVEL`, `RESAMPLES`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeft.runtime.entities import bio_entities
from edgeft.runtime.scoring import Examples, example_stats, headline_of_sums, metrics_of

LEVEL = 0.95
RESAMPLES = 2000


@dataclass(frozen=True)
class Baseline:
    """A trivial predictor's name and its predictions on the test split (labels, or BIO tags per word)."""

    name: str
    description: str
    predicted: list


def majority_baseline(train_labels: list[str], test: Examples) -> Baseline:
    counts = Counter(train_labels)
    # Ties go to the label that sorts first, so the baseline does not depend on the data's order.
    label = min(counts, key=lambda item: (-counts[item], item))
    return Baseline("majority", f"the majority class '{label}' ({counts[label] / len(train_labels):.0%} of the "
                                f"training split) for every text", [label] * len(test))


def lexicon_baseline(train_words: list[list[str]], train_tags: list[list[str]], test: Examples) -> Baseline:
    seen: dict[tuple[str, ...], Counter] = {}
    for words, tags in zip(train_words, train_tags):
        for kind, start, end in bio_entities(tags):
            seen.setdefault(tuple(w.lower() for w in words[start:end]), Counter())[kind] += 1
    lexicon = {phrase: kinds.most_common(1)[0][0] for phrase, kinds in seen.items()}
    longest = max((len(p) for p in lexicon), default=0)
    predicted = []
    for words in test.words:
        lowered, tags, i = [w.lower() for w in words], ["O"] * len(words), 0
        while i < len(words):
            for n in range(min(longest, len(words) - i), 0, -1):
                kind = lexicon.get(tuple(lowered[i:i + n]))
                if kind is not None:
                    tags[i:i + n] = [f"B-{kind}"] + [f"I-{kind}"] * (n - 1)
                    i += n
                    break
            else:
                i += 1
        predicted.append(tags)
    return Baseline("lexicon", f"a lexicon of the {len(lexicon)} entity strings of the training split, tagged where "
                               f"they occur", predicted)


def baseline_metrics(baseline: Baseline, test: Examples, labels: list[str]) -> dict[str, Any]:
    return metrics_of(test, baseline.predicted, labels)


def paired_margin(test: Examples, first: list, second: list, seed: int = 0) -> tuple[float, float]:
    """(first - second) on the headline metric over these test examples, and its one-sided 95 % lower bound by a
    paired bootstrap (the same resampled examples score both)."""
    task = test.task
    ours, theirs = example_stats(test, first), example_stats(test, second)
    n = len(ours)
    margin = float(headline_of_sums(task, ours.sum(0), n) - headline_of_sums(task, theirs.sum(0), n))
    if n == 0:
        return margin, 0.0
    picks = np.random.default_rng(seed).integers(0, n, size=(RESAMPLES, n))
    margins = headline_of_sums(task, ours[picks].sum(1), n) - headline_of_sums(task, theirs[picks].sum(1), n)
    return margin, float(np.quantile(margins, 1 - LEVEL))


def beats(test: Examples, model_predicted: list, baseline: Baseline, seed: int = 0) -> dict[str, Any]:
    """One-sided paired bootstrap: does the model's headline metric beat the baseline's on these test examples?"""
    margin, lower = paired_margin(test, model_predicted, baseline.predicted, seed)
    return {"baseline": baseline.name, "margin": margin, "lower_bound": lower, "level": LEVEL,
            "resamples": RESAMPLES, "passed": lower > 0}


def floor_message(failed: list[str], baseline: Baseline, score: float, metric: str, task: str) -> str:
    """One line: which model did not beat which baseline, the likely causes and what to try."""
    more = ("more labelled sentences, more epochs (--epochs), or check that the tag column holds BIO / IOB1 tags "
            "of the words beside them" if task == "ner" else
            "more labelled texts, more optimizer steps (--min-steps 600, --max-train-samples 0 for the whole "
            "split), --class-weights balanced if one label dominates, or check that the label column holds what the "
            "texts say (--label-column)")
    return (f"{' and '.join(failed)} did not beat the {baseline.name} baseline ({baseline.description}: "
            f"{metric} {score:.4f}) on the test split (one-sided paired bootstrap, {LEVEL:.0%}), so it learned "
            f"nothing usable: likely too little data, unlearnable or shuffled labels, or too few training steps; try "
            f"{more}")
