"""The wheel a device installs: a fresh virtual environment with only edgeft's base install (no extras) benches and
predicts a bundle, and has no torch, transformers or optimum to import."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("device")
    dist = root / "dist"
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    wheel = next(dist.glob("edgeft-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # The verified versions of the runtime set (constraints.txt); the wheel's own requirements choose what is installed.
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-c", str(REPO / "constraints.txt"), str(wheel)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return venv


def test_runtime_only_install_benches_and_predicts_without_torch(runtime_venv, tiny_bundles, tmp_path):
    edgeft = str(runtime_venv / "bin" / "edgeft")
    python = str(runtime_venv / "bin" / "python")
    for heavy in ("torch", "transformers", "optimum", "openvino"):
        probe = subprocess.run([python, "-c", f"import {heavy}"], capture_output=True, text=True)
        assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr, heavy
    bundle = str(tiny_bundles["x86-avx2"])
    started = time.perf_counter()
    done = subprocess.run([edgeft, "predict", bundle, "so good and happy", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["label"] in {"positive", "negative", "neutral"}
    print(f"cold start (process to first prediction): {time.perf_counter() - started:.2f} s")
    out = tmp_path / "bench.json"
    done = subprocess.run([edgeft, "bench", bundle, "--runs", "20", "--rounds", "2", "--json", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["latency_ms"]["p50"] > 0 and result["cold_start_ms"] > 0 and len(result["rounds"]) == 2
    # The profiles travel inside the wheel: the device can gate against the bundle's own profile's budgets.
    done = subprocess.run([edgeft, "gate", str(out)], capture_output=True, text=True)
    assert done.returncode in (0, 1) and "budgets of x86-avx2" in done.stdout.replace("\n", " "), done.stderr
