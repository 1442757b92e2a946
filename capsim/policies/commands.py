"""The workload's commands as a state machine: what a replica applies from its log.

A client's operation becomes a command ``(op, key, value)``: ``write`` sets ``key`` to
``value``; ``add`` puts the element ``value`` in the set at ``key``; ``cas`` with value
``(expected, new)`` sets ``key`` to ``new`` if it holds ``expected`` (a compare that fails
changes nothing: the client hears ``mismatch``). The log-based built-ins (single-primary,
primary-backup, raft, chain) apply their committed entries with :func:`apply_entries` or
:func:`apply_command` and answer reads with :func:`read_value`; a protocol of your own may
do the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

__all__ = ["apply_command", "apply_entries", "read_value", "COMMAND"]

#: A log entry's command, ``(op, key, value)``, for an entry that begins with those three
#: fields (``applied_log`` maps it over the applied entries).
COMMAND = itemgetter(0, 1, 2)


def apply_command(
    data: dict[str, Any], version: dict[str, int], index: int, op: str, key: str, value: Any
) -> bool:
    """Apply command ``(op, key, value)``, the log's entry ``index``, to ``data``; record
    ``index + 1`` as ``key``'s version when it changed something. Returns False only for a
    compare-and-set that found another value (and so changed nothing); any other ``op``
    (a policy's own no-op) changes nothing and returns True."""
    if op == "write":
        data[key] = value
    elif op == "add":
        current = data.get(key)
        if current is None:
            current = data[key] = set()
        current.add(value)
    elif op == "cas":
        expected, new = value
        if data.get(key) != expected:
            return False
        data[key] = new
    else:
        return True
    version[key] = index + 1
    return True


def apply_entries(
    entries: Sequence[Any],
    first: int,
    stop: int,
    data: dict[str, Any],
    version: dict[str, int],
    outcomes: dict[int, bool],
) -> None:
    """Apply log entries ``first`` to ``stop - 1`` (each ``(op, key, value, ...)``) with
    :func:`apply_command`, noting in ``outcomes`` whether each CAS compared equal."""
    for index, entry in enumerate(entries[first:stop], first):
        op = entry[0]
        matched = apply_command(data, version, index, op, entry[1], entry[2])
        if op == "cas":
            outcomes[index] = matched


def read_value(data: dict[str, Any], key: str) -> Any:
    """What a read of ``key`` returns: its value, a set as its sorted elements, ``None`` if
    never written."""
    value = data.get(key)
    return sorted(value) if isinstance(value, set) else value
