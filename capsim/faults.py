"""The fault vocabulary: what a scenario's ``faults:`` list may hold.

Each fault is a frozen, keyword-only dataclass whose ``repr`` is valid Python, so a fault
schedule found by a search pastes straight into a test. Every fault starts at ``at``
(seconds of simulated time); one with a ``duration`` ends by itself, one without lasts
until a ``heal`` or the final phase.

A **target** names containers, resolved when the fault fires: a container id (``n3``), a
zone name (every container in it), a role (``leader`` or ``primary``: a container whose
replica of ``shard`` reports that role through introspection, the two words meaning the
same), or ``random`` (one container drawn from the nemesis stream). A list of targets is
their union.

Partitions are directional reachability: a partition *cuts* ordered pairs ``(a, b)``,
meaning a message from ``a`` does not reach ``b``. Shapes (after Jepsen's nemeses):

* ``groups``: explicit ``groups`` of containers or zones; containers in different groups
  cannot talk; containers not listed form one more group.
* ``isolate``: the target (default ``random``) is cut off from every other container.
* ``halves``: a random minority of ``N // 2`` containers against the majority; targets
  (say ``primary``) are placed in the minority.
* ``bridge``: two halves that cannot talk, and one container (the target, default
  ``random``) that talks to both.
* ``majorities-ring``: containers in a random ring, each talking to its nearest
  neighbours, so that each sees a majority but no two see the same one (needs 5+).
* ``one-way``: the first group (or the target) cannot send to the second group (or to
  everyone else), while messages the other way get through.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from capsim.schema import NonNegativeDuration, PositiveDuration, spec

__all__ = [
    "Partition",
    "Heal",
    "Crash",
    "Restart",
    "Fault",
    "FAULTS",
    "ROLE_TARGETS",
    "PARTITION_SHAPES",
    "Target",
    "partition_groups",
    "partition_cuts",
]

Target = str | tuple[str, ...]

#: Role words a target may use; both match a replica whose role is "leader" or "primary".
ROLE_TARGETS = ("leader", "primary")

PARTITION_SHAPES = ("groups", "isolate", "halves", "bridge", "majorities-ring", "one-way")


@spec
class Partition:
    """Cut the network into groups of the given ``shape`` (see the module docstring)."""

    at: NonNegativeDuration
    duration: PositiveDuration | None = None
    shape: Literal["groups", "isolate", "halves", "bridge", "majorities-ring", "one-way"] = "groups"
    groups: tuple[tuple[str, ...], ...] | None = None
    target: Target | None = None
    shard: Annotated[int, Field(ge=0)] = 0
    kind: Literal["partition"] = Field(default="partition", repr=False)

    @model_validator(mode="after")
    def _shape_fields(self):
        if self.shape == "groups":
            if not self.groups or len(self.groups) < 1:
                raise ValueError("a 'groups' partition needs 'groups', e.g. [[n1, n2], [n3]]")
            if self.target is not None:
                raise ValueError("a 'groups' partition takes 'groups', not 'target'")
        elif self.shape == "one-way":
            if self.groups is not None and len(self.groups) != 2:
                raise ValueError("a one-way partition takes exactly two groups: [from, to]")
        elif self.groups is not None:
            raise ValueError(f"a '{self.shape}' partition takes 'target', not 'groups'")
        return self


@spec
class Heal:
    """End every partition (and, later, link fault) in force; crashed containers stay down."""

    at: NonNegativeDuration
    kind: Literal["heal"] = Field(default="heal", repr=False)


@spec
class Crash:
    """Kill the target containers: volatile state and timers are lost, durable state kept.

    With a ``duration`` the containers are restarted that long after the crash, and are
    ready once their image's start-up time has passed.
    """

    at: NonNegativeDuration
    target: Target = "random"
    duration: PositiveDuration | None = None
    shard: Annotated[int, Field(ge=0)] = 0
    kind: Literal["crash"] = Field(default="crash", repr=False)


@spec
class Restart:
    """Start the target containers again if they are down (ready after the start-up time)."""

    at: NonNegativeDuration
    target: Target
    shard: Annotated[int, Field(ge=0)] = 0
    kind: Literal["restart"] = Field(default="restart", repr=False)


Fault = Annotated[Partition | Heal | Crash | Restart, Field(discriminator="kind")]

#: Fault kinds by the name used in scenario files.
FAULTS: dict[str, type] = {
    "partition": Partition,
    "heal": Heal,
    "crash": Crash,
    "restart": Restart,
}


def partition_groups(
    shape: str,
    containers: list[str],
    *,
    groups: list[list[str]] | None = None,
    targets: list[str] | None = None,
    rng: np.random.Generator | None = None,
) -> list[list[str]]:
    """Return the groups a partition of ``shape`` splits ``containers`` into.

    ``groups`` and ``targets`` are already resolved to container ids. For ``bridge`` the
    result is ``[half_a, half_b, [bridge]]``; for ``one-way`` it is ``[from, to]``; for
    ``majorities-ring`` it is the ring order as one group. Random choices use ``rng``.
    """
    targets = list(targets or [])
    if shape == "groups":
        listed = {c for g in groups or [] for c in g}
        rest = [c for c in containers if c not in listed]
        out = [list(g) for g in groups or [] if g]
        return out + ([rest] if rest else [])
    if shape == "isolate":
        if not targets:
            targets = [_draw(containers, rng)]
        return [targets, [c for c in containers if c not in targets]]
    if shape == "halves":
        minority_size = len(containers) // 2
        if len(targets) > minority_size:
            raise ValueError(f"cannot put {len(targets)} targets in a minority of {minority_size}")
        others = [c for c in containers if c not in targets]
        others = _shuffled(others, rng)
        minority = targets + others[: minority_size - len(targets)]
        return [minority, [c for c in containers if c not in minority]]
    if shape == "bridge":
        bridge = targets[0] if targets else _draw(containers, rng)
        others = _shuffled([c for c in containers if c != bridge], rng)
        half = len(others) // 2
        return [others[:half], others[half:], [bridge]]
    if shape == "majorities-ring":
        return [_shuffled(list(containers), rng)]
    if shape == "one-way":
        if groups:
            return [list(groups[0]), list(groups[1])]
        if not targets:
            targets = [_draw(containers, rng)]
        return [targets, [c for c in containers if c not in targets]]
    raise ValueError(f"unknown partition shape {shape!r}")


def partition_cuts(shape: str, groups: list[list[str]]) -> set[tuple[str, str]]:
    """Return the ordered pairs ``(a, b)`` such that ``a`` cannot reach ``b``."""
    cuts: set[tuple[str, str]] = set()
    if shape == "one-way":
        source, dest = groups
        return {(a, b) for a in source for b in dest if a != b}
    if shape == "bridge":
        half_a, half_b, _bridge = groups
        for a in half_a:
            for b in half_b:
                cuts.add((a, b))
                cuts.add((b, a))
        return cuts
    if shape == "majorities-ring":
        (ring,) = groups
        n = len(ring)
        reach = -(-(n // 2) // 2)  # each side of the ring: ceil((n // 2) / 2)
        for i, a in enumerate(ring):
            for j, b in enumerate(ring):
                distance = min((i - j) % n, (j - i) % n)
                if distance > reach:
                    cuts.add((a, b))
        return cuts
    for i, group in enumerate(groups):
        for other in groups[i + 1 :]:
            for a in group:
                for b in other:
                    cuts.add((a, b))
                    cuts.add((b, a))
    return cuts


def _draw(containers: list[str], rng: np.random.Generator | None) -> str:
    if rng is None:
        raise ValueError("a random choice needs a random stream")
    return containers[int(rng.integers(len(containers)))]


def _shuffled(items: list[str], rng: np.random.Generator | None) -> list[str]:
    if rng is None:
        return list(items)
    order = rng.permutation(len(items))
    return [items[i] for i in order]
