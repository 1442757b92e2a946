"""The linearizability checker on small hand-made histories whose verdicts are worked out by hand.

Times are invocation and completion positions: ``a`` precedes ``b`` iff ``a.ret < b.call``.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from dataclasses import replace

import pytest

from capsim.checkers import CheckResult, ModelError, Op, check_history
from capsim.checkers.linearizability import check_operations, relevant_operations
from capsim.checkers.models import MODELS
from capsim.history import History


def w(p, v, call, ret, **kw):
    return Op(process=p, f="write", value=v, call=call, ret=ret, **kw)


def r(p, v, call, ret, **kw):
    return Op(process=p, f="read", output=v, call=call, ret=ret, **kw)


def cas(p, a, b, call, ret, **kw):
    return Op(process=p, f="cas", value=(a, b), call=call, ret=ret, **kw)


def verdict(ops, model="cas-register", initial=None, **kw):
    return check_history(ops, model=model, initial=initial, **kw).verdict


# --- basic verdicts ---------------------------------------------------------------------


def test_empty_history_is_linearizable():
    assert verdict([]) == "linearizable"


def test_read_after_completed_write_sees_it():
    # write 1 completes at 2; the read starts at 3, so it must see 1.
    assert verdict([w(0, 1, 1, 2), r(1, 1, 3, 4)]) == "linearizable"
    assert verdict([w(0, 1, 1, 2), r(1, None, 3, 4)]) == "not-linearizable"


def test_concurrent_read_may_see_old_or_new_value():
    # The read overlaps the write, so it may be ordered before it (nil) or after it (1).
    assert verdict([w(0, 1, 1, 4), r(1, None, 2, 3)]) == "linearizable"
    assert verdict([w(0, 1, 1, 4), r(1, 1, 2, 3)]) == "linearizable"
    assert verdict([w(0, 1, 1, 4), r(1, 2, 2, 3)]) == "not-linearizable"


def test_touching_intervals_count_as_concurrent():
    # The write's completion and the read's invocation share position 2: not "before".
    assert verdict([w(0, 1, 1, 2), r(1, None, 2, 3)]) == "linearizable"


def test_two_reads_cannot_see_values_in_an_order_the_writes_forbid():
    # Both writes overlap everything, but once one read saw 2 and a later read saw 1, the
    # order is write 1, write 2, ... leaving no write 1 to go back to: not linearizable.
    ops = [w(0, 1, 1, 10), w(1, 2, 1, 10), r(2, 2, 2, 3), r(3, 1, 4, 5), r(4, 2, 6, 7)]
    assert verdict(ops) == "not-linearizable"
    # Without the last read the order write 2, read 2, write 1, read 1 works.
    assert verdict(ops[:-1]) == "linearizable"


# --- initial values ---------------------------------------------------------------------


def test_initial_value_is_what_reads_see_before_any_write():
    ops = [r(0, 0, 1, 2)]
    assert verdict(ops) == "not-linearizable"  # registers start as null
    assert verdict(ops, initial=0) == "linearizable"


def test_kv_missing_key_reads_empty_string_and_initial_overrides_it():
    ops = [Op(process=0, f="get", output="", call=1, ret=2)]
    assert verdict(ops, model="kv") == "linearizable"
    assert verdict(ops, model="kv", initial="z") == "not-linearizable"


# --- outcome semantics --------------------------------------------------------------------


def test_failed_write_did_not_happen():
    # fail means it certainly did not take effect, so nobody may read its value.
    assert verdict([w(0, 1, 1, 2, type="fail"), r(1, 1, 3, 4)]) == "not-linearizable"
    assert verdict([w(0, 1, 1, 2, type="fail"), r(1, None, 3, 4)]) == "linearizable"


def test_indeterminate_write_may_take_effect_later_or_never():
    # info: may take effect any time after its invocation, even long after it "completed".
    info = w(0, 1, 1, 2, type="info")
    assert verdict([info, r(1, None, 3, 4)]) == "linearizable"  # never, or not yet
    assert verdict([info, r(1, None, 3, 4), r(2, 1, 5, 6)]) == "linearizable"  # late
    # ...but it cannot take effect twice: nil, 1, nil, 1 needs two writes of 1.
    ops = [info, r(1, None, 3, 4), r(2, 1, 5, 6), r(3, None, 7, 8)]
    assert verdict(ops) == "not-linearizable"


def test_indeterminate_write_cannot_take_effect_before_its_invocation():
    # The read completed at 2, before the write was invoked at 3.
    assert verdict([r(1, 1, 1, 2), w(0, 1, 3, math.inf, type="info")]) == "not-linearizable"


def test_never_completed_operation_is_indeterminate():
    # An invocation without completion (ret infinite, type info) behaves like info.
    ops = [w(0, 1, 1, math.inf, type="info"), r(1, 1, 5, 6), r(2, 1, 7, 8)]
    assert verdict(ops) == "linearizable"


def test_indeterminate_read_constrains_nothing():
    # It returned nothing we can trust, so its (absent) value cannot clash with anything.
    ops = [w(0, 1, 1, 2), Op(process=1, f="read", output=7, type="info", call=3, ret=4)]
    assert verdict(ops) == "linearizable"


def test_cas_that_compared_false_constrains_the_state():
    # The register certainly holds 1 while the CAS [1 2] runs, yet it says it compared
    # false ("mismatch"): impossible.
    mismatch = cas(1, 1, 2, 3, 4, type="fail", error="mismatch")
    assert verdict([w(0, 1, 1, 2), mismatch]) == "not-linearizable"
    # Holding 0 instead, comparing false is right.
    assert verdict([w(0, 0, 1, 2), mismatch]) == "linearizable"


def test_failed_cas_without_mismatch_did_not_happen():
    # Any other failed CAS (a timeout refused up front, Knossos's :fail) is simply dropped.
    other = cas(1, 1, 2, 3, 4, type="fail", error="unavailable")
    assert verdict([w(0, 1, 1, 2), other, r(2, 1, 5, 6)]) == "linearizable"
    assert verdict([w(0, 1, 1, 2), other, r(2, 2, 5, 6)]) == "not-linearizable"


def test_successful_cas_needs_the_expected_value():
    assert verdict([w(0, 1, 1, 2), cas(1, 1, 2, 3, 4), r(2, 2, 5, 6)]) == "linearizable"
    assert verdict([w(0, 3, 1, 2), cas(1, 1, 2, 3, 4)]) == "not-linearizable"


def test_indeterminate_cas_applies_only_when_it_matches():
    # The info CAS [1 2] can turn 1 into 2, but cannot produce 2 from 0.
    info = cas(1, 1, 2, 3, math.inf, type="info")
    assert verdict([w(0, 1, 1, 2), info, r(2, 2, 5, 6)]) == "linearizable"
    assert verdict([w(0, 0, 1, 2), info, r(2, 2, 5, 6)]) == "not-linearizable"


def test_identical_indeterminate_writes_may_each_take_effect_once():
    # The reads see 1, nil, 1: that needs a write of 1, a write of nil, and a second write
    # of 1. Identical info writes are interchangeable but each can take effect only once.
    reads = [r(1, 1, 5, 6), r(2, None, 7, 8), r(3, 1, 9, 10)]
    one = [w(0, 1, 1, 2, type="info")]
    two = one + [w(4, 1, 1, 2, type="info")]
    nil = [w(5, None, 6, 7, type="info")]
    assert verdict(one + nil + reads) == "not-linearizable"  # only one write of 1
    assert verdict(two + reads) == "not-linearizable"  # nothing writes nil back
    assert verdict(two + nil + reads) == "linearizable"


# --- other models ---------------------------------------------------------------------------


def test_mutex_cannot_be_held_twice():
    acquire = dict(f="acquire")
    ops = [Op(process=0, call=1, ret=2, **acquire), Op(process=1, call=3, ret=4, **acquire)]
    assert verdict(ops, model="mutex") == "not-linearizable"
    release = Op(process=0, f="release", call=2.5, ret=2.7)
    assert verdict(ops + [release], model="mutex") == "linearizable"


def test_kv_append_order_must_match_what_gets_saw():
    a = Op(process=0, f="append", value="a", call=1, ret=5)
    b = Op(process=1, f="append", value="b", call=1, ret=5)
    get_ba = Op(process=2, f="get", output="ba", call=6, ret=7)
    get_ab = Op(process=3, f="get", output="ab", call=8, ret=9)
    assert verdict([a, b, get_ba], model="kv") == "linearizable"
    assert verdict([a, b, get_ba, get_ab], model="kv") == "not-linearizable"


def test_keys_are_independent_registers():
    # Each key alone is fine; a register model that mixed keys up would reject the read.
    ops = [w(0, 1, 1, 2, key="a"), w(1, 2, 3, 4, key="b"), r(2, 1, 5, 6, key="a")]
    result = check_history(ops, model="register")
    assert result.verdict == "linearizable"
    assert result.partitions == 2


def test_multi_register_transactions():
    write = Op(process=0, f="txn", value=(("write", "x", 1), ("write", "y", 1)), call=1, ret=2)
    torn = Op(
        process=1,
        f="txn",
        value=(("read", "x", None), ("read", "y", None)),
        output=(("read", "x", 1), ("read", "y", 0)),
        call=3,
        ret=4,
    )
    whole = replace(torn, output=(("read", "x", 1), ("read", "y", 1)))
    init = {"x": 0, "y": 0}
    assert verdict([write, whole], model="multi-register", initial=init) == "linearizable"
    assert verdict([write, torn], model="multi-register", initial=init) == "not-linearizable"


# --- results, budget, errors --------------------------------------------------------------


def _hard_history():
    # Many concurrent writes of distinct values and reads that pin a late order: the
    # search needs many steps to establish the verdict.
    ops = [w(i, i, 1, 100) for i in range(8)]
    ops += [r(10 + k, v, 101 + 2 * k, 102 + 2 * k) for k, v in enumerate([7, 7])]
    ops += [w(20, 99, 200, 201), r(21, 3, 202, 203)]
    return ops


def test_step_budget_gives_unknown_and_a_larger_budget_gives_the_verdict():
    full = check_history(_hard_history(), model="register")
    assert full.verdict == "not-linearizable"
    assert full.steps > 10
    starved = check_history(_hard_history(), model="register", max_steps=5)
    assert starved.verdict == "unknown"
    assert starved.reason == "steps"
    assert starved.violation is None
    assert starved.to_json()["reason"] == "steps"
    assert (full.exit_code, starved.exit_code) == (1, 3)


def test_steps_are_deterministic():
    first = check_history(_hard_history(), model="register")
    second = check_history(_hard_history(), model="register")
    assert first.steps == second.steps


def test_zero_timeout_gives_unknown():
    # Seven acquires and six releases all concurrent, then one more acquire: it needs a
    # seventh release, and proving there is none takes the search over 10,000 steps. The
    # deadline is checked every few thousand steps, so a zero timeout stops it first.
    ops = [Op(process=i, f="acquire", call=1, ret=100) for i in range(7)]
    ops += [Op(process=10 + i, f="release", call=1, ret=100) for i in range(6)]
    ops += [Op(process=99, f="acquire", call=101, ret=102)]
    assert check_history(ops, model="mutex").steps > 10_000
    result = check_history(ops, model="mutex", timeout_s=0.0)
    assert result.verdict == "unknown"
    assert result.reason == "timeout"


def test_result_to_json_and_describe():
    result = check_history([w(0, 1, 1, 2), r(1, None, 3, 4)], model="register")
    assert isinstance(result, CheckResult)
    data = result.to_json()
    assert {"verdict", "ops", "elapsed_s", "steps", "violation"} <= set(data)
    assert data["verdict"] == "not-linearizable" and data["ops"] == 2
    json.dumps(data)  # plain data all the way down
    text = result.describe()
    lines = text.splitlines()
    # One summary line, one header line, then one line per operation of the violation.
    assert len(lines) == 2 + len(result.violation["ops"])
    assert "process 0" in text and "write 1" in text and "read -> nil" in text
    assert result.valid is False
    assert check_history([w(0, 1, 1, 2)], model="register").exit_code == 0


def test_unsupported_operation_is_a_model_error_naming_it():
    with pytest.raises(ModelError, match="'register' has no operation 'cas'.*process 3"):
        check_history([cas(3, 0, 1, 1, 2)], model="register")


def test_history_object_is_checked_with_its_outcomes():
    history = History()
    history.append(process=0, type="invoke", f="write", key="k", value=1, time=0.0)
    history.append(process=0, type="ok", f="write", key="k", value=1, time=1.0)
    history.append(process=1, type="invoke", f="cas", key="k", value=[1, 2], time=2.0)
    history.append(
        process=1, type="fail", f="cas", key="k", value=[1, 2], time=3.0, error="mismatch"
    )
    # The register certainly held 1 during the CAS, so "compared false" is impossible.
    assert check_history(history, model="cas-register").verdict == "not-linearizable"
    assert check_history(history, model=None).model == "cas-register"


# --- the reported violation --------------------------------------------------------------


def test_violation_is_the_stale_read_and_the_writes_that_make_it_stale():
    # write 1, then write 2 completes, then a read sees 1: the read and both writes are
    # needed (without write 2 the read is fine; without write 1 nobody wrote 1), the
    # unrelated operations are dropped.
    ops = [
        w(0, 1, 1, 2),
        r(5, 1, 2.5, 2.8),
        w(1, 2, 3, 4),
        r(2, 2, 5, 6),
        w(3, 3, 5, 20),
        r(4, 1, 7, 8),
    ]
    result = check_history(ops, model="register")
    violation = result.violation
    assert violation["minimal"] and violation["explained"]
    kept = sorted((op["process"], op["f"]) for op in violation["ops"])
    assert kept == [(0, "write"), (1, "write"), (4, "read")]


def test_read_of_a_value_nobody_wrote_is_reported_alone():
    result = check_history([w(0, 1, 1, 2), r(1, 5, 3, 4), r(2, 1, 5, 6)], model="register")
    violation = result.violation
    assert violation["explained"] is False and violation["minimal"]
    assert [(op["process"], op["output"]) for op in violation["ops"]] == [(1, 5)]


def _brute_force(ops, model, initial):
    """Linearizable? by trying every subset of info ops and every order (tiny inputs only)."""
    m = MODELS[model]
    ops = relevant_operations(ops, m)
    required = [op for op in ops if op.type != "info"]
    optional = [op for op in ops if op.type == "info"]
    start = m.initial_state(initial)
    for k in range(len(optional) + 1):
        for chosen in itertools.combinations(optional, k):
            for order in itertools.permutations(required + list(chosen)):
                if any(
                    later.type != "info" and later.ret < earlier.call
                    for x, earlier in enumerate(order)
                    for later in order[x + 1 :]
                ):
                    continue
                state, legal = start, True
                for op in order:
                    legal, state = m.step(state, op)
                    if not legal:
                        break
                if legal:
                    return True
    return False


def _random_history(rng, model):
    ops = []
    for i in range(rng.randint(1, 6)):
        call = rng.randint(0, 12)
        ret = call + rng.randint(1, 6)
        kind = rng.choice(["ok", "ok", "ok", "info", "fail"])
        if model == "cas-register":
            f = rng.choice(["read", "write", "cas"])
            value = {"read": None, "write": rng.randint(0, 2)}.get(
                f, (rng.randint(0, 2), rng.randint(0, 2))
            )
            output = rng.randint(0, 2) if f == "read" and kind == "ok" else None
            error = "mismatch" if kind == "fail" and f == "cas" and rng.random() < 0.8 else None
        elif model == "kv":
            f = rng.choice(["get", "put", "append"])
            value = None if f == "get" else rng.choice("ab")
            output = rng.choice(["", "a", "b", "ab", "ba"]) if f == "get" and kind == "ok" else None
            error = None
        else:
            f, value, output, error = rng.choice(["acquire", "release"]), None, None, None
        if kind == "info" and rng.random() < 0.5:
            ret = math.inf
        ops.append(
            Op(
                process=i,
                f=f,
                value=value,
                output=output,
                type=kind,
                call=call,
                ret=ret,
                error=error,
            )
        )
    return ops


@pytest.mark.parametrize("seed", range(4))
def test_agrees_with_brute_force_and_reports_minimal_violations(seed):
    # Differential test against exhaustive enumeration on small random histories, including
    # info, fail and mismatch outcomes, and a check of the reported violation's minimality.
    rng = random.Random(seed)
    for _ in range(150):
        model = rng.choice(["cas-register", "kv", "mutex"])
        initial = {"cas-register": 0, "kv": "", "mutex": None}[model]
        ops = _random_history(rng, model)
        result = check_history(ops, model=model, initial=initial)
        expected = _brute_force(ops, model, initial)
        assert result.valid is expected, ops
        if expected:
            continue
        kept = [op for op in ops if op.to_dict() in result.violation["ops"]]
        assert not _brute_force(kept, model, initial)
        unordered = [replace(op, call=0, ret=1 if op.type != "info" else math.inf) for op in kept]
        explained = _brute_force(unordered, model, initial)
        assert result.violation["explained"] is explained
        for i in range(len(kept)):
            rest = kept[:i] + kept[i + 1 :]
            rest_unordered = unordered[:i] + unordered[i + 1 :]
            # 1-minimal: removing any one operation makes it linearizable, or (for an
            # explained violation) leaves a value no remaining operation could produce.
            assert _brute_force(rest, model, initial) or (
                explained and not _brute_force(rest_unordered, model, initial)
            ), kept


def test_a_register_read_of_several_values_is_reported_as_siblings():
    ops = [
        Op(process=0, f="write", value=1, type="ok", call=0, ret=1, key="k"),
        Op(process=1, f="write", value=2, type="ok", call=0, ret=1, key="k"),
        Op(process=2, f="read", output=(1, 2), type="ok", call=2, ret=3, key="k"),
    ]
    result = check_operations(ops, "cas-register")
    assert result.verdict == "not-linearizable"
    assert "several values (siblings" in result.violation["witness"]
    assert [op["output"] for op in result.violation["ops"]] == [[1, 2]]
    # A register may hold a list that some write wrote: that read is fine.
    ops[1] = Op(process=1, f="write", value=(1, 2), type="ok", call=0, ret=1, key="k")
    assert check_operations(ops, "cas-register").verdict == "linearizable"
