"""A bundle's tokenizer files say the bundle's own input policy, so the ecosystem's tools read them as edgeft runs them.

The tiny base model ships, like sentence-transformers models, a tokenizer.json that pads every text to 128 tokens
(conftest). An app that loads the bundle's tokenizer as it is must get exactly edgeft's inputs: plain `tokenizers`
with no settings, transformers' AutoTokenizer (with `truncation=True`, as the bundle README says), and a
`transformers.pipeline` over Optimum's ORTModel / OVModel must give the same ids and the same labels as `edgeft
predict`, for every target.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_edgeft
from edgeft.profile import available_targets
from edgeft.runtime.openvino_session import F32_PRECISION

# Short and long texts, one over every profile's max_length (64 for mobile, 128 else), and words the tiny vocabulary
# lacks ([UNK]).
TEXTS = ["so good and happy today", "awful broken terrible day", "the report on the table", "great",
         " ".join(["the very nice car and a broken window"] * 30), "zebra quantum monday paper"]


def edgeft_inputs(bundle_dir, texts):
    import edgeft.runtime

    bundle = edgeft.runtime.load(bundle_dir)
    return bundle, bundle.encode(texts)


@pytest.mark.parametrize("target", available_targets())
def test_plain_tokenizers_with_no_settings_give_edgefts_inputs(tiny_bundles, target):
    from tokenizers import Tokenizer

    bundle, ours = edgeft_inputs(tiny_bundles[target], TEXTS)
    plain = Tokenizer.from_file(str(tiny_bundles[target] / "tokenizer.json"))
    batch = plain.encode_batch(TEXTS)
    assert np.array_equal(np.array([e.ids for e in batch]), ours["input_ids"])
    assert np.array_equal(np.array([e.attention_mask for e in batch]), ours["attention_mask"])
    # One text is never padded (the base model's file padded it to 128), and the long one is cut at max_length.
    assert len(plain.encode("great").ids) == 3
    assert len(plain.encode(TEXTS[4]).ids) == bundle.max_length < len(TEXTS[4].split())


@pytest.mark.parametrize("target", available_targets())
def test_auto_tokenizer_gives_edgefts_inputs_and_the_config_states_the_policy(tiny_bundles, target):
    from transformers import AutoTokenizer

    bundle, ours = edgeft_inputs(tiny_bundles[target], TEXTS)
    config = json.loads((tiny_bundles[target] / "tokenizer_config.json").read_text())
    assert (config["model_max_length"], config["truncation_side"], config["padding_side"]) == \
        (bundle.max_length, "right", "right")
    assert json.loads((tiny_bundles[target] / "special_tokens_map.json").read_text())["pad_token"] == "[PAD]"
    tok = AutoTokenizer.from_pretrained(tiny_bundles[target])
    theirs = tok(TEXTS, truncation=True, padding=True, return_tensors="np")
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        assert np.array_equal(theirs[name], ours[name]), name
    # The manifest records what the files say.
    policy = json.loads((tiny_bundles[target] / "manifest.json").read_text())["bundle"]["tokenizer_files"]
    assert policy["max_length"] == bundle.max_length and policy["padding"] == "longest in the batch"


def labels_from_pipeline(model, bundle_dir, texts):
    from transformers import AutoTokenizer, pipeline

    classify = pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(bundle_dir))
    return [row["label"] for row in classify(texts, truncation=True)]


@pytest.mark.parametrize("target", [t for t in available_targets() if t not in ("mobile", "openvino-cpu")])
def test_a_pipeline_over_optimums_ortmodel_labels_texts_as_edgeft_predict(tiny_bundles, target):
    import onnxruntime
    from optimum.onnxruntime import ORTModelForSequenceClassification

    from edgeft.runtime.onnxruntime_session import EXACT_INT8_KEY

    code, out, err = run_edgeft(["predict", str(tiny_bundles[target]), "--json", *TEXTS])
    assert code == 0, err
    ours = [p["label"] for p in json.loads(out)]
    # As the bundle's README shows: bundles for exact-int8 targets (Arm, VNNI) ask ONNX Runtime for exact kernels,
    # which an x86 host without VNNI does not use by default (tests/test_exact_int8.py).
    exact = json.loads((tiny_bundles[target] / "manifest.json").read_text())["bundle"]["exact_int8"]
    readme = (tiny_bundles[target] / "README.md").read_text(encoding="utf-8")
    assert (f'add_session_config_entry("{EXACT_INT8_KEY}", "1")' in readme) == exact
    options = onnxruntime.SessionOptions()
    if exact:
        options.add_session_config_entry(EXACT_INT8_KEY, "1")
    model = ORTModelForSequenceClassification.from_pretrained(tiny_bundles[target], session_options=options)
    assert labels_from_pipeline(model, tiny_bundles[target], TEXTS) == ours


def test_a_pipeline_over_optimum_intels_ovmodel_labels_texts_as_edgeft_predict(tiny_bundles):
    from optimum.intel import OVModelForSequenceClassification

    bundle = tiny_bundles["openvino-cpu"]
    code, out, err = run_edgeft(["predict", str(bundle), "--json", *TEXTS])
    assert code == 0, err
    # At f32, as the model card loads it: on a CPU with bf16 units the plugin's default (bf16) can flip a close label.
    assert f"ov_config={F32_PRECISION!r}" in (bundle / "README.md").read_text(encoding="utf-8")
    model = OVModelForSequenceClassification.from_pretrained(bundle, compile=True, ov_config=F32_PRECISION)
    assert labels_from_pipeline(model, bundle, TEXTS) == [p["label"] for p in json.loads(out)]


def test_the_mobile_bundle_reads_the_same_from_its_tokenizer_json_its_portable_files_and_ort(tiny_bundles):
    """Optimum's ORTModel loads .onnx only: the .ort model runs in an onnxruntime session fed by plain `tokenizers`,
    and the portable WordPiece files state the same policy as tokenizer.json."""
    from tokenizers import Tokenizer

    from edgeft.runtime.onnxruntime_session import Session
    from edgeft.runtime.wordpiece_files import read_spec

    bundle_dir = tiny_bundles["mobile"]
    plain = Tokenizer.from_file(str(bundle_dir / "tokenizer.json"))
    spec = read_spec(bundle_dir / "mobile")
    assert (spec.max_length, spec.truncation, spec.pad_id) == \
        (plain.truncation["max_length"], plain.truncation["direction"].lower(), plain.padding["pad_id"])
    # Computed as a phone computes it: exact int8, which this x86 host's own kernels may not be (test_exact_int8.py).
    session = Session(bundle_dir / "model.ort", 1, exact_int8=True)
    names = set(session.input_names)
    labels = json.loads((bundle_dir / "labels.json").read_text())["labels"]
    theirs = []
    for text in TEXTS:
        enc = plain.encode(text)
        feeds = {"input_ids": enc.ids, "attention_mask": enc.attention_mask, "token_type_ids": enc.type_ids}
        logits = session.run({k: np.array([v], dtype=np.int64) for k, v in feeds.items() if k in names})
        theirs.append(labels[int(logits[0].argmax())])
    code, out, err = run_edgeft(["predict", str(bundle_dir), "--json", *TEXTS])
    assert code == 0, err
    assert theirs == [p["label"] for p in json.loads(out)]
