"""A user's own policy, written against the public API and named as module:Class."""

from __future__ import annotations

import json
import textwrap

from capsim.cli import main

POLICY = '''
from dataclasses import dataclass

import capsim


@dataclass(frozen=True, kw_only=True)
class Params:
    home: str = "n1"


class Solo(capsim.Node):
    """Every request served by one replica, no replication (neither C nor A under faults)."""

    Params = Params

    def on_start(self):
        self.role = "primary" if self.id == self.params.home else "backup"
        self.data = dict(self.durable.get("data", {}))

    def on_client(self, req):
        if self.id != self.params.home:
            return self.redirect(req, self.params.home)
        if req.op == "read":
            return self.ok(req, self.data.get(req.key))
        self.data[req.key] = req.value
        self.durable["data"] = dict(self.data)
        self.ok(req, req.value)

    def value_of(self, key):
        return self.data.get(key), None
'''


def test_a_policy_beside_the_scenario_runs_from_anywhere(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "solo.py").write_text(POLICY)
    (folder / "solo.yaml").write_text(
        textwrap.dedent("""
        duration: 5s
        settle: 1s
        policy: {name: "solo:Solo", params: {home: n2}}
        workload: {rate: 20/s, read_fraction: 0.5, keys: 3}
        faults:
          - {kind: crash, at: 2s, duration: 1s, target: primary}
    """)
    )
    monkeypatch.chdir(tmp_path)  # not the scenario's folder
    out = tmp_path / "out"
    assert main(["run", str(folder / "solo.yaml"), "--json", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["policy"] == "solo:Solo"
    faults = [json.loads(line) for line in (out / "faults.jsonl").read_text().splitlines()]
    assert faults[0]["targets"] == ["n2"]  # the role target found the user's primary
    assert 0.0 < summary["availability"]["overall"] < 1.0  # down while n2 was
    assert summary["consistency"]["linearizable"] is True  # one copy, never stale
    # The resolved scenario names the policy's folder, so it replays from anywhere.
    assert main(["run", str(out / "scenario.resolved.yaml"), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["trace_digest"] == summary["trace_digest"]


def test_the_node_docstring_example_runs(monkeypatch):
    import textwrap as tw

    from conftest import make_scenario

    import capsim
    from capsim.policies import POLICIES
    from capsim.runner import run
    from capsim.sim import node as node_module

    code = tw.dedent(node_module.__doc__.split("::", 1)[1])
    namespace = {"capsim": capsim}
    exec(code, namespace)  # noqa: S102 - the documented example, run as written
    monkeypatch.setitem(POLICIES, "solo-doc", namespace["Solo"])
    summary = run(make_scenario(policy={"name": "solo-doc"}), seed=1).summary
    assert summary["availability"]["overall"] == 1.0
    assert summary["ops"]["ok"] == summary["ops"]["total"] > 100
