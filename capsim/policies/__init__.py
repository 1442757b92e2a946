"""Replication policies: the built-ins by name, and loading a user's ``module:Class``.

``POLICIES`` maps each built-in's scenario name to its class. A policy is a subclass of
:class:`capsim.Node`; its parameters are the fields of its ``Params`` dataclass (a
keyword-only dataclass; omit it for a policy without parameters).
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from typing import Any

from pydantic import TypeAdapter, ValidationError

from capsim.errors import ScenarioError
from capsim.policies.single_primary import SinglePrimary
from capsim.scenario import PolicySpec
from capsim.sim.node import Node

__all__ = ["POLICIES", "resolve_policy", "policy_params"]

#: Built-in policies by the name used in scenario files.
POLICIES: dict[str, type[Node]] = {
    "single-primary": SinglePrimary,
}


def resolve_policy(spec: PolicySpec) -> type[Node]:
    """The policy class named by ``spec.name``: a built-in, or ``module:Class``.

    A ``module:Class`` is imported with ``spec.path`` first on ``sys.path``. Raises
    :class:`ScenarioError` on ``policy.name`` if it cannot be found or is not a Node.
    """
    name = spec.name
    if name in POLICIES:
        return POLICIES[name]
    if ":" not in name:
        raise ScenarioError(
            f"unknown policy {name!r}; built-in policies: {sorted(POLICIES)}, "
            "or give your own as 'module:Class'",
            field="policy.name",
        )
    module_name, _, class_name = name.partition(":")
    added = False
    if spec.path and spec.path not in sys.path:
        sys.path.insert(0, spec.path)
        added = True
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an import can fail in any way the user's code does
        where = f" (looked in {spec.path})" if spec.path else ""
        raise ScenarioError(
            f"cannot import module {module_name!r}{where}: {type(exc).__name__}: {exc}",
            field="policy.name",
        ) from None
    finally:
        if added:
            sys.path.remove(spec.path)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ScenarioError(
            f"module {module_name!r} has no class {class_name!r}", field="policy.name"
        )
    if not (isinstance(cls, type) and issubclass(cls, Node)):
        raise ScenarioError(f"{name} is not a subclass of capsim.Node", field="policy.name")
    return cls


def policy_params(cls: type[Node], params: dict[str, Any], *, field: str = "policy.params"):
    """Validate ``params`` against ``cls.Params``; returns the Params instance (or a dict).

    Unknown names and wrong types raise :class:`ScenarioError` naming ``field.<name>``.
    """
    params_cls = getattr(cls, "Params", None)
    if params_cls is None:
        return dict(params)
    known = {f.name for f in dataclasses.fields(params_cls)}
    for name in params:
        if name not in known:
            raise ScenarioError(
                f"unknown parameter for {cls.__name__}; known: {sorted(known)}",
                field=f"{field}.{name}",
            )
    try:
        return TypeAdapter(params_cls).validate_python(dict(params))
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in error["loc"])
        msg = error["msg"].removeprefix("Value error, ")
        raise ScenarioError(
            f"{msg}, got {error.get('input')!r}", field=f"{field}.{loc}" if loc else field
        ) from None
