"""NER through the whole pipeline: a tiny random BERT learns to tag two entity types, and `edgeft build --task ner`
turns it into a bundle scored by entity F1 on its own runtime; `edgeft predict` returns spans, `edgeft bench` scores
the bundle's samples like the build did."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from conftest import PLACES, run_edgeft, tagged_sentences, tiny_ner_args
from edgeft.runtime.openvino_session import F32_PRECISION

REPO = Path(__file__).resolve().parent.parent

@pytest.fixture(scope="module")
def ner_bundle(ner_bundles) -> Path:
    return ner_bundles["x86-avx2"]


def test_ner_build_scores_every_candidate_by_entity_f1_and_ships_within_the_f1_budget(ner_bundle):
    report = json.loads((ner_bundle / "report.json").read_text())
    manifest = json.loads((ner_bundle / "manifest.json").read_text())
    assert report["task"] == "ner" and manifest["bundle"]["task"] == "ner"
    assert manifest["bundle"]["labels"] == ["O", "B-person", "I-person", "B-place", "I-place"]
    # x86-avx2 distils a student for NER too (here 1 layer of the tiny model's 2): it learned from the fine-tuned
    # model's soft targets on every sub-word, kept its best epoch by dev entity F1, and held the F1 budget on dev.
    distill = manifest["distill"]
    assert distill["student"]["layers"] == 1 and distill["soft_targets"] == "fp32"
    assert report["student_fallback"] is None
    check = report["student_check"]  # the evidence it shipped on, in the report and the model card
    assert check["passed"] and check["drop"] + check["drop_se"] <= 0.02 and check["dev_texts"] > 0
    assert "Shipped the student: the distilled student holds the entity F1 budget on dev" in (
        ner_bundle / "README.md").read_text()
    assert distill["metrics"]["dev_entity_f1"] >= distill["metrics"]["teacher_dev_entity_f1"] - 0.02
    assert [r["model"] for r in report["models"]][:2] == ["fine-tuned fp32", "student fp32"]
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
    # The floor: both models beat a lexicon of the training entities (it finds the places, and the people whose
    # three-word names it has seen) by a margin that survives resampling the test sentences.
    floor = report["floor"]
    assert floor["baseline"] == "lexicon" and floor["enforced"]
    assert 0.4 < m["lexicon_f1"] == floor["baseline_score"] < 0.9 and report["baseline"]["model"] == "lexicon baseline"
    assert floor["teacher"]["passed"] and floor["shipped"]["passed"] and floor["shipped"]["lower_bound"] > 0
    assert floor["shipped"]["margin"] == pytest.approx(m["f1"] - m["lexicon_f1"])
    assert [row["metric"] for row in report["models"]] == ["entity F1"] * 3
    assert "entity F1" in (ner_bundle / "README.md").read_text()


def test_the_ner_student_fallback_judges_dev_entity_f1_with_a_paired_bootstrap(ner_bundle, tiny_conll):
    """The student ships only if dev entity F1 holds the budget: both taggers tag the dev sentences again and the
    per-sentence entity counts resample in pairs, as the quantization candidates' check does."""
    from edgeft.data.tagged import load_tagged, split_tagged
    from edgeft.gating.student import student_fallback
    from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
    from edgeft.runtime.entities import entity_metrics
    from edgeft.runtime.scoring import Examples
    from edgeft.stages.torch_model import load_classifier, torch_tags

    manifest = json.loads((ner_bundle / "manifest.json").read_text())
    stages = {step["stage"]: Path(step["path"]) for step in manifest["lineage"]}
    teacher, student = stages["finetune"], stages["distill"]
    data = load_tagged(str(tiny_conll))
    dev = Examples.of(data, split_tagged(data, 0).dev, "ner")
    labels = manifest["bundle"]["labels"]
    # The same model twice: no drop, no error, nothing to say.
    assert student_fallback(teacher, teacher, {}, dev, labels, 0.0) is None
    # A budget nobody can hold (-1): the record names both dev entity F1s, as entity_metrics gives them.
    refused = student_fallback(teacher, student, {}, dev, labels, -1.0)
    def f1(folder: Path) -> float:
        encode = TextEncoder(folder / "tokenizer.json", 128, "right", TOKENIZER_OUTPUTS)
        tags = torch_tags(load_classifier(folder, task="ner"), encode, dev.words, labels)
        return entity_metrics(dev.tags, tags)["f1"]

    expected = {"teacher": f1(teacher), "student": f1(student)}
    assert refused["teacher_dev_entity_f1"] == pytest.approx(expected["teacher"])
    assert refused["student_dev_entity_f1"] == pytest.approx(expected["student"])
    assert refused["drop_se"] >= 0 and refused["max_entity_f1_drop"] == -1.0
    assert "entity F1 budget" in refused["reason"]


def test_an_ner_build_on_shuffled_tags_exits_1_naming_the_lexicon_baseline(tiny_model, tmp_path):
    """The NER floor's negative control: the same sentences with each tag sequence moved to another sentence of the
    same length (still valid BIO, nothing learnable left) give a model that cannot beat a lexicon of the training
    entities, and the build says so instead of shipping it."""
    sentences = tagged_sentences(300, seed=0)
    rng = random.Random(7)
    by_length: dict[int, list[int]] = {}
    for i, (words, _) in enumerate(sentences):
        by_length.setdefault(len(words), []).append(i)
    shuffled = [tags for _, tags in sentences]
    for indices in by_length.values():
        moved = indices[:]
        rng.shuffle(moved)
        for i, j in zip(indices, moved):
            shuffled[i] = sentences[j][1]
    data = tmp_path / "shuffled.conll"
    data.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(words, tags))
                                for (words, _), tags in zip(sentences, shuffled)) + "\n", encoding="utf-8")
    out = tmp_path / "bundle"
    code, _, err = run_edgeft(["build", "--task", "ner", "--target", "x86-avx2", "--model", str(tiny_model),
                               "--data", str(data), "--out", str(out), "--work-dir", str(tmp_path / "work"),
                               *tiny_ner_args("x86-avx2")])
    assert code == 1, err
    assert "did not beat the lexicon baseline" in err and "entity F1" in err and "tag column" in err
    report = json.loads((out / "report.json").read_text())  # written for inspection
    assert not report["floor"]["shipped"]["passed"] and report["floor"]["enforced"]


def test_a_report_over_an_ner_and_a_classification_bundle_of_one_target_tells_them_apart(ner_bundle, tiny_bundles,
                                                                                          tmp_path):
    page = tmp_path / "both.html"
    code, _, err = run_edgeft(["report", str(ner_bundle), str(tiny_bundles["x86-avx2"]), "--out", str(page)])
    assert code == 0, err
    html = page.read_text()
    assert "<title>edgeft report: x86-avx2 (NER), x86-avx2</title>" in html
    assert html.count("<h2>x86-avx2 (NER) <small") == 1 and html.count("<h2>x86-avx2 <small") == 1


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


def test_gate_passes_an_unchanged_ner_bench_and_fails_one_with_a_5_point_entity_f1_drop(ner_bundle, tiny_conll,
                                                                                        tmp_path):
    code, _, err = run_edgeft(["bench", str(ner_bundle), "--data", str(tiny_conll), "--runs", "20", "--rounds", "3",
                               "--batch-size", "0", "--json", str(tmp_path / "base.json")])
    assert code == 0, err
    base = json.loads((tmp_path / "base.json").read_text())
    assert base["metrics"]["n"] == 300
    code, out, err = run_edgeft(["gate", str(tmp_path / "base.json"), "--baseline", str(tmp_path / "base.json")])
    assert code == 0, out + err
    assert "entity F1 drop vs fp32 teacher" in out and "entity F1 drop vs baseline" in out
    assert "beats the lexicon baseline" in out
    # The same bundle, scored 5 points lower: the gate names the regression and exits 1.
    worse = dict(base, metrics=dict(base["metrics"], f1=base["metrics"]["f1"] - 0.05))
    (tmp_path / "worse.json").write_text(json.dumps(worse))
    code, out, _ = run_edgeft(["gate", str(tmp_path / "worse.json"), "--baseline", str(tmp_path / "base.json")])
    assert code == 1 and "entity F1 drop vs baseline" in out and "FAIL" in out
    # A classification bench is no baseline for an NER bench.
    other = dict(base, metrics={"accuracy": 0.9, "n": 300},
                 report=dict(base["report"], metrics={"teacher_accuracy": 0.9, "accuracy": 0.9}))
    (tmp_path / "other.json").write_text(json.dumps(other))
    code, _, err = run_edgeft(["gate", str(tmp_path / "base.json"), "--baseline", str(tmp_path / "other.json")])
    assert code == 2 and "same task" in err


# Entities after accented letters, an emoji outside the BMP (one code point, two UTF-16 units) and a curly
# apostrophe: an app that counted UTF-16 units or bytes would cut every later span in the wrong place.
APP_TEXTS = ["it was the great happy bad day near a window", "Zoë’s 😍🔥 day: good sad nice at the car",
             "café déjà vu and the table with hate terrible love", "my window"]


def test_a_mobile_ner_bundle_gives_an_app_the_spans_edgeft_predict_gives(ner_bundles):
    """What an app does, in Python: the portable WordPiece port (ids, offsets, word ids), the .ort model on ONNX
    Runtime, and the decoding the bundle README describes, give the spans `edgeft predict` gives."""
    import numpy as np

    from edgeft.runtime.onnxruntime_session import Session
    from edgeft.runtime.tagging import entities_of
    from edgeft.runtime.wordpiece import encode_with_offsets
    from edgeft.runtime.wordpiece_files import read_spec

    bundle = ner_bundles["mobile"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["bundle"]["model_file"] == "model.ort" and manifest["bundle"]["task"] == "ner"
    readme = (bundle / "README.md").read_text()
    assert "[1, n, tags]" in readme and "code points" in readme and "conlleval" in readme
    spec = read_spec(bundle / "mobile")
    for line in (bundle / "mobile" / "reference.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert encode_with_offsets(spec, row.pop("text")) == row  # what an app's port is tested against
    labels = json.loads((bundle / "labels.json").read_text())["labels"]
    # The .ort model computed as a phone computes it: Arm's int8 dot products are exact, which this x86 host's
    # kernels may not be (tests/test_exact_int8.py), so the session asks for ONNX Runtime's exact ones.
    assert manifest["bundle"]["exact_int8"] is True
    session = Session(bundle / "model.ort", 1, exact_int8=True)
    names = list(session.input_names)
    samples = [json.loads(line) for line in (bundle / "samples.jsonl").read_text().splitlines()]
    texts = APP_TEXTS + [row["text"] for row in samples]
    app = []
    for text in texts:
        encoded = encode_with_offsets(spec, text)
        logits = session.run({n: np.array([encoded[n]], dtype=np.int64) for n in names})[0]
        app.append([s.to_dict() for s in entities_of(text, encoded["word_ids"], encoded["offsets"], logits, labels)])
    code, out, err = run_edgeft(["predict", str(bundle), "--json", *texts])
    assert code == 0, err
    assert app == json.loads(out)
    assert app[len(APP_TEXTS):] == [row["entities"] for row in samples]  # the build's own spans, in samples.jsonl
    assert any(app[:len(APP_TEXTS)]) and all(text[s["start"]:s["end"]] == s["text"]
                                             for text, spans in zip(texts, app) for s in spans)


@pytest.mark.slow
def test_ner_on_the_emulated_aarch64_runtime_bench_and_build_race(ner_bundles, tiny_model, tiny_conll, tmp_path):
    """`edgeft bench --device qemu-arm64` scores an arm64 NER bundle's samples by entity F1 there, and `edgeft build
    --task ner --bench-device qemu-arm64` ships the first candidate whose spans there agree with this host's."""
    import subprocess

    setup = subprocess.run(["bash", str(REPO / "tests" / "arm64" / "setup.sh"), str(REPO / ".edgeft" / "arm64")],
                           capture_output=True, text=True)
    assert setup.returncode == 0, setup.stderr[-2000:]
    code, out, err = run_edgeft(["bench", str(ner_bundles["arm64"]), "--device", "qemu-arm64", "--json",
                                 str(tmp_path / "q.json")])
    assert code == 0, err
    result = json.loads((tmp_path / "q.json").read_text())
    assert result["machine"] == "aarch64" and result["task"] == "ner" and result["latency_ms"] is None
    assert result["agreement_with_build"] >= 0.9 and result["metrics"]["f1"] > 0.5 and "entity F1" in out
    mine = tmp_path / "mine.conll"  # the user's own tagged file: there as this host tags it, sentence by sentence
    mine.write_text("\n\n".join(tiny_conll.read_text(encoding="utf-8").split("\n\n")[:30]) + "\n", encoding="utf-8")
    code, out, err = run_edgeft(["bench", str(ner_bundles["arm64"]), "--device", "qemu-arm64", "--data", str(mine),
                                 "--json", str(tmp_path / "q.json")])
    assert code == 0, err
    result = json.loads((tmp_path / "q.json").read_text())
    assert result["texts"] == 30 and result["agreement_with_host"] >= 0.9 and "sentences of" in out
    bundle = tmp_path / "raced"
    code, out, err = run_edgeft(["build", "--task", "ner", "--target", "mobile", "--model", str(tiny_model),
                                 "--data", str(tiny_conll), "--out", str(bundle), "--work-dir", str(ner_bundles.work),
                                 "--bench-device", "qemu-arm64", *tiny_ner_args("mobile")])
    assert code == 0, err
    selection = json.loads((bundle / "report.json").read_text())["selection"]
    assert selection["device"]["emulated"] and all(c.get("p50_ms") is None for c in selection["candidates"])
    (chosen,) = [c for c in selection["candidates"] if c["status"] == "chosen"]
    assert chosen["device_agreement"] >= 0.9 and "emulated aarch64" in out


def test_an_unknown_task_is_a_one_line_error(tiny_model, tiny_conll, tmp_path):
    code, _, err = run_edgeft(["build", "--task", "pos", "--target", "x86-avx2", "--model", str(tiny_model),
                               "--data", str(tiny_conll), "--out", str(tmp_path / "b")])
    assert code == 2 and "--task 'pos'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("option", [["--pooling", "mean"], ["--select-metric", "macro_f1"],
                                    ["--class-weights", "balanced"]])
def test_classification_only_options_are_refused_for_ner_before_any_training(tiny_model, tiny_conll, tmp_path, option):
    out, work = tmp_path / "b", tmp_path / "work"
    code, _, err = run_edgeft(["build", "--task", "ner", "--target", "x86-avx2", "--model", str(tiny_model),
                               "--data", str(tiny_conll), "--out", str(out), "--work-dir", str(work), *option])
    assert code == 2 and "classification only" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and not list(work.glob("work/finetune-*"))


def test_a_ner_finetuned_folder_in_a_build_without_task_ner_names_the_task_not_the_data(tiny_model, tiny_conll,
                                                                                        tmp_path):
    import shutil

    finetuned = tmp_path / "ft"
    shutil.copytree(tiny_model, finetuned)
    (finetuned / "manifest.json").write_text(json.dumps({"kind": "hf-model", "task": "ner", "labels": ["O"]}))
    code, _, err = run_edgeft(["build", "--target", "x86-avx2", "--finetuned", str(finetuned), "--data",
                               str(tiny_conll), "--out", str(tmp_path / "b")])
    assert code == 2 and "is a ner model; this build has --task classification (pass --task ner)" in err, err


def test_ner_data_with_a_bad_tag_names_file_and_line(tiny_model, tmp_path):
    bad = tmp_path / "bad.conll"
    bad.write_text("Paris\tB-place\nis\tO\n\nRome\tLOC\n", encoding="utf-8")
    code, _, err = run_edgeft(["build", "--task", "ner", "--target", "x86-avx2", "--model", str(tiny_model),
                               "--data", str(bad), "--out", str(tmp_path / "b")])
    assert code == 2 and "bad.conll" in err and "line 4" in err


@pytest.fixture(scope="module")
def ner_openvino_bundle(ner_bundles) -> Path:
    return ner_bundles["openvino-cpu"]


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
    # OpenVINO at f32, as the model card loads it (a CPU with bf16 units would otherwise flip close tags).
    options = {"ov_config": F32_PRECISION} if runtime == "openvino" else {}
    tagger = pipeline("token-classification", model=Model.from_pretrained(folder, **options), tokenizer=tok,
                      ignore_labels=[])
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


def test_distill_command_distils_a_tagger_on_sub_word_soft_targets_and_scores_entity_f1(ner_bundles, tiny_conll,
                                                                                        tmp_path):
    """`edgeft distill` on a token-classification teacher: tagged sentences in, a 1-layer student out, both scored by
    entity F1 on the test sentences; extra text (split on whitespace) adds soft targets only, and the hidden-state
    loss works on sub-word positions too."""
    from edgeft.artifact import read_manifest

    manifest = json.loads((ner_bundles["x86-avx2"] / "manifest.json").read_text())
    (teacher,) = [Path(step["path"]) for step in manifest["lineage"] if step["stage"] == "finetune"]
    assert read_manifest(teacher)["task"] == "ner"
    extra = tmp_path / "unlabelled.txt"
    extra.write_text(" ".join(PLACES[:3]) + " and more words\n", encoding="utf-8")
    out = tmp_path / "student"
    code, stdout, err = run_edgeft(["distill", "--teacher", str(teacher), "--data", str(tiny_conll), "--student",
                                    "layers:1", "--out", str(out), "--extra-text", str(extra), "--hidden-weight", "1",
                                    "--epochs", "6", "--learning-rate", "1e-3", "--batch-size", "16", "--device",
                                    "cpu", "--work-dir", str(ner_bundles.work)])
    assert code == 0, err
    student = json.loads((out / "manifest.json").read_text())
    assert student["task"] == "ner" and student["student"]["layers"] == 1 and student["extra_texts"] == 1
    rows = {r["model"]: r for r in student["test"]["rows"]}
    assert rows["student fp32"]["entity_f1"] > 0.5, rows  # exact spans: chance is near 0
    assert rows["student fp32"]["entity_f1"] >= rows["teacher fp32"]["entity_f1"] - 0.1
    assert "held-out test sentences" in stdout


def test_the_ner_seed_bench_distils_with_the_recipe_make_build_task_ner_runs():
    """benchmarks/ner_seeds.py reads NER_RECIPE out of the Makefile; make's own expansion of the build command must
    give the same overrides and extra text, and they must make a valid student (the bench measures the shipped recipe).
    """
    import importlib.util
    import shlex
    import subprocess

    from edgeft.profile import load_profile
    from edgeft.student_recipe import Student

    spec = importlib.util.spec_from_file_location("ner_seeds", REPO / "benchmarks" / "ner_seeds.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    overrides, source, count = bench.makefile_recipe(REPO / "Makefile")

    dry = subprocess.run(["make", "-n", "-C", str(REPO), "build", "TASK=ner"], capture_output=True, text=True,
                         check=True)
    words = shlex.split(next(line for line in dry.stdout.splitlines() if " build --target " in line))
    assert words[words.index("--extra-text") + 1] == source
    assert int(words[words.index("--max-extra-texts") + 1]) == count
    assert overrides == dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "--distill")
    student = Student(**{**load_profile("x86-avx2").student_for("ner").model_dump(), **overrides})
    assert student.learning_rate == float(overrides["learning_rate"]) and student.epochs == int(overrides["epochs"])
