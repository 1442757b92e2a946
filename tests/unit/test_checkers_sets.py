"""The one-pass check of grow-only set histories (capsim/checkers/sets.py).

Hand-worked histories first (times are invocation and completion positions: ``a`` precedes
``b`` iff ``a.ret < b.call``, so touching intervals are concurrent), then a differential
test against the general search on random small histories.
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from capsim.checkers import ModelError, Op, check_history
from capsim.checkers.linearizability import relevant_operations
from capsim.checkers.models import SET
from capsim.checkers.operations import freeze
from capsim.checkers.search import Budget, search
from capsim.checkers.sets import check_set


def add(p, v, call, ret, type="ok", key=None):
    return Op(process=p, f="add", value=v, call=call, ret=ret, type=type, key=key)


def read(p, seen, call, ret, type="ok", key=None):
    return Op(process=p, f="read", output=seen, call=call, ret=ret, type=type, key=key)


def check(ops, initial=None, **kw):
    return check_history(ops, model="set", initial=initial, **kw)


def witness(ops, initial=None):
    """The violation's sentence and the (process, f) of the operations it names."""
    v = check(ops, initial).violation
    return v["witness"], sorted((op["process"], op["f"]) for op in v["ops"])


# --- verdicts and witnesses, worked by hand ---------------------------------------------


def test_a_read_after_an_acknowledged_add_must_show_it():
    assert check([add(0, 1, 1, 2), read(1, [1], 3, 4)]).verdict == "linearizable"
    text, ops = witness([add(0, 1, 1, 2), read(1, [], 3, 4)])
    assert text == "a read lacks 1, whose add was acknowledged before the read began"
    assert ops == [(0, "add"), (1, "read")]


def test_a_read_overlapping_an_add_may_or_may_not_show_it():
    assert check([add(0, 1, 1, 4), read(1, [], 2, 3)]).verdict == "linearizable"
    assert check([add(0, 1, 1, 4), read(1, [1], 2, 3)]).verdict == "linearizable"


def test_equal_times_count_as_concurrent():
    # The add completes at 2 and the read is invoked at 2: concurrent, so either order.
    assert check([add(0, 1, 1, 2), read(1, [], 2, 3)]).verdict == "linearizable"
    # The read completes at 2 and the add is invoked at 2: the read may show it.
    assert check([read(1, [1], 1, 2), add(0, 1, 2, 3)]).verdict == "linearizable"
    # One position later, both are violations.
    assert check([add(0, 1, 1, 2), read(1, [], 3, 4)]).valid is False
    text, _ = witness([read(1, [1], 1, 2), add(0, 1, 3, 4)])
    assert text == "a read shows 1, which no add had even begun to add"


def test_an_element_nothing_added_is_a_violation_alone():
    text, ops = witness([add(0, 1, 0, 1), read(1, [1, 9], 3, 4)])
    assert text == "a read shows 9, which no operation added"
    assert ops == [(1, "read")]


def test_a_failed_add_never_took_effect():
    ops = [add(0, 9, 0, 1, type="fail"), read(1, [9], 3, 4)]
    text, named = witness(ops)
    assert text == "a read shows 9, whose only add failed"
    assert named == [(0, "add"), (1, "read")]
    # ... and a read that lacks its element is fine, whenever it ran.
    assert check([add(0, 9, 0, 1, type="fail"), read(1, [], 3, 4)]).verdict == "linearizable"


def test_an_indeterminate_add_may_take_effect_any_time_after_its_invocation_or_never():
    late = add(0, 9, 0, 1, type="info")
    assert check([late, read(1, [], 3, 4)]).verdict == "linearizable"  # never
    assert check([late, read(1, [9], 30, 40)]).verdict == "linearizable"  # long after
    assert check([late, read(1, [9], 3, 4), read(2, [], 5, 6)]).valid is False  # not undone
    # It cannot take effect before its invocation.
    text, _ = witness([read(1, [9], 3, 4), add(0, 9, 5, math.inf, type="info")])
    assert text == "a read shows 9, which no add had even begun to add"


def test_indeterminate_reads_constrain_nothing():
    ops = [add(0, 1, 1, 2), Op(process=1, f="read", call=3, ret=math.inf, type="info")]
    assert check(ops).verdict == "linearizable"


def test_the_initial_value_is_in_every_read():
    assert check([read(1, [5], 3, 4)], initial=[5]).verdict == "linearizable"
    assert check([add(0, 5, 0, 1), read(1, [5], 3, 4)], initial=[5]).verdict == "linearizable"
    text, ops = witness([read(1, [], 3, 4)], initial=[5])
    assert text == "a read lacks 5, which the set held initially"
    assert ops == [(1, "read")]


def test_reads_must_nest():
    ops = [add(0, 1, 1, 10), add(1, 2, 1, 10), read(2, [1], 3, 4), read(3, [2], 3, 6)]
    text, named = witness(ops)
    assert text.startswith("two reads saw sets neither of which contains the other")
    assert "shows 1 but not 2" in text
    assert named == [(2, "read"), (3, "read")]


def test_a_read_cannot_lose_what_an_earlier_read_showed():
    ops = [add(0, 1, 1, 10), read(1, [1], 3, 4), read(2, [], 5, 6)]
    text, named = witness(ops)
    assert text == "a read lacks 1, which a read that completed before it began had shown"
    assert named == [(1, "read"), (2, "read")]
    # Overlapping reads may see the add in either order.
    assert check([add(0, 1, 1, 10), read(1, [1], 3, 5), read(2, [], 5, 6)]).valid


def test_a_read_cannot_show_a_later_add_without_an_earlier_one():
    # u is acknowledged at 1, v's add begins at 2; the read spans both yet shows only v.
    ops = [add(0, "u", 0, 1), add(1, "v", 2, 9), read(2, ["v"], 0, 5)]
    text, named = witness(ops)
    assert text == (
        "a read shows 'v' but lacks 'u', though the add of 'u' was acknowledged before any "
        "add of 'v' began"
    )
    assert named == [(0, "add"), (1, "add"), (2, "read")]
    # If the adds overlap, v may come first.
    assert check([add(0, "u", 0, 2), add(1, "v", 2, 9), read(2, ["v"], 0, 5)]).valid


def test_repeated_adds_of_one_element_enter_the_set_once():
    # The element enters with its first add: between the earliest invocation of any add
    # of it and the earliest acknowledgement.
    twice = [add(0, 1, 0, 10), add(1, 1, 5, 6)]
    assert check([*twice, read(2, [], 3, 4)]).verdict == "linearizable"
    assert check([*twice, read(2, [1], 1, 2)]).verdict == "linearizable"
    text, named = witness([*twice, read(2, [], 7, 8)])
    assert text == "a read lacks 1, whose add was acknowledged before the read began"
    assert named == [(1, "add"), (2, "read")]
    # An indeterminate add of it invoked earlier lets an earlier read show it.
    early = [add(0, 1, 5, 6), add(1, 1, 0, math.inf, type="info")]
    assert check([*early, read(2, [1], 1, 2)]).verdict == "linearizable"
    assert check([early[0], read(2, [1], 1, 2)]).valid is False


def test_reads_listing_an_element_twice_are_sets():
    ops = [add(0, 1, 0, 1), add(1, 2, 0, 1), read(2, [1, 1, 2], 3, 4), read(3, [2, 1], 5, 6)]
    assert check(ops).verdict == "linearizable"
    ops = [add(0, 1, 0, 1), add(1, 2, 0, 1), read(2, [1, 1], 3, 4)]
    assert check(ops).valid is False
    # An output extending the previous one by a repeat is the same set, not a larger one.
    adds = [add(0, 1, 0, 1), add(1, 2, 0, 10)]
    for longer in ([1, 1], [1, 2, 2]):
        ops = [*adds, read(2, [1], 2, 3), read(3, longer, 4, 5), read(4, [1], 6, 7)]
        assert check(ops).verdict == ("linearizable" if longer == [1, 1] else "not-linearizable")


def test_outputs_in_any_order_and_of_any_sequence_type_are_sets():
    adds = [add(0, 1, 0, 1), add(1, 2, 0, 1), add(2, 3, 0, 1)]
    ops = [*adds, read(3, (1, 2, 3), 2, 3), read(4, [3, 2, 1], 4, 5), read(5, (2, 1, 3), 6, 7)]
    assert check(ops).verdict == "linearizable"
    ops = [*adds, read(3, (1, 2, 3), 2, 3), read(4, (1, 2), 4, 5)]
    assert check(ops).valid is False


def test_elements_are_compared_frozen():
    ops = [add(0, [1, 2], 0, 1), read(1, [[1, 2]], 3, 4), read(2, [(1, 2)], 5, 6)]
    assert check(ops).verdict == "linearizable"


def test_an_operation_that_completes_before_its_invocation_cannot_be_linearized():
    text, named = witness([add(0, 1, 5, 4), read(1, [1], 6, 7)])
    assert text == "this operation completed before it was invoked"
    assert named == [(0, "add")]


def test_a_read_without_a_set_is_a_violation():
    text, _ = witness([add(0, 1, 0, 1), read(1, None, 3, 4)])
    assert text == "a read completed without returning a set"


def test_keys_are_separate_sets_and_the_failing_key_is_named():
    ops = [
        add(0, 1, 0, 1, key="a"),
        read(1, [1], 3, 4, key="a"),
        add(2, 1, 0, 1, key="b"),
        read(3, [], 3, 4, key="b"),
    ]
    result = check(ops)
    assert result.verdict == "not-linearizable" and result.partitions == 2
    assert result.violation["key"] == "b"
    assert "on key 'b': a read lacks 1" in result.describe()


def test_a_read_that_returns_no_collection_is_a_clear_error():
    with pytest.raises(ModelError, match="a set read must return a collection of elements"):
        check([add(0, 1, 0, 1), read(1, 5, 2, 3)])


_REPORT = """
from capsim.checkers import ModelError, Op, check_history
ops = [Op(process=0, f="add", value=v, call=0, ret=1) for v in "abcdefgh"]
ops += [Op(process=1, f="read", output=list("xyzw") + list("abcdefgh"), call=2, ret=3)]
ops += [Op(process=2, f="read", output=list("abcd"), call=4, ret=5)]
ops += [Op(process=3, f="read", output=list("abce"), call=4, ret=5)]
print(check_history(ops[:9], model="set").violation["witness"])
print(check_history(ops[:8] + ops[9:], model="set").violation["witness"])
"""


def test_the_report_does_not_depend_on_the_hash_seed():
    def report(seed):
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        return subprocess.run(
            [sys.executable, "-c", _REPORT], env=env, capture_output=True, text=True, check=True
        ).stdout

    first = report(1)
    assert "shows 'w', which no operation added" in first
    assert "one shows 'd' but not 'e'" in first
    assert report(2) == first


# --- the step budget -------------------------------------------------------------------


def _long_history(n_adds, lost=False):
    """One key: add i at [2i, 2i + 1], and after each add a read [2i + 1.5, 2i + 2] of 0..i."""
    ops = []
    for i in range(n_adds):
        ops.append(add(0, i, 2 * i, 2 * i + 1))
        seen = list(range(i + 1))
        if lost and i == n_adds // 2:
            seen.remove(i)  # the read right after the add of i misses it
        ops.append(read(1, seen, 2 * i + 1.5, 2 * i + 2))
    return ops


def test_the_check_takes_one_step_per_operation():
    ops = _long_history(1500)
    assert check(ops, max_steps=len(ops)).verdict == "linearizable"
    result = check(ops, max_steps=len(ops) - 1)
    assert result.verdict == "unknown" and result.reason == "steps"
    lost = check(_long_history(1500, lost=True), max_steps=len(ops))
    assert lost.verdict == "not-linearizable"
    assert lost.violation["witness"] == (
        "a read lacks 750, whose add was acknowledged before the read began"
    )


# --- differential test against the general search ---------------------------------------

ELEMENTS = [0, 1, 2, "a", [1]]


@st.composite
def set_histories(draw):
    """Small one-key set histories: (initial value, operations).

    Up to 8 operations on up to 5 elements (one a list, frozen as a tuple), with integer
    times so that equal positions are common, outcomes ok, fail or info (info ones
    sometimes never complete), and reads that mostly show what a hidden order of the adds
    would have shown (in a skewed history, an order that may stray a little outside the
    intervals), sometimes with an element dropped, added or repeated, or no set at all,
    listed in order of addition or sorted.
    Shrinks towards fewer operations, earlier times and ok outcomes.
    """
    initial = draw(st.lists(st.sampled_from([0, 1]), max_size=1, unique=True))
    # A skewed history's hidden order may put an operation a little outside its interval:
    # its reads still nest, so only real-time order can be violated.
    skew = draw(st.sampled_from([0, 0, 2, 4]))
    shapes = []
    for i in range(draw(st.integers(1, 8))):
        f = draw(st.sampled_from(["add", "read"]))
        call = draw(st.integers(0, 10))
        length = draw(st.integers(0, 4))
        if draw(st.integers(0, 99)) == 37:
            length = -1  # completes before it was invoked
        kind = draw(st.sampled_from(["ok", "ok", "info", "fail"]))
        # The hidden linearization point, and whether an info add took effect at all.
        at = (call + draw(st.integers(-skew, max(length, 0) + skew)), i)
        happened = kind == "ok" or (kind == "info" and draw(st.booleans()))
        ret = math.inf if kind == "info" and draw(st.booleans()) else call + length
        value = draw(st.sampled_from(ELEMENTS)) if f == "add" else None
        shapes.append((f, call, ret, kind, at, happened, value))
    ops = []
    for i, (f, call, ret, kind, at, _, value) in enumerate(shapes):
        if f == "add":
            ops.append(add(i, value, call, ret, type=kind))
            continue
        seen = list(initial)
        seen += [s[6] for s in shapes if s[0] == "add" and s[5] and s[4] < at]
        tweak = draw(st.integers(0, 5))
        if tweak == 1 and seen:
            seen.pop(draw(st.integers(0, len(seen) - 1)))
        elif tweak == 2:
            seen.append(draw(st.sampled_from(ELEMENTS)))
        elif tweak == 3 and seen:
            seen.append(seen[0])
        elif tweak == 4 and draw(st.integers(0, 9)) == 0:
            seen = None
        if seen is not None and draw(st.booleans()):
            seen = tuple(sorted(seen, key=repr))  # as capsim records them: one order
        ops.append(read(i, seen if kind == "ok" else None, call, ret, type=kind))
    return initial, ops


def _facts(ops, initial, violation):
    """Assert that what the witness says is true of the history."""
    kind, elements, named = violation.kind, violation.elements, violation.ops
    assert all(any(op is other for other in ops) for op in named)
    adds = [op for op in ops if op.f == "add" and op.type != "fail"]
    start = frozenset(freeze(v) for v in initial)

    def shown(op):
        return frozenset(freeze(v) for v in op.output)

    def adds_of(e):
        return [op for op in adds if freeze(op.value) == e]

    if kind == "inverted":
        assert named[0].ret < named[0].call and named[0].type != "info"
    elif kind == "no-output":
        assert named[0].output is None
    elif kind == "initial":
        assert elements[0] in start and elements[0] not in shown(named[0])
    elif kind == "diverged":
        e, f = elements
        assert e in shown(named[0]) - shown(named[1]) and f in shown(named[1]) - shown(named[0])
    elif kind in ("unexpected", "failed"):
        assert elements[0] in shown(named[-1]) and elements[0] not in start
        assert not adds_of(elements[0])
    elif kind == "early":
        a, r = named
        assert elements[0] in shown(r) and freeze(a.value) == elements[0]
        assert all(op.call > r.ret for op in adds_of(elements[0]))
    elif kind == "lost":
        a, r = named
        assert a.type == "ok" and freeze(a.value) == elements[0] and a.ret < r.call
        assert elements[0] not in shown(r)
    elif kind == "stale":
        before, after = named
        assert before.ret < after.call
        assert elements[0] in shown(before) and elements[0] not in shown(after)
    else:
        assert kind == "reordered"
        e, f = elements
        acked, _, z = named
        assert acked.type == "ok" and freeze(acked.value) == f
        assert all(acked.ret < op.call for op in adds_of(e))
        assert e in shown(z) and f not in shown(z)


@settings(max_examples=500)
@given(set_histories())
def test_agrees_with_the_general_search(history):
    initial, ops = history
    state0 = SET.initial_state(initial)
    relevant = relevant_operations(ops, SET)
    expected = search(relevant, SET, state0, Budget())
    found, violation = check_set(relevant, state0, Budget())
    assert found is expected
    assert check(ops, initial).valid is expected  # through the routing
    event("linearizable" if found else f"violation: {violation.kind}")
    if not found:
        _facts(relevant, initial, violation)


def _random_history(rng):
    """Like ``set_histories`` but from a seeded generator: more and longer histories."""
    initial = [0] if rng.random() < 0.3 else []
    skew = rng.choice([0, 2, 4, 6])
    shapes = []
    for i in range(rng.randint(2, 10)):
        call = rng.randint(0, 12)
        ret = call + rng.randint(0, 4)
        kind = rng.choice(["ok", "ok", "ok", "info", "fail"])
        at = (rng.randint(call - skew, ret + skew), i)
        happened = kind == "ok" or (kind == "info" and rng.random() < 0.5)
        if kind == "info" and rng.random() < 0.5:
            ret = math.inf
        value = rng.randint(0, 3) if rng.random() < 0.6 else None
        shapes.append((call, ret, kind, at, happened, value))
    ops = []
    for i, (call, ret, kind, at, _, value) in enumerate(shapes):
        if value is not None:
            ops.append(add(i, value, call, ret, type=kind))
            continue
        seen = initial + [s[5] for s in shapes if s[5] is not None and s[4] and s[3] < at]
        if rng.random() < 0.1 and seen:
            seen.remove(rng.choice(seen))
        elif rng.random() < 0.05:
            seen.append(rng.randint(0, 4))
        elif rng.random() < 0.05 and seen:
            seen.append(rng.choice(seen))
        if rng.random() < 0.5:
            seen = tuple(sorted(seen))
        ops.append(read(i, seen if kind == "ok" else None, call, ret, type=kind))
    return initial, ops


@pytest.mark.parametrize("seed", range(4))
def test_agrees_with_the_general_search_on_longer_histories(seed):
    rng = random.Random(seed)
    kinds = Counter()
    for _ in range(5000):
        initial, ops = _random_history(rng)
        state0 = SET.initial_state(initial)
        relevant = relevant_operations(ops, SET)
        expected = search(relevant, SET, state0, Budget())
        found, violation = check_set(relevant, state0, Budget())
        assert found is expected, (initial, ops)
        if not found:
            _facts(relevant, initial, violation)
        kinds[violation.kind if violation else "linearizable"] += 1
    # The generator reaches the violations that only real-time order explains.
    assert kinds["linearizable"] > 1000
    assert all(kinds[k] for k in ("lost", "early", "stale", "reordered", "diverged"))


@pytest.mark.parametrize("budget", [0, 1, 3])
def test_a_short_budget_says_unknown_and_never_guesses(budget):
    ops = [add(0, 1, 0, 1), read(1, [1], 3, 4), read(2, [], 5, 6), read(3, [1], 7, 8)]
    result = check(ops, max_steps=budget)
    assert result.verdict == "unknown" and result.reason == "steps"
