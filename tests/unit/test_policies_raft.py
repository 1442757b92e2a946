"""The raft policy's CAP claim and invariants, checked in the simulator.

Every scenario here gives the disk a sync time (2 ms, or 1 to 10 ms), so that a reply sent
before the disk has what it acknowledges would show up as a lost write after a crash.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import applied_logs_disagree, make_scenario, make_world, merge, random_faults

from capsim.history import ADD, OK, READ
from capsim.runner import build, run
from capsim.scenario import parse_scenario

RAFT = "raft"
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
DISK = {"disk": {"sync": "2ms"}}
IDS = ("n1", "n2", "n3", "n4", "n5")
MAJORITY = 1  # the history's side code
#: The documented bound on the time from a leader's crash to service again: the earliest
#: follower election timeout (at most 300 ms after the last heartbeat), then a vote round
#: trip and sync, then the no-op's.
FAILOVER_S = 0.35


def raft(**params):
    return {"name": RAFT, "params": params}


def scenario(faults=(), params=None, **overrides):
    """Five replicas in three zones, 2 ms links and disks, set workload on 4 keys."""
    base = {
        "policy": raft(**(params or {})),
        "cluster": DISK,
        "images": [{"name": "kv", "startup": "100ms"}],
        "workload": {"kind": "set", "rate": 30, "clients_per_zone": 2, "keys": 4},
        "faults": list(faults),
    }
    base.update(overrides)
    return make_scenario(**base)


def scenario_file(name: str, **params):
    """A scenario of ``scenarios/``, with ``params`` merged into its policy's."""
    data = yaml.safe_load((SCENARIOS / name).read_text())
    data["policy"]["params"] = {**data["policy"].get("params", {}), **params}
    return parse_scenario(data)


def leader_at(world, t: float) -> list[str]:
    world.start()
    world.engine.run(t)
    return world.cluster.with_role(("leader",))


def served(ops) -> np.ndarray:
    """Operations a user would count as served: ok, or a CAS that definitely mismatched."""
    mismatch = np.array([ops.error(i) == "mismatch" for i in range(len(ops))], dtype=bool)
    return (ops.type == OK) | mismatch


# -- partitions ---------------------------------------------------------------------------------

SPLIT = {"kind": "partition", "at": 3, "duration": 4, "groups": [["n1", "n2", "n3"], ["n4", "n5"]]}


def seed_with_leader(faults, side: str, params=None) -> int:
    """The first seed whose leader, just before 3 s, is in ``side`` of SPLIT."""
    for seed in range(50):
        (leader,) = leader_at(build(scenario(faults, params), seed), 2.99)
        if (leader in SPLIT["groups"][0]) == (side == "majority"):
            return seed
    raise AssertionError(f"no seed elects a leader on the {side} side")


@pytest.mark.parametrize("side", ["majority", "minority"])
def test_a_minority_partition_serves_nothing_and_the_majority_serves_everything(side):
    # With the leader on the minority side (n4 or n5), the majority must first elect one.
    world = build(scenario([SPLIT]), seed_with_leader([SPLIT], side))
    world.run()
    res = world.result(world.digest(), 0.0)
    s = res.summary
    assert s["availability"]["by_side"]["minority"] == 0.0
    ops = res.history.operations()
    majority = ~ops.final & (ops.side == MAJORITY)
    if side == "majority":
        assert s["availability"]["by_side"]["majority"] == 1.0
    else:
        # An election (at most 300 ms) and the clients' timeout at the old leader (500 ms),
        # then everything is served.
        settled = majority & (ops.invoke_time >= 3.8) & (ops.invoke_time < 7.0)
        assert settled.sum() > 250 and served(ops)[settled].all()
        assert s["availability"]["by_side"]["majority"] > 0.8
    assert s["durability"]["acknowledged_writes"] > 300
    assert s["durability"]["lost_writes"] == 0 and s["durability"]["unchecked_writes"] == 0
    assert s["consistency"]["linearizable"] is True


def test_a_leader_cut_off_in_the_minority_is_replaced_and_loses_nothing():
    halves = {"kind": "partition", "at": 3, "duration": 4, "shape": "halves", "target": "leader"}
    world = build(scenario([halves]), 1)
    (old,) = leader_at(world, 2.99)
    old_term = world.cluster.node(old).term
    world.engine.run(3.7)
    new = world.cluster.with_role(("leader",))
    # The old leader stepped down (no majority answered it for two checks, 0.6 s at most);
    # the majority elected another, in a later term.
    assert len(new) == 1 and new[0] != old
    assert world.cluster.node(new[0]).term > old_term
    world.run()
    s = world.result(world.digest(), 0.0).summary
    assert s["availability"]["by_side"]["minority"] == 0.0
    assert s["availability"]["by_side"]["majority"] > 0.8
    assert s["durability"]["lost_writes"] == 0
    assert s["consistency"]["linearizable"] is True
    assert s["final"]["divergent_keys"] == 0


@pytest.mark.parametrize(("pre_vote", "disrupted"), [(False, True), (True, False)])
def test_pre_vote_stops_a_healed_minority_from_deposing_the_leader(pre_vote, disrupted):
    # Cut off, n4 and n5 stand for election again and again. Without pre-vote each try
    # raises their term, and after the heal the leader steps down on seeing it: clients
    # wait for an election. With pre-vote their term never moved.
    params = {"pre_vote": pre_vote}
    world = build(scenario([SPLIT], params), seed_with_leader([SPLIT], "majority", params))
    (leader,) = leader_at(world, 6.99)
    term = world.cluster.node(leader).term
    world.engine.run(7.5)
    assert (world.cluster.node(leader).term > term) == disrupted
    world.run()
    (window,) = world.result(world.digest(), 0.0).summary["faults"]["windows"]
    if disrupted:
        assert 0.1 < window["recovery_s"] <= FAILOVER_S
    else:
        assert window["recovery_s"] < 0.05


# -- crashes, pauses, clocks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "crash", "at": 3, "target": "leader", "duration": 1},
        {"kind": "crash", "at": 3, "target": "n2", "duration": 1},
        {"kind": "pause", "at": 3, "target": "leader", "duration": 1},
        {"kind": "clock", "at": 3, "target": "leader", "offset": -2, "rate": 1.5, "duration": 1},
        {"kind": "clock", "at": 3, "target": "n3", "offset": 5, "rate": 0.5, "duration": 1},
    ],
    ids=["crash-leader", "crash-follower", "pause-leader", "clock-leader", "clock-follower"],
)
def test_no_acknowledged_write_is_lost_and_service_returns_after_a_fault(fault):
    for seed in (0, 1):
        s = run(scenario([fault], duration=6), seed=seed).summary
        assert s["durability"]["acknowledged_writes"] > 300
        assert s["durability"]["lost_writes"] == 0 and s["durability"]["unchecked_writes"] == 0
        assert s["consistency"]["linearizable"] is True
        # Served again at once: the cluster recovered while the fault was in force.
        (window,) = s["faults"]["windows"]
        assert window["recovery_s"] is not None and window["recovery_s"] <= 0.05


def test_service_resumes_within_an_election_of_the_leaders_crash():
    # Measured from the crash itself, over the clients whose home container is up.
    gaps = []
    for seed in range(6):
        world = build(
            scenario([{"kind": "crash", "at": 3, "target": "leader", "duration": 2}]), seed
        )
        (leader,) = leader_at(world, 2.99)
        world.run()
        ops = world.result(world.digest(), 0.0).history.operations()
        elsewhere = ~ops.final & (ops.node != world.history.nodes.code(leader))
        after = elsewhere & (ops.invoke_time >= 3) & (ops.invoke_time < 4)
        unserved = after & ~served(ops)
        assert unserved.any()  # there is a gap: nobody leads for a while
        gap = float(ops.invoke_time[unserved].max()) - 3
        gaps.append(gap)
        back = elsewhere & (ops.invoke_time >= 3 + FAILOVER_S) & (ops.invoke_time < 5)
        assert served(ops)[back].all()
    assert all(0.1 < gap < FAILOVER_S for gap in gaps), gaps


def test_a_leader_crash_elects_a_new_leader_in_a_higher_term():
    world = build(scenario([{"kind": "crash", "at": 1, "target": "leader", "duration": 0.5}]), 2)
    (first,) = leader_at(world, 0.9)
    nodes = [world.cluster.node(c) for c in IDS]
    assert sorted(n.role for n in nodes) == ["follower"] * 4 + ["leader"]
    assert len({n.term for n in nodes}) == 1
    term = nodes[0].term
    world.engine.run(1.5)
    assert world.cluster.node(first) is None
    (second,) = world.cluster.with_role(("leader",))
    assert second != first and world.cluster.node(second).term > term
    world.engine.run(2.0)  # restarted at 1.6: it follows the new leader
    assert world.cluster.node(first).role == "follower"
    assert world.cluster.node(first).term == world.cluster.node(second).term


# -- invariants under random faults ---------------------------------------------------------------

RANDOM_FAULTS = make_scenario(
    **merge(
        random_faults(
            "leader",
            kinds=("crash", "partition", "pause", "clock"),
            role_kinds=("crash", "pause"),
            shapes=("halves", "isolate", "bridge", "majorities-ring", "one-way"),
        ),
        {"duration": 5},
    ),
    policy=raft(),
    workload={"kind": "set", "rate": 60, "read_fraction": 0.3, "keys": 3, "clients_per_zone": 2},
)


@pytest.mark.parametrize("seed", range(24))
def test_random_crashes_and_partitions_keep_every_invariant(seed):
    world = build(RANDOM_FAULTS, seed)
    world.start()
    leaders: dict[int, set[str]] = {}
    t = 0.0
    while t < RANDOM_FAULTS.duration:  # sample roles every 5 ms
        t = round(t + 0.005, 3)
        world.engine.run(t)
        for cid in IDS:
            node = world.cluster.node(cid)
            if node is not None and node.role == "leader":
                leaders.setdefault(node.term, set()).add(cid)
    assert len(leaders) >= 2  # the leader was replaced at least once
    assert all(len(who) == 1 for who in leaders.values()), leaders  # single-leader
    world.run()
    assert applied_logs_disagree(world) == []  # state-machine safety
    s = world.result(world.digest(), 0.0).summary
    assert s["durability"]["lost_writes"] == 0
    assert s["consistency"]["linearizable"] is True
    assert s["final"]["divergent_keys"] == 0 and s["convergence_s"] is not None


def test_replicas_apply_the_same_log_and_converge_after_the_final_heal():
    world = build(scenario([SPLIT], workload={"kind": "set", "rate": 40, "keys": 4}), 3)
    world.run()
    logs = [world.cluster.node(c).applied_log() for c in IDS]
    assert all(log == logs[0] for log in logs) and len(logs[0]) > 400
    for key in world.workload.keys:
        assert len({tuple(world.cluster.node(c).value_of(key)[0] or ()) for c in IDS}) == 1


def test_duplicated_and_retried_requests_are_applied_once():
    sc = scenario(
        [{"kind": "crash", "at": 2, "target": "leader", "duration": 0.5}],
        network={"duplicate": 0.3, "latency": {"same_zone": "1ms", "cross_zone": "2ms"}},
        workload={
            "kind": "set",
            "rate": 40,
            "keys": 4,
            "clients_per_zone": 2,
            "retries": {"attempts": 5, "backoff": "20ms"},
        },
    )
    world = build(sc, 5)
    world.run()
    res = world.result(world.digest(), 0.0)
    adds = [(key, value) for op, key, value in world.cluster.node("n1").applied_log()]
    assert len(adds) > 300 and len(adds) == len(set(adds))
    assert res.summary["messages"]["duplicated"] > 100
    assert res.summary["durability"]["lost_writes"] == 0


def test_a_replica_cut_off_alone_fails_its_clients_at_once_with_no_leader():
    isolate_n1 = {"kind": "partition", "at": 2, "duration": 3, "groups": [["n1"]]}
    world = build(scenario([isolate_n1]), 0)
    world.run()
    res = world.result(world.digest(), 0.0)
    ops = res.history.operations()
    # Within 0.6 s n1 knows no leader (its own stepped down for want of a majority, or it
    # stopped hearing from one and stood for election): a definite failure, at once.
    alone = ~ops.final & (ops.node == world.history.nodes.code("n1"))
    alone &= (ops.invoke_time > 2.6) & (ops.invoke_time < 5)
    assert alone.sum() > 30
    assert {ops.error(i) for i in np.nonzero(alone)[0]} == {"no-leader"}
    assert (ops.complete_time[alone] == ops.invoke_time[alone]).all()
    assert res.summary["consistency"]["linearizable"] is True


# -- reads ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("read", "stale"), [("local", True), ("read_index", False)])
def test_local_reads_serve_stale_values_from_a_deposed_leader(read, stale):
    s = run(scenario_file("raft-stale-reads.yaml", read=read)).summary
    assert s["staleness"]["reads"] > 500
    if stale:
        assert s["staleness"]["stale_read_fraction"] > 0.02
        assert s["staleness"]["t_p99_ms"] > 1000  # up to the whole partition behind
        assert s["consistency"]["linearizable"] is False
    else:
        assert s["staleness"]["stale_read_fraction"] == 0.0
        assert s["consistency"]["linearizable"] is True
        assert s["availability"]["by_side"]["minority"] == 0.0  # cannot confirm: no answer


@pytest.mark.parametrize(("read", "rate", "linearizable"), [
    ("lease", 1.0, True),
    ("lease", 0.25, False),
    ("read_index", 0.25, True),
])  # fmt: skip
def test_a_lease_holds_while_clocks_agree_and_breaks_when_the_leaders_clock_is_slow(
    read, rate, linearizable
):
    # The leader's clock runs at `rate`; at 3 s it is cut off. At a quarter speed its
    # 135 ms lease lasts 540 ms of true time, long after the others elected a new leader
    # (in 150 to 300 ms) and committed writes that its lease reads miss.
    sc = make_scenario(
        policy=raft(read=read, heartbeat="20ms"),
        cluster=DISK,
        workload={
            "rate": 50,
            "clients_per_zone": 2,
            "read_fraction": 0.7,
            "keys": 2,
            "timeout": 0.2,
        },
        faults=[
            {"kind": "clock", "at": 2, "target": "leader", "rate": rate, "duration": 6},
            {"kind": "partition", "at": 3, "shape": "isolate", "target": "leader", "duration": 2},
        ],
    )
    for seed in (0, 1):
        s = run(sc, seed=seed).summary
        assert s["consistency"]["linearizable"] is linearizable
        assert (s["staleness"]["stale_read_fraction"] == 0.0) is linearizable


def test_lease_reads_answer_without_a_round_trip():
    def read_p50(read):
        sc = scenario(
            params={"read": read}, workload={"rate": 30, "keys": 4, "clients_per_zone": 2}
        )
        return run(sc, seed=1).summary["latency_ms"]["read"]["p50"]

    # read_index waits for a heartbeat round (2 ms links: 4 ms) before answering.
    assert read_p50("read_index") - read_p50("lease") == pytest.approx(4.0, abs=1.0)


# -- the Figure 8 bug ---------------------------------------------------------------------------


@pytest.mark.parametrize("bug", [True, False])
def test_committing_old_term_entries_by_counting_loses_acknowledged_writes(bug):
    world = build(scenario_file("raft-figure8.yaml", commit_old_term_entries=bug), 0)
    world.start()
    world.engine.run(6.6)  # when n1 and n2 are cut off again
    before = world.cluster.node("n1").applied_log()
    world.run()
    res = world.result(world.digest(), 0.0)
    s = res.summary
    assert s["durability"]["acknowledged_writes"] > 1000
    # State-machine safety: what n1 had applied is where its log still begins (or not).
    after = world.cluster.node("n1").applied_log()
    assert (after[: len(before)] == before) is not bug
    if not bug:
        assert s["durability"]["lost_writes"] == 0
        assert s["consistency"]["linearizable"] is True
        assert not any("rolling back" in line[3] for line in res.node_log)
        return
    assert s["durability"]["lost_writes"] > 10
    assert s["consistency"]["linearizable"] is False
    # The lost adds are exactly ones n1 acknowledged when the bug committed them: adds its
    # clients sent as it was cut off with n2 (at 3 s), answered after its re-election.
    ops = res.history.operations()
    acked = {
        (ops.key_name(i), ops.value(i)): (float(ops.invoke_time[i]), float(ops.complete_time[i]))
        for i in range(len(ops))
        if ops.f[i] == ADD and ops.type[i] == OK and not ops.final[i]
    }
    times = [acked[(key, element)] for key, element in res.lost_writes]
    assert all(2.9 <= invoked < 3.9 and 4.0 < done < 6.6 for invoked, done in times), times
    text = [line[3] for line in res.node_log]
    assert any("the Figure 8 bug" in line for line in text)
    assert any("rolling back committed entries" in line for line in text)


# -- parameters ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"heartbeat": 0},
        {"election_timeout_min": "40ms"},  # not above the 50 ms heartbeat
        {"election_timeout_min": "300ms", "election_timeout_max": "200ms"},
        {"lease_ratio": 0},
        {"lease_ratio": 1.5},
        {"max_batch": 0},
        {"read": "eventually"},
        {"pre_vote": "yes"},
        {"max_batch": True},
    ],
)
def test_nonsensical_parameters_are_refused(bad):
    from capsim.errors import ScenarioError
    from capsim.runner import prepare

    with pytest.raises(ScenarioError):
        prepare(make_scenario(policy=raft(**bad)))


def test_reads_and_writes_through_the_leader_in_a_quiet_run():
    world = make_world(seed=1, policy=raft(), cluster=DISK, workload={"rate": 30, "keys": 3})
    world.run()
    res = world.result(world.digest(), 0.0)
    ops = res.history.operations()
    main = ~ops.final & (ops.invoke_time > 0.5)  # after the first election
    assert served(ops)[main].all()
    reads = main & (ops.f == READ)
    assert reads.sum() > 100
    assert res.summary["staleness"]["stale_read_fraction"] == 0.0
