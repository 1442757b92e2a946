"""Durable state and the disk under it: what survives a crash, and when.

Each replica has a :class:`Durable` store (a dict and named append-only logs) that
survives a crash of its container, and each container has a :class:`Disk`. A write is
durable once a sync that covers it completes (``Node.sync``); until then a crash loses
it. The disk also writes everything back every ``writeback`` seconds, as an OS flushes
dirty pages. With the default disk, syncs take no time and every write is durable at
once, so the store behaves as a plain dict. A disk that *lies* acknowledges syncs without
making anything durable; only writeback does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from capsim.distributions import Constant, draws
from capsim.scenario import DiskSpec

__all__ = ["Durable", "DurableLog", "Disk"]

_DELETED = object()


class DurableLog(list):
    """An append-only log in durable state (a write-ahead log).

    A list: append, extend, index, slice and ``len`` as usual. Remove entries only with
    :meth:`truncate`. Entries should be immutable values (tuples, numbers, strings). A
    crash keeps the first ``synced`` entries and loses the rest.
    """

    __slots__ = ("synced",)

    def __init__(self) -> None:
        super().__init__()
        self.synced = 0

    def truncate(self, length: int) -> None:
        """Drop every entry from index ``length`` on."""
        del self[length:]
        if self.synced > length:
            self.synced = length

    def __repr__(self) -> str:
        return f"DurableLog({len(self)} entries, {self.synced} synced)"


class Durable:
    """A replica's durable state: a dict, and named logs, that survive crashes.

    Treat stored values as immutable: assign a new value rather than mutating one in
    place (``self.durable["term"] = term + 1``), as a program rewrites a file. For data
    that grows, use :meth:`log`. Reads see every write at once; a crash rolls the store
    back to what was synced (see the module docstring).
    """

    __slots__ = ("_data", "_logs", "_synced", "_journal", "_applied", "_tracking")

    def __init__(self, tracking: bool = False) -> None:
        self._data: dict[str, Any] = {}
        self._logs: dict[str, DurableLog] = {}
        self._synced: dict[str, Any] = {}
        self._journal: list[tuple[str, Any]] = []
        self._applied = 0
        self._tracking = tracking  # False: an instant disk, every write durable at once

    def log(self, name: str) -> DurableLog:
        """The durable log called ``name`` (created empty on first use)."""
        log = self._logs.get(name)
        if log is None:
            log = self._logs[name] = DurableLog()
        return log

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value
        if self._tracking:
            self._journal.append((key, value))

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        if self._tracking:
            self._journal.append((key, _DELETED))

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def setdefault(self, key: str, default: Any) -> Any:
        if key not in self._data:
            self[key] = default
        return self._data[key]

    def __repr__(self) -> str:
        return f"Durable({self._data!r})"

    # -- the disk's side -----------------------------------------------------------------

    def mark(self) -> tuple[int, dict[str, int]]:
        """What a sync issued now covers: the journal position and each log's length."""
        return len(self._journal), {name: len(log) for name, log in self._logs.items()}

    def persist(self, mark: tuple[int, dict[str, int]]) -> None:
        """Make everything up to ``mark`` durable (a sync or a writeback completed)."""
        position, lengths = mark
        if position > self._applied:
            synced = self._synced
            for key, value in self._journal[self._applied : position]:
                if value is _DELETED:
                    synced.pop(key, None)
                else:
                    synced[key] = value
            self._applied = position
            if self._applied == len(self._journal):
                self._journal.clear()
                self._applied = 0
        for name, length in lengths.items():
            log = self._logs[name]
            log.synced = max(log.synced, min(length, len(log)))

    def lose_unsynced(self) -> None:
        """A crash: roll back to what is durable."""
        if not self._tracking:
            return
        self._data = dict(self._synced)
        self._journal.clear()
        self._applied = 0
        for log in self._logs.values():
            del log[log.synced :]


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
