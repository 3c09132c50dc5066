"""What a device pays for edgeft's runtime: the size of a fresh virtual environment with only the base install
(the wheel from `make dist`, no extras), and the cold start of `edgeft predict` on a bundle (process start to the
first prediction), next to the same command in the full build environment.

    .venv/bin/python benchmarks/runtime_install.py [BUNDLE]      (default bundles/x86-avx2)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def folder_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def cold_start(edgeft: Path, bundle: Path, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([str(edgeft), "predict", str(bundle), "what a lovely day"], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    bundle = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "bundles" / "x86-avx2"
    if not (bundle / "manifest.json").is_file():
        print(f"error: no bundle at {bundle}; run `make build` first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="edgeft-device-") as tmp:
        root = Path(tmp)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(root / "dist"), str(REPO)],
                       check=True)
        wheel = next((root / "dist").glob("edgeft-*.whl"))
        subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
        t0 = time.perf_counter()
        subprocess.run([str(root / "venv" / "bin" / "pip"), "install", "-q", "-c", str(REPO / "constraints.txt"),
                        str(wheel)], check=True)
        install_s = time.perf_counter() - t0
        torch = subprocess.run([str(root / "venv" / "bin" / "python"), "-c", "import torch"], capture_output=True)
        runtime_cold = cold_start(root / "venv" / "bin" / "edgeft", bundle)
        full_cold = cold_start(Path(sys.executable).parent / "edgeft", bundle)
        print(f"wheel {wheel.name}: {wheel.stat().st_size / 2**10:.0f} KiB")
        print(f"runtime-only venv: {folder_mib(root / 'venv'):.0f} MiB, installed in {install_s:.0f} s; "
              f"import torch: {'absent' if torch.returncode else 'PRESENT'}")
        print(f"build venv ({Path(sys.executable).parent.parent}): {folder_mib(Path(sys.executable).parent.parent):.0f} MiB")
        print(f"cold start, `edgeft predict` to the first prediction (median of 5 processes): runtime venv "
              f"{runtime_cold:.2f} s, build venv {full_cold:.2f} s")
    return 0 if torch.returncode else 1


if __name__ == "__main__":
    sys.exit(main())
