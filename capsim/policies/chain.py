"""Chain replication (van Renesse & Schneider, OSDI 2004) with a configuration manager.

CAP claim: **CP**. Each shard's replicas form a chain, the shard's membership in order
(``peers``): clients send updates (write, CAS, add) to the *head* and reads to the *tail*
(:meth:`Chain.route`). The head puts an update in its log and every node appends what its
predecessor sends, makes it durable (a sync) and only then forwards it to its successor;
the client's request travels down the chain with its entry and the tail, once the entry is
on its own disk, applies it and answers the client. So an update is acknowledged only when
every member of the chain has it on disk, and a read served by the tail sees exactly the
updates acknowledged so far: the history is linearizable, and no acknowledged write is
lost while at least one member of the chain survives (every member's log holds every
acknowledged entry). The price is availability: a chain cannot route around a failed
member, so while a member is down or cut off, updates stop (and reads too if it is the
tail) until the manager reconfigures the chain, about ``failure_timeout`` later; when the
manager itself is unreachable nothing can be repaired, and a failed member stops the
service entirely until the manager is back. Under a partition the chain lives wherever
the manager is: the members the manager cannot hear are removed, whether or not they are
a majority (the chain keeps working with one member), so the side with the manager is
served once the chain is reconfigured and the other side is not served at all, whatever
the sizes of the sides.

Invariants claimed: ``linearizable``, ``no-lost-writes``, ``convergence`` (after the final
heal every member is back in the chain and applies the same log), ``single-leader`` (one
head per configuration: a node accepts updates only as the first member of the
configuration it knows, and an update is acknowledged only after every member of that
configuration has taken it, so an old head cut off from the rest gets nothing
acknowledged once its successor has moved on) and
``state-machine-safety`` (a node applies only entries the tail has acknowledged, and
those are the same at every node: every node's applied log is a prefix of every other's).

The protocol, as in the paper. Each node keeps its log in ``self.durable`` (the paper's
*Hist*), the index of the first entry it has not yet forwarded (entries before it and not
yet acknowledged by the tail are the paper's *Sent*) and the index up to which the tail
has acknowledged (its commit index). The tail acknowledges upstream ("ack": its synced
length and commit index), and each node relays the commit index to its predecessor as it
learns it, applying committed entries to its state machine as they commit. Entries carry
no numbers of their own: an append names its first index, and a node takes only entries
that continue its log, so every member's log is a prefix of its predecessor's. Request
ids dedup retries: the head looks a request id up in its log and, if the entry is already
there, waits for it to commit and answers itself instead of appending it again.

Configuration. A manager, the service ``manager`` that runs on every container but acts
only on one (the parameter ``manager``; by default the last container that holds no
replica of the shard, or the last container when every container holds one: give it a
container of its own, or its crash is also a member's), owns each shard's chain. Members
send it a heartbeat ("ping") every ``heartbeat_interval``; its answer ("pong") carries the
current configuration (a number, the chain, and the member joining it, if any). The
configuration number is each node's ``term``, and every message between members carries
it: a node takes appends and acknowledgements only from its neighbours in the
configuration it knows and ignores those of other configurations.

* A member not heard from for ``failure_timeout`` is removed (a manager that was cut off
  itself does not remove every member when it gets back: see below). If it
  was the head, the second member is the new head; if the tail, its predecessor is the
  new tail and at once acknowledges what it holds; if in the middle, its predecessor
  resends its successor everything after the commit index (the successor takes what it
  lacks). The new configuration is synced to the manager's disk before anyone hears of it.
* A restarted member reports itself inactive and is removed at once (its volatile state,
  its *Sent* and the requests it was carrying, is gone).
* A node outside the chain that pings is added at the end, one at a time: it drops the
  entries after its commit index (the only ones that can differ from the chain's), the
  current tail, now its predecessor, stops acting as tail and sends it the rest of its
  log, and the newcomer becomes the tail, serving reads, once it has everything its
  predecessor had synced when it sent. A newcomer that makes no progress for
  ``failure_timeout`` is removed again (after its lease has run out) and left out for a
  while.
* If every member of the chain is gone and one of them comes back, the manager restarts
  the chain from it alone (its log holds every acknowledged entry) and the rest rejoin.

Leases and reads. The tail answers a read from its state only while it holds a lease: a
pong that grants the ping it answers lets the member serve for ``lease`` from the moment
it *sent* that ping (measured with a timer, so clock jumps do not stretch it), and the
manager removes a member only ``failure_timeout`` (longer than ``lease``) after its last
grant, so a tail cut off from the manager has stopped serving from its lease before
another node can become tail. A tail without a lease (the manager unreachable, down or
paused) still serves reads, one round up the chain later: it notes the value when the
read arrives and sends a "barrier" up the chain, every member checks that it has not
moved to a later configuration, and the head confirms to the tail, which then answers.
A later configuration cannot commit anything without a member of this one having moved
to it first, so the value noted was current when the read arrived. Leases assume that no
two clocks run at rates more than ``failure_timeout / lease`` apart (1.5 by default);
clock jumps do not matter.

What a partition does. While the chain is intact, updates and reads continue whether or
not the manager can be reached (reads by the barrier when the tail's lease has run out).
A member cut off from the manager but alive is removed after ``failure_timeout`` like a
crashed one (the manager cannot tell them apart). Before that its lease runs out, so as a
tail it serves reads only by the barrier, which fails as soon as any member has moved
on; as a head it still takes updates, but they are acknowledged only if they reach the
tail before its successor moves on (they are then in the new chain's logs), otherwise
their clients time out. Once it hears from the manager again it learns it is out, and
it rejoins at the tail. A
failure while the manager is cut off cannot be repaired: updates stop (the chain is
broken), and so do reads (the barrier cannot pass a failed member) until the manager is
back; then the failed member is removed three heartbeat intervals after the manager hears
the rest again. (The manager removes a member only once ``failure_timeout`` has passed
since it last granted it a lease *and* it has heard from other members in three
heartbeat intervals since, time for every live member to ping: a manager that was cut
off itself does not drop every member when it gets back.) A crash of the manager's own
container is the same as cutting it off, until it restarts from its configuration on
disk; a restarted manager waits a full ``failure_timeout`` before removing anyone.

FIFO channels. The protocol is written for FIFO links, as the paper assumes (scenarios set
``network: {fifo: true}``). It stays safe without them: an append that overtakes an
earlier one is held until the gap closes (or refused with the receiver's length, and
resent), acknowledgements carry lengths that only grow, and pings, configurations and
barriers are numbered. What is lost without FIFO is speed: held and resent appends.

Deviation from the paper. When the tail is removed, the paper's new tail answers the
clients of the updates it had sent to the old tail. capsim lets a request be answered by
another node than the one it reached (the tail answers a request the head received), but
only once, and the old tail may have answered some of those before it failed (or, cut
off and alive, may still answer them). So a node that becomes the tail answers only
entries that come after everything an earlier tail can hold: entries appended to its log
from then on (after a removal), or entries past what its predecessor had synced when it
first heard from it (a newcomer). The other entries commit all the same; their clients
see a timeout (``info``). A crashed middle member costs nothing of the kind: its
predecessor resends the requests with their entries, and the unchanged tail answers
each once.

Membership changes (scale actions) go through the manager, which already adds and
removes members: a replica a scale action places on a container starts outside the chain
(not ready for clients), pings the manager, and is added at the tail one at a time, after
copying the tail's log, like a recovered member (the copy is ordinary appends). A member
whose container no longer hosts the shard is removed from the chain (once no newcomer is
joining, and only while another working member remains) and then stopped. The manager
stays on the container the rule above chose at boot (``hosts(initial=True)``): removing
that container leaves the chains without a manager.

Roles: ``head``, ``middle``, ``tail`` (a chain of one reports ``head``), ``joining`` for
a newcomer that has not caught up, and ``standby`` for a replica outside the chain or
restarted and not yet back. No replica reports ``primary`` or ``leader``, so fault targets
``primary``/``leader`` find no container under this policy (the nemesis records them as
skipped): name containers instead.

Parameters (see :class:`Params`): ``manager``, ``heartbeat_interval`` (50 ms),
``failure_timeout`` (300 ms), ``lease`` (200 ms), ``retry_interval`` (50 ms),
``max_batch`` (256).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from capsim.policies.commands import COMMAND, apply_command, read_value
from capsim.schema import Interval
from capsim.sim.node import Message, Node, Request

__all__ = ["Chain", "Manager", "Params"]

# Fields of a log entry: (op, key, value, request id).
OP, KEY, VALUE, REQ = range(4)
#: Bytes of an append copying the log to a newcomer: a header and so much per entry.
HEADER_BYTES, ENTRY_BYTES = 64, 100

#: Appends held while an earlier one is missing (beyond this, refuse and ask for a resend).
MAX_EARLY = 64


@dataclass(frozen=True, kw_only=True)
class Params:
    """Parameters of :class:`Chain`.

    ``manager``: the container whose ``manager`` service manages the chains (default: the
    last container holding no replica of the shard, else the last container).
    ``heartbeat_interval``: seconds between a member's pings to the manager and between
    the manager's checks. ``failure_timeout``: a member not heard from for this long is
    removed from the chain: what a failure costs is this plus up to one heartbeat
    interval and a sync of the manager's disk (300 to 350 ms by default). ``lease``: how
    long after sending a ping a member may serve reads from its own state if the manager
    answers it; shorter than ``failure_timeout`` (their ratio bounds the clock drift
    tolerated) and longer than ``heartbeat_interval`` (a lease is renewed only if the
    next ping's answer comes back before it runs out). ``retry_interval``: seconds
    between checks for appends a successor has not acknowledged (resent after two checks
    without progress); when it equals ``heartbeat_interval`` one timer does both.
    ``max_batch``: most entries in one append message. Intervals are at least 1 ms.
    """

    manager: str | None = None
    heartbeat_interval: Interval = 0.05
    failure_timeout: Interval = 0.3
    lease: Interval = 0.2
    retry_interval: Interval = 0.05
    max_batch: int = 256

    def __post_init__(self):
        if not 1 <= self.max_batch <= 1_000_000:
            raise ValueError(f"max_batch must be between 1 and 1000000, got {self.max_batch}")
        if not self.lease < self.failure_timeout:
            raise ValueError(
                f"lease ({self.lease} s) must be shorter than failure_timeout "
                f"({self.failure_timeout} s), or a removed tail could still serve reads"
            )
        if not self.heartbeat_interval < self.lease:
            raise ValueError(
                f"heartbeat_interval ({self.heartbeat_interval} s) must be shorter than "
                f"lease ({self.lease} s), or leases lapse between heartbeats"
            )


def manager_of(params: Params, containers: tuple[str, ...], hosts: tuple[str, ...]) -> str:
    """The container whose manager service manages a shard placed on ``hosts``."""
    if params.manager is not None:
        if params.manager not in containers:
            raise ValueError(
                f"policy parameter manager={params.manager!r} names no container "
                f"(containers: {', '.join(containers)})"
            )
        return params.manager
    outside = [c for c in containers if c not in hosts]
    return (outside or list(containers))[-1]


# -- the configuration manager -----------------------------------------------------------------


class _Shard:
    """The manager's view of one shard's chain."""

    __slots__ = (
        "shard",
        "config",
        "chain",
        "joiner",
        "since",
        "revived",
        "published",
        "busy",
        "ticks",
        "live",
        "heard",
        "granted",
        "info",
        "last_ping",
        "evicting",
        "barred",
        "added",
    )


#: A silent member is removed only once the manager has heard from others for this many
#: heartbeat intervals since its last grant (time to ping after the manager reconnects).
HEARD_INTERVALS = 3


class Manager(Node):
    """The configuration manager: a service on every container, acting on one.

    It keeps each shard's configuration (number, chain, joining member) on its disk,
    hears the members' pings, grants their leases, removes failed members, adds
    recovered ones at the tail, and publishes every change (``set_members`` for clients,
    a "config" message for the replicas) once it is durable. See the module docstring.

    Time is counted in its heartbeat intervals (``ticks``), never read from its clock. A
    member is removed once ``k`` intervals have passed since its last grant (more than
    ``failure_timeout``: its lease has run out) and the manager has heard from some
    member of the shard in at least ``HEARD_INTERVALS`` of them (``live`` ticks).
    """

    def on_start(self) -> None:
        self.role = None
        self.shards: dict[int, _Shard] = {}
        self.not_mine: set[int] = set()
        interval = self.params.heartbeat_interval
        ratio = self.params.failure_timeout / interval
        # Removal after k intervals without a grant: more than failure_timeout has passed.
        self.k = int(ratio) + (1 if ratio > int(ratio) else 0) + 1
        self.k_heard = min(self.k, HEARD_INTERVALS)
        self.set_timer(interval, self.tick)

    def state(self, shard: int) -> _Shard | None:
        """This manager's state for ``shard``, or None if another container manages it."""
        st = self.shards.get(shard)
        if st is not None or shard in self.not_mine:
            return st
        boot = manager_of(
            self.params, self.containers(initial=True), self.hosts(shard, initial=True)
        )
        if boot != self.id:
            self.not_mine.add(shard)
            return None
        self.role = "manager"
        st = _Shard()
        st.shard = shard
        record = self.durable.get(f"shard.{shard}")
        if record is None:
            record = (0, tuple(self.members(shard)), None, 0, None)
        st.config, st.chain, st.joiner, st.since, st.revived = record
        st.published = record
        st.busy = False
        st.ticks = st.live = 0
        st.heard = False
        # Count every member as granted just now: a restarted manager waits a full
        # failure_timeout before removing anyone (a lease it granted before may be running).
        st.granted = dict.fromkeys(st.chain, (0, 0))
        st.info = {}  # member -> (config, active, synced, live tick of progress, tick)
        st.last_ping = {}
        st.evicting = set()
        st.barred = {}
        st.added = 0
        self.shards[shard] = st
        return st

    def on_message(self, msg: Message) -> None:
        if msg.kind == "ping":
            self.on_ping(msg)

    def on_ping(self, msg: Message) -> None:
        shard, boot, seq, config, active, synced = msg.body
        st = self.state(shard)
        if st is None:
            return
        src = msg.src
        if (boot, seq) <= st.last_ping.get(src, (0, 0)):
            return  # older than one already heard
        st.last_ping[src] = (boot, seq)
        st.heard = True
        grant = src not in st.evicting
        if grant:
            st.granted[src] = (st.ticks, st.live)
        previous = st.info.get(src)
        progress = st.live if previous is None or synced > previous[2] else previous[3]
        st.info[src] = (config, active, synced, progress, st.ticks)
        self.reply(msg, "pong", (shard, seq, grant, *st.published))
        if st.busy or src not in st.chain:
            return
        if not active and src != st.joiner and not self.waiting_revived(st, src):
            # Restarted: its volatile state is gone. Out at once, if someone can carry on.
            if any(self.working(st, m) for m in st.chain if m != src):
                self.reconfigure(st, [m for m in st.chain if m != src], st.joiner)
        elif src == st.joiner and active and config >= st.since:
            st.barred.pop(src, None)
            self.reconfigure(st, st.chain, None, bump=False)

    def silent(self, st: _Shard, member: str) -> bool:
        """Not granted for more than failure_timeout, while others were heard."""
        ticks, live = st.granted.get(member, (-(10**9), -(10**9)))
        return st.ticks - ticks >= self.k and st.live - live >= self.k_heard

    def waiting_revived(self, st: _Shard, member: str) -> bool:
        """The member the chain restarts from, not yet told so."""
        info = st.info.get(member)
        return member == st.revived and info is not None and info[0] < st.config

    def working(self, st: _Shard, member: str) -> bool:
        """Not silent, and reporting itself active (not the newcomer)."""
        info = st.info.get(member)
        return (
            member != st.joiner
            and not self.silent(st, member)
            and info is not None
            and (info[1] or self.waiting_revived(st, member))
        )

    def tick(self) -> None:
        for shard in sorted(self.shards):
            self.check(self.shards[shard])
        self.set_timer(self.params.heartbeat_interval, self.tick)

    def check(self, st: _Shard) -> None:
        """Remove failed members, evict a stuck newcomer, add one that wants to join."""
        st.ticks += 1
        if st.heard:
            st.live += 1
            st.heard = False
        if st.busy:
            return
        chain = st.chain
        failed = [m for m in chain if self.silent(st, m)]
        if failed:
            alive = [m for m in chain if m not in failed]
            if any(self.working(st, m) for m in alive):
                joiner = st.joiner if st.joiner in alive else None
                self.reconfigure(st, alive, joiner)
                return
        if not any(self.working(st, m) for m in chain):
            # No working member left: if every member has failed or restarted, restart
            # the chain from one that came back (every member's log holds every
            # acknowledged entry, and the silent ones' leases have run out).
            back = [
                m
                for m in chain
                if m != st.joiner
                and not self.silent(st, m)
                and (info := st.info.get(m)) is not None
                and not info[1]
            ]
            if back and all(m in back or m == st.joiner or self.silent(st, m) for m in chain):
                self.reconfigure(st, [back[0]], None, revived=back[0])
            return
        joiner = st.joiner
        hosts = self.hosts(st.shard)
        if joiner is not None and joiner not in hosts:
            # A scale action took the shard from the newcomer's container: stop adding it.
            self.reconfigure(st, [m for m in chain if m != joiner], None)
            return
        if joiner is not None:
            info = st.info.get(joiner)
            stuck = info is None or st.live - info[3] >= self.k
            if stuck and st.live - st.added >= self.k and joiner not in st.evicting:
                # Stop granting its lease; it is removed once the last one has run out,
                # and not taken back for a while.
                st.evicting.add(joiner)
                st.barred[joiner] = st.ticks + 4 * self.k
            return
        rest = [m for m in chain if m in hosts]
        if len(rest) < len(chain) and any(self.working(st, m) for m in rest):
            # Members whose containers a scale action took the shard from: out of the chain
            # (then stopped), once the rest can carry on.
            self.reconfigure(st, rest, None)
            return
        for host in hosts:
            if host in chain or st.barred.get(host, -1) > st.ticks:
                continue
            info = st.info.get(host)
            if info is not None and not info[1] and st.ticks - info[4] <= 1:
                st.added = st.live
                self.reconfigure(st, [*chain, host], host)
                return

    def reconfigure(
        self,
        st: _Shard,
        chain: list[str] | tuple[str, ...],
        joiner: str | None,
        *,
        bump: bool = True,
        revived: str | None = None,
    ) -> None:
        """Make ``chain`` the shard's configuration: on disk first, then published."""
        if bump:
            st.config += 1
        if joiner is not None and joiner != st.joiner:
            st.since = st.config
        chain = tuple(chain)
        for member in st.chain:
            if member not in chain:
                st.evicting.discard(member)
        for member in chain:
            st.granted.setdefault(member, (st.ticks, st.live))
        st.chain, st.joiner, st.revived = chain, joiner, revived
        record = (st.config, chain, joiner, st.since, revived)
        self.durable[f"shard.{st.shard}"] = record
        st.busy = True
        self.sync(self.publish, st.shard, record)

    def publish(self, shard: int, record: tuple) -> None:
        st = self.shards[shard]
        st.busy = False
        st.published = record
        config, chain, joiner, _, revived = record
        self.log(
            f"shard {shard} configuration {config}: {' '.join(chain)}"
            + (f" ({joiner} joining)" if joiner else "")
            + (f" (restarted from {revived})" if revived else "")
        )
        self.set_members(chain, shard=shard)
        for host in self.hosts(shard):
            self.send(host, "config", (shard, *record), shard=shard)


# -- a chain member ----------------------------------------------------------------------------


class Chain(Node):
    """Chain replication per shard with a configuration manager (CP); see the module."""

    Params = Params
    invariants = (
        "linearizable",
        "no-lost-writes",
        "convergence",
        "single-leader",
        "state-machine-safety",
    )
    services = {"manager": Manager}

    @classmethod
    def route(cls, op: str, members: tuple[str, ...], home: str, params: Any) -> Any:
        """Updates to the head, reads to the tail."""
        return members[-1] if op == "read" else members[0]

    def on_start(self) -> None:
        params = self.params
        durable = self.durable
        self.entries = durable.log("log")
        self.data: dict[str, Any] = {}
        self.version: dict[str, int] = {}
        self.applied = 0
        self.manager = manager_of(
            params, self.containers(initial=True), self.hosts(initial=True)
        )  # the manager chosen at boot, wherever scale actions have moved the shard since
        first_boot = "boot" not in durable
        self.boot = durable.get("boot", 0) + 1
        durable["boot"] = self.boot
        self.commit = min(durable.get("commit", 0), len(self.entries))
        self.synced = len(self.entries)  # after a restart, the log read back is on disk
        self.cuts = 0  # truncations so far: a sync issued before one covers no new entry
        # The state machine (data, version, applied above): committed entries in order.
        self.outcomes: dict[int, bool] = {}  # CAS entries: did it compare equal?
        self.reqs: dict[int, Request] = {}  # requests travelling with uncommitted entries
        self.waiting: dict[int, list[Request]] = {}  # retries the head answers itself
        self.apply(self.commit, answering=False)
        # Configuration: a first boot is a member of the initial chain; a restarted node
        # has lost what it was doing and waits to be taken back.
        if first_boot and self.id not in self.peers:
            first_boot = False  # placed here by a scale action: join like a restarted node
            self.set_ready(False)
        if first_boot:
            self.active = True
            self.config, self.chain, self.joiner = 0, tuple(self.peers), None
            self.activated_in: int | None = 0
        else:
            self.active = False
            self.config, self.chain, self.joiner = -1, (), None
            self.activated_in = None
        self.term = max(self.config, 0)
        self.seen: dict[Any, int] | None = None  # the head's request ids -> log index
        self.held: list[Request] = []  # requests for a role this node is about to take
        self.fwd = 0  # next index to send the successor
        self.succ_synced = 0  # the successor's synced length, as last acknowledged
        self.succ_heard = True
        self.stuck = 0
        self.early: dict[int, Message] = {}  # appends that arrived ahead of a gap
        self.early_ticks = 0
        self.future: list[Message] = []  # appends of a configuration not yet known
        self.handoff: int | None = None  # a newcomer: the length to reach before serving
        # As tail, answer no request of an entry below this: an earlier tail may have.
        self.quiet: int | None = 0 if first_boot else len(self.entries)
        self.quiet_from: str | None = None
        # Leases: pings whose timer has not run out (True once granted).
        self.ping_seq = 0
        self.pings: dict[int, bool] = {}
        self.granted = 0
        # Reads waiting for a barrier.
        self.barrier_id = 0
        self.barrier: tuple[int, int, list] | None = None
        self.barrier_next: list[tuple[Request, Any]] = []
        self.pred: str | None = None
        self.succ: str | None = None
        self.member = False
        self.positions()
        # One timer for pings and resends when their intervals are the same (the default).
        self.merged = params.retry_interval == params.heartbeat_interval
        if not self.merged:
            self.set_timer(params.retry_interval, self.tick)
        # The boot number reaches the disk before the manager hears it.
        self.sync(self.booted)

    def booted(self) -> None:
        self.ping()

    def on_hosts_changed(self) -> None:
        """Nothing here: the manager sees the new hosts (``hosts``) at its next check and
        changes the chain itself (see the module docstring)."""

    # -- configuration -------------------------------------------------------------------------

    def positions(self) -> None:
        """Neighbours and role from the configuration this node knows."""
        chain = self.chain
        if self.id in chain and (self.active or self.joiner == self.id):
            i = chain.index(self.id)
            self.member = True
            self.pred = chain[i - 1] if i else None
            self.succ = chain[i + 1] if i + 1 < len(chain) else None
            if not self.active:
                self.role = "joining"
            elif self.pred is None:
                self.role = "head"
            elif self.succ is None:
                self.role = "tail"
            else:
                self.role = "middle"
        else:
            self.member = False
            self.pred = self.succ = None
            self.role = "standby"
        self.is_head = self.member and self.active and self.pred is None
        self.is_tail = self.member and self.succ is None  # commits (a newcomer too)
        self.serves = self.is_tail and self.active  # serves reads
        if not self.is_head:
            self.seen = None
        elif self.seen is None:
            self.seen = {entry[REQ]: i for i, entry in enumerate(self.entries)}

    def adopt(
        self, config: int, chain: tuple, joiner: str | None, since: int, revived: str | None
    ) -> None:
        """Move to configuration ``config`` if it is newer than the one this node knows.
        ``joiner`` is the member being added at the tail since configuration ``since``;
        ``revived`` the member the chain restarts from, if it lost every other."""
        if config <= self.config:
            return
        old_pred, old_succ = self.pred, self.succ
        was_member = self.member
        self.config = self.term = config
        self.chain, self.joiner = chain, joiner
        me = self.id
        if me not in chain:
            if self.active:
                self.deactivate()
        elif joiner == me and (self.activated_in is None or self.activated_in < since):
            # Taken back at the tail: start over from the commit index.
            if self.active:
                self.deactivate()
            self.join()
        elif revived == me and self.activated_in != config:
            # The chain restarts from this node alone: everything in its log stands.
            self.active = True
            self.activated_in = config
            self.synced = len(self.entries)
            self.quiet = len(self.entries)
        self.positions()
        if self.member and self.active and (not was_member or self.succ != old_succ):
            self.new_successor()
        if self.pred != old_pred:
            self.early.clear()
        if not self.serves:
            self.drop_barrier_reads()
        future, self.future = self.future, []
        for msg in future:
            if msg.body[0] == config:
                self.on_append(msg)
            elif msg.body[0] > config:
                self.future.append(msg)
        self.release()

    def new_successor(self) -> None:
        """The successor changed: become the tail, or bring the new successor up to date."""
        self.succ_synced = 0
        self.stuck = 0
        if self.succ is None:
            # The removed tail (alive and out of touch, perhaps) may have answered the
            # requests of any entry this node holds: answer only entries appended from now
            # on (the others commit all the same; their clients time out).
            self.quiet = len(self.entries)
            self.fwd = self.synced
            self.commit_to(self.synced)
            self.ack()
        else:
            self.succ_heard = False
            self.fwd = min(self.commit, self.synced)
            self.succ_synced = self.fwd
            self.forward(probe=True)

    def deactivate(self) -> None:
        """Out of the chain (removed, or taken back as a newcomer): stop serving."""
        self.active = False
        self.activated_in = None
        self.reqs.clear()
        self.waiting.clear()
        self.seen = None
        self.handoff = None
        self.fwd = self.succ_synced = 0
        self.early.clear()

    def join(self) -> None:
        """Prepare to be added at the tail: keep only what is certainly committed."""
        self.handoff = None
        self.quiet = None
        self.quiet_from = None
        self.reqs.clear()
        self.early.clear()
        if len(self.entries) > self.commit:
            self.entries.truncate(self.commit)
            self.cuts += 1
        if self.synced > self.commit:
            self.synced = self.commit

    def activate(self) -> None:
        """A newcomer has caught up with its predecessor: it is the tail now."""
        self.set_ready(True)
        self.active = True
        self.activated_in = self.config
        self.handoff = None
        self.positions()
        self.release()

    # -- clients -------------------------------------------------------------------------------

    def on_client(self, req: Request) -> None:
        peers = self.peers
        if req.op == "read":
            if not (self.serves and peers[-1] == self.id):
                self.hold_or_redirect(req, peers[-1])
            elif self.granted:
                self.ok(req, self.read(req.key))
            else:
                self.read_by_barrier(req)
            return
        if not (self.is_head and peers[0] == self.id):
            self.hold_or_redirect(req, peers[0])
            return
        index = self.seen.get(req.id)
        if index is not None:  # a retry or duplicate of a request already in the log
            if index < self.commit:
                self.answer(req, self.outcomes.get(index, True))
            else:
                self.waiting.setdefault(index, []).append(req)
            return
        value = tuple(req.value) if req.op == "cas" else req.value
        entries = self.entries
        index = len(entries)
        entries.append((req.op, req.key, value, req.id))
        self.seen[req.id] = index
        self.reqs[index] = req
        self.sync(self.on_synced, index + 1, self.cuts)

    def hold_or_redirect(self, req: Request, target: str) -> None:
        """Clients route by the published membership, which may run ahead of what this node
        has heard: hold a request meant for this node until it catches up."""
        if target == self.id:
            self.held.append(req)
        else:
            self.redirect(req, target)

    def release(self) -> None:
        """Handle the held requests again (after a change of configuration or role)."""
        if self.held:
            held, self.held = self.held, []
            for req in held:
                self.on_client(req)

    def read(self, key: str) -> Any:
        return read_value(self.data, key)

    def answer(self, req: Request, matched: bool) -> None:
        if matched:
            self.ok(req, req.value)
        else:
            self.fail(req, "mismatch")

    # -- reads without a lease: a barrier up the chain -----------------------------------------

    def read_by_barrier(self, req: Request) -> None:
        self.barrier_next.append((req, self.read(req.key)))
        if self.barrier is None:
            self.send_barrier()

    def send_barrier(self) -> None:
        reads, self.barrier_next = self.barrier_next, []
        if not reads:
            return
        if self.pred is None:
            for req, value in reads:  # a chain of one: nobody else can commit
                self.ok(req, value)
            return
        self.barrier_id += 1
        self.barrier = (self.barrier_id, self.config, reads)
        self.send(self.pred, "barrier", (self.config, self.chain, self.barrier_id, self.id))
        self.set_timer(self.params.failure_timeout, self.barrier_timeout, self.barrier_id)

    def on_barrier(self, msg: Message) -> None:
        config, chain, bid, tail = msg.body
        if not self.active or self.config > config or self.id not in chain:
            self.send(tail, "barrier_no", bid)
            return
        i = chain.index(self.id)
        if i == 0:
            self.send(tail, "barrier_ok", bid)
        else:
            self.send(chain[i - 1], "barrier", msg.body)

    def barrier_done(self, bid: int, confirmed: bool) -> None:
        barrier = self.barrier
        if barrier is None or barrier[0] != bid:
            return
        self.barrier = None
        for req, value in barrier[2]:
            if confirmed:
                self.ok(req, value)
            else:
                self.fail(req, "unconfirmed")
        if self.serves:
            self.send_barrier()
        else:
            self.drop_barrier_reads()

    def barrier_timeout(self, bid: int) -> None:
        self.barrier_done(bid, False)

    def drop_barrier_reads(self) -> None:
        """No longer the tail: send waiting reads where the membership says."""
        reads = self.barrier_next
        if self.barrier is not None:
            reads = self.barrier[2] + reads
            self.barrier = None
        self.barrier_next = []
        for req, _ in reads:
            self.on_client(req)

    # -- replication ---------------------------------------------------------------------------

    def on_message(self, msg: Message) -> None:
        kind = msg.kind
        if kind == "append":
            self.on_append(msg)
        elif kind == "ack":
            self.on_ack(msg)
        elif kind == "pong":
            self.on_pong(msg.body)
        elif kind == "config":
            self.adopt(*msg.body[1:])
        elif kind == "nack":
            self.on_nack(msg)
        elif kind == "barrier":
            self.on_barrier(msg)
        elif kind == "barrier_ok":
            self.barrier_done(msg.body, True)
        elif kind == "barrier_no":
            self.barrier_done(msg.body, False)

    def on_synced(self, length: int, cuts: int) -> None:
        """The disk holds the first ``length`` entries (unless the log was cut since)."""
        if cuts != self.cuts or length <= self.synced:
            return
        self.synced = length
        if not self.member:
            return
        if self.succ is None:
            if length > self.commit:
                self.commit_to(length)
                if self.pred is not None:
                    self.send(self.pred, "ack", (self.config, length, self.commit))
            if not self.active and self.handoff is not None and length >= self.handoff:
                self.activate()
        elif self.active:
            self.forward()

    def forward(self, probe: bool = False) -> None:
        """Send the successor the synced entries from ``fwd`` on, with their requests
        (``probe``: send one append even if there is nothing new, to learn its length)."""
        start, end = self.fwd, self.synced
        if start >= end:
            if not probe:
                return
            start = end
        entries, reqs, step = self.entries, self.reqs, self.params.max_batch
        succ, config, commit = self.succ, self.config, self.commit
        if end - start == 1 and succ != self.joiner:  # the usual case under load: one entry
            req = reqs.get(start) if reqs else None
            rq = None if req is None else [(start, req)]
            self.send(succ, "append", (config, start, entries[start:end], rq, commit, end))
            self.fwd = end
            return
        while True:
            stop = start + step if start + step < end else end
            rq = None
            if reqs:
                rq = [(i, reqs[i]) for i in range(start, stop) if i in reqs] or None
            body = (config, start, entries[start:stop], rq, commit, end)
            if succ == self.joiner and stop > start:
                # Copying the log to a newcomer: its size counts against bandwidth.
                self.send(succ, "append", body, size=HEADER_BYTES + ENTRY_BYTES * (stop - start))
            else:
                self.send(succ, "append", body)
            start = stop
            if start >= end:
                break
        self.fwd = end

    def on_append(self, msg: Message) -> None:
        body = msg.body
        config = body[0]
        if config != self.config:
            if config > self.config and len(self.future) < MAX_EARLY:
                self.future.append(msg)  # the pong or config message is on its way
            return
        if msg.src != self.pred:
            return
        if not self.active and msg.src != self.quiet_from:
            # A newcomer hearing from a predecessor: whatever earlier tails answered is
            # within what that predecessor had synced.
            self.quiet = max(self.quiet or 0, body[5])
            self.quiet_from = msg.src
        start = body[1]
        length = len(self.entries)
        if start == length and self.active and not self.early:
            self.accept(body)  # the usual case: the next entries, in order
            return
        if start > length:
            if self.active and len(self.early) < MAX_EARLY:
                self.early[start] = msg  # an earlier append is late, or lost
            else:
                self.send(msg.src, "nack", (config, length))
            return
        self.accept(msg.body)
        early = self.early
        while early:
            length = len(self.entries)
            ready = sorted(s for s in early if s <= length)
            if not ready:
                break
            for s in ready:
                self.accept(early.pop(s).body)

    def accept(self, body: tuple) -> None:
        config, start, batch, rq, commit, plen = body
        entries = self.entries
        skip = len(entries) - start
        count = len(batch)
        new = skip < count
        if new:
            entries.extend(batch[skip:] if skip > 0 else batch)
        if rq:
            mine, reqs = self.commit, self.reqs
            if self.is_tail and self.quiet > mine:
                mine = self.quiet
            for index, req in rq:
                if index >= mine and index not in reqs:
                    reqs[index] = req
        if (
            not self.active
            and start + count >= plen
            and (self.handoff is None or plen > self.handoff)
        ):
            # A newcomer: serve once everything the predecessor had synced is on disk.
            self.handoff = plen
        if commit > self.commit and not self.is_tail:
            self.commit_to(min(commit, len(entries)))
        if new:
            self.sync(self.on_synced, len(entries), self.cuts)
        else:
            self.ack()
            if not self.active and self.handoff is not None and self.synced >= self.handoff:
                self.activate()

    def ack(self) -> None:
        """Tell the predecessor what this node holds on disk and what is committed."""
        if self.pred is not None:
            self.send(self.pred, "ack", (self.config, self.synced, self.commit))

    def on_ack(self, msg: Message) -> None:
        config, synced, commit = msg.body
        if config != self.config or msg.src != self.succ:
            return
        self.succ_heard = True
        if synced > self.succ_synced:
            self.succ_synced = synced
            self.stuck = 0
        if commit > self.commit:
            self.stuck = 0
            length = len(self.entries)
            self.commit_to(commit if commit < length else length)
            if self.pred is not None:
                self.send(self.pred, "ack", (config, self.synced, self.commit))

    def on_nack(self, msg: Message) -> None:
        config, length = msg.body
        if config != self.config or msg.src != self.succ or not self.active:
            return
        self.succ_heard = True
        if length < self.fwd:
            self.fwd = length
            self.succ_synced = min(self.succ_synced, length)
            self.forward(probe=True)

    def tick(self) -> None:
        """Resend what the tail has not acknowledged (or probe, to learn the commit index
        an acknowledgement lost); ask for what the predecessor's lost appends held."""
        if self.member and self.active and self.succ is not None:
            if not self.succ_heard:
                self.fwd = self.succ_synced
                self.forward(probe=True)
            elif self.succ_synced < self.fwd or self.commit < self.fwd:
                # Forwarded, and not yet known to be on the successor's disk or committed.
                self.stuck += 1
                if self.stuck >= 2:
                    self.stuck = 0
                    self.fwd = self.succ_synced
                    self.forward(probe=True)
        if self.early:
            self.early_ticks += 1
            if self.early_ticks >= 2 and self.pred is not None:
                self.early_ticks = 0
                self.early.clear()
                self.send(self.pred, "nack", (self.config, len(self.entries)))
        else:
            self.early_ticks = 0
        if not self.merged:
            self.set_timer(self.params.retry_interval, self.tick)

    # -- the state machine ---------------------------------------------------------------------

    def commit_to(self, commit: int) -> None:
        """The first ``commit`` entries are acknowledged by the tail: apply them."""
        if commit <= self.commit:
            return
        self.commit = commit
        self.durable["commit"] = commit
        self.apply(commit, answering=self.is_tail and self.quiet is not None)

    def apply(self, commit: int, answering: bool) -> None:
        """Apply entries up to ``commit``; the tail answers their clients, the head its
        retries."""
        first = self.applied
        if commit <= first:
            return
        data, version, outcomes = self.data, self.version, self.outcomes
        reqs, waiting = self.reqs, self.waiting
        quiet = self.quiet if answering else None
        for index, (op, key, value, _) in enumerate(self.entries[first:commit], first):
            matched = apply_command(data, version, index, op, key, value)
            if op == "cas":
                outcomes[index] = matched
            if reqs:
                req = reqs.pop(index, None)
                if req is not None and answering and index >= quiet:
                    self.answer(req, matched)
            if waiting:
                for req in waiting.pop(index, ()):
                    self.answer(req, matched)
        self.applied = commit

    # -- the manager ---------------------------------------------------------------------------

    def ping(self) -> None:
        """Heartbeat to the manager; its answer grants a lease counted from now."""
        self.ping_seq += 1
        seq = self.ping_seq
        self.pings[seq] = False
        params = self.params
        self.set_timer(params.lease, self.lease_ends, seq)
        self.send(
            self.manager,
            "ping",
            (self.shard, self.boot, seq, self.config, self.active, self.synced),
            service="manager",
        )
        self.set_timer(params.heartbeat_interval, self.ping)
        if self.merged:
            self.tick()

    def lease_ends(self, seq: int) -> None:
        if self.pings.pop(seq, False):
            self.granted -= 1

    def on_pong(self, body: tuple) -> None:
        _, seq, grant, *config = body
        if grant and self.pings.get(seq) is False:
            self.pings[seq] = True
            self.granted += 1
        self.adopt(*config)

    # -- introspection -------------------------------------------------------------------------

    def value_of(self, key: str) -> tuple[Any, Any]:
        return self.read(key), self.version.get(key)

    def applied_log(self) -> list[Any]:
        return list(map(COMMAND, self.entries[: self.applied]))
