"""Metrics: pure functions of a history and the faults applied, defined here once.

Every definition below is the docstring of the function that computes it, and the README
quotes them. Operations of the final phase (the reads after the final heal) are excluded
from availability, latency and operation counts; :func:`durability` uses them. A figure
with no data is ``None`` (``null`` in JSON), never NaN.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from capsim.history import ADD, CAS, FAIL, INFO, OK, READ, WRITE, Operations

__all__ = [
    "succeeded",
    "availability",
    "availability_summary",
    "fault_intervals",
    "fault_windows",
    "availability_by_fault",
    "latency_percentiles",
    "latency_summary",
    "durability",
    "outcome_counts",
    "timeseries",
]

UPDATES = (WRITE, CAS, ADD)


def succeeded(ops: Operations) -> np.ndarray:
    """Whether each operation got an answer from the database: ``ok``, or a CAS that
    failed because its expected value did not match (``error: mismatch``), which is a
    definite answer, not unavailability."""
    ok = ops.type == OK
    errors = ops.history.errors
    if errors:
        mismatch = np.fromiter(
            (j >= 0 and errors.get(int(j)) == "mismatch" for j in ops.complete_index.tolist()),
            dtype=bool,
            count=len(ops),
        )
        ok = ok | ((ops.type == FAIL) & mismatch)
    return ok


def availability(ops: Operations, mask: np.ndarray | None = None) -> float | None:
    """Availability: the fraction of invoked operations that succeeded (see
    :func:`succeeded`), among those selected by ``mask``; ``None`` if none were selected.

    ``fail`` and ``info`` both count against it: a client that timed out did not get
    service.
    """
    selected = np.ones(len(ops), dtype=bool) if mask is None else mask
    total = int(selected.sum())
    if total == 0:
        return None
    return float((succeeded(ops) & selected).sum()) / total


def fault_windows(records: list[dict[str, Any]], end: float) -> list[dict[str, Any]]:
    """Each fault that lasted, with its ``start`` and ``end`` times: from its ``start``
    record to its ``end`` record (or ``end`` if it never ended), in order of start.
    Instant faults (heal, restart) and skipped ones have no window."""
    open_: dict[tuple, dict[str, Any]] = {}
    out = []
    for record in records:
        fault = record.get("fault")
        if fault is None:
            continue
        key = (fault, record.get("instance"))
        if record["event"] == "start":
            window = {
                "fault": fault,
                "kind": record.get("kind"),
                "start": record["time"],
                "end": None,
            }
            if record.get("instance") is not None:
                window["instance"] = record["instance"]
            open_[key] = window
            out.append(window)
        elif record["event"] == "end" and key in open_:
            open_.pop(key)["end"] = record["time"]
    for window in open_.values():
        window["end"] = end
    return out


def fault_intervals(records: list[dict[str, Any]], end: float) -> list[tuple[float, float]]:
    """The intervals during which some fault was in force (see :func:`fault_windows`)."""
    return sorted((w["start"], w["end"]) for w in fault_windows(records, end))


def availability_by_fault(ops: Operations, windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each fault window: its duration and the availability of main-phase operations
    invoked while it was in force (``None`` if none were)."""
    main = ~ops.final
    out = []
    for window in windows:
        during = main & (ops.invoke_time >= window["start"]) & (ops.invoke_time < window["end"])
        row = dict(window)
        row["duration_s"] = round(window["end"] - window["start"], 9)
        row["availability"] = availability(ops, during)
        row["ops"] = int(during.sum())
        out.append(row)
    return out


def _during(times: np.ndarray, intervals: list[tuple[float, float]]) -> np.ndarray:
    mask = np.zeros(len(times), dtype=bool)
    for start, stop in intervals:
        mask |= (times >= start) & (times < stop)
    return mask


def availability_summary(ops: Operations, intervals: list[tuple[float, float]]) -> dict[str, Any]:
    """Availability overall, for reads, for updates (write, cas, add), for operations
    invoked while a fault was in force and outside faults, and by side of a partition:
    ``majority`` (the client's home container exchanges messages both ways with a strict
    majority of the replicas of the operation's shard) and ``minority`` (it does not),
    for operations invoked while a partition was in force."""
    main = ~ops.final
    during = _during(ops.invoke_time, intervals) & main
    return {
        "overall": availability(ops, main),
        "read": availability(ops, main & (ops.f == READ)),
        "write": availability(ops, main & np.isin(ops.f, UPDATES)),
        "during_faults": availability(ops, during),
        "outside_faults": availability(ops, main & ~during),
        "by_side": {
            "majority": availability(ops, main & (ops.side == 1)),
            "minority": availability(ops, main & (ops.side == 2)),
        },
    }


def latency_percentiles(latencies_s: np.ndarray) -> dict[str, float | None]:
    """Latency percentiles in milliseconds (p50, p90, p99, p999) of the given latencies,
    by linear interpolation between order statistics; ``None`` when there are none."""
    keys = ("p50", "p90", "p99", "p999")
    if len(latencies_s) == 0:
        return dict.fromkeys(keys)
    values = np.quantile(latencies_s, [0.5, 0.9, 0.99, 0.999]) * 1000.0
    return {k: round(float(v), 6) for k, v in zip(keys, values, strict=True)}


def latency_summary(ops: Operations) -> dict[str, Any]:
    """Latency of ``ok`` operations of the main phase, from invocation to completion, for
    reads and for updates (write, cas, add)."""
    ok = (ops.type == OK) & ~ops.final
    latency = ops.complete_time - ops.invoke_time
    return {
        "read": latency_percentiles(latency[ok & (ops.f == READ)]),
        "write": latency_percentiles(latency[ok & np.isin(ops.f, UPDATES)]),
    }


def outcome_counts(ops: Operations, mask: np.ndarray) -> dict[str, int]:
    """Counts of operations (``total``, ``ok``, ``fail``, ``info``) among ``mask``."""
    return {
        "total": int(mask.sum()),
        "ok": int((mask & (ops.type == OK)).sum()),
        "fail": int((mask & (ops.type == FAIL)).sum()),
        "info": int((mask & (ops.type == INFO)).sum()),
    }


def durability(ops: Operations, workload: str) -> dict[str, Any]:
    """Acknowledged and lost writes.

    ``acknowledged_writes``: updates (write, cas, add) of the main phase that completed
    ``ok``. ``lost_writes`` (set workload only, else ``None``): acknowledged adds whose
    element is absent from every ``ok`` final read of its key; ``lost`` lists them as
    ``[key, element]``. ``unchecked_writes``: acknowledged adds to keys that no final read
    returned, so that whether they were lost is unknown.
    """
    main = ~ops.final
    acked = main & (ops.type == OK) & np.isin(ops.f, UPDATES)
    out: dict[str, Any] = {
        "acknowledged_writes": int(acked.sum()),
        "lost_writes": None,
        "unchecked_writes": None,
        "lost": None,
    }
    if workload != "set":
        return out
    seen: dict[int, set] = {}
    final_ok = np.flatnonzero(ops.final & (ops.type == OK) & (ops.f == READ))
    for i in final_ok.tolist():
        seen.setdefault(int(ops.key[i]), set()).update(ops.output(i) or ())
    lost, unchecked = [], 0
    for i in np.flatnonzero(acked & (ops.f == ADD)).tolist():
        key = int(ops.key[i])
        if key not in seen:
            unchecked += 1
        elif ops.value(i) not in seen[key]:
            lost.append([ops.key_name(i), ops.value(i)])
    out.update(lost_writes=len(lost), unchecked_writes=unchecked, lost=sorted(lost))
    return out


def timeseries(ops: Operations, window_s: float = 1.0) -> list[dict[str, Any]]:
    """Per window of ``window_s`` seconds (by invocation time, main phase only): counts of
    ``ok``, ``fail`` and ``info`` operations, overall and by side of a partition."""
    main = ~ops.final
    if not main.any():
        return []
    times = ops.invoke_time[main]
    types = ops.type[main]
    sides = ops.side[main]
    windows = np.floor(times / window_s).astype(np.int64)
    n = int(windows.max()) + 1
    rows = []
    columns = {}
    for prefix, side_mask in (("", None), ("majority_", sides == 1), ("minority_", sides == 2)):
        for name, code in (("ok", OK), ("fail", FAIL), ("info", INFO)):
            mask = types == code
            if side_mask is not None:
                mask &= side_mask
            columns[prefix + name] = np.bincount(windows[mask], minlength=n)
    for w in range(n):
        row: dict[str, Any] = {"t_s": round(w * window_s, 9)}
        for name, counts in columns.items():
            row[name] = int(counts[w])
        rows.append(row)
    return rows


def clean(value: Any) -> Any:
    """Replace NaN and infinities by ``None`` throughout a summary."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value
