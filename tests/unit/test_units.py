"""Durations and rates as written in scenario files."""

from __future__ import annotations

import pytest

from capsim.units import format_duration, parse_duration, parse_rate


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5ms", 0.005),
        ("2s", 2.0),
        ("1.5m", 90.0),
        ("1h", 3600.0),
        ("250us", 2.5e-4),
        (" 3 ms ", 0.003),
        (2, 2.0),
        (0.5, 0.5),
        ("1e-3s", 0.001),
        ("7", 7.0),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["abc", "5 parsecs", "", "ms", True, None, [], "nan", "inf s"])
def test_parse_duration_rejects_nonsense(bad):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize("seconds", [0.0, 0.005, 1 / 3, 12345.678, 1e-9])
def test_format_duration_round_trips_exactly(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("text", "rate"),
    [(200, 200.0), ("200/s", 200.0), ("5/ms", 5000.0), ("30/m", 0.5), ("12.5", 12.5)],
)
def test_parse_rate(text, rate):
    assert parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize("bad", ["fast", "x/s", "3/parsec", True])
def test_parse_rate_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        parse_rate(bad)
