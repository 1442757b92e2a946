"""Time the WARS Monte Carlo (target: 1,000,000 trials for N = 3 in at most 0.3 s).

For each latency profile, ``capsim.analytic.wars`` runs 1,000,000 trials of N = 3,
R = W = 1 (P(consistent) at a few t, the t for 99.9%, read and write latency percentiles)
``--repeat`` times in this process; the median wall time and the trials per second are
printed, beside a straightforward numpy version (float64, every delay drawn per
component, a sort per trial) for comparison. On a shared machine, repeat a figure that
looks off.

Usage: python benchmarks/wars_bench.py [--trials N] [--repeat N] [--no-baseline]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from capsim.analytic import PROFILES, Legs, wars
from capsim.rng import stream


def straightforward(legs_name: str, trials: int, seed: int = 0) -> float:
    """The WARS trials written plainly: float64, a sort per trial. Returns P(t = 0)."""
    legs = Legs.profile(legs_name)
    rng = stream(seed, "bench.straightforward")
    n = 3

    def draw(dist, size):
        out = np.empty(size)
        u = rng.random(size)
        cumulative = 0.0
        for weight, component in dist.components:
            chosen = (u >= cumulative) & (u < cumulative + weight)
            count = int(chosen.sum())
            v = 1.0 - rng.random(count)
            if component.dist == "pareto":
                out[chosen] = component.xm * 1000.0 / v ** (1.0 / component.alpha)
            else:
                out[chosen] = -np.log(v) * component.mean_s * 1000.0
            cumulative += weight
        return out + dist.shift * 1000.0

    w, a, r, s = (draw(getattr(legs, leg), (trials, n)) for leg in "wars")
    commit = np.sort(w + a, axis=1)[:, 0]
    first = np.argsort(r + s, axis=1)[:, 0]
    rows = np.arange(trials)
    t_star = w[rows, first] - r[rows, first] - commit
    return float(np.mean(t_star <= 0))


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-baseline", action="store_true", help="skip the plain version")
    args = parser.parse_args()
    print(f"{args.trials:,} trials, N=3 R=1 W=1, median of {args.repeat}")
    print(f"{'profile':<10} {'wall s':>8} {'trials/s':>12} {'plain s':>9}  P(t=0)  t(99.9%) ms")
    for name in PROFILES:
        legs = Legs.profile(name)

        def run(legs=legs):
            return wars(3, 1, 1, legs, trials=args.trials, t_ms=(0, 1, 10, 100))

        wall = timed(run, args.repeat)
        result = run()
        plain = "-"
        if not args.no_baseline:
            plain = f"{timed(lambda n=name: straightforward(n, args.trials), 1):9.2f}"
        print(
            f"{name:<10} {wall:8.3f} {args.trials / wall:12,.0f} {plain:>9}  "
            f"{result.p_consistent[0.0]:.4f}  {result.visibility(0.999):.2f}"
        )


if __name__ == "__main__":
    main()
