"""The default recipe adapts to the data's size: optimizer steps, not epochs, are the unit (issue 13).

The figures behind these rules are in docs/experiments/recipes.md (`make bench-recipes`); these tests pin the rules
themselves, and one real tiny fine-tune shows a small set trained for its floor of steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeft.cli.options import recipe_overrides
from edgeft.data.text import held_out_fractions, load_dataset, split_dataset
from edgeft.stages.finetune import FinetuneSpec, balanced_class_weights, dev_metric, finetune, fit_batch_size
from edgeft.stages.training import StepPlan

from conftest import run_edgeft, tiny_build_args


def test_a_small_set_repeats_until_the_step_floor_and_waits_longer_before_stopping():
    # 500 texts at batch 32 were 16 steps an epoch, 32 steps in all: now 19 epochs (304 steps), and early stopping
    # waits 7 epochs (>= 100 steps) without a better dev score instead of one.
    plan = StepPlan.of(500, 32, epochs=2, min_steps=300, patience=1, patience_steps=100)
    assert (plan.steps_per_epoch, plan.epochs, plan.steps, plan.patience) == (16, 19, 304, 7)


def test_the_default_8000_tweets_keep_their_two_epochs_and_one_epoch_of_patience():
    plan = StepPlan.of(8000, 32, epochs=2, min_steps=300, patience=1, patience_steps=100)
    assert (plan.epochs, plan.patience) == (2, 1)


def test_several_processes_share_the_steps_of_an_epoch():
    assert StepPlan.of(8000, 32, 2, 300, 1, 100, world_size=4).steps_per_epoch == 62


@pytest.mark.parametrize("n, dev, test", [(200, 0.15, 0.2), (600, 0.15, 0.2), (1000, 0.1, 0.2),
                                          (2125, 0.05, 0.1), (37243, 0.05, 0.1)])
def test_small_sets_hold_out_a_larger_share_so_that_test_can_tell_a_model_from_the_majority_class(n, dev, test):
    assert held_out_fractions(n) == pytest.approx((dev, test))


def test_the_split_uses_those_shares_for_the_data_at_hand(tiny_csv):
    ds = load_dataset(str(tiny_csv))  # 480 texts
    split = split_dataset(ds, seed=0)
    assert (len(split.dev), len(split.test)) == (72, 96)
    assert len(split.train) + len(split.dev) + len(split.test) == 480


def test_a_cpu_batch_is_16_below_2000_training_texts_and_32_from_there():
    assert fit_batch_size(None, 128, "cpu", 390) == 16
    assert fit_batch_size(None, 128, "cpu", 6800) == 32


def test_a_large_set_is_fine_tuned_in_one_pass_over_as_many_distinct_texts_as_two_epochs_would_see():
    default = FinetuneSpec()
    assert default.passes(31_656) == (16_000, 1)  # the packaged tweets: 500 steps, no text seen twice
    assert default.passes(16_000) == (16_000, 1)
    assert default.passes(12_000) == (8_000, 2)  # too few for that: two passes over 8,000, as before
    assert default.passes(500) == (8_000, 2)  # (the subset is then the whole set, and the step floor applies)


def test_epochs_or_a_subset_named_by_the_user_are_exact_unless_the_floor_is_named_too():
    assert recipe_overrides(3, None, None, None) == {"epochs": 3, "min_steps": 0, "fresh_texts": False}
    assert recipe_overrides(3, 500, None, None)["min_steps"] == 500
    assert FinetuneSpec(**recipe_overrides(3, None, None, None)).passes(31_656) == (8_000, 3)
    assert recipe_overrides(None, None, None, None, max_train_samples=0) == {"max_train_samples": None,
                                                                            "fresh_texts": False}
    assert FinetuneSpec(**recipe_overrides(None, None, None, None, max_train_samples=4000)).passes(31_656) == (4000, 2)
    assert recipe_overrides(None, None, "balanced", "macro_f1") == {"class_weights": "balanced",
                                                                   "select_metric": "macro_f1"}


def test_balanced_class_weights_make_every_class_weigh_the_same_in_the_loss():
    y = np.array([0] * 6 + [1] * 3 + [2] * 1)
    weights = balanced_class_weights(y, 4)  # class 3 is absent from the subset: weight 1
    assert weights.tolist() == pytest.approx([10 / 24, 10 / 12, 10 / 4, 1.0])
    assert [weights[c] * (y == c).sum() for c in range(3)] == pytest.approx([2.5, 2.5, 2.5])


def test_macro_f1_can_pick_the_best_epoch():
    assert dev_metric(FinetuneSpec(select_metric="macro_f1")) == "dev_macro_f1"
    assert dev_metric(FinetuneSpec(task="ner")) == "dev_entity_f1"  # macro_f1 is refused for NER (test_ner.py)


def test_a_small_set_is_trained_for_its_floor_of_steps_with_both_dev_figures_logged(tiny_model, tiny_csv, tmp_path):
    ds = load_dataset(str(tiny_csv))
    split = split_dataset(ds, seed=0)
    # 40 texts at batch 16: 3 steps an epoch; one epoch asked for, the floor of 30 steps makes it 10.
    spec = FinetuneSpec(epochs=1, min_steps=30, patience_steps=1000, max_train_samples=40, learning_rate=3e-3,
                        batch_size=16, class_weights="balanced", select_metric="macro_f1", device="cpu")
    art = finetune(tiny_model, ds, split, spec, tmp_path)
    assert art.manifest["plan"] == {"epochs": 10, "steps_per_epoch": 3, "max_steps": 30, "patience_epochs": 334}
    metrics = art.manifest["metrics"]
    assert metrics["steps_run"] == 30 and len(metrics["history"]) == 10
    assert {"dev_accuracy", "dev_macro_f1", "steps"} <= set(metrics["history"][0])
    assert metrics["dev_macro_f1"] == max(h["dev_macro_f1"] for h in metrics["history"])


def test_one_pass_over_fresh_texts_trains_on_twice_the_subset_for_one_epoch(tiny_model, tiny_csv, tmp_path):
    ds = load_dataset(str(tiny_csv))
    split = split_dataset(ds, seed=0)  # 312 training texts: enough for 2 x 60 distinct ones
    common = dict(epochs=2, max_train_samples=60, min_steps=0, batch_size=16, learning_rate=1e-3, device="cpu")
    fresh = finetune(tiny_model, ds, split, FinetuneSpec(**common), tmp_path / "fresh").manifest
    repeated = finetune(tiny_model, ds, split, FinetuneSpec(**common, fresh_texts=False), tmp_path / "rep").manifest
    assert (fresh["train_samples"], fresh["plan"]["epochs"], fresh["plan"]["max_steps"]) == (120, 1, 8)
    assert (repeated["train_samples"], repeated["plan"]["epochs"], repeated["plan"]["max_steps"]) == (60, 2, 8)
    assert len(fresh["metrics"]["history"]) == 1 and len(repeated["metrics"]["history"]) == 2


def test_recipe_options_reach_the_build_and_bad_values_are_one_line(tiny_model, tiny_csv, tmp_path):
    code, _, err = run_edgeft(["build", "--target", "x86-avx2", "--model", str(tiny_model), "--data", str(tiny_csv),
                               "--out", str(tmp_path / "b"), "--class-weights", "inverse"])
    assert code == 2 and "class_weights" in err and "balanced" in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()


def test_finetune_cli_records_the_plan(tiny_model, tiny_csv, tmp_path):
    out = tmp_path / "model"
    code, _, err = run_edgeft(["finetune", "--model", str(tiny_model), "--data", str(tiny_csv), "--out", str(out),
                               "--epochs", "1", "--min-steps", "20", "--learning-rate", "3e-3", "--batch-size", "16",
                               "--max-train-samples", "32", "--device", "cpu", "--work-dir", str(tmp_path / "w")])
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["plan"]["max_steps"] == 20 and manifest["spec"]["min_steps"] == 20


def test_finetune_cli_max_train_samples_0_trains_on_the_whole_train_split(tiny_model, tiny_csv, tmp_path):
    out = tmp_path / "model"
    code, _, err = run_edgeft(["finetune", "--model", str(tiny_model), "--data", str(tiny_csv), "--out", str(out),
                               "--epochs", "1", "--batch-size", "64", "--max-train-samples", "0", "--device", "cpu",
                               "--work-dir", str(tmp_path / "w")])
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    # The spec says "all" (it kept the default 8,000 before), and all 312 training texts of the 480 trained.
    assert manifest["spec"]["max_train_samples"] is None and manifest["train_samples"] == 312


def test_a_student_must_hold_the_budget_on_dev_by_more_than_its_noise(tmp_path):
    from edgeft.gating.student import student_fallback
    from edgeft.stages.training import DEV_PREDICTIONS

    def model(name: str, predictions: list[int]) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / DEV_PREDICTIONS).write_text(json.dumps(predictions))
        return folder

    from edgeft.runtime.scoring import Examples

    gold = [0, 1] * 50  # 100 dev texts
    labels = ["no", "yes"]
    dev = Examples("classification", [f"t{i}" for i in range(100)], [labels[g] for g in gold])
    teacher = model("teacher", gold[:90] + [1 - g for g in gold[90:]])  # 0.90
    same = model("same", gold[:90] + [1 - g for g in gold[90:]])  # the teacher's very predictions: no noise
    near = model("near", [1 - g for g in gold[:10]] + gold[10:])  # also 0.90, but 20 texts differ
    worse = model("worse", gold[:80] + [1 - g for g in gold[80:]])  # 0.80
    assert student_fallback(teacher, same, {}, dev, labels, 0.01) is None
    # The figures a passing student shipped on are kept too (report.json `student_check`).
    from edgeft.gating.student import passed_line, student_check

    passed = student_check(teacher, same, {}, dev, labels, 0.01)
    assert passed["passed"] and passed["drop"] == passed["drop_se"] == 0 and passed["scored_differently"] == 0
    assert "reason" not in passed and "0.9000 vs the teacher's 0.9000" in passed_line(passed)
    assert student_check(teacher, near, {}, dev, labels, 0.01)["scored_differently"] == 20
    # Same accuracy, but on 100 texts a student that changes 20 answers could be 4 points worse: not shipped.
    decision = student_fallback(teacher, near, {}, dev, labels, 0.01)
    assert decision["student_dev_accuracy"] == decision["teacher_dev_accuracy"] == 0.9
    assert 0.02 < decision["drop_se"] < 0.06 and "teacher's candidates race instead" in decision["reason"]
    assert student_fallback(teacher, worse, {}, dev, labels, 0.01)["student_dev_accuracy"] == 0.8
    # Without predictions (a teacher fine-tuned elsewhere) the recorded dev figures decide, without a noise term.
    bare = tmp_path / "bare"
    bare.mkdir()
    assert student_fallback(bare, near, {"metrics": {"dev_accuracy": 0.785, "teacher_dev_accuracy": 0.79}}, dev,
                            labels, 0.01) is None
    assert student_fallback(bare, near, {"metrics": {"dev_accuracy": 0.5, "teacher_dev_accuracy": None}}, dev,
                            labels, 0.01) is None


def test_a_build_whose_student_falls_short_ships_the_teacher_and_says_so(tiny_model, tiny_csv, work_dir, tmp_path):
    # A 1-layer student with a single feed-forward unit that never trains (learning rate 1e-9) cannot match its
    # teacher on dev: the build ships the teacher's candidate instead, exit 0, and records why.
    out = tmp_path / "bundle"
    code, stdout, err = run_edgeft(tiny_build_args(
        "x86-avx2", tiny_model, tiny_csv, out, work_dir, "--student", "layers:1,ffn:1", "--distill",
        "learning_rate=1e-9", "--distill", "min_examples=0", "--distill", "epochs=1", "--quantization", "fp32"))
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    fallback = report["student_fallback"]
    assert fallback["teacher_dev_accuracy"] - fallback["student_dev_accuracy"] + fallback["drop_se"] > 0.01
    assert manifest["student_fallback"] == fallback and manifest["distill"] is None
    assert [stage["stage"] for stage in manifest["lineage"]][0] == "finetune" and "distill" not in {
        stage["stage"] for stage in manifest["lineage"]}
    assert "teacher's candidates race instead" in stdout + err
    card = (out / "README.md").read_text()
    # The card's head names what shipped: the profile's description speaks of a student that is not in this bundle.
    assert "Shipped the teacher" in card
    assert "The shipped model is the fine-tuned teacher, not the profile's student" in card.split("## ")[0]
    assert report["student_check"] == fallback and not fallback["passed"]


def test_the_accuracy_budget_forgives_a_drop_the_test_split_cannot_tell_from_noise():
    from edgeft.gating.budgets import check_budgets
    from edgeft.profile import load_profile

    profile = load_profile("x86-avx2")

    def verdict(drop: float, lower: float | None) -> dict:
        report = {"task": "classification", "latency_ms": {"p50": 1.0}, "size_mb": 1.0,
                  "metrics": {"accuracy_drop": drop, "drop_lower_bound": lower, "n": 40}}
        return check_budgets(profile, report)[0]

    # 2 of 40 test texts flipped: 0.05 over a 0.01 limit, but the bootstrap cannot rule out no drop at all.
    noisy = verdict(0.05, 0.0)
    assert noisy["passed"] and "within noise" in noisy["note"]
    # A drop the test split is sure of (lower bound above 0) and over the limit fails, as a drop within it passes.
    assert not verdict(0.02, 0.008)["passed"]
    assert verdict(0.008, 0.001)["passed"] and "note" not in verdict(0.008, 0.001)
    assert not verdict(0.02, None)["passed"]  # an older report without the bound: the plain limit


def test_a_paired_margin_is_sure_of_many_flips_and_not_of_two():
    from edgeft.gating.floor import paired_margin
    from edgeft.runtime.scoring import Examples

    gold = [0, 1] * 20
    test = Examples("classification", [f"t{i}" for i in range(40)], gold)
    two = [1 - g if i < 2 else g for i, g in enumerate(gold)]
    ten = [1 - g if i < 10 else g for i, g in enumerate(gold)]
    assert paired_margin(test, gold, two) == pytest.approx((0.05, 0.0))
    margin, lower = paired_margin(test, gold, ten)
    assert margin == pytest.approx(0.25) and lower > 0.1
