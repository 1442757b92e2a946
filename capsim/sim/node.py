"""The node API: the base class of every replication policy, built-in or your own.

A policy is a subclass of :class:`Node`. capsim creates one instance per replica: per
container and shard. The instance is the replica's *volatile* state: a crash throws it
away, and a restart builds a new instance and calls :meth:`Node.on_start` again. Only
``self.durable`` survives a crash. Everything a node does happens in callbacks, at instants
of simulated time:

* :meth:`on_start`: at boot and after every restart. Set up state and timers here.
* :meth:`on_message`: a message from another replica of the same shard.
* :meth:`on_client`: a client's request; answer it with :meth:`ok`, :meth:`fail` or
  :meth:`redirect`, now or later. Leave it unanswered and the client times out.

To act, a node calls :meth:`send`, :meth:`broadcast`, :meth:`rpc` (request and response,
with a timeout), :meth:`reply`, :meth:`set_timer`, :meth:`sync`, :meth:`now` (its own
clock, which clock faults shift) and :meth:`log` (a line in the run's ``node.log``).
Measurement and invariant checks read a replica without sending messages, through
:attr:`role`, :attr:`term`, :meth:`value_of` and :meth:`applied_log`: keep them current and
free of side effects.

Mistakes in a policy are reported, not swallowed: an exception raised by any callback,
a message sent to a container that does not exist, a request answered twice or a timer
set for a negative or infinite delay stops the run with one report naming the simulated
time, the container, the shard, what was being handled and the policy's own frames
(``capsim run`` exits with status 1 and still writes ``--out``; :func:`capsim.run` raises
:class:`~capsim.errors.PolicyError`). capsim keeps its own per-replica bookkeeping out of
the policy's namespace, so a policy may name its attributes as it likes (``self.pending``,
``self._alive``, ...) without breaking :meth:`rpc` or the timers.

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
from collections.abc import Callable
from typing import Any

from capsim.errors import PolicyError
from capsim.sim.network import CLIENT, CLIENT_REPLY, Message
from capsim.sim.storage import Durable, DurableLog

__all__ = ["Node", "Request", "Timer", "Durable", "DurableLog", "Message", "Runtime"]


class Request:
    """A client's operation as a node sees it.

    ``op`` is ``"read"``, ``"write"``, ``"cas"`` or ``"add"``; ``key`` a string; ``value``
    the value to write, the element to add, or for ``cas`` a tuple ``(expected, new)``.
    ``id`` identifies the operation and stays the same when the client retries it, so a
    policy can apply a retried write once (each attempt is a new ``Request``, answered
    once). ``client`` is the client's name.
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

    def _copy(self) -> Request:
        """The same attempt delivered again (a duplicated message): answerable on its own."""
        copy = Request()
        for slot in Request.__slots__:
            setattr(copy, slot, getattr(self, slot))
        copy._answered = None
        return copy

    def __repr__(self) -> str:
        return f"Request(id={self.id}, op={self.op!r}, key={self.key!r}, value={self.value!r})"


class Timer:
    """A pending timer; :meth:`cancel` stops it from firing."""

    __slots__ = ("callbacks", "rt", "fn", "args", "cancelled")
    _ok = True  # read by SimPy's step

    def cancel(self) -> None:
        """Stop the timer (a no-op if it has fired already)."""
        self.cancelled = True


def _fire(timer: Timer) -> None:
    if timer.cancelled:
        return
    rt = timer.rt
    if not rt.alive:
        return
    container = rt.container
    if container.paused:
        container.defer(timer)
        return
    rt.call(timer.fn, timer.args, timer)


_FIRE = (_fire,)


class Runtime:
    """capsim's side of one replica: where it lives, its timers and pending rpcs.

    Kept apart from the :class:`Node` instance (a policy sees only the node), so that no
    attribute a policy chooses can break the framework.
    """

    __slots__ = (
        "node",
        "id",
        "shard",
        "container",
        "net",
        "engine",
        "containers",
        "alive",
        "pending",
        "policy",
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

    def failure(self, exc: BaseException, what: Any) -> PolicyError:
        """A :class:`PolicyError` for ``exc`` raised while handling ``what``."""
        return PolicyError(
            policy=self.policy,
            time=self.engine.now,
            container=self.id,
            shard=self.shard,
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
        )

    def schedule(self, real_delay: float, fn: Callable[..., None], args: tuple) -> Timer:
        timer = Timer()
        timer.callbacks = _FIRE
        timer.rt = self
        timer.fn = fn
        timer.args = args
        timer.cancelled = False
        engine = self.engine
        engine.events += 1
        engine.env.schedule(timer, 1, real_delay)
        return timer

    def disk_done(self, mark, fn, args) -> None:
        """A sync completed on the disk: the writes are durable now, even if the container
        is paused (a stopped process does not stop its disk); the policy hears of it when
        it runs again. A crash before this instant loses both."""
        if not self.alive:
            return
        if not self.container.disk.lies:
            self.node.durable.persist(mark)
        if self.container.paused:
            timer = Timer()
            timer.rt = self
            timer.fn = fn
            timer.args = args
            timer.cancelled = False
            self.container.defer(timer)
        else:
            self.call(fn, args, _SyncDone(fn, args))

    def target(self, dst: Any):
        """The container ``dst`` names, or a clear error for the policy's author."""
        container = self.containers.get(dst) if isinstance(dst, str) else None
        if container is None:
            names = list(self.containers)
            known = ", ".join(names) if len(names) <= 12 else f"{names[0]}..{names[-1]}"
            raise ValueError(
                f"no container {dst!r} to send to (containers: {known}; "
                f"this shard's replicas: {', '.join(self.node.peers)})"
            )
        return container


class _SyncDone:
    """A sync's continuation, described only if it fails."""

    __slots__ = ("fn", "args")

    def __init__(self, fn: Callable[..., None], args: tuple) -> None:
        self.fn = fn
        self.args = args


def _describe(what: Any) -> str:
    """What a replica was handling, for a failure report (bounded in length)."""
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
    """Base class of a replica's protocol; see the module docstring for the whole API.

    Attributes set by capsim before :meth:`on_start` (read them; capsim itself never reads
    them back, so reassigning one changes only the policy's own view): ``id`` (this
    container's id, e.g. ``"n3"``), ``shard`` (the shard this replica serves), ``peers``
    (the ids of every replica of the shard, this one included, in container order),
    ``zone``, ``params`` (the policy's parameters, with this container's image version
    applied), ``durable`` (:class:`Durable`) and ``rng`` (a numpy generator, this replica's
    own random stream, which continues across restarts).

    Policy docstrings state their CAP claim: what the policy promises under a partition
    and what it gives up.
    """

    #: The replica's role for measurement and role targets ("leader", "primary",
    #: "follower", ...), or None if the policy has no roles.
    role: str | None = None
    #: The replica's term or epoch, or None if the policy has none.
    term: int | None = None

    # Bound by capsim (see Runtime); declared for readers and type checkers.
    id: str
    shard: int
    peers: tuple[str, ...]
    zone: str
    params: Any
    durable: Durable

    # -- hooks for the policy to override --------------------------------------------------

    def on_start(self) -> None:
        """Called at boot and after every restart, before any message or request."""

    def on_message(self, msg: Message) -> None:
        """Called for every message from another replica (including late rpc replies)."""

    def on_client(self, req: Request) -> None:
        """Called for every client request that reaches this replica.

        The default refuses it, so a policy that serves clients must override this.
        """
        self.fail(req, "not-implemented")

    def value_of(self, key: str) -> tuple[Any, Any]:
        """Introspection: ``(value, version)`` this replica holds for ``key``.

        ``value`` is what a read served here would return (``None`` if never written);
        ``version`` any comparable version the policy keeps, or ``None``. Must not change
        state or send messages. The default knows nothing and returns ``(None, None)``.
        """
        return (None, None)

    def applied_log(self) -> list[Any] | None:
        """Introspection: the commands this replica has applied, in order (or ``None``).

        Used to check state-machine safety: no two replicas apply different commands at the
        same position.
        """
        return None

    # -- actions -----------------------------------------------------------------------------

    def now(self) -> float:
        """This node's clock in seconds: simulated time as its container's clock reads it."""
        return self.__rt.container.clock()

    def log(self, *parts: Any) -> None:
        """Write a line to the run's node log (``--out DIR/node.log``), like ``print``:
        the parts joined by spaces, after the simulated time, the container and the shard."""
        rt = self.__rt
        rt.engine.node_log(rt.id, rt.shard, " ".join(str(p) for p in parts))

    def send(self, dst: str, kind: str, body: Any = None) -> Message | None:
        """Send ``body`` to replica ``dst`` of this shard as a message of ``kind``.

        Returns the message (``None`` if this replica has crashed and can send nothing).
        Sending to a container that does not exist is an error in the policy.
        """
        rt = self.__rt
        if not rt.alive:
            return None
        try:
            dst_c = rt.containers[dst]
        except (KeyError, TypeError):
            dst_c = rt.target(dst)  # raises a clear error
        return rt.net.send(rt.id, dst, kind, body, rt.shard, None, rt.container, dst_c)

    def broadcast(self, kind: str, body: Any = None) -> None:
        """Send ``body`` to every other replica of this shard."""
        me = self.__rt.id
        for peer in self.peers:
            if peer != me:
                self.send(peer, kind, body)

    def reply(self, msg: Message, kind: str, body: Any = None) -> Message | None:
        """Answer ``msg``: a message to its sender whose ``reply_to`` is ``msg.id``.

        A client's request is answered with :meth:`ok`, :meth:`fail` or :meth:`redirect`.
        """
        rt = self.__rt
        if not rt.alive:
            return None
        if msg.kind == CLIENT:
            raise ValueError("reply() answers replicas; answer a client's request with ok/fail")
        return rt.net.send(rt.id, msg.src, kind, body, rt.shard, msg.id, rt.container, msg._src_c)

    def rpc(
        self,
        dst: str,
        kind: str,
        body: Any,
        on_reply: Callable[[Message], None],
        *,
        timeout: float | None = None,
        on_timeout: Callable[[], None] | None = None,
    ) -> Message | None:
        """Send a request and call ``on_reply(reply)`` when the first reply arrives.

        After ``timeout`` seconds of this node's clock without a reply, ``on_timeout()`` is
        called instead and a later reply goes to :meth:`on_message`. A crash forgets every
        pending rpc.
        """
        rt = self.__rt
        if not rt.alive:
            return None
        msg = rt.net.send(rt.id, dst, kind, body, rt.shard, None, rt.container, rt.target(dst))
        timer = self.set_timer(timeout, rt.rpc_timeout, msg.id) if timeout else None
        rt.pending[msg.id] = (on_reply, timer, on_timeout)
        return msg

    def set_timer(self, delay: float, fn: Callable[..., None], *args: Any) -> Timer:
        """Call ``fn(*args)`` after ``delay`` seconds of this node's clock (0 or more).

        A crash cancels every timer; a paused container runs its timers late, on resume.
        """
        if not (isinstance(delay, int | float) and math.isfinite(delay) and delay >= 0):
            raise ValueError(f"set_timer: the delay must be a finite number >= 0, got {delay!r}")
        rt = self.__rt
        return rt.schedule(rt.container.real_delay(delay), fn, args)

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
        """Tell the client to send this request to replica ``node`` instead."""
        self.__rt.answer(req, "redirect", node)


def bind(
    node: Node,
    *,
    container,
    shard,
    peers,
    params,
    durable,
    rng,
    net,
    engine,
    containers,
    policy: str,
) -> Runtime:
    """Attach a fresh policy instance to its container and shard; returns its runtime."""
    rt = Runtime()
    rt.node = node
    rt.id = container.id
    rt.shard = shard
    rt.container = container
    rt.net = net
    rt.engine = engine
    rt.containers = containers
    rt.alive = True
    rt.pending = {}
    rt.policy = policy
    node._Node__rt = rt
    node.id = container.id
    node.zone = container.zone
    node.shard = shard
    node.peers = peers
    node.params = params
    node.durable = durable
    node.rng = rng
    return rt
