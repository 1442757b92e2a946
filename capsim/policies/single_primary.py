"""A single fixed primary with synchronous majority replication and no failover.

CAP claim: **CP**. Every write, CAS and add is sequenced by the one primary in a log,
replicated to the backups, and acknowledged to the client only once a majority of the
shard's replicas (the primary included) have it on disk; then it is applied, in log order,
and answered. Reads are served by the primary from its applied state. Because no other
replica ever accepts a write, the history is linearizable and no acknowledged write is
lost, under any partition, crash, pause, clock fault, loss or duplication. The price is
availability: writes stop whenever the primary is down or cannot reach a majority, and
every operation stops for clients that cannot reach the primary. With the primary on the
majority side of a partition, the majority stays available and the minority does not;
with the primary cut off in the minority, nobody can write (clients beside the primary
can still read). There is no failover: a crashed primary means no service until it
restarts.

Invariants claimed: ``linearizable``, ``no-lost-writes``, ``convergence`` (after the final
heal every replica applies the same log), ``single-leader`` (one primary, one epoch at a
time) and ``state-machine-safety`` (no two replicas ever apply different commands at the
same log position: every replica's applied log is a prefix of the primary's).

How it keeps them. Each start of the primary is a new *epoch* (its ``term``), made
durable before the primary sends anything; every log entry records the epoch that
created it. An append carries the epoch, the index and epoch of the entry before the new
ones, the entries and the commit index. A backup accepts it only if its own log holds that
previous entry (as Raft's AppendEntries does), so its log always matches the primary's up
to the end of what it accepted; it drops a conflicting suffix (entries of an earlier
epoch the primary lost in a crash) but never an entry below its commit index; it
acknowledges, once its disk has them, the length of the prefix it now shares with the
primary, and commits only within that prefix. A backup that fell behind (cut off by a
partition, or restarted) is sent its backlog ``max_batch`` entries at a time, each batch as
soon as it acknowledges the one before. The primary counts only acknowledgements
from its current epoch, lowers a backup's count when the backup reports holding less, and
commits what a majority holds and it has itself synced, so a committed entry survives
any crash. A restarted primary rebuilds its state from its log, resends what the
backups may lack, and answers reads only once everything in its log is committed again
(until then reads fail with ``recovering``), so it never serves a state older than one it
acknowledged. Requests carry ids, and a request id already in the log is not appended
again, so a duplicated or retried request is applied once.

Membership changes (scale actions): the primary alone decides, since nothing else ever
commits. When the shard's hosts change (:meth:`SinglePrimary.on_hosts_changed`) it drops
the backups that are no longer hosts from the membership at once (they are then stopped),
and ships its log to each new host, as a learner that does not count towards the
majority; a learner joins the membership (``set_members``), and counts, once it holds
everything committed. Entries shipped to a learner carry their size (``64 + 100`` bytes
each). The primary itself cannot leave (there is no failover): a scale action that takes
its container away leaves it in the membership until its drain timeout stops it, and the
shard with it. A replica outside the membership is not ready for clients (``set_ready``).

Bug switch: ``sync: false`` acknowledges before the disk has the entry: every replica
still issues its sync, but counts and acknowledges the entry at once (the
acknowledge-before-sync race). With a disk that takes time to sync, a crash of the
primary loses the writes it acknowledged in the last sync time before the crash; the
restarted primary reuses their log positions for new writes, and a backup that had
already committed the lost entries rolls them back (``node.log`` says so), since the
primary's log is the authority: the acknowledged writes are gone from every replica, and
the backups applied, for a while, commands the primary no longer has (the only way a
backup ever drops a committed entry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from capsim.policies.commands import COMMAND, apply_entries, read_value
from capsim.schema import Interval
from capsim.sim.node import Message, Node, Request

__all__ = ["SinglePrimary"]

# Fields of a log entry: (op, key, value, request id, epoch).
OP, KEY, VALUE, REQ, EPOCH = range(5)
#: Bytes of an append shipped to a learner: a header and so much per entry.
HEADER_BYTES, ENTRY_BYTES = 64, 100


@dataclass(frozen=True, kw_only=True)
class Params:
    """Parameters of :class:`SinglePrimary`.

    ``primary``: the primary's container id (default: the shard's first replica).
    ``retry_interval``: seconds between resends of entries a backup has not acknowledged
    (also the heartbeat that carries the commit index); at least 1 ms. ``max_batch``: most
    entries in one append message. ``sync``: wait for the disk before counting or
    acknowledging an entry (``false`` is a bug switch: see the module docstring).
    """

    primary: str | None = None
    retry_interval: Interval = 0.05
    max_batch: int = 256
    sync: bool = True

    def __post_init__(self):
        if not 1 <= self.max_batch <= 1_000_000:
            raise ValueError(f"max_batch must be between 1 and 1000000, got {self.max_batch}")


class SinglePrimary(Node):
    """One fixed primary per shard, synchronous majority replication, no failover (CP)."""

    Params = Params
    invariants = (
        "linearizable",
        "no-lost-writes",
        "convergence",
        "single-leader",
        "state-machine-safety",
    )

    def on_start(self) -> None:
        first = self.hosts(initial=True)  # the same for every replica, whatever scaled since
        self.primary = self.params.primary or first[0]
        if self.primary not in first:
            # A primary named outside the shard: fall back to the first replica.
            self.primary = first[0]
        self.role = "primary" if self.id == self.primary else "backup"
        self.joined = self.id in self.peers
        if not self.joined:
            self.set_ready(False)  # placed here by a scale action: a learner until added
        self.entries = self.durable.log("log")
        if self.params.sync:
            self.sync_then = self.sync  # the default: acknowledge only what the disk has
        # The highest epoch this replica has seen: its term.
        self.term = self.durable.get("epoch", 0)
        self.commit = min(self.durable.get("commit", 0), len(self.entries))
        self.on_disk = len(self.entries)  # what a crash would keep: all of it, after a restart
        self.cuts = 0  # truncations so far: a sync issued before one covers none of its entries
        self.data: dict[str, Any] = {}
        self.version: dict[str, int] = {}
        self.applied = 0
        self.outcomes: dict[int, bool] = {}  # CAS entries: did it compare equal?
        self.apply_to(self.commit)
        if self.role == "primary":
            self.start_epoch()
        elif self.term > 0:
            # A restart: our commit index may be older than the one the primary last heard
            # from us (it was not synced), and with no new writes nothing would carry the
            # newer one here. Say where we are.
            self.send(self.primary, "restarted", (self.term, self.commit))

    # -- the primary's epoch ------------------------------------------------------------------

    def start_epoch(self) -> None:
        """Begin a new epoch: make it durable, then replicate. Requests are taken at once
        (their entries wait in the log, behind the epoch on disk, until it is synced)."""
        self.ready = False
        self.term += 1
        self.durable["epoch"] = self.term
        self.read_barrier = len(self.entries)
        self.voting = [p for p in self.peers if p != self.id]  # backups that count
        self.majority = len(self.peers) // 2 + 1
        self.backups = list(self.voting)  # every replica replicated to (learners too)
        self.match = dict.fromkeys(self.backups, 0)
        self.next = dict.fromkeys(self.backups, self.commit)
        self.known_commit = dict.fromkeys(self.backups, -1)
        self.progress_at = dict.fromkeys(self.backups, self.now())
        self.on_hosts_changed()  # hosts a scale action changed while we were down
        self.waiting: dict[int, Request] = {}
        self.seen = {entry[REQ]: i for i, entry in enumerate(self.entries)}
        # The epoch must be on disk before any entry carries it: a crash that lost it would
        # start the same epoch twice with different entries.
        self.sync(self.epoch_synced)

    # -- membership changes ---------------------------------------------------------------------

    def on_hosts_changed(self) -> None:
        if self.role != "primary":
            return
        hosts = self.hosts()
        if self.id not in hosts:
            self.log("this container is leaving, but a single primary has no failover: staying")
        leaving = [b for b in self.voting if b not in hosts]
        if leaving:
            self.voting = [b for b in self.voting if b in hosts]
            self.backups = [b for b in self.backups if b in hosts]
            self.publish()
        self.learners()

    def learners(self) -> None:
        """Replicate to every host outside the membership (from the start of the log)."""
        now = self.now()
        for host in self.hosts():
            if host != self.id and host not in self.backups:
                self.backups.append(host)
                self.match[host] = 0
                self.next[host] = 0
                self.known_commit[host] = -1
                self.progress_at[host] = now
                if self.ready:
                    self.send_entries(host, 0)

    def admit(self, learner: str) -> None:
        """``learner`` holds everything committed: it joins the membership and counts."""
        self.log(f"adding {learner}: it holds the {self.commit} committed entries")
        self.voting.append(learner)
        self.publish()

    def publish(self) -> None:
        order = {p: i for i, p in enumerate(self.containers())}
        members = sorted([self.id, *self.voting], key=lambda p: order.get(p, len(order)))
        self.voting = [p for p in members if p != self.id]
        self.majority = len(members) // 2 + 1
        self.set_members(members)
        self.advance()

    def epoch_synced(self) -> None:
        self.ready = True
        self.advance()
        self.replicate(heartbeat=True)
        self.set_timer(self.params.retry_interval, self.tick)

    # -- clients ------------------------------------------------------------------------------

    def on_client(self, req: Request) -> None:
        if self.role != "primary":
            self.redirect(req, self.primary)
            return
        if req.op == "read":
            if self.commit < self.read_barrier:
                self.fail(req, "recovering")
                return
            self.ok(req, read_value(self.data, req.key))
            return
        index = self.seen.get(req.id)
        if index is not None:  # a duplicate or retry of a request already in the log
            if index < self.applied:
                self.answer(req, index)
            else:
                self.waiting[index] = req
            return
        value = tuple(req.value) if req.op == "cas" else req.value
        entries = self.entries
        index = len(entries)
        entries.append((req.op, req.key, value, req.id, self.term))
        self.seen[req.id] = index
        self.waiting[index] = req
        self.sync_then(self.on_synced, index + 1)
        self.replicate(index + 1)

    def sync_then(self, fn, *args) -> None:
        """Sync, and call ``fn`` when the disk has it (or at once, with the bug switch).
        (With ``sync: true``, :meth:`on_start` puts plain ``sync`` in its place.)"""
        self.sync(_nothing)
        fn(*args)

    def on_synced(self, length: int) -> None:
        """The primary's own disk holds the first ``length`` entries: they count now."""
        if length > self.on_disk:
            self.on_disk = length
            self.advance()

    def answer(self, req: Request, index: int) -> None:
        if req.op == "cas" and not self.outcomes.get(index, False):
            self.fail(req, "mismatch")
        else:
            self.ok(req, req.value)

    # -- replication: the primary's side ------------------------------------------------------

    def replicate(self, end: int | None = None, heartbeat: bool = False) -> None:
        """Send each backup the entries after the last one sent to it (with ``heartbeat``,
        an empty append to those that have everything, carrying the commit index).
        ``end`` is the log's length, if the caller knows it."""
        if not self.ready:
            return
        if end is None:
            end = len(self.entries)
        nxt = self.next
        for backup in self.backups:
            start = nxt[backup]
            if start < end or heartbeat:
                self.send_entries(backup, start, end)

    def send_entries(self, backup: str, start: int, end: int | None = None) -> None:
        """Send ``backup`` the entries from ``start`` (at most ``max_batch``); ``end`` is
        the log's length, if the caller knows it."""
        entries = self.entries
        if end is None:
            end = len(entries)
        if start > end:
            start = end
        stop = start + self.params.max_batch
        if stop > end:
            stop = end
        if start:
            # One read of the log for the entry before and the batch.
            batch = entries[start - 1 : stop]
            prev_epoch = batch[0][EPOCH]
            batch = batch[1:]
        else:
            batch, prev_epoch = entries[:stop], 0
        body = (self.term, start, prev_epoch, batch, self.commit)
        if backup in self.voting or not batch:
            self.send(backup, "append", body)
        else:  # shipping the log to a learner: its size counts against bandwidth
            self.send(backup, "append", body, size=HEADER_BYTES + ENTRY_BYTES * len(batch))
        self.next[backup] = stop

    def tick(self) -> None:
        """Resend to backups that made no progress for a retry interval; carry the commit."""
        now = self.now()
        interval = self.params.retry_interval
        end = len(self.entries)
        for backup in self.backups:
            behind = self.match[backup] < end
            if behind and now - self.progress_at[backup] >= interval:
                self.progress_at[backup] = now
                self.send_entries(backup, self.match[backup], end)
            elif not behind and self.known_commit[backup] < self.commit:
                self.send_entries(backup, end, end)
        self.set_timer(interval, self.tick)

    def on_ack(self, msg: Message) -> None:
        epoch, accepted, length, start, commit = msg.body
        if epoch != self.term:
            return  # an answer to an earlier epoch's append
        backup = msg.src
        # Heartbeats repeat until the backup confirms the commit index (one may be lost).
        if commit > self.known_commit[backup]:
            self.known_commit[backup] = commit
        if accepted:
            if length > self.match[backup]:
                self.match[backup] = length
                self.progress_at[backup] = self.now()
                self.advance()
            if length >= self.commit and backup not in self.voting and backup in self.hosts():
                self.admit(backup)
            if length > self.next[backup]:
                self.next[backup] = length
            if length == self.next[backup] and length < len(self.entries):
                # It holds everything sent to it and more is waiting: a backlog (after a
                # partition or a restart) goes out max_batch entries at a time. Send the
                # next batch now, not at the next tick.
                self.send_entries(backup, length)
        else:
            # The backup's log does not match ours at the entry we sent from: it holds at
            # most `length` matching entries (its commit index). Count no more than that and
            # resend from there.
            self.match[backup] = min(self.match[backup], length)
            self.next[backup] = length
            if length < start:  # news: resend now (else the tick retries, not a tight loop)
                self.send_entries(backup, length)

    def advance(self) -> None:
        """Commit what a majority stores, apply it in order and answer its clients."""
        if not self.ready:
            return
        on_disk = self.on_disk
        match = self.match
        matches = sorted([on_disk, *map(match.__getitem__, self.voting)], reverse=True)
        commit = matches[self.majority - 1]
        if commit > on_disk:
            commit = on_disk  # never past the primary's own disk: a crash must not lose it
        if commit <= self.commit:
            return
        self.commit = commit
        self.durable["commit"] = commit
        first = self.applied
        self.apply_to(commit)
        waiting = self.waiting
        for index in range(first, commit):
            req = waiting.pop(index, None)
            if req is not None:
                self.answer(req, index)

    # -- replication: a backup's side -----------------------------------------------------------

    def on_message(self, msg: Message) -> None:
        kind = msg.kind
        if kind == "append":
            self.on_append(msg)
        elif kind == "ack" and self.role == "primary":
            self.on_ack(msg)
        elif kind == "restarted" and self.role == "primary" and self.ready:
            epoch, commit = msg.body
            backup = msg.src
            if backup in self.known_commit and commit < self.known_commit[backup]:
                self.known_commit[backup] = commit  # the tick carries the commit again

    def on_append(self, msg: Message) -> None:
        epoch, start, prev_epoch, new, commit = msg.body
        if not self.joined and self.id in self.peers:
            self.joined = True
            self.set_ready(True)
        if epoch < self.term:
            return  # from an earlier epoch of the primary: stale
        if epoch > self.term:
            self.term = epoch
            self.durable["epoch"] = epoch
        log = self.entries
        length = len(log)
        if start > length or (start and log[start - 1][EPOCH] != prev_epoch):
            # A gap or a different history before `start`: everything up to our commit
            # index is certainly the primary's (committed entries are never lost).
            self.reply(msg, "ack", (epoch, False, self.commit, start, self.commit))
            return
        # Skip the entries we hold already (one epoch writes each index once), drop a
        # conflicting suffix, append the rest.
        index, count = start, len(new)
        while index < length and index - start < count:
            if log[index][EPOCH] != new[index - start][EPOCH]:
                if index < self.commit:
                    # Only the bug switch gets here: the primary lost entries it had
                    # committed. Its log is the authority: drop them, and rebuild.
                    self.roll_back(index)
                log.truncate(index)
                self.on_disk = min(self.on_disk, index)
                self.cuts += 1
                break
            index += 1
        changed = index - start < count
        if changed:
            log.extend(new[index - start :])
        shared = start + count  # our log matches the primary's up to here
        if commit > self.commit:
            self.commit = min(commit, shared)
            self.durable["commit"] = self.commit
            self.apply_to(self.commit)
        if changed:
            self.sync_then(self.backup_synced, msg, epoch, len(log), shared, self.cuts)
        else:
            self.backup_synced(msg, epoch, 0, shared, self.cuts)

    def backup_synced(self, msg: Message, epoch: int, length: int, shared: int, cuts: int) -> None:
        """The disk holds the first ``length`` entries (unless the log was cut since the
        sync was issued): acknowledge what is both on disk and shared with the primary,
        never an entry still in the page cache."""
        if cuts == self.cuts and length > self.on_disk:
            self.on_disk = length
        acked = min(shared, self.on_disk)
        self.reply(msg, "ack", (epoch, True, acked, msg.body[1], self.commit))

    def roll_back(self, index: int) -> None:
        """Forget committed entries from ``index`` on (the primary lost them) and rebuild
        the state machine from the log before them."""
        self.log(
            f"rolling back committed entries {index}..{self.commit - 1}: the primary lost them"
        )
        self.commit = index
        self.durable["commit"] = index
        self.data, self.version, self.outcomes, self.applied = {}, {}, {}, 0
        self.apply_to(index)

    # -- the state machine ----------------------------------------------------------------------

    def apply_to(self, commit: int) -> None:
        apply_entries(self.entries, self.applied, commit, self.data, self.version, self.outcomes)
        if commit > self.applied:
            self.applied = commit

    # -- introspection ----------------------------------------------------------------------------

    def value_of(self, key: str) -> tuple[Any, Any]:
        return read_value(self.data, key), self.version.get(key)

    def applied_log(self) -> list[Any]:
        return list(map(COMMAND, self.entries[: self.applied]))


def _nothing() -> None:
    """A sync nobody waits for (the bug switch)."""
