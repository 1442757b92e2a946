"""Time every metric on a 1,000,000-operation history (target: at most 10 s and 2 GB).

Two histories, written once to a cache folder and then measured in a fresh process
(so the peak memory is the history plus the metrics, not the simulation that made it):

* ``simulated``: the ``capsim bench`` scenario (single-primary, a minority partition)
  scaled to 1,000,000 operations: a CP history, no stale reads.
* ``stale``: a synthetic history of 100 keys where a third of the reads return a value
  one to twenty writes old, so staleness, t-visibility and sessions have real work.

Usage: python benchmarks/metrics_bench.py [--ops N] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from capsim.history import History


def simulated(ops: int, path: Path) -> None:
    from capsim.bench import bench_scenario
    from capsim.runner import build

    world = build(bench_scenario("single-primary", ops), 1)
    world.run()
    world.history.to_jsonl(path)


def stale(ops: int, path: Path, keys: int = 100, processes: int = 200, seed: int = 1) -> None:
    """A synthetic register history with stale reads, in time order."""
    rng = np.random.default_rng(seed)
    per = ops // processes
    events = []  # (time, order, process, type, f, key, value)
    written: list[list[int]] = [[] for _ in range(keys)]
    next_value = [0] * keys
    # Operations are generated process by process, then merged by time; values are
    # assigned in invocation order so that each key's values are unique and increasing.
    plan = []
    for p in range(processes):
        t = float(rng.uniform(0, 0.01))
        for _ in range(per):
            duration = float(rng.exponential(0.004)) + 0.0005
            plan.append((t, p, duration, int(rng.integers(keys)), float(rng.random())))
            t += duration + float(rng.exponential(0.02))
    plan.sort()
    for n, (t, p, duration, key, u) in enumerate(plan):
        if u < 0.5:
            next_value[key] += 1
            value = next_value[key]
            written[key].append(value)
            events.append((t, 2 * n, p, "invoke", "write", key, value))
            events.append((t + duration, 2 * n + 1, p, "ok", "write", key, value))
        else:
            history = written[key]
            if history and u < 0.66:
                back = min(len(history), int(rng.integers(1, 21)))
                out = history[-back]
            else:
                out = history[-1] if history else None
            events.append((t, 2 * n, p, "invoke", "read", key, None))
            events.append((t + duration, 2 * n + 1, p, "ok", "read", key, out))
    events.sort()
    h = History()
    for t, _, p, type_, f, key, value in events:
        h.append(
            process=p, type=type_, f=f, key=f"k{key}", value=value, time=t, client=f"c{p % 20}"
        )
    h.to_jsonl(path)


def measure(path: str) -> None:
    """Run in a fresh process: load, then time pairing and every metric."""
    from capsim import metrics

    history = History.from_jsonl(path)
    started = time.perf_counter()
    ops = history.operations()
    summary = metrics.summarize(ops, [], workload="register", end=float(ops.invoke_time.max()))
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "ops": len(ops),
                "metrics_s": round(elapsed, 3),
                "peak_rss_mb": round(peak_mb, 1),
                "stale_read_fraction": summary["staleness"]["stale_read_fraction"],
                "k_mean": summary["staleness"]["k_mean"],
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=1_000_000)
    parser.add_argument("--cache", default="/tmp/capsim-metrics-bench")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure)
        return 0
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    print(f"metrics on {args.ops:,}-operation histories (target: 10 s, 2 GB)")
    for name, make in (("simulated", simulated), ("stale", stale)):
        path = cache / f"{name}-{args.ops}.jsonl"
        if not path.exists():
            print(f"  making {path} ...", flush=True)
            make(args.ops, path)
        out = subprocess.run(
            [sys.executable, __file__, "--measure", str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        result = json.loads(out)
        print(
            f"  {name:10s} {result['ops']:>9,} ops  metrics {result['metrics_s']:6.2f} s  "
            f"peak {result['peak_rss_mb']:7.1f} MB  stale reads "
            f"{result['stale_read_fraction']:.3f}  mean k {result['k_mean']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
