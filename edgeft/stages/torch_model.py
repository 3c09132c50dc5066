"""Loading Hugging Face model folders safely, and running them, for the stages that need PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeft.errors import BadInput, MissingBackend

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def torch_modules():
    try:
        import torch
        import transformers
    except ImportError:
        raise MissingBackend("torch and transformers", "build") from None
    return torch, transformers


def check_model_folder(model_dir: Path) -> None:
    """Before any work: a model folder must hold a config, safetensors weights and a fast tokenizer."""
    if not model_dir.is_dir():
        raise BadInput(f"model folder {model_dir} does not exist; pass --model with a Hugging Face model folder")
    if not (model_dir / "config.json").is_file():
        raise BadInput(f"model folder {model_dir} has no config.json; pass a folder written by save_pretrained()")
    if not any(model_dir.glob("*.safetensors")):
        # Pickled .bin weights can run code on load: edgeft reads safetensors only.
        raise BadInput(f"model folder {model_dir} has no .safetensors weights; convert the checkpoint to safetensors")
    if not (model_dir / "tokenizer.json").is_file():
        raise BadInput(f"model folder {model_dir} has no tokenizer.json (a fast tokenizer); save one with "
                       f"AutoTokenizer.from_pretrained(...).save_pretrained(folder)")


# The Auto class per task: distillation and export take the task from the artifact's manifest, never assume one.
TASK_MODEL_CLASSES = {"classification": "AutoModelForSequenceClassification", "ner": "AutoModelForTokenClassification"}


def load_classifier(model_dir: Path, labels: list[str] | None = None, task: str = "classification"):
    """A sequence (or token) classifier from safetensors only, never with remote code. `labels` sets a new head."""
    _, transformers = torch_modules()
    kwargs = {}
    if labels is not None:
        # A base that is already a classifier (other labels) gets a fresh head of the right size.
        kwargs = {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                  "label2id": {label: i for i, label in enumerate(labels)}, "ignore_mismatched_sizes": True}
    return getattr(transformers, TASK_MODEL_CLASSES[task]).from_pretrained(
        model_dir, use_safetensors=True, trust_remote_code=False, **kwargs)


def set_training_options(model, dropout: float, freeze_embeddings: bool) -> None:
    """Dropout everywhere (Dropout modules and SDPA attention's own rate) and whether word embeddings train.

    On a CPU both are a large share of a training step: dropout's random masks a quarter of it, the word-embedding
    matrix's gradient and Adam update (a third of MiniLM's parameters) much of the rest.
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


def torch_logits(model, encode, texts: list[str], batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """fp32 logits of `model` on `texts`, fed by the runtime's own encoder so both sides see identical ids."""
    torch, _ = torch_modules()
    model.eval().to(device)
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = None
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            chunk = order[start:start + batch_size]
            feeds = {k: torch.from_numpy(v).to(device) for k, v in encode([texts[i] for i in chunk]).items()}
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
