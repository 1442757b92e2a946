"""``--set path=value`` overrides and the ``sweep:`` block's field paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from capsim.errors import ScenarioError
from capsim.overrides import apply_overrides, format_path, parse_assignment, parse_path
from capsim.scenario import load_scenario, parse_scenario

QUICKSTART = Path(__file__).parents[2] / "scenarios" / "quickstart.yaml"


def test_paths_round_trip():
    assert parse_path("faults[0].groups[1][0]") == ["faults", 0, "groups", 1, 0]
    assert format_path(["faults", 0, "groups", 1, 0]) == "faults[0].groups[1][0]"


@pytest.mark.parametrize(
    "text, value",
    [
        ("duration=5ms", "5ms"),
        ("cluster.shards=3", 3),
        ("final_reads=false", False),
        (
            "policy={name: quorum, params: {r: 1, w: 1}}",
            {"name": "quorum", "params": {"r": 1, "w": 1}},
        ),
        ("network.latency.kinds=", None),
    ],
)
def test_values_read_as_yaml(text, value):
    assert parse_assignment(text)[1] == value


def test_overrides_apply_in_order_and_do_not_touch_the_input():
    data = {"workload": {"rate": 5}, "faults": [{"kind": "crash", "at": 1}]}
    out = apply_overrides(
        data, ["workload.rate=7", "faults[0].at=2s", "cluster.disk.sync=1ms", "workload.rate=9"]
    )
    assert out == {
        "workload": {"rate": 9},
        "faults": [{"kind": "crash", "at": "2s"}],
        "cluster": {"disk": {"sync": "1ms"}},
    }
    assert data == {"workload": {"rate": 5}, "faults": [{"kind": "crash", "at": 1}]}


def test_a_scenario_loads_with_overrides():
    scenario = load_scenario(
        QUICKSTART, overrides=["duration=15s", "policy={name: raft}", "faults[0].duration=2s"]
    )
    assert (scenario.duration, scenario.policy.name, scenario.faults[0].duration) == (15, "raft", 2)


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("workload.rate=-3", "workload.rate: must be greater than zero"),
        ("wrokload.rate=3", "wrokload: unknown field"),
        ("faults[3].at=1", "faults has 1 item, no [3]"),
        ("duration", "write path.to.field=value"),
        ("a..b=1", "is not a field path"),
        ("duration={a", "is not valid YAML"),
        ("duration.x=1", "duration is not a mapping"),
    ],
)
def test_bad_overrides_are_named(assignment, message):
    with pytest.raises(ScenarioError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_scenario(QUICKSTART, overrides=[assignment])


def test_sweep_block_paths_are_checked():
    scenario = parse_scenario({"sweep": {"grid": {"workload.rate": [1, 2]}, "seeds": 3}})
    assert scenario.sweep.grid == {"workload.rate": [1, 2]} and scenario.sweep.seeds == 3
    for grid, message in [({"seed": [1]}, "cannot be swept"), ({"a..b": [1]}, "not a field path")]:
        with pytest.raises(ScenarioError, match=message):
            parse_scenario({"sweep": {"grid": grid}})


def test_cli_set_error_is_one_line_and_status_2():
    proc = subprocess.run(
        [sys.executable, "-m", "capsim", "run", str(QUICKSTART), "--set", "workload.rate=-1"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "workload.rate" in proc.stderr
