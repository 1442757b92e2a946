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
