"""The nemesis: applies a scenario's faults at their times and records what it did.

Targets are resolved when a fault fires (see :mod:`capsim.faults`), so ``primary`` means
whichever container is primary at that instant. Every action is recorded, with the
resolved containers, as a dict for ``faults.jsonl``:

``{"time": 12.0, "fault": 0, "kind": "partition", "event": "start", "targets": [...],
"groups": [[...], [...]], "spec": "Partition(at=12.0, ...)"}``

``event`` is ``start`` and later ``end`` for a fault that lasts (a partition until it
ends or is healed; a crash until its containers are ready again; an upgrade until its
last container is ready), ``apply`` for an instant one (heal, restart), ``restart`` when
crashed containers begin restarting, and ``skipped`` with a ``reason`` when a fault found
no target. Faults a random nemesis or churn generates carry ``instance`` (a counter per
generator) and their own ``spec``. The final phase appears as ``fault: null``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from capsim import portable
from capsim.distributions import draws
from capsim.faults import (
    ROLE_TARGETS,
    Churn,
    ClockSkew,
    Crash,
    Heal,
    LinkFault,
    Partition,
    Pause,
    RandomFaults,
    Restart,
    RollingUpgrade,
    ZoneOutage,
    cut_count,
    partition_blocks,
    partition_groups,
)
from capsim.sim.cluster import Cluster
from capsim.sim.engine import Engine
from capsim.sim.network import LinkEffect, Network, uniforms

__all__ = ["Nemesis"]

#: Faults whose handlers make random choices (a ``random`` target, a shape's random
#: minority): each scheduled one draws from a stream of its own.
_CHOOSING = (Partition, Crash, Restart, Pause, ClockSkew, LinkFault, RollingUpgrade)


def _identities(faults: tuple) -> list[str]:
    """A stable name per scheduled fault: a digest of its spec, and a count of identical
    specs before it."""
    import hashlib

    seen: dict[str, int] = {}
    out = []
    for fault in faults:
        digest = hashlib.sha256(repr(fault).encode()).hexdigest()[:16]
        n = seen.get(digest, 0)
        seen[digest] = n + 1
        out.append(f"{digest}.{n}")
    return out


Key = int | tuple[int, int]  # a scheduled fault's index, or (generator index, instance)


class _Active:
    """A fault in force: what kind it is and how to end it."""

    __slots__ = ("kind", "end", "healable")

    def __init__(self, kind: str, end: Callable[[], None], healable: bool):
        self.kind = kind
        self.end = end
        self.healable = healable


class Nemesis:
    """Schedules and applies faults on a cluster and its network."""

    def __init__(
        self,
        engine: Engine,
        cluster: Cluster,
        network: Network,
        faults: tuple,
        duration: float,
        workload=None,
    ):
        self.engine = engine
        self.cluster = cluster
        self.network = network
        self.faults = faults
        self.duration = duration
        self.workload = workload
        self.records: list[dict[str, Any]] = []
        self.rng = engine.stream("nemesis")
        # Each scheduled fault's own name for its random streams, from its spec (and how
        # many identical specs come before it), not its position: deleting one fault from a
        # schedule leaves every other fault's random choices exactly as they were.
        self.idents = _identities(faults)
        self.active: dict[Key, _Active] = {}
        self._crash_pending: dict[Key, set[str]] = {}
        self._crashed_by: dict[str, Key] = {}
        self._upgrades: dict[Key, dict[str, Any]] = {}
        self._stopped = False
        self._handlers = {
            Partition: self._partition,
            Heal: self._heal,
            Crash: self._crash,
            Restart: self._restart,
            Pause: self._pause,
            ClockSkew: self._clock,
            LinkFault: self._link,
            ZoneOutage: self._zone_outage,
            RollingUpgrade: self._upgrade,
            RandomFaults: self._random,
            Churn: self._churn,
        }
        cluster.on_event = self._cluster_event

    def schedule(self) -> None:
        """Schedule every fault of the scenario at its ``at``."""
        for i, fault in enumerate(self.faults):
            self.engine.call_in(fault.at, self._apply, i, fault)

    def _apply(self, key: Key, fault: Any, rng: np.random.Generator | None = None) -> None:
        if self._stopped:
            return
        if rng is None and not isinstance(key, tuple) and isinstance(fault, _CHOOSING):
            rng = self.engine.stream(f"nemesis.fault.{self.idents[key]}")
        if rng is None:
            self._handlers[type(fault)](key, fault)
        else:
            self._handlers[type(fault)](key, fault, rng)

    def _record(
        self, key: Key | None, kind: str, event: str, spec: Any = None, **extra: Any
    ) -> dict:
        fault, instance = key if isinstance(key, tuple) else (key, None)
        record: dict[str, Any] = {"time": self.engine.now, "fault": fault}
        if instance is not None:
            record["instance"] = instance
        record["kind"] = kind
        record["event"] = event
        record.update(extra)
        if event in ("start", "apply", "skipped") and fault is not None:
            record["spec"] = repr(spec if spec is not None else self.faults[fault])
        self.records.append(record)
        return record

    def _spec(self, key: Key, fault: Any) -> Any:
        """The spec to record: a generated fault's own, else None (the scheduled one)."""
        return fault if isinstance(key, tuple) else None

    def _until_end(
        self, key: Key, duration: float | None, kind: str, end: Callable[[], None], healable: bool
    ) -> None:
        self.active[key] = _Active(kind, end, healable)
        if duration is not None:
            self.engine.call_in(duration, self.end, key)

    def end(self, key: Key) -> None:
        """End fault ``key`` if it is still in force."""
        active = self.active.pop(key, None)
        if active is not None:
            active.end()

    # -- targets ---------------------------------------------------------------------------

    def resolve(
        self,
        target: Any,
        shard: int = 0,
        *,
        up_only: bool = False,
        rng: np.random.Generator | None = None,
    ) -> list[str]:
        """Container ids named by ``target`` now (ids, zones, roles, ``random``), in order."""
        names = (target,) if isinstance(target, str) else tuple(target or ())
        out: list[str] = []
        for name in names:
            if name in self.cluster.by_id:
                found = [name]
            elif name in self.cluster.zones:
                found = [c.id for c in self.cluster.zones[name]]
            elif name in ROLE_TARGETS:
                found = self.cluster.with_role(ROLE_TARGETS, shard)
            elif name == "random":
                pool = [c.id for c in self.cluster.containers if c.up or not up_only]
                gen = rng if rng is not None else self.rng
                found = [pool[int(gen.integers(len(pool)))]] if pool else []
            else:
                raise ValueError(f"unknown target {name!r}")
            out.extend(c for c in found if c not in out)
        return out

    def _expand(self, group: tuple[str, ...]) -> list[str]:
        out: list[str] = []
        for name in group:
            for cid in self.resolve(name):
                if cid not in out:
                    out.append(cid)
        return out

    def _index(self, cids) -> list[int]:
        return [self.cluster.by_id[c].idx for c in cids]

    # -- partitions and links --------------------------------------------------------------

    def _partition(self, key: Key, fault: Partition, rng=None) -> None:
        rng = rng if rng is not None else self.rng
        spec = self._spec(key, fault)
        ids = [c.id for c in self.cluster.containers]
        targets = None
        if fault.target is not None:
            targets = self.resolve(fault.target, fault.shard, rng=rng)
            if not targets:
                self._record(key, "partition", "skipped", spec, reason=_no_target(fault.target))
                return
        groups = [self._expand(g) for g in fault.groups] if fault.groups else None
        try:
            resolved = partition_groups(fault.shape, ids, groups=groups, targets=targets, rng=rng)
        except ValueError as exc:
            self._record(key, "partition", "skipped", spec, reason=str(exc))
            return
        members, blocked = partition_blocks(fault.shape, resolved)
        self._cut(key, "partition", members, blocked, fault.duration)
        self._record(
            key,
            "partition",
            "start",
            spec,
            shape=fault.shape,
            targets=targets or [],
            groups=resolved,
            cuts=cut_count(members, blocked),
        )

    def _cut(
        self,
        key: Key,
        kind: str,
        members: list[list[str]],
        blocked: list[tuple[int, int]],
        duration: float | None,
    ) -> None:
        by_id = self.cluster.by_id
        groups = [[by_id[c].idx for c in group] for group in members]
        partition = self.network.add_partition(groups, blocked)

        def end() -> None:
            self.network.remove_partition(partition)
            self._record(key, kind, "end")

        self._until_end(key, duration, kind, end, healable=True)

    def _link(self, key: Key, fault: LinkFault, rng=None) -> None:
        if fault.groups is not None:
            first, second = (self._expand(g) for g in fault.groups)
        else:
            first = self.resolve(fault.target, fault.shard, rng=rng)
            second = [c.id for c in self.cluster.containers if c.id not in first]
        pairs = set()
        for a in first:
            for b in second:
                if a == b:
                    continue
                if fault.direction in ("both", "out"):
                    pairs.add((a, b))
                if fault.direction in ("both", "in"):
                    pairs.add((b, a))
        if not pairs:
            self._record(key, "link", "skipped", reason="no link to degrade")
            return
        index = {cid: c.idx for cid, c in self.cluster.by_id.items()}
        idx_pairs = sorted((index[a], index[b]) for a, b in pairs)
        ident = (
            self.idents[key] if not isinstance(key, tuple) else f"{self.idents[key[0]]}.{key[1]}"
        )
        name = f"nemesis.link.{ident}"
        latency = (
            draws(fault.latency, self.engine.stream(name + ".latency"))
            if fault.latency is not None
            else None
        )
        effect = LinkEffect(
            latency, fault.loss, fault.duplicate, uniforms(self.engine, name + ".draws")
        )
        self.network.add_link_effect(idx_pairs, effect)

        def end() -> None:
            self.network.remove_link_effect(idx_pairs, effect)
            self._record(key, "link", "end")

        self._until_end(key, fault.duration, "link", end, healable=True)
        self._record(
            key, "link", "start", links=[list(p) for p in sorted(pairs)], direction=fault.direction
        )

    def _heal(self, key: Key, fault: Heal) -> None:
        ended = [k for k, a in list(self.active.items()) if a.healable]
        for k in ended:
            self.end(k)
        self._record(key, "heal", "apply", ended=[_key_repr(k) for k in ended])

    # -- crashes -----------------------------------------------------------------------------

    def _crash(self, key: Key, fault: Crash, rng=None) -> None:
        spec = self._spec(key, fault)
        targets = self.resolve(fault.target, fault.shard, up_only=True, rng=rng)
        crashed = [c for c in targets if self.cluster.crash(c)]
        if not crashed:
            self._record(key, "crash", "skipped", spec, reason=_no_target(fault.target, alive=True))
            return
        self._hold_down(key, crashed)
        self._record(key, "crash", "start", spec, targets=crashed)
        if fault.duration is not None:
            self.engine.call_in(fault.duration, self._restart_after_crash, key, crashed)

    def _hold_down(self, key: Key, crashed: list[str]) -> None:
        for cid in crashed:
            previous = self._crashed_by.get(cid)
            if previous is not None:
                self._release(previous, cid)
            self._crashed_by[cid] = key
        self._crash_pending[key] = set(crashed)

    def _restart_held(self, key: Key, containers: list[str]) -> list[str]:
        """Restart those of ``containers`` that fault ``key`` still holds down."""
        return [
            c
            for c in containers
            if self._crashed_by.get(c) == key and self.cluster.restart(c) is not None
        ]

    def _restart_after_crash(self, key: Key, containers: list[str]) -> None:
        if self._stopped:
            return
        started = self._restart_held(key, containers)
        if started:
            self._record(key, "crash", "restart", targets=started)

    def _restart(self, key: Key, fault: Restart, rng=None) -> None:
        targets = self.resolve(fault.target, fault.shard, rng=rng)
        started = [c for c in targets if self.cluster.restart(c) is not None]
        if not started:
            self._record(key, "restart", "skipped", reason="no target container was down")
            return
        self._record(key, "restart", "apply", targets=started)

    def _cluster_event(self, event: dict) -> None:
        if event["kind"] != "ready":
            return
        for cid in event["containers"]:
            key = self._crashed_by.pop(cid, None)
            if key is not None:
                self._release(key, cid)
            for upgrade_key, state in list(self._upgrades.items()):
                if cid in state["pending"]:
                    state["pending"].discard(cid)
                    if not state["pending"]:
                        self.engine.call_in(state["wait"], self._upgrade_step, upgrade_key)

    def _release(self, key: Key, cid: str) -> None:
        """Crash ``key`` no longer holds ``cid`` down; it ends when it holds none."""
        pending = self._crash_pending.get(key)
        if pending is not None:
            pending.discard(cid)
            if not pending:
                del self._crash_pending[key]
                kind = "zone-outage" if isinstance(self._fault_of(key), ZoneOutage) else "crash"
                self._record(key, kind, "end")

    def _fault_of(self, key: Key) -> Any:
        return self.faults[key] if isinstance(key, int) else None

    # -- pauses and clocks -------------------------------------------------------------------

    def _pause(self, key: Key, fault: Pause, rng=None) -> None:
        spec = self._spec(key, fault)
        targets = self.resolve(fault.target, fault.shard, up_only=True, rng=rng)
        paused = [c for c in targets if self.cluster.pause(c)]
        if not paused:
            self._record(key, "pause", "skipped", spec, reason=_no_target(fault.target, True))
            return

        def end() -> None:
            resumed = [c for c in paused if self.cluster.resume(c)]
            self._record(key, "pause", "end", targets=resumed)

        self._until_end(key, fault.duration, "pause", end, healable=False)
        self._record(key, "pause", "start", spec, targets=paused)

    def _clock(self, key: Key, fault: ClockSkew, rng=None) -> None:
        spec = self._spec(key, fault)
        targets = self.resolve(fault.target, fault.shard, rng=rng)
        if not targets:
            self._record(key, "clock", "skipped", spec, reason=_no_target(fault.target))
            return
        for cid in targets:
            self.cluster.by_id[cid].set_clock(jump=fault.offset, rate=fault.rate)

        def end() -> None:
            for cid in targets:
                self.cluster.by_id[cid].reset_clock()
            self._record(key, "clock", "end", targets=targets)

        self._until_end(key, fault.duration, "clock", end, healable=False)
        self._record(
            key, "clock", "start", spec, targets=targets, offset=fault.offset, rate=fault.rate
        )

    # -- zones and upgrades ------------------------------------------------------------------

    def _zone_outage(self, key: Key, fault: ZoneOutage) -> None:
        zone = [c.id for c in self.cluster.zones[fault.zone]]
        if fault.mode == "isolate":
            self._cut(key, "zone-outage", [zone], [(0, 1), (1, 0)], fault.duration)
            self._record(
                key, "zone-outage", "start", zone=fault.zone, mode=fault.mode, targets=zone
            )
            return
        crashed = [c for c in zone if self.cluster.crash(c)]
        if self.workload is not None:
            self.workload.suspend_zone(fault.zone)
        self._hold_down(key, crashed)

        def end() -> None:
            if self.workload is not None:
                self.workload.resume_zone(fault.zone)
            started = self._restart_held(key, crashed)
            self._record(key, "zone-outage", "restart", targets=started)

        self._until_end(key, fault.duration, "zone-outage", end, healable=False)
        self._record(key, "zone-outage", "start", zone=fault.zone, mode=fault.mode, targets=crashed)

    def _upgrade(self, key: Key, fault: RollingUpgrade, rng=None) -> None:
        image = self.cluster.scenario.image(fault.image)
        targets = (
            self.resolve(fault.target, fault.shard, rng=rng)
            if fault.target is not None
            else [c.id for c in self.cluster.containers]
        )
        # Containers already on the image are left alone, so an upgrade that was stopped
        # part way (a canary) resumes where it stopped.
        targets = [c for c in targets if self.cluster.by_id[c].image.ref != image.ref]
        self._upgrades[key] = {
            "image": image,
            "todo": list(targets),
            "pending": set(),
            "batch": fault.max_unavailable,
            "wait": fault.wait,
        }
        self.active[key] = _Active("upgrade", lambda: self._upgrades.pop(key, None), False)
        self._record(key, "upgrade", "start", targets=targets, image=image.ref)
        self._upgrade_step(key)

    def _upgrade_step(self, key: Key) -> None:
        state = self._upgrades.get(key)
        if state is None or self._stopped:
            return
        if not state["todo"]:
            del self._upgrades[key]
            self.active.pop(key, None)
            self._record(key, "upgrade", "end")
            return
        batch, state["todo"] = state["todo"][: state["batch"]], state["todo"][state["batch"] :]
        for cid in batch:
            self.cluster.shutdown(cid)  # an upgrade stops containers gracefully
            self.cluster.restart(cid, image=state["image"])
        state["pending"] = set(batch)
        self._record(key, "upgrade", "restart", targets=batch, image=state["image"].ref)

    # -- generators --------------------------------------------------------------------------

    def _random(self, i: int, fault: RandomFaults) -> None:
        ident = self.idents[i]
        rng = self.engine.stream(f"nemesis.random.{ident}")
        durations = draws(fault.duration, self.engine.stream(f"nemesis.random.{ident}.duration"))
        until = fault.until if fault.until is not None else self.duration
        state = {"instance": 0}

        def arrive() -> None:
            if self._stopped or self.engine.now >= until:
                return
            state["instance"] += 1
            kind = fault.faults[int(rng.integers(len(fault.faults)))]
            duration = max(next(durations), 1e-9)
            now = self.engine.now
            if kind == "partition":
                shape = fault.shapes[int(rng.integers(len(fault.shapes)))]
                target = None if shape == "majorities-ring" else fault.target
                concrete: Any = Partition(
                    at=now, duration=duration, shape=shape, target=target, shard=fault.shard
                )
            elif kind == "crash":
                concrete = Crash(at=now, target=fault.target, duration=duration, shard=fault.shard)
            elif kind == "pause":
                concrete = Pause(at=now, target=fault.target, duration=duration, shard=fault.shard)
            else:
                offset = fault.max_clock_offset * (2.0 * float(portable.uniforms(rng, 1)[0]) - 1.0)
                concrete = ClockSkew(
                    at=now, target=fault.target, offset=offset, duration=duration, shard=fault.shard
                )
            self._apply((i, state["instance"]), concrete, rng)
            self.engine.call_in(portable.exponential(rng, 1.0 / fault.rate), arrive)

        self.engine.call_in(portable.exponential(rng, 1.0 / fault.rate), arrive)

    def _churn(self, i: int, fault: Churn) -> None:
        targets = (
            self.resolve(fault.target)
            if fault.target is not None
            else [c.id for c in self.cluster.containers]
        )
        until = fault.until if fault.until is not None else self.duration
        state = {"instance": 0}
        for cid in targets:
            rng = self.engine.stream(f"nemesis.churn.{self.idents[i]}.{cid}")

            def fail(cid=cid, rng=rng) -> None:
                if self._stopped or self.engine.now >= until:
                    return
                container = self.cluster.by_id[cid]
                repair = portable.exponential(rng, fault.mttr)
                if container.up:
                    state["instance"] += 1
                    self._apply(
                        (i, state["instance"]),
                        Crash(at=self.engine.now, target=cid, duration=repair),
                    )
                up_again = repair + container.image.startup
                # Its own container and stream, passed on: the name `fail` is the last
                # container's function by the time this runs.
                self.engine.call_in(
                    up_again + portable.exponential(rng, fault.mttf), fail, cid, rng
                )

            self.engine.call_in(portable.exponential(rng, fault.mttf), fail, cid, rng)

    # -- the final phase -------------------------------------------------------------------

    def heal_everything(self) -> None:
        """End every fault in force and stop generating new ones: partitions and link
        faults end, paused containers resume, clocks are corrected, zones come back, an
        upgrade under way stops, and containers that are down restart."""
        self._stopped = True
        ended = list(self.active)
        for key in ended:
            self.end(key)
        self._upgrades.clear()
        if self.workload is not None:
            self.workload.resume_all()
        for container in self.cluster.containers:
            container.reset_clock()
        restarted = [c.id for c in self.cluster.containers if not c.up and not c.starting]
        for cid in restarted:
            self.cluster.restart(cid)
        self._record(
            None, "final", "apply", ended=[_key_repr(k) for k in ended], restarted=restarted
        )


def _key_repr(key: Key) -> Any:
    return list(key) if isinstance(key, tuple) else key


def _no_target(target: Any, alive: bool = False) -> str:
    names = [target] if isinstance(target, str) else list(target)
    if any(n in ROLE_TARGETS for n in names):
        return f"no live container had the role {'/'.join(ROLE_TARGETS)}"
    return "no live container to target" if alive else "no container to target"
