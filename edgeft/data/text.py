"""Labelled text data: CSV / TSV / JSONL files, a folder per label, or a packaged default -> a validated `TextDataset`.

Every problem is a `BadInput` that names the file, the line and the fix. Exact duplicate texts are dropped (first
one kept) before splitting, so no text can sit in both the training and the held-out split.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeft.data.assets import PackagedData, packaged_data
from edgeft.errors import BadInput, shortened

TABULAR_SUFFIXES = {".csv": ",", ".tsv": "\t"}


@dataclass(frozen=True)
class TextDataset:
    texts: list[str]
    labels: list[str]
    source: str  # what the user named: a path or packaged:NAME
    sha256: str  # of the raw bytes read, so the manifest pins the exact input
    dropped: dict[str, int] = field(default_factory=dict)  # rows left out, by reason

    @property
    def label_names(self) -> list[str]:
        return sorted(set(self.labels))


def load_dataset(source: str, text_column: str = "text", label_column: str = "label",
                 encoding: str = "utf-8") -> TextDataset:
    """Read `source` (a file, a folder per label, or `packaged:NAME`) and check it can train a classifier."""
    if source.startswith("packaged:"):
        pkg = packaged_data(source.removeprefix("packaged:"))
        if pkg.layout == "conll":
            raise BadInput(f"{source} holds tagged words for NER, not labelled texts; pass --task ner")
        return _validated(_load_packaged(pkg), source)
    path = Path(source)
    if not path.exists():
        raise BadInput(f"data file {path} does not exist; pass --data with a CSV, TSV or JSONL file or a folder per label")
    if path.is_dir():
        return _validated(_load_folder(path, encoding, strict=True), source)
    raw = read_bytes(path)
    text = decode(raw, path, encoding)
    if path.suffix.lower() in TABULAR_SUFFIXES:
        texts, labels, dropped = _parse_tabular(text, path, TABULAR_SUFFIXES[path.suffix.lower()], text_column, label_column)
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        texts, labels, dropped = _parse_jsonl(text, path, text_column, label_column)
    else:
        raise BadInput(f"data file {path}: unknown extension '{path.suffix}'; use .csv, .tsv or .jsonl")
    return _validated(TextDataset(texts, labels, source, hashlib.sha256(raw).hexdigest(), dropped), source)


def read_bytes(path: Path, empty_hint: str = "it needs a header and at least two labelled rows") -> bytes:
    """A data file's bytes (hashed into the manifest as read); unreadable or empty files are one-line errors."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"data file {path} cannot be read ({exc.strerror}); check its permissions") from None
    if not raw.strip():
        raise BadInput(f"data file {path} is empty; {empty_hint}")
    return raw


def decode(raw: bytes, path: Path, encoding: str) -> str:
    """Text of a data file; a wrong encoding names the line of the first bad byte and the --encoding fix. A UTF-8
    byte-order mark (Excel's "CSV UTF-8" writes one) is dropped: left in, it becomes part of the first column's name."""
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8") and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode(encoding)
    except LookupError:
        raise BadInput(f"unknown --encoding '{encoding}'; use a Python codec name such as utf-8 or latin-1") from None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BadInput(f"data file {path} line {line}: byte 0x{raw[exc.start]:02x} is not valid {encoding}; "
                       f"pass --encoding with the file's real encoding (for example latin-1)") from None


def _parse_tabular(text: str, path: Path, delimiter: str, text_column: str, label_column: str,
                   ) -> tuple[list[str], list[str], dict[str, int]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = reader.fieldnames or []
    for role, column in (("text", text_column), ("label", label_column)):
        if column not in header:
            flag = "--text-column" if role == "text" else "--label-column"
            raise BadInput(f"data file {path}: no {role} column '{column}' (columns: {', '.join(header) or 'none'}); "
                           f"pass {flag} with the right name")

    def rows():
        for row in reader:
            if None in row:  # more fields than the header: an unquoted delimiter split a text, shifting its label
                raise BadInput(f"data file {path} line {reader.line_num}: {len(header) + len(row[None])} fields, the "
                               f"header has {len(header)}; quote a text that holds {_named(delimiter)} "
                               f"(\"like, this\")")
            yield reader.line_num, row.get(text_column), row.get(label_column)
    return _collect(rows(), path)


def _named(delimiter: str) -> str:
    return {",": "a comma", "\t": "a tab", ";": "a semicolon"}.get(delimiter, f"'{delimiter}'")


def _parse_jsonl(text: str, path: Path, text_column: str, label_column: str,
                 ) -> tuple[list[str], list[str], dict[str, int]]:
    def rows():
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BadInput(f"data file {path} line {number}: invalid JSON ({exc.msg}); one object per line") from None
            if not isinstance(obj, dict):
                raise BadInput(f"data file {path} line {number}: expected a JSON object, got {type(obj).__name__}")
            for column, flag in ((text_column, "--text-column"), (label_column, "--label-column")):
                if column not in obj:
                    raise BadInput(f"data file {path} line {number}: no key '{column}' (keys: {', '.join(obj)}); "
                                   f"pass {flag} with the right name")
            yield number, obj[text_column], obj[label_column]
    return _collect(rows(), path)


def _collect(rows, path: Path) -> tuple[list[str], list[str], dict[str, int]]:
    texts, labels, dropped = [], [], Counter()
    for number, text, label in rows:
        label = "" if label is None else str(label).strip()
        text = "" if text is None else str(text).strip()
        if not label:
            raise BadInput(f"data file {path} line {number}: empty label; every row needs one")
        if not text:
            dropped["empty text"] += 1  # an empty text carries no signal; counted in the manifest, not fatal
            continue
        texts.append(text)
        labels.append(label)
    return texts, labels, dict(dropped)


def _load_folder(root: Path, encoding: str, strict: bool) -> TextDataset:
    """A folder per label, one text per file (the BBC News layout)."""
    digest, texts, labels, dropped = hashlib.sha256(), [], [], Counter()
    files = sorted(p for p in root.glob("*/*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise BadInput(f"data folder {root} holds no files; expected {root}/<label>/<text file>")
    for file in files:
        raw = file.read_bytes()
        digest.update(file.relative_to(root).as_posix().encode() + b"\0" + raw)
        if strict:
            text = decode(raw, file, encoding)
        else:
            text = raw.decode(encoding, errors="replace")
            if "\ufffd" in text:
                dropped["bytes replaced (not " + encoding + ")"] += 1
        if text.strip():
            texts.append(" ".join(text.split()))
            labels.append(file.parent.name)
        else:
            dropped["empty text"] += 1
    return TextDataset(texts, labels, str(root), digest.hexdigest(), dict(dropped))


def _load_packaged(pkg: PackagedData) -> TextDataset:
    if pkg.layout == "folder":
        ds = _load_folder(pkg.path, pkg.encoding, strict=False)
    else:
        raw = read_bytes(pkg.path)
        texts, labels, dropped = _parse_tabular(raw.decode(pkg.encoding), pkg.path, ",", pkg.text_column, pkg.label_column)
        ds = TextDataset(texts, labels, str(pkg.path), hashlib.sha256(raw).hexdigest(), dropped)
    return ds


def _validated(ds: TextDataset, source: str) -> TextDataset:
    texts, labels, seen, dup = [], [], set(), 0
    for text, label in zip(ds.texts, ds.labels):
        if text in seen:
            dup += 1
            continue
        seen.add(text)
        texts.append(text)
        labels.append(label)
    if not texts:
        empty = ds.dropped.get("empty text")
        raise BadInput(f"data {source}: every one of its {empty} rows has an empty text; check --text-column"
                       if empty else f"data {source} has no rows below its header; add labelled texts")
    counts = Counter(labels)
    if len(counts) < 2:
        raise BadInput(f"data {source} has a single class ('{labels[0]}'); a classifier needs at least two labels")
    dropped = dict(ds.dropped)
    if dup:
        dropped["duplicate text"] = dup
    return TextDataset(texts, labels, source, ds.sha256, dropped)


@dataclass(frozen=True)
class Split:
    """Indices into a TextDataset. Stratified and seeded: the same data and seed give the same split."""

    train: list[int]
    dev: list[int]
    test: list[int]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps([self.train, self.dev, self.test]).encode()).hexdigest()


def held_out_fractions(n_texts: int) -> tuple[float, float]:
    """(dev, test) shares of the data: 5 % and 10 % of a large set, larger shares of a small one so that dev has
    about 100 texts and test about 200 (at most 15 % and 20 %): 60 test texts cannot tell a model that learned
    from the majority-class predictor. From 2,000 texts on, the shares are the plain 5 % / 10 %."""
    dev = min(0.15, max(0.05, 100 / max(n_texts, 1)))
    test = min(0.2, max(0.1, 200 / max(n_texts, 1)))
    return dev, test


def split_dataset(ds: TextDataset, seed: int, dev_fraction: float | None = None,
                  test_fraction: float | None = None) -> Split:
    """Stratified train / dev / test indices; shares as held_out_fractions() says for the data's size unless given."""
    default_dev, default_test = held_out_fractions(len(ds.texts))
    dev_fraction = default_dev if dev_fraction is None else dev_fraction
    test_fraction = default_test if test_fraction is None else test_fraction
    rng = np.random.default_rng(seed)
    train, dev, test = [], [], []
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(ds.labels):
        by_label.setdefault(label, []).append(i)

    def need(n: int) -> int:
        return max(1, round(n * test_fraction)) + max(1, round(n * dev_fraction)) + 1

    small = {label: len(idx) for label, idx in by_label.items() if len(idx) < need(len(idx))}
    if small:
        label, n = min(small.items(), key=lambda item: (item[1], item[0]))
        dup = ds.dropped.get("duplicate text")
        # Most rows dropped as duplicates, or a crowd of one-text labels: labels in the text column, texts in the
        # label column.
        swapped = (" If the texts look like labels, swap --text-column and --label-column."
                   if (dup or 0) > len(ds.texts) or (len(small) > len(by_label) / 2 and len(by_label) > 20) else "")
        raise BadInput(f"data {ds.source}: {len(small)} of {len(by_label)} labels have too few texts to fill train, "
                       f"dev and test (each needs at least {need(n)}; '{shortened(label)}' has {n}"
                       f"{f', after {dup} duplicate texts were dropped' if dup else ''}); add texts to those labels or "
                       f"drop them.{swapped}")
    for label in sorted(by_label):
        idx = np.array(by_label[label])
        rng.shuffle(idx)
        n_test = max(1, round(len(idx) * test_fraction))
        n_dev = max(1, round(len(idx) * dev_fraction))
        test += idx[:n_test].tolist()
        dev += idx[n_test:n_test + n_dev].tolist()
        train += idx[n_test + n_dev:].tolist()
    return Split(sorted(train), sorted(dev), sorted(test))


def stratified_subset(indices: list[int], labels: list[str], size: int | None, seed: int) -> list[int]:
    """At most `size` of `indices`, keeping label proportions; used for the default recipe's training budget."""
    if size is None or size >= len(indices):
        return list(indices)
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for i in indices:
        by_label.setdefault(labels[i], []).append(i)
    names = sorted(by_label)
    # Largest-remainder quotas: exactly `size` texts, each label within one text of its proportional share.
    shares = [size * len(by_label[n]) / len(indices) for n in names]
    quotas = [int(share) for share in shares]
    for k in sorted(range(len(names)), key=lambda k: shares[k] - quotas[k], reverse=True)[: size - sum(quotas)]:
        quotas[k] += 1
    chosen: list[int] = []
    for name, quota in zip(names, quotas):
        group = np.array(by_label[name])
        rng.shuffle(group)
        chosen += group[:quota].tolist()
    return sorted(chosen)


def dropped_text(dropped: dict[str, int] | None) -> str:
    """What loading dropped, for people ('53 (duplicate sentence)', not a dict); 'none' when nothing was."""
    if not dropped:
        return "none"
    return ", ".join(f"{n} ({why})" for why, n in dropped.items())
