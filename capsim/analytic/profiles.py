"""The latency profiles of the PBS paper, by name, as plain data (layer 0).

Bailis, Venkataraman, Franklin, Hellerstein and Stoica, "Probabilistically Bounded
Staleness for Practical Partial Quorums", VLDB 2012, fitted each leg of the WARS model to
production latencies: ``W`` (a write reaching a replica), ``A`` (its acknowledgement),
``R`` (a read request reaching a replica) and ``S`` (the read's response), each a mixture
of a Pareto and an exponential distribution, in milliseconds:

=============  ==========================================  ====================================
profile        W                                           A, R, S
=============  ==========================================  ====================================
``lnkd-ssd``   91.22% Pareto(0.235, 10) + 8.78% Exp(1.66)  as W
``lnkd-disk``  38% Pareto(1.05, 1.51) + 62% Exp(0.183)     as ``lnkd-ssd``
``ymmr``       93.9% Pareto(3, 3.35) + 6.1% Exp(0.0028)    98.2% Pareto(1.5, 3.8)
                                                           + 1.8% Exp(0.0217)
``wan``        as ``lnkd-disk``, plus 75 ms on every message between the coordinator's
               datacenter and a replica in another one (one replica per datacenter)
=============  ==========================================  ====================================

Pareto(x_m, alpha) is drawn as ``x_m / U ** (1 / alpha)``; Exp(rate) has ``rate`` per
millisecond (mean ``1 / rate`` ms). LinkedIn (``lnkd-*``) ran Voldemort on SSDs and on
spinning disks; Yammer (``ymmr``) ran Riak.

The same profiles serve the analytic Monte Carlo (:mod:`capsim.analytic.wars`) and
scenario files, where ``network: {latency: {profile: NAME}}`` gives the quorum policy's
``wars`` message kinds (``write``, ``ack``, ``read``, ``read_reply``) these latencies;
``wan``'s 75 ms applies between zones (each zone a datacenter). This module holds data
only and imports nothing from capsim, so the scenario schema can use it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PROFILES", "LEGS", "KIND_OF_LEG", "Profile", "leg_data", "kinds_data"]

#: The WARS legs, in the paper's order.
LEGS = ("w", "a", "r", "s")
#: The quorum policy's message kind (``mode: wars``) that carries each leg.
KIND_OF_LEG = {"w": "write", "a": "ack", "r": "read", "s": "read_reply"}

# A leg: ((weight, "pareto", x_m ms, alpha), (weight, "exponential", rate per ms)).
_LNKD_SSD = ((0.9122, "pareto", 0.235, 10.0), (0.0878, "exponential", 1.66))
_LNKD_DISK_W = ((0.38, "pareto", 1.05, 1.51), (0.62, "exponential", 0.183))
_YMMR_W = ((0.939, "pareto", 3.0, 3.35), (0.061, "exponential", 0.0028))
_YMMR_ARS = ((0.982, "pareto", 1.5, 3.8), (0.018, "exponential", 0.0217))


class Profile:
    """A named latency profile: a mixture per WARS leg (``legs['w']`` and so on, as
    ``(weight, "pareto", x_m_ms, alpha)`` and ``(weight, "exponential", rate_per_ms)``
    components) and ``cross_dc_ms``, the delay added to every message between the
    coordinator's datacenter and a replica in another one (0: one datacenter)."""

    __slots__ = ("name", "legs", "cross_dc_ms", "summary")

    def __init__(self, name: str, legs: dict[str, tuple], cross_dc_ms: float, summary: str):
        self.name = name
        self.legs = legs
        self.cross_dc_ms = cross_dc_ms
        self.summary = summary

    def __repr__(self) -> str:
        return f"Profile({self.name!r})"


def _profile(name: str, w: tuple, ars: tuple, cross_dc_ms: float, summary: str) -> Profile:
    return Profile(name, {"w": w, "a": ars, "r": ars, "s": ars}, cross_dc_ms, summary)


#: The paper's profiles by name.
PROFILES: dict[str, Profile] = {
    "lnkd-ssd": _profile("lnkd-ssd", _LNKD_SSD, _LNKD_SSD, 0.0, "LinkedIn, Voldemort on SSDs"),
    "lnkd-disk": _profile(
        "lnkd-disk", _LNKD_DISK_W, _LNKD_SSD, 0.0, "LinkedIn, Voldemort on spinning disks"
    ),
    "ymmr": _profile("ymmr", _YMMR_W, _YMMR_ARS, 0.0, "Yammer, Riak"),
    "wan": _profile(
        "wan",
        _LNKD_DISK_W,
        _LNKD_SSD,
        75.0,
        "lnkd-disk, plus 75 ms between datacenters (one replica in each)",
    ),
}


def _per_thousand(value: float) -> float:
    """``value / 1000`` as its decimal reads (``1.05`` gives ``0.00105``, rounded once)."""
    return float(f"{value!r}e-3")


def leg_data(components: tuple, shift_ms: float = 0.0) -> dict[str, Any]:
    """One leg as a scenario file writes a distribution (a ``mixture``; seconds, rates per
    second), plus ``shift_ms`` on every draw."""
    out = []
    for component in components:
        if component[1] == "pareto":
            weight, _, xm, alpha = component
            out.append(
                {"weight": weight, "dist": "pareto", "xm": _per_thousand(xm), "alpha": alpha}
            )
        else:
            weight, _, rate = component
            out.append({"weight": weight, "dist": "exponential", "rate": float(f"{rate!r}e3")})
    data: dict[str, Any] = {"dist": "mixture", "components": out}
    if shift_ms:
        data["shift"] = _per_thousand(shift_ms)
    return data


def kinds_data(name: str) -> dict[str, dict[str, Any]]:
    """The per-message-kind latency (``network.latency.kinds``) of profile ``name``: each
    WARS leg on its message kind, for both link classes; between zones (datacenters), plus
    the profile's ``cross_dc_ms``. Raises KeyError for an unknown name."""
    profile = PROFILES[name]
    return {
        KIND_OF_LEG[leg]: {
            "same_zone": leg_data(profile.legs[leg]),
            "cross_zone": leg_data(profile.legs[leg], profile.cross_dc_ms),
        }
        for leg in LEGS
    }
