"""Does the distilled student ship? Its dev figure against its teacher's, judged as the quantization candidates are.

The rule is the candidates' (stages/select.py, rule 1): the student's dev drop against the fp32 teacher (PyTorch, each
model's kept evaluation), plus its standard error by a paired bootstrap over the dev texts, must be within the
budget. On a small set (90 dev texts) a student has to be clearly as good as its teacher, or the teacher's candidates
race instead; on the default tweets (1,863 dev texts) the 3-layer student ships. Dev decides, not test: the test split
stays the build's unbiased verdict. The figures are kept whichever way it goes (report.json `student_check`): on
about 100 dev texts the students that passed cost their teachers 1 to 2 test points on average, and a one-sided 95 %
bound would have stopped the harmless ones and kept the harmful ones (docs/experiments/recipes.md, section 10).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeft.runtime.scoring import Examples, example_stats


def student_check(teacher: Path, student: Path, distilled: dict[str, Any], dev: Examples, labels: list[str],
                  max_drop: float, max_length: int = 128) -> dict[str, Any] | None:
    """The student's and the teacher's dev figures, the drop, its standard error, how many dev examples the two
    score differently, and `passed`; a failed check also has its `reason`. None without dev figures for both.

    Without both models' dev predictions (a --finetuned teacher from elsewhere) the drop alone decides. NER: entity
    F1, the dev sentences tagged again by both models.
    """
    from edgeft.runtime.scoring import headline_of_sums
    from edgeft.stages.select import paired_drop_se
    from edgeft.stages.training import read_dev_predictions

    metrics = distilled.get("metrics", {})
    figure = "entity F1" if dev.task == "ner" else "accuracy"
    key = figure.replace(" ", "_").lower()
    rows = None
    if dev.task == "ner":
        # Sentences, not labels: both taggers tag the dev sentences again (PyTorch fp32, seconds), and the per-sentence
        # entity counts give the paired bootstrap its rows, as the candidates' check does.
        rows = tagged_rows(teacher, dev, labels, max_length)[1], tagged_rows(student, dev, labels, max_length)[1]
        t_acc, s_acc = (float(headline_of_sums("ner", r.sum(0), len(dev))) for r in rows)
    else:
        t_pred, s_pred = read_dev_predictions(teacher), read_dev_predictions(student)
        if t_pred is not None and s_pred is not None and len(t_pred) == len(s_pred) == len(dev):
            # Label indices, as the training loop saved them -> per-text [correct] rows, as every paired check uses.
            rows = example_stats(dev, [labels[i] for i in t_pred]), example_stats(dev, [labels[i] for i in s_pred])
            t_acc, s_acc = float(rows[0].mean()), float(rows[1].mean())
        else:
            t_acc, s_acc = metrics.get(f"teacher_dev_{key}"), metrics.get(f"dev_{key}")
            if t_acc is None or s_acc is None:
                return None
    se = 0.0 if rows is None else paired_drop_se(dev.task, *rows)
    passed = t_acc - s_acc + se <= max_drop
    check = {"figure": figure, f"student_dev_{key}": s_acc, f"teacher_dev_{key}": t_acc,
             "drop": round(t_acc - s_acc, 4), "drop_se": round(se, 4), f"max_{key}_drop": max_drop,
             "dev_texts": len(dev),
             "scored_differently": None if rows is None else int(np.any(rows[0] != rows[1], axis=1).sum()),
             "passed": passed}
    if passed:
        return check
    return {**check, "reason": f"the distilled student does not hold the {figure} budget on this data: dev {figure} "
                               f"{s_acc:.4f} vs the teacher's {t_acc:.4f} (drop {t_acc - s_acc:+.4f}, standard "
                               f"error {se:.4f} on {len(dev)} dev texts; drop + error must be <= {max_drop:g}), so "
                               f"the teacher's candidates race instead (--student none does this directly; more "
                               f"labelled or unlabelled text, --extra-text FILE, helps a student)"}


def tagged_rows(folder: Path, examples: Examples, labels: list[str], max_length: int = 128
                ) -> tuple[list[list[str]], np.ndarray]:
    """A token classifier folder's tags for `examples` (PyTorch fp32, the bundles' word reading) and the per-sentence
    [matched, predicted, gold] entity counts a paired bootstrap resamples."""
    from edgeft.runtime.encoder import TOKENIZER_OUTPUTS, TextEncoder
    from edgeft.stages.torch_model import load_classifier, torch_tags

    encode = TextEncoder(folder / "tokenizer.json", max_length, "right", TOKENIZER_OUTPUTS)
    tags = torch_tags(load_classifier(folder, task="ner"), encode, examples.words, labels)
    return tags, example_stats(examples, tags)


def rule_figures(check: dict[str, Any]) -> str:
    """The two figures the dev rule adds up, in words."""
    return f"drop {check['drop']:+.4f}, standard error {check['drop_se']:.4f}"


def passed_line(check: dict[str, Any]) -> str:
    """The evidence a shipped student passed on, in words (build output and model card)."""
    figure = check["figure"]
    key = figure.replace(" ", "_").lower()
    differ = check.get("scored_differently")
    return (f"the distilled student holds the {figure} budget on dev: {check[f'student_dev_{key}']:.4f} vs the "
            f"teacher's {check[f'teacher_dev_{key}']:.4f} ({rule_figures(check)} on {check['dev_texts']} dev examples"
            + (f", {differ} scored differently" if differ is not None else "") + ")")


def student_fallback(teacher: Path, student: Path, distilled: dict[str, Any], dev: Examples, labels: list[str],
                     max_drop: float, max_length: int = 128) -> dict[str, Any] | None:
    """Why the distilled student does not ship (the failed check), or None when it holds the budget on dev."""
    return fallback_of(student_check(teacher, student, distilled, dev, labels, max_drop, max_length))


def fallback_of(check: dict[str, Any] | None) -> dict[str, Any] | None:
    """The check when the student does not ship on it, else None (no figures to judge by: the student ships)."""
    return None if check is None or check["passed"] else check
