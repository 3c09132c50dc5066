"""arm64 and mobile bundles run on a real aarch64 onnxruntime (QEMU user mode, tests/arm64/setup.sh) and predict
what x86 onnxruntime predicts for the same held-out texts. Emulated latency is meaningless and never measured here."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import edgeft.runtime

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
# Dynamic int8 picks activation scales per call, so both sides run batch 1 (padding would change the scales), and
# x86 and Arm kernels still round differently here and there. Measured on the real MiniLM bundles, 32 tweets:
# x86 vs aarch64 up to 0.13 per logit (arm64) and 0.04 (mobile), every label equal. Batched against batch 1 the
# same models differ by up to 0.4. A broken runtime is off by whole logits.
# An x86 host without VNNI multiplies u8 activations by s8 weights with AVX2's vpmaddubsw, whose int16 pair sums
# saturate; Arm's dot products do not. Bundles for Arm therefore ask for ONNX Runtime's exact kernels off the device
# (the bundle's `exact_int8`, tests/test_exact_int8.py), and the x86 side here computes as the aarch64 one does. Before
# that, an AVX2-only EPYC moved by up to 0.28 (tiny arm64 bundle) and 0.64 per token (tiny NER bundles) and needed
# tolerances of its own; since, the tiny bundles' logits agree within 1e-6 there (all four, 2026-12-06).
LOGIT_ATOL = 0.25
MIN_AGREEMENT = 0.9
TEXTS = 32  # held-out texts per bundle; about 1 s each for the int8 MiniLM under emulation


@pytest.fixture(scope="session")
def arm64_python() -> Path:
    """The emulated aarch64 python, set up once per machine (about 45 s; then an instant no-op)."""
    root = REPO / ".edgeft" / "arm64"
    done = subprocess.run(["bash", str(REPO / "tests" / "arm64" / "setup.sh"), str(root)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return root / "python"


def run_on_arm64(python: Path, bundles: list[Path]) -> dict:
    done = subprocess.run([str(python), str(REPO / "tests" / "arm64" / "predict.py"), str(TEXTS),
                           *map(str, bundles)], capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "EDGEFT_ARM64_PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def assert_same_predictions(bundle: Path, arm: dict) -> None:
    x86 = edgeft.runtime.load(bundle)
    texts = arm["texts"]
    assert len(texts) >= 30
    ours = x86.logits(texts, batch_size=1)
    theirs = np.asarray(arm["logits"], dtype=np.float32)
    np.testing.assert_allclose(theirs, ours, atol=LOGIT_ATOL)
    same = theirs.argmax(-1) == ours.argmax(-1)
    assert same.mean() >= MIN_AGREEMENT, f"{int(same.sum())}/{len(same)} labels agree"
    top2 = np.sort(ours, axis=-1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 2 * LOGIT_ATOL
    assert same[clear].all()  # a label may only differ where x86 itself was close to a tie


def assert_same_spans(bundle: Path, arm: dict) -> None:
    """NER: token logits within the tolerance; the same entity spans for at least 90 % of texts, and for every text
    whose words' tags x86 itself decides by a clear margin."""
    x86 = edgeft.runtime.load(bundle)
    texts = arm["texts"]
    assert len(texts) >= 30
    ours = [[s.to_dict() for s in x86.entities([text], batch_size=1)[0]] for text in texts]
    same = []
    for text, theirs_logits, theirs_spans, our_spans in zip(texts, arm["token_logits"], arm["spans"], ours):
        our_logits = x86.session.run(x86.encode([text]))[0]
        np.testing.assert_allclose(np.asarray(theirs_logits, dtype=np.float32), our_logits, atol=LOGIT_ATOL)
        top2 = np.sort(our_logits, axis=-1)[:, -2:]
        clear = bool(((top2[:, 1] - top2[:, 0]) > 2 * LOGIT_ATOL).all())
        # The spans themselves (type and characters); their scores follow the logits, checked above.
        spans_agree = [(s["type"], s["start"], s["end"]) for s in our_spans] == \
                      [(s["type"], s["start"], s["end"]) for s in theirs_spans]
        assert spans_agree or not clear, text  # spans may only differ where x86 itself was close to a tie
        same.append(spans_agree)
    assert np.mean(same) >= MIN_AGREEMENT, f"{sum(same)}/{len(same)} texts have the same spans"
    assert any(ours), "the tiny NER model found no entity in the held-out texts: nothing was compared"


def test_tiny_arm64_and_mobile_bundles_predict_on_aarch64_as_on_x86(arm64_python, tiny_bundles):
    bundles = [tiny_bundles["arm64"], tiny_bundles["mobile"]]
    result = run_on_arm64(arm64_python, bundles)
    assert result["machine"] == "aarch64"
    for bundle in bundles:
        assert_same_predictions(bundle, result["bundles"][str(bundle)])
    assert result["bundles"][str(bundles[1])]["model_file"] == "model.ort"


def test_tiny_ner_arm64_and_mobile_bundles_find_the_same_spans_on_aarch64_as_on_x86(arm64_python, ner_bundles):
    bundles = [ner_bundles["arm64"], ner_bundles["mobile"]]
    result = run_on_arm64(arm64_python, bundles)
    assert result["machine"] == "aarch64"
    for bundle in bundles:
        assert result["bundles"][str(bundle)]["task"] == "ner"
        assert_same_spans(bundle, result["bundles"][str(bundle)])
    assert result["bundles"][str(bundles[1])]["model_file"] == "model.ort"


@pytest.mark.real
def test_real_arm64_and_mobile_bundles_predict_on_aarch64_as_on_x86(arm64_python, real_bundles):
    bundles = [real_bundles["arm64"][0], real_bundles["mobile"][0]]
    result = run_on_arm64(arm64_python, bundles)
    assert result["machine"] == "aarch64"
    for bundle in bundles:
        assert_same_predictions(bundle, result["bundles"][str(bundle)])
