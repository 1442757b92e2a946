"""Closed forms: PBS k-staleness of partial quorums, and quorum availability.

Both are exact formulas (no sampling), checked against hand-computed values in the tests
and against the simulator by ``capsim fidelity``.
"""

from __future__ import annotations

import math
from fractions import Fraction

__all__ = ["k_staleness", "quorum_availability", "container_availability", "majority"]


def _check_quorum(n: int, r: int, w: int) -> None:
    for name, value in (("n", n), ("r", r), ("w", w)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    for name, value in (("r", r), ("w", w)):
        if not 1 <= value <= n:
            raise ValueError(f"{name} must be between 1 and n = {n}, got {value}")


def k_staleness(n: int, r: int, w: int, k: int = 1) -> float:
    """The probability that a read returns none of the last ``k`` versions (PBS k-staleness,
    Bailis et al., VLDB 2012, section 3): ``(C(n - w, r) / C(n, r)) ** k``.

    The model of partial quorums: each write reaches exactly ``w`` of the key's ``n``
    replicas and each read asks exactly ``r``, every quorum drawn uniformly at random and
    independently, and nothing else moves data (no repair, no anti-entropy, no write
    reaching more replicas later). A read misses a version when its ``r`` replicas avoid
    that version's ``w``: ``C(n - w, r) / C(n, r)``. It returns none of the last ``k``
    when it misses all of them. With ``r + w > n`` every read quorum meets every write
    quorum and the probability is 0.
    """
    _check_quorum(n, r, w)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a whole number of at least 1, got {k!r}")
    miss = Fraction(math.comb(n - w, r), math.comb(n, r))
    return float(miss**k)  # exact, then rounded once


def quorum_availability(n: int, q: int, a: float) -> float:
    """The probability that at least ``q`` of ``n`` replicas are up, each independently up
    with probability ``a``: the sum over ``i >= q`` of ``C(n, i) a^i (1 - a)^(n - i)``.

    With ``a`` the long-run fraction of time a container is up (see
    :func:`container_availability`), it is also the long-run fraction of time a quorum of
    ``q`` is up, for containers that fail and recover independently.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a whole number of at least 1, got {n!r}")
    if isinstance(q, bool) or not isinstance(q, int) or not 0 <= q <= n:
        raise ValueError(f"q must be a whole number from 0 to n = {n}, got {q!r}")
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"a must be a probability, got {a!r}")
    return math.fsum(math.comb(n, i) * a**i * (1.0 - a) ** (n - i) for i in range(q, n + 1))


def container_availability(mttf: float, mttr: float, startup: float = 0.0) -> float:
    """The long-run fraction of time a container is up and ready when it stays up for a
    mean of ``mttf``, then is down for a mean of ``mttr`` and takes ``startup`` to be
    ready again (the ``churn`` fault): ``mttf / (mttf + mttr + startup)``, by the
    renewal-reward theorem (any distributions with those means)."""
    if not (mttf > 0 and mttr >= 0 and startup >= 0):
        raise ValueError(
            f"need mttf > 0, mttr >= 0 and startup >= 0, got {mttf!r}, {mttr!r}, {startup!r}"
        )
    return mttf / (mttf + mttr + startup)


def majority(n: int) -> int:
    """The smallest majority of ``n``: ``n // 2 + 1``."""
    return n // 2 + 1
