"""Elastic scaling: scale actions, the placement they move, each policy's membership
change, state transfer, the scaling metrics and the autoscaler."""

from __future__ import annotations

import bisect
import csv
import hashlib
import json
import math

import numpy as np
import pytest
from conftest import make_scenario, make_world

from capsim.cli import main
from capsim.errors import ScenarioError
from capsim.history import INVOKE
from capsim.runner import run
from capsim.scenario import parse_scenario
from capsim.topology import place

POLICIES = ("single-primary", "primary-backup", "raft", "chain", "quorum")


# -- the placement rule -----------------------------------------------------------------


def ring_point(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def ring_replicas(ids: list[str], shards: int, rf: int, vnodes: int) -> list[set[str]]:
    """Each shard's replicas worked out from the ring directly (one zone, so only the ring
    decides): the first ``rf`` distinct containers met walking clockwise from the shard."""
    points = sorted((ring_point(f"container/{c}/{v}"), c) for c in ids for v in range(vnodes))
    hashes = [h for h, _ in points]
    out = []
    for shard in range(shards):
        i = bisect.bisect_left(hashes, ring_point(f"shard/{shard}"))
        chosen: list[str] = []
        while len(chosen) < rf:
            cid = points[i % len(points)][1]
            if cid not in chosen:
                chosen.append(cid)
            i += 1
        out.append(set(chosen))
    return out


def one_zone(containers: int) -> dict:
    return {
        "cluster": {
            "containers": containers,
            "zones": ["a"],
            "shards": 200,
            "replication_factor": 3,
            "vnodes": 16,
        }
    }


def test_adding_a_container_moves_exactly_the_shards_the_ring_gives_it():
    before = place(parse_scenario(one_zone(12)))
    ids = [f"n{i}" for i in range(1, 14)]
    after = before.rescaled(ids, dict.fromkeys(ids, "a"), 3, 16)
    expected = ring_replicas(ids, 200, 3, 16)
    assert [set(group) for group in after.replicas] == expected
    moved = [s for s in range(200) if before.replicas[s] != after.replicas[s]]
    # Moved: exactly the shards whose walk now meets n13, each trading one replica for it.
    assert moved == [s for s in range(200) if "n13" in expected[s]]
    for s in moved:
        assert len(set(after.replicas[s]) - set(before.replicas[s])) == 1
    # About rf / N of the shards (3 / 13 = 23%), not most of them.
    assert 0.1 < len(moved) / 200 < 0.4


def test_removing_a_container_moves_exactly_the_shards_it_held():
    before = place(parse_scenario(one_zone(12)))
    ids = [f"n{i}" for i in range(1, 13) if i != 5]
    after = before.rescaled(ids, dict.fromkeys(ids, "a"), 3, 16)
    assert [set(group) for group in after.replicas] == ring_replicas(ids, 200, 3, 16)
    moved = [s for s in range(200) if before.replicas[s] != after.replicas[s]]
    assert moved == [s for s in range(200) if "n5" in before.replicas[s]]
    for s in moved:
        assert set(before.replicas[s]) - set(after.replicas[s]) == {"n5"}


def test_with_zones_only_the_shards_that_choose_the_new_container_move():
    sc = parse_scenario(
        {"cluster": {"containers": 9, "shards": 64, "replication_factor": 3, "vnodes": 16}}
    )
    before = place(sc)
    ids = [f"n{i}" for i in range(1, 11)]
    zones = {**before.zone_of, "n10": "a"}
    after = before.rescaled(ids, zones, 3, 16)
    moved = [s for s in range(64) if before.replicas[s] != after.replicas[s]]
    assert moved == [s for s in range(64) if "n10" in after.replicas[s]]
    for group in after.replicas:  # still one replica per zone
        assert {zones[c] for c in group} == {"a", "b", "c"}


# -- scale actions ------------------------------------------------------------------------


def test_ids_continue_the_sequence_and_a_removed_id_is_never_reused(tmp_path):
    sc = make_scenario(
        faults=[
            {"kind": "scale", "at": 1, "add": 2},
            {"kind": "scale", "at": 3, "remove": ["n6"]},
            {"kind": "scale", "at": 5, "add": 1, "zone": "c"},
        ]
    )
    res = run(sc)
    starts = [r for r in res.faults if r["kind"] == "scale" and r["event"] == "start"]
    assert [r["added"] for r in starts] == [["n6", "n7"], [], ["n8"]]
    assert starts[1]["removed"] == ["n6"]
    scaling = res.summary["scaling"]
    assert scaling["containers"] == {"initial": 5, "final": 7, "min": 5, "max": 7}
    assert all(action["serving"] is not None for action in scaling["actions"])
    # timeseries.csv: the containers in the cluster at the end of each second.
    res.write(tmp_path / "out")
    with open(tmp_path / "out" / "timeseries.csv") as handle:
        rows = list(csv.DictReader(handle))
    counts = [int(row["containers"]) for row in rows]
    # n6 and n7 from 1 s; n6 gone once drained (just after 3 s); n8 from 5 s.
    assert counts[:7] == [5, 7, 7, 6, 6, 7, 7]


def test_added_containers_follow_the_zone_rule_and_the_last_upgrade():
    world = make_world(
        images=[
            {"name": "kv", "version": "1", "startup": "100ms"},
            {"name": "kv", "version": "2", "startup": "100ms"},
        ],
        faults=[
            {"kind": "upgrade", "at": 0.5, "image": "kv:2", "target": ["n1"]},
            {"kind": "scale", "at": 3, "add": 3},
            {"kind": "scale", "at": 4, "add": 1, "zone": "a", "image": "kv:1"},
        ],
    )
    world.run()
    added = [world.cluster.by_id[c] for c in ("n6", "n7", "n8", "n9")]
    # Round-robin by number over a, b, c as at boot (n6 -> c, n7 -> a, n8 -> b), unless
    # the action names a zone; the image the last upgrade moved to, unless it names one.
    assert [c.zone for c in added] == ["c", "a", "b", "a"]
    assert [c.image.ref for c in added] == ["kv:2", "kv:2", "kv:2", "kv:1"]


def scaled(policy: str, shards: int, extra_faults=()) -> dict:
    """Five containers in three zones under a set workload; two containers added at 2 s
    and two removed (the newest: the same two) at 6 s."""
    return {
        "duration": 9,
        "settle": 2,
        "images": [{"name": "kv", "startup": "200ms"}],
        "cluster": {
            "shards": shards,
            "replication_factor": 3 if shards > 1 else None,
            "disk": {"sync": {"dist": "uniform", "low": "1ms", "high": "3ms"}},
        },
        "policy": {"name": policy},
        "workload": {"kind": "set", "rate": 20, "clients_per_zone": 2, "keys": 12},
        "faults": [
            {"kind": "scale", "at": 2, "add": 2},
            {"kind": "scale", "at": 6, "remove": 2},
            *extra_faults,
        ],
    }


def check_scaled_run(world, result) -> None:
    """What every scaled run must show: no claimed invariant broken, every action
    serving, every shard's membership its hosts, and the hosts what the rule says."""
    summary = result.summary
    assert summary["invariants"]["failed"] == [], summary["invariants"]["evidence"]
    if "no-lost-writes" in result.claims:
        assert "no-lost-writes" in summary["invariants"]["held"]
        assert summary["durability"]["lost_writes"] == 0
    actions = summary["scaling"]["actions"]
    assert actions and all(a["serving"] is not None for a in actions)
    cluster = world.cluster
    for shard, hosts in enumerate(cluster.placement.replicas):
        assert set(cluster.members[shard]) == set(hosts)
    # The same five containers as at boot: the placement the rule gives them.
    assert cluster.in_service == ("n1", "n2", "n3", "n4", "n5")
    assert cluster.placement.replicas == place(world.scenario).replicas
    assert not cluster.retiring and not cluster.draining


@pytest.mark.parametrize("shards", [1, 4], ids=["every-container", "4-shards-rf3"])
@pytest.mark.parametrize("policy", POLICIES)
def test_scaling_out_and_in_under_load_keeps_every_claimed_invariant(policy, shards):
    world = make_world(seed=3, **scaled(policy, shards))
    world.run()
    result = world.result(world.digest(), 0.0)
    check_scaled_run(world, result)
    out, back = result.summary["scaling"]["actions"]
    assert out["added"] == ["n6", "n7"] and back["removed"] == ["n7", "n6"]
    assert out["shards_moved"] >= 1 and (shards > 1 or out["shards_moved"] == 1)
    # Every policy moves its state as messages (chain's newcomers copy the tail's log,
    # the others ship logs or key ranges): bytes are counted.
    assert out["bytes"] > 0


@pytest.mark.parametrize("policy", POLICIES)
def test_a_partition_during_a_scale_action_is_survived(policy):
    # n6 (zone c) and n7 (zone a) join while zone c is cut off: the shards that move to
    # n6 cannot bring it up to date until the heal at 4 s.
    cut = {"kind": "partition", "at": 2.1, "duration": 1.9, "groups": [["c"]]}
    world = make_world(seed=5, **scaled(policy, 4, [cut]))
    world.start()
    world.engine.run(2.05)
    to_n6 = [s for s, hosts in enumerate(world.cluster.placement.replicas) if "n6" in hosts]
    assert to_n6  # this layout gives n6 some shards
    world.run()
    result = world.result(world.digest(), 0.0)
    check_scaled_run(world, result)
    out = result.summary["scaling"]["actions"][0]
    assert out["serving"] > 4.0  # n6 could be brought up to date only after the heal


def test_raft_changes_one_server_at_a_time_and_removes_its_leader_safely():
    world = make_world(
        seed=2,
        images=[{"name": "kv", "startup": "200ms"}],
        cluster={"disk": {"sync": "2ms"}},
        policy={"name": "raft"},
        workload={"kind": "set", "rate": 20, "clients_per_zone": 2},
        faults=[
            {"kind": "scale", "at": 2, "add": 2},
            {"kind": "scale", "at": 5, "remove": "leader"},
        ],
    )
    world.run()
    result = world.result(world.digest(), 0.0)
    configs = [
        tuple(text.split(" (")[0].split()[1:])
        for _, _, _, text in result.node_log
        if text.startswith("configuration ")
    ]
    # Each configuration differs from the one before by exactly one server.
    previous = ("n1", "n2", "n3", "n4", "n5")
    for config in configs:
        assert len(set(config) ^ set(previous)) == 1, (previous, config)
        previous = config
    removal = [r for r in result.faults if r.get("fault") == 1 and r["event"] == "start"][0]
    (old_leader,) = removal["removed"]
    assert world.cluster.by_id[old_leader].removed
    assert old_leader not in previous and len(previous) == 6
    # Another server leads, in a later term, and no term ever had two leaders.
    leaders = [(t, n, term) for t, n, _, role, term in result.roles if role == "leader"]
    assert leaders[-1][1] != old_leader and leaders[-1][2] > leaders[0][2]
    assert "single-leader" in result.summary["invariants"]["held"]
    assert result.summary["invariants"]["failed"] == []


def test_state_transfer_bytes_are_counted_and_bandwidth_slows_them():
    def joined(bandwidth):
        world = make_world(
            seed=4,
            images=[{"name": "kv", "startup": "100ms"}],
            network={"bandwidth": bandwidth},
            policy={"name": "raft"},
            workload={"kind": "set", "rate": 10, "clients_per_zone": 2},
            faults=[{"kind": "scale", "at": 4, "add": 1}],
        )
        world.start()
        world.engine.run(4.0)
        leader = world.cluster.node(world.cluster.with_role(("leader",))[0], 0)
        log_length = len(leader.entries)
        world.run()
        action = world.result(world.digest(), 0.0).summary["scaling"]["actions"][0]
        return action, log_length

    fast, _ = joined(None)
    slow, log_length = joined(200_000)  # 200 kB/s on each link
    # The learner's catch-up carries 100 bytes per entry of the leader's log (at least).
    assert slow["bytes"] >= 100 * log_length > 0
    # Everything sent to the new replica crossed the leader's one link to it, one message
    # at a time: at 200 kB/s that takes bytes / bandwidth, at least.
    assert slow["duration_s"] >= slow["bytes"] / 200_000
    assert slow["duration_s"] > fast["duration_s"]


def test_a_container_added_during_a_partition_is_on_its_zones_side():
    world = make_world(
        faults=[
            {"kind": "partition", "at": 1, "duration": 5, "groups": [["c"]]},
            {"kind": "scale", "at": 2, "add": 1, "zone": "c"},
            {"kind": "scale", "at": 2, "add": 1, "zone": "a"},
        ]
    )
    world.start()
    world.engine.run(2.5)
    net, by_id = world.network, world.cluster.by_id
    n6, n7 = by_id["n6"].idx, by_id["n7"].idx
    assert net.reachable(n6, by_id["n3"].idx) and not net.reachable(n6, by_id["n1"].idx)
    assert net.reachable(n7, by_id["n1"].idx) and not net.reachable(n7, by_id["n3"].idx)
    assert not net.reachable(n6, n7)


def test_clients_leave_a_drained_container_and_spread_over_new_ones():
    world = make_world(
        images=[{"name": "kv", "startup": "100ms"}],
        workload={"clients_per_zone": 3},
        faults=[
            {"kind": "scale", "at": 1, "remove": ["n4"]},
            {"kind": "scale", "at": 2, "add": 1, "zone": "a"},
        ],
    )
    world.start()
    world.engine.run(1.5)
    homes = {c.id: c.home.id for c in world.workload.clients if c.zone == "a"}
    assert set(homes.values()) == {"n1"}  # n4 is leaving: its clients moved
    world.engine.run(3)
    homes = [c.home.id for c in world.workload.clients if c.zone == "a"]
    assert homes == ["n1", "n6", "n1"]  # round-robin over zone a's containers again


def test_a_request_reaching_a_container_that_lost_its_shard_is_redirected():
    # Four shards on 3 of 5 containers; n6 takes some shards from n1..n5: a client's
    # leader hint still names the old holder, which answers with a redirect (MOVED).
    world = make_world(seed=3, **scaled("quorum", 4))
    world.run()
    errors = set(world.history.errors.values())
    assert "wrong-shard" not in errors


def test_autoscaler_follows_the_hpa_formula_and_window():
    sc = make_scenario(
        duration=20,
        cluster={"containers": 9},
        images=[{"name": "kv", "startup": "100ms"}],
        policy={"name": "quorum"},
        workload={"rate": 5, "clients_per_zone": 2},
        autoscale={
            "metric": "request_rate",
            "target": 4,
            "min": 3,
            "max": 9,
            "interval": 1,
            "window": 3,
            "cooldown": 6,
        },
    )
    res = run(sc)
    scaling = res.summary["scaling"]
    measurements = scaling["autoscaler"]["measurements"]
    ops = res.history.operations()
    # The first measurement, worked out from the history: requests invoked in (0 s, 1 s]
    # per container (quorum clients go straight to a replica: one request each).
    first = np.count_nonzero((ops.invoke_time > 0) & (ops.invoke_time <= 1) & ~ops.final)
    assert measurements[0][0] == 1.0
    assert measurements[0][1] == pytest.approx(first / 9)
    # Every measurement's desired count is the HPA's, from the value measured and the
    # containers staying; an action is taken exactly when every desired count in the last
    # window (3 s) is below (above) the current one, none pending and the cool-down over.
    current, pending, last = 9, {}, None
    requested = {a["requested"]: a for a in scaling["actions"]}
    for t, value, desired in measurements:
        want = current
        if abs(value / 4 - 1) > 0.1:
            want = math.ceil(current * value / 4)
        assert desired == max(3, min(9, want)), (t, value, desired)
        window = [d for u, _, d in measurements if t - 3 - 1e-9 < u <= t]
        eligible = (
            t >= 3
            and (last is None or t - last >= 6)
            and all(a["serving"] is not None and a["serving"] <= t for a in pending.values())
        )
        action = requested.get(t)
        if eligible and all(d < current for d in window):
            assert action is not None and len(action["removed"]) == current - max(window)
        elif eligible and all(d > current for d in window):
            assert action is not None and len(action["added"]) == min(window) - current
        else:
            assert action is None, (t, window, current)
        if action is not None:
            current += len(action["added"]) - len(action["removed"])
            pending[t], last = action, t
    # Six clients at 5/s: about 30 requests a second; 30 / 4 = 7.5 containers, give or
    # take the Poisson arrivals' noise.
    assert scaling["actions"] and current in (7, 8)
    assert res.summary["invariants"]["failed"] == []


def test_scale_actions_are_checked_before_the_run(tmp_path, capsys):
    for text, field in (
        ("faults: [{kind: scale, at: 1s}]", "faults[0]"),
        ("faults: [{kind: scale, at: 1s, add: 1, zone: q}]", "faults[0].zone"),
        ("faults: [{kind: scale, at: 1s, remove: [n9]}]", "faults[0].remove"),
        ("faults: [{kind: scale, at: 1s, remove: 1, image: x}]", "faults[0]"),
        ("autoscale: {target: 1, min: 4, max: 2}", "autoscale"),
    ):
        path = tmp_path / "bad.yaml"
        path.write_text(text + "\n")
        assert main(["validate", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"{field}:" in err, err
    # A fault may name a container a scale action adds before it.
    parse_scenario(
        {
            "faults": [
                {"kind": "scale", "at": 1, "add": 1},
                {"kind": "crash", "at": 2, "target": "n6"},
            ]
        }
    )
    with pytest.raises(ScenarioError, match="n6"):
        parse_scenario({"faults": [{"kind": "crash", "at": 2, "target": "n6"}]})


def test_a_scaled_run_is_deterministic():
    sc = make_scenario(**scaled("raft", 4))
    first, second = run(sc, seed=11), run(sc, seed=11)
    assert first.summary["trace_digest"] == second.summary["trace_digest"]
    assert json.dumps(first.summary["scaling"]) == json.dumps(second.summary["scaling"])
    assert run(sc, seed=12).summary["trace_digest"] != first.summary["trace_digest"]


def test_clients_send_to_the_new_containers_once_they_serve():
    res = run(make_scenario(**scaled("quorum", 1)))
    history = res.history
    names = history.nodes.names
    invoked = {
        names[history.node[i]]
        for i in range(len(history))
        if history.type[i] == INVOKE and 2.5 < history.time[i] < 6
    }
    # Zone c's two clients spread over n3 and n6 once n6 serves (zone a's two stay on n1
    # and n4, before n7 in order); a quorum client goes to its home replica.
    assert "n6" in invoked and "n7" not in invoked


def test_after_scaling_out_the_placement_is_the_rules_for_the_bigger_cluster():
    world = make_world(
        seed=6,
        duration=6,
        images=[{"name": "kv", "startup": "200ms"}],
        cluster={"shards": 8, "replication_factor": 3},
        policy={"name": "raft"},
        workload={"kind": "set", "rate": 20, "clients_per_zone": 2},
        faults=[{"kind": "scale", "at": 2, "add": 2}],
    )
    world.run()
    cluster = world.cluster
    # n6 and n7 go to zones c and a, as n6 and n7 of a 7-container cluster would.
    bigger = place(make_scenario(cluster={"containers": 7, "shards": 8, "replication_factor": 3}))
    assert cluster.placement.replicas == bigger.replicas
    assert all(set(cluster.members[s]) == set(bigger.replicas[s]) for s in range(8))
    result = world.result(world.digest(), 0.0)
    assert result.summary["invariants"]["failed"] == []


def test_a_count_removes_the_down_containers_first_then_the_newest():
    res = run(
        make_scenario(
            faults=[
                {"kind": "scale", "at": 1, "add": 2},
                {"kind": "crash", "at": 3, "target": "n2"},
                {"kind": "scale", "at": 4, "remove": 2},
            ]
        )
    )
    removal = [r for r in res.faults if r.get("fault") == 2 and r["event"] == "start"]
    assert removal[0]["removed"] == ["n2", "n7"]
