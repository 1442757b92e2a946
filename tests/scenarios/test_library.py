"""Every scenario in scenarios/ runs shortened from the command line and shows its headline.

Each file's comments tell a user what to look at; the story registered here for that file
runs it through ``capsim run FILE --set ... --json`` (in process), shortened with ``--set``
so that the whole library takes seconds, and checks those numbers. The thresholds come
from what the scenario's design forces (a CP system serves no minority client; a bug
switch loses writes), not from the golden numbers, with the reason beside each. A file in
scenarios/ without a story fails :func:`test_every_scenario_file_has_a_story`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from capsim.cli import main

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
NOT_SCENARIOS = {"README.md"}  # the generated reference (tests/unit/test_schemadoc.py)

Run = Callable[..., dict]
STORIES: dict[str, Callable[[Run], None]] = {}


def story(filename: str):
    """Register the check of ``scenarios/<filename>``."""

    def register(check: Callable[[Run], None]) -> Callable[[Run], None]:
        STORIES[filename] = check
        return check

    return register


def window(summary: dict, index: int) -> dict:
    return summary["faults"]["windows"][index]


# --- CP and AP under partitions ----------------------------------------------------------


@story("quickstart.yaml")
def _quickstart(run: Run) -> None:
    s = run("duration=12s", "faults[0].at=3s", "faults[0].duration=6s")
    side = s["availability"]["by_side"]
    # A single primary (n1, with the majority) serves its side; n4 and n5 reach nobody
    # with a replica log, so their clients get nothing: CP.
    assert side["minority"] == 0.0
    assert side["majority"] >= 0.95  # every majority request reaches the primary
    assert s["staleness"]["stale_read_fraction"] == 0.0
    assert s["consistency"]["linearizable"] is True


@story("tradeoff.yaml")
def _tradeoff(run: Run) -> None:
    short = ("duration=10s", "faults[0].at=2s", "faults[0].duration=6s")
    raft = run(*short)
    assert raft["policy"] == "raft"  # `capsim run` runs the base scenario, not the sweep
    # CP: no commit without a majority, so the cut-off clients are never served, and no
    # read is stale.
    assert raft["availability"]["by_side"]["minority"] == 0.0
    assert raft["staleness"]["stale_read_fraction"] == 0.0
    assert raft["consistency"]["linearizable"] is True
    # r = 1, w = 3: the minority's replicas answer its reads (60% of operations) but its
    # writes reach no 3 replicas; those reads miss the majority's writes.
    between = run(*short, "policy={name: quorum, params: {r: 1, w: 3}}")
    assert 0.4 < between["availability"]["by_side"]["minority"] < 0.8
    assert between["availability"]["read"] > 0.99
    assert between["staleness"]["stale_read_fraction"] > 0.0
    # AP, r = w = 1: one replica answers alone, so both sides are served, and each side
    # misses the other's writes, more of them than with w = 3.
    ap = run(*short, "policy={name: quorum, params: {r: 1, w: 1}}")
    assert ap["availability"]["by_side"]["minority"] > 0.9
    stale = ap["staleness"]["stale_read_fraction"]
    assert stale > between["staleness"]["stale_read_fraction"]


@story("quorum.yaml")
def _quorum(run: Run) -> None:
    short = ("duration=14s", "faults[0].at=2s", "faults[0].duration=6s", "faults[1].at=10s")
    s = run(*short)
    # r = w = 3 of 5: the two-replica side makes no quorum, the three-replica side always.
    assert s["availability"]["by_side"]["minority"] == 0.0
    assert s["availability"]["by_side"]["majority"] >= 0.95
    assert s["staleness"]["stale_read_fraction"] == 0.0  # quorums intersect
    loose = run(*short, "policy.params.r=1", "policy.params.w=1")
    assert loose["availability"]["by_side"]["minority"] > 0.9
    assert loose["staleness"]["stale_read_fraction"] > 0.0


@story("partition-shapes.yaml")
def _partition_shapes(run: Run) -> None:
    s = run(
        "duration=30s",
        *(f"faults[{i}].at={2 + 5 * i}s" for i in range(5)),
        *(f"faults[{i}].duration=4s" for i in range(5)),
    )
    halves, isolate, bridge, ring, one_way = (window(s, i)["availability"] for i in range(5))
    # (Shortened faults draw other groups than the file's: the thresholds hold for any.)
    # halves with the primary in the minority: no write commits; only the clients homed
    # on the minority's two containers read: at most 3 of 6 clients (n3 holds two), half
    # of their operations reads, 0.25, and a few answered as the cut came.
    assert halves < 0.35
    # isolate n3: its 2 of 6 clients lose everything, the other 4 are served (0.67).
    assert 0.55 < isolate < 0.7
    # bridge through n1: the primary reaches everyone.
    assert bridge > 0.95
    # majorities-ring: the clients homed on n1 and its two ring neighbours are served:
    # 3 or 4 of the 6 (n3 holds two).
    assert 0.4 < ring < 0.7
    # one-way from n5: n5's one client can send nothing (5 of 6 served).
    assert 0.75 < one_way < 0.85


@story("zone-outage.yaml")
def _zone_outage(run: Run) -> None:
    s = run(
        "duration=20s",
        "faults[0].at=2s",
        "faults[0].duration=6s",
        "faults[1].at=11s",
        "faults[1].duration=6s",
    )
    # Zone c down: 4 of 5 replicas remain with the primary, and zone c's clients invoke
    # nothing while it is down, so what is invoked is served.
    assert window(s, 0)["availability"] > 0.9
    # Zone a (the primary's) cut off: n1 and n4 are a minority, so nobody can write; the
    # majority side's clients cannot reach the primary at all, and zone a's clients read
    # from n1 (half their operations are reads).
    assert window(s, 1)["availability"] < 0.3
    assert s["availability"]["by_side"]["majority"] < 0.05
    assert 0.4 < s["availability"]["by_side"]["minority"] < 0.7


@story("sharded.yaml")
def _sharded(run: Run) -> None:
    s = run("duration=9s", "faults[0].at=2s", "faults[0].duration=5s")
    by_shard = s["availability"]["by_shard"].values()
    by_zone = s["breakdown"]["by_zone"]
    # Zone c cut off: every shard keeps its majority on the a+b side, but a shard whose
    # primary sits in c loses its writes, and zone c's clients reach only the primaries
    # with them: shards differ, and zone c does worst.
    assert max(by_shard) - min(by_shard) > 0.1
    assert by_zone["c"]["availability"] < min(by_zone["a"]["availability"], 0.9)


@story("sharded-bridge.yaml")
def _sharded_bridge(run: Run) -> None:
    # Only the tail is cut: the halves are drawn from a stream named after the fault's
    # spec, and the minority-side figure below holds for the file's halves.
    s = run("duration=15s")
    by_shard = s["availability"]["by_shard"].values()
    # Shards led by the bridge n5 reach every follower and client: available to all.
    assert max(by_shard) > 0.97
    # The others serve only their leader's half: well below.
    assert min(by_shard) < 0.85
    # A client reaching only the bridge of a bridge-led shard is on the minority side,
    # yet served.
    assert s["availability"]["by_side"]["minority"] > 0.0
    assert s["durability"]["lost_writes"] == 0  # Raft stays CP
    assert s["consistency"]["linearizable"] is True


# --- crashes, failover, upgrades --------------------------------------------------------


@story("primary-backup.yaml")
def _primary_backup(run: Run) -> None:
    s = run(
        "duration=16s",
        "faults[0].at=3s",
        "faults[0].duration=7s",
        "faults[1].at=12s",
        "faults[1].duration=2s",
    )
    side = s["availability"]["by_side"]
    # The cut-off primary steps down within its read lease (0.5 s of 7 s at most).
    assert side["minority"] < 0.1
    # The majority elects a backup after about 0.8 s of the 7 s partition.
    assert side["majority"] > 0.8
    assert s["durability"]["lost_writes"] == 0  # epoch fencing, synchronous replication
    assert s["consistency"]["linearizable"] is True


@story("primary-backup-split-brain.yaml")
def _split_brain(run: Run) -> None:
    s = run("duration=12s", "faults[0].at=3s", "faults[0].duration=6s")
    # No fencing: the old primary keeps acknowledging on the minority side...
    assert s["availability"]["by_side"]["minority"] > 0.9
    # ...and rolls those adds back when it rejoins: acknowledged writes lost.
    assert s["durability"]["lost_writes"] > 0
    assert s["consistency"]["linearizable"] is False


@story("raft.yaml")
def _raft(run: Run) -> None:
    s = run(
        "duration=16s",
        "faults[0].at=3s",
        "faults[0].duration=6s",
        "faults[1].at=11s",
        "faults[1].duration=2s",
    )
    side = s["availability"]["by_side"]
    assert side["minority"] == 0.0  # CP: the cut-off leader commits nothing
    # Re-election takes about an election timeout (150-300 ms) of the 6 s partition.
    assert side["majority"] > 0.85
    assert s["durability"]["lost_writes"] == 0
    assert s["consistency"]["linearizable"] is True


@story("raft-figure8.yaml")
def _raft_figure8(run: Run) -> None:
    s = run()  # 9 s already, and timed to the millisecond: run as written
    # Committing old-term entries by counting replicas loses acknowledged adds.
    assert s["durability"]["lost_writes"] > 0
    assert s["consistency"]["linearizable"] is False


@story("raft-stale-reads.yaml")
def _raft_stale_reads(run: Run) -> None:
    s = run("duration=10s", "faults[0].at=3s", "faults[0].duration=5s")
    # read: local lets the cut-off leader answer reads from a frozen state.
    assert s["staleness"]["stale_read_fraction"] > 0.0
    assert s["consistency"]["linearizable"] is False
    # It answers reads (60% of operations) but commits no write.
    assert 0.2 < s["availability"]["by_side"]["minority"] < 0.8


@story("chain.yaml")
def _chain(run: Run) -> None:
    s = run(
        "duration=16s",
        "faults[0].at=2s",
        "faults[0].duration=2s",
        "faults[1].at=6s",
        "faults[1].duration=3s",
        "faults[2].at=11s",
        "faults[2].duration=3s",
        "faults[3].at=12s",
    )
    # Chain replication through crashes and partitions: CP, nothing lost, one log.
    assert s["durability"]["lost_writes"] == 0
    assert s["consistency"]["linearizable"] is True
    assert s["final"]["divergent_keys"] == 0
    # The tail's crash stops reads until the manager repairs the chain.
    assert window(s, 0)["availability"] < 0.95


@story("rolling-upgrade.yaml")
def _rolling_upgrade(run: Run) -> None:
    s = run(
        "duration=20s",
        "images[0].startup=1s",
        "images[1].startup=1s",
        "faults[0].at=2s",
        "faults[0].wait=1s",
    )
    upgrade = window(s, 0)
    # Five containers one at a time, each 1 s to start and 1 s of waiting.
    assert upgrade["duration_s"] == pytest.approx(10.0, abs=0.1)
    # The primary's restart stops all service for its start-up (1 s of 10); a backup's
    # costs only its own clients (1 of 6 for 1 s).
    assert 0.5 < upgrade["availability"] < 0.95
    assert s["durability"]["lost_writes"] is None  # a register workload


@story("hot-swap.yaml")
def _hot_swap(run: Run) -> None:
    s = run("duration=20s")
    upgrade = window(s, 0)
    assert upgrade["duration_s"] == pytest.approx(10.5, abs=0.1)  # 3 batches of 0.5 s + 3 s
    # Six of nine always up: a majority commits throughout. The loss is a third of the
    # clients refused for 0.5 s of each 3.5 s batch (about 5%) and one election.
    assert upgrade["availability"] > 0.88
    assert s["durability"]["lost_writes"] == 0
    assert s["consistency"]["linearizable"] is True
    five = run("duration=20s", "faults[0].max_unavailable=5")
    # Five down leave four of nine: no majority until the batch is back.
    assert window(five, 0)["availability"] < upgrade["availability"] - 0.03


@story("canary.yaml")
def _canary(run: Run) -> None:
    canary = run("duration=10s", "faults=[]")  # the canary phase alone
    by_version = canary["breakdown"]["by_version"]
    old, new = by_version["kvstore:1.0"], by_version["kvstore:1.1"]
    # 20% of operations go to the canary: binomial, sd 0.008 over about 2,400 operations.
    assert 0.17 < new["ops"] / (old["ops"] + new["ops"]) < 0.23
    assert old["stale_read_fraction"] == 0.0  # r + w = 3 + 3 > 5: quorums intersect
    assert new["stale_read_fraction"] > 0.0  # the canary reads one replica
    rollout = run("duration=12s", "faults[0].at=6s")
    upgrade = window(rollout, 0)
    # n1..n4 (n5 already runs 1.1), two at a time, 1 s to start and 1 s of waiting each.
    assert upgrade["duration_s"] == pytest.approx(4.0, abs=0.1)
    # Three of five stay up, so quorums of three still form.
    assert upgrade["availability"] > 0.8


@story("churn.yaml")
def _churn(run: Run) -> None:
    s = run("duration=120s")
    # Availability follows the primary's: every failure of n1 stops everyone for about
    # MTTR + start-up = 3 s, 2.5% of 120 s, and a backup's costs its own clients. 120 s
    # sees about 120 / 23 = 5.2 failures of n1 (Poisson): 0.95 or more needs at most one,
    # a chance of e**-5.2 * 6.2 = 3%; 0.6 or less would take about 16, three times the mean.
    assert s["durability"]["lost_writes"] == 0
    assert 0.6 < s["availability"]["overall"] < 0.95


@story("fleet.yaml")
def _fleet(run: Run) -> None:
    s = run(
        "duration=3s",
        "faults[0].at=1s",
        "faults[0].rate=4/s",
        "workload.keys=3000",
        "workload.clients_per_zone=40",
    )
    # 200 clients at 10/s for 3 s: about 6,000 operations (Poisson: within 10%).
    assert 5400 < s["ops"]["total"] < 6600
    # 300 Raft groups over 1,000 containers: a single-container fault costs the few shards
    # with a replica there (3 in 1,000 containers hold each), and the groups elect their
    # first leaders within about 0.3 s, so most of the fleet is served throughout.
    assert s["availability"]["overall"] > 0.8
    assert s["faults"]["applied"] >= 3  # about 8 faults arrive in 2 s at 4/s
    assert s["invariants"]["failed"] == []  # Raft's claims hold, at fleet size too
    assert len(s["availability"]["by_shard"]) == 300


@story("scale-out.yaml")
def _scale_out(run: Run) -> None:
    s = run(
        "duration=16s",
        "faults[0].at=4s",
        "faults[1].at=4.3s",
        "faults[1].duration=3s",
        "faults[2].at=12s",
    )
    out, back = s["scaling"]["actions"]
    # Added ids continue the sequence; a scale-in removes the newest first.
    assert out["added"] == ["n7", "n8", "n9"] and back["removed"] == ["n9", "n8"]
    assert 0 < out["shards_moved"] < 8  # consistent hashing moves some shards, not all
    assert out["serving"] > 7.3  # n9 (zone c) is cut off until the heal at 7.3 s
    assert s["invariants"]["failed"] == [] and s["durability"]["lost_writes"] == 0
    assert s["scaling"]["containers"] == {"initial": 6, "final": 7, "min": 6, "max": 9}


@story("restart-policy.yaml")
def _restart_policy(run: Run) -> None:
    s = run("duration=24s", "faults[5].at=23s")
    ends = [w["end"] for w in s["faults"]["windows"] if w["kind"] == "crash"]
    # Back-off 1, 2, 4, 4 s (doubling, capped at max_backoff 4 s), then 0.5 s start-up.
    assert ends[:4] == [5.5, 8.5, 13.5, 18.5]
    # on-failure leaves a clean exit down; always brings it back.
    assert [w for w in s["faults"]["windows"] if w["kind"] == "stop"][0]["end"] > 24
    always = run("duration=24s", "faults[5].at=23s", "cluster.restart.policy=always")
    assert [w for w in always["faults"]["windows"] if w["kind"] == "stop"][0]["end"] == 21.5


@story("random-nemesis.yaml")
def _random_nemesis(run: Run) -> None:
    s = run("duration=20s")
    # At 0.25 faults a second from 2 s, 18 s draw about 4 faults (none would be odd).
    assert s["faults"]["applied"] >= 2
    assert s["durability"]["lost_writes"] == 0  # single-primary is CP
    assert s["availability"]["during_faults"] < s["availability"]["outside_faults"]


@story("pause.yaml")
def _pause(run: Run) -> None:
    s = run("duration=10s", "faults[0].at=4s")
    # Nobody else serves while the primary is frozen for 3 s, and clients time out after
    # 1 s: only what is invoked in the pause's last second is answered, on resume (1/3).
    assert 0.2 < window(s, 0)["availability"] < 0.45
    assert s["ops"]["info"] > 0
    # Those answers come all at once on resume, after nearly the whole timeout.
    assert s["latency_ms"]["write"]["p999"] > 500.0
    assert s["availability"]["outside_faults"] > 0.95


# --- clocks, links, disks, load ---------------------------------------------------------


@story("clock-skew.yaml")
def _clock_skew(run: Run) -> None:
    s = run("duration=12s", "faults[0].at=2s", "faults[1].at=4s", "faults[1].duration=5s")
    calm = run("duration=12s", "faults=[]")
    # A log-ordered primary never reads a clock to decide what is current: availability
    # is what 1% message loss alone leaves (timeouts), within a few operations.
    assert abs(s["availability"]["overall"] - calm["availability"]["overall"]) < 0.01
    assert s["staleness"]["stale_read_fraction"] == 0.0
    assert s["consistency"]["linearizable"] is True


@story("quorum-lww-clock-skew.yaml")
def _lww_clock_skew(run: Run) -> None:
    s = run("duration=10s", "faults[0].at=2s", "faults[0].duration=5s")
    # n1 runs 2 s ahead for 5 s: every write n2 or n3 coordinates in the 2 s after one of
    # n1's loses to it on every replica, so reads miss acknowledged writes.
    assert s["staleness"]["stale_read_fraction"] > 0.1
    assert s["sessions"]["read_your_writes"] > 0
    assert s["availability"]["overall"] > 0.99  # nothing fails: it is silently wrong


@story("pbs-staleness.yaml")
def _pbs(run: Run) -> None:
    s = run("duration=15s")
    curve = s["staleness"]["t_visibility"]
    # Right after the acknowledgement the write has reached only the fastest of three
    # replicas (W = 1), and an R = 1 read answered by another misses it; 50 ms later
    # (five mean write legs) it has reached nearly every replica.
    assert curve[0]["t_ms"] == 0.0 and curve[0]["p"] < 0.7
    late = next(b for b in curve if b["t_ms"] == 50.0)
    assert late["p"] > 0.95
    assert s["staleness"]["stale_read_fraction"] > 0.0
    # A cell of the sweep with R + W > N: quorums intersect, nothing stale.
    strict = run("duration=15s", "policy.params={mode: wars, r: 2, w: 2, versioning: lww}")
    assert strict["staleness"]["stale_read_fraction"] == 0.0


@story("flaky-links.yaml")
def _flaky_links(run: Run) -> None:
    s = run(
        "duration=14s",
        "faults[0].at=1s",
        "faults[0].duration=6s",
        "faults[1].at=8s",
        "faults[1].duration=5s",
    )
    # 20-60 ms extra on each of the primary's links: a write waits for a backup's ack,
    # a round trip over a slow link, so at least 40 ms more. Writes in the slow window
    # are 6 of 14 seconds' worth, so the p90 is one of them.
    assert s["latency_ms"]["write"]["p90"] > 40.0
    assert window(s, 0)["availability"] > 0.99  # slow is not down
    # 30% loss on zone c's links: the primary still reaches a majority through a and b,
    # but zone c's 2 of 6 clients cross lossy links both ways (0.7 x 0.7 = 0.49 arrive):
    # 1 - (2/6)(1 - 0.49) = 0.83.
    assert 0.75 < window(s, 1)["availability"] < 0.92
    assert s["messages"]["dropped_by_reason"]["link"] > 0


@story("slow-disk.yaml")
def _slow_disk(run: Run) -> None:
    s = run("duration=8s", "faults[0].at=4s")
    # Acknowledged before the 20-60 ms fsync completed: the crash takes those adds.
    assert s["durability"]["lost_writes"] > 0
    assert s["consistency"]["linearizable"] is False


@story("overload.yaml")
def _overload(run: Run) -> None:
    s = run("duration=8s")
    # 6 clients x 80/s, half reads (1 ms of the primary's time) and half writes (3 ms):
    # 480 x 2 ms = 0.96 s of work per second plus heartbeats, past capacity, so the
    # primary's queue grows for the whole run.
    assert s["queues"]["max_length"]["n1"] > 300
    assert s["latency_ms"]["read"]["p50"] > 100.0
    assert s["ops"]["info"] > 0.05 * s["ops"]["total"]


# --- the tests --------------------------------------------------------------------------


def test_every_scenario_file_has_a_story():
    files = {p.name for p in SCENARIOS.iterdir() if p.is_file()} - NOT_SCENARIOS
    assert files - set(STORIES) == set(), "add a story for each new scenario to this file"
    assert set(STORIES) - files == set(), "a story for a scenario file that is gone"


#: Scenarios whose story a known bug breaks (marked strict xfail: fixing it fails the mark).
KNOWN_BUGS: dict[str, str] = {}


@pytest.mark.parametrize(
    "filename",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[name]))
        if name in KNOWN_BUGS
        else name
        for name in sorted(STORIES)
    ],
)
def test_scenario_shows_its_headline_when_shortened(filename, capsys):
    path = SCENARIOS / filename

    def run(*assignments: str) -> dict:
        argv = ["run", str(path), "--json", "--quiet"]
        for assignment in assignments:
            argv += ["--set", assignment]
        status = main(argv)
        out, err = capsys.readouterr()
        assert status == 0, err
        return json.loads(out)

    STORIES[filename](run)
