"""Linearizability checking of whole histories, and shrinking a violation to a minimal one.

:func:`check_operations` drops what cannot matter (``fail`` operations, except a CAS that
compared false; ``info`` operations that cannot change the state, such as reads), splits the
rest by the model's ``partition`` (by key, as Porcupine and Knossos do: linearizability is
local, so the whole is linearizable iff each part is), checks the parts smallest first with
:func:`capsim.checkers.search.search` under one shared budget, and on a violation shrinks
the failing part to a 1-minimal failing sub-history (:func:`shrink`). The grow-only ``set``
model needs no search: :func:`capsim.checkers.sets.check_set` decides each part in one
pass (O(n log n) plus the size of the sets read) with exactly the search's verdict, and
names a two- or three-operation witness of a violation.

Verdicts are three-valued and never guessed: ``linearizable``, ``not-linearizable``, or
``unknown`` when the step budget or the wall-clock timeout ran out first.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from time import perf_counter
from typing import Any

from capsim.checkers.errors import ModelError
from capsim.checkers.models import Model, get_model
from capsim.checkers.operations import OUTCOMES, Op, is_constraining_fail, thaw
from capsim.checkers.search import Budget, search
from capsim.checkers.sets import SetViolation, blame_failed, check_set, handles

__all__ = [
    "CheckResult",
    "VERDICTS",
    "DEFAULT_MAX_STEPS",
    "DEFAULT_STEPS_PER_OP",
    "SHRINK_MAX_STEPS",
    "check_operations",
    "relevant_operations",
    "shrink",
    "format_violation",
]

VERDICTS = ("linearizable", "not-linearizable", "unknown")
# The default budget: a base plus an allowance per operation, so that long histories are
# not cut short. Every peer history needs fewer than 30,000 steps; a million-operation
# capsim history over 100 keys about 10 million (some 10 s). One step costs about a
# microsecond, and the memo of one partition a few dozen bytes per step at most.
DEFAULT_MAX_STEPS = 10_000_000
DEFAULT_STEPS_PER_OP = 100
# Shrinking a violation re-checks many sub-histories; it gets its own allowance so that a
# hard shrink never turns a known verdict into "unknown".
SHRINK_MAX_STEPS = 5_000_000
# Each "could these operations be ordered legally at all?" check made while shrinking gets
# this many steps, plus some per operation.
EXPLAIN_BASE_STEPS = 10_000
EXPLAIN_STEPS_PER_OP = 20


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a linearizability check.

    ``verdict`` is one of ``VERDICTS``. ``ops`` counts the history's operations (invocations,
    whatever their outcome), ``elapsed_s`` is wall-clock seconds, ``steps`` the search steps
    spent on the verdict (deterministic for a given history, model and budget).
    ``violation`` is ``None`` unless the verdict is ``not-linearizable``; then it is plain data:
    ``{"key", "model", "initial", "minimal", "explained", "ops": [{"process", "f", "key",
    "value", "output", "type", "error", "invoke_time", "complete_time"}, ...]}``, a failing
    sub-history of one partition (see :func:`shrink`). ``explained`` says whether some order
    of those operations ignoring real time is legal (the failure is about order, such as a
    stale read); if not, typically a read saw a value nothing wrote. ``minimal`` says the
    shrinking finished: removing any one operation makes the sub-history linearizable (or,
    for an explained one, leaves a value read that no remaining operation wrote).
    ``reason`` says what ran out when the verdict is ``unknown`` (``"steps"`` or
    ``"timeout"``); ``exit_code`` is the status ``capsim check`` should exit with.
    """

    verdict: str
    ops: int
    elapsed_s: float
    steps: int
    violation: dict[str, Any] | None = None
    model: str = ""
    partitions: int = 0
    reason: str | None = None

    @property
    def valid(self) -> bool | None:
        """True if linearizable, False if not, None if unknown."""
        return {"linearizable": True, "not-linearizable": False}.get(self.verdict)

    @property
    def exit_code(self) -> int:
        """The ``capsim check`` exit status: 0 linearizable, 1 not, 3 unknown."""
        return {"linearizable": 0, "not-linearizable": 1}.get(self.verdict, 3)

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-ready data (what ``capsim check --json`` prints)."""
        out: dict[str, Any] = {
            "verdict": self.verdict,
            "ops": self.ops,
            "elapsed_s": round(self.elapsed_s, 6),
            "steps": self.steps,
            "model": self.model,
            "partitions": self.partitions,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        if self.violation is not None:
            out["violation"] = self.violation
        return out

    def describe(self) -> str:
        """The result for a person: one summary line, then the violation if there is one."""
        head = f"{self.verdict}: {self.ops} operations, model {self.model}"
        head += f", {self.steps} steps, {self.elapsed_s:.3f} s"
        if self.reason is not None:
            head += f" ({'step budget' if self.reason == 'steps' else 'timeout'} ran out)"
        if self.violation is None:
            return head
        return head + "\n" + format_violation(self.violation)


def relevant_operations(ops: Sequence[Op], model: Model) -> list[Op]:
    """The operations that constrain the search, in the order given.

    Dropped: ``fail`` operations (they did not happen), except a CAS that compared false
    (``error == "mismatch"``); ``info`` operations the model calls read-only (an
    indeterminate read observed nothing). Raises ModelError on an unknown outcome.
    """
    out = []
    read_only = model.read_only
    for op in ops:
        kind = op.type
        if kind == "ok":
            out.append(op)
        elif kind == "info":
            if not read_only(op):
                out.append(op)
        elif kind == "fail":
            if is_constraining_fail(op):
                out.append(op)
        else:
            raise ModelError(f"unknown outcome {kind!r}; expected one of {', '.join(OUTCOMES)}")
    return out


def _validate(ops: Sequence[Op], model: Model) -> None:
    for op in ops:
        if op.f not in model.functions:
            raise ModelError(
                f"model {model.name!r} has no operation {op.f!r} (process {op.process}, "
                f"invoked at {op.shown_call()}); it has {', '.join(sorted(model.functions))}"
            )


def check_operations(
    ops: Sequence[Op],
    model: str | Model = "register",
    initial: Any = None,
    max_steps: int | None = None,
    timeout_s: float | None = None,
    shrink_violation: bool = True,
) -> CheckResult:
    """Check ``ops`` for linearizability against ``model`` starting from ``initial``.

    ``max_steps`` bounds the search over all partitions together (``None`` means
    ``DEFAULT_MAX_STEPS`` plus ``DEFAULT_STEPS_PER_OP`` per operation); ``timeout_s``
    optionally bounds wall-clock time too (machine-dependent, so off by default). Running out
    gives verdict ``unknown``. On a violation the failing partition is shrunk to a 1-minimal
    sub-history unless ``shrink_violation`` is false.
    """
    start = perf_counter()
    m = get_model(model)
    _validate(ops, m)
    try:
        state0 = m.initial_state(initial)
    except TypeError:
        state0 = None
        initial_ok = False
    else:
        # The search memoizes states, so they must be hashable (models freeze lists).
        initial_ok = isinstance(state0, Hashable)
    if not initial_ok:
        raise ModelError(f"initial value {reprlib.repr(initial)} cannot be a {m.name} state")
    deadline = None if timeout_s is None else start + timeout_s
    if max_steps is None:
        max_steps = DEFAULT_MAX_STEPS + DEFAULT_STEPS_PER_OP * len(ops)
    budget = Budget(max_steps, deadline)
    parts = m.partition(relevant_operations(ops, m))
    verdict = "linearizable"
    failing: list[Op] | None = None
    witness: SetViolation | None = None
    reason: tuple[str, list[Op]] | None = None
    one_pass = handles(m, state0)
    for part in sorted(parts, key=len):
        siblings = _sibling_read(part) if m.name in ("register", "cas-register") else None
        if siblings is not None:
            # A register holds one value: a read of several (siblings) is never legal.
            verdict, failing = "not-linearizable", part
            reason = (_SIBLINGS, [siblings])
            break
        if one_pass:
            found, witness = check_set(part, state0, budget)
        else:
            found = search(part, m, state0, budget)
        if found is None:
            verdict = "unknown"
            break
        if found is False:
            verdict = "not-linearizable"
            failing = part
            break
    violation = None
    if failing is not None:
        if witness is not None:
            reason = _set_reason(blame_failed(witness, ops))
        violation = _violation(failing, m, initial, state0, deadline, shrink_violation, reason)
    return CheckResult(
        verdict=verdict,
        ops=len(ops),
        elapsed_s=perf_counter() - start,
        steps=budget.used,
        violation=violation,
        model=m.name,
        partitions=len(parts),
        reason=budget.exhausted if verdict == "unknown" else None,
    )


_SIBLINGS = (
    "a read returned several values (siblings, as a leaderless store returns under "
    "concurrent writes), but a linearizable register holds one"
)


def _sibling_read(part: Sequence[Op]) -> Op | None:
    """The first ``ok`` read of a register that returned a list of values no write wrote
    (so, several values: siblings), if any."""
    written = set()
    for op in part:
        if op.f == "write":
            written.add(op.value)
        elif op.f == "cas" and isinstance(op.value, tuple) and len(op.value) == 2:
            written.add(op.value[1])
    for op in part:
        read_list = op.f == "read" and op.type == "ok" and isinstance(op.output, tuple)
        if read_list and op.output not in written:
            return op
    return None


def _violation(
    part: list[Op],
    model: Model,
    initial: Any,
    state0: Hashable,
    deadline: float | None,
    shrink_it: bool,
    witness: tuple[str, list[Op]] | None = None,
) -> dict[str, Any]:
    ops, minimal, explained = part, False, None
    if witness is None and model.name == "set":
        witness = _set_witness(part)
    if witness is not None:
        reason, ops = witness
        minimal = True
    elif shrink_it:
        ops, minimal, explained = shrink(part, model, state0, Budget(SHRINK_MAX_STEPS, deadline))
    ops = sorted(ops, key=lambda op: op.call)
    keys = {op.key for op in ops}
    out = {
        "key": thaw(keys.pop()) if len(keys) == 1 else None,
        "model": model.name,
        "initial": thaw(model.default_initial if initial is None else initial),
        "minimal": minimal,
        "explained": explained,
        "ops": [op.to_dict() for op in ops],
    }
    if witness is not None:
        out["witness"] = witness[0]
    return out


def _prefix(ops: Sequence[Op], k: int, model: Model) -> list[Op]:
    """The first ``k`` invocations, with operations still open at the k-th made ``info``."""
    cut = ops[k - 1].call
    out = [op if op.ret <= cut else replace(op, type="info", output=None) for op in ops[:k]]
    return relevant_operations(out, model)


def _unordered(ops: Sequence[Op]) -> list[Op]:
    """``ops`` made pairwise concurrent, so that only the model constrains their order."""
    return [replace(op, call=0, ret=1 if op.type != "info" else math.inf) for op in ops]


def shrink(
    ops: Sequence[Op], model: Model, state0: Hashable, budget: Budget
) -> tuple[list[Op], bool, bool]:
    """Shrink the non-linearizable ``ops`` to a small failing sub-history.

    Returns ``(sub_history, minimal, explained)``. A sub-history is *explained* when some
    order of its operations, ignoring real time, is legal (every value read was written by
    one of its operations), so that only real-time order makes it fail. If the failing
    history to shrink is explained, every deletion keeps it so, and the result is 1-minimal
    among explained sub-histories: removing any one operation either makes it linearizable
    or leaves a value that no remaining operation could have produced. (Without that
    constraint a lone read of a written value would nearly always be the answer, which
    explains nothing.) Otherwise the result is 1-minimal outright: removing any one
    operation makes it linearizable; typically it is one read of a value nothing wrote.
    ``explained`` describes the result.

    First the shortest failing prefix is found by bisection: a prefix (operations still open
    at the cut made indeterminate) fails monotonically in its length, and if it fails, so do
    the same operations with their recorded outcomes. Then operations are deleted greedily,
    in chunks and then one at a time, until no single deletion is accepted. If ``budget``
    runs out first, the smallest failing history found is returned with ``minimal`` false.
    """
    ops = sorted(ops, key=lambda op: (op.call, op.ret))

    def fails(candidate: Sequence[Op]) -> bool | None:
        found = search(candidate, model, state0, budget)
        return None if found is None else not found

    def explained(candidate: Sequence[Op]) -> bool:
        # Ignoring real time can make the search wide, so it gets a capped allowance of its
        # own; running out counts as "not explained", which only weakens the shrinking.
        cap = EXPLAIN_BASE_STEPS + EXPLAIN_STEPS_PER_OP * len(candidate)
        left = budget.remaining()
        own = Budget(cap if left is None else min(cap, left), budget.deadline)
        found = search(_unordered(candidate), model, state0, own)
        budget.used += own.used
        return bool(found)

    keep_explained = None
    if fails(_prefix(ops, len(ops), model)):
        lo, hi = 1, len(ops)
        while lo < hi:
            mid = (lo + hi) // 2
            verdict = fails(_prefix(ops, mid, model))
            if verdict is None:
                return list(ops), False, False
            if verdict:
                hi = mid
            else:
                lo = mid + 1
        prefix = ops[:hi]
        keep_explained = explained(prefix)
        if not keep_explained:
            # The cut may have dropped the writes some kept read saw: extend the prefix to
            # every operation invoked before the kept ones returned.
            horizon = max((op.ret for op in prefix if op.type != "info"), default=0)
            longer = [op for op in ops if op.call <= horizon]
            if len(longer) > len(prefix) and fails(longer) and explained(longer):
                prefix, keep_explained = longer, True
        ops = prefix
    if keep_explained is None:
        keep_explained = explained(ops)

    def accepts(candidate: Sequence[Op]) -> bool | None:
        verdict = fails(candidate)
        if verdict and keep_explained:
            verdict = explained(candidate)
        return verdict

    current = list(ops)
    size = max(1, len(current) // 2)
    while True:
        changed = False
        i = len(current) - size
        while i >= 0:
            candidate = current[:i] + current[i + size :]
            verdict = accepts(candidate)
            if verdict is None:
                return current, False, explained(current)
            if verdict:
                current = candidate
                changed = True
            i -= size
        if size == 1 and not changed:
            return current, True, explained(current)
        size = max(1, size // 2)


#: Longer lists are shown by their ends: a set read of 10,000 elements in a report helps
#: nobody (the sentence above it names the element that matters).
SHOWN_ITEMS = 16


def _show(value: Any, items: int | None = None) -> str:
    """A value as Knossos-style text; ``items`` is a list's full length when ``value``
    holds only its first items."""
    if value is None:
        return "nil"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list | tuple):
        total = len(value) if items is None else items
        if total > len(value) or len(value) > SHOWN_ITEMS:
            head = " ".join(_show(v) for v in value[: SHOWN_ITEMS - 4])
            return f"[{head} ...] ({total} items)"
        return "[" + " ".join(_show(v) for v in value) + "]"
    return str(value)


def _show_time(value: Any) -> str:
    if value is None:
        return "never"
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else "never"
    return str(value)


def _describe_op(op: dict[str, Any]) -> str:
    f, kind = op["f"], op["type"]
    text = f
    if op["key"] not in (None, ""):
        text += f" {_show(op['key'])}"
    if f in ("read", "get") or (f == "txn" and kind == "ok"):
        field = "output" if kind == "ok" else "value"
        shown = _show(op[field], op.get(f"{field}_items"))
        text += f" -> {shown}" if f != "txn" else f" {shown}"
    elif op["value"] is not None:
        text += f" {_show(op['value'], op.get('value_items'))}"
    if kind == "fail":
        text += "  (ran, compared false)" if op["error"] == "mismatch" else "  (failed)"
    elif kind == "info":
        text += "  (indeterminate: may have taken effect, or not)"
    return text


_SET_REASONS = {
    "inverted": "this operation completed before it was invoked",
    "no-output": "a read completed without returning a set",
    "initial": "a read lacks {0}, which the set held initially",
    "diverged": (
        "two reads saw sets neither of which contains the other (one shows {0} but not "
        "{1}, the other {1} but not {0}), but a grow-only set's reads must nest"
    ),
    "unexpected": "a read shows {0}, which no operation added",
    "failed": "a read shows {0}, whose only add failed",
    "early": "a read shows {0}, which no add had even begun to add",
    "lost": "a read lacks {0}, whose add was acknowledged before the read began",
    "stale": "a read lacks {0}, which a read that completed before it began had shown",
    "reordered": (
        "a read shows {0} but lacks {1}, though the add of {1} was acknowledged before "
        "any add of {0} began"
    ),
}


def _set_reason(violation: SetViolation | None) -> tuple[str, list[Op]] | None:
    """A set violation from :func:`check_set` as a sentence and its operations."""
    if violation is None:
        return None
    shown = [_show(thaw(e)) for e in violation.elements]
    return _SET_REASONS[violation.kind].format(*shown), list(violation.ops)


def _set_witness(part: Sequence[Op]) -> tuple[str, list[Op]] | None:
    """A two-operation witness of a set violation, as Jepsen's set checker finds them.

    Used for a model named ``set`` that is not the built-in one (whose parts
    :func:`capsim.checkers.sets.check_set` decides and explains).

    In order: an acknowledged add whose element a read lacks though the read began after
    the add completed (a lost write); a read of an element no add could have added by
    then; an element one read showed and a later read (begun after the first completed)
    lacks. A set read returns the whole set, so a literal 1-minimal sub-history would
    have to keep every add it shows; these pairs say the same thing in two lines.
    """
    adds = sorted((op for op in part if op.f == "add" and op.type == "ok"), key=lambda o: o.ret)
    maybe = [op for op in part if op.f == "add" and op.type in ("ok", "info")]
    reads = sorted((op for op in part if op.f == "read" and op.type == "ok"), key=lambda o: o.call)
    outputs = [set(op.output or ()) for op in reads]
    for read, seen in zip(reads, outputs, strict=True):
        for add in adds:
            if add.ret >= read.call:
                break
            if add.value not in seen:
                return (
                    f"a read lacks {_show(add.value)}, whose add was acknowledged "
                    "before the read began",
                    [add, read],
                )
    first_call = {}
    for add in maybe:
        first_call[add.value] = min(first_call.get(add.value, math.inf), add.call)
    for read, seen in zip(reads, outputs, strict=True):
        for element in sorted(seen, key=repr):
            if first_call.get(element, math.inf) > read.ret:
                return (
                    f"a read shows {_show(element)}, which no add had even begun to add",
                    [read],
                )
    by_ret = sorted(zip(reads, outputs, strict=True), key=lambda pair: pair[0].ret)
    for later, later_seen in zip(reads, outputs, strict=True):
        for earlier, earlier_seen in by_ret:
            if earlier.ret >= later.call:
                break
            missing = earlier_seen - later_seen
            if missing:
                element = sorted(missing, key=repr)[0]
                return (
                    f"a read lacks {_show(element)}, which a read that completed before "
                    "it began had shown",
                    [earlier, later],
                )
    return None


def format_violation(violation: dict[str, Any]) -> str:
    """A violation as text a person can follow: one operation per line, in invocation order.

    The first line says what fails; each following line shows the process, the outcome, the
    invocation and completion times (the file's own times, or line numbers when it has
    none), and what the operation did and saw.
    """
    ops = violation["ops"]
    key = violation.get("key")
    where = f" on key {_show(key)}" if key not in (None, "") else ""
    subject = f"these {len(ops)} operations{where}" if len(ops) != 1 else f"this operation{where}"
    start = f"a {violation['model']} starting at {_show(violation['initial'])}"
    if violation.get("witness"):
        head = f"Not linearizable{where}: {violation['witness']}"
    elif violation.get("explained"):
        head = (
            f"Not linearizable: {subject} can be put in an order legal for {start}, "
            "but not in one that respects real time"
        )
        if violation.get("minimal"):
            head += (
                "; without any one of them either the rest is linearizable or some value "
                "read is no longer written by any"
            )
    elif len(ops) == 1:
        head = f"Not linearizable: {subject} is not legal for {start} whatever comes before it"
    else:
        head = (
            f"Not linearizable: no order of {subject} is legal for {start}, even ignoring real time"
        )
        if violation.get("minimal"):
            head += "; without any one of them the rest is linearizable"
    if not violation.get("minimal"):
        head += " (not shrunk to a minimal set: the budget ran out)"
    lines = [head + ":"]
    width = max((len(str(op["process"])) for op in ops), default=1)
    for op in ops:
        lines.append(
            f"  process {str(op['process']):<{width}}  {op['type']:<4}  "
            f"invoked {_show_time(op['invoke_time']):>8}  completed "
            f"{_show_time(op['complete_time']):>8}  {_describe_op(op)}"
            + (f"  (answered by {op['node']})" if op.get("node") else "")
        )
    return "\n".join(lines)
