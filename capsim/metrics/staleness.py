"""Staleness after Probabilistically Bounded Staleness (Bailis et al., VLDB 2012), black-box.

Defined from the history alone, so that a linearizable system never scores a stale read.
Registers: values are unique per key, so an ``ok`` read names the write it returned
(``None`` names the initial value, written before time began). A write ``w'`` is
*definitely newer* than the write ``w`` a read returned if ``w'`` was invoked after ``w``
completed and ``w'`` was acknowledged (``ok``) before the read was invoked: no
linearization can then put the read after ``w'``. Writes are ``write`` and ``cas``
operations that took or may have taken effect (``ok`` or ``info``); a write that never
completed is never complete, so nothing is definitely newer than it. Sets: a read is
stale with respect to every acknowledged add that was acknowledged before the read was
invoked and whose element the read does not contain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from capsim.history import ADD, CAS, INFO, OK, READ, WRITE, Operations

__all__ = [
    "ReadStaleness",
    "read_staleness",
    "staleness_summary",
    "t_visibility",
    "VISIBILITY_EDGES_MS",
]

#: Bin edges of the t-visibility curve, in milliseconds (the last bin is open-ended).
VISIBILITY_EDGES_MS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)

_CHUNK_PAIRS = 4_000_000  # bounds the memory of the pair enumeration


@dataclass
class ReadStaleness:
    """Per ``ok`` main-phase read (``read``: operation indices): ``k`` and ``t`` (seconds)
    as defined in :func:`read_staleness`; ``unknown`` counts reads whose value no write
    wrote (they are left out); ``pair_t`` holds ``r - ack`` for every stale (write, read)
    pair and ``pair_own`` whether the write was the reading client's own."""

    read: np.ndarray
    k: np.ndarray
    t: np.ndarray
    unknown: int
    pair_t: np.ndarray
    pair_read: np.ndarray
    pair_own: np.ndarray
    # For every read, acknowledgement times of the acknowledged writes of its key (sorted),
    # to count all (write, read) pairs in the visibility curve.
    key_acks: dict[int, np.ndarray]
    read_key: np.ndarray
    read_time: np.ndarray
    # Registers: invocation and completion of the write each read returned (its newest
    # sibling's), -inf for the initial value; used by the session guarantees.
    source_invoke: np.ndarray | None = None
    source_complete: np.ndarray | None = None


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def read_staleness(ops: Operations, workload: str = "register") -> ReadStaleness:
    """k- and t-staleness of every ``ok`` read of the main phase.

    ``k`` is the number of writes definitely newer than the one the read returned (for a
    set read: the acknowledged adds missing from it); ``t`` is the read's invocation time
    minus the earliest acknowledgement among them (0 when there are none). A register
    read that returns several values (siblings) is stale only if every sibling is: its
    ``k`` and ``t`` are those of its least stale sibling.
    """
    if workload == "set":
        return _set_staleness(ops)
    return _register_staleness(ops)


def _register_staleness(ops: Operations) -> ReadStaleness:
    n = len(ops)
    write_mask = np.isin(ops.f, (WRITE, CAS)) & np.isin(ops.type, (OK, INFO))
    widx = np.flatnonzero(write_mask)
    value_of: dict[tuple[int, Any], int] = {}
    for i in widx.tolist():
        value = ops.value(i)
        written = value[1] if ops.f[i] == CAS else value
        value_of[(int(ops.key[i]), _hashable(written))] = i
    reads = np.flatnonzero((~ops.final) & (ops.f == READ) & (ops.type == OK))
    complete = ops.complete_time

    # Each read's candidate sources: one per sibling. c is the source's completion time.
    src_read, src_c, src_inv, unknown_reads = [], [], [], set()
    for i in reads.tolist():
        output = ops.output(i)
        key = int(ops.key[i])
        values = output if isinstance(output, list) else [output]
        for value in values:
            if value is None:
                src_read.append(i)
                src_c.append(-math.inf)
                src_inv.append(-math.inf)
                continue
            j = value_of.get((key, _hashable(value)))
            if j is None:
                unknown_reads.add(i)
                break
            src_read.append(i)
            src_c.append(float(complete[j]) if ops.type[j] == OK else math.inf)
            src_inv.append(float(ops.invoke_time[j]))
    src_read_a = np.array(src_read, dtype=np.int64)
    src_c_a = np.array(src_c, dtype=np.float64)
    src_inv_a = np.array(src_inv, dtype=np.float64)
    if unknown_reads:
        keep = ~np.isin(src_read_a, list(unknown_reads))
        src_read_a, src_c_a, src_inv_a = src_read_a[keep], src_c_a[keep], src_inv_a[keep]
        reads = reads[~np.isin(reads, list(unknown_reads))]

    acked = write_mask & (ops.type == OK)
    result = _enumerate(ops, reads, src_read_a, src_c_a, acked, len(unknown_reads), n)
    # The newest sibling of each read, for monotonic reads.
    position = np.full(n, -1, dtype=np.int64)
    position[reads] = np.arange(len(reads))
    result.source_invoke = np.full(len(reads), -math.inf)
    result.source_complete = np.full(len(reads), -math.inf)
    np.maximum.at(result.source_invoke, position[src_read_a], src_inv_a)
    np.maximum.at(result.source_complete, position[src_read_a], src_c_a)
    return result


def _enumerate(ops, reads, src_read, src_c, acked, unknown, n) -> ReadStaleness:
    """Count, per source, the acknowledged writes of its key with inv > c and ack < r,
    then keep each read's least stale source."""
    position = np.full(n, -1, dtype=np.int64)
    position[reads] = np.arange(len(reads))
    src_k = np.zeros(len(src_read), dtype=np.int64)
    src_t = np.zeros(len(src_read))
    pair_t, pair_read, pair_own = [], [], []
    key_acks: dict[int, np.ndarray] = {}
    src_key = ops.key[src_read]
    for key in np.unique(src_key).tolist():
        writes = np.flatnonzero(acked & (ops.key == key))
        writes = writes[np.argsort(ops.invoke_time[writes], kind="stable")]
        inv = ops.invoke_time[writes]
        ack = ops.complete_time[writes]
        key_acks[key] = np.sort(ack)
        sel = np.flatnonzero(src_key == key)
        rid = src_read[sel]
        r = ops.invoke_time[rid]
        lo = np.searchsorted(inv, src_c[sel], side="right")
        hi = np.searchsorted(inv, r, side="left")
        lengths = np.maximum(hi - lo, 0)
        counts = np.zeros(len(sel), dtype=np.int64)
        earliest = np.full(len(sel), math.inf)
        cum = np.cumsum(lengths)
        start = 0
        while start < len(sel):
            # A chunk of sources whose candidate writes number at most _CHUNK_PAIRS.
            base = cum[start - 1] if start else 0
            stop = max(start + 1, int(np.searchsorted(cum, base + _CHUNK_PAIRS, side="right")))
            seg = lengths[start:stop]
            total = int(seg.sum())
            if total:
                owner = np.repeat(np.arange(start, stop), seg)
                offsets = np.arange(total) - np.repeat(np.cumsum(seg) - seg, seg)
                w = np.repeat(lo[start:stop], seg) + offsets
                stale = ack[w] < r[owner]
                owner, w = owner[stale], w[stale]
                counts += np.bincount(owner, minlength=len(sel))
                np.minimum.at(earliest, owner, ack[w])
                pair_t.append(r[owner] - ack[w])
                pair_read.append(rid[owner])
                pair_own.append(ops.client[writes[w]] == ops.client[rid[owner]])
            start = stop
        src_k[sel] = counts
        src_t[sel] = np.where(counts > 0, r - earliest, 0.0)
    # Siblings: a read is as stale as its least stale source (smallest k, then t).
    pos = position[src_read]
    order = np.lexsort((src_t, src_k, pos))
    first = np.ones(len(order), dtype=bool)
    first[1:] = pos[order][1:] != pos[order][:-1]
    chosen = order[first]
    k = np.zeros(len(reads), dtype=np.int64)
    t = np.zeros(len(reads))
    k[pos[chosen]] = src_k[chosen]
    t[pos[chosen]] = src_t[chosen]
    return ReadStaleness(
        read=reads,
        k=k,
        t=t,
        unknown=unknown,
        pair_t=_cat(pair_t, np.float64),
        pair_read=_cat(pair_read, np.int64),
        pair_own=_cat(pair_own, bool),
        key_acks=key_acks,
        read_key=ops.key[reads],
        read_time=ops.invoke_time[reads],
    )


def _cat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _set_staleness(ops: Operations) -> ReadStaleness:
    reads = np.flatnonzero((~ops.final) & (ops.f == READ) & (ops.type == OK))
    adds = (ops.f == ADD) & (ops.type == OK)
    k = np.zeros(len(reads), dtype=np.int64)
    t = np.zeros(len(reads))
    pair_t, pair_read, pair_own = [], [], []
    key_acks: dict[int, np.ndarray] = {}
    by_key: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for key in np.unique(ops.key[reads]).tolist():
        idx = np.flatnonzero(adds & (ops.key == key))
        order = np.argsort(ops.complete_time[idx], kind="stable")
        idx = idx[order]
        elements = np.array([ops.value(i) for i in idx.tolist()], dtype=object)
        by_key[key] = (idx, ops.complete_time[idx], elements)
        key_acks[key] = ops.complete_time[idx]
    for n, i in enumerate(reads.tolist()):
        idx, ack, elements = by_key[int(ops.key[i])]
        r = ops.invoke_time[i]
        p = int(np.searchsorted(ack, r, side="left"))
        if p == 0:
            continue
        seen = set(ops.output(i) or ())
        missing = np.fromiter((e not in seen for e in elements[:p].tolist()), bool, count=p)
        if missing.any():
            k[n] = int(missing.sum())
            t[n] = r - float(ack[:p][missing].min())
            pair_t.append(r - ack[:p][missing])
            pair_read.append(np.full(k[n], i, dtype=np.int64))
            pair_own.append(ops.client[idx[:p][missing]] == ops.client[i])
    return ReadStaleness(
        read=reads,
        k=k,
        t=t,
        unknown=0,
        pair_t=_cat(pair_t, np.float64),
        pair_read=_cat(pair_read, np.int64),
        pair_own=_cat(pair_own, bool),
        key_acks=key_acks,
        read_key=ops.key[reads],
        read_time=ops.invoke_time[reads],
    )


def staleness_summary(s: ReadStaleness) -> dict[str, Any]:
    """The stale-read fraction (reads with ``k > 0`` among ``ok`` main-phase reads whose
    value is known), the mean and maximum ``k`` and the mean and 99th percentile of ``t``
    in milliseconds, all over those reads (a fresh read counts as ``k = 0``, ``t = 0``);
    ``unknown_reads`` counts reads of values no write wrote."""
    if len(s.read) == 0:
        return {
            "stale_read_fraction": None,
            "k_mean": None,
            "k_max": None,
            "t_mean_ms": None,
            "t_p99_ms": None,
            "reads": 0,
            "unknown_reads": s.unknown,
        }
    return {
        "stale_read_fraction": float((s.k > 0).mean()),
        "k_mean": float(s.k.mean()),
        "k_max": int(s.k.max()),
        "t_mean_ms": round(float(s.t.mean()) * 1000, 6),
        "t_p99_ms": round(float(np.quantile(s.t, 0.99)) * 1000, 6),
        "reads": int(len(s.read)),
        "unknown_reads": s.unknown,
    }


def t_visibility(
    s: ReadStaleness, edges_ms: tuple[float, ...] = VISIBILITY_EDGES_MS
) -> list[dict[str, Any]]:
    """The t-visibility curve: for ``t`` in each bin ``[lo, hi)`` ms, over every pair of an
    acknowledged write and an ``ok`` main-phase read of the same key invoked ``t`` after
    the write's acknowledgement, the fraction in which the read returned that write or a
    definitely newer one (that is, was not stale with respect to it). ``p`` is ``None``
    for a bin with no pairs."""
    edges = np.array(edges_ms, dtype=np.float64) / 1000.0
    bounds = np.concatenate([edges, [math.inf]])
    totals = np.zeros(len(edges), dtype=np.int64)
    for key, acks in s.key_acks.items():
        r = s.read_time[s.read_key == key]
        if len(r) == 0 or len(acks) == 0:
            continue
        # Pairs with t = r - ack in [lo, hi): acks in (r - hi, r - lo].
        below = [np.searchsorted(acks, r - lo, side="right") for lo in bounds[:-1]]
        for j in range(len(edges)):
            upper = below[j]
            lower = (
                np.searchsorted(acks, r - bounds[j + 1], side="right")
                if math.isfinite(bounds[j + 1])
                else np.zeros(len(r), dtype=np.int64)
            )
            totals[j] += int((upper - lower).sum())
    stale = (
        np.histogram(s.pair_t, bins=bounds)[0]
        if len(s.pair_t)
        else np.zeros(len(edges), dtype=np.int64)
    )
    curve = []
    for j in range(len(edges)):
        hi = None if not math.isfinite(bounds[j + 1]) else float(edges_ms[j + 1])
        curve.append(
            {
                "t_ms": float(edges_ms[j]),
                "t_to_ms": hi,
                "pairs": int(totals[j]),
                "p": (1.0 - float(stale[j]) / totals[j]) if totals[j] else None,
            }
        )
    return curve
