"""``capsim fidelity``: the simulator checked against the analytic models (layer 4).

Every comparison, its trial counts, seeds and 99% intervals are fixed here, before any
result is seen:

1. *Published figures*: the WARS Monte Carlo (:func:`capsim.analytic.wars`) against the
   PBS paper's figures for N = 3, R = W = 1: P(consistent) right after commit within 1.5
   percentage points, lnkd-disk's t for 99.9% within 10%.
2. *DES against the Monte Carlo*: the quorum policy's ``wars`` mode through the whole
   simulator (:func:`capsim.analytic.des.wars_des`), P(consistent) at two times after
   commit and the read and write latency medians, for every profile and for exponential
   latencies. The interval: the DES proportion's 99% Wilson interval widened by 2.576
   standard errors of the Monte Carlo's; for a median, the distribution-free 99% interval
   between the order statistics of ranks ``T/2 -+ 2.576 sqrt(T)/2``.
3. *Partial quorums against k-staleness*: the quorum policy's ``partial`` mode
   (:func:`capsim.analytic.des.k_staleness_des`) against the closed form, 99% Wilson
   intervals.
4. *Churn against the binomial*: the ``churn`` fault on every container of an N = 3 and
   an N = 5 raft group; the fraction of time a majority (and a container) is up and ready
   against :func:`capsim.analytic.quorum_availability`, 99% batch-means intervals (20
   batches); the fraction of operations served is reported beside it with what it lost.

A row passes when the model's value lies in the interval. A row whose disagreement is
understood and documented (see :data:`KNOWN`) is marked ``known`` rather than given a
wider tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from capsim.analytic.des import Z99, churn_des, k_staleness_des, wars_des, wilson
from capsim.analytic.montecarlo import Legs, wars
from capsim.analytic.pbs import container_availability, k_staleness, majority, quorum_availability

__all__ = ["Row", "SIZES", "KNOWN", "PUBLISHED", "run_fidelity", "format_table", "to_json"]

#: The PBS paper's figures (VLDB 2012): P(consistent) right after commit, N = 3, R = W = 1.
PUBLISHED = {"lnkd-ssd": 0.974, "lnkd-disk": 0.439, "ymmr": 0.893, "wan": 0.33}
#: ... and the time after commit at which lnkd-disk reads are 99.9% consistent (ms).
PUBLISHED_T999_LNKD_DISK_MS = 45.5

#: Comparison sizes: ``full`` for the README table, ``quick`` for the tests.
SIZES = {
    "full": {
        "mc_trials": 1_000_000,
        "des_trials": 20_000,
        "partial_trials": 20_000,
        "churn_duration": 3000.0,
    },
    "quick": {
        "mc_trials": 200_000,
        "des_trials": 1_500,
        "partial_trials": 1_500,
        "churn_duration": 300.0,
    },
}

#: The WARS settings compared, each (label, legs, n, r, w, second t in ms): every profile
#: at N = 3, R = W = 1, and the exponential latencies of ``scenarios/pbs-staleness.yaml``
#: (W mean 10 ms; A, R, S mean 1 ms) at R = W = 1 and at N = 5, R = W = 2.
_EXPONENTIAL = {
    "w": {"dist": "exponential", "mean": "10ms"},
    "a": {"dist": "exponential", "mean": "1ms"},
    "r": {"dist": "exponential", "mean": "1ms"},
    "s": {"dist": "exponential", "mean": "1ms"},
}
WARS_SETTINGS = (
    ("lnkd-ssd", "lnkd-ssd", 3, 1, 1, 1.0),
    ("lnkd-disk", "lnkd-disk", 3, 1, 1, 10.0),
    ("ymmr", "ymmr", 3, 1, 1, 100.0),
    ("wan", "wan", 3, 1, 1, 100.0),
    ("exponential", _EXPONENTIAL, 3, 1, 1, 10.0),
    ("exponential", _EXPONENTIAL, 5, 2, 2, 5.0),
)
#: (N, R, W) of the partial-quorum comparisons, each at k = 1, 2, 3.
PARTIAL_SETTINGS = ((3, 1, 1), (5, 1, 2), (5, 2, 2), (7, 2, 3))
#: Churn: mean up time, mean down time, start-up time (s); a = 5 / 6.25 = 0.8.
CHURN = {"mttf": 5.0, "mttr": 1.0, "startup": 0.25}
CHURN_WARMUP_S = 20.0

#: Disagreements understood and documented, by row name: the row stays, marked ``known``.
KNOWN = {
    "lnkd-disk: t for 99.9% (ms)": (
        "the model with the paper's lnkd-disk fit gives 99.87% at 45.5 ms and reaches 99.9% "
        "at 51 to 53 ms (by seed): the point lies in W's Pareto tail (alpha 1.51); a plain "
        "float64 implementation agrees (see README, Analytic models and fidelity)"
    ),
}


@dataclass
class Row:
    """One comparison: the model's value, the simulated one, the interval the model's
    value must lie in, and the verdict (``pass``, ``fail``, ``known`` or ``info``)."""

    section: str
    name: str
    model: float
    simulated: float | None
    interval: tuple[float, float] | None
    status: str
    unit: str = ""
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


def _judge(name: str, model: float, interval: tuple[float, float]) -> tuple[str, str]:
    inside = interval[0] <= model <= interval[1]
    if inside:
        return "pass", ""
    if name in KNOWN:
        return "known", KNOWN[name]
    return "fail", ""


def _row(section: str, name: str, model: float, simulated: float, interval, unit="", **kw) -> Row:
    status, note = _judge(name, model, interval)
    return Row(section, name, model, simulated, interval, status, unit, kw.pop("note", note), kw)


def _proportion_interval(successes: int, trials: int, model: float, model_trials: int):
    lo, hi = wilson(successes, trials)
    widen = Z99 * math.sqrt(model * (1 - model) / model_trials)
    return (max(0.0, lo - widen), min(1.0, hi + widen))


def _median_interval(values) -> tuple[float, float]:
    import numpy as np

    ordered = np.sort(np.asarray(values, dtype=np.float64))
    count = len(ordered)
    half = Z99 * math.sqrt(count) / 2
    lo = max(0, int(math.floor(count / 2 - half)) - 1)
    hi = min(count - 1, int(math.ceil(count / 2 + half)))
    return (float(ordered[lo]), float(ordered[hi]))


def run_fidelity(
    quick: bool = False, seed: int = 0, progress: Callable[[str], None] | None = None
) -> list[Row]:
    """Run every comparison (``quick``: the small sizes of :data:`SIZES`) and return the
    rows in order. ``progress`` hears one line per group."""
    size = SIZES["quick" if quick else "full"]
    say = progress or (lambda message: None)
    rows: list[Row] = []

    say(f"published figures: Monte Carlo, {size['mc_trials']:,} trials per profile")
    for name, published in PUBLISHED.items():
        result = wars(3, 1, 1, name, trials=size["mc_trials"], seed=seed, t_ms=(0.0,))
        value = result.p_consistent[0.0]
        rows.append(
            _row(
                "published",
                f"{name}: P(consistent), t = 0",
                published,
                value,
                (value - 0.015, value + 0.015),
            )
        )
        if name == "lnkd-disk":
            t999 = result.visibility(0.999)
            rows.append(
                _row(
                    "published",
                    "lnkd-disk: t for 99.9% (ms)",
                    PUBLISHED_T999_LNKD_DISK_MS,
                    t999,
                    (t999 / 1.1, t999 / 0.9),
                    unit="ms",
                )
            )

    for label, legs_spec, n, r, w, t2 in WARS_SETTINGS:
        legs = Legs.profile(legs_spec) if isinstance(legs_spec, str) else Legs.of(**legs_spec)
        setting = f"{label} N={n} R={r} W={w}"
        say(f"DES vs Monte Carlo: {setting}, {size['des_trials']:,} trials")
        times = (0.0, t2)
        model = wars(n, r, w, legs, trials=size["mc_trials"], seed=seed, t_ms=times)
        des = wars_des(n, r, w, legs, trials=size["des_trials"], seed=seed, t_ms=times, grid=False)
        for t in times:
            p = model.p_consistent[t]
            interval = _proportion_interval(des.count(t), des.trials, p, model.trials)
            rows.append(
                _row("des", f"{setting}: P(consistent), t = {t:g} ms", p, des.p(t), interval)
            )
        for op, values in (("read", des.read_latency_ms), ("write", des.write_latency_ms)):
            rows.append(
                _row(
                    "des",
                    f"{setting}: {op} latency p50 (ms)",
                    model.latency_ms[op]["p50"],
                    float(_median(values)),
                    _median_interval(values),
                    unit="ms",
                )
            )

    say(f"partial quorums vs k-staleness: {size['partial_trials']:,} trials per setting")
    for n, r, w in PARTIAL_SETTINGS:
        missed = k_staleness_des(n, r, w, (1, 2, 3), trials=size["partial_trials"], seed=seed)
        for k, count in missed.items():
            p = k_staleness(n, r, w, k)
            rows.append(
                _row(
                    "partial",
                    f"N={n} R={r} W={w}: P(none of last {k})",
                    p,
                    count / size["partial_trials"],
                    wilson(count, size["partial_trials"]),
                )
            )

    a = container_availability(CHURN["mttf"], CHURN["mttr"], CHURN["startup"])
    for n in (3, 5):
        say(f"churn vs the binomial: N={n}, {size['churn_duration']:g} simulated seconds")
        churn = churn_des(
            n,
            duration=size["churn_duration"],
            warmup=CHURN_WARMUP_S,
            seed=seed,
            **CHURN,
        )
        q = majority(n)
        rows.append(
            _row(
                "churn",
                f"N={n}: time a container is up",
                a,
                churn.container_up,
                churn.container_interval,
            )
        )
        rows.append(
            _row(
                "churn",
                f"N={n}: time a majority ({q}) is up",
                quorum_availability(n, q, a),
                churn.majority_up,
                churn.majority_interval,
            )
        )
        lost = sum(churn.unserved.values())
        reasons = ", ".join(
            f"{count / churn.ops:.1%} {reason}" for reason, count in churn.unserved.items()
        )
        span = churn.duration - churn.warmup
        rows.append(
            Row(
                "churn",
                f"N={n}: operations served",
                quorum_availability(n, q, a),
                churn.ops_served,
                None,
                "info",
                note=(
                    f"{lost:,} of {churn.ops:,} not served: {reasons or 'none'}; no leader "
                    f"{churn.leaderless_s / span:.1%} of the time"
                ),
            )
        )
    return rows


def _median(values) -> float:
    import numpy as np

    return float(np.median(values))


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    return f"{value:.4f}"


SECTIONS = {
    "published": "Published PBS figures (Bailis et al., VLDB 2012) vs the WARS Monte Carlo "
    "(interval: the Monte Carlo's value +- 1.5 points, or +-10% for a time)",
    "des": "The simulator (quorum policy, mode: wars) vs the WARS Monte Carlo",
    "partial": "The simulator (quorum policy, mode: partial) vs PBS k-staleness",
    "churn": "The simulator (raft under churn) vs the binomial quorum availability",
}


def format_table(rows: list[Row]) -> str:
    """The rows as a text table, section by section, with a count at the end."""
    lines: list[str] = []
    width = max(len(row.name) for row in rows) if rows else 10
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            if lines:
                lines.append("")
            lines.append(SECTIONS.get(section, section))
            lines.append(
                f"  {'comparison':<{width}}  {'model':>10}  {'simulated':>10}  "
                f"{'interval (99%)':>21}  result"
            )
        interval = (
            f"[{_fmt(row.interval[0], row.unit)}, {_fmt(row.interval[1], row.unit)}]"
            if row.interval
            else "-"
        )
        lines.append(
            f"  {row.name:<{width}}  {_fmt(row.model, row.unit):>10}  "
            f"{_fmt(row.simulated, row.unit):>10}  {interval:>21}  {row.status}"
        )
        if row.note:
            lines.append(f"  {'':<{width}}    {row.note}")
    counts = {status: sum(1 for row in rows if row.status == status) for status in _STATUSES}
    lines.append("")
    lines.append(
        f"{counts['pass']} pass, {counts['fail']} fail, {counts['known']} known "
        f"(documented) difference(s), {counts['info']} for information"
    )
    return "\n".join(lines)


_STATUSES = ("pass", "fail", "known", "info")


def to_json(rows: list[Row]) -> dict[str, Any]:
    """The rows as plain data (``capsim fidelity --json``)."""
    return {
        "rows": [
            {
                "section": row.section,
                "name": row.name,
                "model": row.model,
                "simulated": row.simulated,
                "interval": list(row.interval) if row.interval else None,
                "status": row.status,
                "unit": row.unit or None,
                "note": row.note or None,
            }
            for row in rows
        ],
        "counts": {status: sum(1 for row in rows if row.status == status) for status in _STATUSES},
    }
