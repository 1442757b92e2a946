"""A/B traffic and restart policies with every built-in replication policy: a canary
version takes its share of the operations and is measured apart, and a crashed
container comes back after its back-off, with the policy's claimed invariants intact."""

from __future__ import annotations

import math

import pytest
from conftest import make_scenario

from capsim.runner import run

POLICIES = ["single-primary", "primary-backup", "raft", "quorum", "chain"]
IMAGES = [{"name": "kvstore", "version": "1.0"}, {"name": "kvstore", "version": "1.1"}]


@pytest.mark.parametrize("policy", POLICIES)
def test_a_canary_takes_its_share_with_every_policy(policy):
    scenario = make_scenario(
        duration=8.0,
        images=IMAGES,
        cluster={"disk": {"sync": 0.001}, "container_images": {"n4": "kvstore:1.1"}},
        policy={"name": policy},
        traffic={"split": {"kvstore:1.0": 0.7, "kvstore:1.1": 0.3}},
        workload={"rate": 40, "clients_per_zone": 2, "kind": "set"},
    )
    summary = run(scenario, seed=5).summary
    by_version = summary["breakdown"]["by_version"]
    new, old = by_version["kvstore:1.1"]["ops"], by_version["kvstore:1.0"]["ops"]
    n = new + old
    assert n == summary["ops"]["total"]
    # Binomial(n, 0.3): 99.9% of runs fall within 3.3 standard deviations.
    assert abs(new / n - 0.3) < 3.3 * math.sqrt(0.3 * 0.7 / n)
    assert summary["invariants"]["failed"] == []
    assert summary["durability"]["lost_writes"] == 0


@pytest.mark.parametrize("policy", POLICIES)
def test_a_crashed_container_restarts_after_its_backoff_with_every_policy(policy):
    # n2 crashes at 3 s with no scheduled restart; `always` with a 1 s back-off and a
    # 0.5 s start-up has it ready at 4.5 s (README: the k-th restart waits backoff * 2**(k-1)).
    scenario = make_scenario(
        duration=10.0,
        images=[{"name": "kvstore", "version": "1.0", "startup": 0.5}],
        cluster={
            "disk": {"sync": 0.001},
            "restart": {"policy": "always", "backoff": 1.0, "max_backoff": 8.0},
        },
        policy={"name": policy},
        workload={"rate": 20, "clients_per_zone": 2, "kind": "set"},
        faults=[{"kind": "crash", "at": 3.0, "target": "n2"}],
    )
    summary = run(scenario, seed=2).summary
    (window,) = [w for w in summary["faults"]["windows"] if w["kind"] == "crash"]
    assert window["start"] == 3.0 and window["end"] == pytest.approx(4.5)
    assert summary["invariants"]["failed"] == []
    assert summary["durability"]["lost_writes"] == 0
    # Every replica is back and agrees at the end.
    assert summary["final"]["divergent_keys"] == 0
