"""The WARS model of PBS by Monte Carlo: how soon after a write commits do reads see it?

Bailis et al., "Probabilistically Bounded Staleness for Practical Partial Quorums", VLDB
2012, section 5. A coordinator sends a write to all ``n`` replicas and a read to all ``n``.
For replica ``i`` four one-way delays are drawn independently: ``W_i`` (the write
reaching it), ``A_i`` (its acknowledgement coming back), ``R_i`` (a read request reaching
it) and ``S_i`` (the read's response coming back). One trial:

* the write commits at ``c``, the ``w``-th smallest ``W_i + A_i`` (after ``w`` acks);
* a read starts ``t`` after the commit; it returns the newest of the first ``r``
  responses, the ``r`` replicas with the smallest ``R_i + S_i``;
* the read is *consistent* (returns the write) at ``t`` if for one of those replicas
  ``c + t + R_i >= W_i``: the write reached it before the read request did.

So a trial is consistent from ``t* = min(W_i - R_i over the r responders) - c`` on, and
``P(consistent at t) = P(t* <= t)``. The write's latency is ``c``; the read's, the
``r``-th smallest ``R_i + S_i``. With ``r + w > n`` a responder is always among the
``w`` that acknowledged, so every read is consistent.

Datacenters (the ``wan`` profile): with ``cross_dc_ms`` the ``n`` replicas sit one per
datacenter; each trial draws the writer's and the reader's datacenter independently and
uniformly, and every message between the coordinator's datacenter and a replica in
another one takes ``cross_dc_ms`` longer.

The implementation draws every delay of a block of trials at once, in float32
milliseconds (enough: 24 bits resolve 1 us at 16 s), and finds order statistics by
comparisons rather than sorting each trial. Results are reproducible for a seed on a
machine; numpy's float32 ``exp`` and ``log`` may differ in the last bit between CPUs,
which can move a figure in its last digits (this is analysis, not simulation: no
history depends on it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import TypeAdapter, ValidationError

from capsim.analytic.profiles import LEGS, PROFILES, leg_data
from capsim.distributions import (
    Constant,
    Distribution,
    Exponential,
    Lognormal,
    Mixture,
    Pareto,
    Uniform,
)
from capsim.rng import stream
from capsim.schema import validation_message

__all__ = ["Legs", "WarsResult", "wars", "BLOCK", "DEFAULT_TRIALS", "PERCENTILES"]

#: Trials drawn per block with 3 replicas (fewer with more, so that a block's arrays stay
#: the same size). Each array of a block is then 96 KB: inside the CPU's L2 cache, and
#: below glibc's threshold (128 KB) for serving an allocation by mmap, whose fresh pages
#: (a fault each on first touch) made blocks 16 times larger 50% slower in all.
BLOCK = 1 << 13
DEFAULT_TRIALS = 1_000_000
#: The latency percentiles reported, by key.
PERCENTILES = {"p50": 0.5, "p99": 0.99, "p999": 0.999}
_DIST = TypeAdapter(Distribution)


@dataclass(frozen=True)
class Legs:
    """The four WARS delays as distributions (capsim's latency specs, in seconds as a
    scenario writes them), and ``cross_dc_ms`` (see the module docstring)."""

    w: Any
    a: Any
    r: Any
    s: Any
    cross_dc_ms: float = 0.0
    name: str | None = field(default=None, compare=False)

    @classmethod
    def profile(cls, name: str) -> Legs:
        """The legs of a named profile (:data:`capsim.analytic.profiles.PROFILES`)."""
        if name not in PROFILES:
            raise ValueError(f"unknown latency profile {name!r}; known: {', '.join(PROFILES)}")
        prof = PROFILES[name]
        dists = {leg: _DIST.validate_python(leg_data(prof.legs[leg])) for leg in LEGS}
        return cls(**dists, cross_dc_ms=prof.cross_dc_ms, name=name)

    @classmethod
    def of(cls, **legs: Any) -> Legs:
        """Legs from distribution specs or their data (``"5ms"``, ``{"dist":
        "exponential", "mean": "1ms"}``), for ``w``, ``a``, ``r``, ``s``; ``cross_dc_ms``
        may be given too. Raises ValueError naming the leg of a bad spec."""
        cross = float(legs.pop("cross_dc_ms", 0.0))
        unknown = sorted(set(legs) - set(LEGS))
        if unknown:
            raise ValueError(f"unknown legs {unknown}; the legs are w, a, r, s")
        missing = [leg for leg in LEGS if leg not in legs]
        if missing:
            raise ValueError(f"missing legs {missing}")
        dists = {}
        for leg in LEGS:
            value = legs[leg]
            try:
                dists[leg] = _DIST.validate_python(value)
            except ValidationError as exc:
                where, message = validation_message(exc.errors()[0])
                where = f".{where}" if where else ""
                raise ValueError(f"{leg}{where}: {message}") from None
        if not (math.isfinite(cross) and cross >= 0):
            raise ValueError(f"cross_dc_ms must be a finite number of 0 or more, got {cross}")
        return cls(**dists, cross_dc_ms=cross)


@dataclass
class WarsResult:
    """What :func:`wars` found: ``p_consistent`` (t in ms -> probability),
    ``t_visibility_ms`` (target probability -> the smallest t, in ms, at which at least
    that fraction of trials is consistent), ``latency_ms`` (``read`` and ``write``:
    ``p50``, ``p99``, ``p999``, by linear interpolation between order statistics, as
    capsim's run summary computes them), and ``t_star`` (each trial's ``t*`` in ms,
    float32, unsorted)."""

    n: int
    r: int
    w: int
    trials: int
    seed: int
    p_consistent: dict[float, float]
    t_visibility_ms: dict[float, float]
    latency_ms: dict[str, dict[str, float]]
    t_star: np.ndarray

    def consistent_at(self, t_ms: float) -> float:
        """P(consistent at ``t_ms``) over these trials."""
        return float(np.count_nonzero(self.t_star <= np.float32(t_ms))) / self.trials

    def visibility(self, target: float) -> float:
        """The smallest t >= 0 (ms) at which at least ``target`` of the trials are
        consistent (an order statistic of ``t*``)."""
        return _visibility(self.t_star, target)


def _visibility(t_star: np.ndarray, target: float) -> float:
    count = len(t_star)
    # round(): so that 0.999 * 1000000 is 999000 and not one more after rounding noise.
    need = max(1, math.ceil(round(target * count, 6)))
    value = float(np.partition(t_star, need - 1)[need - 1])
    return max(0.0, value)


def wars(
    n: int,
    r: int,
    w: int,
    legs: Legs | str,
    *,
    trials: int = DEFAULT_TRIALS,
    seed: int = 0,
    t_ms: Iterable[float] = (0.0,),
    targets: Iterable[float] = (0.999,),
) -> WarsResult:
    """Run ``trials`` WARS trials (see the module docstring) with ``n`` replicas, reads of
    ``r`` and writes of ``w``, delays from ``legs`` (a :class:`Legs` or a profile name),
    from stream ``analytic.wars`` of ``seed``. Returns P(consistent) at each of ``t_ms``,
    the t for each of ``targets``, and read and write latency percentiles."""
    from capsim.analytic.pbs import _check_quorum

    _check_quorum(n, r, w)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials must be a whole number of at least 1, got {trials!r}")
    if isinstance(legs, str):
        legs = Legs.profile(legs)
    t_values = [float(t) for t in t_ms]
    for t in t_values:
        if not (math.isfinite(t) and t >= 0):
            raise ValueError(f"t must be a finite number of milliseconds >= 0, got {t}")
    goals = [float(p) for p in targets]
    for p in goals:
        if not 0.0 < p <= 1.0:
            raise ValueError(f"a target probability must be in (0, 1], got {p}")
    rng = stream(seed, "analytic.wars")
    t_star = np.empty(trials, dtype=np.float32)
    write_lat = np.empty(trials, dtype=np.float32)
    read_lat = np.empty(trials, dtype=np.float32)
    per_block = max(1, BLOCK * 3 // n)  # about BLOCK * 3 delays per leg and block
    done = 0
    while done < trials:
        m = min(per_block, trials - done)
        stop = done + m
        t_star[done:stop], write_lat[done:stop], read_lat[done:stop] = _block(rng, legs, n, r, w, m)
        done = stop
    p = {t: float(np.count_nonzero(t_star <= np.float32(t))) / trials for t in t_values}
    return WarsResult(
        n=n,
        r=r,
        w=w,
        trials=trials,
        seed=seed,
        p_consistent=p,
        t_visibility_ms={goal: _visibility(t_star, goal) for goal in goals},
        latency_ms={
            "read": _percentiles(read_lat),
            "write": _percentiles(write_lat),
        },
        t_star=t_star,
    )


def _percentiles(values: np.ndarray) -> dict[str, float]:
    qs = np.quantile(values, list(PERCENTILES.values()))
    return {key: float(q) for key, q in zip(PERCENTILES, qs, strict=True)}


def _block(rng: np.random.Generator, legs: Legs, n: int, r: int, w: int, m: int):
    """``m`` trials: (t*, write latency, read latency), float32 ms."""
    size = n * m
    dw = _draw(legs.w, rng, size).reshape(n, m)
    da = _draw(legs.a, rng, size).reshape(n, m)
    dr = _draw(legs.r, rng, size).reshape(n, m)
    ds = _draw(legs.s, rng, size).reshape(n, m)
    if legs.cross_dc_ms:
        extra = np.float32(legs.cross_dc_ms)
        replica = np.arange(n, dtype=np.int32)[:, None]
        writer = rng.integers(0, n, m, dtype=np.int32)
        reader = rng.integers(0, n, m, dtype=np.int32)
        away_w = (replica != writer) * extra  # float32 (n, m): 0 at home, else the delay
        away_r = (replica != reader) * extra
        dw += away_w
        da += away_w
        dr += away_r
        ds += away_r
    wa = dw
    wa_sum = dw + da
    rs = dr + ds
    commit = _kth(wa_sum, w)
    read_latency = _kth(rs, r)
    gap = wa - dr  # W_i - R_i
    if r >= n:
        best = gap.min(axis=0)
    elif r == 1:
        best = _at_argmin(rs, gap)
    else:
        responders = _ranks(rs) < r
        # Non-responders pushed out of reach (no inf: inf * 0 would be nan).
        best = (gap + (~responders) * np.float32(_FAR)).min(axis=0)
    return best - commit, commit, read_latency


def _kth(x: np.ndarray, k: int) -> np.ndarray:
    """The ``k``-th smallest (1-based) along axis 0 of ``x`` (n, m), without sorting."""
    n = x.shape[0]
    if k == 1:
        return x.min(axis=0)
    if k == n:
        return x.max(axis=0)
    if n > 8:
        return np.partition(x, k - 1, axis=0)[k - 1]
    ranks = _ranks(x)
    out = np.zeros(x.shape[1], dtype=np.float32)
    for i in range(n):
        out += x[i] * (ranks[i] == k - 1)  # exactly one row has that rank
    return out


def _ranks(x: np.ndarray) -> np.ndarray:
    """Each value's rank (0-based) along axis 0, ties broken by position: for a few rows,
    one comparison per pair of rows rather than a sort per column."""
    n = x.shape[0]
    if n > 8:
        order = np.argsort(x, axis=0, kind="stable")
        ranks = np.empty(x.shape, dtype=np.int32)
        np.put_along_axis(ranks, order, np.arange(n, dtype=np.int32)[:, None], axis=0)
        return ranks
    ranks = np.zeros(x.shape, dtype=np.uint8 if n < 256 else np.int32)
    for i in range(n):
        for j in range(i + 1, n):
            le = x[i] <= x[j]
            ranks[j] += le
            ranks[i] += ~le
    return ranks


def _at_argmin(key: np.ndarray, value: np.ndarray) -> np.ndarray:
    """``value`` at the row where ``key`` is smallest (the first on a tie), per column."""
    best_key = key[0].copy()
    best = value[0].copy()
    for i in range(1, key.shape[0]):
        better = (key[i] < best_key).astype(np.float32)
        np.minimum(best_key, key[i], out=best_key)
        best = _blend(better, value[i], best)
    return best


def _blend(f: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x`` where ``f`` is 1 and ``y`` where it is 0 (``f`` float32 0 or 1, values
    finite): ``x * f + y * (1 - f)``, exact, and much faster than ``np.where`` on a random
    mask, whose branches the CPU cannot predict."""
    out = x * f
    out += y * (np.float32(1.0) - f)
    return out


def _draw(dist: Any, rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` draws of ``dist`` in milliseconds, float32."""
    if isinstance(dist, Constant):
        return np.full(size, (dist.value + dist.shift) * 1000.0, dtype=np.float32)
    return _from_uniform(dist, rng.random(size, dtype=np.float32), rng)


def _exponentials(v: np.ndarray) -> np.ndarray:
    """Standard exponentials by inversion of uniforms ``v`` in [0, 1): ``-ln(1 - v)``."""
    e = np.negative(v)
    np.log1p(e, out=e)
    np.negative(e, out=e)
    return e


def _from_uniform(
    dist: Any, v: np.ndarray, rng: np.random.Generator, e: np.ndarray | None = None
) -> np.ndarray:
    """Draws of ``dist`` in milliseconds (float32) by inversion of the uniforms ``v`` in
    [0, 1), one per draw (``e``: their standard exponentials, if already computed; a
    lognormal draws its own normals instead). A mixture picks each draw's component with
    its uniform and rescales that uniform within the component, so every component is
    one vectorized transform of a single array."""
    if isinstance(dist, Constant):
        out = np.full(len(v), dist.value * 1000.0, dtype=np.float32)
    elif isinstance(dist, Mixture):
        out = _mixture(dist, v, rng)
    elif isinstance(dist, Pareto):
        # x_m / U ** (1 / alpha) = x_m * exp(E / alpha), E = -ln(U) standard exponential
        # (U = 1 - v, in (0, 1]); the exponent is capped so that no draw overflows.
        x = (_exponentials(v) if e is None else e) * np.float32(1.0 / dist.alpha)
        np.minimum(x, np.float32(_MAX_EXPONENT), out=x)
        out = np.exp(x, out=x)
        out *= np.float32(dist.xm * 1000.0)
    elif isinstance(dist, Exponential):
        out = (_exponentials(v) if e is None else e) * np.float32(dist.mean_s * 1000.0)
    elif isinstance(dist, Uniform):
        out = v * np.float32((dist.high - dist.low) * 1000.0)
        out += np.float32(dist.low * 1000.0)
    elif isinstance(dist, Lognormal):
        z = rng.standard_normal(len(v), dtype=np.float32)
        z *= np.float32(dist.sigma)
        np.minimum(z, np.float32(_MAX_EXPONENT), out=z)
        out = np.exp(z, out=z)
        out *= np.float32(dist.median * 1000.0)
    else:  # pragma: no cover - every Distribution kind is handled above
        raise TypeError(f"cannot sample {dist!r}")
    if dist.shift:
        out += np.float32(dist.shift * 1000.0)
    return out


#: Added to a non-responder's gap so that the minimum never picks it.
_FAR = 1e38
#: exp() of at most this stays finite in float32 even times the largest x_m (1e12 ms).
_MAX_EXPONENT = 60.0
#: The largest float32 below 1: a rescaled uniform never reaches 1 (log1p(-1) = -inf).
_BELOW_ONE = float(np.nextafter(np.float32(1.0), np.float32(0.0)))


def _mixture(dist: Mixture, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    components = [c for _, c in dist.components]
    weights = [float(w) for w, _ in dist.components]
    if len(components) == 1:
        return _from_uniform(components[0], v, rng)
    total = math.fsum(weights)
    lows, acc = [], 0.0
    for weight in weights:
        lows.append(acc / total)
        acc += weight
    highs = [*lows[1:], 1.0]
    # Each draw's component (a 0/1 float mask per component), and its uniform rescaled
    # within that component's interval of [0, 1): (v - low) / (high - low).
    masks = []
    below = np.zeros(len(v), dtype=np.float32)  # the masks of the components so far
    for high in highs[:-1]:
        mask = (v < np.float32(high)).astype(np.float32)
        mask -= below
        below += mask
        masks.append(mask)
    np.subtract(np.float32(1.0), below, out=below)
    masks.append(below)
    start = np.zeros(len(v), dtype=np.float32)
    scale = np.zeros(len(v), dtype=np.float32)
    for mask, low, high in zip(masks, lows, highs, strict=True):
        if low:
            start += mask * np.float32(low)
        scale += mask * np.float32(1.0 / (high - low))
    inner = np.subtract(v, start, out=start)
    inner *= scale
    np.clip(inner, np.float32(0.0), np.float32(_BELOW_ONE), out=inner)
    needs_e = any(isinstance(c, Pareto | Exponential) for c in components)
    e = _exponentials(inner) if needs_e else None
    out = np.zeros(len(v), dtype=np.float32)
    for mask, component in zip(masks, components, strict=True):
        draws = _from_uniform(component, inner, rng, e)
        draws *= mask
        out += draws
    return out
