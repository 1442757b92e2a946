"""Property-based testing of replication protocols with Hypothesis.

Three ways in, from the smallest to the largest:

* **Strategies** (:mod:`capsim.testing.strategies`): fault schedules, partitions,
  crashes, pauses, clock and link faults, workloads, scripts and whole scenarios, built
  around a scenario of yours, for ``@given`` tests of your own. Every strategy's
  docstring says how it shrinks.
* **A stateful test** (:class:`ProtocolMachine`): subclass it, name the protocol, and
  Hypothesis drives a cluster with client operations, faults, heals and the passage of
  time, checking the invariants the protocol claims as it goes.
* **A search** (:func:`explore`, ``capsim explore``): keep a scenario's cluster, policy
  and workload, search its fault schedules for one that breaks an invariant, shrink it
  and write a reproducer that ``capsim run`` replays.

Importing this package registers the Hypothesis profiles ``ci`` and ``thorough``
(:mod:`capsim.testing.profiles`); :func:`load_profile` selects one.
"""

from capsim.testing.explore import (
    DEFAULTS,
    Exploration,
    Failure,
    Progress,
    explore,
    frozen,
    replay,
)
from capsim.testing.profiles import PROFILE_ENV, PROFILES, load_profile
from capsim.testing.stateful import ProtocolMachine
from capsim.testing.strategies import (
    DEFAULT_KINDS,
    FAULT_KINDS,
    STEP_S,
    clock_faults,
    crashes,
    describe,
    durations,
    fault_schedules,
    faults,
    heals,
    link_faults,
    partitions,
    pauses,
    restarts,
    scenarios,
    scripts,
    storms,
    targets,
    times,
    workloads,
)

__all__ = [
    "DEFAULTS",
    "DEFAULT_KINDS",
    "Exploration",
    "FAULT_KINDS",
    "Failure",
    "PROFILES",
    "PROFILE_ENV",
    "Progress",
    "ProtocolMachine",
    "STEP_S",
    "clock_faults",
    "crashes",
    "describe",
    "durations",
    "explore",
    "fault_schedules",
    "faults",
    "frozen",
    "heals",
    "link_faults",
    "load_profile",
    "partitions",
    "pauses",
    "replay",
    "restarts",
    "scenarios",
    "scripts",
    "storms",
    "targets",
    "times",
    "workloads",
]
