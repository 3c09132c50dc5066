"""NER through the whole pipeline: a tiny random BERT learns to tag two entity types, and `edgeft build --task ner`
turns it into a bundle scored by entity F1 on its own runtime; `edgeft predict` returns spans, `edgeft bench` scores
the bundle's samples like the build did."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from conftest import FILLER, run_edgeft

# Entity words of the tiny vocabulary (conftest.WORDS): "person" names are two words, "place" names one.
PEOPLE = ["good", "great", "happy"]
PLACES = ["table", "car", "window"]
TINY_NER_TRAINING = ["--epochs", "6", "--learning-rate", "3e-3", "--device", "cpu"]


def tagged_sentences(n: int, seed: int) -> list[tuple[list[str], list[str]]]:
    rng = random.Random(seed)
    sentences = []
    for i in range(n):
        words = rng.sample(FILLER, 5)
        tags = ["O"] * 5
        at = rng.randrange(5)
        if i % 2:
            words[at:at] = [rng.choice(PEOPLE), rng.choice(PEOPLE)]
            tags[at:at] = ["B-person", "I-person"]
        else:
            words[at:at] = [rng.choice(PLACES)]
            tags[at:at] = ["B-place"]
        sentences.append((words, tags))
    return sentences


@pytest.fixture(scope="module")
def tiny_conll(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ner") / "tiny.conll"
    blocks = ["\n".join(f"{w}\t{t}" for w, t in zip(words, tags)) for words, tags in tagged_sentences(300, seed=0)]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def ner_bundle(tiny_model, tiny_conll, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ner-build")
    code, _, err = run_edgeft(["build", "--task", "ner", "--target", "x86-avx2", "--model", str(tiny_model),
                               "--data", str(tiny_conll), "--out", str(root / "bundle"), "--work-dir",
                               str(root / "work"), *TINY_NER_TRAINING])
    assert code == 0, err
    return root / "bundle"


def test_ner_build_scores_every_candidate_by_entity_f1_and_ships_within_the_f1_budget(ner_bundle):
    report = json.loads((ner_bundle / "report.json").read_text())
    manifest = json.loads((ner_bundle / "manifest.json").read_text())
    assert report["task"] == "ner" and manifest["bundle"]["task"] == "ner"
    assert manifest["bundle"]["labels"] == ["O", "B-person", "I-person", "B-place", "I-place"]
    # x86-avx2 distils a student for sentence classification only: an NER build ships the fine-tuned model.
    assert manifest["distill"] is None and [r["model"] for r in report["models"]][0] == "fine-tuned fp32"
    m = report["metrics"]
    assert m["f1"] > 0.5  # the tiny model learned the entities: chance is near 0 for exact spans
    assert m["f1_drop"] == pytest.approx(m["teacher_f1"] - m["f1"])
    assert report["budgets"][0]["name"] == "entity F1 drop vs fp32 model"
    assert report["budgets"][0]["passed"] and report["budgets"][0]["limit"] == 0.02
    selection = report["selection"]
    assert selection["metric"] == "entity F1"
    assert {c["name"] for c in selection["candidates"]} >= {"dynamic-int8", "dynamic-int8-body", "fp32"}
    assert all(0.0 <= c["dev_score"] <= 1.0 for c in selection["candidates"])
    assert set(m["per_type"]) == {"person", "place"}
    # The lexicon of training entities is reported beside the model (the NER floor; not enforced yet: on these toy
    # sentences every entity is memorisable, lexicon F1 1.0).
    assert report["floor"]["baseline"] == "lexicon" and not report["floor"]["enforced"]
    assert m["lexicon_f1"] == report["floor"]["baseline_score"] and report["baseline"]["model"] == "lexicon baseline"
    assert [row["metric"] for row in report["models"]] == ["entity F1", "entity F1"]
    assert "entity F1" in (ner_bundle / "README.md").read_text()


def test_ner_predict_returns_spans_whose_offsets_cut_the_entity_out_of_the_text(ner_bundle):
    text = "it was the great happy day near a window"
    code, out, err = run_edgeft(["predict", str(ner_bundle), "--json", text])
    assert code == 0, err
    spans = json.loads(out)[0]
    assert spans, "expected at least one entity"
    for span in spans:
        assert text[span["start"]:span["end"]] == span["text"]
        assert span["type"] in ("person", "place") and 0 < span["score"] <= 1
    assert {(s["type"], s["text"]) for s in spans} >= {("place", "window")}


def test_ner_samples_and_bench_score_the_same_entities_as_the_build(ner_bundle, tmp_path):
    rows = [json.loads(line) for line in (ner_bundle / "samples.jsonl").read_text().splitlines()]
    assert rows and {"words", "tags", "predicted", "entities"} <= set(rows[0])
    assert all(len(r["words"]) == len(r["tags"]) == len(r["predicted"]) for r in rows)
    code, _, err = run_edgeft(["bench", str(ner_bundle), "--runs", "20", "--rounds", "1", "--batch-size", "0",
                               "--json", str(tmp_path / "bench.json")])
    assert code == 0, err
    bench = json.loads((tmp_path / "bench.json").read_text())
    from edgeft.runtime.entities import entity_metrics

    expected = entity_metrics([r["tags"] for r in rows], [r["predicted"] for r in rows])
    assert bench["metrics"]["f1"] == pytest.approx(expected["f1"])


def test_ner_bench_on_a_conll_file_and_gate_says_it_does_not_gate_ner_yet(ner_bundle, tiny_conll, tmp_path):
    code, _, err = run_edgeft(["bench", str(ner_bundle), "--data", str(tiny_conll), "--runs", "20", "--rounds", "1",
                               "--batch-size", "0", "--json", str(tmp_path / "bench.json")])
    assert code == 0, err
    assert json.loads((tmp_path / "bench.json").read_text())["metrics"]["n"] == 300
    code, _, err = run_edgeft(["gate", str(tmp_path / "bench.json")])
    assert code == 2 and "NER" in err


def test_ner_for_the_mobile_target_is_refused_before_any_work(tiny_model, tiny_conll, tmp_path):
    code, _, err = run_edgeft(["build", "--task", "ner", "--target", "mobile", "--model", str(tiny_model),
                               "--data", str(tiny_conll), "--out", str(tmp_path / "b"), "--work-dir",
                               str(tmp_path / "w")])
    assert code == 2 and "mobile" in err and not (tmp_path / "w").exists()


def test_an_unknown_task_is_a_one_line_error(tiny_model, tiny_conll, tmp_path):
    code, _, err = run_edgeft(["build", "--task", "pos", "--target", "x86-avx2", "--model", str(tiny_model),
                               "--data", str(tiny_conll), "--out", str(tmp_path / "b")])
    assert code == 2 and "--task 'pos'" in err and len(err.strip().splitlines()) == 1


def test_ner_data_with_a_bad_tag_names_file_and_line(tiny_model, tmp_path):
    bad = tmp_path / "bad.conll"
    bad.write_text("Paris\tB-place\nis\tO\n\nRome\tLOC\n", encoding="utf-8")
    code, _, err = run_edgeft(["build", "--task", "ner", "--target", "x86-avx2", "--model", str(tiny_model),
                               "--data", str(bad), "--out", str(tmp_path / "b")])
    assert code == 2 and "bad.conll" in err and "line 4" in err


@pytest.fixture(scope="module")
def ner_openvino_bundle(tiny_model, tiny_conll, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ner-openvino")
    code, _, err = run_edgeft(["build", "--task", "ner", "--target", "openvino-cpu", "--model", str(tiny_model),
                               "--data", str(tiny_conll), "--out", str(root / "b"), "--work-dir",
                               str(root / "w"), *TINY_NER_TRAINING])
    assert code == 0, err
    return root / "b"


def test_ner_on_openvino_skips_accuracy_control_candidates_and_says_why(ner_openvino_bundle):
    report = json.loads((ner_openvino_bundle / "report.json").read_text())
    rows = {c["name"]: c for c in report["selection"]["candidates"]}
    assert rows["nncf-int8-ac"]["status"] == "skipped" and "entity F1" in rows["nncf-int8-ac"]["reason"]
    assert report["metrics"]["f1"] > 0.5 and report["budgets"][0]["passed"]
    code, out, _ = run_edgeft(["predict", str(ner_openvino_bundle), "--json", "the car is near a window"])
    assert code == 0 and all(s["type"] in ("person", "place") for s in json.loads(out)[0])


# Entity words, filler, an unknown word and a text longer than the bundle's 128 tokens.
NER_TEXTS = ["it was the great happy day near a window", "my car is on the table today",
             "zebra good great and a window", " ".join(["the happy car and a window so"] * 30)]


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_a_token_classification_pipeline_over_optimum_tags_and_spans_as_edgeft(runtime, ner_bundle,
                                                                                ner_openvino_bundle):
    """The bundle's tokenizer files, read by transformers, give edgeft's inputs: a `pipeline()` over Optimum's
    ORTModel / OVModel tags every token as the bundle's logits do, and its first-sub-word words group into the same
    entity spans as `edgeft predict`."""
    from transformers import AutoTokenizer, pipeline

    import edgeft.runtime

    if runtime == "onnxruntime":
        from optimum.onnxruntime import ORTModelForTokenClassification as Model

        folder = ner_bundle
    else:
        from optimum.intel import OVModelForTokenClassification as Model

        folder = ner_openvino_bundle
    bundle = edgeft.runtime.load(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    tagger = pipeline("token-classification", model=Model.from_pretrained(folder), tokenizer=tok, ignore_labels=[])
    for text in NER_TEXTS:
        feed = bundle.encode([text])
        ours = [bundle.labels[i] for i in bundle.session.run(feed)[0].argmax(-1)[1:-1]]  # without [CLS], [SEP]
        theirs = [t["entity"] for t in tagger(text)]  # truncates at model_max_length by itself
        assert theirs == ours, text
    code, out, err = run_edgeft(["predict", str(folder), "--json", *NER_TEXTS])
    assert code == 0, err
    spans = pipeline("token-classification", model=tagger.model, tokenizer=tok, aggregation_strategy="first")
    for text, predicted in zip(NER_TEXTS, json.loads(out)):
        theirs = [(e["entity_group"], e["start"], e["end"]) for e in spans(text)]
        assert theirs == [(s["type"], s["start"], s["end"]) for s in predicted], text
