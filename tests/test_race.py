"""`edgeft race`: the device side of a build's candidate race. Several bundles timed in turn on the same texts, here
(the build runs the same command on a device over SSH: tests/test_devices.py)."""

from __future__ import annotations

import itertools
import json

from conftest import run_edgeft

from edgeft.runtime.bench import RACE_BLOCK, interleaved_latency


def test_race_times_bundles_interleaved_and_writes_json(tiny_bundles, tmp_path):
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["good day", "awful\nbroken", "the car"]))
    out = tmp_path / "race.json"
    a, b = tiny_bundles["x86-avx2"], tiny_bundles["x86-avx2-teacher"]
    code, stdout, err = run_edgeft(["race", str(a), str(b), "--texts", str(texts), "--rounds", "2", "--json", str(out)])
    assert code == 0, err
    result = json.loads(out.read_text())
    assert result["kind"] == "race" and result["texts"] == 3 and result["rounds"] == 2
    # Each model keeps the machine for a block of calls, as an app calls one model: the build's race does the same.
    assert result["block"] == RACE_BLOCK == 25
    assert set(result["models"]) == {"x86-avx2", "x86-avx2-teacher"}  # folder names: no candidate in the manifest
    for figures in result["models"].values():
        assert figures["n"] == 6 and 0 < figures["p50"] <= figures["p90"] <= figures["p99"]
    assert result["host"]["machine"] and "vs fastest" in stdout


def test_race_refuses_bundles_that_take_different_inputs_and_bad_texts(tiny_bundles, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("good day\nthe car\n")
    # The mobile profile cuts at 64 tokens, x86-avx2 at 128: their tokenizer files differ, so their inputs may.
    code, _, err = run_edgeft(["race", str(tiny_bundles["x86-avx2"]), str(tiny_bundles["mobile"]), "--texts", str(texts)])
    assert code == 2 and "different tokenizer files" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"words": ["no", "text"]}\n')
    code, _, err = run_edgeft(["race", str(tiny_bundles["x86-avx2"]), "--texts", str(bad)])
    assert code == 2 and "bad.jsonl line 1" in err


class CallLog:
    """A session that only records which model ran on which input (the scheduling is what is under test)."""

    def __init__(self, name: str, log: list[tuple[str, int]]) -> None:
        self.name, self.log = name, log

    def run(self, feed: dict) -> None:
        self.log.append((self.name, int(feed["i"])))


def test_interleaving_switches_model_per_call_or_per_block_and_times_every_input_each_round():
    feeds = [{"i": i} for i in range(10)]
    for block in (1, 5):
        log: list[tuple[str, int]] = []
        sessions = {name: CallLog(name, log) for name in ("a", "b", "c")}
        samples = interleaved_latency(sessions, feeds, rounds=2, warmup=0, block=block)
        assert {name: len(times) for name, times in samples.items()} == {"a": 20, "b": 20, "c": 20}
        for name in sessions:  # every model sees every input once a round, in input order
            assert [i for n, i in log if n == name] == list(range(10)) * 2
        # A model keeps the machine for whole blocks (two in a row when the next block's random order starts with
        # it), and all three have run before the next block starts.
        runs = [len(list(group)) for _, group in itertools.groupby(n for n, _ in log)]
        assert all(length % block == 0 for length in runs) and min(runs) == block
        for start in range(0, len(log), 3 * block):
            assert {n for n, _ in log[start:start + 3 * block]} == {"a", "b", "c"}
