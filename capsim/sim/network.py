"""The network between containers: latency, loss, duplication, FIFO channels, partitions.

Latency is one-way and drawn per message from the distribution for the message's kind and
link class (same zone or cross zone). A client sits beside its home container: the client
leg (client to home container and back) has its own distribution, zero by default because
latency there hides anomalies rather than revealing them; a client's message to or from
another container adds that link's latency (kinds ``client`` and ``client_reply``). Draws
come in numpy blocks from named streams, one stream per (link class, kind), so a new kind
shifts nothing.

Partitions are directional: a *cut* ``(a, b)`` means messages from ``a`` do not reach
``b``. Overlapping partitions stack (a pair is reachable again once every partition that
cut it has ended). Reachability is checked twice: when a message is sent and when it
arrives. So a message already in flight when a partition starts is dropped if it arrives
while the partition is in force, as with a firewall rule at the receiver; a message sent
during a partition is dropped and is not delivered after the heal, as with a datagram.
Retransmission is the protocol's business. A message that arrives at a crashed container
is dropped, except that a client's request is refused (the client sees a definite
``unavailable`` failure, as with a refused connection).

Loss applies to messages between two containers, including a client's request
forwarded from its home container to another and its reply; the client leg itself (a
client and its home container) is reliable. Duplication applies to messages between
nodes only: a client talks to a node over a connection, which loses but never repeats a
request (a repeated request could take effect after the client was told it failed).
With ``fifo`` each ordered pair of containers behaves like a TCP connection: a message
never arrives before one sent earlier on the same pair, whatever delays it (its latency
draw, a link fault's extra latency, waiting for bandwidth), and clients' requests and
replies crossing the pair share the channel.
Without it, messages reorder as their latencies vary. Counters: ``sent``, ``delivered``,
``dropped`` (with reasons) and ``duplicated`` (extra copies delivered or dropped).

Link faults degrade ordered pairs while in force: extra latency added to each message's
draw, loss (dropped with reason ``link``) and duplication, each fault with its own
stream. With ``bandwidth`` set, each ordered pair sends one message at a time: a message
waits until the link is free, takes ``bytes / bandwidth`` to transmit, then its latency.

Containers may be added while the network runs (:meth:`Network.add_container`): a
container started during a partition lands on the side of its zone (the group holding
most of its zone's containers), and a link fault covers only the links it resolved when
it began. A :class:`Transfer` counts the messages and bytes sent to or from chosen
replicas (a scale action's state transfer).
"""

from __future__ import annotations

import json
from heapq import heappush
from itertools import chain
from typing import Any

from capsim.distributions import draws
from capsim.errors import PolicyError
from capsim.scenario import NetworkSpec
from capsim.sim.engine import NORMAL, Engine

__all__ = [
    "Network",
    "Message",
    "LinkEffect",
    "Transfer",
    "CLIENT",
    "CLIENT_REPLY",
    "DROP_REASONS",
]

CLIENT = "client"
CLIENT_REPLY = "client_reply"
DROP_REASONS = ("partition", "loss", "link", "down", "no-replica")
_DROP_CODE = {"partition": 1, "loss": 2, "link": 3, "down": 4, "no-replica": 5}


class LinkEffect:
    """One link fault's effect on the pairs it covers: extra latency, loss, duplication."""

    __slots__ = ("latency", "loss", "duplicate", "uniforms")

    def __init__(self, latency, loss: float, duplicate: float, uniforms):
        self.latency = latency  # an iterator of draws, or None
        self.loss = loss
        self.duplicate = duplicate
        self.uniforms = uniforms


class Message:
    """A message between containers.

    Policies read ``src``, ``dst`` (container ids), ``kind`` (a short string such as
    ``"write"`` or ``"ack"``, which also selects the latency distribution), ``body``
    (anything; treat it as immutable once sent), ``id`` (unique in the run), ``reply_to``
    (the id of the message this answers, or ``None``), ``shard`` (the shard it is for, or
    the name of the service it is for), ``size`` (bytes, for bandwidth) and ``sent_at``:
    the sender's clock when it sent the message (so clock faults show in it, as a
    timestamp a real sender writes would), ``None`` for a client's request.
    """

    __slots__ = (
        "src",
        "dst",
        "kind",
        "body",
        "id",
        "reply_to",
        "shard",
        "size",
        "_clock",
        "_sent",
        "_from",
        "_src_c",
        "_dst_c",
        "_client",
    )

    _ok = True  # a message never fails

    @property
    def sent_at(self) -> float | None:
        """The sender's clock when it sent this message (None for a client's request)."""
        clock = self._clock
        if clock is None:
            return None
        base, t0, rate = clock
        return base + rate * (self._sent - t0)

    def __repr__(self) -> str:
        return (
            f"Message(id={self.id}, src={self.src!r}, dst={self.dst!r}, kind={self.kind!r}, "
            f"body={self.body!r}, reply_to={self.reply_to!r})"
        )


class Transfer:
    """Messages and bytes sent between containers to replicas in ``to`` or from replicas in
    ``frm``, each a set of ``(container index, shard)``, while it is counting (a scale
    action's state transfer). A message's bytes are its ``size``, else its kind's
    ``message_bytes``."""

    __slots__ = ("to", "frm", "messages", "bytes")

    def __init__(self, to: set[tuple[int, int]], frm: set[tuple[int, int]]):
        self.to = to
        self.frm = frm
        self.messages = 0
        self.bytes = 0


#: What a duplicate shares with its original: everything.
_COPIED = Message.__slots__


class Network:
    """Carries messages between containers; see the module docstring for the semantics."""

    def __init__(
        self,
        engine: Engine,
        spec: NetworkSpec,
        containers: list,
        *,
        record: bool = False,
    ):
        self.engine = engine
        self.spec = spec
        self.containers = containers
        # The partitions in force, each (label of every container, blocked[label][label]):
        # a message from a to b is cut iff some partition blocks (label[a], label[b]).
        # Applying one costs the containers, not their pairs; a check costs one lookup per
        # partition in force, and nothing when there is none.
        self.partitions: list[tuple[list[int], list[list[bool]]]] = []
        self.cut_version = 0  # changes whenever reachability does
        zones: dict[str, int] = {}
        self.zone_of = [zones.setdefault(c.zone, len(zones)) for c in containers]
        self._samplers: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
        self._default = (
            draws(spec.latency.same_zone, engine.stream("network.latency.same_zone")),
            draws(spec.latency.cross_zone, engine.stream("network.latency.cross_zone")),
        )
        self._client = draws(spec.latency.client, engine.stream("network.latency.client"))
        for kind, by_class in spec.latency.kinds.items():
            for cls, dist in ((0, by_class.same_zone), (1, by_class.cross_zone)):
                if dist is not None:
                    name = "same_zone" if cls == 0 else "cross_zone"
                    self._samplers[cls][kind] = draws(
                        dist, engine.stream(f"network.latency.{name}.{kind}")
                    )
        self._loss = spec.loss
        self._dup = spec.duplicate
        self._loss_draws = uniforms(engine, "network.loss") if spec.loss > 0 else None
        self._dup_draws = uniforms(engine, "network.duplicate") if spec.duplicate > 0 else None
        self._fifo_last: dict[int, float] | None = {} if spec.fifo else None
        # The link faults in force, by ordered pair (src * 65536 + dst).
        self.degraded: dict[int, list[LinkEffect]] = {}
        self.degraded_pairs = 0
        self._bandwidth = spec.bandwidth
        self._link_free: dict[int, float] = {}
        self.sent = 0
        self.delivered = 0
        self.duplicated = 0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.record = record
        self.log = Spool()  # with ``record``: every message's fate, spilled to disk in chunks
        self._times = engine.trace_times
        self._codes = engine.trace_codes
        self._env = engine.env
        self._queue = engine.env._queue
        self._eid = engine.env._eid
        # This network's messages: a class whose ``callbacks`` (read by Engine.run) hand
        # each message to this network when it arrives, at no cost per message.
        self._message = type(
            "Message", (Message,), {"__slots__": (), "callbacks": (self._deliver,)}
        )
        self._by_kind: dict[str, tuple] = {}
        self._dropped_at_send = 0
        self.transfers: list[Transfer] = []
        self._update_slow()

    # -- sending -------------------------------------------------------------------------

    def send(
        self,
        src: str,
        dst: str,
        kind: str,
        body: Any,
        shard: int,
        reply_to: int | None,
        src_c,
        dst_c,
        client=None,
        from_key=None,
        size=None,
    ) -> Message:
        """Send a message from container ``src_c`` to container ``dst_c``; returns it.

        ``src`` and ``dst`` are the names the receiver sees (a client's name on the client
        leg). A message to or from a ``client`` travels on the client leg. ``shard`` is the
        key of the node it is for on ``dst_c`` (a shard number or a service name) and
        ``from_key`` the sender's, for replies; ``size`` its bytes (None: by kind).
        """
        self.sent = sent = self.sent + 1
        msg = self._message()
        msg.src = src
        msg.dst = dst
        msg.kind = kind
        msg.body = body
        msg.id = sent  # ids count messages sent: 1, 2, 3, ...
        msg.reply_to = reply_to
        msg.shard = shard
        msg._from = from_key
        msg.size = size
        now = self._env._now
        msg._sent = now
        # The sender's clock as it stood (a snapshot the container replaces when a clock
        # fault moves it): sent_at is computed from it only when a policy reads it.
        msg._clock = None if client is not None and kind == CLIENT else src_c.clock_state
        msg._src_c = src_c
        msg._dst_c = dst_c
        msg._client = client
        src_i = src_c.idx
        dst_i = dst_c.idx
        if self.partitions and self._cut(src_i, dst_i):
            self._dropped_at_send += 1
            self._drop(msg, "partition")
            return msg
        # Loss and duplication are the links' doing: a client talking to its own home
        # container (src_i == dst_i) is not on a link.
        lossy = src_i != dst_i
        if lossy and self._loss_draws is not None and next(self._loss_draws) < self._loss:
            self._dropped_at_send += 1
            self._drop(msg, "loss")
            return msg
        if client is None and kind != CLIENT:
            # _latency's common case, inlined: one link's draw, from the kind's samplers.
            pair = self._by_kind.get(kind)
            if pair is None:
                pair = self._kind_samplers(kind)
            zone_of = self.zone_of
            delay = next(pair[zone_of[src_i] != zone_of[dst_i]])
        else:
            # _latency's client leg, inlined.
            delay = next(self._client)
            if src_i != dst_i:
                delay += self._link_draw(kind, src_i, dst_i)
        copies = 0
        if self._slow:
            if self.transfers and client is None and kind != CLIENT:
                self._count_transfer(msg, src_i, dst_i, shard, from_key)
            if self._bandwidth is not None and lossy:
                delay += self._transmission(msg, src_i, dst_i, now)
            if self.degraded_pairs:
                effects = self.degraded.get(src_i * 65536 + dst_i)
                if effects:
                    for effect in effects:
                        if effect.loss and next(effect.uniforms) < effect.loss:
                            self._dropped_at_send += 1
                            self._drop(msg, "link")
                            return msg
                        if effect.latency is not None:
                            delay += next(effect.latency)
                        if effect.duplicate and next(effect.uniforms) < effect.duplicate:
                            copies += 1
            if self._fifo_last is not None and lossy:
                delay = self._in_order(src_i, dst_i, now, delay)
        # Pushed straight onto SimPy's queue, as Environment.schedule does, to spare a call
        # on the hottest path; ties still break in scheduling order.
        heappush(self._queue, (now + delay, NORMAL, next(self._eid), msg))
        if lossy and self._dup_draws is not None and next(self._dup_draws) < self._dup:
            copies += 1
        if copies and client is None and kind != CLIENT:
            for _ in range(copies):
                self._duplicate(msg)
        return msg

    @property
    def scheduled(self) -> int:
        """Messages put on the event queue so far: each is delivered, dropped on arrival,
        or still on its way."""
        return self.sent + self.duplicated - self._dropped_at_send

    def _kind_samplers(self, kind: str) -> tuple:
        """The (same zone, cross zone) latency draws of messages of ``kind``."""
        pair = tuple(self._samplers[cls].get(kind) or self._default[cls] for cls in (0, 1))
        self._by_kind[kind] = pair
        return pair

    def _update_slow(self) -> None:
        """Note whether bandwidth, a link fault or FIFO channels may change a delay (or a
        transfer is being counted)."""
        self._slow = (
            self._bandwidth is not None
            or self.degraded_pairs > 0
            or self._fifo_last is not None
            or bool(self.transfers)
        )

    def _count_transfer(self, msg: Message, src_i: int, dst_i: int, to, frm) -> None:
        size = msg.size
        if size is None:
            spec = self.spec
            size = spec.message_bytes_by_kind.get(msg.kind, spec.message_bytes)
        for transfer in self.transfers:
            if (dst_i, to) in transfer.to or (src_i, frm) in transfer.frm:
                transfer.messages += 1
                transfer.bytes += size

    def count_transfer(self, transfer: Transfer) -> None:
        """Start counting ``transfer`` (until :meth:`stop_transfer`)."""
        self.transfers.append(transfer)
        self._update_slow()

    def stop_transfer(self, transfer: Transfer) -> None:
        if transfer in self.transfers:
            self.transfers.remove(transfer)
        self._update_slow()

    def add_container(self, container) -> None:
        """A container joined the cluster (appended to the containers list, with the next
        index): its zone, and its side of every partition in force: the group holding most
        of its zone's containers, or no group (cut from nobody) if none of them is in one."""
        zones = {c.zone: code for c, code in zip(self.containers, self.zone_of, strict=False)}
        code = zones.get(container.zone)
        if code is None:
            code = max(self.zone_of, default=-1) + 1
        self.zone_of.append(code)
        for label, matrix in self.partitions:
            counts: dict[int, int] = {}
            for i, z in enumerate(self.zone_of[: len(label)]):
                if z == code:
                    counts[label[i]] = counts.get(label[i], 0) + 1
            unlisted = len(matrix) - 1
            counts.pop(unlisted, None)
            side = min(counts, key=lambda g: (-counts[g], g)) if counts else unlisted
            label.append(side)
        self.cut_version += 1

    def _transmission(self, msg: Message, src_i: int, dst_i: int, now: float) -> float:
        """Seconds until ``msg`` has left the link: waiting for it to be free, then size / bw."""
        size = msg.size
        if size is None:
            spec = self.spec
            size = spec.message_bytes_by_kind.get(msg.kind, spec.message_bytes)
        pair = src_i * 65536 + dst_i
        start = max(now, self._link_free.get(pair, 0.0))
        done = start + size / self._bandwidth
        self._link_free[pair] = done
        return done - now

    def _latency(self, msg: Message, src_i: int, dst_i: int) -> float:
        """One-way latency drawn for ``msg`` (the client leg, then the link if any)."""
        if msg._client is not None or msg.kind == CLIENT:
            # The client sits beside its home container: the client leg, then the link
            # from the home container to the node if they differ.
            delay = next(self._client)
            if src_i != dst_i:
                delay += self._link_draw(msg.kind, src_i, dst_i)
            return delay
        return self._link_draw(msg.kind, src_i, dst_i)

    def _link_draw(self, kind: str, src_i: int, dst_i: int) -> float:
        """A latency draw for a message of ``kind`` on the link from ``src_i`` to ``dst_i``
        (``send`` inlines this for a node's message, the hot path)."""
        pair = self._by_kind.get(kind)
        if pair is None:
            pair = self._kind_samplers(kind)
        return next(pair[self.zone_of[src_i] != self.zone_of[dst_i]])

    def _in_order(self, src_i: int, dst_i: int, now: float, delay: float) -> float:
        """``delay``, lengthened if needed so that the message arrives no earlier than the
        last one sent on the same ordered pair (FIFO), whatever delayed either."""
        pair = src_i * 65536 + dst_i
        arrival = now + delay
        last = self._fifo_last.get(pair, 0.0)
        if arrival < last:
            arrival = last
            delay = arrival - now
        self._fifo_last[pair] = arrival
        return delay

    def _duplicate(self, msg: Message) -> None:
        """Send an extra copy of ``msg`` (a node's message: a client's never is copied)."""
        copy = self._message()
        for slot in _COPIED:
            setattr(copy, slot, getattr(msg, slot))
        self.duplicated += 1
        now = self._env._now
        src_i, dst_i = msg._src_c.idx, msg._dst_c.idx
        delay = self._latency(copy, src_i, dst_i)
        if self._bandwidth is not None:
            delay += self._transmission(copy, src_i, dst_i, now)
        if self._fifo_last is not None:
            delay = self._in_order(src_i, dst_i, now, delay)
        heappush(self._queue, (now + delay, NORMAL, next(self._eid), copy))

    # -- arriving ------------------------------------------------------------------------

    def _deliver(self, msg: Message) -> None:
        dst_c = msg._dst_c
        src_c = msg._src_c
        if self.partitions and self._cut(src_c.idx, dst_c.idx):
            self._drop(msg, "partition")
            return
        client = msg._client
        if client is None:
            if not dst_c.up:
                self._drop(msg, "down")
                if msg.kind == CLIENT:
                    dst_c.refuse(msg)
                return
            rt = dst_c.runtimes.get(msg.shard)
            if rt is None and msg.kind != CLIENT:
                # No replica of that shard (or no such service) there: nobody to take it.
                self._drop(msg, "no-replica")
                return
        self.delivered += 1
        self._times.append(self._env._now)
        # The trace code of _trace_code, inlined on the hot path (the containers keep
        # their parts of it: the three parts have no bit in common, so + is |).
        self._codes.append((msg.id << 24) + src_c.trace_hi + dst_c.trace_lo)
        if self.record:
            self._log(msg, "delivered")
        if client is not None:
            client.on_reply(msg)
        elif dst_c.direct and rt is not None:
            # Container.receive's common case (no service time, no pause), and then
            # Runtime.dispatch's for a message that answers no rpc in flight, inlined.
            if msg.reply_to is None or not rt.pending:
                try:
                    if msg.kind == CLIENT:
                        rt.node.on_client(msg.body)
                    else:
                        rt.node.on_message(msg)
                except PolicyError:
                    raise
                except Exception as exc:
                    raise rt.failure(exc, msg) from exc
            else:
                rt.dispatch(msg)
        else:
            dst_c.receive(msg)

    def _drop(self, msg: Message, reason: str) -> None:
        self.dropped[reason] += 1
        self._times.append(self._env._now)
        self._codes.append(
            -_trace_code(msg.id, msg._src_c.idx, msg._dst_c.idx) * 8 - _DROP_CODE[reason]
        )
        if self.record:
            self._log(msg, f"dropped:{reason}")

    def _log(self, msg: Message, outcome: str) -> None:
        self.log.append(
            (
                msg.id,
                msg.src,
                msg.dst,
                msg.kind,
                _json_safe(msg.body),
                msg.reply_to,
                msg.shard,
                msg._sent,
                self._env._now,
                outcome,
            )
        )

    # -- partitions ----------------------------------------------------------------------

    def _cut(self, a: int, b: int) -> bool:
        """Whether a partition in force stops container ``a`` reaching container ``b``."""
        # A loop, not any() over a generator: this runs for every message during a partition.
        for label, blocked in self.partitions:  # noqa: SIM110
            if blocked[label[a]][label[b]]:
                return True
        return False

    def reachable(self, a: int, b: int) -> bool:
        """Whether messages from container index ``a`` reach ``b`` (partitions only)."""
        return not (self.partitions and self._cut(a, b))

    def add_partition(self, groups: list[list[int]], blocked: list[tuple[int, int]]) -> object:
        """Start a partition: ``groups`` of container indices, and the ordered pairs of
        groups that cannot talk (containers in no group form one more group, blocked from
        nobody). Returns a handle for :meth:`remove_partition`. Partitions stack."""
        label = [len(groups)] * len(self.containers)
        for g, members in enumerate(groups):
            for idx in members:
                label[idx] = g
        matrix = [[False] * (len(groups) + 1) for _ in range(len(groups) + 1)]
        for i, j in blocked:
            matrix[i][j] = True
        partition = (label, matrix)
        self.partitions.append(partition)
        self.cut_version += 1
        return partition

    def remove_partition(self, partition: object) -> None:
        """End a partition :meth:`add_partition` started."""
        self.partitions.remove(partition)
        self.cut_version += 1

    def add_link_effect(self, pairs: list[tuple[int, int]], effect: LinkEffect) -> None:
        """Apply a link fault's ``effect`` to each ordered pair of container indices."""
        for a, b in pairs:
            effects = self.degraded.get(a * 65536 + b)
            if effects is None:
                self.degraded[a * 65536 + b] = [effect]
                self.degraded_pairs += 1
            else:
                effects.append(effect)
        self._update_slow()

    def remove_link_effect(self, pairs: list[tuple[int, int]], effect: LinkEffect) -> None:
        """Undo :meth:`add_link_effect`."""
        for a, b in pairs:
            effects = self.degraded[a * 65536 + b]
            effects.remove(effect)
            if not effects:
                del self.degraded[a * 65536 + b]
                self.degraded_pairs -= 1
        self._update_slow()

    def counters(self) -> dict[str, Any]:
        """The message counters for the summary."""
        return {
            "sent": self.sent,
            "delivered": self.delivered,
            "dropped": sum(self.dropped.values()),
            "duplicated": self.duplicated,
            "dropped_by_reason": dict(self.dropped),
        }

    def trace_records(self) -> TraceRecords:
        """The recorded messages (``record=True``) as dicts for ``messages.jsonl``: an
        iterable (read back from disk as it goes) with a length."""
        return TraceRecords(self.log)


_TRACE_KEYS = (
    "id",
    "src",
    "dst",
    "kind",
    "body",
    "reply_to",
    "shard",
    "sent_at",
    "time",
    "outcome",
)


class Spool:
    """A list of records that moves them to a temporary file every ``CHUNK`` records, so a
    traced run of millions of messages keeps only one chunk in memory. Append, iterate
    (in order, from the file then memory) and take its length; the file is deleted with
    the spool."""

    CHUNK = 100_000

    def __init__(self) -> None:
        self._memory: list[tuple] = []
        self._file = None
        self._spilled = 0

    def append(self, record: tuple) -> None:
        self._memory.append(record)
        if len(self._memory) >= self.CHUNK:
            self._spill()

    def _spill(self) -> None:
        import pickle
        import tempfile

        if self._file is None:
            # Closed with the spool (it is deleted then); no context to hold it in.
            self._file = tempfile.TemporaryFile(prefix="capsim-trace-")  # noqa: SIM115
        self._file.seek(0, 2)
        pickle.dump(self._memory, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self._spilled += len(self._memory)
        self._memory = []

    def __len__(self) -> int:
        return self._spilled + len(self._memory)

    def __iter__(self):
        import pickle

        if self._file is not None:
            self._file.seek(0)
            read = 0
            while read < self._spilled:
                chunk = pickle.load(self._file)
                read += len(chunk)
                yield from chunk
        yield from list(self._memory)


class TraceRecords:
    """The message trace as dicts (``messages.jsonl`` lines), read lazily from a spool."""

    def __init__(self, spool: Spool) -> None:
        self._spool = spool

    def __len__(self) -> int:
        return len(self._spool)

    def __iter__(self):
        for row in self._spool:
            yield dict(zip(_TRACE_KEYS, row, strict=True))


def _trace_code(msg_id: int, src: int, dst: int) -> int:
    """One int64 per message fate: its id and its ends (12 bits each, wrapping past 4096)."""
    return (msg_id << 24) | ((src & 0xFFF) << 12) | (dst & 0xFFF)


def uniforms(engine: Engine, name: str, block: int = 4096):
    """Endless uniform draws on [0, 1) from stream ``name``, in blocks (as ``draws``)."""
    rng = engine.stream(name)

    def blocks():
        while True:
            yield rng.random(block).tolist()

    return chain.from_iterable(blocks())


def _json_safe(value: Any) -> Any:
    """A JSON-ready copy of a message body (falls back to ``repr`` for odd objects)."""
    try:
        return json.loads(json.dumps(value, default=_default))
    except (TypeError, ValueError):
        return repr(value)


def _default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if hasattr(value, "to_json"):
        return value.to_json()
    return repr(value)
