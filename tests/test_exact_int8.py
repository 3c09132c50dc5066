"""An Arm or VNNI target multiplies int8 exactly; an x86 build host without VNNI does not (its u8 x s8 kernel sums
pairs of products into int16 and clips them). Sessions that stand in for such a target compute exactly on any host,
so the accuracy a build reports for an arm64 or mobile bundle is the device's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeft.backends import backend
from edgeft.profile import ModelFormat, Runtime, load_profile
from edgeft.runtime.onnxruntime_session import host_saturates_int8
from edgeft.runtime.sessions import open_session
from edgeft.stages.package import bundle_spec

WIDTH = 64
# x = 1 everywhere quantizes to u8 255 and W = 1 to s8 127: each pair of products is 2 x 255 x 127 = 64,770, twice
# what int16 holds. Exactly, y = 64 in every column; clipped pairs give 32 x 32,767 / (255 x 127) = 32.4.
EXACT, CLIPPED = float(WIDTH), (WIDTH / 2) * 32767 / (255 * 127)


@pytest.fixture(scope="module")
def saturating_int8(tmp_path_factory) -> Path:
    """y = x @ W, dynamic int8 (u8 activations, s8 weights at full range: the arm64 preset's kind)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = tmp_path_factory.mktemp("saturating")
    weight = numpy_helper.from_array(np.ones((WIDTH, 8), dtype=np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "matmul",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), folder / "fp32.onnx")
    quantize_dynamic(folder / "fp32.onnx", folder / "model.onnx", weight_type=QuantType.QInt8, per_channel=False,
                     reduce_range=False)
    return folder / "model.onnx"


def run(path: Path, exact: bool) -> np.ndarray:
    session = open_session(Runtime.ONNXRUNTIME, path, 1, ("x",), exact_int8=exact)
    return session.run({"x": np.ones((1, WIDTH), dtype=np.float32)})


@pytest.mark.parametrize("fmt", [ModelFormat.ONNX, ModelFormat.ORT])
def test_an_exact_session_computes_int8_products_as_arm_does_on_any_host(saturating_int8, fmt, tmp_path):
    shipped = backend(Runtime.ONNXRUNTIME).convert(saturating_int8, tmp_path / fmt.value, fmt)
    np.testing.assert_allclose(run(shipped, exact=True), EXACT, rtol=1e-3)
    # The control: this host's own kernels clip where they saturate (AVX2-only or AVX-512 without VNNI).
    np.testing.assert_allclose(run(shipped, exact=False), CLIPPED if host_saturates_int8() else EXACT, rtol=1e-3)


@pytest.mark.parametrize("target, exact", [("arm64", True), ("mobile", True), ("x86-avx512-vnni", True),
                                           ("x86-avx2", False), ("openvino-cpu", False)])
def test_arm_and_vnni_bundles_ask_for_exact_int8_and_avx2_ones_keep_the_hosts_kernels(target, exact, tiny_model):
    profile = load_profile(target)
    spec = bundle_spec(profile, profile.runtime, "model.onnx", ["a", "b"], tiny_model)
    assert spec["exact_int8"] is exact
