"""How a fleet-sized run's cost grows: with operations, and with containers.

Runs ``scenarios/fleet.yaml`` (1,000 containers in 5 zones, 300 Raft groups of 3, a random
nemesis) through ``capsim run --json`` in a fresh process per case, and reports each
case's wall time (the whole command: build, run, metrics, the linearizability check),
the run's own time (``perf.wall_s``), microseconds per operation and the peak resident
memory of the process (from ``wait4``'s resource usage).

* operations: 100 k, 300 k and 1 M operations (10, 30 and 100 simulated seconds) on
  1,000 containers: linear growth keeps microseconds per operation flat;
* containers: 250, 500 and 1,000 containers at 100 k operations (the same 1,000 clients):
  at most linear growth.

    python benchmarks/fleet_bench.py            # every case: about 15 minutes on 2 cores
    python benchmarks/fleet_bench.py --quick    # without the 1 M case
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLEET = ROOT / "scenarios" / "fleet.yaml"


def peak_rss_mb(label: str, sets: list[str]) -> dict:
    """Run the fleet with ``sets`` in a child process; its figures, with the child's peak
    resident memory from ``os.wait4``."""
    command = [sys.executable, "-m", "capsim", "run", str(FLEET), "--json", "--quiet"]
    for item in sets:
        command += ["--set", item]
    started = time.perf_counter()
    with open(os.devnull, "w") as sink:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=sink, text=True)
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{label}: capsim run failed (status {status})")
    summary = json.loads(out)
    ops = summary["ops"]["total"]
    containers = next((int(s.split("=")[1]) for s in sets if s.startswith("cluster.")), 1000)
    return {
        "case": label,
        "ops": ops,
        "containers": containers,
        "wall_s": round(wall, 2),
        "run_s": summary["perf"]["wall_s"],
        "us_per_op": round(wall / ops * 1e6, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),  # kilobytes on Linux
        "events": summary["perf"]["events"],
        "availability": round(summary["availability"]["overall"], 4),
        "check": summary["consistency"]["check"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip the 1 M operation case")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    cases = [
        ("100k ops, 1000 containers", ["duration=10s", "faults[0].at=1s"]),
        ("300k ops, 1000 containers", ["duration=30s", "faults[0].at=3s"]),
    ]
    if not args.quick:
        cases.append(("1M ops, 1000 containers", []))
    for containers in (250, 500):
        cases.append(
            (
                f"100k ops, {containers} containers",
                ["duration=10s", "faults[0].at=1s", f"cluster.containers={containers}"],
            )
        )
    rows = []
    for label, sets in cases:
        print(f"running {label} ...", file=sys.stderr, flush=True)
        rows.append(peak_rss_mb(label, sets))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'case':28} {'ops':>9} {'wall s':>8} {'run s':>8} {'us/op':>7} {'peak MB':>8}")
    for r in rows:
        print(
            f"{r['case']:28} {r['ops']:>9,} {r['wall_s']:>8.1f} {r['run_s']:>8.1f} "
            f"{r['us_per_op']:>7.1f} {r['peak_rss_mb']:>8,}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
