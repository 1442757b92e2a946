"""Running a scenario: determinism, the final phase, and the output folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import make_scenario

import capsim
from capsim.runner import OUTPUT_FILES, OUTPUT_MARKER, build, run
from capsim.scenario import load_scenario

FAULTY = {
    "faults": [
        {"kind": "partition", "at": 2, "duration": 3, "shape": "halves"},
        {"kind": "crash", "at": 6, "target": "random", "duration": 1},
    ],
    "network": {
        "latency": {"cross_zone": {"dist": "lognormal", "median": "2ms", "sigma": 0.5}},
        "loss": 0.01,
    },
}


def without_perf(summary):
    return {k: v for k, v in summary.items() if k != "perf"}


def test_same_scenario_and_seed_give_identical_results(tmp_path):
    sc = make_scenario(**FAULTY)
    a, b = run(sc, seed=3), run(sc, seed=3)
    assert without_perf(a.summary) == without_perf(b.summary)
    a.write(tmp_path / "a")
    b.write(tmp_path / "b")
    for name in OUTPUT_FILES:
        if name == "summary.json":
            continue
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_ten_seeds_give_ten_digests():
    sc = make_scenario(**FAULTY)
    digests = {run(sc, seed=s).summary["trace_digest"] for s in range(10)}
    assert len(digests) == 10


def test_same_digest_in_another_process_with_another_hash_seed():
    code = (
        "import sys; sys.path.insert(0, 'tests'); from conftest import make_scenario; "
        "from capsim.runner import run; "
        f"print(run(make_scenario(**{FAULTY!r}), seed=5).summary['trace_digest'])"
    )
    digests = set()
    for hash_seed in ("1", "999"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=os.path.dirname(os.path.dirname(__file__)),
        )
        digests.add(out.stdout.strip())
    assert digests == {run(make_scenario(**FAULTY), seed=5).summary["trace_digest"]}


def test_final_phase_heals_and_reads_every_key_from_every_container():
    # The primary is isolated for good and a backup crashes for good; the final phase
    # heals both and reads all 4 keys from all 5 containers.
    sc = make_scenario(
        workload={"keys": 4},
        faults=[
            {"kind": "partition", "at": 3, "shape": "isolate", "target": "primary"},
            {"kind": "crash", "at": 4, "target": "n5"},
        ],
    )
    world = build(sc, seed=1)
    world.run()
    res = world.result(world.digest(), 0.0)
    assert res.summary["final"]["total"] == 20 and res.summary["final"]["ok"] == 20
    ops = res.history.operations()
    assert int((~ops.final).sum()) == res.summary["ops"]["total"]
    assert ops.invoke_time[ops.final].min() == pytest.approx(sc.duration + sc.settle)
    # Every replica's own state (read by introspection, not through the primary that the
    # final reads are redirected to) holds what the final reads returned: the backups,
    # cut off from 3 s (n2..n4 from the isolated primary) or down (n5), caught up.
    final_value = {}
    for i in np.flatnonzero(ops.final):
        final_value[ops.key_name(i)] = ops.output(i)
    assert len(final_value) == 4 and any(v is not None for v in final_value.values())
    for cid in ("n1", "n2", "n3", "n4", "n5"):
        node = world.cluster.node(cid)
        assert {key: node.value_of(key)[0] for key in final_value} == final_value, cid
    assert res.summary["final"]["divergent_keys"] == 0


def test_divergent_keys_count_replicas_that_disagree_at_the_end():
    # Final phase skipped (settle 0, no final reads): a backup still cut off when the run
    # ends has not learnt the writes made while it was away.
    sc = make_scenario(
        settle=0,
        final_reads=False,
        workload={"keys": 3, "read_fraction": 0.0, "rate": 20},
        faults=[{"kind": "partition", "at": 1, "shape": "isolate", "target": "n5"}],
    )
    world = build(sc, seed=2)
    world.start()
    world.engine.run(sc.duration)  # the main phase only: n5 is still cut off
    assert world.divergent_keys() == 3
    world.nemesis.heal_everything()
    world.engine.run(sc.duration + 0.5)  # a heartbeat or two after the heal
    assert world.divergent_keys() == 0


def test_final_phase_operations_do_not_count_in_availability():
    sc = make_scenario(faults=[{"kind": "crash", "at": 0, "target": "n1"}])  # the primary
    res = run(sc, seed=1)
    assert res.summary["availability"]["write"] == 0.0  # never served during the run
    assert res.summary["final"]["ok"] == res.summary["final"]["total"] > 0


def test_output_folder_has_every_file_and_replays(tmp_path):
    sc = make_scenario(**FAULTY)
    res = run(sc, seed=9, trace=True)
    out = res.write(tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*OUTPUT_FILES, "messages.jsonl", OUTPUT_MARKER]
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trace_digest"] == res.summary["trace_digest"]
    resolved = load_scenario(out / "scenario.resolved.yaml")
    assert resolved.seed == 9
    replay = run(resolved)
    assert replay.summary["trace_digest"] == res.summary["trace_digest"]
    faults = [json.loads(line) for line in (out / "faults.jsonl").read_text().splitlines()]
    assert [f["event"] for f in faults][:2] == ["start", "end"]
    header = (out / "timeseries.csv").read_text().splitlines()[0]
    assert header == (
        "t_s,ok,fail,info,majority_ok,majority_fail,majority_info,"
        "minority_ok,minority_fail,minority_info"
    )
    messages = (out / "messages.jsonl").read_text().splitlines()
    assert (
        len(messages) == res.summary["messages"]["delivered"] + res.summary["messages"]["dropped"]
    )
    assert json.loads((out / "versions.json").read_text())["simpy"]


def test_a_failed_write_leaves_no_half_written_folder(tmp_path, monkeypatch):
    res = run(make_scenario(), seed=1)
    out = res.write(tmp_path / "out")
    before = sorted(p.name for p in out.iterdir())

    def broken(path):
        raise OSError("disk full")

    monkeypatch.setattr(res.history, "to_jsonl", broken)
    with pytest.raises(OSError):
        res.write(out)
    assert sorted(p.name for p in out.iterdir()) == before  # the previous run, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left


def test_summary_has_the_documented_keys_and_no_nan():
    res = run(make_scenario(), seed=1)
    s = res.summary
    for key in (
        "scenario",
        "seed",
        "policy",
        "sim_time_s",
        "ops",
        "availability",
        "latency_ms",
        "durability",
        "messages",
        "perf",
        "trace_digest",
        "versions",
    ):
        assert key in s
    assert set(s["availability"]["by_side"]) == {"majority", "minority"}
    assert s["availability"]["by_side"]["minority"] is None  # no partition: no data, not NaN
    assert set(s["latency_ms"]["read"]) >= {"p50", "p99", "p999"}
    json.dumps(s, allow_nan=False)


def test_public_api_round_trip(root):
    sc = capsim.load_scenario(root / "scenarios" / "quickstart.yaml")
    res = capsim.run(sc, seed=7)
    assert isinstance(res.history, capsim.History)
    assert res.summary["seed"] == 7
    assert yaml.safe_load((root / "scenarios" / "quickstart.yaml").read_text())["name"] == sc.name


def test_convergence_is_null_for_a_policy_without_introspection():
    res = run(make_scenario(policy={"name": "probes:Probe"}), seed=1)
    assert res.summary["convergence_s"] is None


def test_messages_per_operation_counts_the_main_phase_only():
    # Reads only, every client homed on the primary: each operation is one request and one
    # reply; with no writes the primary sends nothing else after its opening heartbeat (an
    # append to each of the 4 backups and their 4 acks). The final phase's reads
    # (redirected from four backups: 4 messages each) do not count.
    sc = make_scenario(
        workload={
            "read_fraction": 1.0,
            "clients": [{"zone": "a", "count": 3, "home": "n1"}],
        }
    )
    res = run(sc, seed=1)
    m = res.summary["messages"]
    assert res.summary["ops"]["total"] > 250
    total = res.summary["ops"]["total"]
    assert m["main_phase"] == 2 * total + 8
    assert m["per_op"] == round((2 * total + 8) / total, 6)
    assert m["sent"] > m["main_phase"]  # the final reads' messages are there, not counted


def test_faults_jsonl_records_generated_faults_with_their_specs(tmp_path):
    sc = make_scenario(
        faults=[{"kind": "random", "at": 0.5, "rate": 2, "faults": ["crash"], "duration": "300ms"}]
    )
    out = run(sc, seed=4).write(tmp_path / "out")
    records = [json.loads(line) for line in (out / "faults.jsonl").read_text().splitlines()]
    generated = [r for r in records if r.get("instance") is not None and r["event"] == "start"]
    assert len(generated) > 5
    assert all(r["spec"].startswith("Crash(at=") and r["targets"] for r in generated)


def test_consistency_check_is_skipped_above_the_size_limit_and_unknown_past_the_budget():
    skipped = run(make_scenario(check={"max_ops": 10}), seed=1).summary["consistency"]
    assert skipped["check"] == "skipped" and skipped["linearizable"] is None
    assert "max_ops" in skipped["reason"]
    unknown = run(make_scenario(check={"max_steps": 3}), seed=1).summary["consistency"]
    assert unknown["check"] == "unknown" and unknown["linearizable"] is None
    off = run(make_scenario(check={"linearizable": False}), seed=1).summary["consistency"]
    assert off["check"] == "skipped"


def test_final_phase_reads_each_key_through_each_of_its_replicas_only():
    # 7 containers, replication factor 3: every key is read three times, through the
    # containers that hold its shard, not seven times.
    sc = make_scenario(
        cluster={"containers": 7, "shards": 4, "replication_factor": 3},
        workload={"keys": 9},
    )
    world = build(sc, seed=1)
    world.run()
    res = world.result(world.digest(), 0.0)
    assert res.summary["final"]["total"] == 27 and res.summary["final"]["ok"] == 27
    ops = res.history.operations()
    names = res.history.nodes.names
    for i in np.flatnonzero(ops.final):
        key = ops.key_name(i)
        entry = names[res.history.node[ops.invoke_index[i]]]
        assert entry in world.placement.replicas[world.placement.shard_of(key)]


def test_roles_jsonl_records_every_leader_change_and_crash(tmp_path):
    """raft.yaml: a leader is elected, cut off in a minority (the majority elects another),
    then the current leader crashes at 25 s and a third takes over. roles.jsonl must show
    exactly those changes, one leader per term, and the crashed leader's role as null."""
    from pathlib import Path

    scenario = load_scenario(Path(__file__).parents[2] / "scenarios" / "raft.yaml")
    result = run(scenario)
    result.write(tmp_path / "out")
    lines = (tmp_path / "out" / "roles.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == len(result.roles) > 0
    leaders = [(r["term"], r["node"]) for r in records if r["role"] == "leader"]
    terms = [term for term, _ in leaders]
    assert len(terms) == len(set(terms)), "two leaders recorded for one term"
    assert terms == sorted(terms)
    crashed = json.loads((tmp_path / "out" / "faults.jsonl").read_text().splitlines()[2])
    assert crashed["kind"] == "crash" and crashed["event"] == "start"
    (victim,) = crashed["targets"]
    last_before = [r for r in records if r["node"] == victim and r["time"] <= crashed["time"]]
    assert last_before[-2]["role"] == "leader" and last_before[-1]["role"] is None
    assert any(r["time"] > crashed["time"] and r["role"] == "leader" for r in records)
