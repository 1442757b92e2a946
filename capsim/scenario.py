"""The scenario file: schema, loading and checking, before anything runs.

A scenario is YAML (a mapping) validated into a frozen :class:`Scenario`. Every section
has defaults, so the smallest valid file is ``{}``; ``capsim run --out`` writes
``scenario.resolved.yaml`` with every default filled in, which loads back to the same
scenario. Durations take units (``5ms``, ``2s``); plain numbers are seconds. Errors name
the file and the field (``workload.rate: must be greater than zero, got -3.0``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from capsim.distributions import DISTRIBUTIONS, Constant, Distribution
from capsim.errors import ScenarioError
from capsim.faults import FAULTS, ROLE_TARGETS, Fault, RollingUpgrade, ZoneOutage
from capsim.schema import (
    NonNegativeDuration,
    PositiveDuration,
    PositiveRate,
    Probability,
    spec,
    to_data,
)

__all__ = [
    "Scenario",
    "Image",
    "ClusterSpec",
    "LatencySpec",
    "KindLatency",
    "NetworkSpec",
    "PolicySpec",
    "ClientGroup",
    "RetrySpec",
    "WorkloadSpec",
    "CheckSpec",
    "DiskSpec",
    "load_scenario",
    "parse_scenario",
    "dump_scenario",
    "container_ids",
]

Name = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")]


def _parse_bandwidth(value: Any) -> Any:
    """Bytes per second from a number or ``"100Mbps"`` (bits) or ``"10MB/s"`` (bytes)."""
    if isinstance(value, str):
        text = value.strip()
        number = text.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ/")
        unit = text[len(number) :].strip()
        try:
            amount = float(number)
        except ValueError:
            raise ValueError(
                f"expected a bandwidth such as '100Mbps' or '10MB/s', got {value!r}"
            ) from None
        if unit.endswith("bps"):
            factor = {"bps": 1 / 8, "kbps": 1e3 / 8, "Mbps": 1e6 / 8, "Gbps": 1e9 / 8}.get(unit)
        else:
            factor = {"": 1.0, "B/s": 1.0, "KB/s": 1e3, "kB/s": 1e3, "MB/s": 1e6, "GB/s": 1e9}.get(
                unit
            )
        if factor is None:
            raise ValueError(
                f"unknown bandwidth unit {unit!r}; "
                "use bps, kbps, Mbps, Gbps, B/s, KB/s, MB/s or GB/s"
            )
        return amount * factor
    return value


def _positive_bandwidth(value: float) -> float:
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"must be a positive, finite bandwidth, got {value!r}")
    return value


Bandwidth = Annotated[float, BeforeValidator(_parse_bandwidth), AfterValidator(_positive_bandwidth)]
PositiveInt = Annotated[int, Field(ge=1)]


@spec
class Image:
    """A container image: ``name`` and ``version``, the time a container takes to start
    from it, and policy parameters that this version overrides (for mixed-version
    clusters during a rolling upgrade)."""

    name: Name
    version: Name = "1"
    startup: NonNegativeDuration = 1.0
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


@spec
class DiskSpec:
    """Each container's disk.

    A write to a replica's durable state is durable once a sync covering it completes;
    a sync takes ``sync`` (a distribution; zero by default, which makes every write durable
    at once). A crash loses writes not yet synced. The OS also writes everything back
    every ``writeback`` seconds. A disk that ``lies`` acknowledges a sync without making
    anything durable, so only writeback saves data, as some disks and virtual disks do.
    """

    sync: Distribution = Field(default_factory=lambda: Constant(value=0.0))
    lies: bool = False
    writeback: PositiveDuration = 5.0


@spec
class ClusterSpec:
    """Containers ``n1..nN`` started from ``image`` and spread over ``zones``.

    ``placement`` maps a container id to its zone; containers it does not name are placed
    round-robin over the zones in order (n1 in the first zone, n2 in the second, ...).
    The key space is split into ``shards`` shards, each replicated on
    ``replication_factor`` distinct containers (default: every container).

    Each container handles messages one at a time, each taking ``service_time`` (a
    distribution, zero by default): load raises latency and overload builds a queue.
    ``disk`` models syncs (see :class:`DiskSpec`).
    """

    containers: PositiveInt = 5
    zones: Annotated[tuple[Name, ...], Field(min_length=1)] = ("a", "b", "c")
    placement: dict[str, Name] = Field(default_factory=dict)
    image: str | None = None
    shards: PositiveInt = 1
    replication_factor: PositiveInt | None = None
    vnodes: PositiveInt = 64
    service_time: Distribution = Field(default_factory=lambda: Constant(value=0.0))
    disk: DiskSpec = Field(default_factory=DiskSpec)

    @field_validator("zones")
    @classmethod
    def _distinct_zones(cls, zones: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(zones)) != len(zones):
            raise ValueError(f"zone names must be distinct, got {list(zones)}")
        return zones

    @model_validator(mode="after")
    def _consistent(self):
        ids = container_ids(self.containers)
        for cid, zone in self.placement.items():
            if cid not in ids:
                raise ValueError(f"placement names unknown container {cid!r}")
            if zone not in self.zones:
                raise ValueError(f"placement puts {cid} in unknown zone {zone!r}")
        if self.replication_factor is not None and self.replication_factor > self.containers:
            raise ValueError(
                f"replication_factor {self.replication_factor} exceeds the "
                f"{self.containers} containers"
            )
        return self

    @property
    def rf(self) -> int:
        """The replication factor in force."""
        return self.replication_factor or self.containers

    def zone_of(self) -> dict[str, str]:
        """Container id -> zone, placement first, then round-robin."""
        out = {}
        for i, cid in enumerate(container_ids(self.containers)):
            out[cid] = self.placement.get(cid, self.zones[i % len(self.zones)])
        return out


def container_ids(count: int) -> list[str]:
    """The container ids of a cluster of ``count``: ``n1`` to ``n<count>``."""
    return [f"n{i}" for i in range(1, count + 1)]


@spec
class KindLatency:
    """One-way latency of one message kind, by link class."""

    same_zone: Distribution | None = None
    cross_zone: Distribution | None = None


def _kind_shorthand(value: Any) -> Any:
    """``kinds: {write: 5ms}`` sets both link classes of a kind at once."""
    if isinstance(value, dict):
        out = {}
        for kind, spec_ in value.items():
            by_class = isinstance(spec_, KindLatency) or (
                isinstance(spec_, dict) and {"same_zone", "cross_zone"} & set(spec_)
            )
            out[kind] = spec_ if by_class else {"same_zone": spec_, "cross_zone": spec_}
        return out
    return value


@spec
class LatencySpec:
    """One-way message latency: by link class, overridden per message kind.

    ``client`` is the client leg (client to its entry container and back); it is zero by
    default, because latency there hides anomalies rather than revealing them.
    """

    same_zone: Distribution = Field(
        default_factory=lambda: TypeAdapter(Distribution).validate_python(
            {"dist": "exponential", "mean": 0.0005}
        )
    )
    cross_zone: Distribution = Field(
        default_factory=lambda: TypeAdapter(Distribution).validate_python(
            {"dist": "lognormal", "median": 0.002, "sigma": 0.3}
        )
    )
    client: Distribution = Field(default_factory=lambda: Constant(value=0.0))
    kinds: Annotated[dict[Name, KindLatency], Field(default_factory=dict)] = Field(
        default_factory=dict
    )

    @field_validator("kinds", mode="before")
    @classmethod
    def _kinds(cls, value: Any) -> Any:
        return _kind_shorthand(value)


@spec
class NetworkSpec:
    """Latency, loss and duplication of the network between containers.

    ``loss`` and ``duplicate`` are per-message probabilities. With ``fifo`` every ordered
    pair of containers is a FIFO channel (as over TCP): a message never overtakes an
    earlier one on the same pair; otherwise reordering follows from latency variance.
    With ``bandwidth`` (bytes per second, or ``"100Mbps"``, ``"10MB/s"``) each ordered
    pair transmits one message at a time, ``message_bytes`` (per kind:
    ``message_bytes_by_kind``) taking ``bytes / bandwidth`` seconds before its latency.
    """

    latency: LatencySpec = Field(default_factory=LatencySpec)
    loss: Probability = 0.0
    duplicate: Probability = 0.0
    fifo: bool = False
    bandwidth: Bandwidth | None = None
    message_bytes: Annotated[int, Field(ge=1)] = 200
    message_bytes_by_kind: dict[Name, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)


@spec
class PolicySpec:
    """The replication policy: a built-in name or ``module:Class``, and its parameters.

    A ``module:Class`` is imported with ``path`` (default: the scenario file's folder)
    first on the import path.
    """

    name: Annotated[str, Field(min_length=1)] = "single-primary"
    params: dict[str, Any] = Field(default_factory=dict)
    path: str | None = None


@spec
class ClientGroup:
    """``count`` clients in ``zone``, attached to ``home`` (default: round-robin over the
    zone's containers)."""

    zone: Name
    count: PositiveInt = 1
    home: str | None = None


@spec
class RetrySpec:
    """Retries of an operation after a definite failure, within its ``timeout``.

    The n-th retry waits ``backoff * multiplier ** (n - 1)``, at most ``max_backoff``. A
    retry carries the same request id, so a policy can apply a retried write once.
    """

    attempts: Annotated[int, Field(ge=0)] = 0
    backoff: NonNegativeDuration = 0.01
    multiplier: Annotated[float, Field(ge=1.0)] = 2.0
    max_backoff: NonNegativeDuration = 1.0


@spec
class WorkloadSpec:
    """The client workload.

    ``kind``: ``register`` (read, write, cas) or ``set`` (add an element, read the set).
    ``mode``: ``open`` (each client invokes at Poisson ``rate`` per second, using as many
    logical processes as it needs) or ``closed`` (each client runs ``processes`` logical
    processes, each invoking, waiting for the outcome, then thinking for ``think_time``).
    Of all operations, ``read_fraction`` are reads and (register) ``cas_fraction`` are
    compare-and-set; the rest are writes or adds. Keys ``k0..k<keys-1>`` are chosen
    ``uniform`` or ``zipf`` (P(key i) proportional to ``1 / (i + 1) ** zipf_s``). An
    operation unanswered after ``timeout`` is indeterminate (``info``), never failed.
    """

    kind: Literal["register", "set"] = "register"
    mode: Literal["open", "closed"] = "open"
    rate: PositiveRate = 20.0
    processes: PositiveInt = 1
    think_time: NonNegativeDuration = 0.0
    read_fraction: Probability = 0.5
    cas_fraction: Probability = 0.0
    keys: PositiveInt = 10
    key_distribution: Literal["uniform", "zipf"] = "uniform"
    zipf_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    timeout: PositiveDuration = 1.0
    retries: RetrySpec = Field(default_factory=RetrySpec)
    clients_per_zone: Annotated[int, Field(ge=0)] = 2
    clients: tuple[ClientGroup, ...] | None = None
    start: NonNegativeDuration = 0.0

    @model_validator(mode="after")
    def _fractions(self):
        if self.kind == "set" and self.cas_fraction:
            raise ValueError("the set workload has no cas: cas_fraction must be 0")
        if self.read_fraction + self.cas_fraction > 1.0 + 1e-12:
            raise ValueError(
                f"read_fraction + cas_fraction must not exceed 1, got "
                f"{self.read_fraction} + {self.cas_fraction}"
            )
        return self


@spec
class CheckSpec:
    """The linearizability check at the end of a run: on unless ``linearizable: false``,
    skipped above ``max_ops`` operations, given up (``unknown``) after ``max_steps``
    search steps (a count, so the answer does not depend on the machine)."""

    linearizable: bool = True
    max_ops: PositiveInt = 100_000
    max_steps: PositiveInt = 5_000_000


@spec
class Scenario:
    """A whole scenario: cluster, network, policy, workload and fault schedule.

    The run lasts ``duration`` of simulated time; then the final phase heals every fault,
    waits ``settle`` and reads every key from every container (unless ``final_reads`` is
    false).
    """

    name: str = "scenario"
    description: str = ""
    seed: Annotated[int, Field(ge=0)] = 0
    duration: PositiveDuration = 30.0
    settle: NonNegativeDuration = 5.0
    final_reads: bool = True
    images: Annotated[tuple[Image, ...], Field(min_length=1)] = (Image(name="kvstore"),)
    cluster: ClusterSpec = Field(default_factory=ClusterSpec)
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    policy: PolicySpec = Field(default_factory=PolicySpec)
    workload: WorkloadSpec = Field(default_factory=WorkloadSpec)
    faults: tuple[Fault, ...] = ()
    check: CheckSpec = Field(default_factory=CheckSpec)

    def image(self, ref: str | None = None) -> Image:
        """The image named ``name:version`` (or ``name``: its first version); default: the
        cluster's image, else the first image."""
        ref = ref or self.cluster.image
        if ref is None:
            return self.images[0]
        name, _, version = ref.partition(":")
        for image in self.images:
            if image.name == name and (not version or image.version == version):
                return image
        raise KeyError(ref)


_SCENARIO = TypeAdapter(Scenario)


def parse_scenario(data: Any, *, source: str | None = None) -> Scenario:
    """Validate plain data (as read from YAML) into a :class:`Scenario`.

    Raises :class:`ScenarioError` naming ``source`` and the first offending field.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(
            f"a scenario must be a mapping of sections, got {type(data).__name__}",
            source=source,
        )
    try:
        scenario = _SCENARIO.validate_python(data)
    except ValidationError as exc:
        raise _first_error(exc, data, source) from None
    check_references(scenario, source=source)
    return scenario


def load_scenario(path: str | os.PathLike | dict, *, base_dir: str | None = None) -> Scenario:
    """Load and check a scenario from a YAML file (or from a dict already parsed).

    A ``module:Class`` policy without ``policy.path`` is resolved relative to the file's
    folder (or ``base_dir``), so the returned scenario records that folder as an absolute
    path and replays from anywhere.
    """
    if isinstance(path, dict):
        data, source = path, None
        folder = Path(base_dir or ".").resolve()
    else:
        source = os.fspath(path)
        try:
            text = Path(source).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ScenarioError("no such file", source=source) from None
        except IsADirectoryError:
            raise ScenarioError("is a folder, not a scenario file", source=source) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ScenarioError(f"cannot read: {exc}", source=source) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ScenarioError(f"{where}not valid YAML ({problem})", source=source) from None
        folder = Path(base_dir).resolve() if base_dir else Path(source).resolve().parent
    scenario = parse_scenario(data, source=source)
    if ":" in scenario.policy.name:
        path_ = scenario.policy.path
        resolved = str((folder / path_).resolve()) if path_ else str(folder)
        import dataclasses

        scenario = dataclasses.replace(
            scenario, policy=dataclasses.replace(scenario.policy, path=resolved)
        )
    return scenario


def dump_scenario(scenario: Scenario) -> str:
    """The scenario as YAML with every default filled in (durations in seconds)."""
    return yaml.safe_dump(to_data(scenario), sort_keys=False, default_flow_style=None)


def check_references(scenario: Scenario, *, source: str | None = None) -> None:
    """Check names that refer to other parts of the scenario (zones, containers, images)."""
    cluster = scenario.cluster
    ids = container_ids(cluster.containers)
    zone_of = cluster.zone_of()

    def fail(field: str, message: str) -> None:
        raise ScenarioError(message, field=field, source=source)

    clash = set(cluster.zones) & (set(ids) | set(ROLE_TARGETS) | {"random"})
    if clash:
        fail("cluster.zones", f"zone name {sorted(clash)[0]!r} is also a container id or role")
    refs = {}
    for i, image in enumerate(scenario.images):
        if image.ref in refs:
            fail(f"images[{i}]", f"image {image.ref} is listed twice")
        refs[image.ref] = image
    if cluster.image is not None:
        try:
            scenario.image(cluster.image)
        except KeyError:
            fail("cluster.image", f"unknown image {cluster.image!r}; images: {sorted(refs)}")
    workload = scenario.workload
    for i, group in enumerate(workload.clients or ()):
        if group.zone not in cluster.zones:
            fail(f"workload.clients[{i}].zone", f"unknown zone {group.zone!r}")
        if group.home is not None and group.home not in ids:
            fail(f"workload.clients[{i}].home", f"unknown container {group.home!r}")
        if group.home is None and group.zone not in zone_of.values():
            fail(
                f"workload.clients[{i}]",
                f"zone {group.zone!r} has no containers: give the clients a 'home'",
            )
    if workload.start >= scenario.duration:
        fail("workload.start", "the workload must start before the scenario's duration ends")
    known_targets = set(ids) | set(cluster.zones) | set(ROLE_TARGETS) | {"random"}
    for i, fault in enumerate(scenario.faults):
        targets = getattr(fault, "target", None)
        for target in (targets,) if isinstance(targets, str) else targets or ():
            if target not in known_targets:
                fail(
                    f"faults[{i}].target",
                    f"unknown container, zone or role {target!r} "
                    f"(containers {ids[0]}..{ids[-1]}, zones {list(cluster.zones)}, "
                    f"roles {list(ROLE_TARGETS)} or 'random')",
                )
        for g, group in enumerate(getattr(fault, "groups", None) or ()):
            for member in group:
                if member not in ids and member not in cluster.zones:
                    fail(
                        f"faults[{i}].groups[{g}]",
                        f"unknown container or zone {member!r}",
                    )
        if isinstance(fault, ZoneOutage) and fault.zone not in cluster.zones:
            fail(f"faults[{i}].zone", f"unknown zone {fault.zone!r}; zones: {list(cluster.zones)}")
        if isinstance(fault, RollingUpgrade):
            try:
                scenario.image(fault.image)
            except KeyError:
                fail(f"faults[{i}].image", f"unknown image {fault.image!r}; images: {sorted(refs)}")
        shard = getattr(fault, "shard", 0)
        if shard >= cluster.shards:
            fail(f"faults[{i}].shard", f"shard {shard} does not exist ({cluster.shards} shards)")
        if fault.at > scenario.duration:
            fail(
                f"faults[{i}].at",
                f"at {fault.at:g}s is after the scenario's duration ({scenario.duration:g}s)",
            )


def _first_error(exc: ValidationError, data: Any, source: str | None) -> ScenarioError:
    """One clear line from pydantic's report: the field path as written in the file."""
    errors = exc.errors(include_url=False)
    error = errors[0]
    field = _field_path(error["loc"], data)
    message = _message(error)
    more = len(errors) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ScenarioError(message, field=field or None, source=source)


def _field_path(loc: tuple, data: Any) -> str:
    """Render a pydantic location against the raw data, skipping union tags and wrappers."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int) and isinstance(node, list | tuple) and item < len(node):
            parts.append(f"[{item}]")
            node = node[item]
        elif isinstance(node, dict) and item in node:
            parts.append(f".{item}" if parts else str(item))
            node = node[item]
        elif isinstance(item, str) and not isinstance(node, dict | list | tuple):
            continue
        elif (
            isinstance(node, dict)
            and isinstance(item, str)
            and _is_field_name(item)
            and item not in _TAGS
        ):
            # A missing or unknown field is named even though the data lacks it.
            parts.append(f".{item}" if parts else item)
            node = None
    return "".join(parts)


def _is_field_name(item: str) -> bool:
    return "[" not in item and "(" not in item and "-" not in item.split(".")[-1][:1]


def _message(error: dict) -> str:
    kind = error["type"]
    msg = error["msg"]
    if kind == "extra_forbidden" or kind == "unexpected_keyword_argument":
        return "unknown field"
    if kind == "missing" or kind == "missing_keyword_argument":
        return "required field is missing"
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        return (
            f"unknown {ctx.get('discriminator', 'kind').strip(chr(39))} "
            f"{ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
        )
    if kind == "union_tag_not_found":
        ctx = error.get("ctx", {})
        return f"needs a '{ctx.get('discriminator', 'kind').strip(chr(39))}' field"
    if kind == "literal_error":
        return f"{msg}, got {error.get('input')!r}"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if msg.startswith("Assertion failed, "):
        msg = msg[len("Assertion failed, ") :]
    value = error.get("input")
    if "got" not in msg and isinstance(value, str | int | float | bool | None):
        msg = f"{msg}, got {value!r}"
    return msg


_TAGS = set(DISTRIBUTIONS) | set(FAULTS)
