"""Analytic models to check the simulator against, and to answer questions without it.

* :func:`k_staleness`: PBS k-staleness of partial quorums, in closed form;
* :func:`wars`: the PBS WARS model by Monte Carlo (P(consistent read) against the time
  since the write committed, the time for a target probability, latency percentiles);
* :data:`PROFILES`: the paper's latency profiles (``lnkd-ssd``, ``lnkd-disk``, ``ymmr``,
  ``wan``), shared with scenario files (``network: {latency: {profile: NAME}}``);
* :func:`quorum_availability`: the probability that a quorum of independent replicas is up.

Import it explicitly (``from capsim import analytic``). The simulator's side of the
comparison (``capsim pbs --engine des``, ``capsim fidelity``) lives in
:mod:`capsim.analytic.des` and :mod:`capsim.analytic.fidelity`, which run the simulator and
so are imported separately.
"""

from __future__ import annotations

from capsim.analytic.montecarlo import Legs, WarsResult, wars
from capsim.analytic.pbs import container_availability, k_staleness, majority, quorum_availability
from capsim.analytic.profiles import PROFILES

__all__ = [
    "k_staleness",
    "quorum_availability",
    "container_availability",
    "majority",
    "PROFILES",
    "Legs",
    "WarsResult",
    "wars",
]
