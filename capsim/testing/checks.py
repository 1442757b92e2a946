"""Invariant verdicts for the search and the stateful tests, through :mod:`capsim.invariants`.

:func:`verdicts` returns plain dicts (``name``, ``status``, ``message``, ``evidence``) so
that a verdict pastes into JSON. :func:`badness` scores a run that broke nothing by how
close it came (stale reads, lost writes, elections), for :func:`hypothesis.target`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from capsim import invariants as _invariants

__all__ = [
    "verdicts",
    "from_summary",
    "failed",
    "invariant_names",
    "known_invariants",
    "badness",
    "leader_faults",
    "POLICY_ERROR",
]

#: The name under which a run whose policy raised is reported: the protocol crashed.
POLICY_ERROR = "policy-error"


def known_invariants() -> tuple[str, ...]:
    """The names of the built-in invariants."""
    return tuple(_invariants.INVARIANTS)


def invariant_names(names: Sequence[Any] | None) -> list[str]:
    """Display names of an invariant list (names, ``Invariant`` objects or callables)."""
    return [invariant.name for invariant in _invariants.resolve(names or ())]


def verdicts(result: Any, names: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    """Check ``result`` against ``names`` (``None``: the invariants its policy claims) and
    return one dict per invariant: ``name``, ``status`` (``held``, ``failed`` or
    ``unknown``), ``message`` and ``evidence``."""
    found = _invariants.check(result, list(names) if names is not None else None)
    return [
        {"name": v.name, "status": v.status, "message": v.message, "evidence": v.evidence}
        for v in found
    ]


def from_summary(result: Any) -> list[dict[str, Any]]:
    """The verdicts a run's summary already holds (its ``invariants`` section), as
    :func:`verdicts` returns them, without checking again."""
    section = result.summary.get("invariants")
    if not section:
        return verdicts(result)
    evidence = section.get("evidence") or {}
    out = []
    for name in section.get("checked") or ():
        status = (
            "failed"
            if name in section.get("failed", ())
            else "unknown"
            if name in section.get("unknown", ())
            else "held"
        )
        shown = evidence.get(name) or {}
        out.append(
            {
                "name": name,
                "status": status,
                "message": shown.get("message", status),
                "evidence": shown.get("detail"),
            }
        )
    return out


def failed(found: list[dict[str, Any]], only: str | None = None) -> dict[str, Any] | None:
    """The first failed verdict (of invariant ``only``, if given), else None."""
    for verdict in found:
        if verdict["status"] == "failed" and (only is None or verdict["name"] == only):
            return verdict
    return None


def badness(result: Any) -> dict[str, float]:
    """How close a run came to breaking something, for :func:`hypothesis.target`: stale
    reads (``ok`` reads that missed an acknowledged write), lost writes, operations whose
    outcome is unknown, and elections (distinct terms in which some replica was leader or
    primary). Higher is worse; each is a count."""
    summary = result.summary
    staleness = summary.get("staleness") or {}
    stale = (staleness.get("stale_read_fraction") or 0) * (staleness.get("reads") or 0)
    lost = (summary.get("durability") or {}).get("lost_writes") or 0
    info = ((summary.get("ops") or {}).get("info")) or 0
    terms = {(shard, term) for _, _, shard, role, term in result.roles if role in _LEADING}
    return {
        "stale reads": round(stale),
        "lost writes": lost,
        "unknown outcomes": info,
        "elections": len(terms),
    }


_LEADING = ("leader", "primary")


def leader_faults(result: Any) -> int:
    """How many of a run's faults hit the leader or primary as it fired: crashed, paused,
    skewed or degraded it, or cut it off into a minority side of a partition. Counted
    from the resolved targets and groups in the run's fault records and the role changes
    recorded before each (``result.roles``)."""
    changes = sorted(result.roles, key=lambda change: change[0])
    current: dict[tuple, str | None] = {}
    position = 0
    hits = 0
    containers = result.scenario.cluster.containers
    for record in result.faults:
        if record.get("fault") is None or record.get("event") not in ("start", "apply"):
            continue
        while position < len(changes) and changes[position][0] < record["time"]:
            _, cid, key, role, _ = changes[position]
            current[(cid, key)] = role
            position += 1
        leaders = {cid for (cid, _), role in current.items() if role in _LEADING}
        if not leaders:
            continue
        if leaders & set(record.get("targets") or ()):
            hits += 1
            continue
        groups = record.get("groups") or ()
        if any(leaders & set(group) and 2 * len(group) <= containers for group in groups):
            hits += 1
    return hits
