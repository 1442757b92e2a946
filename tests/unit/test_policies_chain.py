"""The chain policy's CAP claim, checked in the simulator from what a user sees.

The layout used throughout: six containers in three zones, replication factor 5. The
placement puts the chain on n1 n2 n3 n4 n6 (head n1, tail n6) and leaves n5 without a
replica, so the manager runs there by default. Disks take 2 ms to sync; channels are FIFO.
With the defaults (heartbeat 50 ms, failure timeout 300 ms, lease 200 ms) the manager
removes a silent member between 300 and 350 ms after it last heard from it, plus a sync
of its own disk (2 ms) before publishing.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import applied_logs_disagree, make_scenario, merge

from capsim.errors import PolicyError, ScenarioError
from capsim.history import OK, READ
from capsim.metrics.availability import recovery_time
from capsim.policies.chain import Chain
from capsim.runner import build, prepare, run

CHAIN = "chain"
CHAIN_ORDER = ("n1", "n2", "n3", "n4", "n6")

LAYOUT = {
    "cluster": {
        "containers": 6,
        "replication_factor": 5,
        "disk": {"sync": "2ms", "writeback": "30s"},
    },
    "network": {"fifo": True},
    "images": [{"name": "kv", "startup": "200ms"}],
    "policy": {"name": CHAIN},
    "workload": {"rate": 30, "clients_per_zone": 2},
}
#: The set workload, so that lost acknowledged adds are counted.
SETS = {"kind": "set", "keys": 4, "read_fraction": 0.5}


def chain_scenario(**overrides):
    return make_scenario(**merge(LAYOUT, overrides))


def finished(sc, seed=1):
    world = build(sc, seed)
    world.run()
    assert world.failure is None, world.failure
    return world, world.result(world.digest(), 0.0)


def configurations(world) -> list[tuple[float, str]]:
    """(time, text) of each configuration the manager published, from the node log."""
    return [
        (t, text)
        for t, _, where, text in world.engine.log_lines
        if where == "manager" and text.startswith("shard 0 configuration")
    ]


def assert_safe(world, res, *, sets=True):
    """What every run must show: linearizable, nothing acknowledged lost, one history."""
    s = res.summary
    assert s["consistency"]["linearizable"] is True
    if sets:
        assert s["durability"]["acknowledged_writes"] > 50
        assert s["durability"]["lost_writes"] == 0
        assert s["durability"]["unchecked_writes"] == 0
    assert applied_logs_disagree(world) == []
    assert s["final"]["divergent_keys"] == 0


def test_layout_roles_and_routing():
    world = build(chain_scenario(), 1)
    world.start()
    world.engine.run(0.5)
    cluster = world.cluster
    assert cluster.members == [CHAIN_ORDER]
    roles = [cluster.node(c).role for c in CHAIN_ORDER]
    assert roles == ["head", "middle", "middle", "middle", "tail"]
    assert [cluster.node(c).term for c in CHAIN_ORDER] == [0] * 5
    assert cluster.node("n5", "manager").role == "manager"
    assert cluster.node("n1", "manager").role is None  # every container runs it; one acts
    assert Chain.route("read", CHAIN_ORDER, "n2", None) == "n6"
    assert Chain.route("write", CHAIN_ORDER, "n2", None) == "n1"
    assert Chain.route("cas", CHAIN_ORDER, "n2", None) == "n1"
    # No replica calls itself primary or leader: role targets find nobody.
    assert cluster.with_role(("leader", "primary")) == []


def test_quiet_run_is_fully_available_and_every_replica_applies_the_same_log():
    world, res = finished(chain_scenario(workload=SETS))
    s = res.summary
    assert s["availability"]["overall"] == 1.0
    assert_safe(world, res)
    logs = [world.cluster.node(c).applied_log() for c in CHAIN_ORDER]
    assert len(logs[0]) > 100 and all(log == logs[0] for log in logs)
    # Each update crosses the chain once down (4 appends) and once up (4 acks).
    assert 4 < s["messages"]["per_op"] < 9


# -- partitions --------------------------------------------------------------------------------

MAJORITY_WITH_MANAGER = [["n1", "n2", "n3", "n5"], ["n4", "n6"]]
MAJORITY_WITHOUT_MANAGER = [["n1", "n2", "n3"], ["n4", "n5", "n6"]]


def test_majority_minority_partition_the_manager_keeps_the_side_it_is_on():
    # n1 n2 n3 and the manager (n5) against n4 and the tail n6, from 3 s to 7 s. Clients:
    # two per zone, homed on n1 n4 (a), n2 n5 (b), n3 n6 (c): four on the majority side.
    sc = chain_scenario(
        workload=SETS,
        faults=[{"kind": "partition", "at": 3, "duration": 4, "groups": MAJORITY_WITH_MANAGER}],
    )
    world, res = finished(sc)
    s = res.summary
    ops = res.history.operations()
    main = ~ops.final
    # The manager stops hearing n4 and n6 and drops them: one configuration, n1 n2 n3.
    (t_cut, text), *rest = configurations(world)
    assert text.endswith("configuration 1: n1 n2 n3")
    assert 3.3 <= t_cut <= 3.36
    # Majority side: updates stall and reads go to the unreachable tail until then; from
    # then on everything is served.
    majority = main & (ops.side == 1)
    after = majority & (ops.invoke_time >= t_cut) & (ops.invoke_time < 7)
    assert after.sum() > 200 and (ops.type[after] == OK).all()
    assert 0.85 < s["availability"]["by_side"]["majority"] < 0.95  # about (4 - 0.35) / 4
    # Minority side: no update, ever; reads only at the tail, while its lease lasts (it
    # was granted with the last ping the manager heard, at most 200 ms before the cut).
    minority = main & (ops.side == 2)
    served = minority & (ops.type == OK)
    assert minority.sum() > 100
    assert (ops.f[served] == READ).all()
    assert (ops.invoke_time[served] < 3.2).all()
    assert s["availability"]["by_side"]["minority"] < 0.05
    # After the heal n4 and n6 rejoin at the tail, one at a time, and catch up.
    assert [text for _, text in rest] == [
        "shard 0 configuration 2: n1 n2 n3 n4 (n4 joining)",
        "shard 0 configuration 2: n1 n2 n3 n4",
        "shard 0 configuration 3: n1 n2 n3 n4 n6 (n6 joining)",
        "shard 0 configuration 3: n1 n2 n3 n4 n6",
    ]
    assert world.cluster.members == [("n1", "n2", "n3", "n4", "n6")]
    assert_safe(world, res)


def test_a_minority_with_the_manager_is_served_and_the_majority_is_not():
    # The manager (n5) is with n4 and n6: it drops n1 n2 n3, the chain is n4 n6, and only
    # the clients homed on n4, n5 and n6 are served. Chain replication needs no majority.
    sc = chain_scenario(
        workload=SETS,
        faults=[{"kind": "partition", "at": 3, "duration": 4, "groups": MAJORITY_WITHOUT_MANAGER}],
    )
    world, res = finished(sc)
    side = res.summary["availability"]["by_side"]
    assert configurations(world)[0][1].endswith("configuration 1: n4 n6")
    assert side["minority"] > 0.85
    assert side["majority"] < 0.05
    assert_safe(world, res)


# -- crashes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target, chain_after",
    [
        ("n1", "n2 n3 n4 n6"),  # the head: the second member is the new head
        ("n3", "n1 n2 n4 n6"),  # a middle member: n2 now sends to n4
        ("n6", "n1 n2 n3 n4"),  # the tail: its predecessor is the new tail
    ],
)
def test_crashed_member_is_removed_then_rejoins_at_the_tail(target, chain_after):
    # Down from 3 s to 5 s, ready at 5.2 s (start-up 200 ms).
    sc = chain_scenario(
        workload=SETS, faults=[{"kind": "crash", "at": 3, "target": target, "duration": 2}]
    )
    world, res = finished(sc)
    ops = res.history.operations()
    (t_removed, removed), (t_added, added), (_, joined) = configurations(world)
    assert removed == f"shard 0 configuration 1: {chain_after}"
    assert 3.3 <= t_removed <= 3.36  # failure_timeout + at most a heartbeat + a sync
    # Availability is back above 0.99 within the documented reconfiguration time.
    assert recovery_time(ops, 3.0) <= 0.36
    # The restarted member is added at the tail once it pings, and serves once caught up.
    assert added == f"shard 0 configuration 2: {chain_after} {target} ({target} joining)"
    assert 5.2 < t_added < 5.3
    assert joined == f"shard 0 configuration 2: {chain_after} {target}"
    assert world.cluster.members == [(*chain_after.split(), target)]
    assert world.cluster.node(target).role == "tail"
    (window,) = res.summary["faults"]["windows"]
    assert window["recovery_s"] < 0.1  # the rejoin costs nothing noticeable
    assert_safe(world, res)
    logs = {c: world.cluster.node(c).applied_log() for c in CHAIN_ORDER}
    assert all(log == logs["n1"] for log in logs.values()) and len(logs["n1"]) > 100


def test_what_a_crash_costs_depends_on_the_position():
    outcomes = {}
    for target in ("n1", "n3", "n6"):
        sc = chain_scenario(faults=[{"kind": "crash", "at": 3, "target": target}])
        world, res = finished(sc)
        ops = res.history.operations()
        # Invoked while the chain was broken, and too early to reach the new chain.
        t_removed = configurations(world)[0][0]
        stall = ~ops.final & (ops.invoke_time >= 3.0) & (ops.invoke_time < t_removed - 0.05)
        reads, updates = stall & (ops.f == READ), stall & (ops.f != READ)
        outcomes[target] = (
            (ops.type[reads] == OK).mean(),
            (ops.type[updates] == OK).mean(),
        )
    # Head down: updates refused until n2 is head, reads at the tail go on.
    assert outcomes["n1"][0] == 1.0 and outcomes["n1"][1] == 0.0
    # Middle down: updates wait at n2 and are answered once n2 sends to n4 (well within
    # the 500 ms client timeout); reads go on.
    assert outcomes["n3"] == (1.0, 1.0)
    # Tail down: reads refused until n4 is tail; updates commit when n4 becomes tail but
    # their clients time out, since the old tail may have answered them (see the module).
    assert outcomes["n6"] == (0.0, 0.0)


def test_whole_chain_crash_loses_no_acknowledged_write():
    # Every replica down at once with syncs taking 20 ms: everything acknowledged is on
    # every member's disk, so the manager restarts the chain from the first member back.
    sc = chain_scenario(
        cluster={"disk": {"sync": "20ms"}},
        workload={**SETS, "rate": 60},
        faults=[{"kind": "crash", "at": 3, "target": list(CHAIN_ORDER), "duration": 1}],
    )
    world, res = finished(sc)
    texts = [text for _, text in configurations(world)]
    restarts = [text for text in texts if "restarted from" in text]
    assert len(restarts) == 1 and restarts[0].endswith(": n1 (restarted from n1)")
    assert texts[-1].endswith(": n1 n2 n3 n4 n6")
    assert_safe(world, res)


# -- the manager -------------------------------------------------------------------------------


def client_codes(world, home: str) -> list[int]:
    return [world.history.clients.code(c.id) for c in world.workload.clients if c.home.id == home]


def test_manager_cut_off_then_a_member_crash_stops_everything_until_the_heal():
    # The manager alone from 2 s to 5 s; n3 (a middle member) crashes at 3 s.
    sc = chain_scenario(
        workload=SETS,
        faults=[
            {"kind": "partition", "at": 2, "duration": 3, "groups": [["n5"]]},
            {"kind": "crash", "at": 3, "target": "n3"},
        ],
    )
    world, res = finished(sc)
    ops = res.history.operations()
    main = ~ops.final & ~np.isin(ops.client, client_codes(world, "n5"))  # n5's are cut off
    # Chain intact, manager unreachable: updates and reads go on (after 2.2 s every lease
    # has run out and reads are confirmed by a barrier up the chain, which takes a few ms).
    intact = main & (ops.invoke_time >= 2.2) & (ops.invoke_time < 2.98)
    assert intact.sum() > 50 and (ops.type[intact] == OK).all()
    assert (ops.f[intact] == READ).any()
    # A member down and nobody to repair the chain: nothing at all is served (what was
    # invoked in the last 500 ms, the client timeout, may be served after the heal).
    broken = main & (ops.invoke_time >= 3.0) & (ops.invoke_time < 5.0)
    assert broken.sum() > 100
    assert not (ops.type[broken & (ops.invoke_time < 4.5)] == OK).any()
    assert (ops.complete_time[broken & (ops.type == OK)] > 5.0).all()
    # Heal at 5 s: n3's lease ran out long ago; the manager removes it once it has heard
    # the others for three heartbeat intervals (time for every live member to ping).
    (t_removed, removed), *_ = configurations(world)
    assert removed == "shard 0 configuration 1: n1 n2 n4 n6"
    assert 5.1 <= t_removed < 5.16
    assert recovery_time(ops, 5.0) < 0.16
    assert_safe(world, res)
    # n3 restarts in the final phase and rejoins at the tail.
    assert world.cluster.members == [("n1", "n2", "n4", "n6", "n3")]


def test_manager_crash_leaves_a_working_chain_working():
    # Leases lapse 200 ms after the crash; the tail then confirms reads up the chain.
    sc = chain_scenario(
        workload=SETS, faults=[{"kind": "crash", "at": 3, "target": "n5", "duration": 2}]
    )
    world = build(sc, 1)
    world.start()
    world.engine.run(3.5)
    tail = world.cluster.node("n6")
    assert tail.role == "tail" and tail.granted == 0  # no lease: reads by barrier
    world.run()
    res = world.result(world.digest(), 0.0)
    assert res.summary["availability"]["overall"] == 1.0
    assert configurations(world) == []  # nothing to repair, nothing changed
    assert_safe(world, res)


def test_restarted_manager_waits_a_full_timeout_before_removing_anyone():
    # The manager is down from 3 s (ready at 4.2 s); n2 crashes at 3.5 s and stays down.
    sc = chain_scenario(
        workload=SETS,
        faults=[
            {"kind": "crash", "at": 3, "target": "n5", "duration": 1},
            {"kind": "crash", "at": 3.5, "target": "n2"},
        ],
    )
    world, res = finished(sc)
    (t_removed, removed), *_ = configurations(world)
    assert removed == "shard 0 configuration 1: n1 n3 n4 n6"
    assert 4.5 <= t_removed <= 4.56
    assert_safe(world, res)


# -- pauses and clocks -------------------------------------------------------------------------


def test_paused_tail_is_replaced_and_never_serves_a_stale_read():
    # The tail stops for 1 s: its lease runs out, n4 becomes tail at about 3.3 s and
    # commits updates the paused tail never saw; on resume the old tail has requests in
    # its queue, but learns it is out before it could answer a read from its old state.
    sc = chain_scenario(
        workload={**SETS, "read_fraction": 0.7, "rate": 60},
        faults=[{"kind": "pause", "at": 3, "target": "n6", "duration": 1}],
    )
    world, res = finished(sc)
    ops = res.history.operations()
    texts = [text for _, text in configurations(world)]
    assert texts[0] == "shard 0 configuration 1: n1 n2 n3 n4"
    assert texts[-1] == "shard 0 configuration 2: n1 n2 n3 n4 n6"
    # Reads answered by n6 while or just after it was paused: none.
    by_n6 = [
        i
        for i in range(len(ops))
        if ops.type[i] == OK and 3.0 <= ops.complete_time[i] < 4.1
        if ops.answered_by(i) == "n6"
    ]
    assert by_n6 == []
    assert_safe(world, res)


def test_paused_middle_member_costs_updates_a_failure_timeout():
    sc = chain_scenario(
        workload=SETS, faults=[{"kind": "pause", "at": 3, "target": "n3", "duration": 1}]
    )
    world, res = finished(sc)
    ops = res.history.operations()
    assert res.summary["availability"]["overall"] == 1.0  # updates wait < 500 ms
    updates = ~ops.final & (ops.f != READ) & (ops.invoke_time >= 3) & (ops.invoke_time < 3.25)
    latency = ops.complete_time[updates] - ops.invoke_time[updates]
    assert (latency > 0.05).all()  # held until n2 sends to n4 instead
    assert world.cluster.members == [("n1", "n2", "n4", "n6", "n3")]
    assert_safe(world, res)


def test_clock_jumps_and_drift_within_the_bound_change_nothing():
    # The tail's clock jumps back 30 s, the manager's runs at half speed (it removes
    # later, the safe direction), a middle member's runs 20% fast (its leases end sooner).
    sc = chain_scenario(
        workload=SETS,
        faults=[
            {"kind": "clock", "at": 2, "target": "n6", "offset": "-30s"},
            {"kind": "clock", "at": 3, "duration": 4, "target": "n5", "rate": 0.5},
            {"kind": "clock", "at": 3, "duration": 4, "target": "n3", "rate": 1.2},
            {"kind": "clock", "at": 5, "duration": 2, "target": "n1", "offset": "10s"},
        ],
    )
    world, res = finished(sc)
    assert res.summary["availability"]["overall"] == 1.0
    assert configurations(world) == []  # no false failure detected
    assert_safe(world, res)


# -- the network -------------------------------------------------------------------------------


def test_duplicated_and_lost_messages_apply_each_update_once():
    sc = chain_scenario(
        network={"loss": 0.05, "duplicate": 0.2},
        workload={"rate": 40, "retries": {"attempts": 2}},
    )
    world, res = finished(sc)
    log = world.cluster.node("n6").applied_log()
    written = [(op, key, value) for op, key, value in log if op == "write"]
    assert len(written) > 100 and len(written) == len(set(written))
    assert_safe(world, res, sets=False)


RANDOM_FAULTS = {
    "duration": 6,
    "images": [{"name": "kv", "startup": "50ms"}],
    "cluster": {"disk": {"sync": {"dist": "uniform", "low": "1ms", "high": "10ms"}}},
    "network": {
        "loss": 0.02,
        "latency": {
            "same_zone": {"dist": "exponential", "mean": "1ms"},
            "cross_zone": {"dist": "lognormal", "median": "3ms", "sigma": 0.8},
        },
    },
    "workload": {**SETS, "rate": 60, "read_fraction": 0.4},
    "faults": [
        {
            "kind": "random",
            "at": 0.2,
            "rate": 4,
            "faults": ["crash", "partition", "pause", "clock"],
            "duration": {"dist": "uniform", "low": "50ms", "high": "700ms"},
        }
    ],
}


@pytest.mark.parametrize("fifo", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_random_faults_with_and_without_fifo_channels_stay_safe(fifo, seed):
    # Without FIFO, appends overtake one another (lognormal latencies): they are held until
    # the gap closes or resent; safety does not depend on the order.
    sc = chain_scenario(**merge(RANDOM_FAULTS, {"network": {"fifo": fifo}}))
    world, res = finished(sc, seed)
    assert_safe(world, res)


def test_two_shards_have_their_own_chains_and_managers():
    # Replication factor 3 over six containers: shard 0 on n1 n2 n6 (manager n5), shard 1
    # on n1 n3 n5 (manager n6). A crash of n2 reconfigures shard 0 only.
    sc = chain_scenario(
        cluster={"shards": 2, "replication_factor": 3},
        workload={**SETS, "keys": 6},
        faults=[{"kind": "crash", "at": 3, "target": "n2", "duration": 1}],
    )
    world, res = finished(sc)
    assert world.placement.replicas == (("n1", "n2", "n6"), ("n1", "n3", "n5"))
    managers = {(c, where) for _, c, where, text in world.engine.log_lines if where == "manager"}
    assert managers == {("n5", "manager")}
    assert world.cluster.node("n5", "manager").role == "manager"
    assert world.cluster.node("n6", "manager").role == "manager"  # shard 1's, idle
    assert world.cluster.members == [("n1", "n6", "n2"), ("n1", "n3", "n5")]
    assert_safe(world, res)


# -- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"lease": "300ms"},  # not shorter than failure_timeout
        {"heartbeat_interval": "200ms"},  # not shorter than lease
        {"max_batch": 0},
        {"failure_timeout": 0},
    ],
)
def test_nonsensical_parameters_are_refused(bad):
    with pytest.raises(ScenarioError):
        prepare(chain_scenario(policy={"params": bad}))


def test_a_manager_that_is_not_a_container_is_reported():
    with pytest.raises(PolicyError, match="manager='n9' names no container"):
        run(chain_scenario(policy={"params": {"manager": "n9"}}), seed=1)


def test_manager_placed_by_parameter():
    sc = chain_scenario(
        policy={"params": {"manager": "n2"}},
        faults=[{"kind": "crash", "at": 3, "target": "n6", "duration": 1}],
    )
    world, res = finished(sc)
    assert {c for _, c, where, _ in world.engine.log_lines if where == "manager"} == {"n2"}
    assert world.cluster.node("n5", "manager").role is None
    assert_safe(world, res, sets=False)
