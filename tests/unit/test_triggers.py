"""Faults timed by elections (``after: new-leader``), nemeses that chase them (``chase``),
and storms frozen into schedules that replay them (``capsim.testing.frozen``).

The expected times and targets come from the run's own record of role changes
(``result.roles``, what ``roles.jsonl`` holds): a fault waiting for a new leader must
strike exactly ``delay`` after the first replica that became leader at or after its
``at``, and hit that replica.
"""

from __future__ import annotations

import pytest

import capsim
from capsim.distributions import Constant
from capsim.faults import Crash, Partition, RandomFaults, fault_from_repr
from capsim.scenario import parse_scenario
from capsim.schema import to_data
from capsim.testing import frozen

RAFT = {
    "name": "raft-triggers",
    "duration": 6,
    "settle": 1,
    "images": [{"name": "kv", "startup": "0s"}],
    "cluster": {"containers": 3, "zones": ["a", "b", "c"], "disk": {"sync": "2ms"}},
    "network": {"latency": {"same_zone": "1ms", "cross_zone": "2ms"}},
    "policy": {"name": "raft"},
    "workload": {"rate": 10, "clients_per_zone": 1, "timeout": 0.5, "keys": 2},
}


def run(faults, **changes):
    data = {**RAFT, **changes, "faults": [f if isinstance(f, dict) else to_data(f) for f in faults]}
    return capsim.run(parse_scenario(data))


def new_leaders(result, since=0.0):
    """(time, container) of every change of a replica into the leader role, from ``since``."""
    return [
        (time, cid)
        for time, cid, shard, role, _ in result.roles
        if shard == 0 and role == "leader" and time >= since
    ]


def operations(result):
    """Every operation of the run's history: process, type, f, key, time, node, value."""
    h = result.history
    columns = [
        getattr(h, name).tolist() for name in ("process", "type", "f", "key", "time", "node")
    ]
    return list(zip(*columns, h.value, strict=True))


def records(result, index, event=None):
    return [
        r
        for r in result.faults
        if r.get("fault") == index and (event is None or r["event"] == event)
    ]


def test_a_fault_after_a_new_leader_strikes_its_delay_after_the_election_at_that_leader():
    isolate = Partition(at=2.0, duration=1.0, shape="isolate", target="leader")
    pause = Crash(at=2.0, target="leader", duration=0.5, after="new-leader", delay=0.05)
    result = run([isolate, pause])
    (cut,) = records(result, 0, "start")
    (elected, winner), *_ = new_leaders(result, since=2.0)
    assert winner != cut["targets"][0]  # a new leader on the majority side
    (crash,) = records(result, 1, "start")
    assert crash["time"] == pytest.approx(elected + 0.05, abs=1e-9)
    # Every replica reporting the role is a "leader" target: the new one, and the old one
    # cut off alone, which has not heard of the new term.
    assert winner in crash["targets"]


def test_the_first_election_of_the_run_is_a_new_leader_too():
    result = run([Crash(at=0.0, target="leader", duration=0.5, after="new-leader", delay=0.2)])
    (first, leader), *_ = new_leaders(result)
    (crash,) = records(result, 0, "start")
    assert crash["time"] == pytest.approx(first + 0.2, abs=1e-9)
    assert crash["targets"] == [leader]


def test_a_fault_whose_election_never_comes_is_skipped_with_the_reason():
    # A healthy raft cluster elects once, before 1 s: nothing after that to wait for.
    result = run([Crash(at=1.0, target="leader", after="new-leader", delay=0.1)])
    (skipped,) = records(result, 0)
    assert skipped["event"] == "skipped"
    assert "no new leader or primary of shard 0 between 1 s" in skipped["reason"]


def test_a_delay_that_outlasts_the_main_phase_is_skipped():
    isolate = Partition(at=5.5, duration=0.4, shape="isolate", target="leader")
    late = Crash(at=5.5, target="leader", after="new-leader", delay=5.0)
    result = run([isolate, late])
    assert new_leaders(result, since=5.5)  # the election came, the strike would be at 10+ s
    (skipped,) = records(result, 1)
    assert skipped["event"] == "skipped" and "outlasted the main phase" in skipped["reason"]


def test_faults_without_the_new_fields_keep_their_repr_and_so_their_random_streams():
    # A fault's repr names its random stream and is recorded in faults.jsonl: fields added
    # later stay out of it while at their defaults, so older schedules draw as they did.
    assert repr(Crash(at=1, target="random")) == (
        "Crash(at=1.0, target='random', duration=None, shard=0)"
    )
    storm = RandomFaults(at=1, rate=1, duration=Constant(value=1.0))
    assert "chase" not in repr(storm) and "seed" not in repr(storm)
    assert "after='new-leader', delay=0.2" in repr(Crash(at=1, after="new-leader", delay=0.2))


def test_a_chasing_nemesis_follows_every_new_leader_after_its_delay():
    storm = RandomFaults(
        at=0.0,
        rate=1e-6,  # no Poisson arrival to speak of: every fault chases an election
        duration=Constant(value=0.3),
        faults=("crash",),
        target="leader",
        chase=1.0,
        delay=Constant(value=0.1),
    )
    result = run([storm])
    generated = [r for r in result.faults if r.get("instance") is not None and "spec" in r]
    elections = new_leaders(result)
    assert len(generated) >= 3
    for record in generated:
        spec = fault_from_repr(record["spec"])
        assert spec.after == "new-leader" and spec.delay == 0.1
        assert record["time"] == pytest.approx(spec.at + 0.1, abs=1e-9)
        # It chased an election at spec.at and hit whoever led 0.1 s later: that leader.
        (leader,) = [cid for time, cid in elections if abs(time - spec.at) < 1e-9]
        assert record["event"] == "skipped" or leader in record["targets"]


def test_chase_zero_draws_the_same_faults_as_a_nemesis_without_it():
    plain = {
        "kind": "random",
        "at": 1,
        "rate": 1,
        "duration": {"dist": "constant", "value": 0.5},
        "faults": ["crash", "partition"],
        "target": "leader",
    }
    before = run([plain])
    again = run([{**plain, "chase": 0.0, "seed": 0}])
    assert [r for r in again.faults] == [r for r in before.faults]
    other = run([{**plain, "seed": 1}])
    assert [r.get("targets") for r in other.faults] != [r.get("targets") for r in before.faults]


def test_a_storm_frozen_into_a_schedule_replays_the_same_run():
    storm = RandomFaults(
        at=0.5,
        rate=1.5,
        duration=Constant(value=0.4),
        faults=("partition", "crash", "pause"),
        shapes=("isolate", "halves"),
        target="random",
        chase=0.5,
        seed=3,
    )
    result = run([storm], cluster={**RAFT["cluster"], "containers": 5})
    schedule = frozen(result)
    assert schedule and not any(isinstance(f, RandomFaults) for f in schedule)
    assert all(f.target != "random" for f in schedule if getattr(f, "target", None))
    replayed = run(schedule, cluster={**RAFT["cluster"], "containers": 5})
    assert operations(replayed) == operations(result)

    # The same faults at the same instants, hitting the same containers (a partition by its
    # sides: a drawn halves partition replays as explicit groups, with no targets).
    def hits(run_result):
        return [
            (r["time"], r["kind"], r.get("groups") or r.get("targets"))
            for r in run_result.faults
            if r["event"] == "start"
        ]

    assert hits(replayed) == hits(result)
    assert any(r.get("instance") for r in result.faults)
    assert not any(r.get("instance") for r in replayed.faults)


def test_fault_from_repr_reads_specs_and_nothing_else():
    crash = Crash(at=1.5, target=("n1", "n2"), duration=0.5, after="new-leader", delay=0.02)
    assert fault_from_repr(repr(crash)) == crash
    with pytest.raises(ValueError, match="not a fault spec"):
        fault_from_repr("__import__('os').system('true')")
    with pytest.raises(ValueError, match="not a fault spec"):
        fault_from_repr("Constant(value=1.0)")


def test_new_primary_is_the_same_trigger_for_a_primary_based_policy():
    faults = [
        Crash(at=2.0, target="primary", duration=3.0),
        {
            "kind": "pause",
            "at": 2.0,
            "after": "new-primary",
            "delay": 0.1,
            "target": "primary",
            "duration": 0.2,
        },
    ]
    result = run(faults, policy={"name": "primary-backup"})
    (crashed,) = records(result, 0, "start")
    promoted = [
        (time, cid)
        for time, cid, shard, role, _ in result.roles
        if shard == 0 and role == "primary" and time >= 2.0
    ]
    (elected, winner), *_ = promoted
    assert winner != crashed["targets"][0]
    (pause,) = records(result, 1, "start")
    assert pause["time"] == pytest.approx(elected + 0.1, abs=1e-9)
    assert pause["targets"] == [winner]
