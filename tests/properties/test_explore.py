"""capsim explore: searches fault schedules, shrinks the first failure, writes a reproducer
that `capsim run` replays; finds nothing in a correct protocol; bad input is one line.
The stored reproducers of the long hunts (benchmarks/explore_bench.py) replay here."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from capsim.cli import main
from capsim.errors import CapsimError
from capsim.faults import RandomFaults
from capsim.invariants import Invariant
from capsim.scenario import load_scenario, parse_scenario
from capsim.testing import Progress, explore, replay
from capsim.testing.command import ProgressLine

ROOT = Path(__file__).resolve().parents[2]
NAIVE = ROOT / "examples" / "naive-register.yaml"
REPRODUCERS = sorted((Path(__file__).parent / "reproducers").glob("*/scenario.yaml"))

#: A small raft cluster: three replicas, a few seconds, a light register workload.
RAFT = {
    "name": "small-raft",
    "duration": 3,
    "settle": 1,
    "images": [{"name": "kv", "startup": "100ms"}],
    "cluster": {"containers": 3, "zones": ["a", "b", "c"], "disk": {"sync": "2ms"}},
    "network": {"latency": {"same_zone": "1ms", "cross_zone": "2ms"}},
    "policy": {"name": "raft"},
    "workload": {"rate": 5, "clients_per_zone": 1, "timeout": 0.5, "keys": 2},
}

FRAGILE = '''
import capsim


class Fragile(capsim.Node):
    """A register on every replica that cannot start twice: a restart raises."""

    def on_start(self):
        if self.durable.get("started"):
            raise RuntimeError("started twice")
        self.durable["started"] = True
        self.sync(lambda: None)  # on disk once the sync completes
        self.data = {}

    def on_client(self, req):
        if req.op == "read":
            self.ok(req, self.data.get(req.key))
        else:
            self.data[req.key] = req.value
            self.ok(req, req.value)
'''


def cli(*args: str) -> int:
    """``capsim ARGS``'s exit status (argparse's usage errors exit through SystemExit)."""
    try:
        return main(list(args))
    except SystemExit as exc:
        return int(exc.code)


def test_explore_writes_a_reproducer_that_capsim_run_replays(tmp_path, capsys):
    out = tmp_path / "found"
    status = main(["explore", str(NAIVE), "--invariant", "convergence", "--out", str(out)])
    assert status == 1
    printed = capsys.readouterr().out
    assert "convergence fails with seed 0" in printed
    assert "shrunk in" in printed and "to 1 fault:" in printed
    assert f"reproducer: {out / 'scenario.yaml'}" in printed
    assert "divergent_keys:" in printed  # the evidence, one field a line
    evidence = json.loads((out / "evidence.json").read_text())
    assert evidence["invariant"] == "convergence" and evidence["seed"] == 0
    assert len(evidence["faults"]) == 1 and len(evidence["resolved"]) == 1
    assert (out / "timeline.png").stat().st_size > 0
    assert (out / "run" / "history.jsonl").is_file()
    # The scenario file replays the run exactly: same digest as the run the search found.
    found = json.loads((out / "run" / "summary.json").read_text())
    assert main(["run", str(out / "scenario.yaml"), "--json"]) == 0
    replayed = json.loads(capsys.readouterr().out)
    assert replayed["trace_digest"] == found["trace_digest"]
    assert "convergence" in replayed["invariants"]["failed"]


def test_a_correct_protocol_breaks_nothing_and_exits_0(tmp_path, capsys):
    scenario = tmp_path / "raft.yaml"
    scenario.write_text(json.dumps(RAFT))
    out = tmp_path / "none"
    status = main(["explore", str(scenario), "--examples", "8", "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert status == 0
    assert "small-raft: 8 examples in" in printed
    assert "broke none of linearizable, no-lost-writes, convergence" in printed
    assert not out.exists()  # nothing found, nothing written


def test_the_search_aims_faults_at_the_leader():
    found = explore(parse_scenario(RAFT), examples=12)
    assert not found.found and found.examples == 12 and found.stopped == "examples"
    assert found.faulted_examples == 11  # all but the run without faults
    assert found.leader_examples >= 4


def test_the_same_seed_searches_the_same_schedules():
    first = explore(NAIVE, invariants=["convergence"])
    again = explore(NAIVE, invariants=["convergence"])
    assert first.failure.faults == again.failure.faults
    assert (first.examples, first.shrink_runs) == (again.examples, again.shrink_runs)
    assert first.failure.evidence == again.failure.evidence


def test_a_policy_that_raises_is_a_failure_with_its_report(tmp_path):
    (tmp_path / "fragile.py").write_text(FRAGILE)
    scenario = parse_scenario(
        {**RAFT, "policy": {"name": "fragile:Fragile", "path": str(tmp_path)}}
    )
    found = explore(scenario, kinds=["crash"])
    assert found.failure.invariant == "policy-error"
    assert "RuntimeError: started twice" in found.failure.message
    (crash,) = found.failure.faults
    assert crash.duration is not None  # a restart is what breaks it
    assert found.failure.evidence["container"] in found.failure.resolved[0]["targets"]


def test_a_predicate_of_your_own_is_an_invariant():
    def no_timeouts(result):
        info = result.summary["ops"]["info"]
        return {"info": info} if info else None

    found = explore(parse_scenario(RAFT), invariants=[Invariant("no-timeouts", no_timeouts)])
    assert found.invariants == ["no-timeouts"]
    assert found.failure.invariant == "no-timeouts"
    assert found.failure.evidence["info"] >= 1
    assert len(found.failure.faults) <= 1


def test_the_budget_stops_the_search():
    found = explore(parse_scenario(RAFT), examples=10_000, budget_s=1.0)
    assert found.stopped == "budget" and not found.found
    assert 1 <= found.examples < 10_000


def test_progress_shows_examples_time_and_the_best_candidate():
    seen: list[Progress] = []
    explore(parse_scenario(RAFT), examples=5, progress=seen.append)
    assert [p.examples for p in seen] == [1, 2, 3, 4, 5]
    stream = io.StringIO()
    line = ProgressLine(stream, log_every_s=0.0)
    for progress in seen:
        line(progress)
    last = stream.getvalue().splitlines()[-1]
    assert last.startswith("capsim explore: 5 examples, ")
    assert "with a fault against the leader or primary; best so far:" in last


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--invariant", "consistent"], "unknown invariant 'consistent'"),
        (["--faults", "crash,meteor"], "unknown fault kind(s) ['meteor']"),
        (["--set", "workload.rate=-1"], "workload.rate"),
        (["--examples", "0"], "expected a positive integer"),
    ],
)
def test_bad_input_is_one_line_and_status_2(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert cli("explore", str(NAIVE), "--out", str(out), *args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and not out.exists()


def test_an_out_that_is_a_file_is_refused_before_searching(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    assert main(["explore", str(NAIVE), "--out", str(taken)]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert taken.read_text() == "mine"


@pytest.mark.parametrize("path", REPRODUCERS, ids=[p.parent.name for p in REPRODUCERS])
def test_stored_reproducers_still_break_the_same_invariant_the_same_way(path):
    stored = json.loads(path.with_name("evidence.json").read_text())
    result, verdicts = replay(path)
    (verdict,) = verdicts
    assert verdict["name"] == stored["invariant"] and verdict["status"] == "failed"
    assert json.loads(json.dumps(verdict["evidence"])) == stored["evidence"]
    assert result.seed == stored["seed"]


def test_there_are_stored_reproducers_for_every_hunt_that_found_a_bug():
    names = {path.parent.name for path in REPRODUCERS}
    assert {
        "primary-backup-async",
        "raft-read-local",
        "raft-figure8",
        "quorum-lww",
        "quorum-lww-linearizable",
        "naive-register",
    } <= names
    for path in REPRODUCERS:
        assert len(load_scenario(path).faults) <= 3


SPLIT_BRAIN = ROOT / "scenarios" / "primary-backup-split-brain.yaml"


def test_a_storm_that_breaks_an_invariant_is_frozen_pruned_and_replays(tmp_path):
    scenario = load_scenario(SPLIT_BRAIN, overrides=["duration=10s"])
    found = explore(scenario, invariants=["no-lost-writes"], storm="only", examples=50)
    failure = found.failure
    assert failure.invariant == "no-lost-writes"
    assert isinstance(failure.storm, RandomFaults) and failure.storm.target == "primary"
    # Frozen: the faults the storm drew, as a schedule of plain faults, pruned so that
    # none of them can go.
    assert failure.faults and not any(isinstance(f, RandomFaults) for f in failure.faults)
    assert len(failure.faults) <= 3
    out = found.write(tmp_path / "found")
    assert "kind: random" not in (out / "scenario.yaml").read_text()
    assert json.loads((out / "evidence.json").read_text())["storm"].startswith("RandomFaults(")
    _, verdicts = replay(out / "scenario.yaml")
    (verdict,) = verdicts
    assert verdict["status"] == "failed" and verdict["evidence"] == failure.evidence
    assert "found by the storm RandomFaults(" in found.report()


def test_storms_only_search_a_correct_protocol_and_find_nothing():
    found = explore(parse_scenario(RAFT), examples=10, storm="only")
    assert not found.found and found.examples == 10
    assert found.leader_examples >= 5  # storms aim at the leader
    with pytest.raises(CapsimError, match="storm must be"):
        explore(parse_scenario(RAFT), storm="sometimes")


def test_no_storms_searches_schedules_alone(tmp_path, capsys):
    # The naive register's default search is won by a storm (as the README shows); with
    # --no-storms the same search finds the bug with a schedule drawn as such.
    args = ["explore", str(NAIVE), "--invariant", "convergence", "--quiet", "--json"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 1
    stormy = json.loads(capsys.readouterr().out)
    assert stormy["failure"]["storm"].startswith("RandomFaults(")
    assert main([*args, "--no-storms", "--out", str(tmp_path / "b")]) == 1
    plain = json.loads(capsys.readouterr().out)
    assert plain["failure"]["storm"] is None and len(plain["failure"]["faults"]) == 1


def test_progress_while_shrinking_shows_the_smallest_failure_so_far():
    seen: list[Progress] = []
    found = explore(NAIVE, invariants=["convergence"], progress=seen.append)
    shrinking = [p for p in seen if p.found is not None]
    assert shrinking and all(p.found == "convergence" for p in shrinking)
    assert shrinking[-1].smallest == len(found.failure.faults) == 1
    assert all(p.smallest is None for p in seen if p.found is None)
    text = ProgressLine.text(shrinking[-1])
    assert text.startswith("capsim explore: convergence fails; shrinking: ")
    assert text.endswith("; smallest so far: 1 fault")
