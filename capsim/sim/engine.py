"""The simulation engine: SimPy's clock and event queue, random streams, the trace.

capsim schedules small slotted objects directly on SimPy's event queue (through the public
``Environment.schedule``) instead of creating a ``Timeout`` or a process per message: each
object carries the two attributes SimPy's ``step`` reads (``callbacks`` and ``_ok``). This
keeps the hot path, message delivery, to one heap push and one pop.
"""

from __future__ import annotations

import hashlib
from array import array

import numpy as np
import simpy

from capsim import rng as rng_mod

__all__ = ["Engine", "Call", "NORMAL"]

NORMAL = 1  # SimPy's normal priority; equal-time events run in scheduling order


class Call:
    """A scheduled function call: ``fn(*args)`` at a time on the simulation clock."""

    __slots__ = ("callbacks", "_ok", "fn", "args")

    def __init__(self, fn, args):
        self.callbacks = [_run_call]
        self._ok = True
        self.fn = fn
        self.args = args


def _run_call(call: Call) -> None:
    call.fn(*call.args)


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

    @property
    def now(self) -> float:
        return self.env._now  # noqa: SLF001 - the clock, read on every message

    def stream(self, name: str) -> np.random.Generator:
        """The random stream ``name`` (created on first use; see :mod:`capsim.rng`)."""
        gen = self._streams.get(name)
        if gen is None:
            gen = self._streams[name] = rng_mod.stream(self.seed, name)
        return gen

    def call_in(self, delay: float, fn, *args) -> Call:
        """Call ``fn(*args)`` after ``delay`` seconds of simulated time."""
        call = Call(fn, args)
        self.events += 1
        self.env.schedule(call, NORMAL, delay)
        return call

    def run(self, until: float) -> None:
        """Run the simulation up to time ``until``."""
        if until > self.env.now:
            self.env.run(until=until)

    def digest(self, *parts: bytes) -> str:
        """SHA-256 of the message trace and the given extra parts, as hex."""
        h = hashlib.sha256()
        h.update(self.trace_times.tobytes())
        h.update(self.trace_codes.tobytes())
        for part in parts:
            h.update(part)
        return h.hexdigest()
