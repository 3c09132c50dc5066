"""Choose which quantization candidate ships, by measuring every one on the target's runtime.

The rules, in order:
1. Accuracy: each candidate runs on the dev split in the shipped format and runtime. Its drop against the fp32
   reference (the exported model, unquantized), plus the drop's standard error (paired bootstrap over the dev
   examples), must be within the profile's budget (`max_accuracy_drop`, or `max_f1_drop` for NER): on a small dev
   split a drop just under the budget says little, and the test split then showed drops well above it. The test split is
   never used here: it stays the build's final, unbiased verdict.
2. Latency, when this host has the target's hardware: every candidate that passed is timed batch 1, interleaved with
   the others on the same dev texts in blocks of consecutive calls (what a model costs when an app calls it, not
   what it costs right after another model evicted its caches: runtime.bench.RACE_BLOCK). The fastest ships, and
   never one slower than the fastest fp32 candidate (an "optimised" model slower than fp32 is the trap this stage
   exists for). Candidates within `TIE` of the fastest count as tied, and the tie goes to the profile's preference
   order, so noise does not flip the choice. The candidates within RUNOFF of the fastest first race again among
   themselves on more texts (a run-off), and these figures decide. Candidates that load into the same graph (a
   4-bit word-embedding table is decoded into the int8 table when the session loads) are one model to the runtime:
   their samples are pooled, so they tie and the preference order (the smaller file first) decides, not the 3-5 %
   noise between two sessions.
3. Without the target's hardware (arm64 or mobile on an x86 build host), host latency says nothing about the
   device: the first candidate in the profile's preference order that passed step 1 ships, and the report says so.
4. With a bench device (`edgeft build --bench-device`, stages/device_race.py) the device decides instead of this
   host: over SSH, step 2 runs there (`edgeft race`); on the emulated aarch64 runtime nothing is timed, and step 3
   ships the first candidate whose labels on the emulator agree with this host's.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeft.artifact import Artifact
from edgeft.backends import backend
from edgeft.errors import BudgetFailed
from edgeft.profile import Candidate, Runtime, Scheme, TargetProfile
from edgeft.progress import console
from edgeft.runtime.bench import RACE_BLOCK, host_description, interleaved_latency, percentiles
from edgeft.runtime.scoring import PRIMARY, PRIMARY_NAME, Examples, example_stats, headline_of_sums, metrics_of, predict
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
from edgeft.runtime.sessions import Session, open_session
from edgeft.stages.device_race import (AGREEMENT, EMULATED_TEXTS, BenchDevice, labels_here_and_on_emulator,
                                       race_on_device, write_candidate_bundle)
from edgeft.stages.package import model_files
from edgeft.stages.quantize import table_decode

# Latency race: this many dev texts, each timed this many times per candidate (after one warm-up pass over all).
LATENCY_TEXTS = 100
LATENCY_ROUNDS = 3
# p50s within 3 % of the fastest are a tie on a shared 2-core machine (run-to-run spread measured ~2 %).
TIE = 0.03
# The accurate candidates within RUNOFF of the fastest race again, alone, on more texts: with ten models in one race,
# twins (the same call graph, say, with a smaller file) were measured up to 5 % apart, more than TIE.
RUNOFF = 0.10
RUNOFF_TEXTS = 300
# Resamples of the dev split for a candidate's drop's standard error (rule 1).
BOOTSTRAP = 1000


@dataclass(frozen=True)
class Selection:
    chosen: Artifact
    record: dict[str, Any]  # the candidate table and how it was decided: report.json and manifest.json carry it


def select(exported: Artifact, made: dict[str, tuple[Candidate, Artifact]], profile: TargetProfile,
           dev: Examples, pinned: str | None, device: BenchDevice | None = None) -> Selection:
    """`made`: candidate name -> (candidate, quantized artifact), in the profile's preference order; `dev`: the
    labelled dev split, scored with the task's headline metric (accuracy, or entity F1 for NER); `device`: where
    the candidates are timed (or, emulated, checked) instead of this host."""
    if pinned is not None:
        candidate, artifact = made[pinned]
        row = {**_describe(candidate, artifact), "status": "chosen", "reason": "pinned by the profile or --quantization"}
        return Selection(artifact, {"decided_by": "pinned", "candidates": [row]})

    runtime = Runtime(exported.manifest["runtime"])
    labels = exported.manifest["labels"]
    task = dev.task
    metric = PRIMARY[task]
    dev_texts = dev.texts
    host = host_description()
    timed_here = device is None and profile.hardware_present(host)
    timed = timed_here or (device is not None and not device.emulated)
    with tempfile.TemporaryDirectory(prefix="edgeft-select-") as tmp:
        sessions: dict[str, tuple[Session, TextEncoder]] = {}
        runoff: dict[str, Any] | None = None
        rows: dict[str, dict[str, Any]] = {}
        stats: dict[str, np.ndarray] = {}
        for name, (candidate, artifact) in made.items():
            # Measured in the shipped format: the .ort converter rewrites the graph, so .onnx numbers would not do.
            shipped = backend(runtime).convert(artifact.path / artifact.manifest["model_file"], Path(tmp) / name,
                                               profile.format)
            # Accuracy does not depend on the thread count, so it uses every core; latency uses the profile's.
            # Arm and VNNI targets multiply int8 exactly; this host may not (Isa.exact_int8).
            scorer = open_session(runtime, shipped, os.cpu_count() or 1, TOKENIZER_OUTPUTS, profile.isa.exact_int8)
            encode = TextEncoder(artifact.path / "tokenizer.json", profile.input.max_length,
                                 profile.input.truncation, scorer.input_names)
            t0 = time.perf_counter()
            predicted = predict(scorer.run, encode, dev, labels)
            metrics = metrics_of(dev, predicted, labels)
            stats[name] = example_stats(dev, predicted)
            del scorer
            console.print(f"  {name}: dev {PRIMARY_NAME[task]} {metrics[metric]:.4f} ({time.perf_counter() - t0:.1f} s)")
            if timed_here:
                sessions[name] = (open_session(runtime, shipped, profile.threads, TOKENIZER_OUTPUTS,
                                               profile.isa.exact_int8), encode)
            rows[name] = {**_describe(candidate, artifact), "metric": PRIMARY_NAME[task], "dev_score": metrics[metric],
                          "dev_macro_f1": metrics["macro_f1"],
                          "size_mb": sum(f.stat().st_size for f in model_files(shipped.parent, shipped)) / 2**20}
        reference = _reference(made)
        budget = profile.budgets.max_drop(task)
        for name, row in rows.items():
            row["drop"] = rows[reference]["dev_score"] - row["dev_score"]
            row["drop_se"] = paired_drop_se(task, stats[reference], stats[name])
            row["drop_bound"] = row["drop"] + row["drop_se"]
            if task == "classification":  # the names earlier reports used
                row["dev_accuracy"], row["accuracy_drop"] = row["dev_score"], row["drop"]
        accurate = [n for n in made if rows[n]["drop_bound"] <= budget + 1e-12]
        on_device: dict[str, Any] | None = None
        emulated_choice: str | None = None
        twins = load_twins(made, profile)
        if device is not None:
            # fp32 candidates race too (the latency floor); the emulator checks only what could ship, in order.
            wanted = [n for n in made if n in accurate or (not device.emulated and made[n][0].scheme is Scheme.FP32)]
            bundles = {n: write_candidate_bundle(Path(tmp) / n, n, made[n][1], profile, runtime, labels, task,
                                                 dev_texts[:32]) for n in wanted}
            if device.emulated:
                emulated_choice, on_device = _check_on_emulator(bundles, accurate, rows, dev)
            else:
                console.print(f"  latency race on {device.where}: {len(bundles)} candidates x "
                              f"{min(LATENCY_TEXTS, len(dev_texts))} texts x {LATENCY_ROUNDS} rounds, batch 1, "
                              f"{profile.threads} thread(s), interleaved")
                # One graph, one timing: of twins (load_twins) only the first goes to the device, and the others
                # take its figures. `edgeft race` reports percentiles, not samples, so they cannot be pooled there.
                timed_as = first_twins(list(bundles), twins)
                on_device = race_on_device(device, {n: bundles[n] for n in bundles if timed_as[n] == n},
                                           dev_texts[:LATENCY_TEXTS], LATENCY_ROUNDS, profile.threads)
                for name, first in timed_as.items():
                    figures = on_device["models"][first]
                    rows[name].update(p50_ms=figures["p50"], p90_ms=figures["p90"], timed_on=device.ssh.url,
                                      **({"timed_as": first} if first != name else {}))
        if timed_here:
            # fp32 candidates race even when another fp32 is the reference: they set the latency floor.
            race = {n: sessions[n][0] for n in made if n in accurate or made[n][0].scheme is Scheme.FP32}
            encode_any = next(iter(sessions.values()))[1]
            feeds = [encode_any([t]) for t in dev_texts[:LATENCY_TEXTS]]
            console.print(f"  latency race: {len(race)} candidates x {len(feeds)} texts x {LATENCY_ROUNDS} rounds, "
                          f"batch 1, {profile.threads} thread(s), interleaved in blocks of {RACE_BLOCK}")
            samples = pool_twins(interleaved_latency(race, feeds, LATENCY_ROUNDS, warmup=len(feeds),
                                                     block=RACE_BLOCK), twins)
            for name, values in samples.items():
                stats = percentiles(values)
                rows[name].update(p50_ms=stats["p50"], p90_ms=stats["p90"], timed_on="this host")
                # The twins whose samples were pooled in: one outside the accuracy budget was never timed.
                pooled = [n for n in twins.get(name, ()) if n != name and n in samples]
                if pooled:
                    rows[name]["timed_with"] = pooled
            runoff = _runoff(race, rows, accurate, [encode_any([t]) for t in dev_texts[:RUNOFF_TEXTS]],
                             profile.threads, twins)
        del sessions  # release the models before the temporary folder goes
    where = ("this host" if device is None else device.where)
    chosen, decided_by = _decide(list(made), rows, accurate, budget, reference, timed, profile, where,
                                 emulated_choice)
    record = {"decided_by": decided_by, "reference": reference, "metric": PRIMARY_NAME[task], "budget": budget,
              "dev_texts": len(dev_texts),
              "latency": ({"texts": min(LATENCY_TEXTS, len(dev_texts)), "rounds": LATENCY_ROUNDS,
                           "block": RACE_BLOCK, "threads": profile.threads, "batch_size": 1, "tie": TIE,
                           "where": where, "runoff": runoff} if timed else None),
              "host": {"cpu": host["cpu"], "machine": host["machine"], "isa": host["isa"]},
              "device": _device_record(device, on_device),
              "candidates": [rows[n] for n in made]}
    return Selection(made[chosen][1], record)


def load_twins(made: dict[str, tuple[Candidate, Artifact]], profile: TargetProfile) -> dict[str, tuple[str, ...]]:
    """Candidate name -> the candidates (itself included, in preference order) whose sessions run the same graph.

    A 4-bit word-embedding table decoded when the session loads (stages/vocabulary.py) becomes the int8 presets'
    uint8 table: the candidate then differs from its twin without `embedding_bits` in the file's size only. Measured:
    1.298 vs 1.305 ms p50 interleaved, as close as two sessions of one file (docs/experiments/speed.md, section 8).
    Decoded per call instead (mobile), the graph differs, and so may the speed: no twins."""
    if table_decode(profile) != "load":
        return {}
    groups: dict[str, list[str]] = {}
    for name, (candidate, _) in made.items():
        graph = candidate.model_dump(mode="json", exclude={"name", "embedding_bits"})
        groups.setdefault(json.dumps(graph, sort_keys=True), []).append(name)
    return {name: tuple(group) for group in groups.values() for name in group}


def pool_twins(samples: dict[str, list[float]], twins: dict[str, tuple[str, ...]]) -> dict[str, list[float]]:
    """Every timed candidate's samples together with its timed twins': one graph, one latency."""
    return {name: [v for twin in twins.get(name, (name,)) if twin in samples for v in samples[twin]]
            for name in samples}


def first_twins(names: list[str], twins: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Each of `names` -> the first of its twins among `names`: the one timed for all of them."""
    return {n: next(t for t in twins.get(n, (n,)) if t in names) for n in names}


def _runoff(race: dict[str, Session], rows: dict[str, dict[str, Any]], accurate: list[str],
            feeds: list[dict[str, np.ndarray]], threads: int,
            twins: dict[str, tuple[str, ...]]) -> dict[str, Any] | None:
    """Re-time the accurate candidates within RUNOFF of the fastest among themselves; their rows take these figures."""
    timed = [n for n in accurate if n in race]
    if not timed:
        return None
    fastest = min(rows[n]["p50_ms"] for n in timed)
    finalists = [n for n in timed if rows[n]["p50_ms"] <= fastest * (1 + RUNOFF)]
    if len(finalists) < 2:
        return None
    console.print(f"  run-off: {len(finalists)} candidates within {RUNOFF:.0%} of the fastest x {len(feeds)} texts x "
                  f"{LATENCY_ROUNDS} rounds, batch 1, {threads} thread(s), interleaved in blocks of {RACE_BLOCK}")
    samples = pool_twins(interleaved_latency({n: race[n] for n in finalists}, feeds, LATENCY_ROUNDS,
                                             warmup=len(feeds) // 3, block=RACE_BLOCK), twins)
    for name, values in samples.items():
        stats = percentiles(values)
        rows[name].update(p50_ms=stats["p50"], p90_ms=stats["p90"], first_race_p50_ms=rows[name]["p50_ms"])
    return {"candidates": finalists, "texts": len(feeds), "rounds": LATENCY_ROUNDS, "within": RUNOFF}


def paired_drop_se(task: str, reference: np.ndarray, candidate: np.ndarray, resamples: int = BOOTSTRAP,
                   seed: int = 0) -> float:
    """Standard error of (reference - candidate) on the dev split, by a paired bootstrap over its examples.

    The same resampled examples score both models, so only the examples where they differ add noise: a candidate
    that changes no prediction has 0, one that flips many of a small dev split (NER: 230 sentences) has a large one.
    """
    if np.array_equal(reference, candidate):
        return 0.0
    n = len(reference)
    picks = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    drops = headline_of_sums(task, reference[picks].sum(1), n) - headline_of_sums(task, candidate[picks].sum(1), n)
    return float(drops.std())


def _describe(candidate: Candidate, artifact: Artifact) -> dict[str, Any]:
    return {"name": candidate.name, "scheme": candidate.scheme.value, "options": candidate.summary(),
            "artifact": str(artifact.path)}


def _reference(made: dict[str, tuple[Candidate, Artifact]]) -> str:
    """The fp32 candidate that is the exported model as it is (else the first fp32 one): the accuracy reference."""
    fp32 = [n for n, (c, _) in made.items() if c.scheme is Scheme.FP32]
    plain = [n for n in fp32 if made[n][0].optimization is None]
    return (plain or fp32)[0]


def _check_on_emulator(bundles: dict[str, Path], accurate: list[str], rows: dict[str, dict[str, Any]],
                       dev: Examples) -> tuple[str, dict[str, Any]]:
    """Rule 4 on the emulator: accurate candidates in preference order until one's labels agree with this host's
    on AGREEMENT of the texts; the ones after it are not run (rule 3 would not ship them anyway)."""
    # Evenly spaced over the dev split, which lists its texts class by class: every class gets its share.
    picks = sorted({int(i) for i in np.linspace(0, len(dev) - 1, min(EMULATED_TEXTS, len(dev)))})
    texts = [dev.texts[i] for i in picks]
    what = "entity spans" if dev.task == "ner" else "label"
    for name in accurate:
        console.print(f"  {name}: {len(texts)} dev texts on the emulated aarch64 runtime ({what} only, not timed)")
        here, result = labels_here_and_on_emulator({name: bundles[name]}, texts)
        there = result["labels"][name]
        agree = sum(a == b for a, b in zip(here[name], there)) / len(texts)
        rows[name].update(device_agreement=agree, device_texts=len(texts))
        if dev.task != "ner":  # NER's spans have no one-line accuracy; its dev entity F1 is the host's
            rows[name]["device_accuracy"] = sum(a == dev.labels[i] for a, i in zip(there, picks)) / len(texts)
        if agree >= AGREEMENT:
            return name, result
        rows[name]["reason"] = (f"on the emulated aarch64 runtime {agree:.0%} of {len(texts)} dev texts kept this "
                                f"host's {what} (needs {AGREEMENT:.0%})")
    raise BudgetFailed(f"no candidate within the accuracy budget gave this host's labels on the emulated aarch64 "
                       f"runtime (needs {AGREEMENT:.0%} of {len(texts)} dev texts); candidates: "
                       + ", ".join(f"{n} {rows[n].get('device_agreement', 0):.0%}" for n in accurate))


def _device_record(device: BenchDevice | None, on_device: dict[str, Any] | None) -> dict[str, Any] | None:
    if device is None:
        return None
    record: dict[str, Any] = {"spec": device.spec, "where": device.where, "emulated": device.emulated}
    if on_device is not None:
        record["host"] = on_device.get("host") or device.host
        record["runtime"] = {k: on_device[k] for k in ("machine", "onnxruntime") if k in on_device}
    return record


def _decide(order: list[str], rows: dict[str, dict[str, Any]], accurate: list[str], budget: float, reference: str,
            timed: bool, profile: TargetProfile, where: str = "this host",
            emulated_choice: str | None = None) -> tuple[str, str]:
    for name in order:
        rows[name]["status"] = "rejected"
    for name in order:
        if name not in accurate:
            rows[name]["reason"] = (f"dev {rows[name]['metric']} drop {rows[name]['drop']:.4f} + its standard error "
                                    f"{rows[name].get('drop_se', 0.0):.4f} > budget {budget}")
    if not accurate:  # cannot happen while the reference itself is a candidate, but say so if it ever does
        accurate = [reference]
    if emulated_choice is not None:
        chosen = emulated_choice
        for name in accurate:
            if name != chosen and "reason" not in rows[name]:
                rows[name]["reason"] = f"'{chosen}' comes first in the preference order (not run on the emulator)"
        decided_by = (f"dev accuracy, the profile's preference order and labels on {where}: the first candidate "
                      f"within the budget whose labels there agree with this host's ships")
    elif not timed:
        chosen = accurate[0]
        for name in accurate[1:]:
            rows[name]["reason"] = f"'{chosen}' passed and comes first in the profile's preference order"
        decided_by = (f"dev accuracy + the profile's preference order: this host lacks the {profile.isa.value} "
                      f"hardware, so its latency would not be the device's")
    else:
        # Never a quantized model measurably slower than fp32 (OpenVINO's NNCF int8 on CPUs without VNNI); one within
        # TIE of it is as fast as this machine can tell, and the preference order (smaller files first) decides.
        fp32_floor = min(rows[n]["p50_ms"] for n in accurate if rows[n]["scheme"] == Scheme.FP32.value)
        eligible = [n for n in accurate
                    if rows[n]["p50_ms"] <= fp32_floor * (1 + TIE) or rows[n]["scheme"] == Scheme.FP32.value]
        for name in accurate:
            if name not in eligible:
                rows[name]["reason"] = (f"slower than the fastest fp32 candidate (p50 {rows[name]['p50_ms']:.2f} "
                                        f"vs {fp32_floor:.2f} ms, more than the {TIE:.0%} tie)")
        fastest = min(rows[n]["p50_ms"] for n in eligible)
        leader = next(n for n in eligible if rows[n]["p50_ms"] == fastest)
        # Preference order breaks ties: the first eligible candidate within TIE of the fastest.
        chosen = next(n for n in eligible if rows[n]["p50_ms"] <= fastest * (1 + TIE))
        for name in eligible:
            if name == chosen:
                continue
            p50 = rows[name]["p50_ms"]
            # The tie is measured from the fastest candidate, so the reason quotes it, not only the one that ships.
            if name == leader:
                reason = (f"the fastest (p50 {p50:.3f} ms), in a tie with '{chosen}' (within {TIE:.0%}), which comes "
                          f"first in the preference order")
            elif p50 <= fastest * (1 + TIE):
                reason = (f"a tie (p50 {p50:.3f} ms, within {TIE:.0%} of the fastest, '{leader}' at {fastest:.3f} "
                          f"ms): '{chosen}' comes first in the preference order")
            else:
                reason = (f"p50 {p50:.3f} ms is {p50 / fastest - 1:.1%} over the fastest, '{leader}' at "
                          f"{fastest:.3f} ms (the tie is {TIE:.0%}); '{chosen}' ships")
            rows[name]["reason"] = reason
        decided_by = (f"latency on this host, which has the {profile.isa.value} hardware, among candidates within the "
                      f"accuracy budget" if where == "this host" else
                      f"latency on the device {where}, among candidates within the accuracy budget")
    rows[chosen]["status"] = "chosen"
    rows[chosen]["reason"] = ("fastest within the accuracy budget" if timed else
                              "first within the accuracy budget in the preference order"
                              + (" whose labels agree on the emulated device" if emulated_choice else ""))
    return chosen, decided_by
