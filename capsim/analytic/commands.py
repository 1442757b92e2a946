"""The ``capsim pbs`` and ``capsim fidelity`` commands (layer 5): options, checks, output.

``capsim.cli`` declares the options and calls :func:`cmd_pbs` and :func:`cmd_fidelity`.
Bad input raises :class:`~capsim.errors.CapsimError`, which the command line prints as one
line with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from capsim.errors import CapsimError

__all__ = [
    "add_pbs_options",
    "add_fidelity_options",
    "cmd_pbs",
    "cmd_fidelity",
    "pbs_report",
    "DES_TRIALS",
    "MAX_TRIALS",
    "MAX_N",
]

#: ``--engine des``'s default trials: about a minute on a 2-core machine (each trial is a
#: write and a read at every t of the grid, about 350 messages through the simulator).
DES_TRIALS = 30_000
#: Upper bounds of ``--trials`` per engine (memory: 12 bytes per Monte Carlo trial).
MAX_TRIALS = {"montecarlo": 100_000_000, "des": 10_000_000}
#: The largest ``--n`` (replicas per key).
MAX_N = 1000
LATENCY_OPTIONS = {
    "w": "write_latency",
    "a": "ack_latency",
    "r": "read_latency",
    "s": "read_reply_latency",
}


def add_pbs_options(parser: argparse.ArgumentParser, positive_int, seed) -> None:
    """The options of ``capsim pbs`` (``positive_int`` and ``seed``: the command line's
    argparse types, so every command checks numbers alike)."""
    from capsim.analytic.profiles import PROFILES

    parser.add_argument("--n", type=positive_int, required=True, help="replicas per key (N)")
    parser.add_argument(
        "--r", type=positive_int, required=True, help="replies a read waits for (R, 1 to N)"
    )
    parser.add_argument(
        "--w", type=positive_int, required=True, help="acks a write waits for (W, 1 to N)"
    )
    parser.add_argument(
        "--profile",
        choices=list(PROFILES),
        default=None,
        help="a latency profile of the PBS paper for all four legs: "
        + "; ".join(f"{name}: {prof.summary}" for name, prof in PROFILES.items()),
    )
    parser.add_argument(
        "--latency",
        metavar="DIST",
        default=None,
        help="one-way latency of every leg, as a scenario file writes a distribution "
        "(YAML): '2ms' or '{dist: exponential, mean: 1ms}' (a bare number is seconds); "
        "instead of --profile",
    )
    for leg, dest in LATENCY_OPTIONS.items():
        what = {
            "w": "a write reaching a replica (W)",
            "a": "a replica's acknowledgement of a write (A)",
            "r": "a read request reaching a replica (R)",
            "s": "a replica's answer to a read (S)",
        }[leg]
        parser.add_argument(
            "--" + dest.replace("_", "-"),
            dest=dest,
            metavar="DIST",
            default=None,
            help=f"latency of {what}, over --latency",
        )
    parser.add_argument(
        "--t",
        metavar="LIST",
        default="0,1,5,10,50,100",
        help="times after the write commits, in ms, at which to give P(consistent read), "
        "comma-separated (default 0,1,5,10,50,100)",
    )
    parser.add_argument(
        "--k",
        metavar="LIST",
        default="1,2,3",
        help="numbers of versions for k-staleness, comma-separated (default 1,2,3)",
    )
    parser.add_argument(
        "--target",
        metavar="LIST",
        default="0.999",
        help="probabilities of a consistent read whose t to find, comma-separated (default 0.999)",
    )
    parser.add_argument(
        "--trials",
        type=positive_int,
        default=None,
        help=f"trials (default: 1000000 for montecarlo, {DES_TRIALS} for des, about a minute)",
    )
    parser.add_argument(
        "--engine",
        choices=("montecarlo", "des"),
        default="montecarlo",
        help="montecarlo: the WARS model's equations, vectorized (default); des: the "
        "quorum policy's wars and partial modes run through the full simulator",
    )
    parser.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def add_fidelity_options(parser: argparse.ArgumentParser, seed) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the small version the tests run (a few seconds; wider intervals)",
    )
    parser.add_argument(
        "--seed", type=seed, default=0, help="random seed of every comparison (default 0)"
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")


def _numbers(text: str, option: str, what: str, parse) -> list[tuple[str, Any]]:
    """``(token as given, value)`` for each comma-separated item of ``text``."""
    out = []
    for token in text.split(","):
        token = token.strip()
        try:
            value = parse(token)
        except (ValueError, OverflowError):
            raise CapsimError(f"{option}: expected {what}, got {token!r}") from None
        out.append((token, value))
    if not out or not any(token for token, _ in out):
        raise CapsimError(f"{option}: expected {what}, got nothing")
    return out


def _milliseconds(token: str) -> float:
    value = float(token)
    if not (math.isfinite(value) and 0 <= value <= 1e12):
        raise ValueError(token)
    return value


def _count(token: str) -> int:
    value = int(token)
    if not 1 <= value <= 1000:
        raise ValueError(token)
    return value


def _probability(token: str) -> float:
    value = float(token)
    if not 0 < value <= 1:
        raise ValueError(token)
    return value


def _legs(args: argparse.Namespace):
    """The WARS legs the options give, and the profile's name (None for custom ones)."""
    from pydantic import TypeAdapter, ValidationError

    from capsim.analytic.montecarlo import Legs
    from capsim.distributions import Distribution
    from capsim.scenario import read_yaml
    from capsim.schema import validation_message

    given = {leg: getattr(args, dest) for leg, dest in LATENCY_OPTIONS.items()}
    custom = args.latency is not None or any(v is not None for v in given.values())
    if args.profile is not None:
        if custom:
            raise CapsimError("give either --profile or latency options (--latency, ...), not both")
        return Legs.profile(args.profile), args.profile
    if not custom:
        raise CapsimError(
            "give a latency: --profile NAME, or --latency DIST (and per leg --write-latency, "
            "--ack-latency, --read-latency, --read-reply-latency)"
        )
    adapter = TypeAdapter(Distribution)
    dists = {}
    for leg, dest in LATENCY_OPTIONS.items():
        own = given[leg] is not None
        option = "--" + (dest if own else "latency").replace("_", "-")
        text = given[leg] if own else args.latency
        if text is None:
            missing = "--" + dest.replace("_", "-")
            raise CapsimError(f"{missing}: missing (give it, or --latency for every leg)")
        data = read_yaml(text, source=option)  # a ScenarioError names the option
        try:
            dists[leg] = adapter.validate_python(data)
        except ValidationError as exc:
            where, message = validation_message(exc.errors()[0])
            raise CapsimError(f"{option}: {where + ': ' if where else ''}{message}") from None
    return Legs(**dists), None


def pbs_report(args: argparse.Namespace, progress=None) -> tuple[dict[str, Any], dict[str, Any]]:
    """What ``capsim pbs`` prints: the JSON it prints with ``--json``, and how it was
    obtained (``engine``, ``trials``, ``profile``) for the text header."""
    from capsim.analytic.pbs import k_staleness

    n, r, w = args.n, args.r, args.w
    for name, value in (("--r", r), ("--w", w)):
        if value > n:
            raise CapsimError(f"{name}: must be at most --n ({n}), got {value}")
    times = _numbers(args.t, "--t", "milliseconds: numbers of 0 or more", _milliseconds)
    ks = _numbers(args.k, "--k", "whole numbers from 1 to 1000", _count)
    targets = _numbers(args.target, "--target", "probabilities in (0, 1]", _probability)
    trials = args.trials
    if trials is None:
        trials = DES_TRIALS if args.engine == "des" else 1_000_000
    if n > MAX_N:
        raise CapsimError(f"--n: at most {MAX_N}, got {n}")
    if trials > MAX_TRIALS[args.engine]:
        raise CapsimError(
            f"--trials: at most {MAX_TRIALS[args.engine]:,} with --engine {args.engine}, "
            f"got {trials:,}"
        )
    legs, profile = _legs(args)
    t_values = [value for _, value in times]
    if args.engine == "montecarlo":
        from capsim.analytic.montecarlo import wars

        result = wars(
            n,
            r,
            w,
            legs,
            trials=trials,
            seed=args.seed,
            t_ms=t_values,
            targets=[p for _, p in targets],
        )
        k_stale = {token: k_staleness(n, r, w, k) for token, k in ks}
        p_consistent = {token: result.p_consistent[value] for token, value in times}
        visibility: dict[str, float | None] = {
            token: _ms(result.t_visibility_ms[p]) for token, p in targets
        }
        latency = result.latency_ms
    else:
        from capsim.analytic.des import PATIENCE_S, k_staleness_des, wars_des

        if progress is not None:
            progress(
                f"running {trials:,} trials through the simulator (quorum policy, mode wars, "
                f"then mode partial for k-staleness); about {DES_TRIALS:,} a minute"
            )
        done = (lambda count: progress(f"{count:,} of {trials:,} trials")) if progress else None
        des = wars_des(n, r, w, legs, trials=trials, seed=args.seed, t_ms=t_values, progress=done)
        missed = k_staleness_des(n, r, w, sorted({k for _, k in ks}), trials=trials, seed=args.seed)
        if des.unanswered:
            raise CapsimError(
                f"{des.unanswered:,} operations got no answer within {PATIENCE_S:g} s of "
                "simulated time: latencies this long are beyond --engine des"
            )
        k_stale = {token: missed[k] / trials for token, k in ks}
        p_consistent = {token: des.p(value) for token, value in times}
        visibility = {token: _ms(des.visibility(p)) for token, p in targets}
        latency = des.latency_ms()
    return {
        "n": n,
        "r": r,
        "w": w,
        "k_staleness": k_stale,
        "p_consistent": p_consistent,
        "t_visibility_ms": visibility,
        "latency_ms": {
            op: {key: _ms(value) for key, value in latency[op].items()} for op in ("read", "write")
        },
    }, {"engine": args.engine, "trials": trials, "profile": profile}


def _ms(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), 4)


def cmd_pbs(args: argparse.Namespace) -> int:
    """``capsim pbs``: print k-staleness, P(consistent) at each t, the t for each target and
    latency percentiles, from the Monte Carlo or the simulator."""

    def progress(message: str) -> None:
        print(f"capsim: {message}", file=sys.stderr, flush=True)

    report, meta = pbs_report(args, progress=None if args.json else progress)
    if args.json:
        print(json.dumps(report, indent=2, allow_nan=False))
        return 0
    print(_describe(report, meta, args.seed))
    return 0


def _describe(report: dict[str, Any], meta: dict[str, Any], seed: int) -> str:
    engine = (
        "WARS Monte Carlo"
        if meta["engine"] == "montecarlo"
        else "the simulator (quorum policy, mode: wars; k-staleness: mode: partial)"
    )
    latency = f"profile {meta['profile']}" if meta["profile"] else "latency as given"
    lines = [
        f"PBS: N={report['n']} R={report['r']} W={report['w']}, {latency}, {engine}, "
        f"{meta['trials']:,} trials, seed {seed}",
        "k-staleness (P a read returns none of the last k versions; "
        + ("closed form)" if meta["engine"] == "montecarlo" else "simulated)"),
    ]
    for k, p in report["k_staleness"].items():
        lines.append(f"  k={k:<6} {p:.6f}")
    lines.append("P(consistent read) t ms after the write commits")
    width = max(len(t) for t in report["p_consistent"])
    for t, p in report["p_consistent"].items():
        lines.append(f"  t={t:<{width}}  {p:.6f}")
    for target, t in report["t_visibility_ms"].items():
        shown = "not reached within 10 s" if t is None else f"t = {t:g} ms"
        lines.append(f"t-visibility: P(consistent) >= {target} at {shown}")
    lines.append(f"latency (ms)  {'p50':>10} {'p99':>10} {'p99.9':>10}")
    for op in ("read", "write"):
        row = report["latency_ms"][op]
        cells = " ".join(f"{_num(row[key]):>10}" for key in ("p50", "p99", "p999"))
        lines.append(f"  {op:<11} {cells}")
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def cmd_fidelity(args: argparse.Namespace) -> int:
    """``capsim fidelity``: run every comparison and print the table; exit status 1 if a
    comparison failed (a documented, ``known`` difference does not count)."""
    from capsim.analytic.fidelity import format_table, run_fidelity, to_json

    def progress(message: str) -> None:
        if not args.json:
            print(f"  ... {message}", file=sys.stderr, flush=True)

    rows = run_fidelity(quick=args.quick, seed=args.seed, progress=progress)
    if args.json:
        print(json.dumps(to_json(rows), indent=2, allow_nan=False))
    else:
        print(format_table(rows))
    return 1 if any(row.status == "fail" for row in rows) else 0
