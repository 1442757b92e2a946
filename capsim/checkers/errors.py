"""Errors the checkers raise on bad input; all are :class:`capsim.errors.CapsimError`."""

from __future__ import annotations

from capsim.errors import CapsimError

__all__ = ["CheckerError", "FormatError", "ModelError"]


class CheckerError(CapsimError):
    """Input the linearizability checker cannot use (a file, a model name, a value)."""


class FormatError(CheckerError):
    """A history file that cannot be read: names the file and, when known, the line."""


class ModelError(CheckerError):
    """An unknown model, a bad initial value, or an operation the model does not have."""
