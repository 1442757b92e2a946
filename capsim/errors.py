"""Errors: those a user's input causes (the command line prints one line and exits with
status 2), and a policy's failure during a run (one report, exit status 1)."""

from __future__ import annotations

__all__ = ["CapsimError", "ScenarioError", "PolicyError"]


class CapsimError(Exception):
    """An error caused by input (a file, a value, a name), not by a bug in capsim."""


class ScenarioError(CapsimError):
    """A scenario that cannot be loaded or run: names the file and the offending field."""

    def __init__(self, message: str, *, field: str | None = None, source: str | None = None):
        self.message = message
        self.field = field
        self.source = source
        super().__init__(str(self))

    def with_source(self, source: str | None) -> ScenarioError:
        """The same error, naming ``source`` as the file it came from."""
        return ScenarioError(self.message, field=self.field, source=source)

    def __str__(self) -> str:
        parts = [p for p in (self.source, self.field) if p]
        return ": ".join([*parts, self.message])


class PolicyError(Exception):
    """A replication policy raised an exception (or misused the node API) during a run.

    Not a :class:`CapsimError`: the input was valid and the policy's code failed, so the
    command line exits with status 1, not 2. Carries where and when it happened, and the
    policy's own stack frames; :meth:`report` renders them as one block. When raised by
    :func:`capsim.run`, ``result`` holds the run measured up to the failure (the history
    so far), which ``capsim run --out`` still writes.
    """

    def __init__(
        self,
        *,
        policy: str,
        time: float,
        container: str,
        shard: int,
        handling: str,
        exc: BaseException,
    ):
        self.policy = policy
        self.time = time
        self.container = container
        self.shard = shard
        self.handling = handling
        self.exc = exc
        self.frames = _policy_frames(exc)
        self.result = None
        super().__init__(self.headline())

    def headline(self) -> str:
        return f"policy {self.policy} raised {type(self.exc).__name__}: {self.exc}"

    def to_json(self) -> dict:
        """The failure as plain data, for the summary's ``failure`` block."""
        return {
            "policy": self.policy,
            "time": self.time,
            "container": self.container,
            "shard": self.shard,
            "handling": self.handling,
            "error": f"{type(self.exc).__name__}: {self.exc}",
            "frames": [f"{f.filename}:{f.lineno} in {f.name}" for f in self.frames],
        }

    def report(self) -> str:
        """One block for a person: what, when, where, while doing what, and in which code."""
        lines = [
            f"capsim: {self.headline()}",
            f"  at t={self.time:.6f} s on {self.container}, shard {self.shard}",
            f"  while handling {self.handling}",
        ]
        if self.frames:
            lines.append("  in the policy's code (most recent call last):")
            for frame in self.frames:
                lines.append(f'    File "{frame.filename}", line {frame.lineno}, in {frame.name}')
                if frame.line:
                    lines.append(f"      {frame.line}")
        return "\n".join(lines)


def _policy_frames(exc: BaseException) -> list:
    """The stack frames of ``exc`` outside capsim's simulation core and SimPy: the
    policy's own code (a built-in policy's included)."""
    import traceback
    from pathlib import Path

    package = Path(__file__).resolve().parent
    core = [package / "sim", package / "runner.py", package / "errors.py"]
    frames = []
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename).resolve()
        if any(path == c or c in path.parents for c in core) or "simpy" in path.parts:
            continue
        frames.append(frame)
    return frames
