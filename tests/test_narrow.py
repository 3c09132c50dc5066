"""Narrower students (`hidden:W`): the teacher's weights projected onto the leading directions of its hidden states
(stages/narrow.py), on the tiny BERT (64 wide, 2 heads of 32)."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import run_edgeft, tiny_build_args
from edgeft.data.text import load_dataset, split_dataset
from edgeft.student_recipe import Student
from edgeft.stages.finetune import FinetuneSpec, finetune
from edgeft.stages.narrow import hidden_basis, narrow
from edgeft.stages.student import make_student
from edgeft.stages.torch_model import load_classifier

LABELS = ["negative", "neutral", "positive"]
TINY_SPEC = FinetuneSpec(epochs=5, min_steps=0, max_train_samples=None, learning_rate=3e-3, batch_size=16,
                         max_length=128, device="cpu")


@pytest.fixture(scope="module")
def teacher(tiny_model, tiny_csv, work_dir):
    ds = load_dataset(str(tiny_csv))
    return finetune(tiny_model, ds, split_dataset(ds, seed=0), TINY_SPEC, work_dir)


def batches():
    """Two batches of 16 random 10-token texts from the tiny vocabulary (its words start at id 5)."""
    torch.manual_seed(1)
    ids = torch.randint(5, 30, (2, 16, 10))
    ids[:, :, 0], ids[:, :, -1] = 2, 3
    return [{"input_ids": i, "attention_mask": torch.ones_like(i), "token_type_ids": torch.zeros_like(i)}
            for i in ids]


def test_narrowing_through_the_identity_at_full_width_is_the_teacher_itself(teacher):
    """Every weight rule composes to the identity when nothing is dropped: the mapping itself loses nothing."""
    t = load_classifier(teacher.path).eval()
    same = narrow(t, (0, 1), 64, 2, 128, torch.eye(64)).eval()
    feeds = batches()[0]
    with torch.no_grad():
        assert torch.equal(same(**feeds).logits, t(**feeds).logits)


def test_the_basis_is_orthonormal_and_keeps_more_of_the_hidden_states_the_wider_it_is(teacher):
    t = load_classifier(teacher.path).eval()
    narrow_basis, narrow_share = hidden_basis(t, batches(), 16)
    wide_basis, wide_share = hidden_basis(t, batches(), 48)
    assert narrow_basis.shape == (64, 16)
    assert torch.allclose(narrow_basis.T @ narrow_basis, torch.eye(16), atol=1e-5)
    assert 0 < narrow_share < wide_share < 1
    _, full_share = hidden_basis(t, batches(), 64)
    assert full_share == pytest.approx(1.0)


def test_a_narrow_student_has_the_asked_shape_keeps_the_strongest_heads_and_starts_near_its_teacher(teacher):
    t = load_classifier(teacher.path).eval()
    s, plan = make_student(t, Student(layers=(1,), hidden=32, ffn=64), LABELS, "classification", batches)
    assert (s.config.hidden_size, s.config.num_attention_heads, s.config.intermediate_size,
            s.config.num_hidden_layers) == (32, 1, 64, 1)
    assert plan.basis.shape == (64, 32) and plan.layers == (1,) and 0 < plan.kept_energy < 1
    # The kept head is the one whose value and output weights are larger (what it can write into the stream).
    block = t.bert.encoder.layer[1].attention
    heads = [slice(h * 32, (h + 1) * 32) for h in range(2)]
    score = [block.self.value.weight[h].norm() * block.output.dense.weight[:, h].norm() for h in heads]
    head = int(torch.stack(score).argmax())
    expected = block.self.query.weight[head * 32:(head + 1) * 32] @ plan.basis
    assert torch.allclose(s.bert.encoder.layer[0].attention.self.query.weight, expected)
    # Projected into the basis, the student's first hidden state (embeddings) is the teacher's, up to LayerNorm.
    feeds = batches()[0]
    with torch.no_grad():
        student_h = s.eval()(**feeds, output_hidden_states=True).hidden_states[0]
        teacher_h = t(**feeds, output_hidden_states=True).hidden_states[0]
    agreement = torch.nn.functional.cosine_similarity(student_h @ plan.basis.T, teacher_h, dim=-1).mean()
    assert agreement > 0.5, agreement


def test_narrowing_needs_whole_heads_and_teacher_layers():
    with pytest.raises(ValueError, match="'hidden' and 'heads' narrow the teacher's layers"):
        Student(model="packaged:paraphrase-MiniLM-L3-v2", hidden=256)
    assert Student.from_spec("layers:2,hidden:256,heads:8,ffn:512") == Student(layers=2, hidden=256, heads=8, ffn=512)


def test_distill_command_trains_a_narrow_student_that_learned(teacher, tiny_csv, tmp_path, work_dir):
    out = tmp_path / "narrow"
    code, _, err = run_edgeft(["distill", "--teacher", str(teacher.path), "--data", str(tiny_csv),
                               "--student", "layers:2,hidden:32,ffn:64", "--out", str(out), "--hidden-weight", "1.0",
                               "--work-dir", str(work_dir), "--epochs", "6", "--learning-rate", "1e-3",
                               "--batch-size", "16", "--device", "cpu"])
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["student"]["hidden_size"] == 32 and manifest["student"]["heads"] == 1
    assert 0 < manifest["student"]["basis_energy"] < 1
    rows = {r["model"]: r for r in manifest["test"]["rows"]}
    assert rows["student fp32"]["accuracy"] > 0.6, rows  # chance is 0.33
    assert load_classifier(out).config.hidden_size == 32


def test_the_shipped_profiles_distil_a_narrow_student_for_labels_and_keep_the_measured_one_for_ner():
    """Sentence labels get the 2-layer, 192-wide student (distillation.md, section 7); NER keeps the 3-layer student it
    was measured with (section 6); a --student spec replaces the shape, never only part of it."""
    from edgeft.pipeline import BuildRequest, resolve_student
    from edgeft.profile import load_profile

    for target in ("x86-avx2", "openvino-cpu", "arm64", "mobile"):
        profile = load_profile(target)
        labels = resolve_student(BuildRequest(target=target), profile)
        assert (labels.layers, labels.hidden, labels.ffn, labels.freeze_embeddings) == (2, 192, 384, False), target
        ner = resolve_student(BuildRequest(target=target, task="ner"), profile)
        assert (ner.layers, ner.hidden, ner.ffn) == (3, None, 768), target
    mine = resolve_student(BuildRequest(target="x86-avx2", student="layers:3"), load_profile("x86-avx2"))
    assert (mine.layers, mine.hidden, mine.ffn, mine.epochs) == (3, None, None, 3)


def test_a_build_ships_a_narrow_student_through_export_quantization_and_the_trimmed_vocabulary(tiny_model, tiny_csv,
                                                                                              tmp_path, work_dir):
    out = tmp_path / "bundle"
    # The trimmed table is pinned: x86-avx2 prefers the whole table, and this path must keep working for the others.
    code, _, err = run_edgeft(tiny_build_args("x86-avx2", tiny_model, tiny_csv, out, work_dir,
                                              "--student", "layers:2,hidden:32,ffn:64",
                                              "--quantization", "dynamic-int8-s8-trim"))
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert [r["name"] for r in manifest["selection"]["candidates"]] == ["dynamic-int8-s8-trim"]
    assert manifest["selection"]["candidates"][0]["status"] == "chosen"
    report = json.loads((out / "report.json").read_text())
    assert manifest["distill"]["student"]["hidden_size"] == 32 and not report["student_fallback"]
    assert (out / "model.onnx").is_file()
    assert report["metrics"]["accuracy"] > 0.6, report["metrics"]  # chance is 0.33
