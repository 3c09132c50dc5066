"""What a device or an app imports: load a bundle, tokenize, predict, time it.

numpy + tokenizers + onnxruntime (or openvino) only; never torch, transformers or optimum (a test enforces it).

    bundle = edgeft.runtime.load("bundles/x86-avx2")
    bundle.predict(["what a great day"])  # [Prediction(label='positive', score=0.93)]
"""

from edgeft.runtime.bundle import Bundle, Prediction, load

__all__ = ["Bundle", "Prediction", "load"]
