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


@pytest.mark.parametrize(
    ("text", "rate"),
    [("20/1s", 20.0), ("60/1m", 1.0), ("5/250ms", 20.0), ("3/0.5s", 6.0), ("1/2h", 1 / 7200)],
)
def test_a_number_in_the_unit_of_a_rate_is_the_length_of_the_period(text, rate):
    assert parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize("bad", ["5/0s", "5/-1s", "5/0", "5/", "1/1e-400s", "nan/s", "inf/s"])
def test_a_rate_per_no_time_at_all_is_rejected(bad):
    with pytest.raises(ValueError, match="rate|duration after '/'"):
        parse_rate(bad)


def test_integers_too_large_for_a_float_are_errors_not_crashes():
    with pytest.raises(ValueError, match="finite"):
        parse_duration(10**400)
    with pytest.raises(ValueError, match="finite"):
        parse_rate(10**400)


def test_messages_never_repeat_a_huge_input():
    with pytest.raises(ValueError) as info:
        parse_duration("x" * 100_000)
    assert len(str(info.value)) < 200
