"""A device has no torch: the runtime, `edgeft --help`, `predict`, `bench` and `gate` must not import torch,
transformers or optimum. Checked in a fresh interpreter, where nothing else has imported them first."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "optimum", "nncf", "datasets")

PROBE = """
import sys
sys.argv = ["edgeft", *{args!r}]
{body}
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
print("HEAVY=" + ",".join(heavy))
"""


def heavy_modules_after(body: str, args: list[str] | None = None) -> list[str]:
    code = PROBE.format(args=args or [], body=body, heavy=HEAVY)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    line = [l for l in proc.stdout.splitlines() if l.startswith("HEAVY=")]
    assert line, proc.stdout + proc.stderr
    return [m for m in line[-1].removeprefix("HEAVY=").split(",") if m]


def test_runtime_import_is_lean():
    assert heavy_modules_after("import edgeft.runtime, edgeft.runtime.bench") == []


def test_cli_help_is_lean():
    body = "from edgeft.cli.app import main\ntry:\n    main()\nexcept SystemExit:\n    pass"
    assert heavy_modules_after(body, ["--help"]) == []


def test_predict_and_bench_are_lean(tiny_bundles):
    bundle = str(tiny_bundles["x86-avx2"])
    body = "from edgeft.cli.app import main\ntry:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code"
    assert heavy_modules_after(body, ["predict", bundle, "good day"]) == []
    assert heavy_modules_after(body, ["bench", bundle, "--runs", "10"]) == []


def test_gate_is_lean(tiny_bundles, tmp_path):
    bench = tmp_path / "bench.json"
    body = "from edgeft.cli.app import main\ntry:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code"
    assert heavy_modules_after(body, ["bench", str(tiny_bundles["x86-avx2"]), "--runs", "10", "--json", str(bench)]) == []
    assert heavy_modules_after(body, ["gate", str(bench), "--baseline", str(bench)]) == []
