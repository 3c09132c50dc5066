"""Every stage for real on the tiny BERT: fine-tune, export (ONNX Runtime, OpenVINO) with parity, quantization."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgeft.artifact import Artifact
from edgeft.backends import backend
from edgeft.data.text import load_dataset, split_dataset
from edgeft.errors import ExportParityError
from edgeft.profile import InputPolicy, Runtime, load_profile
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
from edgeft.runtime.scoring import sentence_logits
from edgeft.runtime.sessions import open_session
from edgeft.stages import export as export_stage
from edgeft.stages.finetune import FinetuneSpec, finetune
from edgeft.stages.training import length_grouped_batches
from edgeft.stages.quantize import quantize
from edgeft.stages.torch_model import load_classifier, torch_logits, torch_runner

# The same recipe as the CLI tests' TINY_TRAINING, so both share one cached fine-tune.
# min_steps=0: exactly 5 epochs, as the CLI's --epochs 5 means (no step floor).
TINY_SPEC = FinetuneSpec(epochs=5, min_steps=0, max_train_samples=None, learning_rate=3e-3, batch_size=16,
                         max_length=128, device="cpu")


@pytest.fixture(scope="module")
def data(tiny_csv):
    ds = load_dataset(str(tiny_csv))
    return ds, split_dataset(ds, seed=0)


@pytest.fixture(scope="module")
def teacher(tiny_model, data, work_dir) -> Artifact:
    ds, split = data
    return finetune(tiny_model, ds, split, TINY_SPEC, work_dir)


def test_finetune_learns_the_signal_and_writes_safetensors(teacher):
    assert teacher.kind == "hf-model"
    assert (teacher.path / "model.safetensors").is_file() and not list(teacher.path.glob("*.bin"))
    assert teacher.manifest["metrics"]["dev_accuracy"] > 0.6  # chance is 0.33
    assert teacher.manifest["labels"] == ["negative", "neutral", "positive"]


def test_finetune_is_a_cache_hit_the_second_time(tiny_model, data, work_dir, teacher):
    ds, split = data
    again = finetune(tiny_model, ds, split, TINY_SPEC, work_dir)
    assert again.path == teacher.path and again.manifest.get("cache_hit")


def test_length_grouped_batches_cover_every_index_once():
    lengths = np.random.default_rng(0).integers(3, 60, size=1000)
    batches = length_grouped_batches(lengths, 32, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))


def test_scoring_batches_group_texts_by_pieces_and_give_each_text_its_own_logits(teacher, data, monkeypatch):
    ds, split = data
    # Two texts of about 20 characters and very different piece counts: a character sort pads more than a piece sort.
    texts = [ds.texts[i] for i in split.dev][:40] + ["zzzzzzzzzzzzzzzzzzzz", "a b c d e f g h i j"]
    encode = TextEncoder(teacher.path / "tokenizer.json", 128, "right", TOKENIZER_OUTPUTS)
    pieces = [len(e.ids) for e in encode.tokenizer.encode_batch(texts)]
    batches = list(encode.batches(texts, 8))
    assert sorted(np.concatenate([chunk for chunk, _ in batches]).tolist()) == list(range(len(texts)))
    widths = [feeds["input_ids"].shape[1] for _, feeds in batches]
    assert widths == sorted(widths) and widths[-1] == max(pieces)
    by_chars = np.argsort([len(t) for t in texts], kind="stable")
    char_padded = sum(max(pieces[i] for i in by_chars[s:s + 8]) * len(by_chars[s:s + 8]) for s in range(0, 42, 8))
    assert sum(w * len(chunk) for w, (chunk, _) in zip(widths, batches)) < char_padded
    # The batched logits land in each text's own row: the same as one text at a time.
    model = load_classifier(teacher.path)
    alone = np.concatenate([torch_logits(model, encode, [t]) for t in texts])
    np.testing.assert_allclose(torch_logits(model, encode, texts, batch_size=8), alone, atol=1e-5)
    # Two workers taking turns over the batches (the soft targets' sessions) give exactly one worker's logits.
    one = sentence_logits(torch_runner(model), encode, texts, 3, batch_size=8)
    np.testing.assert_array_equal(sentence_logits([torch_runner(model)] * 2, encode, texts, 3, batch_size=8), one)
    # A long file is tokenized and sorted a block at a time: every text still lands in its own row.
    monkeypatch.setattr("edgeft.runtime.encoder.SORTED_BLOCK", 16)
    assert sorted(np.concatenate([chunk for chunk, _ in encode.batches(texts, 8)]).tolist()) == list(range(len(texts)))
    np.testing.assert_allclose(sentence_logits(torch_runner(model), encode, texts, 3, batch_size=8), alone, atol=1e-5)


@pytest.mark.parametrize("runtime", [Runtime.ONNXRUNTIME, Runtime.OPENVINO])
def test_export_matches_pytorch(teacher, data, work_dir, runtime):
    ds, split = data
    texts = [ds.texts[i] for i in split.dev]
    exported = export_stage.export(teacher, runtime, InputPolicy(), texts, work_dir)
    assert exported.manifest["parity"]["max_abs_diff"] < 1e-4
    # Independently of the stage's own check: torch vs the runtime on the same encoded batch.
    session = open_session(runtime, exported.path / exported.manifest["model_file"], 1, TOKENIZER_OUTPUTS)
    encode = TextEncoder(teacher.path / "tokenizer.json", 128, "right", session.input_names)
    reference = torch_logits(load_classifier(teacher.path), encode, texts[:8])
    np.testing.assert_allclose(session.run(encode(texts[:8])), reference, atol=1e-4)


def test_export_parity_failure_is_a_typed_error(teacher, data, monkeypatch, tmp_path):
    ds, split = data
    monkeypatch.setattr(export_stage, "PARITY_ATOL", -1.0)  # nothing can pass a negative tolerance
    with pytest.raises(ExportParityError, match="disagrees with PyTorch"):
        export_stage.export(teacher, Runtime.ONNXRUNTIME, InputPolicy(), ds.texts[:4], tmp_path)


def _ops(path):
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def candidate(profile_name: str, name: str):
    return next(c for c in load_profile(profile_name).quantization.candidates if c.name == name)


def test_dynamic_int8_quantizes_matmuls_and_shrinks(teacher, data, work_dir):
    ds, split = data
    exported = export_stage.export(teacher, Runtime.ONNXRUNTIME, InputPolicy(), ds.texts[:8], work_dir)
    q = quantize(exported, candidate("x86-avx2", "dynamic-int8"), load_profile("x86-avx2"), None, [], work_dir)
    ops = _ops(q.path / "model.onnx")
    assert "MatMulInteger" in ops and "DynamicQuantizeLinear" in ops
    assert (q.path / "model.onnx").stat().st_size < (exported.path / "model.onnx").stat().st_size


def test_excluded_parts_stay_fp32(teacher, data, work_dir):
    """exclude: [embeddings] keeps the embedding tables float; [classifier] keeps the pooler and classifier float
    even where the operator list (the static preset's, which includes Gemm) would quantize them."""
    from edgeft.backends.onnxruntime import classifier_nodes
    from edgeft.data.calibration import load_recipe
    from edgeft.profile import Candidate
    from edgeft.stages.quantize import calibration_texts

    ds, split = data
    profile = load_profile("x86-avx2")
    exported = export_stage.export(teacher, Runtime.ONNXRUNTIME, InputPolicy(), ds.texts[:8], work_dir)
    everything = quantize(exported, candidate("x86-avx2", "dynamic-int8"), profile, None, [], work_dir)
    body = quantize(exported, candidate("x86-avx2", "dynamic-int8-body"), profile, None, [], work_dir)
    # Quantized embedding tables are stored int8 behind a DequantizeLinear; excluded, they stay float.
    assert "DequantizeLinear" in _ops(everything.path / "model.onnx")
    assert "DequantizeLinear" not in _ops(body.path / "model.onnx")
    assert "MatMulInteger" in _ops(body.path / "model.onnx")  # the encoder layers are still int8
    assert (body.path / "model.onnx").stat().st_size > (everything.path / "model.onnx").stat().st_size

    head = classifier_nodes(exported.path / "model.onnx")
    assert sorted(head) == ["/bert/pooler/dense/Gemm", "/classifier/Gemm"]
    recipe = load_recipe("train-minmax")
    calib = calibration_texts(ds, split, recipe)[:16]

    def head_inputs_dequantized(excluded: tuple[str, ...]) -> bool:
        c = Candidate(name="static-" + "-".join(excluded or ("all",)), scheme="static-int8", per_channel=True,
                      calibration="train-minmax", exclude=excluded)
        graph = onnx.load(str(quantize(exported, c, profile, recipe, calib, work_dir).path / "model.onnx")).graph
        producer = {out: node.op_type for node in graph.node for out in node.output}
        return all(producer.get(name) == "DequantizeLinear"
                   for node in graph.node if node.name in head for name in node.input[:2])

    assert head_inputs_dequantized(())
    assert not head_inputs_dequantized(("classifier",))


def test_onnxruntime_weight_only_int8_stores_int8_weight_blocks_and_keeps_activations_float(teacher, data, work_dir):
    """MatMulNBits (8 bits, blocks of 32): no activation quantization anywhere, so outputs stay close to fp32."""
    import numpy as np

    from edgeft.backends import onnxruntime as ort_backend
    from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder

    ds, _ = data
    profile = load_profile("x86-avx2")
    exported = export_stage.export(teacher, Runtime.ONNXRUNTIME, InputPolicy(), ds.texts[:8], work_dir)
    weight = quantize(exported, candidate("x86-avx2", "weight-int8"), profile, None, [], work_dir)
    ops = _ops(weight.path / "model.onnx")
    assert "MatMulNBits" in ops and not {"DynamicQuantizeLinear", "MatMulInteger", "QuantizeLinear"} & set(ops)
    assert (weight.path / "model.onnx").stat().st_size < (exported.path / "model.onnx").stat().st_size
    logits = []
    for folder in (exported.path, weight.path):
        session = open_session(Runtime.ONNXRUNTIME, folder / "model.onnx", 1, TOKENIZER_OUTPUTS)
        encode = TextEncoder(folder / "tokenizer.json", 128, "right", session.input_names)
        logits.append(session.run(encode(ds.texts[:32])))
    assert np.abs(logits[0] - logits[1]).max() < 0.05


def test_graph_optimisation_fuses_before_quantizing(teacher, data, work_dir):
    ds, split = data
    profile = load_profile("x86-avx2")
    exported = export_stage.export(teacher, Runtime.ONNXRUNTIME, InputPolicy(), ds.texts[:8], work_dir)
    fused = quantize(exported, candidate("x86-avx2", "fp32-fused"), profile, None, [], work_dir)
    ops = _ops(fused.path / "model.onnx")
    assert "SkipLayerNormalization" in ops and not {"MatMulInteger", "QuantizeLinear"} & ops
    plain = open_session(Runtime.ONNXRUNTIME, exported.path / "model.onnx", 1, TOKENIZER_OUTPUTS)
    session = open_session(Runtime.ONNXRUNTIME, fused.path / "model.onnx", 1, TOKENIZER_OUTPUTS)
    encode = TextEncoder(exported.path / "tokenizer.json", 128, "right", session.input_names)
    np.testing.assert_allclose(session.run(encode(ds.texts[:8])), plain.run(encode(ds.texts[:8])), atol=1e-4)


def test_s8_candidate_stores_signed_7_bit_weights_where_the_preset_stores_u8(teacher, data, work_dir):
    """weight_type s8 + reduce_range: ONNX Runtime's u8 x s8 kernels with weights in [-64, 64] (no int16 saturation
    on AVX2); Optimum's avx2 preset alone stores u8 weights."""
    from onnx import numpy_helper

    ds, _ = data
    profile = load_profile("x86-avx2")
    exported = export_stage.export(teacher, Runtime.ONNXRUNTIME, InputPolicy(), ds.texts[:8], work_dir)
    logits = {}
    for name in ("dynamic-int8-s8", "dynamic-int8"):
        art = quantize(exported, candidate("x86-avx2", name), profile, None, [], work_dir)
        graph = onnx.load(str(art.path / "model.onnx")).graph
        matmul_weights = {node.input[1] for node in graph.node if node.op_type == "MatMulInteger"}
        weights = [numpy_helper.to_array(t) for t in graph.initializer if t.name in matmul_weights]
        assert weights and {w.dtype.name for w in weights} == {"int8" if name.endswith("s8") else "uint8"}
        if name.endswith("s8"):
            assert min(int(w.min()) for w in weights) >= -64 and max(int(w.max()) for w in weights) <= 64
        session = open_session(Runtime.ONNXRUNTIME, art.path / "model.onnx", 1, TOKENIZER_OUTPUTS)
        logits[name] = session.run(TextEncoder(art.path / "tokenizer.json", 128, "right", session.input_names)(ds.texts[:32]))
    assert (logits["dynamic-int8-s8"].argmax(-1) == logits["dynamic-int8"].argmax(-1)).mean() > 0.9


def test_static_int8_is_qdq_with_calibration(teacher, data, work_dir):
    ds, split = data
    from edgeft.data.calibration import load_recipe
    from edgeft.stages.quantize import calibration_texts

    profile = load_profile("x86-avx512-vnni")
    c = candidate("x86-avx512-vnni", "static-int8-qdq")
    recipe = load_recipe(c.calibration)
    exported = export_stage.export(teacher, Runtime.ONNXRUNTIME, InputPolicy(), ds.texts[:8], work_dir)
    q = quantize(exported, c, profile, recipe, calibration_texts(ds, split, recipe), work_dir)
    assert {"QuantizeLinear", "DequantizeLinear"} <= _ops(q.path / "model.onnx")
    assert q.manifest["calibration"]["texts"] == min(recipe.samples, len(split.train))


def test_openvino_nncf_int8_inserts_fake_quantize(teacher, data, work_dir):
    ds, split = data
    from edgeft.data.calibration import load_recipe
    from edgeft.stages.quantize import calibration_texts

    profile = load_profile("openvino-cpu")
    c = candidate("openvino-cpu", "nncf-int8")
    recipe = load_recipe(c.calibration)
    exported = export_stage.export(teacher, Runtime.OPENVINO, InputPolicy(), ds.texts[:8], work_dir)
    q = quantize(exported, c, profile, recipe, calibration_texts(ds, split, recipe)[:32], work_dir)
    xml = (q.path / "openvino_model.xml").read_text()
    assert "FakeQuantize" in xml


def test_openvino_weight_only_int8_stores_int8_weights_and_no_fake_quantize(teacher, data, work_dir):
    ds, split = data
    exported = export_stage.export(teacher, Runtime.OPENVINO, InputPolicy(), ds.texts[:8], work_dir)
    q = quantize(exported, candidate("openvino-cpu", "weight-int8"), load_profile("openvino-cpu"), None, [], work_dir)
    xml = (q.path / "openvino_model.xml").read_text()
    assert 'element_type="u8"' in xml and "FakeQuantize" not in xml
    assert (q.path / "openvino_model.bin").stat().st_size < (exported.path / "openvino_model.bin").stat().st_size


def test_openvino_accuracy_control_validates_on_dev_texts(teacher, data, work_dir):
    ds, split = data
    from edgeft.data.calibration import load_recipe
    from edgeft.stages.quantize import DevSplit, calibration_texts

    profile = load_profile("openvino-cpu")
    c = candidate("openvino-cpu", "nncf-int8-ac")
    recipe = load_recipe(c.calibration)
    dev = DevSplit([ds.texts[i] for i in split.dev], [ds.label_names.index(ds.labels[i]) for i in split.dev])
    exported = export_stage.export(teacher, Runtime.OPENVINO, InputPolicy(), ds.texts[:8], work_dir)
    q = quantize(exported, c, profile, recipe, calibration_texts(ds, split, recipe)[:32], work_dir, dev)
    assert q.manifest["quantization"]["accuracy_control"] is True
    assert q.manifest["quantization"]["name"] == "nncf-int8-ac"
    assert "FakeQuantize" in (q.path / "openvino_model.xml").read_text()


def test_trimmed_vocabulary_sends_unseen_pieces_to_unk_and_changes_nothing_else(teacher, data, work_dir):
    """vocabulary: train keeps the rows of the pieces the training texts use; in fp32 a text then runs exactly as
    the full model runs the same text with every dropped piece replaced by [UNK], and a text of kept pieces runs
    unchanged. The tokenizer file is the base model's, untouched."""
    from edgeft.profile import Candidate, Scheme
    from edgeft.stages.vocabulary import pieces_of

    ds, _ = data
    profile = load_profile("x86-avx2")
    exported = export_stage.export(teacher, Runtime.ONNXRUNTIME, InputPolicy(), ds.texts[:8], work_dir)
    # Training texts without two of the sentiment words: their rows go.
    dropped = {"great", "awful"}
    train = [t for t in ds.texts if not dropped & set(t.split())]
    trimmed = quantize(exported, Candidate(name="fp32-trim", scheme=Scheme.FP32, vocabulary="train"), profile, None,
                       [], work_dir, train_pieces=pieces_of(exported.path / "tokenizer.json", train))
    table = trimmed.manifest["word_embeddings"]
    assert table["rows"] < table["vocabulary"] and table["chosen_by"] == "training split"
    assert (trimmed.path / "tokenizer.json").read_bytes() == (exported.path / "tokenizer.json").read_bytes()

    full = open_session(Runtime.ONNXRUNTIME, exported.path / "model.onnx", 1, TOKENIZER_OUTPUTS)
    small = open_session(Runtime.ONNXRUNTIME, trimmed.path / "model.onnx", 1, TOKENIZER_OUTPUTS)
    encode = TextEncoder(exported.path / "tokenizer.json", 128, "right", full.input_names)
    texts = ["a great day", "an awful awful film", *ds.texts[:6]]
    as_unk = [" ".join("[UNK]" if w in dropped else w for w in t.split()) for t in texts]
    np.testing.assert_allclose(small.run(encode(texts)), full.run(encode(as_unk)), atol=1e-5)
    kept_only = [t for t in ds.texts if not dropped & set(t.split())][:8]
    np.testing.assert_array_equal(small.run(encode(kept_only)), full.run(encode(kept_only)))
    assert not np.allclose(small.run(encode(texts[:2])), full.run(encode(texts[:2])), atol=1e-3)


def test_4bit_embeddings_halve_the_int8_table_and_stay_close_under_int8(teacher, data, work_dir):
    """embedding_bits: 4 stores the table as packed 4-bit codes into a 16-value palette (standard ONNX ops decode
    them, no contrib op); the int8 quantizer then leaves that lookup alone and still quantizes the matmuls."""
    from onnx import numpy_helper

    from edgeft.profile import Candidate, Scheme

    ds, _ = data
    profile = load_profile("x86-avx2")
    exported = export_stage.export(teacher, Runtime.ONNXRUNTIME, InputPolicy(), ds.texts[:8], work_dir)
    plain = quantize(exported, candidate("x86-avx2", "dynamic-int8-s8"), profile, None, [], work_dir)
    packed = quantize(exported, Candidate(name="s8-u4", scheme=Scheme.DYNAMIC_INT8, per_channel=True,
                                          weight_type="s8", reduce_range=True, embedding_bits=4),
                      profile, None, [], work_dir)
    graph = onnx.load(str(packed.path / "model.onnx")).graph
    tables = {t.name: numpy_helper.to_array(t) for t in graph.initializer if t.name.endswith("_u4")}
    (codes,) = tables.values()
    vocab, hidden = teacher_table_shape(exported)
    assert codes.dtype == np.uint8 and codes.shape == (vocab, hidden // 2)
    assert "MatMulInteger" in {n.op_type for n in graph.node}
    assert not {n.domain for n in graph.node} - {"", "ai.onnx"}
    assert packed.manifest["word_embeddings"]["bits"] == 4
    sessions = {name: open_session(Runtime.ONNXRUNTIME, art.path / "model.onnx", 1, TOKENIZER_OUTPUTS)
                for name, art in (("plain", plain), ("packed", packed), ("fp32", exported))}
    encode = TextEncoder(exported.path / "tokenizer.json", 128, "right", sessions["fp32"].input_names)
    logits = {name: s.run(encode(ds.texts[:64])) for name, s in sessions.items()}
    assert (logits["packed"].argmax(-1) == logits["fp32"].argmax(-1)).mean() >= 0.9
    # Half the int8 preset's uint8 table, plus a fixed 2 KB byte -> two values table.
    arrays = all_initializers(packed)
    int8_table = max((a for a in all_initializers(plain).values() if a.dtype == np.uint8 and a.ndim == 2 and a.shape[0] == vocab),
                     key=lambda a: a.size)
    assert int8_table.shape == (vocab, hidden) and codes.nbytes * 2 == int8_table.nbytes
    assert len(np.unique(next(a for n, a in arrays.items() if n.endswith("_u4_pairs")))) <= 16
    # A .onnx target decodes the table once at load (constant folding); the mobile .ort target, whose converter would
    # fold the decoded table into the file, decodes the looked-up rows on each call: the same values either way.
    on_call = quantize(exported, Candidate(name="u4", scheme=Scheme.FP32, embedding_bits=4), load_profile("mobile"),
                       None, [], work_dir)
    at_load = quantize(exported, Candidate(name="u4", scheme=Scheme.FP32, embedding_bits=4), profile, None, [],
                       work_dir)
    assert on_call.manifest["word_embeddings"]["decoded"] != at_load.manifest["word_embeddings"]["decoded"]
    runs = [open_session(Runtime.ONNXRUNTIME, a.path / "model.onnx", 1, TOKENIZER_OUTPUTS) for a in (on_call, at_load)]
    encode = TextEncoder(exported.path / "tokenizer.json", 128, "right", runs[0].input_names)
    np.testing.assert_allclose(runs[0].run(encode(ds.texts[:16])), runs[1].run(encode(ds.texts[:16])), atol=1e-5)


def all_initializers(artifact) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    graph = onnx.load(str(artifact.path / "model.onnx")).graph
    return {t.name: numpy_helper.to_array(t) for t in graph.initializer}


def teacher_table_shape(exported) -> tuple[int, int]:
    from onnx import numpy_helper

    graph = onnx.load(str(exported.path / "model.onnx")).graph
    inits = {t.name: t for t in graph.initializer}
    node = next(n for n in graph.node if n.op_type == "Gather" and n.input[1] == "input_ids" and n.input[0] in inits)
    return tuple(numpy_helper.to_array(inits[node.input[0]]).shape)
