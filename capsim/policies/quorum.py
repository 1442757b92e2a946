"""Leaderless quorum replication, after Amazon's Dynamo (DeCandia et al., SOSP 2007).

Every replica of a key accepts reads and writes. The replica a client reaches is the
*coordinator* of its request (by default the client's home container if it holds a
replica of the shard, else one in its zone). A key lives on ``n`` replicas, its
*preference list*: the shard's members, or, when ``n`` is smaller than the shard's
replication factor, ``n`` of them in ring order from a position fixed by the key (a CRC32
of its name, the same in every process). A write goes to the ``n`` replicas; each stores
it, syncs its disk and acknowledges; the coordinator answers ``ok`` after ``w``
acknowledgements (its own replica, when in the list, counts once its sync is done). A
read asks the ``n`` replicas and answers after ``r`` replies with the newest version among
them. Versions are compared deterministically, so every replica resolves the same way.

CAP claim: **AP**, tunable towards consistency by ``r`` and ``w``, never linearizable.

* With ``r + w > n`` and strict quorums (no sloppy quorum), every read quorum intersects
  every write quorum, so a read returns the latest acknowledged write, a version that
  supersedes it, or a sibling beside it: no stale reads. Under ``vector`` versioning that
  holds through partitions, crashes (acknowledgements wait for the disk), pauses, clock
  faults, loss and duplication, as long as disks do not lie; under ``lww`` only while the
  clocks agree. The history is still not linearizable in general: a write that reached
  some replicas but not ``w`` (its client saw a timeout) can be seen by one read and
  missed by a later one (read repair is not atomic), and concurrent writes come back as
  siblings, which no single register returns.
* A coordinator that reaches fewer than ``r`` of a key's replicas cannot read it, fewer
  than ``w`` cannot write it: with ``r = w = 3`` of 5, the two-replica side of a 3/2
  partition serves nothing, like a CP system's minority, while the three-replica side
  serves everything.
* With ``r = w = 1`` both sides of any partition stay available, each reading its own
  side's writes: stale reads during the partition, and siblings after it.
* No replica is special, so there is no failover: with ``r`` and ``w`` below ``n``, a
  crashed or paused replica costs only the clients that reach its container, and a
  restarted one serves again as soon as its new epoch is on disk (one sync after its
  start-up time).
* ``versioning: lww`` (Cassandra): each write carries a timestamp from the coordinator's
  own clock (``now()``), tie-broken by the coordinator's name and a counter, and the
  highest wins on every replica. A coordinator whose clock runs ahead stamps writes that
  win over later writes from correct clocks: those later writes are acknowledged and
  silently discarded (the bug switch; ``scenarios/quorum-lww-clock-skew.yaml``).
* ``versioning: vector`` (Dynamo, Riak): each version carries a vector clock; versions
  that neither supersedes are kept side by side as *siblings*, and a read returns the
  list of their values (sorted) when there is more than one. No acknowledged write is
  silently lost to a clock.

Invariants claimed, in ``mode: normal``: ``convergence`` (with ``anti_entropy`` on, or
with ``read_repair`` on and every key read through every replica, as the final phase
does: after the final heal every replica of a key holds the same versions) and
``no-lost-writes`` for the set workload under either versioning (an acknowledged add is
on the disks of ``w`` replicas, or of hint stores with sloppy quorums, and merges never
drop an element) and for registers under ``versioning: vector`` (an acknowledged write
is superseded only by a write whose coordinator had seen it). ``versioning: lww`` is a
bug switch for registers: it keeps the ``no-lost-writes`` claim, which clock skew breaks
(acknowledged writes silently discarded). Not claimed: ``linearizable`` (see above),
``single-leader`` and ``state-machine-safety``
(there is no leader and no log: :meth:`Quorum.applied_log` returns ``None``). The
analytic modes claim nothing: without repair, replicas that missed a write keep missing
it.

Versions and contexts. A replica holds, per key, a tuple of versions ``(clock, value)``:
one under ``lww`` (the clock is ``(timestamp, actor, counter)``), one or more mutually
concurrent ones under ``vector`` (the clock is a sorted tuple of ``(actor, counter)``
pairs). An *actor* is a coordinator's incarnation, ``"<container>.<epoch>"``: each start
takes a new epoch, made durable before the node coordinates anything, so a replica that
lost unsynced state in a crash never reuses a clock entry. Clients pass no context, so a
write's context is what its coordinator has seen of the key: its own replica's versions
(when it holds one) and every version it wrote or read since it started. A new write's
clock is the join of the context's clocks with the actor's counter raised by one: it
supersedes exactly the versions in the context, and is concurrent with the rest.

Sets (the ``set`` workload's ``add``) are grow-only sets merged by union, whatever the
``versioning``: a set's single version carries a vector clock (joined on merge) and the
union of every add seen, so an add acknowledged by ``w`` replicas is never lost, and
concurrent adds never conflict. Reads return the sorted elements.

Compare-and-set (``cas``): a leaderless store has no single place to compare, so by
default a cas fails at once with ``not-supported`` (a definite failure; nothing is
written). ``cas: read-write`` reads (``r`` replies), compares the resolved value with the
expected one (siblings never match) and, if equal, writes the new value with the read
versions as context. That is not linearizable: two concurrent compare-and-sets of the
same value can both succeed.

Repair, in ``mode: normal`` (each switchable):

* ``read_repair`` (on): once every replica asked has answered (or the request timed
  out), the coordinator sends the merged versions to each replica that answered with
  something else.
* ``anti_entropy`` (on), every ``anti_entropy_interval`` (the first at a random fraction
  of it): a replica sends a random other member a digest, the clocks of every key it
  holds. The peer answers with its versions of every key whose clocks differ or that the
  sender lacks, and names the keys it wants; the sender merges them and pushes its own
  merged versions of the wanted keys. After one exchange both hold the same versions of
  every key either held. (Dynamo compares Merkle trees to ship less; the outcome is the
  same.)
* ``hinted_handoff`` (off): when a replica in the preference list has not acknowledged a
  write within ``request_timeout``, the coordinator sends the write, as a hint for that
  replica, to the ``hints`` service on the next container after it in container order
  that is in neither the preference list nor already holding a hint of this write. The
  hint store syncs and acknowledges, keeps the hint (merged with later hints for the
  same replica and key) and offers it to the intended replica every
  ``handoff_interval`` until that replica acknowledges. With ``sloppy_quorum`` (on), a
  hint's acknowledgement counts towards ``w`` in place of the replica's (Dynamo's sloppy
  quorum: available with replicas down, at the price of the intersection guarantee).

A write that cannot gather ``w`` acknowledgements is not answered (the client times out
and records ``info``): some replicas may hold it, and it may spread, so it has neither
certainly happened nor certainly not. A read that cannot gather ``r`` replies within
``request_timeout`` fails with ``unavailable`` (a read changes nothing).

Modes for checking against the PBS analysis (Bailis et al., VLDB 2012):

* ``mode: wars``: the coordinator is not a replica. Clients go to the ``coordinator``
  service on their home container (:meth:`Quorum.route`), which sends every request to
  all ``n`` replicas as messages of kind ``write``, ``ack``, ``read`` and ``read_reply``
  (so ``network.latency.kinds`` gives each leg of the WARS model its own distribution)
  and answers after the first ``w`` acknowledgements or ``r`` replies.
* ``mode: partial``: the coordinator sends each request to exactly ``r`` (reads) or
  ``w`` (writes) of the ``n`` replicas, drawn at random, and needs all of them: partial
  quorums, as in the paper's model of writes that reach only some replicas.

Both analytic modes turn off read repair, anti-entropy and hinted handoff (setting any of
them to ``true`` is refused), so that nothing but the model's own messages moves data.

Membership changes (scale actions) hand key ranges over, as Dynamo's nodes do when they
join and leave the ring. The membership is the shard's ring state, which every replica
reads (``peers``) and a joining or leaving replica changes (``set_members``), in container
order. A replica a scale action places on a new host starts outside the membership, not
ready for clients: it asks every member for the keys whose preference list, with it
added, includes it (``join``; the answer, ``transfer``, carries ``64 + 100`` bytes per
key), merges and syncs each answer, and joins once the members that answered meet
every old preference list in at least ``n - w + 1`` replicas (so they intersect every
write quorum: no acknowledged write is missed), asking again every ``handoff_interval``.
A member whose container no longer hosts the shard leaves: it stops storing and
acknowledging writes (so no write is acknowledged on its copy alone), is not ready for
clients, pushes each staying member the keys whose preference list, without it, includes
that member (``handover``), and, once every staying member has its copy on disk, leaves
the membership (then it is stopped), again retrying every ``handoff_interval``.
Anti-entropy then fills in what moved while the change was under way.

Measurement. :meth:`Quorum.value_of` is what a read served by that replica alone would
return, and its version the clocks held. capsim's convergence figures compare every
replica of a shard, so with ``n`` below the replication factor a replica outside a key's
preference list, which holds nothing of it, counts as divergent: read
``convergence_s`` and ``final.divergent_keys`` with ``n`` left at its default.
"""

from __future__ import annotations

import ast
import zlib
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from capsim.schema import Interval, PositiveDuration, StrictBool, WholeNumber, echo
from capsim.sim.node import Message, Node, Request

__all__ = ["Quorum", "Coordinator", "HintStore", "Params", "merge_versions", "resolve"]

LEVELS = ("one", "quorum", "all")
Count = Annotated[WholeNumber, Field(ge=1, le=100_000)]


def _count_or_level(value: Any) -> int | str:
    """``r`` and ``w``: a whole number from 1, or a consistency level's name."""
    if isinstance(value, str):
        text = value.strip()
        if text in LEVELS:
            return text
        if not text.isdigit():
            raise ValueError(f"expected a count or one of one, quorum, all, got {echo(value)}")
        value = int(text)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a count or one of one, quorum, all, got {echo(value)}")
    if not 1 <= value <= 100_000:
        raise ValueError(f"must be between 1 and 100000, got {value}")
    return value


CountOrLevel = Annotated[int | str, BeforeValidator(_count_or_level)]

#: The prefix of a replica's durable entry for a key (one entry per key).
_DATA = "v/"
#: The prefix of a hint store's durable entry for a hint.
_HINT = "h/"
EMPTY: tuple = ()
#: Ticks of a coordinator's expiry timer per ``request_timeout`` (see ``_sweep``).
SWEEPS = 4
#: Bytes of a key range handed over: a header and so much per key.
HEADER_BYTES, KEY_BYTES = 64, 100


@dataclass(frozen=True, kw_only=True)
class Params:
    """Parameters of :class:`Quorum`.

    ``n``: replicas per key (default: every member of the key's shard; at most that many).
    ``r``, ``w``: replies a read needs and acknowledgements a write needs, each a count
    (1 to ``n``) or a consistency level: ``one`` (1), ``quorum`` (``n // 2 + 1``, the
    default) or ``all`` (``n``). ``versioning``: ``vector`` (vector clocks and siblings)
    or ``lww`` (last writer wins by the coordinator's clock). ``mode``: ``normal``,
    ``wars`` or ``partial`` (see the module docstring). ``read_repair`` and
    ``anti_entropy``: default on in ``normal`` mode, off (and refused) in the analytic
    modes; ``anti_entropy_interval`` (1 s) between a replica's exchanges.
    ``hinted_handoff`` (off) with ``sloppy_quorum`` (on: hints count towards ``w``) and
    ``handoff_interval`` (200 ms) between offers of a stored hint.
    ``request_timeout`` (100 ms): how long a coordinator waits for replicas before it
    fails a read or sends hints (checked four times per timeout, so a request waits
    between one and 1.25 timeouts); keep it below the clients' timeout. ``cas``: ``refuse``
    (fail with ``not-supported``) or ``read-write`` (not linearizable).
    """

    n: Count | None = None
    r: CountOrLevel = "quorum"
    w: CountOrLevel = "quorum"
    versioning: Literal["vector", "lww"] = "vector"
    mode: Literal["normal", "wars", "partial"] = "normal"
    read_repair: StrictBool | None = None
    anti_entropy: StrictBool | None = None
    anti_entropy_interval: Interval = 1.0
    hinted_handoff: StrictBool = False
    sloppy_quorum: StrictBool = True
    handoff_interval: Interval = 0.2
    request_timeout: PositiveDuration = 0.1
    cas: Literal["refuse", "read-write"] = "refuse"

    def __post_init__(self):
        if self.mode != "normal":
            for name in ("read_repair", "anti_entropy", "hinted_handoff"):
                if getattr(self, name):
                    raise ValueError(
                        f"{name} cannot be on in mode {self.mode!r}: the analytic modes move "
                        "data only through their own reads and writes"
                    )
        if self.n is not None:
            for name in ("r", "w"):
                value = getattr(self, name)
                if isinstance(value, int) and value > self.n:
                    raise ValueError(f"{name} ({value}) must not exceed n ({self.n})")

    def counts(self, members: int) -> tuple[int, int, int]:
        """``(n, r, w)`` for a shard of ``members`` replicas; raises ValueError if the
        parameters ask for more replicas than the shard has."""
        n = members if self.n is None else self.n
        if n > members:
            raise ValueError(
                f"n = {n} replicas per key, but the shard has only {members} "
                "(its replication factor)"
            )
        r, w = _level(self.r, n), _level(self.w, n)
        if r > n or w > n:
            raise ValueError(f"r = {r} and w = {w} must not exceed n = {n}")
        return n, r, w


def _level(value: int | str, n: int) -> int:
    if value == "one":
        return 1
    if value == "quorum":
        return n // 2 + 1
    if value == "all":
        return n
    return value


# -- versions ----------------------------------------------------------------------------------
#
# A key's state is a tuple of versions (clock, value). Clocks: lww (timestamp, actor,
# counter); vector and sets: a tuple of (actor, counter) pairs sorted by actor. Sets are
# frozensets. Everything is immutable, so the durable store keeps it without copying.


def _descends(a: tuple, b: tuple) -> bool:
    """Whether vector clock ``a`` has seen every event of ``b`` (a >= b)."""
    if len(b) == 1:  # the common case: one coordinator's writes
        actor, count = b[0]
        for mine, n in a:
            if mine == actor:
                return n >= count
        return False
    seen = dict(a)
    get = seen.get
    # A loop, not all() over a generator: this runs for most messages a replica takes.
    for actor, count in b:  # noqa: SIM110
        if get(actor, 0) < count:
            return False
    return True


def _join(a: tuple, b: tuple) -> tuple:
    """The least vector clock that has seen both ``a`` and ``b``."""
    joined = dict(a)
    for actor, count in b:
        if joined.get(actor, 0) < count:
            joined[actor] = count
    return tuple(sorted(joined.items()))


def _concurrent(versions: tuple) -> tuple:
    """The versions no other version supersedes, one per clock, in clock order."""
    out: list = []
    for version in versions:
        clock = version[0]
        superseded = False
        for other in versions:
            oc = other[0]
            if oc != clock and _descends(oc, clock):
                superseded = True
                break
        if not superseded and all(kept[0] != clock for kept in out):
            out.append(version)
    out.sort(key=_clock_of)
    return tuple(out)


def _clock_of(version: tuple) -> Any:
    return version[0]


def merge_versions(a: tuple, b: tuple, lww: bool) -> tuple:
    """The state that results from merging states ``a`` and ``b`` of one key.

    Sets: one version, the union of the values with the clocks joined. ``lww``: the
    version with the higher clock. Vector: every version that no other supersedes (the
    siblings). Returns ``a`` itself when ``b`` adds nothing to it.
    """
    if a == b or not b:
        return a
    if not a:
        return b
    first_a, first_b = a[0], b[0]
    value_a = first_a[1]
    if type(value_a) is frozenset:
        value_b = first_b[1]
        clock = _join(first_a[0], first_b[0])
        if clock == first_a[0] and value_b <= value_a:
            return a
        return ((clock, value_a | value_b),)
    if lww:
        return a if first_a[0] >= first_b[0] else b
    if len(a) == 1 and len(b) == 1:
        ca, cb = first_a[0], first_b[0]
        if _descends(cb, ca):  # first: what arrives is usually newer
            return b
        if _descends(ca, cb):
            return a
        return (first_a, first_b) if ca < cb else (first_b, first_a)
    merged = _concurrent(a + b)
    return a if merged == a else merged


def _summary(versions: tuple) -> tuple:
    """What anti-entropy compares: the clocks (each names one version's content)."""
    return tuple([version[0] for version in versions])


def _order(value: Any) -> tuple:
    """A deterministic order for sibling values (numbers first, then by repr)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, repr(value))


def resolve(versions: tuple) -> Any:
    """What a read returns for a key's versions: ``None`` for nothing, the value of a
    single version (a set's elements sorted), else the sorted list of sibling values."""
    if not versions:
        return None
    if len(versions) == 1:
        value = versions[0][1]
        return sorted(value, key=_order) if type(value) is frozenset else value
    return sorted((version[1] for version in versions), key=_order)


def _encode(versions: tuple) -> str:
    """A key's state as the disk holds it: text, as a file would (a store that walked the
    nested tuples on every write would spend more time checking them than writing)."""
    first = versions[0]
    if type(first[1]) is frozenset:
        return repr(("set", first[0], tuple(first[1])))
    return repr(versions)


def _decode(text: str) -> tuple:
    """The state :func:`_encode` wrote (values are Python literals: numbers, text, None)."""
    data = ast.literal_eval(text)
    if data and data[0] == "set":
        return ((data[1], frozenset(data[2])),)
    return data


def _stable_hash(key: str) -> int:
    """The key's position on the ring: the same in every process (unlike ``hash``)."""
    return zlib.crc32(key.encode())


# -- coordination ------------------------------------------------------------------------------


class _Op:
    """A request a coordinator is working on."""

    __slots__ = (
        "no",
        "req",
        "key",
        "shard",
        "dest",
        "write",
        "need",
        "targets",
        "heard",
        "answered",
        "versions",
        "replies",
        "started",
        "hinted",
    )


class _Coordinating(Node):
    """Coordinating clients' requests: shared by replicas and the coordinator service."""

    #: Whether this node holds replicas (and handles its own copy without a message).
    local = False
    #: Whether this replica is leaving the membership (it then stores nothing new).
    leaving = False

    def _begin(self) -> None:
        params = self.params
        mode = params.mode
        self.lww = params.versioning == "lww"
        self.partial = mode == "partial"
        self.timeout = params.request_timeout
        self.repair = params.read_repair if params.read_repair is not None else mode == "normal"
        self.handoff = params.hinted_handoff
        self.sloppy = params.hinted_handoff and params.sloppy_quorum
        self.ops: dict[int, _Op] = {}
        self.next_op = 0
        self.seen: dict[str, tuple] = {}  # versions written or read here since the start
        self.placed: dict[str, tuple] = {}  # key -> (members, (preference list, r, w))
        self.sweeper = None  # the timer that expires requests, while any is pending
        self.ticks = 0  # its firings so far
        self.tick_s = self.timeout / SWEEPS
        self.counter = 0
        # A new actor per start, durable before it stamps anything: a crash that lost
        # this node's unsynced versions never makes it reuse a clock entry.
        epoch = self.durable.get("epoch", 0) + 1
        self.durable["epoch"] = epoch
        name = self.id if self.service is None else f"{self.id}:{self.service}"
        self.actor = f"{name}.{epoch}"
        self.ready = False
        self.early: list[Request] = []
        self.sync(self._ready)

    def _ready(self) -> None:
        self.ready = True
        early, self.early = self.early, []
        for req in early:
            self.on_client(req)

    # -- where a key lives -----------------------------------------------------------------

    def placement(self, shard: int, key: str) -> tuple[tuple[str, ...], int, int]:
        """``(preference list, r, w)`` for ``key``: its ``n`` replicas are the shard's
        members in ring order from the key's position (all of them when ``n`` is the
        replication factor); recomputed when the membership changes."""
        members = self.members(shard)
        cached = self.placed.get(key)
        if cached is not None and cached[0] is members:
            return cached[1]
        n, r, w = self.params.counts(len(members))
        size = len(members)
        if n == size:
            pref = members
        else:
            start = _stable_hash(key) % size
            pref = tuple(members[(start + i) % size] for i in range(n))
        self.placed[key] = (members, (pref, r, w))
        return pref, r, w

    def preference(self, shard: int, key: str) -> tuple[str, ...]:
        """The key's ``n`` replicas (see :meth:`placement`)."""
        return self.placement(shard, key)[0]

    def _pick(self, pref: tuple[str, ...], k: int) -> tuple[str, ...]:
        """``k`` of the preference list, drawn at random (partial quorums)."""
        if k >= len(pref):
            return pref
        order = self.rng.permutation(len(pref))[:k].tolist()
        return tuple(pref[i] for i in order)

    # -- clients -----------------------------------------------------------------------------

    def on_client(self, req: Request) -> None:
        if not self.ready:
            self.early.append(req)  # until this start's epoch is on disk
            return
        op = req.op
        if op == "read":
            self._read(req)
        elif op == "write":
            self._write(req, req.value, False, EMPTY)
        elif op == "add":
            self._write(req, req.value, True, EMPTY)
        elif op == "cas":
            if self.params.cas == "refuse":
                self.fail(req, "not-supported")
            else:
                self._read(req)
        else:
            self.fail(req, "not-implemented")

    def _op(self, req: Request, write: bool, need: int, targets: tuple[str, ...]) -> _Op:
        self.next_op += 1
        op = _Op()
        op.no = self.next_op
        op.req = req
        op.key = req.key
        op.shard = req.shard
        op.dest = None if self.local else req.shard  # replicas address their own shard
        op.write = write
        op.need = need
        op.targets = targets
        op.heard = set()
        op.answered = False
        op.versions = EMPTY
        op.replies = [] if self.repair and not write else None
        op.hinted = False
        op.started = self.ticks
        self.ops[op.no] = op
        if self.sweeper is None:
            self.sweeper = self.set_timer(self.tick_s, self._sweep)
        return op

    def _read(self, req: Request) -> None:
        key = req.key
        pref, r, _ = self.placement(req.shard, key)
        targets = self._pick(pref, r) if self.partial else pref
        op = self._op(req, False, r, targets)
        body = (op.no, key)
        me = self.id if self.local else None
        for target in targets:
            if target != me:
                self.send(target, "read", body, shard=op.dest)
        if me is not None and me in targets:
            self._heard_read(op, me, self.store.get(key, EMPTY))

    def _write(self, req: Request, value: Any, add: bool, context: tuple) -> None:
        key = req.key
        pref, _, w = self.placement(req.shard, key)
        versions = self._new_version(key, value, add, context)
        targets = self._pick(pref, w) if self.partial else pref
        op = self._op(req, True, w, targets)
        op.versions = versions
        body = (op.no, key, versions)
        me = self.id if self.local else None
        for target in targets:
            if target != me:
                self.send(target, "write", body, shard=op.dest)
        if me is not None and me in targets and not self.leaving:
            self._apply(key, versions)
            self.sync(self._local_ack, op.no)

    def _new_version(self, key: str, value: Any, add: bool, context: tuple) -> tuple:
        """The key's new state after this coordinator writes ``value`` (adds it, for a
        set): it supersedes everything this coordinator has seen of the key."""
        self.counter += 1
        if self.lww and not add:
            return (((self.now(), self.actor, self.counter), value),)
        lww = self.lww
        seen = merge_versions(self.store.get(key, EMPTY), self.seen.get(key, EMPTY), lww)
        seen = merge_versions(seen, context, lww)
        clock: dict[str, int] = {}
        for version_clock, _ in seen:
            for actor, count in version_clock:
                if clock.get(actor, 0) < count:
                    clock[actor] = count
        clock[self.actor] = clock.get(self.actor, 0) + 1
        if add:
            base = seen[0][1] if seen and type(seen[0][1]) is frozenset else frozenset()
            value = base | {value}
        versions = ((tuple(sorted(clock.items())), value),)
        self.seen[key] = versions
        return versions

    # -- replies -----------------------------------------------------------------------------

    def _coordinator_message(self, msg: Message) -> None:
        kind = msg.kind
        if kind == "ack":
            op = self.ops.get(msg.body)
            if op is not None:
                self._acked(op, msg.src)
        elif kind == "read_reply":
            no, versions = msg.body
            op = self.ops.get(no)
            if op is not None:
                self._heard_read(op, msg.src, versions)
        elif kind == "hint_ack":
            no, intended = msg.body
            op = self.ops.get(no)
            if op is not None and self.sloppy:
                self._acked(op, intended)

    def _local_ack(self, no: int) -> None:
        op = self.ops.get(no)
        if op is not None:
            self._acked(op, self.id)

    def _acked(self, op: _Op, replica: str) -> None:
        heard = op.heard
        if replica in heard:
            return  # a duplicate, or a replica whose hint already counted
        heard.add(replica)
        if not op.answered and len(heard) >= op.need:
            op.answered = True
            self.ok(op.req, op.req.value)
        if len(heard) >= len(op.targets):
            self._finish(op)

    def _heard_read(self, op: _Op, replica: str, versions: tuple) -> None:
        heard = op.heard
        if replica in heard:
            return
        heard.add(replica)
        op.versions = merge_versions(op.versions, versions, self.lww)
        if op.replies is not None:
            op.replies.append((replica, versions))
        if not op.answered and len(heard) >= op.need:
            op.answered = True
            self._answer_read(op)
        if len(heard) >= len(op.targets):
            self._finish(op)

    def _answer_read(self, op: _Op) -> None:
        req, versions = op.req, op.versions
        if not self.lww and versions:
            self.seen[op.key] = merge_versions(self.seen.get(op.key, EMPTY), versions, False)
        if req.op == "read":
            self.ok(req, resolve(versions))
            return
        expected, new = req.value  # a cas, read-then-write
        if resolve(versions) != expected:
            self.fail(req, "mismatch")
        else:
            self._write(req, new, False, versions)

    def _sweep(self) -> None:
        """Expire the requests that have waited ``request_timeout``, oldest first.

        One timer serves every pending request, ticking ``SWEEPS`` times per timeout while
        any is pending (a request answered in time costs no event of its own). A request
        begun between ticks ``k`` and ``k + 1`` expires at tick ``k + SWEEPS + 1``: it waits
        between one and ``1 + 1 / SWEEPS`` timeouts, measured like every timer (a clock
        jump does not move it; a clock's rate does).
        """
        self.ticks += 1
        ops = self.ops
        due = self.ticks - SWEEPS - 1
        while ops:
            op = ops[next(iter(ops))]  # the oldest: requests wait in the order they began
            if op.started > due:
                break
            self._expire(op)
        self.sweeper = self.set_timer(self.tick_s, self._sweep) if ops else None

    def _expire(self, op: _Op) -> None:
        if op.write:
            if self.handoff and not op.hinted:
                op.hinted = True
                self._send_hints(op)
                # Wait one more timeout for the hints: last in the queue, as if new.
                del self.ops[op.no]
                op.started = self.ticks
                self.ops[op.no] = op
                return
            # Fewer than w acknowledgements: the write may still spread from the replicas
            # that have it, so it is left unanswered (the client records it as info).
        elif not op.answered:
            op.answered = True
            self.fail(op.req, "unavailable")
        self._finish(op)

    def _finish(self, op: _Op) -> None:
        del self.ops[op.no]
        replies = op.replies
        if replies:
            merged, key = op.versions, op.key
            for replica, versions in replies:
                if versions != merged:
                    if replica == self.id and self.local:
                        self._apply(key, merged)
                    else:
                        self.send(replica, "repair", (key, merged), shard=op.dest)

    def _send_hints(self, op: _Op) -> None:
        """Hand the write, for each replica that has not acknowledged it, to the hint
        store on the next container (in container order) outside the preference list."""
        containers = self.containers()
        count = len(containers)
        taken = set(self.preference(op.shard, op.key))
        for intended in op.targets:
            if intended in op.heard or intended not in containers:
                continue  # acknowledged, or its container was removed (a scale action)
            start = containers.index(intended)
            for step in range(1, count):
                holder = containers[(start + step) % count]
                if holder not in taken:
                    taken.add(holder)
                    body = (op.no, intended, op.shard, op.key, op.versions)
                    self.send(holder, "hint", body, service="hints")
                    break

    def _apply(self, key: str, versions: tuple) -> bool:
        """Merge ``versions`` into this node's state of ``key``; whether it changed (never,
        while leaving: what it holds is being handed over)."""
        if self.leaving:
            return False
        store = self.store
        old = store.get(key, EMPTY)
        new = merge_versions(old, versions, self.lww)
        if new is old:
            return False
        store[key] = new
        self.durable[_DATA + key] = _encode(new)
        return True


class Coordinator(_Coordinating):
    """The ``coordinator`` service: coordinates requests without holding a replica.

    Clients reach it only in ``mode: wars`` (see :meth:`Quorum.route`); it sends every
    request to the key's ``n`` replicas and answers after ``r`` or ``w`` of them.
    """

    def on_start(self) -> None:
        self.store: dict[str, tuple] = {}  # always empty: it holds no replica
        self._begin()

    def on_message(self, msg: Message) -> None:
        self._coordinator_message(msg)


class HintStore(Node):
    """The ``hints`` service: keeps writes for replicas that could not take them, on disk,
    and offers each to its replica every ``handoff_interval`` until it acknowledges."""

    def on_start(self) -> None:
        self.lww = self.params.versioning == "lww"
        # name -> (intended replica, shard, key, sequence number, versions)
        self.hints: dict[str, tuple] = {}
        for name in self.durable:
            if name.startswith(_HINT):
                self.hints[name] = self.durable[name]
        self.timer = None
        if self.hints:
            self.timer = self.set_timer(self.params.handoff_interval, self.offer)

    def on_message(self, msg: Message) -> None:
        kind = msg.kind
        if kind == "hint":
            no, intended, shard, key, versions = msg.body
            name = f"{_HINT}{intended}/{shard}/{key}"
            held = self.hints.get(name)
            seq = 1
            if held is not None:
                versions = merge_versions(held[4], versions, self.lww)
                seq = held[3] + 1
            entry = (intended, shard, key, seq, versions)
            self.hints[name] = entry
            self.durable[name] = entry
            self.sync(self.reply, msg, "hint_ack", (no, intended))
            if self.timer is None:
                self.timer = self.set_timer(self.params.handoff_interval, self.offer)
        elif kind == "handoff_ack":
            name, seq = msg.body
            held = self.hints.get(name)
            if held is not None and held[3] == seq:  # not merged with a newer hint since
                del self.hints[name]
                del self.durable[name]

    def offer(self) -> None:
        """Offer every hint held to its replica (a replica still unreachable drops it,
        and the next offer tries again)."""
        for name, (intended, shard, key, seq, versions) in self.hints.items():
            self.send(intended, "handoff", (name, seq, key, versions), shard=shard)
        self.timer = (
            self.set_timer(self.params.handoff_interval, self.offer) if self.hints else None
        )


class Quorum(_Coordinating):
    """A leaderless replica, Dynamo style: quorum reads and writes, vector clocks or last
    writer wins, read repair, anti-entropy and hinted handoff (AP; see the module
    docstring)."""

    Params = Params
    invariants = ("no-lost-writes", "convergence")

    @classmethod
    def claims(cls, params: Params) -> tuple[str, ...]:
        """In ``mode: normal``: ``no-lost-writes`` (``versioning: lww`` is a bug switch: it
        keeps the claim, and clock skew breaks it) and ``convergence`` when read repair or
        anti-entropy is on; the analytic modes claim nothing."""
        if params.mode != "normal":
            return ()
        repair = params.read_repair is not False or params.anti_entropy is not False
        return cls.invariants if repair else ("no-lost-writes",)

    services = {"coordinator": Coordinator, "hints": HintStore}
    local = True

    @classmethod
    def route(cls, op: str, members: tuple[str, ...], home: str, params: Any) -> Any:
        """In ``mode: wars`` clients go to the coordinator service on their home
        container; otherwise to the default (a replica: home, or one in the zone)."""
        if params.mode == "wars":
            return (home, "coordinator")
        return None

    def on_start(self) -> None:
        self.store: dict[str, tuple] = {}
        for name in self.durable:
            if name.startswith(_DATA):
                self.store[name[len(_DATA) :]] = _decode(self.durable[name])
        self._begin()
        # Membership changes: joining (a new host pulling its ranges), leaving (a member
        # whose container no longer hosts the shard, handing its ranges over).
        self.leaving = False
        self.answered: dict[str, bool] = {}  # members whose ranges we hold (joining), or
        # staying members that hold our ranges (leaving), in the order they answered
        self.joining = self.id not in self.peers
        if self.joining:
            self.set_ready(False)
            self.pull()
        elif self.id not in self.hosts():
            self.on_hosts_changed()  # restarted while leaving: hand over again
        params = self.params
        anti_entropy = params.anti_entropy
        if anti_entropy is None:
            anti_entropy = params.mode == "normal"
        if anti_entropy:
            interval = params.anti_entropy_interval
            self.set_timer(interval * self.rng.random(), self.exchange)

    def on_message(self, msg: Message) -> None:
        kind = msg.kind
        # Most frequent first: this runs for every message.
        if kind == "ack":
            op = self.ops.get(msg.body)
            if op is not None:
                self._acked(op, msg.src)
        elif kind == "read_reply":
            no, versions = msg.body
            op = self.ops.get(no)
            if op is not None:
                self._heard_read(op, msg.src, versions)
        elif kind == "write":
            no, key, versions = msg.body
            if self.leaving:
                return  # no acknowledgement may rest on a copy about to go
            self._apply(key, versions)
            self.sync(self.reply, msg, "ack", no)
        elif kind == "read":
            no, key = msg.body
            self.reply(msg, "read_reply", (no, self.store.get(key, EMPTY)))
        elif kind == "repair":
            key, versions = msg.body
            self._apply(key, versions)
        elif kind == "handoff":
            name, seq, key, versions = msg.body
            self._apply(key, versions)
            self.sync(self.reply, msg, "handoff_ack", (name, seq))
        elif kind == "ae_digest":
            self.on_digest(msg)
        elif kind == "ae_reply":
            self.on_exchange_reply(msg)
        elif kind == "ae_push":
            for key, versions in msg.body.items():
                self._apply(key, versions)
        elif kind == "join":
            self.on_join(msg)
        elif kind == "transfer":
            self.on_transfer(msg)
        elif kind == "handover":
            self.on_handover(msg)
        elif kind == "handover_ack":
            self.on_handover_ack(msg)
        else:
            self._coordinator_message(msg)

    # -- membership changes: handing key ranges over -------------------------------------------

    def ring(self, members: tuple[str, ...], key: str) -> tuple[str, ...]:
        """``key``'s preference list were the membership ``members``."""
        try:
            n, _, _ = self.params.counts(len(members))
        except ValueError:
            return members  # fewer members than n: every one
        size = len(members)
        if n == size:
            return members
        start = _stable_hash(key) % size
        return tuple(members[(start + i) % size] for i in range(n))

    def in_order(self, names) -> tuple[str, ...]:
        order = {c: i for i, c in enumerate(self.containers())}
        return tuple(sorted(names, key=lambda c: order.get(c, len(order))))

    def ranges(self, members: tuple[str, ...], holder: str) -> dict[str, tuple]:
        """Our versions of the keys whose preference list, with ``members``, has ``holder``."""
        return {
            key: versions
            for key, versions in self.store.items()
            if holder in self.ring(members, key)
        }

    def on_hosts_changed(self) -> None:
        if self.id in self.peers and self.id not in self.hosts() and not self.leaving:
            self.leaving = True
            self.set_ready(False)
            self.answered = {}
            self.log("leaving: handing key ranges over")
            self.hand_over()

    def pull(self) -> None:
        """Joining: ask every member that has not answered for our ranges."""
        if not self.joining:
            return
        if self.id in self.peers:
            self.joined()
            return
        after = self.in_order((*self.peers, self.id))
        for member in self.peers:
            if member not in self.answered:
                self.send(member, "join", after)
        self.set_timer(self.params.handoff_interval, self.pull)

    def on_join(self, msg: Message) -> None:
        ranges = self.ranges(msg.body, msg.src)
        self.reply(msg, "transfer", ranges, size=HEADER_BYTES + KEY_BYTES * len(ranges))

    def on_transfer(self, msg: Message) -> None:
        if not self.joining:
            return
        for key, versions in msg.body.items():
            self._apply(key, versions)
        self.sync(self.transferred, msg.src)

    def transferred(self, member: str) -> None:
        if not self.joining or member in self.answered:
            return
        self.answered[member] = True
        members = self.peers
        try:
            n, _, w = self.params.counts(len(members))
        except ValueError:
            n = w = len(members)
        need = n - w + 1
        size = len(members)
        # Every preference list (n members in ring order from some position) must hold
        # need members that answered: then they meet every write quorum.
        starts = range(size) if n < size else range(1)
        for start in starts:
            window = [members[(start + i) % size] for i in range(n)]
            if sum(1 for m in window if m in self.answered) < need:
                return
        self.log(f"joining: {len(self.answered)} of {size} members handed their ranges over")
        self.set_members(self.in_order((*members, self.id)))
        self.joined()

    def joined(self) -> None:
        self.joining = False
        self.answered = {}
        self.set_ready(True)

    def staying(self) -> tuple[str, ...]:
        hosts = self.hosts()
        return tuple(m for m in self.peers if m in hosts)

    def leave_if_handed(self) -> bool:
        """Leave the membership once every staying member holds our ranges on disk."""
        staying = self.staying()
        if staying and all(m in self.answered for m in staying):
            self.log(f"left: {len(staying)} staying members hold our ranges")
            self.set_members(tuple(m for m in self.peers if m != self.id))
            return True
        return False

    def hand_over(self) -> None:
        """Leaving: push every staying member that has not confirmed its ranges (again
        every ``handoff_interval``)."""
        if not self.leaving or self.id not in self.peers or self.leave_if_handed():
            return
        staying = self.staying()
        for member in staying:
            if member not in self.answered:
                ranges = self.ranges(staying, member)
                size = HEADER_BYTES + KEY_BYTES * len(ranges)
                self.send(member, "handover", ranges, size=size)
        self.set_timer(self.params.handoff_interval, self.hand_over)

    def on_handover(self, msg: Message) -> None:
        if self.leaving:
            return
        for key, versions in msg.body.items():
            self._apply(key, versions)
        self.sync(self.reply, msg, "handover_ack", None)

    def on_handover_ack(self, msg: Message) -> None:
        if self.leaving and msg.src not in self.answered and self.id in self.peers:
            self.answered[msg.src] = True
            self.leave_if_handed()

    # -- anti-entropy ---------------------------------------------------------------------------

    def holds(self, container: str, key: str) -> bool:
        """Whether ``container`` is in ``key``'s preference list."""
        return container in self.preference(self.shard, key)

    def exchange(self) -> None:
        """Send a random other member the clocks of every key held (a digest)."""
        others = [peer for peer in self.peers if peer != self.id]
        if others:
            peer = others[int(self.rng.integers(len(others)))]
            digest = {key: _summary(versions) for key, versions in self.store.items()}
            self.send(peer, "ae_digest", digest)
        self.set_timer(self.params.anti_entropy_interval, self.exchange)

    def on_digest(self, msg: Message) -> None:
        """Answer a digest with our versions of every key that differs or the sender
        lacks, and the keys we want the sender's versions of."""
        theirs: dict[str, tuple] = msg.body
        store, src, me = self.store, msg.src, self.id
        ours: dict[str, tuple] = {}
        want: list[str] = []
        for key, summary in theirs.items():
            if not self.holds(me, key):
                continue
            versions = store.get(key)
            if versions is None:
                want.append(key)
            elif _summary(versions) != summary:
                ours[key] = versions
                want.append(key)
        for key, versions in store.items():
            if key not in theirs and self.holds(src, key):
                ours[key] = versions
        if ours or want:
            self.reply(msg, "ae_reply", (ours, want))

    def on_exchange_reply(self, msg: Message) -> None:
        ours, want = msg.body
        for key, versions in ours.items():
            self._apply(key, versions)
        store = self.store
        push = {key: store[key] for key in want if key in store}
        if push:
            self.reply(msg, "ae_push", push)

    # -- introspection ----------------------------------------------------------------------------

    def value_of(self, key: str) -> tuple[Any, Any]:
        """The newest value held (siblings as a sorted list, a set as its sorted
        elements) and the version: the clocks of the versions held (``None`` if none)."""
        versions = self.store.get(key)
        if not versions:
            return None, None
        return resolve(versions), _summary(versions)

    def applied_log(self) -> None:
        """None: a leaderless store applies writes in no log order."""
        return None
