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
with a timeout), :meth:`reply`, :meth:`set_timer`, :meth:`sync` and :meth:`now` (its own
clock, which clock faults shift). Measurement and invariant checks read a replica without
sending messages, through :attr:`role`, :attr:`term`, :meth:`value_of` and
:meth:`applied_log`: keep them current and free of side effects.

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

from collections.abc import Callable
from typing import Any

from capsim.sim.network import CLIENT, CLIENT_REPLY, Message
from capsim.sim.storage import Durable, DurableLog

__all__ = ["Node", "Request", "Timer", "Durable", "DurableLog", "Message"]


class Request:
    """A client's operation as a node sees it.

    ``op`` is ``"read"``, ``"write"``, ``"cas"`` or ``"add"``; ``key`` a string; ``value``
    the value to write, the element to add, or for ``cas`` a tuple ``(expected, new)``.
    ``id`` identifies the operation and stays the same when the client retries it, so a
    policy can apply a retried write once. ``client`` is the client's name.
    """

    __slots__ = ("op", "key", "value", "id", "shard", "client", "attempt", "_client", "_f")

    def __repr__(self) -> str:
        return f"Request(id={self.id}, op={self.op!r}, key={self.key!r}, value={self.value!r})"


class Timer:
    """A pending timer; :meth:`cancel` stops it from firing."""

    __slots__ = ("callbacks", "_ok", "node", "fn", "args", "cancelled")

    def cancel(self) -> None:
        """Stop the timer (a no-op if it has fired already)."""
        self.cancelled = True


def _fire(timer: Timer) -> None:
    if timer.cancelled:
        return
    node = timer.node
    if not node._alive:
        return
    container = node._container
    if container.paused:
        container.defer(timer)
        return
    timer.fn(*timer.args)


class Node:
    """Base class of a replica's protocol; see the module docstring for the whole API.

    Attributes set by capsim before :meth:`on_start` (read them, do not assign them):
    ``id`` (this container's id, e.g. ``"n3"``), ``shard`` (the shard this replica
    serves), ``peers`` (the ids of every replica of the shard, this one included, in
    container order), ``zone``, ``params`` (the policy's parameters, with this container's
    image version applied), ``durable`` (:class:`Durable`) and ``rng`` (a numpy generator,
    this replica's own random stream, which continues across restarts).

    Policy docstrings state their CAP claim: what the policy promises under a partition
    and what it gives up.
    """

    #: The replica's role for measurement and role targets ("leader", "primary",
    #: "follower", ...), or None if the policy has no roles.
    role: str | None = None
    #: The replica's term or epoch, or None if the policy has none.
    term: int | None = None

    # Bound by capsim (see _bind); declared for readers and type checkers.
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
        return self._container.clock()

    def send(self, dst: str, kind: str, body: Any = None) -> Message | None:
        """Send ``body`` to replica ``dst`` of this shard as a message of ``kind``.

        Returns the message (``None`` if this replica has crashed and can send nothing).
        """
        if not self._alive:
            return None
        return self._net.send(
            self.id, dst, kind, body, self.shard, None, self._container, self._containers[dst]
        )

    def broadcast(self, kind: str, body: Any = None) -> None:
        """Send ``body`` to every other replica of this shard."""
        for peer in self.peers:
            if peer != self.id:
                self.send(peer, kind, body)

    def reply(self, msg: Message, kind: str, body: Any = None) -> Message | None:
        """Answer ``msg``: a message to its sender whose ``reply_to`` is ``msg.id``."""
        if not self._alive:
            return None
        return self._net.send(
            self.id,
            msg.src,
            kind,
            body,
            self.shard,
            msg.id,
            self._container,
            self._containers[msg.src],
        )

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
        if not self._alive:
            return None
        msg = self._net.send(
            self.id, dst, kind, body, self.shard, None, self._container, self._containers[dst]
        )
        timer = self.set_timer(timeout, self._rpc_timeout, msg.id) if timeout else None
        self._pending[msg.id] = (on_reply, timer, on_timeout)
        return msg

    def set_timer(self, delay: float, fn: Callable[..., None], *args: Any) -> Timer:
        """Call ``fn(*args)`` after ``delay`` seconds of this node's clock.

        A crash cancels every timer; a paused container runs its timers late, on resume.
        """
        return self._schedule(self._container.real_delay(delay), fn, args)

    def _schedule(self, real_delay: float, fn: Callable[..., None], args: tuple) -> Timer:
        timer = Timer()
        timer.callbacks = [_fire]
        timer._ok = True
        timer.node = self
        timer.fn = fn
        timer.args = args
        timer.cancelled = False
        engine = self._engine
        engine.events += 1
        engine.env.schedule(timer, 1, real_delay)
        return timer

    def sync(self, fn: Callable[..., None], *args: Any) -> None:
        """Make everything written to ``self.durable`` so far durable, then call ``fn(*args)``.

        The sync takes the disk's sync time; a crash before it completes loses those
        writes and the call. With the default instant disk, ``fn`` runs at once, before
        ``sync`` returns. (A disk that lies calls ``fn`` without making anything durable.)
        """
        container = self._container
        disk = container.disk
        if disk.instant:
            fn(*args)
            return
        self._schedule(disk.sync_delay(), self._synced, (self.durable.mark(), fn, args))

    def _synced(self, mark, fn, args) -> None:
        if not self._container.disk.lies:
            self.durable.persist(mark)
        fn(*args)

    def ok(self, req: Request, value: Any = None) -> None:
        """Answer a client: the operation took effect (a read returns ``value``)."""
        self._answer(req, "ok", value)

    def fail(self, req: Request, error: str) -> None:
        """Answer a client: the operation certainly did not take effect, because ``error``.

        A CAS whose expected value did not match fails with ``"mismatch"``.
        """
        self._answer(req, "fail", error)

    def redirect(self, req: Request, node: str) -> None:
        """Tell the client to send this request to replica ``node`` instead."""
        self._answer(req, "redirect", node)

    # -- framework internals -------------------------------------------------------------

    def _bind(self, *, container, shard, peers, params, durable, rng, net, engine, containers):
        self.id = container.id
        self.zone = container.zone
        self.shard = shard
        self.peers = peers
        self.params = params
        self.durable = durable
        self.rng = rng
        self._container = container
        self._net = net
        self._engine = engine
        self._containers = containers
        self._alive = True
        self._pending: dict[int, tuple] = {}

    def _dispatch(self, msg: Message) -> None:
        if msg.kind == CLIENT:
            self.on_client(msg.body)
            return
        reply_to = msg.reply_to
        if reply_to is not None:
            pending = self._pending.pop(reply_to, None)
            if pending is not None:
                on_reply, timer, _ = pending
                if timer is not None:
                    timer.cancelled = True
                on_reply(msg)
                return
        self.on_message(msg)

    def _rpc_timeout(self, msg_id: int) -> None:
        pending = self._pending.pop(msg_id, None)
        if pending is not None and pending[2] is not None:
            pending[2]()

    def _answer(self, req: Request, outcome: str, value: Any) -> None:
        if not self._alive:
            return
        client = req._client
        self._net.send(
            self.id,
            client.id,
            CLIENT_REPLY,
            (req, outcome, value),
            -1,
            None,
            self._container,
            client.home,
            client,
        )
