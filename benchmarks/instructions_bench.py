"""The ``capsim bench`` ratios counted in machine instructions instead of seconds.

A figure that does not move with the machine or its load.

    python benchmarks/instructions_bench.py [--policy NAME]... [--seconds A B] [--cache] [--jobs N]

Runs the reference loop of ``capsim bench`` and the benchmark scenario of each policy under
valgrind's cachegrind, each at two sizes, and prints the marginal cost: machine
instructions per reference callback and per delivered message (the difference between the
two sizes, so start-up, imports, the world's build and the final reads drop out), and
their ratio. A policy's two runs keep the benchmark's load (2,000 operations per simulated
second, a partition from 40% to 60% of the run) over ``A`` and ``B`` simulated seconds
instead of 100, so the mix of messages is the benchmark's (fewer operations over the same
100 s would weigh the heartbeats more). With ``--cache`` it also simulates the caches and
prints first-level data- and instruction-cache misses per unit: the reference loop's few
objects stay in the caches, a policy's many do not, which is why a policy's ratio in
seconds is lower than its ratio in instructions and differs from one machine to another.

Counts repeat to within 0.1% from run to run on one build of Python and numpy
(``PYTHONHASHSEED`` is fixed), whatever else the machine is doing, so runs may go in
parallel (``--jobs``). Each run takes about 50 times as long as without valgrind: with
``--cache`` and the defaults, all five built-ins took 9 minutes on a 2-vCPU machine.
Figures, not a test; needs ``valgrind`` on the PATH.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from capsim.bench import target_for
from capsim.policies import POLICIES

#: Reference-loop callbacks at the two sizes.
REFERENCE_SIZES = (100_000, 300_000)

_CHILD = """
import sys
kind, size = sys.argv[1], float(sys.argv[2])
if kind == "reference":
    from capsim.bench import reference_rate
    size = int(size)
    reference_rate(size)
    print(size)
else:
    # The bench's load (operations per simulated second), over a shorter run.
    from capsim.bench import BENCH_OPS, BENCH_SECONDS, bench_policy
    ops = round(BENCH_OPS / BENCH_SECONDS * size)
    print(bench_policy(kind, ops, duration=size)["messages"])
"""

_COUNTER = re.compile(r"==\d+==\s+(I\s+refs|I1\s+misses|D1\s+misses):\s+([\d,]+)")


def measure(kind: str, size: float, cache: bool) -> dict[str, int]:
    """One run under cachegrind: the units it did (callbacks or messages) and its counts."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            "valgrind",
            "--tool=cachegrind",
            f"--cache-sim={'yes' if cache else 'no'}",
            f"--cachegrind-out-file={Path(tmp) / 'out'}",
            sys.executable,
            "-c",
            _CHILD,
            kind,
            str(size),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"instructions_bench: {kind} failed under valgrind:\n{done.stderr}")
    counts = parse_counts(done.stdout, done.stderr)
    what = f"{size:,} callbacks" if kind == "reference" else f"{size:g} s"
    print(f"  {kind}, {what}: {counts['I']:,} instructions", file=sys.stderr)
    return counts


def parse_counts(stdout: str, stderr: str) -> dict[str, int]:
    """The units the child printed last, and cachegrind's totals from its summary:
    ``I`` (instructions), and with the cache simulation ``I1`` and ``D1`` (misses)."""
    counts = {"units": int(stdout.split()[-1])}
    for name, value in _COUNTER.findall(stderr):
        counts[name.split()[0]] = int(value.replace(",", ""))
    if "I" not in counts:
        raise SystemExit("instructions_bench: no instruction count in valgrind's output")
    return counts


def marginal(small: dict[str, int], large: dict[str, int]) -> dict[str, float]:
    """Counts per unit between the two runs."""
    units = large["units"] - small["units"]
    return {k: (large[k] - small[k]) / units for k in large if k != "units"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--policy", action="append", help="a built-in to measure, repeatable (default: all)"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        nargs=2,
        default=(4.0, 12.0),
        metavar=("A", "B"),
        help="simulated seconds of the two runs of each policy (default: 4 12)",
    )
    parser.add_argument("--cache", action="store_true", help="also simulate the caches")
    parser.add_argument("--jobs", type=int, default=2, help="valgrind runs at once (default 2)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        parser.exit(2, "instructions_bench: valgrind is not on the PATH\n")
    names = args.policy or sorted(POLICIES)
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        parser.exit(2, f"instructions_bench: unknown policy {unknown[0]!r}\n")
    small, large = sorted(args.seconds)
    if not 1 <= small < large <= 100:
        parser.exit(2, "instructions_bench: --seconds needs two different sizes, 1 to 100\n")
    jobs = [("reference", n) for n in REFERENCE_SIZES]
    jobs += [(name, n) for name in names for n in (small, large)]
    print(f"{len(jobs)} runs under valgrind, {args.jobs} at once ...", file=sys.stderr)
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        counts = list(pool.map(lambda job: measure(*job, args.cache), jobs))
    by_job = dict(zip(jobs, counts, strict=True))
    reference = marginal(*(by_job[j] for j in jobs[:2]))
    header = f"{'':16} {'instructions':>13} {'ratio':>7} {'target':>7}"
    if args.cache:
        header += f" {'D1 misses':>10} {'I1 misses':>10}"
    print(header)

    def row(label: str, per: dict[str, float], ratio: str, target: str) -> str:
        line = f"{label:16} {per['I']:13,.0f} {ratio:>7} {target:>7}"
        if args.cache:
            line += f" {per['D1']:10,.0f} {per['I1']:10,.0f}"
        return line

    print(row("reference", reference, "", "") + "   per callback")
    for name in names:
        per = marginal(by_job[(name, small)], by_job[(name, large)])
        ratio = reference["I"] / per["I"]
        print(row(name, per, f"{ratio:.3f}", f"{target_for(name):.2f}") + "   per message")


if __name__ == "__main__":
    main()
