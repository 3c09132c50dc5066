"""The selection rules on hand-made measurements: fastest within the accuracy budget, never slower than fp32,
near-ties to the profile's preference order, and preference order alone when latency cannot be measured here."""

from __future__ import annotations

from edgeft.profile import load_profile
from edgeft.stages.select import TIE, _decide


def rows(**measured: tuple[str, float, float | None]) -> dict[str, dict]:
    """name=(scheme, accuracy drop, p50 ms or None)"""
    return {name: {"name": name, "scheme": scheme, "accuracy_drop": drop, "p50_ms": p50}
            for name, (scheme, drop, p50) in measured.items()}


PROFILE = load_profile("x86-avx2")


def decide(table: dict[str, dict], timed: bool = True, budget: float = 0.01) -> str:
    accurate = [n for n, r in table.items() if r["accuracy_drop"] <= budget]
    return _decide(list(table), table, accurate, budget, "fp32", timed, PROFILE)[0]


def test_the_fastest_candidate_within_the_budget_ships():
    table = rows(a=("dynamic-int8", 0.004, 5.0), b=("dynamic-int8", 0.002, 4.0), fp32=("fp32", 0.0, 9.0))
    assert decide(table) == "b"
    assert table["a"]["status"] == "rejected" and "vs 4.00 ms for 'b'" in table["a"]["reason"]


def test_a_faster_candidate_that_loses_too_much_accuracy_is_rejected():
    table = rows(fast=("static-int8", 0.03, 2.0), ok=("dynamic-int8", 0.004, 5.0), fp32=("fp32", 0.0, 9.0))
    assert decide(table) == "ok"
    assert "dev accuracy drop 0.0300 > budget 0.01" in table["fast"]["reason"]


def test_int8_slower_than_fp32_never_ships():
    """The OpenVINO NNCF trap on CPUs without VNNI: int8 at 21.8 ms against fp32 at 13.3 ms."""
    table = rows(nncf=("static-int8", 0.001, 21.8), fp32=("fp32", 0.0, 13.3))
    assert decide(table) == "fp32"
    assert "slower than the fastest fp32 candidate" in table["nncf"]["reason"]


def test_near_ties_go_to_the_preference_order():
    table = rows(first=("dynamic-int8", 0.004, 5.0 * (1 + TIE / 2)), second=("dynamic-int8", 0.004, 5.0),
                 fp32=("fp32", 0.0, 9.0))
    assert decide(table) == "first"
    assert "a tie" in table["second"]["reason"]


def test_without_timings_the_first_accurate_candidate_in_order_ships():
    table = rows(bad=("static-int8", 0.05, None), good=("dynamic-int8", 0.004, None), fp32=("fp32", 0.0, None))
    assert decide(table, timed=False) == "good"
    assert "preference order" in table["fp32"]["reason"]
