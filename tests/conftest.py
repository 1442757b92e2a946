"""Shared fixtures: small scenarios built from dicts, and worlds to step through."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

from capsim.runner import build
from capsim.scenario import parse_scenario
from capsim.testing import load_profile

ROOT = Path(__file__).resolve().parents[1]

# Hypothesis: the profiles capsim.testing registers, "ci" (derandomized, small) unless
# CAPSIM_HYPOTHESIS_PROFILE names another ("thorough" for long hunts).
load_profile()
sys.path.insert(0, str(Path(__file__).resolve().parent / "unit"))

#: A quiet base scenario: constant latencies so that times can be worked out by hand.
BASE = {
    "duration": 10,
    "settle": 1,
    "cluster": {"containers": 5, "zones": ["a", "b", "c"]},
    "network": {"latency": {"same_zone": "1ms", "cross_zone": "2ms"}},
    "workload": {"rate": 10, "clients_per_zone": 1, "timeout": 0.5},
}


def merge(base: dict, overrides: dict) -> dict:
    """Deep-merge ``overrides`` into a copy of ``base`` (dicts merge, anything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def make_scenario(**overrides):
    """A scenario from :data:`BASE` with ``overrides`` merged in."""
    return parse_scenario(merge(BASE, overrides))


def make_world(seed: int = 1, trace: bool = False, **overrides):
    """A built, unstarted world of ``make_scenario(**overrides)``."""
    return build(make_scenario(**overrides), seed, trace=trace)


def applied_logs_disagree(world) -> list[tuple[int, str, str]]:
    """(shard, a, b) for every two live replicas neither of whose applied logs is a prefix
    of the other's: they applied different commands at some position."""
    bad = []
    for shard, group in enumerate(world.placement.replicas):
        logs = {}
        for cid in group:
            node = world.cluster.node(cid, shard)
            if node is not None and node.applied_log() is not None:  # None: no log to compare
                logs[cid] = node.applied_log()
        for a in logs:
            for b in logs:
                la, lb = logs[a], logs[b]
                if a < b and la[: len(lb)] != lb[: len(la)]:
                    bad.append((shard, a, b))
    return bad


def random_faults(
    role: str, kinds=("crash", "partition"), role_kinds=("crash",), shapes=None
) -> dict:
    """Overrides for a 6 s run under random faults: ``kinds`` anywhere about three times a
    second and ``role_kinds`` at the container holding ``role`` about once a second (100 to
    700 ms each), a disk taking 1 to 10 ms per sync, 2% loss and duplication, containers
    ready 50 ms after a restart. Tests of state-machine safety share it."""
    anywhere = {
        "kind": "random",
        "at": 0.2,
        "rate": 3,
        "faults": list(kinds),
        "duration": {"dist": "uniform", "low": "100ms", "high": "700ms"},
    }
    if shapes is not None:
        anywhere["shapes"] = list(shapes)
    return {
        "duration": 6,
        "images": [{"name": "kv", "startup": "50ms"}],
        "cluster": {
            "disk": {"sync": {"dist": "uniform", "low": "1ms", "high": "10ms"}, "writeback": "1s"}
        },
        "network": {"loss": 0.02, "duplicate": 0.02},
        "faults": [
            anywhere,
            {
                "kind": "random",
                "at": 0.3,
                "rate": 1,
                "faults": list(role_kinds),
                "target": role,
                "duration": {"dist": "uniform", "low": "100ms", "high": "400ms"},
            },
        ],
    }


def dispatchable_features() -> list[str]:
    """The SIMD extensions above numpy's baseline that this machine has: naming them in
    ``NPY_DISABLE_CPU_FEATURES`` makes numpy run as on a machine without them."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    return [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]


@pytest.fixture
def root() -> Path:
    return ROOT
