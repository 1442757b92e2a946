"""The PBS experiments through the whole simulator (capsim.analytic.des), against answers
worked out by hand: the quorum policy's wars mode, partial mode and ``capsim pbs --engine
des``."""

from __future__ import annotations

import json
import math

import pytest

from capsim.analytic import Legs, k_staleness
from capsim.analytic.des import k_staleness_des, wars_des, wilson
from capsim.cli import main

# W exponential (mean 10 ms), the other legs instant: P(t) = 1 - 2/3 exp(-t / 10) for
# N = 3, R = W = 1 (derived in tests/unit/test_analytic.py).
SLOW_WRITES = Legs.of(w={"dist": "exponential", "mean": "10ms"}, a="0ms", r="0ms", s="0ms")


def p_slow_writes(t_ms: float) -> float:
    return 1 - 2 / 3 * math.exp(-t_ms / 10)


def test_wars_mode_follows_the_closed_form_read_by_read():
    des = wars_des(3, 1, 1, SLOW_WRITES, trials=1500, seed=1, t_ms=(0, 10), grid=False)
    assert des.unanswered == 0
    for t in (0.0, 10.0):
        lo, hi = wilson(des.count(t), des.trials)
        assert lo <= p_slow_writes(t) <= hi, (t, des.p(t))
    assert len(des.read_latency_ms) == 2 * 1500 and max(des.read_latency_ms) == 0.0
    # The first of three acknowledgements: exponential with mean 10/3 ms, median 2.31 ms.
    median = sorted(des.write_latency_ms)[750]
    assert median == pytest.approx(10 / 3 * math.log(2), rel=0.12)


def test_wars_mode_across_datacenters_sees_the_write_once_it_has_crossed():
    # Every leg 1 ms, 75 ms more between datacenters (zones): a read served in the
    # writer's own datacenter (1 in 3) sees the write at once, any other from t = 73 ms.
    legs = Legs.of(w="1ms", a="1ms", r="1ms", s="1ms", cross_dc_ms=75)
    des = wars_des(3, 1, 1, legs, trials=900, seed=2, t_ms=(0, 72, 74), grid=False)
    for t in (0.0, 72.0):  # each read's datacenter drawn afresh
        lo, hi = wilson(des.count(t), des.trials)
        assert lo <= 1 / 3 <= hi, (t, des.p(t))
    assert des.p(74.0) == 1.0
    assert max(des.write_latency_ms) == pytest.approx(2.0)
    assert max(des.read_latency_ms) == pytest.approx(2.0)


def test_partial_mode_matches_k_staleness():
    for n, r, w in [(3, 1, 1), (5, 2, 2)]:
        missed = k_staleness_des(n, r, w, (1, 2), trials=1200, seed=3)
        for k, count in missed.items():
            lo, hi = wilson(count, 1200)
            assert lo <= k_staleness(n, r, w, k) <= hi, (n, r, w, k, count)
    # Intersecting quorums never miss.
    assert k_staleness_des(3, 2, 2, (1,), trials=300, seed=3) == {1: 0}


def test_pbs_des_engine_prints_the_same_shape_and_finds_t_for_a_target(capsys):
    args = [
        "pbs", "--n", "3", "--r", "1", "--w", "1", "--engine", "des", "--trials", "800",
        "--latency", "0ms", "--write-latency", "{dist: exponential, mean: 10ms}",
        "--t", "0,10", "--k", "1,2", "--target", "0.9", "--json",
    ]  # fmt: skip
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == [
        "n", "r", "w", "k_staleness", "p_consistent", "t_visibility_ms", "latency_ms",
    ]  # fmt: skip
    for t in ("0", "10"):
        lo, hi = wilson(round(out["p_consistent"][t] * 800), 800)
        assert lo <= p_slow_writes(float(t)) <= hi
    for k in ("1", "2"):
        lo, hi = wilson(round(out["k_staleness"][k] * 800), 800)
        assert lo <= k_staleness(3, 1, 1, int(k)) <= hi
    # P(t) = 0.9 at t = 10 ln((2/3) / 0.1) = 18.97 ms (grid points 17.8 and 23.7 ms).
    assert out["t_visibility_ms"]["0.9"] == pytest.approx(10 * math.log(2 / 3 / 0.1), abs=3.0)
    assert out["latency_ms"]["read"] == {"p50": 0.0, "p99": 0.0, "p999": 0.0}


def test_same_seed_same_trials_through_the_simulator():
    runs = [
        wars_des(3, 1, 1, "ymmr", trials=300, seed=seed, t_ms=(0, 5), grid=False)
        for seed in (8, 8, 9)
    ]
    same, again, other = runs
    assert list(same.consistent) == list(again.consistent)
    assert same.write_latency_ms.tobytes() == again.write_latency_ms.tobytes()
    assert same.read_latency_ms.tobytes() == again.read_latency_ms.tobytes()
    assert same.write_latency_ms.tobytes() != other.write_latency_ms.tobytes()
