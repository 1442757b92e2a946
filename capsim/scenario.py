"""The scenario file: schema, loading and checking, before anything runs.

A scenario is YAML or JSON (a mapping) validated into a frozen :class:`Scenario`. Every section
has defaults, so the smallest valid file is ``{}``; ``capsim run --out`` writes
``scenario.resolved.yaml`` with every default filled in, which loads back to the same
scenario. Durations take units (``5ms``, ``2s``); plain numbers are seconds. Errors name
the file and the field (``workload.rate: must be greater than zero, got -3.0``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Sequence
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

from capsim.analytic.profiles import PROFILES, kinds_data
from capsim.distributions import DISTRIBUTIONS, Constant, Distribution
from capsim.errors import ScenarioError
from capsim.faults import (
    FAULTS,
    ROLE_TARGETS,
    ClockSkew,
    Fault,
    Partition,
    RandomFaults,
    RollingUpgrade,
    Scale,
    ZoneOutage,
)
from capsim.schema import (
    FiniteFloat,
    NonNegativeDuration,
    PositiveDuration,
    PositiveRate,
    Probability,
    StrictBool,
    WholeNumber,
    decode_error,
    echo,
    read_input,
    spec,
    to_data,
    validation_message,
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
    "ScriptOp",
    "RetrySpec",
    "WorkloadSpec",
    "CheckSpec",
    "DiskSpec",
    "RestartSpec",
    "AutoscaleSpec",
    "SweepSpec",
    "TrafficSpec",
    "load_scenario",
    "read_yaml",
    "read_json",
    "parse_scenario",
    "dump_scenario",
    "container_ids",
    "is_container_id",
    "LIMITS",
]

#: Hard upper bounds of counts and sizes. A value above one can only be a mistake, and each
#: keeps validating a file, and building its simulation, within reach of one machine.
LIMITS = {
    "file_bytes": 16 << 20,  # a scenario file; real ones are a few kilobytes
    "yaml_depth": 100,  # nesting of mappings and lists
    "yaml_values": 500_000,  # values in the file, counting each use of an alias
    "containers": 100_000,
    "zones": 10_000,
    "shards": 100_000,
    "vnodes": 4096,
    "keys": 10_000_000,
    "clients": 100_000,  # in all, and in one group or zone
    "processes": 10_000,  # closed-loop processes per client
    "images": 1000,
    "faults": 10_000,
    "retry_attempts": 100,
    "retry_multiplier": 100.0,
    "message_bytes": 1 << 30,
    "max_ops": 1_000_000_000,
    "max_steps": 10**12,
    "seed": 2**64 - 1,
    "zipf_s": 100.0,
    "clock_rate": 100.0,  # a skewed clock runs between 1/100 and 100 times true speed
}

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-]+$")]


def _count(low: int, high: int) -> Any:
    """A whole number in ``[low, high]`` (never a boolean)."""
    return Annotated[WholeNumber, Field(ge=low, le=high)]


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {echo(value)}")
    return value


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
                f"expected a bandwidth such as '100Mbps' or '10MB/s', got {echo(value)}"
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
    if value < 0.125:
        raise ValueError(f"must be at least 1bps (0.125 bytes per second), got {value!r}")
    return value


Bandwidth = Annotated[
    float,
    BeforeValidator(_parse_bandwidth),
    BeforeValidator(lambda v: v if isinstance(v, str) else _number(v)),
    AfterValidator(_positive_bandwidth),
]


@spec
class Image:
    """A container image: ``name`` and ``version``, the time a container takes to start
    from it, and policy parameters that this version overrides (for mixed-version
    clusters during a rolling upgrade)."""

    name: Name
    """The image's name; ``cluster.image`` and an upgrade's ``image`` name an image as
    ``name:version``."""
    version: Name = "1"
    """The image's version: text, so quote it in YAML (``"1.0"``), where 1.0 would read as a number.
    """
    startup: NonNegativeDuration = 1.0
    """How long a container takes to start from this image (at boot, after a crash or a restart,
    during an upgrade) before it is ready."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Policy parameters this version sets over ``policy.params``, for the containers running it: a
    mixed-version cluster runs while an upgrade is under way."""

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
    """How long one sync (an fsync) takes, a distribution. A write is durable once a sync issued
    after it completes; zero makes every write durable at once."""
    lies: StrictBool = False
    """A disk that acknowledges syncs without making anything durable, so that only the writeback
    saves data."""
    writeback: PositiveDuration = 5.0
    """How often the OS writes everything pending back to disk, synced or not."""


@spec
class RestartSpec:
    """What the container runtime does when a container stops on its own, as Docker's
    ``--restart`` and a Kubernetes pod's ``restartPolicy`` do.

    ``always`` starts it again whatever ended it; ``on-failure`` only after a failure (a
    ``crash``; a clean exit, the ``stop`` fault, is not one); ``never`` leaves it down (the
    default, Docker's ``no``). It applies to containers that crash or stop without a
    scheduled restart (a crash with a ``duration``, churn and zone outages bring their
    own). Attempts wait an exponential back-off: ``backoff`` before the first restart,
    doubling before each further one (Docker doubles from 100 ms, Kubernetes from 10 s),
    at most ``max_backoff`` (Kubernetes: 5 min); a container that ran ``reset_after``
    (Docker: 10 s; Kubernetes: 10 min) since it was last ready starts again from
    ``backoff``. A restarted container is ready after its image's start-up time, and is
    sent traffic once its replicas say they are ready (``Node.set_ready``).
    """

    policy: Literal["always", "on-failure", "never"] = "never"
    """``always``, ``on-failure`` or ``never``."""
    backoff: PositiveDuration = 1.0
    """The wait before the first restart after a container stops; each further consecutive restart
    waits twice as long as the one before."""
    max_backoff: PositiveDuration = 30.0
    """The longest wait before a restart."""
    reset_after: PositiveDuration = 10.0
    """How long a container must run, from ready, for its next restart to wait ``backoff`` again."""
    max_retries: _count(1, 1_000_000) | None = None
    """With ``on-failure``, how many consecutive restarts to attempt before giving up (Docker's
    ``on-failure:N``); ``null``: no limit."""

    @model_validator(mode="after")
    def _bounds(self):
        if self.max_backoff < self.backoff:
            raise ValueError(
                f"max_backoff ({self.max_backoff:g} s) must be at least "
                f"backoff ({self.backoff:g} s)"
            )
        if self.max_retries is not None and self.policy != "on-failure":
            raise ValueError("max_retries is for policy: on-failure (Docker's on-failure:N)")
        return self


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

    Bounds (:data:`LIMITS`): at most 100,000 containers, 10,000 zones, 100,000 shards and
    4096 vnodes; ``replication_factor`` at most ``containers``.
    """

    containers: _count(1, LIMITS["containers"]) = 5
    """How many containers; they are named ``n1`` to ``nN``."""
    zones: Annotated[tuple[Name, ...], Field(min_length=1, max_length=LIMITS["zones"])] = (
        "a",
        "b",
        "c",
    )
    """The availability zones, in order; containers are placed round-robin over them (``n1`` in the
    first) unless ``placement`` says otherwise."""
    placement: dict[str, Name] = Field(default_factory=dict)
    """A zone for each container named here (``{n1: b}``); the others are placed round-robin."""
    image: Annotated[str, Field(max_length=400)] | None = None
    """The image every container starts from: ``name:version``, or ``name`` for its first version;
    ``null`` means the first of ``images``."""
    container_images: dict[str, Annotated[str, Field(max_length=400)]] = Field(default_factory=dict)
    """An image for each container named here (``{n5: kvstore:1.1}``), so that versions run side
    by side from the start (a canary; A/B traffic); the others start from ``image``."""
    shards: _count(1, LIMITS["shards"]) = 1
    """How many shards the key space is split into, by consistent hashing."""
    replication_factor: _count(1, LIMITS["containers"]) | None = None
    """How many distinct containers hold each shard, spread over zones while unused zones remain;
    ``null`` means every container."""
    vnodes: _count(1, LIMITS["vnodes"]) = 64
    """Points each shard and each container owns on the consistent-hashing rings: more points spread
    keys and replicas more evenly."""
    service_time: Distribution = Field(default_factory=lambda: Constant(value=0.0))
    """How long a container takes to handle one message, a distribution. It handles one at a time,
    so load raises latency and overload builds a queue."""
    disk: DiskSpec = Field(default_factory=DiskSpec)
    """Each container's disk: sync time, writeback, and whether it lies."""
    restart: RestartSpec | None = None
    """The restart policy for containers that crash or stop without a scheduled restart; ``null``:
    they stay down (``never``)."""

    def _to_data(self) -> dict[str, Any]:
        data = {f.name: to_data(getattr(self, f.name)) for f in dataclasses.fields(self)}
        if self.restart is None:
            del data["restart"]  # a cluster without a restart policy reads as before
        return data

    @field_validator("zones")
    @classmethod
    def _distinct_zones(cls, zones: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(zones)) != len(zones):
            raise ValueError(f"zone names must be distinct, got {list(zones)}")
        return zones

    @model_validator(mode="after")
    def _consistent(self):
        zones = set(self.zones)
        for cid, zone in self.placement.items():
            if not is_container_id(cid, self.containers):
                raise ValueError(
                    f"placement names unknown container {echo(cid)} "
                    f"(containers n1..n{self.containers})"
                )
            if zone not in zones:
                raise ValueError(f"placement puts {cid} in unknown zone {echo(zone)}")
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

    def zone_of_container(self, cid: str) -> str:
        """The zone of container ``cid`` (which must exist), without listing the others."""
        placed = self.placement.get(cid)
        return placed if placed is not None else self.zones[(int(cid[1:]) - 1) % len(self.zones)]

    def populated_zones(self) -> set[str]:
        """The zones that hold at least one container, in time O(zones + placement)."""
        count, zones = self.containers, self.zones
        # Round-robin gives zone j the containers of index i = j, j + Z, ... below count;
        # a placement takes a container away from its round-robin zone.
        taken: dict[int, int] = {}
        for cid in self.placement:
            j = (int(cid[1:]) - 1) % len(zones)
            taken[j] = taken.get(j, 0) + 1
        out = set(self.placement.values())
        for j, zone in enumerate(zones):
            slots = (count - j + len(zones) - 1) // len(zones) if j < count else 0
            if slots > taken.get(j, 0):
                out.add(zone)
        return out


def container_ids(count: int) -> list[str]:
    """The container ids of a cluster of ``count``: ``n1`` to ``n<count>``."""
    return [f"n{i}" for i in range(1, count + 1)]


_CONTAINER_ID = re.compile(r"n[1-9][0-9]{0,17}")


def is_container_id(name: Any, count: int) -> bool:
    """Whether ``name`` is a container id of a cluster of ``count`` (``n1``..``n<count>``),
    in constant time: validation never lists the containers."""
    return (
        isinstance(name, str)
        and _CONTAINER_ID.fullmatch(name) is not None
        and int(name[1:]) <= count
    )


@spec
class KindLatency:
    """One-way latency of one message kind, by link class."""

    same_zone: Distribution | None = None
    """This kind's latency within a zone; ``null`` keeps the link class's."""
    cross_zone: Distribution | None = None
    """This kind's latency across zones; ``null`` keeps the link class's."""


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


_KINDS = TypeAdapter(dict[str, KindLatency])


def _known_profile(name: str) -> str:
    if name not in PROFILES:
        raise ValueError(f"must be one of {', '.join(PROFILES)}")
    return name


def _with_profile(name: str, kinds: dict[str, KindLatency]) -> dict[str, KindLatency]:
    """Profile ``name``'s kinds under ``kinds``: a link class a given kind leaves unset
    keeps the profile's."""
    merged = dict(_KINDS.validate_python(kinds_data(name)))
    for kind, given in kinds.items():
        base = merged.get(kind)
        if base is not None:
            given = KindLatency(
                same_zone=base.same_zone if given.same_zone is None else given.same_zone,
                cross_zone=base.cross_zone if given.cross_zone is None else given.cross_zone,
            )
        merged[kind] = given
    return merged


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
    """One-way latency between two containers in the same zone."""
    cross_zone: Distribution = Field(
        default_factory=lambda: TypeAdapter(Distribution).validate_python(
            {"dist": "lognormal", "median": 0.002, "sigma": 0.3}
        )
    )
    """One-way latency between containers in different zones."""
    client: Distribution = Field(default_factory=lambda: Constant(value=0.0))
    """Latency of the client leg, a client to its home container and back."""
    profile: Annotated[str, AfterValidator(_known_profile)] | None = None
    """A latency profile of the PBS paper (``lnkd-ssd``, ``lnkd-disk``, ``ymmr``, ``wan``):
    the WARS legs on the message kinds ``write``, ``ack``, ``read`` and ``read_reply`` (the
    quorum policy's ``wars`` mode), ``wan`` adding 75 ms between zones; ``kinds`` given
    beside it override it, link class by link class."""
    kinds: Annotated[dict[Name, KindLatency], Field(default_factory=dict)] = Field(
        default_factory=dict
    )
    """Latency of a message kind (``write``, ``ack``, ``append``, ... as the policy names them),
    over the link class's: one distribution for both classes, or one per class."""

    @field_validator("kinds", mode="before")
    @classmethod
    def _kinds(cls, value: Any) -> Any:
        return _kind_shorthand(value)

    @model_validator(mode="after")
    def _profile(self):
        if self.profile is not None:
            # Spelled out in kinds, so that the network and a resolved dump see it whole.
            object.__setattr__(self, "kinds", _with_profile(self.profile, self.kinds))
        return self

    def _to_data(self) -> dict[str, Any]:
        data = {f.name: to_data(getattr(self, f.name)) for f in dataclasses.fields(self)}
        if self.profile is None:
            del data["profile"]  # a latency without a profile reads (and dumps) as before
        return data


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
    """One-way message latency, by link class and message kind."""
    loss: Probability = 0.0
    """The chance that a message between two containers is lost (a client and its home container are
    not on a link)."""
    duplicate: Probability = 0.0
    """The chance that a message between two nodes is delivered twice (a client's request never is).
    """
    fifo: StrictBool = False
    """Make each ordered pair of containers one FIFO channel, as a TCP connection is: no message
    overtakes an earlier one on the pair."""
    bandwidth: Bandwidth | None = None
    """Bytes per second of each ordered pair (``100Mbps``, ``10MB/s``), which then transmits one
    message at a time; ``null`` means unlimited."""
    message_bytes: _count(1, LIMITS["message_bytes"]) = 200
    """The size of a message in bytes, which ``bandwidth`` turns into transmission time."""
    message_bytes_by_kind: dict[Name, _count(1, LIMITS["message_bytes"])] = Field(
        default_factory=dict
    )
    """The size in bytes of each message kind named here, over ``message_bytes``."""


_POLICY_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,200}|[A-Za-z_][\w.]{0,199}:[A-Za-z_]\w{0,199}")


def _policy_name(name: str) -> str:
    if not _POLICY_NAME.fullmatch(name):
        raise ValueError(
            "expected a built-in policy's name or 'module:Class' (a dotted module path, "
            f"a colon, a class name), got {echo(name)}"
        )
    return name


def _seed(seed: int) -> int:
    if not 0 <= seed <= LIMITS["seed"]:
        raise ValueError(f"must be a whole number from 0 to 2**64 - 1, got {echo(seed)}")
    return seed


@spec
class PolicySpec:
    """The replication policy: a built-in name or ``module:Class``, and its parameters.

    A ``module:Class`` is imported with ``path`` (default: the scenario file's folder)
    first on the import path. ``name`` is a built-in's name or a dotted module path, a
    colon and a class name.
    """

    name: Annotated[str, AfterValidator(_policy_name)] = "single-primary"
    """A built-in policy (``single-primary``, ``primary-backup``, ``raft``, ``quorum``, ``chain``)
    or your own as ``module:Class``."""
    params: dict[str, Any] = Field(default_factory=dict)
    """The policy's parameters, which the policy documents and checks when the run is built."""
    path: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    """The folder a ``module:Class`` policy is imported from; ``null`` means the scenario file's
    folder."""


@spec
class ScriptOp:
    """One operation of a scripted workload (``workload: {kind: script, ops: [...]}``)."""

    at: NonNegativeDuration
    """When the operation is due; invoked then, or when its client's previous operation
    ends if that is later (a client has one operation open at a time)."""
    f: Literal["read", "write", "cas", "add"]
    """``read``, ``write``, ``cas`` (compare-and-set) or ``add`` (to a set); a script is
    either a register's (read, write, cas) or a set's (read, add)."""
    key: Name
    """The key (any name: ``k0``, ``x``, ...)."""
    value: Any = None
    """What to write or add (unique per key, so that a read names the write it saw);
    ``[expected, new]`` for a cas; nothing for a read."""
    client: _count(0, LIMITS["clients"]) = 0
    """Which client invokes it: an index into the scenario's clients (``c1`` is 0)."""


def _script_problem(ops: tuple[ScriptOp, ...]) -> str | None:
    """Why a script's operations cannot run, or None."""
    fs = {op.f for op in ops}
    if "add" in fs and fs & {"write", "cas"}:
        return "a script is a register's (read, write, cas) or a set's (read, add), not both"
    written: dict[str, set] = {}
    for i, op in enumerate(ops):
        where = f"ops[{i}]"
        value = op.value
        if op.f == "read":
            if value is not None:
                return f"{where}: a read takes no value"
            continue
        if op.f == "cas":
            if not isinstance(value, list | tuple) or len(value) != 2:
                return f"{where}: a cas takes [expected, new], got {echo(value)}"
            value = value[1]
        if value is None or isinstance(value, dict | list | tuple):
            return f"{where}: a {op.f} takes a number or text, got {echo(value)}"
        seen = written.setdefault(op.key, set())
        if value in seen:
            return (
                f"{where}: {op.key} is given {echo(value)} twice: written values must be "
                "unique per key, so that a read names the write it saw"
            )
        seen.add(value)
    return None


@spec
class ClientGroup:
    """``count`` clients in ``zone``, attached to ``home`` (default: round-robin over the
    zone's containers)."""

    zone: Name
    """The zone the clients live in."""
    count: _count(1, LIMITS["clients"]) = 1
    """How many clients."""
    home: Annotated[str, Field(max_length=200)] | None = None
    """The container the clients are attached to, their entry point; ``null`` means round-robin over
    the zone's containers."""


@spec
class RetrySpec:
    """Retries of an operation after a definite failure, within its ``timeout``.

    The n-th retry waits ``backoff * multiplier ** (n - 1)``, at most ``max_backoff``. A
    retry carries the same request id, so a policy can apply a retried write once.

    Bounds: ``attempts`` from 0 to 100; ``multiplier`` a finite number from 1 to 100;
    ``backoff`` and ``max_backoff`` durations from 0 (retry at once) to 1e9 s. Within
    them every wait is a finite number of seconds.
    """

    attempts: _count(0, LIMITS["retry_attempts"]) = 0
    """How many times an operation is retried after a definite failure (a timeout ends it instead).
    """
    backoff: NonNegativeDuration = 0.01
    """The wait before the first retry."""
    multiplier: Annotated[FiniteFloat, Field(ge=1.0, le=LIMITS["retry_multiplier"])] = 2.0
    """How many times longer each retry waits than the one before."""
    max_backoff: NonNegativeDuration = 1.0
    """The longest wait before a retry."""


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

    kind: Literal["register", "set", "script"] = "register"
    """``register``: reads, writes and compare-and-sets of one value per key; ``set``: adds to a
    growing set per key and reads of the whole set, so that lost writes can be counted;
    ``script``: exactly the operations listed in ``ops`` (a register's, or a set's if they
    add), as a shrunk counterexample replays them."""
    mode: Literal["open", "closed"] = "open"
    """``open``: each client invokes at Poisson ``rate``, however many operations are pending;
    ``closed``: each client runs ``processes``, each waiting for an outcome and then
    ``think_time``."""
    rate: PositiveRate = 20.0
    """Operations per second of each client in open mode, arriving as a Poisson process."""
    processes: _count(1, LIMITS["processes"]) = 1
    """Logical processes per client in closed mode."""
    think_time: NonNegativeDuration = 0.0
    """How long a closed-mode process waits after an outcome before its next operation."""
    read_fraction: Probability = 0.5
    """The fraction of operations that are reads."""
    cas_fraction: Probability = 0.0
    """The fraction of operations that are compare-and-sets (register only); the rest are writes or
    adds."""
    keys: _count(1, LIMITS["keys"]) = 10
    """How many keys: ``k0`` to ``k<keys - 1>``."""
    key_distribution: Literal["uniform", "zipf"] = "uniform"
    """How an operation's key is chosen: ``uniform``, or ``zipf`` (key i with probability
    proportional to 1 / (i + 1) ** zipf_s)."""
    zipf_s: Annotated[FiniteFloat, Field(gt=0, le=LIMITS["zipf_s"])] = 1.0
    """The Zipf exponent: larger is more skewed towards ``k0``."""
    timeout: PositiveDuration = 1.0
    """How long a client waits for an answer before the operation ends ``info`` (indeterminate: it
    may still take effect)."""
    retries: RetrySpec = Field(default_factory=RetrySpec)
    """Retries after definite failures."""
    clients_per_zone: _count(0, LIMITS["clients"]) = 2
    """Clients in each zone that holds containers, when ``clients`` is ``null``; their homes go
    round-robin over the zone's containers."""
    clients: Annotated[tuple[ClientGroup, ...], Field(max_length=LIMITS["clients"])] | None = None
    """Client groups (zone, count, home), instead of ``clients_per_zone``."""
    start: NonNegativeDuration = 0.0
    """When the clients begin invoking, in simulated time; before ``duration``."""
    ops: Annotated[tuple[ScriptOp, ...], Field(max_length=1_000_000)] = ()
    """With ``kind: script``: the operations, each ``{at, f, key, value, client}``."""

    @property
    def data_kind(self) -> str:
        """``register`` or ``set``: the data type the operations act on."""
        if self.kind == "script":
            return "set" if any(op.f == "add" for op in self.ops) else "register"
        return self.kind

    @model_validator(mode="after")
    def _fractions(self):
        if self.kind == "script":
            if not self.ops:
                raise ValueError("a script workload needs 'ops': at least one operation")
            problem = _script_problem(self.ops)
            if problem is not None:
                raise ValueError(problem)
        elif self.ops:
            raise ValueError("'ops' is for kind: script (this workload is generated)")
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

    linearizable: StrictBool = True
    """Check the history for linearizability at the end of the run."""
    max_ops: _count(1, LIMITS["max_ops"]) = 100_000
    """Skip the check (``skipped``) when the history holds more operations than this."""
    max_steps: _count(1, LIMITS["max_steps"]) = 5_000_000
    """Give up (``unknown``) after this many search steps: a count, so that the verdict does not
    depend on the machine."""


def _grid_path(path: str) -> str:
    from capsim.overrides import parse_path

    steps = parse_path(path, what="a sweep axis")
    if steps[0] in ("seed", "sweep"):
        raise ValueError(f"{path!r} cannot be swept (seeds are given by sweep.seeds)")
    return path


@spec
class TrafficSpec:
    """A/B traffic: ``split`` maps image refs (``name:version``) to the share of operations
    sent to containers running that version, adding up to 1; ``by: operation`` draws the
    version for each operation, ``by: client`` once for each client (a sticky session).
    An operation enters through a container of its version in its client's zone (else
    anywhere), which serves it or forwards it as the policy routes; a version no container
    runs falls back to the client's home container."""

    split: Annotated[dict[str, Probability], Field(min_length=1, max_length=100)]
    """Image ref -> share of operations: ``{kvstore:1.0: 0.9, kvstore:1.1: 0.1}``."""
    by: Literal["operation", "client"] = "operation"
    """Draw the version per operation, or once per client."""

    @model_validator(mode="after")
    def _weights(self):
        from math import fsum

        total = fsum(self.split.values())
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"the split's shares must add up to 1, got {total:g}")
        return self


@spec
class SweepSpec:
    """A grid of scenarios for ``capsim sweep``: every combination of the ``grid``'s values,
    each run with ``seeds`` seeds.

    ``grid`` maps a field path (as ``--set`` takes it: ``policy``, ``workload.rate``,
    ``faults[0].duration``) to the list of values it takes; a value may be a whole mapping
    (``policy: [{name: raft}, {name: quorum, params: {r: 1, w: 1}}]``). ``seeds`` is a
    count (the scenario's seed and the ones after it) or an explicit list.
    """

    grid: Annotated[
        dict[Annotated[str, AfterValidator(_grid_path)], Annotated[list[Any], Field(min_length=1)]],
        Field(max_length=32),
    ] = Field(default_factory=dict)
    """A field path (as ``--set`` takes it) for each axis, and the values it takes; every
    combination of values is one cell."""
    seeds: _count(1, 100_000) | Annotated[tuple[WholeNumber, ...], Field(min_length=1)] = 1
    """How many seeds each cell runs (the scenario's seed and the ones after it), or the list of
    seeds."""


@spec
class AutoscaleSpec:
    """Add or remove containers as load changes, as a Kubernetes HorizontalPodAutoscaler
    does.

    Every ``interval`` the autoscaler measures ``metric`` on each container in service and
    ready, averages it, and computes the HPA's desired count, ``ceil(containers * value /
    target)``, kept between ``min`` and ``max`` (no change while ``value / target`` is
    within ``tolerance`` of 1). It scales only once the desired count has stayed above (or
    below) the current one at every measurement for ``window``: up to the smallest, or down
    to the largest, desired count seen in that window, so a spike shorter than the window
    does nothing. It waits until the previous action is serving and ``cooldown`` has passed
    since it was requested. Containers are added and removed as a ``scale`` action does
    (removal chooses by the placement rule). ``queue_length``: messages waiting at the
    container (with ``cluster.service_time`` set); ``request_rate``: client requests that
    reached it per second over the last interval.
    """

    metric: Literal["queue_length", "request_rate"] = "request_rate"
    """What is measured per container: ``queue_length`` or ``request_rate``."""
    target: Annotated[FiniteFloat, Field(gt=0)]
    """The value per container to keep: more adds containers, less removes them."""
    min: _count(1, LIMITS["containers"]) = 1
    """The fewest containers the autoscaler leaves."""
    max: _count(1, LIMITS["containers"]) = 10
    """The most containers the autoscaler starts."""
    interval: PositiveDuration = 1.0
    """How often the metric is measured (the HPA's sync period, 15 s by default)."""
    window: NonNegativeDuration = 5.0
    """How long the desired count must stay above (below) the current one before scaling."""
    cooldown: NonNegativeDuration = 30.0
    """The least time between the requests of two scale actions."""
    tolerance: Annotated[FiniteFloat, Field(ge=0, lt=1)] = 0.1
    """No change while the metric is within this fraction of ``target`` (the HPA's 0.1)."""
    start: NonNegativeDuration = 0.0
    """When the autoscaler begins measuring, in simulated time."""
    image: Annotated[str, Field(max_length=400)] | None = None
    """The image added containers start from; ``null``: as a ``scale`` action chooses."""
    drain_timeout: PositiveDuration = 30.0
    """As a ``scale`` action's: how long a removed container may take to drain."""

    @model_validator(mode="after")
    def _range(self):
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must be at least min ({self.min})")
        return self


@spec
class Scenario:
    """A whole scenario: cluster, network, policy, workload and fault schedule.

    The run lasts ``duration`` of simulated time; then the final phase heals every fault,
    waits ``settle`` and reads every key through each container that holds a replica of
    its shard (unless ``final_reads`` is false).
    """

    name: Annotated[str, Field(max_length=1000)] = "scenario"
    """The scenario's name, shown in the summary."""
    description: str = ""
    """One line saying what the scenario shows."""
    seed: Annotated[WholeNumber, AfterValidator(_seed)] = 0
    """The default random seed (``capsim run --seed N`` overrides it): every random draw derives
    from it."""
    duration: PositiveDuration = 30.0
    """How long the main phase lasts, in simulated time; every fault starts within it, and the
    final phase ends those still in force."""
    settle: NonNegativeDuration = 5.0
    """How long the final phase waits, after healing every fault, before it reads every key."""
    final_reads: StrictBool = True
    """Read every key through each of its shard's replicas in the final phase, where durability and
    convergence are measured."""
    images: Annotated[tuple[Image, ...], Field(min_length=1, max_length=LIMITS["images"])] = (
        Image(name="kvstore"),
    )
    """The container images; the cluster starts from the first unless ``cluster.image`` names
    another."""
    cluster: ClusterSpec = Field(default_factory=ClusterSpec)
    """The containers, their zones, shards and disks."""
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    """Latency, loss, duplication, ordering and bandwidth of the links between containers."""
    policy: PolicySpec = Field(default_factory=PolicySpec)
    """The replication policy and its parameters."""
    workload: WorkloadSpec = Field(default_factory=WorkloadSpec)
    """The clients and the operations they invoke."""
    faults: Annotated[tuple[Fault, ...], Field(max_length=LIMITS["faults"])] = ()
    """The fault schedule: what goes wrong, and when (see Faults below)."""
    check: CheckSpec = Field(default_factory=CheckSpec)
    """The linearizability check of the history."""
    sweep: SweepSpec | None = None
    """A grid of variants for ``capsim sweep``; ``capsim run`` runs the scenario as written and
    ignores it."""
    traffic: TrafficSpec | None = None
    """A/B traffic: how clients' operations are split between image versions running side by
    side, each measured apart (``by_version`` in the summary)."""
    autoscale: AutoscaleSpec | None = None
    """Containers added and removed as a per-container metric moves, as a Kubernetes
    HorizontalPodAutoscaler does; ``null``: the cluster changes only by ``scale`` actions."""

    def _to_data(self) -> dict[str, Any]:
        data = {f.name: to_data(getattr(self, f.name)) for f in dataclasses.fields(self)}
        for optional in ("sweep", "traffic", "autoscale"):
            if data[optional] is None:
                del data[optional]  # absent reads (and replays) as before they existed
        return data

    def scales(self) -> bool:
        """Whether the cluster's containers can change during the run (scale actions or an
        autoscaler)."""
        return self.autoscale is not None or any(isinstance(f, Scale) for f in self.faults)

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
            f"a scenario must be a mapping of sections, got {_kind_of(data)}",
            source=source,
        )
    faults = data.get("faults")
    if isinstance(faults, list | tuple):
        for i, entry in enumerate(faults):
            if entry is None or entry == {}:
                raise ScenarioError(
                    "an empty fault: give at least its 'kind' and 'at'",
                    field=f"faults[{i}]",
                    source=source,
                )
    try:
        scenario = _SCENARIO.validate_python(data)
    except ValidationError as exc:
        raise _first_error(exc, data, source) from None
    except RecursionError:
        raise ScenarioError(
            f"nested too deeply (at most {LIMITS['yaml_depth']} levels)", source=source
        ) from None
    check_references(scenario, source=source)
    return scenario


def load_scenario(
    path: str | os.PathLike | dict,
    *,
    base_dir: str | None = None,
    overrides: Sequence[str | tuple[list, Any]] = (),
) -> Scenario:
    """Load and check a scenario from a YAML file, a JSON file (a name ending ``.json``,
    read by :func:`read_json`), or a dict already parsed.

    The file must hold plain data: mappings with text keys (each key once), lists, text,
    numbers, booleans and null; anchors and aliases are allowed, tags other than those of
    plain data (``!!set``, ``!!binary``, ``!!python/...``) and dates are not. At most 16
    MiB are read, nesting is at most 100 deep and the file may hold at most 500,000
    values, counting each use of an alias (see :data:`LIMITS`).

    A ``module:Class`` policy without ``policy.path`` is resolved relative to the file's
    folder (or ``base_dir``); the scenario records that folder as an absolute
    path and replays from anywhere.

    ``overrides`` are ``--set`` assignments (``"workload.rate=50/s"``, see
    :mod:`capsim.overrides`), applied to the data before it is checked.
    """
    if isinstance(path, dict):
        data, source = path, None
        folder = Path(base_dir or ".").resolve()
    else:
        source = os.fspath(path)

        def fail(message: str) -> ScenarioError:
            return ScenarioError(message, source=source)

        raw = read_input(source, limit=LIMITS["file_bytes"], fail=fail, what="scenario file")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise fail(decode_error(raw, exc)) from None
        reader = read_json if source.lower().endswith(".json") else read_yaml
        data = reader(text.removeprefix("\ufeff"), source=source)
        folder = Path(base_dir).resolve() if base_dir else Path(source).resolve().parent
    if overrides:
        from capsim.overrides import apply_overrides

        data = apply_overrides(data, overrides)
    scenario = parse_scenario(data, source=source)
    if ":" in scenario.policy.name:
        path_ = scenario.policy.path
        resolved = str((folder / path_).resolve()) if path_ else str(folder)
        scenario = dataclasses.replace(
            scenario, policy=dataclasses.replace(scenario.policy, path=resolved)
        )
    return scenario


def dump_scenario(scenario: Scenario) -> str:
    """The scenario as YAML with every default filled in (durations in seconds)."""
    return yaml.safe_dump(to_data(scenario), sort_keys=False, default_flow_style=None)


# --- YAML as plain data -----------------------------------------------------------------

_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_YAML + name for name in ("str", "int", "float", "bool", "null")}
_MAP_TAG = _YAML + "map"
_SEQ_TAG = _YAML + "seq"
_MERGE_TAG = _YAML + "merge"
_PLAIN_DATA = "a scenario holds plain data: mappings, lists, text, numbers, true/false, null"


def _tag_name(tag: str) -> str:
    return "!!" + tag[len(_YAML) :] if tag.startswith(_YAML) else tag


def _tag_problem(tag: str) -> str:
    if tag == _YAML + "set":
        return "a !!set is not allowed: its order is not fixed; write a list"
    if tag == _YAML + "timestamp":
        return "a date or time is not allowed here; quote it to make it text"
    if tag in (_YAML + "omap", _YAML + "pairs"):
        return f"{_tag_name(tag)} is not allowed; write a mapping"
    if tag == _MERGE_TAG:
        return "'<<' merges mappings and is only allowed as a key"
    return f"the tag {echo(_tag_name(tag))} is not allowed: {_PLAIN_DATA}"


class _Frame:
    """A mapping or list being built, with what validation needs to know about it."""

    __slots__ = ("value", "line", "anchor", "size", "height", "key", "key_line", "lines", "merge")

    def __init__(self, value: Any, line: int, anchor: str | None):
        self.value = value
        self.line = line
        self.anchor = anchor
        self.size = 1  # values inside, itself included, aliases expanded
        self.height = 1  # levels of nesting, itself included
        self.key: Any = _NO_KEY
        self.key_line = 0
        self.lines: dict[str, int] = {}  # key -> the line it was given on
        self.merge: list[dict] | None = None


_NO_KEY = object()
_MERGE_KEY = object()


def read_yaml(text: str, *, source: str | None = None) -> Any:
    """Read one YAML document as plain data, with the limits of :func:`load_scenario`.

    Raises :class:`ScenarioError` naming ``source`` and the line of the first problem:
    invalid YAML, a key given twice in one mapping, a key that is not text, a tag beyond
    plain data, nesting deeper than 100, more than 500,000 values (aliases counted at
    each use), or more than one document. Nothing in the file is ever executed.
    """
    depth_limit, value_limit = LIMITS["yaml_depth"], LIMITS["yaml_values"]
    resolver = yaml.resolver.Resolver()
    constructor = yaml.constructor.SafeConstructor()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    def fail(line: int, message: str) -> ScenarioError:
        return ScenarioError(f"line {line}: {message}", source=source)

    stack: list[_Frame] = []
    anchors: dict[str, tuple[Any, int, int]] = {}  # value, size, height
    total = 0
    documents = 0
    result: Any = None
    events = yaml.parse(text, Loader=loader)
    while True:
        try:
            event = next(events, None)
        except yaml.YAMLError as exc:
            raise _yaml_error(exc, text, source) from None
        if event is None:
            break
        line = event.start_mark.line + 1 if event.start_mark is not None else 0
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise fail(line, "more than one YAML document; a scenario is one mapping")
            continue
        if isinstance(event, yaml.StreamStartEvent | yaml.StreamEndEvent | yaml.DocumentEndEvent):
            continue
        frame = stack[-1] if stack else None
        anchor = getattr(event, "anchor", None)
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            is_map = isinstance(event, yaml.MappingStartEvent)
            tag = event.tag
            if tag is not None and tag != "!" and tag != (_MAP_TAG if is_map else _SEQ_TAG):
                raise fail(line, _tag_problem(tag))
            if frame is not None and frame.value.__class__ is dict and frame.key is _NO_KEY:
                raise fail(line, "a mapping key must be text, not a mapping or a list")
            if len(stack) >= depth_limit:
                raise fail(line, f"nested deeper than {depth_limit} levels")
            total += 1
            if total > value_limit:
                raise fail(line, f"more than {value_limit:,} values")
            stack.append(_Frame({} if is_map else [], line, anchor))
            continue
        if isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            done = stack.pop()
            frame = stack[-1] if stack else None
            value = done.value
            if done.merge is not None:
                merged: dict = {}
                for part in reversed(done.merge):  # the first mapping merged wins
                    merged.update(part)
                merged.update(value)
                value = merged
            size, height = done.size, done.height
            anchor = done.anchor
            line = done.line
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in anchors:
                if any(open_.anchor == event.anchor for open_ in stack):
                    raise fail(line, f"the alias *{_anchor(event.anchor)} refers to itself")
                raise fail(line, f"unknown alias *{_anchor(event.anchor)}")
            value, size, height = anchors[event.anchor]
            anchor = None
            if len(stack) + height > depth_limit:
                raise fail(line, f"nested deeper than {depth_limit} levels (through an alias)")
            total += size
            if total > value_limit:
                raise fail(
                    line,
                    f"more than {value_limit:,} values once aliases are expanded "
                    f"(*{_anchor(event.anchor)} holds {size:,})",
                )
        else:  # a scalar
            total += 1
            if total > value_limit:
                raise fail(line, f"more than {value_limit:,} values")
            value = _scalar(event, resolver, constructor, fail, line)
            size, height = 1, 0
            if frame is not None and frame.value.__class__ is dict and frame.key is _NO_KEY:
                if value is _MERGE_KEY or isinstance(value, str):
                    if anchor is not None and value is not _MERGE_KEY:
                        anchors[anchor] = (value, size, height)
                    frame.key, frame.key_line = value, line
                    continue
                raise fail(line, f"a mapping key must be text, got {echo(value)}; quote it")
        if value is _MERGE_KEY:
            raise fail(line, _tag_problem(_MERGE_TAG))
        if anchor is not None:
            anchors[anchor] = (value, size, height)
        if frame is None:
            result = value
            continue
        frame.size += size
        frame.height = max(frame.height, height + 1)
        if frame.value.__class__ is list:
            frame.value.append(value)
            continue
        key = frame.key
        if key is _NO_KEY:  # an alias in key position
            if not isinstance(value, str):
                raise fail(line, f"a mapping key must be text, got {echo(value)}")
            frame.key, frame.key_line = value, line
            continue
        frame.key = _NO_KEY
        if key is _MERGE_KEY:
            parts = value if isinstance(value, list) else [value]
            if not all(isinstance(part, dict) for part in parts):
                raise fail(frame.key_line, "'<<' merges a mapping or a list of mappings")
            frame.merge = (frame.merge or []) + parts
            continue
        first = frame.lines.get(key)
        if first is not None:
            raise fail(
                frame.key_line, f"the key {echo(key)} is given twice (first on line {first})"
            )
        frame.lines[key] = frame.key_line
        frame.value[key] = value
    return result


def _anchor(name: str) -> str:
    return name if len(name) <= 40 else name[:37] + "..."


def _scalar(event, resolver, constructor, fail, line: int) -> Any:
    tag = event.tag
    if tag is None or tag == "!":
        tag = resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag == _MERGE_TAG:
        return _MERGE_KEY
    if tag not in _SCALAR_TAGS:
        raise fail(line, _tag_problem(tag))
    node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
    try:
        return constructor.yaml_constructors[tag](constructor, node)
    except Exception:  # PyYAML's constructors fail in many ways on text they cannot read
        if tag == _YAML + "int":
            problem = "not an integer, or one too large"
        else:
            problem = f"not a valid {_tag_name(tag)}"
        raise fail(line, f"{echo(event.value)} is {problem}") from None


def _yaml_error(exc: yaml.YAMLError, text: str, source: str | None) -> ScenarioError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    line = mark.line + 1 if mark is not None else None
    if isinstance(exc, yaml.reader.ReaderError) or problem is None:
        position = getattr(exc, "position", None)
        if line is None and isinstance(position, int):
            line = text.count("\n", 0, position) + 1
        problem = getattr(exc, "reason", None) or str(exc).splitlines()[0]
        character = getattr(exc, "character", None)
        if isinstance(character, int):
            problem = f"{problem}: {character:#04x}"
        elif isinstance(character, str | bytes) and character:
            problem = f"{problem}: {echo(character)}"
    where = f"line {line}: " if line is not None else ""
    if "nesting depth" in str(problem):
        return ScenarioError(f"{where}nested too deeply", source=source)
    return ScenarioError(f"{where}not valid YAML ({_clip(str(problem))})", source=source)


def _clip(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind_of(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    return type(value).__name__


# --- JSON as plain data -----------------------------------------------------------------

_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_JSON_WORDS = {"true": True, "false": False, "null": None}
_JSON_NOT_NUMBERS = ("NaN", "-NaN", "Infinity", "-Infinity", "+Infinity")
_SURROGATE = re.compile("[\ud800-\udfff]")


def read_json(text: str, *, source: str | None = None) -> Any:
    """Read one JSON value (RFC 8259) as plain data, with the limits of :func:`read_yaml`.

    Numbers are numbers (``1e3`` is 1000.0, which YAML 1.1 would read as text); an integer
    is an ``int``. Raises :class:`ScenarioError` naming ``source`` and the line of the
    first problem: text that is not JSON (a trailing comma, a single-quoted string, a
    comment), ``NaN`` or ``Infinity`` (not JSON, though Python's ``json`` reads them), a
    number too large for a float, a key given twice in one object, a string holding half
    of a UTF-16 surrogate pair, nesting deeper than 100 or more than 500,000 values.
    """
    depth_limit, value_limit = LIMITS["yaml_depth"], LIMITS["yaml_values"]
    line, counted = 1, 0  # the line at position `counted`, advanced as the parser moves on

    def line_at(pos: int) -> int:
        nonlocal line, counted
        if pos > counted:
            line += text.count("\n", counted, pos)
            counted = pos
        return line

    def fail(pos: int, message: str) -> ScenarioError:
        return ScenarioError(f"line {line_at(pos)}: {message}", source=source)

    def string_at(pos: int) -> tuple[str, int]:
        try:
            value, end = json.decoder.scanstring(text, pos + 1, True)
        except json.JSONDecodeError as exc:
            problem = exc.msg.lower().removesuffix(" at").removesuffix(" starting")
            raise fail(exc.pos, f"not valid JSON ({problem})") from None
        if _SURROGATE.search(value):
            raise fail(pos, "a string holds half of a UTF-16 surrogate pair (\\ud800-\\udfff)")
        return value, end

    stack: list[_Frame] = []
    total = 0
    pos = _JSON_SPACE.match(text).end()
    if pos >= len(text):
        raise fail(pos, "no JSON value in the file (the smallest scenario is {})")
    # What may come next: a value, a key, ':' after a key, ',' or the end of the container.
    expect = "value"
    while True:
        pos = _JSON_SPACE.match(text, pos).end()
        if pos >= len(text):
            if stack:
                raise fail(pos, "not valid JSON (the file ends inside an object or array)")
            break
        char = text[pos]
        frame = stack[-1] if stack else None
        if expect == "end":
            raise fail(pos, "not valid JSON (more after the end of the value)")
        if expect == "colon":
            if char != ":":
                raise fail(pos, "not valid JSON (expected ':' after the key)")
            expect, pos = "value", pos + 1
            continue
        if expect == "comma":
            closer = "}" if frame.value.__class__ is dict else "]"
            if char == ",":
                expect = "key" if closer == "}" else "value"
                pos += 1
                after = _JSON_SPACE.match(text, pos).end()
                if after < len(text) and text[after] in "}]":
                    raise fail(after, "not valid JSON (a comma before a closing bracket)")
                continue
            if char != closer:
                raise fail(pos, f"not valid JSON (expected ',' or '{closer}')")
            char = "close"
        elif expect == "key":
            if char == "}" and not frame.value:
                char = "close"
            elif char != '"':
                raise fail(pos, "not valid JSON (expected a key in double quotes)")
            else:
                frame.key_line = line_at(pos)
                frame.key, pos = string_at(pos)
                expect = "colon"
                continue
        elif char == "]" and frame is not None and frame.value.__class__ is list:
            if frame.value:
                raise fail(pos, "not valid JSON (expected a value)")
            char = "close"
        # A value is complete (a scalar, or a container closed), or a container opens.
        if char == "close":
            done = stack.pop()
            value, pos = done.value, pos + 1
        elif char in "{[":
            if len(stack) >= depth_limit:
                raise fail(pos, f"nested deeper than {depth_limit} levels")
            total += 1
            if total > value_limit:
                raise fail(pos, f"more than {value_limit:,} values")
            stack.append(_Frame({} if char == "{" else [], line_at(pos), None))
            expect, pos = ("key" if char == "{" else "value"), pos + 1
            continue
        else:
            total += 1
            if total > value_limit:
                raise fail(pos, f"more than {value_limit:,} values")
            value, pos = _json_scalar(text, pos, string_at, fail)
        if not stack:
            expect = "end"
            result = value
            continue
        frame = stack[-1]
        expect = "comma"
        if frame.value.__class__ is list:
            frame.value.append(value)
            continue
        first = frame.lines.get(frame.key)
        if first is not None:
            raise ScenarioError(
                f"line {frame.key_line}: the key {echo(frame.key)} is given twice "
                f"(first on line {first})",
                source=source,
            )
        frame.lines[frame.key] = frame.key_line
        frame.value[frame.key] = value
    return result


def _json_scalar(text: str, pos: int, string_at, fail) -> tuple[Any, int]:
    """The JSON string, number, ``true``, ``false`` or ``null`` at ``pos``, and its end."""
    if text[pos] == '"':
        return string_at(pos)
    for word, value in _JSON_WORDS.items():
        if text.startswith(word, pos):
            return value, pos + len(word)
    for word in _JSON_NOT_NUMBERS:
        if text.startswith(word, pos):
            raise fail(pos, f"{word} is not allowed: JSON numbers are finite; give a number")
    match = _JSON_NUMBER.match(text, pos)
    if match is None:
        raise fail(
            pos,
            "not valid JSON (expected a value: text in double quotes, a number, "
            "true, false, null, an object or an array)",
        )
    number = match.group()
    if match.group(1) is None and match.group(2) is None:
        try:
            return int(number), match.end()
        except ValueError:  # more digits than Python converts
            raise fail(pos, f"an integer of {len(number):,} digits is too large") from None
    value = float(number)
    if not math.isfinite(value):
        raise fail(pos, f"{echo(number)} is too large for a number")
    return value, match.end()


# --- references between sections -------------------------------------------------------


def check_references(scenario: Scenario, *, source: str | None = None) -> None:
    """Check names that refer to other parts of the scenario (zones, containers, images),
    fault times and shapes, and distribution parameters; in time proportional to what the
    file says, never to the number of containers."""
    cluster = scenario.cluster
    count = cluster.containers
    zones = set(cluster.zones)
    populated = cluster.populated_zones()

    def fail(field: str, message: str) -> None:
        raise ScenarioError(message, field=field, source=source)

    for zone in cluster.zones:
        if is_container_id(zone, count) or zone in ROLE_TARGETS or zone == "random":
            fail("cluster.zones", f"zone name {zone!r} is also a container id or role")
    refs = {}
    for i, image in enumerate(scenario.images):
        if image.ref in refs:
            fail(f"images[{i}]", f"image {image.ref} is listed twice")
        refs[image.ref] = image
    if cluster.image is not None:
        try:
            scenario.image(cluster.image)
        except KeyError:
            fail(
                "cluster.image",
                f"unknown image {echo(cluster.image)}; images: {_listed(sorted(refs))}",
            )
    for cid, ref in sorted(cluster.container_images.items()):
        if not is_container_id(cid, count):
            fail(
                "cluster.container_images",
                f"unknown container {echo(cid)} (containers n1..n{count})",
            )
        try:
            scenario.image(ref)
        except KeyError:
            fail(
                f"cluster.container_images.{cid}",
                f"unknown image {echo(ref)}; images: {_listed(sorted(refs))}",
            )
    for ref in sorted(scenario.traffic.split if scenario.traffic else ()):
        try:
            scenario.image(ref)
        except KeyError:
            fail(
                f"traffic.split.{ref}",
                f"unknown image {echo(ref)}; images: {_listed(sorted(refs))}",
            )
    workload = scenario.workload
    clients = 0
    for i, group in enumerate(workload.clients or ()):
        if group.zone not in zones:
            fail(f"workload.clients[{i}].zone", f"unknown zone {echo(group.zone)}")
        if group.home is not None and not is_container_id(group.home, count):
            fail(
                f"workload.clients[{i}].home",
                f"unknown container {echo(group.home)} (containers n1..n{count})",
            )
        if group.home is None and group.zone not in populated:
            fail(
                f"workload.clients[{i}]",
                f"zone {group.zone!r} has no containers: give the clients a 'home'",
            )
        clients += group.count
    if workload.clients is None:
        clients = workload.clients_per_zone * len(populated)
    if clients > LIMITS["clients"]:
        fail(
            "workload",
            f"{clients:,} clients in all; at most {LIMITS['clients']:,} are allowed",
        )
    if workload.start >= scenario.duration:
        fail("workload.start", "the workload must start before the scenario's duration ends")
    for i, op in enumerate(workload.ops):
        if op.at >= scenario.duration:
            fail(
                f"workload.ops[{i}].at",
                f"at {op.at:g}s is not before the scenario's duration ({scenario.duration:g}s)",
            )
        if op.client >= clients:
            fail(
                f"workload.ops[{i}].client",
                f"client {op.client} does not exist: the scenario has {clients} client(s), "
                f"0 to {clients - 1}",
            )

    # Scale actions and an autoscaler add containers (n6, n7, ...) that faults may name.
    ever = count + _containers_added(scenario, refs, zones, populated, fail)

    def known(name: str) -> bool:
        return (
            is_container_id(name, ever) or name in zones or name in ROLE_TARGETS or name == "random"
        )

    for i, fault in enumerate(scenario.faults):
        where = f"faults[{i}]"
        targets = getattr(fault, "target", None)
        field = "target"
        if isinstance(fault, Scale):
            targets = fault.remove if not isinstance(fault.remove, int) else None
            field = "remove"
        for target in (targets,) if isinstance(targets, str) else targets or ():
            if not known(target):
                fail(
                    f"{where}.{field}",
                    f"unknown container, zone or role {echo(target)} "
                    f"(containers n1..n{ever}, zones {_listed(cluster.zones)}, "
                    f"roles {list(ROLE_TARGETS)} or 'random')",
                )
            if target in zones and target not in populated:
                fail(f"{where}.{field}", f"zone {target!r} has no containers")
        _check_groups(fault, where, cluster, populated, fail)
        if isinstance(fault, ZoneOutage):
            if fault.zone not in zones:
                fail(
                    f"{where}.zone",
                    f"unknown zone {echo(fault.zone)}; zones: {_listed(cluster.zones)}",
                )
            if fault.zone not in populated:
                fail(f"{where}.zone", f"zone {fault.zone!r} has no containers")
        if isinstance(fault, RollingUpgrade):
            try:
                scenario.image(fault.image)
            except KeyError:
                fail(
                    f"{where}.image",
                    f"unknown image {echo(fault.image)}; images: {_listed(sorted(refs))}",
                )
        if isinstance(fault, ClockSkew):
            limit = LIMITS["clock_rate"]
            if not 1 / limit <= fault.rate <= limit:
                fail(
                    f"{where}.rate",
                    f"a clock runs between {1 / limit:g} and {limit:g} times true speed, "
                    f"got {fault.rate!r}",
                )
        shapes = (fault.shape,) if isinstance(fault, Partition) else ()
        if isinstance(fault, RandomFaults) and "partition" in fault.faults:
            shapes = fault.shapes
        if "majorities-ring" in shapes and count < 5:
            fail(
                f"{where}.shape" if isinstance(fault, Partition) else f"{where}.shapes",
                f"a majorities-ring partition needs at least 5 containers, not {count}",
            )
        shard = getattr(fault, "shard", 0)
        if shard >= cluster.shards:
            fail(f"{where}.shard", f"shard {shard} does not exist ({cluster.shards} shards)")
        if fault.at > scenario.duration:
            fail(
                f"{where}.at",
                f"at {fault.at:g}s is after the scenario's duration ({scenario.duration:g}s)",
            )
        until = getattr(fault, "until", None)
        if until is not None:
            if until <= fault.at:
                fail(f"{where}.until", f"until {until:g}s is not after at ({fault.at:g}s)")
            if until > scenario.duration:
                fail(
                    f"{where}.until",
                    f"until {until:g}s is after the scenario's duration ({scenario.duration:g}s)",
                )


def _containers_added(scenario: Scenario, refs: dict, zones: set, populated: set, fail) -> int:
    """The most containers scale actions and the autoscaler may add (their ids follow
    ``n<containers>``), after checking their images and zones; zones they add to count as
    populated."""
    added = 0
    for i, fault in enumerate(scenario.faults):
        if not isinstance(fault, Scale):
            continue
        if fault.image is not None and fault.image not in refs:
            try:
                scenario.image(fault.image)
            except KeyError:
                fail(
                    f"faults[{i}].image",
                    f"unknown image {echo(fault.image)}; images: {_listed(sorted(refs))}",
                )
        if fault.zone is not None:
            if fault.zone not in zones:
                fail(
                    f"faults[{i}].zone",
                    f"unknown zone {echo(fault.zone)}; zones: {_listed(sorted(zones))}",
                )
            populated.add(fault.zone)
        if fault.add is not None:
            added += fault.add
    autoscale = scenario.autoscale
    if autoscale is not None:
        if autoscale.image is not None:
            try:
                scenario.image(autoscale.image)
            except KeyError:
                fail(
                    "autoscale.image",
                    f"unknown image {echo(autoscale.image)}; images: {_listed(sorted(refs))}",
                )
        added += autoscale.max
    return min(added, LIMITS["containers"])


def _check_groups(fault: Any, where: str, cluster: ClusterSpec, populated: set, fail) -> None:
    """A partition's or link fault's groups name known members, no container twice."""
    groups = getattr(fault, "groups", None) or ()
    count = cluster.containers
    zones = set(cluster.zones)
    owner: dict[str, int] = {}  # a container or zone -> the group that named it
    for g, group in enumerate(groups):
        for member in group:
            if not is_container_id(member, count) and member not in zones:
                fail(
                    f"{where}.groups[{g}]",
                    f"unknown container or zone {echo(member)} "
                    f"(containers n1..n{count}, zones {_listed(cluster.zones)})",
                )
            if member in zones and member not in populated:
                fail(f"{where}.groups[{g}]", f"zone {member!r} has no containers")
            previous = owner.get(member)
            if previous is not None and previous != g:
                fail(f"{where}.groups[{g}]", f"{member!r} is also in groups[{previous}]")
            owner[member] = g
    # A container named in one group and its zone in another is in both.
    for member, g in owner.items():
        if is_container_id(member, count):
            zone = cluster.zone_of_container(member)
            other = owner.get(zone)
            if other is not None and other != g:
                fail(
                    f"{where}.groups[{g}]",
                    f"{member!r} is in zone {zone!r}, which groups[{other}] names",
                )


def _listed(names: Any, limit: int = 8) -> str:
    names = list(names)
    shown = ", ".join(echo(n, 30) for n in names[:limit])
    return f"[{shown}{', ...' if len(names) > limit else ''}]"


def _first_error(exc: ValidationError, data: Any, source: str | None) -> ScenarioError:
    """One clear line from pydantic's report: the field path as written in the file."""
    errors = exc.errors(include_url=False)
    error = errors[0]
    field = _field_path(error["loc"], data)
    _, message = validation_message(error)
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
            name = _shown_key(item)
            parts.append(f".{name}" if parts else name)
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
            name = _shown_key(item)
            parts.append(f".{name}" if parts else name)
            node = None
    return "".join(parts)


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.\-:]{1,60}")


def _shown_key(key: Any) -> str:
    """A key as a field path shows it: as is when plain, else quoted and cut short."""
    return key if isinstance(key, str) and _PLAIN_KEY.fullmatch(key) else echo(key, 40)


def _is_field_name(item: str) -> bool:
    return "[" not in item and "(" not in item and "-" not in item.split(".")[-1][:1]


_TAGS = set(DISTRIBUTIONS) | set(FAULTS)
