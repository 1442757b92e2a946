"""Golden runs: every scenario in scenarios/ runs, and its summary matches the checked-in one.

A change that alters any number in a scenario's summary (apart from ``perf`` and
``versions``) fails here. If the change is intended, regenerate the golden files with
``CAPSIM_UPDATE_GOLDEN=1 python -m pytest tests/scenarios`` and review the diff.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import applied_logs_disagree, dispatchable_features

from capsim.runner import build, run
from capsim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
GOLDEN = Path(__file__).parent / "golden"
SEED = None  # the scenario's own seed, as `capsim run` uses by default
#: Scenarios too long for the suite run shortened (as `capsim run --set` would): their
#: goldens hold the shortened run's summary.
SHORTENED = {
    "fleet": [
        "duration=2s",
        "faults[0].at=0.5s",
        "workload.keys=3000",
        "workload.clients_per_zone=40",
    ]
}


def load(path: Path):
    return load_scenario(path, overrides=SHORTENED.get(path.stem, ()))


def comparable(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in ("perf", "versions")}


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_matches_its_golden_summary(path):
    result = run(load(path), seed=SEED)
    got = comparable(result.summary)
    golden = GOLDEN / f"{path.stem}.json"
    if os.environ.get("CAPSIM_UPDATE_GOLDEN") or not golden.exists():
        golden.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
        if not os.environ.get("CAPSIM_UPDATE_GOLDEN"):
            pytest.fail(f"wrote missing golden file {golden}; review and commit it")
    assert got == json.loads(golden.read_text())


def test_every_scenario_has_a_golden_file():
    assert {p.stem for p in SCENARIOS} == {p.stem for p in GOLDEN.glob("*.json")}


NARROWED = textwrap.dedent(
    """
    import json, sys
    from numpy._core._multiarray_umath import __cpu_features__
    from capsim.runner import build, run
    from capsim.scenario import load_scenario
    out = {"features": sorted(f for f, on in __cpu_features__.items() if on), "runs": {}}
    shortened = json.loads(sys.argv[1])
    for path in sys.argv[2:]:
        summary = run(load_scenario(path, overrides=shortened.get(path, ()))).summary
        out["runs"][path] = {k: v for k, v in summary.items() if k not in ("perf", "versions")}
    print(json.dumps(out))
    """
)


def test_goldens_hold_with_numpy_dispatch_narrowed_to_the_baseline():
    """As on a machine without AVX2 or AVX-512 (or with other vector units): numpy's
    dispatch narrowed to its baseline must not change one bit of any golden summary."""
    features = dispatchable_features()
    env = dict(os.environ, NPY_DISABLE_CPU_FEATURES=" ".join(features))
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            NARROWED,
            json.dumps({str(p): SHORTENED[p.stem] for p in SCENARIOS if p.stem in SHORTENED}),
            *map(str, SCENARIOS),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(done.stdout)
    assert not set(features) & set(out["features"]), "the narrowing did not take effect"
    for path in SCENARIOS:
        golden = json.loads((GOLDEN / f"{path.stem}.json").read_text())
        assert out["runs"][str(path)] == golden, f"{path.stem} differs with dispatch narrowed"


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_replica_applied_a_prefix_of_every_other_replicas_log(path):
    """At the end of every scenario no two replicas have applied different commands at
    the same position: each replica's applied log is a prefix of every other's."""
    world = build(load(path))
    world.run()
    assert applied_logs_disagree(world) == []
