"""Unlabelled text for distillation (`--extra-text`): the teacher labels it and the student learns from its soft
targets alone."""

from __future__ import annotations

from pathlib import Path

from edgeft.data.assets import DATASETS
from edgeft.data.text import load_dataset
from edgeft.errors import BadInput


def read_extra_text(source: str | Path, limit: int | None = None) -> list[str]:
    """Unlabelled texts for distillation: a UTF-8 file, one text per line, blank lines skipped, or the texts of a
    packaged data set (`packaged:tweets`: its labels unused; a tagged set's sentences joined by spaces). `limit`
    keeps the first N, in the file's order, so the same N give the same texts (and the same cached soft targets)."""
    source = str(source)
    if limit is not None and limit < 1:
        raise BadInput(f"--max-extra-texts {limit} must be at least 1 (leave it out to use every text)")
    if source.startswith("packaged:"):
        name = source.removeprefix("packaged:")
        if name not in DATASETS:
            raise BadInput(f"--extra-text {source}: no such packaged data set; choose one of: "
                           f"{', '.join('packaged:' + n for n in sorted(DATASETS))}")
        if DATASETS[name].layout == "conll":
            from edgeft.data.tagged import load_tagged

            texts = [" ".join(words) for words in load_tagged(source).sentences]
        else:
            texts = load_dataset(source).texts
        return texts[:limit]
    path = Path(source)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise BadInput(f"--extra-text {path} does not exist; pass a UTF-8 text file with one text per line, or "
                       f"packaged:tweets") from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"--extra-text {path} is not UTF-8 (byte {exc.start}); re-save it as UTF-8") from None
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise BadInput(f"--extra-text {path} holds no text; one text per line")
    return texts[:limit]
