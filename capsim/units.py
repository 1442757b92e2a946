"""Durations with units, as written in scenario files.

A duration is a number of seconds (``2``, ``0.5``) or a string with a unit:
``us``, ``ms``, ``s``, ``m`` (minutes) or ``h`` (``"5ms"``, ``"1.5s"``, ``"2m"``).
Inside capsim every duration is a float number of seconds.
"""

from __future__ import annotations

import math
import re

__all__ = ["parse_duration", "format_duration", "parse_rate"]

_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION = re.compile(
    r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(us|µs|ms|s|min|m|h)?\s*$"
)


def parse_duration(value: object) -> float:
    """Parse ``value`` (a number of seconds or a string with a unit) into seconds.

    Raises ``ValueError`` with a message fit for a user on anything else,
    including NaN and infinity. The sign is kept; callers bound it.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '5ms' or '2s', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"expected a duration such as '5ms', '2s' or '1m', got {value!r}")
        number, unit = match.groups()
        seconds = float(number) * _UNITS[unit or "s"]
    else:
        raise ValueError(f"expected a duration such as '5ms' or '2s', got {value!r}")
    if not math.isfinite(seconds):
        raise ValueError(f"a duration must be finite, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """Format seconds so that :func:`parse_duration` gives back exactly the same float."""
    return f"{float(seconds)!r}s"


def parse_rate(value: object) -> float:
    """Parse a rate in events per second: a number, or a string like ``"200/s"`` or ``"5/ms"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a rate such as 200 or '200/s', got {value!r}")
    if isinstance(value, int | float):
        rate = float(value)
    elif isinstance(value, str) and "/" in value:
        number, _, unit = value.partition("/")
        try:
            count = float(number)
        except ValueError:
            raise ValueError(f"expected a rate such as '200/s', got {value!r}") from None
        per = parse_duration("1" + unit.strip()) if unit.strip() else 1.0
        rate = count / per
    elif isinstance(value, str):
        try:
            rate = float(value)
        except ValueError:
            raise ValueError(f"expected a rate such as 200 or '200/s', got {value!r}") from None
    else:
        raise ValueError(f"expected a rate such as 200 or '200/s', got {value!r}")
    if not math.isfinite(rate):
        raise ValueError(f"a rate must be finite, got {value!r}")
    return rate
