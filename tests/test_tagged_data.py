"""NER data: CoNLL-style and JSONL files of tagged tokens, validation errors with file and line, deduplication,
the seeded split, and the packaged WNUT-16 set."""

from __future__ import annotations

import hashlib
import json

import pytest

from edgeft.errors import BadInput
from edgeft.data.tagged import TaggedDataset, load_tagged, split_tagged

SENTENCES = [
    (["Alice", "visited", "New", "York", "."], ["B-person", "O", "B-geo-loc", "I-geo-loc", "O"]),
    (["nothing", "here"], ["O", "O"]),
    (["Go", "Lakers", "!"], ["O", "B-sportsteam", "O"]),
]


def write(tmp_path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def conll(sentences) -> str:
    return "\n\n".join("\n".join(f"{tok}\t{tag}" for tok, tag in zip(*s)) for s in sentences) + "\n"


def jsonl(sentences, tag_key: str = "tags") -> str:
    return "".join(json.dumps({"tokens": toks, tag_key: tags}) + "\n" for toks, tags in sentences)


def test_conll_file_reads_tokens_tags_and_names(tmp_path):
    path = write(tmp_path, "d.conll", conll(SENTENCES))
    ds = load_tagged(path)
    assert ds.sentences == [s[0] for s in SENTENCES] and ds.tags == [s[1] for s in SENTENCES]
    assert ds.texts == ["Alice visited New York .", "nothing here", "Go Lakers !"]
    assert ds.entity_types == ["geo-loc", "person", "sportsteam"]
    # B- and I- for every type, even I-person and I-sportsteam, which the file never writes.
    assert ds.tag_names == ["O", "B-geo-loc", "I-geo-loc", "B-person", "I-person", "B-sportsteam", "I-sportsteam"]
    assert ds.source == path and ds.dropped == {}
    assert ds.sha256 == hashlib.sha256((tmp_path / "d.conll").read_bytes()).hexdigest()


def test_conll_and_jsonl_read_the_same_sentences(tmp_path):
    loaded = [load_tagged(write(tmp_path, "d.conll", conll(SENTENCES))),
              load_tagged(write(tmp_path, "d.jsonl", jsonl(SENTENCES))),
              load_tagged(write(tmp_path, "hf.ndjson", jsonl(SENTENCES, tag_key="ner_tags")))]
    for ds in loaded:
        assert (ds.sentences, ds.tags) == (loaded[0].sentences, loaded[0].tags)


def test_a_loaded_dataset_written_back_reads_the_same(tmp_path):
    first = load_tagged(write(tmp_path, "a.jsonl", jsonl(SENTENCES)))
    again = load_tagged(write(tmp_path, "b.txt", conll(zip(first.sentences, first.tags))))
    assert (again.sentences, again.tags) == (first.sentences, first.tags)


def test_conll_2003_columns_docstart_spaces_crlf_and_bom(tmp_path):
    # Four space-separated columns (token POS chunk tag): the tag is the last one, the token the first. A
    # -DOCSTART- line ends the sentence before it even without a blank line.
    content = ("\ufeff-DOCSTART- -X- -X- O\r\n\r\nEU NNP B-NP B-ORG\r\nrejects VBZ B-VP O\r\n"
               "-DOCSTART- -X- -X- O\r\nPeter NNP B-NP B-PER\r\nBlackburn NNP I-NP I-PER\r\n")
    ds = load_tagged(write(tmp_path, "train.bio", content))
    assert ds.sentences == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert ds.tags == [["B-ORG", "O"], ["B-PER", "I-PER"]]


def test_tab_separated_tokens_keep_unicode_spaces_and_whitespace_lines_separate(tmp_path):
    # WNUT-16 separates tweets with a line holding a lone tab; a token may hold a no-break space.
    ds = load_tagged(write(tmp_path, "d.tsv", "San\u00a0Jose\tB-geo-loc\n\t\nhi\tO\n"))
    assert ds.sentences == [["San\u00a0Jose"], ["hi"]]
    # In a tab-separated line a token may hold a plain space too: "New York" is one token, no word is lost.
    ds = load_tagged(write(tmp_path, "s.tsv", "Visit\tO\nNew York\tB-LOC\ntoday\tO\n\nhi\tO\n"))
    assert ds.sentences[0] == ["Visit", "New York", "today"] and ds.tags[0] == ["O", "B-LOC", "O"]
    # Space-separated CoNLL-2003 columns (token POS chunk tag) still read the first and the last.
    ds = load_tagged(write(tmp_path, "c.txt", "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nhi NN B-NP O\n"))
    assert ds.sentences[0] == ["EU", "rejects"] and ds.tags[0] == ["B-ORG", "O"]


def test_unicode_line_separators_inside_a_tweet_are_text_not_line_breaks(tmp_path):
    row = json.dumps({"tokens": ["one\u2028two", "Paris"], "tags": ["O", "B-geo-loc"]}, ensure_ascii=False)
    path = write(tmp_path, "d.jsonl", row + "\n" + "{broken\n")
    assert f"{path} line 2: invalid JSON" in rejected(path)  # line numbers count "\n" only, as an editor does
    path = write(tmp_path, "ok.jsonl", row + "\n")
    assert load_tagged(path).sentences == [["one\u2028two", "Paris"]]


def test_iob1_tags_are_kept_as_written(tmp_path):
    # IOB1: I- opens an entity; kept as is, the metrics read it with conlleval semantics.
    ds = load_tagged(write(tmp_path, "d.iob", "Alice I-PER\nsaw O\nBob I-PER\n"))
    assert ds.tags == [["I-PER", "O", "I-PER"]]
    assert ds.tag_names == ["O", "B-PER", "I-PER"]


def test_duplicate_sentences_are_dropped_first_kept_and_counted(tmp_path):
    twice = [SENTENCES[0], SENTENCES[2], (SENTENCES[0][0], ["O"] * 5), SENTENCES[2]]
    ds = load_tagged(write(tmp_path, "d.conll", conll(twice)))
    assert ds.sentences == [SENTENCES[0][0], SENTENCES[2][0]]
    assert ds.tags[0] == SENTENCES[0][1]  # the first copy's tags, even when a later copy disagrees
    assert ds.dropped == {"duplicate sentence": 2}


def test_jsonl_sentences_without_tokens_are_dropped_and_counted(tmp_path):
    ds = load_tagged(write(tmp_path, "d.jsonl", jsonl([([], []), SENTENCES[0]])))
    assert ds.sentences == [SENTENCES[0][0]] and ds.dropped == {"empty sentence": 1}


def rejected(path: str, **kwargs) -> str:
    with pytest.raises(BadInput) as exc:
        load_tagged(path, **kwargs)
    message = str(exc.value)
    assert exc.value.exit_code == 2 and "\n" not in message  # a user error: exit 2, one line for CI logs
    return message


@pytest.mark.parametrize("name, content, where, fix", [
    ("d.conll", "Alice\tB-PER\nsaw\n", "line 2: one column ('saw')", "separated by a tab or spaces"),
    ("d.conll", "Alice\tB-PER\n\nBob\tS-PER\n", "line 3: tag 'S-PER' is not O, B-TYPE or I-TYPE", "BIOES"),
    ("d.conll", "Alice\tPER\n", "line 1: tag 'PER'", "keep the tag in the last column"),
    ("d.jsonl", '{"tokens": ["a"], "tags": ["B-X"]}\n{broken\n', "line 2: invalid JSON", "one {\"tokens\""),
    ("d.jsonl", '["a", "B-X"]\n', "line 1: expected a JSON object, got list", "per line"),
    ("d.jsonl", '{"words": ["a"], "tags": ["B-X"]}\n', "line 1: no key 'tokens' (keys: words, tags)", "per line"),
    ("d.jsonl", '{"tokens": ["a", "b"], "tags": ["B-X"]}\n', "line 1: 2 tokens but 1 tags", "one tag per token"),
    ("d.jsonl", '{"tokens": ["a", 7], "tags": ["B-X", "O"]}\n', "line 1: token 1 is 7 (int)", "quote every"),
    ("d.jsonl", '{"tokens": ["a", " "], "tags": ["B-X", "O"]}\n', "line 1: token 1 is blank", "remove"),
    ("d.jsonl", '{"tokens": "a b", "tags": ["B-X", "O"]}\n', "line 1: 'tokens' is a str, not a list", "per line"),
    ("d.jsonl", '{"tokens": ["a"], "ner_tags": [3]}\n', "line 1: 'ner_tags' holds class ids (3)", "under 'tags'"),
    ("d.jsonl", '{"tokens": ["a"], "tags": ["b-x"]}\n', "line 1, tag 0: tag 'b-x' is not O", "BIO"),
])
def test_bad_lines_name_the_file_the_line_and_the_fix(tmp_path, name, content, where, fix):
    path = write(tmp_path, name, content)
    message = rejected(path)
    assert message.startswith(f"data file {path} {where}")
    assert fix in message


@pytest.mark.parametrize("name, content, problem", [
    ("d.conll", "", "is empty"),
    ("d.conll", " \n\t\n", "is empty"),
    ("d.conll", "-DOCSTART- -X- O\n\n", "has no sentences; write one token and its tag per line"),
    ("d.jsonl", '{"tokens": [], "tags": []}\n', "has no sentences; write one {\"tokens\""),
    ("d.conll", "just\tO\nwords\tO\n", "has no entity: every tag is O"),
])
def test_files_that_cannot_train_a_ner_model_are_rejected(tmp_path, name, content, problem):
    path = write(tmp_path, name, content)
    assert rejected(path).startswith(f"data file {path} {problem}")


def test_undecodable_bytes_name_the_line_and_the_encoding_flag(tmp_path):
    path = write(tmp_path, "d.conll", b"Alice\tB-PER\n\ncaf\xe9\tO\n")
    assert f"data file {path} line 3: byte 0xe9 is not valid utf-8; pass --encoding" in rejected(path)
    assert load_tagged(path, encoding="latin-1").sentences == [["Alice"], ["caf\u00e9"]]
    assert "unknown --encoding 'klingon'" in rejected(path, encoding="klingon")


def test_missing_files_folders_and_unknown_extensions(tmp_path):
    assert "does not exist" in rejected(str(tmp_path / "nope.conll"))
    assert "is a folder" in rejected(str(tmp_path))
    assert "unknown extension '.csv' for tagged tokens" in rejected(write(tmp_path, "d.csv", "a,O\n"))


def test_a_packaged_text_classification_set_is_not_ner_data():
    assert "holds labelled texts, not tagged tokens; choose a NER set: wnut16" in rejected("packaged:tweets")
    assert "unknown packaged dataset 'nope'" in rejected("packaged:nope")


def tiny(n: int) -> TaggedDataset:
    return TaggedDataset([[f"w{i}"] for i in range(n)], [["B-X"]] * n, "memory", "0" * 64)


def test_split_is_seeded_disjoint_complete_and_sorted():
    ds = tiny(100)
    split = split_tagged(ds, seed=0)
    # A small set gets the larger held-out shares (15 % / 20 %), a large one 10 % each (WNUT-16: 230 and 230).
    assert (len(split.train), len(split.dev), len(split.test)) == (65, 15, 20)
    large = split_tagged(tiny(3000), seed=0)
    assert (len(large.train), len(large.dev), len(large.test)) == (2400, 300, 300)
    assert sorted(split.train + split.dev + split.test) == list(range(100))
    assert all(part == sorted(part) for part in (split.train, split.dev, split.test))
    assert split_tagged(ds, seed=0) == split  # same data and seed: the same split, so a manifest can pin it
    assert split_tagged(ds, seed=1).test != split.test


def test_split_needs_ten_sentences_and_sane_fractions():
    assert len(split_tagged(tiny(10), seed=0).train) == 6
    with pytest.raises(BadInput, match="has only 9 sentences; .* needs at least 10"):
        split_tagged(tiny(9), seed=0)
    with pytest.raises(BadInput, match="each must be above 0 and together below 1"):
        split_tagged(tiny(50), seed=0, dev_fraction=0.5, test_fraction=0.5)
    with pytest.raises(BadInput, match="leave none for training"):
        split_tagged(tiny(10), seed=0, dev_fraction=0.49, test_fraction=0.49)


@pytest.mark.real
def test_packaged_wnut16_loads():
    ds = load_tagged("packaged:wnut16")
    # 2,394 tweets and 46,469 tokens in the file; 99 tweets repeat an earlier one (14 of them with other tags).
    assert len(ds.sentences) == 2295 and ds.dropped == {"duplicate sentence": 99}
    assert sum(map(len, ds.sentences)) == 44486
    assert ds.entity_types == ["company", "facility", "geo-loc", "movie", "musicartist", "other", "person",
                               "product", "sportsteam", "tvshow"]
    assert len(ds.tag_names) == 21
    assert ds.sha256 == "8573ac2f0b9bd533488332954a3db9958da4789bc4f8c26de10bb346e96e5390"
    split = split_tagged(ds, seed=0)
    assert (len(split.train), len(split.dev), len(split.test)) == (1835, 230, 230)
