"""What capsim's core costs per message, apart from any policy: the floor under the
``capsim bench`` ratios.

    python benchmarks/floor_bench.py [--ops 60000] [--repeat 3] [--policy NAME]...

Runs the ``capsim bench`` scenario with two policies that do next to nothing, defined
here, and then with the built-ins:

* ``answer``: the node that gets a request answers it at once (2 messages per operation:
  the cost of the workload, the history and a request and its reply);
* ``rally``: a write is bounced 8 times between two replicas before it is answered (10
  messages per write): the cost of a message through the core (send, the event queue,
  delivery, the node API) with almost nothing in the handler.

For each it prints microseconds per delivered message (the fastest of ``--repeat`` runs)
and the ratio to the reference loop (the fastest of five readings: both figures are each
one's best on this machine, so their ratio is the cost of the code, not the noise). What a
built-in spends above ``rally`` per message is its own logic. Figures, not a test.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from capsim.bench import bench_policy, reference_rate, target_for
from capsim.policies import POLICIES
from capsim.sim.node import Node


class Answer(Node):
    """Answers every request at once (reads with None)."""

    def on_client(self, req):
        self.ok(req, None if req.op == "read" else req.value)


class Rally(Node):
    """Bounces each write between two replicas 8 times, then answers it."""

    def on_client(self, req):
        if req.op == "read":
            self.ok(req, None)
            return
        peers = self.peers
        self.send(peers[1] if peers[0] == self.id else peers[0], "ball", (req, 8))

    def on_message(self, msg):
        req, left = msg.body
        if left:
            self.reply(msg, "ball", (req, left - 1))
        else:
            self.ok(req, req.value)


def timed(policy: str, ops: int, repeat: int) -> tuple[float, int]:
    """The fastest wall time of ``repeat`` runs (each timed as ``capsim bench`` times it),
    and the messages delivered."""
    runs = [bench_policy(policy, ops) for _ in range(repeat)]
    return min(r["wall_s"] for r in runs), runs[-1]["messages"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=60_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--policy", action="append", help="built-ins to add (default: all)")
    args = parser.parse_args()
    # bench_policy looks for module:Class in the working folder: this file's.
    os.chdir(Path(__file__).resolve().parent)
    reference = max(reference_rate() for _ in range(5))
    print(f"reference loop: {reference:,.0f} callbacks/s (fastest of 5)")
    print(f"{'policy':16} {'µs/message':>11} {'ratio':>7} {'target':>7}")
    for name in ["floor_bench:Answer", "floor_bench:Rally", *(args.policy or sorted(POLICIES))]:
        wall, messages = timed(name, args.ops, args.repeat)
        ratio = messages / wall / reference
        shown = name.split(":")[-1].lower()
        target = f"{target_for(name):.2f}" if ":" not in name else ""
        print(f"{shown:16} {wall / messages * 1e6:11.2f} {ratio:7.3f} {target:>7}")


if __name__ == "__main__":
    main()
