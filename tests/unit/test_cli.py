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


@pytest.mark.parametrize("command", [[], ["run"], ["validate"], ["bench"]])
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
