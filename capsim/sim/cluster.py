"""Containers, their replicas and their life cycle: boot, crash, restart, pause, clocks.

A container is started from an image and placed in a zone; it runs one replica (a
:class:`~capsim.sim.node.Node`) of each shard placed on it. It is the unit of failure: a
crash stops every replica on it, drops what it was doing (volatile state, timers, pending
rpcs, queued messages, writes not yet synced) and keeps each replica's durable state; a
restart takes the image's start-up time, then builds fresh replica instances and calls
their ``on_start``. Messages that arrive while it is down are dropped.

A container handles messages one at a time: each takes a draw of the cluster's
``service_time`` (zero by default, when a message is handled the instant it arrives),
and messages that arrive while it is busy wait in its queue, in order. A paused container
handles nothing: arriving messages and timers that come due wait, and on resume they are
handled in the order they arrived, timers at once and messages through the queue.

Its clock reads ``base + rate * (t - t0)``: a clock fault jumps it or changes its rate
(the host's clock: a restart does not fix it), and timers measure elapsed time at the
rate in force when they are set.

Containers come and go (:meth:`Cluster.add_containers`, :meth:`Cluster.remove_containers`):
the list of containers only grows (a container's index and id are never reused, so every
structure indexed by them stays valid), a removed container stays in ``by_id`` (down,
``removed``) so that messages to it are dropped rather than refused as unknown, and the
placement is computed again. A replica a new placement puts on a container starts there
with empty durable state; one it takes away is *retiring*: it runs until the shard's
membership leaves it out (the policy's doing, through ``set_members``) or its drain
deadline passes, then it is stopped and its state dropped. A removed container stops
once it holds no replica.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from capsim.distributions import Constant, draws
from capsim.errors import PolicyError
from capsim.faults import ROLE_TARGETS
from capsim.scenario import Image, Scenario
from capsim.sim.engine import Engine
from capsim.sim.network import CLIENT, CLIENT_REPLY, Message, Network, Transfer
from capsim.sim.node import Node, Runtime, _Due, _fire, bind
from capsim.sim.storage import Disk, Durable
from capsim.topology import Placement

__all__ = ["Container", "Cluster"]

#: Role changes kept per run (``roles.jsonl``); later ones are counted, not kept.
MAX_ROLE_CHANGES = 1_000_000
#: Simulated seconds between two samples of one replica's applied log at role changes.
ROLE_SAMPLE_GAP_S = 1.0


class AppliedLogs:
    """State-machine safety, sampled through ``Node.applied_log()``: per shard, the first
    command seen applied at each log position (with the container and time), and the first
    sample that applied a different command at a position already taken.

    Samples are taken when a replica's role changes (at most once a second of simulated
    time per replica), just before a container crashes (its applied state is volatile),
    and at the end of the main phase and of the run. Each sample compares the replica's
    whole applied log with what has been seen.
    """

    __slots__ = ("seen", "origins", "conflict", "samples")

    def __init__(self) -> None:
        # Per shard, the commands seen applied at each position, and where and when each
        # was first seen: (container, time).
        self.seen: dict[int | str, list[Any]] = {}
        self.origins: dict[int | str, list[tuple[str, float]]] = {}
        self.conflict: dict[str, Any] | None = None
        self.samples = 0

    @staticmethod
    def wanted(node: Node, key: int | str) -> bool:
        """Whether ``node`` has an applied log to sample (a replica, not a service, of a
        policy that implements ``applied_log``)."""
        return type(node).applied_log is not Node.applied_log and not isinstance(key, str)

    def sample(self, time: float, cid: str, key: int | str, node: Node) -> None:
        if not self.wanted(node, key):
            return
        log = node.applied_log()
        if log is None:
            return
        self.samples += 1
        seen = self.seen.setdefault(key, [])
        origins = self.origins.setdefault(key, [])
        common = min(len(log), len(seen))
        # Compared as whole lists first (in C), position by position only if they differ.
        if self.conflict is None and log[:common] != seen[:common]:
            for i in range(common):
                if log[i] != seen[i]:
                    first, at = origins[i]
                    self.conflict = {
                        "shard": key,
                        "index": i,
                        "first": {"node": first, "time": at, "command": _shown(seen[i])},
                        "then": {"node": cid, "time": time, "command": _shown(log[i])},
                    }
                    break
        if len(log) > common:
            seen.extend(log[common:])
            origins.extend([(cid, time)] * (len(log) - common))


def _shown(command: Any) -> Any:
    """A command as JSON shows it (tuples as lists, anything else by repr)."""
    if isinstance(command, list | tuple):
        return [_shown(c) for c in command]
    if command is None or isinstance(command, bool | int | float | str):
        return command
    if isinstance(command, dict):
        return {str(k): _shown(v) for k, v in command.items()}
    return repr(command)


class Container:
    """One container: an id, a zone, an image, and a replica per shard placed on it."""

    def __init__(
        self, idx: int, cid: str, zone: str, image: Image, engine: Engine, disk: Disk, service
    ):
        self.idx = idx
        # Its parts of the trace code of a message it sends (hi) or receives (lo).
        self.trace_hi = (idx & 0xFFF) << 12
        self.trace_lo = idx & 0xFFF
        self.id = cid
        self.zone = zone
        self.image = image
        self.engine = engine
        self.disk = disk
        self.up = True
        self.starting = False
        self.paused = False
        self.removed = False  # stopped for good by a scale action (its id is never reused)
        self.draining = False  # being removed: stops once it holds no replica
        self.requests = 0  # client requests sent to it (the autoscaler's request rate)
        self.ready_at = 0.0  # when it last became ready (restart policies' reset)
        self.restarts = 0  # consecutive restarts by the restart policy
        self.cluster: Cluster | None = None  # set by the cluster
        self.incarnation = 0
        self.replicas: dict[int, Node] = {}
        self.runtimes: dict[int, Runtime] = {}
        self.durables: dict[int, Durable] = {}
        self.deferred: list[Any] = []  # what came due while paused, in order
        # Service: None means zero service time (handled on arrival).
        self._service = service
        self.queue: deque[Message] = deque()
        self.busy = False
        self.max_queue = 0
        self.handled = 0
        self.wait_total = 0.0
        # The clock reads base + rate * (now - t0).
        self.clock_base = 0.0
        self.clock_t0 = 0.0
        self.clock_rate = 1.0
        self.clock_state = (0.0, 0.0, 1.0)  # (base, t0, rate), replaced on every change
        # The monotonic clock reads mono_base + rate * (now - clock_t0): it runs at the
        # clock's rate but ignores jumps, as CLOCK_MONOTONIC does.
        self.mono_base = 0.0
        # Messages go straight to the replica: no service time, not paused.
        self.direct = service is None

    # -- the clock -------------------------------------------------------------------------

    def clock(self) -> float:
        """The container's local clock reading now, in seconds."""
        return self.clock_base + self.clock_rate * (self.engine.env._now - self.clock_t0)

    def monotonic(self) -> float:
        """The container's monotonic clock: its rate, never its jumps, in seconds."""
        return self.mono_base + self.clock_rate * (self.engine.env._now - self.clock_t0)

    def set_clock(self, *, jump: float = 0.0, rate: float | None = None) -> None:
        """Jump the clock by ``jump`` seconds and/or set its rate from now on."""
        now = self.engine.env._now
        self.mono_base = self.monotonic()
        self.clock_base = self.clock() + jump
        self.clock_t0 = now
        if rate is not None:
            self.clock_rate = rate
        self.clock_state = (self.clock_base, self.clock_t0, self.clock_rate)

    def reset_clock(self) -> None:
        """Step the clock back to true time, at rate 1 (as NTP would)."""
        self.mono_base = self.monotonic()
        self.clock_base = self.engine.env._now
        self.clock_t0 = self.clock_base
        self.clock_rate = 1.0
        self.clock_state = (self.clock_base, self.clock_t0, self.clock_rate)

    def real_delay(self, local_delay: float) -> float:
        """Simulated seconds that pass while this container's clock advances ``local_delay``."""
        if local_delay <= 0:
            return 0.0
        return local_delay / self.clock_rate

    # -- messages ----------------------------------------------------------------------------

    def receive(self, msg: Message) -> None:
        """A message arrived: handle it now, or queue it if busy or paused."""
        if self._service is None and not self.paused:
            # _handle, inlined: this is every message's path with zero service time.
            rt = self.runtimes.get(msg.shard)
            if rt is not None:
                rt.dispatch(msg)
            else:
                self._handle(msg)
        elif self.paused:
            self.deferred.append(msg)
        elif self.busy:
            self.queue.append((self.engine.env._now, msg))
            if len(self.queue) > self.max_queue:
                self.max_queue = len(self.queue)
        else:
            self._serve(self.engine.env._now, msg)

    def _handle(self, msg: Message) -> None:
        rt = self.runtimes.get(msg.shard)
        if rt is not None:
            rt.dispatch(msg)
        elif msg.kind == CLIENT:
            # No replica of that shard lives here: a scale action moved it (redirect the
            # client to a member, as Redis Cluster answers MOVED), or it never did (say so:
            # the client will try another).
            moved = self.cluster.moved(msg.body.shard, self) if self.cluster else None
            if moved is not None:
                _refuse(self, msg, moved, outcome="redirect")
            else:
                _refuse(self, msg, "wrong-shard")

    def _serve(self, arrived: float, msg: Message) -> None:
        self.busy = True
        self.wait_total += self.engine.env._now - arrived
        self.engine.call_in(next(self._service), self._served, msg, self.incarnation)

    def _served(self, msg: Message, incarnation: int) -> None:
        if incarnation != self.incarnation:
            return  # crashed while handling it
        if self.paused:
            self.deferred.append(("served", msg))
            return
        self.handled += 1
        self._handle(msg)
        self.busy = False
        if self.queue and not self.paused:
            arrived, nxt = self.queue.popleft()
            self._serve(arrived, nxt)

    def refuse(self, msg: Message) -> None:
        """A client's request reached this container while it was down."""
        _refuse(self, msg, "unavailable")

    # -- pause -------------------------------------------------------------------------------

    def defer(self, due: _Due) -> None:
        """Hold a timer that came due while paused; it runs on resume."""
        self.deferred.append(due)

    def resume(self) -> None:
        """Handle everything that came due while paused, in order."""
        self.paused = False
        self.direct = self._service is None
        deferred, self.deferred = self.deferred, []
        for item in deferred:
            if self.paused or not self.up:
                break  # paused or crashed again by something handled here
            if isinstance(item, _Due):
                _fire(item)  # as when it came due, now that the container runs
            elif isinstance(item, tuple):
                self._served(item[1], self.incarnation)
            else:
                self.receive(item)

    def queue_length(self) -> int:
        """Messages waiting: in the queue, in service, and held by a pause."""
        return (
            len(self.queue)
            + (1 if self.busy else 0)
            + sum(1 for item in self.deferred if isinstance(item, Message))
        )


def _refuse(container: Container, msg: Message, error: str, outcome: str = "fail") -> None:
    req = msg.body
    client = req._client
    net: Network = client.network
    net.send(
        container.id,
        client.id,
        CLIENT_REPLY,
        (req, outcome, error),
        -1,
        None,
        container,
        client.home,
        client,
    )


class Cluster:
    """Every container, the placement of shards on them, and their life cycle."""

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
        self.policy_name = scenario.policy.name
        self.params_for = params_for
        image = scenario.image()
        spec = scenario.cluster
        service = spec.service_time
        zero_service = isinstance(service, Constant) and service.value + service.shift == 0
        self._zero_service = zero_service
        self.containers = []
        for i, cid in enumerate(placement.containers):
            disk = Disk(spec.disk, engine.stream(f"disk.{cid}"))
            service_draws = (
                None if zero_service else draws(service, engine.stream(f"service.{cid}"))
            )
            own = spec.container_images.get(cid)  # side-by-side versions (A/B, a canary)
            self.containers.append(
                Container(
                    i,
                    cid,
                    placement.zone_of[cid],
                    scenario.image(own) if own else image,
                    engine,
                    disk,
                    service_draws,
                )
            )
        self.by_id = {c.id: c for c in self.containers}
        for container in self.containers:
            container.cluster = self
        self.zones = {zone: [] for zone in spec.zones}
        for container in self.containers:
            self.zones[container.zone].append(container)
        # Each shard's current members (placement decides who holds a replica; a policy may
        # reorder or narrow the membership, as a chain does when it drops a failed node).
        self.members: list[tuple[str, ...]] = list(placement.replicas)
        # Changes whenever clients' routes may (membership, placement, readiness).
        self.members_version = 0
        # Containers coming and going (scale actions): the placement at boot, the ids in
        # the cluster now, the next id's number, every container that has hosted each
        # shard (what set_members accepts), replicas retiring and containers draining
        # (each with its drain deadline), and the container count over time.
        self.initial_placement = placement
        self.in_service: tuple[str, ...] = tuple(placement.containers)
        self.next_number = len(placement.containers) + 1
        self._hosted: list[set[str]] | None = None  # built at the first scale action
        self.retiring: dict[tuple[str, int], float] = {}
        self.draining: dict[str, float] = {}
        self.counts: list[tuple[float, int]] = [(0.0, len(self.in_service))]
        self._changed: list[int] = []
        self._settling = False
        self.network: Network | None = None
        self.on_event: Callable[[dict], None] | None = None
        #: Every change of a replica's (role, term): (time, container, shard or service,
        #: role, term); a crash records the role None. The first MAX_ROLE_CHANGES are kept.
        self.roles: list[tuple[float, str, int | str, str | None, int | None]] = []
        self.roles_dropped = 0
        self._role_last: dict[tuple[str, int | str], tuple[str | None, int | None]] = {}
        self._role_pending: set[tuple[str, int | str]] = set()
        self._role_sampled: dict[tuple[str, int | str], float] = {}
        #: Called with (container, shard) when a replica of the shard becomes leader or
        #: primary (the nemesis's ``after: new-leader`` faults and chasing nemeses).
        self.leader_watchers: dict[int, list[Callable[[str, int], None]]] = {}
        self.applied = AppliedLogs()

    def attach(self, network: Network) -> None:
        self.network = network

    def boot(self) -> None:
        """Start every replica at time zero (containers are already running)."""
        services = sorted(self.policy.services)
        for container in self.containers:
            tracking = not container.disk.instant
            for shard in self.placement.shards_of(container.id):
                container.durables[shard] = Durable(tracking=tracking)
            for name in services:
                container.durables[name] = Durable(tracking=tracking)
            self._start_replicas(container)
            if tracking:
                self.engine.call_in(
                    self.scenario.cluster.disk.writeback, self._writeback, container
                )

    def _writeback(self, container: Container) -> None:
        if container.up:
            for durable in container.durables.values():
                durable.persist(durable.mark())
        self.engine.call_in(self.scenario.cluster.disk.writeback, self._writeback, container)

    def _start_replicas(self, container: Container, only: list[int] | None = None) -> None:
        params = self.params_for(container.image)
        started = []
        # Replicas by shard, then services by name (durables holds both kinds of key).
        keys = sorted(container.durables, key=lambda k: (isinstance(k, str), k))
        for key in keys if only is None else only:
            cls = self.policy.services[key] if isinstance(key, str) else self.policy
            node = cls()
            rt = bind(
                node,
                container=container,
                key=key,
                params=params,
                durable=container.durables[key],
                rng=self.engine.stream(f"node.{container.id}.{key}"),
                net=self.network,
                engine=self.engine,
                cluster=self,
                policy=self.policy_name,
            )
            container.replicas[key] = node
            container.runtimes[key] = rt
            started.append(rt)
        for rt in started:
            rt.start()

    def crash(self, cid: str) -> bool:
        """Crash container ``cid`` now; returns False if it was already down."""
        container = self.by_id[cid]
        if not container.up and not container.starting or container.removed:
            return False
        container.up = False
        container.starting = False
        container.paused = False
        container.direct = container._service is None
        container.deferred.clear()
        container.queue.clear()
        container.busy = False
        container.incarnation += 1
        if any(not rt.ready for rt in container.runtimes.values()):
            self.members_version += 1  # routes that passed it by are decided again
        for rt in container.runtimes.values():
            # What it applied is volatile: look before it is gone.
            self._sample_now(rt.id, rt.key, rt.node)
            rt.alive = False
            self._role_pending.discard((cid, rt.key))
            last = self._role_last.get((cid, rt.key))
            if last is not None and last[0] is not None:
                self._record_role(cid, rt.key, None, last[1])
        container.replicas = {}
        container.runtimes = {}
        for durable in container.durables.values():
            durable.lose_unsynced()
        return True

    def shutdown(self, cid: str) -> bool:
        """Stop ``cid`` gracefully: flush every write to disk, then stop like a crash."""
        container = self.by_id[cid]
        if container.up:
            for durable in container.durables.values():
                durable.persist(durable.mark())
        return self.crash(cid)

    def restart(self, cid: str, image: Image | None = None) -> float | None:
        """Begin restarting ``cid`` (optionally onto another image).

        Returns the time it will be ready, or None if it is up or already starting.
        """
        container = self.by_id[cid]
        if container.up or container.starting or container.removed:
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
        container.ready_at = self.engine.now
        self._start_replicas(container)
        if self.on_event is not None:
            self.on_event({"kind": "ready", "containers": [container.id]})

    def pause(self, cid: str) -> bool:
        """Pause ``cid``; returns False if it is down or paused already."""
        container = self.by_id[cid]
        if not container.up or container.paused or container.removed:
            return False
        container.paused = True
        container.direct = False
        return True

    def resume(self, cid: str) -> bool:
        """Resume ``cid``; returns False if it was not paused."""
        container = self.by_id[cid]
        if not container.paused:
            return False
        container.resume()
        return True

    def node(self, cid: str, shard: int | str = 0) -> Node | None:
        """The live replica of ``shard`` (or the service of that name) on ``cid``, or None
        if down or not placed there."""
        container = self.by_id[cid]
        return container.replicas.get(shard) if container.up else None

    def set_members(self, shard: int, members, *, by: str) -> None:
        """Change ``shard``'s membership (see ``Node.set_members``); ``by`` names the
        container asking, for the node log."""
        members = tuple(members)
        hosts = self.placement.replicas[shard]
        if not members:
            raise ValueError(f"shard {shard} needs at least one member")
        if len(set(members)) != len(members):
            raise ValueError(f"members of shard {shard} repeat: {list(members)}")
        hosted = self._hosted[shard] if self._hosted is not None else hosts
        strangers = [m for m in members if m not in hosted]
        if strangers:
            raise ValueError(
                f"{strangers} hold no replica of shard {shard} (its hosts: {list(hosts)})"
            )
        if members != self.members[shard]:
            self.members[shard] = members
            self.members_version += 1
            self.engine.node_log(by, shard, f"members of shard {shard}: {' '.join(members)}")
            if self.retiring or self.draining:
                self._settle_soon()
            if self.on_event is not None:
                self.on_event({"kind": "members", "shard": shard})

    def role_changed(self, cid: str, key: int | str, node: Node) -> None:
        """The replica ``key`` on ``cid`` assigned its role or term. Recorded once the
        handler that changed it has returned, at the same instant (a handler may move
        through states it never acts in: a deposed primary adopts the new epoch, then steps
        down), along with a sample of what it has applied (a change of role is when logs are
        cut and rebuilt)."""
        container = self.by_id[cid]
        pending = self._role_pending
        if (cid, key) not in pending and container.replicas.get(key) is node:
            pending.add((cid, key))
            self.engine.call_in(0.0, self._settle_role, container, key, node, container.incarnation)

    def _settle_role(
        self, container: Container, key: int | str, node: Node, incarnation: int
    ) -> None:
        cid = container.id
        self._role_pending.discard((cid, key))
        if container.incarnation != incarnation or container.replicas.get(key) is not node:
            return  # crashed since (the crash recorded it)
        before = self._role_last.get((cid, key), (None, None))[0]
        self._record_role(cid, key, node._role, node._term)
        if self.leader_watchers and node._role != before and node._role in ROLE_TARGETS:
            for watcher in tuple(self.leader_watchers.get(key, ())):  # type: ignore[arg-type]
                watcher(cid, key)  # type: ignore[arg-type]
        # A change of role (not of term alone: a candidate on the losing side of a
        # partition counts terms up every election timeout) is when logs are cut and
        # rebuilt; sampling there keeps the cost to a few whole-log reads per election.
        # At most one such sample per replica per ROLE_SAMPLE_GAP_S of simulated time (a
        # whole-log read each); crashes and the ends of the phases are always sampled.
        last = self._role_sampled.get((cid, key))
        now = self.engine.now
        if (
            node._role != before
            and (last is None or now - last >= ROLE_SAMPLE_GAP_S)
            and self.applied.wanted(node, key)
        ):
            self._role_sampled[(cid, key)] = now
            self._sample_now(cid, key, node)

    def _record_role(self, cid: str, key: int | str, role: str | None, term: int | None) -> None:
        state = (role, term)
        if self._role_last.get((cid, key), (None, None)) == state:
            return
        self._role_last[(cid, key)] = state
        if len(self.roles) < MAX_ROLE_CHANGES:
            self.roles.append((self.engine.now, cid, key, role, term))
        else:
            self.roles_dropped += 1

    def _sample(self, container: Container, key: int | str, node: Node, incarnation: int) -> None:
        if container.incarnation == incarnation and container.replicas.get(key) is node:
            self._sample_now(container.id, key, node)

    def _sample_now(self, cid: str, key: int | str, node: Node) -> None:
        try:
            self.applied.sample(self.engine.now, cid, key, node)
        except Exception as exc:
            raise PolicyError(
                policy=self.policy_name,
                time=self.engine.now,
                container=cid,
                shard=key,
                handling="applied_log(), introspection",
                exc=exc,
            ) from exc

    def sample_applied(self) -> None:
        """Sample what every live replica has applied (state-machine safety)."""
        for container in self.containers:
            if container.up:
                for key, node in container.replicas.items():
                    self._sample_now(container.id, key, node)

    def watch_leaders(self, shard: int, watcher: Callable[[str, int], None]) -> None:
        """Call ``watcher(container, shard)`` each time a replica of ``shard`` becomes
        leader or primary (once its handler has returned), until :meth:`unwatch_leaders`."""
        self.leader_watchers.setdefault(shard, []).append(watcher)

    def unwatch_leaders(self, shard: int, watcher: Callable[[str, int], None]) -> None:
        watchers = self.leader_watchers.get(shard)
        if watchers and watcher in watchers:
            watchers.remove(watcher)
            if not watchers:
                del self.leader_watchers[shard]

    def with_role(self, roles: tuple[str, ...], shard: int = 0) -> list[str]:
        """Ids of live, ready containers whose replica of ``shard`` reports one of ``roles``."""
        out = []
        for container in self.containers:
            node = container.replicas.get(shard) if container.up else None
            if node is not None and node.role in roles and not self.shunned(container):
                out.append(container.id)
        return out

    def down(self) -> list[str]:
        """Ids of containers in the cluster that are down or still starting."""
        return [c.id for c in self.containers if not c.up and not c.removed]

    # -- readiness -----------------------------------------------------------------------------

    def shunned(self, container: Container) -> bool:
        """Whether ``container`` is up but one of its replicas says it is not ready
        (``Node.set_ready``): clients' default routing and role targets pass it by. A
        container that is down or starting is not shunned: it refuses requests."""
        if not container.up:
            return False
        for key, rt in container.runtimes.items():
            if not rt.ready and not isinstance(key, str):
                return True
        return False

    def readiness_changed(self, container: Container) -> None:
        """A replica on ``container`` changed its readiness: routes are decided again."""
        self.members_version += 1
        if self.on_event is not None:
            self.on_event({"kind": "readiness", "containers": [container.id]})

    # -- containers that come and go -----------------------------------------------------------

    def add_containers(
        self,
        count: int,
        image: Image,
        zone: str | None,
        drain_timeout: float,
        transfer: Transfer | None = None,
    ) -> list[Container]:
        """Start ``count`` new containers from ``image`` in ``zone`` (default: round-robin
        by container number, as at boot); their ids continue the sequence. They are ready
        after the image's start-up time; the placement is computed again at once, and the
        shards it moves to them start there when they are ready. ``transfer``, if given,
        counts what is sent to the replicas placed and from those retiring."""
        spec = self.scenario.cluster
        added = []
        for _ in range(count):
            number = self.next_number
            self.next_number += 1
            cid = f"n{number}"
            where = zone if zone is not None else spec.zones[(number - 1) % len(spec.zones)]
            disk = Disk(spec.disk, self.engine.stream(f"disk.{cid}"))
            service = (
                None
                if self._zero_service
                else draws(spec.service_time, self.engine.stream(f"service.{cid}"))
            )
            container = Container(
                len(self.containers), cid, where, image, self.engine, disk, service
            )
            container.up = False
            container.starting = True
            container.ready_at = None  # never ready yet
            container.cluster = self
            self.containers.append(container)
            self.by_id[cid] = container
            self.zones.setdefault(where, []).append(container)
            if self.network is not None:
                self.network.add_container(container)
            tracking = not disk.instant
            for name in sorted(self.policy.services):
                container.durables[name] = Durable(tracking=tracking)
            if tracking:
                self.engine.call_in(spec.disk.writeback, self._writeback, container)
            self.engine.call_in(image.startup, self._ready, container, container.incarnation)
            added.append(container)
        self.in_service = tuple([*self.in_service, *(c.id for c in added)])
        self.counts.append((self.engine.now, len(self.in_service)))
        self._place(drain_timeout, transfer)
        return added

    def remove_containers(
        self, cids: list[str], drain_timeout: float, transfer: Transfer | None = None
    ) -> None:
        """Drain containers ``cids`` and remove them: the placement is computed without
        them at once, and each stops (for good) once it holds no replica, or when
        ``drain_timeout`` has passed."""
        deadline = self.engine.now + drain_timeout
        for cid in cids:
            container = self.by_id[cid]
            container.draining = True
            self.draining[cid] = deadline
            if container in self.zones.get(container.zone, ()):
                self.zones[container.zone].remove(container)
        self._place(drain_timeout, transfer)

    def staying(self) -> list[str]:
        """Ids of the containers in the cluster and not being drained, in order."""
        return [cid for cid in self.in_service if not self.by_id[cid].draining]

    def _place(self, drain_timeout: float, transfer: Transfer | None = None) -> None:
        """Compute the placement on the containers that stay, start the replicas it adds,
        mark those it takes away as retiring and tell the policy (``on_hosts_changed``)."""
        cluster = self.scenario.cluster
        staying = self.staying()
        old = self.placement
        new = old.rescaled(
            staying,
            {cid: self.by_id[cid].zone for cid in staying},
            cluster.replication_factor,
            cluster.vnodes,
        )
        self.placement = new
        self.members_version += 1
        if self._hosted is None:
            self._hosted = [set(group) for group in self.initial_placement.replicas]
        changed = [s for s in range(new.shards) if new.replicas[s] != old.replicas[s]]
        deadline = self.engine.now + drain_timeout
        created: dict[str, list[int]] = {}
        for shard in changed:
            hosts = new.replicas[shard]
            self._hosted[shard].update(hosts)
            for cid in hosts:
                container = self.by_id[cid]
                self.retiring.pop((cid, shard), None)  # back before it left
                if shard not in container.durables:
                    container.durables[shard] = Durable(tracking=not container.disk.instant)
                    if container.up:
                        created.setdefault(cid, []).append(shard)
            for container in self.containers:
                if (
                    shard in container.durables
                    and container.id not in hosts
                    and (container.id, shard) not in self.retiring
                ):
                    self.retiring[(container.id, shard)] = deadline
        if transfer is not None:
            for shard in changed:
                for cid in new.replicas[shard]:
                    if cid not in old.replicas[shard]:
                        transfer.to.add((self.by_id[cid].idx, shard))
            for cid, shard in self.retiring:
                transfer.frm.add((self.by_id[cid].idx, shard))
            if self.network is not None:
                self.network.count_transfer(transfer)
        for cid in sorted(created, key=lambda c: self.by_id[c].idx):
            self._start_replicas(self.by_id[cid], only=created[cid])
        self._changed = changed
        hook = self.policy.on_hosts_changed is not Node.on_hosts_changed
        for shard in changed:
            if not hook:
                self.set_members(shard, new.replicas[shard], by="capsim")
                continue
            fresh = {c for c, shards in created.items() if shard in shards}
            for container in self.containers:
                rt = container.runtimes.get(shard) if container.up else None
                if rt is not None and container.id not in fresh:
                    rt.call(rt.node.on_hosts_changed, (), "on_hosts_changed()")
        self.engine.call_in(drain_timeout, self._drain_deadline)
        self._settle()

    def moved(self, shard: int, container: Container) -> str | None:
        """Where to send a client whose request for ``shard`` reached ``container``, which
        holds no replica of it, after a scale action moved shards: a member of the shard
        (in the container's zone if one is), or ``None`` if no shard ever moved."""
        if self._hosted is None or not 0 <= shard < len(self.members):
            return None
        members = self.members[shard]
        near = [m for m in members if self.by_id[m].zone == container.zone]
        return (near or list(members))[0]

    def moved_shards(self) -> list[int]:
        """The shards whose hosts the last placement change changed."""
        return list(self._changed)

    def _settle_soon(self) -> None:
        """Settle drains once the handler that changed the membership has returned."""
        if not self._settling:
            self._settling = True
            self.engine.call_in(0.0, self._settle)

    def _settle(self) -> None:
        """Stop every retiring replica the membership has left out, and every draining
        container that holds no replica any more."""
        self._settling = False
        for (cid, shard), _ in list(self.retiring.items()):
            if cid not in self.members[shard]:
                self._retire(cid, shard)
        for cid in list(self.draining):
            container = self.by_id[cid]
            if not any(not isinstance(key, str) for key in container.durables):
                self._remove(container)

    def _drain_deadline(self) -> None:
        """Stop what should have drained by now, whatever the membership says."""
        now = self.engine.now
        for (cid, shard), deadline in list(self.retiring.items()):
            if deadline <= now:
                self.engine.node_log(cid, shard, "drain timeout: stopped while still a member")
                self._retire(cid, shard)
        for cid, deadline in list(self.draining.items()):
            if deadline <= now:
                self._remove(self.by_id[cid])
        self._settle()

    def _retire(self, cid: str, shard: int) -> None:
        """Stop the replica of ``shard`` on ``cid`` and drop its state (durable included)."""
        self.retiring.pop((cid, shard), None)
        container = self.by_id[cid]
        rt = container.runtimes.pop(shard, None)
        if rt is not None:
            if not rt.ready:
                self.members_version += 1
            self._sample_now(cid, shard, rt.node)
            rt.alive = False
            self._role_pending.discard((cid, shard))
            last = self._role_last.get((cid, shard))
            if last is not None and last[0] is not None:
                self._record_role(cid, shard, None, last[1])
        container.replicas.pop(shard, None)
        container.durables.pop(shard, None)
        if self.on_event is not None:
            self.on_event({"kind": "retired", "containers": [cid], "shard": shard})

    def _remove(self, container: Container) -> None:
        """Stop a drained container for good: flushed, down, out of the cluster."""
        cid = container.id
        for key in [k for k in container.durables if not isinstance(k, str)]:
            self._retire(cid, key)
        if container.up:
            self.shutdown(cid)
        else:
            self.crash(cid)
        container.up = False
        container.starting = False
        container.removed = True
        container.draining = False
        self.draining.pop(cid, None)
        self.in_service = tuple(c for c in self.in_service if c != cid)
        self.counts.append((self.engine.now, len(self.in_service)))
        if self.on_event is not None:
            self.on_event({"kind": "removed", "containers": [cid]})

    def queue_stats(self) -> dict[str, Any]:
        """Per-container message queues: the longest queue and the mean wait (service on)."""
        handled = sum(c.handled for c in self.containers)
        return {
            "max_length": {c.id: c.max_queue for c in self.containers},
            "mean_wait_ms": (
                round(1000 * sum(c.wait_total for c in self.containers) / handled, 6)
                if handled
                else None
            ),
        }
