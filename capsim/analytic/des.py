"""The PBS experiments run through the whole simulator (layer 4: it runs capsim.runner).

Each experiment builds a scenario, runs it with :func:`capsim.runner.build` and
``World.run`` (both phases, every message through the network with its latency draws),
and drives the clients itself: a *trial* is a short script of operations on a key of its
own, so that trials never interfere and every trial is exactly the model's.

* :func:`wars_des`: the quorum policy's ``mode: wars`` (a coordinator service on the
  client's home container, holding no replica; the WARS legs as message kinds ``write``,
  ``ack``, ``read``, ``read_reply``). A trial writes its key once through a client drawn
  at random (one per datacenter, i.e. zone), and when the write is acknowledged reads it
  ``t`` later for every ``t`` asked, each read through a client drawn at random. A read
  is consistent when it returns the write. So P(consistent at t) is estimated from
  independent trials, at exactly ``t`` after the commit, as in the model.
* :func:`k_staleness_des`: the quorum policy's ``mode: partial`` (each write to exactly
  ``w`` random replicas, each read from exactly ``r``). A trial writes its key ``K``
  times in a row, then reads it; the read returns none of the last ``k`` versions when
  the value it returns is older than the ``k``-th newest.
* :func:`churn_des`: the ``churn`` fault on every container of one shard, and the
  fraction of time a majority of its replicas is up and ready, with 99% batch-means
  intervals; the fraction of operations that succeed is measured beside it.

The driver is a :class:`~capsim.sim.workload.Workload` whose ``start`` schedules the
trials instead of Poisson arrivals; operations go through the workload's own invocation,
routing, history and timeout path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from capsim.analytic.montecarlo import PERCENTILES, Legs
from capsim.analytic.pbs import _check_quorum, majority
from capsim.history import OK, READ, WRITE
from capsim.metrics.availability import succeeded
from capsim.rng import stream_seed
from capsim.runner import build, run
from capsim.scenario import parse_scenario
from capsim.schema import to_data
from capsim.sim.workload import Workload

__all__ = [
    "GRID_MS",
    "WarsDes",
    "wars_des",
    "k_staleness_des",
    "ChurnDes",
    "churn_des",
    "wilson",
    "Z99",
]

#: The two-sided 99% point of the standard normal distribution.
Z99 = 2.5758293035489004
#: Where the DES reads for its t-visibility curve: 0, then 0.1 ms to 10 s, eight points
#: per decade (each 1.33 times the last).
GRID_MS = (0.0, *(round(10.0 ** (-1 + j / 8), 6) for j in range(41)))
#: Trials per simulated world: a longer run is split into worlds of this many (each with
#: a seed derived from the run's), so that its history and memory stay bounded.
CHUNK = 5000
#: Simulated time between the starts of two trials (they overlap; nothing queues).
SPACING_S = 0.001
#: Client and coordinator timeouts: far beyond any latency of these experiments, and short
#: enough that the final phase (which polls replicas every 10 ms until they agree, or
#: until twice the timeout after the main phase: in partial mode they never agree) is brief.
PATIENCE_S = 60.0


def wilson(successes: int, trials: int, z: float = Z99) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (99% by default): unlike the
    normal approximation it stays inside [0, 1], and keeps a width when every trial (or
    none) succeeded."""
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return (max(0.0, centre - half), min(1.0, centre + half))


class _Driver(Workload):
    """A workload that invokes exactly what the experiment says: ``plan(driver)`` runs at
    the start and schedules the first operations; :meth:`invoke` calls ``then(type,
    value, latency_s)`` when an operation completes."""

    def __init__(self, world: Any, plan: Callable[[_Driver], None]):
        super().__init__(world.engine, world.scenario, world.cluster, world.network, world.history)
        self._plan = plan
        self._then: dict[int, tuple[Callable, float]] = {}
        self.unanswered = 0

    def start(self) -> None:
        for i, client in enumerate(self.clients):
            client.index = i  # as Workload.start numbers them
        self._plan(self)

    def invoke(self, client: Any, f: int, key_index: int, then: Callable) -> None:
        process = client.idle.pop() if client.idle else self._new_process()
        op = self._invoke(client, process, f, key_index, final=False)
        if op.done:  # refused at once (not expected: nothing fails in these experiments)
            self.unanswered += 1
            return
        self._then[op.id] = (then, self.engine.now)

    def _complete(self, op: Any, type_: int, value: Any, node: str, error: str | None) -> None:
        super()._complete(op, type_, value, node, error)
        entry = self._then.pop(op.id, None)
        if entry is not None:
            then, invoked = entry
            if type_ != OK:
                self.unanswered += 1
            then(type_, value, self.engine.now - invoked)


def _drive(scenario: Any, seed: int, plan: Callable[[_Driver], None]) -> _Driver:
    world = build(scenario, seed, allow_large=True)
    driver = _Driver(world, plan)
    world.workload = driver
    world.nemesis.workload = driver
    world.run()
    if world.failure is not None:
        raise world.failure
    return driver


def _kinds_of(legs: Legs) -> dict[str, Any]:
    """``network.latency.kinds`` for custom legs (a profile is named instead)."""
    from capsim.analytic.profiles import KIND_OF_LEG, LEGS

    out = {}
    for leg in LEGS:
        same = to_data(getattr(legs, leg))
        cross = dict(same)
        cross["shift"] = float(cross.get("shift", 0.0)) + legs.cross_dc_ms / 1000.0
        out[KIND_OF_LEG[leg]] = {"same_zone": same, "cross_zone": cross}
    return out


def wars_scenario(n: int, r: int, w: int, legs: Legs, trials: int, last_t_ms: float) -> Any:
    """The scenario of :func:`wars_des`: ``n`` containers, each alone in its zone (its
    datacenter) with one replica, the quorum policy in ``mode: wars``, the legs' latency
    on the WARS message kinds, one client per zone, and a key per trial."""
    zones = [f"dc{i + 1}" for i in range(n)]
    latency: dict[str, Any] = {"same_zone": "0ms", "cross_zone": "0ms"}
    if legs.name is not None:
        latency["profile"] = legs.name
    else:
        latency["kinds"] = _kinds_of(legs)
    return parse_scenario(
        {
            "name": f"pbs-wars-n{n}-r{r}-w{w}",
            "duration": trials * SPACING_S + last_t_ms / 1000.0 + 1.0,
            "settle": 0,
            "final_reads": False,
            "cluster": {"containers": n, "zones": zones, "disk": {"sync": 0}},
            "network": {"latency": latency},
            "policy": {
                "name": "quorum",
                "params": {
                    "mode": "wars",
                    "n": n,
                    "r": r,
                    "w": w,
                    "versioning": "lww",
                    "request_timeout": PATIENCE_S,
                },
            },
            "workload": {
                "keys": trials,
                "timeout": PATIENCE_S,
                "clients": [
                    {"zone": zone, "count": 1, "home": f"n{i + 1}"} for i, zone in enumerate(zones)
                ],
            },
            "check": {"linearizable": False},
        }
    )


@dataclass
class WarsDes:
    """What :func:`wars_des` measured. ``times_ms``: the read times after the commit;
    ``consistent[j]``: how many of the ``trials`` reads at ``times_ms[j]`` returned the
    write; ``read_latency_ms`` and ``write_latency_ms``: every operation's latency."""

    n: int
    r: int
    w: int
    trials: int
    seed: int
    times_ms: list[float]
    consistent: np.ndarray
    read_latency_ms: np.ndarray
    write_latency_ms: np.ndarray
    unanswered: int
    events: int = 0
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def p(self, t_ms: float) -> float:
        """The fraction of reads at ``t_ms`` after the commit that returned the write."""
        return float(self.consistent[self.times_ms.index(float(t_ms))]) / self.trials

    def count(self, t_ms: float) -> int:
        return int(self.consistent[self.times_ms.index(float(t_ms))])

    def visibility(self, target: float) -> float | None:
        """The t (ms) at which the measured fraction first reaches ``target``, by linear
        interpolation between the two read times around it; None if it never does."""
        fractions = self.consistent / self.trials
        for j, value in enumerate(fractions):
            if value >= target:
                if j == 0:
                    return self.times_ms[0]
                t0, t1 = self.times_ms[j - 1], self.times_ms[j]
                p0 = fractions[j - 1]
                return t0 + (t1 - t0) * (target - p0) / (value - p0)
        return None

    def latency_ms(self) -> dict[str, dict[str, float]]:
        return {
            "read": _percentiles(self.read_latency_ms),
            "write": _percentiles(self.write_latency_ms),
        }


def _percentiles(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return dict.fromkeys(PERCENTILES, math.nan)
    qs = np.quantile(values, list(PERCENTILES.values()))
    return {key: float(q) for key, q in zip(PERCENTILES, qs, strict=True)}


def _chunks(trials: int) -> list[tuple[int, int, int]]:
    """``(index, first trial, trials)`` of each world a run of ``trials`` is split into."""
    return [
        (c, first, min(CHUNK, trials - first)) for c, first in enumerate(range(0, trials, CHUNK))
    ]


def _chunk_seed(seed: int, chunk: int) -> int:
    """The seed of a run's ``chunk``-th world: the run's own for the first, else one
    derived from it (the same in every process)."""
    if chunk == 0:
        return seed
    words = stream_seed(seed, f"analytic.chunk.{chunk}").generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def wars_des(
    n: int,
    r: int,
    w: int,
    legs: Legs | str,
    *,
    trials: int,
    seed: int = 0,
    t_ms: Iterable[float] = (0.0,),
    grid: bool = True,
    progress: Callable[[int], None] | None = None,
) -> WarsDes:
    """Run ``trials`` WARS trials through the simulator (see the module docstring): reads
    at each of ``t_ms`` after the commit, and at :data:`GRID_MS` too if ``grid``. The
    trials run in worlds of at most :data:`CHUNK` (so memory stays bounded);
    ``progress`` hears the trials done after each."""
    import time

    _check_quorum(n, r, w)
    if isinstance(legs, str):
        legs = Legs.profile(legs)
    times = sorted({float(t) for t in t_ms} | (set(GRID_MS) if grid else set()))
    consistent = np.zeros(len(times), dtype=np.int64)
    write_latency = np.full(trials, np.nan)
    read_latency = np.full(trials * len(times), np.nan)
    delays = [t / 1000.0 for t in times]
    unanswered = events = 0
    started = time.perf_counter()
    for chunk, first, count in _chunks(trials):

        def plan(driver: _Driver, first=first, count=count) -> None:
            engine = driver.engine
            clients = driver.clients
            rng = engine.stream("analytic.trials")
            writers = rng.integers(0, len(clients), count).tolist()
            readers = rng.integers(0, len(clients), (count, len(times)))

            def begin(i: int) -> None:
                driver.invoke(clients[writers[i]], WRITE, i, lambda *out: committed(i, *out))

            def committed(i: int, type_: int, value: Any, latency: float) -> None:
                write_latency[first + i] = latency * 1000.0
                if type_ == OK:
                    engine.call_in(delays[0], read, i, 0, engine.now)

            def read(i: int, j: int, commit: float) -> None:
                reader = clients[int(readers[i, j])]
                driver.invoke(reader, READ, i, lambda *out: answered(i, j, *out))
                if j + 1 < len(delays):
                    engine.call_in(commit + delays[j + 1] - engine.now, read, i, j + 1, commit)

            def answered(i: int, j: int, type_: int, value: Any, latency: float) -> None:
                read_latency[(first + i) * len(times) + j] = latency * 1000.0
                if type_ == OK and value == 1:  # the trial's only write wrote 1
                    consistent[j] += 1

            for i in range(count):
                engine.call_in(i * SPACING_S, begin, i)

        scenario = wars_scenario(n, r, w, legs, count, times[-1])
        driver = _drive(scenario, _chunk_seed(seed, chunk), plan)
        unanswered += driver.unanswered
        events += driver.engine.events + driver.network.sent
        if progress is not None:
            progress(first + count)
    return WarsDes(
        n=n,
        r=r,
        w=w,
        trials=trials,
        seed=seed,
        times_ms=times,
        consistent=consistent,
        read_latency_ms=read_latency[~np.isnan(read_latency)],
        write_latency_ms=write_latency[~np.isnan(write_latency)],
        unanswered=unanswered,
        events=events,
        wall_s=time.perf_counter() - started,
    )


def partial_scenario(n: int, r: int, w: int, trials: int, writes: int) -> Any:
    """The scenario of :func:`k_staleness_des`: ``n`` replicas, the quorum policy in
    ``mode: partial``, constant 1 ms latency, one client, a key per trial."""
    return parse_scenario(
        {
            "name": f"pbs-partial-n{n}-r{r}-w{w}",
            "duration": trials * SPACING_S + writes * 0.01 + 1.0,
            "settle": 0,
            "final_reads": False,
            "cluster": {"containers": n, "zones": ["a"], "disk": {"sync": 0}},
            "network": {"latency": {"same_zone": "1ms", "cross_zone": "1ms"}},
            "policy": {
                "name": "quorum",
                "params": {
                    "mode": "partial",
                    "n": n,
                    "r": r,
                    "w": w,
                    "versioning": "lww",
                    "request_timeout": PATIENCE_S,
                },
            },
            "workload": {
                "keys": trials,
                "timeout": PATIENCE_S,
                "clients": [{"zone": "a", "count": 1, "home": "n1"}],
            },
            "check": {"linearizable": False},
        }
    )


def k_staleness_des(
    n: int, r: int, w: int, ks: Sequence[int], *, trials: int, seed: int = 0
) -> dict[int, int]:
    """For each ``k`` of ``ks``, how many of ``trials`` reads returned none of the last
    ``k`` versions, through the quorum policy's ``partial`` mode (see the module
    docstring). Each trial writes its key ``max(ks)`` times, then reads it once."""
    _check_quorum(n, r, w)
    writes = max(ks)
    returned = np.full(trials, -1, dtype=np.int64)
    for chunk, first, count in _chunks(trials):

        def plan(driver: _Driver, first=first, count=count) -> None:
            engine = driver.engine
            client = driver.clients[0]

            def write(i: int, done: int) -> None:
                if done == writes:
                    driver.invoke(client, READ, i, lambda *out: answered(i, *out))
                else:
                    driver.invoke(client, WRITE, i, lambda *out: write(i, done + 1))

            def answered(i: int, type_: int, value: Any, latency: float) -> None:
                if type_ == OK:  # the n-th write of a key wrote n
                    returned[first + i] = 0 if value is None else int(value)

            for i in range(count):
                engine.call_in(i * SPACING_S, write, i, 0)

        scenario = partial_scenario(n, r, w, count, writes)
        driver = _drive(scenario, _chunk_seed(seed, chunk), plan)
        if driver.unanswered:
            raise RuntimeError(f"{driver.unanswered} operations of the partial trials failed")
    if (returned < 0).any():
        raise RuntimeError("a partial trial's read never completed")
    # The read misses the last k versions when it returns one older than the k-th newest.
    return {k: int(np.count_nonzero(returned <= writes - k)) for k in ks}


@dataclass
class ChurnDes:
    """What :func:`churn_des` measured over ``[warmup, duration)``: the fraction of time
    a majority of the shard's replicas was up and ready, and the mean fraction of time
    a container was, each with a 99% batch-means interval; and the fraction of main-phase
    operations that succeeded (``ok``, or a definite answer)."""

    n: int
    duration: float
    warmup: float
    majority_up: float
    majority_interval: tuple[float, float]
    container_up: float
    container_interval: tuple[float, float]
    ops_served: float
    ops: int
    #: Unserved main-phase operations by error (``unavailable``: refused by a down
    #: container the client entered by; ``timeout``: no answer in time; ...).
    unserved: dict[str, int] = field(default_factory=dict)
    #: Seconds of ``[warmup, duration)`` in which no replica was leader.
    leaderless_s: float = 0.0
    wall_s: float = 0.0


#: The two-sided 99% point of Student's t with 19 degrees of freedom (20 batches).
T99_19 = 2.861


def churn_scenario(
    n: int, *, mttf: float, mttr: float, startup: float, duration: float, policy: str = "raft"
) -> Any:
    """The scenario of :func:`churn_des`: ``n`` containers in three zones, one shard on
    all of them, ``policy``, a light workload, and churn on every container."""
    return parse_scenario(
        {
            "name": f"churn-n{n}",
            "duration": duration,
            "settle": 1,
            "final_reads": False,
            "images": [{"name": "kvstore", "startup": startup}],
            "cluster": {"containers": n, "zones": ["a", "b", "c"], "disk": {"sync": "1ms"}},
            "policy": {"name": policy},
            "workload": {"rate": 2, "clients_per_zone": 1, "timeout": "1s", "keys": 8},
            "faults": [{"kind": "churn", "at": 0, "mttf": mttf, "mttr": mttr}],
            "check": {"linearizable": False},
        }
    )


def churn_des(
    n: int,
    *,
    mttf: float,
    mttr: float,
    startup: float,
    duration: float,
    warmup: float,
    seed: int = 0,
    policy: str = "raft",
    batches: int = 20,
) -> ChurnDes:
    """Run ``n`` replicas under churn and measure the fractions of time a majority (and a
    container) was up and ready, from the fault records (exact, not sampled), with 99%
    intervals by batch means: ``[warmup, duration)`` cut into ``batches`` equal batches,
    mean +- t(0.995, batches - 1) * sd / sqrt(batches)."""
    import time

    if batches != 20:
        raise ValueError("the 99% point is tabulated for 20 batches")
    scenario = churn_scenario(
        n, mttf=mttf, mttr=mttr, startup=startup, duration=duration, policy=policy
    )
    started = time.perf_counter()
    result = run(scenario, seed=seed, allow_large=True)
    wall = time.perf_counter() - started
    down = _down_intervals(result.faults, duration)
    edges = np.linspace(warmup, duration, batches + 1)
    majority_fraction, container_fraction = [], []
    need = majority(n)
    names = [f"n{i + 1}" for i in range(n)]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        majority_fraction.append(_fraction_with_quorum(down, names, need, lo, hi))
        container_fraction.append(
            sum(_fraction_with_quorum(down, [c], 1, lo, hi) for c in names) / n
        )
    ops = result.history.operations()
    main = ~ops.final
    served = float(result.summary["availability"]["overall"] or 0.0)
    unserved: dict[str, int] = {}
    errors = result.history.errors
    ok = succeeded(ops)
    for i in np.flatnonzero(main & ~ok).tolist():
        index = int(ops.complete_index[i])
        reason = errors.get(index, "timeout") if index >= 0 else "timeout"
        unserved[reason] = unserved.get(reason, 0) + 1
    return ChurnDes(
        n=n,
        duration=duration,
        warmup=warmup,
        majority_up=float(np.mean(majority_fraction)),
        majority_interval=_batch_interval(majority_fraction),
        container_up=float(np.mean(container_fraction)),
        container_interval=_batch_interval(container_fraction),
        ops_served=served,
        ops=int(main.sum()),
        unserved=dict(sorted(unserved.items(), key=lambda item: -item[1])),
        leaderless_s=_leaderless(result.roles, need, warmup, duration),
        wall_s=wall,
    )


def _batch_interval(values: list[float]) -> tuple[float, float]:
    mean = float(np.mean(values))
    half = T99_19 * float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return (mean - half, mean + half)


def _down_intervals(records: list[dict[str, Any]], end: float) -> dict[str, list]:
    """Per container, the intervals it was down or starting: from each crash's ``start``
    to its ``end`` (when the container is ready again), or ``end`` if still down."""
    began: dict[tuple, tuple[float, list[str]]] = {}
    down: dict[str, list] = {}
    for record in records:
        key = (record.get("fault"), record.get("instance"))
        if record.get("kind") != "crash":
            continue
        if record["event"] == "start":
            began[key] = (record["time"], list(record.get("targets") or []))
        elif record["event"] == "end" and key in began:
            at, targets = began.pop(key)
            for cid in targets:
                down.setdefault(cid, []).append((at, record["time"]))
    for at, targets in began.values():
        for cid in targets:
            down.setdefault(cid, []).append((at, end))
    return down


def _fraction_with_quorum(
    down: dict[str, list], names: list[str], need: int, lo: float, hi: float
) -> float:
    """The fraction of ``[lo, hi)`` during which at least ``need`` of ``names`` were up."""
    changes: list[tuple[float, int]] = []
    for cid in names:
        for a, b in down.get(cid, []):
            a, b = max(a, lo), min(b, hi)
            if a < b:
                changes.append((a, -1))
                changes.append((b, +1))
    changes.sort()
    up = len(names)
    covered = 0.0
    last = lo
    for at, delta in changes:
        if up >= need:
            covered += at - last
        last = at
        up += delta
    if up >= need:
        covered += hi - last
    return covered / (hi - lo)


def _leaderless(roles: list, need: int, lo: float, hi: float) -> float:
    """Seconds of ``[lo, hi)`` during which no replica of shard 0 was leader."""
    leader: dict[str, bool] = {}
    total = 0.0
    last = lo
    for at, cid, shard, role, _ in sorted(roles, key=lambda x: x[0]):
        if shard != 0:
            continue
        at = min(max(at, lo), hi)
        if not any(leader.values()):
            total += at - last
        last = at
        leader[cid] = role == "leader"
    if not any(leader.values()):
        total += hi - last
    return total
