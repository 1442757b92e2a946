"""Properties of the metrics: bounds, and what a linearizable system must score."""

from __future__ import annotations

from conftest import make_scenario
from hypothesis import given
from hypothesis import strategies as st

from capsim.checkers import check_history
from capsim.history import History
from capsim.metrics import read_staleness, staleness_summary
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
    assert s["staleness"]["stale_read_fraction"] in (0.0, None)
    assert s["sessions"]["read_your_writes"] == 0 and s["sessions"]["monotonic_reads"] == 0
    assert s["consistency"]["linearizable"] is True
    assert s["durability"]["lost_writes"] in (0, None)


@st.composite
def sequential_histories(draw):
    """One client doing reads, writes and CAS one after another against a real register."""
    h = History()
    state: dict[str, int | None] = {}
    time = 0.0
    next_value = 0
    for process in range(draw(st.integers(1, 40))):
        key = draw(st.sampled_from(["a", "b"]))
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
    summary = staleness_summary(read_staleness(h.operations()))
    assert summary["stale_read_fraction"] in (0.0, None)


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
