"""Distillation on the tiny BERT, on the CPU: students made from teacher layers, the losses, `edgeft distill`, and
`edgeft build` shipping a student."""

from __future__ import annotations

import json

import onnx
import pytest
import torch

from conftest import TINY_TRAINING, run_edgeft, tiny_build_args
from edgeft.data.text import load_dataset, split_dataset
from edgeft.student_recipe import Student
from edgeft.stages.distill import IGNORE, distillation_loss, hidden_state_loss
from edgeft.stages.finetune import FinetuneSpec, finetune
from edgeft.stages.student import make_student, spread_layers
from edgeft.stages.torch_model import load_classifier

# min_steps=0: exactly 5 epochs, as the CLI's --epochs 5 means (no step floor).
TINY_SPEC = FinetuneSpec(epochs=5, min_steps=0, max_train_samples=None, learning_rate=3e-3, batch_size=16,
                         max_length=128, device="cpu")
LABELS = ["negative", "neutral", "positive"]
# The tiny student learns fast at a high rate, like the tiny teacher (see TINY_TRAINING).
TINY_DISTILL = ["--epochs", "6", "--learning-rate", "1e-3", "--batch-size", "16", "--device", "cpu"]


@pytest.fixture(scope="module")
def teacher(tiny_model, tiny_csv, work_dir):
    ds = load_dataset(str(tiny_csv))
    return finetune(tiny_model, ds, split_dataset(ds, seed=0), TINY_SPEC, work_dir)


def inputs():
    return {"input_ids": torch.tensor([[2, 7, 20, 30, 3, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 0]]),
            "token_type_ids": torch.zeros(1, 6, dtype=torch.long)}


def test_layers_are_spread_evenly_and_the_last_is_kept():
    assert spread_layers(6, 2) == (2, 5)
    assert spread_layers(6, 3) == (1, 3, 5)
    assert spread_layers(6, 6) == (0, 1, 2, 3, 4, 5)
    assert spread_layers(12, 4) == (2, 5, 8, 11)


def test_student_starts_as_a_copy_of_the_chosen_teacher_layers(teacher):
    t = load_classifier(teacher.path)
    s, plan = make_student(t, Student(layers=(1,)), LABELS, "classification")
    assert plan.layers == (1,) and plan.copied and s.config.num_hidden_layers == 1
    assert torch.equal(s.bert.encoder.layer[0].attention.self.query.weight, t.bert.encoder.layer[1].attention.self.query.weight)
    assert torch.equal(s.bert.embeddings.word_embeddings.weight, t.bert.embeddings.word_embeddings.weight)
    # The teacher is untouched: the student is a copy, not a view.
    assert t.config.num_hidden_layers == 2 and len(t.bert.encoder.layer) == 2


def test_a_student_can_keep_its_lowest_layers_frozen_but_not_all_of_them(teacher):
    t = load_classifier(teacher.path)
    s, _ = make_student(t, Student(layers=2, freeze_layers=1), LABELS, "classification")
    frozen = [*s.bert.embeddings.parameters(), *s.bert.encoder.layer[0].parameters()]
    assert not any(p.requires_grad for p in frozen)
    assert all(p.requires_grad for p in [*s.bert.encoder.layer[1].parameters(), *s.classifier.parameters()])
    with pytest.raises(ValueError, match="'freeze_layers' 2 would freeze every one of the student's 2 layers"):
        Student(layers=(0, 1), freeze_layers=2)


def test_ffn_pruning_at_full_width_changes_nothing_and_keeps_the_strongest_units(teacher):
    t = load_classifier(teacher.path).eval()
    full, _ = make_student(t, Student(layers=2, ffn=t.config.intermediate_size), LABELS, "classification")
    with torch.no_grad():
        assert torch.allclose(full.eval()(**inputs()).logits, t(**inputs()).logits, atol=1e-5)
    half, _ = make_student(t, Student(layers=2, ffn=32), LABELS, "classification")
    block, pruned = t.bert.encoder.layer[0], half.bert.encoder.layer[0]
    score = block.intermediate.dense.weight.norm(dim=1) * block.output.dense.weight.norm(dim=0)
    kept = torch.sort(torch.topk(score, 32).indices).values
    assert torch.equal(pruned.intermediate.dense.weight, block.intermediate.dense.weight[kept])
    assert torch.equal(pruned.output.dense.weight, block.output.dense.weight[:, kept])
    assert half.config.intermediate_size == 32


def test_soft_loss_is_zero_when_the_student_matches_the_teacher_and_grows_with_disagreement():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])
    labels, mask = torch.tensor([0, 2]), torch.ones(2, dtype=torch.bool)
    assert distillation_loss(logits, logits, labels, mask, 2.0, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    worse = distillation_loss(logits.flip(-1), logits, labels, mask, 2.0, 1.0).item()
    assert worse > 0.1
    # alpha 0 is plain cross-entropy on the hard labels.
    ce = torch.nn.functional.cross_entropy(logits, labels).item()
    assert distillation_loss(logits, logits.flip(-1), labels, mask, 2.0, 0.0).item() == pytest.approx(ce)


def test_losses_take_token_level_logits_with_a_mask_and_unlabelled_positions():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    labels = torch.tensor([[1, 2, IGNORE, 0, IGNORE], [IGNORE] * 5])  # second text: no hard labels at all
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], dtype=torch.bool)
    loss = distillation_loss(student, teacher, labels, mask, 1.0, 0.5)
    soft = torch.nn.functional.kl_div(torch.log_softmax(student[mask], -1), torch.log_softmax(teacher[mask], -1),
                                      log_target=True, reduction="batchmean")
    hard = torch.nn.functional.cross_entropy(student[mask], labels[mask], ignore_index=IGNORE)
    assert loss.item() == pytest.approx((0.5 * soft + 0.5 * hard).item(), rel=1e-5)
    # Padding positions never count: changing the student there leaves the loss alone.
    student2 = student.clone()
    student2[0, 4] += 10
    assert distillation_loss(student2, teacher, labels, mask, 1.0, 0.5).item() == pytest.approx(loss.item())


def test_hidden_state_loss_compares_mapped_layers_on_real_tokens():
    hidden = [torch.randn(1, 4, 8) for _ in range(3)]  # embeddings + 2 layers
    mask = torch.tensor([[1, 1, 1, 0]])
    assert hidden_state_loss(hidden[:2], hidden, (0,), mask).item() == 0.0
    assert hidden_state_loss(hidden[:2], hidden, (1,), mask).item() > 0.0


def test_distill_command_writes_a_smaller_student_that_learned(teacher, tiny_csv, tmp_path, work_dir):
    extra = tmp_path / "unlabelled.txt"
    extra.write_text("good great day\nawful broken car\nthe paper is on the table\n", encoding="utf-8")
    out = tmp_path / "student"
    code, stdout, err = run_edgeft(["distill", "--teacher", str(teacher.path), "--data", str(tiny_csv),
                                    "--student", "layers:1,ffn:64", "--out", str(out), "--extra-text", str(extra),
                                    "--hidden-weight", "1.0", "--work-dir", str(work_dir), *TINY_DISTILL])
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["student"]["layers"] == 1 and manifest["student"]["ffn"] == 64
    assert manifest["student"]["parameters"] < manifest["student"]["teacher_parameters"]
    assert manifest["extra_texts"] == 3 and manifest["spec"]["student"]["hidden_weight"] == 1.0
    rows = {r["model"]: r for r in manifest["test"]["rows"]}
    assert rows["student fp32"]["accuracy"] > 0.6, rows  # chance is 0.33
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert "student fp32" in stdout
    assert load_classifier(out).config.num_hidden_layers == 1


def test_soft_targets_from_the_int8_teacher_agree_with_its_fp32_outputs(teacher, tiny_csv, work_dir):
    """On a CPU the teacher's soft targets come from its int8 ONNX Runtime copy (3.5x faster on the real teacher);
    they must be the teacher's outputs up to quantization noise, and the stage says which precision it used."""
    import numpy as np

    from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
    from edgeft.stages.lessons import soft_target_precision, teacher_outputs

    assert soft_target_precision(Student(layers=1), "cpu") == "int8"
    assert soft_target_precision(Student(layers=1), "cuda") == "fp32"
    assert soft_target_precision(Student(layers=1, teacher_outputs="fp32"), "cpu") == "fp32"
    texts = load_dataset(str(tiny_csv)).texts[:64]
    model = load_classifier(teacher.path)
    encode = TextEncoder(teacher.path / "tokenizer.json", 128, "right", TOKENIZER_OUTPUTS)
    fp32 = teacher_outputs(teacher, model, encode, texts, "fp32", "cpu", work_dir)
    int8 = teacher_outputs(teacher, model, encode, texts, "int8", "cpu", work_dir)
    assert fp32.shape == int8.shape == (64, 3) and not np.array_equal(fp32, int8)
    assert (fp32.argmax(-1) == int8.argmax(-1)).mean() > 0.9 and np.abs(fp32 - int8).max() < 0.5 * np.abs(fp32).max()


def test_build_ships_the_student_and_reports_teacher_student_and_shipped(tiny_model, tiny_csv, tmp_path, work_dir):
    profile = tmp_path / "small-x86.yaml"
    profile.write_text("name: small-x86\ndescription: test profile with a student\nruntime: onnxruntime\n"
                       "format: onnx\nisa: avx2\nquantization: {candidates: [{name: dynamic-int8, scheme: dynamic-int8, "
                       "per_channel: true}, {name: fp32, scheme: fp32}], pin: dynamic-int8}\n"
                       "budgets: {max_accuracy_drop: 1.0}\n"
                       "student: {layers: 1, epochs: 6, learning_rate: 0.001, batch_size: 16}\n", encoding="utf-8")
    out = tmp_path / "bundle"
    code, _, err = run_edgeft(tiny_build_args(str(profile), tiny_model, tiny_csv, out, work_dir))
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert [r["model"] for r in report["models"]] == ["teacher fp32", "student fp32", "shipped dynamic-int8"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["distill"]["student"]["layers"] == 1
    assert manifest["distill"]["soft_targets"] == "int8"  # the CPU default
    assert 0 <= manifest["distill"]["metrics"]["soft_targets_dev_accuracy"] <= 1
    assert [step["stage"] for step in manifest["lineage"]] == ["finetune", "distill", "export-onnxruntime",
                                                               "quantize-onnxruntime"]
    # The shipped graph really is the 1-layer student: half the teacher's MatMul-bearing layers.
    graph = onnx.load(out / "model.onnx").graph
    assert not any("layer.1" in node.name for node in graph.node)
    assert any("layer.0" in node.name for node in graph.node)
    assert report["models"][1]["accuracy"] > 0.6


@pytest.mark.parametrize("args, message", [
    (["--student", "layers:9"], "--student layers:9: the teacher has 2 layers; keep at most 2"),
    (["--student", "layers:1-0"], "--student layers:1-0: a list of teacher layers, each once and in increasing order"),
    (["--student", "foo:1"], "unknown student key 'foo'"),
    (["--student", "layers:1,ffn:999"], "wider than the teacher"),
    (["--student", "layers:1,hidden:48"], "hidden:48 heads:1 do not fit the teacher (64 wide, 2 heads of 32)"),
    (["--distill", "temprature=3"],
     "--student / --distill: unknown field 'temprature'; remove it or check its spelling (the recipe's fields: layers"),
    (["--student", "no/such/folder"], "--student no/such/folder does not exist; pass --student with a"),
    (["--distill", "alpha=2"], "field 'alpha'"),
    (["--student", "none", "--distill", "epochs=2"], "ships no student"),
    (["--distill", "epochs"], "not KEY=VALUE"),
])
def test_bad_student_options_are_one_line_exit_2_before_any_training(args, message, tiny_model, tiny_csv, tmp_path,
                                                                      work_dir):
    out, fresh_work = tmp_path / "bundle", tmp_path / "work"
    code, _, err = run_edgeft(tiny_build_args("x86-avx2", tiny_model, tiny_csv, out, fresh_work, *args))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and not list(fresh_work.glob("work/finetune-*"))  # rejected before the fine-tune


def test_a_smaller_model_folder_is_a_student_only_with_the_teachers_vocabulary(tiny_model, teacher, tmp_path):
    import shutil

    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from edgeft.errors import BadInput
    from edgeft.stages.pooling import mean_pooled_class
    from edgeft.stages.student import check_student

    small = tmp_path / "small"
    config = BertConfig.from_pretrained(tiny_model)
    config.num_hidden_layers = 1
    BertForSequenceClassification(config).save_pretrained(small, safe_serialization=True)
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy2(tiny_model / name, small / name)
    recipe = Student(model=str(small))
    check_student(recipe, teacher.path)
    model, plan = make_student(load_classifier(teacher.path), recipe, LABELS, "classification")
    assert not plan.copied and plan.layers == (1,) and model.config.num_labels == 3
    # It reads its sentence vector as the teacher does: a mean-pooled teacher's student is mean-pooled too.
    assert type(model) is BertForSequenceClassification
    mean_teacher = load_classifier(teacher.path, LABELS, pooling="mean")
    mean_student, _ = make_student(mean_teacher, recipe, LABELS, "classification")
    assert type(mean_student) is mean_pooled_class() and mean_student.config.edgeft_pooling == "mean"

    vocab = (tiny_model / "vocab.txt").read_text().splitlines() + ["extra"]
    (small / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(small / "vocab.txt")).save_pretrained(small)
    with pytest.raises(BadInput, match="another vocabulary"):
        check_student(recipe, teacher.path)


def test_extra_text_is_a_file_or_a_packaged_sets_texts_and_the_first_n_are_kept(tmp_path):
    from edgeft.errors import BadInput
    from edgeft.data.unlabelled import read_extra_text

    extra = tmp_path / "unlabelled.txt"
    extra.write_text("one\n\n  two  \nthree\n", encoding="utf-8")
    assert read_extra_text(extra) == ["one", "two", "three"]
    assert read_extra_text(str(extra), limit=2) == ["one", "two"]
    # The packaged tweets' texts, labels unused, in the file's order: the same N give the same soft-target cache.
    tweets = read_extra_text("packaged:tweets", limit=5)
    assert tweets == load_dataset("packaged:tweets").texts[:5]
    # A tagged set's sentences are joined into texts.
    assert all(isinstance(t, str) and t for t in read_extra_text("packaged:wnut16", limit=3))
    for source, limit, fragment in (("packaged:nope", None, "packaged:tweets"), (str(extra), 0, "at least 1"),
                                    (str(tmp_path / "missing.txt"), None, "does not exist")):
        with pytest.raises(BadInput, match=fragment):
            read_extra_text(source, limit)
