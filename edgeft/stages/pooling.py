"""How a sequence classifier turns token vectors into one vector: BERT's [CLS] pooler, or the mean over real tokens.

A sentence-embedding encoder such as all-MiniLM-L6-v2 (the packaged teacher) was trained through a mean over its token
vectors; its [CLS] vector and pooler never were (the pooler's weights are an untrained initialisation). A linear
probe on the frozen mean is 2-8 points above one on the [CLS] vector; fine-tuned, the two are level (ten runs on
2,000 tweets, three draws of 600), and the default 2-layer student of a mean-pooled teacher failed its dev rule on
the packaged tweets (docs/experiments/recipes.md, section 17). So BERT's [CLS] pooler stays the default;
`pooling: mean` asks for the mean, `pooling: auto` follows what the base folder says.

The mean-pooled model is `BertForSequenceClassification` with its pooler dropped and its forward averaging the last
hidden states under the attention mask; parameter names are unchanged, so distillation, narrowing and the HPO
search treat it as any BERT classifier. Its config.json records `edgeft_pooling: mean`, and every loader in edgeft
(`torch_model.load_classifier`) and every export (`backends.*.export`) reads it from there.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Literal

from edgeft.errors import BadInput

Pooling = Literal["cls", "mean"]
# The config.json key that marks a mean-pooled classifier; absent means the architecture's own ([CLS]) pooler.
POOLING_KEY = "edgeft_pooling"


def pretrained_pooling(model_dir: Path) -> Pooling:
    """'mean' when `model_dir` is a sentence-transformers folder whose pooling module averages token vectors (and
    nothing else), else 'cls'. The module is where `modules.json` puts it (the folder a Pooling entry names), else
    at sentence-transformers' usual `1_Pooling`."""
    module = _pooling_module(model_dir)
    if module is None or not module.is_file():
        return "cls"
    modes = _read_json(module)
    if not isinstance(modes, dict):
        raise BadInput(f"{module}: expected a JSON object of pooling_mode_* flags; repair it, or pass pooling=cls or "
                       f"pooling=mean instead of auto")
    others = [k for k, v in modes.items() if k.startswith("pooling_mode_") and v and k != "pooling_mode_mean_tokens"]
    return "mean" if modes.get("pooling_mode_mean_tokens") and not others else "cls"


def _pooling_module(model_dir: Path) -> Path | None:
    """The pooling module's config.json; None when `modules.json` lists no Pooling module (no pooling to follow).
    A module that `modules.json` lists must be there; the unlisted `1_Pooling` may be absent (a plain model)."""
    listing = model_dir / "modules.json"
    if not listing.is_file():
        return model_dir / "1_Pooling" / "config.json"
    modules = _read_json(listing)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise BadInput(f"{listing}: expected a JSON list of modules (objects with 'type' and 'path'); repair it, or "
                       f"pass pooling=cls or pooling=mean instead of auto")
    pooling = [m for m in modules if str(m.get("type", "")).rsplit(".", 1)[-1] == "Pooling"]
    if not pooling:
        return None
    module = model_dir / str(pooling[0].get("path", "")) / "config.json"
    if not module.is_file():
        raise BadInput(f"{listing} lists a pooling module whose {module} is missing; restore it, or pass pooling=cls "
                       f"or pooling=mean instead of auto")
    return module


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        # Guessing 'cls' here would quietly train the head the folder says it was not trained for.
        raise BadInput(f"{path}: cannot be read as JSON ({exc}); repair it, or pass pooling=cls or pooling=mean "
                       f"instead of auto") from None


def saved_pooling(model_dir: Path) -> Pooling:
    """How the classifier saved in `model_dir` pools (its config.json)."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return "mean" if config.get(POOLING_KEY) == "mean" else "cls"


def is_mean_pooled(model_dir: Path, task: str) -> bool:
    """Whether the model saved in `model_dir` is a mean-pooled classifier, which exporters must take as loaded: their
    folder exports would rebuild the stock [CLS]-pooled class around its weights."""
    return task == "classification" and saved_pooling(model_dir) == "mean"


def resolve_pooling(requested: str, base_model: Path, task: str) -> Pooling:
    """The pooling a fine-tune uses: `auto` follows the base folder; token tasks have no pooling to choose."""
    if task != "classification":
        return "cls"
    pooling: Pooling = pretrained_pooling(base_model) if requested == "auto" else requested  # type: ignore[assignment]
    if pooling == "mean":
        model_type = json.loads((base_model / "config.json").read_text(encoding="utf-8")).get("model_type")
        if model_type != "bert":
            if requested == "auto":
                return "cls"  # mean pooling is built for BERT-style encoders only; others keep their own head
            raise BadInput(f"pooling=mean: the model in {base_model} is '{model_type}', and mean pooling is built "
                           f"for BERT-style encoders only; use pooling=cls (or auto)")
    return pooling


@functools.cache
def mean_pooled_class():
    """BertForSequenceClassification whose logits come from the masked mean of the last hidden states."""
    import torch
    import transformers
    from transformers.modeling_outputs import SequenceClassifierOutput

    class MeanPooledBertForSequenceClassification(transformers.BertForSequenceClassification):
        def __init__(self, config):
            super().__init__(config)
            self.bert.pooler = None  # unused: no weights that nothing trains
            config.edgeft_pooling = "mean"

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                    inputs_embeds=None, labels=None, **kwargs):
            if attention_mask is None:
                shape = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
                attention_mask = torch.ones(shape, dtype=torch.long, device=self.device)
            # The encoder gets what distillation and narrowing ask for (hidden states, attentions); Trainer's extra
            # arguments (num_items_in_batch) are for the loss, which is plain cross-entropy here.
            wanted = {k: kwargs[k] for k in ("output_hidden_states", "output_attentions") if k in kwargs}
            outputs = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                                position_ids=position_ids, inputs_embeds=inputs_embeds, **wanted)
            hidden = outputs.last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            logits = self.classifier(self.dropout(pooled))
            loss = None
            if labels is not None:
                loss = torch.nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
            return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                            attentions=outputs.attentions)

    # Optimum's exporters accept a model instance only if its class's module names a library they know; the class
    # is a transformers BERT classifier in every respect but the pooling, and exports as one (logits output).
    MeanPooledBertForSequenceClassification.__module__ = "transformers.models.bert.edgeft_mean_pooled"
    return MeanPooledBertForSequenceClassification
