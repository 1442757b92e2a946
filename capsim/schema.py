"""Building blocks shared by every spec type: the dataclass decorator, typed durations, dumping.

Every spec in capsim (scenario sections, latency distributions, faults) is a frozen,
keyword-only dataclass validated by pydantic when it is built, so a spec built in Python
is checked exactly as one read from a file, and its ``repr`` is valid Python.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ConfigDict
from pydantic.dataclasses import dataclass as _pydantic_dataclass

from capsim.units import parse_duration, parse_rate

__all__ = [
    "spec",
    "Duration",
    "NonNegativeDuration",
    "PositiveDuration",
    "Probability",
    "PositiveRate",
    "to_data",
]

SPEC_CONFIG = ConfigDict(extra="forbid", str_strip_whitespace=True)


def spec(cls):
    """Make ``cls`` a frozen, keyword-only, validated dataclass that rejects unknown fields."""
    return _pydantic_dataclass(frozen=True, kw_only=True, config=SPEC_CONFIG)(cls)


def _non_negative(value: float) -> float:
    if value < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return value


def _positive(value: float) -> float:
    if not value > 0:
        raise ValueError(f"must be greater than zero, got {value!r}")
    return value


def _probability(value: float) -> float:
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise ValueError(f"must be a probability between 0 and 1, got {value!r}")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
NonNegativeDuration = Annotated[
    float, BeforeValidator(parse_duration), AfterValidator(_non_negative)
]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_positive)]
Probability = Annotated[float, AfterValidator(_finite), AfterValidator(_probability)]
PositiveRate = Annotated[float, BeforeValidator(parse_rate), AfterValidator(_positive)]
FiniteFloat = Annotated[float, AfterValidator(_finite)]


def to_data(value: Any) -> Any:
    """Turn a spec into plain data (dicts, lists, numbers, strings) for YAML or JSON.

    Specs may define ``_to_data(self)`` to choose their own shape (a mixture flattens its
    components); durations come out as floats in seconds.
    """
    custom = getattr(value, "_to_data", None)
    if custom is not None:
        return custom()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = [f.name for f in dataclasses.fields(value)]
        # The discriminator (``kind`` of a fault, ``dist`` of a distribution) reads best first.
        names.sort(key=lambda name: name not in ("kind", "dist"))
        return {name: to_data(getattr(value, name)) for name in names}
    if isinstance(value, dict):
        return {str(k): to_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_data(v) for v in value]
    return value
