"""Durable state and the disk under it: what survives a crash, and when.

Each replica has a :class:`Durable` store (a dict and named append-only logs) that
survives a crash of its container, and each container has a :class:`Disk`.

A *write* is a dict set or delete, a log append or extend, or a log truncate. Reads see
every write at once. A write is durable exactly when a sync issued after it completes
(``Node.sync``), or a writeback started after it completes (the disk writes everything
back every ``writeback`` seconds, as an OS flushes dirty pages), whatever the order in
which syncs, writebacks, truncations and crashes interleave. A crash rolls the store, the
dict and every log, back to exactly the durable writes, applied in the order they were
made; the other writes are lost, and a sync still in flight at the crash covers nothing
written after it. With the default disk, syncs take no time and every write is durable
at once, so the store behaves as a plain dict. A disk that *lies* acknowledges syncs
without making anything durable (the node never persists for it); only writeback does.

Values are stored as they were when written, as a file holds the bytes written to it:
the store keeps its own copy of a mutable value (a list, a dict, a set, a tuple holding
one of those), and every read of such a value returns a fresh copy, so mutating a value
in place, before or after storing it or after reading it, is not a write and changes
nothing in the store. Immutable values (None, bool, int, float, str, bytes, and tuples and
frozensets of those) are stored and returned as they are, at no cost. Log entries alike.

How: each write gets the next number of a per-store sequence and goes to a journal of
redo records; :meth:`Durable.mark` is the number of the last write made, and
:meth:`Durable.persist` applies the records up to a mark, in order, to a durable image of
the dict and of each log, and drops them. The durable watermark only moves forward, and a
crash skips the numbers of the writes it lost, so no mark covers a later write.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from copy import deepcopy
from typing import Any

from capsim.distributions import Constant, draws
from capsim.scenario import DiskSpec

__all__ = ["Durable", "DurableLog", "Disk"]

#: Types whose values cannot change in place: stored and read back without copying.
_ATOMS = frozenset({type(None), bool, int, float, str, bytes})


class _Copy:
    """A private copy of a mutable value in the store; reads get copies of ``value``."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return repr(self.value)


def _is_frozen(value: Any) -> bool:
    """Whether ``value`` can never change in place: atoms, and tuples and frozensets of them."""
    kind = type(value)
    if kind in _ATOMS:
        return True
    if kind is tuple or kind is frozenset:
        return all(type(item) in _ATOMS or _is_frozen(item) for item in value)
    return False


def _stored(value: Any) -> Any:
    """What the store keeps for ``value``: itself if immutable, else a boxed deep copy."""
    return value if _is_frozen(value) else _Copy(deepcopy(value))


def _read(stored: Any) -> Any:
    """What a read of ``stored`` returns: a fresh copy of a mutable value."""
    return deepcopy(stored.value) if type(stored) is _Copy else stored


# Redo records are (fn, target, arg): fn(target, arg) applies the write to a durable image.
def _truncate(entries: list, length: int) -> None:
    del entries[length:]


def _compact(log: DurableLog, first: int) -> None:
    del log._image[: first - log._image_first]
    log._image_first = first


def _set(data: dict, item: tuple[Any, Any]) -> None:
    data[item[0]] = item[1]


_delete = dict.__delitem__
_append = list.append
_extend = list.extend


def _refused(operation: str):
    """A stand-in for a list mutator that a durable log does not support."""

    def refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(
            f"DurableLog does not support {operation}: it changes only through append, "
            "extend, truncate(length) and compact(first)"
        )

    return refuse


# Flat tuples of atoms appended to some log lately, by id: a replica's log receives the
# very tuples its leader appended (the simulation shares them), and such a tuple cannot
# change, so it needs no second look. Bounded: cleared when full (entries then get the
# look again). The dict holds the tuples, so an id here is never a reused one.
_VOUCHED: dict[int, tuple] = {}
_VOUCHED_MAX = 1 << 16


def _vouch(entry: tuple) -> None:
    if len(_VOUCHED) >= _VOUCHED_MAX:
        _VOUCHED.clear()
    _VOUCHED[id(entry)] = entry


_vouched = _VOUCHED.get

_len = list.__len__
_get = list.__getitem__
_del = list.__delitem__


class DurableLog(list):
    """An append-only log in durable state (a write-ahead log).

    A read-only sequence (index, slice, ``len``, iteration, ``==`` with a list) that grows
    with :meth:`append` and :meth:`extend`, shrinks at the end with :meth:`truncate` and
    drops a prefix behind a snapshot with :meth:`compact`; each is a write (see the module
    docstring). Indices keep counting from the log's start after a compaction: ``len``
    counts the compacted entries too, :attr:`first` is the first index still held, and
    reading an index below it raises IndexError; iteration and ``==`` see the entries held.
    Slices are plain lists; iteration sees the log as it was when the iteration began. Any
    other mutation raises TypeError. Get one with :meth:`Durable.log`.

    It is a list of its entries, so that reading it costs what reading a list does: while
    no entry is a boxed copy of a mutable value and nothing was compacted, its class is
    this one, whose reads are list's own; otherwise it is :class:`_ViewedLog`, whose reads
    translate indices and copy entries out.
    """

    __slots__ = ("_image", "_journal", "_copies", "_first", "_image_first")

    def __init__(self, journal: list | None = None) -> None:
        super().__init__()
        self._image: list = []  # what survives a crash (unused when untracked)
        self._journal = journal  # the owner's journal; None when every write is durable
        self._copies = 0  # boxed (mutable) entries held: 0 means reads copy nothing
        self._first = 0  # index of the first entry held: entries before it were compacted
        self._image_first = 0

    def _settle(self) -> None:
        """Take the class whose reads fit: list's own when nothing is boxed or compacted."""
        self.__class__ = _ViewedLog if self._first or self._copies else DurableLog

    # -- writes --------------------------------------------------------------------------

    def append(self, entry: Any) -> None:
        """Append ``entry`` (a write; the log keeps a copy if it is mutable)."""
        # Inlined fast path of _stored for the usual entry, a flat tuple of atoms.
        if type(entry) is tuple:
            for item in entry:
                if type(item) not in _ATOMS:
                    entry = self._keep(entry)
                    break
            else:  # _vouch(entry), inlined
                if len(_VOUCHED) >= _VOUCHED_MAX:
                    _VOUCHED.clear()
                _VOUCHED[id(entry)] = entry
        elif type(entry) not in _ATOMS:
            entry = self._keep(entry)
        _append(self, entry)
        journal = self._journal
        if journal is not None:
            journal.append((_append, self._image, entry))

    def _keep(self, entry: Any) -> Any:
        entry = _stored(entry)
        if type(entry) is _Copy:
            self._copies += 1
            self.__class__ = _ViewedLog
        return entry

    def extend(self, entries: Iterable[Any]) -> None:
        """Append each of ``entries`` in order (one write)."""
        stored = list(entries)
        if not stored:
            return
        for i, entry in enumerate(stored):
            if _vouched(id(entry)) is entry:
                continue  # a flat tuple of atoms already appended to some log
            # Inlined fast path of _stored, as in append.
            if type(entry) is tuple:
                for item in entry:
                    if type(item) not in _ATOMS:
                        stored[i] = self._keep(entry)
                        break
                else:
                    _vouch(entry)
            elif type(entry) not in _ATOMS:
                stored[i] = self._keep(entry)
        _extend(self, stored)
        if self._journal is not None:
            self._journal.append((_extend, self._image, stored))

    def truncate(self, length: int) -> None:
        """Drop every entry from index ``length`` on (a write; no-op if not shorter)."""
        if length < self._first:
            raise ValueError(
                f"cannot truncate a log to length {length}: it holds entries from "
                f"{self._first} on (the rest was compacted)"
            )
        length -= self._first
        if length >= _len(self):
            return
        if self._copies:
            self._copies -= sum(type(entry) is _Copy for entry in _get(self, slice(length, None)))
            self._settle()
        _del(self, slice(length, None))
        if self._journal is not None:
            self._journal.append((_truncate, self._image, length))

    def compact(self, first: int) -> None:
        """Drop every entry before index ``first`` (a write), as a log does behind a
        snapshot the policy keeps in durable state; indices of later entries stay."""
        if not self._first <= first <= self._first + _len(self):
            raise ValueError(
                f"cannot compact a log of {self._first + _len(self)} entries, held from "
                f"{self._first}, up to {first}"
            )
        drop = first - self._first
        if not drop:
            return
        if self._copies:
            self._copies -= sum(type(entry) is _Copy for entry in _get(self, slice(0, drop)))
        _del(self, slice(0, drop))
        self._first = first
        self._settle()
        if self._journal is not None:
            self._journal.append((_compact, self, first))

    @property
    def first(self) -> int:
        """The index of the first entry held (0 unless the log was compacted)."""
        return self._first

    def _roll_back(self) -> None:
        """A crash: reads see the durable image again."""
        _del(self, slice(None))
        _extend(self, self._image)
        self._first = self._image_first
        self._copies = sum(type(entry) is _Copy for entry in self._image)
        self._settle()

    # -- reads (list's own, but for these) -------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        # Over a snapshot: appending while iterating must not hand out a private copy.
        return iter(_get(self, slice(None)))

    def __reversed__(self) -> Iterator[Any]:
        return reversed(_get(self, slice(None)))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if self._journal is None:
            return f"DurableLog({_len(self)} entries)"
        return f"DurableLog({_len(self)} entries, {len(self._image)} durable)"

    def __reduce_ex__(self, protocol):
        # Copied or pickled (a message body holding it, in a recorded run), it is a plain
        # list of the entries it holds, as they read.
        return (list, (list(self),))

    # -- every other list mutator --------------------------------------------------------

    __setitem__ = _refused("item assignment")
    __delitem__ = _refused("item deletion")
    __iadd__ = _refused("+=")
    __imul__ = _refused("*=")
    insert = _refused("insert")
    pop = _refused("pop")
    remove = _refused("remove")
    clear = _refused("clear")
    sort = _refused("sort")
    reverse = _refused("reverse")


class _ViewedLog(DurableLog):
    """A :class:`DurableLog` holding a boxed entry or compacted: reads translate indices
    (they keep counting from the log's start) and return copies of boxed entries."""

    __slots__ = ()

    def _index(self, index):
        """``index`` (an int or a slice of the whole log) as one into the entries held."""
        first = self._first
        length = first + _len(self)
        if isinstance(index, slice):
            start, stop, step = index.indices(length)
            if start < first and (stop - start) * step > 0:
                raise IndexError(f"entries before {first} were compacted")
            return slice(max(start - first, 0), max(stop - first, 0), step)
        if not isinstance(index, int):
            raise TypeError(f"log indices must be integers or slices, not {type(index).__name__}")
        if index < 0:
            index += length
        if index < first and index >= 0:
            raise IndexError(f"entry {index} was compacted (the log holds {first} on)")
        return index - first if index >= 0 else index - length

    def __len__(self) -> int:
        return self._first + _len(self)

    def __getitem__(self, index):
        held = _get(self, self._index(index))
        if not self._copies:
            return held
        if isinstance(index, slice):
            return [_read(entry) for entry in held]
        return _read(held)

    def _held(self) -> list:
        """The entries held, as they read."""
        entries = _get(self, slice(None))
        return [_read(entry) for entry in entries] if self._copies else entries

    def __iter__(self) -> Iterator[Any]:
        return iter(self._held())

    def __reversed__(self) -> Iterator[Any]:
        return reversed(self._held())

    def __contains__(self, value: object) -> bool:
        return value in self._held()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, list):
            return self._held() == list(other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def index(self, value: Any, *args: Any) -> int:
        return self._first + self._held().index(value, *args)

    def count(self, value: Any) -> int:
        return self._held().count(value)

    def copy(self) -> list:
        return self._held()

    def __add__(self, other):
        return self._held() + other

    def __mul__(self, times):
        return self._held() * times

    __rmul__ = __mul__


class Durable:
    """A replica's durable state: a dict, and named logs, that survive crashes.

    Reads see every write at once; a crash rolls the store back to its durable writes (see
    the module docstring). A value is stored as it is when written: mutating it in place
    later, or mutating a value read back, changes nothing in the store, so write the new
    value back (``self.durable["term"] = term + 1``), as a program rewrites a file. For
    data that grows, use :meth:`log`. ``tracking=False`` is the instant disk: every write
    is durable at once.
    """

    __slots__ = ("_data", "_image", "_logs", "_journal", "_base")

    def __init__(self, tracking: bool = False) -> None:
        self._data: dict[str, Any] = {}  # what reads see: every write
        self._image: dict[str, Any] = {}  # what survives a crash (unused when untracked)
        self._logs: dict[str, DurableLog] = {}
        # Redo records of the writes not yet durable, oldest first, shared with the logs.
        # None: the instant disk, nothing to track.
        self._journal: list[tuple[Any, Any, Any]] | None = [] if tracking else None
        self._base = 0  # sequence number of the last durable (or lost) write

    def log(self, name: str) -> DurableLog:
        """The durable log called ``name`` (created empty on first use; not a write)."""
        log = self._logs.get(name)
        if log is None:
            log = self._logs[name] = DurableLog(self._journal)
        return log

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        return deepcopy(value.value) if type(value) is _Copy else value

    def __setitem__(self, key: str, value: Any) -> None:
        if type(value) not in _ATOMS:
            value = _stored(value)
        self._data[key] = value
        journal = self._journal
        if journal is not None:
            journal.append((_set, self._image, (key, value)))

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        if self._journal is not None:
            self._journal.append((_delete, self._image, key))

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str, default: Any = None) -> Any:
        value = self._data.get(key, default)
        return deepcopy(value.value) if type(value) is _Copy else value

    def setdefault(self, key: str, default: Any) -> Any:
        """``self[key]``, after writing ``default`` there if ``key`` is absent."""
        if key not in self._data:
            self[key] = default
        return self[key]

    def __repr__(self) -> str:
        return f"Durable({self._data!r})"

    # -- the disk's side -----------------------------------------------------------------

    @property
    def dirty(self) -> bool:
        """Whether some write is not durable yet (a sync would have something to do)."""
        return bool(self._journal)

    def mark(self) -> int:
        """What a sync issued now covers: the sequence number of the last write made."""
        journal = self._journal
        return self._base if journal is None else self._base + len(journal)

    def persist(self, mark: int) -> None:
        """Make every write up to ``mark`` durable (a sync or a writeback completed).

        Marks older than the durable watermark, and marks issued before a crash, make
        nothing more durable.
        """
        journal = self._journal
        count = mark - self._base
        if count <= 0 or journal is None:
            return
        if count >= len(journal):
            count = len(journal)
            records = journal[:]
            journal.clear()
        else:
            records = journal[:count]
            del journal[:count]
        self._base += count
        for fn, target, arg in records:
            fn(target, arg)

    def lose_unsynced(self) -> None:
        """A crash: roll back to the durable writes; a later persist of an older mark is void."""
        journal = self._journal
        if journal is None:
            return
        self._base += len(journal)
        journal.clear()
        self._data = dict(self._image)
        for log in self._logs.values():
            log._roll_back()


class Disk:
    """One container's disk: how long a sync takes and whether it tells the truth."""

    def __init__(self, spec: DiskSpec, rng):
        self.spec = spec
        self.lies = spec.lies
        self.instant = (
            isinstance(spec.sync, Constant)
            and spec.sync.value + spec.sync.shift == 0
            and not spec.lies
        )
        self._draws = draws(spec.sync, rng)

    def sync_delay(self) -> float:
        """Seconds the next sync takes."""
        return next(self._draws)
