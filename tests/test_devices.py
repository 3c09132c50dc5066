"""`edgeft bench --device`: a real OpenSSH server on loopback (the device gets the bundle and, the first time, a
wheel of edgeft's runtime-only install, then benches and sends the JSON back), an unreachable device (exit 3), and
the emulated aarch64 runtime (predictions and accuracy, no latency)."""

from __future__ import annotations

import getpass
import json
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import run_edgeft

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    root = tmp_path_factory.mktemp("sshd")
    port = free_port()
    server = subprocess.Popen(["bash", str(REPO / "tests" / "ssh" / "sshd.sh"), str(root), str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if server.poll() is not None:
            pytest.fail(f"sshd did not start: {server.stdout.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("sshd did not listen within 120 s")
    options = (f"-i {root / 'client_key'} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
               f"-o LogLevel=ERROR")
    yield {"url": f"ssh://{getpass.getuser()}@127.0.0.1:{port}", "options": options, "root": root}
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def device_home(tmp_path_factory) -> Path:
    """The device's runner folder (the same machine here: kept private), shared by this module's SSH tests, as a
    real device keeps its runner: the first test installs it, the later ones find it."""
    return tmp_path_factory.mktemp("device-home") / "runner"


def test_bench_over_ssh_installs_the_runner_copies_the_bundle_and_returns_json(sshd, tiny_bundles, device_home,
                                                                                tmp_path, monkeypatch):
    runner = device_home
    monkeypatch.setenv("EDGEFT_SSH_OPTIONS", sshd["options"])
    monkeypatch.setenv("EDGEFT_RUNNER_DIR", str(runner))
    out = tmp_path / "bench.json"
    bundle = tiny_bundles["x86-avx2"]
    code, stdout, err = run_edgeft(["bench", str(bundle), "--device", sshd["url"], "--runs", "20", "--rounds", "2",
                                    "--json", str(out)])
    assert code == 0, err
    result = json.loads(out.read_text())
    assert result["device"]["kind"] == "ssh" and result["latency_ms"]["p50"] > 0 and len(result["rounds"]) == 2
    assert result["report"]["target"] == "x86-avx2"
    # The device runs the runtime-only install from the wheel, not this environment.
    probe = subprocess.run([str(runner / "venv" / "bin" / "python"), "-c", "import torch"], capture_output=True)
    assert probe.returncode != 0
    copied = runner / "bundles" / result["device"]["bundle"].rsplit("/", 1)[-1]
    assert (copied / "manifest.json").read_bytes() == (bundle / "manifest.json").read_bytes()
    # A second bench reuses the installed runner and the copied bundle; the result gates like a local one.
    again = tmp_path / "again.json"
    code, _, err = run_edgeft(["bench", str(bundle), "--device", sshd["url"], "--runs", "20", "--json", str(again)])
    assert code == 0, err
    code, _, err = run_edgeft(["gate", str(again), "--baseline", str(out)])
    assert code in (0, 1), err


def test_an_ner_bundle_benches_over_ssh_to_the_entity_f1_of_a_local_bench(sshd, ner_bundles, device_home,
                                                                            tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEFT_SSH_OPTIONS", sshd["options"])
    monkeypatch.setenv("EDGEFT_RUNNER_DIR", str(device_home))
    bundle = ner_bundles["x86-avx2"]
    local, remote = tmp_path / "local.json", tmp_path / "remote.json"
    for where, out in ((["--device", sshd["url"]], remote), ([], local)):
        code, _, err = run_edgeft(["bench", str(bundle), *where, "--runs", "20", "--rounds", "2", "--json", str(out)])
        assert code == 0, err
    on_device, here = json.loads(remote.read_text()), json.loads(local.read_text())
    assert on_device["device"]["kind"] == "ssh" and "teacher_f1" in on_device["report"]["metrics"]
    # The device tagged the bundle's samples with its own runtime install: the same entities as here.
    assert on_device["metrics"]["f1"] == pytest.approx(here["metrics"]["f1"]) and on_device["metrics"]["n"] > 0
    code, _, err = run_edgeft(["gate", str(remote), "--baseline", str(local), "--json", str(tmp_path / "v.json")])
    assert code in (0, 1), err  # two processes' latency may differ; the entity checks must be there and pass
    checks = {c["name"]: c for c in json.loads((tmp_path / "v.json").read_text())["checks"]}
    assert checks["entity F1 drop vs baseline"]["passed"] and checks["entity F1 drop vs fp32 teacher"]["passed"]


def test_unreachable_device_is_exit_3_with_the_reason(tiny_bundles, monkeypatch):
    monkeypatch.setenv("EDGEFT_SSH_OPTIONS", "-o ConnectTimeout=3")
    code, _, err = run_edgeft(["bench", str(tiny_bundles["x86-avx2"]), "--device", f"ssh://nobody@127.0.0.1:{free_port()}"])
    assert code == 3 and "cannot reach nobody@127.0.0.1" in err and "refused" in err


def test_bad_device_spec_is_exit_2(tiny_bundles):
    code, _, err = run_edgeft(["bench", str(tiny_bundles["x86-avx2"]), "--device", "ftp://box"])
    assert code == 2 and "ssh://user@host[:port]" in err


@pytest.mark.parametrize("flag", [["--cores", "0"], ["--batch-size", "4"], ["--rounds", "2"]])
def test_qemu_arm64_refuses_a_timing_flag_by_name_before_any_emulation(tiny_bundles, flag, monkeypatch):
    monkeypatch.setenv("EDGEFT_ARM64_ROOT", "/nonexistent")  # the refusal comes before the runtime is looked for
    code, _, err = run_edgeft(["bench", str(tiny_bundles["arm64"]), "--device", "qemu-arm64", *flag])
    assert code == 2 and f"{flag[0]} would be ignored" in err and "times nothing" in err


def test_qemu_arm64_device_predicts_without_timing(tiny_bundles, tiny_csv, tmp_path, monkeypatch):
    setup = subprocess.run(["bash", str(REPO / "tests" / "arm64" / "setup.sh"), str(REPO / ".edgeft" / "arm64")],
                           capture_output=True, text=True)
    assert setup.returncode == 0, setup.stderr[-2000:]
    out = tmp_path / "q.json"
    code, stdout, err = run_edgeft(["bench", str(tiny_bundles["arm64"]), "--device", "qemu-arm64", "--json", str(out)])
    assert code == 0, err
    assert "on the emulated aarch64 runtime" in err and "nothing is timed" in err  # minutes pass, not in silence
    result = json.loads(out.read_text())
    assert result["machine"] == "aarch64" and result["latency_ms"] is None
    assert result["agreement_with_build"] >= 0.9 and 0 <= result["metrics"]["accuracy"] <= 1
    # The user's own labelled file, from another folder: the runtime `make arm64-runtime` set up in the checkout is
    # found, and agreement is with this host's run of the same bundle on the same texts.
    data = tmp_path / "mine.csv"
    data.write_text("".join(tiny_csv.read_text().splitlines(keepends=True)[:41]))  # the header and 40 texts
    monkeypatch.chdir(tmp_path)
    code, stdout, err = run_edgeft(["bench", str(tiny_bundles["arm64"]), "--device", "qemu-arm64", "--data",
                                    str(data), "--json", str(out)])
    assert code == 0, err
    result = json.loads(out.read_text())
    assert result["texts"] == 40 and result["metrics"]["n"] == 40 and "agreement_with_build" not in result
    assert result["agreement_with_host"] >= 0.9 and f"texts of {data}" in stdout and "as this host" in stdout
    # Nothing was timed, so `edgeft gate` refuses it in one line that says why, not as a malformed file.
    code, _, err = run_edgeft(["gate", str(out)])
    assert code == 2 and "under emulation (qemu-arm64)" in err and "no latency to gate" in err


# ---- the build's candidate race on a device (`edgeft build --bench-device`) ----

def test_a_build_races_its_candidates_on_the_ssh_device_and_the_table_says_so(sshd, tiny_model, tiny_csv, work_dir,
                                                                              device_home, tmp_path, monkeypatch):
    from conftest import tiny_build_args

    runner = device_home
    monkeypatch.setenv("EDGEFT_SSH_OPTIONS", sshd["options"])
    monkeypatch.setenv("EDGEFT_RUNNER_DIR", str(runner))
    out = tmp_path / "bundle"
    code, stdout, err = run_edgeft(tiny_build_args("x86-avx2-teacher", tiny_model, tiny_csv, out, work_dir,
                                                   "--bench-device", sshd["url"]))
    assert code == 0, err
    selection = json.loads((out / "report.json").read_text())["selection"]
    url = sshd["url"]
    assert selection["latency"]["where"].startswith(url) and "on the device" in selection["decided_by"]
    assert selection["device"]["host"]["machine"] == "x86_64"
    raced = [c for c in selection["candidates"] if c.get("p50_ms") is not None]
    assert len(raced) >= 2 and all(c["timed_on"] == url for c in raced)
    # The figures in the table are the device's own: the JSON `edgeft race` wrote there, in the runner's folder.
    (race_json,) = runner.glob("race-*.json")
    on_device = json.loads(race_json.read_text())
    assert on_device["kind"] == "race" and set(on_device["models"]) == {c["name"] for c in raced}
    assert all(c["p50_ms"] == on_device["models"][c["name"]]["p50"] for c in raced)
    assert "timed on" in stdout and url in stdout
    assert url in (out / "README.md").read_text()  # the model card says where the race ran


def test_a_bench_device_of_the_wrong_kind_is_refused_before_any_work(sshd, tiny_model, tiny_csv, tmp_path,
                                                                     monkeypatch):
    from conftest import tiny_build_args

    monkeypatch.setenv("EDGEFT_SSH_OPTIONS", sshd["options"])
    work = tmp_path / "work"
    code, _, err = run_edgeft(tiny_build_args("arm64", tiny_model, tiny_csv, tmp_path / "b", work,
                                              "--bench-device", sshd["url"]))
    assert code == 2 and "x86_64" in err and "arm64" in err and len(err.strip().splitlines()) == 1
    assert not (work / "work").exists()  # nothing was fine-tuned


def test_an_unreachable_bench_device_is_exit_3_before_any_work(tiny_model, tiny_csv, tmp_path, monkeypatch):
    from conftest import tiny_build_args

    monkeypatch.setenv("EDGEFT_SSH_OPTIONS", "-o ConnectTimeout=3")
    work = tmp_path / "work"
    code, _, err = run_edgeft(tiny_build_args("x86-avx2-teacher", tiny_model, tiny_csv, tmp_path / "b", work,
                                              "--bench-device", f"ssh://nobody@127.0.0.1:{free_port()}"))
    assert code == 3 and "cannot reach nobody@127.0.0.1" in err and not (work / "work").exists()


def test_a_build_checks_its_candidates_on_emulated_aarch64_without_timing_them(tiny_model, tiny_csv, work_dir,
                                                                               tmp_path):
    from conftest import tiny_build_args

    setup = subprocess.run(["bash", str(REPO / "tests" / "arm64" / "setup.sh"), str(REPO / ".edgeft" / "arm64")],
                           capture_output=True, text=True)
    assert setup.returncode == 0, setup.stderr[-2000:]
    out = tmp_path / "bundle"
    code, stdout, err = run_edgeft(tiny_build_args("arm64", tiny_model, tiny_csv, out, work_dir,
                                                   "--bench-device", "qemu-arm64"))
    assert code == 0, err
    selection = json.loads((out / "report.json").read_text())["selection"]
    assert selection["latency"] is None and selection["device"]["emulated"]
    assert all(c.get("p50_ms") is None for c in selection["candidates"])  # emulated latency is never reported
    (chosen,) = [c for c in selection["candidates"] if c["status"] == "chosen"]
    assert chosen["device_agreement"] >= 0.9 and chosen["device_texts"] == min(32, selection["dev_texts"])
    assert "emulated aarch64" in stdout
    # qemu is aarch64 only: an x86 target is refused before any work.
    code, _, err = run_edgeft(tiny_build_args("x86-avx2-teacher", tiny_model, tiny_csv, tmp_path / "x", tmp_path / "w",
                                              "--bench-device", "qemu-arm64"))
    assert code == 2 and "aarch64" in err
