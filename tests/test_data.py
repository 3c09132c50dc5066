"""Data loading: formats, validation errors with file and line, deduplication, and the seeded stratified split."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeft.data.text import load_dataset, split_dataset, stratified_subset
from edgeft.errors import BadInput


def write(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return str(path)


def test_csv_tsv_and_jsonl_read_the_same_rows(tmp_path):
    rows = [("good day", "pos"), ("bad day", "neg"), ("fine day", "pos")]
    csv_path = write(tmp_path, "d.csv", "text,label\n" + "".join(f"{t},{l}\n" for t, l in rows))
    tsv_path = write(tmp_path, "d.tsv", "text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows))
    jsonl_path = write(tmp_path, "d.jsonl", "".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in rows))
    loaded = [load_dataset(p) for p in (csv_path, tsv_path, jsonl_path)]
    for ds in loaded:
        assert ds.texts == [t for t, _ in rows] and ds.labels == [l for _, l in rows]
        assert ds.label_names == ["neg", "pos"]


def test_custom_columns(tmp_path):
    path = write(tmp_path, "d.csv", "body,sentiment\nyes,a\nno,b\n")
    assert load_dataset(path, text_column="body", label_column="sentiment").labels == ["a", "b"]


def test_missing_column_names_the_columns_and_the_flag(tmp_path):
    path = write(tmp_path, "d.csv", "body,label\nyes,a\nno,b\n")
    with pytest.raises(BadInput, match=r"no text column 'text' \(columns: body, label\); pass --text-column"):
        load_dataset(path)


def test_undecodable_bytes_name_the_line_and_the_fix(tmp_path):
    path = write(tmp_path, "d.csv", b"text,label\nok,a\ncaf\xe9,b\n")
    with pytest.raises(BadInput, match=r"line 3: byte 0xe9 is not valid utf-8; pass --encoding"):
        load_dataset(path)
    assert load_dataset(path, encoding="latin-1").texts == ["ok", "café"]


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("text,label\nonly,a\nagain,a\n", "single class"),
    ("text,label\nhello,\n", "line 2: empty label"),
    # An unquoted comma splits the text and shifts the label: the file is wrong, not the row's label.
    ("text,label\nfine,a\nhello, world,b\n", r'line 3: 3 fields, the header has 2; quote a text that holds a comma'),
    ("text,label\n", "has no rows below its header; add labelled texts"),
    ("text,label\n,a\n ,b\n", "every one of its 2 rows has an empty text; check --text-column"),
])
def test_bad_files_are_rejected(tmp_path, content, message):
    with pytest.raises(BadInput, match=message):
        load_dataset(write(tmp_path, "d.csv", content))


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column_name(tmp_path):
    # Excel's "CSV UTF-8" starts the file with one.
    path = write(tmp_path, "d.csv", b"\xef\xbb\xbftext,label\nyes,a\nno,b\n")
    assert load_dataset(path).texts == ["yes", "no"]


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        load_dataset(str(tmp_path / "nope.csv"))
    with pytest.raises(BadInput, match="unknown extension '.parquet'"):
        load_dataset(write(tmp_path, "d.parquet", "x"))


def test_invalid_jsonl_line_is_named(tmp_path):
    path = write(tmp_path, "d.jsonl", '{"text": "a", "label": "x"}\n{broken\n')
    with pytest.raises(BadInput, match="line 2: invalid JSON"):
        load_dataset(path)


def test_duplicates_and_empty_texts_are_dropped_and_counted(tmp_path):
    path = write(tmp_path, "d.csv", "text,label\nsame,a\nsame,a\n,b\nother,b\n")
    ds = load_dataset(path)
    assert ds.texts == ["same", "other"]
    assert ds.dropped == {"duplicate text": 1, "empty text": 1}


def test_folder_per_label(tmp_path):
    for label in ("sport", "tech"):
        for i in range(3):
            (tmp_path / "news" / label).mkdir(parents=True, exist_ok=True)
            (tmp_path / "news" / label / f"{i}.txt").write_text(f"{label} story {i}")
    ds = load_dataset(str(tmp_path / "news"))
    assert ds.label_names == ["sport", "tech"] and len(ds.texts) == 6


def test_split_is_seeded_stratified_and_disjoint(tiny_csv):
    ds = load_dataset(str(tiny_csv))
    a, b, c = split_dataset(ds, seed=0), split_dataset(ds, seed=0), split_dataset(ds, seed=1)
    assert a == b and a.sha256 == b.sha256 and a.sha256 != c.sha256
    assert not set(a.train) & set(a.test) and not set(a.dev) & set(a.test)
    assert len(a.train) + len(a.dev) + len(a.test) == len(ds.texts)
    test_labels = [ds.labels[i] for i in a.test]
    assert {test_labels.count(l) for l in ds.label_names} == {32}  # 20 % of 160 per class (a small set: 480 texts)


def test_labels_too_small_to_split_are_counted_and_swapped_columns_are_named(tmp_path):
    rows = "".join(f"{label},text number {i}\n" for i, label in enumerate(["pos", "neg"] * 40))
    swapped = load_dataset(write(tmp_path, "d.csv", "label,text\n" + rows), text_column="label", label_column="text")
    with pytest.raises(BadInput, match=r"2 of 2 labels have too few texts .*'text number 0' has 1, after 78 "
                                       r"duplicate texts were dropped.*swap --text-column and --label-column"):
        split_dataset(swapped, 0)


def test_stratified_subset_keeps_proportions(tiny_csv):
    ds = load_dataset(str(tiny_csv))
    subset = stratified_subset(list(range(len(ds.texts))), ds.labels, 90, seed=0)
    assert len(subset) == 90 and {[ds.labels[i] for i in subset].count(l) for l in ds.label_names} == {30}


def test_metrics_match_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score

    from edgeft.metrics import accuracy, macro_f1

    rng = np.random.default_rng(0)
    gold, pred = rng.integers(0, 4, 500), rng.integers(0, 4, 500)
    pred[:5] = 0  # make sure a skewed class is in there too
    assert accuracy(gold, pred) == pytest.approx(accuracy_score(gold, pred))
    assert macro_f1(gold, pred, 4) == pytest.approx(f1_score(gold, pred, average="macro"))
