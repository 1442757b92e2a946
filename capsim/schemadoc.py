"""The scenario schema as a reference page and as a JSON Schema, both generated from the specs.

Nothing here restates the schema: every section, field, type, bound and default is read
from the spec classes of :mod:`capsim.scenario`, :mod:`capsim.faults` and
:mod:`capsim.distributions`, so the documentation cannot drift from what the loader
accepts.

* A field's **type, unit and bounds** come from its annotation: the typed values of
  :mod:`capsim.schema` (durations, rates, counts, ...), pydantic constraints
  (``Field(ge=..., max_length=..., pattern=...)``) and a few validators this module knows.
* Its **meaning** is the docstring written under the field (an attribute docstring, as
  Sphinx reads them) or a pydantic ``Field(description=...)``; a field with neither is an
  error, so a new field cannot go undocumented.
* A section's **introduction** is its class docstring; the fault and distribution
  chapters open with their module's docstring.

:func:`markdown` renders ``scenarios/README.md`` (``capsim schema --markdown``);
:func:`json_schema` a JSON Schema, draft 2020-12 (``capsim schema``), describing what a
file may really contain: a duration is a number of seconds or text with a unit (a
pattern), a distribution a bare duration or a mapping with ``dist``, and so on. The JSON
Schema checks types, units, bounds and unknown fields; rules between fields and sections
(a zone a fault names must exist, ``high`` not below ``low``) are checked by the loader
(``capsim validate``).

Annotations are walked with :func:`typing.get_type_hints`; a validator or a shorthand
this module does not know raises :class:`SchemaDocError`, naming the field, rather than
being described wrongly.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import math
import re
import sys
import types
import typing
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator
from pydantic.fields import FieldInfo

from capsim import distributions as _dists
from capsim import faults as _faults
from capsim import scenario as _scen
from capsim import schema as _schema
from capsim import units as _units

__all__ = ["json_schema", "markdown", "render_json_schema", "SchemaDocError", "REGENERATE"]

#: The command that regenerates the reference page.
REGENERATE = "capsim schema --markdown > scenarios/README.md"

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class SchemaDocError(Exception):
    """The schema cannot be described: a field without a description, an unknown
    validator or shorthand. A bug to fix in the spec or in this module."""


# --- patterns of what a file may contain ------------------------------------------------

_MANTISSA = r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)"
_EXPONENT = r"(?:[eE][+-]?[0-9]+)?"
_NONZERO = r"(?=[0-9.]*[1-9])"  # the mantissa has a nonzero digit
_UNIT_NAMES = tuple(sorted(_units._UNITS, key=lambda u: (-len(u), u)))
_UNIT = "(?:" + "|".join(_UNIT_NAMES) + ")"
#: A number written as text (YAML 1.1 reads ``1e-3`` as text; the loader reads it as one).
NUMBER_TEXT = rf"^\s*[+-]?{_MANTISSA}{_EXPONENT}\s*$"
_BANDWIDTH_UNITS = ("bps", "kbps", "Mbps", "Gbps", "B/s", "KB/s", "kB/s", "MB/s", "GB/s")


def _duration_pattern(sign: str) -> str:
    lead = {"any": "[+-]?", "non-negative": r"\+?", "positive": r"\+?" + _NONZERO}[sign]
    return rf"^\s*{lead}{_MANTISSA}{_EXPONENT}\s*{_UNIT}?\s*$"


_RATE_PATTERN = (
    rf"^\s*\+?{_NONZERO}{_MANTISSA}{_EXPONENT}"
    rf"(?:\s*/\s*(?:{_MANTISSA}{_EXPONENT}\s*{_UNIT}?|{_UNIT}))?\s*$"
)
_BANDWIDTH_PATTERN = (
    rf"^\s*\+?{_NONZERO}{_MANTISSA}{_EXPONENT}\s*"
    "(?:" + "|".join(re.escape(u) for u in _BANDWIDTH_UNITS) + r")?\s*$"
)
#: A field path as ``--set`` and a sweep's grid take it (``faults[0].at``).
FIELD_PATH = r"^\s*[A-Za-z_][A-Za-z0-9_\-]*(?:\.?\[[0-9]+\]|\.[A-Za-z_][A-Za-z0-9_\-]*)*\s*$"


# --- what a type is ---------------------------------------------------------------------


@dataclasses.dataclass
class _Type:
    """One annotation, described: a JSON Schema fragment and the words the page shows."""

    schema: dict
    text: str
    kind: str = "other"  # duration, rate, spec, list, mapping, optional, ...
    item: _Type | None = None  # of a list, a mapping's values, an optional's value
    spec: type | None = None


def _number_bounds(schema: dict, cons: dict) -> list[str]:
    words = []
    for key, word in (("ge", "minimum"), ("gt", "exclusiveMinimum")):
        if key in cons:
            schema[word] = cons[key]
    for key, word in (("le", "maximum"), ("lt", "exclusiveMaximum")):
        if key in cons:
            schema[word] = cons[key]
    low = cons.get("ge", cons.get("gt"))
    high = cons.get("le", cons.get("lt"))
    if low is not None and high is not None and "gt" not in cons and "lt" not in cons:
        words.append(f"from {_num(low)} to {_num(high)}")
    else:
        if "ge" in cons:
            words.append(f"at least {_num(cons['ge'])}")
        if "gt" in cons:
            words.append(f"greater than {_num(cons['gt'])}")
        if "le" in cons:
            words.append(f"at most {_num(cons['le'])}")
        if "lt" in cons:
            words.append(f"less than {_num(cons['lt'])}")
    return words


def _num(value: float) -> str:
    """A bound as the page shows it: ``100,000``, ``0.1``, ``1e9``, ``2**64 - 1``."""
    if isinstance(value, int) and value == 2**64 - 1:
        return "2**64 - 1"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e6:
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}"
    return _exp(value) if value and (abs(value) >= 1e6 or abs(value) < 1e-3) else f"{value:g}"


def _exp(value: float) -> str:
    mantissa, _, exponent = f"{float(value):e}".partition("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _constraints(meta: list, where: str) -> tuple[dict, list]:
    """Split Annotated metadata into constraints (``ge``, ``max_length``, ``pattern``,
    ``discriminator``, ...) and validators."""
    cons: dict[str, Any] = {}
    validators = []
    for item in meta:
        if isinstance(item, BeforeValidator | AfterValidator):
            validators.append(item)
            continue
        parts = [item]
        if isinstance(item, FieldInfo):
            if item.discriminator is not None:
                cons["discriminator"] = item.discriminator
            parts = list(item.metadata)
        for part in parts:
            found = False
            for name in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern"):
                value = getattr(part, name, None)
                if value is not None:
                    cons[name] = value
                    found = True
            if not found and not isinstance(item, FieldInfo):
                raise SchemaDocError(f"{where}: cannot describe the annotation {part!r}")
    return cons, validators


def _aliases() -> list[tuple[Any, str]]:
    """The typed values of the schema, by the annotation that makes them, longest first."""
    pairs = [
        (_schema.Duration, "duration"),
        (_schema.NonNegativeDuration, "non-negative duration"),
        (_schema.PositiveDuration, "positive duration"),
        (_schema.Interval, "interval"),
        (_schema.PositiveRate, "rate"),
        (_schema.FiniteFloat, "number"),
        (_schema.Probability, "probability"),
        (_schema.WholeNumber, "whole number"),
        (_schema.StrictBool, "boolean"),
        (_scen.Bandwidth, "bandwidth"),
        (_scen.Name, "name"),
        (_dists.Distribution, "distribution"),
        (_faults.Fault, "fault"),
    ]
    return sorted(pairs, key=lambda pair: -len(pair[0].__metadata__))


_DURATIONS = {
    "duration": ("any", {"ge": -_schema.MAX_DURATION_S, "le": _schema.MAX_DURATION_S}),
    "non-negative duration": ("non-negative", {"ge": 0, "le": _schema.MAX_DURATION_S}),
    "positive duration": ("positive", {"gt": 0, "le": _schema.MAX_DURATION_S}),
    "interval": ("non-negative", {"ge": 0.001, "le": _schema.MAX_DURATION_S}),
}


class _Walker:
    """Describes annotations, collecting the ``$defs`` the JSON Schema refers to."""

    def __init__(self, anchors: dict[type, str]):
        self.anchors = anchors  # spec class -> the page's anchor for its section
        self.defs: dict[str, dict] = {}
        self.hints: dict[type, dict] = {}

    # -- entry points ----------------------------------------------------------------------

    def field_type(self, cls: type, name: str) -> _Type:
        hints = self.hints.get(cls)
        if hints is None:
            hints = self.hints[cls] = typing.get_type_hints(cls, include_extras=True)
        shape = self.walk(hints[name], f"{cls.__name__}.{name}")
        special = _FIELD_SHORTHANDS.get((cls, name))
        return special(self, shape) if special else shape

    def walk(self, tp: Any, where: str) -> _Type:
        if tp == _faults.Target:
            self.defs["Target"] = {
                "description": "A container id, a zone, a role (leader, primary) or random; "
                "or a list of them.",
                "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            }
            return _Type({"$ref": "#/$defs/Target"}, "[target](#faults)", "target")
        if typing.get_origin(tp) is Annotated:
            return self._annotated(tp, where)
        return self._plain(tp, {}, where)

    # -- annotated values --------------------------------------------------------------

    def _annotated(self, tp: Any, where: str) -> _Type:
        meta = list(tp.__metadata__)
        base = tp.__origin__
        for alias, name in _aliases():
            alias_meta = list(alias.__metadata__)
            if base is alias.__origin__ and meta[: len(alias_meta)] == alias_meta:
                rest = meta[len(alias_meta) :]
                cons, validators = _constraints(rest, where)
                shape = self._typed(name, cons, where)
                return self._extra_validators(shape, validators, where)
        cons, validators = _constraints(meta, where)
        self._known_validators(validators, where)
        shape = self._plain(base, cons, where)
        return self._extra_validators(shape, validators, where)

    def _typed(self, name: str, cons: dict, where: str) -> _Type:
        if name in _DURATIONS:
            sign, bounds = _DURATIONS[name]
            number = {"type": "number"}
            words = _number_bounds(number, {**bounds, **cons})
            schema = {"anyOf": [number, {"type": "string", "pattern": _duration_pattern(sign)}]}
            text = "[duration](#value-types)"
            words = [w.replace("1e9", "1e9 s") for w in words]
            words = ["over 0 s" if w == "greater than 0" else w for w in words]
            words = [w.replace("0.001", "1ms") for w in words]
            return _Type(schema, _joined(text, words), "duration")
        if name == "rate":
            number = {"type": "number"}
            words = _number_bounds(number, {"ge": _schema.MIN_RATE, "le": _schema.MAX_RATE, **cons})
            schema = {"anyOf": [number, {"type": "string", "pattern": _RATE_PATTERN}]}
            words = [w + " per second" for w in words]
            return _Type(schema, _joined("[rate](#value-types)", words), "rate")
        if name == "bandwidth":
            number = {"type": "number", "minimum": 0.125}
            schema = {"anyOf": [number, {"type": "string", "pattern": _BANDWIDTH_PATTERN}]}
            return _Type(schema, "[bandwidth](#value-types), at least 1bps", "bandwidth")
        if name in ("number", "probability"):
            bounds = {"ge": 0, "le": 1} if name == "probability" else {}
            number = {"type": "number"}
            words = _number_bounds(number, {**bounds, **cons})
            schema = {"anyOf": [number, {"type": "string", "pattern": NUMBER_TEXT}]}
            return _Type(schema, _joined("number", words), "number")
        if name == "whole number":
            number = {"type": "integer"}
            words = _number_bounds(number, cons)
            schema = {"anyOf": [number, {"type": "string", "pattern": NUMBER_TEXT}]}
            return _Type(schema, _joined("whole number", words), "integer")
        if name == "name":
            schema = {"type": "string"}
            own, _ = _constraints(list(_scen.Name.__metadata__), where)
            schema.update(minLength=own["min_length"], maxLength=own["max_length"])
            schema["pattern"] = _anchored(own["pattern"])
            most = _num(own["max_length"])
            text = f"name (up to {most} letters, digits, `_`, `.` or `-`)"
            return _Type(schema, text, "text")
        if name == "boolean":
            return _Type({"type": "boolean"}, "`true` or `false`", "boolean")
        if name == "distribution":
            return _Type(
                {"$ref": "#/$defs/Distribution"}, "[distribution](#distributions)", "distribution"
            )
        if name == "fault":
            return _Type({"$ref": "#/$defs/Fault"}, "[fault](#faults)", "fault")
        raise SchemaDocError(f"{where}: no description for the type {name!r}")

    def _known_validators(self, validators: list, where: str) -> None:
        for validator in validators:
            if validator.func not in _VALIDATORS:
                raise SchemaDocError(
                    f"{where}: the validator {validator.func.__qualname__} is unknown to "
                    "capsim/schemadoc.py: teach it what the validator accepts"
                )

    def _extra_validators(self, shape: _Type, validators: list, where: str) -> _Type:
        self._known_validators(validators, where)
        for validator in validators:
            shape = _VALIDATORS[validator.func](shape)
        return shape

    # -- plain types -------------------------------------------------------------------

    def _plain(self, tp: Any, cons: dict, where: str) -> _Type:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if tp is type(None):
            return _Type({"type": "null"}, "`null`", "null")
        if tp is Any:
            return _Type({}, "any value", "any")
        if tp is str:
            schema: dict = {"type": "string"}
            words = []
            if "min_length" in cons or "max_length" in cons:
                low, high = cons.get("min_length", 0), cons.get("max_length")
                if "min_length" in cons:
                    schema["minLength"] = low
                if high is not None:
                    schema["maxLength"] = high
                    words.append(f"{_num(low)} to {_num(high)} characters")
                else:
                    words.append(f"at least {_num(low)} characters")
            if "pattern" in cons:
                schema["pattern"] = _anchored(cons["pattern"])
                words.insert(0, f"matching `{schema['pattern']}`")
            return _Type(schema, _joined("text", words), "text")
        if tp in (bool, int, float):
            raise SchemaDocError(
                f"{where}: a bare {tp.__name__}: use the typed values of "
                "capsim.schema (StrictBool, WholeNumber, FiniteFloat)"
            )
        if origin is Literal:
            return _Type({"enum": list(args)}, _choices(args), "enum")
        if origin in (typing.Union, types.UnionType):
            return self._union(args, cons, where)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis or origin is list:
            item = self.walk(args[0], where) if args else _Type({}, "any value", "any")
            schema = {"type": "array", "items": item.schema}
            words = _length_words(schema, cons, "minItems", "maxItems", "item")
            return _Type(schema, _joined(f"list of {_plural(item.text)}", words), "list", item)
        if origin is tuple:
            items = [self.walk(a, where) for a in args]
            # No "items": false: a draft-07 reader (VS Code's YAML extension) ignores
            # prefixItems and would read it as "no items at all"; maxItems says as much.
            schema = {
                "type": "array",
                "prefixItems": [i.schema for i in items],
                "minItems": len(items),
                "maxItems": len(items),
            }
            if len({i.text for i in items}) == 1:
                text = f"list of {len(items)} {_plural(items[0].text)}"
            else:
                text = "list: " + ", ".join(i.text for i in items)
            return _Type(schema, text, "list", items[0])
        if origin is dict:
            key = self.walk(args[0], where)
            value = self.walk(args[1], where)
            schema = {"type": "object", "additionalProperties": value.schema}
            if key.schema != {"type": "string"}:
                schema["propertyNames"] = key.schema
            words = _length_words(schema, cons, "minProperties", "maxProperties", "entry")
            text = f"mapping from {key.text} to {value.text}"
            return _Type(schema, _joined(text, words), "mapping", value)
        if dataclasses.is_dataclass(tp):
            name = tp.__name__
            if name not in self.defs:
                self.defs[name] = {}  # a placeholder: a spec may refer to itself
                self.defs[name] = self.spec_schema(tp)
            anchor = self.anchors.get(tp)
            text = (
                f"mapping: see [{_section_title(anchor)}](#{_slug(anchor)})"
                if anchor
                else "mapping"
            )
            return _Type({"$ref": f"#/$defs/{name}"}, text, "spec", spec=tp)
        raise SchemaDocError(f"{where}: cannot describe the type {tp!r}")

    def _union(self, args: tuple, cons: dict, where: str) -> _Type:
        if cons.get("discriminator"):
            raise SchemaDocError(f"{where}: a tagged union that is not a Distribution or Fault")
        members = [a for a in args if a is not type(None)]
        shapes = [self.walk(a, where) for a in members]
        if len(shapes) == 1:
            inner = shapes[0]
            schema = {"anyOf": [inner.schema, {"type": "null"}]}
            return _Type(schema, f"{inner.text}, or `null`", "optional", inner, inner.spec)
        schema = {"anyOf": [s.schema for s in shapes]}
        text = " or ".join(s.text for s in shapes)
        if len(members) != len(args):
            schema["anyOf"].append({"type": "null"})
            text += ", or `null`"
        return _Type(schema, text, "union")

    # -- spec classes ------------------------------------------------------------------

    def spec_schema(self, cls: type, *, extra: dict | None = None) -> dict:
        """The JSON Schema of one spec class (a mapping with exactly its fields)."""
        docs = field_docs(cls)
        props: dict[str, Any] = {}
        required = []
        tag = _discriminator(cls)
        _check_before_validators(cls)
        for name, info in cls.__pydantic_fields__.items():
            key = info.alias or name
            if name == tag:
                props[key] = {"const": info.default}
                required.append(key)
                continue
            shape = self.field_type(cls, name)
            prop = dict(shape.schema)
            prop["description"] = _plain_text(docs[name])
            default = _default_of(info)
            if default is None and shape.kind not in ("optional", "union", "any"):
                pass  # no default, yet not required: another field stands in (mean or rate)
            elif default is not _REQUIRED:
                data = self.default_data(default, shape)
                if data is not _OMIT:
                    prop["default"] = data
            else:
                required.append(key)
            props[key] = prop
        out: dict[str, Any] = {
            "type": "object",
            "title": cls.__name__,
            "description": _plain_text(_first_paragraph(cls.__doc__ or "")),
            "properties": props,
            "additionalProperties": False,
        }
        if required:
            out["required"] = required
        for key, value in (extra or {}).items():
            out[key] = value
        rule = _MODEL_RULES.get(cls)
        if rule:
            out.update(rule)
        return out

    # -- defaults ------------------------------------------------------------------------

    def default_data(self, value: Any, shape: _Type) -> Any:
        """A default as a file would write it (durations with units), or ``_OMIT`` for a
        section whose every field takes its own default."""
        if value is None:
            return None
        kind = shape.kind
        if kind == "optional":
            return self.default_data(value, shape.item)
        if kind == "duration":
            return _duration_text(value)
        if kind == "rate":
            return f"{_num(value)}/s"
        if kind == "distribution":
            return self._spec_data(value)
        if dataclasses.is_dataclass(value):
            data = self._spec_data(value)
            return _OMIT if data == {} else data
        if isinstance(value, tuple | list):
            item = shape.item or _Type({}, "", "any")
            return [self._item_data(v, item) for v in value]
        if isinstance(value, dict):
            item = shape.item or _Type({}, "", "any")
            return {str(k): self._item_data(v, item) for k, v in value.items()}
        return value

    def _item_data(self, value: Any, shape: _Type) -> Any:
        data = self.default_data(value, shape)
        return {} if data is _OMIT else data

    def _spec_data(self, value: Any) -> Any:
        cls = type(value)
        if cls is _dists.Constant and not value.shift:
            return _duration_text(value.value)
        tag = _discriminator(cls)
        out: dict[str, Any] = {tag: getattr(value, tag)} if tag else {}
        for name, info in cls.__pydantic_fields__.items():
            current = getattr(value, name)
            if name == tag:
                continue
            default = _default_of(info)
            if default is not _REQUIRED and current == default:
                continue
            out[info.alias or name] = self._item_data(current, self.field_type(cls, name))
        return out


_REQUIRED = object()
_OMIT = object()


def _default_of(info: FieldInfo) -> Any:
    if info.default_factory is not None:
        return info.default_factory()
    if info.is_required():
        return _REQUIRED
    return info.default


def _discriminator(cls: type) -> str | None:
    if cls in _faults.FAULTS.values():
        return "kind"
    if cls in _dists.DISTRIBUTIONS.values():
        return "dist"
    return None


def _duration_text(seconds: float) -> str:
    if seconds == 0:
        return "0s"
    size = abs(seconds)
    if size < 1e-4:
        return f"{seconds * 1e6:g}us"
    if size < 1:
        return f"{seconds * 1e3:g}ms"
    return f"{seconds:g}s"


def _anchored(pattern: str) -> str:
    return pattern if pattern.startswith("^") else f"^(?:{pattern})$"


def _joined(text: str, words: list[str]) -> str:
    return ", ".join([text, *words])


def _length_words(schema: dict, cons: dict, low_key: str, high_key: str, noun: str) -> list:
    low, high = cons.get("min_length"), cons.get("max_length")
    if low is not None:
        schema[low_key] = low
    if high is not None:
        schema[high_key] = high
    nouns = noun + "s" if noun != "entry" else "entries"
    if low is not None and high is not None:
        return [f"{_num(low)} to {_num(high)} {nouns if high != 1 else noun}"]
    if low is not None:
        return [f"at least {_num(low)} {nouns if low != 1 else noun}"]
    if high is not None:
        return [f"at most {_num(high)} {nouns if high != 1 else noun}"]
    return []


_PLURALS = (
    ("[duration]", "[durations]"),
    ("[distribution]", "[distributions]"),
    ("[fault]", "[faults]"),
    ("[rate]", "[rates]"),
    ("[target]", "[targets]"),
    ("name", "names"),
    ("whole number", "whole numbers"),
    ("number", "numbers"),
    ("mapping", "mappings"),
    ("list", "lists"),
    ("any value", "any values"),
)


def _plural(text: str) -> str:
    """``list of durations``: the item's first words made plural (text stays text)."""
    for one, many in _PLURALS:
        if text.startswith(one):
            return many + text[len(one) :]
    return text


def _choices(values: tuple) -> str:
    shown = [f"`{v}`" for v in values]
    if len(shown) == 1:
        return shown[0]
    return ", ".join(shown[:-1]) + " or " + shown[-1]


# --- validators and shorthands this module knows ---------------------------------------


def _seed_bounds(shape: _Type) -> _Type:
    number = shape.schema["anyOf"][0]
    number.update({"minimum": 0, "maximum": _scen.LIMITS["seed"]})
    return _Type(shape.schema, "whole number from 0 to 2**64 - 1", shape.kind)


def _bounded(low: float | None, high: float | None, words: str):
    def apply(shape: _Type) -> _Type:
        number = shape.schema["anyOf"][0]
        if low is not None:
            number["minimum"] = low
        if high is not None:
            number["maximum"] = high
        return _Type(shape.schema, f"{shape.text}, {words}", shape.kind)

    return apply


def _policy_name(shape: _Type) -> _Type:
    schema = dict(shape.schema, pattern=_anchored(_scen._POLICY_NAME.pattern))
    return _Type(schema, "text: a built-in policy's name, or `module:Class`", "text")


def _grid_path(shape: _Type) -> _Type:
    schema = dict(
        shape.schema,
        pattern=FIELD_PATH,
        **{"not": {"pattern": r"^\s*(?:seed|sweep)(?:[.\[]|\s*$)"}},
    )
    return _Type(schema, "a field path, as `--set` takes it (not `seed` or `sweep`)", "text")


def _mixture_components(shape: _Type) -> _Type:
    """``[{weight: 0.9, dist: ...}, ...]`` or ``[[0.9, <distribution>], ...]``."""
    pair = shape.schema["items"]
    weight = pair["prefixItems"][0]
    weighted = [
        {"$ref": f"#/$defs/Weighted{cls.__name__}"} for cls in _dists.DISTRIBUTIONS.values()
    ]
    schema = dict(shape.schema, items={"anyOf": [*weighted, pair]})
    del weight
    return _Type(
        schema,
        "list of components, each a distribution's mapping with a `weight` (a number over "
        "0), or a list `[weight, distribution]`",
        "list",
    )


def _kinds_shorthand(walker: _Walker, shape: _Type) -> _Type:
    """``kinds: {write: 5ms}`` sets both link classes of a kind at once."""
    by_class = shape.item
    walker.defs["KindLatency"] = dict(walker.defs["KindLatency"], minProperties=1)
    schema = dict(
        shape.schema,
        additionalProperties={"anyOf": [{"$ref": "#/$defs/Distribution"}, by_class.schema]},
    )
    text = (
        "mapping from a message kind (text) to a [distribution](#distributions) for both "
        f"link classes, or to a {by_class.text}"
    )
    return _Type(schema, text, "mapping", by_class)


def _latency_profile(shape: _Type) -> _Type:
    names = list(getattr(_scen, "PROFILES", {}))
    return _Type(dict(shape.schema, enum=names), _choices(tuple(names)), "enum")


_VALIDATORS = {
    getattr(_scen, "_known_profile", _latency_profile): _latency_profile,
    _scen._seed: _seed_bounds,
    _dists._sigma: _bounded(0, 10, "from 0 to 10"),
    _dists._alpha: _bounded(0.1, None, "at least 0.1"),
    _scen._policy_name: _policy_name,
    _scen._grid_path: _grid_path,
    _dists._flatten_components: _mixture_components,
}

#: Class-level ``mode="before"`` validators: each changes what a file may write.
_KNOWN_BEFORE = {
    (_scen.LatencySpec, "_kinds"),
    (_dists.Exponential, "_one_of"),
}


def _distinct(walker: _Walker, shape: _Type) -> _Type:
    """Zone names are distinct (a field validator of ClusterSpec)."""
    return _Type(
        dict(shape.schema, uniqueItems=True), f"{shape.text}, distinct", shape.kind, shape.item
    )


_FIELD_SHORTHANDS = {
    (_scen.LatencySpec, "kinds"): _kinds_shorthand,
    (_scen.ClusterSpec, "zones"): _distinct,
}
_MODEL_RULES = {
    _dists.Exponential: {"oneOf": [{"required": ["mean"]}, {"required": ["rate"]}]},
}


def _check_before_validators(cls: type) -> None:
    decorators = cls.__pydantic_decorators__
    found = [
        name
        for name, dec in [
            *decorators.field_validators.items(),
            *decorators.model_validators.items(),
        ]
        if dec.info.mode in ("before", "wrap", "plain")
    ]
    for name in found:
        if (cls, name) not in _KNOWN_BEFORE:
            raise SchemaDocError(
                f"{cls.__name__}.{name} changes what a file may contain (a 'before' "
                "validator): describe it in capsim/schemadoc.py"
            )


# --- docstrings -------------------------------------------------------------------------

_SOURCES: dict[str, ast.Module] = {}


def field_docs(cls: type) -> dict[str, str]:
    """Each field's description: ``Field(description=...)``, else the docstring written
    under the field. Raises :class:`SchemaDocError` listing the fields that have neither."""
    module = sys.modules[cls.__module__]
    tree = _SOURCES.get(module.__name__)
    if tree is None:
        tree = _SOURCES[module.__name__] = ast.parse(inspect.getsource(module))
    # A class at the top of its module, else (a class defined in a function) anywhere.
    found = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__]
    found = found or [
        n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls.__name__
    ]
    body = found[0].body if found else []
    written: dict[str, str] = {}
    for i, node in enumerate(body):
        after = body[i + 1] if i + 1 < len(body) else None
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            written[node.target.id] = inspect.cleandoc(after.value.value)
    out, missing = {}, []
    tag = _discriminator(cls)
    for name, info in cls.__pydantic_fields__.items():
        if name == tag:
            continue
        text = info.description or written.get(name)
        if not text:
            missing.append(name)
        out[name] = text or ""
    if missing:
        raise SchemaDocError(
            f"{cls.__module__}.{cls.__name__}: no description for "
            f"{', '.join(missing)}: write a docstring under each field"
        )
    return out


def _md(text: str) -> str:
    """reStructuredText-flavoured docstring text as Markdown."""
    text = _rst_tables(inspect.cleandoc(text))
    text = re.sub(r":(?:class|func|data|mod|meth|attr):`~?(?:[\w.]*\.)?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


_BORDER = re.compile(r"^=+(?: +=+)+$")


def _rst_tables(text: str) -> str:
    """Simple reStructuredText tables (``====  ====`` borders) as Markdown tables."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        borders = [j for j in range(i, len(lines)) if _BORDER.match(lines[j])][:3]
        if not borders or borders[0] != i or len(borders) < 3:
            out.append(lines[i])
            i += 1
            continue
        top, middle, bottom = borders
        starts = [m.start() for m in re.finditer(r"=+", lines[top])]
        ends = [*starts[1:], None]

        head = [_cells(line, starts, ends) for line in lines[top + 1 : middle] if line.strip()]
        rows = [_cells(line, starts, ends) for line in lines[middle + 1 : bottom] if line.strip()]
        out.append("| " + " | ".join(head[0]) + " |")
        out.append("|" + "---|" * len(starts))
        out.extend("| " + " | ".join(row) + " |" for row in rows)
        i = bottom + 1
    return "\n".join(out)


def _cells(line: str, starts: list[int], ends: list) -> list[str]:
    return [line[a:b].strip().replace("|", "\\|") for a, b in zip(starts, ends, strict=True)]


def _first_paragraph(doc: str) -> str:
    return inspect.cleandoc(doc).split("\n\n", 1)[0]


def _plain_text(doc: str) -> str:
    """A docstring as one paragraph for the JSON Schema's ``description``."""
    return " ".join(_md(doc).split())


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


# --- the page ---------------------------------------------------------------------------


def _section_title(path: str) -> str:
    return f"`{path}`" if path else "the top level"


def _slug(path: str) -> str:
    """The anchor GitHub gives the heading of the section at ``path``."""
    title = _section_title(path) if path else "The top level"
    text = title.lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _sections() -> list[tuple[str, type]]:
    """The scenario's sections in reading order: (path, spec class)."""
    out: list[tuple[str, type]] = []
    seen: set[int] = set()

    def visit(cls: type, path: str) -> None:
        if id(cls) in seen:
            return
        seen.add(id(cls))
        out.append((path, cls))
        hints = typing.get_type_hints(cls, include_extras=True)
        for name in cls.__pydantic_fields__:
            for found, suffix in _specs_in(hints[name]):
                visit(found, f"{path}.{name}{suffix}" if path else f"{name}{suffix}")

    visit(_scen.Scenario, "")
    return out


def _specs_in(tp: Any, suffix: str = "") -> list[tuple[type, str]]:
    """Spec classes inside an annotation (not those of distributions and faults), each
    with the path suffix that reaches it (``[]`` for a list item, ``.KEY`` for a value)."""
    if typing.get_origin(tp) is Annotated:
        if any(
            tp.__origin__ is a.__origin__
            and list(tp.__metadata__[: len(a.__metadata__)]) == list(a.__metadata__)
            for a in (_dists.Distribution, _faults.Fault)
        ):
            return []
        return _specs_in(tp.__origin__, suffix)
    if dataclasses.is_dataclass(tp):
        return [(tp, suffix)]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (tuple, list):
        return [f for a in args if a is not Ellipsis for f in _specs_in(a, suffix + "[]")]
    if origin is dict:
        return _specs_in(args[1], suffix + ".KIND")
    return [f for a in args for f in _specs_in(a, suffix)]


def _table(walker: _Walker, cls: type) -> list[str]:
    docs = field_docs(cls)
    tag = _discriminator(cls)
    lines = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for name, info in cls.__pydantic_fields__.items():
        if name == tag:
            continue
        shape = walker.field_type(cls, name)
        default = _default_of(info)
        if default is _REQUIRED:
            shown = "required"
        elif default is None and shape.kind not in ("optional", "union", "any"):
            shown = "none"
        else:
            data = walker.default_data(default, shape)
            shown = "every field's default" if data is _OMIT else f"`{_flow(data)}`"
        key = info.alias or name
        lines.append(
            f"| `{key}` | {_cell(shape.text)} | {_cell(shown)} | {_cell(_md(docs[name]))} |"
        )
    return lines


def _flow(data: Any) -> str:
    """Plain data in YAML flow style, as a scenario file would write it."""
    if data is None:
        return "null"
    if data is True or data is False:
        return "true" if data else "false"
    if isinstance(data, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in data.items()) + "}"
    if isinstance(data, list | tuple):
        return "[" + ", ".join(_flow(v) for v in data) + "]"
    if isinstance(data, float):
        return _num(data) if math.isfinite(data) else repr(data)
    if isinstance(data, int):
        return str(data)
    text = str(data)
    if (
        not text
        or not re.fullmatch(r"[A-Za-z0-9_.:/\-]+", text)
        or text in ("null", "true", "false")
    ):
        return json.dumps(text)
    if re.fullmatch(r"[0-9.]+", text):  # a version such as "1" stays text
        return json.dumps(text)
    return text


def _value_types() -> list[str]:
    units = ", ".join(f"`{u}`" for u in _units._UNITS)
    bw = ", ".join(f"`{u}`" for u in _BANDWIDTH_UNITS)
    return [
        "## Value types",
        "",
        "* **duration**: a number of seconds (`2`, `0.5`) or text with a unit, one of "
        f"{units} (`m` and `min` are minutes): `250us`, `5ms`, `1.5s`, `2m`. Each field "
        f"states its range; none goes beyond {_num(_schema.MAX_DURATION_S)} s (about 31 "
        "years) either way.",
        "* **rate**: events per second: a number (`200`), or text `N/DURATION`, N events "
        "per that duration, where a bare unit means one of it: `200/s`, `5/ms` (5,000 per "
        "second), `20/1s`, `60/1m` (1 per second), `5/250ms` (20 per second); from "
        f"{_num(_schema.MIN_RATE)} to {_num(_schema.MAX_RATE)} per second.",
        "* **bandwidth**: bytes per second: a number, or text with a unit of bits per "
        f"second or bytes per second, one of {bw}: `100Mbps` is 12,500,000 bytes per "
        "second; at least 1bps (0.125 bytes per second).",
        '* **number**, **whole number**: a number; text that reads as a number (`"1e-3"`) '
        "counts as one, because YAML 1.1 reads `1e-3` as text. A whole number may be "
        "written `1e6`. `true` and `false` are never numbers.",
        "* **`true` or `false`**: only these (not `yes`, `on` or `1`).",
        "* **text**: a string; quote it in YAML when it could read as something else "
        '(`version: "1.0"`).',
        "* **[distribution](#distributions)**: a bare duration for a constant (`5ms`), or a "
        "mapping with `dist` naming its kind.",
        "",
    ]


def _file_format() -> list[str]:
    limits = _scen.LIMITS
    return [
        "## File format",
        "",
        "A scenario is one YAML mapping, or a JSON object in a file whose name ends "
        "`.json`, with the same structure. Every section and field has a default, so `{}` "
        "is a valid scenario; a field not listed here is an error. Files hold plain data "
        "only: mappings with text keys, lists, text, numbers, `true`/`false` and `null` "
        "(YAML anchors and aliases of those work, and `<<` merges). capsim refuses, naming "
        "the line: a key given twice in one mapping; YAML tags (`!!python/object`, `!!set`, "
        "`!!binary`) and dates; JSON's non-numbers (`NaN`, `Infinity`); nesting deeper "
        f"than {limits['yaml_depth']} levels; more than {limits['yaml_values']:,} values "
        "(counting each use of an alias); files over "
        f"{limits['file_bytes'] >> 20} MiB. In a JSON file `1e3` is the number 1000.",
        "",
        "`capsim validate FILE` checks a file without running it, and any field can be "
        "overridden on the command line: `capsim run FILE --set workload.rate=50/s --set "
        "'faults[0].at=2s'`. `capsim schema` prints this schema as a JSON Schema for "
        "editors; it checks types, units, bounds and unknown fields, while the loader also "
        "checks rules between fields (`high` not below `low`, a zone a fault names exists).",
        "",
    ]


def markdown() -> str:
    """The scenario reference (``scenarios/README.md``), as Markdown."""
    sections = _sections()
    anchors = {cls: path for path, cls in sections}
    walker = _Walker(anchors)
    lines = [
        "# Scenario file reference",
        "",
        "<!-- Generated from the schema (capsim/scenario.py, capsim/faults.py,",
        f"     capsim/distributions.py) by `{REGENERATE}`;",
        "     edit the docstrings there, not this file. -->",
        "",
        "Every section and field of a scenario file: its type and unit, bounds, default "
        "and meaning. The scenarios in this folder are commented examples; the main "
        "[README](../README.md) tells their stories.",
        "",
    ]
    lines += _file_format()
    lines += _value_types()
    for path, cls in sections:
        title = "The top level" if not path else _section_title(path)
        lines += [f"## {title}", "", _md(cls.__doc__ or ""), ""]
        lines += _table(walker, cls)
        lines.append("")
    lines += ["## Faults", "", _md(_faults.__doc__ or ""), ""]
    lines += [
        "Each entry of `faults` is a mapping whose `kind` says which fault it is:",
        "",
    ]
    for kind, cls in _faults.FAULTS.items():
        lines += [f"### `kind: {kind}`", "", _md(cls.__doc__ or ""), ""]
        lines += _table(walker, cls)
        lines.append("")
    lines += ["## Distributions", "", _md(_dists.__doc__ or ""), ""]
    lines += [
        "Wherever a field takes a distribution it takes a bare duration (a constant) or a "
        "mapping whose `dist` says which one it is:",
        "",
    ]
    for name, cls in _dists.DISTRIBUTIONS.items():
        lines += [f"### `dist: {name}`", "", _md(cls.__doc__ or ""), ""]
        lines += _table(walker, cls)
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def json_schema() -> dict:
    """The scenario file's JSON Schema (draft 2020-12), for editors and checkers."""
    anchors = {cls: path for path, cls in _sections()}
    walker = _Walker(anchors)
    walker.walk(_scen.Scenario, "Scenario")
    dist_refs = [{"$ref": f"#/$defs/{cls.__name__}"} for cls in _dists.DISTRIBUTIONS.values()]
    for cls in _dists.DISTRIBUTIONS.values():
        walker.walk(cls, cls.__name__)
    for cls in _faults.FAULTS.values():
        walker.walk(cls, cls.__name__)
    walker.defs["Distribution"] = {
        "description": "A bare duration (a constant), or a mapping whose `dist` names the "
        "distribution.",
        "anyOf": [
            {
                "anyOf": [
                    {"type": "number", "minimum": 0, "maximum": _schema.MAX_DURATION_S},
                    {"type": "string", "pattern": _duration_pattern("non-negative")},
                ]
            },
            {"type": "object", "required": ["dist"], "oneOf": dist_refs},
        ],
    }
    for cls in _dists.DISTRIBUTIONS.values():
        weighted = json.loads(json.dumps(walker.defs[cls.__name__]))
        weighted["title"] = f"Weighted{cls.__name__}"
        weighted["properties"] = {
            "weight": {
                "type": "number",
                "exclusiveMinimum": 0,
                "description": "The chance of this component, over 0; the weights add up to 1.",
            },
            **weighted["properties"],
        }
        weighted["required"] = ["weight", *weighted.get("required", [])]
        walker.defs[f"Weighted{cls.__name__}"] = weighted
    walker.defs["Fault"] = {
        "description": "One fault: a mapping whose `kind` names it.",
        "type": "object",
        "required": ["kind"],
        "oneOf": [{"$ref": f"#/$defs/{cls.__name__}"} for cls in _faults.FAULTS.values()],
    }
    # The top level is the Scenario mapping itself rather than a $ref to it: draft-07
    # readers ignore a $ref's siblings.
    root = walker.defs.pop("Scenario")
    root.pop("title", None)
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "capsim scenario",
        **root,
        "$defs": walker.defs,
    }


def render_json_schema() -> str:
    """:func:`json_schema` as the text ``capsim schema`` prints."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
