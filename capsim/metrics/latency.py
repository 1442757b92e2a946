"""Latency of operations."""

from __future__ import annotations

from typing import Any

import numpy as np

from capsim.history import FUNCTIONS, OK, READ, Operations
from capsim.metrics.availability import UPDATES

__all__ = ["latency_percentiles", "latency_summary"]


def latency_percentiles(latencies_s: np.ndarray) -> dict[str, float | None]:
    """Latency percentiles in milliseconds (p50, p90, p99, p999) of the given latencies,
    by linear interpolation between order statistics; ``None`` when there are none."""
    keys = ("p50", "p90", "p99", "p999")
    if len(latencies_s) == 0:
        return dict.fromkeys(keys)
    values = np.quantile(latencies_s, [0.5, 0.9, 0.99, 0.999]) * 1000.0
    return {k: round(float(v), 6) for k, v in zip(keys, values, strict=True)}


def latency_summary(ops: Operations, mask: np.ndarray | None = None) -> dict[str, Any]:
    """Latency of ``ok`` operations of the main phase (among ``mask``), from invocation to
    completion: for reads, for updates (``write``: write, cas and add together), and
    ``by_f`` for each operation type separately."""
    ok = (ops.type == OK) & ~ops.final
    if mask is not None:
        ok &= mask
    latency = ops.complete_time - ops.invoke_time
    return {
        "read": latency_percentiles(latency[ok & (ops.f == READ)]),
        "write": latency_percentiles(latency[ok & np.isin(ops.f, UPDATES)]),
        "by_f": {
            name: latency_percentiles(latency[ok & (ops.f == code)])
            for code, name in enumerate(FUNCTIONS)
        },
    }
