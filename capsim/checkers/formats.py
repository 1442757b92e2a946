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
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

from capsim.checkers import edn
from capsim.checkers.edn import Keyword
from capsim.checkers.errors import FormatError
from capsim.checkers.operations import Op, freeze, thaw
from capsim.history import FUNCTIONS, History, HistoryError, Operations

__all__ = [
    "FORMATS",
    "WRITABLE_FORMATS",
    "FORMAT_MODELS",
    "detect_format",
    "read_operations",
    "operations_from_history",
    "write_operations",
    "infer_model",
]

FORMATS = ("jsonl", "porcupine-etcd", "porcupine-kv", "knossos-edn")
WRITABLE_FORMATS = ("jsonl", "knossos-edn", "porcupine-kv")
# Formats that imply a model; the others are inferred from the operations they hold.
FORMAT_MODELS = {"porcupine-etcd": "cas-register", "porcupine-kv": "kv"}
_TYPES = ("invoke", "ok", "fail", "info")


def _read_text(path: str | os.PathLike) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise FormatError(f"{path}: cannot read: {exc.strerror}") from None


def _sniff(text: str, source: str) -> str:
    """The format of ``text``, from its first meaningful characters."""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(";"):
            continue
        if "jepsen.util" in stripped:
            return "porcupine-etcd"
        if stripped[0] in "[(":
            return "knossos-edn"
        if stripped.startswith('{"') or stripped.startswith('{ "'):
            return "jsonl"
        if stripped.startswith("{"):
            return "porcupine-kv" if re.search(r"[{\s,]:key[\s,]", stripped) else "knossos-edn"
        raise FormatError(
            f"{source}: cannot tell the history format from its first line "
            f"{stripped[:60]!r}; give one of {', '.join(FORMATS)}"
        )
    raise FormatError(f"{source}: the file is empty, so its format cannot be told; give one")


def detect_format(path: str | os.PathLike) -> str:
    """The format of the history file at ``path``, told from its content (not its name)."""
    return _sniff(_read_text(path), str(path))


def read_operations(path: str | os.PathLike, fmt: str | None = None) -> tuple[list[Op], str]:
    """The operations of the history file at ``path`` and its format (detected if ``None``).

    Raises :class:`FormatError` naming the file and line on unreadable or malformed input.
    """
    source = str(path)
    if fmt is not None and fmt not in FORMATS:
        raise FormatError(f"{source}: unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if fmt == "jsonl":
        return _read_jsonl(path), fmt
    text = _read_text(path)
    if fmt is None:
        fmt = _sniff(text, source)
        if fmt == "jsonl":
            return _read_jsonl(path), fmt
    reader = {
        "porcupine-etcd": _read_etcd,
        "porcupine-kv": _read_kv,
        "knossos-edn": _read_knossos,
    }[fmt]
    return reader(text, source), fmt


# --- capsim JSON lines ------------------------------------------------------------------


def _read_jsonl(path: str | os.PathLike) -> list[Op]:
    history = History.from_jsonl(path)
    try:
        return operations_from_history(history)
    except HistoryError as exc:
        raise FormatError(f"{path}: {exc}") from None


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
                f"{self.source}:{line}: process {process} completes a {event['f']} it never invoked"
            )
        slot, invocation = self.open.pop(process)
        if invocation["f"] != event["f"]:
            raise FormatError(
                f"{self.source}:{line}: process {process} completes a {event['f']} but "
                f"invoked a {invocation['f']} on line {invocation['line']}"
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
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return edn.loads(text, f"{source}:{line}")
    except FormatError as exc:
        raise FormatError(f"{source}:{line}: malformed value {text!r} ({exc})") from None


def _read_etcd(text: str, source: str) -> list[Op]:
    pairer = _Pairer(source)
    for number, line in enumerate(text.splitlines(), 1):
        if "jepsen.util" not in line:
            continue
        m = _ETCD_LINE.match(line.strip())
        if m is None:
            raise FormatError(
                f"{source}:{number}: malformed Jepsen log line {line.strip()[:80]!r}; "
                "is the file truncated?"
            )
        process_text, kind, f, value_text = m.groups()
        try:
            process = int(process_text)
        except ValueError:
            raise FormatError(
                f"{source}:{number}: process must be an integer, got {process_text!r}"
            ) from None
        if kind not in _TYPES:
            raise FormatError(f"{source}:{number}: unknown event type :{kind}")
        if f not in ("read", "write", "cas"):
            raise FormatError(f"{source}:{number}: unknown operation :{f} (read, write, cas)")
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
        raise FormatError(f"{source}:{line}: expected an operation map, got {edn.dumps(form)}")
    missing = [k for k in ("process", "type", "f") if k not in form]
    if need_key and "key" not in form:
        missing.append("key")
    if missing:
        names = ", ".join(":" + k for k in missing)
        raise FormatError(f"{source}:{line}: operation map lacks {names}")
    process = form["process"]
    if not isinstance(process, int) or isinstance(process, bool):
        return None  # the nemesis (or another non-client actor): not an operation
    kind = form["type"]
    if kind not in _TYPES:
        raise FormatError(f"{source}:{line}: unknown :type {edn.dumps(kind)}")
    f = form["f"]
    if not isinstance(f, str):
        raise FormatError(f"{source}:{line}: :f must be a keyword, got {edn.dumps(f)}")
    event = {"process": process, "type": str(kind), "f": str(f), "value": form.get("value")}
    if "key" in form:
        event["key"] = form["key"]
    if "error" in form:
        event["error"] = form["error"]
    if "time" in form:
        event["time"] = form["time"]
    elif "index" in form:
        event["time"] = form["index"]
    return event


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
