"""The workload's commands as a state machine, applied as the log-based built-ins do."""

from __future__ import annotations

from capsim.policies.commands import apply_command, apply_entries, read_value


def test_writes_adds_and_compare_and_sets_with_their_versions():
    data, version = {}, {}
    assert apply_command(data, version, 0, "write", "x", 5)
    assert apply_command(data, version, 1, "cas", "x", (5, 6))  # compared equal
    assert not apply_command(data, version, 2, "cas", "x", (5, 7))  # holds 6: no change
    assert apply_command(data, version, 3, "add", "s", 9)
    assert apply_command(data, version, 4, "add", "s", 1)
    assert apply_command(data, version, 5, "noop", None, None)  # a policy's own: nothing
    assert read_value(data, "x") == 6 and version["x"] == 2
    assert read_value(data, "s") == [1, 9] and version["s"] == 5
    assert read_value(data, "never") is None and None not in data


def test_a_compare_and_set_on_a_missing_key_compares_with_null():
    data, version = {}, {}
    assert apply_command(data, version, 0, "cas", "k", (None, 1))
    assert read_value(data, "k") == 1


def test_apply_entries_applies_a_slice_of_the_log_and_notes_cas_outcomes():
    log = [("write", "x", 1, "r1"), ("cas", "x", (1, 2), "r2"), ("cas", "x", (1, 3), "r3")]
    data, version, outcomes = {}, {}, {}
    apply_entries(log, 0, 2, data, version, outcomes)
    assert data == {"x": 2} and outcomes == {1: True}
    apply_entries(log, 2, 3, data, version, outcomes)
    assert data == {"x": 2} and outcomes == {1: True, 2: False} and version == {"x": 2}
