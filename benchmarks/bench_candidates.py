"""Is any shipped model slower than the best fp32 candidate of its runtime, on this machine? (issue 5's check)

For each bundle given (default: bundles/x86-avx2, bundles/openvino-cpu, bundles/arm64), this times the shipped model
against every fp32 candidate its build made, batch 1, 1 thread, interleaved on the bundle's own held-out samples, in
one process. For targets whose hardware this host lacks (arm64 on x86) the figures are this host's, not the
device's: they show the shipped model is no slower here, nothing more.

    .venv/bin/python benchmarks/bench_candidates.py [BUNDLE ...] [--json bench-results/candidates.json]

Exit 1 if a shipped model is slower than the best fp32 candidate (p50).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from edgeft.artifact import read_manifest
from edgeft.backends import backend
from edgeft.profile import ModelFormat
from edgeft.reports.tables import print_rows
from edgeft.runtime import load
from edgeft.runtime.sessions import open_session
from edgeft.runtime.bench import interleaved_latency, percentiles
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS
from edgeft.runtime.samples import SAMPLES_FILE

ROUNDS = 5


def race(bundle_dir: Path, scratch: Path) -> dict:
    bundle = load(bundle_dir)
    spec = bundle.manifest["bundle"]
    selection = bundle.manifest["selection"]
    sessions = {"shipped " + selection_chosen(selection): bundle.session}
    for row in selection["candidates"]:
        if row["scheme"] != "fp32":
            continue
        artifact = Path(row["artifact"])
        model = artifact / read_manifest(artifact)["model_file"]
        shipped_form = backend(bundle.runtime).convert(model, scratch / row["name"], ModelFormat(spec["format"]))
        sessions[row["name"]] = open_session(bundle.runtime, shipped_form, bundle.threads, TOKENIZER_OUTPUTS)
    texts = [json.loads(line)["text"] for line in (bundle_dir / SAMPLES_FILE).read_text().splitlines()]
    feeds = [bundle.encode([t]) for t in texts]
    samples = interleaved_latency(sessions, feeds, ROUNDS, warmup=len(feeds))
    p50 = {name: percentiles(values)["p50"] for name, values in samples.items()}
    shipped = next(iter(p50))
    best_fp32 = min((n for n in p50 if n != shipped), key=p50.get)
    return {"target": bundle.target, "shipped": shipped.removeprefix("shipped "), "shipped_p50_ms": p50[shipped],
            "best_fp32": best_fp32, "fp32_p50_ms": p50[best_fp32], "speedup": p50[best_fp32] / p50[shipped],
            "texts": len(feeds), "rounds": ROUNDS, "threads": bundle.threads,
            "target_hardware_here": bool(json.loads((bundle_dir / "report.json").read_text())["latency_on_target_hardware"]),
            "all_p50_ms": p50}


def selection_chosen(selection: dict) -> str:
    return next(r["name"] for r in selection["candidates"] if r["status"] == "chosen")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="*", type=Path,
                        default=[Path("bundles") / t for t in ("x86-avx2", "openvino-cpu", "arm64")])
    parser.add_argument("--json", type=Path, default=Path("bench-results/candidates.json"))
    args = parser.parse_args()
    missing = [str(b) for b in args.bundles if not (b / "manifest.json").is_file()]
    if missing:
        print(f"error: no bundle at {', '.join(missing)}; build them first, e.g. make build TARGET=arm64", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-candidates-") as scratch:
        results = [race(b, Path(scratch) / b.name) for b in args.bundles]
    print_rows("shipped model vs the best fp32 candidate of its runtime, batch 1, interleaved, this host",
               [{"target": r["target"], "shipped": r["shipped"], "shipped p50 ms": r["shipped_p50_ms"],
                 "best fp32": r["best_fp32"], "fp32 p50 ms": r["fp32_p50_ms"], "fp32 / shipped": r["speedup"],
                 "target hardware here": "yes" if r["target_hardware_here"] else "no (proxy)"} for r in results])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    slower = [r["target"] for r in results if r["shipped_p50_ms"] > r["fp32_p50_ms"]]
    if slower:
        print(f"shipped model slower than fp32 on: {', '.join(slower)}")
        return 1
    print(f"no shipped model is slower than its runtime's best fp32 candidate ({len(results)} targets); JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
