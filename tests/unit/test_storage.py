"""Durable state on a disk: writes are durable once synced; a crash loses the rest."""

from __future__ import annotations

import pytest
from conftest import make_world

from capsim.sim.storage import Durable


def state(d):
    """Everything a read of ``d`` sees: its dict and its log called ``log``."""
    return {k: d[k] for k in d}, list(d.log("log"))


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


def test_a_truncation_is_a_write_durable_once_synced():
    d = Durable(tracking=True)
    log = d.log("log")
    log.extend([1, 2, 3])
    d.persist(d.mark())
    log.truncate(1)
    log.append(9)
    assert list(log) == [1, 9]
    d.lose_unsynced()  # neither the truncation nor the append was synced
    assert list(log) == [1, 2, 3]
    log.truncate(1)
    log.append(9)
    d.persist(d.mark())
    log.append(10)
    d.lose_unsynced()
    assert list(log) == [1, 9]


def test_deletes_are_journaled():
    d = Durable(tracking=True)
    d["a"] = 1
    d.persist(d.mark())
    del d["a"]
    d.persist(d.mark())
    d.lose_unsynced()
    assert "a" not in d


# -- one test per defect of the first disk model; each failed on it ------------------------


def test_a_sync_completing_after_a_writeback_covers_only_writes_before_it():
    d = Durable(tracking=True)
    d["a"] = 1
    issued = d.mark()  # a sync is issued
    d["b"] = 2
    d.persist(d.mark())  # a writeback starts and completes
    d["c"] = 3
    d["d"] = 4
    d.persist(issued)  # the sync completes: c and d came after it
    d.lose_unsynced()
    assert state(d) == ({"a": 1, "b": 2}, [])


def test_a_stale_sync_does_not_void_a_later_sync():
    d = Durable(tracking=True)
    for key in "abc":
        d[key] = 1
    stale = d.mark()
    d.persist(d.mark())  # a writeback
    d.persist(stale)  # a sync issued before the writeback completes after it
    d["y"] = 2
    d.log("log").append("e")
    d.persist(d.mark())  # a sync of y and e completes
    d.lose_unsynced()
    assert state(d) == ({"a": 1, "b": 1, "c": 1, "y": 2}, ["e"])


def test_a_sync_issued_before_a_truncation_does_not_cover_the_entries_appended_after_it():
    d = Durable(tracking=True)
    log = d.log("log")
    log.extend([1, 2, 3])
    d.persist(d.mark())
    issued = d.mark()
    log.truncate(1)
    log.extend([8, 9])
    d.persist(issued)  # covers nothing new: the truncation and the appends came after it
    d.lose_unsynced()
    assert list(log) == [1, 2, 3]


def test_a_sync_in_flight_at_a_crash_covers_nothing_written_after_the_crash():
    d = Durable(tracking=True)
    d["a"] = 1
    issued = d.mark()
    d.lose_unsynced()  # the crash loses a; the sync's completion arrives later anyway
    d["b"] = 2
    d.persist(issued)
    d.lose_unsynced()
    assert state(d) == ({}, [])


@pytest.mark.parametrize("tracking", [True, False], ids=["slow-disk", "instant-disk"])
def test_values_are_stored_as_written_and_mutating_them_in_place_is_not_a_write(tracking):
    d = Durable(tracking=tracking)
    log = d.log("log")
    value, entry = {"x": [1]}, ["e", {1}]
    d["data"] = value
    log.append(entry)
    d.persist(d.mark())
    value["x"].append(2)  # after the write
    entry[1].add(2)
    d["data"]["x"].append(3)  # after a read
    log[0][1].add(3)
    log[:1][0][1].add(4)
    for read in log:
        read.append("more")
    d.get("data")["y"] = 0
    d.setdefault("data", {})["z"] = 0
    assert state(d) == ({"data": {"x": [1]}}, [["e", {1}]])
    d.lose_unsynced()
    assert state(d) == ({"data": {"x": [1]}}, [["e", {1}]])


#: Every way a list changes in place, but append, extend and truncate (``+=``: below).
MUTATIONS = {
    "setitem": lambda log: log.__setitem__(0, "x"),
    "setslice": lambda log: log.__setitem__(slice(0, 1), ["x"]),
    "delitem": lambda log: log.__delitem__(0),
    "imul": lambda log: log.__imul__(2),
    "pop": lambda log: log.pop(),
    "insert": lambda log: log.insert(0, "x"),
    "clear": lambda log: log.clear(),
    "sort": lambda log: log.sort(),
    "reverse": lambda log: log.reverse(),
    "remove": lambda log: log.remove("a"),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_a_log_refuses_every_mutation_but_append_extend_and_truncate(mutation):
    d = Durable(tracking=True)
    log = d.log("log")
    log.extend(["b", "a"])
    with pytest.raises(TypeError, match=r"append, extend, truncate\(length\) and compact"):
        MUTATIONS[mutation](log)
    assert list(log) == ["b", "a"]


def test_augmented_assignment_to_a_log_is_refused():
    d = Durable(tracking=False)
    log = d.log("log")
    with pytest.raises(TypeError, match=r"append, extend, truncate\(length\) and compact"):
        log += ["x"]
    assert d.log("log") == [] and log is d.log("log")


def test_a_log_reads_as_a_sequence():
    d = Durable(tracking=True)
    log = d.log("log")
    log.extend([("w", "k", 1), ("w", "k", 2), ("w", "k", 3)])
    assert len(log) == 3 and log[-1] == ("w", "k", 3)
    assert log[1:] == [("w", "k", 2), ("w", "k", 3)] and type(log[1:]) is list
    assert log == [("w", "k", 1), ("w", "k", 2), ("w", "k", 3)] and log != ("w", "k", 1)
    assert ("w", "k", 2) in log and log.index(("w", "k", 2)) == 1
    assert [entry[2] for entry in log] == [1, 2, 3]
    with pytest.raises(ValueError):
        log.truncate(-1)
    seen = []
    for entry in log:  # iteration sees the log as it was when it began
        seen.append(entry)
        log.append(["mutable"])
    assert seen == log[:3] and log[3:] == [["mutable"]] * 3


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


def test_a_sync_completes_on_disk_while_its_container_is_paused():
    # The write at 1.0 s is synced by 1.05 s although n2 is paused from 1.02 to 1.2 s:
    # a stopped process does not stop its disk. A crash at 1.1 s, still paused, keeps it;
    # the policy never hears of the sync (its continuation waited for the resume).
    world = scribe_world(
        {"sync": "50ms", "writeback": "10s"},
        1.1,
        faults=[{"kind": "pause", "at": 1.02, "target": "n2", "duration": 0.18}],
    )
    after, before = run_writes(world)
    assert set(after.durable) == {"synced"}
    assert list(after.durable.log("log")) == ["entry"]
    assert before.synced_at == []


def test_a_paused_containers_sync_continuation_runs_on_resume():
    world = scribe_world(
        {"sync": "50ms", "writeback": "10s"},
        2.5,
        faults=[{"kind": "pause", "at": 1.02, "target": "n2", "duration": 0.18}],
    )
    world.engine.run(0.5)
    node = world.cluster.node("n2")
    world.engine.call_in(0.5, node.write, "synced", 1, True)
    world.engine.run(1.1)
    assert node.synced_at == []  # due at 1.05, held by the pause
    world.engine.run(1.3)
    assert node.synced_at == [1.0]  # ran at the resume (1.2 s), with its argument


def test_compaction_drops_a_prefix_keeps_indices_and_is_a_write():
    d = Durable(tracking=True)
    log = d.log("wal")
    log.extend(["e0", "e1", "e2", "e3", "e4"])
    d["snapshot"] = ("state after e0..e2", 3)
    d.persist(d.mark())
    log.compact(3)
    assert len(log) == 5 and log.first == 3
    assert log[3] == "e3" and log[-1] == "e4" and log[3:] == ["e3", "e4"]
    assert list(log) == ["e3", "e4"]
    with pytest.raises(IndexError, match="compacted"):
        log[2]
    with pytest.raises(ValueError, match="compacted"):
        log.truncate(2)
    log.append("e5")
    d.lose_unsynced()  # the compaction was not synced: the whole log is back
    assert log.first == 0 and list(log) == ["e0", "e1", "e2", "e3", "e4"]
    log.compact(2)
    d.persist(d.mark())
    log.truncate(4)
    d.lose_unsynced()
    assert log.first == 2 and list(log) == ["e2", "e3", "e4"] and len(log) == 5
