"""Latency distributions: parameters, means and shapes of the draws, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from capsim.distributions import Distribution, draws
from capsim.schema import to_data

DIST = TypeAdapter(Distribution)
N = 200_000


def sample(spec, n=N, seed=1):
    return DIST.validate_python(spec).sample(np.random.default_rng(seed), n)


def test_bare_duration_is_a_constant():
    dist = DIST.validate_python("3ms")
    assert np.all(dist.sample(np.random.default_rng(0), 4) == 0.003)


def test_uniform_bounds_and_mean():
    x = sample({"dist": "uniform", "low": "1ms", "high": "3ms"})
    assert x.min() >= 0.001 and x.max() < 0.003
    assert x.mean() == pytest.approx(0.002, rel=0.01)


def test_exponential_by_mean_or_rate():
    by_mean = sample({"dist": "exponential", "mean": "2ms"})
    by_rate = sample({"dist": "exponential", "rate": "0.5/ms"})
    for x in (by_mean, by_rate):
        assert x.mean() == pytest.approx(0.002, rel=0.02)
        assert np.median(x) == pytest.approx(0.002 * math.log(2), rel=0.02)


def test_lognormal_median_and_mean():
    x = sample({"dist": "lognormal", "median": "2ms", "sigma": 0.5})
    assert np.median(x) == pytest.approx(0.002, rel=0.02)
    assert x.mean() == pytest.approx(0.002 * math.exp(0.125), rel=0.02)


def test_pareto_scale_and_tail():
    # P(X > x) = (xm / x) ** alpha; with xm = 1 ms, alpha = 2: P(X > 2 ms) = 0.25.
    x = sample({"dist": "pareto", "xm": "1ms", "alpha": 2})
    assert x.min() >= 0.001
    assert (x > 0.002).mean() == pytest.approx(0.25, abs=0.005)
    assert DIST.validate_python(
        {"dist": "pareto", "xm": "1ms", "alpha": 2}
    ).mean() == pytest.approx(0.002)


def test_mixture_weights_and_shift():
    spec = {
        "dist": "mixture",
        "shift": "75ms",
        "components": [
            {"weight": 0.25, "dist": "constant", "value": "1ms"},
            {"weight": 0.75, "dist": "constant", "value": "5ms"},
        ],
    }
    x = sample(spec)
    assert set(np.round(x, 9).tolist()) == {0.076, 0.08}
    assert (np.round(x, 9) == 0.076).mean() == pytest.approx(0.25, abs=0.005)
    assert DIST.validate_python(spec).mean() == pytest.approx(0.075 + 0.25 * 0.001 + 0.75 * 0.005)


def test_draws_iterate_blocks_reproducibly():
    dist = DIST.validate_python({"dist": "exponential", "mean": "1ms"})
    a = draws(dist, np.random.default_rng(5), block=16)
    b = draws(dist, np.random.default_rng(5), block=16)
    assert [next(a) for _ in range(50)] == [next(b) for _ in range(50)]


def test_to_data_round_trips():
    spec = {
        "dist": "mixture",
        "components": [
            {"weight": 0.9122, "dist": "pareto", "xm": "0.235ms", "alpha": 10},
            {"weight": 0.0878, "dist": "exponential", "rate": "1.66/ms"},
        ],
    }
    dist = DIST.validate_python(spec)
    assert DIST.validate_python(to_data(dist)) == dist


@pytest.mark.parametrize(
    "bad",
    [
        {"dist": "gaussian", "mean": 1},
        {"dist": "uniform", "low": "3ms", "high": "1ms"},
        {"dist": "exponential"},
        {"dist": "exponential", "mean": "1ms", "rate": 5},
        {"dist": "pareto", "xm": "1ms", "alpha": 0},
        {"dist": "lognormal", "median": "-1ms", "sigma": 1},
        {"dist": "mixture", "components": [{"weight": 0.5, "dist": "constant", "value": 1}]},
        {"dist": "constant", "value": "1ms", "typo": 1},
        "-5ms",
    ],
)
def test_nonsense_is_rejected(bad):
    with pytest.raises(ValidationError):
        DIST.validate_python(bad)
