"""Scenario files: defaults, round trips, and one clear error naming file and field."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from capsim.errors import ScenarioError
from capsim.scenario import dump_scenario, load_scenario, parse_scenario


def test_empty_scenario_takes_every_default():
    sc = parse_scenario({})
    assert sc.cluster.containers == 5 and sc.cluster.zones == ("a", "b", "c")
    assert sc.cluster.zone_of() == {"n1": "a", "n2": "b", "n3": "c", "n4": "a", "n5": "b"}
    assert sc.policy.name == "single-primary"
    assert sc.cluster.rf == 5


def test_durations_with_units_become_seconds():
    sc = parse_scenario({"duration": "2m", "settle": "500ms", "workload": {"timeout": "250ms"}})
    assert (sc.duration, sc.settle, sc.workload.timeout) == (120.0, 0.5, 0.25)


def test_resolved_dump_loads_back_to_the_same_scenario(root):
    sc = load_scenario(root / "scenarios" / "quickstart.yaml")
    again = parse_scenario(yaml.safe_load(dump_scenario(sc)))
    assert again == sc


def test_placement_overrides_round_robin():
    sc = parse_scenario(
        {"cluster": {"containers": 3, "zones": ["x", "y"], "placement": {"n1": "y"}}}
    )
    assert sc.cluster.zone_of() == {"n1": "y", "n2": "y", "n3": "x"}


def write(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


BAD = [
    ("workload: {rate: -3}", "workload.rate", "greater than zero"),
    ("workload: {kind: queue}", "workload.kind", "'register' or 'set'"),
    ("colour: blue", "colour", "unknown field"),
    (
        "network: {latency: {same_zone: {dist: gaussian}}}",
        "network.latency.same_zone",
        "unknown dist 'gaussian'",
    ),
    ("network: {loss: 1.5}", "network.loss", "probability"),
    ("cluster: {containers: 0}", "cluster.containers", "greater than or equal to 1"),
    ("cluster: {containers: 3, replication_factor: 4}", "cluster", "exceeds"),
    ("duration: soon", "duration", "duration"),
    ("duration: -5s", "duration", "greater than zero"),
    ("faults: [{kind: meteor, at: 1s}]", "faults[0]", "unknown kind 'meteor'"),
    ("faults: [{at: 1s}]", "faults[0]", "needs a 'kind'"),
    ("faults: [{kind: crash, at: 1s, target: n9}]", "faults[0].target", "unknown container"),
    (
        "faults: [{kind: partition, at: 1s, groups: [[n1], [mars]]}]",
        "faults[0].groups[1]",
        "unknown container or zone 'mars'",
    ),
    (
        "faults: [{kind: partition, at: 1s, shape: isolate, groups: [[n1]]}]",
        "faults[0]",
        "takes 'target'",
    ),
    ("faults: [{kind: crash, at: 99s}]", "faults[0].at", "after the scenario's duration"),
    ("workload: {read_fraction: 0.8, cas_fraction: 0.4}", "workload", "must not exceed 1"),
    ("workload: {clients: [{zone: z}]}", "workload.clients[0].zone", "unknown zone"),
    ("cluster: {zones: [a, a]}", "cluster.zones", "distinct"),
    ("cluster: {zones: [n1, b]}", "cluster.zones", "also a container id"),
    ("images: [{name: kv, startup: -1s}]", "images[0].startup", "negative"),
    ("policy: {name: raftt}", None, None),  # checked at prepare: see test_cli
    ("- just\n- a list", None, "mapping"),
]


@pytest.mark.parametrize(("text", "field", "words"), [b for b in BAD if b[1] or b[2]])
def test_bad_scenarios_name_the_file_and_field(tmp_path, text, field, words):
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(str(path) + ": ")
    if field:
        assert info.value.field == field, message
    assert words in message
    assert "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario(tmp_path / "nope.yaml")


def test_not_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "duration: 1s\nworkload: {rate: [\n")
    with pytest.raises(ScenarioError, match=r"line \d+: not valid YAML"):
        load_scenario(path)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(ScenarioError, match="folder"):
        load_scenario(tmp_path)


def test_user_policy_path_is_resolved_against_the_scenario_folder(tmp_path):
    path = write(tmp_path, "policy: {name: 'mine:Policy'}")
    sc = load_scenario(path)
    assert sc.policy.path == str(tmp_path.resolve())
