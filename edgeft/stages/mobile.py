"""What a phone app needs beside the .ort model: the tokenizer as data (vocabulary + settings + algorithm steps),
reference token ids (and, for token classification, offsets and word ids) to test the app's own port against, and a
README section on loading it with ONNX Runtime Mobile and, for NER, on turning token logits into entity spans.

Apps on phones have no Python `tokenizers`. edgeft.runtime.wordpiece is the algorithm written out to be ported; the
build checks that it reproduces the bundle's own tokenizer on every reference text before anything ships.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeft.errors import StageFailed
from edgeft.profile import TargetProfile
from edgeft.runtime.encoder import TextEncoder
from edgeft.runtime.wordpiece import WordPieceSpec, encode
from edgeft.runtime.wordpiece_files import REFERENCE_EDGE_CASES, write_reference, write_spec

FOLDER = "mobile"
REFERENCE_FILE = "reference.jsonl"


def check_tokenizer(tokenizer_json: Path, profile: TargetProfile) -> None:
    """Before any work: a mobile bundle needs a tokenizer an app can port (BERT WordPiece); BadInput otherwise."""
    WordPieceSpec.from_tokenizer_json(tokenizer_json, profile.input.max_length, profile.input.truncation)


def write_mobile_files(folder: Path, profile: TargetProfile, texts: list[str], input_names: tuple[str, ...]) -> dict[str, Any]:
    """folder/mobile/{vocab.txt, tokenizer_spec.json, reference.jsonl}; returns the manifest entry."""
    spec = WordPieceSpec.from_tokenizer_json(folder / "tokenizer.json", profile.input.max_length,
                                             profile.input.truncation)
    reference = [*REFERENCE_EDGE_CASES, *texts]
    # The port must give exactly what the bundle's runtime tokenizer gives, or an app tested against it would ship
    # a tokenizer that disagrees with the model's training.
    runtime_encoder = TextEncoder(folder / "tokenizer.json", profile.input.max_length, profile.input.truncation,
                                  input_names)
    for text in reference:
        ours = encode(spec, text)["input_ids"]
        feed = runtime_encoder([text])
        theirs = feed["input_ids"][0][: int(feed["attention_mask"][0].sum())].tolist()
        if ours != theirs:
            raise StageFailed(f"the WordPiece reference port disagrees with tokenizer.json on {text[:60]!r}: "
                              f"{ours[:12]} vs {theirs[:12]}; report this text as an edgeft bug")
    out = folder / FOLDER
    out.mkdir()
    write_spec(spec, out)
    write_reference(spec, reference, out / REFERENCE_FILE)
    return {"folder": FOLDER, "vocab": f"{FOLDER}/vocab.txt", "spec": f"{FOLDER}/tokenizer_spec.json",
            "reference": f"{FOLDER}/{REFERENCE_FILE}", "reference_texts": len(reference),
            "algorithm": "BERT WordPiece (edgeft/runtime/wordpiece.py)"}


def mobile_readme(profile: TargetProfile, input_names: list[str], min_version: str, ner: bool = False) -> str:
    """The bundle README's section for app developers: Android (Kotlin) and iOS (Swift) with ONNX Runtime Mobile."""
    providers = ", ".join(profile.execution_providers) or "CPU"
    output = _NER_OUTPUT if ner else "The output is `[1, labels]` logits in the order of `labels.json`'s `labels`."
    feeds_kotlin = "\n".join(f'    "{n}" to OnnxTensor.createTensor(env, arrayOf({_kotlin_var(n)}))' for n in input_names)
    return f"""
## In an app (ONNX Runtime Mobile)
Ship `model.ort` (ONNX Runtime {min_version} or later; `required_operators.config` lists the operators a reduced
custom build needs) and the `{FOLDER}/` folder. Execution providers to try, in order: {providers}; ONNX Runtime
falls back to its CPU kernels for anything a provider does not take.

Tokenizer: phones have no Python `tokenizers`, so port the algorithm in `edgeft/runtime/wordpiece.py` (standard
library Python, about 200 lines; its steps are also listed in `{FOLDER}/tokenizer_spec.json`) with `{FOLDER}/vocab.txt`,
and test your port against `{FOLDER}/{REFERENCE_FILE}`: for every line, your `input_ids` must equal the file's.
Inputs are int64 `[1, n]` tensors, n <= {profile.input.max_length}, no padding needed at batch 1:
{", ".join(f"`{n}`" for n in input_names)}. {output}

Android (Kotlin, `com.microsoft.onnxruntime:onnxruntime-android`):
```kotlin
val env = OrtEnvironment.getEnvironment()
val options = OrtSession.SessionOptions().apply {{ addXnnpack(mapOf("intra_op_num_threads" to "{profile.threads}")) }}
val session = env.createSession(assets.open("model.ort").readBytes(), options)
val ids: LongArray = tokenizer.encode(text)            // your port of wordpiece.py
val inputIds = ids; val attentionMask = LongArray(ids.size) {{ 1L }}; val tokenTypeIds = LongArray(ids.size)
val {"tokenLogits" if ner else "logits"} = session.run(mapOf(
{feeds_kotlin}
)).use {{ (it[0].value as {"Array<Array<FloatArray>>" if ner else "Array<FloatArray>"})[0] }}
```

iOS (Swift, the `onnxruntime-objc` pod or Swift package):
```swift
let env = try ORTEnv(loggingLevel: .warning)
let options = try ORTSessionOptions()
try options.appendCoreMLExecutionProvider(with: ORTCoreMLExecutionProviderOptions())
let session = try ORTSession(env: env, modelPath: Bundle.main.path(forResource: "model", ofType: "ort")!,
                             sessionOptions: options)
let ids: [Int64] = tokenizer.encode(text)              // your port of wordpiece.py
func tensor(_ v: [Int64]) throws -> ORTValue {{
    try ORTValue(tensorData: NSMutableData(data: v.withUnsafeBufferPointer {{ Data(buffer: $0) }}),
                 elementType: .int64, shape: [1, NSNumber(value: v.count)])
}}
let outputs = try session.run(withInputs: [{", ".join(f'"{n}": tensor({_swift_value(n)})' for n in input_names)}],
                              outputNames: Set(try session.outputNames()), runOptions: nil)
```
These two snippets show the calls; they are not compiled by edgeft's tests (no Android or iOS toolchain here). The
model and tokenizer files they read are checked: the `.ort` file on an aarch64 onnxruntime, the tokenizer port
against `tokenizers` on every reference text.
"""


# Token classification: what an app does with the output, step by step (edgeft.runtime.tagging.entities_of is the
# reference; the build's samples.jsonl holds the spans it gives, so an app can test its whole path against them).
_NER_OUTPUT = """The output is `[1, n, tags]` logits: one row per token, tags in the order of `labels.json`'s
`labels` (BIO: `O`, `B-type`, `I-type`). From logits to entities (the reference is `entities_of` in
`edgeft/runtime/tagging.py`):
1. Tokenize with offsets and word ids (step 10 of the algorithm in `tokenizer_spec.json`); test them against the
   `offsets` and `word_ids` of every line of `reference.jsonl`, as you test the ids.
2. Each word's tag is the argmax of the row of its first token (the model was trained on first sub-words only;
   other sub-words' rows are not read). [CLS] and [SEP] (word id null) are skipped.
3. Chunk the word tags as conlleval does: `B-x` starts an entity of type x; `I-x` continues the open entity if it
   has type x, and otherwise starts a new one; `O` closes it.
4. An entity's span is [first offset of its first word, last offset of its last word) and its score the mean of its
   words' top softmax probability.

Offsets count **Unicode code points** of the input string, not UTF-16 units: in Kotlin take
`text.substring(text.offsetByCodePoints(0, start), text.offsetByCodePoints(0, end))`; in Swift index
`text.unicodeScalars`. An emoji outside the BMP is one code point and two UTF-16 units. `samples.jsonl` holds
held-out texts with the `entities` this bundle gives for them (text, type, start, end, score): an app's tokenizer,
model call and decoding together must give the same spans."""


def _kotlin_var(name: str) -> str:
    return {"input_ids": "inputIds", "attention_mask": "attentionMask", "token_type_ids": "tokenTypeIds"}.get(name, name)


def _swift_value(name: str) -> str:
    return {"input_ids": "ids", "attention_mask": "ids.map { _ in 1 }", "token_type_ids": "ids.map { _ in 0 }"}.get(name, "ids")
