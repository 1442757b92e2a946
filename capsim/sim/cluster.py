"""Containers, their replicas and their life cycle: boot, crash, restart.

A container is started from an image and placed in a zone; it runs one replica (a
:class:`~capsim.sim.node.Node`) of each shard placed on it. It is the unit of failure: a
crash stops every replica on it, drops what it was doing (volatile state, timers, pending
rpcs) and keeps only each replica's durable state; a restart takes the image's start-up
time, then builds fresh replica instances and calls their ``on_start``. Messages that
arrive while it is down are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from capsim.scenario import Image, Scenario
from capsim.sim.engine import Engine
from capsim.sim.network import CLIENT_REPLY, Message, Network
from capsim.sim.node import Durable, Node
from capsim.topology import Placement

__all__ = ["Container", "Cluster"]


class Container:
    """One container: an id, a zone, an image, and a replica per shard placed on it."""

    def __init__(self, idx: int, cid: str, zone: str, image: Image, engine: Engine):
        self.idx = idx
        self.id = cid
        self.zone = zone
        self.image = image
        self.engine = engine
        self.up = True
        self.starting = False
        self.paused = False
        self.incarnation = 0
        self.replicas: dict[int, Node] = {}
        self.durables: dict[int, Durable] = {}
        self.deferred: list[Any] = []
        # The container's clock reads offset + rate * (simulated time); see clock().
        self.clock_offset = 0.0
        self.clock_rate = 1.0
        self.disk_latency = 0.0

    def clock(self) -> float:
        """The container's local clock reading now, in seconds."""
        return self.clock_offset + self.clock_rate * self.engine.env._now

    def real_delay(self, local_delay: float) -> float:
        """Simulated seconds that pass while this container's clock advances ``local_delay``."""
        if local_delay <= 0:
            return 0.0
        return local_delay / self.clock_rate

    def disk_delay(self) -> float:
        """Seconds until a sync issued now completes."""
        return self.disk_latency

    def receive(self, msg: Message) -> None:
        """Hand an arriving message to the replica of its shard."""
        if self.paused:
            self.deferred.append(msg)
            return
        node = self.replicas.get(msg.shard)
        if node is not None:
            node._dispatch(msg)
        elif msg.kind == "client":
            # No replica of that shard lives here: say so, the client will try another.
            _refuse(self, msg, "wrong-shard")

    def refuse(self, msg: Message) -> None:
        """A client's request reached this container while it was down."""
        _refuse(self, msg, "unavailable")

    def defer(self, timer) -> None:
        """Hold a timer that fired while paused; it runs on resume."""
        self.deferred.append(timer)


def _refuse(container: Container, msg: Message, error: str) -> None:
    req = msg.body
    client = req._client
    net: Network = client.network
    net.send(
        container.id,
        client.id,
        CLIENT_REPLY,
        (req, "fail", error),
        -1,
        None,
        container,
        client.home,
        client,
    )


class Cluster:
    """Every container, the placement of shards on them, and crash and restart."""

    def __init__(
        self,
        engine: Engine,
        scenario: Scenario,
        placement: Placement,
        policy: type[Node],
        params_for: Callable[[Image], Any],
    ):
        self.engine = engine
        self.scenario = scenario
        self.placement = placement
        self.policy = policy
        self.params_for = params_for
        image = scenario.image()
        self.containers = [
            Container(i, cid, placement.zone_of[cid], image, engine)
            for i, cid in enumerate(placement.containers)
        ]
        self.by_id = {c.id: c for c in self.containers}
        self.zones = {
            zone: [c for c in self.containers if c.zone == zone] for zone in scenario.cluster.zones
        }
        self.network: Network | None = None
        self.on_event: Callable[[dict], None] | None = None

    def attach(self, network: Network) -> None:
        self.network = network

    def boot(self) -> None:
        """Start every replica at time zero (containers are already running)."""
        for container in self.containers:
            for shard in self.placement.shards_of(container.id):
                container.durables[shard] = Durable()
            self._start_replicas(container)

    def _start_replicas(self, container: Container) -> None:
        params = self.params_for(container.image)
        started = []
        for shard in sorted(container.durables):
            node = self.policy()
            node._bind(
                container=container,
                shard=shard,
                peers=self.placement.replicas[shard],
                params=params,
                durable=container.durables[shard],
                rng=self.engine.stream(f"node.{container.id}.{shard}"),
                net=self.network,
                engine=self.engine,
                containers=self.by_id,
            )
            container.replicas[shard] = node
            started.append(node)
        for node in started:
            node.on_start()

    def crash(self, cid: str) -> bool:
        """Crash container ``cid`` now; returns False if it was already down."""
        container = self.by_id[cid]
        if not container.up and not container.starting:
            return False
        container.up = False
        container.starting = False
        container.paused = False
        container.deferred.clear()
        container.incarnation += 1
        for node in container.replicas.values():
            node._alive = False
        container.replicas = {}
        return True

    def restart(self, cid: str, image: Image | None = None) -> float | None:
        """Begin restarting ``cid`` (optionally onto another image).

        Returns the time it will be ready, or None if it is up or already starting.
        """
        container = self.by_id[cid]
        if container.up or container.starting:
            return None
        if image is not None:
            container.image = image
        container.starting = True
        incarnation = container.incarnation
        delay = container.image.startup
        self.engine.call_in(delay, self._ready, container, incarnation)
        return self.engine.now + delay

    def _ready(self, container: Container, incarnation: int) -> None:
        if container.incarnation != incarnation or not container.starting:
            return  # crashed again while starting
        container.starting = False
        container.up = True
        self._start_replicas(container)
        if self.on_event is not None:
            self.on_event({"kind": "ready", "containers": [container.id]})

    def node(self, cid: str, shard: int = 0) -> Node | None:
        """The live replica of ``shard`` on ``cid``, or None if down or not placed there."""
        container = self.by_id[cid]
        return container.replicas.get(shard) if container.up else None

    def with_role(self, roles: tuple[str, ...], shard: int = 0) -> list[str]:
        """Ids of live containers whose replica of ``shard`` reports one of ``roles``."""
        out = []
        for container in self.containers:
            node = container.replicas.get(shard) if container.up else None
            if node is not None and node.role in roles:
                out.append(container.id)
        return out

    def down(self) -> list[str]:
        """Ids of containers that are down or still starting."""
        return [c.id for c in self.containers if not c.up]
