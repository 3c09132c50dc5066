"""`make bench-train`: Hugging Face `Trainer` with its defaults against edgeft's own training loop
(`edgeft.stages.training.train`, what `edgeft build` fine-tunes with), on the same model, data and device, in one run.

Part 1, throughput and MFU: a randomly initialised BERT-base classifier (3 labels) on seeded random token ids, every
sequence 128 tokens, so both sides do exactly the same work per sample. Sides: (a) `Trainer` with
`TrainingArguments` defaults at per-device batch 32 in fp32, (b) the same with `bf16=True` (GPU only), (c) edgeft's
loop as its fine-tune runs it: bf16 autocast, `torch.compile`, fused AdamW and the batch `fit_batch_size` picks on a
GPU; fp32, no compile, batch 32 on a CPU. Throughput is steady state: every side stamps the clock at the start of
each optimizer step (a callback for `Trainer`, the `batch_loss` hook for edgeft; after a CUDA synchronize on a GPU),
the first steps (CUDA start-up, compilation, allocator warm-up) are left out, and samples/s is the measured steps'
samples over the time between the first and the last measured stamp. Each interval holds one data fetch and one full
step (forward, backward, clipping, optimizer, scheduler) on both sides. MFU = samples/s x 3 x forward FLOPs per
sample / the GPU's dense bf16 peak (fp32 sides are quoted against the same bf16 peak).

Part 2, wall-clock to the same dev accuracy: the packaged all-MiniLM-L6-v2 fine-tuned on a seeded stratified subset
of the packaged tweets. `Trainer` runs its defaults (lr 5e-5, batch 8, 3 epochs, linear decay, fp32, the model's
dropout, evaluation every epoch); the best dev accuracy it reaches is the target, and its time is when that epoch's
evaluation ended. edgeft runs `finetune` with its default recipe into a fresh folder (no cache hit); its time to
target is the cumulative training + evaluation time of the first epoch that reaches the target.

On a machine without a CUDA GPU both parts run at a reduced size on the CPU, and the output says so. A benchmark,
not a test: it prints tables and writes bench-results/bench-train.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from rich.console import Console
from rich.table import Table
from transformers import TrainerCallback

console = Console(width=150)  # wide enough for the tables in CI logs, where no terminal width is known

SEQ_LEN = 128
SEED = 0
# Dense bf16 tensor-core peaks (NVIDIA datasheets, without sparsity); matched against torch's device name.
BF16_PEAKS = (("H200", 989e12), ("H100 80GB HBM3", 989e12), ("H100 SXM", 989e12))


# ---------------------------------------------------------------------------------------------------------------
# The machine


@dataclass(frozen=True)
class Sizes:
    """Everything that differs between a GPU run, a reduced CPU run and a --quick smoke run."""

    scale: str  # what the output says about the size
    bert: dict[str, int]  # BertConfig overrides for part 1 (empty: BERT-base)
    warmup_steps: int  # part 1: steps left out of the timing
    measured_steps: int  # part 1: steps timed
    train_texts: int  # part 2: stratified subset of the train split
    dev_texts: int | None  # part 2: a stratified subset of the dev split (None: all of it)
    edgeft_epochs: int  # part 2


def sizes_for(device: str, quick: bool) -> Sizes:
    if quick:
        return Sizes("--quick smoke run (tiny sizes, figures mean nothing)",
                     {"num_hidden_layers": 2, "hidden_size": 128, "num_attention_heads": 2, "intermediate_size": 512},
                     2, 4, 200, 100, 2)
    if device == "cuda":
        # 20 warm-up steps cover compilation and its one recompile; 200 steps at batch 256 are ~10 s of bf16 work.
        return Sizes("full size on GPU", {}, 20, 200, 8000, None, 6)
    return Sizes("reduced size on CPU (no GPU)",
                 {"num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 1024},
                 3, 15, 2000, 600, 4)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {"device": device, "cpu": cpu_model(), "torch_threads": torch.get_num_threads(),
                            "torch": torch.__version__, "transformers": transformers.__version__,
                            "python": platform.python_version()}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    info["name"] = info.get("gpu", info["cpu"])
    return info


def bf16_peak(info: dict[str, Any]) -> float | None:
    gpu = info.get("gpu", "")
    return next((peak for key, peak in BF16_PEAKS if key in gpu), None)


def sync_clock(device: str) -> float:
    """The time once every queued kernel has finished: without the synchronize a GPU step would be stamped when it
    was queued, not when it ran."""
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


# TF32 switches as torch starts: edgeft's loop turns TF32 on process-wide, and Trainer's fp32 default must not
# inherit that from an edgeft run earlier in this process.
TF32_DEFAULTS = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)


def restore_tf32_defaults() -> dict[str, bool]:
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = TF32_DEFAULTS
    return {"matmul_allow_tf32": TF32_DEFAULTS[0], "cudnn_allow_tf32": TF32_DEFAULTS[1]}


def free_memory(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def trainer_settings(args: transformers.TrainingArguments) -> dict[str, Any]:
    """What Trainer actually ran with (its defaults resolved), for the JSON."""
    return {"optim": str(getattr(args.optim, "value", args.optim)), "learning_rate": args.learning_rate,
            "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
            "warmup_ratio": args.warmup_ratio, "warmup_steps": args.warmup_steps, "weight_decay": args.weight_decay,
            "max_grad_norm": args.max_grad_norm, "per_device_train_batch_size": args.per_device_train_batch_size,
            "per_device_eval_batch_size": args.per_device_eval_batch_size, "num_train_epochs": args.num_train_epochs,
            "fp16": args.fp16, "bf16": args.bf16, "tf32": args.tf32, "torch_compile": args.torch_compile,
            "dataloader_num_workers": args.dataloader_num_workers, "seed": args.seed,
            "gradient_accumulation_steps": args.gradient_accumulation_steps}


# ---------------------------------------------------------------------------------------------------------------
# Part 1: throughput and MFU


def forward_flops_per_sample(config: transformers.BertConfig, seq: int) -> float:
    """Encoder matmuls (Q, K, V, output projections: 4 h^2; FFN: 2 h f; 2 FLOPs per multiply-add) plus attention
    scores and values (2 x 2 seq h per token); embeddings, layer norms, softmax and the head left out."""
    h, f, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    return seq * layers * (2 * (4 * h * h + 2 * h * f) + 4 * seq * h)


class SyntheticRows(torch.utils.data.Dataset):
    """The first `n` rows of the shared random batch tensors, one dict per sample, as Trainer's collator wants."""

    def __init__(self, data: dict[str, torch.Tensor], n: int) -> None:
        self.data, self.n = data, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.data.items()}


class StepClock(TrainerCallback):
    """Stamps the clock as every optimizer step begins (after its batch was fetched)."""

    def __init__(self, device: str) -> None:
        self.device, self.stamps = device, []

    def on_step_begin(self, args, state, control, **kwargs) -> None:
        self.stamps.append(sync_clock(self.device))


def steady_rate(stamps: list[float], warmup: int, batch: int) -> tuple[float, int, float]:
    """samples/s over the steps after `warmup`: from the stamp of step `warmup` to the last stamp."""
    steps = len(stamps) - 1 - warmup
    if steps < 1:
        raise SystemExit(f"only {len(stamps)} steps were stamped; need more than {warmup + 1}")
    seconds = stamps[-1] - stamps[warmup]
    return steps * batch / seconds, steps, seconds


def fresh_bert(config: transformers.BertConfig) -> transformers.BertForSequenceClassification:
    transformers.set_seed(SEED)  # the same initial weights for every side
    return transformers.BertForSequenceClassification(config)


def trainer_throughput(config: transformers.BertConfig, data: dict[str, torch.Tensor], device: str, sizes: Sizes,
                       bf16: bool, out_dir: Path) -> dict[str, Any]:
    batch = 32
    steps = sizes.warmup_steps + sizes.measured_steps
    tf32 = restore_tf32_defaults()
    args = transformers.TrainingArguments(
        output_dir=str(out_dir), per_device_train_batch_size=batch, max_steps=steps, bf16=bf16, report_to=[],
        save_strategy="no", seed=SEED, use_cpu=device == "cpu",
        disable_tqdm=True)  # console output only: the bar would interleave with the tables
    clock = StepClock(device)
    # One epoch of exactly `steps` batches: no epoch boundary (and no dataloader restart) inside the timing.
    trainer = transformers.Trainer(model=fresh_bert(config), args=args, train_dataset=SyntheticRows(data, batch * steps),
                                   callbacks=[clock])
    output = trainer.train()
    rate, measured, seconds = steady_rate(clock.stamps, sizes.warmup_steps, batch)
    result = {"samples_per_s": rate, "measured_steps": measured, "measured_seconds": seconds,
              "warmup_steps": sizes.warmup_steps, "batch_size": batch, "precision": "bf16" if bf16 else "fp32",
              "compiled": False, "trainer_reported_samples_per_s": output.metrics.get("train_samples_per_second"),
              "settings": {**trainer_settings(args), **tf32}}
    del trainer
    free_memory(device)
    return result


def edgeft_throughput(config: transformers.BertConfig, data: dict[str, torch.Tensor], device: str,
                      sizes: Sizes) -> dict[str, Any]:
    from edgeft.stages.finetune import FinetuneSpec, fit_batch_size
    from edgeft.stages.training import Schedule, train

    defaults = FinetuneSpec()  # edgeft's own recipe: learning rate, warm-up, weight decay
    model = fresh_bert(config).to(device)
    if device == "cuda":
        # What finetune does with batch_size=None on a GPU: the largest batch (<= 256) that fits, for the default
        # training budget (max_train_samples examples), with the learning rate scaled by sqrt(batch / 32).
        batch = fit_batch_size(model, SEQ_LEN, device, defaults.max_train_samples or 8000)
        precision, compiled = "auto", True
    else:
        batch, precision, compiled = 32, "fp32", False
    steps = sizes.warmup_steps + sizes.measured_steps
    n = batch * steps
    ids, mask, labels = data["input_ids"][:n], data["attention_mask"][:n], data["labels"][:n]
    stamps: list[float] = []

    def batch_loss(forward, indices: np.ndarray):
        stamps.append(sync_clock(device))  # the step begins here: the batch is fetched inside the interval, as in Trainer
        rows = torch.from_numpy(indices)
        return forward(input_ids=ids[rows].to(device), attention_mask=mask[rows].to(device),
                       labels=labels[rows].to(device)).loss

    def dev_score() -> float:
        return 0.0  # no evaluation: one epoch, and nothing after it is timed

    schedule = Schedule(epochs=1, learning_rate=defaults.learning_rate * math.sqrt(batch / 32), batch_size=batch,
                        warmup_ratio=defaults.warmup_ratio, weight_decay=defaults.weight_decay, patience=1, seed=SEED,
                        precision=precision, compile=compiled, metric="no_dev_score")
    metrics = train(model, list(model.named_parameters()), np.full(n, SEQ_LEN), schedule, device, batch_loss,
                    dev_score, "edgeft throughput")
    rate, measured, seconds = steady_rate(stamps, sizes.warmup_steps, batch)
    result = {"samples_per_s": rate, "measured_steps": measured, "measured_seconds": seconds,
              "warmup_steps": sizes.warmup_steps, "batch_size": batch, "precision": metrics["precision"],
              "compiled": compiled, "edgeft_reported_samples_per_s": metrics["train_samples_per_s"],
              "settings": {**asdict(schedule), "optimizer": "torch.optim.AdamW (fused)",
                           "max_grad_norm": 1.0, "tf32": device == "cuda"}}
    del model
    free_memory(device)
    return result


def throughput_part(info: dict[str, Any], sizes: Sizes, work: Path) -> dict[str, Any]:
    device = info["device"]
    config = transformers.BertConfig(num_labels=3, **sizes.bert)
    console.rule(f"[bold]Part 1: training throughput, {sizes.scale}")
    flops = 3 * forward_flops_per_sample(config, SEQ_LEN)  # forward + backward (twice the forward)
    # One set of random rows, big enough for the largest side; every side reads its first rows.
    rows = 256 * (sizes.warmup_steps + sizes.measured_steps)
    rng = np.random.default_rng(SEED)
    data = {"input_ids": torch.from_numpy(rng.integers(0, config.vocab_size, (rows, SEQ_LEN), dtype=np.int64)),
            "attention_mask": torch.ones((rows, SEQ_LEN), dtype=torch.long),
            "labels": torch.from_numpy(rng.integers(0, config.num_labels, rows, dtype=np.int64))}

    sides: dict[str, dict[str, Any]] = {}
    sides["Trainer fp32 (defaults)"] = trainer_throughput(config, data, device, sizes, False, work / "trainer-fp32")
    if device == "cuda":
        sides["Trainer bf16=True"] = trainer_throughput(config, data, device, sizes, True, work / "trainer-bf16")
    else:
        console.print("Trainer bf16=True: skipped on CPU (the comparison is about GPU mixed precision)")
    sides["edgeft training loop"] = edgeft_throughput(config, data, device, sizes)

    peak = bf16_peak(info)
    base = sides["Trainer fp32 (defaults)"]["samples_per_s"]
    for side in sides.values():
        achieved = side["samples_per_s"] * flops
        side["achieved_flops_per_s"] = achieved
        side["mfu"] = achieved / peak if peak else None
        side["speedup_vs_trainer_fp32"] = side["samples_per_s"] / base

    model_desc = (f"{config.num_hidden_layers} layers, hidden {config.hidden_size}, FFN {config.intermediate_size}, "
                  f"{config.num_attention_heads} heads, seq {SEQ_LEN}")
    if device == "cuda":
        unit, scale = "TFLOP/s", 1e12
        mfu_note = (f"MFU against {peak / 1e12:.0f} TFLOP/s dense bf16 (fp32 sides too)" if peak
                    else f"peak unknown for {info['gpu']}: MFU not computed")
    else:
        unit, scale = "GFLOP/s", 1e9
        mfu_note = "MFU n/a (no peak known for this CPU)"
    table = Table(title=f"Part 1 — {sizes.scale}: BERT classifier ({model_desc}), random ids, on {info['name']}; "
                        f"steady state after {sizes.warmup_steps} warm-up steps")
    for col in ("side", "precision", "batch", "compile", "timed steps", "samples/s", f"achieved {unit}", "MFU",
                "vs Trainer fp32"):
        table.add_column(col, justify="left" if col == "side" else "right")
    for name, side in sides.items():
        mfu = f"{side['mfu']:.1%}" if side["mfu"] is not None else ("n/a" if device == "cpu" else "peak unknown")
        table.add_row(name, side["precision"], str(side["batch_size"]), "yes" if side["compiled"] else "no",
                      f"{side['measured_steps']} ({side['measured_seconds']:.1f} s)", f"{side['samples_per_s']:.1f}",
                      f"{side['achieved_flops_per_s'] / scale:.1f}", mfu, f"{side['speedup_vs_trainer_fp32']:.2f}x")
    console.print(table)
    console.print(f"Forward FLOPs per sample {flops / 3 / 1e9:.2f} G (x3 for a training step). {mfu_note}.")
    for name, side in sides.items():
        st = side["settings"]
        if "optim" in st:
            console.print(f"  {name}: {st['optim']}, lr {st['learning_rate']:g} {st['lr_scheduler_type']}, "
                          f"warm-up {st['warmup_ratio']:g}, weight decay {st['weight_decay']:g}, clip "
                          f"{st['max_grad_norm']:g}, TF32 matmul {'on' if st['matmul_allow_tf32'] else 'off'}, "
                          f"{st['dataloader_num_workers']} dataloader workers")
        else:
            console.print(f"  {name}: {st['optimizer']}, lr {st['learning_rate']:g} linear, warm-up "
                          f"{st['warmup_ratio']:g}, weight decay {st['weight_decay']:g}, clip {st['max_grad_norm']:g}, "
                          f"TF32 matmul {'on' if st['tf32'] else 'off'}, length-grouped batches")
    return {"scale": sizes.scale, "model": config.to_diff_dict() | {"seq_len": SEQ_LEN},
            "train_flops_per_sample": flops, "bf16_peak_flops": peak, "mfu_note": mfu_note, "sides": sides,
            "timing": "per side: clock stamped (after a CUDA synchronize) as each optimizer step begins; samples/s = "
                      "timed steps x batch / (last stamp - stamp of the first step after the warm-up)"}


# ---------------------------------------------------------------------------------------------------------------
# Part 2: wall-clock to the same dev accuracy


class EvalClock(TrainerCallback):
    """Seconds since training began, and dev accuracy, as each epoch's evaluation ends."""

    def __init__(self) -> None:
        self.started, self.history = 0.0, []

    def on_train_begin(self, args, state, control, **kwargs) -> None:
        self.started = time.perf_counter()

    def on_evaluate(self, args, state, control, metrics=None, **kwargs) -> None:
        self.history.append({"epoch": round(state.epoch or 0), "dev_accuracy": metrics["eval_accuracy"],
                             "seconds": round(time.perf_counter() - self.started, 1)})


class TokenizedRows(torch.utils.data.Dataset):
    def __init__(self, encoded: dict[str, list], labels: list[int]) -> None:
        self.encoded, self.labels = encoded, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**{k: v[i] for k, v in self.encoded.items()}, "labels": self.labels[i]}


def trainer_accuracy(model_dir: Path, texts: dict[str, list[str]], gold: dict[str, list[int]], labels: list[str],
                     device: str, out_dir: Path, quick: bool) -> dict[str, Any]:
    started = time.perf_counter()  # total wall-clock: tokenizer and model loading included, as in edgeft's
    tf32 = restore_tf32_defaults()
    transformers.set_seed(SEED)  # before the model: its new classification head is drawn from this seed
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}, use_safetensors=True)
    rows = {part: TokenizedRows(dict(tokenizer(texts[part], truncation=True, max_length=SEQ_LEN)), gold[part])
            for part in ("train", "dev")}

    def compute_metrics(prediction) -> dict[str, float]:
        return {"accuracy": float((np.asarray(prediction.predictions).argmax(-1) == prediction.label_ids).mean())}

    args = transformers.TrainingArguments(
        output_dir=str(out_dir), eval_strategy="epoch", save_strategy="no", report_to=[], seed=SEED,
        use_cpu=device == "cpu", disable_tqdm=True,  # console output only
        num_train_epochs=1 if quick else 3)  # 3 is the default; --quick only checks that it runs
    clock = EvalClock()
    trainer = transformers.Trainer(model=model, args=args, train_dataset=rows["train"], eval_dataset=rows["dev"],
                                   data_collator=transformers.DataCollatorWithPadding(tokenizer),
                                   compute_metrics=compute_metrics, callbacks=[clock])
    trainer.train()
    total = time.perf_counter() - started
    dropout = model.config.hidden_dropout_prob
    del trainer, model
    free_memory(device)
    best = max(clock.history, key=lambda row: row["dev_accuracy"])  # max keeps the earliest of tied epochs
    return {"history": clock.history, "best_dev_accuracy": best["dev_accuracy"], "best_epoch": best["epoch"],
            "seconds_to_best": best["seconds"], "total_seconds": total,
            "settings": {**trainer_settings(args), **tf32, "max_length": SEQ_LEN, "padding": "dynamic (collator)",
                         "dropout": dropout}}


def edgeft_accuracy(model_dir: Path, data, split, sizes: Sizes, device: str) -> dict[str, Any]:
    from edgeft.stages.finetune import FinetuneSpec, finetune

    spec = FinetuneSpec(epochs=sizes.edgeft_epochs, patience=sizes.edgeft_epochs, max_train_samples=sizes.train_texts,
                        device=device)  # patience = epochs: every epoch runs, so the whole curve is seen
    with tempfile.TemporaryDirectory(prefix="bench-train-edgeft-") as work:  # fresh: never a cache hit
        started = time.perf_counter()
        artifact = finetune(model_dir, data, split, spec, Path(work))
        total = time.perf_counter() - started
    manifest = artifact.manifest
    if manifest.get("cache_hit"):
        raise SystemExit("edgeft's fine-tune was a cache hit in a fresh folder; its timings would mean nothing")
    metrics = manifest["metrics"]
    return {"history": metrics["history"], "best_dev_accuracy": metrics["dev_accuracy"], "total_seconds": total,
            "train_samples_per_s": metrics["train_samples_per_s"], "precision": metrics["precision"],
            "settings": {**spec.model_dump(), "batch_size_used": metrics["batch_size_per_process"],
                         "learning_rate_used": manifest["learning_rate"], "compiled": metrics["compiled"]}}


def accuracy_part(info: dict[str, Any], sizes: Sizes, work: Path) -> dict[str, Any]:
    from edgeft.data.assets import packaged_model
    from edgeft.data.text import Split, load_dataset, split_dataset, stratified_subset

    device = info["device"]
    console.rule(f"[bold]Part 2: wall-clock to the same dev accuracy, {sizes.scale}")
    model_dir = packaged_model("all-MiniLM-L6-v2").path
    data = load_dataset("packaged:tweets")
    split = split_dataset(data, seed=SEED)
    train_idx = stratified_subset(split.train, data.labels, sizes.train_texts, SEED)
    # A smaller dev set on a CPU saves evaluation time; it is a stratified draw, not the first N dev indices: the
    # packaged CSV is sorted by label, so the first 600 dev indices are all 'negative' (accuracy 1.0 for a model
    # that says 'negative' to everything).
    dev_idx = stratified_subset(split.dev, data.labels, sizes.dev_texts, SEED)
    dev_note = (f"the whole dev split ({len(dev_idx)} texts)" if len(dev_idx) == len(split.dev)
                else f"{len(dev_idx)} of {len(split.dev)} dev texts (stratified, seed 0; to save time)")
    labels = data.label_names
    index = {label: i for i, label in enumerate(labels)}
    texts = {"train": [data.texts[i] for i in train_idx], "dev": [data.texts[i] for i in dev_idx]}
    gold = {"train": [index[data.labels[i]] for i in train_idx], "dev": [index[data.labels[i]] for i in dev_idx]}

    trainer = trainer_accuracy(model_dir, texts, gold, labels, device, work / "trainer-accuracy",
                               sizes.scale.startswith("--quick"))
    ours = edgeft_accuracy(model_dir, data, Split(train=train_idx, dev=dev_idx, test=split.test), sizes, device)
    target = trainer["best_dev_accuracy"]
    reached = next((row for row in ours["history"] if row["dev_accuracy"] >= target - 1e-12), None)
    ours["seconds_to_target"] = reached["seconds"] if reached else None
    ours["epoch_at_target"] = reached["epoch"] if reached else None
    speedup = trainer["seconds_to_best"] / reached["seconds"] if reached else None

    curve = Table(title=f"Part 2 — {sizes.scale}: all-MiniLM-L6-v2 on {len(train_idx)} tweets (stratified, seed 0), "
                        f"dev = {dev_note}, on {info['name']}")
    for col in ("side", "epoch", "dev accuracy", "seconds since training start"):
        curve.add_column(col, justify="left" if col == "side" else "right")
    for name, side in (("Trainer defaults", trainer), ("edgeft fine-tune", ours)):
        for row in side["history"]:
            curve.add_row(name, str(row["epoch"]), f"{row['dev_accuracy']:.4f}", f"{row['seconds']:.1f}")
    console.print(curve)

    summary = Table(title=f"Part 2 — time to Trainer's best dev accuracy ({target:.4f})")
    for col in ("side", "settings", "best dev acc", "time to target", "total wall-clock (incl. loading)"):
        summary.add_column(col, justify="left" if col in ("side", "settings") else "right")
    ts, es = trainer["settings"], ours["settings"]
    summary.add_row("Trainer defaults",
                    f"lr {ts['learning_rate']:g}, batch {ts['per_device_train_batch_size']}, "
                    f"{ts['num_train_epochs']:g} epochs, {ts['lr_scheduler_type']}, fp32, {ts['optim']}, "
                    f"dropout {ts['dropout']:g} (model config)",
                    f"{target:.4f}", f"{trainer['seconds_to_best']:.1f} s (epoch {trainer['best_epoch']})",
                    f"{trainer['total_seconds']:.1f} s")
    summary.add_row("edgeft fine-tune",
                    f"lr {es['learning_rate_used']:g}, batch {es['batch_size_used']}, {es['epochs']} epochs, "
                    f"{ours['precision']}, warm-up {es['warmup_ratio']:g}, dropout {es['dropout']:g}, "
                    f"frozen embeddings {es['freeze_embeddings']}",
                    f"{ours['best_dev_accuracy']:.4f}",
                    f"{reached['seconds']:.1f} s (epoch {reached['epoch']})" if reached else "not reached",
                    f"{ours['total_seconds']:.1f} s")
    console.print(summary)
    if speedup is not None:
        console.print(f"Speed-up to the same dev accuracy (Trainer time to its best / edgeft time to target): "
                      f"[bold]{speedup:.2f}x[/]")
    else:
        console.print(f"edgeft never reached Trainer's best dev accuracy {target:.4f} in {sizes.edgeft_epochs} epochs")
    return {"scale": sizes.scale, "train_texts": len(train_idx), "dev_texts": len(dev_idx), "dev_note": dev_note,
            "labels": labels, "model": "all-MiniLM-L6-v2 (packaged)", "target_dev_accuracy": target,
            "trainer": trainer, "edgeft": ours, "speedup_time_to_target": speedup,
            "timing": "seconds: since training began (after model loading and tokenization), taken as each epoch's "
                      "dev evaluation ends; total: the whole side, loading, tokenization and (edgeft) saving included"}


# ---------------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("throughput", "accuracy", "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run whose figures mean nothing")
    parser.add_argument("--json", type=Path, default=None,
                        help="default bench-results/bench-train.json (bench-train-quick.json with --quick)")
    args = parser.parse_args()
    path = args.json or Path("bench-results") / ("bench-train-quick.json" if args.quick else "bench-train.json")

    device = "cuda" if torch.cuda.is_available() else "cpu"
    info = device_info(device)
    sizes = sizes_for(device, args.quick)
    console.print(f"[bold]{'GPU' if device == 'cuda' else 'CPU'} run:[/] {sizes.scale} · {info['name']} · "
                  f"torch {info['torch']} · transformers {info['transformers']} · {info['torch_threads']} threads")
    results: dict[str, Any] = {"host": info, "sizes": asdict(sizes)}
    parts: dict[str, Callable[[dict[str, Any], Sizes, Path], dict[str, Any]]] = {
        "throughput": throughput_part, "accuracy": accuracy_part}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as work:
        for name, run in parts.items():
            if args.part in (name, "all"):
                results[name] = run(info, sizes, Path(work))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    console.print(f"results: {path}")


if __name__ == "__main__":
    main()
