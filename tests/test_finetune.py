"""`edgeft finetune`: resume after an interruption, LoRA merged before writing, a hyperparameter search under a time
budget, and two processes under torchrun (gloo on CPU) with no code change. All on the tiny random BERT."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_edgeft

TINY = ["--epochs", "3", "--learning-rate", "3e-3", "--batch-size", "16", "--max-train-samples", "0",
        "--device", "cpu"]


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_finetune_writes_a_model_with_a_per_class_test_report(tiny_model, tiny_csv, tmp_path):
    out = tmp_path / "model"
    code, stdout, err = run_edgeft(["finetune", "--model", str(tiny_model), "--data", str(tiny_csv), "--out", str(out),
                                    "--work-dir", str(tmp_path / "w"), *TINY])
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["task"] == "classification" and manifest["test"]["accuracy"] > 0.8
    assert set(manifest["test"]["per_class"]) == {"negative", "neutral", "positive"}
    assert [h["epoch"] for h in manifest["metrics"]["history"]] == [1, 2, 3]
    assert all("seconds" in h for h in manifest["metrics"]["history"])
    assert "negative" in stdout and "accuracy" in stdout


def test_an_interrupted_finetune_resumes_and_ends_with_the_same_weights(tiny_model, tiny_csv, tmp_path, monkeypatch):
    """Ctrl-C in epoch 2: the epoch-1 checkpoint stays; the same command resumes there. The result is bit for bit
    the model an uninterrupted run writes."""
    import edgeft.stages.training as training

    args = ["finetune", "--model", str(tiny_model), "--data", str(tiny_csv), *TINY]
    code, _, err = run_edgeft([*args, "--out", str(tmp_path / "straight"), "--work-dir", str(tmp_path / "w1")])
    assert code == 0, err

    real = training.length_grouped_batches
    calls = {"n": 0}

    def interrupted_in_epoch_2(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(training, "length_grouped_batches", interrupted_in_epoch_2)
    code, _, err = run_edgeft([*args, "--out", str(tmp_path / "resumed"), "--work-dir", str(tmp_path / "w2")])
    assert code == 130 and not (tmp_path / "resumed").exists()
    checkpoints = list((tmp_path / "w2" / "work").glob(".finetune-*.resume"))
    assert len(checkpoints) == 1 and json.loads((checkpoints[0] / "progress.json").read_text())["epoch"] == 2

    monkeypatch.setattr(training, "length_grouped_batches", real)
    code, _, err = run_edgeft([*args, "--out", str(tmp_path / "resumed"), "--work-dir", str(tmp_path / "w2")])
    assert code == 0, err
    assert "resuming" in err
    straight, resumed = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert straight.keys() == resumed.keys()
    assert all((straight[k] == resumed[k]).all() for k in straight)
    assert not list((tmp_path / "w2" / "work").glob(".finetune-*.resume"))  # removed once training ended


def test_lora_trains_few_parameters_and_writes_plain_merged_weights(tiny_model, tiny_csv, tmp_path):
    out = tmp_path / "lora"
    code, _, err = run_edgeft(["finetune", "--model", str(tiny_model), "--data", str(tiny_csv), "--out", str(out),
                               "--work-dir", str(tmp_path / "w"), "--peft", "lora", "--lora-r", "4",
                               *TINY[:-2], "--epochs", "5", "--device", "cpu"])
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    total = sum(t.numel() for t in weights(out).values())
    assert manifest["trainable_parameters"] < total / 3
    assert not any("lora" in k for k in weights(out))  # merged: export and runtimes see an ordinary model
    assert manifest["test"]["accuracy"] > 0.6


def test_a_search_records_every_trial_and_keeps_the_best_dev_score(tiny_model, tiny_csv, tmp_path):
    out = tmp_path / "best"
    code, stdout, err = run_edgeft(["finetune", "--model", str(tiny_model), "--data", str(tiny_csv), "--out",
                                    str(out), "--work-dir", str(tmp_path / "w"), *TINY,
                                    "--search", "learning_rate=1e-5,3e-3", "--search", "epochs=1,2"])
    assert code == 0, err
    trials = json.loads((out / "manifest.json").read_text())["search"]
    assert [t["params"] for t in trials] == [{"learning_rate": 1e-5, "epochs": 1}, {"learning_rate": 1e-5, "epochs": 2},
                                             {"learning_rate": 3e-3, "epochs": 1}, {"learning_rate": 3e-3, "epochs": 2}]
    chosen = [t for t in trials if t["chosen"]]
    assert len(chosen) == 1 and chosen[0]["dev_accuracy"] == max(t["dev_accuracy"] for t in trials)
    assert chosen[0]["params"]["learning_rate"] == 3e-3  # 1e-5 barely moves a random model in 2 epochs
    assert "hyperparameter search" in stdout


def test_a_search_trial_that_names_its_epochs_or_subset_trains_exactly_that():
    from edgeft.stages.finetune import FinetuneSpec
    from edgeft.stages.search import trial_specs

    by_epochs = trial_specs(FinetuneSpec(), {"epochs": ["1", "3"]})
    assert [spec.passes(31_656) for spec in by_epochs] == [(8000, 1), (8000, 3)]
    assert trial_specs(FinetuneSpec(), {"max_train_samples": ["4000"]})[0].passes(31_656) == (4000, 2)
    # A trial over the rate alone keeps the default recipe: one pass over 16,000 fresh texts.
    assert trial_specs(FinetuneSpec(), {"learning_rate": ["1e-4"]})[0].passes(31_656) == (16_000, 1)


def test_a_search_skips_the_trials_its_time_budget_cannot_fit(tiny_model, tiny_csv, tmp_path):
    # 10 ms: no trial of even the tiny model fits (1 s did: a quiet machine trains it 5 epochs in under half of it).
    code, _, err = run_edgeft(["finetune", "--model", str(tiny_model), "--data", str(tiny_csv), "--out",
                               str(tmp_path / "m"), "--work-dir", str(tmp_path / "w"), *TINY,
                               "--search", "learning_rate=3e-3,1e-3,3e-4", "--time-budget", "0.01"])
    assert code == 0, err
    trials = json.loads((tmp_path / "m" / "manifest.json").read_text())["search"]
    assert trials[0]["status"] == "ran" and [t["status"] for t in trials[1:]] == ["skipped", "skipped"]
    assert "time budget" in trials[1]["reason"]


@pytest.mark.parametrize("args, message", [
    (["--search", "dropout=0.1"], "--search 'dropout=0.1'"),
    (["--time-budget", "60"], "--time-budget limits a --search"),
    (["--peft", "adapters"], "peft"),
    (["--precision", "fp16"], "fp16 needs a CUDA GPU"),
])
def test_bad_finetune_options_are_one_line_errors(tiny_model, tiny_csv, tmp_path, args, message):
    code, _, err = run_edgeft(["finetune", "--model", str(tiny_model), "--data", str(tiny_csv), "--out",
                               str(tmp_path / "m"), "--work-dir", str(tmp_path / "w"), *TINY, *args])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_two_processes_under_torchrun_train_one_model(tiny_model, tiny_csv, tmp_path):
    """`torchrun --nproc_per_node 2 edgeft finetune ...`: DistributedDataParallel over gloo on the CPU; each process
    takes every second batch, the first writes the model."""
    edgeft = Path(sys.executable).with_name("edgeft")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(edgeft), "finetune", "--model", str(tiny_model), "--data", str(tiny_csv),
                             "--out", str(tmp_path / "ddp"), "--work-dir", str(tmp_path / "w"), *TINY,
                             "--epochs", "6"],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((tmp_path / "ddp" / "manifest.json").read_text())
    assert manifest["metrics"]["processes"] == 2
    # 324 training texts, batches of 16 per process, every second batch each: 10 steps per process per epoch.
    assert manifest["test"]["accuracy"] > 0.8
    assert result.stdout.count("wrote") <= 1  # only the first process reports
    # The model fine-tuned by two processes goes through the rest of the pipeline as it is.
    code, _, err = run_edgeft(["build", "--target", "x86-avx2", "--model", str(tiny_model), "--data", str(tiny_csv),
                               "--finetuned", str(tmp_path / "ddp"), "--student", "none", "--quantization", "fp32",
                               "--out", str(tmp_path / "bundle"), "--work-dir", str(tmp_path / "w")])
    assert code == 0, err
    built = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert built["lineage"][0]["path"] == str(tmp_path / "ddp") and "finetune" not in built["timings"]


def test_build_refuses_a_finetuned_folder_that_names_no_labels(tiny_model, tiny_csv, tmp_path):
    # The tiny base model is a classifier of LABEL_0 / LABEL_1: not fine-tuned on this data.
    code, _, err = run_edgeft(["build", "--target", "x86-avx2", "--finetuned", str(tiny_model),
                               "--data", str(tiny_csv), "--out", str(tmp_path / "b")])
    assert code == 2 and "id2label" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_compiled_training_learns_like_eager(tiny_model, tiny_csv, tmp_path):
    """--compile: torch.compile with dynamic shapes (batches are padded to their own longest text); on a CPU the
    compile itself is most of the time, on a GPU it pays for long runs."""
    out = tmp_path / "compiled"
    code, _, err = run_edgeft(["finetune", "--model", str(tiny_model), "--data", str(tiny_csv), "--out", str(out),
                               "--work-dir", str(tmp_path / "w"), *TINY, "--compile"])
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"]["compiled"] and manifest["test"]["accuracy"] > 0.8


def test_frozen_layers_keep_their_pretrained_weights_while_the_rest_learns(tiny_model, tiny_csv, tmp_path):
    """--freeze-layers 1 on the 2-layer model: the embeddings and layer 0 leave training bit for bit as pretrained,
    layer 1 and the head move, and the model still learns the data's signal."""
    out = tmp_path / "frozen"
    code, _, err = run_edgeft(["finetune", "--model", str(tiny_model), "--data", str(tiny_csv), "--out", str(out),
                               "--work-dir", str(tmp_path / "w"), *TINY[:-2], "--epochs", "5", "--device", "cpu",
                               "--freeze-layers", "1"])
    assert code == 0, err
    base, tuned = weights(tiny_model), weights(out)
    frozen = [k for k in tuned if k.startswith(("bert.embeddings.", "bert.encoder.layer.0."))]
    trained = [k for k in tuned if k.startswith("bert.encoder.layer.1.")]
    assert frozen and trained
    assert all((tuned[k] == base[k]).all() for k in frozen)
    assert all(not (tuned[k] == base[k]).all() for k in trained if k.endswith(".weight"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["spec"]["freeze_layers"] == 1
    assert manifest["trainable_parameters"] < sum(t.numel() for t in tuned.values()) / 2
    assert manifest["test"]["accuracy"] > 0.6


def test_freezing_every_layer_is_refused_before_training(tiny_model, tiny_csv, tmp_path):
    code, _, err = run_edgeft(["finetune", "--model", str(tiny_model), "--data", str(tiny_csv), "--out",
                               str(tmp_path / "m"), "--work-dir", str(tmp_path / "w"), *TINY, "--freeze-layers", "2"])
    assert code == 2 and "freeze_layers=2" in err and "2 layers" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_the_training_loop_ends_where_trainer_ends_on_the_same_batches(tiny_model, tiny_csv, tmp_path, monkeypatch):
    """edgeft's loop and transformers.Trainer, from the same weights, on the same batches in the same order, with the
    same settings (warm-up, weight decay and its exempt parameters, clipping, linear decay, fused AdamW), end with the
    same model. With torch 2.13 and transformers 4.57 it is bit-identical, here and on real tweets
    (benchmarks/loop_vs_trainer.py). The bound leaves room for float rounding only: Trainer without the weight decay
    ends 4e-4 away."""
    import numpy as np
    import torch
    import transformers

    import edgeft.stages.training as training
    from edgeft.data.text import Split, load_dataset, split_dataset
    from edgeft.stages.finetune import FinetuneSpec, finetune
    from edgeft.stages.torch_model import load_classifier, set_training_options

    ds = load_dataset(str(tiny_csv))
    full = split_dataset(ds, seed=0)
    split = Split(full.train[:256], full.dev, full.test)  # 32 batches of 8: no short batch; 4 warm-up steps
    order = np.random.default_rng(7).permutation(256)
    monkeypatch.setattr(training, "length_grouped_batches", lambda lengths, size, rng: np.array_split(order, 32))
    settings = {"epochs": 1, "batch_size": 8, "learning_rate": 2e-3, "warmup_ratio": 0.125, "weight_decay": 0.1,
                "min_steps": 0, "patience_steps": 0, "freeze_embeddings": False, "dropout": 0.0,
                "max_train_samples": None, "seed": 0, "device": "cpu"}
    ours = load_classifier(finetune(tiny_model, ds, split, FinetuneSpec(**settings), tmp_path / "w").path)

    torch.manual_seed(0)  # the head's initial weights, drawn as the fine-tune stage draws them
    theirs = load_classifier(tiny_model, ds.label_names)
    set_training_options(theirs, 0.0, freeze_embeddings=False)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model)
    texts = [ds.texts[split.train[i]] for i in order]
    encoded = tokenizer(texts, truncation=True, max_length=128)
    rows = [{**{k: encoded[k][n] for k in encoded}, "labels": ds.label_names.index(ds.labels[split.train[i]])}
            for n, i in enumerate(order)]
    arguments = transformers.TrainingArguments(
        output_dir=str(tmp_path / "trainer"), report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True,
        disable_tqdm=True, num_train_epochs=1, per_device_train_batch_size=8, learning_rate=2e-3, warmup_ratio=0.125,
        weight_decay=0.1, seed=0)
    trainer = transformers.Trainer(model=theirs, args=arguments, train_dataset=rows,
                                   data_collator=transformers.DataCollatorWithPadding(tokenizer))
    trainer._get_train_sampler = lambda *a, **k: torch.utils.data.SequentialSampler(rows)
    trainer.train()

    a, b = ours.state_dict(), theirs.state_dict()
    base = load_classifier(tiny_model, ds.label_names).state_dict()
    moved = max(float((a[k] - base[k]).abs().max()) for k in a if not k.startswith("classifier"))
    assert moved > 1e-2  # ours trained (so theirs, equal to it, did too): not two untouched models compared
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6
