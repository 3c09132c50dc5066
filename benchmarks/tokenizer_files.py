"""What an app pays when it reads a bundle's tokenizer files as they are: the base model's tokenizer.json (the packaged
MiniLM pads every text to 128 tokens) against the bundle's own (no fixed padding, truncation at max_length).

Both feed the same bundle's model through plain `tokenizers` with no settings, batch 1, 1 thread, timed in turn on
each text (interleaved), tokenization included, as an app calls it; labels are compared with `edgeft predict`'s.

    python benchmarks/tokenizer_files.py bundles/x86-avx2 [--texts 300]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--texts", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import onnxruntime as ort
    from tokenizers import Tokenizer

    import edgeft.runtime
    from edgeft.data.assets import packaged_model
    from edgeft.runtime.bench import host_description

    bundle = edgeft.runtime.load(args.bundle, threads=1)
    rows = [json.loads(line) for line in (args.bundle / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    texts = [r["text"] for r in rows] * (args.texts // len(rows) + 1)
    texts = texts[: args.texts]
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(args.bundle / bundle.manifest["bundle"]["model_file"]), options,
                                   providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    readers = {"base model's tokenizer.json (as shipped before)": Tokenizer.from_file(
                   str(packaged_model("all-MiniLM-L6-v2").path / "tokenizer.json")),
               "bundle's tokenizer.json (this edgeft)": Tokenizer.from_file(str(args.bundle / "tokenizer.json"))}

    def call(tokenizer, text: str) -> int:
        enc = tokenizer.encode(text)
        feeds = {"input_ids": enc.ids, "attention_mask": enc.attention_mask, "token_type_ids": enc.type_ids}
        logits = session.run(None, {k: np.array([v], dtype=np.int64) for k, v in feeds.items() if k in names})[0]
        return int(logits[0].argmax())

    samples = {name: [] for name in readers}
    labels = {name: [call(tok, t) for t in texts[:64]] for name, tok in readers.items()}  # also the warm-up
    for r in range(args.rounds):
        for i, text in enumerate(texts):
            order = list(readers) if (i + r) % 2 == 0 else list(reversed(readers))
            for name in order:
                t0 = time.perf_counter()
                call(readers[name], text)
                samples[name].append((time.perf_counter() - t0) * 1e3)
    ours = [bundle.labels.index(p.label) for p in bundle.predict(texts[:64], batch_size=1)]
    host = host_description()
    print(f"{args.bundle} on {host['cpu']} ({host['machine']}, {', '.join(host['isa'])}); 1 thread, batch 1, "
          f"{len(texts)} texts x {args.rounds} rounds, interleaved, tokenization included")
    base = None
    for name, values in samples.items():
        p50 = float(np.percentile(values, 50))
        base = base or p50
        same = sum(a == b for a, b in zip(labels[name], ours))
        print(f"  {name:50s} p50 {p50:6.3f} ms  p90 {np.percentile(values, 90):6.3f} ms  "
              f"{base / p50:4.2f}x  labels as `edgeft predict`: {same}/64")
    return 0


if __name__ == "__main__":
    sys.exit(main())
