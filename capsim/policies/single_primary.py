"""A single fixed primary with synchronous majority replication and no failover.

CAP claim: **CP**. Every write, CAS and add is sequenced by the one primary in a log,
replicated to the backups, and acknowledged to the client only once a majority of the
shard's replicas (the primary included) store it; then it is applied, in log order, and
answered. Reads are served by the primary from its applied state. Because no other
replica ever accepts a write, the history is linearizable and no acknowledged write is
lost, under any partition, crash or message loss. The price is availability: writes
stop whenever the primary is down or cannot reach a majority, and every operation stops
for clients that cannot reach the primary. With the primary on the majority side of a
partition, the majority stays available and the minority does not; with the primary cut
off in the minority, nobody can write (clients beside the primary can still read). There
is no failover: a crashed primary means no service until it restarts.

Invariants claimed: ``linearizable``, ``no-lost-writes``, ``convergence`` (after the final
heal every replica applies the same log), ``single-leader``.

The log is durable: every replica syncs an entry to its disk before counting or
acknowledging it (``sync: true``), and the commit index never runs ahead of what the
primary itself has synced, so a committed entry survives any crash. A restarted primary
rebuilds its state from its log, resends what the backups may lack, and answers reads
only once everything in its log is committed again (until then reads fail with
``recovering``), so it never serves a state older than one it acknowledged. Requests carry
ids, and a request id already in the log is not appended again, so a duplicated or
retried request is applied once.

Bug switch: ``sync: false`` acknowledges entries before they reach the disk. With a disk
that takes time to sync, a crash of the primary then loses acknowledged writes: its log
comes back shorter, new writes take the lost entries' places, and the backups drop their
copies as conflicting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from capsim.schema import PositiveDuration
from capsim.sim.node import Message, Node, Request

__all__ = ["SinglePrimary"]


@dataclass(frozen=True, kw_only=True)
class Params:
    """Parameters of :class:`SinglePrimary`.

    ``primary``: the primary's container id (default: the shard's first replica).
    ``retry_interval``: seconds between resends of entries a backup has not acknowledged
    (also the heartbeat that carries the commit index). ``max_batch``: most entries in
    one append message. ``sync``: wait for the disk before counting or acknowledging an
    entry (``false`` is a bug switch: see the class docstring).
    """

    primary: str | None = None
    retry_interval: PositiveDuration = 0.05
    max_batch: int = 256
    sync: bool = True

    def __post_init__(self):
        if self.max_batch < 1:
            raise ValueError("max_batch must be at least 1")


class SinglePrimary(Node):
    """One fixed primary per shard, synchronous majority replication, no failover (CP)."""

    Params = Params

    def on_start(self) -> None:
        self.primary = self.params.primary or self.peers[0]
        if self.primary not in self.peers:
            # A primary named outside the shard: fall back to the first replica.
            self.primary = self.peers[0]
        self.role = "primary" if self.id == self.primary else "backup"
        self.log = self.durable.log("log")
        self.commit = min(self.durable.get("commit", 0), len(self.log))
        self.synced = len(self.log)  # what a crash would keep: all of it, after a restart
        self.read_barrier = len(self.log)
        self.data: dict[str, Any] = {}
        self.version: dict[str, int] = {}
        self.applied = 0
        self.outcomes: dict[int, bool] = {}  # CAS entries: did it compare equal?
        self.apply_to(self.commit)
        if self.role == "primary":
            self.backups = [p for p in self.peers if p != self.id]
            self.majority = len(self.peers) // 2 + 1
            self.match = dict.fromkeys(self.backups, 0)
            self.next = dict.fromkeys(self.backups, self.commit)
            self.known_commit = dict.fromkeys(self.backups, 0)
            self.progress_at = dict.fromkeys(self.backups, self.now())
            self.waiting: dict[int, Request] = {}
            self.seen = {entry[3]: i for i, entry in enumerate(self.log)}
            self.set_timer(self.params.retry_interval, self.tick)
            if len(self.log) > self.commit:
                self.replicate()

    # -- clients -----------------------------------------------------------------------------

    def on_client(self, req: Request) -> None:
        if self.role != "primary":
            self.redirect(req, self.primary)
            return
        if req.op == "read":
            if self.commit < self.read_barrier:
                self.fail(req, "recovering")
                return
            value = self.data.get(req.key)
            self.ok(req, sorted(value) if isinstance(value, set) else value)
            return
        index = self.seen.get(req.id)
        if index is not None:  # a duplicate or retry of a request already in the log
            if index < self.applied:
                self.answer(req, index)
            else:
                self.waiting[index] = req
            return
        value = tuple(req.value) if req.op == "cas" else req.value
        index = len(self.log)
        self.log.append((req.op, req.key, value, req.id))
        self.seen[req.id] = index
        self.waiting[index] = req
        if self.params.sync:
            self.sync(self.on_synced, len(self.log))
        else:
            self.on_synced(len(self.log))
        self.replicate()

    def on_synced(self, length: int) -> None:
        """The primary's own disk holds the first ``length`` entries: they count now."""
        if length > self.synced:
            self.synced = length
            self.advance()

    def answer(self, req: Request, index: int) -> None:
        if req.op == "cas" and not self.outcomes.get(index, False):
            self.fail(req, "mismatch")
        else:
            self.ok(req, req.value)

    # -- replication -------------------------------------------------------------------------

    def replicate(self) -> None:
        """Send each backup the entries after the last one sent to it."""
        end = len(self.log)
        for backup in self.backups:
            start = self.next[backup]
            if start < end:
                self.send_entries(backup, start)

    def send_entries(self, backup: str, start: int) -> None:
        stop = min(len(self.log), start + self.params.max_batch)
        self.send(backup, "append", (start, self.log[start:stop], self.commit))
        self.next[backup] = stop
        self.known_commit[backup] = self.commit

    def tick(self) -> None:
        """Resend to backups that made no progress for a retry interval; carry the commit."""
        now = self.now()
        interval = self.params.retry_interval
        for backup in self.backups:
            behind = self.match[backup] < len(self.log)
            if behind and now - self.progress_at[backup] >= interval:
                self.progress_at[backup] = now
                self.send_entries(backup, self.match[backup])
            elif not behind and self.known_commit[backup] < self.commit:
                self.send_entries(backup, len(self.log))
        self.set_timer(interval, self.tick)

    def on_message(self, msg: Message) -> None:
        kind = msg.kind
        if kind == "append":
            self.on_append(msg)
        elif kind == "ack" and self.role == "primary":
            self.on_ack(msg)

    def on_append(self, msg: Message) -> None:
        start, entries, commit = msg.body
        log = self.log
        if start > len(log):
            self.reply(msg, "ack", (len(log), True))
            return
        for offset, entry in enumerate(entries):
            index = start + offset
            if index < len(log):
                if log[index] == entry:
                    continue
                # The primary lost this suffix in a crash and reused its places.
                log.truncate(index)
            log.append(entry)
        if commit > self.commit:
            self.commit = min(commit, len(log))
            self.durable["commit"] = self.commit
            self.apply_to(self.commit)
        if self.params.sync:
            self.sync(self.reply, msg, "ack", (len(log), False))
        else:
            self.reply(msg, "ack", (len(log), False))

    def on_ack(self, msg: Message) -> None:
        backup = msg.src
        length, gap = msg.body
        if length > self.match[backup]:
            self.match[backup] = length
            self.progress_at[backup] = self.now()
        if gap:
            self.next[backup] = length
            self.send_entries(backup, length)
        self.advance()

    def advance(self) -> None:
        """Commit what a majority stores, apply it in order and answer its clients."""
        matches = sorted([self.synced, *self.match.values()], reverse=True)
        # Never past what the primary itself has on disk: a crash must not lose a commit.
        commit = min(matches[self.majority - 1], self.synced)
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

    # -- the state machine -------------------------------------------------------------------

    def apply_to(self, commit: int) -> None:
        data, version, log = self.data, self.version, self.log
        for index in range(self.applied, commit):
            op, key, value, _ = log[index]
            if op == "write":
                data[key] = value
            elif op == "add":
                current = data.get(key)
                if current is None:
                    current = data[key] = set()
                current.add(value)
            elif op == "cas":
                expected, new = value
                matched = data.get(key) == expected
                self.outcomes[index] = matched
                if not matched:
                    continue
                data[key] = new
            version[key] = index + 1
        if commit > self.applied:
            self.applied = commit

    # -- introspection -----------------------------------------------------------------------

    def value_of(self, key: str) -> tuple[Any, Any]:
        value = self.data.get(key)
        if isinstance(value, set):
            value = sorted(value)
        return value, self.version.get(key)

    def applied_log(self) -> list[Any]:
        return [entry[:3] for entry in self.log[: self.applied]]
