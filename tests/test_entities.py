"""Entity chunks from BIO tags and entity-level scores: conlleval semantics, checked by hand and against seqeval."""

from __future__ import annotations

import random
import warnings

import pytest

from edgeft.runtime.entities import bio_entities, entity_metrics


def test_b_then_i_is_one_entity_and_end_is_exclusive():
    assert bio_entities(["O", "B-PER", "I-PER", "O"]) == [("PER", 1, 3)]


def test_i_after_o_or_at_the_start_opens_an_entity():
    # IOB1 files and sloppy models write I- where B- belongs; conlleval counts the entity anyway.
    assert bio_entities(["I-LOC", "O", "I-PER", "I-PER"]) == [("LOC", 0, 1), ("PER", 2, 4)]


def test_a_type_change_inside_an_i_run_splits_the_entity():
    assert bio_entities(["B-PER", "I-PER", "I-LOC", "I-LOC"]) == [("PER", 0, 2), ("LOC", 2, 4)]


def test_b_after_b_is_two_entities_even_of_the_same_type():
    assert bio_entities(["B-PER", "B-PER", "I-PER"]) == [("PER", 0, 1), ("PER", 1, 3)]


def test_an_entity_on_the_last_token_is_kept():
    assert bio_entities(["O", "O", "B-ORG"]) == [("ORG", 2, 3)]
    assert bio_entities(["B-ORG", "I-ORG"]) == [("ORG", 0, 2)]


def test_types_may_contain_hyphens():
    assert bio_entities(["B-geo-loc", "I-geo-loc"]) == [("geo-loc", 0, 2)]


def test_no_tags_or_only_o_give_no_entities():
    assert bio_entities([]) == []
    assert bio_entities(["O", "O"]) == []


@pytest.mark.parametrize("tag", ["S-PER", "E-PER", "B-", "PER", "o", "B_PER", ""])
def test_a_tag_outside_bio_is_refused(tag):
    with pytest.raises(ValueError, match="is not O, B-TYPE or I-TYPE"):
        bio_entities(["O", tag])


def test_metrics_of_a_small_hand_checked_case():
    # seqeval's documentation example: one of two gold entities found, one of two predictions right.
    gold = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    m = entity_metrics(gold, pred)
    assert (m["precision"], m["recall"], m["f1"], m["macro_f1"]) == (0.5, 0.5, 0.5, 0.5)
    assert (m["n"], m["gold_entities"], m["predicted_entities"]) == (2, 2, 2)
    assert m["token_accuracy"] == 8 / 10  # tokens 2 and 3 of the first sentence differ
    assert m["per_type"] == {"MISC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
                             "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}}


def test_a_type_only_predicted_counts_in_macro_f1_with_zero_support():
    m = entity_metrics([["B-PER", "O"]], [["B-PER", "B-LOC"]])
    assert list(m["per_type"]) == ["LOC", "PER"]  # sorted by type
    assert m["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["macro_f1"] == 0.5
    assert (m["precision"], m["recall"]) == (0.5, 1.0)


def test_entities_match_within_their_sentence_only():
    # The same (type, start, end) in another sentence is a different entity.
    m = entity_metrics([["B-PER", "O"], ["O", "O"]], [["O", "O"], ["B-PER", "O"]])
    assert (m["precision"], m["recall"], m["f1"]) == (0.0, 0.0, 0.0)


def test_nothing_to_count_gives_zeros_not_an_error():
    m = entity_metrics([["O"]], [["O"]])
    assert (m["precision"], m["recall"], m["f1"], m["macro_f1"], m["per_type"]) == (0.0, 0.0, 0.0, 0.0, {})
    assert m["token_accuracy"] == 1.0
    assert entity_metrics([], [])["token_accuracy"] == 0.0


def test_mismatched_lengths_and_bad_tags_are_refused():
    with pytest.raises(ValueError, match="2 gold sentences but 1 predicted"):
        entity_metrics([["O"], ["O"]], [["O"]])
    with pytest.raises(ValueError, match="sentence 1: 2 gold tags but 1 predicted"):
        entity_metrics([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="sentence 0: tag 'S-PER' at token 1"):
        entity_metrics([["O", "O"]], [["O", "S-PER"]])


def random_tags(rng: random.Random, n_sentences: int) -> tuple[list[list[str]], list[list[str]]]:
    """Gold and predicted tags drawn freely: I- after O and I- of another type (malformed starts) are common."""
    tags = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-geo-loc", "I-geo-loc", "B-ORG"]
    gold = [[rng.choice(tags) for _ in range(rng.randint(0, 15))] for _ in range(n_sentences)]
    pred = [[tag if rng.random() < 0.6 else rng.choice(tags) for tag in sentence] for sentence in gold]
    return gold, pred


def test_agrees_with_seqeval_default_mode():
    pytest.importorskip("seqeval")  # written against seqeval 1.2.2
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
    from seqeval.metrics.sequence_labeling import get_entities

    gold, pred = random_tags(random.Random(0), 200)
    flat = [tag for sentence in gold + pred for tag in sentence]
    assert any(a == "O" and b.startswith("I-") for a, b in zip(flat, flat[1:]))  # the malformed case is exercised
    for sentence in gold + pred:
        assert bio_entities(sentence) == [(kind, start, end + 1) for kind, start, end in get_entities(sentence)]
    m = entity_metrics(gold, pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns on zero division; both sides give 0.0 there
        report = classification_report(gold, pred, output_dict=True)
        expected = (precision_score(gold, pred), recall_score(gold, pred), f1_score(gold, pred),
                    f1_score(gold, pred, average="macro"))
    assert m["precision"] == pytest.approx(expected[0], abs=1e-9)
    assert m["recall"] == pytest.approx(expected[1], abs=1e-9)
    assert m["f1"] == pytest.approx(expected[2], abs=1e-9)
    assert m["macro_f1"] == pytest.approx(expected[3], abs=1e-9)
    assert m["gold_entities"] == report["micro avg"]["support"]
    for kind, scores in m["per_type"].items():
        assert scores["f1"] == pytest.approx(report[kind]["f1-score"], abs=1e-9)
        assert scores["support"] == report[kind]["support"]
