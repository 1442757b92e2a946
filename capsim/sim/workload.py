"""Clients and their workloads: operations invoked, routed, retried, timed out, recorded.

A client lives in a zone and is attached to a *home* container, its entry point: it
shares that container's side of any partition (its messages leave from there). It sends
an operation where the policy's ``route`` says; by default to the container where the
last operation on the same shard succeeded (a leader hint), else to its home container
when that holds a replica of the key's shard, otherwise to the shard's first member in its
zone (else the shard's first member). A definite failure or a timeout forgets the hint.
A node may redirect it elsewhere; it follows up to 8 redirects.

Outcomes follow Jepsen: ``ok`` took effect; ``fail`` certainly did not (the node said so,
or the container refused the connection); ``info`` when ``timeout`` passes while an
attempt is unanswered (it may still take effect). With ``retries``, a definite failure
other than a CAS ``mismatch`` is retried after a back-off, within the same timeout and
with the same request id.

A logical client thread (``process``) has at most one operation open; after an ``info``
its process id is retired and a fresh one used, because the old operation may still be
pending. Written values are unique per key (1, 2, 3, ...), so a read names the write it
saw.
"""

from __future__ import annotations

from collections import deque
from itertools import chain
from typing import Any

import numpy as np

from capsim import portable
from capsim.distributions import choose, cumulative
from capsim.errors import PolicyError
from capsim.history import ADD, CAS, FAIL, INFO, INVOKE, OK, READ, WRITE, History
from capsim.scenario import Scenario, WorkloadSpec
from capsim.sim.cluster import Cluster, Container
from capsim.sim.engine import Engine
from capsim.sim.network import CLIENT, Message, Network
from capsim.sim.node import Node, Request

__all__ = ["Workload", "Client"]

_F_NAMES = ("read", "write", "cas", "add")
_F_CODES = {"read": READ, "write": WRITE, "cas": CAS, "add": ADD}
MAX_REDIRECTS = 8


class Client:
    """A client: a zone, a home container, and the processes it runs."""

    __slots__ = (
        "id",
        "zone",
        "home",
        "network",
        "code",
        "zone_code",
        "idle",
        "last_seen",
        "draws",
        "on_reply",
        "hints",
        "script",
        "busy",
        "version",
        "index",
    )

    def __repr__(self) -> str:
        return f"Client({self.id!r}, zone={self.zone!r}, home={self.home.id!r})"


class _Op:
    """An operation in flight."""

    __slots__ = (
        "client",
        "process",
        "f",
        "key",
        "key_code",
        "value",
        "recorded",
        "id",
        "shard",
        "sends",  # attempts sent; the latest is the one whose reply counts
        "target",
        "outstanding",
        "error",
        "redirects",
        "retries",
        "final",
        "side",
        "done",
        "max_retries",
        "deadline",
        "to",
        "home",
        "hint_key",
    )


class Workload:
    """Generates the client workload of a scenario and records its history."""

    def __init__(
        self,
        engine: Engine,
        scenario: Scenario,
        cluster: Cluster,
        network: Network,
        history: History,
    ):
        self.engine = engine
        self._env = engine.env  # its clock, _now, is read on every operation
        self.spec: WorkloadSpec = scenario.workload
        self.duration = scenario.duration
        self.cluster = cluster
        self.network = network
        self.history = history
        self.placement = cluster.placement
        spec = self.spec
        self.set_mode = spec.data_kind == "set"
        self.scripted = spec.kind == "script"
        self._open_loop = spec.mode == "open"
        if self.scripted:
            # The script's keys, in order of first use.
            self.keys = list(dict.fromkeys(op.key for op in spec.ops))
        else:
            self.keys = [f"k{i}" for i in range(spec.keys)]
        self._key_index = {key: i for i, key in enumerate(self.keys)}
        self.key_codes = [history.keys.code(k) for k in self.keys]
        self.key_shard = [self.placement.shard_of(k) for k in self.keys]
        self.next_value = [0] * len(self.keys)
        for c in cluster.containers:
            history.nodes.code(c.id)
        self.node_code = {c.id: history.nodes.code(c.id) for c in cluster.containers}
        self._replica_idx = [
            [cluster.by_id[r].idx for r in group] for group in self.placement.replicas
        ]
        self._side_cache: dict[tuple[int, int], int] = {}
        self._side_version = -1
        self._routes: dict[tuple, tuple[Container, Any, bool]] = {}
        self._routes_version = -1
        policy = cluster.policy
        self._route_hook = None if policy.route.__func__ is Node.route.__func__ else policy.route
        # Operations by deadline: the timeout is the same for all, so invocation order is
        # deadline order, and one scheduled check at the earliest deadline serves them all
        # (an operation answered in time costs no event).
        self._deadlines: deque[_Op] = deque()
        self._checking = False
        self._next_process = 0
        self._next_op = 0
        self.clients = self._make_clients(scenario)
        if spec.key_distribution == "zipf":
            ranks = np.arange(1, spec.keys + 1, dtype=np.float64)
            weights = portable.exp(-spec.zipf_s * portable.log(ranks))  # 1 / rank ** s
            self._key_cdf = np.asarray(cumulative(weights.tolist()))
        else:
            self._key_cdf = None
        self.final_ops: list[_Op] = []
        # A/B traffic: the versions, their cumulative shares, and each invocation's version
        # (-1 for none), in invocation order (the order of history's operations).
        traffic = scenario.traffic
        self.ab_versions: list[str] = list(traffic.split) if traffic is not None else []
        self._ab_cdf = cumulative(list(traffic.split.values())) if traffic is not None else None
        self._ab_by_client = traffic is not None and traffic.by == "client"
        self.op_versions: list[int] = []
        self._ab_index = {ref: i for i, ref in enumerate(self.ab_versions)}
        self._ab_entries: dict[tuple[int, str], list[Container]] = {}
        self._ab_built = -1.0
        self.suspended: set[str] = set()
        self._parked: list[tuple[Client, int]] = []

    # -- clients -----------------------------------------------------------------------------

    def _make_clients(self, scenario: Scenario) -> list[Client]:
        spec = self.spec
        groups: list[tuple[str, int, str | None]] = []
        if spec.clients is not None:
            groups = [(g.zone, g.count, g.home) for g in spec.clients]
        else:
            groups = [
                (zone, spec.clients_per_zone, None)
                for zone in scenario.cluster.zones
                if self.cluster.zones[zone]
            ]
        clients = []
        for zone, count, home in groups:
            in_zone = self.cluster.zones[zone]
            for j in range(count):
                container = self.cluster.by_id[home] if home else in_zone[j % len(in_zone)]
                clients.append(self._client(f"c{len(clients) + 1}", zone, container))
        return clients

    def _client(self, cid: str, zone: str, home: Container) -> Client:
        client = Client()
        client.id = cid
        client.zone = zone
        client.home = home
        client.network = self.network
        client.code = self.history.clients.code(cid)
        client.zone_code = self.history.zones.code(zone)
        client.idle = []
        client.last_seen = {}
        client.draws = None
        client.on_reply = self._on_reply
        client.hints = {}
        client.script = None
        client.busy = False
        client.version = -1
        client.index = 0  # its position among the clients, set by start()
        return client

    def start(self) -> None:
        """Schedule every client's first operation."""
        spec = self.spec
        for i, client in enumerate(self.clients):
            client.index = i
        if self._ab_cdf is not None:
            self._ab_streams = {c.id: self.engine.stream(f"traffic.{c.id}") for c in self.clients}
            if self._ab_by_client:
                for client in self.clients:
                    client.version = self._ab_draw(client)
        if self.scripted:
            self._start_script()
            return
        for client in self.clients:
            client.draws = self._draws(client.id)
            if spec.mode == "open":
                gap = next(client.draws)[0]
                self.engine.call_in(spec.start + gap, self._arrival, client)
            else:
                for _ in range(spec.processes):
                    self.engine.call_in(spec.start, self._loop, client, self._new_process())

    # -- A/B traffic -------------------------------------------------------------------------

    def _ab_draw(self, client: Client) -> int:
        """A version for ``client`` by the split's shares, from the client's own stream."""
        u = float(portable.uniforms(self._ab_streams[client.id], 1)[0])
        return int(choose(self._ab_cdf, np.array([u]))[0])

    def _ab_entry(self, client: Client, version: int) -> Container:
        """The container an operation of ``version`` enters by: one running that version
        in the client's zone (the same one for the same client), else anywhere, else the
        client's home. The candidates are those up when last listed (every 0.5 s)."""
        now = self._env._now
        if now - self._ab_built >= 0.5:
            self._ab_entries.clear()
            self._ab_built = now
        ref = self.ab_versions[version]
        key = (version, client.zone)
        found = self._ab_entries.get(key)
        if found is None:
            running = [
                c
                for c in self.cluster.containers
                if c.image.ref == ref and not c.removed and not c.draining
            ]
            up = [c for c in running if c.up] or running
            found = [c for c in up if c.zone == client.zone] or up
            self._ab_entries[key] = found
        if not found:
            return client.home
        entry = found[client.index % len(found)]
        if entry.image.ref != ref:  # restarted onto another image since it was listed
            self._ab_built = -1.0
            return self._ab_entry(client, version)
        return entry

    # -- a scripted workload -------------------------------------------------------------------

    def _start_script(self) -> None:
        """Schedule each scripted operation at its time, for its client."""
        for client in self.clients:
            client.script = deque()
        for op in self.spec.ops:
            self.engine.call_in(op.at, self._script_due, self.clients[op.client], op)

    def _script_due(self, client: Client, op) -> None:
        client.script.append(op)
        if not client.busy:
            self._script_next(client)

    def _script_next(self, client: Client) -> None:
        """Invoke the client's next due scripted operation, if it has one and is free."""
        if not client.script or client.busy or self._env._now >= self.duration:
            return
        if client.zone in self.suspended:
            self._parked.append((client, None))
            return
        op = client.script.popleft()
        f = _F_CODES[op.f]
        value = tuple(op.value) if f == CAS else op.value
        client.busy = True
        self._invoke(
            client, self._new_process(), f, self._key_index[op.key], final=False, value=value
        )

    def _draws(self, name: str):
        """Endless (gap, op choice, key index) triples for one client, drawn in blocks
        (``next`` on it runs no Python code but once a block)."""
        return chain.from_iterable(self._blocks(name))

    def _blocks(self, name: str):
        spec = self.spec
        rng = self.engine.stream(f"workload.{name}")
        mean_gap = 1.0 / spec.rate
        n_keys = spec.keys
        cdf = self._key_cdf
        block = 1024
        while True:
            gaps = portable.exponentials(rng, mean_gap, block)
            choice = portable.uniforms(rng, block)
            if cdf is None:
                keys = rng.integers(0, n_keys, block)
            else:
                keys = choose(cdf, portable.uniforms(rng, block))
            yield zip(gaps.tolist(), choice.tolist(), keys.tolist(), strict=True)

    def _new_process(self) -> int:
        p = self._next_process
        self._next_process += 1
        return p

    def _arrival(self, client: Client) -> None:
        if self._env._now >= self.duration:
            return
        gap, choice, key = next(client.draws)
        if client.zone not in self.suspended:
            process = client.idle.pop() if client.idle else self._new_process()
            self._invoke(client, process, self._choose(choice), key, False)
        self.engine.call_in(gap, self._arrival, client)

    def _loop(self, client: Client, process: int) -> None:
        if self._env._now >= self.duration:
            return
        if client.zone in self.suspended:
            self._parked.append((client, process))
            return
        _, choice, key = next(client.draws)
        self._invoke(client, process, self._choose(choice), key, final=False)

    # -- zone outages ------------------------------------------------------------------------

    def suspend_zone(self, zone: str) -> None:
        """The zone's clients go down: they invoke nothing until :meth:`resume_zone`."""
        self.suspended.add(zone)

    def resume_zone(self, zone: str) -> None:
        """The zone's clients come back (closed-loop processes carry on at once)."""
        self.suspended.discard(zone)
        parked, self._parked = self._parked, []
        for client, process in parked:
            if client.zone == zone and process is None:
                self.engine.call_in(0.0, self._script_next, client)
            elif client.zone == zone:
                self.engine.call_in(0.0, self._loop, client, process)
            else:
                self._parked.append((client, process))

    def resume_all(self) -> None:
        for zone in sorted(self.suspended):
            self.resume_zone(zone)

    def _choose(self, r: float) -> int:
        spec = self.spec
        if r < spec.read_fraction:
            return READ
        if self.set_mode:
            return ADD
        if r < spec.read_fraction + spec.cas_fraction:
            return CAS
        return WRITE

    # -- one operation -----------------------------------------------------------------------

    def _invoke(
        self, client: Client, process: int, f: int, key_index: int, final: bool, value=None
    ) -> _Op:
        op = _Op()
        op.client = client
        op.process = process
        op.f = f
        key = self.keys[key_index]
        op.key = key
        op.key_code = self.key_codes[key_index]
        shard = self.key_shard[key_index]
        op.shard = shard
        if f == READ or value is not None:
            pass  # a read, or a scripted write with its own value
        elif f == CAS:
            self.next_value[key_index] += 1
            value = (client.last_seen.get(key), self.next_value[key_index])
        else:
            self.next_value[key_index] += 1
            value = self.next_value[key_index]
        op.value = value
        op.recorded = list(value) if f == CAS else value  # as the history holds it
        self._next_op += 1
        op.id = self._next_op
        op.outstanding = False
        op.error = None
        op.redirects = 0
        op.retries = 0
        op.sends = 0
        attempts = self.spec.retries.attempts
        op.max_retries = max(attempts, 5) if final else attempts
        op.final = final
        op.done = False
        home = client.home
        op.hint_key = shard
        if self._ab_cdf is not None:
            if final:
                self.op_versions.append(-1)
            else:
                version = client.version if self._ab_by_client else self._ab_draw(client)
                home = self._ab_entry(client, version)
                # Measured by the version that took it: the one drawn, unless no container
                # ran it and it entered by the client's home.
                ref = home.image.ref
                served = self._ab_index.get(ref)
                if served is None:
                    served = self._ab_index[ref] = len(self.ab_versions)
                    self.ab_versions.append(ref)
                self.op_versions.append(served)
                op.hint_key = (shard, served)
        op.home = home
        op.side = self._side(home.idx, shard) if self.network.partitions else 0
        target, op.to = self._route(client, op)
        self.history.append_codes(
            process,
            INVOKE,
            f,
            op.key_code,
            op.recorded,
            self._env._now,
            client.code,
            client.zone_code,
            self.node_code[target.id],
            shard,
            final,
            op.side,
        )
        timeout = self.spec.timeout
        op.deadline = self._env._now + timeout
        self._deadlines.append(op)
        if not self._checking:
            self._checking = True
            self.engine.call_in(timeout, self._expire)
        self._send(op, target)
        return op

    def _expire(self) -> None:
        """Time out every operation whose deadline has come; wait for the next deadline."""
        now = self._env._now
        deadlines = self._deadlines
        while deadlines and (deadlines[0].done or deadlines[0].deadline <= now):
            op = deadlines.popleft()
            if not op.done:
                self._timeout(op)
        if deadlines:
            self.engine.call_in(deadlines[0].deadline - now, self._expire)
        else:
            self._checking = False

    def _send(self, op: _Op, target: Container) -> None:
        req = Request()
        req.op = _F_NAMES[op.f]
        req.key = op.key
        req.value = op.value
        req.id = op.id
        req.shard = op.shard
        req.client = op.client.id
        req.attempt = op.retries + 1
        req._client = op.client
        req._f = op
        req._answered = None
        op.sends += 1
        req._seq = op.sends
        op.target = target
        op.outstanding = True
        target.requests += 1  # the autoscaler's request rate
        net = self.network
        net.send(op.client.id, target.id, CLIENT, req, op.to, None, op.home, target)

    def _on_reply(self, msg: Message) -> None:
        req, outcome, value = msg.body
        op: _Op = req._f
        if op.done or not op.outstanding or req._seq != op.sends:
            return  # a reply to an attempt already answered or given up on
        if self._env._now >= op.deadline:
            self._timeout(op)  # due at this very instant: the timeout comes first
            return
        op.outstanding = False
        if outcome == "ok":
            op.client.hints[op.hint_key] = msg._src_c
            if op.f == READ:
                out = sorted(value or ()) if self.set_mode else value
                self._complete(op, OK, out, msg.src, None)
            else:
                self._complete(op, OK, op.recorded, msg.src, None)
        elif outcome == "redirect":
            target = self.cluster.by_id.get(value) if isinstance(value, str) else None
            op.redirects += 1
            if target is None:
                self._failed(op, f"bad-redirect:{value!r}", msg.src)
            elif op.redirects > MAX_REDIRECTS:
                self._failed(op, "redirect-loop", msg.src)
            else:
                op.to = op.shard
                self._send(op, target)
        elif outcome == "info":
            op.client.hints.pop(op.hint_key, None)
            self._complete(op, INFO, op.recorded, msg.src, str(value))
        else:
            if value != "mismatch":
                op.client.hints.pop(op.hint_key, None)
            else:
                op.client.hints[op.hint_key] = msg._src_c
            self._failed(op, str(value), msg.src)

    def _failed(self, op: _Op, error: str, node: str) -> None:
        op.error = error
        if error == "mismatch" or op.retries >= op.max_retries:
            self._complete(op, FAIL, op.recorded, node, error)
            return
        retry = self.spec.retries
        op.retries += 1
        # backoff * multiplier ** (retries - 1), capped, by multiplication: no pow (whose
        # last bit may differ between machines) and no overflow on long retry chains.
        backoff = min(retry.backoff, retry.max_backoff)
        for _ in range(op.retries - 1):
            backoff = min(backoff * retry.multiplier, retry.max_backoff)
        self.engine.call_in(backoff, self._retry, op)

    def _retry(self, op: _Op) -> None:
        if not op.done:
            if self._env._now >= op.deadline:
                self._timeout(op)  # due at this very instant: the timeout comes first
                return
            op.redirects = 0
            target, op.to = self._route(op.client, op)
            self._send(op, target)

    def _timeout(self, op: _Op) -> None:
        if op.done:
            return
        op.client.hints.pop(op.hint_key, None)
        if op.outstanding:
            self._complete(op, INFO, op.recorded, op.target.id, "timeout")
        else:
            self._complete(op, FAIL, op.recorded, op.target.id, op.error)

    def _complete(self, op: _Op, type_: int, value: Any, node: str, error: str | None) -> None:
        op.done = True
        client = op.client
        self.history.append_codes(
            op.process,
            type_,
            op.f,
            op.key_code,
            value,
            self._env._now,
            client.code,
            client.zone_code,
            self.node_code[node],
            op.shard,
            op.final,
            op.side,
            error,
        )
        if op.final:
            return
        if type_ == OK and not self.set_mode:
            client.last_seen[op.key] = value[1] if op.f == CAS else value
        if self.scripted:
            client.busy = False
            self._script_next(client)
        elif self._open_loop:
            if type_ != INFO:
                client.idle.append(op.process)
        else:
            process = op.process if type_ != INFO else self._new_process()
            self.engine.call_in(self.spec.think_time, self._loop, client, process)

    # -- routing and sides -------------------------------------------------------------------

    def _route(self, client: Client, op: _Op) -> tuple[Container, Any]:
        """Where ``op`` goes first, and the key of the node there (its shard, or a service):
        the policy's ``route``, else the shard's last success (the hint), else the default
        rule (see the module docstring)."""
        cluster = self.cluster
        if cluster.members_version != self._routes_version:
            self._routes.clear()
            self._routes_version = cluster.members_version
        home, shard = op.home, op.shard
        # The image is in the key: a rolling upgrade may change the parameters route() reads
        # (by identity: images are the scenario's, alive for the run).
        cache = (home.idx, id(home.image), shard, op.f)
        found = self._routes.get(cache)
        if found is None:
            found = self._routes[cache] = self._decide(home, shard, op.f)
        target, key, hinted = found
        if hinted:
            hint = client.hints.get(op.hint_key)
            if hint is not None:
                return hint, shard
        return target, key

    def _decide(self, home: Container, shard: int, f: int) -> tuple[Container, Any, bool]:
        """(container, key, whether a hint may override) for requests ``f`` on ``shard``
        from clients homed on ``home``."""
        cluster = self.cluster
        members = cluster.members[shard]
        if self._route_hook is not None:
            try:
                chosen = self._route_hook(
                    _F_NAMES[f], members, home.id, cluster.params_for(home.image)
                )
                if chosen is not None:
                    cid = chosen[0] if isinstance(chosen, tuple) else chosen
                    if not (isinstance(cid, str) and cid in cluster.by_id):
                        raise ValueError(f"route() named no container: {chosen!r}")
            except Exception as exc:
                raise PolicyError(
                    policy=cluster.policy_name,
                    time=self._env._now,
                    container=home.id,
                    shard=shard,
                    handling=f"route({_F_NAMES[f]!r}, {members!r}, {home.id!r}, params)",
                    exc=exc,
                ) from exc
            if chosen is not None:
                if isinstance(chosen, tuple):
                    cid, service = chosen
                    return self._container(cid), service, False
                return self._container(chosen), shard, False
        members = self._routable(members)
        if home.id in members:
            return home, shard, True
        same_zone = [r for r in members if cluster.by_id[r].zone == home.zone]
        return cluster.by_id[(same_zone or list(members))[0]], shard, True

    def _container(self, cid: str) -> Container:
        return self.cluster.by_id[cid]

    def _side(self, home: int, shard: int) -> int:
        """1 if ``home`` exchanges messages both ways with a strict majority of the shard's
        replicas, 2 if not, 0 when no partition is in force."""
        net = self.network
        if not net.partitions:
            return 0
        if net.cut_version != self._side_version:
            self._side_cache.clear()
            self._side_version = net.cut_version
        key = (home, shard)
        side = self._side_cache.get(key)
        if side is None:
            reachable = net.reachable
            replicas = self._replica_idx[shard]
            reach = sum(
                1 for r in replicas if r == home or (reachable(home, r) and reachable(r, home))
            )
            side = self._side_cache[key] = 1 if 2 * reach > len(replicas) else 2
        return side

    # -- containers that come and go ----------------------------------------------------------

    def _routable(self, members: tuple[str, ...]) -> tuple[str, ...]:
        """``members`` without those whose replicas say they are not ready (all of them if
        none is ready: a client must try somewhere)."""
        cluster = self.cluster
        ready = tuple(m for m in members if not cluster.shunned(cluster.by_id[m]))
        return ready or members

    def containers_changed(self) -> None:
        """A scale action added, drained or removed containers: follow the new placement,
        and move clients off containers that are leaving and spread each zone's clients
        over its containers again (round-robin, as at the start, over those in the cluster,
        not draining and started; a client given a ``home`` keeps it while it stays). A
        client whose home changes forgets its leader hints, as a new connection would."""
        cluster = self.cluster
        self.placement = cluster.placement
        for container in cluster.containers:
            if container.id not in self.node_code:
                self.node_code[container.id] = self.history.nodes.code(container.id)
        self._replica_idx = [
            [cluster.by_id[r].idx for r in group] for group in self.placement.replicas
        ]
        self._side_version = -1
        self._routes_version = -1
        initial = len(cluster.initial_placement.containers)

        def usable(c: Container) -> bool:
            return not (c.removed or c.draining) and (c.idx < initial or c.ready_at is not None)

        spec = self.spec
        pinned: list[str | None] = []
        for group in spec.clients or ():
            pinned += [group.home] * group.count
        anywhere = [c for c in cluster.containers if usable(c)]
        if not anywhere:
            return
        seen: dict[str, int] = {}
        for i, client in enumerate(self.clients):
            pin = pinned[i] if i < len(pinned) else None
            if pin is not None and usable(cluster.by_id[pin]):
                client.home = cluster.by_id[pin]
                continue
            in_zone = [c for c in cluster.zones.get(client.zone, ()) if usable(c)] or anywhere
            j = seen.get(client.zone, 0)
            seen[client.zone] = j + 1
            home = in_zone[j % len(in_zone)]
            if home is not client.home:
                client.home = home
                client.hints = {}  # a new entry point: a new connection, no leader hints

    # -- the final phase ---------------------------------------------------------------------

    def final_reads(self) -> None:
        """Read every key from each of its shard's replicas: a client homed on each replica
        container reads the keys whose shards it holds, each read its own process."""
        keys_of: dict[str, list[int]] = {}
        for key_index, shard in enumerate(self.key_shard):
            for cid in self.placement.replicas[shard]:
                keys_of.setdefault(cid, []).append(key_index)
        for container in self.cluster.containers:
            indices = keys_of.get(container.id)
            if not indices:
                continue
            client = self._client(f"final-{container.id}", container.zone, container)
            for key_index in indices:
                op = self._invoke(client, self._new_process(), READ, key_index, final=True)
                self.final_ops.append(op)
