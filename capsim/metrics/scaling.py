"""Scaling: what each scale action cost, and how many containers ran when.

Pure functions of the history and the fault records (``faults.jsonl``), like the rest of
:mod:`capsim.metrics`: a saved run can be measured again without running anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from capsim.history import Operations
from capsim.metrics.availability import availability, succeeded
from capsim.metrics.staleness import ReadStaleness

__all__ = ["scaling_summary", "container_counts", "with_container_counts"]


def scaling_summary(
    ops: Operations,
    records: list[dict[str, Any]],
    stale: ReadStaleness,
    counts: list[tuple[float, int]],
    *,
    end: float,
    served: np.ndarray | None = None,
) -> dict[str, Any]:
    """The summary's ``scaling`` section.

    ``actions``: one entry per scale action (scheduled, or taken by the autoscaler), in
    order of request: ``requested`` (the time it was asked for), ``serving`` (the time it
    was serving: every added container ready, every removed one stopped, every moved
    shard's membership equal to its new hosts; ``None`` if it never was), ``duration_s``
    (requested to serving), the containers ``added`` and ``removed``, ``shards_moved``
    (shards whose hosts it changed), ``bytes`` and ``messages`` (what was sent between
    containers while it was under way to the replicas it placed or from those it drained:
    each message's ``size``, else its kind's ``message_bytes``; ``None`` if it never
    ended), and, over main-phase operations invoked while it was under way (from its
    request until it was serving, or the end of the main phase), ``ops``,
    ``availability`` and ``stale_read_fraction`` (of ``ok`` reads, as in ``staleness``).
    ``containers``: the count at the start (``initial``), at the end of the run
    (``final``), its ``min`` and ``max`` (containers in the cluster: added and not yet
    removed, up or not)."""
    main = ~ops.final
    served = succeeded(ops) if served is None else served
    actions: list[dict[str, Any]] = []
    open_: dict[tuple, dict[str, Any]] = {}
    for record in records:
        if record.get("kind") != "scale" or record.get("fault") is None:
            continue
        key = (record["fault"], record.get("instance"))
        if record["event"] == "start":
            action = {
                "fault": record["fault"],
                "requested": record["time"],
                "serving": None,
                "duration_s": None,
                "added": record.get("added", []),
                "removed": record.get("removed", []),
                "shards_moved": record.get("shards_moved", 0),
                "bytes": None,
                "messages": None,
            }
            if record.get("instance") is not None:
                action["instance"] = record["instance"]
            open_[key] = action
            actions.append(action)
        elif record["event"] == "end" and key in open_:
            action = open_.pop(key)
            action["serving"] = record["time"]
            action["duration_s"] = record.get("duration_s")
            action["bytes"] = record.get("bytes")
            action["messages"] = record.get("messages")
    for action in actions:
        stop = action["serving"] if action["serving"] is not None else end
        during = main & (ops.invoke_time >= action["requested"]) & (ops.invoke_time < stop)
        action["ops"] = int(during.sum())
        action["availability"] = availability(ops, during, served)
        k = stale.k[during[stale.read]] if len(stale.read) else stale.k
        action["stale_read_fraction"] = float((k > 0).mean()) if len(k) else None
    numbers = [n for _, n in counts]
    return {
        "actions": actions,
        "containers": {
            "initial": numbers[0] if numbers else None,
            "final": numbers[-1] if numbers else None,
            "min": min(numbers) if numbers else None,
            "max": max(numbers) if numbers else None,
        },
    }


def container_counts(counts: list[tuple[float, int]], times: list[float]) -> list[int]:
    """The number of containers in the cluster just before each of ``times`` (ascending),
    from the changes ``counts`` (time, count after the change), in order: a change at
    exactly a time does not count yet."""
    out = []
    i, current = 0, counts[0][1] if counts else 0
    for t in times:
        while i < len(counts) and counts[i][0] < t:
            current = counts[i][1]
            i += 1
        out.append(current)
    return out


def with_container_counts(
    rows: list[dict[str, Any]], counts: list[tuple[float, int]], window_s: float = 1.0
) -> list[dict[str, Any]]:
    """``timeseries`` rows with a ``containers`` column: the containers in the cluster at
    the end of each window (``t_s + window_s``; a change at that very instant belongs to
    the next window)."""
    ends = [row["t_s"] + window_s for row in rows]
    for row, n in zip(rows, container_counts(counts, ends), strict=True):
        row["containers"] = n
    return rows
