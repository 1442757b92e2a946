"""Sweeps: one scenario over a grid of field values and a range of seeds, on a local process
pool or a Dask cluster, with every finished run kept.

A sweep's **grid** names scenario fields by the paths ``--set`` takes (``policy``,
``workload.rate``, ``faults[0].duration``) and the values each takes, whole mappings
included; the scenario's ``sweep:`` block gives one, ``--grid path=v1,v2`` replaces an axis
of the same path or adds one. The **cells** are the product of the axes in order (the first
axis varies slowest), numbered from 0; each cell's scenario is the file's data, then the
``--set`` assignments, then the cell's values, and every cell is validated before anything
runs. Each cell runs once per **seed**: ``sweep.seeds`` (or ``--seeds N``) is a count (the
scenario's seed and the ones after it) or a list. One (cell, seed) pair is a **run**.

Output folder (``--out DIR``)
-----------------------------

``DIR/sweep.json``
    The manifest, written first: ``format`` (1), ``scenario`` (the file), ``name``,
    ``overrides`` (the ``--set`` assignments), ``grid`` (a list of ``{"path", "values"}`` in
    axis order), ``seeds`` (the list), ``cells`` (a list of ``{"cell", "values", "label"}``:
    the cell's value of each path, and ``path=value, ...`` as text), ``runs`` (cells times
    seeds), ``scenario_digest`` (SHA-256 of the resolved scenario before the grid, without
    its seed and sweep block), ``scenario_data`` (that scenario) and ``versions``.
    ``--resume`` refuses a folder whose grid, seeds or scenario differ from the command's.

``DIR/cells/<cell>-<seed>.json``
    One file per finished run, written atomically (a temporary file renamed into place) the
    moment it finishes: ``cell``, ``seed``, ``values``, ``label``, ``status``, ``error`` (a
    line, unless ``ok``), ``report`` (a policy's failure report), ``traceback`` (of a run
    that raised outside the policy's callbacks), ``summary`` (the whole
    summary ``capsim run --json`` prints, per-shard breakdowns, t-visibility curve, fault
    windows and ``perf`` included), ``timeseries`` (per second: ok/fail/info by invocation
    time, overall and by side, as in ``timeseries.csv``) and ``faults`` (the fault records
    of ``faults.jsonl``). ``summary``, ``timeseries`` and ``faults`` are null for a run whose
    status is ``failed``.

``DIR/results.csv``
    One row per run, sorted by cell then seed. Columns: ``cell``; one per grid path, holding
    the cell's value as YAML (a scalar as written, ``20/s``, ``raft``; a mapping or list as
    compact flow text, ``{name: quorum, params: {r: 1, w: 1}}``); ``seed``; ``status``
    (``ok``, ``failed``: the run raised, ``policy-error``: the policy failed and the summary
    covers the run up to the failure); then every scalar of the summary flattened with
    dotted names (``availability.overall``, ``availability.by_side.minority``,
    ``staleness.stale_read_fraction``, ``latency_ms.read.p99``, ``consistency.linearizable``,
    ...), in the summary's order. Left out: ``perf`` (the only part that differs between
    identical runs), the summary's ``seed`` (the ``seed`` column), lists (curves, windows,
    lost writes), and the per-shard and per-container figures (``breakdown``,
    ``availability.by_shard``, ``queues.max_length``), all in ``cells/``. The summary's
    ``policy`` (the policy's name) is the column ``policy.name``, so that a grid over
    ``policy`` keeps its own column; a summary column named like a grid path is left out
    (the grid's is the same value). Every row has every column; an empty field is a figure
    the run did not have (null in the summary). Numbers are written as Python prints them
    (the shortest text that reads back as the same float), booleans as ``true``/``false``.

``DIR/aggregate.csv``
    One row per cell, in cell order. Columns: ``cell``, the grid columns, ``seeds`` (runs
    of the cell), ``failed`` (runs whose status is not ``ok``), then for each numeric metric
    ``M`` of results.csv (booleans count as 1 and 0, so the mean of
    ``consistency.linearizable`` is the fraction of runs that were linearizable) three
    columns: ``M``, the mean over the cell's ``ok`` runs that have a value for ``M``, and
    ``M.ci_low``, ``M.ci_high``, a 95% confidence interval for it, ``mean -/+ t * s /
    sqrt(n)`` with ``s`` the sample standard deviation of the ``n`` values and ``t`` the
    0.975 quantile of Student's t distribution with ``n - 1`` degrees of freedom; with one
    value both ends equal the mean; with none all three are empty.

Executors and interruptions
---------------------------

The local pool is ``workers`` processes forked from a fork server that has imported capsim
once, each running many runs, with about two runs per worker in flight. With Dask each run
is a task on the scheduler (a ``LocalCluster`` of ``workers`` processes when no address is
given). This process writes a run's file the moment its result arrives, so a sweep stopped
in any way keeps every run written so far, and the pool's workers exit within a second of
the sweep's process going. A worker process that dies takes the runs it held with it: on
the local pool the sweep stops (exit status 1; ``--resume`` runs the rest); on Dask the
scheduler runs them elsewhere, and a run that killed every worker that tried it (Dask's
``KilledWorker``) is recorded as ``failed``.

Same grid and seeds give the same bytes in results.csv and aggregate.csv whatever the
executor or the number of workers: every run is deterministic from its seed, and rows are
sorted. ``.capsim-output`` marks the folder as capsim's (see ``check_output``).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from capsim.errors import CapsimError, PolicyError, ScenarioError
from capsim.overrides import apply_overrides, format_path, parse_assignment, parse_path
from capsim.scenario import Scenario, load_scenario
from capsim.schema import one_line, to_data

__all__ = [
    "sweep",
    "plan_sweep",
    "parse_grid_arg",
    "format_value",
    "flatten_summary",
    "aggregate",
    "t_quantile",
    "SweepPlan",
    "SweepResult",
    "Cell",
    "MANIFEST",
    "RESULTS",
    "AGGREGATE",
    "CELLS",
]

MANIFEST = "sweep.json"
RESULTS = "results.csv"
AGGREGATE = "aggregate.csv"
CELLS = "cells"
FORMAT = 1
#: Most cells, and most runs (cells times seeds), a sweep may have.
MAX_CELLS = 100_000
MAX_RUNS = 1_000_000
MAX_AXES = 32
STATUSES = ("ok", "failed", "policy-error")
#: Summary parts left out of results.csv (kept in cells/): perf differs between identical
#: runs; the others hold one figure per shard or container.
EXCLUDED = ("perf", "breakdown", "availability.by_shard", "queues.max_length")
_LOCK = ".sweep.lock"
_TMP_INFIX = ".capsim-tmp-"  # as capsim.runner names its temporary folders


# --- the plan: cells and seeds ----------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One point of the grid: its index, each axis's value, and the scenario it runs."""

    index: int
    values: dict[str, Any]
    label: str
    scenario: Scenario


@dataclass
class SweepPlan:
    """A validated sweep: the grid's axes (path, values) in order, the seeds and the cells."""

    source: str | None
    base: Scenario
    axes: list[tuple[str, list[Any]]]
    seeds: list[int]
    cells: list[Cell]
    overrides: list[str]
    digest: str

    @property
    def runs(self) -> list[tuple[int, int]]:
        """Every (cell, seed), cell by cell."""
        return [(cell.index, seed) for cell in self.cells for seed in self.seeds]

    def manifest(self) -> dict[str, Any]:
        from capsim.runner import versions

        return {
            "format": FORMAT,
            "scenario": self.source,
            "name": self.base.name,
            "overrides": list(self.overrides),
            "grid": [{"path": path, "values": values} for path, values in self.axes],
            "seeds": list(self.seeds),
            "cells": [
                {"cell": cell.index, "values": cell.values, "label": cell.label}
                for cell in self.cells
            ],
            "runs": len(self.cells) * len(self.seeds),
            "scenario_digest": self.digest,
            "scenario_data": _scenario_data(self.base),
            "versions": versions(),
        }


def parse_grid_arg(text: str) -> tuple[str, list[Any]]:
    """``"workload.rate=10,20,40"`` -> ``("workload.rate", [10, 20, 40])``.

    The values are read as the items of a YAML flow sequence, so a mapping is one value:
    ``"policy={name: raft},{name: quorum, params: {r: 1}}"`` gives two. Raises
    :class:`ScenarioError`.
    """
    from capsim.scenario import read_yaml

    path, eq, values = text.partition("=")
    if not eq:
        raise ScenarioError(f"--grid {text!r}: write path=value1,value2,...")
    path = _axis_path(path, what="--grid")
    if not values.strip():
        raise ScenarioError(f"--grid {path}: no values (write {path}=value1,value2,...)")
    try:
        parsed = read_yaml(f"[{values}]")
    except ScenarioError as exc:
        raise ScenarioError(
            f"--grid {path}: {values!r} is not a list of YAML values separated by commas "
            f"({exc.message})"
        ) from None
    if not isinstance(parsed, list) or not parsed:
        raise ScenarioError(f"--grid {path}: no values (write {path}=value1,value2,...)")
    return path, parsed


def _axis_path(path: str, *, what: str) -> str:
    steps = parse_path(path, what=what)
    if steps[0] in ("seed", "sweep"):
        raise ScenarioError(
            f"{what} {path.strip()}: cannot be swept (give seeds with --seeds or sweep.seeds)"
        )
    return format_path(steps)


def plan_sweep(
    source: str | os.PathLike | dict | Scenario,
    *,
    grid: dict[str, Sequence[Any]] | Iterable[tuple[str, Sequence[Any]]] | None = None,
    seeds: int | Iterable[int] | None = None,
    overrides: Sequence[str] = (),
    allow_large: bool = False,
) -> SweepPlan:
    """Build and validate every cell of a sweep; nothing runs.

    ``source`` is a scenario file, its data, or a :class:`Scenario`. ``grid`` axes replace
    the scenario's ``sweep.grid`` axes of the same path (in place) or follow them; ``seeds``
    (a count from the scenario's seed, or the seeds themselves) replaces ``sweep.seeds``.
    Raises :class:`ScenarioError` naming the cell (its index and values) and the field of
    the first cell that does not validate.
    """
    from capsim.runner import prepare

    name, folder, raw = _source_data(source)
    assignments = [parse_assignment(text) for text in overrides]
    try:
        base = load_scenario(raw, base_dir=folder, overrides=assignments)
        prepare(base, allow_large=True)
    except ScenarioError as exc:
        raise exc.with_source(name) from None

    axes: dict[str, list[Any]] = {}
    if base.sweep is not None:
        for path, values in base.sweep.grid.items():
            axes[_axis_path(path, what="sweep.grid")] = list(values)
    extra = grid.items() if isinstance(grid, dict) else (grid or ())
    for path, values in extra:
        normal = _axis_path(str(path), what="--grid")
        values = list(values)
        if not values:
            raise ScenarioError(f"--grid {normal}: no values")
        axes[normal] = values
    if len(axes) > MAX_AXES:
        raise ScenarioError(f"the grid has {len(axes)} axes; at most {MAX_AXES}")
    for path, values in axes.items():
        try:
            json.dumps(values, allow_nan=False)
        except (TypeError, ValueError):
            raise ScenarioError(
                f"--grid {path}: a value is not plain data (or is inf or nan)"
            ) from None

    seed_list = _seeds(base, seeds)
    cell_count = math.prod(len(values) for values in axes.values())
    if cell_count > MAX_CELLS or cell_count * len(seed_list) > MAX_RUNS:
        raise ScenarioError(
            f"the sweep has {cell_count:,} cells x {len(seed_list):,} seeds; at most "
            f"{MAX_CELLS:,} cells and {MAX_RUNS:,} runs"
        )

    data = _without_sweep(raw)
    paths = list(axes)
    cells = []
    for index, combo in enumerate(itertools.product(*axes.values())):
        values = dict(zip(paths, combo, strict=True))
        label = ", ".join(f"{path}={format_value(value)}" for path, value in values.items())
        where = f"cell {index} ({one_line(label, 200)})" if paths else "the scenario"
        steps = [(parse_path(path), value) for path, value in values.items()]
        try:
            cell_data = _without_sweep(apply_overrides(data, [*assignments, *steps]))
            scenario = load_scenario(cell_data, base_dir=folder)
            prepare(scenario, allow_large=allow_large)
        except ScenarioError as exc:
            source_name = f"{name}: {where}" if name else where
            raise ScenarioError(exc.message, field=exc.field, source=source_name) from None
        cells.append(Cell(index=index, values=values, label=label, scenario=scenario))
    digest = hashlib.sha256(
        json.dumps(_scenario_data(base), sort_keys=True).encode("utf-8")
    ).hexdigest()
    return SweepPlan(
        source=name,
        base=base,
        axes=list(axes.items()),
        seeds=seed_list,
        cells=cells,
        overrides=[str(text) for text in overrides],
        digest=digest,
    )


def _source_data(source) -> tuple[str | None, str | None, Any]:
    """(the file's name for messages, its folder, its plain data)."""
    from capsim.scenario import LIMITS, read_json, read_yaml
    from capsim.schema import decode_error, read_input

    if isinstance(source, Scenario):
        return None, source.policy.path, to_data(source)
    if isinstance(source, dict):
        return None, None, source
    name = os.fspath(source)

    def fail(message: str) -> ScenarioError:
        return ScenarioError(message, source=name)

    raw = read_input(name, limit=LIMITS["file_bytes"], fail=fail, what="scenario file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(decode_error(raw, exc)) from None
    # As load_scenario reads a file (which returns only the validated scenario).
    reader = read_json if name.lower().endswith(".json") else read_yaml
    data = reader(text.removeprefix("\ufeff"), source=name)
    return name, str(Path(name).resolve().parent), data


def _without_sweep(data: Any) -> Any:
    if isinstance(data, dict) and "sweep" in data:
        data = {k: v for k, v in data.items() if k != "sweep"}
    return data


def _scenario_data(scenario: Scenario) -> dict[str, Any]:
    data = to_data(scenario)
    data.pop("sweep", None)
    data.pop("seed", None)
    return data


def _seeds(base: Scenario, seeds: int | Iterable[int] | None) -> list[int]:
    if seeds is None:
        seeds = base.sweep.seeds if base.sweep is not None else 1
    if isinstance(seeds, bool):
        raise ScenarioError(f"seeds: expected a count or a list of seeds, got {seeds!r}")
    if isinstance(seeds, int):
        if not 1 <= seeds <= MAX_RUNS:
            raise ScenarioError(f"--seeds: expected a count from 1 to {MAX_RUNS:,}, got {seeds}")
        out = [base.seed + i for i in range(seeds)]
    else:
        out = list(seeds)
        if not out:
            raise ScenarioError("seeds: the list is empty")
    for seed in out:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise ScenarioError(f"seeds: {seed!r} is not a seed (a whole number, 0 to 2**64 - 1)")
    repeated = sorted({s for s in out if out.count(s) > 1}) if len(set(out)) < len(out) else []
    if repeated:
        raise ScenarioError(f"seeds: {repeated[0]} is given twice")
    return out


def format_value(value: Any) -> str:
    """A grid value as results.csv writes it: YAML, one line (flow style for collections)."""
    import yaml

    text = yaml.safe_dump(
        value, default_flow_style=True, width=float("inf"), allow_unicode=True, sort_keys=False
    )
    return text.removesuffix("\n").removesuffix("\n...").strip()


# --- running ------------------------------------------------------------------------------


@dataclass
class SweepResult:
    """What a sweep left: the folder, the rows of results.csv and aggregate.csv (as Python
    values: numbers, booleans, text, None for empty), and the runs that did not finish."""

    out: Path | None
    plan: SweepPlan
    rows: list[dict[str, Any]]
    aggregate: list[dict[str, Any]]
    ran: int = 0
    lost: list[tuple[int, int]] = field(default_factory=list)
    lost_reason: str = ""
    workers: int = 0

    @property
    def failed(self) -> int:
        """Runs whose status is not ``ok``."""
        return sum(1 for row in self.rows if row["status"] != "ok")


def sweep(
    source: str | os.PathLike | dict | Scenario,
    grid: dict[str, Sequence[Any]] | None = None,
    seeds: int | Iterable[int] | None = None,
    *,
    out: str | os.PathLike | None = None,
    overrides: Sequence[str] = (),
    workers: int | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    resume: bool = False,
    replace: bool = False,
    allow_large: bool = False,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> SweepResult:
    """Run every cell of a sweep with every seed and write the results to ``out``.

    ``source``, ``grid``, ``seeds`` and ``overrides`` are as for :func:`plan_sweep`. The
    runs go to a local process pool of ``workers`` processes (default: every core), or with
    ``executor="dask"`` to the Dask scheduler at ``scheduler`` (default: a ``LocalCluster``
    of ``workers`` processes). Without ``out`` the results are written to a temporary folder
    that is removed afterwards, and only the returned rows remain. With ``resume`` an
    existing ``out`` is continued: only runs without a file in ``out/cells/`` run.

    ``on_event(kind, info)`` is called from this thread: ``"run"`` after each run (``info``:
    the record), ``"lost"`` for a run a dead worker took with it, ``"tick"`` about twice a
    second (``info``: ``done``, ``running``, ``failed``, ``total``, ``left_s``).
    """
    if executor not in ("local", "dask"):
        raise CapsimError(f"--executor: expected local or dask, got {executor!r}")
    if workers is not None and workers < 1:
        raise CapsimError(f"--workers: expected a positive count, got {workers}")
    if scheduler is not None and executor != "dask":
        raise CapsimError("--scheduler: only with --executor dask")
    if executor == "dask":
        _import_distributed()
    plan = plan_sweep(source, grid=grid, seeds=seeds, overrides=overrides, allow_large=allow_large)
    temporary = out is None
    folder = Path(tempfile.mkdtemp(prefix="capsim-sweep-")) / "sweep" if temporary else Path(out)
    try:
        with _Store(folder) as store:
            store.check(plan, resume=resume, replace=replace)
            todo = [run for run in plan.runs if run not in store.rows]
            count = min(workers or os.cpu_count() or 1, max(len(todo), 1))
            pool = (_DaskPool if executor == "dask" else _LocalPool)(count)
            try:
                if todo:
                    pool.start(scheduler)
                store.commit(plan)
                result = _execute(plan, store, pool, todo, on_event)
            finally:
                pool.stop(abandon=True)
    finally:
        if temporary:
            shutil.rmtree(folder.parent, ignore_errors=True)
    if temporary:
        result.out = None
    return result


def _execute(plan, store, pool, todo, on_event) -> SweepResult:
    emit = on_event or (lambda kind, info: None)
    cells = {cell.index: cell for cell in plan.cells}
    files: dict[tuple, dict[str, bytes] | None] = {}  # per policy folder, read once
    for cell in plan.cells:
        policy = cell.scenario.policy
        if (policy.name, policy.path) not in files:
            files[policy.name, policy.path] = _policy_files(cell.scenario)
    tasks = []
    for c, s in todo:
        policy = cells[c].scenario.policy
        tasks.append((c, s, cells[c].scenario, files[policy.name, policy.path]))
    total = len(plan.runs)
    done_before = len(store.rows)
    failed = sum(1 for status, _ in store.rows.values() if status != "ok")
    lost: list[tuple[int, int]] = []
    started = time.perf_counter()
    ran = 0
    reason = ""
    finished = False
    try:
        for kind, info in _drive(pool, tasks):
            if kind == "run":
                cell = cells[info["cell"]]
                record = {
                    "cell": cell.index,
                    "seed": info["seed"],
                    "values": cell.values,
                    "label": cell.label,
                    **{k: v for k, v in info.items() if k not in ("cell", "seed")},
                }
                store.save(record)
                ran += 1
                failed += record["status"] != "ok"
                emit("run", record)
            elif kind == "lost":
                lost.append((info["cell"], info["seed"]))
                reason = reason or info["error"]
                emit("lost", {**info, "label": cells[info["cell"]].label})
            else:
                elapsed = time.perf_counter() - started
                remaining = len(tasks) - ran - len(lost)
                emit(
                    "tick",
                    {
                        "done": done_before + ran,
                        "running": info["running"],
                        "failed": failed,
                        "total": total,
                        "left_s": elapsed * remaining / ran if ran else None,
                    },
                )
        finished = True
    finally:
        pool.stop(abandon=not finished)
        store.write_tables(plan)
    rows, agg = store.tables(plan)
    return SweepResult(
        out=store.folder,
        plan=plan,
        rows=rows,
        aggregate=agg,
        ran=ran,
        lost=lost,
        lost_reason=reason,
        workers=pool.size if tasks else 0,
    )


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise CapsimError(
            "--executor dask needs Dask's distributed scheduler: "
            "pip install 'capsim[dask]' (or pip install 'dask[distributed]')"
        ) from None
    return distributed


def _drive(pool, tasks) -> Iterator[tuple[str, dict[str, Any]]]:
    """Keep about two tasks per worker in flight; yield each run's record as it finishes,
    each run a dead worker or a lost cluster took with it (``lost``), and a ``tick`` about
    twice a second. Once the pool is broken, the runs not yet started are ``lost`` too
    (with ``started`` false)."""
    finished: queue.Queue = queue.Queue()
    pending = iter(tasks)
    inflight: dict[Any, tuple[int, int]] = {}
    window = 2 * pool.size
    broken: list[str] = []  # why the pool cannot take more runs, once it cannot

    def fill() -> None:
        while not broken and len(inflight) < window:
            task = next(pending, None)
            if task is None:
                return
            try:
                future = pool.submit(task)
            except Exception as exc:  # the pool or the cluster is gone
                broken.append(pool.describe(exc))
                pending_again.append(task)
                return
            inflight[future] = (task[0], task[1])
            future.add_done_callback(finished.put)

    pending_again: list[tuple] = []
    fill()
    while inflight:
        try:
            future = finished.get(timeout=0.5)
        except queue.Empty:
            yield "tick", {"running": min(len(inflight), pool.size)}
            continue
        cell, seed = inflight.pop(future)
        try:
            record = future.result()
        except Exception as exc:  # the worker died or the cluster dropped the task
            error = pool.describe(exc)
            if pool.killer(exc):  # it killed every worker that ran it: its own failure
                yield (
                    "run",
                    {"cell": cell, "seed": seed, "status": "failed", "error": error, **_EMPTY},
                )
            else:
                yield "lost", {"cell": cell, "seed": seed, "error": error, "started": True}
            if pool.fatal(exc) and not broken:
                broken.append(error)
        else:
            yield "run", record
        fill()
        yield "tick", {"running": min(len(inflight), pool.size)}
    for task in itertools.chain(pending_again, pending) if broken else ():
        yield "lost", {"cell": task[0], "seed": task[1], "error": broken[0], "started": False}


class _LocalPool:
    """A process pool on this machine: processes forked from a server that has imported
    capsim once, each running many tasks; a worker exits when the sweep's process dies."""

    def __init__(self, size: int):
        self.size = size
        self.executor = None

    def start(self, scheduler: str | None) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        methods = multiprocessing.get_all_start_methods()
        # Not fork: the parent may hold threads (a Dask client, a progress line), and a
        # forked child inherits their locks. The fork server imports capsim once.
        method = "forkserver" if "forkserver" in methods else "spawn"
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload(["capsim.sweep", "capsim.runner"])
        self.executor = ProcessPoolExecutor(
            max_workers=self.size,
            mp_context=context,
            initializer=_worker_init,
            initargs=(os.getpid(),),
        )

    def submit(self, task):
        return self.executor.submit(_run_task, task)

    @staticmethod
    def fatal(exc: BaseException) -> bool:
        from concurrent.futures.process import BrokenProcessPool

        return isinstance(exc, BrokenProcessPool)

    @staticmethod
    def killer(exc: BaseException) -> bool:
        return False  # which of the runs in flight killed the process is unknown

    @staticmethod
    def describe(exc: BaseException) -> str:
        return "a worker process died (killed, or out of memory)"

    def stop(self, abandon: bool = False) -> None:
        if self.executor is None:
            return
        if abandon:
            processes = dict(getattr(self.executor, "_processes", None) or {})
            self.executor.shutdown(wait=False, cancel_futures=True)
            for process in processes.values():
                with contextlib.suppress(Exception):
                    process.terminate()
        else:
            self.executor.shutdown(wait=True, cancel_futures=True)
        self.executor = None


class _DaskPool:
    """A Dask distributed cluster: the scheduler at an address, or a LocalCluster."""

    def __init__(self, size: int):
        self.size = size
        self.client = None
        self.cluster = None

    def start(self, scheduler: str | None) -> None:
        import logging

        distributed = _import_distributed()

        try:
            if scheduler is None:
                self.cluster = distributed.LocalCluster(
                    n_workers=self.size,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    scheduler_kwargs={"dashboard_address": ":0"},  # no fixed port
                    silence_logs=logging.CRITICAL,  # capsim reports lost and failed runs
                )
                self.client = distributed.Client(self.cluster)
            else:
                self.client = distributed.Client(scheduler, timeout="10s")
                threads = sum(self.client.nthreads().values())
                self.size = max(threads, 1)
        except (OSError, TimeoutError, ValueError) as exc:
            self.stop()
            where = f"the scheduler at {scheduler}" if scheduler else "a local Dask cluster"
            raise CapsimError(f"--executor dask: cannot reach {where}: {exc}") from None

    def submit(self, task):
        return self.client.submit(_run_task, task, pure=False)

    @staticmethod
    def fatal(exc: BaseException) -> bool:
        return False  # the scheduler moves work off a lost worker; the others go on

    @staticmethod
    def killer(exc: BaseException) -> bool:
        # Dask gave up on it: every worker that ran it died (distributed's
        # scheduler.allowed-failures, 3 by default, then KilledWorker).
        return type(exc).__name__ == "KilledWorker"

    @staticmethod
    def describe(exc: BaseException) -> str:
        if type(exc).__name__ == "KilledWorker":
            return "every Dask worker that ran it died (KilledWorker)"
        return f"the Dask cluster lost it ({type(exc).__name__}: {one_line(str(exc), 200)})"

    def stop(self, abandon: bool = False) -> None:
        for part in (self.client, self.cluster):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.close()
        self.client = self.cluster = None


# --- in the worker --------------------------------------------------------------------------


def _worker_init(sweep_pid: int) -> None:
    """Ignore Ctrl-C (the sweep's process stops the pool) and exit when the sweep's process
    has gone (killed with -9, its pool cannot tell its workers)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent or not _alive(sweep_pid):
                os._exit(1)

    threading.Thread(target=watch, name="capsim-sweep-watchdog", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _run_task(task: tuple) -> dict[str, Any]:
    """Run one (cell, seed) and return its record; never raises for the run's own failure."""
    from capsim.runner import run

    cell, seed, scenario, files = task
    record: dict[str, Any] = {"cell": cell, "seed": seed}
    try:
        scenario = _with_policy_files(scenario, files)
        result = run(scenario, seed=seed, allow_large=True)
        record["status"] = "ok"
    except PolicyError as exc:
        result = exc.result
        record.update(status="policy-error", error=one_line(exc.headline(), 500))
        record["report"] = exc.report()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the run's own failure, reported with its cell and seed
        record.update(
            status="failed",
            error=one_line(f"{type(exc).__name__}: {exc}", 500),
            traceback="".join(traceback.format_exception(exc)),
            summary=None,
            timeseries=None,
            faults=None,
        )
        return record
    if result is None:
        record.update(summary=None, timeseries=None, faults=None)
    else:
        record.update(summary=result.summary, timeseries=result.timeseries, faults=result.faults)
    return record


_EMPTY = {"summary": None, "timeseries": None, "faults": None}

#: Largest total size of a user's policy folder's Python files sent with each task.
POLICY_FILES_LIMIT = 2 << 20


def _policy_files(scenario: Scenario) -> dict[str, bytes] | None:
    """The ``*.py`` files of a ``module:Class`` policy's folder, sent along with the tasks,
    so that a worker on a machine without that folder can still load the policy."""
    policy = scenario.policy
    if ":" not in policy.name or not policy.path:
        return None
    folder = Path(policy.path)
    try:
        paths = sorted(p for p in folder.glob("*.py") if p.is_file())
        if sum(p.stat().st_size for p in paths) > POLICY_FILES_LIMIT:
            return None
        return {p.name: p.read_bytes() for p in paths}
    except OSError:
        return None


def _with_policy_files(scenario: Scenario, files: dict[str, bytes] | None) -> Scenario:
    """``scenario`` as it can run here: if its policy's folder is missing on this machine,
    the files sent with the task are written to a folder of their own and used instead."""
    import dataclasses

    path = scenario.policy.path
    if not files or not path or os.path.isdir(path):
        return scenario
    digest = hashlib.sha256(
        b"".join(name.encode() + b"\0" + data for name, data in sorted(files.items()))
    ).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"capsim-policy-{digest}"
    if not folder.is_dir():
        staging = Path(tempfile.mkdtemp(prefix=f"capsim-policy-{digest}-"))
        for name, data in files.items():
            (staging / name).write_bytes(data)
        try:
            staging.rename(folder)
        except OSError:  # another worker got there first
            shutil.rmtree(staging, ignore_errors=True)
    policy = dataclasses.replace(scenario.policy, path=str(folder))
    return dataclasses.replace(scenario, policy=policy)


# --- the output folder ------------------------------------------------------------------------


class _Store:
    """The sweep's folder: the manifest, a file per finished run, and the tables."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.lock = None
        self.resuming = False
        #: (cell, seed) -> (status, flattened summary) of every finished run
        self.rows: dict[tuple[int, int], tuple[str, dict[str, Any]]] = {}

    def __enter__(self) -> _Store:
        return self

    def __exit__(self, *exc) -> None:
        if self.lock is not None:
            self.lock.close()
            self.lock = None

    def check(self, plan: SweepPlan, *, resume: bool, replace: bool) -> None:
        """Raise unless the folder may be written (and, resuming, holds this same sweep);
        read the runs a resumed sweep already finished. Writes nothing."""
        from capsim.runner import check_output

        folder = self.folder
        if resume and (folder / MANIFEST).is_file():
            _check_same(folder, plan.manifest())
            self.lock = _lock(folder)
            self.resuming = True
            self._load(plan)
            return
        if resume and folder.exists():
            raise CapsimError(f"--resume: {folder} holds no {MANIFEST}: it is not a sweep's folder")
        check_output(folder, replace=replace)
        if folder.is_dir() and _locked(folder):
            raise CapsimError(f"--out {folder}: another capsim sweep is writing it right now")

    def commit(self, plan: SweepPlan) -> None:
        """Create the folder of a new sweep (whole), or tidy a resumed one."""
        if self.resuming:
            cells = self.folder / CELLS
            cells.mkdir(exist_ok=True)
            for stale in cells.glob(".*.tmp"):  # a run being written when the sweep died
                with contextlib.suppress(OSError):
                    stale.unlink()
            return
        _create(self.folder, plan.manifest())
        self.lock = _lock(self.folder)

    def _load(self, plan: SweepPlan) -> None:
        cells = self.folder / CELLS
        for cell, seed in plan.runs:
            path = cells / f"{cell}-{seed}.json"
            if not path.is_file():
                continue
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                if record["status"] not in STATUSES or (record["cell"], record["seed"]) != (
                    cell,
                    seed,
                ):
                    raise ValueError(record["status"])
            except (OSError, ValueError, KeyError, TypeError):
                print(
                    f"capsim: {path} is unreadable; cell {cell} seed {seed} runs again",
                    file=sys.stderr,
                )
                continue
            self._remember(record)

    def _remember(self, record: dict[str, Any]) -> None:
        key = (record["cell"], record["seed"])
        self.rows[key] = (record["status"], flatten_summary(record.get("summary")))

    def save(self, record: dict[str, Any]) -> None:
        """Write one run's file atomically: whole, or not at all."""
        try:
            text = json.dumps(record, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            record = {
                **{k: record[k] for k in ("cell", "seed", "values", "label")},
                "status": "failed",
                "error": f"the run's result is not plain data: {exc}",
                "summary": None,
                "timeseries": None,
                "faults": None,
            }
            text = json.dumps(record, allow_nan=False, separators=(",", ":"))
        name = f"{record['cell']}-{record['seed']}.json"
        _write_atomic(self.folder / CELLS / name, text + "\n")
        self._remember(record)

    def tables(self, plan: SweepPlan) -> tuple[list[dict], list[dict]]:
        rows = _rows(plan, self.rows)
        return rows, aggregate(rows, [path for path, _ in plan.axes])

    def write_tables(self, plan: SweepPlan) -> None:
        rows, agg = self.tables(plan)
        _write_atomic(self.folder / RESULTS, _csv(rows))
        _write_atomic(self.folder / AGGREGATE, _csv(agg))


def _create(folder: Path, manifest: dict[str, Any]) -> None:
    """A fresh sweep folder (marker, manifest, cells/), put in place whole."""
    from capsim.runner import OUTPUT_MARKER, _remove_stale_temporaries

    parent = folder.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(parent, folder.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}{_TMP_INFIX}{os.getpid()}-", dir=parent))
    except OSError as exc:
        raise CapsimError(f"--out {folder}: cannot create it: {exc.strerror or exc}") from None
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        (tmp / OUTPUT_MARKER).write_text(
            "written by capsim sweep; `capsim sweep --out` may replace this folder\n",
            encoding="utf-8",
        )
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        (tmp / CELLS).mkdir()
        os.chmod(tmp / CELLS, 0o777 & ~_umask())
        if folder.is_dir() and not folder.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}{_TMP_INFIX}old-", dir=parent))
            old.rmdir()
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CapsimError(f"--out {folder}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _check_same(folder: Path, manifest: dict[str, Any]) -> None:
    """Refuse to resume a sweep whose grid, seeds or scenario differ from this one's."""
    try:
        old = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if not isinstance(old, dict):
            raise ValueError("not a mapping")
    except (OSError, ValueError) as exc:
        raise CapsimError(f"--resume: {folder / MANIFEST} is unreadable: {exc}") from None
    if old.get("format") != FORMAT:
        raise CapsimError(f"--resume: {folder / MANIFEST} is of another format")
    new = json.loads(json.dumps(manifest))
    hint = "; resume with the same {}, or sweep into another folder"
    if old.get("grid") != new["grid"]:
        raise CapsimError(
            f"--resume: the grid differs from the one {folder / MANIFEST} records "
            f"({_describe_grid(old.get('grid'))} there, {_describe_grid(new['grid'])} "
            f"here){hint.format('grid')}"
        )
    if old.get("seeds") != new["seeds"]:
        raise CapsimError(
            f"--resume: the seeds differ from those {folder / MANIFEST} records "
            f"({_describe_seeds(old.get('seeds'))} there, {_describe_seeds(new['seeds'])} "
            f"here){hint.format('seeds')}"
        )
    if old.get("scenario_digest") != new["scenario_digest"]:
        changed = _first_difference(old.get("scenario_data"), new["scenario_data"])
        raise CapsimError(
            f"--resume: the scenario differs from the one {folder / MANIFEST} records"
            + (f" (at {changed})" if changed else "")
            + hint.format("scenario and --set")
        )


def _describe_grid(grid: Any) -> str:
    if not isinstance(grid, list) or not grid:
        return "no grid"
    parts = []
    for axis in grid:
        try:
            values = ", ".join(format_value(v) for v in axis["values"])
            parts.append(f"{axis['path']}: [{values}]")
        except (TypeError, KeyError):
            parts.append("?")
    return one_line("; ".join(parts), 160)


def _describe_seeds(seeds: Any) -> str:
    if not isinstance(seeds, list) or not seeds:
        return "none"
    first = seeds[0]
    if isinstance(first, int) and seeds == list(range(first, first + len(seeds))):
        return f"{len(seeds)} from {first}"
    return one_line(", ".join(map(str, seeds)), 80)


def _first_difference(old: Any, new: Any, path: str = "") -> str | None:
    if type(old) is not type(new):
        return path or "the top"
    if isinstance(old, dict):
        for key in list(old) + [k for k in new if k not in old]:
            if key not in old or key not in new:
                return f"{path}.{key}".strip(".")
            found = _first_difference(old[key], new[key], f"{path}.{key}".strip("."))
            if found:
                return found
        return None
    if isinstance(old, list):
        if len(old) != len(new):
            return path or "the top"
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            found = _first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if old == new else (path or "the top")


def _lock(folder: Path):
    """Hold an exclusive lock on the folder while the sweep writes it (released by the
    operating system if the process dies); refuses a second sweep into the same folder."""
    try:
        import fcntl
    except ImportError:  # not on this platform: no lock
        return None
    handle = open(folder / _LOCK, "a+")  # noqa: SIM115 (held until the sweep ends)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise CapsimError(f"--out {folder}: another capsim sweep is writing it right now") from None
    return handle


def _locked(folder: Path) -> bool:
    try:
        import fcntl
    except ImportError:
        return False
    path = folder / _LOCK
    if not path.is_file():
        return False
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _write_atomic(path: Path, text: str) -> None:
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --- the tables -------------------------------------------------------------------------------


def flatten_summary(summary: dict[str, Any] | None) -> dict[str, Any]:
    """The scalars of a run's summary under dotted names, as results.csv has them (see the
    module docstring for what is left out and renamed)."""
    out: dict[str, Any] = {}
    if not summary:
        return out

    def walk(value: Any, name: str) -> None:
        if name in EXCLUDED:
            return
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{name}.{key}" if name else str(key))
        elif isinstance(value, list | tuple):
            return
        else:
            out[name] = value

    for key, value in summary.items():
        if key == "seed":
            continue
        walk(value, "policy.name" if key == "policy" else key)
    return out


def _rows(plan: SweepPlan, finished: dict) -> list[dict[str, Any]]:
    """results.csv as dicts, sorted by cell then seed, every row with every column."""
    paths = [path for path, _ in plan.axes]
    cells = {cell.index: cell for cell in plan.cells}
    fixed = ["cell", *paths, "seed", "status"]
    metrics: dict[str, None] = {}
    rows = []
    seeds = set(plan.seeds)
    for cell, seed in sorted(finished):
        if cell not in cells or seed not in seeds:
            continue
        status, flat = finished[(cell, seed)]
        row = {"cell": cell}
        row.update({path: format_value(cells[cell].values[path]) for path in paths})
        row.update(seed=seed, status=status)
        for name, value in flat.items():
            if name in row:
                continue
            metrics.setdefault(name)
            row[name] = value
        rows.append(row)
    columns = fixed + list(metrics)
    return [{name: row.get(name) for name in columns} for row in rows]


def aggregate(rows: list[dict[str, Any]], paths: Sequence[str]) -> list[dict[str, Any]]:
    """aggregate.csv as dicts: per cell the grid values, ``seeds``, ``failed``, and each
    numeric metric's mean over ``ok`` runs with a 95% Student-t confidence interval."""
    if not rows:
        return []
    fixed = {"cell", *paths, "seed", "status"}
    columns = [name for name in rows[0] if name not in fixed]
    numeric = []
    for name in columns:
        values = [row[name] for row in rows if row["status"] == "ok" and row[name] is not None]
        if values and all(isinstance(v, int | float) for v in values):
            numeric.append(name)
    out = []
    for cell, group in itertools.groupby(rows, key=lambda row: row["cell"]):
        group = list(group)
        entry: dict[str, Any] = {"cell": cell}
        entry.update({path: group[0][path] for path in paths})
        entry["seeds"] = len(group)
        entry["failed"] = sum(1 for row in group if row["status"] != "ok")
        for name in numeric:
            values = [
                float(row[name])
                for row in group
                if row["status"] == "ok" and isinstance(row[name], int | float)
            ]
            entry[name], entry[f"{name}.ci_low"], entry[f"{name}.ci_high"] = _interval(values)
        out.append(entry)
    return out


def _interval(values: list[float]) -> tuple[float | None, float | None, float | None]:
    """The mean and a 95% confidence interval for it (Student's t, ``n - 1`` degrees).

    The mean and the variance are computed exactly (in fractions) and rounded once, so
    the figures do not depend on the order of the runs, and equal values have that value
    as their mean and a zero-width interval."""
    n = len(values)
    if n == 0:
        return None, None, None
    exact = [Fraction(v) for v in values]
    mean = sum(exact, Fraction(0)) / n
    if n == 1:
        return float(mean), float(mean), float(mean)
    variance = sum(((v - mean) ** 2 for v in exact), Fraction(0)) / (n - 1)
    half = t_quantile(n - 1) * math.sqrt(variance) / math.sqrt(n)
    centre = float(mean)
    return centre, centre - half, centre + half


_T_CACHE: dict[int, float] = {}


def t_quantile(df: int) -> float:
    """The 0.975 quantile of Student's t distribution with ``df`` degrees of freedom (the
    factor of a two-sided 95% confidence interval): 12.706 for 1, 2.262 for 9, 1.960 in the
    limit. Found by bisection on ``P(|T| <= t)`` from its finite series (Abramowitz and
    Stegun 26.7.3 and 26.7.4) up to 1,000 degrees; beyond, Hill's (1970) expansion in
    ``1/df`` around the normal quantile, exact there to better than 1e-12."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    if df in _T_CACHE:
        return _T_CACHE[df]
    if df > 1000:
        z = 1.959963984540054  # the standard normal's 0.975 quantile
        z2 = z * z
        g1 = (z2 + 1) * z / 4
        g2 = ((5 * z2 + 16) * z2 + 3) * z / 96
        g3 = (((3 * z2 + 19) * z2 + 17) * z2 - 15) * z / 384
        g4 = ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) * z / 92160
        t = z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4
    else:
        low, high = 0.0, 64.0
        while _within(high, df) < 0.95:  # df = 1 needs 12.7; keep doubling to be sure
            high *= 2
        for _ in range(200):
            mid = (low + high) / 2
            if mid in (low, high):
                break
            if _within(mid, df) < 0.95:
                low = mid
            else:
                high = mid
        t = high
    _T_CACHE[df] = t
    return t


def _within(t: float, df: int) -> float:
    """``P(|T| <= t)`` for Student's t with ``df`` degrees of freedom (A&S 26.7.3/4)."""
    root = math.sqrt(df + t * t)
    sin, cos = t / root, math.sqrt(df) / root
    cos2 = cos * cos
    if df % 2 == 0:
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= cos2 * (2 * k - 1) / (2 * k)
            total += term
        return sin * total
    theta = math.atan2(t, math.sqrt(df))
    if df == 1:
        return 2 * theta / math.pi
    term, total = cos, cos
    for k in range(1, (df - 1) // 2):
        term *= cos2 * (2 * k) / (2 * k + 1)
        total += term
    return 2 / math.pi * (theta + sin * total)


def _csv(rows: list[dict[str, Any]]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if rows:
        writer.writerow(list(rows[0]))
        for row in rows:
            writer.writerow([_cell_text(value) for value in row.values()])
    return buffer.getvalue()


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


# --- the command line -------------------------------------------------------------------------


class _Progress:
    """One line on stderr, rewritten in place: runs done, running, failed, time left. Only
    on a terminal, and not with ``--quiet``."""

    def __init__(self, quiet: bool):
        self.on = not quiet and sys.stderr.isatty()
        self.shown = False
        self.last = 0.0

    def __call__(self, kind: str, info: dict[str, Any]) -> None:
        if kind == "run" and info["status"] != "ok":
            where = f"cell {info['cell']} ({info['label']}), seed {info['seed']}"
            if not info["label"]:
                where = f"seed {info['seed']}"
            self._say(f"capsim: {where}: {info['status']}: {info.get('error', '')}")
        elif kind == "lost" and info["started"]:
            where = f"cell {info['cell']} ({info['label']}), seed {info['seed']}"
            self._say(f"capsim: {where} did not finish: {info['error']}")
        elif kind == "tick" and self.on:
            now = time.perf_counter()
            if now - self.last < 0.25 and info["done"] < info["total"]:
                return
            self.last = now
            left = info["left_s"]
            line = (
                f"capsim sweep: {info['done']}/{info['total']} runs done, "
                f"{info['running']} running, {info['failed']} failed"
                + (f", about {_duration(left)} left" if left is not None else "")
            )
            print(f"\r{line}\x1b[K", end="", file=sys.stderr, flush=True)
            self.shown = True

    def _say(self, line: str) -> None:
        if self.shown:
            print("\r\x1b[K", end="", file=sys.stderr)
        print(one_line(line, 400), file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.shown:
            print("\r\x1b[K", end="", file=sys.stderr, flush=True)
            self.shown = False


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


#: The figures ``capsim sweep`` prints per cell (mean and 95% interval).
HEADLINE = (
    ("avail.", "availability.overall"),
    ("minority", "availability.by_side.minority"),
    ("stale reads", "staleness.stale_read_fraction"),
    ("read p99 ms", "latency_ms.read.p99"),
)


def command(args) -> int:
    """``capsim sweep``: run the sweep the arguments describe; the exit status."""
    grid = dict(parse_grid_arg(text) for text in args.grid)
    progress = _Progress(args.quiet)
    started = time.perf_counter()
    try:
        result = sweep(
            args.scenario,
            grid=grid,
            seeds=args.seeds,
            out=args.out,
            overrides=args.overrides,
            workers=args.workers,
            executor=args.executor,
            scheduler=args.scheduler,
            resume=args.resume,
            replace=args.replace,
            allow_large=args.allow_large,
            on_event=progress,
        )
    except KeyboardInterrupt:
        progress.close()
        if (Path(args.out) / RESULTS).is_file():
            print(
                f"capsim: sweep interrupted; every finished run is in {args.out}/{CELLS}/ "
                f"and {args.out}/{RESULTS}; the same command with --resume runs the rest",
                file=sys.stderr,
            )
        raise
    finally:
        progress.close()
    _print_result(result, args, time.perf_counter() - started)
    if result.lost:
        print(
            f"capsim: {len(result.lost)} run(s) did not finish ({result.lost_reason}); "
            "the same command with --resume runs them",
            file=sys.stderr,
        )
    return 1 if result.failed or result.lost else 0


def _print_result(result: SweepResult, args, wall: float) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    plan = result.plan
    console = Console(highlight=False)
    statuses = [row["status"] for row in result.rows]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in STATUSES if statuses.count(s))
    console.print(
        f"[bold]{escape(plan.base.name)}[/bold]: {len(plan.cells)} cell(s) x "
        f"{len(plan.seeds)} seed(s) = {len(plan.runs)} runs ({counts or 'none finished'}); "
        + (
            f"ran {result.ran} in {wall:.1f} s ({args.executor}, {result.workers} workers)"
            if result.ran or result.lost
            else "nothing left to run"
        )
    )
    table = Table(title="Per cell: mean ± half the 95% interval, over ok runs")
    table.add_column("cell", justify="right")
    paths = [path for path, _ in plan.axes]
    for path in paths:
        table.add_column(escape(path))
    table.add_column("ok", justify="right")
    for title, _ in HEADLINE:
        table.add_column(title, justify="right")
    for entry in result.aggregate:
        cells = [str(entry["cell"]), *(escape(str(entry[p])) for p in paths)]
        cells.append(f"{entry['seeds'] - entry['failed']}/{entry['seeds']}")
        for _, name in HEADLINE:
            mean = entry.get(name)
            if mean is None:
                cells.append("-")
            else:
                half = (entry[f"{name}.ci_high"] - entry[f"{name}.ci_low"]) / 2
                cells.append(f"{mean:.3g}" + (f" ±{half:.2g}" if half > 0 else ""))
        table.add_row(*cells)
    console.print(table)
    console.print(
        f"wrote {escape(str(args.out))}/{RESULTS} (one row per run), {AGGREGATE} (per cell) "
        f"and {CELLS}/ (one JSON file per run)"
    )
