"""Run one scenario: build the simulated world, run it, measure it.

A run has two phases. The main phase lasts the scenario's ``duration``: clients invoke
operations and the nemesis applies faults. Then the final phase heals every fault
(partitions end, crashed containers restart), waits ``settle`` and reads every key from
every container; those reads are reported apart. The run ends when the last final read
has completed or timed out.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from capsim import metrics
from capsim.history import History
from capsim.policies import policy_params, resolve_policy
from capsim.scenario import Scenario, dump_scenario
from capsim.sim.cluster import Cluster
from capsim.sim.engine import Engine
from capsim.sim.nemesis import Nemesis
from capsim.sim.network import Network
from capsim.sim.node import Node
from capsim.sim.workload import Workload
from capsim.topology import place

__all__ = ["run", "build", "World", "Result", "prepare", "versions", "OUTPUT_FILES"]

#: How often, after the final heal, replicas are compared to measure convergence.
CONVERGENCE_POLL_S = 0.01

OUTPUT_FILES = (
    "summary.json",
    "history.jsonl",
    "timeseries.csv",
    "faults.jsonl",
    "scenario.resolved.yaml",
    "versions.json",
)


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
    messages: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self, out_dir: str | os.PathLike) -> Path:
        """Write every output file to ``out_dir`` atomically: all of them or none.

        The files are written to a temporary folder beside ``out_dir`` that then replaces
        it, so an interrupted write never leaves a half-written result.
        """
        out = Path(out_dir)
        parent = out.resolve().parent
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
        try:
            self._write_files(tmp)
            if out.exists():
                if not out.is_dir():
                    raise FileExistsError(f"{out} exists and is not a folder")
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=parent))
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
        if self.messages is not None:
            with open(folder / "messages.jsonl", "w", encoding="utf-8") as handle:
                for record in self.messages:
                    handle.write(json.dumps(record, allow_nan=False) + "\n")


@dataclass
class Prepared:
    """A scenario checked down to its policy class and parameters, ready to run."""

    scenario: Scenario
    policy: type[Node]
    params: dict[str, Any]


def prepare(scenario: Scenario) -> Prepared:
    """Resolve the policy and validate its parameters for every image; raises
    :class:`~capsim.errors.ScenarioError` before anything runs."""
    policy = resolve_policy(scenario.policy)
    params = {}
    for i, image in enumerate(scenario.images):
        merged = {**scenario.policy.params, **image.params}
        field_name = f"images[{i}].params" if image.params else "policy.params"
        params[image.ref] = policy_params(policy, merged, field=field_name)
    return Prepared(scenario, policy, params)


def run(scenario: Scenario, seed: int | None = None, *, trace: bool = False) -> Result:
    """Run ``scenario`` with ``seed`` (default: the scenario's) and measure it.

    Same scenario and seed give the same result, byte for byte, apart from ``perf``.
    With ``trace`` every message is recorded for ``messages.jsonl``.
    """
    world = build(scenario, seed, trace=trace)
    started = time.perf_counter()
    world.run()
    digest = world.digest()
    wall = time.perf_counter() - started
    return world.result(digest, wall)


def build(scenario: Scenario, seed: int | None = None, *, trace: bool = False) -> World:
    """Build the simulated world of ``scenario`` without running it.

    For tests and exploration: step it with ``world.engine.run(until)``, reach replicas
    with ``world.cluster.node(id, shard)``, then ``world.run()`` runs both phases.
    """
    prepared = prepare(scenario)
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

    def start(self) -> None:
        """Boot the cluster and schedule the faults and the workload (once)."""
        if self.started:
            return
        self.started = True
        self.cluster.boot()
        self.nemesis.schedule()
        self.workload.start()

    def run(self) -> None:
        """Run the main phase, then the final phase (heal, settle, final reads)."""
        scenario, engine = self.scenario, self.engine
        self.start()
        engine.run(scenario.duration)
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

    def _poll_convergence(self, healed_at: float) -> None:
        """Every CONVERGENCE_POLL_S after the final heal, read every replica of every key
        through introspection (no messages) until they all agree."""
        if self._converged():
            self.convergence_s = round(self.engine.now - healed_at, 9)
            return
        self.engine.call_in(CONVERGENCE_POLL_S, self._poll_convergence, healed_at)

    def _converged(self) -> bool:
        cluster = self.cluster
        placement = self.placement
        for key, shard in zip(self.workload.keys, self.workload.key_shard, strict=True):
            first = None
            for i, cid in enumerate(placement.replicas[shard]):
                node = cluster.node(cid, shard)
                if node is None:
                    return False
                value = node.value_of(key)[0]
                if i == 0:
                    first = value
                elif value != first:
                    return False
        return True

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

    def result(self, digest: str, wall: float) -> Result:
        scenario = self.scenario
        ops = self.history.operations()
        measured = metrics.summarize(
            ops, self.nemesis.records, workload=scenario.workload.kind, end=scenario.duration
        )
        messages = self.network.counters()
        total = measured["ops"]["total"]
        messages["per_op"] = round(messages["sent"] / total, 6) if total else None
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
            "durability": measured["durability"],
            "consistency": metrics.consistency(
                ops,
                scenario.workload.kind,
                enabled=scenario.check.linearizable,
                max_ops=scenario.check.max_ops,
                max_steps=scenario.check.max_steps,
            ),
            "convergence_s": self.convergence_s,
            "final": measured["final"],
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
        summary = metrics.clean(summary)
        return Result(
            scenario=scenario,
            seed=self.seed,
            summary=summary,
            history=self.history,
            faults=self.nemesis.records,
            timeseries=metrics.timeseries(ops),
            messages=self.network.trace_records() if self.trace else None,
        )
