"""The bundle's input policy, written into the tokenizer files that the ecosystem's own tools read.

edgeft's runtime tokenizes with dynamic padding (a batch pads to its longest text, a single text not at all) and
truncates at the profile's `max_length` on the profile's side. A base model's files often say otherwise: the
sentence-transformers MiniLM ships `tokenizer.json` with padding fixed at 128 tokens, so an app that loads the
bundle's tokenizer as it is (plain `tokenizers`, the Swift / Kotlin / Rust bindings) would pad every text to 128:
4.7x slower for the x86-avx2 bundle, and on aarch64 dynamic int8 then changed predictions. So every bundle states
its own policy where each reader looks:

    tokenizer.json            padding: longest in the batch (never fixed), pad token and id; truncation: max_length,
                              side. Plain `tokenizers` needs no settings at all.
    tokenizer_config.json     model_max_length, truncation_side, padding_side: transformers' AutoTokenizer and
                              pipeline() ignore tokenizer.json's padding and truncate only when asked
                              (`truncation=True`), then at model_max_length on truncation_side.
    special_tokens_map.json   the special tokens, pad token included.

The rewritten tokenizer.json is checked against the runtime's own encoder before the bundle ships.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeft.errors import StageFailed
from edgeft.profile import InputPolicy
from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder

# Keys a tokenizer_config.json may carry from its base model that read like call-time defaults (padding to a fixed
# length, another max_length). transformers does not apply them, but a person or another reader could: they go.
STALE_CONFIG_KEYS = ("max_length", "padding", "truncation", "truncation_strategy", "stride", "pad_to_multiple_of")
SPECIAL_TOKENS = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def write_input_policy(folder: Path, policy: InputPolicy, check_texts: list[str]) -> dict[str, Any]:
    """Rewrite folder's tokenizer files to state `policy`; returns the manifest's record of it."""
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(path))
    pad_token, pad_id = _pad_token(folder, tokenizer)
    tokenizer.no_padding()
    # length=None: pad to the longest text of the batch, as the runtime does; one text is never padded.
    tokenizer.enable_padding(direction="right", pad_id=pad_id, pad_type_id=0, pad_token=pad_token, length=None)
    tokenizer.enable_truncation(policy.max_length, stride=0, strategy="longest_first", direction=policy.truncation)
    tokenizer.save(str(path))

    config_path = folder / "tokenizer_config.json"
    config = _read_json(config_path)
    for key in STALE_CONFIG_KEYS:
        config.pop(key, None)
    config.update(model_max_length=policy.max_length, truncation_side=policy.truncation, padding_side="right",
                  pad_token=config.get("pad_token", pad_token))
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    specials_path = folder / "special_tokens_map.json"
    specials = _read_json(specials_path)
    for key in SPECIAL_TOKENS:
        if key not in specials and isinstance(config.get(key), str):
            specials[key] = config[key]
    specials.setdefault("pad_token", pad_token)
    specials_path.write_text(json.dumps(specials, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    _check_plain_tokenizer(path, policy, check_texts)
    return {"padding": "longest in the batch", "pad_token": pad_token, "pad_token_id": pad_id,
            "max_length": policy.max_length, "truncation": policy.truncation,
            "files": ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]}


def _pad_token(folder: Path, tokenizer) -> tuple[str, int]:
    """The pad token and id: tokenizer.json's padding section, else the configs' pad_token, else [PAD] / <pad>."""
    padding = tokenizer.padding or {}
    candidates = [padding.get("pad_token"), _read_json(folder / "tokenizer_config.json").get("pad_token"),
                  _read_json(folder / "special_tokens_map.json").get("pad_token"), "[PAD]", "<pad>"]
    for token in candidates:
        if isinstance(token, dict):  # transformers may write {"content": "[PAD]", ...}
            token = token.get("content")
        if isinstance(token, str) and tokenizer.token_to_id(token) is not None:
            return token, tokenizer.token_to_id(token)
    raise StageFailed(f"{folder / 'tokenizer.json'}: no pad token found in its vocabulary ([PAD] or <pad>, or one "
                      f"named in tokenizer_config.json); add one to the base model's tokenizer")


def _check_plain_tokenizer(path: Path, policy: InputPolicy, texts: list[str]) -> None:
    """Plain `tokenizers`, loaded with no settings, must give exactly the runtime encoder's arrays (single texts and
    one padded batch), or an app reading the file would feed the model something else than was measured."""
    import numpy as np
    from tokenizers import Tokenizer

    plain = Tokenizer.from_file(str(path))
    runtime = TextEncoder(path, policy.max_length, policy.truncation, TOKENIZER_OUTPUTS)
    batch = plain.encode_batch(texts)
    expected = runtime(texts)
    got = {"input_ids": [e.ids for e in batch], "attention_mask": [e.attention_mask for e in batch],
           "token_type_ids": [e.type_ids for e in batch]}
    for name in TOKENIZER_OUTPUTS:
        if not np.array_equal(np.asarray(got[name], dtype=np.int64), expected[name]):
            raise StageFailed(f"the bundle's tokenizer.json gives other {name} than edgeft's runtime encoder; "
                              f"report this as an edgeft bug with the base model's tokenizer files")


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}
