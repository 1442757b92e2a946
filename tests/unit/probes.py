"""Tiny policies for tests, written against the public node API only."""

from __future__ import annotations

from dataclasses import dataclass

import capsim


class Probe(capsim.Node):
    """Records every message it receives and every start; sends on request from tests.

    Clients get ``ok`` with the probe's id, so a test can see which node answered.
    """

    def on_start(self):
        self.received = []
        self.fired = []
        starts = self.durable.get("starts", 0) + 1
        self.durable["starts"] = starts
        self.starts = starts
        self.scratch = "volatile"

    def on_message(self, msg):
        self.received.append((self.now(), msg.src, msg.kind, msg.body))
        if msg.kind == "ping":
            self.reply(msg, "pong", msg.body)

    def on_client(self, req):
        self.ok(req, self.id)

    def remember(self, label):
        self.fired.append((label, self.now()))


@dataclass(frozen=True, kw_only=True)
class RouterParams:
    target: str = "n1"
    mode: str = "redirect"


class Router(capsim.Node):
    """Redirects every client to ``target`` (or fails them, or never answers)."""

    Params = RouterParams

    def on_client(self, req):
        if self.params.mode == "silent":
            return
        if self.params.mode == "fail":
            self.fail(req, "busy")
            return
        if self.params.mode == "loop":
            self.redirect(req, self.peers[(self.peers.index(self.id) + 1) % len(self.peers)])
            return
        if self.id != self.params.target:
            self.redirect(req, self.params.target)
        else:
            self.ok(req, None if req.op == "read" else req.value)


class NotANode:
    pass


class Scribe(capsim.Node):
    """Writes to durable state on request from tests; syncs when asked."""

    def on_start(self):
        self.synced_at = []

    def write(self, key, value, sync=False):
        self.durable[key] = value
        if sync:
            self.sync(self.synced_at.append, self.now())

    def append(self, entry, sync=False):
        self.durable.log("log").append(entry)
        if sync:
            self.sync(self.synced_at.append, self.now())


class Faulty(capsim.Node):
    """Serves reads; raises on the first client write after 1 s (a bug in a handler)."""

    def on_client(self, req):
        if req.op != "read" and self.now() > 1.0:
            self.explode(req)
        self.ok(req, None if req.op == "read" else req.value)

    def explode(self, req):
        raise ZeroDivisionError(f"cannot handle {req.op}")


class Stranger(capsim.Node):
    """Sends to a container that does not exist when a client asks."""

    def on_client(self, req):
        self.send("n9", "hello")
        self.ok(req, None)


class Twice(capsim.Node):
    """Answers every request twice."""

    def on_client(self, req):
        self.ok(req, None)
        self.fail(req, "again")


class Clobber(capsim.Node):
    """Names its attributes as capsim's internals once were, then relies on rpc and timers."""

    def on_start(self):
        first = self.id == self.peers[0]
        self._pending = {}
        self._alive = False
        self._container = None
        self._net = None
        self._engine = None
        self._containers = {}
        self._dispatch = None
        self._answer = None
        self._schedule = None
        self.id = "not-my-id"
        self.answers = []
        self.timeouts = 0
        if first:
            self.set_timer(0.1, self.ask)

    def ask(self):
        for peer in self.peers[1:]:
            self.rpc(peer, "ping", peer, self.answers.append, timeout=0.5)

    def on_message(self, msg):
        if msg.kind == "ping":
            self.reply(msg, "pong", msg.body)

    def on_client(self, req):
        self.ok(req, None if req.op == "read" else req.value)


class Stamps(capsim.Node):
    """Records the ``sent_at`` of every message it receives, and logs them."""

    def on_start(self):
        self.stamps = []
        if self.id == self.peers[0]:
            self.set_timer(1.0, self.tell)

    def tell(self):
        self.broadcast("stamp", self.now())
        self.log("told", len(self.peers) - 1, "peers at", round(self.now(), 3))

    def on_message(self, msg):
        self.stamps.append((msg.src, msg.sent_at, msg.body))


class Desk(capsim.Node):
    """A service on every container: answers "ask" with its container and what it holds."""

    def on_start(self):
        self.asked = []

    def on_message(self, msg):
        self.asked.append((msg.src, msg.kind, msg.body))
        if msg.kind == "ask":
            self.reply(msg, "answer", (self.id, self.service, self.shard))


class Addresser(capsim.Node):
    """Replicas that talk to a service, to another shard's replica, and to nobody."""

    services = {"desk": Desk}

    def on_start(self):
        self.answers = []
        self.got = []

    def on_message(self, msg):
        self.got.append((msg.src, msg.kind, msg.body, msg.shard))
        if msg.kind == "answer":
            self.answers.append(msg.body)

    def on_client(self, req):
        self.ok(req, None if req.op == "read" else req.value)


class Ends(capsim.Node):
    """Chain-style routing: writes to the first member, reads to the last; every node
    answers with its own id, so a test sees where each request went."""

    @classmethod
    def route(cls, op, members, home, params):
        return members[0] if op != "read" else members[-1]

    def on_client(self, req):
        self.ok(req, self.id if req.op == "read" else req.value)


class Unsure(capsim.Node):
    """Answers reads, and says every write's outcome is unknown."""

    def on_client(self, req):
        if req.op == "read":
            self.ok(req, None)
        else:
            self.info(req, "too-few-replicas")


class BadIntrospection(capsim.Node):
    """Serves clients, but its value_of raises."""

    def on_client(self, req):
        self.ok(req, None if req.op == "read" else req.value)

    def value_of(self, key):
        raise KeyError(key)


class Teller(capsim.Node):
    """Answers a request, then reports how it was answered, and the number of shards."""

    def on_client(self, req):
        before = req.answered
        self.ok(req, None if req.op == "read" else req.value)
        self.log("answered", before, req.answered, "shards", self.shards())
