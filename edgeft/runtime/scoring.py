"""Held-out examples of either task and how a model is scored on them: the build (candidates, the shipped bundle,
the fp32 references) and `edgeft bench` on a device all score through `score`, so their numbers compare.

Classification: accuracy, macro-F1, per class. NER: entity-level micro precision / recall / F1 (conlleval / seqeval
semantics), macro-F1 over entity types, token accuracy, per type.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from edgeft.errors import BadInput, shortened
from edgeft.metrics import classification_metrics
from edgeft.runtime.encoder import TextEncoder

# The headline metric of each task: what budgets, candidate selection and early stopping compare.
# Shipped models are scored one text per call, as an app and `edgeft predict` call them. Dynamic int8 picks its
# activation scale per call over the whole batch, padding included, so a batch of 32 gives other predictions (the
# default tweets bundle: test accuracy 0.7809 in batches of 32, 0.7795 one text at a time).
SCORING_BATCH = 1
PRIMARY = {"classification": "accuracy", "ner": "f1"}
PRIMARY_NAME = {"classification": "accuracy", "ner": "entity F1"}


@dataclass(frozen=True)
class Examples:
    """Labelled held-out examples. NER keeps the words and tags; its `texts` are the words joined by spaces (what
    latency benches time and what an app would send)."""

    task: str
    texts: list[str]
    labels: list[str] = field(default_factory=list)  # classification: one label per text
    words: list[list[str]] = field(default_factory=list)  # ner: the words of each sentence
    tags: list[list[str]] = field(default_factory=list)  # ner: one BIO tag per word

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int) -> Examples:
        return Examples(self.task, self.texts[:n], self.labels[:n], self.words[:n], self.tags[:n])

    @classmethod
    def tagged(cls, words: list[list[str]], tags: list[list[str]]) -> Examples:
        return cls("ner", [" ".join(w) for w in words], [], words, tags)

    @classmethod
    def of(cls, data, indices: list[int], task: str) -> Examples:
        """The rows `indices` of a loaded data set, in that order: texts + labels, or (NER) words + tags."""
        if task == "ner":
            return cls.tagged([data.sentences[i] for i in indices], [data.tags[i] for i in indices])
        return cls(task, [data.texts[i] for i in indices], [data.labels[i] for i in indices])


def score(run: Callable[[dict[str, np.ndarray]], np.ndarray], encoder: TextEncoder, examples: Examples,
          labels: list[str], batch_size: int = SCORING_BATCH) -> dict:
    """Metrics of the model behind `run` (a session's run, or a PyTorch runner) on `examples`."""
    return metrics_of(examples, predict(run, encoder, examples, labels, batch_size), labels)


def predict(run: Callable[[dict[str, np.ndarray]], np.ndarray], encoder: TextEncoder, examples: Examples,
            labels: list[str], batch_size: int = SCORING_BATCH) -> list:
    """The predicted label of every text, or (NER) the predicted tag of every word of every sentence."""
    if examples.task == "ner":
        from edgeft.runtime.tagging import tags_of, word_logits

        unknown = sorted({t for s in examples.tags for t in s} - set(labels))
        if unknown:
            raise BadInput(f"tags the model does not know: {_few(unknown)}; its tags: {_few(labels)}; score data "
                           f"tagged like its training data")
        return tags_of(word_logits(run, encoder, examples.words, batch_size), examples.words, labels)
    unknown = sorted(set(examples.labels) - set(labels))
    if unknown:
        raise BadInput(f"labels the model does not know: {_few(unknown)}; its labels: {_few(labels)}; check "
                       f"--label-column")
    return [labels[k] for k in sentence_logits(run, encoder, examples.texts, len(labels), batch_size).argmax(-1)]


def _few(values: list[str], shown: int = 5) -> str:
    """A list for a one-line message: a few of its values (each cut to 40 characters) and how many in all."""
    cut = [shortened(v) for v in values[:shown]]
    more = f", ... ({len(values)} in all)" if len(values) > shown else ""
    return ", ".join(repr(v) for v in cut) + more


def metrics_of(examples: Examples, predicted: list, labels: list[str]) -> dict:
    """The task's metrics, and `texts_sha256`: which labelled examples they were measured on, so that two figures
    are compared only where they come from the same texts (`edgeft gate`), not merely as many."""
    if examples.task == "ner":
        from edgeft.runtime.entities import entity_metrics

        return {**entity_metrics(examples.tags, predicted), "texts_sha256": examples_digest(examples)}
    index = {label: i for i, label in enumerate(labels)}
    return {**classification_metrics([index[label] for label in examples.labels], [index[p] for p in predicted],
                                     labels), "texts_sha256": examples_digest(examples)}


def examples_digest(examples: Examples) -> str:
    """The same labelled examples in any order give the same digest; another text or gold label, another one."""
    import hashlib
    import json

    gold = examples.tags if examples.task == "ner" else examples.labels
    rows = sorted(json.dumps([text, g], ensure_ascii=False) for text, g in zip(examples.texts, gold))
    return hashlib.sha256("\n".join(rows).encode("utf-8")).hexdigest()


def example_stats(examples: Examples, predicted: list) -> np.ndarray:
    """What each example adds to the headline metric, so it can be resampled: [correct] per text, or
    [matched entities, predicted entities, gold entities] per sentence (micro F1 = 2 m / (p + g))."""
    if examples.task == "ner":
        from edgeft.runtime.entities import bio_entities

        rows = []
        for gold, tags in zip(examples.tags, predicted):
            g, p = set(bio_entities(gold)), set(bio_entities(tags))
            rows.append((len(g & p), len(p), len(g)))
        return np.array(rows, dtype=np.float64).reshape(-1, 3)
    return np.array([[float(p == g)] for p, g in zip(predicted, examples.labels)]).reshape(-1, 1)


def headline_of_sums(task: str, sums: np.ndarray, n: int) -> np.ndarray:
    """The headline metric from `n` examples' summed stats (the last axis), for one sum or many resampled ones."""
    if task == "ner":
        denominator = sums[..., 1] + sums[..., 2]
        return np.where(denominator > 0, 2 * sums[..., 0] / np.maximum(denominator, 1e-12), 0.0)
    return sums[..., 0] / max(n, 1)


Run = Callable[[dict[str, np.ndarray]], np.ndarray]


def sentence_logits(run: Run | Sequence[Run], encoder: TextEncoder, texts: list[str], n_labels: int,
                    batch_size: int = 32) -> np.ndarray:
    """Logits of many texts in batches, in the texts' order.

    Several `run`s (sessions of one thread each) work side by side, each taking the next batch: the batches are those
    of one session, so are the logits, and two 1-thread sessions get through the soft targets 1.07-1.12x faster than
    one 2-thread session on a 2-core host (docs/experiments/speed.md, section 20)."""
    runs = [run] if callable(run) else list(run)
    out = np.zeros((len(texts), n_labels), dtype=np.float32)
    batches = encoder.batches(texts, batch_size)  # similar lengths together: little padding
    lock = threading.Lock()

    def work(session_run: Run) -> None:
        while True:
            with lock:  # one generator, many workers
                taken = next(batches, None)
            if taken is None:
                return
            chunk, feeds = taken
            out[chunk] = session_run(feeds)  # rows of their own: no two workers write the same row

    if len(runs) == 1:
        work(runs[0])
    else:
        with ThreadPoolExecutor(len(runs)) as pool:
            list(pool.map(work, runs))
    return out
