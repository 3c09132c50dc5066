"""The bundle's README.md: what the model is, how it compares to its fp32 teacher, and what it was trained on."""

from __future__ import annotations

from typing import Any

from edgeft.data.text import dropped_text
from edgeft.profile import ModelFormat, TargetProfile
from edgeft.reports.tables import selection_rows
from edgeft.runtime.onnxruntime_session import EXACT_INT8_KEY
from edgeft.runtime.openvino_session import F32_PRECISION


def model_card(profile: TargetProfile, report: dict[str, Any], manifest: dict[str, Any], spec: dict[str, Any],
               requires: dict[str, Any]) -> str:
    m = report["metrics"]
    inputs = manifest["inputs"]
    where = ("this host" if report["latency_on_target_hardware"] else
             f"this build host ({report['host']['machine']}, {', '.join(report['host']['isa']) or 'no SIMD flags'}), "
             f"not the {profile.isa.value} target: run `edgeft bench` on the device for device latency")
    distilled = manifest.get("distill")
    origin = ""
    fallback = report.get("student_fallback")
    if fallback and not distilled:
        # The profile's description names its student: say plainly that this bundle holds the teacher instead.
        origin = (f"\nThe shipped model is the fine-tuned teacher, not the profile's student, which did not ship: "
                  f"{fallback['reason']}.\n")
    if distilled:
        st = distilled["student"]
        origin = (f"\nThe shipped model is a student distilled from the fine-tuned teacher: {student_shape(st)}, "
                  f"{st['parameters'] / 1e6:.1f} M parameters against the teacher's {st['teacher_parameters'] / 1e6:.1f} M, "
                  f"trained on {distilled['train_samples']} labelled and {distilled['extra_texts']} unlabelled texts "
                  f"with the teacher's soft targets.\n")
    if (manifest.get("finetune") or {}).get("pooling") == "mean":
        # Whoever re-exports the teacher folder with stock tools must know its head is not BERT's [CLS] pooler.
        origin += ("\nThe classifier reads the mean of the last layer's token vectors over the real tokens (the "
                   "pooling the base model was trained with), not BERT's [CLS] pooler; the exported graph computes "
                   "it, so the model files here need nothing extra.\n")
    origin += _float_line(report["selection"])
    table_note = _word_embeddings_line(report.get("word_embeddings"))
    rows = "\n".join(f"| {r['model']} | {r['runtime']} | {r.get('score', r['accuracy']):.4f} | {r['macro_f1']:.4f} | {r['p50_ms']:.2f} "
                     f"| {r['p90_ms']:.2f} | {r['size_mb']:.1f} |" for r in report["models"])
    if report.get("baseline"):
        b = report["baseline"]
        rows += f"\n| {b['model']}: {b['description']} | - | {b['score']:.4f} | {b['macro_f1']:.4f} | - | - | - |"
    ner = report.get("task") == "ner"
    what = "sentences (entity-level, exact spans, conlleval rules)" if ner else "texts"
    example = "Apple opened a store in Paris" if ner else "text to classify"
    ner_use = (": each text gives its entity spans (text, type, character start and end, score); tags in "
               "`labels.json` are BIO" if ner else "")
    app = ""
    if "mobile" in spec:
        from edgeft.stages.mobile import mobile_readme

        app = mobile_readme(profile, spec["model_inputs"], requires["min_runtime_version"], ner)
    selection = report["selection"]
    table = selection_rows(selection)
    candidates = "\n".join("| " + " | ".join(row.values()) + " |" for row in table)
    verdict = report.get("verdict") or {}
    banner = ("" if verdict.get("passed", True) else
              f"\n> **Not for shipping: this bundle failed its build's checks** ({'; '.join(verdict['failed'])}). "
              f"`edgeft build` exited 1 and wrote it for inspection only.\n")
    return f"""# {profile.name} bundle
{banner}
Target profile: {profile.description}.
{origin}
| model | runtime | {report.get('metric', 'accuracy')} | macro-F1 | p50 ms | p90 ms | size MiB |
|---|---|---|---|---|---|---|
{rows}

{_sentence_case(report.get('metric', 'accuracy'))} on {m['n']} held-out {what}, measured with the shipped runtime.{_floor_line(report)}{table_note} Latency: batch 1, {profile.threads} thread(s),
model call only (texts pre-tokenized), measured on {where}.

## Quantization: how the shipped scheme was chosen
Decided by {selection['decided_by']}. {_sentence_case(selection.get('metric', 'accuracy'))} on the dev split (never the test split), drop against the
fp32 reference `{selection.get('reference', '-')}` (± its standard error, paired bootstrap over the dev examples; drop + error
must fit the budget); {_race_where(selection)}.

| {' | '.join(table[0])} |
|{'---|' * len(table[0])}
{candidates}

## Input policy
At most {profile.input.max_length} tokens per text (special tokens included); longer texts are cut on the
{profile.input.truncation}; a batch is padded to its longest text, a single text not at all. The tokenizer files
say so themselves, so other tools read them as edgeft runs them: plain `tokenizers` needs no settings
(`Tokenizer.from_file("tokenizer.json").encode_batch(texts)`), and transformers reads `model_max_length` and
`truncation_side` from `tokenizer_config.json` but truncates only when asked:
`AutoTokenizer.from_pretrained(folder)(texts, truncation=True, padding=True)`. Labels: `labels.json` (and
`id2label` in `config.json`).
{_ecosystem_use(profile, ner)}
## Use
```python
import edgeft.runtime
bundle = edgeft.runtime.load("path/to/this/folder")
bundle.predict(["{example}"])
```
or `edgeft predict path/to/this/folder "{example}"`{ner_use}.
{app}
## Data and licences
- Base model: {inputs['base_model']['name']} ({inputs['base_model']['licence']}).
- Data: {inputs['data']['source']} ({inputs['data']['licence'] or 'licence: as stated by the data owner'}),
  {inputs['data']['rows']} {'sentences' if ner else 'texts'} after dropping {dropped_text(inputs['data']['dropped'])};
  split train {inputs['split']['train']} / dev {inputs['split']['dev']} / test {inputs['split']['test']} (seed {manifest['seed']}).
- `samples.jsonl` holds {min(64, m['n'])} held-out texts with this build's predictions, for checks on a device;
  they fall under the data licence above.

`manifest.json` pins every input by hash, the library versions and the minimum runtime version.
"""


def _float_line(selection: dict[str, Any]) -> str:
    """A float model shipped where the profile offered quantized ones (a small set's int8 candidates all over the
    budget, say): the profile's description promises int8, so the card says plainly that this bundle is not."""
    rows = selection.get("candidates") or []
    chosen = next((r for r in rows if r.get("status") == "chosen"), None)
    if chosen is None or chosen["scheme"] != "fp32" or all(r["scheme"] == "fp32" for r in rows):
        return ""
    return (f"\nThe shipped model is not quantized: `{chosen['name']}` is float32, because no quantized candidate "
            f"was chosen (the candidate table below gives each one's reason).\n")


def _ecosystem_use(profile: TargetProfile, ner: bool) -> str:
    """How the bundle loads in Hugging Face's own tools, where they read its format (Optimum's ORTModel reads .onnx
    only: a .ort bundle is for ONNX Runtime Mobile)."""
    kind = "TokenClassification" if ner else "SequenceClassification"
    task = "token-classification" if ner else "text-classification"
    call = "tagger(text)  # truncates at model_max_length itself" if ner else "tagger(texts, truncation=True)"
    if profile.format is ModelFormat.ORT:
        return ""
    module = "optimum.intel" if profile.format is ModelFormat.OPENVINO_IR else "optimum.onnxruntime"
    cls = f"OVModelFor{kind}" if profile.format is ModelFormat.OPENVINO_IR else f"ORTModelFor{kind}"
    load, preamble = f"{cls}.from_pretrained(folder)", ""
    if profile.format is ModelFormat.OPENVINO_IR:
        # edgeft compiles at f32 (runtime/openvino_session.py); the plugin's default on a CPU with bf16 units (Zen 4,
        # Sapphire Rapids) is bf16, which moves logits by a few hundredths and can flip a close label.
        load = f"{cls}.from_pretrained(folder, ov_config={F32_PRECISION!r})"
        preamble = "# f32 as edgeft runs it: on a CPU with bf16 units OpenVINO would otherwise compute in bf16\n"
    if profile.isa.exact_int8 and profile.format is ModelFormat.ONNX:
        # The bundle's `exact_int8`: off the device, an x86 CPU without VNNI would clip int8 sums the target does not.
        load = f"{cls}.from_pretrained(folder, session_options=options)"
        preamble = ("import onnxruntime\n"
                    "# int8 computed exactly, as the target does (an x86 CPU without VNNI clips it)\n"
                    "options = onnxruntime.SessionOptions()\n"
                    f'options.add_session_config_entry("{EXACT_INT8_KEY}", "1")\n')
    return f"""
With Hugging Face Optimum (same labels as `edgeft predict`; tested):
```python
{preamble}from transformers import AutoTokenizer, pipeline
from {module} import {cls}
tagger = pipeline("{task}", model={load}, tokenizer=AutoTokenizer.from_pretrained(folder))
{call}
```
"""


def _race_where(selection: dict[str, Any]) -> str:
    latency = selection.get("latency")
    if latency:
        return f"latency batch 1, {latency['threads']} thread(s), timed on {latency.get('where', 'this build host')}"
    if (selection.get("device") or {}).get("emulated"):
        return "nothing timed: labels checked on the emulated aarch64 runtime (column `emulated aarch64`)"
    return "no latency race: this build host lacks the target's hardware"


def _sentence_case(metric: str) -> str:
    return metric[:1].upper() + metric[1:]  # "entity F1" -> "Entity F1", where capitalize() gave "Entity f1"


def _floor_line(report: dict[str, Any]) -> str:
    floor = report.get("floor")
    if not floor:
        return ""
    verdicts = ", ".join(f"{who} {'beats it' if floor[who]['passed'] else 'does NOT beat it'} (margin "
                         f"{floor[who]['margin']:+.4f}, 95 % lower bound {floor[who]['lower_bound']:+.4f})"
                         for who in ("teacher", "shipped"))
    fallback, check = report.get("student_fallback"), report.get("student_check")
    shipped = ""
    if fallback:
        shipped = f" Shipped the teacher: {fallback['reason']}."
    elif check and check.get("passed"):
        from edgeft.gating.student import passed_line, rule_figures

        shipped = f" Shipped the student: {passed_line(check)}."
        for earlier in report.get("student_tries", [])[:-1]:  # students that failed the dev rule before this one
            shipped += (f" A {earlier['layers']}-layer student was tried first and failed the dev rule "
                        f"({rule_figures(earlier['check'])}).")
    return f" Floor: the {floor['baseline']} baseline ({floor['rule']}): {verdicts}.{shipped}"


def _word_embeddings_line(table: dict[str, Any] | None) -> str:
    """What a user must know of a trimmed vocabulary: which pieces still have rows, and what the others become."""
    if not table:
        return ""
    line = ""
    if table.get("vocabulary"):
        line += (f" The word-embedding table keeps {table['rows']} of {table['vocabulary']} word pieces, those of the "
                 f"{table['chosen_by']}; any other piece is looked up as [UNK] (an id remap inside the model: the "
                 f"tokenizer files are the base model's).")
    if table.get("bits") == 4:
        line += " The table is stored as 4-bit codes into a palette of 16 values."
    return line


def student_shape(st: dict) -> str:
    """A distilled student's shape in words, from the distill manifest's `student` section."""
    if not st.get("copied", True):
        return f"a {st['layers']}-layer model of its own (hidden width {st.get('hidden_size', '?')})"
    shape = f"{st['layers']} of the teacher's layers (teacher layers {st['teacher_layers']})"
    if st.get("basis_energy") is not None:  # narrowed: stages/narrow.py
        shape += (f" narrowed to hidden width {st['hidden_size']} ({st['heads']} heads; the projection keeps "
                  f"{st['basis_energy']:.0%} of the teacher's hidden-state energy)")
    return shape + f", feed-forward width {st['ffn']}"
