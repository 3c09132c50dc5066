"""What an x86 build host's own int8 kernels do to an Arm bundle's accuracy, and which of two sessions the Arm runtime
agrees with (docs/experiments/int8-arithmetic.md).

On x86 without VNNI, ONNX Runtime multiplies u8 activations by s8 weights with vpmaddubsw, whose int16 pair sums
clip; Arm's dot products (and VNNI) accumulate exactly. For one bundle this scores a held-out split (seed 0, as the
build splits; test unless --split dev) twice on this host, batch 1: with the host's default kernels and with the
exact ones (`session.x64quantprecision`, what edgeft's sessions ask for when a bundle's `exact_int8` is set). Then
the emulated aarch64 runtime (`make arm64-runtime`) labels every text on which the two disagree, plus as many others
drawn at random (at least 10), and the script counts which x86 session it agrees with. Labels only: emulated
latency means nothing.

    .venv/bin/python benchmarks/exact_int8.py bundles/arm64 [--data packaged:bbc] [--split dev] [--format ort]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgeft.artifact import read_manifest  # noqa: E402
from edgeft.backends import backend  # noqa: E402
from edgeft.data.text import load_dataset, split_dataset  # noqa: E402
from edgeft.devices.qemu import labels_on_qemu_arm64  # noqa: E402
from edgeft.profile import ModelFormat, Runtime  # noqa: E402
from edgeft.runtime.bench import host_description  # noqa: E402
from edgeft.runtime.bundle import Bundle  # noqa: E402
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS  # noqa: E402
from edgeft.runtime.onnxruntime_session import host_saturates_int8  # noqa: E402
from edgeft.runtime.sessions import open_session  # noqa: E402


def logits(model: Path, bundle: Bundle, texts: list[str], exact: bool) -> tuple[np.ndarray, float]:
    session = open_session(Runtime.ONNXRUNTIME, model, 2, TOKENIZER_OUTPUTS, exact_int8=exact)
    started = time.perf_counter()
    rows = [session.run(bundle.encoder([t]))[0] for t in texts]  # the encoder feeds the graph's own inputs
    return np.array(rows), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="an arm64 (or any dynamic-int8 ONNX Runtime) bundle")
    parser.add_argument("--data", default="packaged:tweets", help="the build's data (its split of seed 0)")
    parser.add_argument("--format", choices=["onnx", "ort"], default="onnx",
                        help="ort: score the bundle's model converted as the mobile target ships it")
    parser.add_argument("--split", choices=["test", "dev"], default="test", help="which held-out split to score")
    parser.add_argument("--no-emulator", action="store_true", help="skip the aarch64 check")
    args = parser.parse_args()
    bundle = Bundle(args.bundle, read_manifest(args.bundle))
    data = load_dataset(args.data)
    split = split_dataset(data, 0)
    held_out = split.test if args.split == "test" else split.dev
    texts, gold = [data.texts[i] for i in held_out], [data.labels[i] for i in held_out]
    host = host_description()
    print(f"host: {host['cpu']} ({', '.join(host['isa'])}); saturating u8 x s8 kernels: {host_saturates_int8()}")
    with tempfile.TemporaryDirectory() as tmp:
        model = args.bundle / bundle.manifest["bundle"]["model_file"]
        if args.format == "ort":
            model = backend(Runtime.ONNXRUNTIME).convert(model, Path(tmp), ModelFormat.ORT)
        default, default_s = logits(model, bundle, texts, exact=False)
        exact, exact_s = logits(model, bundle, texts, exact=True)
    labels = np.array(bundle.labels)
    for name, z, seconds in (("default", default, default_s), ("exact", exact, exact_s)):
        accuracy = float(np.mean(labels[z.argmax(-1)] == np.array(gold)))
        print(f"{name:>8}: {args.split} accuracy {accuracy:.4f} on {len(texts)} texts, {seconds:.1f} s "
              f"(batch 1, 2 threads)")
    differ = np.flatnonzero(default.argmax(-1) != exact.argmax(-1)).tolist()
    print(f"labels that differ: {len(differ)} of {len(texts)}; largest logit difference "
          f"{np.abs(default - exact).max():.3f}, mean {np.abs(default - exact).mean():.4f}")
    if args.no_emulator or args.format != "onnx":
        return
    others = random.Random(0).sample(sorted(set(range(len(texts))) - set(differ)), max(len(differ), 10))
    chosen = differ + others
    arm = next(iter(labels_on_qemu_arm64([args.bundle], [texts[i] for i in chosen])["labels"].values()))
    for group, members in (("texts where they differ", differ), ("others, at random", others)):
        rows = [chosen.index(i) for i in members]
        with_default = sum(arm[r] == labels[default[i].argmax()] for r, i in zip(rows, members))
        with_exact = sum(arm[r] == labels[exact[i].argmax()] for r, i in zip(rows, members))
        print(f"aarch64 on {len(members)} {group}: as the default session {with_default}, "
              f"as the exact one {with_exact}")


if __name__ == "__main__":
    main()
