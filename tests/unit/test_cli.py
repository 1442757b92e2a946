"""The command line: outputs, determinism across processes, and bad input (exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from capsim.cli import main

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "scenarios" / "quickstart.yaml")


def cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "capsim", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


def without_perf(text):
    data = json.loads(text)
    data.pop("perf")
    return data


def test_run_json_is_identical_across_runs_and_hash_seeds():
    first = cli("run", QUICKSTART, "--seed", "7", "--json", env={"PYTHONHASHSEED": "0"})
    second = cli("run", QUICKSTART, "--seed", "7", "--json", env={"PYTHONHASHSEED": "0"})
    third = cli("run", QUICKSTART, "--seed", "7", "--json", env={"PYTHONHASHSEED": "4242"})
    other = cli("run", QUICKSTART, "--seed", "8", "--json")
    assert first.returncode == 0, first.stderr
    assert without_perf(first.stdout) == without_perf(second.stdout) == without_perf(third.stdout)
    assert json.loads(other.stdout)["trace_digest"] != json.loads(first.stdout)["trace_digest"]


def test_quickstart_partition_minority_unavailable_majority_available(capsys):
    assert main(["run", QUICKSTART, "--seed", "7", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    by_side = summary["availability"]["by_side"]
    assert by_side["minority"] <= 0.01
    assert by_side["majority"] >= 0.99
    assert summary["availability"]["outside_faults"] >= 0.99


def test_run_prints_readable_tables(capsys):
    assert main(["run", QUICKSTART, "--seed", "7"]) == 0
    out = capsys.readouterr().out
    for words in (
        "Availability",
        "minority",
        "Latency",
        "p99",
        "acknowledged writes",
        "trace digest",
    ):
        assert words in out


def test_run_out_writes_the_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", QUICKSTART, "--out", str(out), "--trace"]) == 0
    assert (out / "messages.jsonl").exists() and (out / "summary.json").exists()
    assert f"wrote {out}" in capsys.readouterr().out


def test_validate(capsys):
    assert main(["validate", QUICKSTART]) == 0
    assert "valid" in capsys.readouterr().out


@pytest.mark.parametrize(
    "command", [[], ["run"], ["validate"], ["bench"], ["check"], ["history", "convert"]]
)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    assert "usage: capsim" in capsys.readouterr().out


BAD_SCENARIOS = {
    "missing": (None, "no such file"),
    "not-yaml": ("workload: {rate: [\n", "not valid YAML"),
    "unknown-key": ("wrkload: {}\n", "wrkload: unknown field"),
    "wrong-type": ("workload: {keys: many}\n", "workload.keys"),
    "negative": ("workload: {timeout: -1s}\n", "workload.timeout: must be greater than zero"),
    "nonsense": ("cluster: {containers: 3, replication_factor: 7}\n", "exceeds"),
    "unknown-policy": ("policy: {name: paxos}\n", "policy.name: unknown policy 'paxos'"),
    "no-module": ("policy: {name: 'nosuchmodule:Thing'}\n", "cannot import module 'nosuchmodule'"),
    "no-class": ("policy: {name: 'helper:Missing'}\n", "has no class 'Missing'"),
    "not-a-node": ("policy: {name: 'helper:Plain'}\n", "not a subclass of capsim.Node"),
    "broken-module": ("policy: {name: 'broken:X'}\n", "ZeroDivisionError"),
    "bad-param": (
        "policy: {name: single-primary, params: {primery: n1}}\n",
        "policy.params.primery: unknown parameter",
    ),
    "bad-param-value": (
        "policy: {name: single-primary, params: {retry_interval: -1}}\n",
        "policy.params",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SCENARIOS))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, case):
    text, words = BAD_SCENARIOS[case]
    (tmp_path / "helper.py").write_text("class Plain:\n    pass\n")
    (tmp_path / "broken.py").write_text("1 / 0\n")
    path = tmp_path / "scenario.yaml"
    if text is not None:
        path.write_text(textwrap.dedent(text))
    out = tmp_path / "out"
    result = cli("run", str(path), "--out", str(out))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"capsim: error: {path}")
    assert words in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert result.stdout == ""


def test_bad_seed_and_bad_options_exit_2():
    assert cli("run", QUICKSTART, "--seed", "-3").returncode == 2
    assert cli("run", QUICKSTART, "--seed", "x").returncode == 2
    assert cli("frobnicate").returncode == 2
    assert cli("bench", "--policy", "paxos").returncode == 2


def test_out_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("keep")
    result = cli("run", QUICKSTART, "--out", str(target))
    assert result.returncode == 2 and "not a folder" in result.stderr
    assert target.read_text() == "keep"


PEERS = ROOT.parent / "shared" / "peer-histories"


def test_check_exit_status_follows_the_verdict(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", QUICKSTART, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["check", str(out / "history.jsonl")]) == 0
    assert capsys.readouterr().out.startswith("linearizable: ")
    slow = str(ROOT / "scenarios" / "slow-disk.yaml")
    assert main(["run", slow, "--out", str(tmp_path / "slow")]) == 0
    capsys.readouterr()
    assert main(["check", str(tmp_path / "slow" / "history.jsonl"), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"] == "not-linearizable"
    assert "whose add was acknowledged before the read began" in result["violation"]["witness"]


def test_check_unknown_when_the_step_budget_runs_out(tmp_path, capsys):
    out = tmp_path / "run"
    main(["run", QUICKSTART, "--out", str(out)])
    capsys.readouterr()
    assert main(["check", str(out / "history.jsonl"), "--max-steps", "5"]) == 3
    assert "unknown" in capsys.readouterr().out


@pytest.mark.skipif(not PEERS.exists(), reason="../shared/peer-histories is absent")
def test_check_reads_other_tools_histories(capsys):
    assert main(["check", str(PEERS / "porcupine" / "jepsen" / "etcd_000.log")]) == 1
    assert main(["check", str(PEERS / "porcupine" / "jepsen" / "etcd_002.log")]) == 0
    capsys.readouterr()


def test_check_bad_input_exits_2(tmp_path):
    bad = tmp_path / "h.jsonl"
    bad.write_text('{"process": 0, "type": "invoke", "f": "read", "key": "k", "time": 0}\n{"proc')
    result = cli("check", str(bad))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(bad) in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert cli("check", str(tmp_path / "missing.jsonl")).returncode == 2


def test_history_convert_round_trips_through_knossos(tmp_path, capsys):
    out = tmp_path / "run"
    main(["run", QUICKSTART, "--out", str(out)])
    edn = tmp_path / "k1.edn"
    assert (
        main(
            [
                "history",
                "convert",
                str(out / "history.jsonl"),
                str(edn),
                "--to",
                "knossos-edn",
                "--key",
                "k1",
            ]
        )
        == 0
    )
    assert edn.read_text().startswith("[{:process")
    assert main(["check", str(edn)]) == 0  # Knossos semantics: still linearizable
    capsys.readouterr()


def test_history_convert_refuses_what_the_target_cannot_hold(tmp_path):
    out = tmp_path / "run"
    main(["run", QUICKSTART, "--out", str(out)])
    target = tmp_path / "all.edn"
    result = cli(
        "history", "convert", str(out / "history.jsonl"), str(target), "--to", "knossos-edn"
    )
    assert result.returncode == 2
    assert f"capsim: error: {target}" in result.stderr and "--key" in result.stderr
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_usage_errors_are_one_line_with_where_to_find_help():
    result = cli("run", QUICKSTART, "--seed", "-1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "capsim run: error: argument --seed: expected a seed: an integer of 0 or more, "
        "got '-1' (see 'capsim run --help')"
    ]
