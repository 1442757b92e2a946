"""Sweeps: grids and seeds, the local pool and Dask, resume, and the result tables."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from capsim.cli import main
from capsim.errors import ScenarioError
from capsim.runner import OUTPUT_MARKER, run
from capsim.scenario import load_scenario
from capsim.sweep import _policy_files, _run_task, parse_grid_arg, plan_sweep, t_quantile

#: Two policies, three seeds, a one-second run with a minority partition in the middle.
TINY = """
name: tiny
duration: 1s
settle: 0.5s
cluster: {containers: 5, zones: [a, b, c], disk: {sync: 1ms}}
network: {latency: {same_zone: 0.5ms, cross_zone: 2ms}}
policy: {name: raft}
workload: {rate: 20/s, clients_per_zone: 2, keys: 4, timeout: 300ms, cas_fraction: 0}
faults:
  - {kind: partition, at: 0.3s, duration: 0.5s, groups: [[n1, n2, n3], [n4, n5]]}
sweep:
  grid:
    policy: [{name: raft}, {name: quorum, params: {r: 1, w: 1}}]
  seeds: 3
"""

#: A user's policy: single-primary, but each run's boot takes a quarter of a second of
#: wall time (the simulation does not see it), so that a sweep can be killed midway.
SLEEPY = """
import time

from capsim.policies.single_primary import SinglePrimary


class Sleepy(SinglePrimary):
    def on_start(self):
        if self.id == "n1":
            time.sleep(0.25)
        super().on_start()
"""

#: A user's policy that answers every request itself, and raises if told to.
BOOM = """
from dataclasses import dataclass

import capsim


@dataclass(frozen=True, kw_only=True)
class Params:
    boom: bool = False


class Boom(capsim.Node):
    Params = Params

    def on_client(self, req):
        if self.params.boom and self.now() > 0.5:
            raise RuntimeError("boom")
        self.ok(req, None if req.op == "read" else req.value)
"""

#: A policy module that only imports in the process that validated the sweep, so that it
#: fails in every worker: a run that raises outside the policy's callbacks.
PARENT_ONLY = """
import os

import capsim

if os.environ.get("CAPSIM_TEST_PARENT_PID") != str(os.getpid()):
    raise ImportError("only in the parent")


class Echo(capsim.Node):
    def on_client(self, req):
        self.ok(req, None)
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The TINY sweep on 2 local workers: (scenario file, output folder)."""
    folder = tmp_path_factory.mktemp("tiny")
    path = write(folder, "tiny.yaml", TINY)
    out = folder / "out"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "2", "--quiet"]) == 0
    return path, out


@pytest.fixture(scope="module")
def scheduler():
    """A Dask cluster of two worker processes, shared by the tests that use Dask."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": ":0"},
        silence_logs=logging.ERROR,
    )
    yield cluster.scheduler_address
    cluster.close()


# --- the grid -------------------------------------------------------------------------------


def test_grid_arguments_are_yaml_flow_sequences():
    assert parse_grid_arg("workload.rate=10,20,40") == ("workload.rate", [10, 20, 40])
    assert parse_grid_arg("workload.rate=10/s, 5/ms") == ("workload.rate", ["10/s", "5/ms"])
    assert parse_grid_arg("policy={name: raft},{name: quorum, params: {r: 1, w: 1}}") == (
        "policy",
        [{"name": "raft"}, {"name": "quorum", "params": {"r": 1, "w": 1}}],
    )
    assert parse_grid_arg("faults[0].groups=[[n1], [n2, n3]]") == (
        "faults[0].groups",
        [[["n1"], ["n2", "n3"]]],
    )
    for bad, said in [
        ("workload.rate", "write path=value1,value2"),
        ("workload.rate=", "no values"),
        ("seed=1,2", "cannot be swept"),
        ("policy={name: raft", "not a list of YAML values"),
        ("a..b=1", "not a field path"),
    ]:
        with pytest.raises(ScenarioError, match=said):
            parse_grid_arg(bad)


def test_cells_are_the_product_of_the_axes_in_order(tmp_path):
    path = write(
        tmp_path,
        "grid.yaml",
        """
        seed: 7
        duration: 1s
        workload: {keys: 3}
        sweep:
          grid:
            workload.rate: [10, 20]
            policy: [{name: raft}]
          seeds: 2
        """,
    )
    plan = plan_sweep(
        path,
        grid={
            "policy": [{"name": "raft"}, {"name": "quorum", "params": {"r": 1, "w": 1}}, {}],
            "workload.keys": [2, 4],
        },
        overrides=["workload.rate=5", "workload.read_fraction=0.9"],
    )
    # --grid replaced the file's policy axis in place and added workload.keys after it.
    assert [p for p, _ in plan.axes] == ["workload.rate", "policy", "workload.keys"]
    assert len(plan.cells) == 2 * 3 * 2
    assert plan.seeds == [7, 8]  # a count: the scenario's seed and the next
    # The first axis varies slowest: cell = (rate * 3 + policy) * 2 + keys.
    cell = plan.cells[(1 * 3 + 1) * 2 + 0]
    assert cell.values == {
        "workload.rate": 20,
        "policy": {"name": "quorum", "params": {"r": 1, "w": 1}},
        "workload.keys": 2,
    }
    assert cell.label == (
        "workload.rate=20, policy={name: quorum, params: {r: 1, w: 1}}, workload.keys=2"
    )
    sc = cell.scenario
    assert (sc.workload.rate, sc.policy.name, dict(sc.policy.params)) == (
        20.0,
        "quorum",
        {"r": 1, "w": 1},
    )
    assert sc.workload.keys == 2  # the cell's value wins over the file's 3
    assert sc.workload.read_fraction == 0.9  # --set applies beneath the cell's values
    assert sc.sweep is None
    assert plan.cells[11].scenario.policy.name == "single-primary"  # {}: the default
    assert plan_sweep(path, seeds=3).seeds == [7, 8, 9]
    assert plan_sweep(path, seeds=[4, 1]).seeds == [4, 1]


def test_a_bad_grid_value_names_the_cell_and_field_and_writes_nothing(tmp_path, capsys):
    path = write(tmp_path, "tiny.yaml", TINY)
    out = tmp_path / "out"
    for grid, said in [
        (
            "workload.rate=10,-5",
            # the first cell that does not validate: raft at -5
            "tiny.yaml: cell 1 (policy={name: raft}, workload.rate=-5): workload.rate: "
            "must be greater than zero, got -5",
        ),
        (
            "policy={name: quorum, params: {nope: 1}}",
            "cell 0 (policy={name: quorum, params: {nope: 1}}): policy.params.nope: "
            "unknown parameter",
        ),
        ("workload.nope=1", "cell 0 (policy={name: raft}, workload.nope=1): workload.nope"),
    ]:
        assert main(["sweep", str(path), "--out", str(out), "--grid", grid]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and said in err, err
        assert not out.exists()


# --- running: the same rows everywhere --------------------------------------------------------


def test_results_csv_holds_one_tidy_row_per_run(tiny):
    pandas = pytest.importorskip("pandas")
    _, out = tiny
    frame = pandas.read_csv(out / "results.csv")
    assert list(frame.columns[:4]) == ["cell", "policy", "seed", "status"]
    assert list(zip(frame["cell"], frame["seed"], strict=True)) == [
        (c, s) for c in (0, 1) for s in (0, 1, 2)
    ]
    assert set(frame["policy"]) == {"{name: raft}", "{name: quorum, params: {r: 1, w: 1}}"}
    assert (frame["status"] == "ok").all()
    assert list(frame["policy.name"]) == ["raft"] * 3 + ["quorum"] * 3
    for excluded in ("perf.wall_s", "breakdown.by_zone.a.ops", "availability.by_shard.0"):
        assert excluded not in frame.columns
    for _, row in frame.iterrows():
        record = json.loads((out / "cells" / f"{row['cell']}-{row['seed']}.json").read_text())
        summary = record["summary"]
        assert (
            row["availability.by_side.minority"] == summary["availability"]["by_side"]["minority"]
        )
        assert row["staleness.stale_read_fraction"] == summary["staleness"]["stale_read_fraction"]
        assert row["trace_digest"] == summary["trace_digest"]
        assert summary["staleness"]["t_visibility"]  # curves and breakdowns live in cells/
        assert summary["breakdown"]["by_shard"]
        assert record["timeseries"][0]["t_s"] == 0
    # CP against AP: Raft's minority side is served never, r = w = 1 quorums' always.
    minority = frame.groupby("cell")["availability.by_side.minority"].mean()
    assert list(minority) == [0.0, 1.0]


def test_the_rows_are_the_same_bytes_with_one_worker_two_and_dask(tiny, tmp_path, scheduler):
    path, out = tiny
    runs = {
        "one": ["--workers", "1"],
        "dask": ["--executor", "dask", "--scheduler", scheduler],
    }
    for name, options in runs.items():
        other = tmp_path / name
        assert main(["sweep", str(path), "--out", str(other), "--quiet", *options]) == 0
        for table in ("results.csv", "aggregate.csv"):
            assert (other / table).read_bytes() == (out / table).read_bytes(), (name, table)


def test_aggregate_means_and_intervals_match_a_hand_computation(tiny):
    _, out = tiny
    rows = read_csv(out / "results.csv")
    agg = read_csv(out / "aggregate.csv")
    assert [a["cell"] for a in agg] == ["0", "1"]
    assert [(a["seeds"], a["failed"]) for a in agg] == [("3", "0"), ("3", "0")]
    t2 = 4.302652729911275  # Student's t, 0.975 quantile, 2 degrees of freedom (tables)
    for entry in agg:
        mine = [r for r in rows if r["cell"] == entry["cell"]]
        assert entry["policy"] == mine[0]["policy"]
        for metric in ("availability.overall", "ops.total", "latency_ms.write.p50"):
            values = [float(r[metric]) for r in mine]
            mean = sum(values) / 3
            half = t2 * statistics.stdev(values) / math.sqrt(3)
            assert float(entry[metric]) == pytest.approx(mean, rel=1e-12)
            assert float(entry[f"{metric}.ci_low"]) == pytest.approx(mean - half, rel=1e-9)
            assert float(entry[f"{metric}.ci_high"]) == pytest.approx(mean + half, rel=1e-9)
        # Equal values: the value itself, and an interval of zero width.
        same = {r["availability.outside_faults"] for r in mine}
        if len(same) == 1:
            value = same.pop()
            assert entry["availability.outside_faults"] == value
            assert entry["availability.outside_faults.ci_low"] == value
    assert "trace_digest" not in agg[0] and "policy.name" not in agg[0]  # text is not averaged
    # Booleans average to the fraction of runs where they held.
    linearizable = [r["consistency.linearizable"] for r in rows if r["cell"] == "0"]
    assert float(agg[0]["consistency.linearizable"]) == linearizable.count("true") / 3


def test_t_quantiles_match_the_tables():
    # Student's t 0.975 quantiles, from standard tables.
    for df, value in [
        (1, 12.706204736),
        (2, 4.302652730),
        (4, 2.776445105),
        (9, 2.262157163),
        (29, 2.045229642),
        (100, 1.983971519),
        (1000, 1.962339081),
    ]:
        assert t_quantile(df) == pytest.approx(value, abs=2e-9), df
    assert 1.959963984540054 < t_quantile(100_000) < t_quantile(1001) < t_quantile(1000)


# --- resume --------------------------------------------------------------------------------


def _session(sid: int) -> list[int]:
    """Live processes (not zombies) in session ``sid``."""
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            alive.append(int(entry))
    return alive


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_resume_after_a_killed_sweep_runs_exactly_the_missing_runs(tmp_path, capsys):
    write(tmp_path, "sleepy.py", SLEEPY)
    path = write(
        tmp_path,
        "sleepy.yaml",
        """
        duration: 1s
        settle: 0.2s
        policy: {name: "sleepy:Sleepy"}
        workload: {rate: 10/s, keys: 3}
        sweep: {grid: {workload.rate: [10, 20]}, seeds: 4}
        """,
    )
    out = tmp_path / "out"
    command = [str(path), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "capsim", "sweep", *command, "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    cells = out / "cells"
    deadline = time.monotonic() + 60
    while not (cells.is_dir() and len(list(cells.glob("*.json"))) >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep did not start"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # Its workers notice and exit: nothing of the killed sweep keeps running.
    deadline = time.monotonic() + 10
    while _session(proc.pid):
        assert time.monotonic() < deadline, f"left running: {_session(proc.pid)}"
        time.sleep(0.1)
    kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cells.glob("*.json")}
    assert 2 <= len(kept) < 8
    assert not (out / "results.csv").exists()

    capsys.readouterr()
    assert main(["sweep", *command, "--workers", "2", "--resume"]) == 0
    printed = capsys.readouterr().out
    assert f"= 8 runs (8 ok); ran {8 - len(kept)} in" in printed
    assert len(list(cells.glob("*.json"))) == 8
    for name, stamp in kept.items():  # the finished runs were not run again
        path_ = cells / name
        assert (path_.stat().st_ino, path_.stat().st_mtime_ns) == stamp
    # Nothing is left to run now, and the result is that of an uninterrupted sweep.
    assert main(["sweep", *command, "--resume"]) == 0
    assert "nothing left to run" in capsys.readouterr().out
    whole = tmp_path / "whole"
    assert main(["sweep", str(path), "--out", str(whole), "--quiet", "--workers", "2"]) == 0
    for table in ("results.csv", "aggregate.csv"):
        assert (out / table).read_bytes() == (whole / table).read_bytes()

    # --resume refuses another grid, other seeds or another scenario.
    for extra, said in [
        (["--grid", "workload.rate=10"], "the grid differs"),
        (["--seeds", "5"], "the seeds differ"),
        (["--set", "duration=2s"], "the scenario differs from the one"),
    ]:
        assert main(["sweep", *command, "--resume", *extra]) == 2
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1, err


def test_output_folders_are_refused_or_replaced_as_capsim_run_does(tmp_path, capsys):
    path = write(tmp_path, "one.yaml", TINY.replace("seeds: 3", "seeds: 1"))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["sweep", str(path), "--out", str(mine), "--grid", "policy={}"]) == 2
    assert "was not written by capsim" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "keep me"
    assert main(["sweep", str(path), "--out", str(mine), "--resume"]) == 2
    assert "not a sweep's folder" in capsys.readouterr().err

    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--quiet", "--grid", "policy={}"]) == 0
    assert (out / OUTPUT_MARKER).is_file()
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["grid"] == [{"path": "policy", "values": [{}]}]
    assert manifest["seeds"] == [0] and manifest["runs"] == 1
    # Without --resume, a sweep's folder is replaced by the new sweep.
    assert main(["sweep", str(path), "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in (out / "cells").iterdir()) == ["0-0.json", "1-0.json"]


# --- failures ------------------------------------------------------------------------------


def test_a_run_whose_policy_raises_is_reported_and_the_others_finish(tmp_path, capsys):
    write(tmp_path, "boom.py", BOOM)
    path = write(
        tmp_path,
        "boom.yaml",
        """
        duration: 1s
        settle: 0.2s
        policy: {name: "boom:Boom"}
        workload: {rate: 10/s, keys: 3, cas_fraction: 0}
        sweep: {grid: {policy.params.boom: [false, true]}, seeds: 2}
        """,
    )
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "2"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert sorted(err) == [
        f"capsim: cell 1 (policy.params.boom=true), seed {seed}: policy-error: "
        "policy boom:Boom raised RuntimeError: boom"
        for seed in (0, 1)
    ]
    rows = read_csv(out / "results.csv")
    assert [(r["cell"], r["status"]) for r in rows] == [
        ("0", "ok"),
        ("0", "ok"),
        ("1", "policy-error"),
        ("1", "policy-error"),
    ]
    assert rows[0]["availability.overall"] == "1.0"
    assert rows[2]["failure.error"] == "RuntimeError: boom"
    assert rows[0]["failure.error"] == ""  # every row has every column
    record = json.loads((out / "cells" / "1-0.json").read_text())
    assert "in the policy's code" in record["report"]
    assert float(record["summary"]["failure"]["time"]) > 0.5
    agg = read_csv(out / "aggregate.csv")
    assert [(a["seeds"], a["failed"]) for a in agg] == [("2", "0"), ("2", "2")]
    assert agg[0]["availability.overall"] == "1.0" and agg[1]["availability.overall"] == ""


def test_a_run_that_raises_outside_the_policy_is_a_failed_row(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CAPSIM_TEST_PARENT_PID", str(os.getpid()))
    write(tmp_path, "parentonly.py", PARENT_ONLY)
    path = write(tmp_path, "p.yaml", 'duration: 1s\npolicy: {name: "parentonly:Echo"}\n')
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("capsim: seed 0: failed: ScenarioError: policy.name: cannot import")
    assert "ImportError: only in the parent" in err
    (row,) = read_csv(out / "results.csv")
    assert (row["cell"], row["seed"], row["status"]) == ("0", "0", "failed")
    assert list(row) == ["cell", "seed", "status"]  # no summary, no metric columns
    assert json.loads((out / "cells" / "0-0.json").read_text())["traceback"]


def test_without_dask_the_dask_executor_is_one_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    path = write(tmp_path, "tiny.yaml", TINY)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--executor", "dask"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'capsim[dask]'" in err
    assert not out.exists()


# --- a user's policy on the workers ------------------------------------------------------------

SOLO = """
from dataclasses import dataclass

import capsim


@dataclass(frozen=True, kw_only=True)
class Params:
    home: str = "n1"


class Solo(capsim.Node):
    Params = Params

    def on_start(self):
        self.data = dict(self.durable.get("data", {}))

    def on_client(self, req):
        if self.id != self.params.home:
            return self.redirect(req, self.params.home)
        if req.op == "read":
            return self.ok(req, self.data.get(req.key))
        self.data[req.key] = req.value
        self.durable["data"] = dict(self.data)
        self.ok(req, req.value)
"""


def test_a_users_policy_runs_under_the_pool_and_under_dask(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    folder = tmp_path / "mine"
    folder.mkdir()
    write(folder, "solo.py", SOLO)
    path = write(
        folder,
        "solo.yaml",
        """
        duration: 1s
        settle: 0.2s
        policy: {name: "solo:Solo"}
        workload: {rate: 10/s, keys: 3, cas_fraction: 0}
        faults: [{kind: crash, at: 0.2s, duration: 0.3s, target: n2}]
        sweep: {grid: {policy.params.home: [n1, n2]}, seeds: 2}
        """,
    )
    monkeypatch.chdir(tmp_path)  # not the policy's folder
    tables = {}
    for name, options in {
        "pool": ["--workers", "2"],
        "dask": ["--executor", "dask", "--workers", "1"],  # a LocalCluster of its own
    }.items():
        out = tmp_path / name
        assert main(["sweep", str(path), "--out", str(out), "--quiet", *options]) == 0
        tables[name] = (out / "results.csv").read_text()
    assert tables["pool"] == tables["dask"]
    rows = read_csv(tmp_path / "pool" / "results.csv")
    assert {r["policy.name"] for r in rows} == {"solo:Solo"}
    # Each worker ran the cell's own parameters: the same digests as runs in this process.
    for row in rows:
        scenario = load_scenario(
            path, overrides=[f"policy.params.home={row['policy.params.home']}"]
        )
        assert row["trace_digest"] == run(scenario, seed=int(row["seed"])).summary["trace_digest"]
    # Served by n2 alone, the crash of n2 costs availability; served by n1, it does not.
    by_home = {r["policy.params.home"]: float(r["availability.overall"]) for r in rows}
    assert by_home["n1"] == 1.0 and by_home["n2"] < 1.0


def test_a_worker_without_the_policys_folder_uses_the_files_sent_with_the_task(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    write(folder, "solo.py", SOLO)
    path = write(folder, "solo.yaml", 'duration: 1s\npolicy: {name: "solo:Solo"}\n')
    scenario = plan_sweep(path).cells[0].scenario
    files = _policy_files(scenario)
    assert set(files) == {"solo.py"}
    missing = str(tmp_path / "not-on-this-machine")
    elsewhere = replace(scenario, policy=replace(scenario.policy, path=missing))
    record = _run_task((0, 0, elsewhere, files))
    assert record["status"] == "ok", record.get("error")
    assert record["summary"]["trace_digest"] == run(scenario, seed=0).summary["trace_digest"]


def test_the_progress_line_shows_runs_done_running_failed_and_time_left(capsys, monkeypatch):
    from capsim.sweep import _Progress

    tick = {"done": 2, "running": 2, "failed": 1, "total": 6, "left_s": 75.4}
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    progress = _Progress(quiet=False)
    progress("tick", tick)
    progress.close()
    assert "2/6 runs done, 2 running, 1 failed, about 1 min 15 s left" in capsys.readouterr().err
    quiet = _Progress(quiet=True)
    quiet("tick", tick)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)  # a file or a pipe: no line
    piped = _Progress(quiet=False)
    piped("tick", tick)
    assert capsys.readouterr().err == ""


def test_a_lost_dask_worker_costs_no_finished_run(tmp_path, scheduler):
    """Kill a Dask worker in the middle of a sweep: the scheduler runs its work elsewhere,
    every run finishes once, and the rows are those of a sweep on the local pool."""
    import threading

    import distributed

    from capsim.sweep import sweep

    write(tmp_path, "sleepy.py", SLEEPY)
    path = write(
        tmp_path,
        "sleepy.yaml",
        """
        duration: 1s
        settle: 0.2s
        policy: {name: "sleepy:Sleepy"}
        workload: {rate: 10/s, keys: 3}
        sweep: {grid: {workload.rate: [10, 20]}, seeds: 4}
        """,
    )
    out = tmp_path / "dask"
    outcome = {}
    thread = threading.Thread(
        target=lambda: outcome.update(
            result=sweep(path, out=out, executor="dask", scheduler=scheduler)
        )
    )
    thread.start()
    deadline = time.monotonic() + 60
    while not ((out / "cells").is_dir() and any((out / "cells").glob("*.json"))):
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    with distributed.Client(scheduler, set_as_default=False) as client:
        victim = sorted(client.scheduler_info()["workers"])[0]
        (pid,) = client.run(os.getpid, workers=[victim]).values()
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=120)
    with distributed.Client(scheduler, set_as_default=False) as client:
        assert victim not in client.scheduler_info()["workers"]  # lost during the sweep
    result = outcome["result"]
    assert not result.lost and result.failed == 0 and result.ran == 8
    local = tmp_path / "local"
    assert main(["sweep", str(path), "--out", str(local), "--quiet", "--workers", "2"]) == 0
    assert (out / "results.csv").read_bytes() == (local / "results.csv").read_bytes()


def test_the_readme_tradeoff_sweep_gives_the_figures_it_quotes(tmp_path):
    """The README's first command: three policies over 10 seeds, CP against AP."""
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "tradeoff"
    scenario = root / "scenarios" / "tradeoff.yaml"
    assert main(["sweep", str(scenario), "--out", str(out), "--quiet"]) == 0
    raft, w3, w1 = read_csv(out / "aggregate.csv")
    assert [a["policy"] for a in (raft, w3, w1)] == [
        "{name: raft}",
        "{name: quorum, params: {r: 1, w: 3}}",
        "{name: quorum, params: {r: 1, w: 1}}",
    ]
    assert {a["seeds"] for a in (raft, w3, w1)} == {"10"}
    minority, stale = "availability.by_side.minority", "staleness.stale_read_fraction"
    assert (float(raft[minority]), float(raft[stale])) == (0.0, 0.0)  # CP
    assert float(raft[f"{minority}.ci_high"]) == 0.0
    assert float(w1[minority]) == 1.0 and float(w1[stale]) > float(w3[stale]) > 0  # AP
    assert 0 < float(w3[minority]) < 1  # reads yes, writes no
    readme = (root / "README.md").read_text()
    assert f"({float(w3[minority]):.2f} of its operations)" in readme
    assert f"a few stale reads ({float(w3[stale]):.3f})" in readme
    assert f"and {float(w1[stale]) * 100:.0f}% of reads are stale" in readme


def test_from_python_a_scenario_object_sweeps_into_rows_without_a_folder(tmp_path):
    from capsim.sweep import sweep

    scenario = load_scenario(write(tmp_path, "tiny.yaml", TINY))
    result = sweep(scenario, grid={"workload.keys": [2, 3]}, seeds=range(5, 7), workers=2)
    assert result.out is None and result.failed == 0
    assert [(r["cell"], r["policy"], r["workload.keys"], r["seed"]) for r in result.rows] == [
        (0, "{name: raft}", "2", 5),
        (0, "{name: raft}", "2", 6),
        (1, "{name: raft}", "3", 5),
        (1, "{name: raft}", "3", 6),
        (2, "{name: quorum, params: {r: 1, w: 1}}", "2", 5),
        (2, "{name: quorum, params: {r: 1, w: 1}}", "2", 6),
        (3, "{name: quorum, params: {r: 1, w: 1}}", "3", 5),
        (3, "{name: quorum, params: {r: 1, w: 1}}", "3", 6),
    ]
    cell = load_scenario(tmp_path / "tiny.yaml", overrides=["workload.keys=3"])
    assert result.rows[3]["trace_digest"] == run(cell, seed=6).summary["trace_digest"]
    assert [a["seeds"] for a in result.aggregate] == [2, 2, 2, 2]
