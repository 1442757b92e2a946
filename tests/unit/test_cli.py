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


UNIT = Path(__file__).resolve().parent


def write_scenario(folder: Path, text: str, name: str = "s.yaml") -> str:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_run_table_shows_the_c_of_cap(capsys):
    assert main(["run", QUICKSTART, "--seed", "7"]) == 0
    out = capsys.readouterr().out
    for words in (
        "Consistency",
        "linearizable",
        "stale reads",
        "read-your-writes violations",
        "monotonic-read violations",
        "converged after the final heal",
        "keys whose replicas disagree at the end",
    ):
        assert words in out, words


def test_a_failing_policy_exits_1_with_one_report_and_keeps_the_history(tmp_path, capsys):
    path = write_scenario(
        tmp_path,
        f"""
        duration: 3s
        policy: {{name: "probes:Faulty", path: "{UNIT}"}}
        workload: {{rate: 10, clients_per_zone: 1}}
        """,
    )
    out = tmp_path / "out"
    assert main(["run", path, "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err
    assert "policy probes:Faulty raised ZeroDivisionError: cannot handle" in err
    assert "while handling client request Request(" in err
    assert "probes.py" in err and "in explode" in err and "simpy" not in err
    assert "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failure"]["error"].startswith("ZeroDivisionError")
    history = (out / "history.jsonl").read_text().splitlines()
    assert len(history) > 10
    assert max(json.loads(line)["time"] for line in history) <= summary["failure"]["time"]


def test_markup_in_a_scenario_name_is_printed_as_written(tmp_path, capsys):
    path = write_scenario(tmp_path, "name: '[/x] [bold]'\nduration: 1s\n")
    assert main(["run", path]) == 0
    assert "[/x] [bold]" in capsys.readouterr().out


def test_out_refuses_a_folder_capsim_did_not_write(tmp_path, capsys):
    path = write_scenario(tmp_path, "duration: 1s\n")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    assert main(["run", path, "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert "was not written by capsim" in err and "--replace" in err
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    assert main(["run", path, "--out", str(mine), "--replace"]) == 0
    assert (mine / "summary.json").exists() and not (mine / "thesis.tex").exists()
    # A folder capsim wrote is replaced without asking.
    assert main(["run", path, "--out", str(mine), "--seed", "3"]) == 0
    assert json.loads((mine / "summary.json").read_text())["seed"] == 3


def test_out_refuses_the_working_folder_and_its_parents(tmp_path, monkeypatch, capsys):
    path = write_scenario(tmp_path, "duration: 1s\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes").write_text("keep")
    monkeypatch.chdir(work)
    for target in (".", "..", str(work)):
        assert main(["run", path, "--out", target, "--replace"]) == 2
        assert "working folder" in capsys.readouterr().err
    assert (work / "notes").read_text() == "keep"


def test_out_honours_the_umask_and_cleans_up_after_a_killed_run(tmp_path):
    path = write_scenario(tmp_path, "duration: 1s\n")
    stale = tmp_path / ".run.capsim-tmp-999999999-abc"  # a run that was killed
    stale.mkdir()
    (stale / "summary.json").write_text("{")
    code = (
        "import os, sys; os.umask(0o027); from capsim.cli import main; "
        f"sys.exit(main(['run', {path!r}, '--out', {str(tmp_path / 'run')!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "run"
    assert oct(out.stat().st_mode & 0o777) == oct(0o750)
    assert oct((out / "history.jsonl").stat().st_mode & 0o777) == oct(0o640)
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "s.yaml"]


def test_an_enormous_run_is_refused_up_front_with_its_size(tmp_path, capsys):
    path = write_scenario(tmp_path, "duration: 1h\nworkload: {rate: 100000/s}\n")
    assert main(["run", path, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "too large to run by default" in err and "--allow-large" in err
    assert "2,160,000,000 operations" in err  # 6 clients x 100000/s x 3600 s
    assert not (tmp_path / "out").exists()
    assert main(["validate", path]) == 0
    assert "too large to run without --allow-large" in capsys.readouterr().out


def test_progress_is_shown_for_long_runs(monkeypatch, capsys):
    from capsim import cli

    monkeypatch.setattr(cli._Progress, "QUIET_S", 0.0)
    monkeypatch.setattr(cli._Progress, "EVERY_S", 0.01)
    assert main(["run", QUICKSTART, "--json"]) == 0
    err = capsys.readouterr().err
    assert "capsim: simulated " in err and "events" in err and "Ctrl-C" in err


def test_interrupting_a_run_writes_nothing(tmp_path, monkeypatch, capsys):
    from capsim import runner

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner.World, "run", interrupted)
    assert main(["run", QUICKSTART, "--out", str(tmp_path / "out")]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("target", ["/dev/null", "fifo"])
def test_convert_never_replaces_a_device_or_a_pipe(tmp_path, target, capsys):
    run_dir = tmp_path / "run"
    path = write_scenario(tmp_path, "duration: 1s\n")
    assert main(["run", path, "--out", str(run_dir)]) == 0
    if target == "fifo":
        target = str(tmp_path / "pipe")
        os.mkfifo(target)
    before = os.stat(target).st_mode
    code = main(["history", "convert", str(run_dir / "history.jsonl"), target, "--to", "jsonl"])
    assert code == 2
    assert "not a regular file" in capsys.readouterr().err
    assert os.stat(target).st_mode == before


def test_a_policy_module_that_exits_while_imported_is_an_error(tmp_path, capsys):
    (tmp_path / "quitter.py").write_text("import sys\nsys.exit(0)\n")
    path = write_scenario(tmp_path, "policy: {name: 'quitter:Q'}\n")
    assert main(["validate", path]) == 2
    err = capsys.readouterr().err
    assert "called sys.exit(0) while being imported" in err and "policy.name" in err


POLICY_TEMPLATE = """
import capsim


class Echo(capsim.Node):
    def on_client(self, req):
        self.ok(req, {answer!r} if req.op == "read" else req.value)
"""


def test_policies_with_the_same_module_name_in_two_folders_each_run_their_own(tmp_path):
    import capsim

    answers = {}
    for answer in ("first", "second"):
        folder = tmp_path / answer
        folder.mkdir()
        (folder / "mine.py").write_text(POLICY_TEMPLATE.format(answer=answer))
        path = write_scenario(
            folder, "duration: 1s\npolicy: {name: 'mine:Echo'}\nworkload: {read_fraction: 1}\n"
        )
        res = capsim.run(capsim.load_scenario(path))
        ops = res.history.operations()
        answers[answer] = {ops.output(i) for i in range(len(ops)) if not ops.final[i]}
    assert answers == {"first": {"first"}, "second": {"second"}}


def test_a_non_linearizable_run_prints_the_failing_key_and_who_answered(capsys):
    slow = str(ROOT / "scenarios" / "slow-disk.yaml")
    assert main(["run", slow]) == 0
    out = capsys.readouterr().out
    assert "NO: " in out and "key(s) fail" in out
    assert "whose add was acknowledged before the read began" in out
    # The two operations of the witness: the lost add and the read that missed it.
    witness = [line for line in out.splitlines() if "(answered by n" in line]
    assert len(witness) == 2
    assert " add " in witness[0] and " read " in witness[1]
    assert main(["run", slow, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    ops = summary["consistency"]["witness"]["ops"]
    assert [op["f"] for op in ops] == ["add", "read"]
    assert all(op["node"] in ("n1", "n2", "n3") for op in ops)
    assert ops[1]["output_items"] > len(ops[1]["output"]) == 20
    lost = [k for k, _ in summary["durability"]["lost"]]
    assert summary["consistency"]["witness"]["key"] in lost


def test_an_out_that_cannot_be_created_is_refused_before_the_run(tmp_path, monkeypatch, capsys):
    from capsim import runner

    path = write_scenario(tmp_path, "duration: 1s\n")
    (tmp_path / "plain").write_text("a file")
    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("the run started"))
    assert main(["run", path, "--out", str(tmp_path / "plain" / "out")]) == 2
    assert "is not a folder" in capsys.readouterr().err
