"""Properties of the metrics: bounds, what a linearizable system must score, and the
vectorized staleness against its definition computed read by read."""

from __future__ import annotations

import math
from unittest import mock

import pytest
from conftest import make_scenario
from hypothesis import given, settings
from hypothesis import strategies as st

import capsim.metrics.staleness as staleness_module
from capsim.checkers import check_history
from capsim.history import CAS, INFO, OK, READ, WRITE, History
from capsim.metrics import read_staleness, session_violations, t_visibility
from capsim.metrics.staleness import VISIBILITY_EDGES_MS
from capsim.runner import run

CONTAINERS = ["n1", "n2", "n3", "n4", "n5"]


@st.composite
def faults(draw):
    """A few partitions, crashes and pauses in a 6 s run; shrinks to fewer, earlier faults."""
    out = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["partition", "crash", "pause"]))
        at = draw(st.floats(0.5, 5.0, allow_nan=False))
        duration = draw(st.floats(0.1, 2.0, allow_nan=False))
        if kind == "partition":
            shape = draw(st.sampled_from(["halves", "isolate", "bridge", "majorities-ring"]))
            target = draw(st.sampled_from(["primary", "random", *CONTAINERS]))
            fault = {"kind": kind, "at": at, "duration": duration, "shape": shape}
            if shape != "majorities-ring":
                fault["target"] = target
        else:
            fault = {
                "kind": kind,
                "at": at,
                "duration": duration,
                "target": draw(st.sampled_from(["primary", "random", *CONTAINERS])),
            }
        out.append(fault)
    return out


@given(faults(), st.integers(0, 2**16), st.sampled_from(["register", "set"]))
def test_single_primary_is_available_in_bounds_never_stale_and_linearizable(fs, seed, kind):
    sc = make_scenario(
        duration=6,
        faults=fs,
        images=[{"name": "kv", "startup": "200ms"}],
        workload={
            "kind": kind,
            "rate": 25,
            "keys": 3,
            "clients_per_zone": 2,
            "cas_fraction": 0.2 if kind == "register" else 0.0,
        },
        network={"loss": 0.01},
    )
    s = run(sc, seed=seed).summary
    for value in (
        s["availability"]["overall"],
        s["availability"]["read"],
        s["availability"]["write"],
        *s["availability"]["by_side"].values(),
    ):
        assert value is None or 0.0 <= value <= 1.0
    reads = s["staleness"]["reads"]
    assert s["staleness"]["stale_read_fraction"] == (0.0 if reads else None)
    assert s["staleness"]["unknown_reads"] == 0
    assert s["sessions"]["read_your_writes"] == 0 and s["sessions"]["monotonic_reads"] == 0
    assert s["consistency"]["linearizable"] is True
    # Lost writes are counted for sets only: 0 there, null for a register.
    assert s["durability"]["lost_writes"] == (0 if kind == "set" else None)


@st.composite
def sequential_histories(draw):
    """One client doing reads, writes and CAS one after another against a real register."""
    h = History()
    state: dict[str, int | None] = {}
    time = 0.0
    next_value = 0
    for process in range(draw(st.integers(1, 40))):
        key = draw(st.sampled_from(["a", "a", "a", "b"]))
        f = draw(st.sampled_from(["read", "write", "cas"]))
        time += draw(st.floats(0.001, 1.0))
        start = time
        time += draw(st.floats(0.001, 1.0))
        if f == "read":
            h.append(process=process, type="invoke", f=f, key=key, time=start)
            h.append(process=process, type="ok", f=f, key=key, value=state.get(key), time=time)
        elif f == "write":
            next_value += 1
            h.append(process=process, type="invoke", f=f, key=key, value=next_value, time=start)
            h.append(process=process, type="ok", f=f, key=key, value=next_value, time=time)
            state[key] = next_value
        else:
            expected = draw(st.sampled_from([state.get(key), None, next_value]))
            next_value += 1
            value = [expected, next_value]
            h.append(process=process, type="invoke", f=f, key=key, value=value, time=start)
            if state.get(key) == expected:
                h.append(process=process, type="ok", f=f, key=key, value=value, time=time)
                state[key] = next_value
            else:
                h.append(
                    process=process,
                    type="fail",
                    f=f,
                    key=key,
                    value=value,
                    time=time,
                    error="mismatch",
                )
    return h


@given(sequential_histories())
def test_a_sequential_single_client_history_is_linearizable_and_fresh(h):
    assert check_history(h, model="cas-register").verdict == "linearizable"
    ops = h.operations()
    s = read_staleness(ops)
    assert s.read.tolist() == [i for i in range(len(ops)) if ops.f[i] == READ]
    assert s.unknown == 0 and s.k.tolist() == [0] * len(s.read) and len(s.pair_t) == 0


@given(sequential_histories(), st.data())
def test_a_read_of_a_sequential_history_made_older_is_stale_by_the_writes_it_missed(h, data):
    # Make one read return the value of an earlier acknowledged write of its key (or the
    # initial value): every acknowledged write of the key after that one, all before the
    # read, is definitely newer; they are the client's own, so it breaks read-your-writes.
    ops = h.operations()
    reads = [i for i in range(len(ops)) if ops.f[i] == READ]
    if not reads:
        return
    r = data.draw(st.sampled_from(reads))
    updates = [
        i
        for i in range(r)
        if ops.key[i] == ops.key[r] and ops.f[i] in (WRITE, CAS) and ops.type[i] == OK
    ]
    if not updates:
        return
    back = data.draw(st.integers(1, len(updates)))
    source = updates[-back - 1] if back < len(updates) else None
    written = None if source is None else ops.value(source)
    h.value[int(ops.complete_index[r])] = written[1] if isinstance(written, list) else written
    ops = h.operations()
    s = read_staleness(ops)
    assert s.k.tolist() == [back if i == r else 0 for i in s.read.tolist()]
    assert s.t[s.read == r].tolist() == [ops.invoke_time[r] - ops.complete_time[updates[-back]]]
    assert s.pair_read.tolist() == [r] * back
    v = session_violations(ops, s)
    assert v["read_your_writes"] == 1


@given(sequential_histories(), st.data())
def test_corrupting_one_read_of_a_sequential_history_is_caught(h, data):
    ops = h.operations()
    reads = [i for i in range(len(ops)) if ops.f[i] == 0 and ops.output(i) is not None]
    if not reads:
        return
    i = data.draw(st.sampled_from(reads))
    j = int(ops.complete_index[i])
    h.value[j] = 10_000  # a value nobody wrote
    assert check_history(h, model="cas-register").verdict == "not-linearizable"


GRID_S = 0.037  # 37 ms: no multiple is a visibility bin edge, so no pair sits on one


@st.composite
def sibling_histories(draw):
    """Two to ten writes and CAS, then two to ten reads, of two keys (mostly the first) by
    two clients, at times on a 37 ms grid so that times tie. Writes end ok, info, fail or
    never. A read often follows the same client's previous read of the same key; it
    returns one value or a list of one to three siblings, drawn from the values of its
    key's writes that had not failed and had been invoked by the time it returned, now
    and then with the initial value or a value nobody wrote, or rarely an empty list.
    Shrinks to fewer operations, earlier and shorter ones, ``ok`` outcomes and fewer
    siblings."""
    events = []  # (time in grid steps, order, fields)
    values = {"a": [], "b": []}
    n_writes = draw(st.integers(2, 10))
    n_reads = draw(st.integers(2, 10))
    previous = None  # the last read's key, client and end
    for p in range(n_writes + n_reads):
        key = draw(st.sampled_from(["a", "a", "a", "b"]))
        client = draw(st.sampled_from(["c1", "c2"]))
        if p < n_writes:
            start = draw(st.integers(0, 10))
            end = start + draw(st.integers(0, 2))
            f = draw(st.sampled_from(["write", "cas"]))
            outcome = draw(st.sampled_from(["ok", "ok", "ok", "info", "fail", None]))
            value = 100 + p if f == "write" else [draw(st.sampled_from([None, 1])), 100 + p]
            if outcome != "fail":  # a failed write certainly did not take effect
                values[key].append((start, 100 + p))
            final = False
        else:
            if previous and draw(st.booleans()):
                key, client, last_end = previous
                start = last_end + draw(st.integers(0, 1))
            else:
                start = draw(st.integers(6, 16))
            end = start + draw(st.integers(0, 2))
            previous = (key, client, end)
            f, value = "read", None
            outcome = draw(st.sampled_from(["ok", "ok", "ok", "ok", "info"]))
            final = draw(st.integers(0, 7)) == 0
        common = {"process": p, "key": key, "client": client, "f": f, "final": final}
        events.append((start, 2 * p, dict(common, type="invoke", value=value)))
        if outcome is None:
            continue
        if f == "read":
            # Values whose write had been invoked by the time the read returned.
            pool = [value for invoked, value in values[key] if invoked <= end]
            siblings = (
                draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True))
                if pool and draw(st.integers(0, 9))
                else []
            )
            if draw(st.integers(0, 4)) == 0:
                siblings.append(None)
            if draw(st.integers(0, 9)) == 0:
                siblings.append(999)
            if len(siblings) == 1 and draw(st.booleans()):
                value = siblings[0]
            else:
                value = siblings
        events.append((end, 2 * p + 1, dict(common, type=outcome, value=value)))
    h = History()
    for step, _, fields in sorted(events, key=lambda e: (e[0], e[1])):
        h.append(time=step * GRID_S, **fields)
    return h


def by_definition(ops):
    """Staleness, its pairs and both session guarantees, read by read, from the definition
    in :func:`read_staleness` (every sibling must miss a write), with no vectorization."""
    n = len(ops)
    writes = [i for i in range(n) if ops.f[i] in (WRITE, CAS) and ops.type[i] in (OK, INFO)]
    acked = [i for i in writes if ops.type[i] == OK]

    def written(i):
        return ops.value(i)[1] if ops.f[i] == CAS else ops.value(i)

    def completed(w):  # None: the initial value; an info write never completes
        return -math.inf if w is None else ops.complete_time[w] if ops.type[w] == OK else math.inf

    sources, unknown = {}, 0
    for r in range(n):
        if ops.f[r] != READ or ops.type[r] != OK or ops.final[r]:
            continue
        output = ops.output(r)
        found = []
        for value in output if isinstance(output, list) else [output]:
            match = [w for w in writes if ops.key[w] == ops.key[r] and written(w) == value]
            found.append(None if value is None else match[0] if match else "unknown")
        if "unknown" in found:
            unknown += 1
        else:
            sources[r] = found
    stale = {
        r: [
            w
            for w in acked
            if ops.key[w] == ops.key[r]
            and ops.complete_time[w] < ops.invoke_time[r]
            and all(ops.invoke_time[w] > completed(s) for s in siblings)
        ]
        for r, siblings in sources.items()
    }
    monotonic = set()
    for r, siblings in sources.items():
        for e, shown in sources.items():
            if (
                ops.client[e] == ops.client[r]
                and ops.key[e] == ops.key[r]
                and ops.complete_time[e] < ops.invoke_time[r]
                and any(
                    all(completed(s) < ops.invoke_time[x] for s in siblings)
                    for x in shown
                    if x is not None
                )
            ):
                monotonic.add(r)
    return sources, stale, unknown, monotonic, acked


# Cheap, and the cases that matter (siblings on either side of a write) need more than a
# few examples; the loaded profile may ask for more still.
@settings(max_examples=max(200, settings.default.max_examples))
@given(sibling_histories(), st.sampled_from([staleness_module._CHUNK_PAIRS, 1, 2]))
def test_staleness_with_siblings_matches_the_definition_read_by_read(h, chunk):
    ops = h.operations()
    with mock.patch.object(staleness_module, "_CHUNK_PAIRS", chunk):
        s = read_staleness(ops)
    sources, stale, unknown, monotonic, acked = by_definition(ops)
    reads = sorted(sources)
    assert s.read.tolist() == reads and s.unknown == unknown
    assert s.k.tolist() == [len(stale[r]) for r in reads]
    r_time = ops.invoke_time
    a_time = ops.complete_time
    assert s.t.tolist() == [
        r_time[r] - min(a_time[w] for w in stale[r]) if stale[r] else 0.0 for r in reads
    ]
    own = ops.client
    expected_pairs = sorted(
        (r, r_time[r] - a_time[w], bool(own[w] == own[r])) for r in reads for w in stale[r]
    )
    got = zip(s.pair_read.tolist(), s.pair_t.tolist(), s.pair_own.tolist(), strict=True)
    assert sorted(got) == expected_pairs

    v = session_violations(ops, s)
    ryw = [r for r in reads if any(own[w] == own[r] for w in stale[r])]
    assert v["read_your_writes"] == len(ryw)
    assert v["monotonic_reads"] == len(monotonic)

    edges = [*VISIBILITY_EDGES_MS, math.inf]
    for j, row in enumerate(t_visibility(s)):
        pairs = [
            (w, r)
            for r in reads
            for w in acked
            if ops.key[w] == ops.key[r]
            and a_time[w] <= r_time[r]
            and edges[j] <= (r_time[r] - a_time[w]) * 1000 < edges[j + 1]
        ]
        fresh = sum(w not in stale[r] for w, r in pairs)
        assert row["pairs"] == len(pairs)
        assert row["p"] == (pytest.approx(fresh / len(pairs)) if pairs else None)
