"""A user's own protocol (examples/naive_register.py, written only against the public node
API) tested through capsim.testing: the stateful test and the search both find its bug
and shrink it to a handful of steps; a correct protocol passes the same test."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import Phase, seed, settings
from hypothesis.stateful import run_state_machine_as_test

from capsim.runner import run
from capsim.scenario import load_scenario, parse_scenario
from capsim.testing import ProtocolMachine, describe, explore

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CLAIMS = ("linearizable", "no-lost-writes", "convergence")
#: Small, and seeded below (the same examples every run); no "explain" phase (it re-runs
#: the search to annotate the steps).
MACHINE = settings(
    max_examples=40,
    stateful_step_count=10,
    database=None,
    deadline=None,
    phases=[Phase.generate, Phase.shrink],
)


@seed(0)
class NaiveRegisterMachine(ProtocolMachine):
    policy = "naive_register:NaiveRegister"
    policy_path = str(EXAMPLES)


@seed(0)
class RaftMachine(ProtocolMachine):
    policy = "raft"
    runs = 0

    def check(self) -> None:
        RaftMachine.runs += 1
        super().check()


def reproducer_of(message: str):
    """The scenario a failing machine printed, and the invariant it names."""
    name = message.split(" failed", 1)[0]
    text = message.split("`capsim run` replays it):\n", 1)[1]
    return name, parse_scenario(yaml.safe_load(text))


def test_the_stateful_test_finds_the_naive_registers_bug_in_a_few_steps():
    with pytest.raises(AssertionError) as caught:
        run_state_machine_as_test(NaiveRegisterMachine, settings=MACHINE)
    name, scenario = reproducer_of(str(caught.value))
    assert name in CLAIMS
    # Shrunk: one client operation and at most two faults, within the first second.
    assert len(scenario.workload.ops) == 1
    assert len(scenario.faults) <= 2
    assert scenario.duration <= 1.0
    assert "evidence:" in str(caught.value)
    # The printed scenario is the reproducer: run alone, it breaks the same invariant.
    assert name in run(scenario).summary["invariants"]["failed"]


def test_a_correct_protocol_passes_the_same_stateful_test():
    RaftMachine.runs = 0
    run_state_machine_as_test(RaftMachine, settings=settings(MACHINE, max_examples=25))
    assert RaftMachine.runs > 5  # the invariants were checked, repeatedly


def test_the_search_finds_the_naive_register_diverging_after_one_fault(tmp_path):
    exploration = explore(EXAMPLES / "naive-register.yaml", invariants=["convergence"])
    assert exploration.found
    failure = exploration.failure
    assert failure.invariant == "convergence"
    assert len(failure.faults) == 1  # no fault: replicas agree; one cut-off replica: never
    assert failure.evidence["divergent_keys"] >= 1
    assert describe(failure.faults[0]).startswith(("Partition(", "Crash("))
    out = exploration.write(tmp_path / "found")
    # The reproducer names the policy's folder relative to itself, so it moves with it.
    written = yaml.safe_load((out / "scenario.yaml").read_text())
    assert not Path(written["policy"]["path"]).is_absolute()
    replayed = run(load_scenario(out / "scenario.yaml"))
    assert "convergence" in replayed.summary["invariants"]["failed"]
    assert replayed.summary["trace_digest"] == failure.result.summary["trace_digest"]


@seed(1)
class WatchedRaftMachine(ProtocolMachine):
    """Raft, recording every fault the machine drew."""

    policy = "raft"
    drawn: list = []

    def check(self) -> None:
        WatchedRaftMachine.drawn.extend(self.faults)
        super().check()


def test_stateful_faults_against_a_leader_may_wait_for_the_next_election():
    WatchedRaftMachine.drawn = []
    run_state_machine_as_test(WatchedRaftMachine, settings=settings(MACHINE, max_examples=25))
    timed = [f for f in WatchedRaftMachine.drawn if getattr(f, "after", None)]
    assert timed, "no fault waited for a new leader"
    assert all(f.after == "new-leader" and 0 <= f.delay <= 1.0 for f in timed)
