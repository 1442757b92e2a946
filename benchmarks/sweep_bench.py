"""How fast sweeps run: the speed-up of a 2-worker sweep against the machine's own, and the
overhead each run adds.

    python benchmarks/sweep_bench.py [--cells 40] [--cell-seconds 2] [--workers 2]
                                     [--repeat 3] [--trivial 200] [--no-dask]

Speed-up. A sweep of ``--cells`` cells (the quickstart, its duration stretched so that one
run takes about ``--cell-seconds`` of wall time here, one cell per value of
``workload.keys``, one seed) runs once as a plain loop of ``capsim.run`` calls in a fresh
process, then with ``capsim.sweep`` on the local pool and on a Dask cluster (a
``LocalCluster`` of ``--workers`` processes, started beforehand and timed apart) of
``--workers`` workers; its speed-up is the loop's time over the sweep's. The machine's own
speed-up comes from the same measurement on a plain CPU-bound Python loop (the same
number of tasks, each a quarter as long) in a process pool of the same size. Target
(issue 9): the sweep's speed-up at least 90% of the machine's.

Overhead. ``--trivial`` runs of a scenario that simulates almost nothing (a few
milliseconds each) run as a loop in a fresh process and then as a sweep on one worker; the
difference divided by the number of runs is what a sweep adds per run (sending the
scenario, the result coming back, its file and its row), start-up included. Target: under
50 ms. Prints medians of ``--repeat`` repeats; figures, not a test.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from capsim.runner import run
from capsim.scenario import load_scenario
from capsim.sweep import sweep

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"


def spin(n: int) -> int:
    """A plain CPU-bound loop: no allocation to speak of, no I/O."""
    x = 0
    for i in range(n):
        x = (x * 31 + i) % 1_000_003
    return x


def timed(fn, *args, **kwargs) -> float:
    started = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - started


def machine_speedup(tasks: int, seconds: float, workers: int) -> tuple[float, float, float]:
    """(serial s, parallel s, speed-up) of ``tasks`` spins of about ``seconds`` each."""
    n = 200_000
    while timed(spin, n) < 0.05:
        n *= 2
    n = int(n * seconds / timed(spin, n))
    serial = in_fresh_process(_spins, n, tasks)
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(spin, [1000] * workers))  # start the processes outside the timing
        parallel = timed(lambda: list(pool.map(spin, [n] * tasks)))
    return serial, parallel, serial / parallel


def _spins(n: int, tasks: int) -> float:
    return timed(lambda: [spin(n) for _ in range(tasks)])


def in_fresh_process(fn, *args):
    """``fn(*args)`` in a process of its own, as a worker runs: not in this one, whose Dask
    scheduler and client threads would slow a loop down."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


def cell_overrides(seconds: float) -> list[str]:
    """``--set`` assignments that make one quickstart run take about ``seconds`` here."""
    probe = 10.0
    scenario = load_scenario(QUICKSTART, overrides=[f"duration={probe}s", "faults=[]"])
    wall = min(timed(run, scenario) for _ in range(3))
    duration = max(probe * seconds / wall, 1.0)
    return [f"duration={duration:.1f}s", "faults=[]"]


def serial_loop(overrides: list[str], grid: dict, seeds: int = 1) -> float:
    """The runs of a sweep, one after the other in a fresh process."""
    return in_fresh_process(_serial_loop, overrides, grid, seeds)


def _serial_loop(overrides: list[str], grid: dict, seeds: int = 1) -> float:
    ((path, values),) = grid.items()
    started = time.perf_counter()
    for value in values:
        scenario = load_scenario(QUICKSTART, overrides=[*overrides, f"{path}={value}"])
        for seed in range(seeds):
            run(scenario, seed=seed)
    return time.perf_counter() - started


def swept(overrides, grid, workers, executor="local", scheduler=None) -> float:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = sweep(
            QUICKSTART,
            grid=grid,
            seeds=1,
            out=Path(folder) / "out",
            overrides=overrides,
            workers=workers,
            executor=executor,
            scheduler=scheduler,
        )
        wall = time.perf_counter() - started
    assert result.failed == 0 and not result.lost
    return wall


def local_cluster(workers: int):
    import distributed

    started = time.perf_counter()
    cluster = distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": ":0"},
        silence_logs=logging.ERROR,
    )
    return cluster, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=40)
    parser.add_argument("--cell-seconds", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--trivial", type=int, default=200)
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()
    executors = ["local"] if args.no_dask else ["local", "dask"]

    load = os.getloadavg()[0]
    print(f"load average before: {load:.2f} on {os.cpu_count()} cores")
    if load > 0.5:
        print("  (other processes are running: the speed-ups below are not the machine's own)")
    trivial = ["duration=0.05s", "settle=0s", "final_reads=false", "faults=[]"]
    one = {"workload.keys": [3]}
    cold = swept(trivial, one, args.workers)
    warm = swept(trivial, one, args.workers)
    print(
        f"local pool start-up: a sweep of one trivial run takes {cold:.2f} s the first time "
        f"in a process (the fork server imports capsim), {warm:.2f} s after"
    )

    clusters = {}
    if "dask" in executors:
        logging.getLogger("distributed").setLevel(logging.ERROR)
        cluster, start = local_cluster(args.workers)
        one, _ = local_cluster(1)
        clusters = {"many": cluster, "one": one}
        print(f"Dask LocalCluster of {args.workers} workers started in {start:.2f} s (not timed)")

    overrides = cell_overrides(args.cell_seconds)
    grid = {"workload.keys": list(range(8, 8 + args.cells))}
    print(
        f"cells: the quickstart with {' '.join(overrides)}; "
        f"{args.cells} cells x 1 seed; {args.workers} workers"
    )
    figures: dict[str, list[float]] = {}
    for i in range(args.repeat):
        serial, parallel, speedup = machine_speedup(args.cells, args.cell_seconds / 4, args.workers)
        figures.setdefault("machine", []).append(speedup)
        print(
            f"[{i + 1}] plain loop: {serial:.1f} s serial, {parallel:.1f} s on "
            f"{args.workers} processes: speed-up {speedup:.3f}"
        )
        loop = serial_loop(overrides, grid)
        for executor in executors:
            scheduler = clusters["many"].scheduler_address if executor == "dask" else None
            wall = swept(overrides, grid, args.workers, executor, scheduler)
            figures.setdefault(executor, []).append(loop / wall)
            figures.setdefault(f"{executor} ratio", []).append(loop / wall / speedup)
            print(
                f"[{i + 1}] sweep ({executor}): {loop:.1f} s as a loop, {wall:.1f} s swept: "
                f"speed-up {loop / wall:.3f}, {loop / wall / speedup:.1%} of the machine's"
            )

    tiny_grid = {"workload.keys": list(range(1, args.trivial + 1))}
    for i in range(args.repeat):
        loop = serial_loop(trivial, tiny_grid)
        for executor in executors:
            scheduler = clusters["one"].scheduler_address if executor == "dask" else None
            wall = swept(trivial, tiny_grid, 1, executor, scheduler)
            per = (wall - loop) / args.trivial
            figures.setdefault(f"{executor} overhead", []).append(per)
            print(
                f"[{i + 1}] {args.trivial} trivial runs ({executor}, 1 worker): {loop:.2f} s "
                f"as a loop, {wall:.2f} s swept: {per * 1000:.1f} ms per run"
            )

    print(f"\nmedians of {args.repeat}:")
    machine = statistics.median(figures["machine"])
    print(f"  machine speed-up on {args.workers} processes: {machine:.3f}")
    for executor in executors:
        print(
            f"  {executor}: speed-up {statistics.median(figures[executor]):.3f}, "
            f"{statistics.median(figures[f'{executor} ratio']):.1%} of the machine's "
            f"(target 90%); overhead "
            f"{statistics.median(figures[f'{executor} overhead']) * 1000:.1f} ms per run "
            "(target under 50 ms)"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    for cluster in clusters.values():
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
        cluster.close()


if __name__ == "__main__":
    main()
