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


# The device side's house: what `import edgeft.runtime` (and predict / bench on a bundle) may load of edgeft itself.
# The build half (backends: export, quantize, convert), the stages and the pipeline never come along.
RUNTIME_ROOMS = ("edgeft.runtime",)
RUNTIME_SHARED = {"edgeft", "edgeft.errors", "edgeft.metrics", "edgeft.artifact"}
# The CLI around predict / bench adds its own modules, the bench table and the device addresses; still no build half.
CLI_ROOMS = ("edgeft.cli", "edgeft.devices", "edgeft.reports.tables")
BUILD_SIDE = ("edgeft.backends", "edgeft.stages", "edgeft.pipeline")


def edgeft_modules_after(body: str, args: list[str] | None = None) -> set[str]:
    code = f"import sys\nsys.argv = ['edgeft', *{args or []!r}]\n{body}\n" \
           "print('EDGEFT=' + ','.join(sorted(m for m in sys.modules if m.split('.')[0] == 'edgeft')))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    line = [l for l in proc.stdout.splitlines() if l.startswith("EDGEFT=")]
    assert line, proc.stdout + proc.stderr
    return set(line[-1].removeprefix("EDGEFT=").split(","))


def outside(modules: set[str], rooms: tuple[str, ...], shared: set[str]) -> set[str]:
    return {m for m in modules if m not in shared and not any(m == r or m.startswith(r + ".") for r in rooms)}


def test_the_runtime_loads_only_its_own_room_of_edgeft():
    loaded = edgeft_modules_after("import edgeft.runtime, edgeft.runtime.bench, edgeft.runtime.samples")
    assert "edgeft.runtime.bundle" in loaded  # the probe really imported the runtime
    assert outside(loaded, RUNTIME_ROOMS, RUNTIME_SHARED) == set()


def test_predict_and_bench_load_no_build_half_of_edgeft(tiny_bundles):
    body = "from edgeft.cli.app import main\ntry:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code"
    for target in ("x86-avx2", "openvino-cpu"):
        bundle = str(tiny_bundles[target])
        for args in (["predict", bundle, "good day"], ["bench", bundle, "--runs", "10"]):
            loaded = edgeft_modules_after(body, args)
            assert "edgeft.runtime.sessions" in loaded, args
            assert not {m for m in loaded if m.startswith(BUILD_SIDE)}, args
            assert outside(loaded, RUNTIME_ROOMS + CLI_ROOMS, RUNTIME_SHARED | {"edgeft.reports"}) \
                == set(), args
