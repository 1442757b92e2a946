"""Linearizability of grow-only set histories in one pass, without search.

For the ``set`` model (``add v``; ``read`` returns the whole set) linearizability of one
key's history is decided by sorting and one greedy sweep, in O(n log n + total read size)
time, instead of by the general search (:mod:`capsim.checkers.search`), which grows
quadratically or worse on long set histories. The verdict is exactly the search's: the
same operations are required (``ok``) or optional (``info``), and ``a`` precedes ``b`` iff
``a.ret < b.call`` (equal positions are concurrent).

Why it is exact. A linearization of operations with intervals ``[call, ret]`` (``info``:
``[call, inf)``) is the same as a choice of points ``t`` in the intervals, ordered by
``t`` with ties in any order (the search's candidate rule: an operation may come next iff
it was invoked no later than every pending required operation returned). Then:

1. The set only grows and a read returns all of it, so the distinct sets read must form a
   chain ``L_0 < L_1 < ... < L_{k-1}`` under inclusion, with the initial set ``S_0``
   inside ``L_0``. An ``ok`` read without a set is never legal.
2. An element ``e`` outside ``S_0`` enters the set at its first effective add; later adds
   of it change nothing, and adds of an element of ``S_0`` change nothing at all. So the
   adds of ``e`` are satisfiable iff the entry point can be put in ``[first invocation of
   an ok or info add of e, first completion of an ok add of e]``: the earliest-invoked
   add can take effect anywhere in that window, and every ok add can then be put at or
   after it within its own interval. ``e`` must enter iff some read shows it or some ok add
   adds it; an element that some read shows and that nothing (or only failed adds) added is
   a violation; info adds of elements no read shows are taken never to have happened.
3. The level of ``e`` is the first ``L_j`` containing it. Every valid order is then, block
   by block: the entries of level 0, the reads of ``L_0``, the entries of level 1, the
   reads of ``L_1``, ..., the entries of elements no read shows; within a block the order
   is free.
4. Blocks ``G_0, G_1, ...`` of items with intervals can be given nondecreasing points iff
   no item of a later block completed before an item of an earlier block was invoked. (If
   ``y`` is later than ``x`` and ``y.ret < x.call`` then ``t_y <= y.ret < x.call <= t_x``;
   otherwise put each item at ``max(its call, every earlier block's calls)``, which is at
   most its ``ret``.) The greedy sweep places each block at the earliest such point and
   reports the first item that cannot be placed, with the earlier item that bars it.

So the check is a handful of set operations per read (in C), one dict entry per element,
and one sort of the reads by size and of each level's adds by position. Related results:
Gibbons & Korach (1997) show linearizability checking NP-complete in general but
O(n log n) for registers whose values are written at most once; Emmi & Enea (POPL 2018)
give polynomial checks for collections by violation patterns; the witnesses below are
Jepsen's set checker's "lost" and "unexpected" elements (Kingsbury), plus the patterns
that only real-time order between operations explains.

A violation comes back as a :class:`SetViolation`: a kind, the elements it names and the
two or three operations (one, when one says it all) that show it. The kinds:

* ``inverted``: a required operation completed before it was invoked.
* ``no-output``: an ``ok`` read returned no set.
* ``initial``: a read lacks ``e``, which the set held initially.
* ``diverged``: two reads' sets do not nest: one shows ``e`` but not ``f``, the other
  ``f`` but not ``e``.
* ``unexpected``: a read shows ``e``, which no operation added.
* ``failed``: a read shows ``e``, whose only adds failed.
* ``early``: a read shows ``e``, though every add of ``e`` began after the read completed.
* ``lost``: a read lacks ``e``, whose add was acknowledged before the read began.
* ``stale``: a read lacks ``e``, which a read that completed before it began had shown.
* ``reordered``: a read shows ``e`` but lacks ``f``, though the add of ``f`` was
  acknowledged before any add of ``e`` began (the read overlaps both).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from capsim.checkers.errors import ModelError
from capsim.checkers.models import SET, Model
from capsim.checkers.operations import Op, freeze
from capsim.checkers.search import Budget

__all__ = ["SetViolation", "blame_failed", "check_set", "handles"]

# Look at the wall clock once every this many operations.
_CLOCK_EVERY = 256


@dataclass(frozen=True, slots=True)
class SetViolation:
    """Why a set history is not linearizable: a ``kind`` (see the module docstring), the
    ``elements`` it names, and the few operations that show it, in the order the kind's
    sentence mentions them."""

    kind: str
    elements: tuple[Any, ...]
    ops: tuple[Op, ...]


def handles(model: Model, initial_state: Any) -> bool:
    """Whether ``model`` is the built-in grow-only set (whatever its partition), so that
    :func:`check_set` decides exactly what the search would."""
    return model.step is SET.step and isinstance(initial_state, frozenset)


class _Adds:
    """The adds of one element: the earliest invoked (ok or info) and the earliest
    completed ok one (``None`` if all are info)."""

    __slots__ = ("element", "index", "first", "acked")

    def __init__(self, element: Any, index: int, op: Op, required: bool):
        self.element = element
        self.index = index  # input position of ``first``: a deterministic order
        self.first = op
        self.acked = op if required else None


class _Timeout(Exception):
    pass


class _Duplicates(Exception):
    """A read's output repeats an element: sort by the sizes of the sets, not the lists."""


class _Clock:
    __slots__ = ("deadline", "ticks")

    def __init__(self, deadline: float | None):
        self.deadline = deadline
        self.ticks = 0

    def tick(self) -> None:
        self.ticks += 1
        if (
            self.deadline is not None
            and self.ticks % _CLOCK_EVERY == 0
            and perf_counter() > self.deadline
        ):
            raise _Timeout


def check_set(
    ops: Sequence[Op],
    initial: frozenset,
    budget: Budget,
) -> tuple[bool | None, SetViolation | None]:
    """Whether ``ops`` (one key of a ``set`` history) is linearizable from ``initial``.

    ``ops`` is filtered as for :func:`capsim.checkers.search.search`: every operation but
    an ``info`` one is required to have taken effect (``info`` reads are ignored).
    Returns ``(True, None)``, ``(False, violation)``, or ``(None, None)`` when the budget
    runs out (then ``budget.exhausted`` says which). One step is one operation: the check
    needs ``len(ops)`` steps and, if fewer remain, says "unknown" without starting; the
    wall-clock deadline is looked at every few hundred operations.
    """
    n = len(ops)
    if n == 0:
        return True, None
    limit = budget.remaining()
    if limit is not None and limit < n:
        budget.used += limit
        budget.exhausted = "steps"
        return None, None
    budget.used += n
    clock = _Clock(budget.deadline)
    try:
        found = _scan(ops, initial, clock)
        if isinstance(found, SetViolation):
            return False, found
        adds, reads = found
        chain = _chain(reads, initial, adds, clock)
        if isinstance(chain, SetViolation):
            return False, chain
        violation = _sweep(adds, *chain, clock)
    except _Timeout:
        budget.exhausted = "timeout"
        return None, None
    return violation is None, violation


def _scan(
    ops: Sequence[Op], initial: frozenset, clock: _Clock
) -> SetViolation | tuple[dict[Any, _Adds], list[Op]]:
    """Each element's adds and the required reads; or the first operation illegal alone."""
    adds: dict[Any, _Adds] = {}
    reads: list[Op] = []
    for index, op in enumerate(ops):
        clock.tick()
        required = op.type != "info"
        if required and op.ret < op.call:
            return SetViolation("inverted", (), (op,))
        f = op.f
        if f == "add":
            try:
                element = freeze(op.value)
                if element in initial:
                    continue  # an add of an element already there changes nothing
            except TypeError as exc:
                raise ModelError(
                    f"cannot add {op.value!r} (process {op.process}) to a set: {exc}"
                ) from None
            seen = adds.get(element)
            if seen is None:
                adds[element] = _Adds(element, index, op, required)
                continue
            if op.call < seen.first.call:
                seen.first, seen.index = op, index
            if required and (seen.acked is None or op.ret < seen.acked.ret):
                seen.acked = op
        elif f == "read":
            if not required:
                continue  # an indeterminate read observed nothing
            if op.output is None:
                return SetViolation("no-output", (), (op,))
            reads.append(op)
        else:
            raise ModelError(f"set has no operation {f!r}")
    return adds, reads


def _as_set(op: Op) -> frozenset:
    """The set a read returned, as the model compares it (elements frozen)."""
    out = op.output
    try:
        # For hashable elements freeze(v) == v, so this is the model's set, built in C.
        return frozenset(out)
    except TypeError:
        pass
    try:
        return frozenset(freeze(v) for v in out)
    except TypeError:
        raise ModelError(
            f"a set read must return a collection of elements, got {out!r} (process {op.process})"
        ) from None


class _Levels:
    """The chain of distinct sets read, built smallest first: the reads of each level, the
    elements each level shows first, and the current (largest so far) set."""

    __slots__ = ("reads", "fresh", "current")

    def __init__(self) -> None:
        self.reads: list[list[Op]] = []
        self.fresh: list[frozenset] = []
        self.current: set | None = None

    def grow(self, op: Op, fresh: frozenset, adds: dict[Any, _Adds]) -> SetViolation | None:
        """A new level: ``op`` shows ``fresh`` on top of the current set."""
        if not adds.keys() >= fresh:
            element = min((e for e in fresh if e not in adds), key=repr)
            return SetViolation("unexpected", (element,), (op,))
        self.reads.append([op])
        self.fresh.append(fresh)
        self.current |= fresh
        return None

    def first(self, op: Op, s: frozenset, initial: frozenset, adds) -> SetViolation | None:
        """The smallest set read, which must hold the initial set."""
        if not initial <= s:
            return SetViolation("initial", (min(initial - s, key=repr),), (op,))
        self.current = set(initial)
        return self.grow(op, s - initial, adds)

    def next(self, op: Op, s: frozenset, adds) -> SetViolation | None:
        """A set at least as large as the current one: the same, or a new level above it."""
        current = self.current
        if len(s) == len(current):
            if s == current:
                self.reads[-1].append(op)
                return None
        elif current <= s:
            return self.grow(op, s - current, adds)
        return _diverged(self.reads[-1][0], current, op, s)

    def result(self, initial: frozenset) -> tuple[list[list[Op]], list[frozenset], set | frozenset]:
        return self.reads, self.fresh, initial if self.current is None else self.current


def _diverged(a: Op, sa: set | frozenset, b: Op, sb: frozenset) -> SetViolation:
    e = min(sa - sb, key=repr)
    f = min(sb - sa, key=repr)
    return SetViolation("diverged", (e, f), (a, b))


def _chain(
    reads: list[Op], initial: frozenset, adds: dict[Any, _Adds], clock: _Clock
) -> SetViolation | tuple[list[list[Op]], list[frozenset], set | frozenset]:
    """The levels (reads of each distinct set, in size order; the elements each shows
    first; the largest set read), or why the reads cannot all be legal."""
    try:
        return _chain_by_length(reads, initial, adds, clock)
    except _Duplicates:
        return _chain_by_size(reads, initial, adds, clock)


def _chain_by_length(reads, initial, adds, clock):
    """:func:`_chain` over the reads sorted by output length, holding one set at a time.

    The length is the set's size unless an output repeats an element; then ``_Duplicates``
    is raised and :func:`_chain_by_size` starts over. An output (tuple or list) equal to
    the current level's, or extending it, is compared element by element without hashing
    the shared part: capsim's sorted outputs mostly do, as elements are numbered in order.
    """
    try:
        order = sorted(reads, key=lambda op: len(op.output))
    except TypeError:
        raise _Duplicates from None  # no len(): let the general path report it
    levels = _Levels()
    seq: Any = None  # the output of the current level's first read
    for op in order:
        clock.tick()
        out = op.output
        n = len(out)
        if seq is not None and type(out) is type(seq) and type(out) in (tuple, list):
            p = len(seq)
            if n == p and out == seq:
                levels.reads[-1].append(op)
                continue
            if n > p and out[:p] == seq:
                try:
                    fresh = frozenset(out[p:])
                except TypeError:  # unhashable elements: compare frozen sets below
                    fresh = None
                if fresh is not None:
                    if len(fresh) != n - p or not levels.current.isdisjoint(fresh):
                        raise _Duplicates
                    found = levels.grow(op, fresh, adds)
                    if found is not None:
                        return found
                    seq = out
                    continue
        s = _as_set(op)
        if len(s) != n:
            raise _Duplicates
        if seq is None:
            found = levels.first(op, s, initial, adds)
        else:
            found = levels.next(op, s, adds)
        if found is not None:
            return found
        if levels.reads[-1][0] is op:
            seq = out
    return levels.result(initial)


def _chain_by_size(reads, initial, adds, clock):
    """:func:`_chain` over every distinct set read, sorted by size (equal sets together)."""
    groups: dict[frozenset, list[Op]] = {}
    for op in reads:
        clock.tick()
        groups.setdefault(_as_set(op), []).append(op)
    levels = _Levels()
    for s in sorted(groups, key=len):
        for op in groups[s]:
            if levels.current is None:
                found = levels.first(op, s, initial, adds)
            else:
                found = levels.next(op, s, adds)
            if found is not None:
                return found
    return levels.result(initial)


def blame_failed(violation: SetViolation, ops: Sequence[Op]) -> SetViolation:
    """An ``unexpected`` element turned into ``failed`` if ``ops`` (the whole history, with
    the ``fail`` operations the check dropped) holds a failed add of it on the read's key."""
    if violation.kind != "unexpected":
        return violation
    element = violation.elements[0]
    key = violation.ops[-1].key
    for op in ops:
        if op.type == "fail" and op.f == "add" and op.key == key:
            try:
                if freeze(op.value) == element:
                    return SetViolation("failed", (element,), (op, *violation.ops))
            except TypeError:
                continue
    return violation


def _sweep(
    adds: dict[Any, _Adds],
    level_reads: list[list[Op]],
    fresh_at: list[frozenset],
    top: set | frozenset,
    clock: _Clock,
) -> SetViolation | None:
    """Place the blocks in order at their earliest points; the first item that cannot be
    placed, with the earlier item that bars it, is the violation."""
    k = len(level_reads)
    t_add = t_read = -math.inf  # the latest invocation among adds / reads of earlier blocks
    x_add: _Adds | None = None
    x_read: Op | None = None
    add_level = read_level = -1
    for j in range(k + 1):
        # Set iteration order varies with the hash seed; sorting by position keeps the
        # reported violation the same from run to run.
        if j < k:
            block = sorted((adds[e] for e in fresh_at[j]), key=lambda a: a.index)
        else:
            block = sorted(
                (a for e, a in adds.items() if a.acked is not None and e not in top),
                key=lambda a: a.index,
            )
        bound = max(t_add, t_read)
        for a in block:
            y = a.acked
            if y is not None and y.ret < bound:
                if t_read > y.ret:
                    return SetViolation("lost", (a.element,), (y, x_read))
                z = level_reads[add_level][0]
                return SetViolation("reordered", (x_add.element, a.element), (y, x_add.first, z))
        for a in block:
            clock.tick()
            if a.first.call > t_add:
                t_add, x_add, add_level = a.first.call, a, j
        if j == k:
            break
        bound = max(t_add, t_read)
        reads = level_reads[j]
        for y in reads:
            if y.ret < bound:
                if t_add > y.ret:
                    return SetViolation("early", (x_add.element,), (x_add.first, y))
                shown = min(fresh_at[read_level + 1], key=repr)
                return SetViolation("stale", (shown,), (y, x_read))
        for r in reads:
            if r.call > t_read:
                t_read, x_read, read_level = r.call, r, j
    return None
