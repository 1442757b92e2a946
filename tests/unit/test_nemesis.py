"""The nemesis: targets resolved when a fault fires, and a record of everything applied."""

from __future__ import annotations

from conftest import make_world


def world_with(faults, policy=None, seed=1):
    world = make_world(
        seed=seed,
        policy=policy or {"name": "single-primary", "params": {"primary": "n3"}},
        workload={"clients_per_zone": 0},
        faults=faults,
    )
    world.start()
    return world


def starts(world):
    return [r for r in world.nemesis.records if r["event"] == "start"]


def test_role_target_resolves_to_the_current_primary():
    world = world_with([{"kind": "crash", "at": 1, "target": "primary"}])
    world.engine.run(2)
    assert starts(world)[0]["targets"] == ["n3"]
    assert world.cluster.node("n3") is None


def test_leader_and_primary_are_synonyms():
    world = world_with([{"kind": "partition", "at": 1, "shape": "isolate", "target": "leader"}])
    world.engine.run(2)
    assert starts(world)[0]["groups"][0] == ["n3"]


def test_halves_with_primary_target_put_the_primary_in_the_minority():
    world = world_with([{"kind": "partition", "at": 1, "shape": "halves", "target": "primary"}])
    world.engine.run(2)
    minority, majority = starts(world)[0]["groups"]
    assert "n3" in minority and len(minority) == 2 and len(majority) == 3


def test_zone_target_is_every_container_in_the_zone():
    world = world_with([{"kind": "crash", "at": 1, "target": "b"}])
    world.engine.run(2)
    assert starts(world)[0]["targets"] == ["n2", "n5"]


def test_list_of_targets_is_their_union_in_order():
    world = world_with([{"kind": "crash", "at": 1, "target": ["n4", "a", "primary"]}])
    world.engine.run(2)
    assert starts(world)[0]["targets"] == ["n4", "n1", "n3"]


def test_role_target_without_a_role_is_skipped_with_a_reason():
    world = world_with(
        [{"kind": "crash", "at": 1, "target": "leader"}], policy={"name": "probes:Probe"}
    )
    world.engine.run(2)
    (record,) = world.nemesis.records
    assert record["event"] == "skipped" and "role" in record["reason"]
    assert world.cluster.down() == []


def test_random_target_comes_from_the_seeded_nemesis_stream():
    def target(seed):
        world = world_with([{"kind": "crash", "at": 1, "target": "random"}], seed=seed)
        world.engine.run(2)
        return starts(world)[0]["targets"]

    picks = [target(seed) for seed in range(12)]
    assert picks == [target(seed) for seed in range(12)]  # replayable
    assert len({p[0] for p in picks}) > 1  # but not constant


def test_crash_with_duration_records_start_restart_and_end():
    world = make_world(
        policy={"name": "single-primary"},
        workload={"clients_per_zone": 0},
        images=[{"name": "kv", "startup": "250ms"}],
        faults=[{"kind": "crash", "at": 1, "target": "n2", "duration": 2}],
    )
    world.start()
    world.engine.run(5)
    got = [(r["event"], r["time"]) for r in world.nemesis.records]
    assert got == [("start", 1.0), ("restart", 3.0), ("end", 3.25)]
    assert world.nemesis.records[0]["spec"] == "Crash(at=1.0, target='n2', duration=2.0, shard=0)"


def test_final_phase_heals_partitions_and_restarts_crashed_containers():
    world = make_world(
        policy={"name": "single-primary"},
        workload={"clients_per_zone": 0},
        faults=[
            {"kind": "partition", "at": 1, "shape": "isolate", "target": "n1"},
            {"kind": "crash", "at": 2, "target": "n2"},
        ],
    )
    world.run()
    final = [r for r in world.nemesis.records if r["fault"] is None]
    assert final == [
        {
            "time": 10.0,
            "fault": None,
            "kind": "final",
            "event": "apply",
            "ended": [0],
            "restarted": ["n2"],
        }
    ]
    assert world.network.cut_pairs == 0
    assert world.cluster.down() == []
    ends = {r["fault"]: r["time"] for r in world.nemesis.records if r["event"] == "end"}
    assert ends == {0: 10.0, 1: 11.0}  # the partition ends at once; n2 is ready after 1 s


def test_fault_reprs_are_valid_python():
    from capsim.faults import Crash, Heal, Partition, Restart

    faults = [
        Partition(at=1.0, duration=2.0, shape="halves", target="primary"),
        Partition(at=0.5, groups=(("n1", "n2"), ("n3",))),
        Heal(at=3.0),
        Crash(at=1.0, target=("n1", "b"), duration=0.5),
        Restart(at=2.0, target="n1"),
    ]
    namespace = {"Partition": Partition, "Heal": Heal, "Crash": Crash, "Restart": Restart}
    for fault in faults:
        assert eval(repr(fault), namespace) == fault  # noqa: S307 - the point of the test
