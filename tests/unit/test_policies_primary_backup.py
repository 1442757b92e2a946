"""The primary-backup policy's CAP claims, configuration by configuration, checked in the
simulator from the summary, the history and the replicas' introspection."""

from __future__ import annotations

import pytest
from conftest import applied_logs_disagree, make_scenario, merge, random_faults

from capsim.errors import ScenarioError
from capsim.history import ADD, OK, READ
from capsim.runner import build, prepare, run

POLICY = "primary-backup"
IDS = ("n1", "n2", "n3", "n4", "n5")
HEARTBEAT, TIMEOUT = 0.05, 0.5  # the defaults
# The documented failover bound (1.5 timeouts and 5 heartbeats from the last heartbeat
# heard), plus 50 ms for the round trips and 2 ms fsyncs of the pre-vote, the votes and
# the first commit.
FAILOVER_S = 1.5 * TIMEOUT + 5 * HEARTBEAT + 0.05
MAJORITY, MINORITY = 1, 2  # history side codes
# n4 is the primary, cut off with n5 from 3 s to 7 s. Homes: zone a n1 n4, b n2 n5, c n3.
SPLIT = {"kind": "partition", "at": 3, "duration": 4, "groups": [["n1", "n2", "n3"], ["n4", "n5"]]}


def scenario(params: dict | None = None, **overrides):
    """A five-replica shard under this policy, with 2 ms fsyncs and a 100 ms start-up."""
    base = {
        "policy": {"name": POLICY, "params": params or {}},
        "cluster": {"disk": {"sync": "2ms"}},
        "images": [{"name": "kv", "startup": "100ms"}],
        "workload": {"rate": 30, "clients_per_zone": 2, "keys": 4},
    }
    return make_scenario(**merge(base, overrides))


def summary_of(world) -> dict:
    return world.result(world.digest(), 0.0).summary


def answered_by(ops, i: int) -> str:
    return ops.history.event(int(ops.complete_index[i]))["node"]


def test_sync_epoch_minority_refuses_writes_and_the_majority_fails_over():
    world = build(
        scenario({"initial_primary": "n4"}, faults=[SPLIT], workload={"kind": "set"}), seed=2
    )
    world.start()
    world.engine.run(6.9)
    # n4 stepped down; the majority elected one of its own in a new epoch.
    primaries = world.cluster.with_role(("primary",))
    assert len(primaries) == 1 and primaries[0] in ("n1", "n2", "n3")
    assert world.cluster.node(primaries[0]).term == 2 and world.cluster.node("n4").term == 1
    world.run()
    s = summary_of(world)
    ops = world.history.operations()
    main = ~ops.final
    during = main & (ops.invoke_time >= 3) & (ops.invoke_time < 7)
    minority_updates = during & (ops.side == MINORITY) & (ops.f != READ)
    assert minority_updates.sum() > 30
    assert not (ops.type[minority_updates] == OK).any()  # write availability 0
    # After the failover time every majority-side operation is served.
    settled = main & (ops.side == MAJORITY) & (ops.invoke_time >= 3 + FAILOVER_S)
    settled &= ops.invoke_time < 7
    assert settled.sum() > 200 and (ops.type[settled] == OK).mean() >= 0.99
    assert s["durability"]["acknowledged_writes"] > 300
    assert s["durability"]["lost_writes"] == 0 and s["durability"]["unchecked_writes"] == 0
    assert s["consistency"]["linearizable"] is True
    assert applied_logs_disagree(world) == []


def test_sync_epoch_register_stays_linearizable_and_the_minority_reads_only_within_the_lease():
    res = run(
        scenario({"initial_primary": "n4"}, faults=[SPLIT], workload={"read_fraction": 0.5}),
        seed=3,
    )
    s = res.summary
    assert s["consistency"]["linearizable"] is True
    assert s["staleness"]["stale_read_fraction"] == 0.0
    ops = res.history.operations()
    minority_ok = (~ops.final) & (ops.side == MINORITY) & (ops.type == OK)
    # The deposed n4 answers reads until its lease, renewed by acknowledgements of what
    # it sent before 3 s, runs out half a second later; it commits no write at all.
    assert minority_ok.any()
    assert (ops.f[minority_ok] == READ).all()
    assert ops.invoke_time[minority_ok].max() < 3 + TIMEOUT


def test_split_brain_async_without_fencing_loses_the_minority_primarys_writes():
    params = {"initial_primary": "n4", "replication": "async", "fencing": "none"}
    res = run(scenario(params, faults=[SPLIT], workload={"kind": "set"}), seed=2)
    ops = res.history.operations()
    during = (~ops.final) & (ops.invoke_time >= 3) & (ops.invoke_time < 7)
    served = during & (ops.f == ADD) & (ops.type == OK)
    # Both sides accepted writes: n4 on the minority side, a self-promoted primary on the
    # majority side.
    assert (ops.side[served] == MINORITY).sum() > 50
    assert (ops.side[served] == MAJORITY).sum() > 50
    d = res.summary["durability"]
    assert d["lost_writes"] > 50 and d["unchecked_writes"] == 0
    # The lost adds are exactly what n4 acknowledged alone while cut off (or just after
    # the heal, before the next heartbeat told it of the new epoch): the majority's
    # primary took a higher epoch, and n4 rolled back when it rejoined as a backup.
    acked = {
        (ops.key_name(i), ops.value(i)): (answered_by(ops, i), float(ops.complete_time[i]))
        for i in range(len(ops))
        if ops.f[i] == ADD and ops.type[i] == OK and not ops.final[i]
    }
    lost = {(key, element) for key, element in res.lost_writes}
    assert all(acked[add][0] == "n4" and 3 < acked[add][1] < 7 + 2 * HEARTBEAT for add in lost), (
        sorted(lost)[:5]
    )
    # Every add n4 acknowledged once the cut was in force (those of the first 10 ms may
    # have reached the majority before it) is among them.
    alone = {add for add, (node, t) in acked.items() if node == "n4" and 3.01 < t < 7}
    assert len(alone) > 50 and alone <= lost
    assert res.summary["convergence_s"] is not None  # every replica follows the winner


def test_sync_without_fencing_lets_the_deposed_primary_serve_stale_reads():
    res = run(
        scenario(
            {"initial_primary": "n4", "fencing": "none"},
            faults=[SPLIT],
            workload={"read_fraction": 0.5},
        ),
        seed=3,
    )
    s = res.summary
    ops = res.history.operations()
    minority_ok = (~ops.final) & (ops.side == MINORITY) & (ops.type == OK)
    # n4 cannot commit a write without a majority, but reads from it all partition long.
    assert (ops.f[minority_ok] == READ).all()
    assert ops.invoke_time[minority_ok].max() > 6
    assert s["staleness"]["stale_read_fraction"] > 0
    assert s["consistency"]["linearizable"] is False


@pytest.mark.parametrize(
    ("target", "duration"),
    [("primary", 0.2), ("primary", 2.0), ("n2", 2.0), ("n3", 0.2), ("n5", 2.0)],
)
def test_crash_and_restart_loses_no_acknowledged_write_and_recovers_in_the_failover_time(
    target, duration
):
    world = build(
        scenario(
            faults=[{"kind": "crash", "at": 3, "target": target, "duration": duration}],
            workload={"kind": "set", "rate": 40, "keys": 3},
        ),
        seed=1,
    )
    world.run()
    s = summary_of(world)
    d = s["durability"]
    assert d["acknowledged_writes"] > 500
    assert d["lost_writes"] == 0 and d["unchecked_writes"] == 0
    # A crashed primary comes back as a backup, so a short crash costs a whole failover.
    window = s["faults"]["windows"][0]
    assert window["recovery_s"] <= (FAILOVER_S if target == "primary" else 0.1)
    assert applied_logs_disagree(world) == []
    terms = {world.cluster.node(c).term for c in IDS}
    assert terms == ({2} if target == "primary" else {1})


def test_a_paused_primary_is_replaced_and_resumes_as_a_harmless_backup():
    pause = {"kind": "pause", "at": 3, "target": "primary", "duration": 2}
    for kind in ("register", "set"):
        world = build(
            scenario(faults=[pause], workload={"kind": kind, "read_fraction": 0.5}), seed=4
        )
        world.start()
        world.engine.run(4.9)  # paused past the failure timeout: a successor took over
        assert world.cluster.node("n1").role == "primary" and world.cluster.node("n1").term == 1
        successor = [c for c in world.cluster.with_role(("primary",)) if c != "n1"]
        assert len(successor) == 1 and world.cluster.node(successor[0]).term == 2
        world.engine.run(5.2)  # resumed: its backlog shows it epoch 2, it steps down
        assert world.cluster.with_role(("primary",)) == successor
        assert world.cluster.node("n1").term == 2
        world.run()
        s = summary_of(world)
        assert s["consistency"]["linearizable"] is True
        assert s["durability"]["lost_writes"] in (None, 0)
        assert applied_logs_disagree(world) == []
        assert s["faults"]["windows"][0]["recovery_s"] <= 0.1


def test_a_primary_resuming_cut_off_refuses_reads_once_its_lease_has_run_out():
    # n1 is paused from 3 s to 5 s and cut off alone until 6 s. Its timers stood still,
    # so on resume it still believes it is primary (it steps down only half a second
    # later), but epoch 2 began on the other side at about 3.7 s and has been writing
    # since. Its clock says its last acknowledgement is 2 s old: it refuses the reads
    # queued in the last client timeout (0.5 s) of the pause and those that come after.
    faults = [
        {"kind": "pause", "at": 3, "target": "n1", "duration": 2},
        {"kind": "partition", "at": 3, "duration": 3, "groups": [["n1"]]},
    ]
    res = run(scenario(faults=faults, workload={"read_fraction": 0.5}), seed=6)
    ops = res.history.operations()
    refused = [float(ops.invoke_time[i]) for i in range(len(ops)) if ops.error(i) == "no-lease"]
    assert refused and all(4.5 <= t < 5 + TIMEOUT + 2 * HEARTBEAT for t in refused)
    assert any(t >= 5 for t in refused)
    assert res.summary["staleness"]["stale_read_fraction"] == 0.0
    assert res.summary["consistency"]["linearizable"] is True


def test_clock_skew_causes_no_failover_and_no_anomaly():
    faults = [
        # The primary's clock jumps 5 s ahead and runs at half speed; a backup's jumps
        # 5 s back and runs at double speed. Silence is counted in timer ticks, which
        # jumps do not move, and both rates keep heartbeats well inside the timeout.
        {"kind": "clock", "at": 3, "target": "primary", "offset": "5s", "rate": 0.5, "duration": 3},
        {"kind": "clock", "at": 3, "target": "n3", "offset": "-5s", "rate": 2, "duration": 3},
    ]
    for kind in ("register", "set"):
        world = build(scenario(faults=faults, workload={"kind": kind}), seed=5)
        world.run()
        s = summary_of(world)
        assert {world.cluster.node(c).term for c in IDS} == {1}
        assert s["consistency"]["linearizable"] is True
        assert s["durability"]["lost_writes"] in (None, 0)
        # The jump voids the primary's read lease until the next acknowledgement renews
        # it (a heartbeat or a write, within a heartbeat interval at its slowed rate).
        for window in s["faults"]["windows"]:
            assert window["recovery_s"] <= 2 * HEARTBEAT
        assert s["availability"]["outside_faults"] >= 0.99


RANDOM = [
    {
        "kind": "random",
        "at": 0.2,
        "rate": 2,
        "faults": ["crash", "partition", "pause"],
        "duration": {"dist": "uniform", "low": "100ms", "high": "700ms"},
    },
    {
        "kind": "random",
        "at": 0.3,
        "rate": 1,
        "faults": ["crash", "pause"],
        "target": "primary",
        "duration": {"dist": "uniform", "low": "100ms", "high": "500ms"},
    },
]
FAST = {"heartbeat_interval": "20ms", "failure_timeout": "200ms"}


@pytest.mark.parametrize("fencing", ["epoch", "none"])
def test_at_most_one_primary_per_epoch_sampled_every_10_ms(fencing):
    world = build(
        scenario(
            {**FAST, "fencing": fencing, "replication": "async"},
            duration=6,
            faults=RANDOM,
            network={"loss": 0.02},
        ),
        seed=7,
    )
    world.start()
    primaries: dict[int, set[str]] = {}
    together = 0
    t = 0.0
    while t < 6:
        t = round(t + 0.01, 2)
        world.engine.run(t)
        now = world.cluster.with_role(("primary",))
        together = max(together, len(now))
        for cid in now:
            primaries.setdefault(world.cluster.node(cid).term, set()).add(cid)
    assert len(primaries) >= 4  # the faults forced several failovers
    assert all(len(holders) == 1 for holders in primaries.values()), primaries
    if fencing == "none":
        # Two primaries of different epochs served at once: the old one, cut off, never
        # stepped down. (With fencing that happens only while a deposed primary is
        # paused, and it can commit nothing new: the majority has moved on.)
        assert together >= 2


STATE_MACHINE = scenario(
    FAST,
    **random_faults("primary"),
    workload={"kind": "set", "rate": 20, "read_fraction": 0.3, "keys": 3},
)


@pytest.mark.parametrize("seed", range(24))
def test_applied_logs_stay_prefixes_of_each_other_under_random_crashes_and_partitions(seed):
    world = build(STATE_MACHINE, seed)
    world.run()
    assert applied_logs_disagree(world) == []
    s = summary_of(world)
    assert s["durability"]["acknowledged_writes"] > 50
    assert s["durability"]["lost_writes"] == 0
    assert s["consistency"]["linearizable"] is True
    assert s["final"]["divergent_keys"] == 0


def test_failover_promotes_the_most_up_to_date_backup_not_the_first_in_line():
    # From 1 s nothing the primary n5 sends reaches n1, n2 or n3 (their logs stop there),
    # while n4 keeps up. Without a majority n5 steps down; n1, n2 and n3 are a majority
    # and n1 wins ties, but n4 has the longest log and is promoted. With async
    # replication, promoting n1 would lose every add n5 acknowledged after 1 s.
    params = {"initial_primary": "n5", "replication": "async"}
    faults = [
        {
            "kind": "link",
            "at": 1,
            "groups": [["n5"], ["n1", "n2", "n3"]],
            "direction": "out",
            "loss": 1.0,
        }
    ]
    world = build(scenario(params, faults=faults, workload={"kind": "set"}), seed=1)
    world.start()
    world.engine.run(3)
    assert world.cluster.with_role(("primary",)) == ["n4"]
    assert world.cluster.node("n4").term == 2
    world.run()
    d = summary_of(world)["durability"]
    assert d["acknowledged_writes"] > 300
    assert d["lost_writes"] <= 3  # at most what n5 acknowledged but had not yet sent n4


def test_a_backup_that_stops_hearing_the_primary_does_not_depose_it():
    # n3 (zone c) hears nothing from the primary n1 for 8 s. It tries to promote itself
    # every timeout or so, but the others still hear n1 and will not vote for it.
    faults = [
        {"kind": "link", "at": 1, "groups": [["n1"], ["n3"]], "direction": "out", "loss": 1.0}
    ]
    # Only reads: every log stays as long as n3's, so only "I still hear the primary"
    # keeps the others from voting for it (in a busy cluster, n3's short log would too).
    world = build(scenario(faults=faults, duration=9, workload={"read_fraction": 1.0}), seed=2)
    world.run()
    assert {world.cluster.node(c).term for c in IDS} == {1}
    # The primary serves every client but n3's (whose answers cross the broken link).
    by_zone = summary_of(world)["availability"]["by_zone"]
    assert by_zone["a"] == by_zone["b"] == 1.0


def test_roles_and_terms_through_a_failover():
    world = build(
        scenario(
            {"initial_primary": "n2"},
            faults=[{"kind": "crash", "at": 1, "target": "primary", "duration": 2}],
        ),
        seed=1,
    )
    world.start()
    world.engine.run(0.5)
    assert [world.cluster.node(c).role for c in IDS] == [
        "backup",
        "primary",
        "backup",
        "backup",
        "backup",
    ]
    assert [world.cluster.node(c).term for c in IDS] == [1] * 5
    roles_seen = set()
    t = 1.0
    while t < 2.5:
        t += 0.005
        world.engine.run(t)
        roles_seen |= {world.cluster.node(c).role for c in IDS if c != "n2"}
    assert roles_seen == {"backup", "candidate", "primary"}
    world.engine.run(3.5)  # n2 restarted at 3 s (ready at 3.1 s) as a backup of epoch 2
    assert world.cluster.node("n2").role == "backup"
    assert [world.cluster.node(c).term for c in IDS] == [2] * 5
    assert len(world.cluster.with_role(("primary",))) == 1


def test_duplicated_requests_are_applied_once():
    world = build(scenario(network={"duplicate": 0.3}, workload={"rate": 40}), seed=5)
    world.run()
    log = world.cluster.node("n1").applied_log()
    written = [(op, key, value) for op, key, value in log if op == "write"]
    assert len(written) > 200 and len(written) == len(set(written))


LATE_DUPLICATES = {
    "duplicate": 0.5,
    # A fifth of client requests forwarded between containers take 100 to 400 ms: a
    # duplicate often arrives after the first copy was answered, and after a failover.
    "latency": {
        "kinds": {
            "client": {
                "dist": "mixture",
                "components": [
                    {"weight": 0.8, "dist": "constant", "value": "1ms"},
                    {"weight": 0.2, "dist": "uniform", "low": "100ms", "high": "400ms"},
                ],
            }
        }
    },
}


@pytest.mark.parametrize("seed", [0, 6, 9])
def test_a_late_duplicate_never_takes_effect_after_its_attempt_was_turned_away(seed):
    # Before replicas remembered the attempts they redirected or refused, each of these
    # seeds had a write that failed definitely (no-primary) and yet took effect: a late
    # copy of the same attempt reached the replica once it was primary again.
    sc = scenario(
        FAST,
        duration=6,
        network=LATE_DUPLICATES,
        workload={"rate": 40, "read_fraction": 0.3, "keys": 3, "retries": {"attempts": 3}},
        faults=[
            {
                "kind": "random",
                "at": 0.2,
                "rate": 2,
                "faults": ["partition"],
                "shapes": ["halves"],
                "target": "primary",
                "duration": {"dist": "uniform", "low": "300ms", "high": "600ms"},
            }
        ],
    )
    res = run(sc, seed=seed)
    errors = [res.history.operations().error(i) for i in range(len(res.history.operations()))]
    assert errors.count("no-primary") > 20
    assert res.summary["consistency"]["linearizable"] is True


@pytest.mark.parametrize(
    "bad",
    [
        {"replication": "semi"},
        {"acks": 2},
        {"fencing": "quorum"},
        {"heartbeat_interval": 0},
        {"heartbeat_interval": "0.5ms"},
        {"heartbeat_interval": "300ms", "failure_timeout": "500ms"},
        {"max_batch": 0},
        {"quorum": 2},
    ],
)
def test_nonsensical_parameters_are_refused(bad):
    with pytest.raises(ScenarioError):
        prepare(scenario(bad))


def test_a_refusal_of_an_earlier_epochs_append_does_not_count_as_this_epochs_ack():
    # Found by capsim explore (the primary-backup-sync-epoch hunt): the primary's outgoing
    # links slow by 1 s, the backups elect another primary, and when the old one leads
    # their epoch again its epoch-1 appends arrive and are refused. The refusals reached
    # it as acknowledgements of the new epoch, carrying no send time, and the next read's
    # lease check raised TypeError. They must be ignored: the run completes, every
    # invariant the configuration claims holds.
    from capsim.scenario import load_scenario

    base = load_scenario(
        "scenarios/primary-backup-split-brain.yaml",
        overrides=[
            "duration=10s",
            "policy.params.replication=sync",
            "policy.params.fencing=epoch",
            "faults=[{kind: link, at: 1.0, duration: 0.4, groups: [[n2, n3, n4], [n1]],"
            " direction: out, latency: {dist: constant, value: 1.0}},"
            " {kind: link, at: 1.4, duration: 0.2, target: primary, direction: out,"
            " latency: {dist: constant, value: 1.0}}]",
        ],
    )
    result = run(base)
    assert result.summary["invariants"]["failed"] == []
    assert "no-lost-writes" in result.summary["invariants"]["held"]
    terms = {term for _, _, _, role, term in result.roles if role == "primary"}
    assert len(terms) >= 2  # the primary did change epochs
