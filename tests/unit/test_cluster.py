"""Containers: crash loses volatile state, timers and pending rpcs; durable state stays;
restart takes the image's start-up time and calls on_start again."""

from __future__ import annotations

import pytest
from conftest import make_world


def probe_world(faults=(), **overrides):
    world = make_world(
        policy={"name": "probes:Probe"},
        workload={"clients_per_zone": 0},
        images=[{"name": "kv", "version": "1", "startup": "500ms"}],
        faults=list(faults),
        **overrides,
    )
    world.start()
    return world


def test_crash_and_restart_keep_durable_state_and_lose_volatile_state():
    world = probe_world([{"kind": "crash", "at": 1, "target": "n2", "duration": 2}])
    before = world.cluster.node("n2")
    before.scratch = "changed"
    assert before.starts == 1
    world.engine.run(1.5)
    assert world.cluster.node("n2") is None  # down
    world.engine.run(3.4)
    assert world.cluster.node("n2") is None  # restarting: 2 s down + 0.5 s start-up
    world.engine.run(3.6)
    after = world.cluster.node("n2")
    assert after is not None and after is not before
    assert after.starts == 2  # the durable counter survived the crash
    assert after.scratch == "volatile"  # a fresh instance: volatile state is gone
    assert after.received == []


def test_timers_of_a_crashed_node_never_fire():
    world = probe_world([{"kind": "crash", "at": 1, "target": "n2", "duration": 0.1}])
    old = world.cluster.node("n2")
    world.engine.call_in(0.5, lambda: old.set_timer(1.0, old.remember, "late"))
    world.engine.call_in(0.5, lambda: old.set_timer(0.2, old.remember, "early"))
    world.engine.run(5)
    assert old.fired == [("early", pytest.approx(0.7))]
    assert world.cluster.node("n2").fired == []


def test_cancelled_timer_does_not_fire():
    world = probe_world()
    node = world.cluster.node("n1")

    def arm():
        timer = node.set_timer(0.5, node.remember, "x")
        node.set_timer(0.2, timer.cancel)

    world.engine.call_in(0.1, arm)
    world.engine.run(2)
    assert node.fired == []


def test_messages_to_a_crashed_container_are_dropped_and_senders_go_quiet():
    world = probe_world([{"kind": "crash", "at": 1, "target": "n2"}])
    n1 = world.cluster.node("n1")
    n2 = world.cluster.node("n2")
    world.engine.call_in(1.5, n1.send, "n2", "ping", ("x",))
    world.engine.call_in(1.5, n2.send, "n1", "ping", ("dead",))  # a dead instance sends nothing
    world.engine.run(2)
    assert world.network.dropped["down"] == 1
    assert [m for m in n1.received if m[2] == "ping"] == []


def test_rpc_reply_and_timeout():
    world = probe_world([{"kind": "partition", "at": 2, "groups": [["n3"]]}])
    n1 = world.cluster.node("n1")
    events = []

    def call():
        n1.rpc(
            "n2",
            "ping",
            1,
            lambda m: events.append(("reply", m.body, n1.now())),
            timeout=0.1,
            on_timeout=lambda: events.append(("timeout", n1.now())),
        )
        n1.rpc(
            "n3",
            "ping",
            2,
            lambda m: events.append(("reply", m.body, n1.now())),
            timeout=0.1,
            on_timeout=lambda: events.append(("timeout", n1.now())),
        )

    world.engine.call_in(1.0, call)  # both answer: 2 ms each way
    world.engine.call_in(2.5, call)  # n3 is cut off: its rpc times out after 0.1 s
    world.engine.run(3)
    assert events == [
        ("reply", 1, pytest.approx(1.004)),
        ("reply", 2, pytest.approx(1.004)),
        ("reply", 1, pytest.approx(2.504)),
        ("timeout", pytest.approx(2.6)),
    ]


def test_late_reply_after_rpc_timeout_goes_to_on_message():
    world = probe_world(network={"latency": {"cross_zone": "100ms"}})
    n1 = world.cluster.node("n1")
    timeouts = []
    world.engine.call_in(
        1.0,
        lambda: n1.rpc(
            "n2",
            "ping",
            7,
            lambda m: None,
            timeout=0.05,
            on_timeout=lambda: timeouts.append(n1.now()),
        ),
    )
    world.engine.run(2)
    assert timeouts == [pytest.approx(1.05)]
    assert [(m[1], m[2], m[3]) for m in n1.received] == [("n2", "pong", 7)]


def test_crash_twice_and_restart_while_starting_is_ignored():
    world = probe_world(
        [
            {"kind": "crash", "at": 1, "target": "n2"},
            {"kind": "restart", "at": 2, "target": "n2"},
            {"kind": "restart", "at": 2.1, "target": "n2"},  # already starting: skipped
            {"kind": "crash", "at": 2.2, "target": "n2"},  # crashes again while starting
            {"kind": "restart", "at": 3, "target": "n2"},
        ]
    )
    world.engine.run(3.4)
    assert world.cluster.node("n2") is None
    world.engine.run(3.6)
    assert world.cluster.node("n2").starts == 2  # one start at boot, one at 3.5
    events = [(r["fault"], r["event"]) for r in world.nemesis.records]
    # The second crash ends the first one's hold on n2; the second lasts until n2 is ready.
    assert events == [
        (0, "start"),
        (1, "apply"),
        (2, "skipped"),
        (0, "end"),
        (3, "start"),
        (4, "apply"),
        (3, "end"),
    ]


def test_client_request_to_a_crashed_home_fails_definitely():
    world = make_world(
        policy={"name": "probes:Probe"},
        workload={"clients": [{"zone": "b", "count": 1, "home": "n2"}], "rate": 50},
        faults=[{"kind": "crash", "at": 0, "target": "n2"}],
        duration=2,
    )
    world.run()
    ops = world.history.operations()
    main = ~ops.final
    assert main.sum() > 50
    assert set(ops.type[main].tolist()) == {2}  # every one failed...
    assert {ops.error(i) for i in range(len(ops)) if main[i]} == {"unavailable"}  # refused


def test_cluster_reports_roles():
    world = make_world(
        policy={"name": "single-primary", "params": {"primary": "n3"}},
        workload={"clients_per_zone": 0},
    )
    world.start()
    assert world.cluster.with_role(("leader", "primary")) == ["n3"]
    assert world.cluster.node("n1").role == "backup"


# -- pauses ----------------------------------------------------------------------------------


def test_pause_holds_messages_and_timers_until_resume_then_runs_them_in_order():
    world = probe_world([{"kind": "pause", "at": 1, "target": "n2", "duration": 1}])
    n1, n2 = world.cluster.node("n1"), world.cluster.node("n2")
    world.engine.call_in(0.5, lambda: n2.set_timer(1.0, n2.remember, "due at 1.5"))
    world.engine.call_in(1.2, n1.send, "n2", "ping", "held")  # arrives 1.202, paused
    world.engine.run(3)
    assert n2.received == [(pytest.approx(2.0), "n1", "ping", "held")]
    assert n2.fired == [("due at 1.5", pytest.approx(2.0))]
    # The pong leaves at 2.0 and takes 2 ms.
    assert [m[0] for m in n1.received if m[2] == "pong"] == [pytest.approx(2.002)]
    events = [(r["event"], r["time"]) for r in world.nemesis.records]
    assert events == [("start", 1.0), ("end", 2.0)]


def test_paused_container_still_counts_as_up_for_the_network():
    world = probe_world([{"kind": "pause", "at": 1, "target": "n2", "duration": 1}])
    n1 = world.cluster.node("n1")
    world.engine.call_in(1.5, n1.send, "n2", "ping", "x")
    world.engine.run(3)
    assert world.network.dropped["down"] == 0
    assert world.cluster.by_id["n2"].queue_length() == 0


def test_crash_during_a_pause_drops_what_was_held():
    world = probe_world(
        [
            {"kind": "pause", "at": 1, "target": "n2", "duration": 1},
            {"kind": "crash", "at": 1.5, "target": "n2", "duration": 0.1},
        ]
    )
    n1 = world.cluster.node("n1")
    world.engine.call_in(1.2, n1.send, "n2", "ping", "x")
    world.engine.run(3)
    assert world.cluster.node("n2").received == []
    assert [r["event"] for r in world.nemesis.records if r["kind"] == "pause"] == ["start", "end"]


# -- clocks ----------------------------------------------------------------------------------


def test_clock_offset_shifts_now_but_not_timers():
    world = probe_world([{"kind": "clock", "at": 1, "target": "n2", "offset": "5s", "duration": 2}])
    n2 = world.cluster.node("n2")
    readings = []
    world.engine.call_in(2.0, lambda: readings.append(n2.now()))
    world.engine.call_in(3.5, lambda: readings.append(n2.now()))  # stepped back at 3
    world.engine.call_in(1.5, lambda: n2.set_timer(0.25, n2.remember, "t"))
    world.engine.run(4)
    assert readings == [pytest.approx(7.0), pytest.approx(3.5)]
    assert n2.fired == [("t", pytest.approx(6.75))]  # local reading when it fired at 1.75


def test_clock_rate_makes_timers_and_now_run_fast_or_slow():
    world = probe_world(
        [
            {"kind": "clock", "at": 1, "target": "n2", "rate": 2},
            {"kind": "clock", "at": 1, "target": "n3", "rate": 0.5, "offset": "-1s"},
        ]
    )
    n2, n3 = world.cluster.node("n2"), world.cluster.node("n3")
    world.engine.call_in(1.0, lambda: n2.set_timer(1.0, n2.remember, "fast"))
    world.engine.call_in(1.0, lambda: n3.set_timer(1.0, n3.remember, "slow"))
    world.engine.run(4)
    # n2: 1 local second at rate 2 is 0.5 s of simulated time; its clock then reads 2.0.
    assert n2.fired == [("fast", pytest.approx(2.0))]
    # n3: jumped to 0.0 at t=1, at rate 0.5; 1 local second takes 2 s: fires at t=3.
    assert n3.fired == [("slow", pytest.approx(1.0))]
    assert world.cluster.by_id["n3"].clock() == pytest.approx(1.5)  # at t=4


# -- service time and queues ------------------------------------------------------------------


def test_service_time_serialises_messages_and_builds_a_queue():
    world = probe_world(cluster={"service_time": "10ms"})
    n1, n4 = world.cluster.node("n1"), world.cluster.node("n4")
    for i in range(5):
        world.engine.call_in(1.0, n1.send, "n4", "ping", i)  # all arrive at 1.001
    world.engine.run(2)
    times = [m[0] for m in n4.received]
    assert times == [pytest.approx(1.011 + 0.01 * i) for i in range(5)]
    assert [m[3] for m in n4.received] == [0, 1, 2, 3, 4]
    assert world.cluster.by_id["n4"].max_queue == 4  # one in service, four waiting
    stats = world.cluster.queue_stats()
    assert stats["max_length"]["n4"] == 4
    # n4 waited 0+10+20+30+40 ms; n1's five pongs arrive 10 ms apart and never wait.
    assert stats["mean_wait_ms"] == pytest.approx(100 / 10)


def test_paused_container_comes_back_to_a_backlog():
    world = probe_world(
        [{"kind": "pause", "at": 1, "target": "n4", "duration": 1}],
        cluster={"service_time": "10ms"},
    )
    n1, n4 = world.cluster.node("n1"), world.cluster.node("n4")
    for i in range(3):
        world.engine.call_in(1.5 + i * 0.1, n1.send, "n4", "ping", i)
    world.engine.call_in(1.9, lambda: world.cluster.by_id["n4"].queue_length())
    world.engine.run(1.95)
    assert world.cluster.by_id["n4"].queue_length() == 3
    world.engine.run(3)
    assert [m[0] for m in n4.received] == [
        pytest.approx(2.01),
        pytest.approx(2.02),
        pytest.approx(2.03),
    ]
