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


def pairs_of(s, read):
    """The stale pairs of operation ``read`` as sorted ``(r - ack, own)`` tuples."""
    mask = s.pair_read == read
    return sorted(zip(s.pair_t[mask].tolist(), s.pair_own[mask].tolist(), strict=True))


def test_siblings_are_stale_only_if_every_sibling_is():
    # R6 at 0.7 returns siblings [1, 2]: every write acknowledged before 0.7 (W1, W2, W3)
    # was invoked before W2 completed at 0.3, so none is newer than every sibling: fresh.
    # R7 at 0.7 returns [None, 1]: the latest-completing source is W1 (0.1); W2 and W3
    # were invoked after it and acknowledged before 0.7: k = 2, t = 0.7 - 0.3.
    ops = register_history(
        extra=[
            (8, "read", 0.7, 0.73, None, [1, 2]),
            (9, "read", 0.7, 0.74, None, [None, 1]),
        ]
    )
    s = read_staleness(ops)
    assert s.k.tolist()[-2:] == [0, 2]
    assert s.t.tolist()[-2:] == pytest.approx([0.0, 0.4])
    r6, r7 = s.read.tolist()[-2:]
    assert pairs_of(s, r6) == []
    # (W3, R7): 0.12 s, c1's own write (R7 is c1's); (W2, R7): 0.4 s, c2's.
    assert pairs_of(s, r7) == [(pytest.approx(0.12), True), (pytest.approx(0.4), False)]


def test_a_fresh_sibling_makes_the_read_fresh_for_every_output():
    # c1 writes 1 then 2; its read returns siblings [1, 2]. W2 is definitely newer than
    # 1 but not than 2, so the read is stale with respect to nothing: k = 0, no stale
    # pair, no read-your-writes violation although 1 alone would miss c1's own W2.
    h = History()
    op(h, 0, "write", 0.0, 0.1, 1)
    op(h, 1, "write", 0.2, 0.3, 2)
    op(h, 2, "read", 0.5, 0.51, out=[1, 2])
    ops = h.operations()
    s = read_staleness(ops)
    assert s.k.tolist() == [0] and s.t.tolist() == [0.0]
    assert len(s.pair_t) == 0
    assert session_violations(ops, s)["read_your_writes"] == 0
    # Pairs (W1, R) at 400 ms and (W2, R) at 200 ms: both fresh.
    curve = {row["t_ms"]: row for row in t_visibility(s)}
    assert curve[200.0]["pairs"] == 2 and curve[200.0]["p"] == 1.0


def stale_sibling_history(siblings):
    """W1 [0, .1] by c1, then W2 [.2, .3], W3 [.4, .5], W4 [.6, .7] by c2, and Wl, a long
    write [.05, .55] of 5 by c2; a read at 1.0 by c3 returns ``siblings``."""
    h = History()
    op(h, 0, "write", 0.0, 0.1, 1)
    op(h, 1, "write", 0.2, 0.3, 2, client="c2")
    op(h, 2, "write", 0.4, 0.5, 3, client="c2")
    op(h, 3, "write", 0.6, 0.7, 4, client="c2")
    op(h, 4, "write", 0.05, 0.55, 5, client="c2")
    op(h, 5, "read", 1.0, 1.01, out=siblings, client="c3")
    return h.operations()


@pytest.mark.parametrize(
    "siblings, k, t, pair_t",
    [
        # 1 misses W2, W3, W4; 2 misses W3, W4: the read misses what both miss.
        ([1, 2], 2, 0.5, [0.3, 0.5]),
        ([2, 1], 2, 0.5, [0.3, 0.5]),
        # 2 completed at 0.3, the long write 5 at 0.55 though invoked first: only W4 was
        # invoked after both sources completed.
        ([2, 5], 1, 0.3, [0.3]),
        ([None, 3], 1, 0.3, [0.3]),
    ],
)
def test_stale_siblings_are_stale_with_respect_to_what_every_sibling_missed(siblings, k, t, pair_t):
    s = read_staleness(stale_sibling_history(siblings))
    assert s.k.tolist() == [k]
    assert s.t.tolist() == pytest.approx([t])
    assert sorted(s.pair_t.tolist()) == pytest.approx(pair_t)


def test_t_visibility_counts_each_pair_once_with_stale_siblings():
    # The read (1.0) returns [1, 2]; pairs by time since acknowledgement: W1 0.9 s,
    # W2 0.7 s, W3 0.5 s, Wl 0.45 s, W4 0.3 s. Stale: W3 and W4.
    curve = {
        row["t_ms"]: row for row in t_visibility(read_staleness(stale_sibling_history([1, 2])))
    }
    assert curve[500.0]["pairs"] == 3 and curve[500.0]["p"] == pytest.approx(2 / 3)
    assert curve[200.0]["pairs"] == 2 and curve[200.0]["p"] == 0.5


def test_a_read_returning_no_value_is_stale_like_the_initial_value():
    # No sibling at all: every sibling (vacuously) misses W1..W4 and Wl.
    s = read_staleness(stale_sibling_history([]))
    assert s.k.tolist() == [5]
    assert s.t.tolist() == pytest.approx([0.9])


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
    # The client gave up on W1 at 0.15, before W2 was invoked; W1 may still have taken
    # effect after W2, so W2 is not definitely newer than the 1 the read returned.
    h = History()
    op(h, 0, "write", 0.0, 0.15, 1, outcome="info")
    op(h, 1, "write", 0.2, 0.3, 2)
    op(h, 2, "read", 1.0, 1.1, out=1)
    op(h, 3, "read", 1.0, 1.1, out=[None, 1], client="c2")  # a sibling of W1: fresh too
    assert read_staleness(h.operations()).k.tolist() == [0, 0]


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


@pytest.mark.parametrize("first_done", [0.9, 0.8])
def test_overlapping_reads_are_not_monotonic_violations(first_done):
    # The earlier read had not completed when the later one was invoked (at 0.8).
    ops = register_history(
        extra=[
            (8, "read", 0.7, first_done, None, 2, "c3"),
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


def test_read_your_writes_counts_own_writes_missed_by_every_sibling():
    # W3 is c1's own. R1 returns [1, 2]: both siblings miss W3 (k = 1): a violation.
    # R2 returns [2, 3]: 2 alone would miss W3, but 3 is W3: fresh, no violation.
    h = History()
    op(h, 0, "write", 0.0, 0.1, 1, client="c2")
    op(h, 1, "write", 0.2, 0.3, 2, client="c3")
    op(h, 2, "write", 0.4, 0.5, 3)
    op(h, 3, "read", 1.0, 1.01, out=[1, 2])
    op(h, 4, "read", 1.0, 1.02, out=[2, 3])
    ops = h.operations()
    s = read_staleness(ops)
    assert s.k.tolist() == [1, 0]
    v = session_violations(ops, s)
    assert v["read_your_writes"] == 1
    assert v["by_client"] == {"c1": {"read_your_writes": 1, "monotonic_reads": 0}}


@pytest.mark.parametrize(
    "later, violation",
    [
        ([1, 2], True),  # both completed (0.1, 0.3) before W3, which R1 showed, was invoked
        ([1, 3], False),  # 3 is W3 itself
        ([1, 4], False),  # W4 was never acknowledged: it may have taken effect last
    ],
)
def test_monotonic_reads_with_siblings_use_the_same_rule(later, violation):
    # R1 returns [2, 3] and completes at 0.61; R2, invoked at 0.7, returns ``later``.
    h = History()
    op(h, 0, "write", 0.0, 0.1, 1)
    op(h, 1, "write", 0.2, 0.3, 2)
    op(h, 2, "write", 0.4, 0.5, 3)
    op(h, 3, "write", 0.05, 0.06, 4, outcome="info")
    op(h, 4, "read", 0.6, 0.61, out=[2, 3])
    op(h, 5, "read", 0.7, 0.71, out=later)
    ops = h.operations()
    v = session_violations(ops, read_staleness(ops))
    assert v["monotonic_reads"] == int(violation)
