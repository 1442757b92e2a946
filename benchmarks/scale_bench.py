"""How capsim scales with the cluster: building, partitioning and finishing a large world.

    python benchmarks/scale_bench.py [--containers 1000] [--shards 300] [--repeat 5]

Builds a world of N containers in 3 zones with S shards of 3 replicas (consistent hashing,
64 vnodes), starts it, then times applying and ending a partition of every shape that
splits the whole cluster, and a short run to its end (final reads through each replica).
Prints medians in seconds. Targets (issue 8): build under 2 s and a partition under 0.1 s
for 1,000 containers and 300 shards. Figures, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time

from capsim.runner import build
from capsim.scenario import parse_scenario


def scenario(containers: int, shards: int, duration: float = 5.0):
    return parse_scenario(
        {
            "duration": duration,
            "settle": 1,
            "cluster": {
                "containers": containers,
                "zones": ["a", "b", "c"],
                "replication_factor": 3,
                "shards": shards,
            },
            "workload": {"rate": 10, "clients_per_zone": 2, "keys": 1000},
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sc = scenario(args.containers, args.shards)

    builds = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        world = build(sc, seed=1)
        world.start()
        builds.append(time.perf_counter() - started)
    print(
        f"build and boot, {args.containers} containers, {args.shards} shards: "
        f"{statistics.median(builds):.3f} s (median of {args.repeat})"
    )

    from capsim.faults import Partition

    for shape, extra in (
        ("halves", {}),
        ("isolate", {"target": "n1"}),
        ("bridge", {"target": "n1"}),
        ("groups", {"groups": (("a",), ("b",))}),
        ("one-way", {"target": "a"}),
    ):
        times = []
        for i in range(args.repeat):
            fault = Partition(at=0.0, shape=shape, **extra)
            started = time.perf_counter()
            world.nemesis._partition(("bench", i), fault)  # noqa: SLF001 - apply it now
            world.nemesis.end(("bench", i))
            times.append(time.perf_counter() - started)
        print(f"partition {shape:>8}: apply and end {statistics.median(times) * 1000:.1f} ms")

    started = time.perf_counter()
    world = build(sc, seed=1)
    world.run()
    result = world.result(world.digest(), 0.0)
    print(
        f"a {sc.duration:g} s run to its end: {time.perf_counter() - started:.2f} s, "
        f"{result.summary['final']['total']:,} final reads (each key through each replica)"
    )


if __name__ == "__main__":
    main()
