"""Overriding scenario fields from the command line: ``--set path.to.field=value``.

An assignment names a field by its dotted path through the scenario's mappings, with
``[i]`` for an item of a list (``faults[0].duration``), and gives its value as YAML: a
scalar (``5ms``, ``3``, ``raft``, ``true``, ``null``) or a whole mapping or list in flow
style (``policy={name: quorum, params: {r: 1, w: 1}}``). Overrides apply to the plain data
read from the file, before validation, so a misspelt field or a bad value gets the same
error as it would in the file, and mappings missing on the way are created.

The same paths name the axes of a sweep's grid (:mod:`capsim.sweep`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any

from capsim.errors import ScenarioError

__all__ = ["parse_path", "parse_assignment", "set_path", "apply_overrides", "format_path"]

_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]")
_MAX_STEPS = 50


def parse_path(path: str, *, what: str = "--set") -> list[str | int]:
    """``"faults[0].at"`` -> ``["faults", 0, "at"]``; raises :class:`ScenarioError`."""
    text = path.strip()
    steps: list[str | int] = []
    pos = 0
    if not text:
        raise ScenarioError(f"{what}: an empty field path (write path.to.field=value)")
    while pos < len(text):
        if steps and text[pos] == ".":
            pos += 1
        match = _STEP.match(text, pos)
        if match is None or (match.group(1) and steps and text[pos - 1] != "."):
            raise ScenarioError(
                f"{what}: {path!r} is not a field path: write names joined by dots, "
                "with [i] for an item of a list (faults[0].at)"
            )
        steps.append(match.group(1) if match.group(1) else int(match.group(2)))
        pos = match.end()
        if len(steps) > _MAX_STEPS:
            raise ScenarioError(f"{what}: {path!r} is nested deeper than {_MAX_STEPS} levels")
    if isinstance(steps[0], int):
        raise ScenarioError(f"{what}: {path!r} must start with a field name")
    return steps


def format_path(steps: Iterable[str | int]) -> str:
    """The inverse of :func:`parse_path`."""
    out = ""
    for step in steps:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out


def parse_value(text: str, *, what: str = "--set") -> Any:
    """A YAML scalar or flow collection, read as plain data (the scenario file's rules)."""
    from capsim.scenario import read_yaml

    try:
        return read_yaml(text)
    except ScenarioError as exc:
        raise ScenarioError(
            f"{what}: the value {text!r} is not valid YAML ({exc.message})"
        ) from None


def parse_assignment(text: str) -> tuple[list[str | int], Any]:
    """``"workload.rate=50/s"`` -> ``(["workload", "rate"], "50/s")``."""
    path, eq, value = text.partition("=")
    if not eq:
        raise ScenarioError(f"--set {text!r}: write path.to.field=value")
    steps = parse_path(path)
    return steps, parse_value(value, what=f"--set {path.strip()}")


def set_path(data: dict, steps: list[str | int], value: Any, *, what: str = "--set") -> None:
    """Set ``value`` at ``steps`` inside ``data`` in place, creating missing mappings."""
    node: Any = data
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        where = format_path(steps[: i + 1])
        if isinstance(step, int):
            if not isinstance(node, list):
                raise ScenarioError(
                    f"{what} {format_path(steps)}: {format_path(steps[:i]) or 'the scenario'} "
                    "is not a list"
                )
            if step >= len(node):
                raise ScenarioError(
                    f"{what} {format_path(steps)}: {format_path(steps[:i])} has "
                    f"{len(node)} item{'s' if len(node) != 1 else ''}, no [{step}]"
                )
        elif not isinstance(node, dict):
            raise ScenarioError(
                f"{what} {format_path(steps)}: {format_path(steps[:i])} is not a mapping"
            )
        if last:
            node[step] = value
            return
        child = node[step] if isinstance(step, int) else node.get(step)
        if child is None:
            if isinstance(steps[i + 1], int):
                raise ScenarioError(f"{what} {format_path(steps)}: {where} is not a list")
            child = {}
            node[step] = child
        node = child


def apply_overrides(data: Any, assignments: Iterable[str | tuple[list, Any]]) -> Any:
    """A copy of the scenario data ``data`` with each assignment applied, in order.

    Each assignment is ``"path=value"`` text or an already parsed ``(steps, value)`` pair.
    A later assignment to the same field wins; a path through a field set by an earlier
    one reaches into its value.
    """
    data = {} if data is None else copy.deepcopy(data)
    if not isinstance(data, dict):
        return data  # parse_scenario says what is wrong with it
    for item in assignments:
        steps, value = parse_assignment(item) if isinstance(item, str) else item
        set_path(data, list(steps), copy.deepcopy(value))
    return data
