"""The simulation engine: SimPy's clock and event queue, random streams, the trace.

capsim schedules small slotted objects directly on SimPy's event queue (through the public
``Environment.schedule``) instead of creating a ``Timeout`` or a process per message: each
object's class carries ``callbacks``, a one-function tuple shared by every object of its
kind, and ``_ok`` (true). :meth:`Engine.run` runs the queue: it calls such an object's
function at once, and handles anything else as SimPy's ``step`` does. This keeps the hot
path, message delivery, to one heap push and one pop, and no allocation besides the
object itself.
"""

from __future__ import annotations

import hashlib
from array import array
from heapq import heappop, heappush

import numpy as np
import simpy

from capsim import rng as rng_mod

__all__ = ["Engine", "Call", "NORMAL"]

NORMAL = 1  # SimPy's normal priority; equal-time events run in scheduling order
MAX_LOG_LINES = 1_000_000  # lines of node.log kept per run
MAX_LOG_CHARS = 10_000  # characters kept per line


class Call:
    """A scheduled function call: ``fn(*args)`` at a time on the simulation clock (made by
    :meth:`Engine.call_in`, which sets both slots without an ``__init__`` call)."""

    __slots__ = ("fn", "args")
    _ok = True


def _run_call(call: Call) -> None:
    call.fn(*call.args)


Call.callbacks = (_run_call,)
_new = object.__new__


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
        call = _new(Call)
        call.fn = fn
        call.args = args
        self.events += 1
        env = self.env
        # Environment.schedule, inlined: the same queue entry.
        heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), call))
        return call

    def run(self, until: float) -> None:
        """Run the simulation up to time ``until``: every event due before it, and those due
        at it with a priority above normal, exactly as ``Environment.run(until)`` does (its
        stop event is urgent), in the same order; then the clock reads ``until``.

        The loop is SimPy's ``step`` without the per-event method call: the same queue, the
        same order (time, priority, insertion), the same handling of a failed event. An
        object of capsim's own (its class's ``callbacks`` a tuple of one function) has the
        function called with it, and nothing else: it never fails and nothing waits on it.
        """
        env = self.env
        if not until > env._now:
            return
        queue = env._queue
        while queue:
            item = heappop(queue)
            at = item[0]
            if at >= until and (at > until or item[1] >= NORMAL):
                heappush(queue, item)  # not due yet: back where it was in the order
                break
            env._now = at
            event = item[3]
            callbacks = event.callbacks
            if type(callbacks) is tuple:  # capsim's own: a message, a call, a timer
                callbacks[0](event)
                continue
            # A SimPy event: as Environment.step handles it.
            event.callbacks = None
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
