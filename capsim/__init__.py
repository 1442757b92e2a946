"""capsim: a CAP and partition fault-injection simulator.

Describe a replicated system and a fault schedule in a scenario file; capsim runs it in
simulated time, deterministically from a seed, and reports what the system gave up:
availability, latency, lost writes, and more.

    import capsim
    sc = capsim.load_scenario("scenarios/quickstart.yaml")
    res = capsim.run(sc, seed=7)      # same scenario + seed -> identical result
    res.summary                       # the dict that `capsim run --json` prints
    res.history.to_jsonl("h.jsonl")   # operation events
    class MyPolicy(capsim.Node): ...  # the extension point
"""

from capsim.errors import CapsimError, PolicyError, ScenarioError  # noqa: E402
from capsim.history import History  # noqa: E402
from capsim.runner import Result, run  # noqa: E402
from capsim.scenario import Scenario, load_scenario  # noqa: E402
from capsim.sim.node import Message, Node, Request  # noqa: E402
from capsim.topology import topology_graph  # noqa: E402
from capsim.version import __version__

__all__ = [
    "__version__",
    "CapsimError",
    "History",
    "Message",
    "Node",
    "PolicyError",
    "Request",
    "Result",
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "run",
    "topology_graph",
]
