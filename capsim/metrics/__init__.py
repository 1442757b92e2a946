"""Metrics: pure functions of a history, the faults applied and replica state.

Each metric is defined once, in the docstring of the function that computes it, and the
README quotes those definitions. Operations of the final phase (the reads after the
final heal) are excluded from availability, latency, staleness and operation counts;
:func:`durability` uses them. A figure with no data is ``None`` (``null`` in JSON),
never NaN.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from capsim.history import Operations
from capsim.metrics.availability import (
    availability,
    availability_by_fault,
    availability_summary,
    fault_intervals,
    fault_windows,
    outcome_counts,
    recovery_time,
    succeeded,
    timeseries,
)
from capsim.metrics.consistency import consistency
from capsim.metrics.durability import durability
from capsim.metrics.latency import latency_percentiles, latency_summary
from capsim.metrics.sessions import session_violations
from capsim.metrics.staleness import (
    ReadStaleness,
    read_staleness,
    staleness_summary,
    t_visibility,
)

__all__ = [
    "ReadStaleness",
    "availability",
    "breakdown",
    "read_staleness",
    "session_violations",
    "staleness_summary",
    "summarize",
    "t_visibility",
    "availability_by_fault",
    "availability_summary",
    "clean",
    "consistency",
    "durability",
    "fault_intervals",
    "fault_windows",
    "latency_percentiles",
    "latency_summary",
    "outcome_counts",
    "recovery_time",
    "succeeded",
    "timeseries",
]


def clean(value: Any) -> Any:
    """Replace NaN and infinities by ``None`` throughout a summary."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def breakdown(
    ops: Operations,
    s: ReadStaleness,
    served: np.ndarray | None = None,
    versions: tuple[np.ndarray, list[str]] | None = None,
) -> dict[str, Any]:
    """Per shard, per client zone and (with A/B traffic: ``versions`` gives each
    operation's version index and the versions' names) per image version: operations,
    availability, stale-read fraction and the p99 latency of ``ok`` reads and updates
    (ms), main phase only."""
    main = ~ops.final
    served = succeeded(ops) if served is None else served
    stale_ops = s.read[s.k > 0]
    out: dict[str, Any] = {"by_shard": {}, "by_zone": {}}
    groups: list[tuple[str, np.ndarray, Any]] = [
        ("by_shard", ops.shard, None),
        ("by_zone", ops.zone, ops.history.zones.names),
    ]
    if versions is not None:
        out["by_version"] = {}
        groups.append(("by_version", versions[0], versions[1]))
    for field, column, names in groups:
        for value in sorted(set(column[main].tolist())):
            mask = main & (column == value)
            reads = s.read[column[s.read] == value]
            latency = latency_summary(ops, mask)
            label = str(value) if names is None else names[value]
            out[field][label] = {
                "ops": int(mask.sum()),
                "availability": availability(ops, mask, served),
                "stale_read_fraction": (
                    float(np.isin(reads, stale_ops).mean()) if len(reads) else None
                ),
                "read_p99_ms": latency["read"]["p99"],
                "write_p99_ms": latency["write"]["p99"],
            }
    return out


def summarize(
    ops: Operations,
    records: list[dict[str, Any]],
    *,
    workload: str,
    end: float,
    versions: tuple[np.ndarray, list[str]] | None = None,
) -> dict[str, Any]:
    """Every history-derived part of a run's summary (see the README for the keys);
    ``versions``: each operation's image version under A/B traffic (see
    :func:`breakdown`)."""
    windows = fault_windows(records, end)
    intervals = sorted((w["start"], w["end"]) for w in windows)
    main = ~ops.final
    served = succeeded(ops)  # computed once, shared by every availability figure
    stale = read_staleness(ops, workload)
    staleness = staleness_summary(stale)
    staleness["t_visibility"] = t_visibility(stale)
    return {
        "ops": outcome_counts(ops, main),
        "availability": availability_summary(ops, intervals, served),
        "latency_ms": latency_summary(ops),
        "staleness": staleness,
        "sessions": session_violations(ops, stale, workload),
        "durability": durability(ops, workload),
        "final": outcome_counts(ops, ops.final),
        "fault_windows": availability_by_fault(ops, windows, served),
        "breakdown": breakdown(ops, stale, served, versions),
    }
