"""Bug hunts: `capsim explore` with its default settings against the built-in policies' bug
switches (it must find each) and their correct configurations (it must find nothing).

    python benchmarks/explore_bench.py                 # every hunt, then the table
    python benchmarks/explore_bench.py --only quorum-lww --only raft-read-local
    python benchmarks/explore_bench.py --store         # also refresh the stored reproducers
    python benchmarks/explore_bench.py --json

Each hunt runs `capsim.testing.explore` as `capsim explore` does (default profile: at
most 1000 examples and 90 s of searching, shrinking within a quarter more, seed 0), so
none takes more than about 2 minutes. The table gives, for each: what it found, the
examples tried, the wall time, the runs spent shrinking, the number of faults in the
shrunk schedule, and how many examples had a fault against the leader or primary (the
schedules that matter for a leader-based protocol; "n/a" for a leaderless one).

`--store` writes each shrunk reproducer (scenario.yaml and evidence.json) to
tests/properties/reproducers/NAME/, which the test suite replays
(tests/properties/test_explore.py): the same invariant must fail with the same evidence.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from capsim.scenario import load_scenario
from capsim.testing import describe, explore

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "tests" / "properties" / "reproducers"


@dataclass(frozen=True)
class Hunt:
    name: str
    scenario: str
    overrides: tuple[str, ...]
    invariants: tuple[str, ...] | None  # None: the policy's claims
    bug: bool  # whether a correct search must find something
    what: str
    kinds: tuple[str, ...] | None = None  # fault kinds to draw (None: explore's default)


#: Every hunt shortens its scenario to 10 s of main phase: more examples per minute.
SHORT = ("duration=10s",)

HUNTS = (
    Hunt(
        "primary-backup-async",
        "scenarios/primary-backup-split-brain.yaml",
        SHORT,
        ("no-lost-writes",),
        True,
        "primary-backup, async, fencing none",
    ),
    Hunt(
        "raft-read-local",
        "scenarios/raft-stale-reads.yaml",
        SHORT,
        ("linearizable",),
        True,
        "raft, read: local",
    ),
    Hunt(
        "raft-figure8",
        "benchmarks/raft-figure8-hunt.yaml",
        (),
        ("state-machine-safety",),
        True,
        "raft, commit_old_term_entries",
    ),
    Hunt(
        "quorum-lww",
        "scenarios/quorum-lww-clock-skew.yaml",
        SHORT,
        None,
        True,
        "quorum n=3 r=2 w=2, versioning: lww",
    ),
    Hunt(
        "quorum-lww-linearizable",
        "scenarios/quorum-lww-clock-skew.yaml",
        SHORT,
        ("linearizable",),
        True,
        "quorum n=3 r=2 w=2, versioning: lww, clock faults only",
        ("clock",),
    ),
    Hunt(
        "raft-read-index",
        "scenarios/raft-stale-reads.yaml",
        (*SHORT, "policy.params.read=read_index"),
        None,
        False,
        "raft, read: read_index",
    ),
    Hunt(
        "primary-backup-sync-epoch",
        "scenarios/primary-backup-split-brain.yaml",
        (*SHORT, "policy.params.replication=sync", "policy.params.fencing=epoch"),
        ("no-lost-writes",),
        False,
        "primary-backup, sync, fencing epoch",
    ),
    Hunt(
        "quorum-vector",
        "scenarios/quorum-lww-clock-skew.yaml",
        (*SHORT, "policy.params.versioning=vector"),
        ("no-lost-writes", "convergence"),
        False,
        "quorum n=3 r=2 w=2, versioning: vector",
    ),
    Hunt(
        "naive-register",
        "examples/naive-register.yaml",
        (),
        ("convergence",),
        True,
        "a user's protocol: examples/naive_register.py",
    ),
)


def run_hunt(hunt: Hunt, *, store: bool, progress: bool) -> dict:
    scenario = load_scenario(ROOT / hunt.scenario, overrides=hunt.overrides)
    watch = None
    if progress:
        from capsim.testing.command import ProgressLine

        watch = ProgressLine(log_every_s=15.0)
    started = time.perf_counter()
    kinds = {} if hunt.kinds is None else {"kinds": hunt.kinds}
    found = explore(scenario, invariants=hunt.invariants, progress=watch, **kinds)
    wall = time.perf_counter() - started
    leaders = found.leader_examples if _has_leader(found) else None
    row = {
        "hunt": hunt.name,
        "what": hunt.what,
        "invariants": found.invariants,
        "found": found.failure.invariant if found.found else None,
        "expected": "a violation" if hunt.bug else "nothing",
        "examples": found.examples,
        "wall_s": round(wall, 1),
        "found_after_s": None if found.found_after_s is None else round(found.found_after_s, 1),
        "shrink_runs": found.shrink_runs,
        "stopped": found.stopped,
        "faults": [describe(f) for f in found.failure.faults] if found.found else None,
        "leader_examples": leaders,
    }
    if store and found.found:
        # As the reproducer's comment names it: relative to the working folder.
        out = found.write(Path(os.path.relpath(STORE / hunt.name)), replace=True, outputs=False)
        row["stored"] = str(out)
    return row


def _has_leader(found) -> bool:
    """Whether the policy reports a leader or primary (so a fault can aim at one)."""
    result = found.failure.result if found.found else None
    if result is None:
        from capsim.runner import run

        result = run(found.base, allow_large=True)
    return any(role in ("leader", "primary") for *_, role, _ in result.roles)


def table(rows: list[dict]) -> str:
    lines = [
        "| hunt | invariant | expected | found | examples | found after s | time s "
        "| shrink runs | faults in the shrunk schedule "
        "| examples with a fault against the leader |",
        "|---|---|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for row in rows:
        faults = row["faults"]
        shown = "; ".join(f"`{f}`" for f in faults) if faults else ("none" if faults == [] else "")
        count = f"{len(faults)}: {shown}" if faults is not None else "-"
        leaders = "n/a" if row["leader_examples"] is None else str(row["leader_examples"])
        after = "-" if row["found_after_s"] is None else row["found_after_s"]
        lines.append(
            f"| {row['what']} | {', '.join(row['invariants'])} | {row['expected']} "
            f"| {row['found'] or 'nothing'} | {row['examples']} | {after} | {row['wall_s']} "
            f"| {row['shrink_runs']} | {count} | {leaders} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", action="append", default=None, metavar="NAME", help="run only this hunt"
    )
    parser.add_argument(
        "--store",
        action="store_true",
        help="write each shrunk reproducer to tests/properties/reproducers/NAME/",
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    hunts = [h for h in HUNTS if args.only is None or h.name in args.only]
    unknown = set(args.only or ()) - {h.name for h in HUNTS}
    if unknown:
        parser.error(f"unknown hunt(s) {sorted(unknown)}; hunts: {[h.name for h in HUNTS]}")
    rows = []
    for hunt in hunts:
        print(f"hunting: {hunt.name} ({hunt.what})", file=sys.stderr)
        rows.append(run_hunt(hunt, store=args.store, progress=not args.quiet))
        row = rows[-1]
        print(
            f"  {row['found'] or 'nothing'} after {row['examples']} examples, "
            f"{row['wall_s']} s; faults: {row['faults']}",
            file=sys.stderr,
        )
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    missed = [r["hunt"] for r in rows if (r["found"] is not None) != (r["expected"] != "nothing")]
    if missed:
        print(f"not as expected: {', '.join(missed)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
