"""`--pooling mean`: a classifier that reads the mean over real tokens, the way sentence-embedding encoders are trained.

The packaged MiniLM (and the tiny fixture model, which mimics its folder) says so in `1_Pooling/config.json`, which
`--pooling auto` reads; the default stays BERT's [CLS] pooler (why: docs/experiments/recipes.md, section 17). The
mean-pooled classifier must be what every loader, both exports and the runtime see, so these tests check the model
itself, its round trip through config.json, ONNX Runtime and OpenVINO against PyTorch, and a tiny build end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeft.errors import BadInput
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
from edgeft.runtime.openvino_session import F32_PRECISION
from edgeft.stages.pooling import POOLING_KEY, mean_pooled_class, pretrained_pooling, resolve_pooling, saved_pooling
from edgeft.stages.torch_model import load_classifier, torch_logits

from conftest import run_edgeft, tiny_build_args

LABELS = ["negative", "neutral", "positive"]
# A short and a long text in one batch: the short one is padded, and its logits must not see the padding.
TEXTS = ["good day", "the report was very bad and the window was broken so it was an awful monday"]


def sentence_transformers_folder(tmp_path: Path, model_type: str = "bert", **modes: bool) -> Path:
    folder = tmp_path / "base"
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}), encoding="utf-8")
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(modes), encoding="utf-8")
    return folder


@pytest.mark.parametrize("modes, expected", [
    ({"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False}, "mean"),
    ({"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}, "cls"),
    # Mean and max concatenated is a head a BERT classifier cannot express: keep the architecture's own.
    ({"pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": True}, "cls"),
])
def test_auto_follows_the_pooling_module_of_a_sentence_transformers_folder(tmp_path, modes, expected):
    folder = sentence_transformers_folder(tmp_path, **modes)
    assert pretrained_pooling(folder) == expected
    assert resolve_pooling("auto", folder, "classification") == expected


def test_a_plain_model_folder_keeps_the_cls_pooler_and_token_tasks_have_no_pooling_to_choose(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text('{"model_type": "bert"}', encoding="utf-8")
    assert resolve_pooling("auto", plain, "classification") == "cls"
    mean = sentence_transformers_folder(tmp_path, pooling_mode_mean_tokens=True)
    assert resolve_pooling("mean", mean, "ner") == "cls"


@pytest.mark.parametrize("text", ['{"pooling_mode_mean_tokens": tru', '["pooling_mode_mean_tokens"]'])
def test_auto_refuses_a_pooling_module_it_cannot_read_rather_than_guessing_cls(tmp_path, text):
    folder = sentence_transformers_folder(tmp_path, pooling_mode_mean_tokens=True)
    (folder / "1_Pooling" / "config.json").write_text(text, encoding="utf-8")
    with pytest.raises(BadInput, match=r"1_Pooling/config\.json: .*pass pooling=cls or pooling=mean instead of auto"):
        resolve_pooling("auto", folder, "classification")
    assert resolve_pooling("cls", folder, "classification") == "cls"  # an explicit choice does not read the module


def modules_json(folder: Path, modules: object) -> None:
    (folder / "modules.json").write_text(json.dumps(modules), encoding="utf-8")


def test_auto_finds_the_pooling_module_where_modules_json_puts_it(tmp_path):
    folder = sentence_transformers_folder(tmp_path, pooling_mode_cls_token=True)  # a decoy at the usual place
    (folder / "pooling").mkdir()
    (folder / "pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}', encoding="utf-8")
    modules_json(folder, [{"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
                          {"idx": 1, "path": "pooling", "type": "sentence_transformers.models.Pooling"}])
    assert resolve_pooling("auto", folder, "classification") == "mean"
    # A listing without a Pooling module has no pooling to follow, whatever sits in 1_Pooling.
    modules_json(folder, [{"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"}])
    assert resolve_pooling("auto", folder, "classification") == "cls"


@pytest.mark.parametrize("modules, error", [
    ("not json", r"modules\.json: cannot be read as JSON"),
    ({"1": "1_Pooling"}, r"modules\.json: expected a JSON list of modules"),
    ([{"path": "2_Pool", "type": "sentence_transformers.models.Pooling"}],
     r"modules\.json lists a pooling module whose .*2_Pool/config\.json is missing"),
])
def test_auto_refuses_a_modules_json_it_cannot_follow(tmp_path, modules, error):
    folder = sentence_transformers_folder(tmp_path, pooling_mode_mean_tokens=True)
    if isinstance(modules, str):
        (folder / "modules.json").write_text(modules, encoding="utf-8")
    else:
        modules_json(folder, modules)
    with pytest.raises(BadInput, match=error + r".*pass pooling=cls or pooling=mean instead of auto"):
        resolve_pooling("auto", folder, "classification")


def test_the_packaged_encoder_is_mean_pooled_by_its_own_modules_json():
    from edgeft.data.assets import DEFAULT_MODEL, packaged_model

    folder = packaged_model(DEFAULT_MODEL).path
    assert (folder / "modules.json").is_file()
    assert pretrained_pooling(folder) == "mean"


def test_mean_pooling_is_built_for_bert_encoders_only(tmp_path):
    other = sentence_transformers_folder(tmp_path, model_type="distilbert", pooling_mode_mean_tokens=True)
    assert resolve_pooling("auto", other, "classification") == "cls"
    with pytest.raises(BadInput, match="pooling=mean: the model in .* is 'distilbert'.*use pooling=cls"):
        resolve_pooling("mean", other, "classification")


def test_the_mean_pooled_classifier_ignores_padding_and_survives_save_and_load(tiny_model, tmp_path):
    model = load_classifier(tiny_model, LABELS, pooling="mean").eval()
    assert type(model) is mean_pooled_class() and model.bert.pooler is None
    assert not any("pooler" in name for name in model.state_dict())
    encode = TextEncoder(tiny_model / "tokenizer.json", 32, "right", TOKENIZER_OUTPUTS)
    together = torch_logits(model, encode, TEXTS)
    alone = torch_logits(model, encode, TEXTS[:1])
    np.testing.assert_allclose(together[0], alone[0], atol=1e-5)

    model.save_pretrained(tmp_path / "saved", safe_serialization=True)
    assert json.loads((tmp_path / "saved" / "config.json").read_text())[POOLING_KEY] == "mean"
    assert saved_pooling(tmp_path / "saved") == "mean"
    again = load_classifier(tmp_path / "saved")
    assert type(again) is mean_pooled_class()
    np.testing.assert_allclose(torch_logits(again, encode, TEXTS), together, atol=1e-6)

    # A new [CLS] head on that folder (`--pooling cls`) saves as a [CLS] model, not under the folder's mark.
    cls_head = load_classifier(tmp_path / "saved", LABELS, pooling="cls")
    cls_head.save_pretrained(tmp_path / "cls", safe_serialization=True)
    assert saved_pooling(tmp_path / "cls") == "cls"


def test_onnx_runtime_and_openvino_exports_of_a_mean_pooled_classifier_match_pytorch(tiny_model, tmp_path):
    import onnxruntime as ort
    import openvino as ov

    from edgeft.backends import onnxruntime as ort_backend
    from edgeft.backends import openvino as ov_backend

    torch_model = load_classifier(tiny_model, LABELS, pooling="mean").eval()
    torch_model.save_pretrained(tmp_path / "hf", safe_serialization=True)
    encode = TextEncoder(tiny_model / "tokenizer.json", 32, "right", TOKENIZER_OUTPUTS)
    feeds = encode(TEXTS)
    expected = torch_logits(torch_model, encode, TEXTS)

    onnx_file = ort_backend.export(tmp_path / "hf", tmp_path / "onnx")
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    np.testing.assert_allclose(session.run(None, {k: v for k, v in feeds.items() if k in names})[0], expected,
                               atol=1e-4)
    # The quantizer keeps the head float by name: mean pooling leaves one matmul between the tokens and the logits.
    nodes = ort_backend.classifier_nodes(onnx_file)
    assert len(nodes) == 1 and "classifier" in nodes[0]

    ir = ov_backend.export(tmp_path / "hf", tmp_path / "ov")
    compiled = ov.Core().compile_model(str(ir), "CPU", F32_PRECISION)  # the plugin's bf16 default would miss 1e-4
    inputs = {port.any_name: feeds[port.any_name] for port in compiled.inputs}
    np.testing.assert_allclose(compiled(inputs)[0], expected, atol=1e-4)


def test_finetune_keeps_the_cls_pooler_by_default_and_auto_follows_the_base_folder(tiny_model, tiny_csv, tmp_path):
    common = ["finetune", "--model", str(tiny_model), "--data", str(tiny_csv), "--work-dir", str(tmp_path / "w"),
              "--epochs", "1", "--learning-rate", "3e-3", "--batch-size", "16", "--device", "cpu"]
    code, _, err = run_edgeft([*common, "--out", str(tmp_path / "default")])
    assert code == 0, err
    assert json.loads((tmp_path / "default" / "manifest.json").read_text())["pooling"] == "cls"
    assert saved_pooling(tmp_path / "default") == "cls"
    assert type(load_classifier(tmp_path / "default")).__name__ == "BertForSequenceClassification"

    code, _, err = run_edgeft([*common, "--pooling", "auto", "--out", str(tmp_path / "auto")])
    assert code == 0, err
    assert json.loads((tmp_path / "auto" / "manifest.json").read_text())["pooling"] == "mean"
    assert type(load_classifier(tmp_path / "auto")) is mean_pooled_class()


def test_a_mean_pooled_build_narrows_distils_exports_and_ships_a_student_that_learned(tiny_model, tiny_csv, tmp_path):
    """Every stage after the fine-tune takes the mean-pooled teacher as it is: the narrowed student keeps its pooling,
    Optimum exports it, and the shipped int8 file scores the learnable tiny data well (a [CLS]-pooled export of a
    mean-pooled model would read an untrained pooler and score near chance)."""
    out = tmp_path / "bundle"
    code, _, err = run_edgeft(tiny_build_args("x86-avx2", tiny_model, tiny_csv, out, tmp_path / "w", "--pooling",
                                              "mean"))
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    report = json.loads((out / "report.json").read_text())
    assert manifest["finetune"]["pooling"] == "mean"
    student = next(Path(step["path"]) for step in manifest["lineage"] if step["stage"] == "distill")
    assert saved_pooling(student) == "mean"
    assert report["metrics"]["accuracy"] > 0.8
    assert "mean of the last layer's token vectors" in (out / "README.md").read_text()
