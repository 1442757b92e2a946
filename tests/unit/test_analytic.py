"""capsim.analytic: PBS k-staleness and quorum availability against hand-computed values,
the WARS Monte Carlo against closed forms worked out here and against the PBS paper's
published figures, the latency profiles as the issue defines them, and ``capsim pbs``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from capsim.analytic import (
    PROFILES,
    Legs,
    container_availability,
    k_staleness,
    majority,
    quorum_availability,
    wars,
)
from capsim.cli import main
from capsim.errors import ScenarioError
from capsim.scenario import dump_scenario, parse_scenario

# -- closed forms ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "r", "w", "k", "expected"),
    [
        (3, 1, 1, 1, 2 / 3),  # C(2,1) / C(3,1)
        (3, 1, 1, 2, 4 / 9),
        (3, 1, 1, 3, 8 / 27),
        (5, 2, 2, 1, 3 / 10),  # C(3,2) / C(5,2) = 3 / 10
        (5, 1, 2, 2, 9 / 25),  # (C(3,1) / C(5,1)) ** 2
        (7, 2, 3, 1, 2 / 7),  # C(4,2) / C(7,2) = 6 / 21
        (3, 2, 2, 1, 0.0),  # r + w > n: every read quorum meets every write quorum
        (5, 3, 3, 4, 0.0),
        (3, 3, 1, 1, 0.0),
    ],
)
def test_k_staleness_is_the_chance_a_read_quorum_misses_the_last_k_write_quorums(
    n, r, w, k, expected
):
    assert k_staleness(n, r, w, k) == pytest.approx(expected, rel=1e-15, abs=0)


def test_k_staleness_refuses_impossible_quorums():
    for args in [(3, 4, 1, 1), (3, 1, 0, 1), (0, 1, 1, 1), (3, 1, 1, 0)]:
        with pytest.raises(ValueError):
            k_staleness(*args)


def test_quorum_availability_is_the_binomial_tail():
    # 3 of 0.9: 3 * 0.81 * 0.1 + 0.729; 5 of 0.8, majority: 10 * .512 * .04 + 5 * .4096 * .2
    # + .32768.
    assert quorum_availability(3, 2, 0.9) == pytest.approx(0.972, abs=1e-15)
    assert quorum_availability(5, 3, 0.8) == pytest.approx(0.94208, abs=1e-15)
    assert quorum_availability(5, 0, 0.3) == pytest.approx(1.0)
    assert quorum_availability(4, 4, 0.5) == pytest.approx(1 / 16)
    assert quorum_availability(7, majority(7), 1.0) == 1.0
    assert majority(3) == 2 and majority(4) == 3 and majority(5) == 3
    # MTTF 20 s, MTTR 4 s, 1 s to start: up 20 of every 25 s on average.
    assert container_availability(20, 4, 1) == pytest.approx(0.8)
    with pytest.raises(ValueError):
        quorum_availability(3, 4, 0.5)


# -- the Monte Carlo against closed forms ------------------------------------------------------

# W exponential with a mean of 10 ms and the other legs instant: the write commits when
# it reaches the first replica; every replica answers a read at once and the first to
# answer is a fixed one, independent of W. A read at t after the commit is consistent
# when that replica's W is within t of the smallest of the n: with probability 1/n it is
# the smallest, and otherwise (memorylessness) its excess over the smallest is again
# exponential, so P(t) = 1 - (n - 1) / n * exp(-t / 10).
INSTANT = {"a": "0ms", "r": "0ms", "s": "0ms"}
SLOW_WRITES = Legs.of(w={"dist": "exponential", "mean": "10ms"}, **INSTANT)


def p_slow_writes(t_ms: float, n: int = 3) -> float:
    return 1 - (n - 1) / n * math.exp(-t_ms / 10)


def test_monte_carlo_matches_the_exponential_closed_form():
    result = wars(3, 1, 1, SLOW_WRITES, trials=1_000_000, seed=3, t_ms=(0, 5, 10, 30))
    for t, p in result.p_consistent.items():
        assert p == pytest.approx(p_slow_writes(t), abs=0.002), t  # 4 standard errors
    # P(t) = 0.999 at t = 10 ln((2/3) / 0.001) = 65.02 ms (standard error about 0.3 ms).
    assert result.t_visibility_ms[0.999] == pytest.approx(10 * math.log(2 / 3 / 0.001), abs=1.5)
    # The write waits for the first of three exponentials: exponential with mean 10/3 ms.
    write = result.latency_ms["write"]
    assert write["p50"] == pytest.approx(10 / 3 * math.log(2), rel=0.01)
    assert write["p99"] == pytest.approx(10 / 3 * math.log(100), rel=0.02)
    assert result.latency_ms["read"]["p999"] == 0.0


def test_larger_read_and_write_quorums_follow_their_closed_forms():
    # r = 2: the first two replicas answer; stale only if the third has the smallest W
    # (1/3) and both others lag it by more than t: P(t) = 1 - exp(-2 t / 10) / 3.
    result = wars(3, 2, 1, SLOW_WRITES, trials=400_000, seed=4, t_ms=(0, 5))
    assert result.p_consistent[0.0] == pytest.approx(2 / 3, abs=0.003)
    assert result.p_consistent[5.0] == pytest.approx(1 - math.exp(-1) / 3, abs=0.003)
    # w = 2: the write waits for the second of three exponentials (rate 1/10 per ms):
    # P(X(2) <= x) = 1 - exp(-3x/10) - 3 (1 - exp(-x/10)) exp(-2x/10); its median by
    # bisection.
    result = wars(3, 1, 2, SLOW_WRITES, trials=400_000, seed=5, t_ms=(0,))

    def cdf(x):
        return 1 - math.exp(-0.3 * x) - 3 * (1 - math.exp(-0.1 * x)) * math.exp(-0.2 * x)

    lo, hi = 0.0, 100.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < 0.5 else (lo, mid)
    assert result.latency_ms["write"]["p50"] == pytest.approx(lo, rel=0.01)
    # Two of three replicas acknowledged: a read of one replica misses the write only if
    # it is the third and its W exceeds the commit: P(0) = 2/3.
    assert result.p_consistent[0.0] == pytest.approx(2 / 3, abs=0.003)


def test_quorums_that_intersect_are_always_consistent():
    for n, r, w in [(3, 2, 2), (3, 1, 3), (5, 3, 3), (5, 4, 2)]:
        result = wars(n, r, w, "lnkd-disk", trials=50_000, seed=1, t_ms=(0,))
        assert result.p_consistent[0.0] == 1.0
        assert result.t_visibility_ms[0.999] == 0.0


def test_datacenters_add_their_delay_between_the_coordinator_and_other_replicas():
    # Every leg 1 ms, plus 75 ms between datacenters. The write commits at 2 ms through
    # the writer's own replica; a read answered by the reader's own replica sees the write
    # at once if both are in one datacenter (1 in 3), and otherwise only once the write
    # has crossed: t + 3 >= 76, from t = 73 ms on.
    legs = Legs.of(w="1ms", a="1ms", r="1ms", s="1ms", cross_dc_ms=75)
    result = wars(3, 1, 1, legs, trials=300_000, seed=2, t_ms=(0, 72.5, 73.5))
    assert result.p_consistent[0.0] == pytest.approx(1 / 3, abs=0.004)
    assert result.p_consistent[72.5] == result.p_consistent[0.0]
    assert result.p_consistent[73.5] == 1.0
    assert result.latency_ms["write"]["p999"] == pytest.approx(2.0)
    assert result.latency_ms["read"]["p999"] == pytest.approx(2.0)


def mixture_cdf(components, x: float) -> float:
    """The CDF of a leg written out from the issue's definitions: Pareto(x_m, alpha) has
    P(X > x) = (x_m / x) ** alpha above x_m; an exponential has its rate per ms."""
    total = 0.0
    for weight, kind, *params in components:
        if kind == "pareto":
            xm, alpha = params
            total += weight * (1 - (xm / x) ** alpha if x > xm else 0.0)
        else:
            total += weight * (1 - math.exp(-params[0] * x))
    return total


def quantile_within(components, q: float, trials: int) -> tuple[float, float]:
    """The mixture's q-quantile (by bisection) and four standard errors of a sample
    quantile over ``trials`` draws: sqrt(q (1 - q) / trials) / density."""
    lo, hi = 0.0, 1e7
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mixture_cdf(components, mid) < q else (lo, mid)
    step = lo * 1e-4
    density = (mixture_cdf(components, lo + step) - mixture_cdf(components, lo - step)) / (2 * step)
    return lo, 4 * math.sqrt(q * (1 - q) / trials) / density


ISSUE_LEGS = {
    "lnkd-ssd": [(0.9122, "pareto", 0.235, 10), (0.0878, "exponential", 1.66)],
    "lnkd-disk": [(0.38, "pareto", 1.05, 1.51), (0.62, "exponential", 0.183)],
    "ymmr": [(0.939, "pareto", 3, 3.35), (0.061, "exponential", 0.0028)],
    "ymmr A, R, S": [(0.982, "pareto", 1.5, 3.8), (0.018, "exponential", 0.0217)],
}


@pytest.mark.parametrize("leg", list(ISSUE_LEGS))
def test_the_profiles_draw_the_mixtures_the_issue_defines(leg):
    # One replica and instant other legs: the write latency is a draw of the leg itself.
    name = leg.split()[0]
    dist = Legs.profile(name).a if leg.endswith("S") else Legs.profile(name).w
    alone = Legs.of(w=dist, **INSTANT)
    trials = 400_000
    result = wars(1, 1, 1, alone, trials=trials, seed=6, t_ms=(0,))
    for key, q in (("p50", 0.5), ("p99", 0.99)):
        expected, tolerance = quantile_within(ISSUE_LEGS[leg], q, trials)
        assert result.latency_ms["write"][key] == pytest.approx(expected, abs=tolerance), key


def test_wan_is_lnkd_disk_plus_75_ms_between_datacenters():
    assert PROFILES["wan"].cross_dc_ms == 75.0
    assert PROFILES["wan"].legs == PROFILES["lnkd-disk"].legs
    assert Legs.profile("wan").w == Legs.profile("lnkd-disk").w


# -- the published figures ---------------------------------------------------------------------

PUBLISHED = {"lnkd-ssd": 0.974, "lnkd-disk": 0.439, "ymmr": 0.893, "wan": 0.33}


@pytest.mark.parametrize("profile", list(PUBLISHED))
def test_monte_carlo_reproduces_the_papers_consistency_right_after_commit(profile):
    result = wars(3, 1, 1, profile, trials=1_000_000, seed=0, t_ms=(0,))
    assert abs(result.p_consistent[0.0] - PUBLISHED[profile]) <= 0.015


def reference_wars(profile: str, trials: int, seed: int, t_ms) -> np.ndarray:
    """The WARS model written plainly from the issue's definitions, as a check on the
    vectorized one: float64, Python's own order of draws, a sort per trial."""
    rng = np.random.Generator(np.random.PCG64(seed))
    prof = PROFILES[profile]

    def leg(components, size):
        out = np.empty(size)
        pick = rng.random(size)
        below = 0.0
        for weight, kind, *params in components:
            chosen = (pick >= below) & (pick < below + weight)
            u = 1.0 - rng.random(int(chosen.sum()))  # in (0, 1]
            if kind == "pareto":
                xm, alpha = params
                out[chosen] = xm / u ** (1.0 / alpha)
            else:
                out[chosen] = -np.log(u) / params[0]
            below += weight
        return out

    shape = (trials, 3)
    w, a, r, s = (leg(prof.legs[x], shape) for x in ("w", "a", "r", "s"))
    if prof.cross_dc_ms:
        writer = rng.integers(0, 3, trials)[:, None]
        reader = rng.integers(0, 3, trials)[:, None]
        replica = np.arange(3)[None, :]
        w = w + prof.cross_dc_ms * (replica != writer)
        a = a + prof.cross_dc_ms * (replica != writer)
        r = r + prof.cross_dc_ms * (replica != reader)
        s = s + prof.cross_dc_ms * (replica != reader)
    commit = np.sort(w + a, axis=1)[:, 0]
    first = np.argsort(r + s, axis=1, kind="stable")[:, 0]
    rows = np.arange(trials)
    t_star = w[rows, first] - r[rows, first] - commit
    return np.array([np.mean(t_star <= t) for t in t_ms])


@pytest.mark.parametrize("profile", list(PUBLISHED))
def test_monte_carlo_agrees_with_a_plain_implementation_of_the_model(profile):
    times = (0.0, 1.0, 10.0, 100.0)
    plain = reference_wars(profile, 200_000, 11, times)
    fast = wars(3, 1, 1, profile, trials=1_000_000, seed=1, t_ms=times)
    for t, expected in zip(times, plain, strict=True):
        p = fast.p_consistent[t]
        error = math.sqrt(max(p * (1 - p), 1e-6) * (1 / 200_000 + 1 / 1_000_000))
        assert abs(p - expected) <= 4 * error + 1e-6, (profile, t, p, expected)


def test_lnkd_disk_reaches_999_later_than_the_published_45_5_ms():
    # Documented disagreement (README, capsim fidelity): with the paper's own lnkd-disk
    # fit, 99.9% of reads are consistent only at about 52 ms; at 45.5 ms, 99.87%. The
    # plain implementation above says the same, so it is the model, not this code.
    fast = wars(3, 1, 1, "lnkd-disk", trials=1_000_000, seed=2, t_ms=(45.5, 60.0))
    plain = reference_wars("lnkd-disk", 200_000, 12, (45.5,))[0]
    assert 0.9985 < fast.p_consistent[45.5] < 0.9990
    assert abs(plain - fast.p_consistent[45.5]) < 4 * math.sqrt(0.0013 / 200_000)
    assert 48.0 < fast.t_visibility_ms[0.999] < 57.0
    assert fast.p_consistent[60.0] > 0.999


def test_a_seed_gives_the_same_trials_and_another_seed_others():
    one = wars(3, 1, 1, "ymmr", trials=300_000, seed=9, t_ms=(0,))
    again = wars(3, 1, 1, "ymmr", trials=300_000, seed=9, t_ms=(0,))
    other = wars(3, 1, 1, "ymmr", trials=300_000, seed=10, t_ms=(0,))
    assert one.t_star.tobytes() == again.t_star.tobytes()
    assert one.t_star.tobytes() != other.t_star.tobytes()


# -- profiles in scenario files ----------------------------------------------------------------


def test_a_profile_sets_the_wars_message_kinds_of_a_scenario():
    sc = parse_scenario({"network": {"latency": {"profile": "lnkd-disk"}}})
    kinds = sc.network.latency.kinds
    assert set(kinds) == {"write", "ack", "read", "read_reply"}
    write = kinds["write"].same_zone
    (w1, pareto), (w2, exponential) = write.components
    assert (w1, pareto.xm, pareto.alpha) == (0.38, 0.00105, 1.51)
    assert (w2, exponential.mean_s) == (0.62, pytest.approx(1 / 183))
    assert kinds["write"].cross_zone == write  # one datacenter: no extra between zones
    ack = kinds["ack"].same_zone
    assert [w for w, _ in ack.components] == [0.9122, 0.0878]
    assert ack.components[1][1].mean_s == pytest.approx(1 / 1660)
    wan = parse_scenario({"network": {"latency": {"profile": "wan"}}}).network.latency.kinds
    for kind in ("write", "ack", "read", "read_reply"):
        assert wan[kind].same_zone.shift == 0.0
        assert wan[kind].cross_zone.shift == 0.075
        assert wan[kind].cross_zone.components == wan[kind].same_zone.components


def test_kinds_given_beside_a_profile_override_it_class_by_class_and_dumps_load_back():
    sc = parse_scenario(
        {
            "network": {
                "latency": {
                    "profile": "ymmr",
                    "kinds": {"read": {"same_zone": "2ms"}, "ping": "3ms"},
                }
            }
        }
    )
    kinds = sc.network.latency.kinds
    assert kinds["read"].same_zone.value == 0.002
    assert kinds["read"].cross_zone == kinds["ack"].cross_zone  # ymmr's A, R, S
    assert kinds["ping"].same_zone.value == 0.003
    assert parse_scenario(yaml.safe_load(dump_scenario(sc))) == sc
    assert "profile" not in dump_scenario(parse_scenario({}))


def test_an_unknown_profile_is_one_clear_error():
    with pytest.raises(ScenarioError) as info:
        parse_scenario({"network": {"latency": {"profile": "lnkd-tape"}}})
    message = str(info.value)
    assert "network.latency.profile" in message and "lnkd-ssd, lnkd-disk, ymmr, wan" in message
    assert "\n" not in message


# -- capsim pbs ----------------------------------------------------------------------------


def pbs_json(capsys, *args: str) -> dict:
    assert main(["pbs", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_pbs_json_has_the_issues_shape_and_values(capsys):
    out = pbs_json(
        capsys, "--n", "3", "--r", "1", "--w", "1", "--profile", "lnkd-disk",
        "--t", "0,10,45.5", "--k", "1,3", "--trials", "200000",
    )  # fmt: skip
    assert list(out) == [
        "n", "r", "w", "k_staleness", "p_consistent", "t_visibility_ms", "latency_ms",
    ]  # fmt: skip
    assert (out["n"], out["r"], out["w"]) == (3, 1, 1)
    assert out["k_staleness"] == {"1": pytest.approx(2 / 3), "3": pytest.approx(8 / 27)}
    assert list(out["p_consistent"]) == ["0", "10", "45.5"]  # as given
    assert abs(out["p_consistent"]["0"] - 0.439) < 0.015
    assert out["p_consistent"]["0"] < out["p_consistent"]["10"] < out["p_consistent"]["45.5"]
    assert list(out["t_visibility_ms"]) == ["0.999"]
    assert 40 < out["t_visibility_ms"]["0.999"] < 70
    for op in ("read", "write"):
        assert list(out["latency_ms"][op]) == ["p50", "p99", "p999"]
        p = out["latency_ms"][op]
        assert 0 < p["p50"] < p["p99"] < p["p999"]


def test_pbs_prints_the_same_bytes_for_the_same_seed(capsys):
    args = [
        "pbs",
        "--n",
        "5",
        "--r",
        "2",
        "--w",
        "2",
        "--latency",
        "{dist: exponential, mean: 2ms}",
    ]
    outputs = []
    for _ in range(2):
        assert main([*args, "--trials", "100000", "--t", "0,1"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert "N=5 R=2 W=2" in outputs[0] and "t=0" in outputs[0] and "k=1" in outputs[0]
    assert "P(consistent) >= 0.999 at t =" in outputs[0]


def test_pbs_custom_legs_follow_the_closed_form(capsys):
    out = pbs_json(
        capsys, "--n", "3", "--r", "1", "--w", "1",
        "--latency", "0ms", "--write-latency", "{dist: exponential, mean: 10ms}",
        "--t", "0,10", "--trials", "400000", "--seed", "4",
    )  # fmt: skip
    assert out["p_consistent"]["0"] == pytest.approx(p_slow_writes(0), abs=0.004)
    assert out["p_consistent"]["10"] == pytest.approx(p_slow_writes(10), abs=0.004)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n", "3", "--r", "4", "--w", "1", "--profile", "wan"], "--r: must be at most --n"),
        (["--n", "3", "--r", "1", "--w", "1"], "give a latency"),
        (["--n", "3", "--r", "1", "--w", "1", "--profile", "wan", "--latency", "1ms"], "not both"),
        (["--n", "3", "--r", "1", "--w", "1", "--write-latency", "1ms"], "--ack-latency: missing"),
        (["--n", "3", "--r", "1", "--w", "1", "--latency", "{dist: lognormal}"], "--latency:"),
        (["--n", "3", "--r", "1", "--w", "1", "--latency", "{dist: [1"], "not valid YAML"),
        (["--n", "3", "--r", "1", "--w", "1", "--profile", "wan", "--t", "1,x"], "--t: expected"),
        (["--n", "3", "--r", "1", "--w", "1", "--profile", "wan", "--t", "-1"], "--t: expected"),
        (["--n", "3", "--r", "1", "--w", "1", "--profile", "wan", "--k", "0"], "--k: expected"),
        (["--n", "3", "--r", "1", "--w", "1", "--profile", "wan", "--target", "2"], "--target"),
        (["--n", "2000", "--r", "1", "--w", "1", "--profile", "wan"], "--n: at most 1000"),
        (["--n", "3", "--r", "1", "--w", "1", "--profile", "tape"], "invalid choice"),
        (["--n", "0", "--r", "1", "--w", "1", "--profile", "wan"], "positive integer"),
        (
            ["--n", "3", "--r", "1", "--w", "1", "--profile", "wan", "--trials", "200000000"],
            "--trials: at most",
        ),
        (["--r", "1", "--w", "1", "--profile", "wan"], "--n"),
    ],
)
def test_pbs_bad_input_is_one_line_and_status_2(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        status = main(["pbs", *args])
        raise SystemExit(status)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
