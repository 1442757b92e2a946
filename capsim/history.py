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

Reading a file is strict, since histories come from other tools and by hand: each line is
one JSON object of at most 1 MiB (``MAX_LINE_BYTES``) with each key once, values nested at
most 100 deep (``MAX_VALUE_DEPTH``), only finite numbers (no ``NaN`` or ``Infinity``),
every field of the type above (``process`` a 64-bit integer, ``key``, ``client``, ``zone``
and ``node`` text or integers, ``shard`` a non-negative integer, ``final`` a boolean,
``error`` text), and every completion after an invocation of the same function by the
same process. The first line that breaks a rule is named in the error. (What a value must
be for a model, such as a CAS's ``[expected, new]``, the checker's readers check.)

In memory a :class:`History` stores each field as a column (``array`` while recording,
numpy arrays for analysis) so that a million operations fit comfortably.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from capsim.errors import CapsimError
from capsim.schema import echo, open_input

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
    "MAX_LINE_BYTES",
    "MAX_VALUE_DEPTH",
    "input_lines",
    "check_value",
]

#: The longest line a history file may have, in bytes (its newline included).
MAX_LINE_BYTES = 1 << 20
#: How deeply an operation's value may nest lists and mappings.
MAX_VALUE_DEPTH = 100
_INT64 = 2**63
_MAX_SHARD = 2**31

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
        self.key = array("q")
        self.value: list[Any] = []
        self.time = array("d")
        self.client = array("q")
        self.zone = array("q")
        self.node = array("q")
        self.shard = array("q")
        self.final = array("b")
        self.side = array("b")
        self.errors: dict[int, str] = {}
        self.lines: array | None = None  # each event's line, for a history read from a file
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
        type_code = _TYPE_CODE.get(type) if isinstance(type, str) else None
        f_code = _F_CODE.get(f) if isinstance(f, str) else None
        if type_code is None or f_code is None:
            bad = type if type_code is None else f
            raise HistoryError(f"unknown event field value {echo(bad)}")
        if side is not None and (not isinstance(side, str) or side not in _SIDE_CODE):
            raise HistoryError(f"unknown side {echo(side)}; expected 'majority' or 'minority'")
        if not isinstance(process, int) or not -_INT64 <= process < _INT64:
            raise HistoryError(f"'process' must be a 64-bit integer, got {echo(process)}")
        if not isinstance(shard, int) or not 0 <= shard < _MAX_SHARD:
            raise HistoryError(f"'shard' must be an integer from 0 to 2**31 - 1, got {echo(shard)}")
        time = _finite_time(time)
        self._append_named(
            process, type_code, f_code, key, value, time, client, zone, node, shard, final,
            side, error,
        )  # fmt: skip

    def _append_named(
        self, process, type_code, f_code, key, value, time, client, zone, node, shard, final,
        side, error,
    ) -> None:  # fmt: skip
        """Append a checked event whose strings are names: intern them, then append."""
        self.append_codes(
            process,
            type_code,
            f_code,
            self.keys.code(key),
            value,
            time,
            self.clients.code(client),
            self.zones.code(zone),
            self.nodes.code(node),
            shard,
            1 if final else 0,
            _SIDE_CODE[side] if side is not None else 0,
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

        Raises :class:`HistoryError` naming the file and line of the first bad event
        (``"h.jsonl:7: ..."``); see the module docstring for the rules. A pipe is read as
        it comes, each line at most ``MAX_LINE_BYTES`` long.
        """
        source = os.fspath(path)

        def fail(message: str) -> HistoryError:
            return HistoryError(f"{source}: {message}")

        with open_input(source, fail) as handle:
            return cls.from_lines(input_lines(handle, source, HistoryError), source)

    @classmethod
    def from_lines(cls, lines: Iterable[tuple[int, bytes]], source: str) -> History:
        """A history from ``(line number, line bytes)`` pairs of a JSON-lines file.

        As :meth:`from_jsonl`, which reads the pairs from a file; errors name ``source``.
        """
        history = cls()
        history.lines = array("q")
        open_ops: dict[int, tuple[int, int]] = {}  # process -> (function code, line)
        decode = _DECODER.decode
        for number, raw in lines:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise HistoryError(
                    f"{source}:{number}: not UTF-8 text (byte {exc.start + 1} of the line "
                    f"is {raw[exc.start]:#04x})"
                ) from None
            if not text.strip():
                continue
            try:
                event = decode(text)
                if "\\u" in text and _SURROGATE.search(text):
                    _check_characters(event)
                history.append_event(event)
            except json.JSONDecodeError as exc:
                raise HistoryError(
                    f"{source}:{number}: not a JSON object ({exc.msg}); is the file truncated?"
                ) from None
            except HistoryError as exc:
                raise HistoryError(f"{source}:{number}: {exc}") from None
            except RecursionError:
                raise HistoryError(
                    f"{source}:{number}: nested deeper than {MAX_VALUE_DEPTH} levels"
                ) from None
            except ValueError:  # an integer of more digits than Python converts
                raise HistoryError(
                    f"{source}:{number}: an integer has too many digits to read"
                ) from None
            history.lines.append(number)
            i = len(history.type) - 1
            process, f_code = history.process[i], history.f[i]
            if history.type[i] == INVOKE:
                opened = open_ops.get(process)
                if opened is not None:
                    raise HistoryError(
                        f"{source}:{number}: process {process} invokes while its operation "
                        f"from line {opened[1]} is still open"
                    )
                open_ops[process] = (f_code, number)
            else:
                opened = open_ops.pop(process, None)
                if opened is None:
                    raise HistoryError(
                        f"{source}:{number}: process {process} completes a "
                        f"{FUNCTIONS[f_code]} it never invoked"
                    )
                if opened[0] != f_code:
                    raise HistoryError(
                        f"{source}:{number}: process {process} completes a {FUNCTIONS[f_code]} "
                        f"but invoked a {FUNCTIONS[opened[0]]} on line {opened[1]}"
                    )
        return history

    def append_event(self, event: Any) -> None:
        """Append one event given as a dict in the JSON-lines format (checked)."""
        if type(event) is not dict:
            raise HistoryError(f"an event must be a JSON object, got {echo(event)}")
        try:
            process, type_, f, time = event["process"], event["type"], event["f"], event["time"]
        except KeyError:
            missing = [k for k in ("process", "type", "f", "time") if k not in event]
            raise HistoryError(f"event lacks {', '.join(repr(m) for m in missing)}") from None
        if type(process) is not int or not -_INT64 <= process < _INT64:
            raise HistoryError(f"'process' must be an integer (64-bit), got {echo(process)}")
        type_code = _TYPE_CODE.get(type_) if type(type_) is str else None
        if type_code is None:
            raise HistoryError(f"'type' must be one of {', '.join(TYPES)}; got {echo(type_)}")
        f_code = _F_CODE.get(f) if type(f) is str else None
        if f_code is None:
            raise HistoryError(f"'f' must be one of {', '.join(FUNCTIONS)}; got {echo(f)}")
        if type(time) is not float or not -math.inf < time < math.inf:
            if type(time) is not int and type(time) is not float:
                raise HistoryError(f"'time' must be a finite number, got {echo(time)}")
            time = _finite_time(time)
        get = event.get
        key, client, zone, node = (
            get("key", ""),
            get("client", ""),
            get("zone", ""),
            get("node", ""),
        )
        if not (type(key) is type(client) is type(zone) is type(node) is str):
            key, client, zone, node = (
                _name(event, name) for name in ("key", "client", "zone", "node")
            )
        shard = get("shard", 0)
        if type(shard) is not int or not 0 <= shard < _MAX_SHARD:
            raise HistoryError(f"'shard' must be an integer from 0 to 2**31 - 1, got {echo(shard)}")
        final = get("final", False)
        if type(final) is not bool:
            raise HistoryError(f"'final' must be true or false, got {echo(final)}")
        side = get("side")
        if side is not None and (type(side) is not str or side not in _SIDE_CODE):
            raise HistoryError(f"'side' must be 'majority', 'minority' or null, got {echo(side)}")
        error = get("error")
        if error is not None and type(error) is not str:
            raise HistoryError(f"'error' must be text, got {echo(error)}")
        value = get("value")
        if type(value) is list or type(value) is dict:
            check_value(value)
        self._append_named(
            process, type_code, f_code, key, value, time, client, zone, node, shard, final,
            side, error,
        )  # fmt: skip

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


def input_lines(
    handle: io.BufferedIOBase, source: str, error: type[CapsimError] = CapsimError
) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` for each line of ``handle``, each at most ``MAX_LINE_BYTES``.

    A longer line (``/dev/zero``, a binary file) raises ``error`` naming ``source`` and the
    line, having read no more than the limit of it.
    """
    number = 0
    while True:
        try:
            line = handle.readline(MAX_LINE_BYTES + 1)
        except OSError as exc:
            raise error(f"{source}: cannot read: {exc.strerror or exc}") from None
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES:
            raise error(
                f"{source}:{number}: the line is longer than {MAX_LINE_BYTES >> 20} MiB, "
                "the most capsim reads; is this a history file?"
            )
        yield number, line


def check_value(value: Any, limit: int = MAX_VALUE_DEPTH) -> None:
    """Raise :class:`HistoryError` if ``value`` nests lists and mappings deeper than
    ``limit`` or holds a number that is not finite (NaN, infinity)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise HistoryError(f"a value must be a finite number, got {value!r}")
        return
    if not isinstance(value, list | tuple | dict | frozenset | set):
        return
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > limit:
            raise HistoryError(f"a value is nested deeper than {limit} levels")
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, list | tuple | dict | frozenset | set):
                pending.append((child, depth + 1))
            elif isinstance(child, float) and not math.isfinite(child):
                raise HistoryError(f"a value must hold finite numbers, got {child!r}")
        if isinstance(item, dict):
            for key in item:
                if isinstance(key, tuple | frozenset):
                    pending.append((key, depth + 1))


def _name(event: dict, field: str) -> str:
    value = event.get(field, "")
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise HistoryError(f"'{field}' must be text, got {echo(value)}")


def _finite_time(time: Any) -> float:
    try:
        seconds = float(time)
    except (TypeError, ValueError, OverflowError):
        raise HistoryError(f"'time' must be a finite number, got {echo(time)}") from None
    if not math.isfinite(seconds):
        raise HistoryError(f"'time' must be a finite number, got {echo(time)}")
    return seconds


_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _check_characters(event: Any) -> None:
    """JSON's ``\\u`` escapes can leave half of a UTF-16 surrogate pair, which is no
    character: it could be neither printed nor written as UTF-8."""
    try:
        json.dumps(event, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise HistoryError("a \\u escape gives half of a surrogate pair, not a character") from None


def _no_constants(name: str) -> Any:
    raise HistoryError(f"{name} is not a number JSON allows; values must be finite")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise HistoryError(f"the number {echo(text)} is too large to represent")
    return number


_DECODER = json.JSONDecoder(parse_constant=_no_constants, parse_float=_finite_float)


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

    def answered_by(self, i: int) -> str | None:
        """The container that answered operation ``i`` (``None`` if it never completed);
        ``node`` holds the one it entered by."""
        j = self.complete_index[i]
        return self.history.nodes.names[self.history.node[j]] if j >= 0 else None

    def key_name(self, i: int) -> str:
        return self.history.keys.names[self.key[i]]
