"""The network: latency by link class and kind, loss, duplication, FIFO, partitions."""

from __future__ import annotations

import itertools
import math

import pytest
from conftest import make_scenario, make_world

IDS = ["n1", "n2", "n3", "n4", "n5"]
# Round-robin placement over zones a, b, c: a = n1 n4, b = n2 n5, c = n3.


def probe_world(**overrides):
    overrides.setdefault("policy", {"name": "probes:Probe"})
    overrides.setdefault("workload", {"clients_per_zone": 0})
    world = make_world(**overrides)
    world.start()
    return world


def ping_all(world, at: float, label="x"):
    """Every node pings every other node at time ``at``."""
    for src, dst in itertools.permutations(IDS, 2):
        node = world.cluster.node(src)
        world.engine.call_in(at - world.engine.now, node.send, dst, "ping", (label, src, dst))


def pings_received(world, label="x") -> set[tuple[str, str]]:
    out = set()
    for dst in IDS:
        node = world.cluster.node(dst)
        for _, src, kind, body in node.received:
            if kind == "ping" and body[0] == label:
                out.add((src, dst))
    return out


def everyone_but(cut: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return set(itertools.permutations(IDS, 2)) - cut


def partition_run(fault: dict, seed: int = 1):
    world = probe_world(faults=[{"kind": "partition", "at": 1, **fault}])
    world = world if seed == 1 else world
    ping_all(world, 2.0)
    world.engine.run(3.0)
    return world, pings_received(world)


def test_explicit_groups_cut_between_groups_only():
    _, got = partition_run({"groups": [["n1", "n2"], ["n3", "n4", "n5"]]})
    expected = {
        (a, b)
        for a, b in itertools.permutations(IDS, 2)
        if (a in ("n1", "n2")) == (b in ("n1", "n2"))
    }
    assert got == expected


def test_groups_leave_unlisted_containers_together():
    _, got = partition_run({"groups": [["n1"]]})
    expected = {(a, b) for a, b in itertools.permutations(IDS, 2) if "n1" not in (a, b)}
    assert got == expected


def test_groups_of_zones_expand_to_their_containers():
    _, got = partition_run({"groups": [["a"], ["b", "c"]]})  # a = n1, n4
    expected = {
        (a, b)
        for a, b in itertools.permutations(IDS, 2)
        if (a in ("n1", "n4")) == (b in ("n1", "n4"))
    }
    assert got == expected


def test_isolate_node_cuts_it_off_both_ways():
    _, got = partition_run({"shape": "isolate", "target": "n3"})
    assert got == {(a, b) for a, b in itertools.permutations(IDS, 2) if "n3" not in (a, b)}


def test_halves_put_the_target_in_a_minority_of_two():
    world, got = partition_run({"shape": "halves", "target": "n2"})
    record = next(r for r in world.nemesis.records if r["event"] == "start")
    minority, majority = record["groups"]
    assert len(minority) == 2 and "n2" in minority and len(majority) == 3
    side = {c: 0 for c in minority} | {c: 1 for c in majority}
    assert got == {(a, b) for a, b in itertools.permutations(IDS, 2) if side[a] == side[b]}


def test_bridge_talks_to_both_halves_which_cannot_talk():
    world, got = partition_run({"shape": "bridge", "target": "n3"})
    record = next(r for r in world.nemesis.records if r["event"] == "start")
    half_a, half_b, bridge = record["groups"]
    assert bridge == ["n3"] and len(half_a) == 2 and len(half_b) == 2
    cut = {(a, b) for a in half_a for b in half_b} | {(b, a) for a in half_a for b in half_b}
    assert got == everyone_but(cut)
    assert all((("n3", c) in got) and ((c, "n3") in got) for c in IDS if c != "n3")


def test_majorities_ring_each_sees_a_different_majority():
    _, got = partition_run({"shape": "majorities-ring"})
    seen = {c: frozenset({c} | {a for a, b in got if b == c}) for c in IDS}
    assert all(len(s) == 3 for s in seen.values())  # itself and its two ring neighbours
    assert len(set(seen.values())) == 5  # no two see the same majority
    assert all((b, a) in got for a, b in got)  # the ring is symmetric


def test_one_way_partition_drops_one_direction_only():
    world, got = partition_run({"shape": "one-way", "groups": [["n1"], ["n2", "n3"]]})
    assert ("n1", "n2") not in got and ("n1", "n3") not in got
    assert ("n2", "n1") in got and ("n3", "n1") in got
    assert got == everyone_but({("n1", "n2"), ("n1", "n3")})
    # n1 heard n2's ping but its pong back to n2 was cut.
    pongs = [m for m in world.cluster.node("n2").received if m[2] == "pong" and m[1] == "n1"]
    assert pongs == []


def test_partition_with_duration_heals_and_later_messages_pass():
    world = probe_world(
        faults=[{"kind": "partition", "at": 1, "duration": 1, "shape": "isolate", "target": "n1"}]
    )
    ping_all(world, 1.5, "during")
    ping_all(world, 2.5, "after")
    world.engine.run(3.0)
    assert all("n1" not in pair for pair in pings_received(world, "during"))
    assert pings_received(world, "after") == set(itertools.permutations(IDS, 2))


def test_heal_ends_every_partition():
    world = probe_world(
        faults=[
            {"kind": "partition", "at": 1, "shape": "isolate", "target": "n1"},
            {"kind": "partition", "at": 1, "shape": "isolate", "target": "n2"},
            {"kind": "heal", "at": 2},
        ]
    )
    ping_all(world, 2.5)
    world.engine.run(3.0)
    assert pings_received(world) == set(itertools.permutations(IDS, 2))


def test_overlapping_partitions_stack():
    # Two partitions cut n1 off; ending one of them leaves n1 cut off by the other.
    world = probe_world(
        faults=[
            {"kind": "partition", "at": 1, "duration": 1, "shape": "isolate", "target": "n1"},
            {"kind": "partition", "at": 1, "duration": 2, "groups": [["n1"]]},
        ]
    )
    ping_all(world, 2.5, "one-left")
    ping_all(world, 3.5, "none-left")
    world.engine.run(4.0)
    assert all("n1" not in pair for pair in pings_received(world, "one-left"))
    assert len(pings_received(world, "none-left")) == 20


def test_message_in_flight_when_a_partition_starts_is_dropped():
    # n1 -> n2 is cross-zone: 2 ms. Sent 1 ms before the cut, it arrives 1 ms after it.
    world = probe_world(
        faults=[{"kind": "partition", "at": 1, "duration": 1, "groups": [["n1"], ["n2"]]}]
    )
    n1 = world.cluster.node("n1")
    world.engine.call_in(0.999, n1.send, "n2", "ping", ("x", "n1", "n2"))
    world.engine.run(1.5)
    assert world.network.dropped["partition"] == 1
    assert pings_received(world) == set()


def test_message_sent_during_a_partition_is_not_delivered_after_the_heal():
    world = probe_world(
        faults=[{"kind": "partition", "at": 1, "duration": 0.0005, "groups": [["n1"], ["n2"]]}]
    )
    n1 = world.cluster.node("n1")
    world.engine.call_in(1.0001, n1.send, "n2", "ping", ("x", "n1", "n2"))
    world.engine.run(2)
    assert pings_received(world) == set()


def test_constant_latency_by_link_class_and_kind():
    world = probe_world(
        network={"latency": {"same_zone": "1ms", "cross_zone": "2ms", "kinds": {"slow": "7ms"}}}
    )
    n1 = world.cluster.node("n1")
    world.engine.call_in(1.0, n1.send, "n4", "ping", ("x",))  # same zone (a)
    world.engine.call_in(1.0, n1.send, "n2", "ping", ("x",))  # cross zone
    world.engine.call_in(1.0, n1.send, "n3", "slow", ("x",))  # kind override
    world.engine.run(2)
    at = {dst: world.cluster.node(dst).received[0][0] for dst in ("n4", "n2", "n3")}
    assert at["n4"] == pytest.approx(1.001)
    assert at["n2"] == pytest.approx(1.002)
    assert at["n3"] == pytest.approx(1.007)


def test_kind_override_per_link_class():
    world = probe_world(network={"latency": {"kinds": {"ack": {"same_zone": "3ms"}}}})
    n1 = world.cluster.node("n1")
    world.engine.call_in(1.0, n1.send, "n4", "ack", 1)  # same zone: overridden
    world.engine.call_in(1.0, n1.send, "n2", "ack", 2)  # cross zone: class default, 2 ms
    world.engine.run(2)
    assert world.cluster.node("n4").received[0][0] == pytest.approx(1.003)
    assert world.cluster.node("n2").received[0][0] == pytest.approx(1.002)


def send_many(world, count: int, src="n1", dst="n2", kind="data", gap=1e-4):
    node = world.cluster.node(src)
    for i in range(count):
        world.engine.call_in(0.1 + i * gap, node.send, dst, kind, i)


def test_loss_drops_the_given_fraction():
    world = probe_world(network={"loss": 0.3})
    send_many(world, 10_000)
    world.engine.run(5)
    got = len(world.cluster.node("n2").received)
    # Binomial(10000, 0.7): standard deviation 45.8; allow 5 of them.
    assert abs(got - 7000) < 5 * math.sqrt(10_000 * 0.3 * 0.7)
    assert world.network.dropped["loss"] == 10_000 - got


def test_duplication_delivers_extra_copies():
    world = probe_world(network={"duplicate": 0.2})
    send_many(world, 10_000)
    world.engine.run(5)
    got = world.cluster.node("n2").received
    assert abs(len(got) - 12_000) < 5 * math.sqrt(10_000 * 0.2 * 0.8)
    assert world.network.duplicated == len(got) - 10_000
    counters = world.network.counters()
    assert counters["sent"] + counters["duplicated"] == counters["delivered"] + counters["dropped"]


def arrival_order(fifo: bool):
    world = probe_world(
        network={"fifo": fifo, "latency": {"cross_zone": {"dist": "exponential", "mean": "1ms"}}}
    )
    send_many(world, 2000, gap=1e-4)
    world.engine.run(5)
    return [body for _, _, _, body in world.cluster.node("n2").received]


def test_fifo_channels_keep_send_order():
    assert arrival_order(fifo=True) == list(range(2000))


def test_fifo_holds_through_a_link_fault_that_starts_mid_stream():
    # From 0.15 s a link fault adds 0 to 20 ms to each message on n1 -> n2: messages sent
    # just before it overtake nothing, and those during it arrive in send order too.
    world = probe_world(
        network={"fifo": True, "latency": {"cross_zone": {"dist": "exponential", "mean": "1ms"}}},
        faults=[
            {
                "kind": "link",
                "at": 0.15,
                "duration": 0.05,
                "groups": [["n1"], ["n2"]],
                "direction": "out",
                "latency": {"dist": "uniform", "low": 0, "high": "20ms"},
            }
        ],
    )
    send_many(world, 2000, gap=1e-4)
    world.engine.run(5)
    order = [body for _, _, _, body in world.cluster.node("n2").received]
    assert order == list(range(2000))


def test_fifo_holds_with_bandwidth_and_varying_latency():
    # Big (5 ms on the wire) and small (0.02 ms) messages alternate every 3 ms; a small one
    # queues behind the big one before it, then draws its own latency (mean 2 ms).
    world = probe_world(
        network={
            "fifo": True,
            "bandwidth": "10MB/s",
            "message_bytes_by_kind": {"big": 50_000},
            "latency": {"cross_zone": {"dist": "exponential", "mean": "2ms"}},
        }
    )
    n1 = world.cluster.node("n1")
    for i in range(400):
        world.engine.call_in(0.1 + i * 0.003, n1.send, "n2", "big" if i % 2 else "data", i)
    world.engine.run(5)
    assert [m[3] for m in world.cluster.node("n2").received] == list(range(400))


def test_fifo_orders_client_requests_forwarded_between_containers():
    # Clients homed on n1 send reads to n2 (Router redirects them all to n2); with an
    # exponential cross-zone latency they would overtake each other without FIFO.
    sc = {
        "policy": {"name": "probes:Router", "params": {"target": "n2"}},
        "network": {
            "fifo": True,
            "latency": {"cross_zone": {"dist": "exponential", "mean": "5ms"}},
        },
        "workload": {"rate": 400, "clients": [{"zone": "a", "count": 4, "home": "n1"}]},
    }
    world = make_world(trace=True, **sc)
    world.run()
    arrivals = [
        r
        for r in world.network.trace_records()
        if r["kind"] == "client" and r["dst"] == "n2" and not r["src"].startswith("final-")
    ]
    sends = sorted(arrivals, key=lambda r: (r["sent_at"], r["id"]))
    assert len(arrivals) > 1000
    assert [r["id"] for r in sorted(arrivals, key=lambda r: (r["time"], r["id"]))] == [
        r["id"] for r in sends
    ]


def test_without_fifo_latency_variance_reorders():
    order = arrival_order(fifo=False)
    assert sorted(order) == list(range(2000))
    inversions = sum(1 for a, b in zip(order, order[1:], strict=False) if a > b)
    assert inversions > 100  # mean latency 10x the send gap: plenty of overtaking


def test_counters_add_up_under_partition_loss_and_duplication():
    world = probe_world(
        network={"loss": 0.1, "duplicate": 0.1},
        faults=[{"kind": "partition", "at": 0.15, "duration": 0.1, "groups": [["n1"], ["n2"]]}],
    )
    send_many(world, 5000)
    world.engine.run(5)
    c = world.network.counters()
    assert c["sent"] == 5000
    assert c["dropped_by_reason"]["partition"] > 0 and c["dropped_by_reason"]["loss"] > 0
    assert c["sent"] + c["duplicated"] == c["delivered"] + c["dropped"]
    assert c["delivered"] == len(world.cluster.node("n2").received)


# -- link faults and bandwidth ---------------------------------------------------------------


def first_arrival(world, dst, label=None):
    return next(
        m[0]
        for m in world.cluster.node(dst).received
        if m[2] == "ping" and (label is None or m[3][0] == label)
    )


def test_link_latency_out_of_a_target_only():
    world = probe_world(
        faults=[{"kind": "link", "at": 0.5, "target": "n1", "direction": "out", "latency": "50ms"}]
    )
    n1, n2 = world.cluster.node("n1"), world.cluster.node("n2")
    world.engine.call_in(1.0, n1.send, "n2", "ping", ("x",))
    world.engine.call_in(1.0, n2.send, "n1", "ping", ("x",))
    world.engine.run(2)
    assert first_arrival(world, "n2") == pytest.approx(1.052)  # 2 ms + 50 ms
    assert first_arrival(world, "n1") == pytest.approx(1.002)  # the other way: untouched
    record = world.nemesis.records[0]
    assert record["event"] == "start" and ["n1", "n2"] in record["links"]
    assert ["n2", "n1"] not in record["links"]


def test_link_latency_distribution_between_groups_of_zones():
    world = probe_world(
        faults=[
            {
                "kind": "link",
                "at": 0.5,
                "groups": [["a"], ["b"]],
                "latency": {"dist": "uniform", "low": "10ms", "high": "20ms"},
            }
        ]
    )
    n1 = world.cluster.node("n1")
    for i in range(200):
        world.engine.call_in(1.0 + i * 0.001, n1.send, "n2", "ping", ("ab", i))  # a -> b
        world.engine.call_in(1.0 + i * 0.001, n1.send, "n3", "ping", ("ac", i))  # a -> c
    world.engine.run(3)
    ab = [m[0] - 1.0 - m[3][1] * 0.001 - 0.002 for m in world.cluster.node("n2").received]
    ac = [m[0] - 1.0 - m[3][1] * 0.001 - 0.002 for m in world.cluster.node("n3").received]
    assert min(ab) >= 0.010 - 1e-9 and max(ab) < 0.020
    assert sum(ab) / len(ab) == pytest.approx(0.015, abs=0.001)
    assert max(abs(x) for x in ac) < 1e-9


def test_link_loss_drops_with_reason_link_and_ends_with_the_fault():
    world = probe_world(
        faults=[{"kind": "link", "at": 0.5, "duration": 1, "target": "n1", "loss": 1.0}]
    )
    ping_all(world, 1.0, "during")
    ping_all(world, 2.0, "after")
    world.engine.run(3)
    assert pings_received(world, "during") == {
        p for p in itertools.permutations(IDS, 2) if "n1" not in p
    }
    assert len(pings_received(world, "after")) == 20
    assert world.network.dropped["link"] == 8


def test_link_duplication_delivers_twice():
    world = probe_world(
        faults=[
            {
                "kind": "link",
                "at": 0.5,
                "groups": [["n1"], ["n2"]],
                "direction": "out",
                "duplicate": 1.0,
            }
        ]
    )
    n1 = world.cluster.node("n1")
    world.engine.call_in(1.0, n1.send, "n2", "ping", ("x",))
    world.engine.run(2)
    assert len(world.cluster.node("n2").received) == 2
    assert world.network.duplicated == 1


def test_heal_ends_link_faults():
    world = probe_world(
        faults=[
            {"kind": "link", "at": 0.5, "target": "n1", "loss": 1.0},
            {"kind": "heal", "at": 1.5},
        ]
    )
    ping_all(world, 2.0)
    world.engine.run(3)
    assert len(pings_received(world)) == 20


def test_bandwidth_serialises_messages_on_a_link():
    # 100 bytes at 1000 B/s: 0.1 s on the wire each, then 2 ms of latency.
    world = probe_world(network={"bandwidth": 1000, "message_bytes": 100})
    n1 = world.cluster.node("n1")
    for i in range(3):
        world.engine.call_in(1.0, n1.send, "n2", "ping", ("x", i))
    world.engine.call_in(1.0, n1.send, "n3", "ping", ("x", 9))  # another link: in parallel
    world.engine.run(3)
    assert [m[0] for m in world.cluster.node("n2").received] == [
        pytest.approx(1.102),
        pytest.approx(1.202),
        pytest.approx(1.302),
    ]
    assert first_arrival(world, "n3") == pytest.approx(1.102)


def test_bandwidth_by_kind_and_units():
    world = probe_world(network={"bandwidth": "8kbps", "message_bytes_by_kind": {"big": 500}})
    n1 = world.cluster.node("n1")
    world.engine.call_in(1.0, n1.send, "n4", "big", 1)  # 500 B at 1000 B/s, same zone
    world.engine.call_in(1.0, n1.send, "n4", "small", 2)  # 200 B default, after it
    world.engine.run(3)
    times = [m[0] for m in world.cluster.node("n4").received]
    assert times == [pytest.approx(1.501), pytest.approx(1.701)]


def test_a_long_trace_spills_to_disk_and_reads_back_the_same(tmp_path, monkeypatch):
    """The message trace keeps one chunk in memory and the rest in a temporary file: a
    run traced with tiny chunks writes exactly the messages.jsonl of one kept in memory."""
    from capsim.runner import run
    from capsim.sim.network import Spool

    scenario = make_scenario(duration=2.0, settle=0.5)
    whole = run(scenario, seed=4, trace=True)
    whole.write(tmp_path / "whole")
    monkeypatch.setattr(Spool, "CHUNK", 7)
    spilled = run(scenario, seed=4, trace=True)
    assert spilled.messages._spool._spilled > 0  # it did go to disk
    spilled.write(tmp_path / "spilled")
    text = (tmp_path / "whole" / "messages.jsonl").read_text()
    assert text == (tmp_path / "spilled" / "messages.jsonl").read_text()
    assert len(spilled.messages) == len(text.splitlines()) > 100
