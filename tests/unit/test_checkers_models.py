"""The checker's models: each step rule, initial values, partitioning, and the pruning hooks."""

from __future__ import annotations

import itertools

import pytest

from capsim.checkers.errors import ModelError
from capsim.checkers.models import (
    CAS_REGISTER,
    KV,
    MODELS,
    MULTI_REGISTER,
    MUTEX,
    REGISTER,
    SET,
    get_model,
)
from capsim.checkers.operations import Op


def test_registry_names_the_models_the_issue_asks_for():
    # A plain dict from name to model, so the CLI can list and look them up.
    for name in ("register", "cas-register", "kv", "mutex", "multi-register"):
        assert MODELS[name].name == name
    assert get_model("kv") is KV
    assert get_model(KV) is KV


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ModelError, match="unknown model 'regster'.*register"):
        get_model("regster")


def test_register_read_must_see_the_current_value_and_write_replaces_it():
    read1 = Op(process=0, f="read", output=1)
    assert REGISTER.step(1, read1) == (True, 1)
    assert REGISTER.step(2, read1)[0] is False
    assert REGISTER.step(2, Op(process=0, f="write", value=5)) == (True, 5)


def test_register_starts_null_unless_given_an_initial_value():
    assert REGISTER.initial_state() is None
    assert REGISTER.initial_state(0) == 0


def test_cas_register_ok_cas_needs_the_expected_value_and_swaps():
    cas = Op(process=0, f="cas", value=(1, 2))
    assert CAS_REGISTER.step(1, cas) == (True, 2)
    assert CAS_REGISTER.step(3, cas)[0] is False


def test_cas_that_compared_false_needs_a_different_value_and_changes_nothing():
    # capsim's "error": "mismatch" and Porcupine's etcd ":fail :cas": it ran and compared false.
    mismatch = Op(process=0, f="cas", value=(1, 2), type="fail", error="mismatch")
    assert CAS_REGISTER.step(3, mismatch) == (True, 3)
    assert CAS_REGISTER.step(1, mismatch)[0] is False


def test_indeterminate_cas_swaps_only_if_the_value_matched():
    # An info CAS may have run: if the value matched it swapped, otherwise nothing changed.
    info = Op(process=0, f="cas", value=(1, 2), type="info")
    assert CAS_REGISTER.step(1, info) == (True, 2)
    assert CAS_REGISTER.step(3, info) == (True, 3)


def test_register_model_has_no_cas():
    with pytest.raises(ModelError, match="register has no operation 'cas'"):
        REGISTER.step(0, Op(process=0, f="cas", value=(0, 1)))


def test_kv_get_put_append_and_missing_key_reads_empty_string():
    state = KV.initial_state()
    assert state == ""
    assert KV.step(state, Op(process=0, f="get", output=""))[0]
    _, state = KV.step(state, Op(process=0, f="put", value="a"))
    _, state = KV.step(state, Op(process=0, f="append", value="b"))
    assert state == "ab"
    assert KV.step(state, Op(process=0, f="get", output="ab")) == (True, "ab")
    assert KV.step(state, Op(process=0, f="get", output="ba"))[0] is False


def test_kv_partitions_by_key_in_order_of_first_appearance():
    ops = [
        Op(process=0, f="put", value="x", key="b"),
        Op(process=1, f="get", output="", key="a"),
        Op(process=2, f="append", value="y", key="b"),
    ]
    parts = KV.partition(ops)
    assert [[op.process for op in part] for part in parts] == [[0, 2], [1]]


def test_set_read_returns_every_element_added():
    state = SET.initial_state()
    _, state = SET.step(state, Op(process=0, f="add", value=2))
    _, state = SET.step(state, Op(process=0, f="add", value=1))
    assert SET.step(state, Op(process=0, f="read", output=[1, 2]))[0]
    assert SET.step(state, Op(process=0, f="read", output=[1]))[0] is False


def test_mutex_acquire_needs_free_and_release_needs_held():
    free = MUTEX.initial_state()
    assert free is False
    assert MUTEX.step(free, Op(process=0, f="acquire")) == (True, True)
    assert MUTEX.step(True, Op(process=0, f="acquire"))[0] is False
    assert MUTEX.step(True, Op(process=0, f="release")) == (True, False)
    assert MUTEX.step(False, Op(process=0, f="release"))[0] is False
    assert MUTEX.initial_state("held") is True
    with pytest.raises(ModelError, match="'free' or 'held'"):
        MUTEX.initial_state("open")


def test_mutex_is_not_partitioned():
    ops = [Op(process=0, f="acquire", key="a"), Op(process=1, f="acquire", key="b")]
    assert len(MUTEX.partition(ops)) == 1


def test_multi_register_transaction_reads_and_writes_several_registers():
    state = MULTI_REGISTER.initial_state({"x": 0, "y": 0})
    txn = Op(process=0, f="txn", value=(("write", "x", 1), ("read", "y", None)), type="info")
    legal, state = MULTI_REGISTER.step(state, txn)
    assert legal
    reads = Op(
        process=1,
        f="txn",
        value=(("read", "x", None), ("read", "y", None)),
        output=(("read", "x", 1), ("read", "y", 0)),
    )
    assert MULTI_REGISTER.step(state, reads)[0]
    stale = Op(process=1, f="txn", output=(("read", "x", 0),), value=(("read", "x", None),))
    assert MULTI_REGISTER.step(state, stale)[0] is False


def test_multi_register_read_of_nil_is_unconstrained_as_in_knossos():
    state = MULTI_REGISTER.initial_state(7)
    nil_read = Op(process=0, f="txn", output=(("read", "x", None),), value=(("read", "x", None),))
    assert MULTI_REGISTER.step(state, nil_read)[0]
    assert MULTI_REGISTER.step(state, Op(process=0, f="txn", output=(("read", "x", 7),)))[0]


def test_read_only_marks_operations_that_never_change_the_state():
    assert CAS_REGISTER.read_only(Op(process=0, f="read", output=1))
    assert CAS_REGISTER.read_only(
        Op(process=0, f="cas", value=(1, 2), type="fail", error="mismatch")
    )
    assert not CAS_REGISTER.read_only(Op(process=0, f="write", value=1))
    only_reads = Op(process=0, f="txn", value=(("read", "x", None),), type="info")
    assert MULTI_REGISTER.read_only(only_reads)


def _register_ops():
    ops = [Op(process=0, f="write", value=v) for v in range(3)]
    ops += [Op(process=0, f="cas", value=(a, b)) for a in range(3) for b in range(3)]
    ops += [Op(process=0, f="cas", value=(a, b), type="info") for a in range(3) for b in range(3)]
    ops += [Op(process=0, f="read", output=v) for v in range(3)]
    ops += [Op(process=0, f="cas", value=(a, 9), type="fail", error="mismatch") for a in range(3)]
    return ops


@pytest.mark.parametrize("model", [REGISTER, CAS_REGISTER], ids=lambda m: m.name)
def test_register_enables_hook_never_misses_an_enabling_operation(model):
    # The search abandons a configuration when no operation can enable a pending read, so
    # the hook must say yes whenever some state and op really lead to a state the read passes.
    ops = [op for op in _register_ops() if op.f in model.functions]
    observers = [op for op in ops if model.read_only(op) and op.type != "info"]
    for op, observer in itertools.product(ops, observers):
        for state in range(3):
            legal, after = model.step(state, op)
            if legal and after != state and model.step(after, observer)[0]:
                assert model.enables(op, observer), (op, observer, state)


def test_kv_hooks_never_miss_a_way_to_reach_the_value_read():
    strings = ["", "a", "b", "ab", "ba", "aab"]
    ops = [Op(process=0, f=f, value=v) for f in ("put", "append") for v in ("a", "b", "ab")]
    observers = [Op(process=0, f="get", output=s) for s in strings]
    for op, observer in itertools.product(ops, observers):
        for state in strings:
            after = KV.step(state, op)[1]
            if after == observer.output:
                assert KV.enables(op, observer), (op, observer)
            # Appends alone never turn a non-prefix into the value read.
            if op.f == "append" and not KV.reachable(state, observer):
                assert not KV.reachable(after, observer)
    put_prefix = Op(process=0, f="put", value="a")
    assert KV.resets(put_prefix, Op(process=0, f="get", output="ab"))
    assert not KV.resets(put_prefix, Op(process=0, f="get", output="ba"))


def test_set_hooks_respect_that_sets_only_grow():
    read12 = Op(process=0, f="read", output=[1, 2])
    assert SET.reachable(frozenset({1}), read12)
    assert not SET.reachable(frozenset({3}), read12)
    assert SET.enables(Op(process=0, f="add", value=2), read12)
    assert not SET.enables(Op(process=0, f="add", value=3), read12)
