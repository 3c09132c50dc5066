"""What a device or an app imports: load a bundle, tokenize, predict, time it.

numpy + tokenizers + onnxruntime (or openvino) only; never torch, transformers or optimum (a test enforces it).

    bundle = edgeft.runtime.load("bundles/x86-avx2")
    bundle.predict(["what a great day"])  # [Prediction(label='positive', score=0.93)]
    ner = edgeft.runtime.load("bundles/ner")
    ner.predict(["Apple opened a store in Paris"])  # [[Span(text='Apple', type='company', start=0, end=5, ...), ...]]
"""

from edgeft.runtime.bundle import Bundle, Prediction, load
from edgeft.runtime.tagging import Span

__all__ = ["Bundle", "Prediction", "Span", "load"]
