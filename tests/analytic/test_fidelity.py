"""``capsim fidelity --quick``: every comparison of the simulator with the models, run once
for the module, and what its table says."""

from __future__ import annotations

import json

import pytest

from capsim.analytic.fidelity import KNOWN, PARTIAL_SETTINGS, WARS_SETTINGS, Row, format_table
from capsim.cli import main


@pytest.fixture(scope="module")
def fidelity():
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = main(["fidelity", "--quick", "--json"])
    return status, json.loads(out.getvalue())


def rows_of(report, section):
    return [row for row in report["rows"] if row["section"] == section]


def test_every_comparison_is_in_the_table(fidelity):
    _, report = fidelity
    assert len(rows_of(report, "published")) == 5  # four profiles at t = 0, one t for 99.9%
    assert len(rows_of(report, "des")) == 4 * len(WARS_SETTINGS)  # two t's, two medians
    assert len(rows_of(report, "partial")) == 3 * len(PARTIAL_SETTINGS)  # k = 1, 2, 3
    assert len(rows_of(report, "churn")) == 6  # container, majority, operations; N = 3, 5
    for row in report["rows"]:
        if row["status"] != "info":
            lo, hi = row["interval"]
            assert lo <= hi and (row["status"] == "pass") == (lo <= row["model"] <= hi), row


@pytest.mark.parametrize("section", ["published", "des", "partial"])
def test_the_simulator_and_the_monte_carlo_agree_with_the_models(fidelity, section):
    _, report = fidelity
    for row in rows_of(report, section):
        assert row["status"] == "pass" or (row["status"] == "known" and row["name"] in KNOWN), row


def test_churn_keeps_a_majority_up_as_often_as_the_binomial_says(fidelity):
    _, report = fidelity
    for row in rows_of(report, "churn"):
        if row["status"] != "info":
            assert row["status"] == "pass", row


def test_operations_served_under_churn_are_reported_with_what_they_lost(fidelity):
    _, report = fidelity
    served = [row for row in rows_of(report, "churn") if row["status"] == "info"]
    assert [row["name"] for row in served] == ["N=3: operations served", "N=5: operations served"]
    for row in served:
        assert 0 < row["simulated"] <= 1 and "not served" in row["note"]
        assert "no leader" in row["note"]


def test_exit_status_says_whether_a_comparison_failed_and_the_text_table_reads(fidelity):
    status, report = fidelity
    failed = report["counts"]["fail"]
    assert status == (1 if failed else 0)
    rows = [
        Row(
            r["section"],
            r["name"],
            r["model"],
            r["simulated"],
            tuple(r["interval"]) if r["interval"] else None,
            r["status"],
            r["unit"] or "",
            r["note"] or "",
        )
        for r in report["rows"]
    ]
    text = format_table(rows)
    assert "Published PBS figures" in text and "vs PBS k-staleness" in text
    assert text.splitlines()[-1].startswith(f"{report['counts']['pass']} pass, {failed} fail")
    first = next(line for line in text.splitlines() if "lnkd-ssd: P(consistent), t = 0" in line)
    assert first.split()[-1] in ("pass", "fail") and "0.9740" in first
