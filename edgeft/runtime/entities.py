"""Entity chunks from BIO tags and entity-level scores, exactly as seqeval's default (conlleval) mode counts them.

Standard library only: a device scores its own predictions without numpy. Token accuracy flatters a tagger (most
tags are O), so the headline number is micro entity F1 over exact (type, start, end) matches.

    bio_entities(["B-PER", "I-PER", "O", "I-LOC"])  # [("PER", 0, 2), ("LOC", 3, 4)]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

Entity = tuple[str, int, int]  # (type, start, end): token indices, end exclusive


def bio_entities(tags: Sequence[str]) -> list[Entity]:
    """The entity chunks of one sentence's tags ("O", "B-type", "I-type"); ValueError on any other tag.

    conlleval semantics, so IOB1 files and a model's malformed output are scored the way everyone else scores them:
    an I- after O, or after a chunk of another type, starts a new chunk instead of being thrown away.
    """
    entities: list[Entity] = []
    open_type: str | None = None  # type of the chunk being read, None between chunks
    start = 0
    for i, tag in enumerate(tags):
        prefix, kind = _parse(tag, i)
        continues = prefix == "I" and kind == open_type
        if open_type is not None and not continues:
            entities.append((open_type, start, i))
            open_type = None
        if prefix != "O" and not continues:
            open_type, start = kind, i
    if open_type is not None:  # a chunk that runs to the last token
        entities.append((open_type, start, len(tags)))
    return entities


def _parse(tag: str, position: int) -> tuple[str, str | None]:
    if tag == "O":
        return "O", None
    if isinstance(tag, str) and tag[:2] in ("B-", "I-") and len(tag) > 2:
        return tag[0], tag[2:]
    # BIOES/IOBES tags (S-, E-) would be silently mis-chunked as BIO; refuse them rather than score them wrongly.
    raise ValueError(f"tag {tag!r} at token {position} is not O, B-TYPE or I-TYPE; convert BIOES/IOBES tags to BIO")


def entity_metrics(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Micro precision/recall/F1 over exact entity matches, per-type scores, macro F1 and token accuracy.

    Matches seqeval's `classification_report` (default mode) micro avg and its macro F1; a zero denominator gives 0.0.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted; score the same sentences")
    true_by_type: Counter[str] = Counter()
    pred_by_type: Counter[str] = Counter()
    hit_by_type: Counter[str] = Counter()
    tokens = correct_tokens = 0
    for n, (gold_tags, pred_tags) in enumerate(zip(gold, pred)):
        if len(gold_tags) != len(pred_tags):
            raise ValueError(f"sentence {n}: {len(gold_tags)} gold tags but {len(pred_tags)} predicted; "
                             f"predict one tag per token")
        try:
            gold_entities, pred_entities = set(bio_entities(gold_tags)), set(bio_entities(pred_tags))
        except ValueError as exc:
            raise ValueError(f"sentence {n}: {exc}") from None
        true_by_type.update(kind for kind, _, _ in gold_entities)
        pred_by_type.update(kind for kind, _, _ in pred_entities)
        hit_by_type.update(kind for kind, _, _ in gold_entities & pred_entities)
        tokens += len(gold_tags)
        correct_tokens += sum(g == p for g, p in zip(gold_tags, pred_tags))

    per_type = {}
    for kind in sorted(true_by_type.keys() | pred_by_type.keys()):
        precision, recall, f1 = _prf(hit_by_type[kind], pred_by_type[kind], true_by_type[kind])
        per_type[kind] = {"precision": precision, "recall": recall, "f1": f1, "support": true_by_type[kind]}
    n_true, n_pred = sum(true_by_type.values()), sum(pred_by_type.values())
    precision, recall, f1 = _prf(sum(hit_by_type.values()), n_pred, n_true)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "macro_f1": _ratio(sum(scores["f1"] for scores in per_type.values()), len(per_type)),
        "n": len(gold),
        "gold_entities": n_true,
        "predicted_entities": n_pred,
        "token_accuracy": _ratio(correct_tokens, tokens),
        "per_type": per_type,
    }


def _prf(hits: int, predicted: int, true: int) -> tuple[float, float, float]:
    precision, recall = _ratio(hits, predicted), _ratio(hits, true)
    # F1 from precision and recall (not 2*hits/(predicted+true)) so the floats match seqeval's bit for bit.
    return precision, recall, _ratio(2 * precision * recall, precision + recall)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0
