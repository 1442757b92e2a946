"""The disk model against a tiny reference: whatever the interleaving of writes, syncs,
writebacks, compactions and crashes, reads see every write and a crash keeps exactly the
synced ones."""

from __future__ import annotations

import copy

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from capsim.sim.storage import Durable

KEYS = ["a", "b", "c"]
LOGS = ["wal", "meta"]


def atoms():
    """Immutable scalars: None, booleans, small ints and short strings; shrink to None."""
    return st.none() | st.booleans() | st.integers(-3, 3) | st.text("xy", max_size=2)


def values():
    """What a store holds: atoms and floats, and lists, tuples, dicts, sets and frozensets
    nesting them; shrink toward None, then toward flatter and shorter values."""
    return st.recursive(
        atoms() | st.floats(allow_nan=False),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.tuples(inner, inner)
            | st.dictionaries(st.text("xy", max_size=1), inner, max_size=2)
            | st.sets(atoms(), max_size=2)
            | st.frozensets(atoms(), max_size=2)
        ),
        max_leaves=4,
    )


def replay(state, writes):
    """``state`` (untouched) with ``writes`` applied in order: (operation, name, argument).

    A log is ``[first, entries]``: the index of the first entry held, and those held."""
    data, logs = copy.deepcopy(state)
    for op, name, arg in writes:
        if op == "set":
            data[name] = arg
        elif op == "del":
            del data[name]
        elif op == "append":
            logs[name][1].append(arg)
        elif op == "extend":
            logs[name][1].extend(arg)
        elif op == "compact":
            first, entries = logs[name]
            logs[name] = [arg, entries[arg - first :]]
        else:
            first, entries = logs[name]
            del entries[arg - first :]
    return data, logs


def mutate(value) -> bool:
    """Change the first mutable container in ``value`` in place; False if there is none."""
    if isinstance(value, list):
        value.append("mutated")
    elif isinstance(value, dict):
        value["mutated"] = True
    elif isinstance(value, set):
        value.add("mutated")
    elif isinstance(value, tuple | frozenset):
        return any(mutate(item) for item in value)
    else:
        return False
    return True


class DiskModel(RuleBasedStateMachine):
    """A Durable against a model: the state at the last crash plus the writes since, of
    which a prefix is durable; a completed sync makes durable every write before it."""

    tracking = True

    def __init__(self) -> None:
        super().__init__()
        self.durable = Durable(tracking=self.tracking)
        self.crashed_state = ({}, {name: [0, []] for name in LOGS})
        self.writes = []  # every write since the last crash
        self.durable_writes = 0  # how many of them are durable: always a prefix
        self.pending = []  # syncs in flight: (the store's mark, len(writes) at issue)
        self.stale = []  # marks of syncs issued before a crash
        self.written = []  # values and entries as the test handed them to the store

    def live(self):
        return replay(self.crashed_state, self.writes)

    def write(self, op, name, arg) -> None:
        self.writes.append((op, name, copy.deepcopy(arg)))
        if not self.tracking:
            self.durable_writes = len(self.writes)

    # -- writes ------------------------------------------------------------------------------

    @rule(key=st.sampled_from(KEYS), value=values())
    def set(self, key, value):
        self.durable[key] = value
        self.write("set", key, value)
        self.written.append(value)

    @rule(key=st.sampled_from(KEYS))
    def delete(self, key):
        if key in self.live()[0]:
            del self.durable[key]
            self.write("del", key, None)
        else:
            try:
                del self.durable[key]
            except KeyError:
                pass
            else:
                raise AssertionError(f"deleting the absent {key!r} did not raise KeyError")

    @rule(name=st.sampled_from(LOGS), entry=values())
    def append(self, name, entry):
        self.durable.log(name).append(entry)
        self.write("append", name, entry)
        self.written.append(entry)

    @rule(name=st.sampled_from(LOGS), entries=st.lists(values(), max_size=3))
    def extend(self, name, entries):
        self.durable.log(name).extend(entries)
        self.write("extend", name, entries)
        self.written.append(entries)

    @rule(name=st.sampled_from(LOGS), length=st.integers(0, 5))
    def truncate(self, name, length):
        first = self.live()[1][name][0]
        if length < first:
            try:
                self.durable.log(name).truncate(length)
            except ValueError:
                return
            raise AssertionError("truncating into the compacted prefix did not raise")
        self.durable.log(name).truncate(length)
        self.write("truncate", name, length)

    @rule(name=st.sampled_from(LOGS), data=st.data())
    def compact(self, name, data):
        first, entries = self.live()[1][name]
        upto = data.draw(st.integers(first, first + len(entries)))
        self.durable.log(name).compact(upto)
        self.write("compact", name, upto)

    # -- mutation in place is not a write ----------------------------------------------------

    @precondition(lambda self: self.written)
    @rule(data=st.data())
    def mutate_a_written_value(self, data):
        mutate(data.draw(st.sampled_from(self.written)))

    @rule(key=st.sampled_from(KEYS), name=st.sampled_from(LOGS), index=st.integers(-3, 3))
    def mutate_a_read_value(self, key, name, index):
        mutate(self.durable.get(key))
        log = self.durable.log(name)
        if log.first <= index < len(log) or -len(log) + log.first <= index < 0:
            mutate(log[index])
            mutate(log[index:])
        for entry in log:
            mutate(entry)

    # -- the disk ----------------------------------------------------------------------------

    @rule()
    def issue_sync(self):
        self.pending.append((self.durable.mark(), len(self.writes)))

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def complete_sync(self, data):
        mark, covered = self.pending.pop(data.draw(st.integers(0, len(self.pending) - 1)))
        self.durable.persist(mark)
        self.durable_writes = max(self.durable_writes, covered)

    @rule()
    def writeback(self):
        self.durable.persist(self.durable.mark())
        self.durable_writes = len(self.writes)

    @precondition(lambda self: self.stale)
    @rule(data=st.data())
    def complete_a_sync_issued_before_a_crash(self, data):
        self.durable.persist(data.draw(st.sampled_from(self.stale)))

    @rule()
    def crash(self):
        self.durable.lose_unsynced()
        self.crashed_state = replay(self.crashed_state, self.writes[: self.durable_writes])
        self.writes = []
        self.durable_writes = 0
        self.stale.extend(mark for mark, _ in self.pending)
        self.pending = []
        self.check_reads()

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def check_reads(self):
        data, logs = self.live()
        assert {key: self.durable[key] for key in self.durable} == data
        for name in LOGS:
            log = self.durable.log(name)
            first, entries = logs[name]
            assert list(log) == entries and len(log) == first + len(entries)
            assert log.first == first
            if entries:
                assert log[first] == entries[0] and log[-1] == entries[-1]
                assert log[first:] == entries
            if first:
                try:
                    log[first - 1]
                except IndexError:
                    pass
                else:
                    raise AssertionError("a compacted entry was readable")


class InstantDiskModel(DiskModel):
    """The instant disk: every write is durable at once, and values are still snapshots."""

    tracking = False


TestDisk = DiskModel.TestCase
TestInstantDisk = InstantDiskModel.TestCase
