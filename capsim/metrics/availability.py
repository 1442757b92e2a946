"""Availability: who got served, when, where, and how fast service came back."""

from __future__ import annotations

from typing import Any

import numpy as np

from capsim.history import ADD, CAS, FAIL, INFO, OK, READ, WRITE, Operations

__all__ = [
    "UPDATES",
    "succeeded",
    "availability",
    "availability_summary",
    "fault_windows",
    "fault_intervals",
    "availability_by_fault",
    "recovery_time",
    "outcome_counts",
    "timeseries",
]

UPDATES = (WRITE, CAS, ADD)


def succeeded(ops: Operations) -> np.ndarray:
    """Whether each operation got an answer from the database: ``ok``, or a CAS that
    failed because its expected value did not match (``error: mismatch``), which is a
    definite answer, not unavailability."""
    ok = ops.type == OK
    mismatched = [i for i, e in ops.history.errors.items() if e == "mismatch"]
    if mismatched:
        event_mismatch = np.zeros(len(ops.history), dtype=bool)
        event_mismatch[mismatched] = True
        done = ops.complete_index >= 0
        mismatch = np.zeros(len(ops), dtype=bool)
        mismatch[done] = event_mismatch[ops.complete_index[done]]
        ok = ok | ((ops.type == FAIL) & mismatch)
    return ok


def availability(
    ops: Operations, mask: np.ndarray | None = None, served: np.ndarray | None = None
) -> float | None:
    """Availability: the fraction of invoked operations that succeeded (see
    :func:`succeeded`), among those selected by ``mask``; ``None`` if none were selected.

    ``fail`` and ``info`` both count against it: a client that timed out did not get
    service.
    """
    selected = np.ones(len(ops), dtype=bool) if mask is None else mask
    total = int(selected.sum())
    if total == 0:
        return None
    served = succeeded(ops) if served is None else served
    return float((served & selected).sum()) / total


def _during(times: np.ndarray, intervals: list[tuple[float, float]]) -> np.ndarray:
    mask = np.zeros(len(times), dtype=bool)
    for start, stop in intervals:
        mask |= (times >= start) & (times < stop)
    return mask


def availability_summary(
    ops: Operations, intervals: list[tuple[float, float]], served: np.ndarray | None = None
) -> dict[str, Any]:
    """Availability overall, for reads, for updates (write, cas, add), for operations
    invoked while a fault was in force and outside faults, by side of a partition
    (``majority``: the client's home container exchanges messages both ways with a strict
    majority of the replicas of the operation's shard; ``minority``: it does not; only
    operations invoked while a partition was in force), by shard and by client zone."""
    main = ~ops.final
    served = succeeded(ops) if served is None else served
    during = _during(ops.invoke_time, intervals) & main
    history = ops.history
    shards = sorted(set(ops.shard[main].tolist()))
    zones = sorted(set(ops.zone[main].tolist()))
    return {
        "overall": availability(ops, main, served),
        "read": availability(ops, main & (ops.f == READ), served),
        "write": availability(ops, main & np.isin(ops.f, UPDATES), served),
        "during_faults": availability(ops, during, served),
        "outside_faults": availability(ops, main & ~during, served),
        "by_side": {
            "majority": availability(ops, main & (ops.side == 1), served),
            "minority": availability(ops, main & (ops.side == 2), served),
        },
        "by_shard": {str(s): availability(ops, main & (ops.shard == s), served) for s in shards},
        "by_zone": {
            history.zones.names[z]: availability(ops, main & (ops.zone == z), served) for z in zones
        },
    }


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


def recovery_time(
    ops: Operations,
    after: float,
    *,
    window_s: float = 1.0,
    threshold: float = 0.99,
    served: np.ndarray | None = None,
    timeline: tuple[np.ndarray, np.ndarray] | None = None,
) -> float | None:
    """Time to recover after ``after`` (a fault's end): the smallest ``d >= 0`` such that
    the main-phase operations invoked in ``[after + d, after + d + window_s)`` have
    availability of at least ``threshold``, with ``d`` taken at operation invocation
    times. ``None`` if it never recovers within the history (or nothing was invoked).

    ``timeline`` (from :func:`_timeline`) spares recomputing the sorted invocation times
    when asking about many faults."""
    times, cumulative = _timeline(ops, served) if timeline is None else timeline
    start = int(np.searchsorted(times, after, side="left"))
    if start >= len(times):
        return None
    candidates = np.arange(start, len(times))
    stops = np.searchsorted(times, times[candidates] + window_s, side="left")
    counts = stops - candidates
    rates = (cumulative[stops] - cumulative[candidates]) / np.maximum(counts, 1)
    # A window cut short by the end of the history proves nothing unless it is full.
    full = times[candidates] + window_s <= times[-1] + 1e-12
    hits = np.flatnonzero((rates >= threshold) & (full | (candidates == start)))
    if len(hits) == 0:
        return None
    return round(max(0.0, float(times[candidates[hits[0]]] - after)), 9)


def _timeline(ops: Operations, served: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Main-phase invocation times in order, and the running count of those served."""
    main = ~ops.final
    times = ops.invoke_time[main]
    order = np.argsort(times, kind="stable")
    good = (succeeded(ops) if served is None else served)[main][order]
    return times[order], np.concatenate([[0], np.cumsum(good)])


def availability_by_fault(
    ops: Operations, windows: list[dict[str, Any]], served: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """For each fault window: its duration, the availability of main-phase operations
    invoked while it was in force (``None`` if none were) and ``recovery_s``, the time to
    recover after it ended (see :func:`recovery_time`)."""
    main = ~ops.final
    served = succeeded(ops) if served is None else served
    timeline = _timeline(ops, served)
    out = []
    for window in windows:
        during = main & (ops.invoke_time >= window["start"]) & (ops.invoke_time < window["end"])
        row = dict(window)
        row["duration_s"] = round(window["end"] - window["start"], 9)
        row["availability"] = availability(ops, during, served)
        row["ops"] = int(during.sum())
        row["recovery_s"] = recovery_time(ops, window["end"], timeline=timeline)
        out.append(row)
    return out


def outcome_counts(ops: Operations, mask: np.ndarray) -> dict[str, int]:
    """Counts of operations (``total``, ``ok``, ``fail``, ``info``) among ``mask``."""
    return {
        "total": int(mask.sum()),
        "ok": int((mask & (ops.type == OK)).sum()),
        "fail": int((mask & (ops.type == FAIL)).sum()),
        "info": int((mask & (ops.type == INFO)).sum()),
    }


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
