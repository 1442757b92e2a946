"""A stateful test of a replication protocol: Hypothesis drives a cluster step by step.

:class:`ProtocolMachine` is a :class:`hypothesis.stateful.RuleBasedStateMachine` whose
rules are client operations (``read``, ``write``, ``cas``, ``add``), faults (partitions,
crashes, pauses, clock and link faults, drawn by :mod:`capsim.testing.strategies` and
aimed at containers or at whoever holds a role), heals, and the passage of time
(``wait``). Operations and faults happen at the machine's current time; ``wait`` moves
it on. Whenever time has moved, the machine runs the simulation of everything so far
(a scripted workload and a fault schedule, from the same seed: deterministic, and a few
milliseconds for a few simulated seconds), followed by the usual final phase (heal
everything, settle, read every key), and checks the invariants; a violation fails the
test with the evidence and a scenario YAML that ``capsim run`` replays. Hypothesis then
shrinks the steps: fewer operations and faults, shorter waits.

Subclass it and name the protocol::

    from capsim.testing import ProtocolMachine

    class RaftMachine(ProtocolMachine):
        policy = "raft"
        cluster = {"containers": 3}

    TestRaft = RaftMachine.TestCase

Class attributes (all optional but ``policy``): ``policy`` (a built-in name or
``module:Class``), ``params`` (its parameters), ``policy_path`` (the folder a
``module:Class`` is imported from), ``cluster`` and ``network`` (scenario sections merged
over a small default: 3 containers in 3 zones, 1 and 2 ms links, a 2 ms disk),
``data`` (``register`` or ``set``), ``invariant_names`` (names or predicates; ``None``: the
ones the protocol claims), ``fault_kinds``, ``keys``, ``clients_per_zone``, ``timeout``,
``max_time`` (simulated seconds the machine may reach) and ``seed`` (the simulation's;
the search's own is Hypothesis's: ``@hypothesis.seed(n)`` on the class makes the search
repeatable, as the derandomized ``ci`` profile does).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from capsim.errors import PolicyError
from capsim.faults import Heal
from capsim.runner import Result, run
from capsim.scenario import Scenario, dump_scenario, parse_scenario
from capsim.schema import to_data
from capsim.testing import checks
from capsim.testing.explore import compact
from capsim.testing.strategies import STEP_S, describe, durations, role_words, timed_by_leaders
from capsim.testing.strategies import faults as fault_strategy

__all__ = ["ProtocolMachine", "DEFAULT_SHELL"]

#: The scenario a machine starts from, before its class attributes are merged in.
DEFAULT_SHELL: dict[str, Any] = {
    "name": "stateful",
    "settle": 1.0,
    "images": [{"name": "kv", "startup": 0.1}],
    "cluster": {"containers": 3, "zones": ["a", "b", "c"], "disk": {"sync": 0.002}},
    "network": {"latency": {"same_zone": 0.001, "cross_zone": 0.002}},
    "workload": {"timeout": 0.5, "clients_per_zone": 1},
}

#: Client and key indices a rule draws; they wrap around the scenario's clients and keys.
INDICES = st.integers(0, 7)


def _merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class ProtocolMachine(RuleBasedStateMachine):
    """Client operations, faults, heals and time against one protocol; invariants checked
    as time passes. Subclass it and set ``policy`` (see the module docstring)."""

    policy: ClassVar[str] = "raft"
    params: ClassVar[dict[str, Any]] = {}
    policy_path: ClassVar[str | None] = None
    cluster: ClassVar[dict[str, Any]] = {}
    network: ClassVar[dict[str, Any]] = {}
    data: ClassVar[str] = "register"
    invariant_names: ClassVar[tuple | None] = None
    fault_kinds: ClassVar[tuple[str, ...]] = ("partition", "crash", "pause", "clock")
    keys: ClassVar[int] = 2
    clients_per_zone: ClassVar[int] = 1
    timeout: ClassVar[float] = 0.5
    max_time: ClassVar[float] = 10.0
    seed: ClassVar[int] = 0

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.ops: list[dict[str, Any]] = []
        self.faults: list[Any] = []
        self.written: dict[str, int] = {}
        self.checked_at = 0.0
        #: The last run checked, and its verdicts, for subclasses' own invariants.
        self.result: Result | None = None
        self.verdicts: list[dict[str, Any]] = []
        self.shell = self.base_scenario()
        self.client_count = self._clients(self.shell)

    # -- the scenario ----------------------------------------------------------------------

    @classmethod
    def base_scenario(cls) -> Scenario:
        """The scenario every step runs in: :data:`DEFAULT_SHELL` with the class's
        protocol, cluster and network, and no workload or faults yet."""
        policy: dict[str, Any] = {"name": cls.policy, "params": dict(cls.params)}
        if cls.policy_path is not None:
            policy["path"] = str(Path(cls.policy_path).resolve())
        data = _merge(
            DEFAULT_SHELL,
            {
                "seed": cls.seed,
                "duration": cls.max_time,
                "policy": policy,
                "cluster": cls.cluster,
                "network": cls.network,
                "workload": {
                    "timeout": cls.timeout,
                    "clients_per_zone": cls.clients_per_zone,
                    "kind": cls.data,
                },
            },
        )
        return parse_scenario(data)

    @staticmethod
    def _clients(scenario: Scenario) -> int:
        workload = scenario.workload
        if workload.clients is not None:
            return sum(group.count for group in workload.clients)
        return workload.clients_per_zone * len(scenario.cluster.populated_zones())

    def scenario(self) -> Scenario:
        """Everything so far as one scenario: the operations invoked before now as a
        scripted workload, the faults as they were injected, the main phase ending now."""
        data = to_data(self.shell)
        data["duration"] = max(self.now, STEP_S)
        ops = [op for op in self.ops if op["at"] < self.now]
        data["workload"] = {**data["workload"], "kind": "script", "ops": ops}
        data["faults"] = [to_data(f) for f in self.faults]
        return parse_scenario(data)

    # -- rules -----------------------------------------------------------------------------

    def _op(self, f: str, client: int, key: int, value: Any = None) -> None:
        entry: dict[str, Any] = {
            "at": round(self.now, 6),
            "client": client % self.client_count,
            "f": f,
            "key": f"k{key % self.keys}",
        }
        if value is not None:
            entry["value"] = value
        self.ops.append(entry)

    def _next_value(self, key: int) -> int:
        name = f"k{key % self.keys}"
        self.written[name] = self.written.get(name, 0) + 1
        return self.written[name]

    @rule(client=INDICES, key=INDICES)
    def read(self, client: int, key: int) -> None:
        """A client reads a key."""
        self._op("read", client, key)

    @precondition(lambda self: self.data == "register")
    @rule(client=INDICES, key=INDICES)
    def write(self, client: int, key: int) -> None:
        """A client writes the next value (1, 2, 3, ... per key)."""
        self._op("write", client, key, self._next_value(key))

    @precondition(lambda self: self.data == "register")
    @rule(client=INDICES, key=INDICES)
    def cas(self, client: int, key: int) -> None:
        """A client compares-and-sets a key from the last value written to the next."""
        name = f"k{key % self.keys}"
        expected = self.written.get(name)
        self._op("cas", client, key, [expected, self._next_value(key)])

    @precondition(lambda self: self.data == "set")
    @rule(client=INDICES, key=INDICES)
    def add(self, client: int, key: int) -> None:
        """A client adds the next element (1, 2, 3, ... per key) to a set."""
        self._op("add", client, key, self._next_value(key))

    @precondition(lambda self: bool(self.fault_kinds) and self.now < self.max_time)
    @rule(data=st.data())
    def fault(self, data: st.DataObject) -> None:
        """A fault starts now, drawn from ``fault_kinds`` for this cluster; with a leader or
        primary to aim at, it sometimes waits instead for the next one elected, and strikes
        a few milliseconds to a second after it (``after: new-leader``)."""
        one = fault_strategy(self.shell, kinds=self.fault_kinds, at=st.just(round(self.now, 6)))
        if role_words(self.shell):
            one = timed_by_leaders(one)
        drawn = data.draw(one, label="fault")
        self.faults.append(drawn)

    @precondition(lambda self: bool(self.faults))
    @rule()
    def heal(self) -> None:
        """Every partition and link fault in force ends now."""
        self.faults.append(Heal(at=round(self.now, 6)))

    @precondition(lambda self: self.now < self.max_time)
    @rule(seconds=durations(STEP_S, 2.0))
    def wait(self, seconds: float) -> None:
        """Time passes (up to ``max_time``)."""
        self.now = round(min(self.now + seconds, self.max_time), 6)

    # -- checking --------------------------------------------------------------------------

    @invariant()
    def invariants_hold(self) -> None:
        """Once time has moved since the last check, run everything so far and check the
        invariants (those the protocol claims, or ``invariant_names``); nothing to check
        before the first operation."""
        if self.now <= self.checked_at:
            return
        self.checked_at = self.now
        if any(op["at"] < self.now for op in self.ops):
            self.check()

    def teardown(self) -> None:
        """After the last step, let a second pass and check everything once more, so that
        operations and faults of the last steps are checked too."""
        if self.ops and (
            any(op["at"] >= self.checked_at for op in self.ops)
            or any(f.at >= self.checked_at for f in self.faults)
        ):
            self.now = round(self.now + 1.0, 6)
            self.checked_at = self.now
            self.check()

    def check(self) -> None:
        """Run the scenario so far and fail with the evidence if an invariant broke."""
        scenario = self.scenario()
        try:
            result = run(scenario, allow_large=True, invariants=self.invariant_names)
        except PolicyError as exc:
            raise AssertionError(
                f"the policy raised at t={exc.time:g} s:\n{exc.report()}\n"
                + self._reproducer(scenario)
            ) from None
        self.result = result
        self.verdicts = checks.from_summary(result)
        broken = checks.failed(self.verdicts)
        if broken is not None:
            evidence = compact(broken["evidence"]).replace("\n", "\n  ")
            raise AssertionError(
                f"{broken['name']} failed by t={self.now:g} s: {broken['message']}\n"
                f"evidence:\n  {evidence}\n" + self._reproducer(scenario)
            )

    def _reproducer(self, scenario: Scenario) -> str:
        faults = "".join(f"\n  {describe(f)}" for f in self.faults) or " none"
        return (
            f"faults:{faults}\n"
            "reproducer (save as a .yaml file; `capsim run` replays it):\n"
            + dump_scenario(scenario)
        )
