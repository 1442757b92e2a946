"""capsim.testing's strategies: valid faults of every kind and shape, within the scenario,
shrinking to small readable schedules whose reprs paste back into Python."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import Phase, given, settings
from hypothesis import find as hypothesis_find

import capsim.faults as faults_module
from capsim.distributions import Constant
from capsim.faults import PARTITION_SHAPES, LinkFault
from capsim.runner import run
from capsim.scenario import parse_scenario
from capsim.schema import to_data
from capsim.testing import (
    FAULT_KINDS,
    clock_faults,
    crashes,
    describe,
    fault_schedules,
    link_faults,
    partitions,
    scenarios,
    scripts,
    storms,
    workloads,
)

BASE = parse_scenario(
    {
        "duration": 10,
        "settle": 1,
        "cluster": {"containers": 5, "zones": ["a", "b", "c"]},
        "network": {"latency": {"same_zone": "1ms", "cross_zone": "2ms"}},
        "policy": {"name": "raft"},
        "workload": {"rate": 5, "clients_per_zone": 1, "timeout": 0.5, "keys": 2},
    }
)
SMALL = dataclasses.replace(
    BASE,
    duration=3.0,
    cluster=dataclasses.replace(BASE.cluster, containers=3),
    images=(dataclasses.replace(BASE.images[0], startup=0.05),),
)
NAMES = {name: getattr(faults_module, name) for name in faults_module.__all__}
NAMES["Constant"] = Constant
#: For find(): no "explain" phase, which would re-run the search to annotate the result.
QUICK = settings(
    database=None, derandomize=True, max_examples=2000, phases=[Phase.generate, Phase.shrink]
)


def find(strategy, condition):
    return hypothesis_find(strategy, condition, settings=QUICK)


def with_faults(base, schedule):
    """The scenario with ``schedule``, checked as a file would be (names, times, shapes)."""
    return parse_scenario({**to_data(base), "faults": [to_data(f) for f in schedule]})


@given(fault_schedules(BASE, kinds=FAULT_KINDS))
def test_every_schedule_is_a_valid_scenario_in_time_order_within_its_duration(schedule):
    scenario = with_faults(BASE, schedule)
    assert scenario.faults == schedule
    assert len(schedule) <= 4
    times = [fault.at for fault in schedule]
    assert times == sorted(times) and all(0 <= t <= BASE.duration for t in times)
    for fault in schedule:
        assert round(fault.at * 10) == pytest.approx(fault.at * 10)  # on the 0.1 s grid
        assert eval(repr(fault), NAMES) == fault
        assert eval(describe(fault), NAMES) == fault
        assert len(describe(fault)) <= len(repr(fault))


def test_a_crash_shrinks_to_the_leader_at_time_zero_for_the_shortest_time():
    found = find(crashes(BASE), lambda f: True)
    assert describe(found) == "Crash(at=0.0, target='leader', duration=0.1)"


def test_schedules_shrink_to_fewer_faults_each_as_simple_as_it_gets():
    found = find(fault_schedules(BASE), lambda s: len(s) >= 3)
    assert len(found) == 3
    assert {describe(f) for f in found} == {
        "Partition(at=0.0, duration=0.1, shape='isolate', target='leader')"
    }


def test_times_shrink_to_the_earliest_instant_that_still_fails():
    found = find(fault_schedules(BASE), lambda s: any(f.at >= 4.25 for f in s))
    assert [f.at for f in found] == [4.3]


def test_every_partition_shape_is_drawn():
    shapes = set()

    @settings(max_examples=150)
    @given(partitions(BASE))
    def collect(partition):
        shapes.add(partition.shape)

    collect()
    assert shapes == set(PARTITION_SHAPES)


def test_partitions_shrink_to_one_named_group_or_an_isolated_role():
    assert describe(find(partitions(BASE), lambda p: True)) == (
        "Partition(at=0.0, duration=0.1, shape='isolate', target='leader')"
    )
    assert describe(find(partitions(BASE), lambda p: p.shape == "groups")) == (
        "Partition(at=0.0, duration=0.1, groups=(('n1',),))"
    )


def test_a_three_container_cluster_has_no_majorities_ring_and_no_container_lists():
    @given(fault_schedules(SMALL, kinds=FAULT_KINDS))
    @settings(max_examples=60)
    def check(schedule):
        with_faults(SMALL, schedule)
        for fault in schedule:
            assert getattr(fault, "shape", None) != "majorities-ring"
            assert not isinstance(getattr(fault, "target", None), tuple)

    check()


def test_clock_faults_always_change_the_clock_and_shrink_to_a_small_jump():
    @given(clock_faults(BASE))
    def check(fault):
        assert fault.offset != 0 or fault.rate != 1.0

    check()
    jump = find(clock_faults(BASE), lambda f: f.offset <= -1)
    assert describe(jump) == "ClockSkew(at=0.0, target='leader', offset=-1.0, duration=0.1)"


def test_link_faults_always_degrade_something():
    @given(link_faults(BASE))
    def check(fault):
        assert isinstance(fault, LinkFault)
        assert fault.latency is not None or fault.loss or fault.duplicate

    check()


def test_role_targets_are_only_drawn_for_policies_with_roles():
    quorum = parse_scenario({**to_data(BASE), "policy": {"name": "quorum"}})
    found = find(fault_schedules(quorum, kinds=["crash"]), lambda s: len(s) >= 1)
    assert describe(found[0]) == "Crash(at=0.0, target='n1', duration=0.1)"
    mine = find(fault_schedules(quorum, kinds=["crash"], roles=["leader"]), lambda s: len(s) >= 1)
    assert mine[0].target == "leader"


@settings(max_examples=8)
@given(
    fault_schedules(
        SMALL,
        kinds=["partition", "crash"],
        min_faults=2,
        max_faults=3,
        roles=(),
    ).filter(lambda s: any(getattr(f, "shape", None) in ("halves", "bridge") for f in s[1:]))
)
def test_deleting_a_fault_leaves_the_others_random_choices_as_they_were(schedule):
    def resolved(faults):
        records = run(with_faults(SMALL, faults)).faults
        return {
            r["spec"]: r.get("groups") or r.get("targets")
            for r in records
            if r.get("event") == "start" and r.get("fault") is not None
        }

    everything = resolved(schedule)
    fewer = resolved(schedule[1:])
    assert fewer  # the later faults still fire
    for spec, hit in fewer.items():
        assert everything[spec] == hit


def test_workloads_shrink_to_one_key_one_client_and_keep_the_kind():
    found = find(workloads(BASE), lambda w: w.rate >= 10)
    assert (found.rate, found.keys, found.clients_per_zone, found.read_fraction) == (
        10.0,
        1,
        1,
        0.0,
    )
    assert found.kind == BASE.workload.kind


@given(scripts(SMALL))
def test_scripts_are_valid_with_values_unique_per_key(workload):
    scenario = parse_scenario({**to_data(SMALL), "workload": workload})
    written: dict[str, set] = {}
    for op in scenario.workload.ops:
        if op.f in ("write", "add", "cas"):
            value = op.value[1] if op.f == "cas" else op.value
            assert value not in written.setdefault(op.key, set())
            written[op.key].add(value)


def test_a_minimal_script_is_one_client_on_one_key_and_runs():
    found = find(
        scripts(SMALL, start=1.0), lambda w: [op["f"] for op in w["ops"]] == ["write", "read"]
    )
    # One client, in order: its read waits for its write (one operation open at a time).
    assert [(op["at"], op["client"], op["f"], op["key"]) for op in found["ops"]] == [
        (1.0, 0, "write", "k0"),
        (1.0, 0, "read", "k0"),
    ]
    result = run(parse_scenario({**to_data(SMALL), "workload": found}))
    reads = [e for e in result.history if e["f"] == "read" and e["type"] == "ok"]
    assert [e["value"] for e in reads if not e.get("final")] == [1]


def test_scenarios_shrink_to_fewer_containers_and_run():
    found = find(
        scenarios(BASE, min_containers=3, workload=True),
        lambda s: len(s.faults) >= 1 and s.workload.keys >= 2,
    )
    assert found.cluster.containers == 3
    assert [describe(f) for f in found.faults] == [
        "Partition(at=0.0, duration=0.1, shape='isolate', target='leader')"
    ]
    assert found.workload.keys == 2 and found.policy.name == "raft"
    assert run(found).summary["ops"]["total"] > 0


@given(storms(BASE))
def test_storms_aim_at_the_leader_chase_elections_and_start_in_the_first_half(storm):
    assert with_faults(BASE, (storm,)).faults == (storm,)
    assert storm.target == "leader" and storm.chase > 0
    assert 0 < storm.at <= BASE.duration / 2
    assert set(storm.faults) <= {"partition", "crash", "pause", "clock"}
    assert faults_module.fault_from_repr(repr(storm)) == storm


def test_storms_of_a_leaderless_policy_aim_at_random_containers_without_chasing():
    quorum = dataclasses.replace(BASE, policy=dataclasses.replace(BASE.policy, name="quorum"))
    storm = find(storms(quorum), lambda s: True)
    assert storm.target == "random" and storm.chase == 0.0
    only_clocks = find(storms(quorum, kinds=["clock", "link"]), lambda s: True)
    assert only_clocks.faults == ("clock",)
    with pytest.raises(ValueError, match="no kind of fault a storm draws"):
        storms(quorum, kinds=["link"])


def test_schedules_time_some_faults_by_elections_and_shrink_to_their_own_time():
    timed = find(fault_schedules(BASE), lambda s: any(f.after for f in s if hasattr(f, "after")))
    (fault,) = timed
    assert fault.after == "new-leader" and fault.delay == 0.0 and fault.at == 0.0
    plain = find(fault_schedules(BASE), lambda s: len(s) >= 1)
    assert all(getattr(f, "after", None) is None for f in plain)


@given(fault_schedules(BASE, triggers=False, min_faults=2))
def test_without_triggers_every_fault_is_at_its_own_time(schedule):
    assert all(getattr(f, "after", None) is None for f in schedule)
