"""``capsim bench``: how fast the simulator delivers messages, against bare SimPy.

The benchmark runs a fixed scenario (5 containers in 3 zones, 6 open-loop clients issuing
about 200,000 operations in all, a minority partition in the middle) for each built-in
policy, timing the run itself: the simulation, history recording and the trace digest,
but not the metrics computed afterwards. In the same process it times a reference loop:
100 independent chains of SimPy timeouts with exponential delays, each timeout's callback
scheduling its chain's next timeout (no processes). The figure of merit is the ratio of
capsim's delivered messages per wall-second to the reference loop's callbacks per
wall-second; the targets are at least 0.25 for single-primary and 0.15 for every other
policy (``TARGETS``).

The reference loop is timed five times for each policy, three times before its runs and
twice after, and the median taken: on a shared machine the speed of both moves over
seconds (another process on the sibling hardware thread of a 2-vCPU VM halves it), and
bracketing the runs keeps one slow reading from setting the ratio. The slowest and
fastest readings are reported beside it.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from typing import Any

import numpy as np
import simpy

from capsim.policies import POLICIES
from capsim.scenario import parse_scenario

__all__ = [
    "bench_scenario",
    "reference_rate",
    "bench_policy",
    "run_bench",
    "target_for",
    "TARGET_RATIO",
    "TARGETS",
]

#: The benchmark scenario's client operations and simulated seconds.
BENCH_OPS, BENCH_SECONDS = 200_000, 100.0
#: The target ratio of every policy without its own in ``TARGETS``.
TARGET_RATIO = 0.15
#: Policies with a target of their own.
TARGETS = {"single-primary": 0.25}


def target_for(policy: str) -> float:
    """The target ratio for ``policy``."""
    return TARGETS.get(policy, TARGET_RATIO)


def bench_scenario(policy: str, ops: int = BENCH_OPS, duration: float = BENCH_SECONDS):
    """The benchmark scenario for ``policy``, sized to about ``ops`` client operations over
    ``duration`` simulated seconds (the partition covers 40% to 60% of it)."""
    clients = 6
    rate = ops / (clients * duration)
    return parse_scenario(
        {
            "name": f"bench-{policy}",
            "duration": duration,
            "settle": 1.0,
            "cluster": {"containers": 5, "zones": ["a", "b", "c"]},
            # A user's module:Class is looked for in the working folder, as --policy says.
            "policy": {"name": policy, **({"path": os.getcwd()} if ":" in policy else {})},
            "workload": {
                "rate": rate,
                "clients_per_zone": 2,
                "read_fraction": 0.5,
                "keys": 100,
                "timeout": 0.5,
            },
            "faults": [
                {
                    "kind": "partition",
                    "at": 0.4 * duration,
                    "duration": 0.2 * duration,
                    "groups": [["n4", "n5"]],
                }
            ],
        }
    )


def reference_rate(callbacks: int = 1_000_000, chains: int = 100, seed: int = 1) -> float:
    """Callbacks per wall-second of the reference loop (see the module docstring)."""
    env = simpy.Environment()
    delays = iter(np.random.default_rng(seed).exponential(1.0, callbacks + chains).tolist())
    count = 0

    def step(_event) -> None:
        nonlocal count
        count += 1
        if count < callbacks:
            env.timeout(next(delays)).callbacks.append(step)

    for _ in range(chains):
        env.timeout(next(delays)).callbacks.append(step)
    started = time.perf_counter()
    env.run()
    return count / (time.perf_counter() - started)


def bench_policy(
    policy: str, ops: int = BENCH_OPS, seed: int = 1, duration: float = BENCH_SECONDS
) -> dict[str, Any]:
    """Time one run of the benchmark scenario; returns messages, events and seconds."""
    from capsim.runner import build

    world = build(bench_scenario(policy, ops, duration), seed)
    gc.collect()  # the build's garbage, and an earlier run's, are not this run's to collect
    started = time.perf_counter()
    world.run()
    world.digest()
    wall = time.perf_counter() - started
    return {
        "policy": policy,
        "ops": len(world.history) // 2,
        "messages": world.network.delivered,
        "messages_per_s": world.network.delivered / wall,
        "events": world.events,
        "wall_s": wall,
    }


def run_bench(
    policies: list[str] | None = None, ops: int = BENCH_OPS, repeat: int = 1, progress=None
) -> dict[str, Any]:
    """Benchmark each policy (default: every built-in); the median of ``repeat`` runs,
    against the median of five reference readings around them (see the module docstring)."""
    names = policies or sorted(POLICIES)
    results = []
    for name in names:
        if progress:
            progress(f"reference loop ({name})")
        readings = [reference_rate() for _ in range(3)]
        runs = []
        for i in range(repeat):
            if progress:
                progress(f"{name}: run {i + 1} of {repeat}")
            runs.append(bench_policy(name, ops))
        if progress:
            progress(f"reference loop again ({name})")
        readings += [reference_rate() for _ in range(2)]
        baseline = statistics.median(readings)
        wall = statistics.median(r["wall_s"] for r in runs)
        first = runs[0]
        messages_per_s = first["messages"] / wall
        results.append(
            {
                "policy": name,
                "ops": first["ops"],
                "messages": first["messages"],
                "wall_s": round(wall, 4),
                "messages_per_s": round(messages_per_s, 1),
                "events_per_s": round(first["events"] / wall, 1),
                "baseline_events_per_s": round(baseline, 1),
                "baseline_min": round(min(readings), 1),
                "baseline_max": round(max(readings), 1),
                "ratio": round(messages_per_s / baseline, 4),
                "target": target_for(name),
            }
        )
    return {"results": results, "target_ratio": TARGET_RATIO, "targets": dict(TARGETS)}
