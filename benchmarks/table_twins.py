"""Is the 4-bit-table candidate as fast as its int8-table twin once loaded? (docs/experiments/speed.md, section 8)

Both candidates of one build, timed interleaved on 300 packaged tweets, 1 thread, batch 1, with a second session of
the twin's own file as the yardstick for what "the same speed" reads like on this machine. A benchmark, not a test:

    .venv/bin/python benchmarks/table_twins.py WORK_DIR   # the --work-dir of an x86-avx2 build (default .edgeft)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edgeft.data.text import load_dataset
from edgeft.runtime.bench import host_description, interleaved_latency, percentiles
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
from edgeft.runtime.sessions import open_session

TWINS = ("dynamic-int8-s8-u4-trim", "dynamic-int8-s8-trim")


def candidates(work: Path) -> dict[str, Path]:
    """The newest quantize artifact of each twin under the build's work folder."""
    found: dict[str, Path] = {}
    for manifest in sorted(work.rglob("quantize-onnxruntime-*/manifest.json"), key=lambda p: p.stat().st_mtime):
        name = (json.loads(manifest.read_text()).get("quantization") or {}).get("name")
        if name in TWINS:
            found[name] = manifest.parent
    missing = [n for n in TWINS if n not in found]
    if missing:
        sys.exit(f"{work}: no quantize artifact for {', '.join(missing)}; build x86-avx2 with --work-dir {work}")
    return found


def main() -> None:
    work = Path(sys.argv[1] if len(sys.argv) > 1 else ".edgeft")
    arts = candidates(work)
    sessions = {name: open_session("onnxruntime", arts[name] / "model.onnx", 1, TOKENIZER_OUTPUTS) for name in TWINS}
    sessions[f"{TWINS[1]} (second session)"] = open_session("onnxruntime", arts[TWINS[1]] / "model.onnx", 1,
                                                            TOKENIZER_OUTPUTS)
    encode = TextEncoder(arts[TWINS[1]] / "tokenizer.json", 128, "right", sessions[TWINS[1]].input_names)
    feeds = [encode([t]) for t in load_dataset("packaged:tweets").texts[-300:]]
    print(f"host: {host_description()['cpu']}; 300 tweets x 5 rounds, 1 thread, batch 1, interleaved")
    for block in (1, 25):
        p50 = {n: percentiles(v)["p50"] for n, v in interleaved_latency(sessions, feeds, 5, 100, block).items()}
        first, second, again = p50.values()
        print(f"block {block:2d}: " + ", ".join(f"{n} {v:.3f} ms" for n, v in p50.items())
              + f" | u4 / s8 {first / second:.3f}, second / first session {again / second:.3f}")


if __name__ == "__main__":
    main()
