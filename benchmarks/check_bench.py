"""Time the linearizability checker on the peer histories, beside Porcupine's figures.

Usage::

    python benchmarks/check_bench.py [--runs 5] [--only etcd_0] [--root PATH] [--per-file]
    python benchmarks/check_bench.py --set [--set-sizes 7500,29000,100000] [--runs 3]
        [--set-keys 10] [--old-up-to 10000]

For every history listed in the ``EXPECTED.tsv`` files under ``shared/peer-histories``, the
file is parsed once, then checked ``--runs`` times; the median check time is reported, first
for the verdict alone and then with the violation shrunk to a 1-minimal sub-history (what
``check_file`` does). Porcupine's median (Go, parsing excluded, no shrinking) is read from
the peer folder's README when present. Prints verdict counts and totals per group.

With ``--set``, capsim runs the set workload (defaults otherwise: 6 clients at 20 operations
per second, half reads, over ``--set-keys`` keys) long enough for each size in
``--set-sizes``, pairs the history once, and reports the median of ``--runs`` checks of
the ``set`` model (the one-pass check of :mod:`capsim.checkers.sets`); up to
``--old-up-to`` operations it also times the general search on the same history once.
A set read returns the whole set, so the history's size grows as operations squared over
keys: the table shows the total number of elements read too.
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import sys
from functools import partial
from pathlib import Path
from time import perf_counter

import capsim
from capsim.checkers import parse_value
from capsim.checkers.formats import infer_model, operations_from_history, read_operations
from capsim.checkers.linearizability import (
    DEFAULT_MAX_STEPS,
    DEFAULT_STEPS_PER_OP,
    check_operations,
    relevant_operations,
)
from capsim.checkers.models import SET, get_model
from capsim.checkers.search import Budget, search
from capsim.scenario import parse_scenario

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "peer-histories"
# Operations per simulated second of the default set workload (6 clients at 20/s; some
# time out or fail), measured: 800 s give 96,030 operations.
SET_OPS_PER_S = 120


def initial_of(model_column: str):
    """The initial value an EXPECTED.tsv model column names, as in ``cas-register (init 0)``."""
    if "(init " not in model_column:
        return None
    return parse_value(model_column.split("(init ", 1)[1].rstrip(")"))


def porcupine_medians(root: Path) -> dict[str, float]:
    """Porcupine's check medians in ms per file, from the peer README's table."""
    readme = root / "README.md"
    if not readme.exists():
        return {}
    out = {}
    pattern = re.compile(r"^\| (\S+) \| (kv\(partitioned-by-key\)|etcd-register) \|.*")
    for line in readme.read_text(encoding="utf-8").splitlines():
        if pattern.match(line):
            cells = [c.strip() for c in line.strip("|").split("|")]
            out[cells[0]] = float(cells[5])
    return out


def rows(root: Path, only: str):
    for sub in ("porcupine", "knossos"):
        table = root / sub / "EXPECTED.tsv"
        if not table.exists():
            continue
        with open(table, encoding="utf-8") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                if only in row["file"]:
                    yield sub, row


def median_time(fn, runs: int) -> tuple[float, object]:
    times = []
    result = None
    for _ in range(runs):
        start = perf_counter()
        result = fn()
        times.append(perf_counter() - start)
    return statistics.median(times), result


def group_of(sub: str, name: str) -> str:
    if sub == "porcupine":
        return "etcd" if "etcd_" in name else "kv"
    return "knossos/" + name.split("/")[0]


def set_history(operations: int, keys: int, seed: int = 1):
    """A capsim run of the set workload with about ``operations`` operations, paired:
    ``(run seconds, pairing seconds, operations)``."""
    scenario = parse_scenario(
        {
            "name": f"set-{operations}",
            "duration": operations / SET_OPS_PER_S,
            "workload": {"kind": "set", "keys": keys},
            "check": {"linearizable": False},
        }
    )
    start = perf_counter()
    history = capsim.run(scenario, seed, allow_large=True).history
    ran = perf_counter()
    ops = operations_from_history(history)
    return ran - start, perf_counter() - ran, ops


def search_only(ops) -> str:
    """The verdict of the general search on a set history, bypassing the one-pass check."""
    model = SET
    state0 = model.initial_state()
    budget = Budget(DEFAULT_MAX_STEPS + DEFAULT_STEPS_PER_OP * len(ops))
    for part in sorted(model.partition(relevant_operations(ops, model)), key=len):
        found = search(part, model, state0, budget)
        if found is None:
            return "unknown"
        if not found:
            return "not-linearizable"
    return "linearizable"


def set_figure(sizes: list[int], runs: int, keys: int, old_up_to: int) -> int:
    """Print the set check's median time per history size (and the search's, if cheap)."""
    print(
        f"{'ops':>7} {'keys':>4} {'elements read':>13} {'run s':>7} {'pair s':>7} "
        f"{'check s':>8} {'steps':>7} {'verdict':<17} {'search s':>9}"
    )
    for size in sizes:
        made_s, pair_s, ops = set_history(size, keys)
        elements = sum(len(op.output) for op in ops if op.f == "read" and op.output is not None)
        check = partial(check_operations, ops, "set", shrink_violation=False)
        check_s, result = median_time(check, runs)
        old = "-"
        if len(ops) <= old_up_to:
            old_s, verdict = median_time(partial(search_only, ops), 1)
            old = f"{old_s:.2f}" + ("" if verdict == result.verdict else f" ({verdict})")
        print(
            f"{len(ops):>7} {keys:>4} {elements:>13} {made_s:>7.1f} {pair_s:>7.1f} "
            f"{check_s:>8.3f} {result.steps:>7} {result.verdict:<17} {old:>9}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per file (median)")
    parser.add_argument("--only", default="", help="only files whose path contains this")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--per-file", action="store_true", help="print every file")
    parser.add_argument("--set", action="store_true", help="time the set check instead")
    parser.add_argument(
        "--set-sizes",
        default="7500,29000,100000",
        help="comma-separated operation counts of the set histories",
    )
    parser.add_argument("--set-keys", type=int, default=10, help="keys of the set workload")
    parser.add_argument(
        "--old-up-to",
        type=int,
        default=10_000,
        help="also time the general search on set histories up to this many operations",
    )
    args = parser.parse_args(argv)
    if args.set:
        sizes = [int(s) for s in args.set_sizes.split(",")]
        return set_figure(sizes, args.runs, args.set_keys, args.old_up_to)
    if not args.root.exists():
        print(f"no peer histories at {args.root}", file=sys.stderr)
        return 2
    reference = porcupine_medians(args.root)
    totals: dict[str, dict[str, float]] = {}
    counts: dict[tuple[str, str, str], int] = {}
    slowest: dict[str, tuple[float, str]] = {}
    header = f"{'file':<44} {'ops':>5} {'verdict':<17} {'ok':<3} {'parse ms':>9} "
    header += f"{'check ms':>9} {'+shrink ms':>10} {'steps':>8} {'porcupine ms':>12}"
    print(header)
    for sub, row in rows(args.root, args.only):
        name = row["file"]
        path = args.root / sub / name
        initial = initial_of(row["model"])
        parse_s, (ops, fmt) = median_time(partial(read_operations, path), 1)
        model = get_model(infer_model(ops, fmt))
        verdict_only = partial(check_operations, ops, model, initial, shrink_violation=False)
        check_s, result = median_time(verdict_only, args.runs)
        full_s, _ = median_time(partial(check_operations, ops, model, initial), args.runs)
        good = result.verdict == row["expected"]
        group = group_of(sub, name)
        t = totals.setdefault(group, {"files": 0, "parse": 0.0, "check": 0.0, "full": 0.0})
        t["files"] += 1
        t["parse"] += parse_s
        t["check"] += check_s
        t["full"] += full_s
        t["porcupine"] = t.get("porcupine", 0.0) + reference.get(name, 0.0) / 1000
        key = (group, result.verdict, "as expected" if good else "WRONG")
        counts[key] = counts.get(key, 0) + 1
        if full_s > slowest.get(group, (0.0, ""))[0]:
            slowest[group] = (full_s, name)
        if args.per_file or not good:
            ref = reference.get(name)
            print(
                f"{name:<44} {result.ops:>5} {result.verdict:<17} {'yes' if good else 'NO':<3} "
                f"{parse_s * 1e3:>9.2f} {check_s * 1e3:>9.2f} {full_s * 1e3:>10.2f} "
                f"{result.steps:>8} {'' if ref is None else f'{ref:.3f}':>12}"
            )
    print()
    print(
        f"{'group':<26} {'files':>5} {'parse s':>8} {'check s':>8} {'+shrink s':>9} "
        f"{'porcupine s':>11}  slowest (with shrink)"
    )
    for group, t in totals.items():
        slow_s, slow_name = slowest[group]
        porcupine = f"{t['porcupine']:.3f}" if t.get("porcupine") else "-"
        print(
            f"{group:<26} {int(t['files']):>5} {t['parse']:>8.3f} {t['check']:>8.3f} "
            f"{t['full']:>9.3f} {porcupine:>11}  {slow_name} {slow_s * 1e3:.1f} ms"
        )
    print()
    print("verdicts:")
    for (group, verdict, status), count in sorted(counts.items()):
        print(f"  {group:<26} {verdict:<17} {count:>4}  {status}")
    wrong = sum(c for (_, _, status), c in counts.items() if status != "as expected")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
