"""Where things are: containers in zones, shards on containers, keys on shards.

Pure functions of the scenario (no simulation), so analysis and users can ask them too.

* Containers ``n1..nN`` are placed over zones by :meth:`ClusterSpec.zone_of`.
* Keys map to shards by consistent hashing: every shard owns ``vnodes`` points on a ring of
  64-bit SHA-256 values, and a key belongs to the shard owning the first point at or after
  the key's own hash (wrapping around).
* Each shard is replicated on ``replication_factor`` distinct containers, chosen by walking
  a second ring (``vnodes`` points per container) clockwise from the shard's hash, taking a
  container from a zone not yet used while unused zones remain, then any container not yet
  taken. A shard's replicas are listed in container order (``n1`` before ``n2``).
* A scale action changes the containers but not the shards or the keys' ring:
  :meth:`Placement.rescaled` walks the container ring again, which moves only what it
  must (see :func:`replicate`).
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass
from functools import cached_property

import networkx as nx

from capsim.scenario import Scenario, container_ids

__all__ = ["Placement", "place", "replicate", "topology_graph", "ring_hash"]


def ring_hash(text: str) -> int:
    """A position on the ring: the first 8 bytes of SHA-256 of ``text``, big-endian."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


@dataclass(frozen=True)
class Placement:
    """The cluster's layout: zones of containers, replicas of shards, shards of keys."""

    containers: tuple[str, ...]
    zone_of: dict[str, str]
    replicas: tuple[tuple[str, ...], ...]
    shard_tokens: tuple[int, ...]
    shard_owner: tuple[int, ...]

    @property
    def shards(self) -> int:
        return len(self.replicas)

    def shard_of(self, key: str) -> int:
        """The shard that owns ``key``."""
        if len(self.replicas) == 1:
            return 0
        i = bisect.bisect_left(self.shard_tokens, ring_hash(key))
        return self.shard_owner[i % len(self.shard_owner)]

    def shards_of(self, container: str) -> list[int]:
        """The shards with a replica on ``container``, in order."""
        return list(self._by_container.get(container, ()))

    def rescaled(
        self,
        containers: list[str] | tuple[str, ...],
        zone_of: dict[str, str],
        replication_factor: int | None,
        vnodes: int,
    ) -> Placement:
        """The placement on ``containers`` (ids in container order, each zoned by
        ``zone_of``): the same shards and keys, replicas chosen again by :func:`replicate`."""
        ids = tuple(sorted(containers, key=lambda cid: int(cid[1:])))
        zones = {cid: zone_of[cid] for cid in ids}
        replicas = replicate(ids, zones, len(self.replicas), replication_factor, vnodes)
        return Placement(ids, zones, replicas, self.shard_tokens, self.shard_owner)

    @cached_property
    def _by_container(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for shard, group in enumerate(self.replicas):
            for cid in group:
                out.setdefault(cid, []).append(shard)
        return out


def place(scenario: Scenario) -> Placement:
    """Compute the placement of ``scenario``'s containers, shards and keys.

    Each shard walks the container ring only as far as it must to choose its replicas, so
    building a placement costs about ``shards * replication_factor`` steps beyond sorting
    the rings, not ``shards * containers``.
    """
    cluster = scenario.cluster
    ids = container_ids(cluster.containers)
    zone_of = cluster.zone_of()
    replicas = replicate(ids, zone_of, cluster.shards, cluster.replication_factor, cluster.vnodes)
    tokens = sorted(
        (ring_hash(f"key-range/{shard}/{v}"), shard)
        for shard in range(cluster.shards)
        for v in range(cluster.vnodes)
    )
    return Placement(
        containers=tuple(ids),
        zone_of=zone_of,
        replicas=replicas,
        shard_tokens=tuple(t for t, _ in tokens),
        shard_owner=tuple(s for _, s in tokens),
    )


def replicate(
    ids: list[str] | tuple[str, ...],
    zone_of: dict[str, str],
    shards: int,
    replication_factor: int | None,
    vnodes: int,
) -> tuple[tuple[str, ...], ...]:
    """The replicas of each of ``shards`` shards on containers ``ids`` (in container
    order), by the rule in the module docstring; ``replication_factor`` ``None`` means
    every container, and a factor above the number of containers is cut to it.

    A container's ring points depend only on its id, so adding a container changes the
    replicas of exactly the shards whose walk now chooses it (each such shard gets the new
    container), and removing one changes exactly the shards that had chosen it: the rest
    keep their replicas, as consistent hashing promises."""
    rf = len(ids) if replication_factor is None else min(replication_factor, len(ids))
    order = {cid: i for i, cid in enumerate(ids)}
    zones_total = len({zone_of[cid] for cid in ids})
    if rf == len(ids):
        return tuple(tuple(ids) for _ in range(shards))
    points = sorted((ring_hash(f"container/{cid}/{v}"), cid) for cid in ids for v in range(vnodes))
    hashes = [h for h, _ in points]
    replicas = []
    for shard in range(shards):
        walk = _Walk(points, bisect.bisect_left(hashes, ring_hash(f"shard/{shard}")))
        chosen: list[str] = []
        zones_used: set[str] = set()
        # First pass: a container from a zone not yet used, while unused zones remain.
        i = 0
        while len(chosen) < rf and walk.has(i):
            cid = walk.at(i)
            i += 1
            if zone_of[cid] not in zones_used:
                chosen.append(cid)
                zones_used.add(zone_of[cid])
                if len(zones_used) == zones_total:
                    zones_used.clear()
        # Second pass: any container not yet taken, in ring order.
        i = 0
        while len(chosen) < rf and walk.has(i):
            cid = walk.at(i)
            i += 1
            if cid not in chosen:
                chosen.append(cid)
        replicas.append(tuple(sorted(chosen, key=order.__getitem__)))
    return tuple(replicas)


class _Walk:
    """The distinct containers met walking the ring clockwise from ``start``, found lazily."""

    __slots__ = ("points", "start", "step", "seen", "found")

    def __init__(self, points: list[tuple[int, str]], start: int):
        self.points = points
        self.start = start
        self.step = 0
        self.seen: set[str] = set()
        self.found: list[str] = []

    def has(self, i: int) -> bool:
        """Whether the walk meets at least ``i + 1`` distinct containers."""
        points, n = self.points, len(self.points)
        while len(self.found) <= i and self.step < n:
            cid = points[(self.start + self.step) % n][1]
            self.step += 1
            if cid not in self.seen:
                self.seen.add(cid)
                self.found.append(cid)
        return len(self.found) > i

    def at(self, i: int) -> str:
        return self.found[i]


def topology_graph(scenario: Scenario) -> nx.Graph:
    """The cluster as a networkx graph that users can inspect or draw.

    Nodes are zones (``kind="zone"``, named ``zone:<name>``) and containers
    (``kind="container"``, with ``zone``, ``image`` and ``shards``). A container is joined
    to its zone (``kind="placement"``) and to every other container (``kind="link"``,
    ``link_class`` ``"same_zone"`` or ``"cross_zone"``).
    """
    placement = place(scenario)
    image = scenario.image()
    graph = nx.Graph(name=scenario.name)
    for zone in scenario.cluster.zones:
        graph.add_node(f"zone:{zone}", kind="zone")
    for cid in placement.containers:
        graph.add_node(
            cid,
            kind="container",
            zone=placement.zone_of[cid],
            image=image.ref,
            shards=placement.shards_of(cid),
        )
        graph.add_edge(cid, f"zone:{placement.zone_of[cid]}", kind="placement")
    for i, a in enumerate(placement.containers):
        for b in placement.containers[i + 1 :]:
            same = placement.zone_of[a] == placement.zone_of[b]
            graph.add_edge(a, b, kind="link", link_class="same_zone" if same else "cross_zone")
    return graph
