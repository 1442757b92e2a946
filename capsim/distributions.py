"""One-way latency and duration distributions, as specs and as numpy samplers.

A distribution is written ``{dist: NAME, ...}`` in a scenario, or as a bare duration for a
constant (``5ms``). Every distribution takes an optional ``shift`` added to each draw (a
fixed propagation delay, such as 75 ms across a WAN). All values are seconds.

============  ==========================  =================================================
name          parameters                  a draw
============  ==========================  =================================================
constant      ``value``                   ``value``
uniform       ``low``, ``high``           uniform on [low, high)
exponential   ``mean`` or ``rate``        exponential with that mean (rate = 1 / mean)
lognormal     ``median``, ``sigma``       ``median * exp(sigma * Z)``, Z standard normal
pareto        ``xm``, ``alpha``           ``xm / U ** (1 / alpha)``, U uniform on (0, 1]
mixture       ``components``              one component, chosen by ``weight``, then its draw
============  ==========================  =================================================

Samplers draw in numpy blocks; :func:`draws` turns one into an endless iterator of floats
so that the network pays one ``next()`` per message, not one numpy call. Every draw is
built from uniform bits with :mod:`capsim.portable` (exponential by inversion, normal by
Box and Muller, ``exp`` and ``log`` from exactly rounded operations), so a seed gives the
same draws on every machine, whatever its CPU's vector extensions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from itertools import chain, repeat
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from capsim import portable
from capsim.schema import (
    FiniteFloat,
    NonNegativeDuration,
    PositiveDuration,
    PositiveRate,
    spec,
    to_data,
)

__all__ = [
    "Constant",
    "Uniform",
    "Exponential",
    "Lognormal",
    "Pareto",
    "Mixture",
    "Distribution",
    "DISTRIBUTIONS",
    "draws",
    "cumulative",
    "choose",
]


@spec
class Constant:
    """Always ``value`` (plus ``shift``)."""

    value: NonNegativeDuration
    """The value of every draw."""
    shift: NonNegativeDuration = 0.0
    """Added to every draw: a fixed delay, such as propagation across a WAN."""
    dist: Literal["constant"] = Field(default="constant", repr=False)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value + self.shift)

    def mean(self) -> float:
        return self.value + self.shift


@spec
class Uniform:
    """Uniform on [``low``, ``high``) (plus ``shift``)."""

    low: NonNegativeDuration
    """The lowest value."""
    high: NonNegativeDuration
    """The upper end (at least ``low``)."""
    shift: NonNegativeDuration = 0.0
    """Added to every draw: a fixed delay, such as propagation across a WAN."""
    dist: Literal["uniform"] = Field(default="uniform", repr=False)

    @model_validator(mode="after")
    def _ordered(self):
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must not be below low ({self.low})")
        return self

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.low + (self.high - self.low) * portable.uniforms(rng, n) + self.shift

    def mean(self) -> float:
        return (self.low + self.high) / 2 + self.shift


@spec
class Exponential:
    """Exponential with mean ``mean`` seconds (give ``mean`` or ``rate``, per second)."""

    mean_s: PositiveDuration = Field(default=None, alias="mean")  # type: ignore[assignment]
    """The mean (give this or ``rate``)."""
    rate: PositiveRate | None = None
    """The rate, per second: the mean is 1 / rate (give this or ``mean``)."""
    shift: NonNegativeDuration = 0.0
    """Added to every draw: a fixed delay, such as propagation across a WAN."""
    dist: Literal["exponential"] = Field(default="exponential", repr=False)

    @model_validator(mode="before")
    @classmethod
    def _one_of(cls, data: Any):
        if isinstance(data, dict):
            has_mean = data.get("mean", data.get("mean_s")) is not None
            has_rate = data.get("rate") is not None
            if has_mean == has_rate:
                raise ValueError("give exactly one of 'mean' or 'rate'")
            if has_rate:
                data = dict(data)
                data["mean"] = 1.0 / float(_rate(data.pop("rate")))
        return data

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return portable.exponentials(rng, self.mean_s, n) + self.shift

    def mean(self) -> float:
        return self.mean_s + self.shift

    def __repr__(self) -> str:
        extra = f", shift={self.shift!r}" if self.shift else ""
        return f"Exponential(mean={self.mean_s!r}{extra})"

    def _to_data(self) -> dict:
        return {"dist": "exponential", "mean": self.mean_s, "shift": self.shift}


def _rate(value: Any) -> float:
    from capsim.schema import MAX_RATE, MIN_RATE, echo
    from capsim.units import parse_rate

    rate = parse_rate(value)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(
            f"rate must be between {MIN_RATE:g} and {MAX_RATE:g} per second, got {echo(value)}"
        )
    return rate


def _sigma(value: float) -> float:
    # The largest normal draw (8.6, from U = 2**-53) keeps exp(10 * Z) finite.
    if value < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    if value > 10:
        raise ValueError(f"must be at most 10 (larger draws overflow), got {value!r}")
    return value


def _alpha(value: float) -> float:
    # xm / U ** (1 / alpha) stays finite for the smallest U, 2**-53, when alpha >= 0.1.
    if not value >= 0.1:
        raise ValueError(f"must be at least 0.1 (smaller draws overflow), got {value!r}")
    return value


@spec
class Lognormal:
    """``median * exp(sigma * Z)`` with Z standard normal (plus ``shift``)."""

    median: PositiveDuration
    """The median: half the draws fall below it."""
    sigma: Annotated[FiniteFloat, AfterValidator(_sigma)]
    """The spread: the standard deviation of the draw's natural logarithm."""
    shift: NonNegativeDuration = 0.0
    """Added to every draw: a fixed delay, such as propagation across a WAN."""
    dist: Literal["lognormal"] = Field(default="lognormal", repr=False)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.median * portable.exp(self.sigma * portable.normals(rng, n)) + self.shift

    def mean(self) -> float:
        return self.median * float(portable.exp(self.sigma * self.sigma / 2)) + self.shift


@spec
class Pareto:
    """Pareto with scale ``xm`` and shape ``alpha``: ``xm / U ** (1 / alpha)`` (plus ``shift``)."""

    xm: PositiveDuration
    """The scale: the smallest value."""
    alpha: Annotated[FiniteFloat, AfterValidator(_alpha)]
    """The shape: smaller means a heavier tail (the mean is infinite when alpha is 1 or less)."""
    shift: NonNegativeDuration = 0.0
    """Added to every draw: a fixed delay, such as propagation across a WAN."""
    dist: Literal["pareto"] = Field(default="pareto", repr=False)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        u = portable.open_uniforms(rng, n)  # in (0, 1], so no division by zero
        return self.xm * portable.exp(-portable.log(u) / self.alpha) + self.shift

    def mean(self) -> float:
        if self.alpha <= 1:
            return math.inf
        return self.alpha * self.xm / (self.alpha - 1) + self.shift


def _shorthand(value: Any) -> Any:
    """A bare duration (``5ms``, ``0.002``) means a constant distribution."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return {"dist": "constant", "value": value}
    return value


def _flatten_components(value: Any) -> Any:
    """Accept ``[{weight: w, dist: ..., ...}]`` or ``[(w, dist)]`` and give ``((w, dist), ...)``."""
    if not isinstance(value, list | tuple):
        return value
    out = []
    for item in value:
        if isinstance(item, dict):
            item = dict(item)
            if "weight" not in item:
                raise ValueError("every mixture component needs a 'weight'")
            weight = item.pop("weight")
            out.append((weight, item))
        else:
            out.append(item)
    return out


@spec
class Mixture:
    """A weighted mixture: a component is chosen with probability ``weight``, then drawn.

    Weights must be positive and add up to 1 (within 1e-6).
    """

    components: Annotated[
        tuple[tuple[Annotated[FiniteFloat, Field(gt=0)], Distribution], ...],
        BeforeValidator(_flatten_components),
        Field(min_length=1),
    ]
    """The components, each with a ``weight``: the chance that a draw comes from it."""
    shift: NonNegativeDuration = 0.0
    """Added to every draw: a fixed delay, such as propagation across a WAN."""
    dist: Literal["mixture"] = Field(default="mixture", repr=False)

    @model_validator(mode="after")
    def _weights(self):
        total = sum(w for w, _ in self.components)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"mixture weights must add up to 1, they add up to {total:g}")
        return self

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        choice = choose(self._cdf(), portable.uniforms(rng, n))
        out = np.empty(n)
        for i, (_, component) in enumerate(self.components):
            mask = choice == i
            count = int(mask.sum())
            if count:
                out[mask] = component.sample(rng, count)
        return out + self.shift

    def mean(self) -> float:
        return sum(w * c.mean() for w, c in self.components) + self.shift

    def _cdf(self) -> list[float]:
        return cumulative([w for w, _ in self.components])

    def _to_data(self) -> dict:
        return {
            "dist": "mixture",
            "components": [{"weight": w, **to_data(c)} for w, c in self.components],
            "shift": self.shift,
        }


Distribution = Annotated[
    Annotated[
        Constant | Uniform | Exponential | Lognormal | Pareto | Mixture,
        Field(discriminator="dist"),
    ],
    BeforeValidator(_shorthand),
]

#: Distribution kinds by the name used in scenario files.
DISTRIBUTIONS: dict[str, type] = {
    "constant": Constant,
    "uniform": Uniform,
    "exponential": Exponential,
    "lognormal": Lognormal,
    "pareto": Pareto,
    "mixture": Mixture,
}

# Mixture refers to Distribution, which is defined after it.
from pydantic.dataclasses import rebuild_dataclass  # noqa: E402

rebuild_dataclass(Mixture)


def cumulative(weights: list[float]) -> list[float]:
    """Cumulative sums of ``weights`` divided by their total, added left to right in Python
    (so the same on every machine); the last is exactly 1."""
    out, total = [], 0.0
    for w in weights:
        total += float(w)
        out.append(total)
    return [c / total for c in out[:-1]] + [1.0]


def choose(cdf, u: np.ndarray) -> np.ndarray:
    """Indices drawn by inversion: for each uniform ``u``, the first ``i`` with
    ``u < cdf[i]``."""
    index = np.searchsorted(np.asarray(cdf, dtype=np.float64), u, side="right")
    return np.minimum(index, len(cdf) - 1)


def draws(dist: Any, rng: np.random.Generator, block: int = 4096) -> Iterator[float]:
    """Draws of ``dist`` forever, sampled ``block`` at a time from ``rng`` (each block when
    the one before runs out). ``next`` on it runs no Python code but once a block."""
    if isinstance(dist, Constant):
        return repeat(dist.value + dist.shift)

    def blocks() -> Iterator[list[float]]:
        while True:
            yield dist.sample(rng, block).tolist()

    return chain.from_iterable(blocks())
