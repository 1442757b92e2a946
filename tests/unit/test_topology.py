"""Placement: zones, zone-aware replicas by consistent hashing, keys to shards; the graph."""

from __future__ import annotations

import collections

from capsim.scenario import parse_scenario
from capsim.topology import place, topology_graph


def test_one_shard_is_replicated_on_every_container_in_order():
    p = place(parse_scenario({}))
    assert p.replicas == (("n1", "n2", "n3", "n4", "n5"),)
    assert p.shard_of("anything") == 0


def test_shard_replicas_spread_over_zones():
    sc = parse_scenario({"cluster": {"containers": 24, "shards": 64, "replication_factor": 3}})
    p = place(sc)
    assert len(p.replicas) == 64
    for group in p.replicas:
        assert len(set(group)) == 3
        assert len({p.zone_of[c] for c in group}) == 3  # one replica per zone


def test_keys_spread_over_shards_and_map_stably():
    sc = parse_scenario({"cluster": {"containers": 6, "shards": 8, "replication_factor": 3}})
    p = place(sc)
    counts = collections.Counter(p.shard_of(f"k{i}") for i in range(8000))
    assert set(counts) == set(range(8))
    assert min(counts.values()) > 400  # 1000 each on average; vnodes keep it rough-even
    assert [place(sc).shard_of(f"k{i}") for i in range(50)] == [
        p.shard_of(f"k{i}") for i in range(50)
    ]


def test_adding_a_shard_moves_only_some_keys():
    def owners(shards):
        sc = parse_scenario(
            {"cluster": {"containers": 6, "shards": shards, "replication_factor": 3}}
        )
        p = place(sc)
        return [p.shard_of(f"k{i}") for i in range(4000)]

    before, after = owners(8), owners(9)
    moved = sum(a != b for a, b in zip(before, after, strict=True))
    assert moved < 4000 * 0.25  # consistent hashing: about 1/9 move, not most


def test_topology_graph_has_zones_containers_and_links():
    g = topology_graph(parse_scenario({}))
    kinds = collections.Counter(d["kind"] for _, d in g.nodes(data=True))
    assert kinds == {"zone": 3, "container": 5}
    assert g.nodes["n4"]["zone"] == "a" and g.nodes["n4"]["shards"] == [0]
    assert g.edges["n1", "n4"]["link_class"] == "same_zone"
    assert g.edges["n1", "n2"]["link_class"] == "cross_zone"
    assert g.has_edge("n3", "zone:c")
