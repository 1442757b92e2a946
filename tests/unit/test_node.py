"""The node API as a protocol author meets it: mistakes reported, internals out of reach."""

from __future__ import annotations

import pytest
from conftest import make_scenario, make_world

from capsim.errors import PolicyError, ScenarioError
from capsim.runner import prepare, run

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


def test_each_delivery_of_a_duplicated_request_is_answered_once():
    # With duplication, a node sees the same request twice and answers both deliveries:
    # not an error, and the client takes the first answer only.
    sc = make_scenario(network={"duplicate": 0.5})
    res = run(sc, seed=3)
    assert res.summary["messages"]["duplicated"] > 100
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
