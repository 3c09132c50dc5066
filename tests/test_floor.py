"""The floor under every verdict: a build whose teacher or shipped model does not beat a trivial baseline on the test
split (majority class; a lexicon of training entities for NER) writes its bundle and exits 1, saying why."""

from __future__ import annotations

import csv
import json
import random

from conftest import make_rows, run_edgeft, tiny_build_args
from edgeft.gating.floor import beats, lexicon_baseline, majority_baseline
from edgeft.runtime.scoring import Examples


def test_the_majority_baseline_predicts_the_training_splits_most_common_label():
    test = Examples("classification", ["a", "b", "c"], ["x", "y", "y"])
    baseline = majority_baseline(["y", "x", "y", "z"], test)
    assert baseline.predicted == ["y", "y", "y"] and "'y' (50% of the training split)" in baseline.description
    # A tie goes to the label that sorts first, whatever the order of the data.
    assert majority_baseline(["b", "a", "b", "a"], test).predicted == ["a"] * 3


def test_the_lexicon_baseline_tags_training_entities_longest_match_first_ignoring_case():
    train = [(["New", "York", "is", "big"], ["B-loc", "I-loc", "O", "O"]), (["York", "rules"], ["B-person", "O"])]
    test = Examples.tagged([["i", "love", "new", "york"], ["york", "and", "paris"]], [["O"] * 4, ["O"] * 3])
    baseline = lexicon_baseline([w for w, _ in train], [t for _, t in train], test)
    assert baseline.predicted == [["O", "O", "B-loc", "I-loc"], ["B-person", "O", "O"]]


def test_beating_a_baseline_needs_a_margin_that_survives_resampling():
    gold = ["a", "b", "c"] * 40
    test = Examples("classification", [str(i) for i in range(len(gold))], gold)
    baseline = majority_baseline(["a", "a", "b"], test)
    assert not beats(test, list(baseline.predicted), baseline)["passed"]  # the same predictions: margin 0
    one_more = ["a", "b"] + ["a"] * (len(gold) - 2)  # one text more right than the baseline: not significant
    result = beats(test, one_more, baseline)
    assert result["margin"] > 0 and not result["passed"]
    learned = beats(test, gold[:100] + ["a"] * 20, baseline)  # most texts right
    assert learned["passed"] and learned["lower_bound"] > 0.4


def test_a_build_on_shuffled_labels_exits_1_naming_the_majority_baseline(tiny_model, tmp_path):
    rows = make_rows(480, seed=1)
    labels = [label for _, label in rows]
    random.Random(7).shuffle(labels)  # nothing learnable is left
    data = tmp_path / "shuffled.csv"
    with open(data, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("text", "label"), *((text, label) for (text, _), label in zip(rows, labels))])
    out = tmp_path / "bundle"
    code, _, err = run_edgeft(tiny_build_args("x86-avx2-teacher", tiny_model, data, out, tmp_path / "work"))
    assert code == 1, err
    assert "did not beat the majority baseline" in err and "unlearnable or shuffled labels" in err
    report = json.loads((out / "report.json").read_text())  # written for inspection
    assert not report["floor"]["teacher"]["passed"]
    assert report["metrics"]["majority_accuracy"] == report["floor"]["baseline_score"]
    # ... and says so to every reader: the verdict, the model card's banner, and a warning from whoever runs it.
    assert report["verdict"]["passed"] is False and any("beats the majority" in f for f in report["verdict"]["failed"])
    card = (out / "README.md").read_text()
    assert "**Not for shipping: this bundle failed its build's checks**" in card.split("## ")[0]
    code, _, err = run_edgeft(["predict", str(out), "good day"])
    assert code == 0 and "warning:" in err and "failed its build's checks" in err


def test_the_same_tiny_model_on_learnable_labels_clears_the_floor_and_the_gate_checks_it(tiny_bundles, tmp_path):
    bundle = tiny_bundles["x86-avx2"]
    report = json.loads((bundle / "report.json").read_text())
    floor = report["floor"]
    assert floor["teacher"]["passed"] and floor["shipped"]["passed"] and floor["baseline"] == "majority"
    assert report["verdict"] == {"passed": True, "failed": []}
    assert "Not for shipping" not in (bundle / "README.md").read_text()
    assert 0.2 < report["metrics"]["majority_accuracy"] < 0.5 < report["metrics"]["accuracy"]
    # The tiny vocabulary reads every word of these texts: nothing to warn about.
    fit = json.loads((bundle / "manifest.json").read_text())["inputs"]["data"]["vocabulary_fit"]
    assert fit["unknown"] == 0 and fit["warnings"] == []
    assert "majority baseline" in (bundle / "README.md").read_text()
    assert "majority baseline" in (bundle / "report.html").read_text()
    bench = tmp_path / "bench.json"
    code, _, err = run_edgeft(["bench", str(bundle), "--runs", "10", "--json", str(bench)])
    assert code == 0, err
    code, out, _ = run_edgeft(["gate", str(bench)])
    assert code == 0 and "beats the majority baseline" in out
    # A bench of a bundle whose build recorded a failed floor does not pass the gate.
    failed = json.loads(bench.read_text())
    failed["report"]["floor"]["shipped"]["passed"] = False
    bench.write_text(json.dumps(failed))
    code, out, _ = run_edgeft(["gate", str(bench)])
    assert code == 1 and "beats the majority baseline" in out
