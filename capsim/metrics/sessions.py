"""Session guarantees per client: read-your-writes and monotonic reads (Terry et al. 1994).

A client's session is every operation of that client, across its processes, using the
black-box order of :mod:`capsim.metrics.staleness`: a write is *definitely older* than
another if it completed before the other was invoked.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from capsim.history import Operations
from capsim.metrics.staleness import ReadStaleness

__all__ = ["session_violations"]


def session_violations(
    ops: Operations, s: ReadStaleness, workload: str = "register"
) -> dict[str, Any]:
    """Counts of ``ok`` main-phase reads that break a session guarantee.

    ``read_your_writes``: the read is stale, as
    :func:`~capsim.metrics.staleness.read_staleness` defines it (siblings included), with
    respect to one of its own client's acknowledged writes (it missed a write, or for a
    set an add, that the same client had been told succeeded before it read); a read with
    ``k = 0`` never is. ``monotonic_reads``: the read returned something older than an
    earlier read of the same key by the same client (one that completed before this one
    was invoked) had shown. For a register this is the same sibling rule, applied to the
    writes the earlier read returned: the read is a violation when, for one of them, every
    sibling of this read was written by a write that completed before that one was
    invoked; that is, when this read's latest-completing source completed before the
    earlier read's latest-invoked source was invoked. The initial value was invoked and
    completed before time began; an ``info`` write never completes, so a read returning
    one is never a violation. For a set, the earlier read held an element this one lacks.
    ``by_client`` breaks both down.
    """
    clients = ops.history.clients.names
    own = np.unique(s.pair_read[s.pair_own]) if len(s.pair_own) else np.zeros(0, np.int64)
    ryw = np.isin(s.read, own)
    mono = _monotonic_set(ops, s.read) if workload == "set" else _monotonic_register(ops, s)
    by_client: dict[str, dict[str, int]] = {}
    for name, mask in (("read_your_writes", ryw), ("monotonic_reads", mono)):
        for code in ops.client[s.read[mask]].tolist():
            row = by_client.setdefault(clients[code], {"read_your_writes": 0, "monotonic_reads": 0})
            row[name] += 1
    return {
        "read_your_writes": int(ryw.sum()),
        "monotonic_reads": int(mono.sum()),
        "by_client": dict(sorted(by_client.items())),
    }


def _monotonic_register(ops: Operations, s: ReadStaleness) -> np.ndarray:
    reads = s.read
    src_inv, src_done = s.source_invoke, s.source_complete
    violations = np.zeros(len(reads), dtype=bool)
    if len(reads) == 0:
        return violations
    groups = ops.client[reads] * (int(ops.key.max()) + 1) + ops.key[reads]
    for group in np.unique(groups).tolist():
        members = np.flatnonzero(groups == group)
        by_done = members[np.argsort(ops.complete_time[reads[members]], kind="stable")]
        done = ops.complete_time[reads[by_done]]
        newest_seen = np.maximum.accumulate(src_inv[by_done])
        # For each read, the newest source invocation among reads that completed before it.
        before = np.searchsorted(done, ops.invoke_time[reads[members]], side="left")
        bound = np.where(before > 0, newest_seen[np.maximum(before - 1, 0)], -math.inf)
        violations[members] = src_done[members] < bound
    return violations


def _monotonic_set(ops: Operations, reads: np.ndarray) -> np.ndarray:
    violations = np.zeros(len(reads), dtype=bool)
    groups: dict[tuple[int, int], list[int]] = {}
    for j, i in enumerate(reads.tolist()):
        groups.setdefault((int(ops.client[i]), int(ops.key[i])), []).append(j)
    for members in groups.values():
        by_done = sorted(members, key=lambda j: ops.complete_time[reads[j]])
        by_invoke = sorted(members, key=lambda j: ops.invoke_time[reads[j]])
        seen_before: set = set()  # every element shown by reads completed so far
        next_done = 0
        for j in by_invoke:
            invoked = ops.invoke_time[reads[j]]
            while (
                next_done < len(by_done) and ops.complete_time[reads[by_done[next_done]]] < invoked
            ):
                seen_before.update(ops.output(int(reads[by_done[next_done]])) or ())
                next_done += 1
            if not seen_before <= set(ops.output(int(reads[j])) or ()):
                violations[j] = True
    return violations
