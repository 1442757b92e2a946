"""Staleness (PBS, black-box) and session guarantees on hand-made histories."""

from __future__ import annotations

import pytest

from capsim.history import History
from capsim.metrics import (
    read_staleness,
    session_violations,
    staleness_summary,
    t_visibility,
)


def op(h, p, f, t0, t1, value=None, out=None, client="c1", key="k", outcome="ok"):
    h.append(process=p, type="invoke", f=f, key=key, value=value, time=t0, client=client)
    h.append(
        process=p,
        type=outcome,
        f=f,
        key=key,
        value=value if out is None else out,
        time=t1,
        client=client,
    )


def register_history(extra=()):
    """W1 [0, .1] writes 1; W2 [.2, .3] writes 2 (by c2); W3 [.25, .58] writes 3."""
    h = History()
    op(h, 0, "write", 0.0, 0.1, 1)
    op(h, 1, "write", 0.2, 0.3, 2, client="c2")
    op(h, 2, "write", 0.25, 0.58, 3)
    op(h, 3, "read", 0.36, 0.37, out=1, client="c2")  # R1: W2 definitely newer: k=1
    op(h, 4, "read", 0.7, 0.71, out=2)  # R2: W3 concurrent with W2: fresh
    op(h, 5, "read", 0.7, 0.72, out=None)  # R3: initial value: k=3
    op(h, 6, "read", 0.05, 0.06, out=None)  # R4: nothing acked yet: fresh
    op(h, 7, "read", 0.8, 0.81, out=9)  # R5: a value nobody wrote
    for args in extra:
        op(h, *args)
    return h.operations()


def test_k_and_t_per_read():
    s = read_staleness(register_history())
    assert s.k.tolist() == [1, 0, 3, 0]
    assert s.t.tolist() == pytest.approx([0.06, 0.0, 0.6, 0.0])
    assert s.unknown == 1


def test_summary_figures():
    summary = staleness_summary(read_staleness(register_history()))
    assert summary["stale_read_fraction"] == 0.5
    assert summary["k_mean"] == 1.0 and summary["k_max"] == 3
    assert summary["t_mean_ms"] == pytest.approx((60 + 600) / 4)
    # 99th percentile of [0, 0, 0.06, 0.6] by linear interpolation: 0.06 + 0.97 * 0.54.
    assert summary["t_p99_ms"] == pytest.approx((0.06 + 0.97 * 0.54) * 1000)
    assert summary["unknown_reads"] == 1


def test_siblings_are_stale_only_if_every_sibling_is():
    # R6 at 0.7 returns siblings [1, 2]: 1 is stale (W2, W3 newer), 2 is not.
    # R7 at 0.7 returns [None, 1]: k = min(3, 2) = 2, t of that sibling = 0.7 - 0.3.
    s = read_staleness(
        register_history(
            extra=[
                (8, "read", 0.7, 0.73, None, [1, 2]),
                (9, "read", 0.7, 0.74, None, [None, 1]),
            ]
        )
    )
    assert s.k.tolist()[-2:] == [0, 2]
    assert s.t.tolist()[-2:] == pytest.approx([0.0, 0.4])


def test_t_visibility_bins_pairs_by_time_since_acknowledgement():
    curve = {row["t_ms"]: row for row in t_visibility(read_staleness(register_history()))}
    assert curve[50.0]["pairs"] == 1 and curve[50.0]["p"] == 0.0  # (W2, R1) stale
    assert curve[100.0]["pairs"] == 2 and curve[100.0]["p"] == 0.5  # (W3, R2) ok, (W3, R3)
    assert curve[200.0]["pairs"] == 3 and curve[200.0]["p"] == pytest.approx(2 / 3)
    assert curve[500.0]["pairs"] == 2 and curve[500.0]["p"] == 0.5
    assert curve[0.0]["pairs"] == 0 and curve[0.0]["p"] is None


def test_a_linearizable_history_has_no_stale_reads():
    h = History()
    op(h, 0, "write", 0.0, 0.1, 1)
    op(h, 1, "read", 0.05, 0.15, out=None)  # concurrent with the write: either is fine
    op(h, 2, "read", 0.2, 0.3, out=1)
    op(h, 3, "cas", 0.4, 0.5, [1, 2])
    op(h, 4, "read", 0.6, 0.7, out=2)
    s = read_staleness(h.operations())
    assert s.k.tolist() == [0, 0, 0]


def test_info_write_is_never_definitely_older():
    h = History()
    op(h, 0, "write", 0.0, 5.0, 1, outcome="info")  # may take effect any time
    op(h, 1, "write", 0.2, 0.3, 2)
    op(h, 2, "read", 1.0, 1.1, out=1)
    assert read_staleness(h.operations()).k.tolist() == [0]


def test_set_staleness_counts_missing_acknowledged_adds():
    h = History()
    op(h, 0, "add", 0.0, 0.1, 1)
    op(h, 1, "add", 0.2, 0.3, 2)
    op(h, 2, "read", 0.5, 0.51, out=[1])  # misses 2: k=1, t=0.2
    op(h, 3, "read", 0.2, 0.21, out=[])  # misses 1: k=1, t=0.1
    op(h, 4, "read", 0.5, 0.52, out=[1, 2])  # fresh
    s = read_staleness(h.operations(), "set")
    assert s.k.tolist() == [1, 1, 0]
    assert s.t.tolist() == pytest.approx([0.2, 0.1, 0.0])


def test_read_your_writes_and_monotonic_reads_violations():
    # R1 (client c2) misses c2's own acknowledged W2, and R3 (c1) misses c1's W1 and W3:
    # two read-your-writes violations.
    # c3 reads 2 (W2), then later reads 1 (W1, completed before W2 was invoked): monotonic.
    ops = register_history(
        extra=[
            (8, "read", 0.7, 0.71, None, 2, "c3"),
            (9, "read", 0.8, 0.81, None, 1, "c3"),
        ]
    )
    s = read_staleness(ops)
    v = session_violations(ops, s)
    assert v["read_your_writes"] == 2
    assert v["monotonic_reads"] == 1
    assert v["by_client"] == {
        "c1": {"read_your_writes": 1, "monotonic_reads": 0},
        "c2": {"read_your_writes": 1, "monotonic_reads": 0},
        "c3": {"read_your_writes": 0, "monotonic_reads": 1},
    }


def test_overlapping_reads_are_not_monotonic_violations():
    # The earlier read had not completed when the later one was invoked.
    ops = register_history(
        extra=[
            (8, "read", 0.7, 0.9, None, 2, "c3"),
            (9, "read", 0.8, 0.81, None, 1, "c3"),
        ]
    )
    assert session_violations(ops, read_staleness(ops))["monotonic_reads"] == 0


def test_set_monotonic_reads():
    h = History()
    op(h, 0, "add", 0.0, 0.1, 1)
    op(h, 1, "read", 0.2, 0.3, out=[1], client="c5")
    op(h, 2, "read", 0.4, 0.5, out=[], client="c5")
    ops = h.operations()
    v = session_violations(ops, read_staleness(ops, "set"), "set")
    assert v["monotonic_reads"] == 1
    assert v["read_your_writes"] == 0  # the add was c1's, not c5's
