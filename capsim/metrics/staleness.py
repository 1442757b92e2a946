"""Staleness after Probabilistically Bounded Staleness (Bailis et al., VLDB 2012), black-box.

Defined from the history alone, so that a linearizable system never scores a stale read.
Registers: values are unique per key, so an ``ok`` read names the write it returned
(``None`` names the initial value, written before time began). A write ``w'`` is
*definitely newer* than the write ``w`` a read returned if ``w'`` was invoked after ``w``
completed and ``w'`` was acknowledged (``ok``) before the read was invoked: no
linearization can then put the read after ``w'``. Writes are ``write`` and ``cas``
operations that took or may have taken effect (``ok`` or ``info``); a write that never
completed is never complete, so nothing is definitely newer than it. A read returning
several values (siblings) is stale with respect to a write only when every one of them
is; :func:`read_staleness` says what that means for every output. Sets: a read is
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
    pair, ``pair_read`` the read and ``pair_own`` whether the write was the reading
    client's own (the stale pairs as :func:`read_staleness` defines them)."""

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
    # Registers: the latest invocation and the latest completion among the source writes
    # of each read's siblings (-inf for the initial value, a completion of +inf for an
    # ``info`` write); used by the session guarantees.
    source_invoke: np.ndarray | None = None
    source_complete: np.ndarray | None = None


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def read_staleness(ops: Operations, workload: str = "register") -> ReadStaleness:
    """k- and t-staleness of every ``ok`` main-phase read, and its stale (write, read) pairs.

    A register read is *stale with respect to* a write ``w'`` when ``w'`` is definitely
    newer than the write the read returned: ``w'`` was acknowledged before the read was
    invoked, and invoked after that write completed. A read that returns several values
    (siblings, as leaderless stores return under concurrent writes) is stale with respect
    to ``w'`` exactly when every sibling is, that is when ``w'`` is definitely newer than
    every sibling's source write. Those conditions differ only in how late ``w'`` was
    invoked, so they all hold exactly when ``w'`` was invoked after the last of the
    sources to complete had completed: the read is stale with respect to the acknowledged
    writes of its key invoked after that completion and acknowledged before the read was
    invoked. (The initial value, ``None``, completed before time began; an ``info`` write
    never completes, so a read with such a sibling is stale with respect to nothing; a
    read of no value at all, an empty list, is stale with respect to every write
    acknowledged before it, as the initial value is.) A set read is stale with respect to
    every add acknowledged before it was invoked whose element it lacks. Every output
    counts those writes, and only those:

    * ``k``: the number of them (with siblings, also the smallest ``k`` of any sibling);
    * ``t``: the read's invocation time minus the earliest acknowledgement among them,
      in seconds (0 when there are none);
    * the stale pairs (``pair_t``, ``pair_read``, ``pair_own``): one (write, read) pair
      per such write. The t-visibility curve counts every other pair as fresh, and a read
      is a read-your-writes violation when one of its stale pairs is its own client's
      write. So a read with ``k = 0`` has no stale pair and is never a read-your-writes
      violation, whatever stale siblings it returned alongside a fresh one.

    Monotonic reads apply the same rule to the values an earlier read showed (see
    :func:`capsim.metrics.sessions.session_violations`).
    """
    if workload == "set":
        return _set_staleness(ops)
    return _register_staleness(ops)


def _register_staleness(ops: Operations) -> ReadStaleness:
    write_mask = np.isin(ops.f, (WRITE, CAS)) & np.isin(ops.type, (OK, INFO))
    widx = np.flatnonzero(write_mask)
    done = np.where(ops.type == OK, ops.complete_time, math.inf)  # info: never complete
    # (key, value written) -> (completion, invocation) of the write that wrote it.
    source: dict[tuple[int, Any], tuple[float, float]] = {}
    for i, key, f, c, v in zip(
        widx.tolist(),
        ops.key[widx].tolist(),
        ops.f[widx].tolist(),
        done[widx].tolist(),
        ops.invoke_time[widx].tolist(),
        strict=True,
    ):
        value = ops.value(i)
        written = value[1] if f == CAS else value
        source[(key, _hashable(written))] = (c, v)
    reads = np.flatnonzero((~ops.final) & (ops.f == READ) & (ops.type == OK))

    # Per read, the latest completion and the latest invocation among its siblings'
    # sources: the read is stale with respect to writes invoked after the former.
    last_done, last_invoked, known = [], [], []
    for i, key in zip(reads.tolist(), ops.key[reads].tolist(), strict=True):
        output = ops.output(i)
        c = v = -math.inf
        ok = True
        for value in output if isinstance(output, list) else (output,):
            if value is None:
                continue
            found = source.get((key, _hashable(value)))
            if found is None:
                ok = False
                break
            if found[0] > c:
                c = found[0]
            if found[1] > v:
                v = found[1]
        last_done.append(c)
        last_invoked.append(v)
        known.append(ok)
    known_a = np.array(known, dtype=bool)
    reads = reads[known_a]
    threshold = np.array(last_done, dtype=np.float64)[known_a]
    acked = write_mask & (ops.type == OK)
    result = _stale_writes(ops, reads, threshold, acked, int((~known_a).sum()))
    result.source_invoke = np.array(last_invoked, dtype=np.float64)[known_a]
    result.source_complete = threshold
    return result


def _stale_writes(ops, reads, threshold, acked, unknown) -> ReadStaleness:
    """Per read, the acknowledged writes of its key with inv > threshold and ack < r."""
    k = np.zeros(len(reads), dtype=np.int64)
    t = np.zeros(len(reads))
    pair_t, pair_read, pair_own = [], [], []
    key_acks: dict[int, np.ndarray] = {}
    read_key = ops.key[reads]
    for key in np.unique(read_key).tolist():
        writes = np.flatnonzero(acked & (ops.key == key))
        writes = writes[np.argsort(ops.invoke_time[writes], kind="stable")]
        inv = ops.invoke_time[writes]
        ack = ops.complete_time[writes]
        key_acks[key] = np.sort(ack)
        sel = np.flatnonzero(read_key == key)
        rid = reads[sel]
        r = ops.invoke_time[rid]
        lo = np.searchsorted(inv, threshold[sel], side="right")
        hi = np.searchsorted(inv, r, side="left")
        lengths = np.maximum(hi - lo, 0)
        counts = np.zeros(len(sel), dtype=np.int64)
        earliest = np.full(len(sel), math.inf)
        cum = np.cumsum(lengths)
        start = 0
        while start < len(sel):
            # A chunk of reads whose candidate writes number at most _CHUNK_PAIRS.
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
        k[sel] = counts
        t[sel] = np.where(counts > 0, r - earliest, 0.0)
    return ReadStaleness(
        read=reads,
        k=k,
        t=t,
        unknown=unknown,
        pair_t=_cat(pair_t, np.float64),
        pair_read=_cat(pair_read, np.int64),
        pair_own=_cat(pair_own, bool),
        key_acks=key_acks,
        read_key=read_key,
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
        # fsum: exactly rounded whatever the order, so the same on every machine.
        "t_mean_ms": round(math.fsum(s.t.tolist()) / len(s.t) * 1000, 6),
        "t_p99_ms": round(float(np.quantile(s.t, 0.99)) * 1000, 6),
        "reads": int(len(s.read)),
        "unknown_reads": s.unknown,
    }


def t_visibility(
    s: ReadStaleness, edges_ms: tuple[float, ...] = VISIBILITY_EDGES_MS
) -> list[dict[str, Any]]:
    """The t-visibility curve: for ``t`` in each bin ``[lo, hi)`` ms, over every pair of an
    acknowledged write and an ``ok`` main-phase read of the same key invoked ``t`` after
    the write's acknowledgement, the fraction in which the read was not stale with respect
    to the write as :func:`read_staleness` defines it: some value the read returned was
    written by that write, a newer one or a concurrent one (a write that had not completed
    when that write was invoked); for a set, the read holds the add's element. ``p`` is
    ``None`` for a bin with no pairs."""
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
                "p": (1.0 - float(stale[j]) / int(totals[j])) if totals[j] else None,
            }
        )
    return curve
