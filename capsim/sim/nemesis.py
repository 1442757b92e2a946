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

A scale action (``scale``) records ``start`` when requested (the containers ``added`` and
``removed``, the shards it moves) and ``end`` once it is serving, with the ``bytes`` and
``messages`` of its state transfer; actions the autoscaler takes are recorded the same way
with ``fault: "autoscale"`` and an ``instance`` number. A container that crashes (or
stops) without a scheduled restart is started again by the cluster's restart policy:
``restart`` records carry the ``policy``, the ``attempt`` and the ``backoff_s`` waited;
``give-up`` says ``on-failure`` reached its ``max_retries``.
"""

from __future__ import annotations

import math
import re
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
    Scale,
    Stop,
    ZoneOutage,
    cut_count,
    partition_blocks,
    partition_groups,
)
from capsim.sim.cluster import Cluster
from capsim.sim.engine import Engine
from capsim.sim.network import LinkEffect, Network, Transfer, uniforms

__all__ = ["Nemesis", "Autoscaler"]

_CONTAINER_ID = re.compile(r"n[1-9][0-9]*")

#: Faults whose handlers make random choices (a ``random`` target, a shape's random
#: minority): each scheduled one draws from a stream of its own.
_CHOOSING = (Partition, Crash, Restart, Pause, ClockSkew, LinkFault, RollingUpgrade, Scale, Stop)


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


class _Action:
    """A scale action under way: what it changes, and what its state transfer sent."""

    __slots__ = ("added", "removed", "shards", "transfer", "requested")

    def __init__(self, added, removed, shards, transfer, requested):
        self.added: list[str] = added
        self.removed: list[str] = removed
        self.shards: list[int] = shards
        self.transfer: Transfer = transfer
        self.requested: float = requested


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
        #: Faults waiting for a new leader (``after``) or for their delay after one: shard,
        #: watcher (None once triggered), and the reason to record if the phase ends first.
        self._waiting: dict[Key, tuple[int, Callable[[str, int], None] | None, str]] = {}
        self._stopped = False
        # Scale actions under way, the image containers are added from (the one the last
        # upgrade moved to), and the autoscaler.
        self.actions: dict[Any, _Action] = {}
        self.current_image = cluster.scenario.image()
        autoscale = cluster.scenario.autoscale
        self.autoscaler = Autoscaler(self, autoscale) if autoscale is not None else None
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
            Scale: self._scale,
            Stop: self._stop,
        }
        cluster.on_event = self._cluster_event

    def schedule(self) -> None:
        """Schedule every fault of the scenario at its ``at`` (one with ``after`` starts
        waiting for its trigger then)."""
        for i, fault in enumerate(self.faults):
            if getattr(fault, "after", None) is not None:
                self.engine.call_in(fault.at, self._arm, i, fault)
            else:
                self.engine.call_in(fault.at, self._apply, i, fault)
        if self.autoscaler is not None:
            self.autoscaler.schedule()

    def _arm(self, key: int, fault: Any) -> None:
        """Fault ``key`` waits for a new leader (or primary) of its shard, then strikes
        ``delay`` later."""
        if self._stopped:
            return
        shard = fault.shard

        def triggered(cid: str, _shard: int) -> None:
            self.cluster.unwatch_leaders(shard, triggered)
            self._waiting[key] = (
                shard,
                None,
                f"its delay ({fault.delay:g} s) after the new leader outlasted the main phase",
            )
            if fault.delay > 0:
                self.engine.call_in(fault.delay, self._strike, key, fault)
            else:
                self._strike(key, fault)

        self._waiting[key] = (
            shard,
            triggered,
            f"no new leader or primary of shard {shard} between {fault.at:g} s and the end "
            "of the main phase",
        )
        self.cluster.watch_leaders(shard, triggered)

    def _strike(self, key: int, fault: Any) -> None:
        if self._stopped:
            return  # recorded as skipped when the main phase ended
        self._waiting.pop(key, None)
        self._apply(key, fault)

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
                found = [] if self.cluster.by_id[name].removed else [name]
            elif name in self.cluster.zones:
                found = [c.id for c in self.cluster.zones[name]]
            elif name in ROLE_TARGETS:
                found = self.cluster.with_role(ROLE_TARGETS, shard)
            elif _CONTAINER_ID.fullmatch(name):
                found = []  # a container a scale action has not added (yet)
            elif name == "random":
                pool = [
                    c.id for c in self.cluster.containers if (c.up or not up_only) and not c.removed
                ]
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
        ids = [c.id for c in self.cluster.containers if not c.removed]
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
            second = [c.id for c in self.cluster.containers if c.id not in first and not c.removed]
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
        since = {c: self._running_since(c) for c in targets}
        crashed = [c for c in targets if self.cluster.crash(c)]
        if not crashed:
            self._record(key, "crash", "skipped", spec, reason=_no_target(fault.target, alive=True))
            return
        self._hold_down(key, crashed)
        self._record(key, "crash", "start", spec, targets=crashed)
        if fault.duration is not None:
            self.engine.call_in(fault.duration, self._restart_after_crash, key, crashed)
        else:
            for cid in crashed:
                self._exited(key, "crash", cid, since[cid], failed=True)

    def _stop(self, key: Key, fault: Stop, rng=None) -> None:
        targets = self.resolve(fault.target, fault.shard, up_only=True, rng=rng)
        since = {c: self._running_since(c) for c in targets}
        stopped = [c for c in targets if self.cluster.shutdown(c)]
        if not stopped:
            self._record(key, "stop", "skipped", reason=_no_target(fault.target, alive=True))
            return
        self._hold_down(key, stopped)
        self._record(key, "stop", "start", targets=stopped)
        for cid in stopped:
            self._exited(key, "stop", cid, since[cid], failed=False)

    # -- restart policies ----------------------------------------------------------------------

    def _running_since(self, cid: str) -> float | None:
        container = self.cluster.by_id[cid]
        return container.ready_at if container.up else None

    def _exited(self, key: Key, kind: str, cid: str, since: float | None, failed: bool) -> None:
        """Container ``cid`` crashed (``failed``) or exited cleanly with no restart
        scheduled: apply the cluster's restart policy (see ``RestartSpec``). The wait
        before the k-th consecutive restart is ``backoff * 2 ** (k - 1)``, at most
        ``max_backoff``; a container that ran ``reset_after`` since it was last ready
        counts from the first again."""
        policy = self.cluster.scenario.cluster.restart
        if policy is None or policy.policy == "never":
            return
        if policy.policy == "on-failure" and not failed:
            return
        container = self.cluster.by_id[cid]
        if since is not None and self.engine.now - since >= policy.reset_after:
            container.restarts = 0
        if policy.max_retries is not None and container.restarts >= policy.max_retries:
            self._record(key, kind, "give-up", targets=[cid], attempts=container.restarts)
            return
        # By multiplication, capped at each step: no pow and no overflow.
        delay = min(policy.backoff, policy.max_backoff)
        for _ in range(container.restarts):
            delay = min(delay * 2.0, policy.max_backoff)
        container.restarts += 1
        self.engine.call_in(
            delay,
            self._policy_restart,
            key,
            kind,
            cid,
            container.incarnation,
            container.restarts,
            delay,
        )

    def _policy_restart(
        self, key: Key, kind: str, cid: str, incarnation: int, attempt: int, delay: float
    ) -> None:
        if self._stopped:
            return
        container = self.cluster.by_id[cid]
        if container.incarnation != incarnation:
            return  # restarted (and crashed again) meanwhile: that crash has its own
        if self.cluster.restart(cid) is not None:
            self._record(
                key,
                kind,
                "restart",
                targets=[cid],
                policy=self.cluster.scenario.cluster.restart.policy,
                attempt=attempt,
                backoff_s=delay,
            )

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
        if self.actions:
            self._scale_event(event)
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
                fault = self._fault_of(key)
                kind = (
                    "zone-outage"
                    if isinstance(fault, ZoneOutage)
                    else "stop"
                    if isinstance(fault, Stop)
                    else "crash"
                )
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
        self.current_image = image  # containers added from now on start from it
        targets = (
            self.resolve(fault.target, fault.shard, rng=rng)
            if fault.target is not None
            else [c.id for c in self.cluster.containers if not c.removed]
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
        batch = [c for c in batch if not self.cluster.by_id[c].removed]  # scaled in since
        if not batch:
            self._upgrade_step(key)
            return
        for cid in batch:
            self.cluster.shutdown(cid)  # an upgrade stops containers gracefully
            self.cluster.restart(cid, image=state["image"])
        state["pending"] = set(batch)
        self._record(key, "upgrade", "restart", targets=batch, image=state["image"].ref)

    # -- scale actions -------------------------------------------------------------------------

    def _scale(self, key: Any, fault: Scale, rng=None) -> None:
        spec = self._spec(key, fault)
        cluster = self.cluster
        transfer = Transfer(set(), set())
        if fault.add is not None:
            image = cluster.scenario.image(fault.image) if fault.image else self.current_image
            added = cluster.add_containers(
                fault.add, image, fault.zone, fault.drain_timeout, transfer
            )
            action = _Action([c.id for c in added], [], [], transfer, self.engine.now)
        else:
            staying = cluster.staying()
            if isinstance(fault.remove, int):
                chosen = self.removal_choice(fault.remove)
            else:
                named = self.resolve(fault.remove, fault.shard, rng=rng)
                chosen = [c for c in named if c in staying]
            if not chosen or len(chosen) >= len(staying):
                reason = "no container to remove" if not chosen else "it would remove them all"
                self._record(key, "scale", "skipped", spec, reason=reason)
                return
            cluster.remove_containers(chosen, fault.drain_timeout, transfer)
            action = _Action([], chosen, [], transfer, self.engine.now)
        action.shards = cluster.moved_shards()
        self.actions[key] = action
        if self.workload is not None:
            self.workload.containers_changed()
        self._record(
            key,
            "scale",
            "start",
            spec,
            added=action.added,
            removed=action.removed,
            shards_moved=len(action.shards),
            containers=len(cluster.in_service),
        )
        self._check_actions()

    def removal_choice(self, count: int) -> list[str]:
        """The containers a removal of ``count`` chooses by the placement rule: of those
        in the cluster and not being drained, the ones that are down first, then the newest
        (as a Kubernetes ReplicaSet scales down: not-ready pods first, then the youngest);
        never all of them."""
        staying = [self.cluster.by_id[c] for c in self.cluster.staying()]
        order = sorted(staying, key=lambda c: (c.up or c.starting, -c.idx))
        return [c.id for c in order[: min(count, len(staying) - 1)]]

    def _scale_event(self, event: dict) -> None:
        self._check_actions()

    def _check_actions(self) -> None:
        """End every scale action that is serving: its added containers up and ready, its
        removed containers stopped, and every shard it moved with the new hosts as its
        members and no replica left draining."""
        cluster = self.cluster
        for key, action in list(self.actions.items()):
            by_id = cluster.by_id
            if any(
                not by_id[c].removed and (not by_id[c].up or cluster.shunned(by_id[c]))
                for c in action.added
            ):
                continue
            if any(not by_id[c].removed for c in action.removed):
                continue
            hosts = cluster.placement.replicas
            if any(set(cluster.members[s]) != set(hosts[s]) for s in action.shards):
                continue
            if any(s in action.shards for _, s in cluster.retiring):
                continue
            del self.actions[key]
            self.network.stop_transfer(action.transfer)
            if action.added and self.workload is not None:
                self.workload.containers_changed()  # clients spread over the new ones
            self._record(
                key,
                "scale",
                "end",
                duration_s=round(self.engine.now - action.requested, 9),
                bytes=action.transfer.bytes,
                messages=action.transfer.messages,
                containers=len(cluster.in_service),
            )

    # -- generators --------------------------------------------------------------------------

    def _random(self, i: int, fault: RandomFaults) -> None:
        ident = self.idents[i]
        rng = self.engine.stream(f"nemesis.random.{ident}")
        durations = draws(fault.duration, self.engine.stream(f"nemesis.random.{ident}.duration"))
        until = fault.until if fault.until is not None else self.duration
        state = {"instance": 0}

        def generate(trigger: float | None = None, delay: float = 0.0) -> None:
            """One fault, drawn now; ``trigger``: the time of the new leader it chases."""
            state["instance"] += 1
            kind = fault.faults[int(rng.integers(len(fault.faults)))]
            duration = max(next(durations), 1e-9)
            now = self.engine.now
            timing: dict[str, Any] = {"at": now, "shard": fault.shard}
            if trigger is not None:
                timing.update(at=trigger, after="new-leader", delay=delay)
            if kind == "partition":
                shape = fault.shapes[int(rng.integers(len(fault.shapes)))]
                target = None if shape == "majorities-ring" else fault.target
                concrete: Any = Partition(duration=duration, shape=shape, target=target, **timing)
            elif kind == "crash":
                concrete = Crash(target=fault.target, duration=duration, **timing)
            elif kind == "pause":
                concrete = Pause(target=fault.target, duration=duration, **timing)
            else:
                offset = fault.max_clock_offset * (2.0 * float(portable.uniforms(rng, 1)[0]) - 1.0)
                concrete = ClockSkew(
                    target=fault.target, offset=offset, duration=duration, **timing
                )
            self._apply((i, state["instance"]), concrete, rng)

        def arrive() -> None:
            if self._stopped or self.engine.now >= until:
                return
            generate()
            self.engine.call_in(portable.exponential(rng, 1.0 / fault.rate), arrive)

        self.engine.call_in(portable.exponential(rng, 1.0 / fault.rate), arrive)
        if fault.chase > 0:
            # Whether and how long after each new leader: streams of their own.
            chase_rng = self.engine.stream(f"nemesis.random.{ident}.chase")
            delays = draws(fault.delay, self.engine.stream(f"nemesis.random.{ident}.delay"))

            def chase(cid: str, shard: int) -> None:
                now = self.engine.now
                if self._stopped or now >= until:
                    self.cluster.unwatch_leaders(fault.shard, chase)
                    return
                if float(portable.uniforms(chase_rng, 1)[0]) >= fault.chase:
                    return
                delay = next(delays)
                self.engine.call_in(delay, strike, now, delay)

            def strike(trigger: float, delay: float) -> None:
                if not self._stopped and self.engine.now < until:
                    generate(trigger, delay)

            self.cluster.watch_leaders(fault.shard, chase)

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
        for key, (shard, watcher, reason) in sorted(self._waiting.items(), key=lambda kv: kv[0]):
            if watcher is not None:
                self.cluster.unwatch_leaders(shard, watcher)
            self._record(key, self._fault_of(key).kind, "skipped", reason=reason)
        self._waiting.clear()
        ended = list(self.active)
        for key in ended:
            self.end(key)
        self._upgrades.clear()
        if self.workload is not None:
            self.workload.resume_all()
        for container in self.cluster.containers:
            container.reset_clock()
        restarted = [
            c.id for c in self.cluster.containers if not c.up and not c.starting and not c.removed
        ]
        for cid in restarted:
            self.cluster.restart(cid)
        self._record(
            None, "final", "apply", ended=[_key_repr(k) for k in ended], restarted=restarted
        )


class Autoscaler:
    """Adds and removes containers as a per-container metric moves, as a Kubernetes
    HorizontalPodAutoscaler does (see ``AutoscaleSpec``): a measurement every
    ``interval``, the HPA's desired count, a stabilization ``window`` and a ``cooldown``.
    Each measurement is kept (``samples``: time, value, desired count) for the summary."""

    def __init__(self, nemesis: Nemesis, spec) -> None:
        self.nemesis = nemesis
        self.spec = spec
        self.samples: list[tuple[float, float | None, int]] = []
        self.window: list[tuple[float, int]] = []
        self.began = 0.0
        self.last_request: float | None = None
        self.instance = 0
        self.counted: dict[str, int] = {}

    def schedule(self) -> None:
        self.nemesis.engine.call_in(self.spec.start, self._begin)

    def _begin(self) -> None:
        self.began = self.nemesis.engine.now
        self.counted = {c.id: c.requests for c in self.nemesis.cluster.containers}
        self.nemesis.engine.call_in(self.spec.interval, self._measure)

    def _measure(self) -> None:
        nemesis, spec = self.nemesis, self.spec
        if nemesis._stopped:
            return
        engine, cluster = nemesis.engine, nemesis.cluster
        now = engine.now
        values = []
        for container in cluster.containers:
            serving = container.up and not container.draining and not container.removed
            if not serving or cluster.shunned(container):
                continue
            if spec.metric == "request_rate":
                seen = container.requests - self.counted.get(container.id, 0)
                values.append(seen / spec.interval)
            else:
                values.append(float(container.queue_length()))
        self.counted = {c.id: c.requests for c in cluster.containers}
        current = len(cluster.staying())
        value = sum(values) / len(values) if values else None
        desired = current
        if value is not None and abs(value / spec.target - 1.0) > spec.tolerance:
            desired = math.ceil(current * value / spec.target)
        desired = max(spec.min, min(spec.max, desired))
        self.samples.append((now, value, desired))
        self.window = [(t, d) for t, d in self.window if t > now - spec.window - 1e-9]
        self.window.append((now, desired))
        engine.call_in(spec.interval, self._measure)
        if nemesis.actions:
            return  # one action at a time
        if self.last_request is not None and now - self.last_request < spec.cooldown:
            return
        if now - self.began < spec.window - 1e-9:
            return  # not measured for a whole window yet
        wanted = [d for _, d in self.window]
        if all(d > current for d in wanted):
            change = Scale(at=now, add=min(wanted) - current, image=spec.image)
        elif all(d < current for d in wanted):
            change = Scale(at=now, remove=current - max(wanted), drain_timeout=spec.drain_timeout)
        else:
            return
        self.instance += 1
        self.last_request = now
        nemesis._apply(("autoscale", self.instance), change)


def _key_repr(key: Key) -> Any:
    return list(key) if isinstance(key, tuple) else key


def _no_target(target: Any, alive: bool = False) -> str:
    names = [target] if isinstance(target, str) else list(target)
    if any(n in ROLE_TARGETS for n in names):
        return f"no live container had the role {'/'.join(ROLE_TARGETS)}"
    return "no live container to target" if alive else "no container to target"
