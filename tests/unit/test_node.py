"""The node API as a protocol author meets it: mistakes reported, internals out of reach."""

from __future__ import annotations

import collections

import pytest
from conftest import make_scenario, make_world

from capsim.errors import PolicyError, ScenarioError
from capsim.runner import build, prepare, run

QUIET = {"workload": {"clients_per_zone": 0}}


def test_an_exception_in_a_handler_names_time_container_shard_request_and_frames():
    sc = make_scenario(policy={"name": "probes:Faulty"}, workload={"read_fraction": 0.5})
    with pytest.raises(PolicyError) as caught:
        run(sc, seed=1)
    err = caught.value
    assert err.policy == "probes:Faulty"
    assert 1.0 < err.time < 1.5  # the first write after 1 s (3 clients at 10/s)
    assert err.container in ("n1", "n2", "n3") and err.shard == 0
    assert err.handling.startswith("client request Request(") and "op='write'" in err.handling
    assert isinstance(err.exc, ZeroDivisionError)
    # The policy's own frames, innermost last, and none of capsim's or SimPy's.
    assert [f.name for f in err.frames] == ["on_client", "explode"]
    assert all("probes.py" in f.filename for f in err.frames)
    report = err.report()
    assert "raised ZeroDivisionError: cannot handle write" in report
    assert f"on {err.container}, shard 0" in report and "probes.py" in report
    # The run up to the failure is measured and attached: its history ends there.
    partial = err.result
    assert partial is not None and partial.summary["failure"]["container"] == err.container
    assert max(partial.history.time) <= err.time
    assert partial.summary["ops"]["total"] > 10


def test_sending_to_a_container_that_does_not_exist_is_reported_as_the_policys_error():
    with pytest.raises(PolicyError) as caught:
        run(make_scenario(policy={"name": "probes:Stranger"}), seed=1)
    assert isinstance(caught.value.exc, ValueError)
    assert "no container 'n9'" in str(caught.value.exc)
    assert "n1, n2, n3, n4, n5" in str(caught.value.exc)
    assert [f.name for f in caught.value.frames] == ["on_client"]


def test_answering_a_request_twice_is_an_error():
    with pytest.raises(PolicyError) as caught:
        run(make_scenario(policy={"name": "probes:Twice"}), seed=1)
    assert "already answered (ok)" in str(caught.value.exc)


def test_duplication_repeats_messages_between_nodes_never_a_clients_request():
    # A client talks to a node over a connection: a repeated request could take effect
    # after the client was told it failed. Messages between nodes are duplicated.
    sc = make_scenario(network={"duplicate": 0.5})
    res = run(sc, seed=3, trace=True)
    assert res.summary["messages"]["duplicated"] > 100
    ids = collections.Counter(
        (m["id"], m["kind"]) for m in res.messages if m["outcome"] == "delivered"
    )
    repeated = {kind for (_, kind), count in ids.items() if count > 1}
    assert repeated and repeated.isdisjoint({"client", "client_reply"})
    assert res.summary["consistency"]["linearizable"] is True


def test_a_policy_without_params_refuses_parameters():
    with pytest.raises(ScenarioError) as caught:
        prepare(make_scenario(policy={"name": "probes:Probe", "params": {"ttl": 3}}))
    assert caught.value.field == "policy.params.ttl"
    assert "Probe takes no parameters" in caught.value.message


def test_a_parameter_error_says_got_once():
    with pytest.raises(ScenarioError) as caught:
        prepare(make_scenario(policy={"params": {"retry_interval": "-1s"}}))
    text = str(caught.value)
    assert text.count("got") == 1 and "'-1s'" in text
    assert caught.value.field == "policy.params.retry_interval"


@pytest.mark.parametrize("delay", [-1.0, float("inf"), float("nan"), "1s"])
def test_a_timer_that_cannot_be_simulated_is_refused(delay):
    world = make_world(policy={"name": "probes:Probe"}, **QUIET)
    world.start()
    with pytest.raises(ValueError, match="finite number >= 0"):
        world.cluster.node("n1").set_timer(delay, print)


def test_internals_are_out_of_the_policys_namespace():
    # Clobber assigns _pending, _alive, _container, _net, _dispatch, id, ... in on_start.
    world = make_world(policy={"name": "probes:Clobber"}, **QUIET)
    world.start()
    world.engine.run(1.0)
    first = world.cluster.node("n1")
    assert [(m.src, m.kind, m.body) for m in sorted(first.answers, key=lambda m: m.src)] == [
        ("n2", "pong", "n2"),
        ("n3", "pong", "n3"),
        ("n4", "pong", "n4"),
        ("n5", "pong", "n5"),
    ]
    # Clients are still served although the policy set self.id and self._answer.
    res = run(make_scenario(policy={"name": "probes:Clobber"}), seed=1)
    assert res.summary["availability"]["overall"] == 1.0


def test_sent_at_is_the_senders_clock_not_true_time():
    # n1's clock jumps 100 s ahead at 0.5 s; at 1 s it broadcasts. Receivers see 101 s.
    world = make_world(
        policy={"name": "probes:Stamps"},
        faults=[{"kind": "clock", "at": 0.5, "target": "n1", "offset": "100s"}],
        **QUIET,
    )
    world.start()
    world.engine.run(2.0)
    stamps = world.cluster.node("n2").stamps
    assert len(stamps) == 1
    src, sent_at, body = stamps[0]
    assert src == "n1" and sent_at == pytest.approx(101.0) and body == pytest.approx(101.0)


def test_node_log_lines_carry_time_container_and_shard(tmp_path):
    res = run(make_scenario(policy={"name": "probes:Stamps"}, **QUIET), seed=1)
    assert res.node_log == [(1.0, "n1", 0, "told 4 peers at 1.0")]
    out = res.write(tmp_path / "out")
    assert (out / "node.log").read_text() == "1.000000 n1 shard 0: told 4 peers at 1.0\n"


# -- addressing, services, membership, routing ---------------------------------------------


def addresser_world(**overrides):
    world = make_world(
        policy={"name": "probes:Addresser"},
        cluster={"containers": 4, "shards": 2, "replication_factor": 2},
        **QUIET,
        **overrides,
    )
    world.start()
    return world


def test_a_service_runs_on_every_container_and_replies_reach_the_asking_replica():
    world = addresser_world()
    shard0 = world.placement.replicas[0]
    asker = world.cluster.node(shard0[0], 0)
    world.engine.call_in(0.1, lambda: asker.send("n4", "ask", "hello", service="desk"))
    world.engine.run(1.0)
    desk = world.cluster.node("n4", "desk")
    assert desk.service == "desk" and desk.shard is None
    assert desk.asked == [(shard0[0], "ask", "hello")]
    assert asker.answers == [("n4", "desk", None)]
    assert set(desk.peers) == {"n1", "n2", "n3", "n4"}


def test_a_message_for_a_shard_a_container_does_not_hold_is_dropped_and_counted():
    world = addresser_world()
    shard0, shard1 = world.placement.replicas
    outsider = next(c for c in ("n1", "n2", "n3", "n4") if c not in shard1)
    sender = world.cluster.node(shard0[0], 0)
    holder = shard1[0]
    world.engine.call_in(0.1, lambda: sender.send(holder, "hi", 1, shard=1))  # delivered
    world.engine.call_in(0.1, lambda: sender.send(outsider, "hi", 2, shard=1))  # nobody
    world.engine.run(1.0)
    assert world.cluster.node(holder, 1).got == [(shard0[0], "hi", 1, 1)]
    assert world.network.counters()["dropped_by_reason"]["no-replica"] == 1


def test_unknown_services_and_shards_are_the_policys_error():
    world = addresser_world()
    node = world.cluster.node(world.placement.replicas[0][0], 0)
    with pytest.raises(ValueError, match="no service 'bar'"):
        node.send("n1", "x", service="bar")
    with pytest.raises(ValueError, match="no shard 7"):
        node.send("n1", "x", shard=7)


def test_membership_changes_are_seen_by_every_node_and_by_client_routing():
    sc = make_scenario(
        policy={"name": "probes:Ends"},
        workload={"read_fraction": 0.5, "rate": 50},
        duration=2,
    )
    world = build(sc, seed=1)
    world.start()
    world.engine.run(1.0)
    n3 = world.cluster.node("n3")
    assert n3.peers == ("n1", "n2", "n3", "n4", "n5")
    n3.set_members(("n5", "n2", "n4"))
    assert world.cluster.node("n1").peers == ("n5", "n2", "n4")
    with pytest.raises(ValueError, match="at least one member"):
        n3.set_members(())
    world.run()
    ops = world.history.operations()
    names = world.history.nodes.names
    served = {}
    for i in range(len(ops)):
        if not ops.final[i] and ops.type[i] == 0 + 1:  # ok
            node = names[world.history.node[ops.complete_index[i]]]
            served.setdefault((ops.invoke_time[i] >= 1.0, ops.f[i] == 0), set()).add(node)
    assert served[(False, True)] == {"n5"} and served[(False, False)] == {"n1"}  # before
    assert served[(True, True)] == {"n4"} and served[(True, False)] == {"n5"}  # after


def test_clients_learn_where_requests_succeed_and_pay_one_redirect():
    # Reads only; three clients homed on n2, a backup: the first read of each goes to n2
    # and is redirected to the primary n1, every later one goes straight to n1. So the main
    # phase sends 2 messages per read, 2 per client for its one redirect, and the
    # primary's opening heartbeat (an append to each of 4 backups and 4 acks).
    sc = make_scenario(
        workload={"read_fraction": 1.0, "clients": [{"zone": "b", "count": 3, "home": "n2"}]}
    )
    res = run(sc, seed=1)
    total = res.summary["ops"]["total"]
    assert total > 250 and res.summary["availability"]["overall"] == 1.0
    assert res.summary["messages"]["main_phase"] == 2 * total + 2 * 3 + 8


def test_a_timer_reset_moves_it_and_revives_a_cancelled_one():
    world = make_world(policy={"name": "probes:Probe"}, **QUIET)
    world.start()
    node = world.cluster.node("n1")
    timer = node.set_timer(1.0, node.remember, "a")
    world.engine.call_in(0.5, timer.reset)  # now due at 1.5
    world.engine.call_in(0.7, timer.reset, 0.2)  # now due at 0.9
    world.engine.run(2.0)
    assert node.fired == [("a", pytest.approx(0.9))]
    timer.cancel()
    timer.reset(0.3)  # fired and cancelled: armed again
    world.engine.run(3.0)
    assert node.fired[1] == ("a", pytest.approx(2.3))
    with pytest.raises(ValueError, match="Timer.reset"):
        timer.reset(-1)


def test_an_rpc_without_a_timeout_is_forgotten_after_a_minute():
    world = make_world(
        policy={"name": "probes:Probe"},
        faults=[{"kind": "crash", "at": 0.05, "target": "n2"}],
        duration=200,
        **QUIET,
    )
    world.start()
    n1 = world.cluster.node("n1")
    replies = []
    for t in (0.1, 0.2, 61.0):
        world.engine.call_in(t, n1.rpc, "n2", "ping", t, replies.append)
    world.engine.run(30.0)
    rt = n1._Node__rt
    assert len(rt.pending) == 2
    world.engine.run(61.5)  # the rpc at 61 s forgets those older than a minute
    assert len(rt.pending) == 1 and replies == []


def test_a_message_size_sets_its_transmission_time():
    # 1000 B/s: a 500-byte message takes 0.5 s on the wire, then 2 ms of latency.
    world = make_world(policy={"name": "probes:Probe"}, network={"bandwidth": 1000}, **QUIET)
    world.start()
    n1 = world.cluster.node("n1")
    world.engine.call_in(1.0, lambda: n1.send("n2", "ping", "big", size=500))
    world.engine.run(3.0)
    assert world.cluster.node("n2").received[0][0] == pytest.approx(1.502)


def test_the_monotonic_clock_runs_at_the_clock_rate_and_never_jumps():
    # n1's clock jumps 100 s ahead at 1 s and runs at half speed from 1 s to 3 s.
    world = make_world(
        policy={"name": "probes:Probe"},
        faults=[{"kind": "clock", "at": 1, "target": "n1", "offset": "100s", "rate": 0.5,
                 "duration": 2}],
        **QUIET,
    )  # fmt: skip
    world.start()
    n1 = world.cluster.node("n1")
    readings = {}
    for t in (0.5, 2.0, 4.0):
        world.engine.run(t)
        readings[t] = (n1.now(), n1.monotonic())
    assert readings[0.5] == pytest.approx((0.5, 0.5))
    assert readings[2.0] == pytest.approx((101.5, 1.5))  # jumped, then half speed
    assert readings[4.0] == pytest.approx((4.0, 3.0))  # stepped back to true time at 3 s


def test_dirty_says_whether_a_sync_has_something_to_do():
    from capsim.sim.storage import Durable

    d = Durable(tracking=True)
    assert not d.dirty
    d["a"] = 1
    assert d.dirty
    d.persist(d.mark())
    assert not d.dirty
    instant = Durable(tracking=False)
    instant["a"] = 1
    assert not instant.dirty


def test_a_node_can_answer_that_an_outcome_is_unknown():
    res = run(make_scenario(policy={"name": "probes:Unsure"}, workload={"timeout": 5}), seed=1)
    ops = res.history.operations()
    writes = [i for i in range(len(ops)) if not ops.final[i] and ops.f[i] != 0]
    assert writes and all(ops.type[i] == 3 for i in writes)  # info, every one
    assert {ops.error(i) for i in writes} == {"too-few-replicas"}
    # Recorded when the answer came (zero latency at home), not at the 5 s timeout.
    assert max(ops.complete_time[i] - ops.invoke_time[i] for i in writes) < 0.001


def test_an_introspection_failure_is_the_policys_error():
    with pytest.raises(PolicyError) as caught:
        run(make_scenario(policy={"name": "probes:BadIntrospection"}), seed=1)
    assert "value_of('k" in caught.value.handling
    assert isinstance(caught.value.exc, KeyError)


def test_a_request_says_how_it_was_answered_and_nodes_know_the_shard_count():
    res = run(make_scenario(policy={"name": "probes:Teller"}, cluster={"shards": 3}), seed=1)
    assert {text for _, _, _, text in res.node_log} == {"answered None ok shards 3"}
