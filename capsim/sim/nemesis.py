"""The nemesis: applies a scenario's faults at their times and records what it did.

Targets are resolved when a fault fires (see :mod:`capsim.faults`), so ``primary`` means
whichever container is primary at that instant. Every action is recorded, with the
resolved containers, as a dict for ``faults.jsonl``:

``{"time": 12.0, "fault": 0, "kind": "partition", "event": "start", "targets": [...],
"groups": [[...], [...]], "spec": "Partition(at=12.0, ...)"}``

``event`` is ``start`` and later ``end`` for a fault that lasts (a partition until it
ends or is healed; a crash until its containers are ready again), ``apply`` for an
instant one (heal, restart), and ``skipped`` with a ``reason`` when a fault found no
target (no container had the role, say). The final phase appears as ``fault: null``.
"""

from __future__ import annotations

from typing import Any

from capsim.faults import (
    ROLE_TARGETS,
    Crash,
    Heal,
    Partition,
    Restart,
    partition_cuts,
    partition_groups,
)
from capsim.sim.cluster import Cluster
from capsim.sim.engine import Engine
from capsim.sim.network import Network

__all__ = ["Nemesis"]


class Nemesis:
    """Schedules and applies faults on a cluster and its network."""

    def __init__(self, engine: Engine, cluster: Cluster, network: Network, faults: tuple):
        self.engine = engine
        self.cluster = cluster
        self.network = network
        self.faults = faults
        self.records: list[dict[str, Any]] = []
        self.rng = engine.stream("nemesis")
        self._partitions: dict[int, list[tuple[int, int]]] = {}
        self._crash_pending: dict[int, set[str]] = {}
        self._crashed_by: dict[str, int | None] = {}
        self._handlers = {
            Partition: self._partition,
            Heal: self._heal,
            Crash: self._crash,
            Restart: self._restart,
        }
        cluster.on_event = self._cluster_event

    def schedule(self) -> None:
        """Schedule every fault of the scenario at its ``at``."""
        for i, fault in enumerate(self.faults):
            self.engine.call_in(fault.at, self._apply, i, fault)

    def _apply(self, i: int, fault: Any) -> None:
        self._handlers[type(fault)](i, fault)

    def _record(self, fault: int | None, kind: str, event: str, **extra: Any) -> dict:
        record = {"time": self.engine.now, "fault": fault, "kind": kind, "event": event}
        record.update(extra)
        if fault is not None and event in ("start", "apply", "skipped"):
            record["spec"] = repr(self.faults[fault])
        self.records.append(record)
        return record

    # -- targets ---------------------------------------------------------------------------

    def resolve(self, target: Any, shard: int = 0, *, up_only: bool = False) -> list[str]:
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
                found = [pool[int(self.rng.integers(len(pool)))]] if pool else []
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

    # -- faults ----------------------------------------------------------------------------

    def _partition(self, i: int, fault: Partition) -> None:
        ids = [c.id for c in self.cluster.containers]
        targets = None
        if fault.target is not None:
            targets = self.resolve(fault.target, fault.shard)
            if not targets:
                self._record(i, "partition", "skipped", reason=_no_target(fault.target))
                return
        groups = [self._expand(g) for g in fault.groups] if fault.groups else None
        try:
            resolved = partition_groups(
                fault.shape, ids, groups=groups, targets=targets, rng=self.rng
            )
        except ValueError as exc:
            self._record(i, "partition", "skipped", reason=str(exc))
            return
        cuts = partition_cuts(fault.shape, resolved)
        index = {cid: c.idx for cid, c in self.cluster.by_id.items()}
        pairs = sorted((index[a], index[b]) for a, b in cuts)
        self.network.add_cuts(pairs)
        self._partitions[i] = pairs
        self._record(
            i,
            "partition",
            "start",
            shape=fault.shape,
            targets=targets or [],
            groups=resolved,
            cuts=len(pairs),
        )
        if fault.duration is not None:
            self.engine.call_in(fault.duration, self._end_partition, i)

    def _end_partition(self, i: int) -> None:
        pairs = self._partitions.pop(i, None)
        if pairs is None:
            return  # healed already
        self.network.remove_cuts(pairs)
        self._record(i, "partition", "end")

    def _heal(self, i: int, fault: Heal | None) -> None:
        ended = sorted(self._partitions)
        for j in ended:
            self._end_partition(j)
        self._record(i, "heal", "apply", ended=ended)

    def _crash(self, i: int, fault: Crash) -> None:
        targets = [c for c in self.resolve(fault.target, fault.shard, up_only=True)]
        crashed = [c for c in targets if self.cluster.crash(c)]
        if not crashed:
            self._record(i, "crash", "skipped", reason=_no_target(fault.target, alive=True))
            return
        for cid in crashed:
            previous = self._crashed_by.get(cid)
            if previous is not None:
                self._release(previous, cid)
            self._crashed_by[cid] = i
        self._crash_pending[i] = set(crashed)
        self._record(i, "crash", "start", targets=crashed)
        if fault.duration is not None:
            self.engine.call_in(fault.duration, self._restart_after_crash, i, crashed)

    def _restart_after_crash(self, i: int, containers: list[str]) -> None:
        started = [c for c in containers if self.cluster.restart(c) is not None]
        if started:
            self._record(i, "crash", "restart", targets=started)

    def _restart(self, i: int, fault: Restart) -> None:
        targets = self.resolve(fault.target, fault.shard)
        started = [c for c in targets if self.cluster.restart(c) is not None]
        if not started:
            self._record(i, "restart", "skipped", reason="no target container was down")
            return
        self._record(i, "restart", "apply", targets=started)

    def _cluster_event(self, event: dict) -> None:
        if event["kind"] != "ready":
            return
        for cid in event["containers"]:
            fault = self._crashed_by.pop(cid, None)
            if fault is not None:
                self._release(fault, cid)

    def _release(self, fault: int, cid: str) -> None:
        """Crash ``fault`` no longer holds ``cid`` down; it ends when it holds none."""
        pending = self._crash_pending.get(fault)
        if pending is not None:
            pending.discard(cid)
            if not pending:
                del self._crash_pending[fault]
                self._record(fault, "crash", "end")

    # -- the final phase -------------------------------------------------------------------

    def heal_everything(self) -> None:
        """End every fault in force: partitions end, containers that are down restart."""
        ended = sorted(self._partitions)
        for j in ended:
            self._end_partition(j)
        restarted = [c.id for c in self.cluster.containers if not c.up and not c.starting]
        for cid in restarted:
            self.cluster.restart(cid)
        self._record(None, "final", "apply", ended=ended, restarted=restarted)


def _no_target(target: Any, alive: bool = False) -> str:
    names = [target] if isinstance(target, str) else list(target)
    if any(n in ROLE_TARGETS for n in names):
        return f"no live container had the role {'/'.join(ROLE_TARGETS)}"
    return "no live container to target" if alive else "no container to target"
