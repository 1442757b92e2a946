"""Operation histories: events in columns in memory, JSON lines on disk.

A history is a sequence of events, one per line of ``history.jsonl``::

    {"process": 3, "type": "invoke", "f": "write", "key": "k1", "value": 7,
     "time": 1.25, "client": "c2", "zone": "a", "node": "n1", "shard": 0}

``type`` is ``invoke`` when an operation starts and ``ok``, ``fail`` or ``info`` when it
ends: ``ok`` took effect, ``fail`` certainly did not, ``info`` is indeterminate (a client
timeout) and may take effect at any time after its invocation, or never. A timeout is
never ``fail``. ``f`` is ``read``, ``write``, ``cas`` or ``add``; a CAS ``value`` is
``[expected, new]``; registers start as null; a ``set`` read returns a sorted list.

Optional keys: ``error`` (why an operation failed or is indeterminate; a CAS that compared
false fails with ``"mismatch"``), ``final: true`` (the final read phase, reported apart),
``side`` (``"majority"`` or ``"minority"``: the client's side of a partition in force
when the operation was invoked).

A logical client thread (``process``) has at most one operation open at a time, so every
completion belongs to the process's latest invocation.

In memory a :class:`History` stores each field as a column (``array`` while recording,
numpy arrays for analysis) so that a million operations fit comfortably.
"""

from __future__ import annotations

import io
import json
import math
import os
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from capsim.errors import CapsimError

__all__ = [
    "History",
    "Operations",
    "HistoryError",
    "TYPES",
    "FUNCTIONS",
    "SIDES",
    "INVOKE",
    "OK",
    "FAIL",
    "INFO",
]

TYPES = ("invoke", "ok", "fail", "info")
INVOKE, OK, FAIL, INFO = range(4)
FUNCTIONS = ("read", "write", "cas", "add")
READ, WRITE, CAS, ADD = range(4)
SIDES = (None, "majority", "minority")
_TYPE_CODE = {name: i for i, name in enumerate(TYPES)}
_F_CODE = {name: i for i, name in enumerate(FUNCTIONS)}
_SIDE_CODE = {"majority": 1, "minority": 2}


class HistoryError(CapsimError):
    """A history file or event that does not follow the format."""


class Names:
    """An interning table: strings to small ints and back."""

    __slots__ = ("names", "codes")

    def __init__(self, names: list[str] | None = None):
        self.names: list[str] = []
        self.codes: dict[str, int] = {}
        for name in names or []:
            self.code(name)

    def code(self, name: str) -> int:
        """The code of ``name``, assigning the next one on first sight."""
        code = self.codes.get(name)
        if code is None:
            code = self.codes[name] = len(self.names)
            self.names.append(name)
        return code

    def __len__(self) -> int:
        return len(self.names)


class History:
    """Operation events in columns, appended in time order.

    Strings (keys, clients, zones, nodes) are interned: ``keys``, ``clients``, ``zones``
    and ``nodes`` map them to the small ints stored in the columns.
    """

    def __init__(self) -> None:
        self.process = array("q")
        self.type = array("b")
        self.f = array("b")
        self.key = array("l")
        self.value: list[Any] = []
        self.time = array("d")
        self.client = array("l")
        self.zone = array("l")
        self.node = array("l")
        self.shard = array("l")
        self.final = array("b")
        self.side = array("b")
        self.errors: dict[int, str] = {}
        self.keys = Names()
        self.clients = Names()
        self.zones = Names()
        self.nodes = Names()

    def __len__(self) -> int:
        return len(self.type)

    def append_codes(
        self,
        process: int,
        type_: int,
        f: int,
        key: int,
        value: Any,
        time: float,
        client: int,
        zone: int,
        node: int,
        shard: int,
        final: int = 0,
        side: int = 0,
        error: str | None = None,
    ) -> None:
        """Append one event whose strings are already codes (the simulator's fast path)."""
        if error is not None:
            self.errors[len(self.type)] = error
        self.process.append(process)
        self.type.append(type_)
        self.f.append(f)
        self.key.append(key)
        self.value.append(value)
        self.time.append(time)
        self.client.append(client)
        self.zone.append(zone)
        self.node.append(node)
        self.shard.append(shard)
        self.final.append(final)
        self.side.append(side)

    def append(
        self,
        *,
        process: int,
        type: str,
        f: str,
        key: str,
        value: Any = None,
        time: float,
        client: str = "",
        zone: str = "",
        node: str = "",
        shard: int = 0,
        final: bool = False,
        side: str | None = None,
        error: str | None = None,
    ) -> None:
        """Append one event given as names (checked); see the module docstring."""
        try:
            type_code = _TYPE_CODE[type]
            f_code = _F_CODE[f]
        except KeyError as exc:
            raise HistoryError(f"unknown event field value {exc.args[0]!r}") from None
        if side is not None and side not in _SIDE_CODE:
            raise HistoryError(f"unknown side {side!r}; expected 'majority' or 'minority'")
        self.append_codes(
            process,
            type_code,
            f_code,
            self.keys.code(key),
            value,
            float(time),
            self.clients.code(client),
            self.zones.code(zone),
            self.nodes.code(node),
            shard,
            1 if final else 0,
            _SIDE_CODE.get(side, 0) if side else 0,
            error,
        )

    def event(self, i: int) -> dict[str, Any]:
        """Event ``i`` as the dict written to a JSON line."""
        out: dict[str, Any] = {
            "process": self.process[i],
            "type": TYPES[self.type[i]],
            "f": FUNCTIONS[self.f[i]],
            "key": self.keys.names[self.key[i]],
            "value": self.value[i],
            "time": self.time[i],
            "client": self.clients.names[self.client[i]],
            "zone": self.zones.names[self.zone[i]],
            "node": self.nodes.names[self.node[i]],
            "shard": self.shard[i],
        }
        error = self.errors.get(i)
        if error is not None:
            out["error"] = error
        if self.final[i]:
            out["final"] = True
        if self.side[i]:
            out["side"] = SIDES[self.side[i]]
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self.event(i)

    def to_jsonl(self, path: str | os.PathLike | io.TextIOBase) -> None:
        """Write one JSON object per event, in order, to ``path`` (a path or a text file)."""
        if isinstance(path, io.TextIOBase):
            self._write(path)
            return
        with open(path, "w", encoding="utf-8") as out:
            self._write(out)

    def _write(self, out) -> None:
        dumps = json.JSONEncoder(separators=(", ", ": "), allow_nan=False).encode
        batch: list[str] = []
        for i in range(len(self)):
            batch.append(dumps(self.event(i)))
            if len(batch) >= 4096:
                out.write("\n".join(batch) + "\n")
                batch.clear()
        if batch:
            out.write("\n".join(batch) + "\n")

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike) -> History:
        """Read a history written by :meth:`to_jsonl` (or by hand in the same format).

        Raises :class:`HistoryError` naming the file and line of the first bad event.
        """
        history = cls()
        try:
            handle = open(path, encoding="utf-8")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise HistoryError(f"{path}: cannot read: {exc.strerror}") from None
        with handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise HistoryError(
                        f"{path}:{number}: not a JSON object ({exc.msg}); is the file truncated?"
                    ) from None
                try:
                    history.append_event(event)
                except HistoryError as exc:
                    raise HistoryError(f"{path}:{number}: {exc}") from None
        return history

    def append_event(self, event: Any) -> None:
        """Append one event given as a dict in the JSON-lines format (checked)."""
        if not isinstance(event, dict):
            raise HistoryError("an event must be a JSON object")
        missing = [k for k in ("process", "type", "f", "time") if k not in event]
        if missing:
            raise HistoryError(f"event lacks {', '.join(repr(m) for m in missing)}")
        process, time = event["process"], event["time"]
        if not isinstance(process, int) or isinstance(process, bool):
            raise HistoryError(f"'process' must be an integer, got {process!r}")
        if not isinstance(time, int | float) or isinstance(time, bool) or not math.isfinite(time):
            raise HistoryError(f"'time' must be a finite number, got {time!r}")
        self.append(
            process=process,
            type=event["type"],
            f=event["f"],
            key=str(event.get("key", "")),
            value=event.get("value"),
            time=time,
            client=str(event.get("client", "")),
            zone=str(event.get("zone", "")),
            node=str(event.get("node", "")),
            shard=int(event.get("shard", 0)),
            final=bool(event.get("final", False)),
            side=event.get("side"),
            error=event.get("error"),
        )

    def operations(self) -> Operations:
        """Pair every invocation with its completion; see :class:`Operations`.

        An invocation never completed counts as ``info`` with ``complete_time`` infinite.
        Raises :class:`HistoryError` on a completion without an open invocation or a
        process with two operations open at once.
        """
        n_events = len(self)
        types = np.frombuffer(self.type, dtype=np.int8) if n_events else np.zeros(0, np.int8)
        n_ops = int((types == INVOKE).sum())
        invoke_index = np.empty(n_ops, dtype=np.int64)
        complete_index = np.full(n_ops, -1, dtype=np.int64)
        open_ops: dict[int, int] = {}
        op = 0
        process = self.process
        for i in range(n_events):
            t = types[i]
            p = process[i]
            if t == INVOKE:
                if p in open_ops:
                    raise HistoryError(
                        f"event {i + 1}: process {p} invokes while its operation from event "
                        f"{invoke_index[open_ops[p]] + 1} is still open"
                    )
                open_ops[p] = op
                invoke_index[op] = i
                op += 1
            else:
                j = open_ops.pop(p, None)
                if j is None:
                    raise HistoryError(
                        f"event {i + 1}: process {p} completes an operation it never invoked"
                    )
                if self.f[i] != self.f[invoke_index[j]]:
                    raise HistoryError(
                        f"event {i + 1}: process {p} completes a {FUNCTIONS[self.f[i]]} "
                        f"but invoked a {FUNCTIONS[self.f[invoke_index[j]]]}"
                    )
                complete_index[j] = i
        return Operations._build(self, invoke_index, complete_index)


@dataclass(frozen=True, eq=False)
class Operations:
    """One row per operation: an invocation paired with its completion, in numpy columns.

    ``type`` is the outcome (``OK``, ``FAIL`` or ``INFO``); ``value`` is what the client
    asked for (the invocation's value) and ``output`` what came back (the completion's).
    ``complete_time`` is ``inf`` for an operation that never completed.
    """

    history: History
    invoke_index: np.ndarray
    complete_index: np.ndarray
    process: np.ndarray
    f: np.ndarray
    key: np.ndarray
    type: np.ndarray
    invoke_time: np.ndarray
    complete_time: np.ndarray
    client: np.ndarray
    zone: np.ndarray
    node: np.ndarray
    shard: np.ndarray
    final: np.ndarray
    side: np.ndarray

    @classmethod
    def _build(cls, h: History, inv: np.ndarray, comp: np.ndarray) -> Operations:
        def col(arr, dtype):
            a = np.frombuffer(arr, dtype=dtype) if len(arr) else np.zeros(0, dtype)
            return a

        types = col(h.type, np.int8)
        times = col(h.time, np.float64)
        done = comp >= 0
        safe = np.where(done, comp, 0)
        outcome = np.where(done, types[safe] if len(types) else 0, INFO).astype(np.int8)
        complete_time = np.where(done, times[safe] if len(times) else 0.0, math.inf)
        return cls(
            history=h,
            invoke_index=inv,
            complete_index=comp,
            process=col(h.process, np.int64)[inv],
            f=col(h.f, np.int8)[inv],
            key=col(h.key, np.int64)[inv],
            type=outcome,
            invoke_time=times[inv],
            complete_time=complete_time,
            client=col(h.client, np.int64)[inv],
            zone=col(h.zone, np.int64)[inv],
            node=col(h.node, np.int64)[inv],
            shard=col(h.shard, np.int64)[inv],
            final=col(h.final, np.int8)[inv].astype(bool),
            side=col(h.side, np.int8)[inv],
        )

    def __len__(self) -> int:
        return len(self.invoke_index)

    def value(self, i: int) -> Any:
        """Operation ``i``'s invocation value."""
        return self.history.value[self.invoke_index[i]]

    def output(self, i: int) -> Any:
        """Operation ``i``'s completion value (``None`` if it never completed)."""
        j = self.complete_index[i]
        return self.history.value[j] if j >= 0 else None

    def error(self, i: int) -> str | None:
        """Why operation ``i`` failed or is indeterminate, if the history says."""
        j = self.complete_index[i]
        return self.history.errors.get(int(j)) if j >= 0 else None

    def key_name(self, i: int) -> str:
        return self.history.keys.names[self.key[i]]
