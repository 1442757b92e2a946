"""Operations as the checker sees them: an invocation paired with its completion.

Every history format (capsim JSON lines, Porcupine logs, Knossos EDN) is read into a list of
:class:`Op`, and the models and the search work on that list only.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

__all__ = ["Op", "OUTCOMES", "freeze", "is_constraining_fail"]

OUTCOMES = ("ok", "fail", "info")


@dataclass(frozen=True, slots=True)
class Op:
    """One operation of a history: what a process asked for and what came back.

    ``type`` is the recorded outcome. ``ok`` took effect and ``output`` is what it returned.
    ``info`` (including an invocation that never completed) may take effect at any time
    after its invocation, or never; its ``output`` is unknown. ``fail`` certainly did not
    take effect and the checker drops it, with one exception: a ``cas`` whose ``error`` is
    ``"mismatch"`` ran and compared false, so it constrains the state (current value
    differs from the expected one at its linearization point).

    ``call`` and ``ret`` order operations in real time: ``a`` precedes ``b`` iff
    ``a.ret < b.call`` (equal values mean concurrent). Readers use event positions, so the
    order of lines in a file decides, not its timestamps. ``ret`` is ``inf`` for an
    operation that never completed; for any ``info`` operation the checker ignores it.
    ``call_time`` and ``ret_time`` are the times shown to a person (the file's own
    timestamps when it has them, else line numbers); ``None`` means "same as call/ret".
    """

    process: Any
    f: str
    value: Any = None
    output: Any = None
    type: str = "ok"
    call: float = 0.0
    ret: float = math.inf
    key: Any = None
    error: Any = None
    call_time: Any = None
    ret_time: Any = None

    def shown_call(self) -> Any:
        """The invocation time to show a person."""
        return self.call if self.call_time is None else self.call_time

    def shown_ret(self) -> Any:
        """The completion time to show a person (``None`` if it never completed)."""
        if self.ret_time is not None:
            return self.ret_time
        return None if math.isinf(self.ret) else self.ret

    def to_dict(self) -> dict[str, Any]:
        """The operation as plain JSON-ready data (tuples become lists)."""
        return {
            "process": thaw(self.process),
            "f": self.f,
            "key": thaw(self.key),
            "value": thaw(self.value),
            "output": thaw(self.output),
            "type": self.type,
            "error": thaw(self.error),
            "invoke_time": self.shown_call(),
            "complete_time": self.shown_ret(),
        }


def is_constraining_fail(op: Op) -> bool:
    """Whether a ``fail`` operation still constrains the state: a CAS that compared false."""
    return op.type == "fail" and op.f == "cas" and op.error == "mismatch"


_SCALARS = frozenset({int, float, str, bool, type(None), bytes})


def freeze(value: Any) -> Hashable:
    """``value`` with lists turned into tuples and dicts into sorted item tuples, recursively.

    Model states must be hashable (the search memoizes them), and states are built from
    operation values, which JSON gives as lists.
    """
    if isinstance(value, list | tuple):
        if _SCALARS.issuperset(map(type, value)):
            return tuple(value)  # the common case, a set read's elements: no recursion
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted(((freeze(k), freeze(v)) for k, v in value.items()), key=repr))
    if isinstance(value, set):
        return frozenset(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """``value`` made JSON-ready: tuples and frozensets become lists, keywords stay strings."""
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted((thaw(v) for v in value), key=repr)
    if isinstance(value, dict):
        return {str(k): thaw(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
