"""Clients: rates, processes, unique values, routing and redirects, retries, timeouts."""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest
from conftest import make_world

from capsim.history import FAIL, INFO, OK


def ops_of(world):
    world.run()
    ops = world.history.operations()
    return ops, ~ops.final


def test_open_loop_poisson_rate_per_client():
    # 3 zones x 2 clients x 40 ops/s x 10 s = 2400 operations expected.
    world = make_world(workload={"rate": 40, "clients_per_zone": 2})
    ops, main = ops_of(world)
    assert abs(main.sum() - 2400) < 5 * math.sqrt(2400)
    assert len(world.workload.clients) == 6


def test_open_loop_gaps_are_exponential():
    world = make_world(workload={"rate": 100, "clients": [{"zone": "a", "count": 1}]}, duration=50)
    ops, main = ops_of(world)
    gaps = np.diff(np.sort(ops.invoke_time[main]))
    assert gaps.mean() == pytest.approx(0.01, rel=0.05)
    assert np.std(gaps) == pytest.approx(0.01, rel=0.1)  # exponential: sd equals mean


def test_closed_loop_runs_back_to_back_with_think_time():
    # One process, think 100 ms, zero-latency answers from the home container itself.
    world = make_world(
        policy={"name": "probes:Router", "params": {"target": "n1"}},
        workload={
            "mode": "closed",
            "processes": 1,
            "think_time": "100ms",
            "clients": [{"zone": "a", "count": 1, "home": "n1"}],
        },
        duration=0.95,
    )
    ops, main = ops_of(world)
    assert main.sum() == 10  # invoked at 0.0, 0.1, ..., 0.9
    assert np.allclose(ops.invoke_time[main], np.arange(10) * 0.1)


def test_every_process_has_at_most_one_open_operation_and_info_retires_it():
    world = make_world(
        policy={"name": "probes:Router", "params": {"mode": "silent"}},
        workload={"rate": 50, "timeout": "200ms"},
        duration=2,
    )
    ops, main = ops_of(world)  # operations() raises if a process had two open at once
    assert set(ops.type[main].tolist()) == {INFO}
    processes = ops.process[main].tolist()
    assert len(set(processes)) == len(processes)  # an info retires its process id


def test_open_loop_reuses_processes_after_definite_outcomes():
    world = make_world(workload={"rate": 50}, duration=2)
    ops, main = ops_of(world)
    assert set(ops.type[main].tolist()) <= {OK, FAIL}
    assert len(set(ops.process[main].tolist())) < main.sum() / 5


def test_timeouts_are_info_at_exactly_the_deadline_never_fail():
    world = make_world(
        policy={"name": "probes:Router", "params": {"mode": "silent"}},
        workload={"timeout": "300ms"},
        duration=2,
    )
    ops, main = ops_of(world)
    assert (ops.type[main] == INFO).all()
    assert np.allclose(ops.complete_time[main] - ops.invoke_time[main], 0.3)
    assert {ops.error(i) for i in np.flatnonzero(main)} == {"timeout"}


def test_written_values_are_unique_per_key():
    world = make_world(
        workload={"rate": 50, "keys": 3, "read_fraction": 0.2, "cas_fraction": 0.2}, duration=3
    )
    ops, main = ops_of(world)
    written = collections.defaultdict(list)
    for i in np.flatnonzero(main & (ops.f != 0)):
        value = ops.value(int(i))
        written[ops.key_name(int(i))].append(value[1] if isinstance(value, list) else value)
    for values in written.values():
        assert len(values) == len(set(values))


def test_redirects_are_followed_to_the_named_node():
    world = make_world(policy={"name": "probes:Router", "params": {"target": "n3"}}, duration=2)
    ops, main = ops_of(world)
    assert (ops.type[main] == OK).all()
    completions = [
        world.history.nodes.names[world.history.node[int(j)]] for j in ops.complete_index[main]
    ]
    assert set(completions) == {"n3"}


def test_definite_failures_are_retried_with_backoff_then_fail():
    # Every attempt fails at once at the home container; 2 retries after 10 ms and 20 ms.
    world = make_world(
        policy={"name": "probes:Router", "params": {"mode": "fail"}},
        workload={"retries": {"attempts": 2, "backoff": "10ms", "multiplier": 2}},
        duration=2,
    )
    ops, main = ops_of(world)
    assert (ops.type[main] == FAIL).all()
    assert np.allclose(ops.complete_time[main] - ops.invoke_time[main], 0.03)
    assert {ops.error(i) for i in np.flatnonzero(main)} == {"busy"}


def test_redirect_loop_fails_definitely():
    # Every node redirects to the next one: n1 -> n2 -> ... -> n5 -> n1 -> ...
    world = make_world(policy={"name": "probes:Router", "params": {"mode": "loop"}}, duration=1)
    ops, main = ops_of(world)
    assert (ops.type[main] == FAIL).all()
    assert {ops.error(i) for i in np.flatnonzero(main)} == {"redirect-loop"}


def test_redirect_to_an_unknown_node_fails_definitely():
    world = make_world(policy={"name": "probes:Router", "params": {"target": "n9"}}, duration=1)
    ops, main = ops_of(world)
    assert (ops.type[main] == FAIL).all()
    assert {ops.error(i) for i in np.flatnonzero(main)} == {"bad-redirect:'n9'"}


def test_zipf_keys_follow_the_power_law():
    world = make_world(
        workload={"rate": 200, "keys": 20, "key_distribution": "zipf", "zipf_s": 1.0}, duration=20
    )
    ops, main = ops_of(world)
    counts = collections.Counter(ops.key_name(int(i)) for i in np.flatnonzero(main))
    # P(k0) / P(k1) = 2 ** s = 2; P(k0) = 1 / H(20) = 0.2779.
    assert counts["k0"] / counts["k1"] == pytest.approx(2.0, rel=0.1)
    assert counts["k0"] / main.sum() == pytest.approx(
        1 / sum(1 / i for i in range(1, 21)), rel=0.05
    )


def test_read_and_cas_fractions():
    world = make_world(
        workload={"rate": 200, "read_fraction": 0.5, "cas_fraction": 0.2}, duration=10
    )
    ops, main = ops_of(world)
    n = main.sum()
    fractions = [float(((ops.f == f) & main).sum() / n) for f in range(3)]
    assert fractions == pytest.approx([0.5, 0.3, 0.2], abs=0.02)


def test_set_workload_adds_and_reads_whole_sets():
    world = make_world(workload={"kind": "set", "rate": 50, "keys": 2}, duration=3)
    ops, main = ops_of(world)
    assert set(ops.f[main].tolist()) == {0, 3}
    reads = [ops.output(int(i)) for i in np.flatnonzero(main & (ops.f == 0) & (ops.type == OK))]
    assert all(isinstance(r, list) and r == sorted(r) for r in reads)


def test_client_on_the_minority_side_shares_its_home_containers_partition():
    # Clients homed on n4 and n5 are cut off from the primary n1 with their homes.
    world = make_world(
        policy={"name": "single-primary", "params": {"primary": "n1"}},
        workload={
            "clients": [
                {"zone": "a", "home": "n4"},
                {"zone": "b", "home": "n5"},
                {"zone": "a", "home": "n1"},
            ],
            "rate": 20,
        },
        faults=[
            {
                "kind": "partition",
                "at": 2,
                "duration": 5,
                "groups": [["n1", "n2", "n3"], ["n4", "n5"]],
            }
        ],
    )
    ops, main = ops_of(world)
    during = main & (ops.invoke_time >= 2) & (ops.invoke_time < 6.5)
    clients = world.history.clients.names
    for i in np.flatnonzero(during):
        name = clients[ops.client[i]]
        if name in ("c1", "c2"):
            assert ops.side[i] == 2 and ops.type[i] != OK
        else:
            assert ops.side[i] == 1 and ops.type[i] == OK
