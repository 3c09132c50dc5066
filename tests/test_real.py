"""The packaged real model (all-MiniLM-L6-v2) and real data (tweets): a short build must ship an int8 bundle within
the accuracy budget of its fp32 teacher, and the bundle must agree with Optimum's own loader."""

from __future__ import annotations

import json

import pytest

from conftest import run_edgeft

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def real_bundle(real_bundles):
    # The teacher is shipped here (--student none); test_real_distillation below distils it on a small budget.
    return real_bundles["x86-avx2"]


def test_real_build_ships_within_budget(real_bundle):
    bundle, code = real_bundle
    report = json.loads((bundle / "report.json").read_text())
    m = report["metrics"]
    assert code == 0, report["budgets"]
    assert m["n"] > 3000  # the whole held-out split, not a sample
    assert m["teacher_accuracy"] > 0.6  # 3 classes; the majority class alone is 0.42
    assert abs(m["teacher_accuracy"] - m["accuracy"]) <= 0.01
    assert report["size_mb"] < report["teacher"]["size_mb"] / 3
    data = json.loads((bundle / "manifest.json").read_text())["inputs"]["data"]
    # The manifest says how the packaged tweets were really read, not what the CLI flags default to.
    assert (data["encoding"], data["label_column"], data["dropped"]) == ("latin-1", "sentiment", {"duplicate text": 915})


def test_real_bundle_agrees_with_optimum(real_bundle):
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer

    import edgeft.runtime

    bundle, _ = real_bundle
    texts = [json.loads(line)["text"] for line in (bundle / "samples.jsonl").read_text().splitlines()]
    ours = [p.label for p in edgeft.runtime.load(bundle).predict(texts)]
    model = ORTModelForSequenceClassification.from_pretrained(bundle)
    tok = AutoTokenizer.from_pretrained(bundle)  # model_max_length comes from the bundle's tokenizer_config.json
    logits = model(**tok(texts, return_tensors="pt", padding=True, truncation=True)).logits
    theirs = [model.config.id2label[i] for i in logits.argmax(-1).tolist()]
    assert ours == theirs
    # The packaged MiniLM's tokenizer.json pads every text to 128 tokens; the bundle's pads none when given one.
    from tokenizers import Tokenizer

    assert len(Tokenizer.from_file(str(bundle / "tokenizer.json")).encode(texts[0]).ids) < 128


def test_real_distillation_makes_a_smaller_student_that_beats_chance(real_bundle, tmp_path):
    bundle, _ = real_bundle
    teacher = json.loads((bundle / "manifest.json").read_text())["lineage"][0]["path"]
    out = tmp_path / "student"
    code, stdout, err = run_edgeft(["distill", "--teacher", teacher, "--data", "packaged:tweets", "--student",
                                    "layers:2,ffn:768", "--out", str(out), "--max-train-samples", "1500",
                                    "--epochs", "1", "--work-dir", str(tmp_path / "work"), "--device", "cpu"])
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    rows = {r["model"]: r for r in manifest["test"]["rows"]}
    assert rows["student fp32"]["layers"] == 2 and rows["teacher fp32"]["layers"] == 6
    assert rows["student fp32"]["parameters_m"] < rows["teacher fp32"]["parameters_m"] * 0.7
    assert rows["student fp32"]["accuracy"] > 0.6, rows  # 3 classes; the majority class alone is 0.42


def test_packaged_l3_onnx_becomes_a_bert_student_folder(tmp_path):
    from transformers import AutoModelForSequenceClassification

    from edgeft.student_recipe import Student
    from edgeft.stages.student import materialize_student

    student = materialize_student(Student.from_spec("packaged:paraphrase-MiniLM-L3-v2"), tmp_path)
    # The converter checked the folder against ONNX Runtime (1e-4) before accepting it; it loads as a classifier.
    model = AutoModelForSequenceClassification.from_pretrained(student.model, num_labels=3)
    assert model.config.num_hidden_layers == 3 and model.config.hidden_size == 384
    again = materialize_student(Student.from_spec("packaged:paraphrase-MiniLM-L3-v2"), tmp_path)
    assert again.model == student.model  # converted once, then cached
