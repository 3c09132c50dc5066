"""Smaller word-embedding tables for ONNX encoders, without touching the tokenizer.

The word-embedding table is most of a distilled student's file (MiniLM: 30,522 x 384 of a 3-layer student's
~15 MB), and a user's texts use a fraction of its rows. Two rewrites, both inside the graph, so the bundle keeps the
base model's tokenizer, every tokenizer port agrees, and `input_ids` means what it meant before:

- **Trim** (`trim_word_embeddings`): only the rows of the word pieces that a named text needs stay; a Gather on a
  small int32 id-remap table in front of the embedding lookup sends every other id to the [UNK] row. A text whose
  pieces were all kept runs bit-identically; an unseen piece is looked up as [UNK], the original tokenizer's own
  answer to a word it cannot spell.
- **4-bit table** (`quantize_table_4bit`): the (kept) table stored as 4-bit codes, two per byte, into a palette of 16
  values (1-D k-means over the table), decoded with standard ONNX operators (Cast, Gather, Reshape): no contrib op.
  The palette's values are 8-bit, so the decoded table is the int8 presets' own uint8 table + DequantizeLinear. It is
  decoded either whole, by the runtime's constant folding when the session loads (`decode="load"`: per call and in
  memory the same as the int8 table), or per call, only the looked-up rows (`"lookup"`: for formats whose converter
  would fold the decoded table back into the file, as ONNX Runtime's .ort converter does).
  Measured on the tweets student (docs/experiments/vocabulary.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeft.errors import StageFailed

REMAP = "edgeft_vocabulary_remap"
TRIMMED_IDS = "edgeft_trimmed_input_ids"
# Part of the quantize stage's cache key: a new way of storing 4-bit rows must not reuse models stored the old way.
TABLE_FORMAT = "u4-palette-u8-v2"


@dataclass(frozen=True)
class Trim:
    kept: np.ndarray  # sorted original ids that keep their rows
    vocabulary: int  # rows before trimming


def pieces_of(tokenizer_file: Path, texts: list[str]) -> Trim:
    """The ids the base tokenizer gives these texts (untruncated), plus every special and added token's id."""
    from edgeft.runtime.encoder import whole_text_tokenizer

    tokenizer = whole_text_tokenizer(tokenizer_file)
    used = {i for enc in tokenizer.encode_batch(texts) for i in enc.ids}
    used |= set(tokenizer.get_added_tokens_decoder())  # [PAD] [UNK] [CLS] [SEP] [MASK] and any added token
    return Trim(np.array(sorted(used), dtype=np.int64), tokenizer.get_vocab_size(with_added_tokens=True))


def _word_embedding_gather(graph):
    """The Gather that looks `input_ids` (or their trimmed remap) up in a [vocabulary, hidden] initializer."""
    from onnx import numpy_helper

    inits = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Gather" and node.input[1] in ("input_ids", TRIMMED_IDS) and node.input[0] in inits:
            table = inits[node.input[0]]
            if len(table.dims) == 2:
                return node, table, numpy_helper.to_array(table)
    raise StageFailed("found no Gather of input_ids in a 2-D initializer (the word embeddings) in the exported graph")


def _unk_id(tokenizer_file: Path) -> int:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    unk = tokenizer.token_to_id("[UNK]")
    if unk is None:
        raise StageFailed(f"{tokenizer_file}: no [UNK] token to send dropped word pieces to; keep the full vocabulary")
    return unk


def trim_word_embeddings(model, trim: Trim, tokenizer_file: Path) -> dict[str, int]:
    """In place on an onnx ModelProto: keep `trim.kept` rows, remap every id in the graph. Returns the counts."""
    from onnx import helper, numpy_helper

    graph = model.graph
    node, table, weights = _word_embedding_gather(graph)
    if weights.shape[0] != trim.vocabulary:
        raise StageFailed(f"word-embedding table has {weights.shape[0]} rows, the tokenizer {trim.vocabulary} ids")
    unk = _unk_id(tokenizer_file)
    kept = np.union1d(trim.kept, [unk])  # [UNK] keeps its row whatever the texts were: dropped ids land there
    remap = np.full(weights.shape[0], int(np.searchsorted(kept, unk)), dtype=np.int32)
    remap[kept] = np.arange(len(kept), dtype=np.int32)
    table.CopyFrom(numpy_helper.from_array(weights[kept], table.name))
    graph.initializer.append(numpy_helper.from_array(remap, REMAP))
    lookup = helper.make_node("Gather", [REMAP, "input_ids"], [TRIMMED_IDS], name="edgeft_vocabulary_remap_gather")
    node.input[1] = TRIMMED_IDS
    position = list(graph.node).index(node)
    graph.node.insert(position, lookup)
    return {"kept": int(len(kept)), "vocabulary": int(weights.shape[0])}


def quantize_table_4bit(model, decode: str = "lookup") -> dict[str, object]:
    """In place: the word-embedding Gather's table becomes 4-bit codes (two per byte, low nibble first) into a
    16-value palette, decoded as `decode` says. Returns the rows, the largest absolute weight error and the new
    nodes' names (which an int8 quantizer must leave alone)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    node, table, weights = _word_embedding_gather(graph)
    rows, hidden = weights.shape
    if hidden % 2:
        raise StageFailed(f"4-bit embedding rows need an even width; this table is {hidden} wide")
    palette = _palette(weights, 16)
    codes = np.abs(weights[..., None] - palette).argmin(-1).astype(np.uint8)
    packed = codes[:, 0::2] | (codes[:, 1::2] << 4)
    # The palette itself as 8-bit values of one scale: the decoded table is then the int8 presets' uint8 table and
    # every call pays what theirs does (a Gather of bytes and a DequantizeLinear), with the same memory.
    scale = max(float(palette.max() - palette.min()), 1e-8) / 255.0
    zero = int(np.clip(np.round(-palette.min() / scale), 0, 255))
    levels = np.clip(np.round(palette / scale) + zero, 0, 255).astype(np.uint8)
    error = float(np.abs((levels[codes].astype(np.float32) - zero) * scale - weights).max())
    # Every byte's two 8-bit values, low nibble first: one Gather turns a row of bytes into a row of values.
    pairs = np.stack([levels[np.arange(256) & 15], levels[np.arange(256) >> 4]], axis=1)

    name, out = table.name, node.output[0]
    p = f"{name}_u4"
    graph.initializer.remove(table)
    graph.initializer.extend([
        numpy_helper.from_array(packed, p),
        numpy_helper.from_array(pairs, f"{p}_pairs"),
        numpy_helper.from_array(np.array(scale, dtype=np.float32), f"{p}_scale"),
        numpy_helper.from_array(np.array(zero, dtype=np.uint8), f"{p}_zero"),
    ])
    ids = node.input[1]
    dequantize = helper.make_node("DequantizeLinear", [f"{p}_u8", f"{p}_scale", f"{p}_zero"], [out],
                                  name=f"{p}_dequantized")
    if decode == "load":
        # Every node before the lookup reads initializers only: the runtime's constant folding decodes the whole
        # table to bytes once, when the session is created.
        shape = numpy_helper.from_array(np.array([rows, hidden], dtype=np.int64), f"{p}_table_shape")
        graph.initializer.append(shape)
        nodes = [
            helper.make_node("Cast", [p], [f"{p}_byte_ids"], to=TensorProto.INT32, name=f"{p}_cast"),
            helper.make_node("Gather", [f"{p}_pairs", f"{p}_byte_ids"], [f"{p}_values"], name=f"{p}_unpack"),
            helper.make_node("Reshape", [f"{p}_values", shape.name], [f"{p}_table"], name=f"{p}_table"),
            helper.make_node("Gather", [f"{p}_table", ids], [f"{p}_u8"], name=f"{p}_gather"),
            dequantize,
        ]
    else:
        # [batch, seq, hidden/2, 2] -> [batch, seq, hidden]: 0 in Reshape copies the input's dimension.
        shape = numpy_helper.from_array(np.array([0, 0, hidden], dtype=np.int64), f"{p}_shape")
        graph.initializer.append(shape)
        nodes = [
            helper.make_node("Gather", [p, ids], [f"{p}_bytes"], name=f"{p}_gather"),
            # Gather takes int32/int64 indices only.
            helper.make_node("Cast", [f"{p}_bytes"], [f"{p}_byte_ids"], to=TensorProto.INT32, name=f"{p}_cast"),
            helper.make_node("Gather", [f"{p}_pairs", f"{p}_byte_ids"], [f"{p}_values"], name=f"{p}_unpack"),
            helper.make_node("Reshape", [f"{p}_values", shape.name], [f"{p}_u8"], name=f"{p}_codes"),
            dequantize,
        ]
    position = list(graph.node).index(node)
    graph.node.remove(node)
    for offset, new in enumerate(nodes):
        graph.node.insert(position + offset, new)
    return {"rows": int(rows), "max_abs_error": error, "nodes": [n.name for n in nodes]}


def _palette(weights: np.ndarray, levels: int, rounds: int = 20) -> np.ndarray:
    """1-D k-means (Lloyd) over all the table's values, from quantile starts: the `levels` values that codes index."""
    values = np.sort(weights.ravel().astype(np.float64))
    centres = np.quantile(values, (np.arange(levels) + 0.5) / levels)
    for _ in range(rounds):
        edges = (centres[1:] + centres[:-1]) / 2
        cuts = np.searchsorted(values, edges)
        sums = np.add.reduceat(values, np.r_[0, cuts]) if len(values) else centres
        counts = np.diff(np.r_[0, cuts, len(values)])
        centres = np.where(counts > 0, sums / np.maximum(counts, 1), centres)
    return centres.astype(np.float32)
