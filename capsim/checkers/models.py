"""Sequential specifications for the linearizability checker, as pure functions.

A :class:`Model` is, as in Porcupine, a handful of pure functions: ``init`` builds the
initial state from the user's initial value, ``step`` says whether an operation is legal in
a state and what state follows, and ``partition`` splits a history into independent
sub-histories (by key) that can be checked one at a time. States must be hashable and
compared by value: the search memoizes (linearized set, state) pairs.

``step(state, op)`` returns ``(legal, next_state)``. For an ``info`` operation (outcome
unknown) it answers whether the operation *could* have taken effect in ``state`` and what
would follow; for a CAS that compared false (``fail`` with error ``"mismatch"``) the
operation is legal only when the current value differs from the expected one, and leaves the
state alone.

Optional hooks let the search prune (each must over-approximate; ``None`` disables it):
``enables(op, observer)`` says whether applying ``op`` in *some* state could leave a state in
which the read-only ``observer`` is legal; ``reachable(state, observer)`` whether the
observer could become legal from ``state`` through operations for which
``resets(op, observer)`` is false. For a string map, appends only extend the value, so a get
can still pass only if the current value is a prefix of what it read, unless some put of a
prefix of it comes first.

``MODELS`` maps each name to its model; it is a plain dict, so adding a model is adding an
entry.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from capsim.checkers.errors import ModelError
from capsim.checkers.operations import Op, freeze, is_constraining_fail

__all__ = [
    "Model",
    "MODELS",
    "get_model",
    "by_key",
    "whole",
    "REGISTER",
    "CAS_REGISTER",
    "KV",
    "SET",
    "MUTEX",
    "MULTI_REGISTER",
]

State = Hashable
StepResult = tuple[bool, State]


def by_key(ops: Sequence[Op]) -> list[list[Op]]:
    """Split ``ops`` into one list per key, keys in order of first appearance.

    Valid for any object made of independent per-key objects: linearizability is local
    (Herlihy & Wing 1990), so the whole is linearizable iff every key's sub-history is.
    """
    groups: dict[Any, list[Op]] = {}
    for op in ops:
        groups.setdefault(op.key, []).append(op)
    return list(groups.values())


def whole(ops: Sequence[Op]) -> list[list[Op]]:
    """Keep the history in one piece (for objects whose operations span keys)."""
    return [list(ops)] if ops else []


def _never(op: Op) -> bool:
    return False


def _never_both(op: Op, observer: Op) -> bool:
    return False


@dataclass(frozen=True)
class Model:
    """A sequential object: pure ``init``, ``step`` and ``partition`` functions.

    ``functions`` lists the operation names ``step`` understands. ``read_only(op)`` says
    that an operation can never change the state, whatever the state: such an ``info``
    operation constrains nothing and is dropped, and such an ``ok`` one is linearized as soon
    as it is legal. ``default_initial`` is used when the caller gives no initial value.
    ``enables``, ``reachable`` and ``resets`` are optional pruning hooks (see the module
    docstring); they never change a verdict, only how fast it comes.
    """

    name: str
    init: Callable[[Any], State]
    step: Callable[[State, Op], StepResult]
    partition: Callable[[Sequence[Op]], list[list[Op]]] = by_key
    functions: frozenset[str] = field(default_factory=frozenset)
    read_only: Callable[[Op], bool] = _never
    default_initial: Any = None
    description: str = ""
    enables: Callable[[Op, Op], bool] | None = None
    reachable: Callable[[State, Op], bool] | None = None
    resets: Callable[[Op, Op], bool] = _never_both

    def initial_state(self, initial: Any = None) -> State:
        """The state the object starts in, given the user's initial value (or the default)."""
        return self.init(self.default_initial if initial is None else initial)


# --- registers --------------------------------------------------------------------------


def _register_init(initial: Any) -> State:
    return freeze(initial)


def _is_read(op: Op) -> bool:
    return op.f in ("read", "get")


def _register_step(state: State, op: Op) -> StepResult:
    f = op.f
    if f == "read":
        return (op.type == "info" or state == op.output), state
    if f == "write":
        return True, op.value
    raise ModelError(f"register has no operation {f!r}")


def _cas_register_step(state: State, op: Op) -> StepResult:
    f = op.f
    if f == "cas":
        expected, new = op.value
        if op.type == "info":
            # Ran and swapped, ran and compared false, or never ran: all possible.
            return True, (new if state == expected else state)
        if op.type == "fail":
            return state != expected, state
        return state == expected, new
    if f == "read":
        return (op.type == "info" or state == op.output), state
    if f == "write":
        return True, op.value
    raise ModelError(f"cas-register has no operation {f!r}")


def _register_observes(op: Op) -> bool:
    return _is_read(op) or is_constraining_fail(op)


def _register_enables(op: Op, observer: Op) -> bool:
    """Whether ``op`` can leave a value that lets ``observer`` (a read or a failed CAS) pass."""
    if op.f == "write":
        written = op.value
    elif op.f == "cas" and op.type != "fail":
        written = op.value[1]
    else:
        return False  # reads and CASes that compared false change nothing
    if observer.f == "read":
        return written == observer.output
    return written != observer.value[0]


REGISTER = Model(
    name="register",
    init=_register_init,
    step=_register_step,
    functions=frozenset({"read", "write"}),
    read_only=_is_read,
    default_initial=None,
    description="one read/write register per key, initially null",
    enables=_register_enables,
)

CAS_REGISTER = Model(
    name="cas-register",
    init=_register_init,
    step=_cas_register_step,
    functions=frozenset({"read", "write", "cas"}),
    read_only=_register_observes,
    default_initial=None,
    description="one register per key with read, write and compare-and-set [expected, new]",
    enables=_register_enables,
)


# --- key-value map ----------------------------------------------------------------------


def _kv_step(state: State, op: Op) -> StepResult:
    f = op.f
    if f in ("get", "read"):
        return (op.type == "info" or state == op.output), state
    if f in ("put", "write"):
        return True, op.value
    if f == "append":
        if not isinstance(op.value, str):
            raise ModelError(f"kv append needs a string value, got {reprlib.repr(op.value)}")
        return True, ("" if state is None else state) + op.value
    raise ModelError(f"kv has no operation {f!r}")


def _kv_enables(op: Op, observer: Op) -> bool:
    seen = observer.output
    if op.f in ("put", "write"):
        return op.value == seen
    if op.f == "append":
        return isinstance(seen, str) and isinstance(op.value, str) and seen.endswith(op.value)
    return False


def _kv_reachable(state: State, observer: Op) -> bool:
    # Appends only extend the string, so without a put the value read must extend it.
    seen = observer.output
    return isinstance(seen, str) and seen.startswith("" if state is None else state)


def _kv_resets(op: Op, observer: Op) -> bool:
    # A put restarts the value; it can lead to the observed value only if it is a prefix.
    seen = observer.output
    return op.f in ("put", "write") and (
        not isinstance(seen, str) or not isinstance(op.value, str) or seen.startswith(op.value)
    )


KV = Model(
    name="kv",
    init=_register_init,
    step=_kv_step,
    functions=frozenset({"get", "put", "append", "read", "write"}),
    read_only=_is_read,
    default_initial="",
    description="string map (get, put, append) partitioned by key; a missing key reads ''",
    enables=_kv_enables,
    reachable=_kv_reachable,
    resets=_kv_resets,
)


# --- grow-only set ----------------------------------------------------------------------


def _set_init(initial: Any) -> State:
    return frozenset(freeze(v) for v in (initial or ()))


_LAST_READ: list[Any] = [None, None]


def _set_read(op: Op) -> frozenset | None:
    # A set read returns the whole set, and the search asks about the same read many times
    # in a row (every operation against one observer): remember the last one.
    if _LAST_READ[0] is not op:
        _LAST_READ[0] = op
        _LAST_READ[1] = None if op.output is None else frozenset(freeze(v) for v in op.output)
    return _LAST_READ[1]


def _set_step(state: State, op: Op) -> StepResult:
    f = op.f
    if f == "add":
        return True, state | {freeze(op.value)}
    if f == "read":
        if op.type == "info":
            return True, state
        return _set_read(op) == state, state
    raise ModelError(f"set has no operation {f!r}")


def _set_enables(op: Op, observer: Op) -> bool:
    if op.f != "add":
        return False
    seen = _set_read(observer)
    return seen is not None and freeze(op.value) in seen


def _set_reachable(state: State, observer: Op) -> bool:
    seen = _set_read(observer)
    return seen is not None and state <= seen


SET = Model(
    name="set",
    init=_set_init,
    step=_set_step,
    functions=frozenset({"add", "read"}),
    read_only=_is_read,
    default_initial=(),
    description="grow-only set per key: add v; a read returns every element",
    enables=_set_enables,
    reachable=_set_reachable,
)


# --- mutex ------------------------------------------------------------------------------


def _mutex_init(initial: Any) -> State:
    if initial in (False, "free", "released", 0):
        return False
    if initial in (True, "held", "acquired", 1):
        return True
    raise ModelError(f"mutex initial value must be 'free' or 'held', got {initial!r}")


def _mutex_step(state: State, op: Op) -> StepResult:
    f = op.f
    if f == "acquire":
        return not state, True
    if f == "release":
        return bool(state), False
    raise ModelError(f"mutex has no operation {f!r}")


MUTEX = Model(
    name="mutex",
    init=_mutex_init,
    step=_mutex_step,
    partition=whole,
    functions=frozenset({"acquire", "release"}),
    default_initial="free",
    description="a lock: acquire needs it free, release needs it held",
)


# --- multi-register with transactions ---------------------------------------------------


def _multi_init(initial: Any) -> State:
    """State ``(default, ((key, value), ...))``: keys sorted, missing keys hold ``default``."""
    if isinstance(initial, dict):
        items = tuple(sorted(((freeze(k), freeze(v)) for k, v in initial.items()), key=repr))
        return (None, items)
    return (freeze(initial), ())


def _multi_lookup(state: State, key: Any) -> Any:
    default, items = state
    for k, v in items:
        if k == key:
            return v
    return default


def _multi_assign(state: State, key: Any, value: Any) -> State:
    default, items = state
    kept = [(k, v) for k, v in items if k != key]
    kept.append((key, value))
    return (default, tuple(sorted(kept, key=repr)))


def _txn_micro_ops(op: Op) -> Sequence[Any]:
    # A completed transaction carries the values it read; an unfinished one only its request.
    micro = op.output if op.type == "ok" and op.output is not None else op.value
    return micro or ()


def _multi_step(state: State, op: Op) -> StepResult:
    if op.f != "txn":
        raise ModelError(f"multi-register has no operation {op.f!r}")
    for micro in _txn_micro_ops(op):
        try:
            f, key, value = micro
        except (TypeError, ValueError):
            raise ModelError(f"a transaction step must be [f key value], got {micro!r}") from None
        if f == "read":
            # Knossos: a read of nil is unconstrained (the value was not observed).
            if value is not None and _multi_lookup(state, key) != value:
                return False, state
        elif f == "write":
            state = _multi_assign(state, key, freeze(value))
        else:
            raise ModelError(f"multi-register transactions have no micro-operation {f!r}")
    return True, state


def _txn_read_only(op: Op) -> bool:
    return all(micro[0] == "read" for micro in _txn_micro_ops(op))


MULTI_REGISTER = Model(
    name="multi-register",
    init=_multi_init,
    step=_multi_step,
    partition=whole,
    functions=frozenset({"txn"}),
    read_only=_txn_read_only,
    default_initial=None,
    description=(
        "named registers read and written by transactions [[:read k v] [:write k v] ...]; "
        "initial value a map, or one value for every register"
    ),
)


MODELS: dict[str, Model] = {
    "register": REGISTER,
    "cas-register": CAS_REGISTER,
    "kv": KV,
    "set": SET,
    "mutex": MUTEX,
    "multi-register": MULTI_REGISTER,
}


def get_model(model: str | Model) -> Model:
    """The model named ``model`` (or ``model`` itself); an unknown name raises ModelError."""
    if isinstance(model, Model):
        return model
    try:
        return MODELS[model]
    except KeyError:
        names = ", ".join(MODELS)
        raise ModelError(f"unknown model {model!r}; known models: {names}") from None
