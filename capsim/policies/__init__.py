"""Replication policies: the built-ins by name, and loading a user's ``module:Class``.

``POLICIES`` maps each built-in's scenario name to its class. A policy is a subclass of
:class:`capsim.Node`; its parameters are the fields of its ``Params`` dataclass (a
keyword-only dataclass; omit it for a policy without parameters).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import TypeAdapter, ValidationError

from capsim.errors import ScenarioError
from capsim.policies.chain import Chain
from capsim.policies.primary_backup import PrimaryBackup
from capsim.policies.quorum import Quorum
from capsim.policies.raft import Raft
from capsim.policies.single_primary import SinglePrimary
from capsim.scenario import PolicySpec
from capsim.schema import validation_message
from capsim.sim.node import Node

__all__ = ["POLICIES", "resolve_policy", "policy_params"]

#: Built-in policies by the name used in scenario files.
POLICIES: dict[str, type[Node]] = {
    "single-primary": SinglePrimary,
    "primary-backup": PrimaryBackup,
    "raft": Raft,
    "quorum": Quorum,
    "chain": Chain,
}


def resolve_policy(spec: PolicySpec) -> type[Node]:
    """The policy class named by ``spec.name``: a built-in, or ``module:Class``.

    A ``module:Class`` whose module file lies in ``spec.path`` (``module.py``, or
    ``pkg/mod.py`` for ``pkg.mod``) is loaded from that file under a name of its own, so
    two scenarios in different folders with modules of the same name each get their own
    class; its folder is first on ``sys.path`` while it loads, so it can import its
    neighbours. Otherwise the module is imported from the installed packages. Raises
    :class:`ScenarioError` on ``policy.name`` if it cannot be loaded (including a module
    that exits while loading) or is not a Node.
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
    if (
        not module_name
        or not class_name
        or not all(part.isidentifier() for part in (*module_name.split("."), class_name))
    ):
        raise ScenarioError(
            f"expected 'module:Class' (Python names), got {name!r}", field="policy.name"
        )
    module = _load_module(module_name, spec.path)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ScenarioError(
            f"module {module_name!r} has no class {class_name!r}", field="policy.name"
        )
    if not (isinstance(cls, type) and issubclass(cls, Node)):
        raise ScenarioError(f"{name} is not a subclass of capsim.Node", field="policy.name")
    return cls


def _load_module(module_name: str, path: str | None) -> ModuleType:
    where = f" (looked in {path})" if path else ""
    file = _module_file(module_name, path) if path else None
    added = bool(path) and path not in sys.path
    if added:
        sys.path.insert(0, path)
    try:
        if file is not None:
            # A name of its own, from the file's absolute path: never another folder's
            # module of the same name from the module cache.
            unique = "capsim_user_" + hashlib.sha256(str(file).encode()).hexdigest()[:16]
            module = sys.modules.get(unique)
            if module is None:
                loader_spec = importlib.util.spec_from_file_location(unique, file)
                module = importlib.util.module_from_spec(loader_spec)
                sys.modules[unique] = module
                try:
                    loader_spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[unique]
                    raise
            return module
        return importlib.import_module(module_name)
    except KeyboardInterrupt:
        raise
    except SystemExit as exc:
        raise ScenarioError(
            f"module {module_name!r}{where} called sys.exit({exc.code!r}) while being imported",
            field="policy.name",
        ) from None
    except BaseException as exc:  # an import can fail in any way the user's code does
        raise ScenarioError(
            f"cannot import module {module_name!r}{where}: {type(exc).__name__}: {exc}",
            field="policy.name",
        ) from None
    finally:
        if added and path in sys.path:
            sys.path.remove(path)


def _module_file(module_name: str, path: str) -> Path | None:
    """The file of ``module_name`` under ``path`` (``a/b.py`` or ``a/b/__init__.py``) if
    it is a plain module (dotted names inside packages are left to the import system,
    which their relative imports need)."""
    if "." in module_name:
        return None
    base = Path(path) / module_name
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate.resolve()
    return None


def policy_params(cls: type[Node], params: dict[str, Any], *, field: str = "policy.params"):
    """Validate ``params`` against ``cls.Params``; returns the Params instance (or ``{}``).

    Unknown names and wrong types raise :class:`ScenarioError` naming ``field.<name>``; a
    policy without a ``Params`` class takes no parameters.
    """
    params_cls = getattr(cls, "Params", None)
    if params_cls is None:
        if params:
            first = sorted(params, key=str)[0]
            raise ScenarioError(
                f"{cls.__name__} takes no parameters (give it a Params dataclass to accept some)",
                field=f"{field}.{first}",
            )
        return {}
    if not dataclasses.is_dataclass(params_cls):
        raise ScenarioError(
            f"{cls.__name__}.Params must be a dataclass, got {params_cls!r}", field=field
        )
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
        loc, message = validation_message(exc.errors(include_url=False)[0])
        raise ScenarioError(message, field=f"{field}.{loc}" if loc else field) from None
    except (TypeError, ValueError) as exc:  # raised by the user's own __post_init__
        raise ScenarioError(f"{exc}", field=field) from None
