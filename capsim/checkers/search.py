"""The linearization search: Wing & Gong's depth-first search, memoized as in Lowe 2017.

A history is linearizable iff its operations can be put in one sequential order that (1)
respects real time (if ``a`` completed before ``b`` was invoked, ``a`` comes first) and (2)
is legal for the model from its initial state (Herlihy & Wing 1990). The search (Wing &
Gong 1993) builds such an order one operation at a time: an operation may come next iff no
other unlinearized operation completed before it was invoked. Lowe (2017) memoizes the
configurations already explored, a configuration being (set of linearized operations,
state); Porcupine (Athalye) does the same with the set as a bitset and walks a linked list of
call and return entries, so that the candidates are the call entries before the first return
entry. This module does all of that, and prunes further:

* States are interned to small ints and each operation keeps a lazily filled table from
  state to next state, so the model's ``step`` runs once per (operation, state) pair, and a
  configuration is one Python int (linearized bits, with the state above them).
* Forced moves. A required operation that never changes the state (a read, a CAS that
  compared false) and is legal now is linearized at once and never branched on: if any
  linearization exists, one exists with it moved here, since moving an operation that
  changes no state to an earlier legal point changes no other operation's result, and, being
  a candidate, nothing has to precede it. (A write of the current value does not qualify:
  later on it would change the state.)
* Dead ends. A pending read must become legal before it returns. If no operation invoked
  before that return could leave a state it accepts (the model's ``enables`` hook), or the
  state can no longer grow into one it accepts (``reachable``, e.g. appends only extend a
  string), the configuration is abandoned at once. The same test on the next reads not yet
  invoked, and on every read against the initial state before searching, catches a read of a
  value nobody wrote without any search.
* Optional operations. An ``info`` operation may never have taken effect, so it is
  linearized only when it changes the state; it is tried after the required candidates;
  identical ones (same function, key, value) are interchangeable, so they are linearized in
  invocation order; and right after one, an operation whose result would be the same
  without it is skipped, because the same configuration without the info operation (which
  is only more freedom) is reachable from the parent.
* Ordering. When the first operation that must return is a read that is illegal now, a
  candidate after which it becomes legal is tried first.
* The search succeeds as soon as every required operation is linearized; the remaining
  ``info`` operations are taken never to have happened.

The budget is counted in search steps (one step is one look at a candidate operation), so a
verdict of "unknown" is machine-independent; an optional wall-clock deadline is checked
every few thousand steps.
"""

from __future__ import annotations

import reprlib
from collections.abc import Hashable, Sequence
from time import perf_counter
from typing import Any

from capsim.checkers.errors import ModelError
from capsim.checkers.models import Model
from capsim.checkers.operations import Op, is_constraining_fail

__all__ = ["Budget", "search"]

_CLOCK_EVERY = 1 << 13
_RESUME_NEXT, _FORCED, _RESUME_HEAD, _RESUME_INFO = 0, 1, 2, 3
# How many not-yet-invoked observers each configuration checks for a dead end.
_FUTURE_OBSERVERS = 2


class Budget:
    """An allowance of search steps (and optionally wall-clock time) shared by searches.

    ``max_steps=None`` means no step limit; ``deadline`` is a ``perf_counter`` value or
    ``None``. ``exhausted`` names what ran out ("steps" or "timeout") once one did.
    """

    __slots__ = ("max_steps", "used", "deadline", "exhausted")

    def __init__(self, max_steps: int | None = None, deadline: float | None = None):
        self.max_steps = max_steps
        self.used = 0
        self.deadline = deadline
        self.exhausted: str | None = None

    def remaining(self) -> int | None:
        """Steps left, or ``None`` without a step limit."""
        if self.max_steps is None:
            return None
        return max(0, self.max_steps - self.used)


def search(
    ops: Sequence[Op],
    model: Model,
    initial_state: Hashable,
    budget: Budget,
) -> bool | None:
    """Whether ``ops`` (one partition) is linearizable: True, False, or None if out of budget.

    ``ops`` must already be filtered: every ``ok`` (and constraining ``fail``) operation is
    required to take effect, every ``info`` operation may or may not. Steps used are added
    to ``budget.used``.
    """
    n = len(ops)
    if n == 0:
        return True
    required = [op.type != "info" for op in ops]
    read_only = model.read_only
    forcible = [
        required[i] and (is_constraining_fail(op) or read_only(op)) for i, op in enumerate(ops)
    ]
    remaining = sum(required)
    if remaining == 0:
        return True

    events = _events(ops, required)
    next_same = _info_classes(ops, required, events)
    nxt, prv, rank = _entries(n, events, required, next_same)
    head, tail, info_head, dead = 2 * n, 2 * n + 1, 2 * n + 2, 2 * n + 5

    enablers, resetters = _deadline_masks(ops, model, events, forcible)
    reachable = model.reachable
    reach_cache: list[dict[int, bool]] = [{} for _ in range(n)] if reachable else []

    values: list[Hashable] = [initial_state]
    codes: dict[Hashable, int] = {initial_state: 0}
    trans: list[dict[int, int]] = [{} for _ in range(n)]

    def transition(i: int, s: int) -> int:
        op = ops[i]
        try:
            legal, new = model.step(values[s], op)
            if not legal:
                code = -1
            else:
                code = codes.get(new)
                if code is None:
                    code = codes[new] = len(values)
                    values.append(new)
        except ModelError as exc:
            raise ModelError(f"{exc} (process {op.process}, {op.f} {_short(op.value)})") from None
        except (TypeError, ValueError) as exc:
            raise ModelError(
                f"cannot apply {op.f} {_short(op.value)} (process {op.process}) to state "
                f"{_short(values[s])}: {exc}"
            ) from None
        trans[i][s] = code
        return code

    def _result(i: int, s: int) -> int:
        code = trans[i].get(s)
        return transition(i, s) if code is None else code

    def _reaches(i: int, s: int) -> bool:
        ok = reach_cache[i].get(s)
        if ok is None:
            ok = reach_cache[i][s] = bool(reachable(values[s], ops[i]))
        return ok

    prunes = enablers is not None or reachable is not None

    # Cheap necessary condition first: an observer that no operation invoked before its
    # return can enable must pass in the initial state, as nothing can change the state
    # before it (the last change before it would have to be an enabler).
    if prunes:
        for i in range(n):
            if forcible[i] and _result(i, 0) < 0:
                if enablers is not None and not enablers[i]:
                    budget.used += 1
                    return False
                if reachable is not None and not resetters[i] and not _reaches(i, 0):
                    budget.used += 1
                    return False

    limit = budget.remaining()
    deadline = budget.deadline
    check_at = _CLOCK_EVERY if limit is None else min(limit, _CLOCK_EVERY)
    steps = 0

    def pick_for(
        deadline_op: int, first: int, stop: int, state: int, lin: int, parent: int, seen: set
    ) -> int:
        """A candidate after which ``deadline_op`` (an observer illegal now) becomes legal.

        Looks at the required candidates from ``first`` up to the entry ``stop``, then at
        the info candidates invoked before ``stop``; returns the entry, or -1.
        """
        target = trans[deadline_op]
        bound = rank[stop]
        c = first if first >= 0 else stop
        while True:
            if c == stop:
                c = nxt[info_head]
            if rank[c] >= bound:
                return -1
            j = c >> 1
            if not forcible[j]:
                ns = _result(j, state)
                if ns >= 0 and (ns != state or required[j]):
                    t = target.get(ns)
                    if t is None:
                        t = transition(deadline_op, ns)
                    if (
                        t >= 0
                        and (parent < 0 or _result(j, parent) != ns)
                        and (lin | (1 << j) | (ns << n)) not in seen
                    ):
                        return c
            c = nxt[c]

    state = 0
    state_hi = 0  # state << n: the memo key is linearized-bits | state_hi
    lin = 0
    # Stack entries (call entry, state before, how to resume, info bound): _RESUME_NEXT
    # scans on after the entry, _FORCED keeps backtracking, _RESUME_HEAD rescans (after a
    # lookahead pick), _RESUME_INFO scans on among info candidates invoked before the bound.
    stack: list[tuple[int, int, int, int]] = []
    seen: set[int] = set()
    push = stack.append
    pop = stack.pop
    add_seen = seen.add
    fresh = True  # first scan of a configuration: look for forced moves before branching
    first_branch = -1
    # Branching tries required operations first (phase 0), then optional info ones (phase
    # 1, on their own list, up to the rank of the first return entry): a linearization that
    # leaves info operations out is the likelier one to exist, and long histories with many
    # timeouts would otherwise rescan every pending info operation at every step.
    phase = 0
    bound = 0
    # The state before the move into this configuration, if that move was an info operation.
    info_parent = -1
    e = nxt[head]

    while True:
        if e & 1 or (phase and rank[e] >= bound):
            # End of the candidates: in the main list e is the first return entry (or the
            # tail); in the info list, the first info op invoked after that return.
            if not fresh and phase == 0:
                phase = 1
                bound = rank[e]
                e = nxt[info_head]
                continue
            if fresh:
                alive = first_branch >= 0 or rank[nxt[info_head]] < rank[e]
                if alive and e != tail and prunes:
                    # Observers not yet invoked must pass later too; look at the next few.
                    f = nxt[e]
                    looked = 0
                    while f != tail and looked < _FUTURE_OBSERVERS:
                        j = f >> 1
                        if not f & 1 and forcible[j]:
                            looked += 1
                            if _result(j, state) < 0 and (
                                (enablers is not None and not enablers[j] & ~lin)
                                or (
                                    reachable is not None
                                    and not resetters[j] & ~lin
                                    and not _reaches(j, state)
                                )
                            ):
                                alive = False
                                break
                        f = nxt[f]
            if fresh and alive:
                fresh = False
                pick = -1
                if e != tail and forcible[e >> 1]:
                    # The earliest-returning operation is an observer that is illegal now;
                    # try first a candidate after which it becomes legal (one-step lookahead).
                    pick = pick_for(e >> 1, first_branch, e, state, lin, info_parent, seen)
                if pick < 0:
                    if first_branch >= 0:
                        phase = 0
                        e = first_branch
                    else:
                        phase = 1
                        bound = rank[e]
                        e = nxt[info_head]
                    continue
                e = pick
                i = e >> 1
                ns = trans[i][state]
                new_lin = lin | (1 << i)
                add_seen(new_lin | (ns << n))
                push((e, state, _RESUME_HEAD, 0))
                info_parent = -1 if required[i] else state
                state = ns
                state_hi = ns << n
            else:
                # Backtrack past forced moves: their configurations have no alternatives.
                while True:
                    if not stack:
                        budget.used += steps
                        return False
                    e, state, how, bound = pop()
                    i = e >> 1
                    lin ^= 1 << i
                    if required[i]:
                        remaining += 1
                        r = e + 1
                        p = prv[r]
                        q = nxt[r]
                        nxt[p] = r
                        prv[q] = r
                    else:
                        c = next_same[i]
                        if c >= 0:
                            c <<= 1
                            p = prv[c]
                            q = nxt[c]
                            nxt[p] = q
                            prv[q] = p
                    p = prv[e]
                    q = nxt[e]
                    nxt[p] = e
                    prv[q] = e
                    if how != _FORCED:
                        break
                state_hi = state << n
                info_parent = -1
                if stack:
                    into, before, _, _ = stack[-1]
                    if not required[into >> 1]:
                        info_parent = before
                fresh = False
                phase = 1 if how == _RESUME_INFO else 0
                e = nxt[head] if how == _RESUME_HEAD else nxt[e]
                continue
        else:
            i = e >> 1
            steps += 1
            ns = trans[i].get(state)
            if ns is None:
                ns = transition(i, state)
            if ns < 0:
                # A pending observer must become legal before it returns: if no operation
                # still to come can make it so, this configuration is dead.
                if (
                    fresh
                    and forcible[i]
                    and (
                        (enablers is not None and not enablers[i] & ~lin)
                        or (
                            reachable is not None
                            and not resetters[i] & ~lin
                            and not _reaches(i, state)
                        )
                    )
                ):
                    first_branch = -1
                    e = dead
                    continue
                e = nxt[e]
                continue
            if forcible[i]:
                # Observers leave the state alone; in branch mode none is legal (the fresh
                # scan would have forced it), so only a fresh scan gets here with one.
                if not fresh:
                    e = nxt[e]
                    continue
                new_lin = lin | (1 << i)
                key = new_lin | state_hi
                if key in seen:
                    first_branch = -1
                    e = dead
                    continue
                add_seen(key)
                push((e, state, _FORCED, 0))
                info_parent = -1
            elif ns == state and not required[i]:
                e = nxt[e]  # an optional operation that changes nothing is never worth taking
                continue
            else:
                if fresh:
                    if first_branch < 0:
                        first_branch = e
                    e = nxt[e]
                    continue
                if info_parent >= 0 and _result(i, info_parent) == ns:
                    # The info operation just taken made no difference to this one: the
                    # same configuration minus that info operation, reached from the
                    # parent, dominates this one (an unused info op is only more freedom).
                    e = nxt[e]
                    continue
                new_lin = lin | (1 << i)
                new_hi = ns << n
                key = new_lin | new_hi
                if key in seen:
                    e = nxt[e]
                    continue
                add_seen(key)
                push((e, state, _RESUME_INFO if phase else _RESUME_NEXT, bound))
                info_parent = -1 if required[i] else state
                state = ns
                state_hi = new_hi

        # Linearize op i: lift its call and return entries out of their lists.
        lin = new_lin
        p = prv[e]
        q = nxt[e]
        nxt[p] = q
        prv[q] = p
        if required[i]:
            r = e + 1
            p = prv[r]
            q = nxt[r]
            nxt[p] = q
            prv[q] = p
            remaining -= 1
            if remaining == 0:
                budget.used += steps
                return True
        else:
            # The next identical info operation becomes a candidate, in rank order.
            c = next_same[i]
            if c >= 0:
                c <<= 1
                r = rank[c]
                while rank[nxt[p]] < r:
                    p = nxt[p]
                q = nxt[p]
                nxt[p] = c
                prv[c] = p
                nxt[c] = q
                prv[q] = c
        if steps >= check_at:
            if limit is not None and steps >= limit:
                budget.used += steps
                budget.exhausted = "steps"
                return None
            if deadline is not None and perf_counter() > deadline:
                budget.used += steps
                budget.exhausted = "timeout"
                return None
            check_at = steps + _CLOCK_EVERY
            if limit is not None:
                check_at = min(check_at, limit)
        fresh = True
        phase = 0
        first_branch = -1
        e = nxt[head]


def _events(ops: Sequence[Op], required: list[bool]) -> list[tuple[Any, int, int]]:
    """``(position, kind, op)`` for every call (kind 0) and return (kind 1) in real-time order.

    Info operations have no return event. On equal positions calls sort first, so touching
    intervals count as concurrent.
    """
    events = []
    for i, op in enumerate(ops):
        events.append((op.call, 0, i))
        if required[i]:
            events.append((op.ret, 1, i))
    events.sort()
    return events


def _info_classes(
    ops: Sequence[Op], required: list[bool], events: list[tuple[Any, int, int]]
) -> list[int]:
    """For each info operation, the next identical one by invocation (else -1).

    Identical info operations (same function, key and value) are interchangeable, so the
    search linearizes them in invocation order: only the first unlinearized one of each
    class is ever a candidate, which also keeps the list of info candidates short.
    """
    next_same = [-1] * len(ops)
    last_of_class: dict[Any, int] = {}
    for _, kind, i in events:
        if kind == 0 and not required[i]:
            op = ops[i]
            cls = (op.f, op.key, op.value)
            try:
                previous = last_of_class.get(cls, -1)
            except TypeError:  # an unhashable value: no class to share
                continue
            if previous >= 0:
                next_same[previous] = i
            last_of_class[cls] = i
    return next_same


def _entries(
    n: int, events: list[tuple[Any, int, int]], required: list[bool], next_same: list[int]
) -> tuple[list[int], list[int], list[int]]:
    """The two doubly linked lists of entries, and each entry's rank in real-time order.

    The call entry of op ``i`` is ``2i`` and its return entry ``2i + 1``. Required
    operations' call and return entries form the main list, from HEAD ``2n`` to TAIL
    ``2n + 1``; the first info operation of each class (no return entry) forms the info list,
    from ``2n + 2`` to ``2n + 3``. Sentinels that end a scan are odd, and ``2n + 5`` (rank -1)
    marks a dead configuration. An info op is a candidate iff it ranks below the first
    return entry of the main list.
    """
    head, tail, info_head, info_tail = 2 * n, 2 * n + 1, 2 * n + 2, 2 * n + 3
    later = {j for j in next_same if j >= 0}
    size = 2 * n + 6
    nxt = [tail] * size
    prv = [head] * size
    rank = [len(events)] * size
    rank[2 * n + 5] = -1
    last, last_info = head, info_head
    for position, (_, kind, i) in enumerate(events):
        entry = 2 * i + kind
        rank[entry] = position
        if required[i]:
            nxt[last] = entry
            prv[entry] = last
            last = entry
        elif i not in later:
            nxt[last_info] = entry
            prv[entry] = last_info
            last_info = entry
    nxt[last] = tail
    prv[tail] = last
    nxt[last_info] = info_tail
    prv[info_tail] = last_info
    nxt[info_tail] = info_tail
    return nxt, prv, rank


def _signature(op: Op) -> tuple:
    """What a model may look at in an operation (not its process, key or times)."""
    return (op.f, op.value, op.output, op.type, op.error)


def _deadline_masks(
    ops: Sequence[Op], model: Model, events: list[tuple[Any, int, int]], forcible: list[bool]
) -> tuple[list[int] | None, list[int]]:
    """For each observer, the bitsets of operations invoked before it returns that could
    enable it (``model.enables``) or reset the state towards it (``model.resets``).

    Operations are grouped by signature so that each hook runs once per pair of signatures,
    and the masks are built in one sweep over the events.
    """
    enables = model.enables
    resets = model.resets if model.reachable is not None else None
    if enables is None and resets is None:
        return None, []
    n = len(ops)
    sig_ids: dict[Any, int] = {}
    sig_of = [0] * n
    reps: list[Op] = []
    for i, op in enumerate(ops):
        try:
            sig = _signature(op)
            code = sig_ids.get(sig)
        except TypeError:  # unhashable values: its own signature
            sig, code = object(), None
        if code is None:
            code = sig_ids[sig] = len(reps)
            reps.append(op)
        sig_of[i] = code
    enabling: dict[int, list[int]] = {}
    resetting: dict[int, list[int]] = {}
    enablers = [0] * n if enables is not None else None
    resetters = [0] * n
    sig_mask = [0] * len(reps)
    for _, kind, i in events:
        if kind == 0:
            sig_mask[sig_of[i]] |= 1 << i
            continue
        if not forcible[i]:
            continue
        sig = sig_of[i]
        if enablers is not None:
            enablers[i] = _union(sig_mask, _sources(enabling, sig, reps, enables)) & ~(1 << i)
        if resets is not None:
            resetters[i] = _union(sig_mask, _sources(resetting, sig, reps, resets)) & ~(1 << i)
    return enablers, resetters


def _sources(cache: dict[int, list[int]], sig: int, reps: list[Op], hook) -> list[int]:
    """The signatures whose operations ``hook(op, observer)`` accepts for observer ``sig``."""
    found = cache.get(sig)
    if found is None:
        observer = reps[sig]
        found = cache[sig] = [j for j, rep in enumerate(reps) if hook(rep, observer)]
    return found


def _union(masks: list[int], indices: list[int]) -> int:
    out = 0
    for j in indices:
        out |= masks[j]
    return out


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = _SHORT.maxfrozenset = _SHORT.maxdict = 8


def _short(value: Any) -> str:
    """A value for an error message, bounded in size however large the value."""
    return _SHORT.repr(value)
