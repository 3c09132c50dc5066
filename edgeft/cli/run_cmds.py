"""`edgeft predict`, `edgeft bench` and `edgeft race`: the device-side commands. They import only the runtime (no
torch)."""

from __future__ import annotations

import contextlib
import json
import platform
import time
from collections.abc import Iterator
from pathlib import Path

import typer

from edgeft.cli.options import Bundle, Encoding, LabelColumn, TextColumn


def predict(
    bundle: Path = Bundle,
    texts: list[str] = typer.Argument(..., help="Texts to classify (or to find entities in, for a NER bundle).",
                                      show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: a list of {label, score} objects, or for a NER "
                                 "bundle a list (one per text) of {text, type, start, end, score} spans."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="Override the profile's thread count."),
) -> None:
    """Classify texts with a bundle (a label and its score per text), or find entity spans with a NER bundle."""
    from edgeft import runtime

    loaded = runtime.load(bundle, threads=threads)
    _warn_if_failed(bundle, _bundle_report(bundle))
    # One text per call: dynamic int8 scales its activations over the whole batch, padding included, so a text's
    # scores would depend on the texts beside it. Alone, each gets what an app that runs it alone gets.
    predictions = loaded.predict(texts, batch_size=1)
    if as_json:
        if loaded.task == "ner":
            typer.echo(json.dumps([[s.to_dict() for s in spans] for spans in predictions], ensure_ascii=False))
        else:
            typer.echo(json.dumps([p.to_dict() for p in predictions], ensure_ascii=False))
        return
    for text, p in zip(texts, predictions):
        if loaded.task == "ner":
            typer.echo(text)
            for span in p:
                typer.echo(f"  {span.type}\t{span.start}-{span.end}\t{span.score:.4f}\t{span.text}")
            if not p:
                typer.echo("  (no entities)")
        else:
            typer.echo(f"{p.label}\t{p.score:.4f}\t{text}")


def bench(
    bundle: Path = Bundle,
    data: str | None = typer.Option(None, "--data", help="Labelled CSV / TSV / JSONL (NER: CoNLL or JSONL tagged "
                                    "sentences) to time and score [default: the bundle's samples.jsonl]."),
    text_column: str = TextColumn,
    label_column: str = LabelColumn,
    encoding: str = Encoding,
    json_out: Path | None = typer.Option(None, "--json", help="Write the results as JSON to this file."),
    runs: int | None = typer.Option(None, "--runs", min=1, help="Timed batch-1 calls [default: the profile's]."),
    warmup: int | None = typer.Option(None, "--warmup", min=0, help="Untimed calls first [default: the profile's]."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="Override the profile's thread count."),
    rounds: int | None = typer.Option(None, "--rounds", min=1, help="Repeat the timed calls this many times; "
                                      "their spread is the noise `edgeft gate` allows for [default: the profile's, 5]."),
    reference: Path | None = typer.Option(None, "--reference", help="Also time this bundle (e.g. the baseline's) "
                                          "in turn with BUNDLE: the latency ratio of the pair survives the drift of a "
                                          "shared machine, and `edgeft gate` prefers it."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=0, help="Also time whole batches of this many "
                                          "texts (throughput); 0 skips it [default: 8]."),
    cores: str | None = typer.Option(None, "--cores", help="Pin the bench to these CPU cores, e.g. 0 or 2,3 "
                                     "(Linux), so other work on the machine moves less of the figure."),
    device: str = typer.Option("local", "--device", help="local, ssh://user@host[:port] (copies the bundle and, if "
                               "needed, edgeft's runtime wheel; extra ssh options in EDGEFT_SSH_OPTIONS), or "
                               "qemu-arm64 (emulated aarch64: predictions and accuracy only)."),
) -> None:
    """Batch-1 latency percentiles, peak memory and accuracy of a bundle, here or on a device."""
    from edgeft.devices import parse_device
    from edgeft.errors import BadInput

    from edgeft.artifact import check_output_file

    check_output_file(json_out, "--json")
    where = parse_device(device)
    if where != "local":
        if reference is not None:
            raise BadInput("--reference is for local benches; on a device, bench each bundle and gate the two JSONs")
        _bench_elsewhere(where, bundle, data, (text_column, label_column, encoding), json_out,
                         {"--runs": runs, "--warmup": warmup, "--threads": threads, "--rounds": rounds,
                          "--batch-size": batch_size, "--cores": cores})
        return
    from edgeft import runtime
    from edgeft.artifact import atomic_file_write
    from edgeft.reports.tables import print_bench
    from edgeft.runtime.bench import bench as run_bench
    from edgeft.runtime.bundle import manifest_digest
    from edgeft.runtime.samples import bench_texts

    report = _bundle_report(bundle)  # read once, before the clock starts: the cold start is the app's
    _warn_if_failed(bundle, report)
    with _pinned(cores) as pinned:
        started = time.perf_counter()
        loaded = runtime.load(bundle, threads=threads)
        texts, examples = bench_texts(loaded, data, text_column, label_column, encoding)
        # Cold start: opening the bundle (hash check, session, tokenizer) to the first prediction, as an app sees it.
        loaded.predict(texts[:1])
        cold_start_ms = (time.perf_counter() - started) * 1e3
        spec = loaded.manifest["bundle"]["bench"]
        result = run_bench(loaded, texts, examples, warmup if warmup is not None else spec["warmup"],
                           runs if runs is not None else spec["runs"],
                           rounds if rounds is not None else spec.get("rounds", 5),
                           batch_size if batch_size is not None else 8)
        _note_if_not_target_hardware(bundle, loaded.manifest["bundle"], result["host"])
        result["cores"] = pinned
        result["cold_start_ms"] = round(cold_start_ms, 1)
        result["bundle_manifest_sha256"] = manifest_digest(bundle)
        if reference is not None:
            from edgeft.runtime.bench import paired_latency

            other = runtime.load(reference, threads=loaded.threads)
            result["paired"] = {**paired_latency(loaded, other, texts, result["runs"], len(result["rounds"])),
                                "reference": str(reference), "reference_manifest_sha256": manifest_digest(reference)}
        result["report"] = report
        print_bench(result)
        if json_out is not None:
            atomic_file_write(json_out, json.dumps(result, indent=2) + "\n")
            typer.echo(f"wrote {json_out}", err=True)


def race(
    bundles: list[Path] = typer.Argument(..., help="Bundle folders to time against each other (e.g. the candidate "
                                         "bundles `edgeft build --bench-device` copies to a device)."),
    texts: Path = typer.Option(..., "--texts", help="The texts to time: .jsonl with a \"text\" field per line, or "
                               "plain text, one per line."),
    rounds: int = typer.Option(3, "--rounds", min=1, help="Times each text is timed per model."),
    warmup: int | None = typer.Option(None, "--warmup", min=0, help="Untimed passes over the first texts "
                                      "[default: all of them once]."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="Override the bundles' thread count."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the results as JSON to this file."),
) -> None:
    """Time several bundles in turn on the same texts (batch 1, interleaved): the device side of a build's race."""
    from edgeft import runtime
    from edgeft.artifact import atomic_file_write, check_output_file
    from edgeft.reports.tables import print_race

    check_output_file(json_out, "--json")
    from edgeft.runtime.race import race as run_race
    from edgeft.runtime.race import read_texts

    loaded = [runtime.load(b, threads=threads) for b in bundles]
    to_time = read_texts(texts)
    result = run_race(loaded, to_time, rounds, len(to_time) if warmup is None else warmup)
    print_race(result)
    if json_out is not None:
        atomic_file_write(json_out, json.dumps(result, indent=2) + "\n")
        typer.echo(f"wrote {json_out}", err=True)


@contextlib.contextmanager
def _pinned(cores: str | None) -> Iterator[list[int] | None]:
    """This thread, and the threads it starts (ONNX Runtime's pool), on `cores` for the bench, and back on the cores
    it had afterwards: a caller that runs the bench in its own process (a notebook, a test session) keeps them."""
    import os

    from edgeft.errors import BadInput

    if not cores:
        yield None
        return
    try:
        chosen = sorted({int(c) for c in cores.split(",")})
    except ValueError:
        raise BadInput(f"--cores '{cores}' is not a comma-separated list of core numbers, e.g. 0 or 2,3") from None
    if not hasattr(os, "sched_setaffinity"):
        raise BadInput("--cores needs Linux (sched_setaffinity); drop it on this system")
    available = os.sched_getaffinity(0)
    if not set(chosen) <= available:
        raise BadInput(f"--cores {cores}: this machine offers cores {sorted(available)}")
    os.sched_setaffinity(0, chosen)
    try:
        yield chosen
    finally:
        os.sched_setaffinity(0, available)


def _bench_elsewhere(where, bundle: Path, data: str | None, columns: tuple[str, str, str], json_out: Path | None,
                     options: dict) -> None:
    from edgeft.artifact import atomic_file_write
    from edgeft.devices.ssh import bench_over_ssh
    from edgeft.errors import BadInput
    from edgeft.reports.tables import print_bench
    from edgeft.runtime.bundle import load

    loaded = load(bundle)  # verify the bundle here first: a tampered one never travels
    if where == "qemu-arm64":
        timing = [flag for flag, value in options.items() if value is not None]
        if timing:
            raise BadInput(f"--device qemu-arm64 times nothing (emulated latency is not a device's), so "
                           f"{', '.join(timing)} would be ignored; drop {'it' if len(timing) == 1 else 'them'}")
        result = _bench_on_qemu(loaded, bundle, data, columns)
    else:
        if data is not None and (data.startswith("packaged:") or not Path(data).is_file()):
            raise BadInput(f"--data '{data}' must be a file to copy to the device (packaged sets live on the build host)")
        args = [str(v) for k, v in options.items() if v is not None for v in (k, v)]
        result = bench_over_ssh(where, bundle, Path(data) if data else None, args)
        print_bench(result)
    if json_out is not None:
        atomic_file_write(json_out, json.dumps(result, indent=2) + "\n")
        typer.echo(f"wrote {json_out}", err=True)


def _bench_on_qemu(loaded, bundle: Path, data: str | None, columns: tuple[str, str, str]) -> dict:
    """The bundle's samples (or --data, with this host's predictions beside them) on the emulated aarch64 runtime;
    one line of figures on stdout."""
    import tempfile

    from edgeft.devices.qemu import bench_on_qemu_arm64, host_rows
    from edgeft.runtime.samples import bench_texts

    with tempfile.TemporaryDirectory() as tmp:
        rows = None if data is None else host_rows(loaded, bench_texts(loaded, data, *columns)[1],
                                                   Path(tmp) / "rows.jsonl")
        result = bench_on_qemu_arm64(bundle, rows)
    m, ner = result["metrics"], loaded.task == "ner"
    unit, held = ("sentences", "tagged") if ner else ("texts", "labelled")
    source = f"held-out {unit}" if data is None else f"{unit} of {data}"
    agree = (f"{result['agreement_with_build']:.1%} {held} as at build time" if data is None else
             f"{result['agreement_with_host']:.1%} {held} as this host ({platform.machine()}) {held} them")
    figure = f"entity F1 {m['f1']:.4f}" if ner else f"accuracy {m['accuracy']:.4f}"
    typer.echo(f"{result['machine']} onnxruntime {result['onnxruntime']}: {figure}, macro-F1 {m['macro_f1']:.4f} on "
               f"{result['texts']} {source}, {agree}; latency not measured (emulated)")
    return result


def _note_if_not_target_hardware(bundle: Path, spec: dict, host: dict) -> None:
    """A bundle benched on a host without its target's hardware (an arm64 bundle on x86, say): its latency is this
    host's, and the bench says so once on stderr. Bundles record their target's ISA (older ones do not: no note)."""
    from edgeft.runtime.bench import isa_present

    if spec.get("isa") and not isa_present(spec["isa"], host):
        typer.echo(f"note: {bundle} is built for {spec.get('target')} ({spec['isa']}); this host ({host['machine']}, "
                   f"{', '.join(host['isa']) or 'no SIMD flags'}) is not that hardware, so its latency figures are "
                   f"this host's, not the device's: bench on the device (--device ssh://user@host)", err=True)


def _warn_if_failed(bundle: Path, report: dict) -> None:
    """A bundle whose build exited 1 was written for inspection: whoever runs it is told so, once, on stderr."""
    verdict = report.get("verdict") or {}
    if verdict.get("passed") is False:
        typer.echo(f"warning: {bundle} failed its build's checks ({'; '.join(verdict.get('failed', []))}); "
                   f"`edgeft build` wrote it for inspection, not for shipping", err=True)


def _bundle_report(bundle: Path) -> dict:
    # The build's own figures travel with the bench result, so a gate can compare teacher vs shipped later.
    path = bundle / "report.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none, or damaged: `runtime.load`'s hash check refuses a damaged bundle itself
        return {}
    return {k: report.get(k) for k in ("target", "metrics", "size_mb", "latency_ms", "threads", "floor", "verdict")}


def report(
    bundles: list[Path] = typer.Argument(..., help="Bundle folders written by `edgeft build` (one or several targets)."),
    out: Path = typer.Option(Path("report.html"), "--out", help="The HTML file to write."),
) -> None:
    """One self-contained HTML page: targets side by side, candidate tables, latency histograms, accuracy vs latency."""
    from edgeft.artifact import atomic_file_write, check_output_file
    from edgeft.reports.html import read_bundle_report, render

    check_output_file(out, "--out")
    page = render({str(b): read_bundle_report(b) for b in bundles})
    atomic_file_write(out, page)
    typer.echo(f"wrote {out}", err=True)
