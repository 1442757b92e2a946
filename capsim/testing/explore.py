"""Search fault schedules with Hypothesis for one that breaks an invariant, and shrink it.

:func:`explore` keeps a scenario's cluster, network, policy and workload, replaces its
faults with schedules drawn by :func:`~capsim.testing.strategies.fault_schedules`, runs
each (same seed every time, so the only difference between two runs is the schedule)
and checks the run against the invariants. Runs that break nothing still steer the
search: :func:`hypothesis.target` is told how close each came (stale reads, lost writes,
unknown outcomes, elections). The first schedule that breaks an invariant is shrunk, for
that invariant only, to a schedule Hypothesis cannot make smaller: fewer faults, earlier,
shorter, fewer containers. :meth:`Exploration.write` saves it as a scenario that
``capsim run`` replays exactly, with the evidence and a timeline plot.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as seeded
from hypothesis import strategies as st

from capsim.errors import CapsimError, PolicyError
from capsim.faults import ROLE_TARGETS, Churn, Partition, RandomFaults, fault_from_repr
from capsim.runner import OUTPUT_MARKER, Result, check_output, prepare, run
from capsim.scenario import Scenario, check_references, dump_scenario
from capsim.testing import checks
from capsim.testing.strategies import (
    DEFAULT_KINDS,
    as_scenario,
    describe,
    fault_schedules,
    storms,
)

__all__ = ["explore", "Exploration", "Failure", "Progress", "DEFAULTS", "replay", "frozen", "AIM"]

#: Examples and budget (seconds) by profile: the default hunt, a quick CI check, a long hunt.
DEFAULTS = {
    "default": {"examples": 1000, "budget_s": 90.0},
    "ci": {"examples": 25, "budget_s": 30.0},
    "thorough": {"examples": 20_000, "budget_s": 3600.0},
}
#: Shrinking a failure may run this fraction of the budget past it.
SHRINK_SHARE = 0.25
#: A storm's failure frozen and pruned to more faults than this sends the search on to
#: the same storm's other seeds for a smaller one, while the budget lasts.
AIM = 3


@dataclass
class Failure:
    """A schedule that broke an invariant, shrunk: the reproducer and its evidence."""

    invariant: str
    message: str
    evidence: Any
    faults: tuple
    scenario: Scenario
    result: Result
    #: For each fault, the containers it resolved to when it fired (from ``faults.jsonl``).
    resolved: list[dict[str, Any]] = field(default_factory=list)
    #: The random nemesis (:func:`~capsim.testing.strategies.storms`) whose faults, frozen
    #: and pruned, are ``faults``; None when a schedule was drawn as such.
    storm: Any = None

    def to_json(self) -> dict[str, Any]:
        """The failure as plain data (in ``capsim explore --json`` and ``evidence.json``)."""
        return {
            "invariant": self.invariant,
            "message": self.message,
            "evidence": self.evidence,
            "faults": [describe(f) for f in self.faults],
            "resolved": self.resolved,
            "storm": None if self.storm is None else describe(self.storm),
        }


@dataclass
class Progress:
    """Where a search stands, passed to the ``progress`` callback after every run."""

    examples: int
    shrink_runs: int
    elapsed_s: float
    leader_examples: int
    best: str | None
    found: str | None
    #: Faults in the smallest schedule found so far that breaks the invariant (a storm's
    #: once frozen), None before one is found.
    smallest: int | None = None


@dataclass
class Exploration:
    """What :func:`explore` did and found."""

    base: Scenario
    seed: int
    invariants: list[str]
    examples: int
    shrink_runs: int
    elapsed_s: float
    found_after_s: float | None
    leader_examples: int
    faulted_examples: int
    stopped: str
    best: str | None
    failure: Failure | None = None

    @property
    def found(self) -> bool:
        """Whether some schedule broke an invariant."""
        return self.failure is not None

    def to_json(self) -> dict[str, Any]:
        """The exploration as plain data (what ``capsim explore --json`` prints)."""
        out: dict[str, Any] = {
            "scenario": self.base.name,
            "seed": self.seed,
            "invariants": self.invariants,
            "examples": self.examples,
            "shrink_runs": self.shrink_runs,
            "elapsed_s": round(self.elapsed_s, 3),
            "found_after_s": None if self.found_after_s is None else round(self.found_after_s, 3),
            "leader_examples": self.leader_examples,
            "faulted_examples": self.faulted_examples,
            "stopped": self.stopped,
            "best": self.best,
            "failure": None,
        }
        if self.failure is not None:
            out["failure"] = self.failure.to_json()
        return out

    def write(
        self, out_dir: str | os.PathLike, *, replace: bool = False, outputs: bool = True
    ) -> Path:
        """Write the reproducer to ``out_dir``, all at once or not at all:
        ``scenario.yaml`` (the base scenario with the shrunk faults and the seed; ``capsim
        run`` replays it exactly), ``evidence.json`` (the invariant, its message and
        evidence, the faults as found and what each resolved to) and, with ``outputs``,
        ``run/`` (the reproducer's outputs, as ``capsim run --out`` writes them) and
        ``timeline.png`` (when :mod:`capsim.plot` can draw it). Nothing is written when
        nothing was found.
        An existing folder is replaced only if capsim wrote it (or with ``replace``)."""
        if self.failure is None:
            raise ValueError("nothing to write: the search broke no invariant")
        out = Path(out_dir)
        check_output(out, replace=replace)
        parent = out.absolute().parent
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.capsim-tmp-{os.getpid()}-", dir=parent))
        try:
            self._fill(tmp, out, outputs)
            (tmp / OUTPUT_MARKER).write_text(
                "written by capsim explore; `capsim explore --out` may replace this folder\n",
                encoding="utf-8",
            )
            if out.is_dir() and not out.is_symlink():
                shutil.rmtree(out)
            tmp.rename(out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out

    def _fill(self, folder: Path, final: Path, outputs: bool) -> None:
        failure = self.failure
        assert failure is not None
        scenario = _portable(failure.scenario, final.absolute())
        (folder / "scenario.yaml").write_text(
            self._header(final) + dump_scenario(scenario), encoding="utf-8"
        )
        evidence = {
            "scenario": self.base.name,
            "seed": self.seed,
            **failure.to_json(),
            "examples": self.examples,
            "shrink_runs": self.shrink_runs,
            "found_after_s": round(self.found_after_s or 0.0, 3),
        }
        (folder / "evidence.json").write_text(
            json.dumps(evidence, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        if outputs:
            failure.result.write(folder / "run")
            _timeline(folder / "run", folder / "timeline.png")

    def _header(self, final: Path) -> str:
        failure = self.failure
        assert failure is not None
        lines = [
            f"# Found by capsim explore: {failure.invariant} fails with seed {self.seed}.",
            f"# {failure.message}",
            f"# Replay: capsim run {final / 'scenario.yaml'}",
            "# The faults as found, and the containers each hit when it fired:",
        ]
        for fault, hit in zip(failure.faults, failure.resolved, strict=True):
            lines.append(f"#   {describe(fault)}  -> {_hit_text(hit)}")
        return "\n".join(lines) + "\n"

    def report(self, out_dir: str | os.PathLike | None = None, *, max_lines: int = 40) -> str:
        """What ``capsim explore`` prints: the verdict, and for a failure the seed, the
        invariant with its evidence, the shrunk faults and the reproducer's path."""
        names = ", ".join(self.invariants) or "the invariants the policy claims"
        if self.failure is None:
            why = "ran out of time" if self.stopped == "budget" else "ran every example"
            return (
                f"capsim explore: {self.base.name}: {self.examples} examples in "
                f"{self.elapsed_s:.1f} s broke none of {names} (seed {self.seed}; {why}); "
                f"{self.leader_examples} of them had a fault against the leader or primary"
            )
        f = self.failure
        count = len(f.faults)
        shrunk = "shrunk" if self.stopped == "failure" else "shrinking cut short by the budget"
        lines = [
            f"capsim explore: {self.base.name}: {f.invariant} fails with seed {self.seed}, "
            f"found after {self.examples} examples ({self.found_after_s or 0:.1f} s), {shrunk} "
            f"in {self.shrink_runs} runs to {count} fault{'s' if count != 1 else ''}"
            + (":" if count else " (it fails with no fault at all)"),
        ]
        for fault, hit in zip(f.faults, f.resolved, strict=True):
            lines.append(f"  {describe(fault)}  -> {_hit_text(hit)}")
        if f.storm is not None:
            lines.append(f"(found by the storm {describe(f.storm)}, its faults frozen and pruned)")
        lines.append(f"invariant {f.invariant}: {f.message}")
        text = compact(f.evidence).splitlines()
        if len(text) > max_lines:
            text = [*text[:max_lines], f"... ({len(text) - max_lines} more lines)"]
        lines.append("evidence:")
        lines.extend("  " + line for line in text)
        if out_dir is not None:
            path = Path(out_dir) / "scenario.yaml"
            lines.append(f"reproducer: {path} (replay: capsim run {path})")
        return "\n".join(lines)


def compact(value: Any, items: int = 8) -> str:
    """Evidence for a terminal: a record (a mapping of plain values) on one line, a list
    of records one per line, and lists longer than ``items`` cut to their first
    ``items`` and their length."""
    return "\n".join(_lines(value, items))


def _plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_scalar_or_list(v) for v in value.values())
    return _scalar_or_list(value)


def _scalar_or_list(value: Any) -> bool:
    if isinstance(value, list):
        return all(not isinstance(v, dict | list) for v in value)
    return not isinstance(value, dict)


def _lines(value: Any, items: int) -> list[str]:
    if _plain(value):
        return [_short(value, items)]
    out: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            inner = _lines(item, items)
            if len(inner) == 1:
                out.append(f"{key}: {inner[0]}")
            else:
                out.append(f"{key}:")
                out.extend("  " + line for line in inner)
        return out
    for item in value:
        inner = _lines(item, items)
        out.append("- " + inner[0])
        out.extend("  " + line for line in inner[1:])
    return out


def _short(value: Any, items: int) -> str:
    if isinstance(value, list) and len(value) > items:
        head = ", ".join(_short(v, items) for v in value[:items])
        return f"[{head}, ... ({len(value)} items)]"
    if isinstance(value, list):
        return "[" + ", ".join(_short(v, items) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v, items)}" for k, v in value.items()) + "}"
    if isinstance(value, float):
        value = round(value, 6)  # a time to the microsecond
    return json.dumps(value, allow_nan=False)


def _hit_text(hit: dict[str, Any]) -> str:
    if hit.get("skipped"):
        return f"skipped ({hit['skipped']})"
    parts = []
    if hit.get("targets"):
        parts.append(", ".join(hit["targets"]))
    if hit.get("groups"):
        parts.append(" | ".join(" ".join(g) for g in hit["groups"]))
    return "; ".join(parts) or "applied"


def _portable(scenario: Scenario, folder: Path) -> Scenario:
    """The scenario with a user policy's folder relative to ``folder``, so that the
    reproducer replays from wherever the folder is moved with its neighbours."""
    path = scenario.policy.path
    if not path or not os.path.isabs(path):
        return scenario
    try:
        relative = os.path.relpath(path, folder)
    except ValueError:  # another drive on Windows
        return scenario
    policy = dataclasses.replace(scenario.policy, path=relative)
    return dataclasses.replace(scenario, policy=policy)


def _timeline(run_dir: Path, png: Path) -> None:
    try:
        from capsim import plot
    except ImportError:  # no plotting in this installation
        return
    draw = getattr(plot, "timeline", None)
    save = getattr(plot, "save", None)
    if draw is None or save is None:
        return
    plot_error = getattr(plot, "PlotError", CapsimError)
    try:
        figure = draw(run_dir)
    except plot_error:
        return
    save(figure, png)


class _OutOfTime(BaseException):
    """Raised inside the Hypothesis test when the budget has run out: a BaseException, so
    that Hypothesis stops at once instead of taking it for a failure to shrink."""


class _Broken(Exception):
    """Raised inside the Hypothesis test when a schedule breaks the invariant."""

    def __init__(self, schedule: tuple, verdict: dict[str, Any]):
        super().__init__(verdict["name"])
        self.schedule = schedule
        self.verdict = verdict


class _StormBroken(BaseException):
    """Raised inside the Hypothesis test when a storm is the first schedule to break the
    invariant: a BaseException, so that Hypothesis stops without shrinking it."""

    def __init__(self, schedule: tuple, verdict: dict[str, Any]):
        super().__init__(verdict["name"])
        self.schedule = schedule
        self.verdict = verdict


@dataclass
class _Outcome:
    verdict: dict[str, Any] | None  # the failed verdict that counts, if any
    scores: dict[str, float]  # checks.badness: how close the run came


class _Search:
    """The state of one search: the cache of runs, counters and deadlines."""

    def __init__(self, base, seed, names, budget_s, progress):
        self.base = base
        self.seed = seed
        self.names = names
        self.budget_s = budget_s
        self.progress = progress
        self.started = time.perf_counter()
        self.deadline = self.started + budget_s
        self.cache: dict[tuple, _Outcome] = {}
        self.examples = 0
        self.shrink_runs = 0
        self.leader_examples = 0
        self.faulted_examples = 0
        self.locked: str | None = None
        self.found_at: float | None = None
        self.out_of_time = False
        self.best: tuple[float, str] | None = None
        self.last: Result | None = None
        #: The last schedule that broke the invariant: while shrinking, the smallest yet.
        self.failing: tuple[tuple, dict[str, Any]] | None = None
        #: The first schedule that broke the invariant.
        self.first: tuple | None = None
        #: Faults in the smallest schedule (not a storm) that broke it so far.
        self.smallest: int | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def scenario(self, schedule: tuple) -> Scenario:
        scenario = dataclasses.replace(self.base, faults=tuple(schedule))
        check_references(scenario)
        return scenario

    def run(self, schedule: tuple) -> tuple[Result, list[dict[str, Any]]]:
        """Run ``schedule`` and check it: the result and the verdicts."""
        try:
            result = run(
                self.scenario(schedule), seed=self.seed, allow_large=True, invariants=self.names
            )
        except PolicyError as exc:
            verdict = {
                "name": checks.POLICY_ERROR,
                "status": "failed",
                "message": exc.headline(),
                "evidence": exc.to_json(),
            }
            return exc.result, [verdict]
        return result, checks.from_summary(result)

    def evaluate(self, schedule: tuple, *, deadline: bool = True) -> _Outcome:
        key = tuple(repr(f) for f in schedule)
        known = self.cache.get(key)
        if known is not None:
            return known
        now = time.perf_counter()
        limit = self.deadline
        if self.found_at is not None:
            limit = self.deadline + SHRINK_SHARE * self.budget_s
        if deadline and now >= limit:
            self.out_of_time = True
            raise _OutOfTime
        result, found = self.run(schedule)
        self.last = result
        verdict = checks.failed(found, only=self.locked)
        outcome = _Outcome(verdict, checks.badness(result))
        self.cache[key] = outcome
        if self.found_at is None:
            self.examples += 1
            if schedule:
                self.faulted_examples += 1
            if checks.leader_faults(result):
                self.leader_examples += 1
            self._rank(schedule, outcome)
        else:
            self.shrink_runs += 1
        if verdict is not None:
            self.failing = (tuple(schedule), verdict)
            if not _is_storm(tuple(schedule)) and (
                self.smallest is None or len(schedule) < self.smallest
            ):
                self.smallest = len(schedule)
            if self.locked is None:
                self.locked = verdict["name"]
                self.found_at = self.elapsed()
                self.first = tuple(schedule)
        self.report()
        return outcome

    def _rank(self, schedule: tuple, outcome: _Outcome) -> None:
        scores = outcome.scores
        weight = (
            1e6 * bool(outcome.verdict)
            + 1e3 * scores["lost writes"]
            + 10 * scores["stale reads"]
            + scores["elections"]
        )
        if self.best is None or weight > self.best[0]:
            shown = [f"{v:g} {k}" for k, v in scores.items() if v and k != "unknown outcomes"]
            what = ", ".join(shown) or "nothing"
            if outcome.verdict:
                what = f"{outcome.verdict['name']} fails"
            count = len(schedule)
            self.best = (weight, f"{what} ({count} fault{'s' if count != 1 else ''})")

    def report(self) -> None:
        if self.progress is not None:
            self.progress(
                Progress(
                    examples=self.examples,
                    shrink_runs=self.shrink_runs,
                    elapsed_s=self.elapsed(),
                    leader_examples=self.leader_examples,
                    best=self.best[1] if self.best else None,
                    found=self.locked,
                    smallest=self.smallest,
                )
            )


def _check_names(names: Sequence[Any] | None) -> list[Any] | None:
    if names is None:
        return None
    known = checks.known_invariants()
    for name in names:
        if isinstance(name, str) and name not in known:
            raise CapsimError(
                f"unknown invariant {name!r}; invariants: {', '.join(known)} "
                "(or a predicate of your own from Python)"
            )
    return list(names)


def explore(
    scenario: Scenario | dict | str | os.PathLike,
    *,
    invariants: Sequence[Any] | None = None,
    examples: int | None = None,
    budget_s: float | None = None,
    seed: int | None = None,
    profile: str = "default",
    kinds: Sequence[str] = DEFAULT_KINDS,
    max_faults: int = 4,
    roles: Sequence[str] | None = None,
    storm: bool | str = True,
    progress: Callable[[Progress], None] | None = None,
) -> Exploration:
    """Search fault schedules of ``scenario`` for one that breaks an invariant.

    ``invariants``: names (or predicates, see :mod:`capsim.invariants`); default: those
    the policy claims. Every run uses ``seed`` (default: the scenario's), and so does
    Hypothesis, so the same call searches the same schedules in the same order (up to
    where the time budget cuts it). At most ``examples`` schedules (``kinds`` of faults,
    up to ``max_faults`` each) are tried within ``budget_s`` seconds (defaults by
    ``profile``: see :data:`DEFAULTS`); shrinking a failure may take up to a quarter of
    the budget more. ``roles``: role targets to aim faults at (default: those the
    replicas report in a run without faults, of ``leader`` and ``primary``).
    ``progress`` is called after every run with a :class:`Progress`.

    With ``storm`` (the default), two examples in three are storms
    (:func:`~capsim.testing.strategies.storms`): a random nemesis aimed at the leader that
    chases its elections. A storm that breaks an invariant is frozen into the schedule
    of faults it drew (:func:`frozen`) and pruned to the faults the failure needs; if
    more than :data:`AIM` remain, the same storm with other seeds (at its rate, half and
    a quarter of it) is tried for a smaller one until the budget (and the quarter more
    shrinking may take) runs out. With
    ``storm="only"`` every example is a storm; with ``storm=False`` none is.

    The schedule without faults is run first: if it already breaks an invariant, that is
    the (smallest) failure. Raises :class:`~capsim.errors.CapsimError` for an unknown
    invariant name or profile.
    """
    if profile not in DEFAULTS:
        raise CapsimError(f"unknown profile {profile!r}; profiles: {', '.join(DEFAULTS)}")
    defaults = DEFAULTS[profile]
    examples = defaults["examples"] if examples is None else int(examples)
    budget_s = defaults["budget_s"] if budget_s is None else float(budget_s)
    sc = as_scenario(scenario)
    seed = sc.seed if seed is None else int(seed)
    base = dataclasses.replace(sc, faults=(), seed=seed)
    prepare(base, allow_large=False)
    names = _check_names(invariants)
    search = _Search(base, seed, names, budget_s, progress)
    shown_names = checks.invariant_names(names) if names is not None else None

    first = search.evaluate(())
    if roles is None:
        roles = _roles_seen(search.last)
    if first.verdict is not None:
        return _finish(search, shown_names, (), first.verdict, "failure")
    if shown_names is None:
        shown_names = _claimed_names(search)

    strategy = fault_schedules(base, kinds=kinds, max_faults=max_faults, min_faults=1, roles=roles)
    if storm not in (True, False, "only"):
        raise CapsimError(f"storm must be true, false or 'only', not {storm!r}")
    if storm:
        try:
            drawn_storms = storms(base, kinds=kinds, roles=roles).map(lambda one: (one,))
        except ValueError:  # none of the kinds a storm draws is allowed
            if storm == "only":
                raise CapsimError(
                    f"storm='only': a storm draws partitions, crashes, pauses or clock "
                    f"faults, and the kinds allowed are {', '.join(kinds)}"
                ) from None
        else:
            # Two examples in three are storms: many faults in one run, aimed at leaders
            # and timed by their elections, reach what a few faults reach only by luck.
            if storm == "only":
                strategy = drawn_storms
            else:
                strategy = st.one_of(strategy, drawn_storms, drawn_storms)

    @settings(
        max_examples=max(1, examples - 1),
        database=None,
        deadline=None,
        derandomize=False,
        phases=(Phase.generate, Phase.target, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
        print_blob=False,
    )
    @seeded(seed)
    @given(strategy)
    def probe(schedule):
        outcome = search.evaluate(schedule)
        for label, value in outcome.scores.items():
            hypothesis.target(float(value), label=label)
        if outcome.verdict is not None:
            if _is_storm(schedule) and search.first == tuple(schedule):
                # Not Hypothesis's to shrink (another seed is another storm): frozen and
                # pruned by _finish.
                raise _StormBroken(schedule, outcome.verdict)
            raise _Broken(schedule, outcome.verdict)

    try:
        probe()
    except (_Broken, _StormBroken) as broken:
        return _finish(search, shown_names, broken.schedule, broken.verdict, "failure")
    except _OutOfTime:
        if search.failing is not None:  # the budget cut shrinking short: the smallest yet
            schedule, verdict = search.failing
            return _finish(search, shown_names, schedule, verdict, "shrink-budget")
        return _finish(search, shown_names, None, None, "budget")
    return _finish(search, shown_names, None, None, "examples")


def _roles_seen(result: Result | None) -> tuple[str, ...]:
    """The role words worth aiming at: ``leader`` if some replica led in a run without
    faults (``primary`` for primary-based policies), else none."""
    if result is None:
        return ()
    seen = {role for _, _, _, role, _ in result.roles}
    if "primary" in seen:
        return ("primary",)
    if "leader" in seen:
        return ("leader",)
    return ()


def _claimed_names(search: _Search) -> list[str]:
    return list(search.last.claims) if search.last is not None else []


def _prune(search: _Search, schedule: tuple) -> tuple:
    """Try each fault of a failing ``schedule`` away, first to last, keeping every removal
    after which the run still breaks the invariant: no single fault of the result can go
    (whatever the budget let Hypothesis's shrinking do, at most a few runs more). While
    more than :data:`AIM` faults remain, pairs are tried away too (at most
    :data:`PAIR_LIMIT` faults): two faults can stand in for each other, one needed only
    because the other is there."""
    while True:
        i = 0
        while i < len(schedule):
            fewer = schedule[:i] + schedule[i + 1 :]
            if search.evaluate(fewer, deadline=False).verdict is not None:
                schedule = fewer
            else:
                i += 1
        if not AIM < len(schedule) <= PAIR_LIMIT:
            return schedule
        for i, j in itertools.combinations(range(len(schedule)), 2):
            fewer = tuple(f for k, f in enumerate(schedule) if k not in (i, j))
            if search.evaluate(fewer, deadline=False).verdict is not None:
                schedule = fewer
                break
        else:
            return schedule


def _is_storm(schedule: tuple) -> bool:
    return len(schedule) == 1 and isinstance(schedule[0], RandomFaults)


#: Pruning tries pairs of faults away from schedules of at most this many.
PAIR_LIMIT = 10


def _shrink_storm(search: _Search, storm: RandomFaults) -> tuple[tuple, RandomFaults]:
    """The faults ``storm`` drew, frozen and pruned; while more than :data:`AIM` remain
    and time allows, the same storm with other seeds, keeping the smallest failure.
    Returns it and the storm that drew it."""
    best = _prune(search, _freeze(search, (storm,)))
    source = storm
    k = 1
    while len(best) > AIM:
        # Other seeds, at the storm's rate and at a half and a quarter of it: fewer faults
        # that chase the same elections prune to fewer.
        rate = max(0.1, storm.rate / 2 ** (k % 3))
        other = (dataclasses.replace(storm, seed=(storm.seed + k) % 2**32, rate=rate),)
        k += 1
        try:
            if search.evaluate(other).verdict is None:
                continue
        except _OutOfTime:
            break
        candidate = _prune(search, _freeze(search, other))
        if len(candidate) < len(best):
            best, source = candidate, other[0]
    return best, source


def _freeze(search: _Search, schedule: tuple) -> tuple:
    """A storm's faults as a schedule that still breaks the invariant: with role targets
    kept if that replays the failure, else every target pinned to the containers it hit;
    the storm itself if neither does."""
    result, _ = search.run(schedule)
    for concrete in (False, True):
        try:
            faults = frozen(result, concrete=concrete)
        except ValueError:
            continue
        if faults and search.evaluate(faults, deadline=False).verdict is not None:
            return faults
    return schedule


def _simplify(search: _Search, schedule: tuple) -> tuple:
    """Each fault's times rounded (``at`` down and ``duration`` to the 0.1 s grid, a
    ``delay`` to 10 ms), each kept where the run still breaks the invariant."""
    schedule = tuple(schedule)
    for i, fault in enumerate(schedule):
        rounded = _rounded(fault)
        if rounded is None:
            continue
        candidate = schedule[:i] + (rounded,) + schedule[i + 1 :]
        try:
            candidate = tuple(sorted(candidate, key=lambda f: f.at))
            if search.evaluate(candidate, deadline=False).verdict is not None:
                schedule = candidate
        except (CapsimError, ValueError):
            continue
    return schedule


def _rounded(fault: Any) -> Any:
    from capsim.testing.strategies import STEP_S

    changes: dict[str, Any] = {}
    at = round(math.floor(fault.at / STEP_S + 1e-9) * STEP_S, 6)
    if at != fault.at:
        changes["at"] = at
    duration = getattr(fault, "duration", None)
    if isinstance(duration, float):
        shorter = round(max(STEP_S, round(duration / STEP_S) * STEP_S), 6)
        if shorter != duration:
            changes["duration"] = shorter
    delay = getattr(fault, "delay", None)
    if isinstance(delay, float) and getattr(fault, "after", None) is not None:
        nearer = round(delay, 2)
        if nearer != delay:
            changes["delay"] = nearer
    offset = getattr(fault, "offset", None)
    if isinstance(offset, float):
        nearer = round(round(offset / STEP_S) * STEP_S, 6)
        if nearer != offset and (nearer != 0 or getattr(fault, "rate", 1.0) != 1.0):
            changes["offset"] = nearer
    if not changes:
        return None
    try:
        return dataclasses.replace(fault, **changes)
    except (ValueError, TypeError):
        return None


#: Fault kinds that generate others: :func:`frozen` replaces them by what they generated.
_GENERATORS = (RandomFaults, Churn)


def frozen(result: Result, *, concrete: bool = False) -> tuple:
    """A run's faults as a schedule without generators: its scheduled faults, and in place
    of each random nemesis or churn the faults it drew, as ``faults.jsonl`` recorded them
    (each at its time, or ``after: new-leader`` with its delay for one that chased an
    election), sorted by ``at``. Faults that found no target are left out.

    Targets that were drawn at random are pinned to the containers they hit, and a
    partition whose sides were drawn (``halves`` beyond its targets) becomes explicit
    ``groups``; role targets (``leader``) stay roles, so the schedule reads as the
    storm's intent. With ``concrete``, every target is pinned. Random choices are the
    only thing that could replay differently: replay the schedule to check (as
    :func:`explore` does)."""
    kept = [f for f in result.scenario.faults if not isinstance(f, _GENERATORS)]
    for record in result.faults:
        if record.get("instance") is None or record.get("event") not in ("start", "apply"):
            continue
        spec = record.get("spec")
        if not spec:
            continue
        kept.append(_pinned(fault_from_repr(spec), record, concrete))
    return tuple(sorted(kept, key=lambda f: f.at))


def _pinned(fault: Any, record: dict[str, Any], concrete: bool) -> Any:
    hit = tuple(record.get("targets") or ())
    changes: dict[str, Any] = {}
    if isinstance(fault, Partition):
        groups = tuple(tuple(g) for g in record.get("groups") or ())
        random_sides = fault.shape not in ("isolate", "groups") and not (
            fault.shape == "halves" and groups and min(len(g) for g in groups) == len(hit)
        )
        if (concrete or random_sides) and groups and fault.shape != "one-way":
            return dataclasses.replace(fault, shape="groups", groups=groups, target=None)
    target = getattr(fault, "target", None)
    if target is not None and hit:
        names = (target,) if isinstance(target, str) else tuple(target)
        drawn = "random" in names
        if concrete or drawn or not all(n in ROLE_TARGETS for n in names):
            changes["target"] = hit[0] if len(hit) == 1 else hit
    return dataclasses.replace(fault, **changes) if changes else fault


def _finish(search, names, schedule, verdict, stopped) -> Exploration:
    failure = None
    storm = None
    if verdict is not None:
        schedule = tuple(schedule)
        if _is_storm(schedule):
            schedule, storm = _shrink_storm(search, schedule[0])
        schedule = _simplify(search, _prune(search, schedule))
        result, found = search.run(schedule)
        again = checks.failed(found, only=verdict["name"])
        failure = Failure(
            invariant=verdict["name"],
            message=(again or verdict)["message"],
            evidence=(again or verdict)["evidence"],
            faults=tuple(schedule),
            scenario=dataclasses.replace(
                search.scenario(schedule),
                description=f"Found by capsim explore in {search.base.name}: "
                f"{verdict['name']} fails with these faults and seed {search.seed}.",
            ),
            result=result,
            resolved=resolved(result, schedule),
            storm=storm,
        )
        if names is None:
            names = [v["name"] for v in found]
    return Exploration(
        base=search.base,
        seed=search.seed,
        invariants=list(names or []),
        examples=search.examples,
        shrink_runs=search.shrink_runs,
        elapsed_s=search.elapsed(),
        found_after_s=search.found_at,
        leader_examples=search.leader_examples,
        faulted_examples=search.faulted_examples,
        stopped=stopped,
        best=search.best[1] if search.best else None,
        failure=failure,
    )


def resolved(result: Result, schedule: Sequence[Any]) -> list[dict[str, Any]]:
    """For each fault of ``schedule``, what it hit when it fired, from the run's fault
    records: ``{"fault": repr, "time": ..., "targets": [...], "groups": [[...]]}``, or
    ``skipped`` with the reason."""
    first: dict[int, dict[str, Any]] = {}
    for record in result.faults:
        index = record.get("fault")
        if index is None or "instance" in record or index in first:
            continue
        if record.get("event") in ("start", "apply", "skipped"):
            first[index] = record
    out = []
    for i, fault in enumerate(schedule):
        record = first.get(i, {})
        hit: dict[str, Any] = {"fault": describe(fault), "time": record.get("time", fault.at)}
        if record.get("event") == "skipped":
            hit["skipped"] = record.get("reason", "no target")
        for name in ("targets", "groups"):
            if record.get(name):
                hit[name] = record[name]
        out.append(hit)
    return out


def replay(path: str | os.PathLike, names: Sequence[Any] | None = None):
    """Run a reproducer (``scenario.yaml`` written by :meth:`Exploration.write`) and check
    it: ``(result, verdicts)``. With ``names`` None, the invariant recorded beside it in
    ``evidence.json`` (else the policy's claims)."""
    from capsim.scenario import load_scenario

    path = Path(path)
    scenario = load_scenario(path)
    if names is None:
        evidence = path.with_name("evidence.json")
        if evidence.is_file():
            names = [json.loads(evidence.read_text(encoding="utf-8"))["invariant"]]
    if names is not None and list(names) == [checks.POLICY_ERROR]:
        try:
            run(scenario, allow_large=True)
        except PolicyError as exc:
            return exc.result, [
                {
                    "name": checks.POLICY_ERROR,
                    "status": "failed",
                    "message": exc.headline(),
                    "evidence": exc.to_json(),
                }
            ]
        raise CapsimError(f"{path}: the policy no longer raises")
    result = run(scenario, allow_large=True)
    return result, checks.verdicts(result, names)
