"""The single-primary policy's CAP claim, checked in the simulator from the summary."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import applied_logs_disagree, make_scenario, random_faults

from capsim.history import ADD, OK, READ
from capsim.runner import build, run

SPLIT = {"kind": "partition", "at": 3, "duration": 4, "groups": [["n1", "n2", "n3"], ["n4", "n5"]]}


def test_primary_on_the_majority_side_keeps_the_majority_available():
    res = run(
        make_scenario(
            policy={"params": {"primary": "n1"}},
            faults=[SPLIT],
            workload={"rate": 30, "clients_per_zone": 2},
        ),
        seed=2,
    )
    side = res.summary["availability"]["by_side"]
    assert side["majority"] == 1.0
    assert side["minority"] == 0.0
    assert res.summary["availability"]["outside_faults"] == 1.0


def test_primary_cut_off_with_the_minority_means_nobody_can_write():
    sc = make_scenario(
        policy={"params": {"primary": "n4"}},
        faults=[SPLIT],
        workload={"rate": 30, "read_fraction": 0.5, "clients_per_zone": 2},
    )
    res = run(sc, seed=2)
    ops = res.history.operations()
    during = (~ops.final) & (ops.invoke_time >= 3) & (ops.invoke_time < 7 - sc.workload.timeout)
    updates = during & (ops.f != READ)
    assert updates.sum() > 20
    assert not (ops.type[updates] == OK).any()  # no write committed on either side
    # Clients beside the primary can still read (its state is the latest: nobody else writes).
    reads_ok = during & (ops.f == READ) & (ops.type == OK)
    assert reads_ok.any() and (ops.side[reads_ok] == 2).all()
    assert res.summary["availability"]["by_side"]["majority"] == 0.0


def test_halves_with_the_primary_in_the_minority_by_role_target():
    sc = make_scenario(
        faults=[
            {"kind": "partition", "at": 3, "duration": 4, "shape": "halves", "target": "primary"}
        ],
        workload={"rate": 30},
    )
    res = run(sc, seed=4)
    assert res.summary["availability"]["by_side"]["majority"] == 0.0
    assert res.summary["availability"]["outside_faults"] == 1.0


def test_crashed_primary_means_no_service_until_it_restarts():
    sc = make_scenario(
        images=[{"name": "kv", "startup": "1s"}],
        faults=[{"kind": "crash", "at": 3, "target": "primary", "duration": 2}],
        workload={"rate": 30},
    )
    res = run(sc, seed=1)
    ops = res.history.operations()
    main = ~ops.final
    down = main & (ops.invoke_time > 3.01) & (ops.invoke_time < 6)  # down 3..5, starting 5..6
    assert down.sum() > 50 and not (ops.type[down] == OK).any()
    after = main & (ops.invoke_time > 6.01)
    assert (ops.type[after] == OK).mean() > 0.95  # recovered from its durable log


SLOW_DISK = {"disk": {"sync": "5ms", "writeback": "30s"}}


def test_no_acknowledged_add_is_lost_under_partitions_crashes_and_loss():
    # A disk whose syncs take time: an add acknowledged before its sync completed would
    # be lost by the crashes (with the instant disk every write is durable at once, and
    # a policy that never synced would pass this test).
    sc = make_scenario(
        cluster=SLOW_DISK,
        images=[{"name": "kv", "startup": "100ms"}],
        workload={"kind": "set", "rate": 40, "keys": 3, "retries": {"attempts": 2}},
        network={"loss": 0.05},
        faults=[
            {"kind": "partition", "at": 1, "duration": 2, "shape": "halves"},
            {"kind": "crash", "at": 3.5, "target": "primary", "duration": 0.5},
            {"kind": "crash", "at": 5, "target": ["n2", "n3"], "duration": 1},
            {"kind": "crash", "at": 6.5, "target": ["n1", "n4", "n5"], "duration": 0.3},
            {"kind": "partition", "at": 7, "duration": 1.5, "shape": "bridge"},
        ],
    )
    for seed in range(3):
        res = run(sc, seed=seed)
        d = res.summary["durability"]
        assert d["acknowledged_writes"] > 100
        assert d["lost_writes"] == 0 and d["unchecked_writes"] == 0


RANDOM_FAULTS = make_scenario(
    **random_faults("primary"),
    workload={"kind": "set", "rate": 60, "read_fraction": 0.3, "keys": 3},
)


@pytest.mark.parametrize("seed", range(40))
def test_applied_logs_stay_prefixes_of_each_other_under_random_crashes_and_partitions(seed):
    # Before backups checked the log prefix, 22 of these 40 seeds ended with a backup that
    # had applied an entry the primary never committed.
    world = build(RANDOM_FAULTS, seed)
    world.run()
    assert applied_logs_disagree(world) == []
    summary = world.result(world.digest(), 0.0).summary
    assert summary["durability"]["lost_writes"] == 0
    assert summary["consistency"]["linearizable"] is True
    assert summary["final"]["divergent_keys"] == 0


def test_replicas_converge_after_the_final_heal():
    world = build(make_scenario(faults=[SPLIT], workload={"rate": 40, "keys": 4}), seed=3)
    world.run()
    for key in world.workload.keys:
        states = {
            tuple(np.atleast_1d(world.cluster.node(c).value_of(key)[0]).tolist())
            for c in ("n1", "n2", "n3", "n4", "n5")
        }
        assert len(states) == 1, key
    logs = [world.cluster.node(c).applied_log() for c in ("n1", "n2", "n3", "n4", "n5")]
    assert all(log == logs[0] for log in logs) and len(logs[0]) > 100


def test_duplicated_requests_are_applied_once():
    world = build(make_scenario(network={"duplicate": 0.3}, workload={"rate": 40}), seed=5)
    world.run()
    log = world.cluster.node("n1").applied_log()
    written = [(op, key, value) for op, key, value in log if op == "write"]
    assert len(written) == len(set(written))


def test_role_and_term_introspection():
    sc = make_scenario(
        policy={"params": {"primary": "n2"}},
        images=[{"name": "kv", "startup": "100ms"}],
        faults=[{"kind": "crash", "at": 1.0, "target": "primary", "duration": 0.2}],
    )
    world = build(sc, seed=1)
    world.start()
    world.engine.run(0.5)
    ids = ("n1", "n2", "n3", "n4", "n5")
    assert [world.cluster.node(c).role for c in ids] == [
        "backup",
        "primary",
        "backup",
        "backup",
        "backup",
    ]
    # The primary's first epoch, learnt by every backup from its first append.
    assert [world.cluster.node(c).term for c in ids] == [1, 1, 1, 1, 1]
    world.engine.run(1.1)
    assert world.cluster.node("n2") is None  # down
    world.engine.run(2.0)  # restarted at 1.2, ready at 1.3: a new epoch
    assert [world.cluster.node(c).term for c in ids] == [2, 2, 2, 2, 2]
    assert world.cluster.with_role(("primary",)) == ["n2"]


@pytest.mark.parametrize("bad", [{"retry_interval": 0}, {"max_batch": 0}])
def test_nonsensical_parameters_are_refused(bad):
    from capsim.errors import ScenarioError
    from capsim.runner import prepare

    with pytest.raises(ScenarioError):
        prepare(make_scenario(policy={"params": bad}))


@pytest.mark.parametrize("sync", [True, False])
def test_acknowledging_before_the_disk_loses_the_writes_of_the_last_sync_time(sync):
    # Syncs take 50 ms; the primary crashes at 4 s. With the bug switch an add is
    # acknowledged as soon as a majority has it in memory, so exactly the adds whose sync
    # had not completed, those appended in the last 50 ms before the crash, are at risk.
    sc = make_scenario(
        cluster={"disk": {"sync": "50ms", "writeback": "30s"}},
        policy={"params": {"sync": sync}},
        images=[{"name": "kv", "startup": "100ms"}],
        workload={"kind": "set", "rate": 100, "keys": 3},
        faults=[{"kind": "crash", "at": 4, "target": "primary", "duration": 0.5}],
    )
    res = run(sc, seed=1)
    d = res.summary["durability"]
    assert d["acknowledged_writes"] > 500 and d["unchecked_writes"] == 0
    if sync:
        assert d["lost_writes"] == 0
        return
    ops = res.history.operations()
    acked_at = {
        (ops.key_name(i), ops.value(i)): float(ops.complete_time[i])
        for i in range(len(ops))
        if ops.f[i] == ADD and ops.type[i] == OK and not ops.final[i]
    }
    lost = [acked_at[(key, element)] for key, element in res.lost_writes]
    assert 1 <= len(lost) == d["lost_writes"]
    # Appended after 3.95 s (acknowledged one round trip, a few ms, later) and before 4 s.
    assert all(3.95 < t <= 4.0 for t in lost), lost


def test_slow_disk_adds_its_sync_time_to_write_latency():
    fast = run(make_scenario(workload={"rate": 30}), seed=1).summary["latency_ms"]["write"]
    slow = run(make_scenario(cluster=SLOW_DISK, workload={"rate": 30}), seed=1).summary[
        "latency_ms"
    ]["write"]
    # Primary and backups sync in parallel with replication: about 5 ms more at the median.
    assert slow["p50"] - fast["p50"] == pytest.approx(5.0, abs=1.0)


def test_restarted_primary_refuses_reads_until_its_log_is_committed_again():
    sc = make_scenario(
        cluster=SLOW_DISK,
        workload={"rate": 40, "keys": 2},
        images=[{"name": "kv", "startup": 0}],
        faults=[
            {"kind": "crash", "at": 3, "target": "primary", "duration": 0.2},
            {"kind": "partition", "at": 3.1, "duration": 1, "groups": [["n1"]]},
        ],
    )
    res = run(sc, seed=2)
    ops = res.history.operations()
    errors = {ops.error(i) for i in range(len(ops)) if ops.type[i] == 2}
    assert "recovering" in errors  # back at 3.2, cut off until 4.1: it cannot commit


def test_single_primary_never_scores_a_stale_read_and_replicas_converge():
    res = run(
        make_scenario(
            faults=[SPLIT],
            network={"loss": 0.02},
            workload={"rate": 40, "keys": 3, "clients_per_zone": 2},
        ),
        seed=6,
    )
    s = res.summary
    assert s["staleness"]["reads"] > 300
    assert s["staleness"]["stale_read_fraction"] == 0.0
    assert s["sessions"]["read_your_writes"] == 0 and s["sessions"]["monotonic_reads"] == 0
    # Backups learn the commit index on the next heartbeat (50 ms): converged within that.
    assert s["convergence_s"] is not None and s["convergence_s"] <= 0.1


def test_a_restarted_backup_learns_the_commit_without_new_writes():
    """A backup that crashes before its commit index is synced comes back with an older
    one; with no write after it, only its own word ("restarted") lets the primary carry
    the commit to it again, so every replica applies the same log at the end."""
    from capsim.runner import build

    writes_then_quiet = make_scenario(
        duration=6.0,
        settle=2.0,
        cluster={"disk": {"sync": 0.002, "writeback": 100.0}},
        workload={"rate": 40, "read_fraction": 0.0},
        # Writes stop at 3 s; at 4 s n3 crashes (its last commit index not yet synced).
        faults=[{"kind": "crash", "at": 4.0, "target": "n3", "duration": 0.5}],
    )
    world = build(writes_then_quiet, 5)
    world.workload.duration = 3.0  # clients stop invoking at 3 s; the run goes on to 6 s
    world.run()
    primary = world.cluster.node("n1", 0)
    backup = world.cluster.node("n3", 0)
    assert backup.applied == primary.applied == primary.commit > 0


def test_a_backlog_is_sent_batch_after_batch_not_a_batch_per_tick():
    """n5 is cut off for 4 s while about 480 writes are committed without it; after the
    heal the primary sends it the backlog 8 entries at a time. Each batch waits only for
    the acknowledgement of the one before (2 ms each way between zones a and b, an
    instant disk): 60 batches in about 0.25 s, after the first retry (within 50 ms). A
    batch per retry tick would take at least 60 x 50 ms = 3 s."""
    scenario = make_scenario(
        duration=8.0,
        policy={"params": {"primary": "n1", "max_batch": 8, "retry_interval": 0.05}},
        workload={"rate": 40, "read_fraction": 0.0},
        faults=[{"kind": "partition", "at": 1.0, "duration": 4.0, "groups": [["n5"]]}],
    )
    world = build(scenario, 1)
    world.workload.duration = 5.0  # no write after the heal: only the backlog moves
    world.start()
    world.engine.run(5.0)
    primary, cut_off = world.cluster.node("n1", 0), world.cluster.node("n5", 0)
    backlog = len(primary.entries) - len(cut_off.entries)
    assert 400 < backlog < 600  # 3 clients x 40/s x 4 s, less what failed at n5's client
    world.engine.run(5.4)
    assert len(cut_off.entries) == len(primary.entries)
    assert cut_off.applied == primary.commit == len(primary.entries)
