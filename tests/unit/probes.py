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
