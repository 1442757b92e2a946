"""Hypothesis strategies for fault schedules, workloads and whole scenarios.

Every strategy takes the scenario it builds for (a :class:`~capsim.Scenario`, a dict or
a path), so that targets name its containers, zones and roles and times fall within its
duration. Faults are the frozen dataclasses of :mod:`capsim.faults`, so a shrunk
example is a list of specs whose ``repr`` pastes into a test; :func:`describe` prints
one without its default fields.

Times and durations are drawn on a grid of :data:`STEP_S` (0.1 s), as whole numbers of
steps, so they shrink to round values (``at=1.5``, not ``at=1.4999999``). Each
strategy's docstring says which way it shrinks; together they shrink a failing schedule
to fewer faults, earlier, shorter and aimed at fewer containers.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from capsim.distributions import Constant, Exponential
from capsim.faults import (
    PARTITION_SHAPES,
    ClockSkew,
    Crash,
    Heal,
    LinkFault,
    Partition,
    Pause,
    RandomFaults,
    Restart,
)
from capsim.scenario import Scenario, container_ids, load_scenario, parse_scenario
from capsim.schema import at_default, to_data

__all__ = [
    "STEP_S",
    "FAULT_KINDS",
    "DEFAULT_KINDS",
    "as_scenario",
    "role_words",
    "describe",
    "times",
    "durations",
    "targets",
    "partitions",
    "crashes",
    "restarts",
    "pauses",
    "clock_faults",
    "link_faults",
    "heals",
    "faults",
    "fault_schedules",
    "TRIGGER_DELAYS",
    "timed_by_leaders",
    "storms",
    "STORM_RECIPES",
    "workloads",
    "scripts",
    "scenarios",
]

#: The grid times and durations are drawn on, in seconds.
STEP_S = 0.1

#: Every fault kind the strategies draw, by its name in scenario files.
FAULT_KINDS = ("partition", "crash", "pause", "clock", "link", "heal", "restart")
#: The kinds :func:`fault_schedules` draws unless told otherwise (a heal or restart alone
#: breaks nothing, so they only add noise to a search).
DEFAULT_KINDS = ("partition", "crash", "pause", "clock", "link")

#: Built-in policies whose replicas report a role a ``leader``/``primary`` target finds.
_ROLE_POLICIES = {"raft": "leader", "primary-backup": "primary", "single-primary": "primary"}


def as_scenario(scenario: Scenario | dict | str | os.PathLike) -> Scenario:
    """A :class:`~capsim.Scenario` from a scenario, a dict of scenario data or a file path."""
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, dict):
        return parse_scenario(scenario)
    return load_scenario(scenario)


def role_words(scenario: Scenario) -> tuple[str, ...]:
    """The role targets worth aiming at in ``scenario``: ``("leader",)`` for raft,
    ``("primary",)`` for the primary-based built-ins, none for other policies (pass
    ``roles=`` to the strategies for your own; :func:`capsim.testing.explore` finds them
    by watching a run)."""
    word = _ROLE_POLICIES.get(scenario.policy.name)
    return (word,) if word else ()


def describe(fault: Any) -> str:
    """A fault's ``repr`` without the fields left at their defaults: still valid Python
    (``Crash(at=2.5, target='leader', duration=0.4)``)."""
    parts = []
    for field in dataclasses.fields(fault):
        if not field.repr:
            continue
        value = getattr(fault, field.name)
        if field.name != "at" and at_default(field, value):
            continue
        parts.append(f"{field.name}={value!r}")
    return f"{type(fault).__name__}({', '.join(parts)})"


# --- times and targets --------------------------------------------------------------------


def _steps(seconds: float, step: float) -> int:
    return max(0, math.floor(seconds / step + 1e-9))


def times(
    scenario: Scenario | None = None,
    *,
    start: float = 0.0,
    end: float | None = None,
    step: float = STEP_S,
) -> st.SearchStrategy[float]:
    """Instants from ``start`` to ``end`` (default: the scenario's duration), on a grid of
    ``step`` seconds. Shrinks towards ``start``: earlier."""
    if end is None:
        end = scenario.duration if scenario is not None else start + 10.0
    count = _steps(end - start, step)
    return st.integers(0, count).map(lambda k: round(start + k * step, 6))


def durations(
    low: float = STEP_S, high: float = 3.0, *, step: float = STEP_S
) -> st.SearchStrategy[float]:
    """Durations from ``low`` to ``high`` seconds on a grid of ``step``. Shrinks towards
    ``low``: shorter."""
    count = _steps(high - low, step)
    return st.integers(0, count).map(lambda k: round(low + k * step, 6))


def _roles(scenario: Scenario, roles: Sequence[str] | None) -> tuple[str, ...]:
    return role_words(scenario) if roles is None else tuple(roles)


def targets(
    scenario: Scenario | dict | str,
    *,
    roles: Sequence[str] | None = None,
    zones: bool = True,
    several: bool = True,
) -> st.SearchStrategy[str | tuple[str, ...]]:
    """What a fault aims at: a role word (``leader``, ``primary``: whoever holds the role
    when the fault fires), one container, a zone, or a few containers.

    ``roles`` defaults to :func:`role_words`. Shrinks in that order: towards a role, then
    towards one container (``n1`` first), a zone, and fewer containers."""
    sc = as_scenario(scenario)
    ids = container_ids(sc.cluster.containers)
    options: list[st.SearchStrategy] = []
    words = _roles(sc, roles)
    if words:
        options.append(st.sampled_from(words))
    options.append(st.sampled_from(ids))
    populated = sorted(sc.cluster.populated_zones(), key=sc.cluster.zones.index)
    if zones and len(populated) > 1:
        options.append(st.sampled_from(populated))
    if several and len(ids) >= 4:
        options.append(
            st.lists(st.sampled_from(ids), min_size=2, max_size=len(ids) // 2, unique=True).map(
                lambda picked: tuple(sorted(picked, key=ids.index))
            )
        )
    return st.one_of(options)


def _single_targets(sc: Scenario, roles: Sequence[str] | None) -> st.SearchStrategy[str]:
    """One role word or one container (for shapes that take a single container)."""
    words = _roles(sc, roles)
    ids = container_ids(sc.cluster.containers)
    return st.one_of([st.sampled_from(words)] * bool(words) + [st.sampled_from(ids)])


def _at(sc: Scenario, at: st.SearchStrategy[float] | None) -> st.SearchStrategy[float]:
    return times(sc) if at is None else at


def _optional_durations(sc: Scenario, lasting: bool) -> st.SearchStrategy[float | None]:
    """Durations up to 3 s (or the scenario's duration); with ``lasting``, also ``None``
    (until a heal or the final phase), drawn as the longest choice so that it shrinks to
    a duration."""
    longest = max(STEP_S, min(3.0, sc.duration))
    count = _steps(longest - STEP_S, STEP_S)
    return st.integers(0, count + 1 if lasting else count).map(
        lambda k: None if k > count else round(STEP_S + k * STEP_S, 6)
    )


# --- faults -------------------------------------------------------------------------------


def partitions(
    scenario: Scenario | dict | str,
    *,
    at: st.SearchStrategy[float] | None = None,
    shapes: Sequence[str] | None = None,
    roles: Sequence[str] | None = None,
    lasting: bool = True,
) -> st.SearchStrategy[Partition]:
    """Partitions of every named shape (``shapes``, default all that fit the cluster) and
    arbitrary groups of containers or zones, each lasting a drawn ``duration`` (or, with
    ``lasting``, sometimes until a heal or the final phase).

    Shrinks towards ``isolate`` of one container or role, then ``halves``, explicit
    ``groups`` (one listed group of fewer containers, ``n1`` first), ``one-way``, ``bridge``
    and ``majorities-ring``; earlier and shorter."""
    sc = as_scenario(scenario)
    ids = container_ids(sc.cluster.containers)
    order = ("isolate", "halves", "groups", "one-way", "bridge", "majorities-ring")
    wanted = [s for s in order if s in (shapes or PARTITION_SHAPES)]
    if len(ids) < 5 and "majorities-ring" in wanted:
        wanted.remove("majorities-ring")
    if len(ids) < 2:
        raise ValueError("a partition needs at least 2 containers")
    one = _single_targets(sc, roles)
    when = _at(sc, at)
    how_long = _optional_durations(sc, lasting)

    def group_of(max_size: int) -> st.SearchStrategy[tuple[str, ...]]:
        return st.lists(st.sampled_from(ids), min_size=1, max_size=max_size, unique=True).map(
            lambda picked: tuple(sorted(picked, key=ids.index))
        )

    zones = sorted(sc.cluster.populated_zones(), key=sc.cluster.zones.index)

    def shaped(shape: str, **fields: st.SearchStrategy) -> st.SearchStrategy[Partition]:
        return st.builds(Partition, at=when, duration=how_long, shape=st.just(shape), **fields)

    builders = {
        "isolate": shaped("isolate", target=one),
        "halves": shaped("halves", target=st.one_of(one, st.none())),
        "groups": st.builds(
            Partition,
            at=when,
            duration=how_long,
            groups=st.one_of(
                group_of(len(ids) - 1).map(lambda g: (g,)),
                *(
                    [
                        st.lists(
                            st.sampled_from(zones), min_size=1, max_size=len(zones) - 1, unique=True
                        ).map(lambda g: (tuple(sorted(g, key=zones.index)),))
                    ]
                    if len(zones) > 1
                    else []
                ),
            ),
        ),
        "one-way": st.one_of(
            shaped("one-way", target=one), shaped("one-way", groups=_two_groups(ids))
        ),
        "bridge": shaped("bridge", target=st.one_of(one, st.none())),
        "majorities-ring": shaped("majorities-ring"),
    }
    return st.one_of([builders[s] for s in wanted])


def _two_groups(ids: list[str]) -> st.SearchStrategy[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Two disjoint, non-empty groups of containers, each in container order. Shrinks
    towards ``(('n1',), ('n2',))``."""

    def split(drawn: tuple[list[str], int]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        picked, cut = drawn
        cut = min(cut, len(picked) - 1)
        return (
            tuple(sorted(picked[:cut], key=ids.index)),
            tuple(sorted(picked[cut:], key=ids.index)),
        )

    return st.tuples(
        st.lists(st.sampled_from(ids), min_size=2, max_size=len(ids), unique=True),
        st.integers(1, max(1, len(ids) - 1)),
    ).map(split)


def crashes(
    scenario: Scenario | dict | str,
    *,
    at: st.SearchStrategy[float] | None = None,
    roles: Sequence[str] | None = None,
    lasting: bool = True,
) -> st.SearchStrategy[Crash]:
    """Crashes of a role, a container, a zone or a few containers, restarting after a
    drawn ``duration`` (or, with ``lasting``, sometimes down until a restart or the final
    phase). Shrinks towards a role or ``n1``, earlier and a shorter time down."""
    sc = as_scenario(scenario)
    return st.builds(
        Crash,
        at=_at(sc, at),
        target=targets(sc, roles=roles),
        duration=_optional_durations(sc, lasting),
    )


def restarts(
    scenario: Scenario | dict | str,
    *,
    at: st.SearchStrategy[float] | None = None,
    roles: Sequence[str] | None = None,
) -> st.SearchStrategy[Restart]:
    """Restarts of crashed containers (a restart of a live one does nothing). Shrinks
    towards one container (``n1``) and earlier."""
    sc = as_scenario(scenario)
    return st.builds(Restart, at=_at(sc, at), target=targets(sc, roles=(), zones=True))


def pauses(
    scenario: Scenario | dict | str,
    *,
    at: st.SearchStrategy[float] | None = None,
    roles: Sequence[str] | None = None,
) -> st.SearchStrategy[Pause]:
    """Pauses (a GC pause, SIGSTOP) of a role, a container, a zone or a few containers.
    Shrinks towards a role or ``n1``, earlier and shorter."""
    sc = as_scenario(scenario)
    return st.builds(
        Pause,
        at=_at(sc, at),
        target=targets(sc, roles=roles),
        duration=_optional_durations(sc, lasting=False),
    )


#: Clock rates a drifting clock runs at, in the order they shrink: slight drift first.
CLOCK_RATES = (0.9, 1.1, 0.5, 2.0, 0.1, 10.0)


def clock_faults(
    scenario: Scenario | dict | str,
    *,
    at: st.SearchStrategy[float] | None = None,
    roles: Sequence[str] | None = None,
    max_offset: float = 5.0,
    rates: Sequence[float] = CLOCK_RATES,
) -> st.SearchStrategy[ClockSkew]:
    """Clock faults: a jump of up to ``max_offset`` seconds either way (on the
    :data:`STEP_S` grid) and a rate of true speed or one of ``rates``, for a drawn
    duration; never a fault that changes nothing. Shrinks towards a role or ``n1``,
    earlier, a smaller jump at true speed, and shorter."""
    sc = as_scenario(scenario)
    steps = max(1, _steps(max_offset, STEP_S))
    offsets = st.tuples(st.integers(0, steps), st.booleans()).map(
        lambda drawn: round((-drawn[0] if drawn[1] else drawn[0]) * STEP_S, 6)
    )
    return st.builds(
        ClockSkew,
        at=_at(sc, at),
        target=targets(sc, roles=roles),
        offset=offsets,
        rate=st.sampled_from((1.0, *rates)),
        duration=_optional_durations(sc, lasting=True),
    ).filter(lambda fault: fault.offset != 0 or fault.rate != 1.0)


#: Extra one-way latencies a link fault adds, in seconds (shrinking towards the first).
LINK_LATENCIES = (0.01, 0.05, 0.2, 1.0)
#: Loss and duplication probabilities a link fault draws.
LINK_PROBABILITIES = (0.5, 1.0, 0.1)


def link_faults(
    scenario: Scenario | dict | str,
    *,
    at: st.SearchStrategy[float] | None = None,
    roles: Sequence[str] | None = None,
) -> st.SearchStrategy[LinkFault]:
    """Degraded links (as Toxiproxy makes them) of a role, a container or a zone, or
    between two groups: extra latency, loss or duplication, in one direction or both.
    Shrinks towards added latency on both directions of a role's or ``n1``'s links,
    earlier and shorter."""
    sc = as_scenario(scenario)
    ids = container_ids(sc.cluster.containers)
    where = {
        "target": targets(sc, roles=roles, several=False),
        "groups": _two_groups(ids),
    }
    effects = {
        "latency": st.sampled_from(LINK_LATENCIES).map(lambda s: Constant(value=s)),
        "loss": st.sampled_from(LINK_PROBABILITIES),
        "duplicate": st.sampled_from(LINK_PROBABILITIES),
    }
    when = _at(sc, at)
    how_long = _optional_durations(sc, lasting=True)
    direction = st.sampled_from(("both", "out", "in"))
    return st.one_of(
        [
            st.builds(
                LinkFault,
                at=when,
                duration=how_long,
                direction=direction,
                **{place: places, effect: drawn},
            )
            for place, places in where.items()
            for effect, drawn in effects.items()
        ]
    )


def heals(
    scenario: Scenario | dict | str, *, at: st.SearchStrategy[float] | None = None
) -> st.SearchStrategy[Heal]:
    """Heals: every partition and link fault in force ends. Shrinks towards earlier."""
    return st.builds(Heal, at=_at(as_scenario(scenario), at))


_KIND_STRATEGIES = {
    "partition": partitions,
    "crash": crashes,
    "pause": pauses,
    "clock": clock_faults,
    "link": link_faults,
    "heal": lambda sc, *, at=None, roles=None: heals(sc, at=at),
    "restart": restarts,
}


def faults(
    scenario: Scenario | dict | str,
    *,
    kinds: Sequence[str] = DEFAULT_KINDS,
    at: st.SearchStrategy[float] | None = None,
    roles: Sequence[str] | None = None,
) -> st.SearchStrategy[Any]:
    """One fault of one of ``kinds`` (names as in scenario files: ``partition``,
    ``crash``, ``pause``, ``clock``, ``link``, ``heal``, ``restart``). Shrinks towards the
    first kind listed, then as that kind's strategy does."""
    sc = as_scenario(scenario)
    unknown = [k for k in kinds if k not in _KIND_STRATEGIES]
    if unknown or not kinds:
        raise ValueError(f"unknown fault kinds {unknown}; kinds: {list(FAULT_KINDS)}")
    if sc.cluster.containers < 2:
        kinds = [k for k in kinds if k not in ("partition", "link")]
    return st.one_of([_KIND_STRATEGIES[k](sc, at=at, roles=roles) for k in kinds])


#: How long after a new leader a fault timed by it (``after: new-leader``) strikes, in
#: the order they shrink. Finer than :data:`STEP_S`: what an election leaves behind (a
#: no-op not yet replicated) lasts tens of milliseconds.
TRIGGER_DELAYS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)


def timed_by_leaders(fault_strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Faults that sometimes wait for a new leader (``after: new-leader``) and strike one
    of :data:`TRIGGER_DELAYS` later. Shrinks towards a fault at its own time."""

    def timed(drawn: tuple[Any, float]) -> Any:
        fault, delay = drawn
        if not hasattr(fault, "after"):
            return fault
        return dataclasses.replace(fault, after="new-leader", delay=delay)

    return st.one_of(
        fault_strategy, st.tuples(fault_strategy, st.sampled_from(TRIGGER_DELAYS)).map(timed)
    )


def fault_schedules(
    scenario: Scenario | dict | str,
    *,
    kinds: Sequence[str] = DEFAULT_KINDS,
    max_faults: int = 4,
    min_faults: int = 0,
    start: float = 0.0,
    end: float | None = None,
    roles: Sequence[str] | None = None,
    triggers: bool = True,
) -> st.SearchStrategy[tuple]:
    """Fault schedules: tuples of ``min_faults`` to ``max_faults`` faults of ``kinds``, at
    times from ``start`` to ``end`` (default: the scenario's duration), in time order.

    With ``triggers`` and role words to aim at (``roles``, default :func:`role_words`),
    some faults are timed by elections instead: they wait from their ``at`` for a new
    leader or primary and strike one of :data:`TRIGGER_DELAYS` after it (``after:
    new-leader``), so a schedule can say "crash the next leader 20 ms after it is
    elected" whatever the faults before it did.

    Each fault's time and choices are drawn on their own, so deleting one leaves the
    others exactly as they were. Shrinks towards fewer faults, then each fault as
    :func:`faults` does: earlier, shorter, fewer containers, and at its own time rather
    than after a new leader."""
    sc = as_scenario(scenario)
    when = times(sc, start=start, end=sc.duration if end is None else end)
    one = faults(sc, kinds=kinds, at=when, roles=roles)
    if triggers and _roles(sc, roles):
        one = timed_by_leaders(one)
    return st.lists(one, min_size=min_faults, max_size=max_faults).map(
        lambda drawn: tuple(sorted(drawn, key=lambda f: f.at))
    )


#: The kinds of fault a storm (:func:`storms`) draws from, by recipe: a recipe's kinds
#: that the search allows, in the order recipes shrink. The first two strike leaders in
#: the ways replication bugs need (a leader cut off while its clients write, a new one
#: killed before its first entries spread); the others add pauses and clocks.
STORM_RECIPES = (
    ("partition", "crash"),
    ("partition", "crash", "pause"),
    ("crash", "clock"),
    ("partition", "clock"),
    ("partition", "crash", "pause", "clock"),
)


def storms(
    scenario: Scenario | dict | str,
    *,
    kinds: Sequence[str] = DEFAULT_KINDS,
    roles: Sequence[str] | None = None,
) -> st.SearchStrategy[RandomFaults]:
    """Random nemeses (:class:`~capsim.faults.RandomFaults`) from one of
    :data:`STORM_RECIPES` (restricted to ``kinds``), starting in the run's first half:
    a rate of 0.2 to 2 faults a second, each lasting about 0.5 to 2 s, partitions that
    isolate or halve. With role words to aim at (``roles``, default
    :func:`role_words`) the storm targets the leader or primary and chases elections
    (``chase``: a fault follows each new leader after about 50 to 500 ms); otherwise it
    targets a random container.

    A storm runs many faults in one example, so it reaches sequences that a schedule
    of a few faults finds only by luck; :func:`capsim.testing.explore` freezes the
    faults a breaking storm drew into a schedule (:func:`capsim.testing.frozen`) and
    shrinks that. Shrinks towards the first recipe, a low rate, short faults and seed 0;
    the storm itself shrinks poorly (another seed is another storm)."""
    sc = as_scenario(scenario)
    words = _roles(sc, roles)
    allowed = [k for k in ("partition", "crash", "pause", "clock") if k in kinds]
    if sc.cluster.containers < 2 and "partition" in allowed:
        allowed.remove("partition")
    recipes = []
    for recipe in STORM_RECIPES:
        usable = tuple(k for k in recipe if k in allowed)
        if usable and usable not in recipes:
            recipes.append(usable)
    if not recipes:
        raise ValueError(f"no kind of fault a storm draws is among {list(kinds)}")
    first_half = times(sc, start=STEP_S, end=max(STEP_S, sc.duration / 2))

    def build(at, recipe, rate, mean, shapes, chase, delay, seed):
        chasing = {"chase": chase, "delay": Exponential(mean=delay)} if words else {}
        return RandomFaults(
            at=at,
            rate=rate,
            duration=Exponential(mean=mean),
            faults=recipe,
            shapes=shapes,
            target=words[0] if words else "random",
            seed=seed,
            **chasing,
        )

    return st.builds(
        build,
        first_half,
        st.sampled_from(recipes),
        st.sampled_from((0.2, 0.5, 1.0, 2.0)),
        st.sampled_from((1.0, 0.5, 2.0)),
        st.sampled_from((("isolate", "halves"), ("isolate",), ("halves",))),
        st.sampled_from((1.0, 0.5)),
        st.sampled_from((0.2, 0.05, 0.5)),
        st.integers(0, 2**32 - 1),
    )


# --- workloads and scenarios --------------------------------------------------------------


def workloads(
    scenario: Scenario | dict | str,
    *,
    max_rate: float = 50.0,
    max_keys: int = 8,
    max_clients_per_zone: int = 3,
) -> st.SearchStrategy[Any]:
    """Workloads of the scenario's kind (register or set) and mode: the rate per client
    (whole numbers from 1 to ``max_rate`` per second), read and CAS fractions (in tenths),
    keys (1 to ``max_keys``) and clients per zone (1 to ``max_clients_per_zone``); the
    rest (timeout, retries) as the scenario has it. Shrinks towards one key, one client
    per zone, one operation per second and no reads."""
    sc = as_scenario(scenario)
    base = sc.workload

    def build(rate, tenths, cas_tenths, keys, clients):
        cas = 0.0 if base.kind == "set" else min(cas_tenths, 10 - tenths) / 10
        return dataclasses.replace(
            base,
            rate=float(rate),
            read_fraction=tenths / 10,
            cas_fraction=cas,
            keys=keys,
            clients_per_zone=clients,
            clients=None,
        )

    return st.builds(
        build,
        st.integers(1, max(1, int(max_rate))),
        st.integers(0, 10),
        st.integers(0, 3),
        st.integers(1, max_keys),
        st.integers(1, max_clients_per_zone),
    )


def scripts(
    scenario: Scenario | dict | str,
    *,
    max_ops: int = 12,
    keys: int = 2,
    start: float = 0.0,
    end: float | None = None,
) -> st.SearchStrategy[dict]:
    """Scripted workloads (``{kind: script, ops: [...]}`` as a scenario's ``workload``):
    1 to ``max_ops`` operations at times on the :data:`STEP_S` grid from ``start`` to ``end``
    (default: the last step before the scenario's duration), each by one of the
    scenario's clients on one of ``keys`` keys: reads and writes (and CAS) for a register
    workload, reads and adds for a set. Written values are 1, 2, 3, ... per key, so a read
    names the write it saw. Shrinks towards fewer operations, earlier, client 0, key
    ``k0`` and reads."""
    sc = as_scenario(scenario)
    clients = _client_count(sc)
    last = sc.duration - STEP_S if end is None else end  # operations begin before the end
    when = times(sc, start=start, end=last)
    fs = ("read", "add") if sc.workload.kind == "set" else ("read", "write", "cas")
    op = st.tuples(
        when, st.integers(0, max(0, clients - 1)), st.sampled_from(fs), st.integers(0, keys - 1)
    )

    def build(drawn):
        ops, written = [], {}
        for at, client, f, k in sorted(drawn, key=lambda o: o[0]):
            key = f"k{k}"
            entry: dict[str, Any] = {"at": at, "client": client, "f": f, "key": key}
            if f in ("write", "add"):
                written[key] = written.get(key, 0) + 1
                entry["value"] = written[key]
            elif f == "cas":
                old = written.get(key)
                written[key] = written.get(key, 0) + 1
                entry["value"] = [old if old is not None else 0, written[key]]
            ops.append(entry)
        return {**to_data(sc.workload), "kind": "script", "ops": ops}

    return st.lists(op, min_size=1, max_size=max_ops).map(build)


def _client_count(sc: Scenario) -> int:
    workload = sc.workload
    if workload.clients is not None:
        return sum(group.count for group in workload.clients)
    return workload.clients_per_zone * len(sc.cluster.populated_zones())


def scenarios(
    base: Scenario | dict | str,
    *,
    min_containers: int | None = None,
    faults: bool = True,
    workload: bool = False,
    kinds: Sequence[str] = DEFAULT_KINDS,
    max_faults: int = 4,
    roles: Sequence[str] | None = None,
) -> st.SearchStrategy[Scenario]:
    """Whole scenarios built around ``base``: its policy, network and checks, with from
    ``min_containers`` (default: ``base``'s count) to ``base``'s containers, a workload
    drawn by :func:`workloads` (with ``workload``) and a fault schedule drawn by
    :func:`fault_schedules` (with ``faults``; otherwise ``base``'s own). The seed is
    ``base``'s. Shrinks towards fewer containers first, then as those strategies do."""
    sc = as_scenario(base)
    most = sc.cluster.containers
    least = most if min_containers is None else max(1, min(min_containers, most))

    def sized(count: int) -> st.SearchStrategy[Scenario]:
        data = to_data(sc)
        data["cluster"]["containers"] = count
        data["cluster"]["placement"] = {
            cid: zone for cid, zone in data["cluster"]["placement"].items() if int(cid[1:]) <= count
        }
        rf = data["cluster"].get("replication_factor")
        if rf is not None and rf > count:
            data["cluster"]["replication_factor"] = count
        data["faults"] = [] if faults else data["faults"]
        shell = parse_scenario(data)
        parts = {
            "workload": workloads(shell) if workload else st.just(shell.workload),
            "faults": (
                fault_schedules(shell, kinds=kinds, max_faults=max_faults, roles=roles)
                if faults
                else st.just(shell.faults)
            ),
        }
        return st.fixed_dictionaries(parts).map(
            lambda drawn: parse_scenario(
                {
                    **to_data(shell),
                    "workload": to_data(drawn["workload"]),
                    "faults": [to_data(f) for f in drawn["faults"]],
                }
            )
        )

    shells: dict[int, st.SearchStrategy[Scenario]] = {}

    def cached(count: int) -> st.SearchStrategy[Scenario]:
        if count not in shells:
            shells[count] = sized(count)
        return shells[count]

    return st.integers(least, most).flatmap(cached)
