"""Linearizability checking of capsim histories and of other tools' histories.

Entry points::

    from capsim.checkers import check_history, check_file, convert
    check_file("history.jsonl").verdict        # "linearizable", "not-linearizable", "unknown"
    check_history(res.history, model="cas-register").to_json()
    convert("etcd_000.log", "etcd_000.jsonl", to="jsonl")

Models are in ``MODELS`` (``register``, ``cas-register``, ``kv``, ``set``, ``mutex``,
``multi-register``); formats in ``FORMATS`` (``jsonl``, ``porcupine-etcd``,
``porcupine-kv``, ``knossos-edn``). The search is Wing & Gong's, memoized as in Lowe 2017
and Porcupine, with extra pruning; see :mod:`capsim.checkers.search`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from capsim.checkers import edn
from capsim.checkers.errors import CheckerError, FormatError, ModelError
from capsim.checkers.formats import (
    FORMATS,
    WRITABLE_FORMATS,
    detect_format,
    infer_model,
    operations_from_history,
    read_operations,
    write_operations,
)
from capsim.checkers.linearizability import CheckResult, check_operations, format_violation
from capsim.checkers.models import MODELS, Model
from capsim.checkers.operations import Op
from capsim.history import MAX_VALUE_DEPTH, History, HistoryError, Operations, check_value

__all__ = [
    "CheckResult",
    "CheckerError",
    "FORMATS",
    "FormatError",
    "MODELS",
    "Model",
    "ModelError",
    "Op",
    "WRITABLE_FORMATS",
    "check_file",
    "check_history",
    "convert",
    "detect_format",
    "format_violation",
    "parse_value",
    "read_operations",
]


def check_history(
    history_or_ops: History | Operations | Iterable[Op],
    model: str | Model | None = "register",
    initial: Any = None,
    max_steps: int | None = None,
    timeout_s: float | None = None,
) -> CheckResult:
    """Check a capsim history (or a list of :class:`Op`) for linearizability.

    ``model`` names an entry of ``MODELS`` (``None`` infers it from the operations);
    ``initial`` is the object's initial value (``None``: the model's default, null for
    registers). ``max_steps`` bounds the search in deterministic steps, ``timeout_s`` in
    wall-clock seconds; when either runs out the verdict is ``unknown``.
    """
    if isinstance(history_or_ops, History | Operations):
        ops = operations_from_history(history_or_ops)
    else:
        ops = list(history_or_ops)
        for op in ops:
            if not isinstance(op, Op):
                raise CheckerError(f"expected capsim.checkers.Op values, got {op!r}")
    if model is None:
        model = infer_model(ops)
    return check_operations(ops, model, initial, max_steps, timeout_s)


def check_file(
    path: str | os.PathLike,
    model: str | Model | None = None,
    fmt: str | None = None,
    initial: Any = None,
    max_steps: int | None = None,
    timeout_s: float | None = None,
) -> CheckResult:
    """Check the history file at ``path`` for linearizability.

    ``fmt`` is one of ``FORMATS`` (``None``: told from the content). ``model`` defaults to
    the one the format implies (``porcupine-etcd``: ``cas-register`` starting at nil, with a
    failed CAS meaning "compared false"; ``porcupine-kv``: ``kv``), else the one the
    operations need (see :func:`capsim.checkers.formats.infer_model`). Bad input raises a
    :class:`CheckerError` (a ``CapsimError``) naming the file and line.
    """
    ops, fmt = read_operations(path, fmt)
    if model is None:
        model = infer_model(ops, fmt)
    try:
        return check_operations(ops, model, initial, max_steps, timeout_s)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None


def convert(
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    to: str = "jsonl",
    fmt: str | None = None,
    key: Any = None,
) -> int:
    """Rewrite the history at ``in_path`` as ``out_path`` in format ``to``; return events written.

    ``to`` is ``jsonl`` (capsim), ``knossos-edn`` or ``porcupine-kv``; ``fmt`` is the input
    format (``None``: detected). Semantics are kept where the target can express them, and
    weakened (never strengthened) where it cannot, so a converted history is never reported
    as a violation the original is not:

    * A CAS that compared false becomes a Knossos ``:fail`` with ``:error :mismatch``, which
      Knossos drops. A capsim read of null becomes a Knossos read of nil, which Knossos treats
      as unconstrained. A Knossos read of nil becomes an indeterminate (``info``) read.
    * Knossos files hold one object: a history with several keys needs ``key=``.
    * ``porcupine-kv`` has only get/put/append on string values: reads and writes become get
      and put, non-string values are written as JSON text, null as ``""``; indeterminate
      operations are written as invocations without completion, failed ones are left out.
    * ``jsonl`` has read, write, cas and add: ``get``/``put`` become read/write; mutex,
      transaction and append histories cannot be written. Times are the source's when they
      run forward, else event positions.
    """
    ops, _ = read_operations(in_path, fmt)
    return write_operations(ops, out_path, to, key=key)


#: The longest ``--initial`` value accepted, in characters.
MAX_VALUE_CHARS = 1_000_000


def parse_value(text: str) -> Any:
    """A value typed on a command line: JSON (``0``, ``null``, ``{"x": 0}``), else EDN, else text.

    For ``--initial``: ``0`` is the integer, ``'"0"'`` the string, ``'{"x": 0, "y": 0}'`` or
    ``'{:x 0 :y 0}'`` a map, and anything unparseable the text itself.
    """
    if len(text) > MAX_VALUE_CHARS:
        raise CheckerError(f"--initial: a value of at most {MAX_VALUE_CHARS} characters, please")
    try:
        value = json.loads(text)
    except RecursionError:
        raise CheckerError(f"--initial: nested deeper than {MAX_VALUE_DEPTH} levels") from None
    except ValueError:
        try:
            value = edn.loads(text)
        except FormatError:
            return text
    try:
        check_value(value)
    except HistoryError as exc:
        raise CheckerError(f"--initial: {exc}") from None
    return value
