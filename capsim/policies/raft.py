"""Raft (Ongaro & Ousterhout 2014): elected leaders, a replicated log, majority commit.

CAP claim: **CP**. Each shard is one Raft group. A replica that hears nothing from a
leader for a randomized election timeout stands for election in a new term; it wins with
the votes of a majority, each voter granting one vote per term and only to a candidate
whose log is at least as up to date as its own. The leader appends every write, CAS and
add to its log, replicates it, and commits it once a majority of replicas hold it on disk;
then every replica applies it, in log order, and the leader answers the client. A
follower redirects clients to the leader it knows; a replica that knows none (a
candidate, or a leader that has stepped down) fails them with ``no-leader``, a definite
failure.

Under a partition the side holding a majority of a shard's replicas keeps its leader, or
elects one within about an election timeout, and serves everything; the minority side
serves nothing: its followers redirect to a leader they cannot reach, and a leader cut
off in the minority commits nothing (its clients time out) and steps down within two
``election_timeout_max`` (check quorum, Ongaro's thesis 6.2: no round of heartbeats
answered by a majority since the last check), after which its clients get
``no-leader``. After the heal the minority catches up from the leader's log.

Invariants claimed, under any partition, crash, pause, message loss or duplication and
clock fault (safety never depends on timing; only ``read: lease`` does, see below):

* ``linearizable``: every history is linearizable;
* ``no-lost-writes``: an acknowledged update is never lost;
* ``convergence``: after the final heal every replica applies the same log;
* ``single-leader``: at most one leader per term;
* ``state-machine-safety``: no two replicas apply different commands at the same log
  position (every applied log is a prefix of another).

How it keeps them. Term, vote and log live in ``self.durable``, and a replica answers no
request (a vote, an append) before a sync issued after its last change completes; a
candidate counts its own vote, and a leader its own entries, only once they are synced.
An append carries the index and term of the entry before the new ones; a follower accepts
it only if its log holds that entry (so logs that share an entry share everything before
it), drops a conflicting suffix and answers with a hint where to resend from. Each leader
starts its term with a no-op entry and commits only by counting replicas of an entry of
its own term (earlier entries are committed with it). Every request carries an id; the
state machine applies the first entry with a given id and skips later copies (the
dedup table is rebuilt from the log on restart), and a leader does not append a request
already in its log, so a retried or duplicated write takes effect once (a CAS answers
with the outcome of its first application). A request waits at the replica that appended
it until the entry is applied there, even if that replica has been deposed meanwhile; if
a new leader overwrites the entry, the request is redirected to that leader.

Elections. A follower that has heard from a leader within ``election_timeout_min``
refuses votes without raising its term (Ongaro's thesis 4.2.3), and ``pre_vote`` adds a
round asking whether a majority would vote before the term is raised (thesis 9.6): without
it, the failed elections of a cut-off minority raise its term, and when the partition
heals the leader steps down on seeing that term, costing one more election.

Reads (``read``):

* ``read_index`` (default, linearizable): the leader notes its commit index (at least its
  term's no-op), confirms it is still leader by a round of heartbeats acknowledged by a
  majority after the read arrived, and answers once it has applied that far. Reads arriving
  while a round is in flight share the next round.
* ``lease``: the leader answers at once while it holds a lease of ``lease_ratio`` x
  ``election_timeout_min``, counted on its own timers from the start of the last heartbeat
  round a majority acknowledged (else as ``read_index``). A follower that has heard from a
  leader within ``election_timeout_min`` grants no vote, so no other leader is elected
  before the lease ends, as long as clocks run at the same rate: linearizable only while
  clock drift stays within ``1 - lease_ratio``. A clock fault with ``rate`` (a leader's
  clock running slow, a follower's fast) breaks it, and so does a follower's clock
  jumping forward (followers time elections with ``now()``).
* ``local`` (a bug switch, etcd issue 741): any replica, a follower or a deposed leader,
  answers from its own applied state. Under a partition the minority serves values that
  stop at the cut, and even without faults a follower answers before it learns that the
  latest writes committed: not linearizable, ``stale_read_fraction`` above 0 (see
  ``scenarios/raft-stale-reads.yaml``).

A deposed leader redirects the reads it was confirming to the new leader (or fails them
with ``no-leader``: a read has no effect to lose).

Bug switch ``commit_old_term_entries: true``: the leader also commits entries of earlier
terms by counting the replicas that hold them (the Raft paper's Figure 8). An entry on a
majority but of an old term can still be overwritten by a candidate whose last entry has a
newer term, so committed entries are lost: acknowledged writes vanish, replicas roll back
what they applied (``node.log`` says so), ``state-machine-safety`` and ``linearizable``
break. See ``scenarios/raft-figure8.yaml``.

Membership changes (scale actions) go through the log, one server at a time, as in
Ongaro's thesis (section 4.1). A configuration is a log entry listing the voting
servers; every server uses the latest configuration in its log, committed or not, from
the moment it is appended (before any, the shard's hosts at boot). When the shard's hosts
change (:meth:`Raft.on_hosts_changed`, and at every heartbeat while they differ from the
configuration), the leader first catches a new server up as a non-voting learner, in
rounds (thesis 4.2.1): a round replicates up to the log's end as it was when the round
began, and once a round takes less than ``election_timeout_min`` the leader appends a
configuration with the server added. It removes a server (its own container last) by
appending a configuration without it. It starts a change only once the previous
configuration entry and an entry of its own term are committed, so two configurations in
force at once always differ by one server and their majorities overlap. Catch-up appends
to a learner carry their size (``64 + 100`` bytes per entry), so bandwidth slows them.
Only voters campaign, and only voters' votes and acknowledgements count. Once a
configuration entry commits, the leader publishes it as the shard's membership
(``set_members``, which clients route by), and a leader no longer in it steps down; a
removed server is then stopped. A server outside its configuration is not ready
(``set_ready``), so clients' default routing passes it by.

Availability. After a leader crash the followers notice when the first of their
election timeouts runs out (150 to 300 ms after the last heartbeat, itself at most
``heartbeat`` old); the election takes a round trip and a sync, and the no-op's commit
another. With the defaults, 1 and 3 ms links and a 2 ms disk, operations (of clients whose
own container is up) are served again 0.20 s after the crash on average, at most 0.25 s
over 40 runs (0.21 and 0.27 s with ``pre_vote``). After a crash, pause or clock fault ends,
service is back at once (``recovery_s`` at most 0.03 s); after a partition heals, at once
with ``pre_vote``, and after up to 0.31 s (one more election) without.

Parameters: see :class:`Params`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field

from capsim.policies.commands import COMMAND, apply_command, read_value
from capsim.schema import FiniteFloat, Interval, StrictBool, WholeNumber
from capsim.sim.node import Message, Node, Request

__all__ = ["Raft", "Params"]

# Fields of a log entry: (op, key, value, request id, term).
OP, KEY, VALUE, REQ, TERM = range(5)
NOOP = "noop"
#: A configuration entry: (CONFIG, None, voters, None, term).
CONFIG = "config"
#: Bytes of a catch-up append to a learner: a header and so much per entry.
HEADER_BYTES, ENTRY_BYTES = 64, 100
NOTHING: tuple = ()
#: Batches in flight to a follower that is catching up.
INFLIGHT_BATCHES = 4


@dataclass(frozen=True, kw_only=True)
class Params:
    """Parameters of :class:`Raft`.

    ``heartbeat``: seconds between a leader's heartbeats (and resends of entries a
    follower has not acknowledged); at least 1 ms. ``election_timeout_min`` and
    ``election_timeout_max``: a follower that hears nothing from a leader for a timeout
    drawn uniformly between the two stands for election (and a candidate whose election
    does not finish in a new such timeout tries again); the minimum must exceed the
    heartbeat. ``pre_vote``: before a real election, ask whether a majority would vote
    (without raising the term), so that a replica cut off and rejoining does not depose
    a working leader. ``read``: ``read_index``, ``lease`` or ``local`` (see the module
    docstring). ``lease_ratio``: the lease as a fraction of ``election_timeout_min``, in
    (0, 1]: the clock drift the lease tolerates is ``1 - lease_ratio``. ``max_batch``:
    most entries in one append message. ``commit_old_term_entries``: the Figure 8 bug
    switch.
    """

    heartbeat: Interval = 0.05
    election_timeout_min: Interval = 0.15
    election_timeout_max: Interval = 0.3
    pre_vote: StrictBool = False
    read: Literal["read_index", "lease", "local"] = "read_index"
    lease_ratio: Annotated[FiniteFloat, Field(gt=0, le=1)] = 0.9
    max_batch: WholeNumber = 256
    commit_old_term_entries: StrictBool = False

    def __post_init__(self):
        if not 1 <= self.max_batch <= 1_000_000:
            raise ValueError(f"max_batch must be between 1 and 1000000, got {self.max_batch}")
        if self.election_timeout_max < self.election_timeout_min:
            raise ValueError(
                f"election_timeout_max ({self.election_timeout_max} s) must be at least "
                f"election_timeout_min ({self.election_timeout_min} s)"
            )
        if self.election_timeout_min <= self.heartbeat:
            raise ValueError(
                f"election_timeout_min ({self.election_timeout_min} s) must exceed the "
                f"heartbeat ({self.heartbeat} s), or followers depose a working leader"
            )


class Raft(Node):
    """Raft: leader election, log replication, majority commit, read index (CP)."""

    Params = Params
    # Bug switches (commit_old_term_entries, read: local) keep the claim: they break it.
    invariants = (
        "linearizable",
        "no-lost-writes",
        "convergence",
        "single-leader",
        "state-machine-safety",
    )

    def on_start(self) -> None:
        params = self.params
        self.entries = self.durable.log("log")
        self.term, self.vote = self.durable.get("hard", (0, None))
        self.role = "follower"
        self.leader: str | None = None
        # The configuration: the latest one in the log (indices of configuration entries
        # kept in order), else the shard's hosts at boot.
        self.config_at = [i for i, e in enumerate(self.entries) if e[OP] == CONFIG]
        self.learning: dict[str, tuple[int, float]] = {}  # learner -> round (end, start)
        self.configure()
        self.local_reads = params.read == "local"
        self.lease_reads = params.read == "lease"
        # Durability: count of durable writes made, and the count a completed sync covers.
        self.written = 0
        self.synced = 0
        # The state machine.
        self.commit = 0
        self.applied = 0
        self.data: dict[str, Any] = {}
        self.version: dict[str, int] = {}
        self.outcomes: dict[int, bool] = {}  # CAS entries by index: did it compare equal?
        self.done: dict[Any, int] = {}  # request id -> index of its first application
        self.commands: list[tuple] = []  # the commands applied, in order (applied_log)
        self.waiting: dict[int, list[Request]] = {}  # index -> requests answered on apply
        # Elections.
        self.timer = None
        self.timeout = params.election_timeout_min
        self.contacts = 0  # leader contacts (and votes granted): each restarts the timeout
        self.contacts_at_arm = 0
        self.last_contact = self.now()
        self.grants: set[str] = set()
        self.prevoting = False
        self.reset_election()

    # -- durable state --------------------------------------------------------------------------

    def configure(self) -> None:
        """Adopt the latest configuration in the log: voters, majority, readiness."""
        at = self.config_at
        config = self.entries[at[-1]][VALUE] if at else self.hosts(initial=True)
        self.config = config
        self.voter = self.id in config
        self.voters = tuple(p for p in config if p != self.id)  # the other voting servers
        self.majority = len(config) // 2 + 1
        self.set_ready(self.voter)
        if self.role == "leader":
            self.followers()

    def followers(self) -> None:
        """The leader's followers: voters, servers of the published membership not yet
        removed by a committed configuration, and hosts catching up (learners)."""
        me = self.id
        listed = [*self.config, *self.peers, *self.hosts()]
        others = tuple(dict.fromkeys(p for p in listed if p != me))
        now = self.now()
        for peer in others:
            if peer not in self.match:  # a learner, new to this leader: from the start
                self.next[peer] = 0
                self.match[peer] = 0
                self.progress_at[peer] = now
                self.acked_round[peer] = 0
        self.others = others

    def agreed(self, per_peer: dict[str, int], own: int) -> int:
        """The largest value a majority of voters has reached (our own ``own`` counts
        if we vote)."""
        values = [per_peer[p] for p in self.voters]
        if self.voter:
            values.append(own)
        values.sort(reverse=True)
        return values[self.majority - 1]

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

    def set_hard(self, term: int, vote: str | None) -> None:
        self.term, self.vote = term, vote
        self.durable["hard"] = (term, vote)
        self.written += 1

    def reply_durably(self, msg: Message, kind: str, body: tuple) -> None:
        """Answer ``msg`` once everything written so far (term, vote, log) is on disk."""
        if self.written > self.synced:
            self.sync(self.replied_durably, msg, kind, body, self.written)
        else:
            self.reply(msg, kind, body)

    def replied_durably(self, msg: Message, kind: str, body: tuple, mark: int) -> None:
        if mark > self.synced:
            self.synced = mark
        if kind == "append_ack" and body[0] != self.term:
            return  # a newer leader may have replaced the entries this would acknowledge
        self.reply(msg, kind, body)

    # -- elections ------------------------------------------------------------------------------

    def reset_election(self) -> None:
        """Arm the election timer with a fresh random timeout."""
        params = self.params
        low = params.election_timeout_min
        self.timeout = low + (params.election_timeout_max - low) * self.rng.random()
        self.arm(self.timeout)

    def arm(self, delay: float) -> None:
        self.contacts_at_arm = self.contacts
        if self.timer is None:
            self.timer = self.set_timer(delay, self.election_due)
        else:
            self.timer.reset(delay)

    def election_due(self) -> None:
        if self.role == "leader":
            return
        if self.contacts != self.contacts_at_arm:
            # Heard from a leader since the timer was armed: wait out the rest of the
            # timeout from the last contact (the whole of it if the clock jumped).
            elapsed = self.now() - self.last_contact
            if not 0.0 <= elapsed < self.timeout:
                elapsed = 0.0
            self.arm(self.timeout - elapsed)
            return
        self.campaign()

    def heard_from_leader(self) -> bool:
        """Whether a leader was heard from within the minimum election timeout."""
        if self.role == "leader":
            return True
        if self.leader is None:
            return False
        elapsed = self.now() - self.last_contact
        return 0.0 <= elapsed < self.params.election_timeout_min

    def last_term(self) -> int:
        entries = self.entries
        return entries[len(entries) - 1][TERM] if len(entries) else 0

    def campaign(self) -> None:
        if not self.voter:
            self.reset_election()  # outside the configuration: wait to be added
            return
        self.role = "candidate"
        self.leader = None
        if self.params.pre_vote:
            # Ask first, in the next term, without raising ours.
            self.prevoting = True
            self.grants = {self.id}
            self.reset_election()
            body = (self.term + 1, len(self.entries), self.last_term(), True)
            for peer in self.voters:
                self.send(peer, "vote", body)
            self.count_votes()
        else:
            self.stand()

    def stand(self) -> None:
        """Start a real election: a new term, our own vote (counted once on disk)."""
        self.prevoting = False
        self.set_hard(self.term + 1, self.id)
        self.grants = set()
        self.reset_election()
        self.sync(self.stood, self.term, self.written)

    def stood(self, term: int, mark: int) -> None:
        if mark > self.synced:
            self.synced = mark
        if self.role != "candidate" or self.term != term or self.prevoting:
            return
        self.grants.add(self.id)
        body = (term, len(self.entries), self.last_term(), False)
        for peer in self.voters:
            self.send(peer, "vote", body)
        self.count_votes()

    def count_votes(self) -> None:
        if sum(1 for p in self.grants if p in self.config) < self.majority:
            return
        if self.prevoting:
            self.stand()
        else:
            self.become_leader()

    def on_vote(self, msg: Message) -> None:
        term, last_len, last_term, pre = msg.body
        my_last = self.last_term()
        up_to_date = last_term > my_last or (last_term == my_last and last_len >= len(self.entries))
        if pre:
            grant = term > self.term and up_to_date and not self.heard_from_leader()
            self.reply_durably(msg, "vote_ack", (self.term, grant, True, term))
            return
        if term < self.term or (term > self.term and self.heard_from_leader()):
            # A stale candidate, or one that would depose a leader we hear from (which
            # also protects a leader's lease): refuse, and keep our term.
            self.reply_durably(msg, "vote_ack", (self.term, False, False, term))
            return
        if term > self.term:
            self.step_down(term, None)
        grant = up_to_date and self.vote in (None, msg.src)
        if grant:
            if self.vote is None:
                self.set_hard(term, msg.src)
            self.contacts += 1  # granting a vote restarts the election timeout
            self.last_contact = self.now()
        self.reply_durably(msg, "vote_ack", (self.term, grant, False, term))

    def on_vote_ack(self, msg: Message) -> None:
        term, granted, pre, proposed = msg.body
        if term > self.term and not granted:
            self.step_down(term, None)
            return
        if self.role != "candidate" or not granted or pre != self.prevoting:
            return
        if proposed != (self.term + 1 if pre else self.term):
            return
        self.grants.add(msg.src)
        self.count_votes()

    def step_down(self, term: int, leader: str | None) -> None:
        """Follow ``leader`` (None: unknown) in ``term`` (at least ours)."""
        if term > self.term:
            self.set_hard(term, None)
        was = self.role
        self.role = "follower"
        self.leader = leader
        self.prevoting = False
        if was == "leader":
            self.reads_elsewhere()
            self.reset_election()
        elif was == "candidate":
            self.reset_election()

    # -- the leader -----------------------------------------------------------------------------

    def become_leader(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.role = "leader"
        self.leader = self.id
        entries = self.entries
        end = len(entries)
        now = self.now()
        voters = self.voters
        self.next = dict.fromkeys(voters, end)
        self.match = dict.fromkeys(voters, 0)
        self.progress_at = dict.fromkeys(voters, now)
        self.acked_round = dict.fromkeys(voters, 0)
        self.learning = {}
        self.followers()  # and learners, from the start of the log
        self.own = 0  # entries on our own disk (counted once a sync says so)
        self.old_term_commits = 0  # commits the Figure 8 bug made in this term
        self.round = 0
        self.confirmed = 0
        self.round_wanted = False
        self.expired_round = 0
        self.ticks = 0
        self.quorum_round = 1
        params = self.params
        self.quorum_ticks = max(1, int(-(-params.election_timeout_max // params.heartbeat)))
        self.window = INFLIGHT_BATCHES * params.max_batch
        self.reads: deque = deque()
        self.seen = {entry[REQ]: i for i, entry in enumerate(entries) if entry[REQ] is not None}
        self.noop = end
        self.changing = set(self.hosts()) != set(self.config)
        self.append((NOOP, None, None, None, self.term))
        self.log(f"leader in term {self.term}")
        self.start_round()
        self.set_timer(self.params.heartbeat, self.tick, self.term)

    def append(self, entry: tuple) -> None:
        """Append our own entry, sync it (it counts once on disk) and replicate it."""
        entries = self.entries
        entries.append(entry)
        self.written += 1
        end = len(entries)
        if entry[OP] == CONFIG:
            self.config_at.append(end - 1)
            self.configure()
        self.sync(self.own_synced, self.term, end, self.written)
        nxt = self.next
        last = end - 1
        for peer in self.others:
            if nxt[peer] == last:  # in step with us; lagging ones go at their own pace
                self.send_from(peer, last, end)

    def own_synced(self, term: int, length: int, mark: int) -> None:
        if mark > self.synced:
            self.synced = mark
        if self.role == "leader" and self.term == term and length > self.own:
            self.own = length
            self.advance()

    def send_from(self, peer: str, start: int, end: int) -> None:
        """Send ``peer`` the entries from ``start`` (at most ``max_batch``)."""
        stop = start + self.params.max_batch
        if stop > end:
            stop = end
        entries = self.entries
        if start:
            batch = entries[start - 1 : stop]
            prev_term = batch[0][TERM]
            batch = batch[1:]
        else:
            batch, prev_term = entries[:stop], 0
        body = (self.term, start, prev_term, batch, self.commit, self.round)
        if peer in self.config or not batch:
            self.send(peer, "append", body)
        else:  # state transfer to a learner: its size counts against bandwidth
            self.send(peer, "append", body, size=HEADER_BYTES + ENTRY_BYTES * len(batch))
        self.next[peer] = stop

    def heartbeat_to(self, peer: str) -> None:
        """An empty append on the prefix ``peer`` is known to hold: never refused by a
        follower of this term, and it carries the commit index that far."""
        start = self.match[peer]
        prev_term = self.entries[start - 1][TERM] if start else 0
        self.send(peer, "append", (self.term, start, prev_term, NOTHING, self.commit, self.round))

    def start_round(self) -> None:
        """A heartbeat round: leadership is confirmed once a majority answers it."""
        self.round += 1
        self.round_wanted = False
        for peer in self.others:
            self.heartbeat_to(peer)
        self.round_started()

    def round_started(self) -> None:
        if self.lease_reads:
            duration = self.params.lease_ratio * self.params.election_timeout_min
            self.set_timer(duration, self.lease_expired, self.term, self.round)
        if not self.voters:
            self.confirmed = self.round

    def lease_expired(self, term: int, round_: int) -> None:
        if term == self.term and round_ > self.expired_round:
            self.expired_round = round_

    def tick(self, term: int) -> None:
        """Every heartbeat: step down without a majority, resend, start a round."""
        if self.role != "leader" or self.term != term:
            return
        self.ticks += 1
        if self.ticks >= self.quorum_ticks:
            # Check quorum (Ongaro's thesis, 6.2): no round since the last check answered
            # by a majority means we are cut off; stop taking requests we cannot commit.
            self.ticks = 0
            if self.confirmed < self.quorum_round:
                self.log(f"stepping down in term {term}: no majority answers")
                self.step_down(term, None)
                return
            self.quorum_round = self.round + 1
        interval = self.params.heartbeat
        now = self.now()
        end = len(self.entries)
        match, progress_at = self.match, self.progress_at
        self.round += 1
        self.round_wanted = False
        for peer in self.others:
            if match[peer] < end and now - progress_at[peer] >= interval:
                # No progress for a heartbeat: resend from what it is known to hold.
                progress_at[peer] = now
                self.send_from(peer, match[peer], end)
            else:
                self.heartbeat_to(peer)
        self.round_started()
        self.set_timer(interval, self.tick, term)
        if self.changing:
            self.reconfigure()

    def on_append_ack(self, msg: Message) -> None:
        term, success, index, round_, start = msg.body
        if term != self.term:
            if term > self.term:
                self.step_down(term, None)
            return
        if self.role != "leader":
            return
        peer = msg.src
        if round_ > self.acked_round[peer]:
            self.acked_round[peer] = round_
            confirmed = self.confirmed_round()
            if confirmed > self.confirmed:
                self.confirmed = confirmed
                self.serve_reads()
        if success:
            if index > self.match[peer]:
                self.match[peer] = index
                self.progress_at[peer] = self.now()
                if index > self.next[peer]:
                    self.next[peer] = index
                self.advance()
                if peer in self.learning:
                    self.caught_up(peer)
            # A follower behind us catches up a few batches at a time.
            end = len(self.entries)
            start = self.next[peer]
            if start < end and start - self.match[peer] < self.window:
                self.send_from(peer, start, end)
        else:
            # The follower lacks the entry before `start`: resend from its hint.
            if index < self.match[peer]:
                self.match[peer] = index
            self.next[peer] = index
            if index < start:
                self.send_from(peer, index, len(self.entries))

    def confirmed_round(self) -> int:
        """The latest round a majority of voters (us included, if we vote) has answered."""
        return self.agreed(self.acked_round, self.round)

    def advance(self) -> None:
        """Commit what a majority holds on disk, if the rule allows; apply it."""
        commit = self.agreed(self.match, self.own)
        if commit <= self.commit:
            return
        term = self.entries[commit - 1][TERM]
        if term != self.term:
            if not self.params.commit_old_term_entries:
                return  # only an entry of our own term is committed by counting
            if self.old_term_commits == 0:
                self.log(
                    f"term {self.term}: committing entries of term {term} by counting the "
                    f"replicas that hold them, up to index {commit - 1} (the Figure 8 bug)"
                )
            self.old_term_commits += 1
        published = self.commit
        self.commit = commit
        self.apply()
        if self.reads:
            self.serve_reads()
        if commit > self.noop and (published <= self.noop or self.config_at[-1:] >= [published]):
            self.committed_config()

    # -- membership changes (thesis 4.1) ---------------------------------------------------------

    def on_hosts_changed(self) -> None:
        if self.role == "leader":
            self.followers()
            self.changing = True
            self.reconfigure()

    def committed_config(self) -> None:
        """Our term's no-op and every configuration entry are committed: publish the
        configuration as the membership; step down if it leaves us out."""
        if self.config_at and self.config_at[-1] >= self.commit:
            return  # the latest configuration is not committed yet
        self.set_members(self.config)
        self.followers()
        if not self.voter:
            self.log(f"leaving the configuration in term {self.term}: stepping down")
            self.step_down(self.term, None)
            return
        self.reconfigure()

    def reconfigure(self) -> None:
        """Move the configuration one server towards the shard's hosts: add a caught-up
        learner, else remove a server (ourselves last). One change at a time: only once
        the latest configuration entry and our no-op are committed."""
        if self.role != "leader":
            return
        hosts = self.hosts()
        config = self.config
        adding = [h for h in hosts if h not in config]
        removing = [m for m in config if m not in hosts]
        if not adding and not removing:
            self.changing = False
            self.learning = {}
            return
        if self.commit <= self.noop or (self.config_at and self.config_at[-1] >= self.commit):
            return  # the previous change (or our term's first entry) is not committed
        for learner in [p for p in self.learning if p not in adding]:
            del self.learning[learner]
        if adding:
            learner = adding[0]
            if learner not in self.learning:
                self.log(f"catching up {learner} before adding it")
                self.learning[learner] = (len(self.entries), self.monotonic())
                self.send_from(learner, self.match[learner], len(self.entries))
            self.caught_up(learner)
            return
        others = [m for m in removing if m != self.id]
        leaving = others[0] if others else self.id
        self.change_config(tuple(m for m in config if m != leaving), f"removing {leaving}")

    def caught_up(self, learner: str) -> None:
        """End a catch-up round if ``learner`` holds its end: add it if the round took
        less than an election timeout, else begin another round."""
        end, began = self.learning[learner]
        if self.match[learner] < end:
            return
        if self.monotonic() - began < self.params.election_timeout_min:
            del self.learning[learner]
            if self.commit > self.noop and not (
                self.config_at and self.config_at[-1] >= self.commit
            ):
                order = {p: i for i, p in enumerate(self.containers())}
                added = (*self.config, learner)
                self.change_config(
                    tuple(sorted(added, key=lambda p: order.get(p, len(order)))),
                    f"adding {learner}",
                )
        else:
            self.learning[learner] = (len(self.entries), self.monotonic())

    def change_config(self, config: tuple[str, ...], why: str) -> None:
        self.log(f"configuration {' '.join(config)} ({why}) in term {self.term}")
        self.append((CONFIG, None, config, None, self.term))

    # -- clients --------------------------------------------------------------------------------

    def on_client(self, req: Request) -> None:
        if self.role != "leader":
            if req.op == "read" and self.local_reads:
                self.ok(req, self.read_value(req.key))
            elif self.leader is not None:
                self.redirect(req, self.leader)
            else:
                self.fail(req, "no-leader")
            return
        if req.op == "read":
            self.read(req)
            return
        rid = req.id
        index = self.done.get(rid)
        if index is not None:  # applied already: a retry or a duplicate
            self.answer(req, index)
            return
        index = self.seen.get(rid)
        if index is None:
            value = tuple(req.value) if req.op == "cas" else req.value
            index = len(self.entries)
            self.seen[rid] = index
            self.wait(index, req)
            self.append((req.op, req.key, value, rid, self.term))
        else:
            self.wait(index, req)

    def wait(self, index: int, req: Request) -> None:
        waiting = self.waiting.get(index)
        if waiting is None:
            self.waiting[index] = [req]
        else:
            waiting.append(req)

    def answer(self, req: Request, index: int) -> None:
        """Answer ``req``, whose first application was entry ``index``."""
        if req.op == "cas" and not self.outcomes.get(index, False):
            self.fail(req, "mismatch")
        else:
            self.ok(req, req.value)

    def read_value(self, key: str) -> Any:
        return read_value(self.data, key)

    def read(self, req: Request) -> None:
        if self.local_reads:
            self.ok(req, self.read_value(req.key))
            return
        if self.lease_reads and self.commit > self.noop and self.confirmed > self.expired_round:
            self.ok(req, self.read_value(req.key))
            return
        # Read index: the commit index now (at least our no-op), served once a heartbeat
        # round that began after this read is answered by a majority.
        index = self.commit if self.commit > self.noop else self.noop + 1
        if self.confirmed >= self.round:
            self.start_round()
            need = self.round
        else:
            need = self.round + 1
            self.round_wanted = True
        self.reads.append((req, need, index))
        if need <= self.confirmed:
            self.serve_reads()

    def serve_reads(self) -> None:
        reads = self.reads
        confirmed, applied = self.confirmed, self.applied
        while reads:
            req, need, index = reads[0]
            if need > confirmed or index > applied:
                break
            reads.popleft()
            self.ok(req, self.read_value(req.key))
        if self.round_wanted and confirmed >= self.round:
            self.start_round()

    def reads_elsewhere(self) -> None:
        """Deposed: send waiting reads to the new leader (a read has no effect to lose)."""
        reads, self.reads = self.reads, deque()
        for req, _, _ in reads:
            if self.leader is not None:
                self.redirect(req, self.leader)
            else:
                self.fail(req, "no-leader")

    # -- followers ------------------------------------------------------------------------------

    def on_message(self, msg: Message) -> None:
        kind = msg.kind
        if kind == "append":
            self.on_append(msg)
        elif kind == "append_ack":
            self.on_append_ack(msg)
        elif kind == "vote":
            self.on_vote(msg)
        elif kind == "vote_ack":
            self.on_vote_ack(msg)

    def on_append(self, msg: Message) -> None:
        term, start, prev_term, new, leader_commit, round_ = msg.body
        if term < self.term:
            self.reply_durably(msg, "append_ack", (self.term, False, 0, round_, start))
            return
        if term > self.term or self.role != "follower":
            self.step_down(term, msg.src)
        self.leader = msg.src
        self.contacts += 1
        self.last_contact = self.now()
        entries = self.entries
        length = len(entries)
        if start > length:
            self.reply_durably(msg, "append_ack", (term, False, length, round_, start))
            return
        if start and entries[start - 1][TERM] != prev_term:
            # Resend from the first entry of the conflicting term (never below the commit).
            hint = start - 1
            conflict = entries[hint][TERM]
            commit = self.commit
            while hint > commit and entries[hint - 1][TERM] == conflict:
                hint -= 1
            self.reply_durably(msg, "append_ack", (term, False, hint, round_, start))
            return
        count = len(new)
        if count:
            # Skip what we hold already (a term writes each index once), cut a conflicting
            # suffix, append the rest.
            index = start
            stop = start + count if start + count < length else length
            while index < stop and entries[index][TERM] == new[index - start][TERM]:
                index += 1
            if index < start + count:
                if index < length:
                    self.cut(index, msg.src)
                entries.extend(new[index - start :] if index > start else new)
                self.written += 1
                self.config_appended(index)
        shared = start + count
        if leader_commit > self.commit:
            commit = leader_commit if leader_commit < shared else shared
            if commit > self.commit:
                self.commit = commit
                self.apply()
        self.reply_durably(msg, "append_ack", (term, True, shared, round_, start))

    def cut(self, index: int, leader: str) -> None:
        """Drop our entries from ``index`` on: the leader's log differs there."""
        if index < self.commit:
            # Only the Figure 8 bug gets here: entries we applied are being overwritten.
            self.log(
                f"rolling back committed entries {index}..{self.commit - 1}: "
                f"leader {leader} overwrites them"
            )
            self.commit = index
            self.data, self.version, self.outcomes, self.done = {}, {}, {}, {}
            self.commands = []
            self.applied = 0
            self.apply()
        self.entries.truncate(index)
        self.written += 1
        if self.config_at and self.config_at[-1] >= index:
            self.config_at = [i for i in self.config_at if i < index]
            self.configure()
        waiting = self.waiting
        if waiting:
            for i in sorted(i for i in waiting if i >= index):
                for req in waiting.pop(i):
                    self.redirect(req, leader)  # the client tries the leader (same id)

    # -- the state machine ----------------------------------------------------------------------

    def apply(self) -> None:
        """Apply committed entries in order and answer the requests waiting on them."""
        first, commit = self.applied, self.commit
        if commit <= first:
            return
        data, version, done, commands = self.data, self.version, self.done, self.commands
        for index, entry in enumerate(self.entries[first:commit], first):
            op = entry[OP]
            if op in (NOOP, CONFIG):
                continue
            rid = entry[REQ]
            if rid in done:
                continue  # a later copy of a request already applied
            done[rid] = index
            commands.append(COMMAND(entry))
            matched = apply_command(data, version, index, op, entry[KEY], entry[VALUE])
            if op == "cas":
                self.outcomes[index] = matched
        self.applied = commit
        waiting = self.waiting
        if waiting:
            if commit - first < len(waiting):
                due = range(first, commit)
            else:
                due = sorted(i for i in waiting if first <= i < commit)
            entries = self.entries
            for index in due:
                reqs = waiting.pop(index, None)
                if reqs is not None:
                    applied_at = done[entries[index][REQ]]
                    for req in reqs:
                        self.answer(req, applied_at)

    # -- introspection --------------------------------------------------------------------------

    def value_of(self, key: str) -> tuple[Any, Any]:
        return self.read_value(key), self.version.get(key)

    def applied_log(self) -> list[Any]:
        # Kept as apply() goes: the commands of the applied entries, without no-ops,
        # configurations and later copies of a request already applied.
        return self.commands[:]
