"""Scenario files: defaults, round trips, and one clear error naming file and field."""

from __future__ import annotations

import os
import textwrap
import tracemalloc
from unittest import mock

import pytest
import yaml

from capsim.errors import ScenarioError
from capsim.scenario import dump_scenario, load_scenario, parse_scenario
from capsim.schema import validation_message


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
    ("workload: {kind: queue}", "workload.kind", "'register', 'set' or 'script'"),
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


# --- hostile files: one line naming the file and the line or field, never a crash --------


def load_error(tmp_path, text, name="s.yaml") -> ScenarioError:
    path = write(tmp_path, text, name)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(str(path) + ": ")
    assert "\n" not in message and len(message) < 400, message
    return info.value


def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path):
    error = load_error(tmp_path, "workload: {rate: 1}\nduration: 5s\nworkload: {keys: 3}\n")
    assert "line 3: the key 'workload' is given twice (first on line 1)" in str(error)
    error = load_error(tmp_path, "cluster: {containers: 3, containers: 4}\n")
    assert "line 1:" in str(error) and "'containers' is given twice" in str(error)


@pytest.mark.parametrize(
    "text",
    [
        "cluster: {zones: !!set {a, b, c}}",
        "faults: [{kind: partition, at: 1s, groups: [!!set {n1, n2}, [n3]]}]",
        "faults: [{kind: random, at: 1s, rate: 1, duration: 1s, shapes: !!set {halves}}]",
    ],
)
def test_a_set_is_rejected_since_its_order_depends_on_the_hash_seed(tmp_path, text):
    error = load_error(tmp_path, text)
    assert "line 1: a !!set is not allowed" in str(error)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("x: !!python/object/apply:os.system ['touch pwned']", "'!!python/object/apply"),
        ("description: !!binary aGVsbG8=", "'!!binary' is not allowed"),
        ("description: 2001-12-14", "a date or time is not allowed"),
        ("description: !!omap [{a: 1}]", "!!omap is not allowed"),
        ("1: one", "a mapping key must be text, got 1"),
        ("? [a, b]\n: c", "a mapping key must be text"),
        ("cluster: {containers: !!int many}", "'many' is not an integer"),
        ("description: !!float", "'' is not a valid !!float"),
        ("name: a\n---\nname: b", "line 2: more than one YAML document"),
        ("cluster: *nowhere", "unknown alias *nowhere"),
        ("cluster: &c {zones: *c}", "the alias *c refers to itself"),
    ],
)
def test_only_plain_data_is_read_and_nothing_is_executed(tmp_path, text, words):
    assert words in str(load_error(tmp_path, text))
    assert not (tmp_path / "pwned").exists()


def test_anchors_aliases_and_merges_of_plain_data_still_work(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "cluster: {containers: 3}\n"
        "faults:\n"
        "  - &crash {kind: crash, at: 1s, target: n1, duration: 1s}\n"
        "  - {<<: *crash, at: 2s}\n"
        "network: {latency: {same_zone: &fast 1ms, cross_zone: *fast}}\n"
    )
    sc = load_scenario(path)
    assert [f.at for f in sc.faults] == [1.0, 2.0]
    assert sc.faults[1].target == "n1"
    assert sc.network.latency.cross_zone == sc.network.latency.same_zone


def test_an_alias_bomb_is_stopped_by_counting_values_through_aliases(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    error = load_error(tmp_path, "\n".join(lines))
    assert "more than 500,000 values once aliases are expanded" in str(error)
    assert str(error).count("x") < 5  # the expansion is never printed


@pytest.mark.parametrize("depth", [101, 5000, 200_000])
def test_deep_nesting_is_an_error_not_a_recursion_error(tmp_path, depth):
    error = load_error(tmp_path, "cluster: {zones: " + "[" * depth + "]" * depth + "}\n")
    assert "line 1: nested" in str(error)


def test_deep_nesting_of_block_mappings_names_the_limit(tmp_path):
    text = "".join(" " * i + f"k{i}:\n" for i in range(150))
    assert "nested deeper than 100 levels" in str(load_error(tmp_path, text))


def test_a_file_that_never_ends_is_read_up_to_a_bound():
    with pytest.raises(ScenarioError, match=r"^/dev/zero: .*larger than 16 MiB"):
        load_scenario("/dev/zero")


def test_a_pipe_nobody_writes_to_is_an_error_not_a_hang(tmp_path, monkeypatch):
    import capsim.schema

    monkeypatch.setattr(capsim.schema, "INPUT_WAIT_S", 0.2)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ScenarioError, match="nothing to read for 0.2 s"):
        load_scenario(fifo)


def test_text_that_is_not_utf8_names_its_line(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_bytes(b"name: x\ndescription: caf\xe9\n")
    words = r"line 2: not UTF-8 text \(byte 17 of the line is 0xe9\)"
    with pytest.raises(ScenarioError, match=words):
        load_scenario(path)


def test_a_billion_containers_are_refused_quickly_and_in_little_memory(tmp_path):
    tracemalloc.start()
    try:
        error = load_error(tmp_path, "cluster: {containers: 1000000000}")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.field == "cluster.containers" and "100000" in str(error)
    assert peak < 20_000_000


def test_the_largest_cluster_validates_without_listing_its_containers():
    data = {
        "cluster": {"containers": 100_000, "zones": ["a", "b"], "placement": {"n99999": "a"}},
        "workload": {"clients": [{"zone": "b", "home": "n100000"}]},
        "faults": [{"kind": "partition", "at": 1, "groups": [["n1", "n99999"], ["b"]]}],
    }
    with mock.patch("capsim.scenario.container_ids", side_effect=AssertionError("listed")):
        sc = parse_scenario(data)
    assert sc.cluster.containers == 100_000 and sc.cluster.zone_of_container("n99999") == "a"
    assert sc.cluster.populated_zones() == {"a", "b"}


@pytest.mark.parametrize(
    ("retries", "field", "words"),
    [
        ({"multiplier": ".inf"}, "multiplier", "finite"),
        ({"multiplier": ".nan"}, "multiplier", "finite"),
        ({"multiplier": 0.5}, "multiplier", "greater than or equal to 1"),
        ({"multiplier": 101}, "multiplier", "less than or equal to 100"),
        ({"attempts": 101}, "attempts", "less than or equal to 100"),
        ({"attempts": True}, "attempts", "whole number"),
        ({"backoff": "1e10s"}, "backoff", "at most 1e+09 s"),
        ({"max_backoff": "-1s"}, "max_backoff", "negative"),
    ],
)
def test_retries_are_bounded_so_that_every_wait_is_finite(tmp_path, retries, field, words):
    body = ", ".join(f"{k}: {v}" for k, v in retries.items())
    error = load_error(tmp_path, f"workload: {{retries: {{{body}}}}}")
    assert error.field == f"workload.retries.{field}" and words in str(error)


def test_messages_say_got_once_quoting_the_value_as_written(tmp_path):
    error = load_error(tmp_path, "duration: -5s")
    assert str(error).endswith("duration: must be greater than zero, got '-5s'")
    field, message = validation_message(
        {
            "type": "value_error",
            "loc": ("ttl",),
            "msg": "Value error, must be greater than zero, got -1.0",
            "input": "-1s",
        }
    )
    assert (field, message) == ("ttl", "must be greater than zero, got '-1s'")
    long = load_error(tmp_path, "faults: [{kind: crash, at: 1s, target: " + "x" * 10_000 + "}]")
    assert str(long).count("got") <= 1 and "(10000 characters)" in str(long)


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("workload: {rate: 5/0s}", "workload.rate", "greater than zero"),
        ("workload: {rate: 1e12}", "workload.rate", "between 1e-09 and 1e+09"),
        ("workload: {keys: 1e12}", "workload.keys", "less than or equal to 10000000"),
        ("cluster: {vnodes: 5000}", "cluster.vnodes", "less than or equal to 4096"),
        ("cluster: {shards: 100001}", "cluster.shards", "less than or equal to 100000"),
        ("cluster: {containers: true}", "cluster.containers", "whole number"),
        ("network: {fifo: 'yes'}", "network.fifo", "true or false"),
        ("network: {loss: .nan}", "network.loss", "probability"),
        ("duration: .inf", "duration", "finite"),
        ("duration: 1e10", "duration", "at most 1e+09 s"),
        ("seed: 100000000000000000000", "seed", "2**64 - 1"),
        ("faults: [{}]", "faults[0]", "an empty fault"),
        ("faults: [~]", "faults[0]", "an empty fault"),
        ("faults: [{kind: 7, at: 1s}]", "faults[0]", "unknown kind '7'"),
        (
            "cluster: {containers: 2}\nfaults: [{kind: zone-outage, at: 1s, zone: c}]",
            "faults[0].zone",
            "zone 'c' has no containers",
        ),
        (
            "cluster: {containers: 2}\nfaults: [{kind: crash, at: 1s, target: c}]",
            "faults[0].target",
            "zone 'c' has no containers",
        ),
        (
            "faults: [{kind: partition, at: 1s, groups: [[n1, n2], [n2, n3]]}]",
            "faults[0].groups[1]",
            "'n2' is also in groups[0]",
        ),
        (
            "faults: [{kind: partition, at: 1s, groups: [[n1], [a]]}]",
            "faults[0].groups[0]",
            "'n1' is in zone 'a'",
        ),
        (
            "faults: [{kind: upgrade, at: 1s, image: 'kvstore:9'}]",
            "faults[0].image",
            "unknown image",
        ),
        (
            "faults: [{kind: churn, at: 1s, mttf: 1s, mttr: 1s, until: 99s}]",
            "faults[0].until",
            "after the scenario's duration",
        ),
        (
            "cluster: {containers: 3}\nfaults: [{kind: partition, at: 1s, shape: majorities-ring}]",
            "faults[0].shape",
            "at least 5 containers",
        ),
        ("faults: [{kind: clock, at: 1s, rate: 1e6}]", "faults[0].rate", "times true speed"),
        ("workload: {clients: [{zone: a, home: n6}]}", "workload.clients[0].home", "'n6'"),
        ("workload: {clients_per_zone: 50000}", "workload", "150,000 clients"),
        (
            "network: {latency: {same_zone: {dist: lognormal, median: 1ms, sigma: 100}}}",
            "network.latency.same_zone.sigma",
            "at most 10",
        ),
        (
            "network: {latency: {cross_zone: {dist: pareto, xm: 1ms, alpha: 0.01}}}",
            "network.latency.cross_zone.alpha",
            "at least 0.1",
        ),
        ("policy: {name: 'os:system; rm -rf'}", "policy.name", "'module:Class'"),
    ],
)
def test_nonsense_values_name_their_field(tmp_path, text, field, words):
    error = load_error(tmp_path, text)
    assert error.field == field, str(error)
    assert words in str(error)
