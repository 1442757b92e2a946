"""The architecture's rules, checked on the source: imports point down, determinism holds.

Layers (ARCHITECTURE.md): L0 pure data, L1 analysis, L2 simulation, L3 policies,
L4 composition, L5 edges. A module may import capsim modules of its own layer or below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import capsim

PACKAGE = Path(capsim.__file__).parent

LAYERS = {
    "capsim.version": 0,
    "capsim.errors": 0,
    "capsim.units": 0,
    "capsim.rng": 0,
    "capsim.portable": 0,
    "capsim.schema": 0,
    "capsim.distributions": 0,
    "capsim.faults": 0,
    "capsim.overrides": 0,
    "capsim.scenario": 0,
    "capsim.schemadoc": 0,
    "capsim.history": 0,
    "capsim.topology": 0,
    "capsim.metrics": 1,
    "capsim.checkers": 1,
    "capsim.invariants": 1,
    "capsim.analytic": 1,
    "capsim.analytic.profiles": 0,  # plain data the scenario schema shares
    "capsim.analytic.des": 4,  # runs the simulator
    "capsim.analytic.fidelity": 4,
    "capsim.analytic.commands": 5,  # `capsim pbs` and `capsim fidelity`
    "capsim.sim": 2,
    "capsim.policies": 3,
    "capsim.runner": 4,
    "capsim.sweep": 4,
    "capsim.cli": 5,
    "capsim.bench": 5,
    "capsim.plot": 5,
    "capsim.report": 5,
    "capsim.testing": 5,
    "capsim.__main__": 5,
    "capsim": 5,
}
SIMPY_ALLOWED = ("capsim.sim", "capsim.runner", "capsim.bench")
MATPLOTLIB_ALLOWED = ("capsim.plot", "capsim.report")


def layer_of(module: str) -> int:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        if name in LAYERS:
            return LAYERS[name]
    raise KeyError(f"{module} has no layer: add it to LAYERS in {__file__}")


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts)
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        yield name, path, ast.parse(path.read_text(), filename=str(path))


def imports(tree: ast.AST, module: str):
    """(imported module, line, at module level?) for every import in ``tree``."""
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, id(node) in top_level
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level] if not module.endswith("__init__") else []
                name = ".".join([*base, node.module or ""]).strip(".")
            else:
                name = node.module or ""
            for alias in node.names:
                # ``from capsim import metrics`` imports the submodule capsim.metrics.
                sub = f"{name}.{alias.name}"
                is_module = (PACKAGE.parent / Path(*sub.split("."))).with_suffix(
                    ".py"
                ).exists() or (PACKAGE.parent / Path(*sub.split("."))).is_dir()
                yield (sub if is_module else name), node.lineno, id(node) in top_level


ALL = list(modules())


@pytest.mark.parametrize(("module", "path", "tree"), ALL, ids=[m for m, _, _ in ALL])
def test_imports_point_down(module, path, tree):
    if module == "capsim":
        return  # the public surface re-exports every layer
    mine = layer_of(module)
    for name, line, _ in imports(tree, module):
        if name.startswith("capsim"):
            assert layer_of(name) <= mine, (
                f"{path}:{line}: L{mine} {module} imports L{layer_of(name)} {name}"
            )


@pytest.mark.parametrize(("module", "path", "tree"), ALL, ids=[m for m, _, _ in ALL])
def test_only_the_simulation_imports_simpy_and_only_plots_import_matplotlib(module, path, tree):
    for name, line, top in imports(tree, module):
        if name.split(".")[0] == "simpy":
            assert module.startswith(SIMPY_ALLOWED), f"{path}:{line}: simpy outside L2"
        if name.split(".")[0] == "matplotlib":
            assert module.startswith(MATPLOTLIB_ALLOWED), f"{path}:{line}: matplotlib"
        if name.split(".")[0] == "hypothesis" and top:
            assert module.startswith("capsim.testing"), f"{path}:{line}: hypothesis at top"


FORBIDDEN_CALLS = {
    ("time", "time"),
    ("time", "time_ns"),
    ("uuid", "uuid4"),
    ("uuid", "uuid1"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("os", "urandom"),
}


@pytest.mark.parametrize(("module", "path", "tree"), ALL, ids=[m for m, _, _ in ALL])
def test_no_wall_clock_or_unseeded_randomness(module, path, tree):
    for name, line, _ in imports(tree, module):
        assert name.split(".")[0] not in ("random", "secrets"), f"{path}:{line}: {name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            fn = node.func
            if isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name):
                assert (fn.value.id, fn.attr) not in FORBIDDEN_CALLS, (
                    f"{path}:{node.lineno}: {fn.value.id}.{fn.attr}() breaks determinism"
                )
            if isinstance(fn, ast.Name):
                assert fn.id != "hash", f"{path}:{node.lineno}: hash() depends on PYTHONHASHSEED"
            if isinstance(fn, ast.Attribute) and fn.attr in ("default_rng", "seed"):
                assert module == "capsim.rng" or module.startswith("capsim.bench"), (
                    f"{path}:{node.lineno}: random generators come from capsim.rng.stream"
                )


#: Modules whose arithmetic decides draws and times: the same bits on every machine.
DRAW_PATH = ("capsim.sim", "capsim.policies", "capsim.distributions", "capsim.faults", "capsim.rng")
#: numpy and math functions whose last bit differs between CPUs or C libraries, and
#: Generator methods built on them (numpy's ziggurat tables call the C library's exp/log).
MACHINE_DEPENDENT = {
    "exp",
    "exp2",
    "expm1",
    "log",
    "log2",
    "log10",
    "log1p",
    "power",
    "float_power",
    "pow",
    "sin",
    "cos",
    "tan",
    "tanh",
    "arctan",
    "arcsin",
    "arccos",
    "hypot",
    "cbrt",
    "exponential",
    "standard_exponential",
    "normal",
    "standard_normal",
    "lognormal",
    "pareto",
    "gamma",
    "standard_gamma",
    "weibull",
    "poisson",
    "uniform",
    "choice",
}


@pytest.mark.parametrize(("module", "path", "tree"), ALL, ids=[m for m, _, _ in ALL])
def test_draws_and_times_use_portable_arithmetic(module, path, tree):
    if not module.startswith(DRAW_PATH):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            base = node.func.value
            owner = base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
            numeric = owner in ("np", "numpy", "math") or "rng" in owner or owner == "gen"
            assert not (numeric and node.func.attr in MACHINE_DEPENDENT), (
                f"{path}:{node.lineno}: {node.func.attr}() may differ between machines; "
                "use capsim.portable"
            )
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            exponent = node.right
            assert isinstance(exponent, ast.Constant) and isinstance(exponent.value, int), (
                f"{path}:{node.lineno}: '**' with a non-integer exponent calls pow(); "
                "use capsim.portable.power"
            )


def test_public_names():
    assert sorted(capsim.__all__) == sorted(
        [
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
    )
    for name in capsim.__all__:
        assert hasattr(capsim, name)
