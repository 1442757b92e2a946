"""Durable state on a disk: writes are durable once synced; a crash loses the rest."""

from __future__ import annotations

import pytest
from conftest import make_world

from capsim.sim.storage import Durable


def test_instant_disk_keeps_every_write():
    d = Durable(tracking=False)
    d["a"] = 1
    d.log("log").append("x")
    d.lose_unsynced()
    assert d["a"] == 1 and list(d.log("log")) == ["x"]


def test_tracking_store_rolls_back_to_the_last_persisted_mark():
    d = Durable(tracking=True)
    d["a"] = 1
    d.log("log").extend(["x", "y"])
    mark = d.mark()
    d["a"] = 2
    d["b"] = 3
    d.log("log").append("z")
    d.persist(mark)
    assert d["a"] == 2 and d["b"] == 3  # reads see every write at once
    d.lose_unsynced()
    assert dict((k, d[k]) for k in d) == {"a": 1}
    assert list(d.log("log")) == ["x", "y"]


def test_truncating_below_the_synced_length_is_kept():
    d = Durable(tracking=True)
    log = d.log("log")
    log.extend([1, 2, 3])
    d.persist(d.mark())
    log.truncate(1)
    log.append(9)
    d.lose_unsynced()
    assert list(log) == [1]


def test_deletes_are_journaled():
    d = Durable(tracking=True)
    d["a"] = 1
    d.persist(d.mark())
    del d["a"]
    d.persist(d.mark())
    d.lose_unsynced()
    assert "a" not in d


def scribe_world(disk, crash_at, faults=()):
    world = make_world(
        policy={"name": "probes:Scribe"},
        workload={"clients_per_zone": 0},
        cluster={"disk": disk},
        images=[{"name": "kv", "startup": "100ms"}],
        faults=[{"kind": "crash", "at": crash_at, "target": "n2", "duration": 0.1}, *faults],
    )
    world.start()
    return world


def run_writes(world, until=3.0):
    node = world.cluster.node("n2")
    world.engine.call_in(1.0, node.write, "synced", 1, True)  # sync takes 50 ms
    world.engine.call_in(1.01, node.write, "unsynced", 2, False)
    world.engine.call_in(1.0, node.append, "entry", True)
    world.engine.run(until)
    return world.cluster.node("n2"), node


@pytest.mark.parametrize(("crash_at", "kept"), [(1.03, set()), (1.06, {"synced"})])
def test_a_crash_loses_writes_not_yet_synced(crash_at, kept):
    world = scribe_world({"sync": "50ms", "writeback": "10s"}, crash_at)
    after, before = run_writes(world)
    assert set(after.durable) == kept
    assert list(after.durable.log("log")) == (["entry"] if "synced" in kept else [])
    assert before.synced_at == ([1.0, 1.0] if crash_at > 1.05 else [])


def test_writeback_persists_everything_periodically():
    # Writeback every 0.4 s: at 0.4, 0.8, 1.2. The unsynced write at 1.01 survives a crash
    # at 1.3, not one at 1.1.
    for crash_at, kept in ((1.1, False), (1.3, True)):
        world = scribe_world({"sync": "50ms", "writeback": "400ms"}, crash_at)
        after, _ = run_writes(world)
        assert ("unsynced" in after.durable) is kept


def test_a_lying_disk_acknowledges_syncs_but_keeps_nothing():
    world = scribe_world({"sync": "5ms", "lies": True, "writeback": "10s"}, 1.5)
    after, before = run_writes(world)
    assert before.synced_at == [pytest.approx(1.0), pytest.approx(1.0)]  # told it was synced
    assert set(after.durable) == set() and list(after.durable.log("log")) == []


def test_a_rolling_upgrade_flushes_before_stopping():
    world = make_world(
        policy={"name": "probes:Scribe"},
        workload={"clients_per_zone": 0},
        cluster={"disk": {"sync": "50ms", "writeback": "10s"}},
        images=[
            {"name": "kv", "version": "1", "startup": "100ms"},
            {"name": "kv", "version": "2", "startup": "100ms"},
        ],
        faults=[
            {"kind": "upgrade", "at": 1.5, "image": "kv:2", "target": "n2"},
            {"kind": "crash", "at": 2.5, "target": "n3", "duration": 0.1},
        ],
    )
    world.start()
    for cid in ("n2", "n3"):
        node = world.cluster.node(cid)
        world.engine.call_in(1.0, node.write, "unsynced", 1, False)
    world.engine.run(3)
    assert "unsynced" in world.cluster.node("n2").durable  # graceful stop flushed it
    assert "unsynced" not in world.cluster.node("n3").durable  # a crash did not
