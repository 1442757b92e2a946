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

A fault aimed at a role can also be timed by one: with ``after: new-leader`` it waits,
from ``at``, for a replica of ``shard`` to become leader (or primary), and strikes
``delay`` seconds later, so "crash the new leader 50 ms after it is elected" holds
whatever the elections before it did. A fault still waiting when the main phase ends is
recorded as skipped.

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

Scale actions (``scale``) change the cluster itself: ``add`` starts new containers, whose
ids continue the sequence (``n6``, ``n7``, ... after ``n5``; a removed id is never used
again), and ``remove`` drains containers and stops them. The placement rule (consistent
hashing, :mod:`capsim.topology`) decides which shards move; each policy moves the data
its own way, as messages.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from capsim.distributions import Distribution, Exponential
from capsim.schema import (
    Duration,
    FiniteFloat,
    NonNegativeDuration,
    PositiveDuration,
    PositiveRate,
    Probability,
    WholeNumber,
    at_default,
    spec,
)

__all__ = [
    "Partition",
    "Heal",
    "Crash",
    "Restart",
    "Pause",
    "ClockSkew",
    "LinkFault",
    "ZoneOutage",
    "RollingUpgrade",
    "RandomFaults",
    "Churn",
    "Scale",
    "Stop",
    "Fault",
    "FAULTS",
    "ROLE_TARGETS",
    "TRIGGERS",
    "PARTITION_SHAPES",
    "Target",
    "partition_groups",
    "partition_cuts",
    "partition_blocks",
    "cut_count",
    "fault_from_repr",
]

Target = str | tuple[str, ...]

#: What a fault may wait for (``after``): a replica becoming leader or primary (the two
#: words mean the same, as role targets do).
Trigger = Literal["new-leader", "new-primary"]
TRIGGERS = ("new-leader", "new-primary")

#: Role words a target may use; both match a replica whose role is "leader" or "primary".
ROLE_TARGETS = ("leader", "primary")

PARTITION_SHAPES = ("groups", "isolate", "halves", "bridge", "majorities-ring", "one-way")


def _quiet(*names: str):
    """Leave fields ``names`` out of the class's ``repr`` while they hold their defaults.

    A fault's ``repr`` names its random streams (see :mod:`capsim.sim.nemesis`) and is
    recorded in ``faults.jsonl``; fields added after a fault kind first shipped stay out
    of it until used, so a schedule written before them draws the same choices and
    records the same specs."""

    def wrap(cls):
        def __repr__(self) -> str:
            parts = []
            for field in dataclasses.fields(self):
                if not field.repr:
                    continue
                value = getattr(self, field.name)
                if field.name in names and at_default(field, value):
                    continue
                parts.append(f"{field.name}={value!r}")
            return f"{type(self).__name__}({', '.join(parts)})"

        cls.__repr__ = __repr__
        return cls

    return wrap


@_quiet("after", "delay")
@spec
class Partition:
    """Cut the network into groups of the given ``shape`` (see the module docstring)."""

    at: NonNegativeDuration
    """When the partition starts, in simulated time."""
    duration: PositiveDuration | None = None
    """How long it lasts; ``null``: until a ``heal`` or the final phase."""
    shape: Literal["groups", "isolate", "halves", "bridge", "majorities-ring", "one-way"] = "groups"
    """How the network is cut (see above)."""
    groups: tuple[tuple[str, ...], ...] | None = None
    """For ``groups``, lists of containers or zones, one per side (containers not listed form one
    more side); for ``one-way``, ``[from, to]``."""
    target: Target | None = None
    """For ``isolate``, ``bridge`` and ``one-way``, the container cut off, bridging or sending
    (``null``: one at ``random``); for ``halves``, containers put in the minority."""
    shard: Annotated[WholeNumber, Field(ge=0)] = 0
    """The shard whose replicas a role target (``leader``, ``primary``) looks among."""
    after: Trigger | None = None
    """``new-leader``: the fault waits, from ``at``, for a replica of ``shard`` to become
    leader (or primary), and strikes ``delay`` after it; ``null``: at ``at``."""
    delay: NonNegativeDuration = 0.0
    """With ``after``, how long after the new leader the fault strikes."""
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
    """End every partition and link fault in force; crashed or paused containers stay so."""

    at: NonNegativeDuration
    """When every partition and link fault in force ends."""
    kind: Literal["heal"] = Field(default="heal", repr=False)


@_quiet("after", "delay")
@spec
class Crash:
    """Kill the target containers: volatile state and timers are lost, durable state kept.

    With a ``duration`` the containers are restarted that long after the crash, and are
    ready once their image's start-up time has passed.
    """

    at: NonNegativeDuration
    """When the containers crash."""
    target: Target = "random"
    """The containers to crash: container ids, zones, a role (``leader``, ``primary``) or
    ``random``, or a list of them."""
    duration: PositiveDuration | None = None
    """How long they stay down before restarting (and then their image's start-up time); ``null``:
    until a ``restart`` or the final phase."""
    shard: Annotated[WholeNumber, Field(ge=0)] = 0
    """The shard whose replicas a role target (``leader``, ``primary``) looks among."""
    after: Trigger | None = None
    """``new-leader``: the fault waits, from ``at``, for a replica of ``shard`` to become
    leader (or primary), and strikes ``delay`` after it; ``null``: at ``at``."""
    delay: NonNegativeDuration = 0.0
    """With ``after``, how long after the new leader the fault strikes."""
    kind: Literal["crash"] = Field(default="crash", repr=False)


@_quiet("after", "delay")
@spec
class Restart:
    """Start the target containers again if they are down (ready after the start-up time)."""

    at: NonNegativeDuration
    """When to start them again."""
    target: Target
    """The containers to restart (those of them that are down)."""
    shard: Annotated[WholeNumber, Field(ge=0)] = 0
    """The shard whose replicas a role target (``leader``, ``primary``) looks among."""
    after: Trigger | None = None
    """``new-leader``: the fault waits, from ``at``, for a replica of ``shard`` to become
    leader (or primary), and strikes ``delay`` after it; ``null``: at ``at``."""
    delay: NonNegativeDuration = 0.0
    """With ``after``, how long after the new leader the fault strikes."""
    kind: Literal["restart"] = Field(default="restart", repr=False)


@_quiet("after", "delay")
@spec
class Pause:
    """Freeze the target containers (a GC pause, SIGSTOP) for ``duration``.

    Messages to a paused container wait in its queue and its timers fire late, all at
    once on resume, in the order they became due. Without a duration the pause lasts
    until the final phase.
    """

    at: NonNegativeDuration
    """When the pause starts."""
    target: Target = "random"
    """The containers to freeze."""
    duration: PositiveDuration | None = None
    """How long the pause lasts; ``null``: until the final phase."""
    shard: Annotated[WholeNumber, Field(ge=0)] = 0
    """The shard whose replicas a role target (``leader``, ``primary``) looks among."""
    after: Trigger | None = None
    """``new-leader``: the fault waits, from ``at``, for a replica of ``shard`` to become
    leader (or primary), and strikes ``delay`` after it; ``null``: at ``at``."""
    delay: NonNegativeDuration = 0.0
    """With ``after``, how long after the new leader the fault strikes."""
    kind: Literal["pause"] = Field(default="pause", repr=False)


@_quiet("after", "delay")
@spec
class ClockSkew:
    """Shift the target containers' clocks by ``offset`` and make them run at ``rate``.

    A container's clock reads what ``Node.now()`` returns (timestamps, leases): it jumps
    by ``offset`` (negative goes back) and then advances ``rate`` seconds per simulated
    second. Timers measure elapsed time on the same clock, so with ``rate: 2`` a 100 ms
    timer fires after 50 ms; a jump does not move timers (they run on the monotonic part).
    When the fault ends the clock is stepped back to true time, as NTP would.
    """

    at: NonNegativeDuration
    """When the clock jumps."""
    target: Target = "random"
    """The containers whose clocks to skew."""
    offset: Duration = 0.0
    """How far the clock jumps (negative: back)."""
    rate: Annotated[FiniteFloat, Field(gt=0)] = 1.0
    """How fast the clock then runs, in clock seconds per true second (1: true speed; from 0.01 to
    100)."""
    duration: PositiveDuration | None = None
    """How long until the clock is stepped back to true time; ``null``: until the final phase."""
    shard: Annotated[WholeNumber, Field(ge=0)] = 0
    """The shard whose replicas a role target (``leader``, ``primary``) looks among."""
    after: Trigger | None = None
    """``new-leader``: the fault waits, from ``at``, for a replica of ``shard`` to become
    leader (or primary), and strikes ``delay`` after it; ``null``: at ``at``."""
    delay: NonNegativeDuration = 0.0
    """With ``after``, how long after the new leader the fault strikes."""
    kind: Literal["clock"] = Field(default="clock", repr=False)


@_quiet("after", "delay")
@spec
class LinkFault:
    """Degrade links: extra ``latency`` (a distribution), ``loss``, ``duplicate``.

    The links are those of the ``target`` containers (or zones) to every other container,
    or those between two ``groups``. ``direction`` is ``both``, ``out`` (only messages
    leaving the target or first group) or ``in`` (only messages arriving there).
    """

    at: NonNegativeDuration
    """When the links degrade."""
    duration: PositiveDuration | None = None
    """How long they stay degraded; ``null``: until a ``heal`` or the final phase."""
    target: Target | None = None
    """Containers or zones whose links to every other container degrade (give this or ``groups``).
    """
    groups: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    """Two lists of containers or zones, ``[from, to]``: the links between them degrade (give this
    or ``target``)."""
    direction: Literal["both", "out", "in"] = "both"
    """``both``, ``out`` (only messages leaving the target or the first group) or ``in`` (only
    messages arriving there)."""
    latency: Distribution | None = None
    """Extra latency added to each message, a distribution."""
    loss: Probability = 0.0
    """The chance that a message on these links is lost."""
    duplicate: Probability = 0.0
    """The chance that a message on these links is delivered twice."""
    shard: Annotated[WholeNumber, Field(ge=0)] = 0
    """The shard whose replicas a role target (``leader``, ``primary``) looks among."""
    after: Trigger | None = None
    """``new-leader``: the fault waits, from ``at``, for a replica of ``shard`` to become
    leader (or primary), and strikes ``delay`` after it; ``null``: at ``at``."""
    delay: NonNegativeDuration = 0.0
    """With ``after``, how long after the new leader the fault strikes."""
    kind: Literal["link"] = Field(default="link", repr=False)

    @model_validator(mode="after")
    def _links(self):
        if (self.target is None) == (self.groups is None):
            raise ValueError("a link fault takes either 'target' or 'groups' (two groups)")
        if self.latency is None and not self.loss and not self.duplicate:
            raise ValueError("a link fault needs 'latency', 'loss' or 'duplicate'")
        return self


@spec
class ZoneOutage:
    """Take a whole zone out: ``mode: crash`` crashes every container in it (restarting
    them after ``duration``); ``mode: isolate`` cuts the zone off from every other zone.
    Either way the zone's clients go with it: they invoke nothing until it is back."""

    at: NonNegativeDuration
    """When the zone goes out."""
    zone: str
    """The zone."""
    mode: Literal["crash", "isolate"] = "crash"
    """``crash``: every container in the zone crashes; ``isolate``: the zone is cut off from the
    others."""
    duration: PositiveDuration | None = None
    """How long the outage lasts; ``null``: until the final phase."""
    kind: Literal["zone-outage"] = Field(default="zone-outage", repr=False)


@spec
class RollingUpgrade:
    """Stop the target containers gracefully (their writes flushed to disk) and restart
    them onto ``image`` (``name:version``), at most ``max_unavailable`` at a time, waiting
    for each batch to be ready (plus ``wait``) before the next. The new version's image
    ``params`` apply to the restarted replicas, so a mixed-version cluster runs while the
    upgrade is under way."""

    at: NonNegativeDuration
    """When the upgrade starts."""
    image: str
    """The image to upgrade to, as ``name:version`` (one of ``images``)."""
    target: Target | None = None
    """The containers to upgrade, in order; ``null``: all of them, ``n1`` first."""
    max_unavailable: Annotated[WholeNumber, Field(ge=1)] = 1
    """How many containers restart at a time."""
    wait: NonNegativeDuration = 0.0
    """How long to wait after a batch is ready before stopping the next."""
    shard: Annotated[WholeNumber, Field(ge=0)] = 0
    """The shard whose replicas a role target (``leader``, ``primary``) looks among."""
    kind: Literal["upgrade"] = Field(default="upgrade", repr=False)


RandomKind = Literal["partition", "crash", "pause", "clock"]
Shape = Literal["isolate", "halves", "bridge", "majorities-ring", "one-way"]


@_quiet("chase", "delay", "seed")
@spec
class RandomFaults:
    """A random nemesis: faults arriving as a Poisson process at ``rate`` per second
    from ``at`` until ``until`` (default: the end of the main phase).

    Each arrival picks a kind from ``faults`` (uniformly), a ``duration`` from the
    distribution and a target by ``target`` (for partitions, a shape from ``shapes``); a
    clock fault jumps by up to ``max_clock_offset`` either way. Every generated fault is
    recorded in ``faults.jsonl`` as it is applied, with its ``spec``.

    With ``chase`` above 0 the nemesis also hunts leaders: each time a replica of
    ``shard`` becomes leader (or primary), with probability ``chase``, one more fault
    arrives ``delay`` (a distribution) after it, drawn as above. That strikes at what
    elections leave behind (a new leader whose first entries have not spread, an old one
    just back), which Poisson arrivals reach only by luck. ``seed`` picks another draw of
    the same nemesis under the same scenario seed.
    """

    at: NonNegativeDuration
    """When the nemesis starts."""
    rate: PositiveRate
    """How often faults arrive (a Poisson process)."""
    duration: Distribution
    """How long each fault lasts, a distribution."""
    until: PositiveDuration | None = None
    """When the nemesis stops; ``null``: at the end of the main phase."""
    faults: Annotated[tuple[RandomKind, ...], Field(min_length=1)] = ("partition",)
    """The kinds of fault to draw from, uniformly."""
    shapes: Annotated[tuple[Shape, ...], Field(min_length=1)] = ("halves",)
    """The partition shapes to draw from, uniformly."""
    target: Target = "random"
    """The containers each fault targets (a partition puts them in its shape)."""
    max_clock_offset: NonNegativeDuration = 1.0
    """The furthest a clock fault jumps, either way."""
    shard: Annotated[WholeNumber, Field(ge=0)] = 0
    """The shard whose replicas a role target (``leader``, ``primary``) looks among, and
    whose elections ``chase`` follows."""
    chase: Probability = 0.0
    """The chance that a fault follows each new leader (or primary) of ``shard``."""
    delay: Distribution = Field(default_factory=lambda: Exponential(mean=0.3))
    """With ``chase``, how long after the new leader its fault arrives, a distribution."""
    seed: Annotated[WholeNumber, Field(ge=0)] = 0
    """Which draw of this nemesis: another number, other faults, with the same scenario."""
    kind: Literal["random"] = Field(default="random", repr=False)


@spec
class Churn:
    """Crash/restart cycles: each target container (default: all) stays up for an
    exponential time with mean ``mttf``, then is down for an exponential time with mean
    ``mttr`` before it restarts (and is ready after its start-up time), independently,
    from ``at`` until ``until`` (default: the end of the main phase)."""

    at: NonNegativeDuration
    """When the churn starts."""
    mttf: PositiveDuration
    """Mean time to failure: the mean of each container's exponential up time."""
    mttr: PositiveDuration
    """Mean time to repair: the mean of each exponential down time (the image's start-up time
    follows)."""
    target: Target | None = None
    """The containers that churn; ``null``: all of them."""
    until: PositiveDuration | None = None
    """When the churn stops; ``null``: at the end of the main phase."""
    kind: Literal["churn"] = Field(default="churn", repr=False)


#: The most containers one scale action adds or removes.
MAX_SCALE = 1000


@spec
class Scale:
    """Add containers to the cluster (``add``) or drain and remove some (``remove``).

    Added containers start from ``image`` in ``zone``, and are ready after the image's
    start-up time; their ids continue the sequence (``n6``, ``n7``, ... after ``n5``). A
    removed container is drained first: it stays up until no shard counts it as a member
    (its policy has handed its data over and reconfigured), then stops for good, its id
    never reused. Either way the placement rule chooses the shards that move, and every
    shard's replicas are chosen again (with ``replication_factor`` unset, every container
    holds every shard). The action lasts from its request until it is serving: every
    added container ready, every removed one stopped, and every changed shard's membership
    equal to its new hosts (``faults.jsonl``: ``start`` and ``end``; the summary's
    ``scaling`` section).
    """

    at: NonNegativeDuration
    """When the action is requested."""
    add: Annotated[WholeNumber, Field(ge=1, le=MAX_SCALE)] | None = None
    """How many containers to start (give this or ``remove``)."""
    remove: Annotated[WholeNumber, Field(ge=1, le=MAX_SCALE)] | Target | None = None
    """The containers to drain and remove: a count, chosen by the placement rule (containers that
    are down first, then the newest), or targets (container ids, a zone, a role, ``random``)
    resolved when the action fires (give this or ``add``)."""
    image: Annotated[str, Field(max_length=400)] | None = None
    """The image the added containers start from, as ``name:version``; ``null``: the image the
    last upgrade moved to, else the cluster's."""
    zone: Annotated[str, Field(max_length=200)] | None = None
    """The zone the added containers go in; ``null``: round-robin over the zones by container
    number, as at boot (``n6`` in the zone ``n3`` is in, with three zones)."""
    drain_timeout: PositiveDuration = 30.0
    """How long a drained container (or a replica whose shard moved away) may take to leave its
    shards' membership before it is stopped anyway, as Kubernetes' termination grace period
    (30 s)."""
    shard: Annotated[WholeNumber, Field(ge=0)] = 0
    """The shard whose replicas a role target of ``remove`` (``leader``, ``primary``) looks
    among."""
    kind: Literal["scale"] = Field(default="scale", repr=False)

    @model_validator(mode="after")
    def _one_way(self):
        if (self.add is None) == (self.remove is None):
            raise ValueError("a scale action takes either 'add' (a count) or 'remove'")
        if self.add is None and (self.image is not None or self.zone is not None):
            raise ValueError("'image' and 'zone' are for containers a scale action adds")
        if isinstance(self.remove, tuple) and not self.remove:
            raise ValueError("'remove' names no container")
        return self


@_quiet("after", "delay")
@spec
class Stop:
    """The target containers' processes exit cleanly (exit status 0) after flushing their
    writes to disk, as a process that finishes does. A restart policy (``cluster.restart``)
    of ``always`` starts them again; ``on-failure`` and ``never`` leave them down (a crash is
    a failure, a clean exit is not), until a ``restart`` or the final phase."""

    at: NonNegativeDuration
    """When the containers exit."""
    target: Target
    """The containers that exit: container ids, zones, a role (``leader``, ``primary``) or
    ``random``, or a list of them."""
    shard: Annotated[WholeNumber, Field(ge=0)] = 0
    """The shard whose replicas a role target (``leader``, ``primary``) looks among."""
    after: Trigger | None = None
    """``new-leader``: the fault waits, from ``at``, for a replica of ``shard`` to become
    leader (or primary), and strikes ``delay`` after it; ``null``: at ``at``."""
    delay: NonNegativeDuration = 0.0
    """With ``after``, how long after the new leader the fault strikes."""
    kind: Literal["stop"] = Field(default="stop", repr=False)


Fault = Annotated[
    Partition
    | Heal
    | Crash
    | Restart
    | Pause
    | ClockSkew
    | LinkFault
    | ZoneOutage
    | RollingUpgrade
    | RandomFaults
    | Churn
    | Scale
    | Stop,
    Field(discriminator="kind"),
]

#: Fault kinds by the name used in scenario files.
FAULTS: dict[str, type] = {
    "partition": Partition,
    "heal": Heal,
    "crash": Crash,
    "restart": Restart,
    "pause": Pause,
    "clock": ClockSkew,
    "link": LinkFault,
    "zone-outage": ZoneOutage,
    "upgrade": RollingUpgrade,
    "random": RandomFaults,
    "churn": Churn,
    "scale": Scale,
    "stop": Stop,
}


def fault_from_repr(text: str) -> Any:
    """The fault whose ``repr`` is ``text`` (as ``faults.jsonl`` records a fault's ``spec``):
    ``Crash(at=2.5, target='leader', duration=0.4, shard=0)``. Only fault and distribution
    constructors and literals are read; nothing is evaluated. Raises ``ValueError`` for
    anything else."""
    import ast

    from capsim import distributions

    classes: dict[str, type] = {cls.__name__: cls for cls in FAULTS.values()}
    classes.update(
        {
            name: getattr(distributions, name)
            for name in distributions.__all__
            if isinstance(getattr(distributions, name), type)
        }
    )

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in classes or node.args:
                raise ValueError(f"not a fault spec: {ast.unparse(node)[:80]!r}")
            kwargs = {kw.arg: value(kw.value) for kw in node.keywords if kw.arg is not None}
            return classes[node.func.id](**kwargs)
        if isinstance(node, ast.Tuple | ast.List):
            return tuple(value(item) for item in node.elts)
        return ast.literal_eval(node)

    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not a fault spec: {text[:80]!r}") from exc
    fault = value(tree.body)
    if type(fault) not in FAULTS.values():
        raise ValueError(f"not a fault spec: {text[:80]!r}")
    return fault


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


def partition_blocks(
    shape: str, groups: list[list[str]]
) -> tuple[list[list[str]], list[tuple[int, int]]]:
    """The partition as groups that share a fate and the ordered pairs of groups that
    cannot talk: a message from a container of group ``i`` to one of group ``j`` is cut iff
    ``(i, j)`` is blocked. ``groups`` are :func:`partition_groups`' result. The cost is the
    containers named plus the blocked pairs: a few for every shape but ``majorities-ring``,
    whose every container is a group of its own.
    """
    if shape == "one-way":
        return [list(groups[0]), list(groups[1])], [(0, 1)]
    if shape == "bridge":
        half_a, half_b, bridge = groups
        return [list(half_a), list(half_b), list(bridge)], [(0, 1), (1, 0)]
    if shape == "majorities-ring":
        (ring,) = groups
        n = len(ring)
        reach = -(-(n // 2) // 2)  # each side of the ring: ceil((n // 2) / 2)
        blocked = [
            (i, j) for i in range(n) for j in range(n) if min((i - j) % n, (j - i) % n) > reach
        ]
        return [[c] for c in ring], blocked
    listed = [list(g) for g in groups]
    return listed, [(i, j) for i in range(len(listed)) for j in range(len(listed)) if i != j]


def partition_cuts(shape: str, groups: list[list[str]]) -> set[tuple[str, str]]:
    """Return the ordered pairs ``(a, b)`` such that ``a`` cannot reach ``b`` (every pair:
    for inspection and tests; the simulator keeps :func:`partition_blocks`' groups)."""
    members, blocked = partition_blocks(shape, groups)
    return {(a, b) for i, j in blocked for a in members[i] for b in members[j] if a != b}


def cut_count(members: list[list[str]], blocked: list[tuple[int, int]]) -> int:
    """How many ordered pairs of containers a partition cuts, without listing them."""
    return sum(len(members[i]) * len(members[j]) for i, j in blocked)


def _draw(containers: list[str], rng: np.random.Generator | None) -> str:
    if rng is None:
        raise ValueError("a random choice needs a random stream")
    return containers[int(rng.integers(len(containers)))]


def _shuffled(items: list[str], rng: np.random.Generator | None) -> list[str]:
    if rng is None:
        return list(items)
    order = rng.permutation(len(items))
    return [items[i] for i in order]
