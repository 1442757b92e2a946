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
        seconds = _float(value, "duration")
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(
                f"expected a duration such as '5ms', '2s' or '1m', got {_shown(value)}"
            )
        number, unit = match.groups()
        seconds = float(number) * _UNITS[unit or "s"]
    else:
        raise ValueError(f"expected a duration such as '5ms' or '2s', got {_shown(value)}")
    if not math.isfinite(seconds):
        raise ValueError(f"a duration must be finite, got {_shown(value)}")
    return seconds


def format_duration(seconds: float) -> str:
    """Format seconds so that :func:`parse_duration` gives back exactly the same float."""
    return f"{float(seconds)!r}s"


def parse_rate(value: object) -> float:
    """Parse a rate in events per second.

    A rate is a number (per second) or ``"N/<duration>"``: ``N`` events per that
    duration, where a bare unit means one of it. So ``"200/s"`` and ``"200"`` are 200 per
    second, ``"5/ms"`` is 5000, ``"20/1s"`` is 20, ``"60/1m"`` is 1 and ``"5/250ms"`` is 20
    per second. The duration after ``/`` must be greater than zero. Raises ``ValueError``
    on anything else, including NaN and infinity; the sign of ``N`` is kept (callers bound
    it).
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a rate such as 200 or '200/s', got {value!r}")
    if isinstance(value, int | float):
        rate = _float(value, "rate")
    elif isinstance(value, str) and "/" in value:
        number, _, per_text = value.partition("/")
        number, per_text = number.strip(), per_text.strip()
        try:
            count = float(number)
        except ValueError:
            raise ValueError(
                f"expected a rate such as '200/s' or '5/250ms', got {_shown(value)}"
            ) from None
        if not per_text:
            raise ValueError(
                f"expected a duration after '/', such as '200/s' or '5/250ms', got {_shown(value)}"
            )
        # "s" means one second; "250ms" or "1s" a duration with its own number.
        bare_unit = not (per_text[0].isdigit() or per_text[0] in "+-.")
        try:
            per = parse_duration("1" + per_text if bare_unit else per_text)
        except ValueError:
            raise ValueError(
                f"expected a rate such as '200/s' or '5/250ms', got {_shown(value)}"
            ) from None
        if not per > 0:
            raise ValueError(
                f"the duration after '/' must be greater than zero, got {_shown(value)}"
            )
        rate = count / per
    elif isinstance(value, str):
        try:
            rate = float(value)
        except ValueError:
            raise ValueError(
                f"expected a rate such as 200 or '200/s', got {_shown(value)}"
            ) from None
    else:
        raise ValueError(f"expected a rate such as 200 or '200/s', got {_shown(value)}")
    if not math.isfinite(rate):
        raise ValueError(f"a rate must be finite, got {_shown(value)}")
    return rate


def _float(value: int | float, what: str) -> float:
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"a {what} must be finite, got a number too large for one") from None


def _shown(value: object) -> str:
    """``repr(value)``, cut short: messages never repeat a huge input."""
    if isinstance(value, list | tuple | dict):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + f"... ({len(text)} characters)"
