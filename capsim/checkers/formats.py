"""History file formats: reading capsim, Porcupine and Knossos histories, and converting.

Formats (``FORMATS``), with the rules that turn their events into :class:`Op`:

``jsonl``
    capsim's own JSON lines (see :mod:`capsim.history`). ``fail`` did not happen, except a
    CAS with ``"error": "mismatch"``, which ran and compared false; ``info`` and never
    completed operations may take effect at any time after their invocation, or never.
``porcupine-etcd``
    Jepsen etcd logs as in Porcupine's ``test_data/jepsen``: lines
    ``INFO  jepsen.util - <process> :<type> :<f> <value>`` split on any whitespace; other
    lines are ignored. ``:fail :cas`` ran and compared false (Porcupine's etcd model);
    ``:fail :read`` (a timeout) constrains nothing; ``:info`` leaves the operation open.
    ``:ok :read nil`` means the register was never written (initially nil).
``porcupine-kv``
    Porcupine's ``test_data/kv`` logs: one EDN map per line with ``:process :type :f :key
    :value``; ``get`` returns the current string, ``put`` replaces it, ``append`` appends.
``knossos-edn``
    Knossos's ``data/`` files: one EDN vector or list of operation maps (or, as Jepsen writes
    ``history.edn``, one map per line). Entries whose ``:process`` is not an integer (the
    nemesis) are ignored. The ``:ok`` value replaces the invocation's; ``:fail`` operations
    did not happen (whatever their ``:error``); a read that returned ``nil`` is unconstrained.

Real-time order is the order of events in the file (line order), never the timestamps:
Knossos files carry ``:time`` values that are not monotonic. Timestamps (or, without them,
line numbers) are kept for display only.

Every reader is strict about what it cannot use and names the file and line of the first
problem (a ``FormatError``): text that is not UTF-8, a ``jsonl`` line longer than 1 MiB,
another format's file larger than ``MAX_TEXT_BYTES`` (16 MiB) or holding more than a
million EDN values, values nested deeper than 100 or holding NaN or infinity, a process
that completes what it never invoked, a CAS value that is not ``[expected new]``, a set
read that returns no collection, a transaction step that is not ``[f key value]``.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from capsim.checkers import edn
from capsim.checkers.edn import Keyword
from capsim.checkers.errors import FormatError
from capsim.checkers.operations import Op, freeze, thaw
from capsim.history import (
    FUNCTIONS,
    MAX_LINE_BYTES,
    History,
    HistoryError,
    Operations,
    check_value,
    input_lines,
)
from capsim.schema import echo, open_input

__all__ = [
    "FORMATS",
    "WRITABLE_FORMATS",
    "FORMAT_MODELS",
    "detect_format",
    "read_operations",
    "operations_from_history",
    "write_operations",
    "infer_model",
    "MAX_TEXT_BYTES",
]

#: The largest history capsim reads in a format other than ``jsonl`` (which it streams).
MAX_TEXT_BYTES = 16 << 20
_INT64 = 2**63

FORMATS = ("jsonl", "porcupine-etcd", "porcupine-kv", "knossos-edn")
WRITABLE_FORMATS = ("jsonl", "knossos-edn", "porcupine-kv")
# Formats that imply a model; the others are inferred from the operations they hold.
FORMAT_MODELS = {"porcupine-etcd": "cas-register", "porcupine-kv": "kv"}
_TYPES = ("invoke", "ok", "fail", "info")


def _sniff(text: str, source: str, line: int = 1) -> str | None:
    """The format of a file whose first meaningful line (number ``line``) is ``text``;
    ``None`` if ``text`` is blank or a comment."""
    stripped = text.strip()
    if not stripped or stripped.startswith(";"):
        return None
    if "jepsen.util" in stripped:
        return "porcupine-etcd"
    if stripped[0] in "[(":
        return "knossos-edn"
    if stripped.startswith('{"') or stripped.startswith('{ "'):
        return "jsonl"
    if stripped.startswith("{"):
        return "porcupine-kv" if re.search(r"[{\s,]:key[\s,]", stripped) else "knossos-edn"
    raise FormatError(
        f"{source}:{line}: cannot tell the history format from its first line "
        f"{echo(stripped, 60)}; give one of {', '.join(FORMATS)}"
    )


def _tell_format(handle: io.BufferedIOBase, head: list[bytes], source: str) -> str:
    """Read lines from ``handle`` into ``head`` up to the first meaningful one; its format."""
    read = 0
    while True:
        try:
            line = handle.readline(MAX_LINE_BYTES + 1)
        except OSError as exc:
            raise FormatError(f"{source}: cannot read: {exc.strerror or exc}") from None
        if not line:
            raise FormatError(
                f"{source}: the file is empty, so its format cannot be told; give one"
            )
        head.append(line)
        read += len(line)
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            if len(line) <= MAX_LINE_BYTES or exc.start < len(line) - 4:
                raise FormatError(
                    f"{source}:{len(head)}: not UTF-8 text (byte {exc.start + 1} of the line "
                    f"is {line[exc.start]:#04x})"
                ) from None
            text = line[: exc.start].decode("utf-8")  # a long line cut inside a character
        fmt = _sniff(text[:4096], source, len(head))
        if fmt is not None:
            return fmt
        if read > MAX_LINE_BYTES:
            raise FormatError(
                f"{source}: no history in the first {MAX_LINE_BYTES >> 20} MiB (only blank "
                "lines and comments); give the format"
            )


def _numbered(
    head: list[bytes], handle: io.BufferedIOBase, source: str
) -> Iterator[tuple[int, bytes]]:
    """``(number, line)`` for the lines in ``head``, then for the rest of ``handle``."""
    for number, line in enumerate(head, 1):
        if len(line) > MAX_LINE_BYTES:
            raise FormatError(
                f"{source}:{number}: the line is longer than {MAX_LINE_BYTES >> 20} MiB, the "
                "most capsim reads; is this a history file?"
            )
        yield number, line
    for number, line in input_lines(handle, source, FormatError):
        yield number + len(head), line


def _read_rest(head: list[bytes], handle: io.BufferedIOBase, source: str) -> str:
    """The whole text: ``head`` then the rest of ``handle``, at most ``MAX_TEXT_BYTES``."""
    start = b"".join(head)
    try:
        rest = handle.read(max(0, MAX_TEXT_BYTES + 1 - len(start)))
    except OSError as exc:
        raise FormatError(f"{source}: cannot read: {exc.strerror or exc}") from None
    if len(start) + len(rest) > MAX_TEXT_BYTES:
        raise FormatError(
            f"{source}: the file is larger than {MAX_TEXT_BYTES >> 20} MiB, the most capsim "
            "reads in this format (capsim's jsonl has no limit)"
        )
    data = start + rest if start else rest
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise FormatError(
            f"{source}:{line}: not UTF-8 text (byte {column} of the line is {data[exc.start]:#04x})"
        ) from None


def _opened(path: str | os.PathLike) -> io.BufferedIOBase:
    source = str(path)
    return open_input(path, lambda message: FormatError(f"{source}: {message}"))


def detect_format(path: str | os.PathLike) -> str:
    """The format of the history file at ``path``, told from its content (not its name)."""
    with _opened(path) as handle:
        return _tell_format(handle, [], str(path))


def read_operations(path: str | os.PathLike, fmt: str | None = None) -> tuple[list[Op], str]:
    """The operations of the history file at ``path`` and its format (detected if ``None``).

    Raises :class:`FormatError` naming the file and line on unreadable or malformed input.
    """
    source = str(path)
    if fmt is not None and fmt not in FORMATS:
        raise FormatError(f"{source}: unknown format {echo(fmt)}; known: {', '.join(FORMATS)}")
    with _opened(path) as handle:
        head: list[bytes] = []
        if fmt is None:
            fmt = _tell_format(handle, head, source)
        if fmt == "jsonl":
            try:
                history = History.from_lines(_numbered(head, handle, source), source)
            except HistoryError as exc:  # already names the file and line
                raise FormatError(str(exc)) from None
            return _jsonl_operations(history, source), fmt
        text = _read_rest(head, handle, source)
    reader = {
        "porcupine-etcd": _read_etcd,
        "porcupine-kv": _read_kv,
        "knossos-edn": _read_knossos,
    }[fmt]
    ops = reader(text, source)
    _check_ops(ops, source, lambda op, done: op.ret if done else op.call)
    return ops, fmt


# --- capsim JSON lines ------------------------------------------------------------------


def _jsonl_operations(history: History, source: str) -> list[Op]:
    try:
        ops = operations_from_history(history)
    except HistoryError as exc:
        raise FormatError(f"{source}: {exc}") from None
    lines = history.lines

    def line_of(op: Op, done: bool) -> int:
        index = op.ret if done else op.call
        return lines[int(index)] if lines is not None and 0 <= index < len(lines) else index

    _check_ops(ops, source, line_of)
    return ops


def _check_ops(ops: Sequence[Op], source: str, line_of: Callable[[Op, bool], Any]) -> None:
    """Reject what no model could use: values the model of these operations would choke on.

    A CAS that may have taken effect (or compared false) needs ``[expected new]``; when the
    history has adds (a set), every ok read must return a collection; a transaction is a
    list of ``[f key value]`` steps.
    """
    is_set = any(op.f == "add" for op in ops)
    for op in ops:
        f = op.f
        if f == "cas" and (op.type != "fail" or op.error == "mismatch"):
            if not _is_pair(op.value):
                raise FormatError(
                    f"{source}:{line_of(op, False)}: a cas value must be [expected new], "
                    f"got {_shown(op.value)}"
                )
        elif f == "read" and is_set and op.type == "ok":
            if op.output is not None and not isinstance(op.output, tuple | frozenset):
                raise FormatError(
                    f"{source}:{line_of(op, True)}: a set read must return a list of "
                    f"elements, got {_shown(op.output)}"
                )
        elif f == "txn":
            for value, done in ((op.value, False), (op.output, True)):
                if value is not None and not _is_transaction(value):
                    raise FormatError(
                        f"{source}:{line_of(op, done)}: a transaction must be a list of "
                        f"[f key value] steps, got {_shown(value)}"
                    )


def _is_transaction(value: Any) -> bool:
    return isinstance(value, tuple) and all(
        isinstance(step, tuple) and len(step) == 3 and isinstance(step[0], str) for step in value
    )


def _shown(value: Any) -> str:
    """A value for a message: EDN-like, cut to about 80 characters."""
    try:
        text = edn.dumps(value)
    except (TypeError, RecursionError):
        text = echo(value)
    return text if len(text) <= 80 else text[:60] + f"... ({len(text)} characters)"


def operations_from_history(history: History | Operations) -> list[Op]:
    """The operations of a capsim :class:`~capsim.history.History`, in invocation order.

    Positions (``call``, ``ret``) are event indices; times are the events' ``time``. Given
    the history's :class:`~capsim.history.Operations` already paired, it uses them.
    """
    table = history if isinstance(history, Operations) else history.operations()
    ops = []
    names = FUNCTIONS
    types = _TYPES
    keys = table.history.keys.names
    for i in range(len(table)):
        done = table.complete_index[i] >= 0
        outcome = types[int(table.type[i])]
        ops.append(
            Op(
                process=int(table.process[i]),
                f=names[int(table.f[i])],
                value=freeze(table.value(i)),
                output=freeze(table.output(i)) if outcome == "ok" else None,
                type=outcome,
                call=int(table.invoke_index[i]),
                ret=int(table.complete_index[i]) if done else math.inf,
                key=keys[int(table.key[i])],
                error=table.error(i),
                call_time=float(table.invoke_time[i]),
                ret_time=float(table.complete_time[i]) if done else None,
            )
        )
    return ops


# --- pairing events into operations -----------------------------------------------------


class _Pairer:
    """Pairs invocations with completions per process, enforcing one open op per process."""

    def __init__(self, source: str):
        self.source = source
        self.open: dict[Any, tuple[int, dict[str, Any]]] = {}
        self.pairs: list[tuple[dict[str, Any], dict[str, Any] | None]] = []

    def add(self, event: dict[str, Any], line: int) -> None:
        process = event["process"]
        kind = event["type"]
        f = echo(event["f"], 40).strip("'")
        if kind == "invoke":
            if process in self.open:
                opened = self.open[process][1]["line"]
                raise FormatError(
                    f"{self.source}:{line}: process {process} invokes while its operation "
                    f"from line {opened} is still open"
                )
            event["line"] = line
            slot = len(self.pairs)
            self.pairs.append((event, None))
            self.open[process] = (slot, event)
            return
        if process not in self.open:
            raise FormatError(
                f"{self.source}:{line}: process {process} completes a {f} it never invoked"
            )
        slot, invocation = self.open.pop(process)
        if invocation["f"] != event["f"]:
            raise FormatError(
                f"{self.source}:{line}: process {process} completes a {f} but "
                f"invoked a {echo(invocation['f'], 40).strip(chr(39))} on line "
                f"{invocation['line']}"
            )
        event["line"] = line
        self.pairs[slot] = (invocation, event)


def _op_from_pair(
    invocation: dict[str, Any], completion: dict[str, Any] | None, *, knossos: bool = False
) -> Op:
    outcome = completion["type"] if completion is not None else "info"
    value = invocation.get("value")
    output = None
    error = None
    if completion is not None:
        error = completion.get("error")
        if outcome == "ok":
            output = completion.get("value")
            if knossos:
                value = output  # Knossos: the completion's value replaces the invocation's
    if knossos:
        if outcome == "fail" and error is not None:
            # Knossos drops every :fail; keep the error as EDN text so that no error value
            # can be mistaken for capsim's "mismatch" (a CAS that ran and compared false).
            error = edn.dumps(error)
        if outcome == "ok" and invocation["f"] == "read" and output is None:
            outcome = "info"  # a read of nil is unconstrained in Knossos
    return Op(
        process=invocation["process"],
        f=invocation["f"],
        value=freeze(value),
        output=freeze(output),
        type=outcome,
        call=invocation["line"],
        ret=completion["line"] if completion is not None else math.inf,
        key=invocation.get("key"),
        error=error,
        call_time=invocation.get("time", invocation["line"]),
        ret_time=(completion.get("time", completion["line"]) if completion else None),
    )


# --- Porcupine's Jepsen etcd logs -------------------------------------------------------

_ETCD_LINE = re.compile(r"INFO\s+jepsen\.util\s+-\s+(\S+)\s+:(\S+)\s+:(\S+)(?:\s+(.*?))?\s*$")


def _etcd_value(text: str | None, source: str, line: int) -> Any:
    if text is None or text == "" or text == "nil":
        return None
    if text.isdigit() and len(text) < 19:
        return int(text)
    try:
        value = edn.loads(text, f"{source}:{line}")
        check_value(value)
    except (FormatError, HistoryError) as exc:
        raise FormatError(f"{source}:{line}: malformed value {echo(text, 60)} ({exc})") from None
    return value


def _read_etcd(text: str, source: str) -> list[Op]:
    pairer = _Pairer(source)
    for number, line in enumerate(text.splitlines(), 1):
        if "jepsen.util" not in line:
            continue
        m = _ETCD_LINE.match(line.strip())
        if m is None:
            raise FormatError(
                f"{source}:{number}: malformed Jepsen log line {echo(line.strip(), 80)}; "
                "is the file truncated?"
            )
        process_text, kind, f, value_text = m.groups()
        if not re.fullmatch(r"-?[0-9]{1,19}", process_text) or not (
            -_INT64 <= int(process_text) < _INT64
        ):
            raise FormatError(
                f"{source}:{number}: process must be a 64-bit integer, got {echo(process_text)}"
            )
        process = int(process_text)
        if kind not in _TYPES:
            raise FormatError(f"{source}:{number}: unknown event type :{echo(kind, 40)}")
        if f not in ("read", "write", "cas"):
            raise FormatError(
                f"{source}:{number}: unknown operation :{echo(f, 40)} (read, write, cas)"
            )
        value = _etcd_value(value_text, source, number)
        event = {"process": process, "type": kind, "f": f, "value": value}
        if kind == "fail":
            # Porcupine's etcd model: a failed CAS ran and compared false; a failed read
            # timed out and constrains nothing (the checker drops non-CAS failures).
            event["error"] = "mismatch" if f == "cas" else value
            event["value"] = None
        elif kind == "info":
            event["error"] = value
            event["value"] = None
        if f == "cas" and kind in ("invoke", "ok") and not _is_pair(value):
            raise FormatError(f"{source}:{number}: a cas value must be [expected new]")
        pairer.add(event, number)
    return [_op_from_pair(inv, comp) for inv, comp in pairer.pairs]


def _is_pair(value: Any) -> bool:
    return isinstance(value, tuple | list) and len(value) == 2


# --- Porcupine's kv logs ----------------------------------------------------------------


def _read_kv(text: str, source: str) -> list[Op]:
    pairer = _Pairer(source)
    for form, line, _ in edn.read_forms(text, source):
        event = _edn_event(form, source, line, need_key=True)
        if event is not None:
            pairer.add(event, line)
    return [_op_from_pair(inv, comp) for inv, comp in pairer.pairs]


def _edn_event(form: Any, source: str, line: int, need_key: bool = False) -> dict | None:
    """A Jepsen operation map as a plain event dict; ``None`` for nemesis entries."""
    if not isinstance(form, dict):
        raise FormatError(f"{source}:{line}: expected an operation map, got {_shown(form)}")
    missing = [k for k in ("process", "type", "f") if k not in form]
    if need_key and "key" not in form:
        missing.append("key")
    if missing:
        names = ", ".join(":" + k for k in missing)
        raise FormatError(f"{source}:{line}: operation map lacks {names}")
    process = form["process"]
    if not isinstance(process, int) or isinstance(process, bool):
        return None  # the nemesis (or another non-client actor): not an operation
    if not -_INT64 <= process < _INT64:
        raise FormatError(f"{source}:{line}: :process must be a 64-bit integer, got {process}")
    kind = form["type"]
    if not isinstance(kind, str) or kind not in _TYPES:
        raise FormatError(f"{source}:{line}: unknown :type {_shown(kind)}")
    f = form["f"]
    if not isinstance(f, str):
        raise FormatError(f"{source}:{line}: :f must be a keyword, got {_shown(f)}")
    value = form.get("value")
    try:
        for part in (value, form.get("key"), form.get("error")):
            check_value(part)
    except HistoryError as exc:
        raise FormatError(f"{source}:{line}: {exc}") from None
    event = {"process": process, "type": str(kind), "f": str(f), "value": value}
    if "key" in form:
        event["key"] = freeze(form["key"])
    if "error" in form:
        event["error"] = freeze(form["error"])
    for name in ("time", "index"):
        if name in form:
            event["time"] = _time(form[name], name, source, line)
            break
    return event


def _time(value: Any, name: str, source: str, line: int) -> int | float:
    """A ``:time`` or ``:index``: a number that converts to a finite float."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            if math.isfinite(float(value)):
                return value
        except OverflowError:
            pass
    raise FormatError(f"{source}:{line}: :{name} must be a finite number, got {_shown(value)}")


# --- Knossos EDN ------------------------------------------------------------------------


def _read_knossos(text: str, source: str) -> list[Op]:
    pairer = _Pairer(source)
    forms = list(edn.read_forms(text, source, child_offsets=True))
    if len(forms) == 1 and isinstance(forms[0][0], tuple):
        collection, _, lines = forms[0]
        entries: Iterable[tuple[Any, int]] = zip(collection, lines, strict=True)
    elif all(isinstance(form, dict) for form, _, _ in forms):
        entries = ((form, line) for form, line, _ in forms)
    else:
        raise FormatError(
            f"{source}: expected one vector or list of operation maps (or one map per line)"
        )
    for form, line in entries:
        event = _edn_event(form, source, line)
        if event is not None:
            pairer.add(event, line)
    return [_op_from_pair(inv, comp, knossos=True) for inv, comp in pairer.pairs]


# --- model inference --------------------------------------------------------------------


def infer_model(ops: Sequence[Op], fmt: str | None = None) -> str:
    """The model a history needs: implied by its format, else by the operations it holds.

    ``porcupine-etcd`` implies ``cas-register`` and ``porcupine-kv`` implies ``kv``;
    otherwise ``txn`` means ``multi-register``, ``acquire``/``release`` ``mutex``,
    ``get``/``put``/``append`` ``kv``, ``add`` ``set``, ``cas`` ``cas-register``, and plain
    reads and writes ``register``.
    """
    if fmt in FORMAT_MODELS:
        return FORMAT_MODELS[fmt]
    functions = {op.f for op in ops}
    if "txn" in functions:
        return "multi-register"
    if functions & {"acquire", "release"}:
        return "mutex"
    if functions & {"get", "put", "append"}:
        return "kv"
    if "add" in functions:
        return "set"
    if "cas" in functions:
        return "cas-register"
    return "register"


# --- writing ----------------------------------------------------------------------------


def _events_in_order(ops: Sequence[Op]) -> list[tuple[Op, bool]]:
    """``(op, is_completion)`` for every event of ``ops``, in real-time order.

    On equal positions invocations come first, so that touching operations stay concurrent.
    """
    events = []
    for index, op in enumerate(ops):
        events.append((op.call, 0, index, op, False))
        if not math.isinf(op.ret):
            events.append((op.ret, 1, index, op, True))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    return [(op, done) for _, _, _, op, done in events]


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _event_times(events: list[tuple[Op, bool]]) -> list[float]:
    """Each event's time: the ops' own times if they run forward, else event positions."""
    times = [op.shown_ret() if done else op.shown_call() for op, done in events]
    if all(_numeric(t) and math.isfinite(t) for t in times) and all(
        a <= b for a, b in zip(times, times[1:], strict=False)
    ):
        return [float(t) for t in times]
    return [float(i) for i in range(len(events))]


def write_operations(ops: Sequence[Op], path: str | os.PathLike, to: str, key: Any = None) -> int:
    """Write ``ops`` to ``path`` in format ``to``; return the number of events written.

    ``key`` keeps only that key's operations (Knossos files hold a single object).
    Raises :class:`FormatError` when the target cannot express the history; see
    :func:`capsim.checkers.convert` for what each conversion keeps.
    """
    if to not in WRITABLE_FORMATS:
        raise FormatError(f"cannot write {to!r}; writable formats: {', '.join(WRITABLE_FORMATS)}")
    if key is not None:
        ops = [op for op in ops if op.key == key or str(op.key) == str(key)]
    writer = {"jsonl": _write_jsonl, "knossos-edn": _write_knossos, "porcupine-kv": _write_kv}
    return writer[to](ops, str(path))


_JSONL_F = {"get": "read", "put": "write"}


def _write_jsonl(ops: Sequence[Op], path: str) -> int:
    history = History()
    events = _events_in_order(ops)
    times = _event_times(events)
    for (op, done), time in zip(events, times, strict=True):
        f = _JSONL_F.get(op.f, op.f)
        if f not in FUNCTIONS:
            raise FormatError(
                f"{path}: capsim's jsonl format has no {op.f!r} operation "
                f"(it has {', '.join(FUNCTIONS)})"
            )
        if not isinstance(op.process, int):
            raise FormatError(f"{path}: capsim's jsonl needs integer processes, got {op.process!r}")
        if done:
            kind = op.type
            value = thaw(op.output) if op.type == "ok" and f == "read" else thaw(op.value)
            error = None if op.error is None else str(op.error)
        else:
            kind, value, error = "invoke", (None if f == "read" else thaw(op.value)), None
        history.append(
            process=op.process,
            type=kind,
            f=f,
            key="" if op.key is None else str(op.key),
            value=value,
            time=time,
            error=error,
        )
    try:
        history.to_jsonl(path)
    except OSError as exc:
        raise FormatError(f"{path}: cannot write: {exc.strerror}") from None
    return len(history)


def _edn_error(error: Any) -> Any:
    if isinstance(error, str) and error.startswith(":"):
        try:
            return edn.loads(error)
        except FormatError:
            return error
    return Keyword(error) if isinstance(error, str) and re.fullmatch(r"[\w-]+", error) else error


def _write_knossos(ops: Sequence[Op], path: str) -> int:
    keys = sorted({str(op.key) for op in ops if op.key not in (None, "")})
    if len(keys) > 1:
        raise FormatError(
            f"{path}: a Knossos history holds one object but this one has keys "
            f"{', '.join(keys[:5])}{'...' if len(keys) > 5 else ''}; pass key= to pick one"
        )
    events = _events_in_order(ops)
    times = _event_times(events)
    lines = []
    for (op, done), time in zip(events, times, strict=True):
        if done:
            kind = op.type
            value = op.output if kind == "ok" and op.f in ("read", "txn") else op.value
        else:
            kind = "invoke"
            value = None if op.f == "read" else op.value
        entry = {
            Keyword("process"): op.process,
            Keyword("type"): Keyword(kind),
            Keyword("f"): Keyword(op.f),
            Keyword("value"): _edn_value(value),
            Keyword("time"): time,
        }
        if done and op.error is not None:
            entry[Keyword("error")] = _edn_error(op.error)
        lines.append(edn.dumps(entry))
    text = "[" + "\n ".join(lines) + "]\n"
    _write_text(path, text)
    return len(lines)


def _edn_value(value: Any) -> Any:
    # Transaction micro-operations name their function and register with keywords.
    if (
        isinstance(value, tuple)
        and value
        and all(isinstance(m, tuple) and len(m) == 3 and m[0] in ("read", "write") for m in value)
    ):
        return tuple((Keyword(m[0]), _keyword_if_name(m[1]), m[2]) for m in value)
    return value


def _keyword_if_name(value: Any) -> Any:
    return Keyword(value) if isinstance(value, str) else value


_KV_F = {"read": "get", "write": "put", "get": "get", "put": "put", "append": "append"}


def _kv_string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(thaw(value))


def _write_kv(ops: Sequence[Op], path: str) -> int:
    lines = []
    for op, done in _events_in_order(ops):
        f = _KV_F.get(op.f)
        if f is None:
            raise FormatError(f"{path}: porcupine-kv has no {op.f!r} (only get, put, append)")
        if op.type == "fail":
            continue  # it did not happen: leave it out altogether
        if done and op.type == "info":
            continue  # an invocation without completion may or may not have happened
        if done:
            value = _kv_string(op.output if f == "get" else op.value)
            kind = "ok"
        else:
            value = None if f == "get" else _kv_string(op.value)
            kind = "invoke"
        key = "" if op.key is None else str(op.key)
        # Porcupine's kv parser expects exactly this key order.
        lines.append(
            f"{{:process {edn.dumps(op.process)}, :type :{kind}, :f :{f}, "
            f":key {edn.dumps(key)}, :value {edn.dumps(value)}}}"
        )
    _write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def _write_text(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        raise FormatError(f"{path}: cannot write: {exc.strerror}") from None
