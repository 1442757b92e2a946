"""The simulation engine: SimPy's clock and event queue, random streams, the trace.

capsim schedules small slotted objects directly on SimPy's event queue (through the public
``Environment.schedule``) instead of creating a ``Timeout`` or a process per message: each
object carries the two attributes SimPy's ``step`` reads, ``callbacks`` (a tuple shared by
every object of its kind: ``step`` only iterates it, then sets it to None) and ``_ok``
(true for all, so a class attribute). This keeps the hot path, message delivery, to one
heap push and one pop, and no allocation besides the object itself.
"""

from __future__ import annotations

import hashlib
from array import array
from heapq import heappop

import numpy as np
import simpy

from capsim import rng as rng_mod

__all__ = ["Engine", "Call", "NORMAL"]

NORMAL = 1  # SimPy's normal priority; equal-time events run in scheduling order
MAX_LOG_LINES = 1_000_000  # lines of node.log kept per run
MAX_LOG_CHARS = 10_000  # characters kept per line


class Call:
    """A scheduled function call: ``fn(*args)`` at a time on the simulation clock."""

    __slots__ = ("callbacks", "fn", "args")
    _ok = True

    def __init__(self, fn, args):
        self.callbacks = _CALL
        self.fn = fn
        self.args = args


def _run_call(call: Call) -> None:
    call.fn(*call.args)


_CALL = (_run_call,)


class Engine:
    """The clock, the event queue, the named random streams and the trace of one run."""

    def __init__(self, seed: int):
        self.env = simpy.Environment()
        self.seed = seed
        self.events = 0
        self._streams: dict[str, np.random.Generator] = {}
        # The trace: one time and one packed code per message outcome, hashed at the end.
        self.trace_times = array("d")
        self.trace_codes = array("q")
        # Lines policies wrote with Node.log: (time, container, shard, text), bounded.
        self.log_lines: list[tuple[float, str, int, str]] = []
        self.log_dropped = 0

    @property
    def now(self) -> float:
        return self.env._now  # noqa: SLF001 - the clock, read on every message

    def stream(self, name: str) -> np.random.Generator:
        """The random stream ``name`` (created on first use; see :mod:`capsim.rng`)."""
        gen = self._streams.get(name)
        if gen is None:
            gen = self._streams[name] = rng_mod.stream(self.seed, name)
        return gen

    def node_log(self, container: str, shard: int, text: str) -> None:
        """Keep one line a policy logged (the first ``MAX_LOG_LINES``; later ones are
        counted, not kept, so a chatty policy cannot exhaust memory)."""
        if len(self.log_lines) < MAX_LOG_LINES:
            self.log_lines.append((self.env._now, container, shard, text[:MAX_LOG_CHARS]))
        else:
            self.log_dropped += 1

    def call_in(self, delay: float, fn, *args) -> Call:
        """Call ``fn(*args)`` after ``delay`` seconds of simulated time."""
        call = Call(fn, args)
        self.events += 1
        self.env.schedule(call, NORMAL, delay)
        return call

    def run(self, until: float) -> None:
        """Run the simulation up to time ``until``: every event due before it, and those due
        at it with a priority above normal, exactly as ``Environment.run(until)`` does (its
        stop event is urgent), in the same order; then the clock reads ``until``.

        The loop is SimPy's ``step`` without the per-event method call: the same queue, the
        same order (time, priority, insertion), the same handling of a failed event.
        """
        env = self.env
        if not until > env._now:
            return
        queue = env._queue
        while queue:
            head = queue[0]
            if head[0] > until or (head[0] == until and head[1] >= NORMAL):
                break
            env._now, _, _, event = heappop(queue)
            callbacks, event.callbacks = event.callbacks, None
            if len(callbacks) == 1:  # capsim's own objects (messages, calls, timers)
                callbacks[0](event)
            else:
                for callback in callbacks:
                    callback(event)
            if not event._ok and not hasattr(event, "_defused"):
                exc = type(event._value)(*event._value.args)
                exc.__cause__ = event._value
                raise exc
        env._now = until

    def digest(self, *parts: bytes) -> str:
        """SHA-256 of the message trace and the given extra parts, as hex."""
        h = hashlib.sha256()
        h.update(self.trace_times.tobytes())
        h.update(self.trace_codes.tobytes())
        for part in parts:
            h.update(part)
        return h.hexdigest()
