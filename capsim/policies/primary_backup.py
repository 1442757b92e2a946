"""Primary-backup replication with heartbeat failure detection and failover.

What users of MongoDB replica sets, Redis Sentinel or PostgreSQL behind a failover
manager know: one primary per shard takes every read and update, ships its log to the
backups, and when the backups stop hearing it they promote one of themselves. How safe
that is depends on three parameters, and the CAP claim with them.

CAP claims, by configuration:

* ``replication: sync``, ``fencing: epoch`` (the default): **CP for writes**. An update is
  acknowledged once ``acks`` replicas (``majority``, or ``all``), the primary included,
  have it on disk. A promotion needs the votes of a majority, so the side of a partition
  without a majority accepts no write (its clients get ``no-primary`` or time out) and the
  majority side elects a primary and is available again after the failover time. No
  acknowledged write is lost under any partition, crash, pause, clock fault, loss or
  duplication. Reads are served by the primary alone, under a lease: it answers a read
  only while a majority of replicas (itself included) acknowledged, within the last
  ``failure_timeout`` of its own clock, a message it sent, and a backup votes only after
  ``failure_timeout`` without hearing a primary (a restart counts as hearing one). So
  while clocks run at the same rate, a deposed primary stops serving reads before its
  successor can be elected, even if it was paused, and reads are linearizable too. The
  lease trusts clocks, which the writes never do: a primary whose clock runs slow or
  steps back while it is being deposed, or a voter whose clock runs fast, may serve a
  stale read from the deposed primary for at most ``failure_timeout`` of that primary's
  clock (a forward jump only makes it refuse reads, ``no-lease``, until the next
  acknowledgement renews the lease). With ``acks: all`` a write also waits for every
  backup, so one that is down or cut off stops writes until it is back; elections still
  need only a majority, but a new primary serves nothing (``recovering``) until every
  replica has its no-op.
* ``replication: async``: **AP-ish**. The primary acknowledges an update as soon as its
  own disk has it and ships it to the backups in the background. A failover (a crash or a
  partition of the primary) promotes a backup that may lack updates the old primary
  acknowledged; when the old primary rejoins as a backup it rolls them back (``node.log``
  says so): lost acknowledged writes. With ``fencing: epoch`` only the majority side
  elects, and a primary cut off from a majority steps down after ``failure_timeout``,
  so the minority loses at most what it acknowledged in that window.
* ``fencing: none``: **AP-ish, split brain**. A backup that loses the primary promotes
  itself, without votes, if it is the most up-to-date among the replicas it can reach and
  none of them still hears a primary (Redis Sentinel with a bad quorum, MongoDB ``w: 1``
  failover); a primary never steps down for want of a majority, and reads need no lease.
  Under a partition that cuts the primary off with a minority, both sides accept writes.
  After the heal the primary with the higher epoch wins and the other rejoins as a
  backup, rolling back what it acknowledged alone: lost acknowledged writes, what Jepsen
  found in Redis Sentinel and MongoDB. ``replication: async`` with ``fencing: none`` is
  the bug switch: the split brain of a failover manager that trusts its own view, with
  nothing to hold writes back on either side.

Invariants claimed, by name:

* ``linearizable``: with ``sync`` and ``epoch``, for writes always and for reads under the
  lease's clock caveat above; not with ``async`` or ``none``.
* ``no-lost-writes``: with ``sync`` and ``epoch`` only.
* ``convergence``: in every configuration: after the final heal every replica follows the
  primary of the highest epoch and applies the same log.
* ``single-leader``: at most one primary per epoch, in every configuration (with ``none``,
  two primaries of different epochs coexist during a split brain); with ``epoch``, two
  coexist only while a deposed primary has not yet noticed (it was paused, or its clock
  runs slow), and it can commit nothing new, since the majority has moved on.
* ``state-machine-safety``: with ``sync`` and ``epoch``: no two replicas ever apply
  different commands at the same log position (every applied log is a prefix of the
  primary's). With ``async`` or ``none`` rolled-back entries break it.

How it works. Every log entry records the epoch that wrote it (``term``), and every epoch
begins with a no-op entry. An append carries the epoch, the index and epoch of the entry
before the new ones, the entries and the commit index; a backup accepts only on a log
prefix that matches (as Raft's AppendEntries), acknowledges once its disk has them, and
never drops an entry below its commit index in the sync-and-epoch configuration (with
async or none it may have to, and says so in ``node.log``). The primary commits the
longest prefix ``acks`` replicas hold on disk that ends in an entry of its own epoch (so
entries of earlier epochs commit with its no-op, never by counting: Raft's figure 8),
applies it in order, and answers. A new primary refuses reads (``recovering``) until its
no-op is committed, so it never serves state older than what was acknowledged. A CAS is
decided when it is applied (``mismatch``).

Clients. A replica that is not primary redirects a request to the last primary it heard
from (a candidate too), or fails it with ``no-primary`` if it knows none. Every replica
knows where each request id sits in its log: a retried or duplicated request is appended
once, answered if this replica has applied it, and left unanswered (never refused) by a
replica that has it unapplied and knows no primary, since it may still commit. A
replica also remembers, for 30 to 60 s, the attempts it redirected or refused, and fails
a late duplicate of one with ``duplicate`` rather than appending it: its client may
already have been told that the attempt failed. (The network duplicates requests that
cross between containers; a late copy reaching a replica that has become primary would
otherwise take effect after a definite failure.)

Failure detection and promotion. The primary sends each backup an append at least every
``heartbeat_interval`` (an empty one when it has nothing new). Silence is counted in
ticks of the node's own timer (every ``heartbeat_interval``), so a clock that jumps
never triggers a failover. A backup that has heard no primary for ``failure_timeout``
plus a random extra of up to half of it (drawn from ``self.rng``) becomes a
``candidate``: it asks every replica for its log position and whether it still hears a
primary, and waits up to one ``heartbeat_interval``. If a replica that answered has a
later log (higher last epoch, then longer; ties go to the replica listed first), that
one should be promoted: if it still hears a primary the candidate waits (that primary
steps down without a majority, or it is alive), else it nominates it, which starts at
once (twice at most per silence, so a nominee that cannot win does not stall the
failover). Otherwise, with ``epoch``, if a majority (itself included) would vote for it
(a pre-vote: they hear no primary and its log is at least as up to date as theirs), it
takes a new epoch, durable and synced with its own vote, and asks for votes; a replica
votes once per epoch, for a candidate whose log is at least as up to date as its own,
only after ``failure_timeout`` without hearing a primary, and makes its vote durable
before answering. A majority makes it primary. With ``none`` it takes a new epoch of its
own (the next number above every epoch it has seen that is congruent to its position
among the replicas, so two self-promoted primaries never share an epoch) and becomes
primary once that is on disk. A replica that sees a higher epoch follows it: a primary
steps down, its unanswered clients time out. With ``epoch`` a primary that has not heard
from a majority for ``failure_timeout`` (counted in ticks) steps down too and refuses
writes. A restarted replica comes back as a backup that counts its silence from the
restart; at the very first boot the ``initial_primary`` takes epoch 1 without an
election (elections start at epoch 2).

Membership changes (scale actions) go through the primary's log, one replica at a time
(as Raft's single-server changes): a configuration is a log entry listing the replicas
that vote and count towards ``acks``; every replica uses the latest one in its log, from
the moment it is appended (before any, the shard's hosts at boot). When the shard's hosts
change (:meth:`PrimaryBackup.on_hosts_changed`, and at every tick while they differ) the
primary ships its log to a new host as a non-voting learner, in rounds, and once a round
ends within ``failure_timeout`` appends a configuration with it; it removes a replica
(itself last) by appending a configuration without it. A change starts only once the
previous configuration entry and the epoch's no-op are committed, so the majorities of two
configurations in force at once overlap. Entries shipped to a learner carry their size
(``64 + 100`` bytes each), so bandwidth slows the transfer. A committed configuration
becomes the shard's membership (``set_members``); a primary left out of it steps down
(and the others elect, after ``failure_timeout``), and a removed replica is stopped.
Only replicas in the configuration promote themselves, vote, or count; a replica outside
it is not ready for clients (``set_ready``).

Failover time, from the last heartbeat a majority heard: between ``failure_timeout +
2 * heartbeat_interval`` and ``1.5 * failure_timeout + 5 * heartbeat_interval``, plus a
few round trips and fsyncs for the pre-vote, the votes and the first commit (0.6 to 1 s
with the defaults).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from capsim.policies.commands import COMMAND, apply_entries, read_value
from capsim.schema import Interval
from capsim.sim.node import Message, Node, Request

__all__ = ["PrimaryBackup"]

# Fields of a log entry: (op, key, value, request id, epoch).
OP, KEY, VALUE, REQ, EPOCH = range(5)
#: A configuration entry: (CONFIG, None, replicas, None, epoch).
CONFIG = "config"
#: Bytes of an append shipped to a learner: a header and so much per entry.
HEADER_BYTES, ENTRY_BYTES = 64, 100
NEVER = float("-inf")
#: Times a candidate defers to a more up-to-date replica before it runs anyway.
MAX_DEFERRALS = 2
#: Seconds (at least; at most twice that) a replica remembers requests it turned away.
PASSED_KEPT_S = 30.0


@dataclass(frozen=True, kw_only=True)
class Params:
    """Parameters of :class:`PrimaryBackup`.

    ``replication``: ``sync`` (acknowledge an update once ``acks`` replicas have it on
    disk) or ``async`` (once the primary's own disk has it; backups follow in the
    background). ``acks``: ``majority`` or ``all`` replicas, the primary included (with
    ``sync``; ignored with ``async``). ``fencing``: ``epoch`` (promotion needs a
    majority's votes; a primary without a majority steps down; reads under a lease) or
    ``none`` (a backup promotes itself; see the module docstring). ``heartbeat_interval``:
    seconds between the primary's heartbeats, and the tick of every timer (at least 1 ms;
    it should exceed a round trip). ``failure_timeout``: seconds of silence after which a
    backup starts a promotion, a primary without a majority steps down, and a read lease
    expires (at least two heartbeat intervals). ``initial_primary``: the container that
    takes epoch 1 at the first boot (default: the shard's first replica). ``max_batch``:
    most entries in one append message.
    """

    replication: Literal["sync", "async"] = "sync"
    acks: Literal["majority", "all"] = "majority"
    fencing: Literal["epoch", "none"] = "epoch"
    heartbeat_interval: Interval = 0.05
    failure_timeout: Interval = 0.5
    initial_primary: str | None = None
    max_batch: int = 256

    def __post_init__(self):
        if self.failure_timeout < 2 * self.heartbeat_interval:
            raise ValueError(
                f"failure_timeout ({self.failure_timeout} s) must be at least twice "
                f"heartbeat_interval ({self.heartbeat_interval} s)"
            )
        if not 1 <= self.max_batch <= 1_000_000:
            raise ValueError(f"max_batch must be between 1 and 1000000, got {self.max_batch}")


class PrimaryBackup(Node):
    """Primary-backup replication with failover (CP with sync and epoch fencing)."""

    Params = Params
    invariants = (
        "linearizable",
        "no-lost-writes",
        "convergence",
        "single-leader",
        "state-machine-safety",
    )

    @classmethod
    def claims(cls, params: Params) -> tuple[str, ...]:
        """Every invariant with ``replication: sync``; with ``async`` (a configuration
        that trades durability for latency, as MongoDB's w=1) only ``convergence`` and
        ``single-leader``. ``fencing: none`` is a bug switch: it keeps the claim."""
        if params.replication == "async":
            return ("convergence", "single-leader")
        return cls.invariants

    def on_start(self) -> None:
        p = self.params
        self.synchronous = p.replication == "sync"
        self.fenced = p.fencing == "epoch"
        self.all_acks = p.acks == "all"
        self.interval = p.heartbeat_interval
        self.timeout = p.failure_timeout
        self.max_batch = p.max_batch
        self.role = "backup"
        # Silence is counted in ticks. A message heard between ticks k and k + 1 sets
        # `heard` to k, so `ticks - heard >= n` means at least (n - 1) intervals passed.
        timeout_ticks = math.ceil(self.timeout / self.interval - 1e-9)
        self.step_ticks = timeout_ticks
        self.vote_ticks = timeout_ticks + 1
        self.entries = self.durable.log("log")
        # The configuration: the latest in the log (indices of its configuration entries,
        # in order), else the shard's hosts at boot.
        self.config_at = [i for i, e in enumerate(self.entries) if e[OP] == CONFIG]
        self.learning: dict[str, tuple[int, int]] = {}  # learner -> round (end, start tick)
        self.configure()
        peers = self.config
        # Where each request id sits in our log: a retried or duplicated request is
        # appended once, and never refused while it may still take effect.
        self.seen = {
            entry[REQ]: i for i, entry in enumerate(self.entries) if entry[REQ] is not None
        }
        self.term = self.durable.get("epoch", 0)
        self.commit = min(self.durable.get("commit", 0), len(self.entries))
        self.saved_commit = self.commit  # the commit index is saved once a tick (a lower bound)
        self.on_disk = len(self.entries)  # what a crash would keep: all of it, after a restart
        self.cuts = 0  # truncations so far: a sync issued before one covers none of its entries
        self.data: dict[str, Any] = {}
        self.version: dict[str, int] = {}
        self.applied = 0
        self.outcomes: dict[int, bool] = {}  # CAS entries: did it compare equal?
        self.apply_to(self.commit)
        self.role = "backup"
        self.primary: str | None = None
        self.waiting: dict[int, Request] = {}
        self.ticks = 0
        self.heard = 0  # a restart counts as hearing a primary: no vote for a timeout
        self.draw_patience()
        self.next_try = self.fire_ticks
        self.deferrals = 0  # nominations in the silence that began at `heard`
        self.deferrals_heard = 0
        self.probe_round = 0
        self.replies: dict[str, tuple] | None = None
        self.votes: set[str] | None = None
        # Request id -> the last attempt this replica turned away (redirected or refused),
        # kept for 30 to 60 s (two generations): a duplicate of that attempt delivered
        # later must not take effect, since its client may have been told it failed.
        self.passed: dict[int, int] = {}
        self.passed_before: dict[int, int] = {}
        self.forget_ticks = math.ceil(PASSED_KEPT_S / self.interval)
        self.handlers = {
            "append": self.on_append,
            "ack": self.on_ack,
            "probe": self.on_probe,
            "probed": self.on_probed,
            "vote": self.on_vote,
            "voted": self.on_voted,
            "nominate": self.on_nominate,
        }
        initial = p.initial_primary or self.hosts(initial=True)[0]
        if initial not in self.rank:
            self.log(f"initial_primary {initial!r} is not a replica here: {peers[0]} instead")
            initial = peers[0]
        # (A member: a replica a scale action placed here later starts outside the
        # membership, and must never take epoch 1 again.)
        if self.term == 0 and not self.entries and self.id == initial and self.id in self.peers:
            self.claim(1)
        self.set_timer(self.interval, self.tick)

    # -- the configuration -----------------------------------------------------------------

    def configure(self) -> None:
        """Adopt the latest configuration in the log: who votes and counts, ranks, majority,
        readiness."""
        at = self.config_at
        config = self.entries[at[-1]][VALUE] if at else self.hosts(initial=True)
        self.config = config
        self.voter = self.id in config
        self.rank = {peer: i for i, peer in enumerate(config)}
        self.voters = [peer for peer in config if peer != self.id]
        self.majority = len(config) // 2 + 1
        self.set_ready(self.voter)
        if self.role == "primary":
            self.followers()
        else:
            self.others = self.voters

    def followers(self) -> None:
        """A primary's backups: the voters, members a committed configuration has not yet
        removed, and hosts catching up (learners)."""
        me, ticks = self.id, self.ticks
        listed = [*self.config, *self.peers, *self.hosts()]
        others = list(dict.fromkeys(p for p in listed if p != me))
        for peer in others:
            if peer not in self.match:  # new to this primary: ship it everything
                self.match[peer] = 0
                self.floor[peer] = 0
                self.next[peer] = 0
                self.progress[peer] = ticks
                self.contact[peer] = ticks
                self.sent_tick[peer] = ticks
                self.acked_sent[peer] = NEVER
        self.others = others

    def config_appended(self, start: int) -> None:
        """Entries from ``start`` on were appended: note configuration entries among them."""
        entries = self.entries
        found = False
        for index in range(start, len(entries)):
            if entries[index][OP] == CONFIG:
                self.config_at.append(index)
                found = True
        if found:
            self.configure()

    def config_cut(self, index: int) -> None:
        """The log was cut at ``index``: configuration entries from there on are gone."""
        if self.config_at and self.config_at[-1] >= index:
            self.config_at = [i for i in self.config_at if i < index]
            self.configure()

    def on_hosts_changed(self) -> None:
        if self.role == "primary":
            self.followers()
            self.changing = True
            self.reconfigure()

    def committed_config(self) -> None:
        """The epoch's no-op and every configuration entry are committed: publish the
        configuration as the membership; step down if it leaves us out."""
        if self.config_at and self.config_at[-1] >= self.commit:
            return
        self.set_members(self.config)
        self.followers()
        if not self.voter:
            self.log(f"leaving the configuration in epoch {self.term}: stepping down")
            self.waiting = {}
            self.role = "backup"
            self.primary = None
            return
        self.reconfigure()

    def reconfigure(self) -> None:
        """Move the configuration one replica towards the shard's hosts: add a caught-up
        learner, else remove a replica (ourselves last), once the previous change and the
        epoch's no-op are committed."""
        if self.role != "primary":
            return
        hosts = self.hosts()
        config = self.config
        adding = [h for h in hosts if h not in config]
        removing = [m for m in config if m not in hosts]
        if not adding and not removing:
            self.changing = False
            self.learning = {}
            return
        if not self.settled():
            return
        for learner in [p for p in self.learning if p not in adding]:
            del self.learning[learner]
        if adding:
            learner = adding[0]
            if learner not in self.learning:
                self.log(f"shipping the log to {learner} before adding it")
                self.learning[learner] = (len(self.entries), self.ticks)
                self.send_entries(learner, self.floor[learner], len(self.entries))
            self.caught_up(learner)
            return
        others = [m for m in removing if m != self.id]
        leaving = others[0] if others else self.id
        self.change_config(tuple(m for m in config if m != leaving), f"removing {leaving}")

    def settled(self) -> bool:
        """Whether the epoch's no-op and the latest configuration entry are committed."""
        return self.commit >= self.read_barrier and not (
            self.config_at and self.config_at[-1] >= self.commit
        )

    def caught_up(self, learner: str) -> None:
        """End a round if ``learner`` holds its end: add it if the round took less than
        ``failure_timeout``, else begin another."""
        end, began = self.learning[learner]
        if self.match[learner] < end:
            return
        if self.ticks - began < self.step_ticks:
            del self.learning[learner]
            if self.settled():
                order = {p: i for i, p in enumerate(self.containers())}
                added = sorted((*self.config, learner), key=lambda p: order.get(p, len(order)))
                self.change_config(tuple(added), f"adding {learner}")
        else:
            self.learning[learner] = (len(self.entries), self.ticks)

    def change_config(self, config: tuple[str, ...], why: str) -> None:
        """Append a configuration entry (it takes effect at once) and replicate it."""
        self.log(f"configuration {' '.join(config)} ({why}) in epoch {self.term}")
        entries = self.entries
        index = len(entries)
        entries.append((CONFIG, None, config, None, self.term))
        self.config_at.append(index)
        self.configure()
        self.sync(self.on_synced, index + 1, self.cuts)
        self.replicate(index + 1)

    # -- the failure detector ---------------------------------------------------------------

    def draw_patience(self) -> None:
        """Ticks of silence before the next promotion attempt: the failure timeout, one
        more tick (so every replica that lost the primary with us is ready to vote), and a
        random extra of up to half the timeout, so that candidates rarely collide."""
        spread = self.vote_ticks // 2 + 1
        self.fire_ticks = self.vote_ticks + 1 + int(self.rng.random() * spread)

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks % self.forget_ticks == 0:
            self.passed_before, self.passed = self.passed, {}
        if self.commit != self.saved_commit:
            self.saved_commit = self.commit
            self.durable["commit"] = self.commit
        if self.role == "primary":
            self.primary_tick()
            if self.changing and self.role == "primary":
                self.reconfigure()
        elif (
            self.ticks >= self.next_try
            and self.ticks - self.heard >= self.fire_ticks
            and self.voter  # only a replica in the configuration promotes itself
        ):
            self.promote()
        self.set_timer(self.interval, self.tick)

    def hears_primary(self) -> bool:
        """Whether this replica is a primary, or heard one within the failure timeout."""
        if self.role == "primary":
            return True
        return self.role == "backup" and self.ticks - self.heard < self.vote_ticks

    def position(self) -> tuple[int, int]:
        """(epoch of the last entry, log length): the order of up-to-dateness."""
        entries = self.entries
        return (entries[len(entries) - 1][EPOCH] if entries else 0, len(entries))

    # -- promotion -----------------------------------------------------------------------------

    def promote(self) -> None:
        """The primary is silent: ask everyone for their log position (a pre-vote)."""
        self.role = "candidate"  # still sending clients to the last primary it heard
        self.votes = None
        self.draw_patience()
        self.next_try = self.ticks + self.fire_ticks
        self.probe_round += 1
        self.replies = {}
        last_epoch, length = self.position()
        body = (self.probe_round, self.term, last_epoch, length)
        for peer in self.voters:
            self.send(peer, "probe", body)
        if not self.voters:
            self.decide(self.probe_round)
        else:
            self.set_timer(self.interval, self.decide, self.probe_round)

    def on_probe(self, msg: Message) -> None:
        last_epoch, length = self.position()
        body = (msg.body[0], self.term, last_epoch, length, self.hears_primary())
        self.reply(msg, "probed", body)

    def on_probed(self, msg: Message) -> None:
        replies = self.replies
        if self.role != "candidate" or replies is None or msg.body[0] != self.probe_round:
            return
        replies[msg.src] = msg.body[1:]
        if len(replies) == len(self.voters):
            self.decide(self.probe_round)

    def decide(self, probe_round: int) -> None:
        """Every replica answered, or a heartbeat interval passed: promote, nominate a
        more up-to-date replica, or stay a backup."""
        replies = self.replies
        if self.role != "candidate" or replies is None or probe_round != self.probe_round:
            return
        self.replies = None
        mine = self.position()
        best, best_key, best_hears = None, (mine[0], mine[1], -self.rank[self.id]), False
        grants, top, someone_hears = 1, self.term, False
        for peer in self.voters:  # in peer order: deterministic
            answer = replies.get(peer)
            if answer is None:
                continue
            term, last_epoch, length, hears = answer
            if term > top:
                top = term
            key = (last_epoch, length, -self.rank[peer])
            if key > best_key:
                best, best_key, best_hears = peer, key, hears
            if hears:
                someone_hears = True
            elif (last_epoch, length) <= mine:
                grants += 1
        if best is not None:
            # A replica with a later log is the one to promote. If it still hears a
            # primary, wait: that primary steps down without a majority, and the replica
            # stops hearing it. If not, nominate it (twice at most per silence, so that
            # a nominee that cannot act does not stall the failover).
            if best_hears:
                self.role = "backup"
                return
            if self.deferrals_heard != self.heard:  # a new silence
                self.deferrals_heard = self.heard
                self.deferrals = 0
            if self.deferrals < MAX_DEFERRALS:
                self.deferrals += 1
                self.role = "backup"
                self.send(best, "nominate")
                return
        if not self.fenced:
            if someone_hears:
                self.role = "backup"
            else:
                self.claim(self.own_epoch(top))
        elif grants >= self.majority:
            self.elect(max(top, 1) + 1)
        else:
            self.role = "backup"

    def on_nominate(self, msg: Message) -> None:
        if self.role == "backup" and not self.hears_primary() and self.voter:
            self.promote()

    def own_epoch(self, top: int) -> int:
        """The next epoch above ``top`` (and above 1) that only this replica may take."""
        n = len(self.config)
        base = max(top, 1) + 1
        return base + (self.rank[self.id] - base) % n

    def claim(self, epoch: int) -> None:
        """Take ``epoch`` without an election (the first boot, or ``fencing: none``)."""
        self.role = "candidate"
        self.term = epoch
        self.durable["epoch"] = epoch
        self.sync(self.claimed, epoch)

    def claimed(self, epoch: int) -> None:
        if self.role == "candidate" and self.term == epoch:
            self.become_primary()

    def elect(self, epoch: int) -> None:
        """Take ``epoch`` with this replica's own vote, durable, then ask for votes."""
        self.term = epoch
        self.durable["epoch"] = epoch
        self.durable["voted"] = (epoch, self.id)
        self.votes = {self.id}
        self.sync(self.ask_votes, epoch)

    def ask_votes(self, epoch: int) -> None:
        if self.role != "candidate" or self.term != epoch or self.votes is None:
            return
        if len(self.votes) >= self.majority:
            self.votes = None
            self.become_primary()
            return
        last_epoch, length = self.position()
        for peer in self.voters:
            self.send(peer, "vote", (epoch, last_epoch, length))

    def on_vote(self, msg: Message) -> None:
        epoch, last_epoch, length = msg.body
        if epoch < self.term or self.hears_primary():
            self.reply(msg, "voted", (self.term, False))
            return
        if epoch > self.term:
            self.adopt(epoch)
        voted = self.durable.get("voted")
        free = voted is None or voted[0] != epoch or voted[1] == msg.src
        if free and (last_epoch, length) >= self.position():
            self.durable["voted"] = (epoch, msg.src)
            self.next_try = self.ticks + self.fire_ticks
            self.sync(self.granted, msg, epoch)  # the vote is on disk before it is cast
        else:
            self.reply(msg, "voted", (self.term, False))

    def granted(self, msg: Message, epoch: int) -> None:
        self.reply(msg, "voted", (epoch, True))

    def on_voted(self, msg: Message) -> None:
        epoch, granted = msg.body
        if epoch > self.term:
            self.adopt(epoch)
            return
        votes = self.votes
        if not granted or votes is None or self.role != "candidate" or epoch != self.term:
            return
        if msg.src in self.rank:  # only votes of the configuration count
            votes.add(msg.src)
        if len(votes) >= self.majority:
            self.votes = None
            self.become_primary()

    def adopt(self, epoch: int) -> None:
        """Follow a higher epoch (or the winner of ours): become a backup."""
        if epoch > self.term:
            self.term = epoch
            self.durable["epoch"] = epoch
        if self.role == "primary":
            self.log(f"deposed: epoch {epoch} has begun")
            self.waiting = {}
        self.role = "backup"
        self.primary = None
        self.votes = None
        self.replies = None

    # -- the primary ---------------------------------------------------------------------------

    def become_primary(self) -> None:
        """Start serving the current epoch (already durable): a no-op entry of the epoch,
        committed with everything before it, then reads."""
        self.role = "primary"
        self.primary = self.id
        self.replies = None
        term = self.term
        self.log(f"primary for epoch {term}")
        entries = self.entries
        entries.append(("noop", None, None, None, term))
        end = len(entries)
        self.read_barrier = end
        others = self.voters
        ticks = self.ticks
        self.match = dict.fromkeys(others, 0)  # entries a backup holds on disk, as it says
        # Entries a backup is presumed to share with us: we send from there, and lower it
        # when the backup says otherwise (match counts only what it confirmed).
        self.floor = dict.fromkeys(others, end - 1)
        self.next = dict.fromkeys(others, end - 1)
        self.progress = dict.fromkeys(others, ticks)
        self.contact = dict.fromkeys(others, ticks)
        self.sent_tick = dict.fromkeys(others, ticks)
        self.acked_sent = dict.fromkeys(others, NEVER)
        self.lease_base = NEVER
        self.waiting = {}
        self.learning = {}
        self.followers()
        self.changing = set(self.hosts()) != set(self.config)
        self.sync(self.on_synced, end, self.cuts)
        self.replicate(end, heartbeat=True)

    def primary_tick(self) -> None:
        """Step down without a majority (with fencing), resend what a backup has not
        acknowledged for a tick, and heartbeat the backups sent nothing since the last."""
        ticks = self.ticks
        others = self.others
        if self.fenced:
            contact, step = self.contact, self.step_ticks
            fresh = self.voter + sum(1 for b in self.voters if ticks - contact[b] <= step)
            if fresh < self.majority:
                self.log(f"stepping down from epoch {self.term}: no majority for {self.timeout} s")
                self.waiting = {}
                self.role = "backup"
                self.primary = None
                self.heard = ticks - self.vote_ticks  # free to vote at once
                self.next_try = ticks + self.fire_ticks
                return
        end = len(self.entries)
        floor, progress, sent_tick = self.floor, self.progress, self.sent_tick
        for b in others:
            shared = floor[b]
            if shared < end and ticks - progress[b] >= 2:
                # No acknowledgement for a whole tick: resend what it lacks.
                progress[b] = ticks
                self.send_entries(b, shared, end)
            elif sent_tick[b] < ticks - 1:
                self.heartbeat(b, shared)

    def on_client(self, req: Request) -> None:
        if self.role != "primary":
            if req.op != "read":
                index = self.seen.get(req.id)
                if index is not None:
                    if index < self.applied:  # it took effect: say so
                        self.answer(req, index)
                        return
                    if self.primary is None:
                        return  # in our log, maybe committed elsewhere: no definite answer
                else:
                    # Turned away: a late duplicate of this attempt must never be appended.
                    self.passed[req.id] = req.attempt
            primary = self.primary
            if primary is not None and primary != self.id:
                self.redirect(req, primary)
            else:
                self.fail(req, "no-primary")
            return
        if req.op == "read":
            if self.commit < self.read_barrier:
                self.fail(req, "recovering")
            elif self.fenced and not self.lease_held():
                self.fail(req, "no-lease")
            else:
                self.ok(req, read_value(self.data, req.key))
            return
        index = self.seen.get(req.id)
        if index is not None:  # a duplicate or retry of a request already in the log
            if index < self.applied:
                self.answer(req, index)
            else:
                self.waiting[index] = req
            return
        if self.passed or self.passed_before:
            turned_away = self.passed.get(req.id)
            if turned_away is None:
                turned_away = self.passed_before.get(req.id)
            if turned_away is not None and req.attempt <= turned_away:
                # A late copy of an attempt this replica redirected or refused: the client
                # was told (or will be) that it did not take effect here.
                self.fail(req, "duplicate")
                return
        value = tuple(req.value) if req.op == "cas" else req.value
        entries = self.entries
        index = len(entries)
        term = self.term
        entry = (req.op, req.key, value, req.id, term)
        prev_epoch = entries[index - 1][EPOCH] if index else 0
        entries.append(entry)
        self.seen[req.id] = index
        self.waiting[index] = req
        self.sync(self.on_synced, index + 1, self.cuts)
        # Backups that have been sent everything before it share one message body.
        body = (term, index, prev_epoch, (entry,), self.commit)
        end = index + 1
        nxt, floor, sent_tick, ticks = self.next, self.floor, self.sent_tick, self.ticks
        for backup in self.others:
            start = nxt[backup]
            if start == index:
                self.send(backup, "append", body)
                nxt[backup] = end
                sent_tick[backup] = ticks
            elif start < end and start - floor[backup] < self.max_batch:
                self.send_entries(backup, start, end)

    def lease_held(self) -> bool:
        """Whether a majority (this primary included) acknowledged a message this primary
        sent less than ``failure_timeout`` ago by its clock (never if the clock went back
        past the acknowledged sends)."""
        now = self.now()
        age = now - self.lease_base
        if 0 <= age < self.timeout:
            return True
        if self.majority == 1 and self.voter:
            return True
        acked = sorted([self.acked_sent[b] for b in self.voters], reverse=True)
        base = acked[self.majority - 2] if self.voter else acked[self.majority - 1]
        self.lease_base = base
        age = now - base
        return 0 <= age < self.timeout

    def answer(self, req: Request, index: int) -> None:
        if req.op == "cas" and not self.outcomes.get(index, False):
            self.fail(req, "mismatch")
        else:
            self.ok(req, req.value)

    def on_synced(self, length: int, cuts: int) -> None:
        """This replica's disk holds its first ``length`` entries (unless the log was cut
        since the sync was issued)."""
        if cuts == self.cuts and length > self.on_disk:
            self.on_disk = length
            if self.role == "primary":
                self.advance()

    def replicate(self, end: int, heartbeat: bool = False) -> None:
        """Send each backup the entries after the last one sent to it, unless it has
        ``max_batch`` entries unacknowledged already (its acknowledgements send more); with
        ``heartbeat``, send every backup an append, empty for those that have everything."""
        nxt, floor, window = self.next, self.floor, self.max_batch
        for backup in self.others:
            start = nxt[backup]
            if heartbeat or (start < end and start - floor[backup] < window):
                self.send_entries(backup, start, end)

    def send_entries(self, backup: str, start: int, end: int) -> None:
        """Send ``backup`` the entries from ``start`` (at most ``max_batch``); ``end`` is
        the log's length."""
        entries = self.entries
        if start > end:
            start = end
        stop = start + self.max_batch
        if stop > end:
            stop = end
        if start:
            batch = entries[start - 1 : stop]  # one read for the entry before and the batch
            prev_epoch = batch[0][EPOCH]
            batch = batch[1:]
        else:
            batch, prev_epoch = entries[:stop], 0
        body = (self.term, start, prev_epoch, batch, self.commit)
        if backup in self.rank or not batch:
            self.send(backup, "append", body)
        else:  # shipping the log to a learner: its size counts against bandwidth
            self.send(backup, "append", body, size=HEADER_BYTES + ENTRY_BYTES * len(batch))
        self.next[backup] = stop
        self.sent_tick[backup] = self.ticks

    def heartbeat(self, backup: str, at: int) -> None:
        """An empty append after the first ``at`` entries, which ``backup`` is presumed to
        share (if not, it answers how many it does): it carries the epoch and the commit
        index, and resends nothing."""
        prev_epoch = self.entries[at - 1][EPOCH] if at else 0
        self.send(backup, "append", (self.term, at, prev_epoch, (), self.commit))
        self.sent_tick[backup] = self.ticks

    def on_ack(self, msg: Message) -> None:
        if self.role != "primary":
            return
        epoch, accepted, length, start, sent = msg.body
        if epoch != self.term:
            if epoch > self.term:
                self.adopt(epoch)  # a backup follows a later epoch: we are deposed
            return
        if sent is None:
            # A refusal of an append this replica sent as primary of an earlier epoch,
            # arriving now that it leads the backup's epoch again: it says nothing of this
            # epoch's appends (and its epoch was adopted when it was made primary).
            return
        backup = msg.src
        self.contact[backup] = self.ticks
        self.acked_sent[backup] = sent
        if accepted:
            if length > self.match[backup]:
                self.match[backup] = length
                self.progress[backup] = self.ticks
                if length > self.commit and self.synchronous:
                    self.advance()
                if backup in self.learning:
                    self.caught_up(backup)
            shared = self.floor[backup]
            if length > shared:
                self.floor[backup] = length
                nxt = self.next[backup]
                if length > nxt:
                    self.next[backup] = length
                elif nxt - shared >= self.max_batch:  # its window was full: send more
                    end = len(self.entries)
                    if nxt < end:
                        self.send_entries(backup, nxt, end)
        else:
            # Its log matches ours at most up to `length`: count no more, resend from there.
            if length < self.match[backup]:
                self.match[backup] = length
            self.floor[backup] = length
            self.next[backup] = length
            if length < start:  # news: resend now (else the tick retries, not a tight loop)
                self.send_entries(backup, length, len(self.entries))

    def advance(self) -> None:
        """Commit what ``acks`` replicas store (or, async, what this disk stores), apply it
        in order and answer its clients."""
        on_disk = self.on_disk
        if self.synchronous:
            match = self.match
            held = [match[b] for b in self.voters]
            if not self.voter:  # leaving: our own disk does not count
                commit = min(held) if self.all_acks else sorted(held)[-self.majority]
            elif self.all_acks:
                commit = min(on_disk, *held) if held else on_disk
            elif self.majority > 1:
                commit = sorted(held, reverse=True)[self.majority - 2]
                if commit > on_disk:
                    commit = on_disk  # never past our own disk: a crash must not lose it
            else:
                commit = on_disk
            if commit <= self.commit or self.entries[commit - 1][EPOCH] != self.term:
                return  # an earlier epoch's entry commits only with one of ours
        else:
            commit = on_disk
            if commit <= self.commit:
                return
        published = self.commit
        self.commit = commit
        first = self.applied
        self.apply_to(commit)
        waiting = self.waiting
        if waiting:
            for index in range(first, commit):
                req = waiting.pop(index, None)
                if req is not None:
                    self.answer(req, index)
        if commit >= self.read_barrier and (
            published < self.read_barrier or self.config_at[-1:] >= [published]
        ):
            self.committed_config()

    # -- a backup ------------------------------------------------------------------------------

    def on_message(self, msg: Message) -> None:
        handler = self.handlers.get(msg.kind)
        if handler is not None:
            handler(msg)

    def on_append(self, msg: Message) -> None:
        epoch, start, prev_epoch, new, commit = msg.body
        if epoch != self.term or self.role != "backup":
            if epoch < self.term:
                # An older epoch's primary: refuse, and tell it ours so that it steps down.
                self.reply(msg, "ack", (self.term, False, 0, start, None))
                return
            if self.role == "primary" and epoch == self.term:
                self.log(f"ignoring {msg.src}, a second primary of epoch {epoch}")
                return
            self.adopt(epoch)
        self.primary = msg.src
        self.heard = self.ticks
        log = self.entries
        length = len(log)
        if start > length or (start and log[start - 1][EPOCH] != prev_epoch):
            hint = length if start > length else self.conflict_start(start - 1)
            self.reply(msg, "ack", (epoch, False, hint, start, msg.sent_at))
            return
        count = len(new)
        shared = start + count  # our log matches the primary's up to here
        seen = self.seen
        if start == length:  # the usual case: the next entries
            changed = count > 0
            if changed:
                log.extend(new)
                if count == 1:
                    seen[new[0][REQ]] = start
                    if new[0][OP] == CONFIG:
                        self.config_appended(start)
                else:
                    for index, entry in enumerate(new, start):
                        seen[entry[REQ]] = index
                    self.config_appended(start)
        else:
            # Skip the entries we hold already (one epoch writes each index once), drop a
            # conflicting suffix, append the rest.
            index = start
            while index < length and index < shared:
                if log[index][EPOCH] != new[index - start][EPOCH]:
                    if index < self.commit:
                        self.roll_back(index)
                    for entry in log[index:]:
                        seen.pop(entry[REQ], None)
                    log.truncate(index)
                    self.config_cut(index)
                    if self.on_disk > index:
                        self.on_disk = index
                    self.cuts += 1
                    break
                index += 1
            changed = index < shared
            if changed:
                log.extend(new[index - start :])
                for at, entry in enumerate(new[index - start :], index):
                    seen[entry[REQ]] = at
                self.config_appended(index)
        if commit > self.commit:
            upto = commit if commit < shared else shared
            if upto > self.commit:
                self.commit = upto
                self.apply_to(upto)
        if changed:  # the log is now `shared` long
            self.sync(self.backup_synced, msg, epoch, shared, shared, self.cuts)
        else:
            self.backup_synced(msg, epoch, 0, shared, self.cuts)

    def conflict_start(self, index: int) -> int:
        """Where to ask the primary to resend from, given that our entry at ``index`` is
        not the primary's: the first entry of its epoch (not below the commit index in the
        sync-and-epoch configuration, where everything committed is the primary's)."""
        log = self.entries
        epoch = log[index][EPOCH]
        floor = self.commit if self.synchronous and self.fenced else 0
        while index > floor and log[index - 1][EPOCH] == epoch:
            index -= 1
        return index

    def backup_synced(self, msg: Message, epoch: int, length: int, shared: int, cuts: int) -> None:
        """The disk holds the first ``length`` entries (unless the log was cut since the
        sync was issued): acknowledge what is both on disk and shared with the primary."""
        if cuts == self.cuts and length > self.on_disk:
            self.on_disk = length
        if epoch != self.term:
            return  # a later epoch began meanwhile: its primary would ignore the answer
        acked = shared if shared < self.on_disk else self.on_disk
        self.reply(msg, "ack", (epoch, True, acked, msg.body[1], msg.sent_at))

    def roll_back(self, index: int) -> None:
        """Forget committed entries from ``index`` on (the new primary never had them:
        acknowledged writes lost, only with async or without fencing) and rebuild."""
        self.log(
            f"rolling back committed entries {index}..{self.commit - 1}: "
            f"the primary of epoch {self.term} does not have them"
        )
        self.commit = self.saved_commit = index
        self.durable["commit"] = index
        self.data, self.version, self.outcomes, self.applied = {}, {}, {}, 0
        self.apply_to(index)

    # -- the state machine ------------------------------------------------------------------------

    def apply_to(self, commit: int) -> None:
        apply_entries(self.entries, self.applied, commit, self.data, self.version, self.outcomes)
        if commit > self.applied:
            self.applied = commit

    # -- introspection ----------------------------------------------------------------------------

    def value_of(self, key: str) -> tuple[Any, Any]:
        return read_value(self.data, key), self.version.get(key)

    def applied_log(self) -> list[Any]:
        return list(map(COMMAND, self.entries[: self.applied]))
