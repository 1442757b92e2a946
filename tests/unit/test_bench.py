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


def test_a_shorter_bench_keeps_its_load_and_its_partition_in_proportion():
    full = bench.bench_scenario("raft")
    short = bench.bench_scenario("raft", ops=20_000, duration=10.0)
    # 200,000 operations over 100 s from 6 clients: 333.3 a second each; a tenth of the
    # operations over a tenth of the time is the same load.
    assert full.workload.rate == pytest.approx(200_000 / 600)
    assert short.workload.rate == pytest.approx(full.workload.rate)
    assert (full.faults[0].at, full.faults[0].duration) == (40.0, 20.0)
    assert (short.faults[0].at, short.faults[0].duration) == (4.0, 2.0)


def test_a_real_run_counts_messages_and_operations():
    result = bench.bench_policy("single-primary", ops=2000)
    # About 2,000 operations over 100 simulated seconds (Poisson arrivals: within 5
    # standard deviations), then the final phase's reads: each of the 100 keys from each
    # of the 5 replicas. Each is at least a request and a reply.
    assert 1780 + 500 < result["ops"] < 2220 + 500
    assert result["messages"] >= 2 * result["ops"]
    assert result["wall_s"] > 0


def _instructions_bench():
    """benchmarks/instructions_bench.py, imported from its file (benchmarks/ is no package)."""
    import importlib.util

    from conftest import ROOT

    path = ROOT / "benchmarks" / "instructions_bench.py"
    spec = importlib.util.spec_from_file_location("instructions_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The summary valgrind 3.19's cachegrind writes on stderr (cache simulation on).
_CACHEGRIND = """\
==2249== I   refs:      7,459,902,766
==2249== I1  misses:      121,324,616
==2249== LLi misses:           36,740
==2249== D1  misses:      114,938,677  (  103,337,488 rd   +    11,601,189 wr)
==2249== LLd misses:          979,604  (      148,612 rd   +       830,992 wr)
"""


def test_instruction_counts_are_read_from_cachegrinds_summary():
    ib = _instructions_bench()
    counts = ib.parse_counts("progress line\n102178\n", _CACHEGRIND)
    assert counts == {"units": 102178, "I": 7_459_902_766, "I1": 121_324_616, "D1": 114_938_677}
    with pytest.raises(SystemExit):
        ib.parse_counts("5\n", "==1== valgrind: something else\n")


def test_the_marginal_cost_leaves_start_up_out():
    ib = _instructions_bench()
    # Start-up 2,000 instructions, then 40 per message: 2,400 for 10 messages and 4,000
    # for 50. The difference is 1,600 for 40 messages.
    per = ib.marginal({"units": 10, "I": 2_400}, {"units": 50, "I": 4_000})
    assert per == {"I": 40.0}
