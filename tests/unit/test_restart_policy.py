"""Restart policies (``cluster.restart``) as a container runtime applies them, and
readiness (``Node.set_ready``): who is sent traffic after a restart."""

from __future__ import annotations

import pytest
from conftest import make_scenario, make_world

import capsim
from capsim.cli import main
from capsim.runner import run


def crash_loop(policy: str | None, *extra, **restart) -> list[dict]:
    """n2 crashes at 1, 3, 6, 11 and 26 s without a scheduled restart; with start-up
    0.5 s, back-off 1 s doubling to at most 4 s, reset after 10 s of running."""
    spec = {"policy": policy, "backoff": 1, "max_backoff": 4, "reset_after": 10, **restart}
    sc = make_scenario(
        duration=30,
        images=[{"name": "kv", "startup": "500ms"}],
        cluster={"restart": spec} if policy else {},
        policy={"name": "raft"},
        faults=[{"kind": "crash", "at": t, "target": "n2"} for t in (1, 3, 6, 11, 26)]
        + list(extra),
    )
    return run(sc).faults


def restarts(records: list[dict], target: str = "n2") -> list[tuple[float, int, float]]:
    return [
        (r["time"], r["attempt"], r["backoff_s"])
        for r in records
        if r["event"] == "restart" and r.get("policy") and r["targets"] == [target]
    ]


def test_backoff_doubles_up_to_its_cap_and_starts_over_after_a_long_run():
    # Worked out by hand. Crash at 1: wait 1 s (attempt 1), restart at 2, ready at 2.5.
    # Crash at 3 (it ran 0.5 s): wait 2 s, restart at 5, ready 5.5. Crash at 6: wait 4 s,
    # restart at 10, ready 10.5. Crash at 11: 8 s capped to 4 s, restart at 15, ready
    # 15.5. It then runs 10.5 s (>= reset_after) before the crash at 26: wait 1 s again.
    assert restarts(crash_loop("always")) == [
        (2.0, 1, 1.0),
        (5.0, 2, 2.0),
        (10.0, 3, 4.0),
        (15.0, 4, 4.0),
        (27.0, 1, 1.0),
    ]
    # The same for on-failure: a crash is a failure.
    assert restarts(crash_loop("on-failure")) == restarts(crash_loop("always"))


def test_each_crash_lasts_until_the_container_is_ready_again():
    records = crash_loop("always")
    windows = [(r["time"], r["event"]) for r in records if r["kind"] == "crash" and r["fault"] == 0]
    assert windows == [(1.0, "start"), (2.0, "restart"), (2.5, "end")]


def test_never_leaves_a_crashed_container_down():
    world = make_world(
        duration=20,
        images=[{"name": "kv", "startup": "500ms"}],
        cluster={"restart": {"policy": "never"}},
        faults=[{"kind": "crash", "at": 1, "target": "n2"}],
    )
    world.start()
    for t in (1.5, 5.0, 19.9):
        world.engine.run(t)
        assert not world.cluster.by_id["n2"].up
    world.run()
    assert restarts(world.nemesis.records) == []
    # Only the final phase brings it back (it heals everything).
    final = [r for r in world.nemesis.records if r["kind"] == "final"]
    assert final[0]["restarted"] == ["n2"]
    # No policy at all is the same as never (Docker's default, "no").
    assert restarts(crash_loop(None)) == []


@pytest.mark.parametrize(
    ("policy", "after_crash", "after_exit"),
    [("always", True, True), ("on-failure", True, False), ("never", False, False)],
)
def test_a_clean_exit_is_restarted_only_by_always(policy, after_crash, after_exit):
    sc = make_scenario(
        images=[{"name": "kv", "startup": "200ms"}],
        cluster={"restart": {"policy": policy, "backoff": "300ms"}},
        faults=[
            {"kind": "crash", "at": 1, "target": "n2"},
            {"kind": "stop", "at": 1, "target": "n3"},
        ],
    )
    records = run(sc).faults
    assert bool(restarts(records, "n2")) == after_crash
    assert bool(restarts(records, "n3")) == after_exit
    if after_exit:
        stop_end = [r["time"] for r in records if r["kind"] == "stop" and r["event"] == "end"]
        assert stop_end == [pytest.approx(1.5)]  # 0.3 s back-off, 0.2 s start-up


def test_on_failure_gives_up_after_max_retries():
    records = crash_loop("on-failure", max_retries=2)
    assert [a for _, a, _ in restarts(records)] == [1, 2]
    gave_up = [r for r in records if r["event"] == "give-up"]
    assert [(r["time"], r["targets"], r["attempts"]) for r in gave_up] == [(6.0, ["n2"], 2)]


def test_a_scheduled_restart_is_not_doubled_by_the_policy():
    sc = make_scenario(
        images=[{"name": "kv", "startup": "200ms"}],
        cluster={"restart": {"policy": "always", "backoff": "100ms"}},
        faults=[{"kind": "crash", "at": 1, "target": "n2", "duration": 2}],
    )
    records = run(sc).faults
    assert restarts(records) == []
    assert [r["time"] for r in records if r["event"] == "restart"] == [3.0]


def test_a_restart_policy_is_checked_before_the_run(tmp_path, capsys):
    for text, field in (
        ("cluster: {restart: {policy: sometimes}}", "cluster.restart.policy"),
        ("cluster: {restart: {backoff: 5s, max_backoff: 1s}}", "cluster.restart"),
        ("cluster: {restart: {policy: always, max_retries: 3}}", "cluster.restart"),
        ("faults: [{kind: stop, at: 1s}]", "faults[0].target"),
    ):
        path = tmp_path / "bad.yaml"
        path.write_text(text + "\n")
        assert main(["validate", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"{field}:" in err, err


# -- readiness ------------------------------------------------------------------------------


class SlowStart(capsim.Node):
    """Each replica keeps its own register and says it is ready 1 s after it starts (a
    warm-up); it reports the role ``leader`` so that role targets can be checked."""

    def on_start(self):
        self.data = {}
        self.role = "leader"
        self.set_ready(False)
        self.set_timer(1.0, self.set_ready, True)

    def on_client(self, req):
        if req.op == "read":
            self.ok(req, self.data.get(req.key))
        else:
            self.data[req.key] = req.value
            self.ok(req, req.value)


def test_a_restarted_container_is_sent_traffic_only_once_its_replicas_are_ready():
    world = make_world(
        duration=8,
        images=[{"name": "kv", "startup": "200ms"}],
        cluster={"restart": {"policy": "always", "backoff": "500ms"}},
        policy={"name": "test_restart_policy:SlowStart"},
        workload={"rate": 20, "clients_per_zone": 2},
        faults=[{"kind": "crash", "at": 3, "target": "n1"}],
    )
    cluster, n1 = world.cluster, world.cluster.by_id["n1"]
    world.start()
    world.engine.run(0.5)
    assert cluster.with_role(("leader",)) == []  # every replica warming up until 1 s
    world.engine.run(2.9)
    assert "n1" in cluster.with_role(("leader",)) and n1.requests > 0
    # Crashed at 3, restarted at 3.5 (the back-off), up at 3.7 (start-up), ready at 4.7.
    world.engine.run(3.71)
    assert n1.up and "n1" not in cluster.with_role(("leader",))
    sent = n1.requests
    world.engine.run(4.69)
    assert n1.requests == sent  # up, not ready: the clients homed on n1 went to n4
    world.engine.run(4.71)
    assert "n1" in cluster.with_role(("leader",))
    world.run()
    result = world.result(world.digest(), 0.0)
    # Zone a's clients were served by n4 while n1 warmed up (only the crash itself cost).
    assert result.summary["availability"]["overall"] > 0.97
