"""Named invariants (capsim.invariants): each checked on hand-made runs whose verdict is
worked out by hand, and on scenarios whose bug switches are known to break them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from capsim.history import History
from capsim.invariants import INVARIANTS, Invariant, UnknownInvariant, check, summarize
from capsim.runner import run
from capsim.scenario import load_scenario, parse_scenario
from capsim.sim.cluster import AppliedLogs

SCENARIOS = Path(__file__).parents[2] / "scenarios"


def fake(events=(), *, kind="register", roles=(), safety=None, summary=None):
    """A run as the invariants read it: history, scenario, roles, safety, summary."""
    h = History()
    for e in events:
        h.append(**e)
    return SimpleNamespace(
        history=h,
        scenario=parse_scenario({"workload": {"kind": kind}}),
        roles=list(roles),
        safety=safety or {},
        summary=summary or {},
        divergent=None,
        claims=(),
    )


def op(process, f, key, value, t0, t1, outcome="ok", output=None, final=False, node="n1"):
    """An invocation and its completion as history events."""
    return [
        dict(process=process, type="invoke", f=f, key=key, value=value, time=t0, final=final),
        dict(
            process=process,
            type=outcome,
            f=f,
            key=key,
            value=output if f == "read" else value,
            time=t1,
            final=final,
            node=node,
        ),
    ]


def verdict(run_, name):
    (v,) = check(run_, [name])
    return v


# --- no-lost-writes -----------------------------------------------------------------------


def test_register_write_superseded_by_an_older_value_is_lost():
    # w1 (value 1) completes at 1; w2 (value 2) is invoked at 2, after w1 completed, and
    # acknowledged at 3; the final read at 10 returns 1: w2 must have superseded 1 and
    # did not, so w2 was lost.
    events = [
        *op(0, "write", "k", 1, 0.0, 1.0),
        *op(1, "write", "k", 2, 2.0, 3.0, node="n2"),
        *op(2, "read", "k", None, 10.0, 10.1, output=1, final=True, node="n3"),
    ]
    v = verdict(fake(events), "no-lost-writes")
    assert v.status == "failed"
    (example,) = v.evidence["examples"]
    assert example["write"]["value"] == 2 and example["write"]["node"] == "n2"
    assert example["final_read"]["output"] == 1 and example["final_read"]["node"] == "n3"


def test_register_concurrent_write_may_win():
    # w2 is invoked at 0.5, before w1 completed: they are concurrent, either may be last.
    events = [
        *op(0, "write", "k", 1, 0.0, 1.0),
        *op(1, "write", "k", 2, 0.5, 3.0),
        *op(2, "read", "k", None, 10.0, 10.1, output=1, final=True),
    ]
    assert verdict(fake(events), "no-lost-writes").status == "held"


def test_register_newer_final_value_holds_and_info_writes_are_not_claimed():
    events = [
        *op(0, "write", "k", 1, 0.0, 1.0),
        *op(1, "write", "k", 2, 2.0, 3.0, outcome="info"),  # never acknowledged
        *op(2, "write", "k", 3, 4.0, 5.0),
        *op(3, "read", "k", None, 10.0, 10.1, output=3, final=True),
    ]
    assert verdict(fake(events), "no-lost-writes").status == "held"


def test_set_add_missing_from_every_final_read_is_lost():
    events = [
        *op(0, "add", "s", 1, 0.0, 1.0),
        *op(1, "add", "s", 2, 0.0, 1.0),
        *op(2, "read", "s", None, 10.0, 10.1, output=[1, 2], final=True),
        *op(3, "read", "s", None, 10.0, 10.1, output=[1], final=True),
    ]
    assert verdict(fake(events, kind="set"), "no-lost-writes").status == "held"
    events += op(4, "add", "s", 3, 2.0, 3.0)
    v = verdict(fake(events, kind="set"), "no-lost-writes")
    assert v.status == "failed" and v.evidence["lost"] == 1
    assert v.evidence["examples"][0]["write"]["value"] == 3


def test_no_final_reads_is_unknown():
    assert verdict(fake(op(0, "write", "k", 1, 0.0, 1.0)), "no-lost-writes").status == "unknown"


# --- single-leader ----------------------------------------------------------------------


def test_two_leaders_in_one_term_fail_and_successive_terms_hold():
    roles = [
        (0.0, "n1", 0, "follower", 1),
        (0.1, "n1", 0, "leader", 1),
        (5.0, "n2", 0, "leader", 2),  # a new term: fine, even while n1 still thinks it leads
        (6.0, "n3", 0, "leader", 2),
    ]
    assert verdict(fake(roles=roles[:3]), "single-leader").status == "held"
    v = verdict(fake(roles=roles), "single-leader")
    assert v.status == "failed"
    assert v.evidence == {
        "shard": 0,
        "term": 2,
        "leaders": [{"node": "n2", "since": 5.0}, {"node": "n3", "since": 6.0}],
    }


def test_leaders_of_different_shards_share_terms():
    roles = [(0.1, "n1", 0, "leader", 1), (0.1, "n2", 1, "primary", 1)]
    assert verdict(fake(roles=roles), "single-leader").status == "held"
    assert verdict(fake(), "single-leader").status == "unknown"


# --- state-machine-safety ----------------------------------------------------------------


def test_applied_logs_must_agree_position_by_position():
    from capsim.sim.node import Node

    class Replica(Node):
        def __init__(self, log):
            self.log = log

        def applied_log(self):
            return self.log

    logs = AppliedLogs()
    logs.sample(1.0, "n1", 0, Replica(["a", "b"]))
    logs.sample(2.0, "n2", 0, Replica(["a"]))  # a prefix: fine
    logs.sample(3.0, "n3", 0, Replica(["a", "b", "c"]))
    assert logs.conflict is None and logs.samples == 3
    logs.sample(4.0, "n2", 0, Replica(["a", "x"]))
    assert logs.conflict == {
        "shard": 0,
        "index": 1,
        "first": {"node": "n1", "time": 1.0, "command": "b"},
        "then": {"node": "n2", "time": 4.0, "command": "x"},
    }
    v = verdict(fake(safety={"samples": 4, "conflict": logs.conflict}), "state-machine-safety")
    assert v.status == "failed" and "position 1" in v.message


# --- user predicates, names, the summary ---------------------------------------------------


def test_user_predicates_and_unknown_names():
    def few_reads(result):
        return None if len(result.history) < 100 else {"events": len(result.history)}

    r = fake(op(0, "write", "k", 1, 0.0, 1.0))
    (v,) = check(r, [few_reads])
    assert (v.name, v.status) == ("few_reads", "held")
    (v,) = check(r, [Invariant("never", lambda result: "it broke")])
    assert v.status == "failed" and v.evidence == {"detail": "it broke"}
    with pytest.raises(UnknownInvariant, match="known: linearizable"):
        check(r, ["linearisable"])
    section = summarize(check(r, ["single-leader", Invariant("never", lambda _: "no")]))
    assert section["checked"] == ["single-leader", "never"]
    assert (section["unknown"], section["failed"]) == (["single-leader"], ["never"])


# --- whole runs: claims, bug switches ---------------------------------------------------------


def short(name, **sets):
    overrides = [f"{k}={v}" for k, v in sets.items()]
    return load_scenario(SCENARIOS / f"{name}.yaml", overrides=overrides)


def test_a_run_checks_what_its_policy_claims():
    result = run(short("raft"))
    section = result.summary["invariants"]
    assert section["checked"] == list(INVARIANTS)
    assert section["held"] == list(INVARIANTS) and not section["failed"]
    pb_async = load_scenario(
        SCENARIOS / "primary-backup.yaml", overrides=["policy.params.replication=async"]
    )
    assert run(pb_async).summary["invariants"]["checked"] == ["convergence", "single-leader"]
    pbs = run(short("pbs-staleness"))
    assert pbs.summary["invariants"]["checked"] == []  # the analytic mode claims nothing


def test_figure8_bug_switch_breaks_safety_with_evidence():
    result = run(short("raft-figure8"))
    section = result.summary["invariants"]
    assert {"linearizable", "no-lost-writes", "state-machine-safety"} <= set(section["failed"])
    conflict = section["evidence"]["state-machine-safety"]["detail"]
    assert conflict["first"]["command"] != conflict["then"]["command"]
    # Chosen invariants instead of the claim:
    chosen = run(short("raft-figure8"), invariants=["single-leader"])
    assert chosen.summary["invariants"]["checked"] == ["single-leader"]
    assert chosen.summary["invariants"]["held"] == ["single-leader"]


def test_an_add_acknowledged_after_the_final_reads_began_is_unchecked_not_lost():
    # A long timeout: the add is acknowledged at 12, after the final read began at 10.5.
    events = [
        *op(0, "add", "s", 1, 0.0, 1.0),
        *op(1, "add", "s", 2, 9.5, 12.0),
        *op(2, "read", "s", None, 10.5, 10.6, output=[1], final=True),
    ]
    assert verdict(fake(events, kind="set"), "no-lost-writes").status == "held"
    # A final read that began after it, and lacks it, shows it lost.
    events += op(3, "read", "s", None, 12.5, 12.6, output=[1], final=True)
    assert verdict(fake(events, kind="set"), "no-lost-writes").status == "failed"


def test_durability_counts_late_acknowledgements_as_unchecked():
    from capsim.metrics.durability import durability

    events = [
        *op(0, "add", "s", 1, 0.0, 1.0),
        *op(1, "add", "s", 2, 9.5, 12.0),  # acknowledged after the final read began
        *op(2, "add", "s", 3, 2.0, 3.0),  # acknowledged before it, and missing: lost
        *op(3, "read", "s", None, 10.5, 10.6, output=[1], final=True),
    ]
    out = durability(fake(events, kind="set").history.operations(), "set")
    assert (out["lost_writes"], out["unchecked_writes"], out["lost"]) == (1, 1, [["s", 3]])
