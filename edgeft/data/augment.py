"""Word-dropped copies of the training texts: new inputs for the teacher to label, so that a student sees more
distinct texts than the training split holds. They carry soft targets only: a dropped word can change the label.
"""

from __future__ import annotations

import numpy as np

from edgeft.errors import BadInput


def check_task(views: int, task: str) -> None:
    """Copies are for sentence labels: in a tagged sentence a dropped word would shift every tag after it."""
    if views and task == "ner":
        raise BadInput(f"augment_views={views} is for sentence labels (a dropped word would shift every tag after "
                       f"it); for NER give unlabelled text with --extra-text")


def word_dropped(texts: list[str], views: int, rate: float, seed: int) -> list[str]:
    """`views` copies of every text of three or more words, each word dropped with probability `rate`; at least one
    word goes, so a copy is never its text again. Shorter texts give none. Seeded: the same texts, views, rate and
    seed give the same copies, and so the same cached soft targets. All first copies come before any second one."""
    if views <= 0:
        return []
    rng = np.random.default_rng(seed)
    copies = []
    for _ in range(views):
        for text in texts:
            words = text.split()
            if len(words) < 3:
                continue
            keep = rng.random(len(words)) >= rate
            if keep.all():
                keep[rng.integers(len(words))] = False
            copies.append(" ".join(word for word, kept in zip(words, keep) if kept))
    return copies
