"""A/B traffic: operations split between image versions running side by side, each
measured apart; and a canary that a later upgrade resumes from."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import make_scenario

from capsim.errors import ScenarioError
from capsim.runner import run
from capsim.scenario import load_scenario

IMAGES = [
    {"name": "kvstore", "version": "1.0"},
    {"name": "kvstore", "version": "1.1", "params": {"r": 1}},  # a faster, staler read path
]


def canary(by="operation", **extra):
    return make_scenario(
        duration=10.0,
        settle=1.0,
        images=IMAGES,
        cluster={
            "containers": 5,
            "zones": ["a", "b", "c"],
            "container_images": {"n5": "kvstore:1.1"},
            "disk": {"sync": 0.001},
        },
        network={
            "latency": {"same_zone": 0.0005, "cross_zone": {"dist": "exponential", "mean": 0.005}}
        },
        policy={"name": "quorum", "params": {"r": 3, "w": 3}},
        traffic={"split": {"kvstore:1.0": 0.8, "kvstore:1.1": 0.2}, "by": by},
        workload={"rate": 50, "clients_per_zone": 2, "keys": 4, "read_fraction": 0.5},
        **extra,
    )


def invocations(result):
    return [e for e in result.history if e["type"] == "invoke" and not e.get("final")]


def test_operations_split_by_share_and_enter_their_version():
    result = run(canary())
    versions = np.array(_versions(result))
    n = len(versions)
    share = float((versions == 1).mean())
    # Binomial(n, 0.2): 99.9% of draws within 3.3 standard deviations of 0.2.
    assert abs(share - 0.2) < 3.3 * math.sqrt(0.2 * 0.8 / n)
    entries = [e["node"] for e in invocations(result)]
    assert {entries[i] for i in np.flatnonzero(versions == 1)} == {"n5"}
    assert "n5" not in {entries[i] for i in np.flatnonzero(versions == 0)}
    by_version = result.summary["breakdown"]["by_version"]
    assert by_version["kvstore:1.1"]["ops"] == int((versions == 1).sum())
    assert by_version["kvstore:1.0"]["ops"] + by_version["kvstore:1.1"]["ops"] == n
    # r = w = 3 of 5 never reads stale; the canary's r = 1 does: its cost shows before
    # it rolls out.
    assert by_version["kvstore:1.0"]["stale_read_fraction"] == 0.0
    assert by_version["kvstore:1.1"]["stale_read_fraction"] > 0.0


def _versions(result):
    """Each main-phase operation's version, from the entry container of its invocation
    (n5 is the only 1.1 container)."""
    return [1 if e["node"] == "n5" else 0 for e in invocations(result)]


def test_by_client_keeps_each_client_on_one_version():
    result = run(canary(by="client"))
    seen: dict[str, set] = {}
    for e in invocations(result):
        seen.setdefault(e["client"], set()).add(e["node"] == "n5")
    assert all(len(v) == 1 for v in seen.values())
    assert len(seen) == 6


def test_the_resolved_scenario_keeps_the_split(tmp_path):
    first = run(canary())
    first.write(tmp_path / "out")
    again = run(load_scenario(tmp_path / "out" / "scenario.resolved.yaml"))
    assert again.summary["trace_digest"] == first.summary["trace_digest"]
    assert again.summary["breakdown"]["by_version"] == first.summary["breakdown"]["by_version"]


def test_an_upgrade_resumes_a_canary_without_restarting_it():
    scenario = canary(
        faults=[{"kind": "upgrade", "at": 2.0, "image": "kvstore:1.1", "max_unavailable": 2}]
    )
    records = run(scenario).faults
    start = next(r for r in records if r["kind"] == "upgrade" and r["event"] == "start")
    assert start["targets"] == ["n1", "n2", "n3", "n4"]  # n5 already runs 1.1


@pytest.mark.parametrize(
    "traffic, message",
    [
        ({"split": {"kvstore:1.0": 0.5, "kvstore:1.1": 0.4}}, "add up to 1"),
        ({"split": {"kvstore:2.0": 1.0}}, "traffic.split.kvstore:2.0: unknown image"),
        ({"split": {}}, "at least 1"),
        ({"split": {"kvstore:1.0": 1.0}, "by": "request"}, "by"),
    ],
)
def test_bad_splits_are_refused(traffic, message):
    with pytest.raises(ScenarioError, match=message):
        make_scenario(images=IMAGES, traffic=traffic)


def test_container_images_must_name_containers_and_images():
    with pytest.raises(ScenarioError, match="unknown container 'n9'"):
        make_scenario(images=IMAGES, cluster={"container_images": {"n9": "kvstore:1.1"}})
    with pytest.raises(ScenarioError, match="container_images.n1: unknown image"):
        make_scenario(images=IMAGES, cluster={"container_images": {"n1": "kvstore:3"}})
