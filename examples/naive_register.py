"""A naive replicated register: a user's own protocol, with a bug capsim finds.

Written only against the public node API (``capsim.Node``), as a first attempt at a
replicated key-value register might be:

* a write goes to whichever replica the client reaches; that replica stamps it with a
  version (a Lamport counter and its own id, so every replica orders writes the same
  way), stores it, syncs it, and sends it to every other replica; it acknowledges the
  write once a majority of replicas (itself included) hold it on disk;
* each replica keeps the highest version it has seen of each key;
* a read is answered by the replica the client reaches, from its own copy.

Its author claims it is linearizable, loses no acknowledged write and converges. It is
not, and does not: the write to each peer is sent once and never again (a message lost
to a partition, or sent to a crashed replica, is lost for good), and a read trusts one
replica's copy. A replica cut off while a write is acknowledged by the others answers
reads with the old value (not linearizable) and still holds it after every fault heals
(no convergence). ``tests/properties/test_user_protocol.py`` and notebook 05 find both
through :mod:`capsim.testing`; ``naive-register.yaml`` beside this file runs it.

Use it as ``policy: {name: "naive_register:NaiveRegister", path: examples}``.
"""

from __future__ import annotations

import capsim


class NaiveRegister(capsim.Node):
    """A leaderless register: majority writes, one-copy reads, one-shot replication.

    CAP claim (its author's, and wrong): linearizable, no lost writes, convergence.
    """

    invariants = ("linearizable", "no-lost-writes", "convergence")

    #: How long a replica waits for its peers' acknowledgements of a write (seconds).
    ACK_TIMEOUT = 0.25

    def on_start(self) -> None:
        self.data = self.durable.setdefault("data", {})  # key -> (value, (counter, id))
        self.counter = max((version[0] for _, version in self.data.values()), default=0)

    # -- clients --------------------------------------------------------------------------

    def on_client(self, req: capsim.Request) -> None:
        if req.op == "read":
            self.ok(req, self.data.get(req.key, (None, None))[0])  # one copy decides
            return
        if req.op != "write":
            self.fail(req, "not-supported")
            return
        self.counter += 1
        version = (self.counter, self.id)
        self.store(req.key, req.value, version)
        needed = len(self.peers) // 2 + 1
        holders: set[str] = set()

        def holds(replica: str) -> None:
            holders.add(replica)
            if len(holders) == needed and req.answered is None:
                self.ok(req, req.value)

        def unanswered() -> None:
            if req.answered is None:
                self.info(req, "too-few-replicas")

        self.sync(holds, self.id)  # our own copy counts once it is on disk
        for peer in self.peers:
            if peer != self.id:
                # Sent once: nothing resends it if the message or the peer is lost.
                self.rpc(
                    peer,
                    "put",
                    (req.key, req.value, version),
                    lambda msg: holds(msg.src),
                    timeout=self.ACK_TIMEOUT,
                    on_timeout=unanswered,
                )

    # -- replication ----------------------------------------------------------------------

    def on_message(self, msg: capsim.Message) -> None:
        if msg.kind == "put":
            key, value, version = msg.body
            self.store(key, value, version)
            self.sync(self.reply, msg, "put-ok", None)

    def store(self, key: str, value, version: tuple) -> None:
        """Keep ``value`` if ``version`` is newer than what we hold for ``key``."""
        self.counter = max(self.counter, version[0])
        held = self.data.get(key)
        if held is None or tuple(held[1]) < tuple(version):
            self.data = {**self.data, key: (value, version)}
            self.durable["data"] = self.data

    # -- introspection --------------------------------------------------------------------

    def value_of(self, key: str):
        held = self.data.get(key)
        return (None, None) if held is None else (held[0], tuple(held[1]))
