"""The node API: the base class of every replication policy, built-in or your own.

A policy is a subclass of :class:`Node`. capsim creates one instance per replica: per
container and shard. The instance is the replica's *volatile* state: a crash throws it
away, and a restart builds a new instance and calls :meth:`Node.on_start` again. Only
``self.durable`` survives a crash. Everything a node does happens in callbacks, at instants
of simulated time:

* :meth:`on_start`: at boot and after every restart. Set up state and timers here.
* :meth:`on_message`: a message from another node.
* :meth:`on_client`: a client's request; answer it with :meth:`ok`, :meth:`fail` or
  :meth:`redirect`, now or later. Leave it unanswered and the client times out.

To act, a node calls :meth:`send`, :meth:`broadcast`, :meth:`rpc` (request and response,
with or without a timeout), :meth:`reply`, :meth:`set_timer` (a :class:`Timer` can be
cancelled or reset), :meth:`sync`, :meth:`now` (its own clock, which clock faults shift;
:meth:`monotonic` runs at its rate but never jumps) and :meth:`log` (a line in the run's
``node.log``). It reads its shard's current membership as :attr:`peers` and may change it
with :meth:`set_members`. Measurement and invariant checks read a replica without sending
messages, through :attr:`role`, :attr:`term`, :meth:`value_of` and :meth:`applied_log`:
keep them current and free of side effects.

Addressing. A message goes to a container and, on it, to one node: by default the
replica of the sender's own shard; ``send(dst, kind, body, shard=k)`` reaches shard
``k``'s replica there, ``service=name`` a *service*. A policy lists its services in
``services = {"name": ServiceClass}``: each container runs one instance of each (a
:class:`Node` subclass with ``shard`` ``None`` and ``service`` its name), started and
crashed with the container, for work that belongs to a container rather than to a shard
(a configuration manager, a hint store for hinted handoff, a coordinator that holds no
replica). A message to a container that has no such replica or service is dropped and
counted (reason ``no-replica``).

Clients. A client sends a request to the container :meth:`route` names (by default its
home container if that holds a replica of the key's shard, else the shard's first
member in its zone, else its first member), follows redirects, and remembers where a
request of that shard last succeeded (a leader hint, as etcd and MongoDB drivers keep)
so that the next one goes there first; a definite failure or a timeout there forgets it.

Mistakes in a policy are reported, not swallowed: an exception raised by any callback,
a message sent to a container that does not exist, a request answered twice or a timer
set for a negative or infinite delay stops the run with one report naming the simulated
time, the container, the shard, what was being handled and the policy's own frames
(``capsim run`` exits with status 1 and still writes ``--out``; :func:`capsim.run` raises
:class:`~capsim.errors.PolicyError`). capsim keeps its own per-replica bookkeeping out of
the policy's namespace, so a policy may name its attributes as it likes (``self.pending``,
``self._alive``, ...) without breaking :meth:`rpc` or the timers.

Containers that come and go. A ``scale`` action (or the autoscaler) changes the
containers, and with them the placement: :meth:`hosts` then names the containers that
should hold the shard, and :meth:`on_hosts_changed` is called on every live replica of a
shard whose hosts changed. A new host's replica starts (``on_start``) with empty durable
state and outside the membership; the policy moves the data it needs, as messages, and
changes the membership with :meth:`set_members` its own way. A replica whose container
is leaving, or whose shard moved elsewhere, is drained: it keeps running until the
membership no longer names it, then capsim stops it (its state is gone with it). A
policy that does not override :meth:`on_hosts_changed` gets the new hosts as members at
once, and moves nothing. A replica may say it is not ready for clients
(:meth:`set_ready`): clients' default routing and role targets pass it by until it says
it is (say, a new replica catching up).

A minimal policy, a single register on the first replica::

    class Solo(capsim.Node):
        def on_start(self):
            self.data = self.durable.setdefault("data", {})

        def on_client(self, req):
            if self.id != self.peers[0]:
                return self.redirect(req, self.peers[0])
            if req.op == "read":
                self.ok(req, self.data.get(req.key))
            else:
                self.data = {**self.data, req.key: req.value}
                self.durable["data"] = self.data
                self.ok(req, req.value)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from heapq import heappush
from operator import attrgetter
from typing import Any, ClassVar

from capsim.errors import PolicyError
from capsim.sim.engine import NORMAL
from capsim.sim.network import CLIENT, CLIENT_REPLY, Message
from capsim.sim.storage import Durable, DurableLog

__all__ = [
    "Node",
    "Request",
    "Timer",
    "Durable",
    "DurableLog",
    "Message",
    "Runtime",
    "RPC_FORGET_S",
]

#: An rpc without a timeout is forgotten this many simulated seconds after it was sent
#: (a later reply goes to ``on_message``), so unanswered rpcs never pile up.
RPC_FORGET_S = 60.0


class Request:
    """A client's operation as a node sees it.

    ``op`` is ``"read"``, ``"write"``, ``"cas"`` or ``"add"``; ``key`` a string; ``value``
    the value to write, the element to add, or for ``cas`` a tuple ``(expected, new)``.
    ``id`` identifies the operation and stays the same when the client retries it, so a
    policy can apply a retried write once (each attempt is a new ``Request``, answered
    once; ``attempt`` counts them from 1). ``shard`` is the key's shard and ``client`` the
    client's name. The network never duplicates a client's request.
    """

    __slots__ = (
        "op",
        "key",
        "value",
        "id",
        "shard",
        "client",
        "attempt",
        "_client",
        "_f",
        "_answered",
        "_seq",
    )

    @property
    def answered(self) -> str | None:
        """How this request was answered (``"ok"``, ``"fail"``, ``"info"``,
        ``"redirect"``), or ``None`` if not yet: a policy that hands a request from node
        to node can tell whether another node answered it already."""
        return self._answered

    def __repr__(self) -> str:
        return f"Request(id={self.id}, op={self.op!r}, key={self.key!r}, value={self.value!r})"


class Timer:
    """A pending call: :meth:`cancel` stops it, :meth:`reset` moves it."""

    __slots__ = ("rt", "fn", "args", "delay", "cancelled", "_due")

    def cancel(self) -> None:
        """Stop the timer (a no-op if it has fired already)."""
        self.cancelled = True

    def reset(self, delay: float | None = None) -> None:
        """Fire ``delay`` seconds of the node's clock from now (default: the delay it was
        set with) instead of when it was due, whether it is pending, cancelled or has
        fired already (an election timeout pushed back by every heartbeat)."""
        if delay is None:
            delay = self.delay
        _check_delay(delay, "Timer.reset")
        rt = self.rt
        if not rt.alive:
            return
        self.delay = delay
        self.cancelled = False
        rt.arm(self, rt.container.real_delay(delay))


class _Due:
    """A timer's scheduled instant on SimPy's queue (a reset leaves the old one inert)."""

    __slots__ = ("timer",)
    _ok = True


def _fire(due: _Due) -> None:
    timer = due.timer
    if timer._due is not due:
        return  # reset since
    if timer.cancelled:
        timer._due = None  # no cycle left for the garbage collector
        return
    rt = timer.rt
    if not rt.alive:
        return
    container = rt.container
    if container.paused:
        container.defer(due)
        return
    timer._due = None
    rt.call(timer.fn, timer.args, timer)


_Due.callbacks = (_fire,)  # what Engine.run calls when one comes due


def _check_delay(delay: Any, where: str) -> None:
    if not (isinstance(delay, int | float) and math.isfinite(delay) and delay >= 0):
        raise ValueError(f"{where}: the delay must be a finite number >= 0, got {delay!r}")


class Runtime:
    """capsim's side of one node: where it lives, its timers and pending rpcs.

    Kept apart from the :class:`Node` instance (a policy sees only the node), so that no
    attribute a policy chooses can break the framework.
    """

    __slots__ = (
        "node",
        "id",
        "key",
        "shard",
        "service",
        "container",
        "cluster",
        "net",
        "engine",
        "containers",
        "alive",
        "pending",
        "forget",
        "policy",
        "ready",
    )

    def dispatch(self, msg: Message) -> None:
        """Hand ``msg`` to the policy: a client request, an rpc reply or a message."""
        node = self.node
        try:
            if msg.kind == CLIENT:
                node.on_client(msg.body)
                return
            reply_to = msg.reply_to
            if reply_to is not None:
                pending = self.pending.pop(reply_to, None)
                if pending is not None:
                    on_reply, timer, _ = pending
                    if timer is not None:
                        timer.cancelled = True
                    on_reply(msg)
                    return
            node.on_message(msg)
        except PolicyError:
            raise
        except Exception as exc:
            raise self.failure(exc, msg) from exc

    def call(self, fn: Callable[..., None], args: tuple, what: Any) -> None:
        """Call a policy's callback (a timer, a sync's continuation), reporting failures."""
        try:
            fn(*args)
        except PolicyError:
            raise
        except Exception as exc:
            raise self.failure(exc, what) from exc

    def start(self) -> None:
        self.call(self.node.on_start, (), "on_start")

    def rpc_timeout(self, msg_id: int) -> None:
        pending = self.pending.pop(msg_id, None)
        if pending is not None and pending[2] is not None:
            pending[2]()

    def forget_old_rpcs(self) -> None:
        """Drop rpcs without a timeout sent more than ``RPC_FORGET_S`` ago."""
        forget, now = self.forget, self.engine.now
        while forget and forget[0][0] <= now:
            self.pending.pop(forget.popleft()[1], None)

    def failure(self, exc: BaseException, what: Any) -> PolicyError:
        """A :class:`PolicyError` for ``exc`` raised while handling ``what``."""
        return PolicyError(
            policy=self.policy,
            time=self.engine.now,
            container=self.id,
            shard=self.shard if self.service is None else self.service,
            handling=_describe(what),
            exc=exc,
        )

    def answer(self, req: Request, outcome: str, value: Any) -> None:
        if not self.alive:
            return
        if req._answered is not None:
            raise RuntimeError(
                f"request {req.id} ({req.op} {req.key!r}) was already answered "
                f"({req._answered}); answer each request once"
            )
        req._answered = outcome
        client = req._client
        self.net.send(
            self.id,
            client.id,
            CLIENT_REPLY,
            (req, outcome, value),
            -1,
            None,
            self.container,
            client.home,
            client,
            self.key,
        )

    def timer(self, fn: Callable[..., None], args: tuple, delay: float) -> Timer:
        """A new, unarmed timer calling ``fn(*args)``."""
        timer = Timer()
        timer.rt = self
        timer.fn = fn
        timer.args = args
        timer.delay = delay
        timer.cancelled = False
        timer._due = None
        return timer

    def schedule(self, real_delay: float, fn: Callable[..., None], args: tuple, delay) -> Timer:
        timer = self.timer(fn, args, delay)
        self.arm(timer, real_delay)
        return timer

    def due(self, timer: Timer) -> _Due:
        """``timer``'s new instant (an older one goes inert)."""
        due = _Due()
        due.timer = timer
        timer._due = due
        return due

    def arm(self, timer: Timer, real_delay: float) -> None:
        """Put ``timer`` on the queue ``real_delay`` simulated seconds from now."""
        engine = self.engine
        engine.events += 1
        env = engine.env
        # Environment.schedule, inlined: the same queue entry.
        heappush(env._queue, (env._now + real_delay, NORMAL, next(env._eid), self.due(timer)))

    def later(self, fn: Callable[..., None], args: tuple) -> _Due:
        """A call held while the container is paused, run on resume."""
        return self.due(self.timer(fn, args, 0.0))

    def disk_done(self, mark, fn, args) -> None:
        """A sync completed on the disk: the writes are durable now, even if the container
        is paused (a stopped process does not stop its disk); the policy hears of it when
        it runs again. A crash before this instant loses both."""
        if not self.alive:
            return
        if not self.container.disk.lies:
            self.node.durable.persist(mark)
        if self.container.paused:
            self.container.defer(self.later(fn, args))
        else:
            self.call(fn, args, _SyncDone(fn, args))

    def target(self, dst: Any):
        """The container ``dst`` names, or a clear error for the policy's author."""
        container = self.containers.get(dst) if isinstance(dst, str) else None
        if container is None:
            names = list(self.containers)
            known = ", ".join(names) if len(names) <= 12 else f"{names[0]}..{names[-1]}"
            members = ", ".join(self.node.peers) if self.service is None else "-"
            raise ValueError(
                f"no container {dst!r} to send to (containers: {known}; "
                f"this shard's members: {members})"
            )
        return container

    def destination(self, shard: Any, service: Any) -> Any:
        """The key of the node a message goes to: a shard number or a service name."""
        if service is not None:
            if service not in self.cluster.policy.services:
                raise ValueError(
                    f"no service {service!r}; the policy's services: "
                    f"{sorted(self.cluster.policy.services) or 'none'}"
                )
            return service
        if shard is not None:
            if not (isinstance(shard, int) and 0 <= shard < len(self.cluster.members)):
                raise ValueError(f"no shard {shard!r} (shards 0..{len(self.cluster.members) - 1})")
            return shard
        return self.key


class _SyncDone:
    """A sync's continuation, described only if it fails."""

    __slots__ = ("fn", "args")

    def __init__(self, fn: Callable[..., None], args: tuple) -> None:
        self.fn = fn
        self.args = args


def _describe(what: Any) -> str:
    """What a node was handling, for a failure report (bounded in length)."""
    if isinstance(what, Message):
        if what.kind == CLIENT:
            text = f"client request {what.body!r} from {what.src}"
        else:
            text = f"message {what.id} from {what.src}, kind {what.kind!r}, body {what.body!r}" + (
                f", reply to {what.reply_to}" if what.reply_to is not None else ""
            )
    elif isinstance(what, Timer):
        text = f"timer {_name(what.fn)}{_args(what.args)}"
    elif isinstance(what, _SyncDone):
        text = f"the continuation of a sync, {_name(what.fn)}{_args(what.args)}"
    elif isinstance(what, str):
        text = what
    else:
        text = repr(what)
    return text if len(text) <= 300 else text[:297] + "..."


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", repr(fn))


def _args(args: tuple) -> str:
    return "(" + ", ".join(repr(a) for a in args) + ")"


class Node:
    """Base class of a replication policy's node; see the module docstring for the API.

    Attributes set by capsim before :meth:`on_start` (read them; capsim itself never reads
    them back, so reassigning one changes only the policy's own view): ``id`` (this
    container's id, e.g. ``"n3"``), ``shard`` (the shard this replica serves; ``None`` for
    a service), ``service`` (the service's name, or ``None`` for a replica), ``zone``,
    ``params`` (the policy's parameters, with this container's image version applied),
    ``durable`` (:class:`Durable`) and ``rng`` (a numpy generator, this node's own random
    stream, which continues across restarts). :attr:`peers` is the shard's current
    membership.

    Policy docstrings state their CAP claim: what the policy promises under a partition
    and what it gives up.
    """

    _role: str | None = None
    _term: int | None = None

    def _set_role(self, value: str | None) -> None:
        if value != self._role:
            self._role = value
            self._changed()

    def _set_term(self, value: int | None) -> None:
        if value != self._term:
            self._term = value
            self._changed()

    # Read through attrgetter (no Python frame: policies read these on every message).
    role = property(
        attrgetter("_role"),
        _set_role,
        doc="""The replica's role for measurement and role targets ("leader", "primary",
        "follower", ...), or None if the policy has no roles. Assign it as the role changes:
        capsim records every change (``roles.jsonl``; the ``single-leader`` invariant).""",
    )
    term = property(
        attrgetter("_term"),
        _set_term,
        doc="""The replica's term or epoch, or None if the policy has none (recorded with the
        role at every change of either).""",
    )

    def _changed(self) -> None:
        rt = self.__dict__.get("_Node__rt")
        if rt is not None and rt.alive:
            rt.cluster.role_changed(rt.id, rt.key, self)

    #: Services each container runs for this policy: name -> Node subclass.
    services: ClassVar[dict[str, type[Node]]] = {}

    # Bound by capsim (see bind); declared for readers and type checkers.
    id: str
    shard: int | None
    service: str | None
    zone: str
    params: Any
    durable: Durable

    # -- hooks for the policy to override --------------------------------------------------

    def on_start(self) -> None:
        """Called at boot and after every restart, before any message or request."""

    def on_message(self, msg: Message) -> None:
        """Called for every message from another node (including late rpc replies)."""

    def on_hosts_changed(self) -> None:
        """Called on every live replica of a shard whose placement a scale action changed:
        :meth:`hosts` now names the containers that should hold the shard.

        The policy brings new hosts up to date, as messages, and changes the membership
        (:meth:`set_members`) its own way; a member that is no longer a host is drained,
        stopped once the membership leaves it out. Not overriding this hook means: the
        new hosts become the members at once, and no state moves.
        """

    def on_client(self, req: Request) -> None:
        """Called for every client request that reaches this node.

        The default refuses it, so a policy that serves clients must override this.
        """
        self.fail(req, "not-implemented")

    def value_of(self, key: str) -> tuple[Any, Any]:
        """Introspection: ``(value, version)`` this replica holds for ``key``.

        ``value`` is what a read served here would return (``None`` if never written);
        ``version`` any comparable version the policy keeps, or ``None``. Return ``None``
        instead of a pair if this replica does not keep ``key`` (a leaderless store's
        replica outside the key's preference list): convergence then leaves it out. Must
        not change state or send messages. The default knows nothing and returns
        ``(None, None)``.
        """
        return (None, None)

    def applied_log(self) -> list[Any] | None:
        """Introspection: the commands this replica has applied, in order (or ``None``).

        Used to check state-machine safety: no two replicas apply different commands at the
        same position.
        """
        return None

    #: The invariants this policy claims (names from :mod:`capsim.invariants`), for
    #: :meth:`claims` to return; a run is checked against them by default.
    invariants: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def claims(cls, params: Any) -> tuple[str, ...]:
        """The invariants this policy claims with ``params``: ``linearizable``,
        ``no-lost-writes``, ``convergence``, ``single-leader``, ``state-machine-safety``.

        A weaker configuration may claim less (a quorum with ``r + w <= n`` is not
        linearizable), but a bug switch never changes the claim: a run with one on shows
        the invariant it breaks. The default returns :attr:`invariants`.
        """
        return cls.invariants

    @classmethod
    def route(cls, op: str, members: tuple[str, ...], home: str, params: Any) -> Any:
        """Where a client sends a request first: a container id, ``(container, service)``,
        or ``None`` for the default (the client's home container if it holds a replica of
        the shard, else the shard's first member in the client's zone, else its first
        member, or where the shard's last request succeeded). ``op`` is the operation,
        ``members`` the shard's current membership, ``home`` the client's home container,
        ``params`` the policy's parameters there. A chain sends writes to its head and
        reads to its tail; a leaderless store's client may go to any replica."""
        return None

    # -- reading the cluster -------------------------------------------------------------

    @property
    def peers(self) -> tuple[str, ...]:
        """The shard's current members, this replica included (in container order unless
        :meth:`set_members` chose another order); for a service, every container in the
        cluster."""
        rt = self.__rt
        if rt.service is not None:
            return rt.cluster.in_service
        return rt.cluster.members[rt.shard]

    def members(self, shard: int | None = None) -> tuple[str, ...]:
        """The current members of ``shard`` (default: this replica's shard)."""
        rt = self.__rt
        return rt.cluster.members[rt.shard if shard is None else shard]

    def hosts(self, shard: int | None = None, *, initial: bool = False) -> tuple[str, ...]:
        """The containers placed to hold ``shard``'s replicas (default: this replica's
        shard), whether or not they are current members; with ``initial``, those placed
        at boot, before any scale action (a fixed point every replica agrees on)."""
        rt = self.__rt
        cluster = rt.cluster
        placement = cluster.initial_placement if initial else cluster.placement
        return placement.replicas[rt.shard if shard is None else shard]

    def shards(self) -> int:
        """How many shards the key space has (numbered from 0)."""
        return len(self.__rt.cluster.members)

    def containers(self, *, initial: bool = False) -> tuple[str, ...]:
        """The ids of the containers in the cluster, in order (added by a scale action and
        not yet removed; a removed id never comes back); with ``initial``, those it booted
        with."""
        cluster = self.__rt.cluster
        return cluster.initial_placement.containers if initial else cluster.in_service

    def set_ready(self, ready: bool = True) -> None:
        """Say whether this replica is ready for clients (default: ready once started).
        While a replica on a container is not ready, clients' default routing passes the
        container by (to a ready member in the client's zone, else any ready member) and
        role targets do not count it, as a Kubernetes Service skips a pod whose readiness
        probe fails. A container that is down or starting refuses requests whatever this
        says. A restart starts ready again unless ``on_start`` says otherwise."""
        rt = self.__rt
        ready = bool(ready)
        if rt.alive and rt.ready != ready:
            rt.ready = ready
            rt.cluster.readiness_changed(rt.container)

    def shard_of(self, key: str) -> int:
        """The shard that owns ``key``."""
        return self.__rt.cluster.placement.shard_of(key)

    # -- actions -----------------------------------------------------------------------------

    def now(self) -> float:
        """This node's clock in seconds: simulated time as its container's clock reads it."""
        return self.__rt.container.clock()

    def monotonic(self) -> float:
        """This node's monotonic clock in seconds: it runs at the container's clock rate
        (which a clock fault may change) but never jumps, so it measures elapsed time as a
        process's CLOCK_MONOTONIC does (timeouts, leases, "heard from the leader lately").
        Its zero is arbitrary."""
        return self.__rt.container.monotonic()

    def log(self, *parts: Any) -> None:
        """Write a line to the run's node log (``--out DIR/node.log``), like ``print``:
        the parts joined by spaces, after the simulated time, the container and the shard."""
        rt = self.__rt
        where = rt.shard if rt.service is None else rt.service
        rt.engine.node_log(rt.id, where, " ".join(str(p) for p in parts))

    def set_members(self, members: tuple[str, ...] | list[str], shard: int | None = None) -> None:
        """Change ``shard``'s membership (default: this replica's shard) to ``members``, in
        the order given: containers placed to hold the shard now or since the run began
        (a replica being drained is still one), at least one, no repeats. Every node sees
        it at once through :attr:`peers`; clients route by it. capsim moves no state: the
        policy transfers what a new member needs, as messages. A replica that is no longer
        a host is stopped once the membership leaves it out (see :meth:`on_hosts_changed`).
        """
        rt = self.__rt
        shard = rt.shard if shard is None else shard
        rt.cluster.set_members(shard, members, by=rt.id)

    def send(
        self,
        dst: str,
        kind: str,
        body: Any = None,
        *,
        shard: int | None = None,
        service: str | None = None,
        size: int | None = None,
    ) -> Message | None:
        """Send ``body`` as a message of ``kind`` to container ``dst``: to its replica of
        this shard, or of ``shard``, or to its ``service``. ``size`` in bytes, for
        bandwidth (default: the scenario's ``message_bytes``, by kind).

        Returns the message (``None`` if this node has crashed and can send nothing). A
        container that does not exist is an error in the policy; one that holds no such
        replica or service drops the message on arrival (counted as ``no-replica``).
        """
        rt = self.__rt
        if not rt.alive:
            return None
        try:
            dst_c = rt.containers[dst]
        except (KeyError, TypeError):
            dst_c = rt.target(dst)  # raises a clear error
        to = rt.key if shard is None and service is None else rt.destination(shard, service)
        return rt.net.send(
            rt.id, dst, kind, body, to, None, rt.container, dst_c, None, rt.key, size
        )

    def broadcast(self, kind: str, body: Any = None, *, size: int | None = None) -> None:
        """Send ``body`` to every other member of this shard."""
        me = self.__rt.id
        for peer in self.peers:
            if peer != me:
                self.send(peer, kind, body, size=size)

    def reply(
        self, msg: Message, kind: str, body: Any = None, *, size: int | None = None
    ) -> Message | None:
        """Answer ``msg``: a message to the node that sent it, whose ``reply_to`` is
        ``msg.id``. A client's request is answered with :meth:`ok`, :meth:`fail` or
        :meth:`redirect`."""
        rt = self.__rt
        if not rt.alive:
            return None
        if msg.kind == CLIENT:
            raise ValueError("reply() answers nodes; answer a client's request with ok/fail")
        return rt.net.send(
            rt.id, msg.src, kind, body, msg._from, msg.id, rt.container, msg._src_c, None,
            rt.key, size,
        )  # fmt: skip

    def rpc(
        self,
        dst: str,
        kind: str,
        body: Any,
        on_reply: Callable[[Message], None],
        *,
        timeout: float | None = None,
        on_timeout: Callable[[], None] | None = None,
        shard: int | None = None,
        service: str | None = None,
        size: int | None = None,
    ) -> Message | None:
        """Send a request (addressed as :meth:`send`) and call ``on_reply(reply)`` when the
        first reply arrives.

        After ``timeout`` seconds of this node's clock without a reply, ``on_timeout()`` is
        called instead and a later reply goes to :meth:`on_message`. Without a timeout, an
        rpc unanswered after ``RPC_FORGET_S`` (60 s) is forgotten the same way, silently. A
        crash forgets every pending rpc.
        """
        rt = self.__rt
        if not rt.alive:
            return None
        msg = self.send(dst, kind, body, shard=shard, service=service, size=size)
        if timeout:
            timer = self.set_timer(timeout, rt.rpc_timeout, msg.id)
        else:
            timer = None
            rt.forget_old_rpcs()
            rt.forget.append((rt.engine.now + RPC_FORGET_S, msg.id))
        rt.pending[msg.id] = (on_reply, timer, on_timeout)
        return msg

    def set_timer(self, delay: float, fn: Callable[..., None], *args: Any) -> Timer:
        """Call ``fn(*args)`` after ``delay`` seconds of this node's clock (0 or more).

        A crash cancels every timer; a paused container runs its timers late, on resume.
        """
        _check_delay(delay, "set_timer")
        rt = self.__rt
        return rt.schedule(rt.container.real_delay(delay), fn, args, delay)

    def sync(self, fn: Callable[..., None], *args: Any) -> None:
        """Make everything written to ``self.durable`` so far durable, then call ``fn(*args)``.

        The sync takes the disk's sync time; a crash before it completes loses those
        writes and the call. With the default instant disk, ``fn`` runs at once, before
        ``sync`` returns. (A disk that lies calls ``fn`` without making anything durable.)
        """
        rt = self.__rt
        disk = rt.container.disk
        if disk.instant:
            fn(*args)
            return
        rt.engine.call_in(disk.sync_delay(), rt.disk_done, self.durable.mark(), fn, args)

    def ok(self, req: Request, value: Any = None) -> None:
        """Answer a client: the operation took effect (a read returns ``value``)."""
        self.__rt.answer(req, "ok", value)

    def fail(self, req: Request, error: str) -> None:
        """Answer a client: the operation certainly did not take effect, because ``error``.

        A CAS whose expected value did not match fails with ``"mismatch"``.
        """
        self.__rt.answer(req, "fail", error)

    def redirect(self, req: Request, node: str) -> None:
        """Tell the client to send this request to container ``node`` instead."""
        self.__rt.answer(req, "redirect", node)

    def info(self, req: Request, error: str) -> None:
        """Answer a client: the outcome is unknown (the operation may or may not take
        effect, at any time), because ``error``; the client records it as ``info`` at once
        instead of waiting for its timeout (a write that reached too few replicas)."""
        self.__rt.answer(req, "info", error)


def bind(
    node: Node,
    *,
    container,
    key,
    params,
    durable,
    rng,
    net,
    engine,
    cluster,
    policy: str,
) -> Runtime:
    """Attach a fresh policy instance to its container as the replica of shard ``key``
    (an int) or the service ``key`` (a name); returns its runtime."""
    rt = Runtime()
    rt.node = node
    rt.id = container.id
    rt.key = key
    service = key if isinstance(key, str) else None
    rt.shard = None if service is not None else key
    rt.service = service
    rt.container = container
    rt.cluster = cluster
    rt.net = net
    rt.engine = engine
    rt.containers = cluster.by_id
    rt.alive = True
    rt.pending = {}
    rt.forget = deque()
    rt.policy = policy
    rt.ready = True
    node._Node__rt = rt
    node.id = container.id
    node.zone = container.zone
    node.shard = rt.shard
    node.service = service
    node.params = params
    node.durable = durable
    node.rng = rng
    return rt
