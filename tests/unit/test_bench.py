"""capsim bench: what it measures and reports (never how fast: benchmarks print figures)."""

from __future__ import annotations

import pytest

from capsim import bench


def test_the_baseline_is_the_median_of_readings_around_the_runs(monkeypatch):
    # Readings as a shared machine gives them: two slow ones among five.
    readings = iter([1.0e6, 0.5e6, 1.2e6, 0.6e6, 1.1e6, 9e9])
    calls = []

    def fake_reference():
        calls.append("reference")
        return next(readings)

    def fake_policy(name, ops):
        calls.append("run")
        return {"policy": name, "ops": ops, "messages": 150_000, "events": 200_000,
                "wall_s": 1.0, "messages_per_s": 150_000.0}  # fmt: skip

    monkeypatch.setattr(bench, "reference_rate", fake_reference)
    monkeypatch.setattr(bench, "bench_policy", fake_policy)
    report = bench.run_bench(["single-primary"], ops=1000)
    # Three readings before the run and two after, not all five up front.
    assert calls == ["reference"] * 3 + ["run"] + ["reference"] * 2
    (row,) = report["results"]
    assert row["baseline_events_per_s"] == 1.0e6  # median of 0.5, 0.6, 1.0, 1.1, 1.2 M
    assert (row["baseline_min"], row["baseline_max"]) == (0.5e6, 1.2e6)
    assert row["ratio"] == 0.15
    assert row["target"] == 0.25  # single-primary's own target; 0.15 is below it


@pytest.mark.parametrize(
    ("policy", "target"), [("single-primary", 0.25), ("raft", 0.15), ("mine:Mine", 0.15)]
)
def test_targets_per_policy(policy, target):
    assert bench.target_for(policy) == target


def test_a_real_run_counts_messages_and_operations():
    result = bench.bench_policy("single-primary", ops=2000)
    # About 2,000 operations over 100 simulated seconds (Poisson arrivals: within 5
    # standard deviations), then the final phase's reads: each of the 100 keys from each
    # of the 5 replicas. Each is at least a request and a reply.
    assert 1780 + 500 < result["ops"] < 2220 + 500
    assert result["messages"] >= 2 * result["ops"]
    assert result["wall_s"] > 0
