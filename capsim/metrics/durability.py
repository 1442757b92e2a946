"""Durability: acknowledged writes, and those the final reads show lost."""

from __future__ import annotations

from typing import Any

import numpy as np

from capsim.history import ADD, OK, READ, Operations
from capsim.metrics.availability import UPDATES

__all__ = ["durability", "LOST_LISTED"]

#: Lost writes listed in a run's summary; the rest are counted, and written to a file.
LOST_LISTED = 20


def durability(ops: Operations, workload: str) -> dict[str, Any]:
    """Acknowledged and lost writes.

    ``acknowledged_writes``: updates (write, cas, add) of the main phase that completed
    ``ok``. ``lost_writes`` (set workload only, else ``None``): acknowledged adds whose
    element is absent from every ``ok`` final read of its key that began after the add was
    acknowledged; ``lost`` lists them as ``[key, element]`` in key order (a run's summary
    keeps the first ``LOST_LISTED``, and ``--out`` writes every one to
    ``lost_writes.jsonl``). ``unchecked_writes``: acknowledged adds that no ``ok`` final
    read of their key began after (none returned, or the add was acknowledged after they
    began: with a timeout longer than ``settle``), so that whether they were lost is
    unknown.
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
    # Per key, its ok final reads as (invocation time, elements), latest first.
    finals: dict[int, list[tuple[float, set]]] = {}
    final_ok = np.flatnonzero(ops.final & (ops.type == OK) & (ops.f == READ))
    for i in final_ok.tolist():
        finals.setdefault(int(ops.key[i]), []).append(
            (float(ops.invoke_time[i]), set(ops.output(i) or ()))
        )
    lost, unchecked = [], 0
    for i in np.flatnonzero(acked & (ops.f == ADD)).tolist():
        acked_at = float(ops.complete_time[i])
        # Only final reads that began after the add was acknowledged must show it.
        later = [
            elements for began, elements in finals.get(int(ops.key[i]), ()) if began > acked_at
        ]
        if not later:
            unchecked += 1
        elif not any(ops.value(i) in elements for elements in later):
            lost.append([ops.key_name(i), ops.value(i)])
    out.update(lost_writes=len(lost), unchecked_writes=unchecked, lost=sorted(lost))
    return out
