"""The README's quickstart figures are the ones `capsim run scenarios/quickstart.yaml` prints."""

from __future__ import annotations

from pathlib import Path

from capsim.runner import run
from capsim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]


def test_readme_quotes_the_quickstart_as_it_runs():
    readme = (ROOT / "README.md").read_text()
    summary = run(load_scenario(ROOT / "scenarios" / "quickstart.yaml")).summary
    avail = summary["availability"]
    for label, value in [
        ("all", avail["overall"]),
        ("reads", avail["read"]),
        ("updates (write, cas, add)", avail["write"]),
        ("invoked during faults", avail["during_faults"]),
        ("invoked outside faults", avail["outside_faults"]),
        ("majority side of a partition", avail["by_side"]["majority"]),
        ("minority side of a partition", avail["by_side"]["minority"]),
    ]:
        line = next(line for line in readme.splitlines() if line.strip().startswith(label))
        assert line.split()[-1] == f"{value:.4f}", line
    ops = summary["ops"]
    assert f"Of the {ops['total']:,} operations" in readme
    assert f"{ops['info']} ended `info`" in readme
    assert f"{ops['fail']} `fail`ed" in readme
    assert f"{summary['final']['total']} reads, all `ok`" in readme
    assert summary["final"]["ok"] == summary["final"]["total"]
    assert f"0.0 over {summary['staleness']['reads']:,} reads" in readme
    assert summary["staleness"]["stale_read_fraction"] == 0.0
    assert f"decided in {summary['consistency']['steps']:,} search steps" in readme
    assert summary["consistency"]["linearizable"] is True
    assert f"`convergence_s`: {summary['convergence_s']}" in readme
    assert f"{summary['messages']['per_op']:.1f} messages per operation" in readme
    assert f"the {summary['messages']['dropped']:,} dropped" in readme
    latency = summary["latency_ms"]
    assert f"p50 {latency['read']['p50']:.1f} ms" in readme
    assert f"p50 {latency['write']['p50']:.1f} ms" in readme


def test_readme_scenario_example_is_a_valid_scenario():
    import yaml

    from capsim.runner import prepare
    from capsim.scenario import parse_scenario

    readme = (ROOT / "README.md").read_text()
    block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    scenario = parse_scenario(yaml.safe_load(block))
    prepare(scenario)
    assert scenario.network.latency.kinds["ack"].same_zone is not None
    assert scenario.check.max_steps == 5_000_000
