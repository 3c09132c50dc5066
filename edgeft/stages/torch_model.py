"""Loading Hugging Face model folders safely, and running them, for the stages that need PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeft.errors import BadInput, MissingBackend
from edgeft.stages.pooling import POOLING_KEY, Pooling, mean_pooled_class, saved_pooling

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def torch_modules():
    try:
        import torch
        import transformers
    except ImportError:
        raise MissingBackend("torch and transformers", "build") from None
    return torch, transformers


def check_model_folder(model_dir: Path, flag: str = "--model") -> None:
    """Before any work: a model folder must hold a config, safetensors weights and a fast tokenizer. `flag` is the
    option that named the folder, so that the message points at it."""
    if not model_dir.is_dir():
        raise BadInput(f"{flag} {model_dir} does not exist; pass {flag} with a Hugging Face model folder")
    if not (model_dir / "config.json").is_file():
        raise BadInput(f"{flag} {model_dir} has no config.json; pass a folder written by save_pretrained()")
    if not any(model_dir.glob("*.safetensors")):
        # Pickled .bin weights can run code on load: edgeft reads safetensors only.
        raise BadInput(f"{flag} {model_dir} has no .safetensors weights; convert the checkpoint to safetensors")
    if not (model_dir / "tokenizer.json").is_file():
        raise BadInput(f"{flag} {model_dir} has no tokenizer.json (a fast tokenizer); save one with "
                       f"AutoTokenizer.from_pretrained(...).save_pretrained(folder)")


def check_freeze_layers(model_dir: Path, freeze_layers: int) -> None:
    """Before any work: `freeze_layers` must leave at least one of the model's layers (config.json) to train."""
    import json

    layers = json.loads((model_dir / "config.json").read_text()).get("num_hidden_layers")
    if freeze_layers and isinstance(layers, int):
        _check_frozen_count(freeze_layers, layers)


def _check_frozen_count(freeze_layers: int, layers: int | None) -> None:
    """`layers` None: the model has no encoder.layer list to freeze from."""
    if layers is None or freeze_layers >= layers:
        count = "no encoder.layer list" if layers is None else f"{layers} layers"
        raise BadInput(f"freeze_layers={freeze_layers}: the model has {count}; freeze fewer layers than it has "
                       f"(or 0) so that something is left to train")


# The Auto class per task: distillation and export take the task from the artifact's manifest, never assume one.
TASK_MODEL_CLASSES = {"classification": "AutoModelForSequenceClassification", "ner": "AutoModelForTokenClassification"}


def load_classifier(model_dir: Path, labels: list[str] | None = None, task: str = "classification",
                    pooling: Pooling | None = None):
    """A sequence (or token) classifier from safetensors only, never with remote code. `labels` sets a new head;
    `pooling` chooses a new head's pooling (None: as the folder's config.json says, stages/pooling.py)."""
    _, transformers = torch_modules()
    kwargs = {}
    if labels is not None:
        # A base that is already a classifier (other labels) gets a fresh head of the right size.
        kwargs = {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                  "label2id": {label: i for i, label in enumerate(labels)}, "ignore_mismatched_sizes": True}
    if task == "classification" and (pooling or saved_pooling(model_dir)) == "mean":
        return mean_pooled_class().from_pretrained(model_dir, use_safetensors=True, trust_remote_code=False, **kwargs)
    model = getattr(transformers, TASK_MODEL_CLASSES[task]).from_pretrained(
        model_dir, use_safetensors=True, trust_remote_code=False, **kwargs)
    # A [CLS] head fine-tuned from a mean-pooled folder must not carry the folder's mark into its own config.json.
    model.config.__dict__.pop(POOLING_KEY, None)
    return model


def set_training_options(model, dropout: float, freeze_embeddings: bool, freeze_layers: int = 0) -> None:
    """Dropout everywhere (Dropout modules and SDPA attention's own rate), whether word embeddings train, and how many
    of the lowest encoder layers keep their weights.

    On a CPU these are a large share of a training step: dropout's random masks a quarter of it, the word-embedding
    matrix's gradient and Adam update (a third of MiniLM's parameters) much of the rest. Freezing the lowest layers
    (and so all of the embeddings, since nothing below a frozen layer can learn) lets the backward pass stop above
    them: MiniLM-L6 steps 1.42x faster with 2 frozen, 1.58x with 3 (docs/experiments/speed.md, section 7).
    """
    torch, _ = torch_modules()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = dropout
        if hasattr(module, "dropout_prob"):  # SDPA attention keeps its rate as a float, not a Dropout module
            module.dropout_prob = dropout
    for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        if hasattr(model.config, name):
            setattr(model.config, name, dropout)
    model.get_input_embeddings().weight.requires_grad_(not freeze_embeddings)
    if freeze_layers == 0:
        return
    layers = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    _check_frozen_count(freeze_layers, None if layers is None else len(layers))
    for module in (model.base_model.embeddings, *layers[:freeze_layers]):
        module.requires_grad_(False)


def torch_logits(model, encode, texts: list[str], batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """fp32 logits of `model` on `texts`, fed by the runtime's own encoder so both sides see identical ids."""
    torch, _ = torch_modules()
    model.eval().to(device)
    out = None
    with torch.inference_mode():
        for chunk, batch in encode.batches(texts, batch_size):
            feeds = {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
            logits = model(**feeds).logits.float().cpu().numpy()
            if out is None:
                out = np.zeros((len(texts), logits.shape[-1]), dtype=np.float32)
            out[chunk] = logits
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def torch_runner(model, device: str = "cpu"):
    """A session-like `run(feeds) -> logits` over a PyTorch model, so runtime code (NER tagging) can drive it."""
    torch, _ = torch_modules()
    model.eval().to(device)

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            return model(**{k: torch.from_numpy(v).to(device) for k, v in feeds.items()}).logits.float().cpu().numpy()

    return run


def torch_tags(model, encode, sentences: list[list[str]], labels: list[str], device: str = "cpu") -> list[list[str]]:
    """A token classifier's BIO tag per word of each sentence (the first sub-word's tag), read as the bundles read
    theirs (runtime/tagging); `encode` is a runtime.encoder.TextEncoder of the model's tokenizer."""
    from edgeft.runtime.tagging import tags_of, word_logits

    return tags_of(word_logits(torch_runner(model, device), encode, sentences), sentences, labels)
