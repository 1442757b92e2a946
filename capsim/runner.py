"""Run one scenario: build the simulated world, run it, measure it.

A run has two phases. The main phase lasts the scenario's ``duration``: clients invoke
operations and the nemesis applies faults. Then the final phase heals every fault
(partitions end, crashed containers restart), waits ``settle`` and reads every key through
each of its shard's replicas' containers; those reads are reported apart. The run ends
when the last final read has completed or timed out.

If the policy raises (see :class:`~capsim.errors.PolicyError`), the run stops there and
is measured up to that instant; :func:`run` raises the error with that partial result
attached, so the history so far can still be written and studied.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from capsim import metrics
from capsim.errors import CapsimError, PolicyError, ScenarioError
from capsim.history import History
from capsim.invariants import check as check_invariants
from capsim.invariants import summarize as summarize_invariants
from capsim.metrics.durability import LOST_LISTED
from capsim.metrics.scaling import scaling_summary, with_container_counts
from capsim.policies import policy_params, resolve_policy
from capsim.scenario import Scenario, dump_scenario
from capsim.sim.cluster import Cluster
from capsim.sim.engine import Engine
from capsim.sim.nemesis import Nemesis
from capsim.sim.network import Network
from capsim.sim.node import Node
from capsim.sim.workload import Workload
from capsim.topology import place

__all__ = [
    "run",
    "build",
    "World",
    "Result",
    "prepare",
    "versions",
    "estimate",
    "OUTPUT_FILES",
    "OUTPUT_MARKER",
    "OutputError",
]

#: How often, after the final heal, replicas are compared to measure convergence.
CONVERGENCE_POLL_S = 0.01

OUTPUT_FILES = (
    "summary.json",
    "history.jsonl",
    "timeseries.csv",
    "faults.jsonl",
    "scenario.resolved.yaml",
    "versions.json",
    "node.log",
    "lost_writes.jsonl",
    "roles.jsonl",
)
#: The file that marks a folder as one capsim wrote, so that ``--out`` may replace it.
OUTPUT_MARKER = ".capsim-output"
_TMP_INFIX = ".capsim-tmp-"


class OutputError(CapsimError):
    """An output folder that cannot or must not be written."""


def versions() -> dict[str, str]:
    """The versions a run's bytes depend on (same versions, same seed: same output)."""
    from capsim.version import __version__

    return {
        "capsim": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "simpy": simpy.__version__,
    }


@dataclass
class Result:
    """The outcome of one run: the summary and the data behind it."""

    scenario: Scenario
    seed: int
    summary: dict[str, Any]
    history: History
    faults: list[dict[str, Any]]
    timeseries: list[dict[str, Any]]
    #: With ``trace``: every message as a dict (iterable, with a length; kept on disk past
    #: 100,000 messages).
    messages: Iterable[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: Lines policies wrote with ``Node.log``: (time, container, shard, text).
    node_log: list[tuple[float, str, int, str]] = field(default_factory=list)
    node_log_dropped: int = 0
    #: Every lost write (the summary lists the first few).
    lost_writes: list[list[Any]] = field(default_factory=list)
    #: Every change of a replica's role or term: (time, container, shard or service,
    #: role, term); a crash records role None.
    roles: list[tuple[float, str, Any, str | None, int | None]] = field(default_factory=list)
    #: The invariants the policy claims with this scenario's parameters.
    claims: tuple[str, ...] = ()
    #: State-machine safety as sampled: ``{"samples": n, "conflict": {...} or None}``.
    safety: dict[str, Any] = field(default_factory=dict)
    #: A key whose replicas disagree at the end, with what each holds (or None).
    divergent: dict[str, Any] | None = None

    def check(self, invariants=None) -> list:
        """Check this run against ``invariants`` (names, :class:`capsim.invariants.Invariant`
        objects or functions of the result; default: the policy's claims)."""
        from capsim import invariants as inv

        return inv.check(self, invariants)

    def write(self, out_dir: str | os.PathLike, *, replace: bool = False) -> Path:
        """Write every output file to ``out_dir`` atomically: all of them or none.

        The files are written to a temporary folder beside ``out_dir`` that then takes its
        place, so an interrupted write never leaves a half-written result. An existing
        ``out_dir`` is replaced only if capsim wrote it (it holds ``.capsim-output``) or
        ``replace`` is true, and only if it is a folder; anything else raises
        :class:`OutputError`. Files and folders get the permissions the umask allows.
        Temporary folders that a killed run left beside ``out_dir`` are removed.
        """
        out = Path(out_dir)
        check_output(out, replace=replace)
        parent = out.absolute().parent
        parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(parent, out.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}{_TMP_INFIX}{os.getpid()}-", dir=parent))
        try:
            os.chmod(tmp, 0o777 & ~_umask())
            self._write_files(tmp)
            (tmp / OUTPUT_MARKER).write_text(
                "written by capsim run; `capsim run --out` may replace this folder\n",
                encoding="utf-8",
            )
            if out.is_dir() and not out.is_symlink():
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}{_TMP_INFIX}old-", dir=parent))
                old.rmdir()
                out.rename(old)
                tmp.rename(out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out

    def _write_files(self, folder: Path) -> None:
        (folder / "summary.json").write_text(
            json.dumps(self.summary, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        self.history.to_jsonl(folder / "history.jsonl")
        with open(folder / "timeseries.csv", "w", newline="", encoding="utf-8") as handle:
            columns = [
                "t_s",
                "ok",
                "fail",
                "info",
                "majority_ok",
                "majority_fail",
                "majority_info",
                "minority_ok",
                "minority_fail",
                "minority_info",
            ]
            if self.timeseries and "containers" in self.timeseries[0]:
                columns.append("containers")  # with scale actions or an autoscaler
            writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.timeseries)
        with open(folder / "faults.jsonl", "w", encoding="utf-8") as handle:
            for record in self.faults:
                handle.write(json.dumps(record, allow_nan=False) + "\n")
        resolved = dataclasses.replace(self.scenario, seed=self.seed)
        (folder / "scenario.resolved.yaml").write_text(dump_scenario(resolved), encoding="utf-8")
        (folder / "versions.json").write_text(
            json.dumps(self.summary["versions"], indent=2) + "\n", encoding="utf-8"
        )
        with open(folder / "node.log", "w", encoding="utf-8") as handle:
            for time_s, container, shard, text in self.node_log:
                handle.write(f"{time_s:.6f} {container} shard {shard}: {text}\n")
            if self.node_log_dropped:
                handle.write(f"... {self.node_log_dropped} more lines not kept\n")
        with open(folder / "lost_writes.jsonl", "w", encoding="utf-8") as handle:
            for key, element in self.lost_writes:
                handle.write(json.dumps({"key": key, "element": element}) + "\n")
        with open(folder / "roles.jsonl", "w", encoding="utf-8") as handle:
            for time_s, container, key, role, term in self.roles:
                where = {"service": key} if isinstance(key, str) else {"shard": key}
                record = {"time": time_s, "node": container, **where, "role": role, "term": term}
                handle.write(json.dumps(record, allow_nan=False) + "\n")
        if self.messages is not None:
            with open(folder / "messages.jsonl", "w", encoding="utf-8") as handle:
                for record in self.messages:
                    handle.write(json.dumps(record, allow_nan=False) + "\n")


def check_output(out: Path, *, replace: bool = False) -> None:
    """Raise :class:`OutputError` unless ``out`` may be written: absent, or a folder capsim
    wrote (or any folder, with ``replace``), never a file, a device, the working folder
    or one of its parents."""
    if not out.exists() and not out.is_symlink():
        # Fail before a long run, not after it: the folder must be creatable.
        ancestor = out.absolute().parent
        while not ancestor.exists():
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise OutputError(f"--out {out}: cannot create it: {ancestor} is not a folder")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise OutputError(f"--out {out}: cannot create it: {ancestor} is not writable")
        return
    if out.is_symlink() or not out.is_dir():
        raise OutputError(f"--out {out}: exists and is not a folder; refusing to replace it")
    here = Path.cwd().resolve()
    target = out.resolve()
    if target == here or target in here.parents:
        raise OutputError(f"--out {out}: is the working folder or one of its parents")
    if not os.access(out.absolute().parent, os.W_OK | os.X_OK):
        raise OutputError(
            f"--out {out}: cannot replace it: {out.absolute().parent} is not writable"
        )
    if not (out / OUTPUT_MARKER).is_file() and not replace:
        raise OutputError(
            f"--out {out}: exists and was not written by capsim; "
            "remove it, choose another folder, or pass --replace"
        )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_stale_temporaries(parent: Path, name: str) -> None:
    """Remove temporary folders a killed run left beside ``parent / name``."""
    prefix = f".{name}{_TMP_INFIX}"
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(prefix) or not entry.is_dir() or entry.is_symlink():
            continue
        owner = entry.name[len(prefix) :].split("-", 1)[0]
        if owner.isdigit() and _alive(int(owner)):
            continue  # another run is writing it right now
        shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


@dataclass
class Prepared:
    """A scenario checked down to its policy class and parameters, ready to run."""

    scenario: Scenario
    policy: type[Node]
    params: dict[str, Any]


def prepare(scenario: Scenario, *, allow_large: bool = False) -> Prepared:
    """Resolve the policy, validate its parameters for every image and check the run's
    size; raises :class:`~capsim.errors.ScenarioError` before anything runs.

    A run :func:`estimate` finds larger than ``LIMITS`` is refused unless ``allow_large``.
    """
    policy = resolve_policy(scenario.policy)
    params = {}
    for i, image in enumerate(scenario.images):
        merged = {**scenario.policy.params, **image.params}
        field_name = f"images[{i}].params" if image.params else "policy.params"
        params[image.ref] = policy_params(policy, merged, field=field_name)
    if not allow_large:
        check_size(scenario)
    return Prepared(scenario, policy, params)


#: Above any of these estimates a run is refused unless asked for (``--allow-large``).
LIMITS = {"operations": 20_000_000, "memory_bytes": 8e9, "events": 2e9}
# Rough costs behind the estimates, measured on the bench scenario (see README).
_BYTES_PER_OP = 1_400  # history, pairing, metrics and the check at their peak (fleet.yaml)
_EVENTS_PER_OP = 12  # messages and timers of a replicated operation
_WAKEUPS_PER_REPLICA_S = 20  # heartbeats and retries of an idle replica
_EVENTS_PER_WALL_S = 100_000  # fleet.yaml: 12.7 M events in 232 s with metrics and check


def estimate(scenario: Scenario) -> dict[str, float]:
    """The size of a run, estimated from the scenario alone (nothing is built):
    client ``operations`` in the main phase, ``final_reads``, simulation ``events``,
    peak ``memory_bytes`` and ``wall_s`` on a machine like the project's. Rough (a
    policy's own message pattern is unknown), but enough to tell a mistake from a run."""
    cluster, workload = scenario.cluster, scenario.workload
    if workload.clients is not None:
        clients = sum(g.count for g in workload.clients)
    else:
        clients = workload.clients_per_zone * min(len(cluster.zones), cluster.containers)
    active = max(scenario.duration - workload.start, 0.0)
    keys = workload.keys
    if workload.kind == "script":
        operations = len(workload.ops)
        keys = len({op.key for op in workload.ops})
    elif workload.mode == "open":
        operations = clients * workload.rate * active
    else:
        per_op = max(workload.think_time, 0.001)  # a closed loop waits at least a round trip
        operations = clients * workload.processes * active / per_op
    final_reads = keys * cluster.rf if scenario.final_reads else 0  # each replica
    replicas = cluster.shards * cluster.rf
    run_s = scenario.duration + scenario.settle + 2 * workload.timeout
    events = (operations + final_reads) * _EVENTS_PER_OP + replicas * _WAKEUPS_PER_REPLICA_S * run_s
    memory = (
        (operations + final_reads) * _BYTES_PER_OP
        + 3 * 8 * cluster.containers**2  # reachability, link faults and link classes
        + 2_000 * replicas
        + 200 * keys
    )
    return {
        "operations": float(operations),
        "final_reads": float(final_reads),
        "events": float(events),
        "memory_bytes": float(memory),
        "wall_s": float(events) / _EVENTS_PER_WALL_S,
    }


def check_size(scenario: Scenario) -> None:
    """Raise :class:`~capsim.errors.ScenarioError` if :func:`estimate` exceeds ``LIMITS``."""
    size = estimate(scenario)
    over = [name for name, limit in LIMITS.items() if size[name] > limit]
    if over:
        raise ScenarioError(
            f"too large to run by default: about {describe_size(size)} (estimated); "
            "pass --allow-large to run it anyway (capsim.run(..., allow_large=True))"
        )


def describe_size(size: dict[str, float]) -> str:
    """``estimate``'s figures for a person: operations, memory and wall time."""
    wall = size["wall_s"]
    when = (
        f"{wall:.0f} s"
        if wall < 120
        else f"{wall / 60:.0f} min"
        if wall < 7200
        else f"{wall / 3600:.0f} h"
        if wall < 172800
        else f"{wall / 86400:.0f} days"
    )
    return (
        f"{size['operations']:,.0f} operations, {size['memory_bytes'] / 1e9:,.1f} GB of "
        f"memory and {when} of wall time"
    )


def run(
    scenario: Scenario,
    seed: int | None = None,
    *,
    trace: bool = False,
    allow_large: bool = False,
    progress: Callable[[World], None] | None = None,
    invariants: Iterable[Any] | None = None,
) -> Result:
    """Run ``scenario`` with ``seed`` (default: the scenario's) and measure it.

    The summary's ``invariants`` section checks the run against ``invariants`` (names from
    :data:`capsim.invariants.INVARIANTS`, :class:`~capsim.invariants.Invariant` objects or
    functions of the result); by default, against those the policy claims.

    Same scenario and seed give the same result, byte for byte, apart from ``perf``.
    With ``trace`` every message is recorded for ``messages.jsonl``. A run estimated to
    be enormous is refused unless ``allow_large`` (see :func:`estimate`). ``progress``, if
    given, is called once with the built world before it runs, so that a caller can watch
    ``world.engine.now`` and ``world.events`` from another thread (as ``capsim run`` does
    to show progress).

    Raises :class:`~capsim.errors.PolicyError` if the policy fails; its ``result`` holds
    the run measured up to the failure.
    """
    world = build(scenario, seed, trace=trace, allow_large=allow_large)
    if progress is not None:
        progress(world)
    started = time.perf_counter()
    world.run()
    digest = world.digest()
    wall = time.perf_counter() - started
    result = world.result(digest, wall, invariants=invariants)
    if world.failure is not None:
        world.failure.result = result
        raise world.failure
    return result


def build(
    scenario: Scenario,
    seed: int | None = None,
    *,
    trace: bool = False,
    allow_large: bool = False,
) -> World:
    """Build the simulated world of ``scenario`` without running it.

    For tests and exploration: step it with ``world.engine.run(until)``, reach replicas
    with ``world.cluster.node(id, shard)``, then ``world.run()`` runs both phases.
    """
    prepared = prepare(scenario, allow_large=allow_large)
    seed = scenario.seed if seed is None else int(seed)
    return World(prepared, seed, trace)


class World:
    """Everything one run builds: engine, cluster, network, nemesis, workload, history."""

    def __init__(self, prepared: Prepared, seed: int, trace: bool):
        scenario = prepared.scenario
        self.scenario = scenario
        self.seed = seed
        self.engine = Engine(seed)
        self.placement = place(scenario)
        self.cluster = Cluster(
            self.engine,
            scenario,
            self.placement,
            prepared.policy,
            lambda image: prepared.params[image.ref],
        )
        self.network = Network(self.engine, scenario.network, self.cluster.containers, record=trace)
        self.cluster.attach(self.network)
        self.history = History()
        self.workload = Workload(self.engine, scenario, self.cluster, self.network, self.history)
        self.nemesis = Nemesis(
            self.engine,
            self.cluster,
            self.network,
            scenario.faults,
            scenario.duration,
            self.workload,
        )
        self.trace = trace
        self.end = 0.0
        self.started = False
        self.convergence_s: float | None = None
        self.divergent_example: dict[str, Any] | None = None
        self.failure: PolicyError | None = None
        self.main_messages: int | None = None  # messages sent in the main phase

    def start(self) -> None:
        """Boot the cluster and schedule the faults and the workload (once)."""
        if self.started:
            return
        self.started = True
        self.cluster.boot()
        self.nemesis.schedule()
        self.workload.start()

    def run(self) -> None:
        """Run the main phase, then the final phase (heal, settle, final reads).

        If the policy raises, the run stops at that instant: ``failure`` holds the
        :class:`~capsim.errors.PolicyError` and ``end`` the time it happened.
        """
        try:
            self._run_phases()
        except PolicyError as exc:
            self.failure = exc
            self.end = self.engine.now

    def _run_phases(self) -> None:
        scenario, engine = self.scenario, self.engine
        self.start()
        engine.run(scenario.duration)
        self.main_messages = self.network.sent
        self.cluster.sample_applied()
        self.nemesis.heal_everything()
        if self.cluster.policy.value_of is not Node.value_of:
            self._poll_convergence(scenario.duration)
        final_start = scenario.duration + scenario.settle
        timeout = scenario.workload.timeout
        engine.run(final_start)
        if scenario.final_reads:
            self.workload.final_reads()
        # Every operation completes by its deadline; run just past the last one.
        self.end = max(final_start, scenario.duration + timeout) + timeout
        engine.run(self.end + 1e-9)
        self.cluster.sample_applied()

    def _poll_convergence(self, healed_at: float) -> None:
        """Every CONVERGENCE_POLL_S after the final heal, read every replica of every key
        through introspection (no messages) until they all agree."""
        if self._converged():
            self.convergence_s = round(self.engine.now - healed_at, 9)
            return
        self.engine.call_in(CONVERGENCE_POLL_S, self._poll_convergence, healed_at)

    def _converged(self) -> bool:
        for key, shard in zip(self.workload.keys, self.workload.key_shard, strict=True):
            values = self._replica_values(key, shard)
            if values is None or len(set(values)) > 1:
                return False
        return True

    def _replica_values(self, key: str, shard: int) -> list | None:
        """What every replica keeping ``key`` holds (as comparable text), or None if one
        is down. A ``value_of`` that raises is the policy's error, reported as such."""
        cluster = self.cluster
        values = []
        for cid in cluster.placement.replicas[shard]:  # the hosts now (scale actions move them)
            node = cluster.node(cid, shard)
            if node is None:
                return None
            try:
                held = node.value_of(key)
            except Exception as exc:
                raise PolicyError(
                    policy=cluster.policy_name,
                    time=self.engine.now,
                    container=cid,
                    shard=shard,
                    handling=f"value_of({key!r}), introspection",
                    exc=exc,
                ) from exc
            if held is not None:  # None: this replica does not keep the key
                values.append(repr(held[0]))
        return values

    @property
    def events(self) -> int:
        """Events scheduled on the simulation clock so far (messages, timers, calls)."""
        return self.engine.events + self.network.scheduled

    def digest(self) -> str:
        h = self.history
        parts = [
            getattr(h, name).tobytes()
            for name in ("process", "type", "f", "key", "time", "node", "shard", "side")
        ]
        parts.append(repr(h.value).encode())
        parts.append(repr(sorted(h.errors.items())).encode())
        parts.append(json.dumps(self.nemesis.records, sort_keys=True).encode())
        return self.engine.digest(*parts)

    def result(self, digest: str, wall: float, invariants: Iterable[Any] | None = None) -> Result:
        scenario = self.scenario
        ops = self.history.operations()
        by_version = None
        if scenario.traffic is not None:
            by_version = (
                np.array(self.workload.op_versions, dtype=np.int64),
                self.workload.ab_versions,
            )
        measured = metrics.summarize(
            ops,
            self.nemesis.records,
            workload=scenario.workload.data_kind,
            end=scenario.duration,
            versions=by_version,
        )
        messages = self.network.counters()
        total = measured["ops"]["total"]
        main_sent = self.network.sent if self.main_messages is None else self.main_messages
        messages["main_phase"] = main_sent
        messages["per_op"] = round(main_sent / total, 6) if total else None
        durability = measured["durability"]
        lost = durability["lost"] or []
        durability["lost"] = None if durability["lost"] is None else lost[:LOST_LISTED]
        summary: dict[str, Any] = {
            "scenario": scenario.name,
            "seed": self.seed,
            "policy": scenario.policy.name,
            "sim_time_s": round(self.end, 9),
            "ops": measured["ops"],
            "availability": measured["availability"],
            "latency_ms": measured["latency_ms"],
            "staleness": measured["staleness"],
            "sessions": measured["sessions"],
            "durability": durability,
            "consistency": metrics.consistency(
                ops,
                scenario.workload.data_kind,
                enabled=scenario.check.linearizable,
                max_ops=scenario.check.max_ops,
                max_steps=scenario.check.max_steps,
            ),
            "convergence_s": self.convergence_s,
            "final": {**measured["final"], "divergent_keys": self.divergent_keys()},
            "invariants": None,
            "messages": messages,
            "faults": {
                "applied": sum(
                    1
                    for r in self.nemesis.records
                    if r["event"] in ("start", "apply") and r["fault"] is not None
                ),
                "skipped": sum(1 for r in self.nemesis.records if r["event"] == "skipped"),
                "windows": measured["fault_windows"],
            },
            "breakdown": measured["breakdown"],
            "queues": self.cluster.queue_stats(),
            "perf": {"events": self.events, "wall_s": round(wall, 6)},
            "trace_digest": digest,
            "versions": versions(),
        }
        if self.failure is not None:
            summary["failure"] = self.failure.to_json()
        summary = metrics.clean(summary)
        result = Result(
            scenario=scenario,
            seed=self.seed,
            summary=summary,
            history=self.history,
            faults=self.nemesis.records,
            timeseries=self.timeseries(ops),
            messages=self.network.trace_records() if self.trace else None,
            node_log=self.engine.log_lines,
            node_log_dropped=self.engine.log_dropped,
            lost_writes=lost,
            roles=self.cluster.roles,
            claims=self.claims(),
            safety={
                "samples": self.cluster.applied.samples,
                "conflict": self.cluster.applied.conflict,
            },
            divergent=self.divergent_example,
        )
        if scenario.scales():
            summary["scaling"] = metrics.clean(
                scaling_summary(
                    ops,
                    self.nemesis.records,
                    metrics.read_staleness(ops, scenario.workload.data_kind),
                    self.cluster.counts,
                    end=scenario.duration,
                )
            )
            if self.nemesis.autoscaler is not None:
                samples = self.nemesis.autoscaler.samples
                summary["scaling"]["autoscaler"] = metrics.clean(
                    {"measurements": [[t, v, d] for t, v, d in samples]}
                )
        verdicts = check_invariants(result, invariants)
        summary["invariants"] = metrics.clean(summarize_invariants(verdicts))
        return result

    def timeseries(self, ops) -> list[dict[str, Any]]:
        """``timeseries.csv``'s rows; with scale actions or an autoscaler, each carries the
        containers in the cluster at the end of its window (``containers``)."""
        rows = metrics.timeseries(ops)
        if self.scenario.scales():
            rows = with_container_counts(rows, self.cluster.counts)
        return rows

    def claims(self) -> tuple[str, ...]:
        """The invariants the policy claims with the cluster image's parameters."""
        params = self.cluster.params_for(self.scenario.image())
        return tuple(self.cluster.policy.claims(params))

    def divergent_keys(self) -> int | None:
        """Keys whose replicas hold different values at the end of the run, read through
        introspection (``value_of``) of every replica of each key's shard; ``None`` if
        the policy does not implement ``value_of``, or a replica is down."""
        if self.cluster.policy.value_of is Node.value_of or self.failure is not None:
            return None  # no introspection, or replicas a failure may have left half-built
        count = 0
        for key, shard in zip(self.workload.keys, self.workload.key_shard, strict=True):
            values = self._replica_values(key, shard)
            if values is None:
                return None
            if len(set(values)) > 1:
                if count == 0:
                    held = {}
                    for cid in self.cluster.placement.replicas[shard]:
                        value = self.cluster.node(cid, shard).value_of(key)
                        if value is not None:
                            held[cid] = repr(value[0])
                    self.divergent_example = {"key": key, "shard": shard, "values": held}
                count += 1
        return count
