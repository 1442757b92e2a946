"""Metrics on small hand-made histories, answers worked out by hand."""

from __future__ import annotations

import pytest

from capsim import metrics
from capsim.history import History


def op(h, p, f, t0, t1, outcome, value=None, out=None, key="k", side=None, final=False, error=None):
    h.append(process=p, type="invoke", f=f, key=key, value=value, time=t0, side=side, final=final)
    if outcome is not None:
        h.append(
            process=p,
            type=outcome,
            f=f,
            key=key,
            value=out if out is not None else value,
            time=t1,
            side=side,
            final=final,
            error=error,
        )


def build():
    h = History()
    op(h, 0, "write", 0.0, 0.010, "ok", 1)  # ok write, 10 ms
    op(h, 1, "read", 1.0, 1.002, "ok", None, 1)  # ok read, 2 ms
    op(h, 2, "cas", 2.0, 2.004, "fail", [5, 6], error="mismatch")  # definite answer
    op(h, 3, "write", 3.0, 3.5, "info", 2, error="timeout", side="minority")
    op(h, 4, "read", 3.1, 3.2, "fail", error="unavailable", side="minority")
    op(h, 5, "read", 3.2, 3.204, "ok", None, 1, side="majority")
    op(h, 6, "read", 9.0, 9.001, "ok", None, 1, final=True)  # final phase: excluded
    return h.operations()


def test_availability_counts_ok_and_cas_mismatch_as_served():
    ops = build()
    main = ~ops.final
    assert metrics.availability(ops, main) == pytest.approx(4 / 6)
    summary = metrics.availability_summary(ops, [(2.9, 4.0)])
    assert summary["overall"] == pytest.approx(4 / 6)
    assert summary["read"] == pytest.approx(2 / 3)
    assert summary["write"] == pytest.approx(2 / 3)  # write ok, cas mismatch, write info
    assert summary["during_faults"] == pytest.approx(1 / 3)  # ops 3, 4, 5
    assert summary["outside_faults"] == pytest.approx(1.0)  # ops 0, 1, 2
    assert summary["by_side"] == {"majority": 1.0, "minority": 0.0}


def test_availability_with_no_operations_is_none_not_nan():
    ops = History().operations()
    summary = metrics.availability_summary(ops, [])
    assert summary["overall"] is None and summary["by_side"]["majority"] is None


def test_latency_percentiles_in_ms_over_ok_operations():
    ops = build()
    lat = metrics.latency_summary(ops)
    # ok reads of the main phase: 2 ms and 4 ms; linear interpolation.
    assert lat["read"]["p50"] == pytest.approx(3.0)
    assert lat["read"]["p99"] == pytest.approx(2 + 0.99 * 2)
    assert lat["write"]["p50"] == pytest.approx(10.0)  # the only ok update
    assert metrics.latency_percentiles(ops.invoke_time[:0])["p999"] is None


def test_outcome_counts():
    ops = build()
    assert metrics.outcome_counts(ops, ~ops.final) == {"total": 6, "ok": 3, "fail": 2, "info": 1}


def test_fault_intervals_pair_start_and_end_records():
    records = [
        {"time": 1.0, "fault": 0, "event": "start"},
        {"time": 2.0, "fault": 1, "event": "apply"},
        {"time": 3.0, "fault": 0, "event": "end"},
        {"time": 4.0, "fault": 2, "event": "start"},
        {"time": 9.0, "fault": None, "event": "apply"},
    ]
    assert metrics.fault_intervals(records, end=10.0) == [(1.0, 3.0), (4.0, 10.0)]


def test_durability_of_the_set_workload():
    h = History()
    op(h, 0, "add", 0.0, 0.1, "ok", 1)
    op(h, 1, "add", 0.2, 0.3, "ok", 2)
    op(h, 2, "add", 0.4, 0.5, "info", 3)  # indeterminate: never counted lost
    op(h, 3, "add", 0.6, 0.7, "ok", 4, key="other")
    op(h, 4, "read", 5.0, 5.1, "ok", None, [1, 3], final=True)
    op(h, 5, "read", 5.0, 5.1, "ok", None, [1], final=True)
    ops = h.operations()
    d = metrics.durability(ops, "set")
    assert d["acknowledged_writes"] == 3
    assert d["lost_writes"] == 1 and d["lost"] == [["k", 2]]
    assert d["unchecked_writes"] == 1  # "other" has no final read
    assert metrics.durability(ops, "register")["lost_writes"] is None


def test_timeseries_counts_by_window_and_side():
    rows = metrics.timeseries(build())
    assert [r["t_s"] for r in rows] == [0.0, 1.0, 2.0, 3.0]
    assert rows[3] == {
        "t_s": 3.0,
        "ok": 1,
        "fail": 1,
        "info": 1,
        "majority_ok": 1,
        "majority_fail": 0,
        "majority_info": 0,
        "minority_ok": 0,
        "minority_fail": 1,
        "minority_info": 1,
    }
    assert rows[2]["fail"] == 1  # the CAS mismatch is a fail in the counts


def test_clean_replaces_nan_and_infinity():
    assert metrics.clean({"a": float("nan"), "b": [float("inf"), 1.0]}) == {
        "a": None,
        "b": [None, 1.0],
    }


def test_recovery_time_is_the_first_fully_served_window_after_the_fault():
    h = History()
    # Fault ends at 10.0. Operations every 0.25 s from 10.0; those before 10.6 fail.
    for n, t in enumerate([10.0 + 0.25 * i for i in range(16)]):
        op(h, n, "read", t, t + 0.01, "ok" if t >= 10.6 else "fail", out=1)
    ops = h.operations()
    # The first window [t, t + 1 s) with every operation served starts at 10.75.
    assert metrics.recovery_time(ops, 10.0) == pytest.approx(0.75)
    assert metrics.recovery_time(ops, 20.0) is None  # nothing after it


def test_availability_by_shard_and_zone():
    h = History()
    h.append(process=0, type="invoke", f="read", key="a", time=0.0, zone="x", shard=0)
    h.append(process=0, type="ok", f="read", key="a", time=0.1, zone="x", shard=0)
    h.append(process=1, type="invoke", f="read", key="b", time=0.0, zone="y", shard=1)
    h.append(process=1, type="info", f="read", key="b", time=1.0, zone="y", shard=1)
    summary = metrics.availability_summary(h.operations(), [])
    assert summary["by_shard"] == {"0": 1.0, "1": 0.0}
    assert summary["by_zone"] == {"x": 1.0, "y": 0.0}
