"""Named invariants of replicated systems, checked on a finished run.

Each invariant reads what a run recorded (its history, its summary, the changes of every
replica's role and term, samples of every replica's applied log) and gives a
:class:`Verdict`: ``held``, ``failed`` with the smallest piece of evidence that shows it,
or ``unknown`` when the run does not say (a policy without roles, a check that ran out
of budget). Never a guess.

* ``linearizable``: the history could have come from one copy of each key, each
  operation taking effect at one instant between its invocation and completion (the
  checker, :mod:`capsim.checkers`). Evidence: the checker's witness, a short failing
  sub-history with the container that answered each operation.
* ``no-lost-writes``: every acknowledged update survives. For the ``set`` workload, an
  acknowledged add whose element is absent from every ``ok`` final read of its key that
  began after the add was acknowledged is lost. For registers, an acknowledged write (or
  CAS) is lost when a final read that began after it was acknowledged (after the final
  heal and settle, when every acknowledged write must be visible) is stale with respect
  to it: the write was invoked after the write whose value the final read
  returned had completed (after every sibling's, for a read that returned several), so
  it must have superseded that value, and the final read shows it did not. Evidence: the
  write and the final read, each with the container that answered it.
* ``convergence``: after the final heal every replica of every key holds the same value
  (through ``Node.value_of``). Evidence: a key and what each replica holds.
* ``single-leader``: at most one replica of a shard is leader (a role named ``leader``,
  ``primary`` or ``head``) in any one term, over the whole run, as every change of
  ``Node.role`` and ``Node.term`` recorded it. Evidence: the shard, the term and the
  containers, each with the time it took the role.
* ``state-machine-safety``: no two replicas apply different commands at the same log
  position (through ``Node.applied_log()``, sampled at changes of role, at most once a
  simulated second per replica, before every crash, and at the end of the main phase and
  of the run). Evidence: the shard, the position, and the two commands with the
  container and time each was seen applied.

A user's own invariant is a function of the run (a :class:`capsim.runner.Result`)
returning ``None`` when it holds, or evidence (a dict, or a message) when it fails;
wrap it in :class:`Invariant` to give it a name, or pass it bare (its ``__name__`` is
used). :func:`check` takes any mix of names and functions.

A policy claims invariants through ``Node.claims(params)``; by default a run is checked
against those, and its summary's ``invariants`` section lists which held, which failed
(with the evidence) and which the run could not decide.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from capsim.errors import CapsimError
from capsim.history import ADD, CAS, FAIL, FUNCTIONS, OK, READ, TYPES, WRITE, Operations

__all__ = [
    "INVARIANTS",
    "LEADER_ROLES",
    "Invariant",
    "Verdict",
    "check",
    "summarize",
    "resolve",
]

#: Roles that count as the leader of a shard for ``single-leader``.
LEADER_ROLES = ("leader", "primary", "head")

#: Lost writes listed as evidence (the rest are counted).
_LISTED = 5


@dataclass(frozen=True)
class Verdict:
    """One invariant's answer: ``status`` is ``held``, ``failed`` or ``unknown``."""

    name: str
    status: str
    evidence: dict[str, Any] | None = None
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "message": self.message}
        if self.evidence is not None:
            out["evidence"] = self.evidence
        return out


@dataclass(frozen=True)
class Invariant:
    """A named invariant: ``fn(result)`` returns ``None`` if it held, else evidence (a
    dict or a message); it may return a :class:`Verdict` to say ``unknown``."""

    name: str
    fn: Callable[[Any], Any]

    def __call__(self, result: Any) -> Verdict:
        try:
            found = self.fn(result)
        except Exception as exc:  # a user's predicate failing is its verdict, not ours
            return Verdict(self.name, "unknown", {"error": repr(exc)}, f"the check raised {exc!r}")
        if isinstance(found, Verdict):
            return found
        if found is None or found is True:
            return Verdict(self.name, "held", None, "held")
        if found is False:
            return Verdict(self.name, "failed", None, "the predicate returned False")
        evidence = found if isinstance(found, dict) else {"detail": str(found)}
        return Verdict(self.name, "failed", evidence, str(found)[:200])


class UnknownInvariant(CapsimError):
    """An invariant name that is not one of :data:`INVARIANTS`."""


# --- the built-in invariants -------------------------------------------------------------


def _linearizable(result: Any) -> Verdict:
    name = "linearizable"
    consistency = result.summary.get("consistency") or {}
    verdict = consistency.get("linearizable")
    if verdict is True:
        return Verdict(name, "held", None, "every key's history is linearizable")
    if verdict is None:
        why = consistency.get("check", "skipped")
        return Verdict(name, "unknown", None, f"the linearizability check was {why}")
    evidence = {
        "failing_keys": consistency.get("failing_keys"),
        "witness": consistency.get("witness"),
    }
    keys = consistency.get("failing_keys") or []
    return Verdict(
        name,
        "failed",
        evidence,
        f"not linearizable: {consistency.get('violations', len(keys))} key(s), "
        f"first {keys[0] if keys else '?'}",
    )


def _op(ops: Operations, i: int) -> dict[str, Any]:
    """One operation as evidence shows it."""
    out: dict[str, Any] = {
        "process": int(ops.process[i]),
        "f": FUNCTIONS[int(ops.f[i])],
        "key": ops.key_name(i),
        "value": ops.value(i),
        "type": TYPES[int(ops.type[i])],
        "invoke": float(ops.invoke_time[i]),
        "complete": None if math.isinf(ops.complete_time[i]) else float(ops.complete_time[i]),
        "node": ops.answered_by(i),
    }
    if int(ops.f[i]) == READ:
        out["output"] = ops.output(i)
    if bool(ops.final[i]):
        out["final"] = True
    return out


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _no_lost_writes(result: Any) -> Verdict:
    name = "no-lost-writes"
    ops = result.history.operations()
    final_reads = np.flatnonzero(ops.final & (ops.type == OK) & (ops.f == READ))
    if not len(final_reads):
        return Verdict(name, "unknown", None, "no final read succeeded (final_reads off?)")
    acked = np.flatnonzero((~ops.final) & (ops.type == OK) & np.isin(ops.f, (WRITE, CAS, ADD)))
    kind = result.scenario.workload.data_kind
    lost: list[tuple[int, int]] = []  # (write, final read that shows it lost)
    if kind == "set":
        finals: dict[int, list[int]] = {}
        for i in final_reads.tolist():
            finals.setdefault(int(ops.key[i]), []).append(i)
        for i in acked.tolist():
            if int(ops.f[i]) != ADD:
                continue
            # Lost if absent from every final read that began after its acknowledgement.
            later = [
                r
                for r in finals.get(int(ops.key[i]), ())
                if ops.invoke_time[r] > ops.complete_time[i]
            ]
            if later and not any(ops.value(i) in (ops.output(r) or ()) for r in later):
                lost.append((i, later[0]))
    else:
        lost = _lost_register_writes(ops, final_reads, acked)
    if not lost:
        return Verdict(name, "held", None, f"{len(acked)} acknowledged update(s), none lost")
    lost.sort(key=lambda pair: (ops.complete_time[pair[0]], pair[0]))
    evidence = {
        "lost": len(lost),
        "examples": [{"write": _op(ops, w), "final_read": _op(ops, r)} for w, r in lost[:_LISTED]],
    }
    w, r = lost[0]
    return Verdict(
        name,
        "failed",
        evidence,
        f"{len(lost)} acknowledged update(s) lost: first {ops.key_name(w)}={ops.value(w)!r} "
        f"acknowledged at {ops.complete_time[w]:.6f} s by {ops.answered_by(w)}, missing "
        f"from the final read through {ops.answered_by(r)}",
    )


def _lost_register_writes(
    ops: Operations, final_reads: np.ndarray, acked: np.ndarray
) -> list[tuple[int, int]]:
    """(write, final read) pairs: acknowledged writes invoked after every source of a
    final read's value had completed (see the module docstring)."""
    sources: dict[tuple[int, Any], float] = {}  # (key, value written) -> completion
    writes = np.flatnonzero(np.isin(ops.f, (WRITE, CAS)) & (ops.type != FAIL))
    for i in writes.tolist():
        value = ops.value(i)
        written = value[1] if int(ops.f[i]) == CAS else value
        done = ops.complete_time[i] if int(ops.type[i]) == OK else math.inf
        sources[(int(ops.key[i]), _hashable(written))] = float(done)
    by_key: dict[int, list[int]] = {}
    for i in acked.tolist():
        if int(ops.f[i]) in (WRITE, CAS):
            by_key.setdefault(int(ops.key[i]), []).append(i)
    lost: dict[int, int] = {}
    for r in final_reads.tolist():
        key = int(ops.key[r])
        output = ops.output(r)
        newest = -math.inf
        for value in output if isinstance(output, list) else (output,):
            if value is None:
                continue
            done = sources.get((key, _hashable(value)))
            if done is None:
                newest = math.inf  # a value no write wrote: the checker's business
                break
            newest = max(newest, done)
        for w in by_key.get(key, ()):
            # Only a final read that began after the write was acknowledged must show it.
            if (
                ops.invoke_time[w] > newest
                and ops.complete_time[w] < ops.invoke_time[r]
                and w not in lost
            ):
                lost[w] = r
    return sorted(lost.items())


def _convergence(result: Any) -> Verdict:
    name = "convergence"
    final = result.summary.get("final") or {}
    divergent = final.get("divergent_keys")
    if divergent is None:
        return Verdict(
            name, "unknown", None, "replicas cannot be compared (no value_of, or one is down)"
        )
    if divergent == 0:
        return Verdict(name, "held", None, "every replica of every key agrees at the end")
    example = getattr(result, "divergent", None)
    evidence = {"divergent_keys": divergent, "example": example}
    shown = f": {example['key']} is {example['values']}" if example else ""
    return Verdict(name, "failed", evidence, f"{divergent} key(s) differ between replicas{shown}")


def _single_leader(result: Any) -> Verdict:
    name = "single-leader"
    roles = getattr(result, "roles", None) or []
    leaders: dict[tuple[Any, Any], dict[str, float]] = {}
    any_role = False
    for time_s, node, key, role, term in roles:
        if role is not None:
            any_role = True
        if role not in LEADER_ROLES or term is None:
            continue
        held = leaders.setdefault((key, term), {})
        if node not in held:
            held[node] = time_s
            if len(held) > 1:
                ordered = sorted(held.items(), key=lambda item: (item[1], item[0]))
                return Verdict(
                    name,
                    "failed",
                    {
                        "shard": key,
                        "term": term,
                        "leaders": [{"node": n, "since": t} for n, t in ordered],
                    },
                    f"shard {key}, term {term}: {ordered[0][0]} and {ordered[1][0]} were "
                    f"both {role} (from {ordered[0][1]:.6f} s and {ordered[1][1]:.6f} s)",
                )
    if not any_role:
        return Verdict(name, "unknown", None, "the policy reports no roles")
    return Verdict(name, "held", None, f"{len(leaders)} (shard, term) pair(s), one leader each")


def _state_machine_safety(result: Any) -> Verdict:
    name = "state-machine-safety"
    safety = getattr(result, "safety", None)
    if not safety or not safety.get("samples"):
        return Verdict(name, "unknown", None, "the policy reports no applied log")
    conflict = safety.get("conflict")
    if conflict is None:
        return Verdict(
            name, "held", None, f"{safety['samples']} samples of applied logs, all prefixes"
        )
    a, b = conflict["first"], conflict["then"]
    return Verdict(
        name,
        "failed",
        conflict,
        f"shard {conflict['shard']}, position {conflict['index']}: {a['node']} applied "
        f"{a['command']!r} (seen at {a['time']:.6f} s), {b['node']} applied "
        f"{b['command']!r} (seen at {b['time']:.6f} s)",
    )


#: The built-in invariants by name.
INVARIANTS: dict[str, Invariant] = {
    "linearizable": Invariant("linearizable", _linearizable),
    "no-lost-writes": Invariant("no-lost-writes", _no_lost_writes),
    "convergence": Invariant("convergence", _convergence),
    "single-leader": Invariant("single-leader", _single_leader),
    "state-machine-safety": Invariant("state-machine-safety", _state_machine_safety),
}


def resolve(items: Iterable[str | Invariant | Callable[[Any], Any]]) -> list[Invariant]:
    """Names, :class:`Invariant` objects and bare functions, as invariants."""
    out = []
    for item in items:
        if isinstance(item, Invariant):
            out.append(item)
        elif isinstance(item, str):
            if item not in INVARIANTS:
                known = ", ".join(INVARIANTS)
                raise UnknownInvariant(f"unknown invariant {item!r}; known: {known}")
            out.append(INVARIANTS[item])
        elif callable(item):
            out.append(Invariant(getattr(item, "__name__", repr(item)), item))
        else:
            raise UnknownInvariant(f"not an invariant: {item!r}")
    return out


def check(result: Any, names: Iterable[Any] | None = None) -> list[Verdict]:
    """Check ``result`` (a finished run) against ``names`` (default: the invariants its
    policy claims, ``result.claims``); one :class:`Verdict` each, in order."""
    if names is None:
        names = getattr(result, "claims", ()) or ()
    return [invariant(result) for invariant in resolve(names)]


def summarize(verdicts: list[Verdict]) -> dict[str, Any]:
    """The summary's ``invariants`` section: which were checked, held, failed and could
    not be decided, with the evidence of each failure."""
    return {
        "checked": [v.name for v in verdicts],
        "held": [v.name for v in verdicts if v.status == "held"],
        "failed": [v.name for v in verdicts if v.status == "failed"],
        "unknown": [v.name for v in verdicts if v.status == "unknown"],
        "evidence": {
            v.name: {"message": v.message, **({"detail": v.evidence} if v.evidence else {})}
            for v in verdicts
            if v.status == "failed"
        },
    }
