"""The scripted workload (``workload: {kind: script, ops: [...]}``): exactly the listed
operations, at their times, one open per client; and the resolved scenario replays it."""

from __future__ import annotations

import json

import pytest
from conftest import make_scenario

from capsim.errors import ScenarioError
from capsim.runner import run
from capsim.scenario import load_scenario


def scripted(ops, **extra):
    return make_scenario(
        duration=5.0,
        settle=1.0,
        cluster={"containers": 3, "zones": ["a", "b", "c"], "disk": {"sync": 0.002}},
        policy={"name": "raft"},
        workload={"kind": "script", "ops": ops},
        **extra,
    )


def events(result):
    return [e for e in result.history if not e.get("final")]


def test_operations_run_at_their_times_one_open_per_client():
    ops = [
        {"at": 1.0, "f": "write", "key": "x", "value": 1},
        {"at": 1.0, "f": "write", "key": "x", "value": 2},  # same client: waits for the first
        {"at": 1.5, "f": "read", "key": "x", "client": 2},
        {"at": 2.0, "f": "cas", "key": "x", "value": [2, 3], "client": 1},
    ]
    result = run(scripted(ops))
    history = events(result)
    invokes = [e for e in history if e["type"] == "invoke"]
    assert [(e["f"], e["value"], e["client"]) for e in invokes] == [
        ("write", 1, "c1"),
        ("write", 2, "c1"),
        ("read", None, "c3"),
        ("cas", [2, 3], "c2"),
    ]
    first_done = next(e for e in history if e["type"] == "ok" and e["value"] == 1)
    assert invokes[0]["time"] == 1.0 and invokes[1]["time"] == first_done["time"] > 1.0
    assert invokes[2]["time"] == 1.5 and invokes[3]["time"] == 2.0
    outcomes = {e["f"]: (e["type"], e["value"]) for e in history if e["type"] != "invoke"}
    assert outcomes["read"] == ("ok", 2) and outcomes["cas"] == ("ok", [2, 3])
    assert result.summary["ops"]["total"] == 4
    finals = [e["value"] for e in result.history if e.get("final") and e["type"] == "ok"]
    assert finals == [3, 3, 3]  # every replica of x, after the final heal


def test_a_set_script_counts_lost_adds(tmp_path):
    ops = [{"at": 1.0 + i / 10, "f": "add", "key": "s", "value": i} for i in range(5)]
    ops.append({"at": 2.0, "f": "read", "key": "s", "client": 1})
    result = run(scripted(ops))
    assert result.summary["durability"]["lost_writes"] == 0
    assert result.summary["durability"]["acknowledged_writes"] == 5
    read = next(e for e in events(result) if e["f"] == "read" and e["type"] == "ok")
    assert read["value"] == [0, 1, 2, 3, 4]


def test_the_resolved_scenario_replays_the_same_run(tmp_path):
    ops = [
        {"at": 0.5, "f": "write", "key": "k", "value": 7},
        {"at": 0.6, "f": "read", "key": "k", "client": 2},
    ]
    scenario = scripted(ops, faults=[{"kind": "crash", "at": 0.55, "target": "leader"}])
    first = run(scenario)
    first.write(tmp_path / "out")
    again = run(load_scenario(tmp_path / "out" / "scenario.resolved.yaml"))
    assert again.summary["trace_digest"] == first.summary["trace_digest"]
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert written["ops"] == again.summary["ops"]


@pytest.mark.parametrize(
    "ops, message",
    [
        ([], "needs 'ops'"),
        (
            [
                {"at": 1, "f": "write", "key": "x", "value": 1},
                {"at": 1, "f": "add", "key": "y", "value": 1},
            ],
            "not both",
        ),
        (
            [
                {"at": 1, "f": "write", "key": "x", "value": 1},
                {"at": 2, "f": "write", "key": "x", "value": 1},
            ],
            "unique per key",
        ),
        ([{"at": 1, "f": "cas", "key": "x", "value": 3}], r"\[expected, new\]"),
        ([{"at": 1, "f": "read", "key": "x", "value": 3}], "a read takes no value"),
        ([{"at": 9, "f": "read", "key": "x"}], "not before the scenario's duration"),
        ([{"at": 1, "f": "read", "key": "x", "client": 6}], "client 6 does not exist"),
        ([{"at": 1, "f": "delete", "key": "x"}], "f"),
    ],
)
def test_bad_scripts_are_refused(ops, message):
    with pytest.raises(ScenarioError, match=message):
        scripted(ops)


def test_ops_belong_to_script_workloads_only():
    with pytest.raises(ScenarioError, match="for kind: script"):
        make_scenario(workload={"ops": [{"at": 1, "f": "read", "key": "x"}]})
