"""Latency, memory and accuracy of a loaded bundle, measured the same way on a build host and on a device."""

from __future__ import annotations

import platform
import resource
import sys
import time
from typing import Any

import numpy as np

from edgeft.errors import BadInput
from edgeft.metrics import classification_metrics
from edgeft.runtime.bundle import Bundle
from edgeft.runtime.scoring import Examples


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    arr = np.asarray(samples_ms)
    return {"p50": float(np.percentile(arr, 50)), "p90": float(np.percentile(arr, 90)),
            "p99": float(np.percentile(arr, 99)), "mean": float(arr.mean()), "std": float(arr.std()),
            "n": int(arr.size)}


def measure_latency(bundle: Bundle, texts: list[str], warmup: int, runs: int, rounds: int = 1) -> dict[str, Any]:
    """Batch-1 latency of the model call alone, texts pre-tokenized, cycling through `texts` in order; `rounds`
    repeats of `runs` calls, so a gate can see how much the figure moves on this machine (its spread).

    Tokenization is timed apart: it is the app's cost too, but it is not the model's, and peers are compared on
    the model call.
    """
    feeds, tokenize_ms = [], []
    for text in texts:
        t0 = time.perf_counter()
        feeds.append(bundle.encode([text]))
        tokenize_ms.append((time.perf_counter() - t0) * 1e3)
    # At least one pass over every text: runtimes with dynamic shapes (OpenVINO) compile kernels per new length,
    # and that one-off cost is start-up, not steady-state latency.
    for i in range(max(warmup, len(feeds))):
        bundle.session.run(feeds[i % len(feeds)])
    samples, per_round = [], []
    for _ in range(rounds):
        this_round = []
        for i in range(runs):
            feed = feeds[i % len(feeds)]
            t0 = time.perf_counter()
            bundle.session.run(feed)
            this_round.append((time.perf_counter() - t0) * 1e3)
        samples += this_round
        per_round.append(percentiles(this_round))
    return {"model_ms": percentiles(samples), "tokenize_ms": percentiles(tokenize_ms), "samples_ms": samples,
            "rounds": [{k: r[k] for k in ("p50", "p90", "p99")} for r in per_round]}


def batched_latency(bundle: Bundle, texts: list[str], batch_size: int, rounds: int) -> dict[str, Any]:
    """Throughput case (a server or a bulk job): whole batches of `batch_size` texts padded to their longest,
    `rounds` passes over the texts after one warm-up pass. Per-call percentiles and the cost per text."""
    batches = [bundle.encode(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
    batches = [b for b in batches if len(b["input_ids"]) == batch_size] or batches  # full batches only, if any
    for feed in batches:
        bundle.session.run(feed)
    calls = []
    for _ in range(rounds):
        for feed in batches:
            t0 = time.perf_counter()
            bundle.session.run(feed)
            calls.append((time.perf_counter() - t0) * 1e3)
    per_call = percentiles(calls)
    size = len(batches[0]["input_ids"])
    return {"batch_size": size, "calls": len(calls), "p50_ms": per_call["p50"], "p90_ms": per_call["p90"],
            "ms_per_text": per_call["mean"] / size, "texts_per_s": 1e3 * size / per_call["mean"]}


def paired_latency(bundle: Bundle, reference: Bundle, texts: list[str], runs: int, rounds: int) -> dict[str, Any]:
    """The bundle and a reference bundle timed in turn on the same texts (which goes first alternates), `rounds`
    rounds of `runs` calls each. On a shared machine absolute times drift between processes (measured here: up to
    14 % between two benches of one unchanged bundle); in a pair both sides meet the same drift, so the ratio holds."""
    feeds = [(bundle.encode([t]), reference.encode([t])) for t in texts]
    for ours, theirs in feeds:  # warm-up: every shape once on both sides
        bundle.session.run(ours)
        reference.session.run(theirs)
    ratios, ours_all, theirs_all = [], [], []
    for _ in range(rounds):
        ours_ms, theirs_ms = [], []
        for i in range(runs):
            pair = feeds[i % len(feeds)]
            for side in ((0, 1) if i % 2 == 0 else (1, 0)):
                session = bundle.session if side == 0 else reference.session
                t0 = time.perf_counter()
                session.run(pair[side])
                (ours_ms if side == 0 else theirs_ms).append((time.perf_counter() - t0) * 1e3)
        ratios.append(float(np.median(ours_ms) / np.median(theirs_ms)))
        ours_all += ours_ms
        theirs_all += theirs_ms
    return {"p50_ms": float(np.median(ours_all)), "reference_p50_ms": float(np.median(theirs_all)),
            "ratio": float(np.median(ours_all) / np.median(theirs_all)), "ratio_rounds": ratios,
            "ratio_spread": relative_spread(ratios), "runs": runs, "rounds": rounds}


def relative_spread(values: list[float]) -> float:
    """Median absolute deviation over the median: how much a figure moves from round to round (0.02 = 2 %)."""
    arr = np.asarray(values, dtype=float)
    if arr.size < 2:
        return 0.0
    median = float(np.median(arr))
    return float(np.median(np.abs(arr - median)) / median) if median > 0 else 0.0


# Consecutive calls a model gets in a race (the build's, `edgeft race`'s) before the next model's turn: see below.
RACE_BLOCK = 25


def interleaved_latency(sessions: dict[str, Any], feeds: list[dict[str, np.ndarray]], rounds: int,
                        warmup: int, block: int = 1) -> dict[str, list[float]]:
    """Batch-1 latency (ms) of several models on the same inputs, timed in turn on each block of `block` inputs in a
    fresh seeded random order each time: drift of a shared machine then hits every model alike, and ratios hold.
    Random, not rotated: a rotation keeps the cyclic order, so one model always ran right after the same neighbour
    and paid for its evictions (measured: a model following the 60 MB fp32 candidate read 4 % slower than its twin
    elsewhere).

    block=1 switches model on every call, and every switch costs the next call its caches: about 0.4 ms on the
    2-core AVX-512 VNNI host, the same for a 1.4 ms and a 4 ms model, so ratios between models of different speed
    shrink (3.0x alone read 2.4x). Blocks of 25 calls read what each model costs alone (an app calls one model) and
    still spread drift over all of them: benchmarks that state ratios use them, and so do the races (RACE_BLOCK).
    The penalty is not equal for every model, nor from one process to the next: at block=1 one build's race read its
    whole-table s8 candidate 12 % slower than the trimmed twin (0.81 against 0.72 ms), which kept it out of the
    run-off; rebuilds of the same candidates read it 1.5 % faster to 5 % slower at block=1, and blocks of 25 read
    the two within 2.5 % (docs/experiments/speed.md, section 21)."""
    names = list(sessions)
    for feed in feeds[:warmup]:
        for name in names:
            sessions[name].run(feed)
    samples: dict[str, list[float]] = {name: [] for name in names}
    order = np.random.default_rng(0)
    for _ in range(rounds):
        for start in range(0, len(feeds), block):
            for k in order.permutation(len(names)):
                name = names[k]
                for feed in feeds[start:start + block]:
                    t0 = time.perf_counter()
                    sessions[name].run(feed)
                    samples[name].append((time.perf_counter() - t0) * 1e3)
    return samples


def peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux and bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def host_description() -> dict[str, Any]:
    flags: set[str] = set()
    model = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
                elif line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return {"machine": platform.machine(), "cpu": model, "isa": isa, "python": platform.python_version(),
            "os": platform.platform(terse=True)}


def isa_present(isa: str, host: dict[str, Any]) -> bool:
    """Whether a host (`host_description()`) has a target's ISA (a profile's `isa`, which bundles record): latency
    elsewhere is a proxy, and the build, its race and `edgeft bench` say so."""
    if isa == "arm64":
        return host["machine"] in ("aarch64", "arm64")
    needed = {"avx2": "avx2", "avx512": "avx512f", "avx512_vnni": "avx512_vnni"}[isa]
    return host["machine"] in ("x86_64", "AMD64") and needed in host["isa"]


def accuracy_of(bundle: Bundle, texts: list[str], labels: list[str]) -> dict[str, Any]:
    """Classification metrics of labelled texts (the task-neutral form is `Bundle.score`)."""
    from edgeft.runtime.scoring import Examples

    return bundle.score(Examples("classification", list(texts), list(labels)))


def bench(bundle: Bundle, texts: list[str], labels: list[str] | Examples | None, warmup: int, runs: int,
          rounds: int = 1, batch_size: int | None = None) -> dict[str, Any]:
    """Everything `edgeft bench` reports, as one JSON-able dict. `batch_size` adds the batched (throughput) case.

    `labels`: the texts' labels, or labelled `Examples` of the bundle's task (NER: words and tags), or None."""
    latency = measure_latency(bundle, texts, warmup, runs, rounds)
    result: dict[str, Any] = {
        "bundle": str(bundle.path), "target": bundle.target, "runtime": bundle.runtime.value,
        "threads": bundle.threads, "batch_size": 1, "texts": len(texts),
        "latency_ms": {k: latency["model_ms"][k] for k in ("p50", "p90", "p99", "mean", "std")},
        "tokenize_ms": {k: latency["tokenize_ms"][k] for k in ("p50", "p90")},
        "runs": runs, "warmup": warmup, "host": host_description(),
        # Per-round percentiles and their spread: what a gate needs to tell a regression from this machine's noise.
        "rounds": latency["rounds"], "p50_spread": relative_spread([r["p50"] for r in latency["rounds"]]),
        "latency_samples_ms": [round(x, 4) for x in latency["samples_ms"]],  # for histograms (edgeft report)
    }
    if batch_size:
        result["batched"] = batched_latency(bundle, texts, batch_size, rounds)
    if isinstance(labels, Examples):
        result["metrics"] = bundle.score(labels)
    elif labels is not None:
        result["metrics"] = accuracy_of(bundle, texts, labels)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result
