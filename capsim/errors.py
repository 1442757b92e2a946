"""Errors a user can cause. The command line prints them as one line and exits with status 2."""

from __future__ import annotations

__all__ = ["CapsimError", "ScenarioError"]


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
