"""Word logits of a token classifier: sentences batched by word pieces, each sentence's first sub-words read back."""

from __future__ import annotations

import numpy as np

from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
from edgeft.runtime.tagging import word_logits


def test_word_logits_batch_sentences_by_pieces_and_give_each_its_first_sub_words(tiny_model, monkeypatch):
    encode = TextEncoder(tiny_model / "tokenizer.json", 128, "right", TOKENIZER_OUTPUTS)
    # Twenty characters in one unknown word (one piece) against ten one-letter words (ten pieces): a character sort
    # would batch them the wrong way round.
    sentences = [["zzzzzzzzzzzzzzzzzzzz"], list("abcdefghij"), ["zzzzzzzzzzzzzzzzzzz"], list("abcdefghi"),
                 ["zzzzzzzzzzzzzzzzzz"], list("abcdefgh"), [], ["zz", "z"]]
    widths = []

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        """A fake session whose logits at a position depend on that token and position only, as a real encoder's
        do on right-padded input (up to float noise)."""
        ids = feeds["input_ids"]
        widths.append(ids.shape[1])
        position = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
        return np.stack([ids * 1.0, position * 1.0, ids * 0.5 + position], axis=-1).astype(np.float32)

    batched = word_logits(run, encode, sentences, batch_size=2)
    assert widths == sorted(widths)  # short sentences in pieces first, not short in characters
    pieces = [len(e.ids) for e in encode.tokenizer.encode_batch(sentences, is_pretokenized=True)]
    by_chars = np.argsort([sum(map(len, s)) for s in sentences], kind="stable")
    assert sum(widths) < sum(max(pieces[i] for i in by_chars[k:k + 2]) for k in range(0, len(sentences), 2))
    for sentence, logits in zip(sentences, batched):
        alone = word_logits(run, encode, [sentence])[0]
        np.testing.assert_array_equal(logits, alone)
        assert logits.shape == (len(sentence), 3)  # one row per word: every word here is a single piece
        np.testing.assert_array_equal(logits[:, 1], np.arange(1, len(sentence) + 1))  # after [CLS], in word order
    # A long file is tokenized and sorted a block at a time: every sentence still gets its own logits.
    monkeypatch.setattr("edgeft.runtime.encoder.SORTED_BLOCK", 3)
    for logits, alone in zip(word_logits(run, encode, sentences, batch_size=2), batched):
        np.testing.assert_array_equal(logits, alone)
