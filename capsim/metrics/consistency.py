"""Consistency: whether a run's history is linearizable, by the checker, within a budget."""

from __future__ import annotations

from typing import Any

from capsim.checkers.formats import operations_from_history
from capsim.checkers.linearizability import check_operations
from capsim.history import History, Operations

__all__ = ["consistency", "MODEL_FOR_WORKLOAD", "WITNESS_MAX_STEPS"]

#: Items of a list value kept in the witness (``<field>_items`` gives the full count).
WITNESS_ITEMS = 20
#: The search steps a failing key's check may spend again to shrink its witness.
WITNESS_MAX_STEPS = 1_000_000

#: The checker model for each workload: registers with compare-and-set, grow-only sets.
MODEL_FOR_WORKLOAD = {"register": "cas-register", "set": "set"}


def consistency(
    history: History | Operations,
    workload: str,
    *,
    enabled: bool = True,
    max_ops: int = 100_000,
    max_steps: int = 5_000_000,
) -> dict[str, Any]:
    """Linearizability of the whole history (main phase and final reads), key by key.

    ``linearizable`` is ``false`` if some key's operations cannot be linearized, ``true``
    if every key's can, ``null`` if the check was skipped or ran out of budget first.
    ``check`` is ``complete`` (every key decided), ``unknown`` (the budget of
    ``max_steps`` search steps ran out: a count, never seconds, so the answer does not
    depend on the machine) or ``skipped`` (disabled, or more than ``max_ops``
    operations). ``violations`` counts the keys that are not linearizable and
    ``failing_keys`` names up to ten of them; ``capsim check history.jsonl`` shows a
    minimal failing sub-history. ``witness`` (when some key fails) is the checker's short
    failing sub-history of the first failing key, as ``capsim check`` reports it, each
    operation with the container that answered it (``node``).
    """
    model = MODEL_FOR_WORKLOAD[workload]
    # Operations already paired (a run passes them) or a history to pair.
    total = len(history) if isinstance(history, Operations) else len(history) // 2
    out: dict[str, Any] = {
        "linearizable": None,
        "check": "skipped",
        "violations": None,
        "model": model,
        "steps": 0,
        "failing_keys": [],
    }
    if not enabled:
        out["reason"] = "disabled in the scenario (check.linearizable: false)"
        return out
    if total > max_ops:
        out["reason"] = f"{total} operations exceed check.max_ops ({max_ops})"
        return out
    by_key: dict[Any, list] = {}
    for op in operations_from_history(history):
        by_key.setdefault(op.key, []).append(op)
    failing, undecided, steps = [], 0, 0
    for key in sorted(by_key, key=str):
        remaining = max_steps - steps
        if remaining <= 0:
            undecided += 1
            continue
        result = check_operations(
            by_key[key], model, None, max_steps=remaining, shrink_violation=False
        )
        steps += result.steps
        if result.verdict == "not-linearizable":
            failing.append(key)
        elif result.verdict == "unknown":
            undecided += 1
    out["steps"] = steps
    out["violations"] = len(failing)
    out["failing_keys"] = [str(k) for k in failing[:10]]
    if failing:
        out["witness"] = _witness(history, by_key[failing[0]], model)
    out["check"] = "unknown" if undecided else "complete"
    if failing:
        out["linearizable"] = False
    elif not undecided:
        out["linearizable"] = True
    return out


def _witness(history: History | Operations, key_ops: list, model: str) -> dict[str, Any] | None:
    """The shrunk violation of one failing key, each operation with its answering node."""
    result = check_operations(key_ops, model, None, max_steps=WITNESS_MAX_STEPS)
    violation = result.violation
    if violation is None:
        return None
    table = history if isinstance(history, Operations) else history.operations()
    names = table.history.nodes.names
    answered = {}
    for i in range(len(table)):
        j = table.complete_index[i]
        node = table.history.node[j] if j >= 0 else table.history.node[table.invoke_index[i]]
        answered[(int(table.process[i]), float(table.invoke_time[i]))] = names[node]
    for op in violation["ops"]:
        op["node"] = answered.get((op["process"], op["invoke_time"]))
        for field in ("value", "output"):
            # A set read can hold the whole history's elements: keep the summary small.
            value = op[field]
            if isinstance(value, list) and len(value) > WITNESS_ITEMS:
                op[field] = value[:WITNESS_ITEMS]
                op[f"{field}_items"] = len(value)
    return violation
