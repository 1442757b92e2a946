"""Golden runs: every scenario in scenarios/ runs, and its summary matches the checked-in one.

A change that alters any number in a scenario's summary (apart from ``perf`` and
``versions``) fails here. If the change is intended, regenerate the golden files with
``CAPSIM_UPDATE_GOLDEN=1 python -m pytest tests/scenarios`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from capsim.runner import run
from capsim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
GOLDEN = Path(__file__).parent / "golden"
SEED = None  # the scenario's own seed, as `capsim run` uses by default


def comparable(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in ("perf", "versions")}


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_matches_its_golden_summary(path):
    result = run(load_scenario(path), seed=SEED)
    got = comparable(result.summary)
    golden = GOLDEN / f"{path.stem}.json"
    if os.environ.get("CAPSIM_UPDATE_GOLDEN") or not golden.exists():
        golden.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
        if not os.environ.get("CAPSIM_UPDATE_GOLDEN"):
            pytest.fail(f"wrote missing golden file {golden}; review and commit it")
    assert got == json.loads(golden.read_text())


def test_every_scenario_has_a_golden_file():
    assert {p.stem for p in SCENARIOS} == {p.stem for p in GOLDEN.glob("*.json")}
