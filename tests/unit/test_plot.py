"""capsim.plot and `capsim plot`: what each plot shows, checked on the Figure objects.

The run fixture is a real run of the quickstart shortened to 3 s with its partition from
1 s to 2 s; the sweep fixture is a small hand-written folder in the format `capsim sweep`
writes (aggregate.csv, results.csv, sweep.json, cells/), with values chosen so that the
expected points, intervals and Pareto frontier can be worked out by hand.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.collections import PathCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.patches import FancyArrowPatch

from capsim import plot
from capsim.cli import main

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "scenarios" / "quickstart.yaml")

# --- fixtures -----------------------------------------------------------------------------


def make_run(folder: Path, *extra: str) -> Path:
    """The quickstart for 3 s, its minority partition from 1 s to 2 s, every message
    recorded."""
    status = main(
        [
            "run",
            QUICKSTART,
            "--set",
            "duration=3s",
            "--set",
            "faults[0].at=1s",
            "--set",
            "faults[0].duration=1s",
            "--trace",
            "--quiet",
            "--out",
            str(folder),
            *extra,
        ]
    )
    assert status == 0
    return folder


POLICIES = [
    "{name: raft}",
    "{name: quorum, params: {r: 1, w: 1}}",
    "{name: quorum, params: {r: 2, w: 2}}",
]
LENGTHS = ["2s", "5s"]
#: cell -> (stale-read fraction, minority availability): cells 0 and 1 coincide at (0, 0);
#: against "lower x, higher y" the frontier is cells 0, 1, 4 and 2 (3 is beaten by 2,
#: 5 by 4).
CELLS = {
    0: (0.0, 0.0),
    1: (0.0, 0.0),
    2: (0.08, 1.0),
    3: (0.15, 0.98),
    4: (0.02, 0.30),
    5: (0.05, 0.25),
}
STALE = "staleness.stale_read_fraction"
MINORITY = "availability.by_side.minority"
PERCENTILES = ("p50", "p90", "p99", "p999")


def cell_metrics(cell: int) -> dict[str, float]:
    stale, minority = CELLS[cell]
    values = {"availability.overall": 0.7 + 0.3 * minority, MINORITY: minority, STALE: stale}
    for which, k in (("read", 1), ("write", 2)):
        for p, f in zip(PERCENTILES, (1, 1.5, 3, 6), strict=True):
            values[f"latency_ms.{which}.{p}"] = (1 + cell) * k * f
    return values


def visibility_bins(stale: float) -> list[dict]:
    """100 pairs per bin, the fraction fresh growing with t: 1 - 4 * stale / (i + 1) in
    bin i, to two decimals (a whole number of fresh pairs, as a real curve has)."""
    edges = [(0, 1), (1, 2), (2, 5), (5, 10), (10, 20), (20, 50), (50, 100), (100, None)]
    return [
        {"t_ms": lo, "t_to_ms": hi, "pairs": 100, "p": round(1 - stale * 4 / (i + 1), 2)}
        for i, (lo, hi) in enumerate(edges)
    ]


def write_sweep(folder: Path, seeds: int = 3) -> Path:
    """A sweep folder of 6 cells (policy x partition length) and 3 seeds; the run of
    cell 5 with seed 2 failed. Intervals are the mean +- 0.02 (never below 0)."""
    folder.mkdir(parents=True)
    (folder / "cells").mkdir()
    grid = {"policy": POLICIES, "faults[0].duration": LENGTHS}
    manifest = {"scenario": "cap.yaml", "grid": grid, "seeds": list(range(seeds))}
    (folder / "sweep.json").write_text(json.dumps(manifest))
    metrics = list(cell_metrics(0))
    columns = ["cell", "policy", "faults[0].duration", "seeds", "failed"]
    for m in metrics:
        columns += [m, f"{m}.ci_low", f"{m}.ci_high"]
    aggregate, results = [], []
    for cell in CELLS:
        values = cell_metrics(cell)
        row = {
            "cell": cell,
            "policy": POLICIES[cell // 2],
            "faults[0].duration": LENGTHS[cell % 2],
            "seeds": seeds,
            "failed": int(cell == 5),
        }
        for m, v in values.items():
            row[m], row[f"{m}.ci_low"], row[f"{m}.ci_high"] = v, max(v - 0.02, 0), v + 0.02
        aggregate.append(row)
        for seed in range(seeds):
            failed = cell == 5 and seed == 2
            results.append(
                {
                    "cell": cell,
                    "policy": row["policy"],
                    "faults[0].duration": row["faults[0].duration"],
                    "seed": seed,
                    "status": "failed" if failed else "ok",
                    **{m: "" if failed else v for m, v in values.items()},
                }
            )
            run = {
                "cell": cell,
                "seed": seed,
                "status": "ok",
                "summary": {"staleness": {"t_visibility": visibility_bins(values[STALE])}},
            }
            if failed:  # a run that raised: no summary, one line of error
                run.update(status="failed", error="ValueError: boom at t=1.2 s", summary=None)
            (folder / "cells" / f"{cell}-{seed}.json").write_text(json.dumps(run))
    for name, header, rows in (
        ("aggregate.csv", columns, aggregate),
        (
            "results.csv",
            ["cell", "policy", "faults[0].duration", "seed", "status", *metrics],
            results,
        ),
    ):
        with open(folder / name, "w", newline="") as handle:
            writer = csv.DictWriter(handle, header)
            writer.writeheader()
            writer.writerows(rows)
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("plot") / "run")


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    return write_sweep(tmp_path_factory.mktemp("plot") / "sweep")


def messages_in(run: Path, start: float, stop: float) -> list[dict]:
    lines = (run / "messages.jsonl").read_text().splitlines()
    return [m for m in map(json.loads, lines) if start <= m["sent_at"] <= stop]


# --- the Pareto frontier --------------------------------------------------------------------

POINTS = [(1, 1), (2, 2), (3, 2), (3, 3), (4, 5), (2, 1.5)]


def test_pareto_front_on_hand_made_points():
    # Higher x and lower y better: (2, 2) loses to (2, 1.5), (3, 3) to (3, 2).
    assert plot.pareto_front(POINTS, ("high", "low")) == [0, 5, 2, 4]
    # Lower x and higher y better: (2, 1.5) loses to (2, 2), (3, 2) to (2, 2).
    assert plot.pareto_front(POINTS, ("low", "high")) == [0, 1, 3, 4]
    # Equal points do not dominate each other; a point beaten in both is off.
    assert plot.pareto_front([(1, 1), (1, 1), (0, 0)], ("high", "high")) == [0, 1]


def test_which_way_is_better_follows_the_metric_name():
    assert plot.better_direction("availability.by_side.minority") == "high"
    assert plot.better_direction("staleness.stale_read_fraction") == "low"
    assert plot.better_direction("latency_ms.write.p99") == "low"
    assert plot.better_direction("durability.lost_writes") == "low"
    assert plot.better_direction("workload.rate") is None
    assert plot.parse_better("x:high,y:low") == {"x": "high", "y": "low"}
    with pytest.raises(plot.PlotError):
        plot.parse_better("x:up")


# --- tradeoff -----------------------------------------------------------------------------------


def test_tradeoff_points_intervals_hue_and_frontier(sweep_dir):
    fig = plot.tradeoff(sweep_dir, STALE, MINORITY, hue="policy")
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 3  # one series per policy
    points = {}
    for container in bars:
        line, _, (xbars, ybars) = container
        for x, y, xseg, yseg in zip(
            line.get_xdata(),
            line.get_ydata(),
            xbars.get_segments(),
            ybars.get_segments(),
            strict=True,
        ):
            points[(float(x), float(y))] = (xseg, yseg)
        assert len(line.get_xdata()) == 2  # each policy has two partition lengths
    assert set(points) == {tuple(map(float, p)) for p in CELLS.values()}
    # Cell 2 (0.08, 1.0): bars from mean - 0.02 to mean + 0.02 in both directions.
    xseg, yseg = points[(0.08, 1.0)]
    assert xseg[:, 0].tolist() == pytest.approx([0.06, 0.10])
    assert yseg[:, 1].tolist() == pytest.approx([0.98, 1.02])
    # The frontier, lower x and higher y better: cells 0 and 1 at (0, 0), 4, then 2;
    # the staircase turns at the corners both neighbours dominate.
    (frontier,) = [line for line in ax.lines if line.get_gid() == "pareto-frontier"]
    assert list(frontier.get_xdata()) == pytest.approx([0, 0, 0, 0.02, 0.02, 0.08, 0.08])
    assert list(frontier.get_ydata()) == pytest.approx([0, 0, 0, 0, 0.3, 0.3, 1.0])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("better: lower x, higher y" in t and "4 of 6 cells" in t for t in legend)
    assert {"policy = raft", "policy = quorum {r: 1, w: 1}"} <= set(legend)
    assert ax.get_xlabel().startswith(f"{STALE} (fraction of ok reads)")
    assert ax.get_ylabel().startswith(f"{MINORITY} (fraction served, 0 to 1)")
    assert "higher is better" in ax.get_ylabel()
    assert "95% confidence" in ax.get_title()
    assert "1 run(s) failed" in " ".join(t.get_text() for t in fig.texts)


def test_tradeoff_needs_a_direction_it_cannot_infer(sweep_dir, tmp_path, capsys):
    # A column whose name says nothing of which way is better: the user says.
    copy = tmp_path / "sweep"
    shutil.copytree(sweep_dir, copy)
    text = (copy / "aggregate.csv").read_text().replace("availability.overall", "goodput")
    (copy / "aggregate.csv").write_text(text)
    with pytest.raises(plot.PlotError, match="--better y:high"):
        plot.tradeoff(copy, STALE, "goodput")
    fig = plot.tradeoff(copy, STALE, "goodput", better={"y": "high"})
    (frontier,) = [line for line in fig.axes[0].lines if line.get_gid() == "pareto-frontier"]
    # goodput = 0.7 + 0.3 * minority: the same order as minority availability.
    assert frontier.get_xdata()[-1] == pytest.approx(0.08)
    assert frontier.get_ydata()[-1] == pytest.approx(1.0)


# --- timeline ------------------------------------------------------------------------------------


def test_timeline_panels_units_outcomes_and_fault_shading(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    fig = plot.timeline(run_dir)
    avail, lat, stale = fig.axes[:3]
    assert "fraction served" in avail.get_ylabel()
    assert "latency (ms" in lat.get_ylabel()
    assert "fraction of ok reads" in stale.get_ylabel()
    assert stale.get_xlabel() == "simulated time (s)"
    # The partition from 1 s to 2 s is shaded on every panel.
    for ax in (avail, lat, stale):
        (span,) = [p for p in ax.patches if p.get_gid() == "fault-0"]
        assert (span.get_x(), span.get_x() + span.get_width()) == pytest.approx((1.0, 2.0))
    assert any(t.get_text().strip() == "#0 partition" for t in avail.texts)
    # One point per operation of the main phase, by outcome, as the summary counts them.
    scatter = {
        c.get_gid(): len(c.get_offsets()) for c in lat.collections if isinstance(c, PathCollection)
    }
    ops = summary["ops"]
    assert scatter == {
        "latency-ok": ops["ok"],
        "latency-fail": ops["fail"],
        "latency-info": ops["info"],
    }
    # Availability per 0.1 s window (3 s: 30 windows); the minority side is never served
    # and the majority side always (single-primary is CP), only while the partition holds.
    lines = {line.get_label(): line for line in avail.lines}
    assert len(lines["all clients"].get_xdata()) == 30
    for label, expected in (
        ("majority side of a partition", 1.0),
        ("minority side of a partition", 0.0),
    ):
        line = lines[label]
        shown = [(x, y) for x, y in zip(line.get_xdata(), line.get_ydata(), strict=True) if y == y]
        assert shown and all(y == expected for _, y in shown)
        assert all(1.0 < x < 2.0 for x, _ in shown)
    # Single-primary's primary n1 takes office once, at the start (roles.jsonl, when the
    # run writes one): one mark on each panel.
    if (run_dir / "roles.jsonl").exists():
        for ax in (avail, lat, stale):
            marks = [ln.get_xdata()[0] for ln in ax.lines if ln.get_gid() == "leader-change"]
            assert marks == [0.0]
    # A longer window: fewer points.
    fig = plot.timeline(run_dir, window=0.5)
    assert len(fig.axes[0].lines[0].get_xdata()) == 6


def test_timeline_marks_leader_changes_from_roles_jsonl(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    roles = [
        {"time": 0.0, "node": "n1", "shard": 0, "role": "primary", "term": 1},
        {"time": 1.4, "node": "n4", "shard": 0, "role": "follower", "term": 1},
        {"time": 1.6, "node": "n1", "shard": 0, "role": "primary", "term": 1},  # no change
        {"time": 2.5, "node": "n2", "shard": 0, "role": "leader", "term": 2},
        {"time": 2.7, "node": "n2", "shard": 0, "role": None, "term": 2},  # crashed
        {"time": 2.9, "node": "n3", "shard": 0, "role": "leader", "term": 3},
    ]
    (copy / "roles.jsonl").write_text("".join(json.dumps(r) + "\n" for r in roles))
    fig = plot.timeline(copy)
    for ax in fig.axes[:3]:
        marks = [ln.get_xdata()[0] for ln in ax.lines if ln.get_gid() == "leader-change"]
        assert marks == [0.0, 2.5, 2.9]  # a follower, or the same leader again, is no change
    labels = [t.get_text() for t in fig.axes[1].texts]
    assert {"n1 t1", "n2 t2", "n3 t3"} <= set(labels)
    # Without roles.jsonl (a run from before it existed): no marks, no error.
    (copy / "roles.jsonl").unlink()
    fig = plot.timeline(copy)
    assert not [ln for ax in fig.axes for ln in ax.lines if ln.get_gid() == "leader-change"]


# --- messages --------------------------------------------------------------------------------


def test_messages_one_arrow_per_message_in_the_window_drops_dashed(run_dir):
    start, stop = 0.99, 1.01
    expected = messages_in(run_dir, start, stop)
    dropped = [m for m in expected if m["outcome"] != "delivered"]
    assert expected and dropped  # the partition starts at 1 s and cuts some
    fig = plot.messages(run_dir, start=start, stop=stop)
    ax = fig.axes[0]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert sorted(p.get_gid() for p in arrows) == sorted(f"message-{m['id']}" for m in expected)
    assert sum(p.get_linestyle() == "--" for p in arrows) == len(dropped)
    names = {t.get_text() for t in ax.get_yticklabels()}
    assert names == {m["src"] for m in expected} | {m["dst"] for m in expected}
    assert f"{len(expected)} messages" in ax.get_title()
    assert "time (s)" in ax.get_xlabel()


def test_messages_cap_says_how_many_were_left_out(run_dir):
    total = len(messages_in(run_dir, 0.0, 1.0))
    fig = plot.messages(run_dir, start=0.0, stop=1.0, limit=25)
    arrows = [p for p in fig.axes[0].patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == 25
    title = fig.axes[0].get_title()
    assert f"the first 25 of {total:,} messages" in title and "CAPPED" in title
    # The 25 drawn are the earliest sent.
    earliest = sorted(messages_in(run_dir, 0.0, 1.0), key=lambda m: (m["sent_at"], m["id"]))
    assert {p.get_gid() for p in arrows} == {f"message-{m['id']}" for m in earliest[:25]}


# --- visibility and latency ------------------------------------------------------------------


def test_visibility_of_a_run_and_of_a_sweep(run_dir, sweep_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    bins = [b for b in summary["staleness"]["t_visibility"] if b["pairs"] and b["p"] is not None]
    fig = plot.visibility([run_dir])
    ax = fig.axes[0]
    (line,) = ax.lines
    assert line.get_ydata().tolist() == [b["p"] for b in bins]
    assert "(ms, log scale)" in ax.get_xlabel()
    assert "fraction of write-read pairs" in ax.get_ylabel()
    fig = plot.visibility([sweep_dir])
    lines = fig.axes[0].lines
    assert len(lines) == 6  # one per cell
    # Cell 3 (stale fraction 0.15): p = 1 - 0.6 / (i + 1) per bin i, the same each seed.
    expected = [round(1 - 0.6 / (i + 1), 2) for i in range(8)]
    assert lines[3].get_ydata().tolist() == pytest.approx(expected)
    assert "(3 runs" in lines[3].get_label() and "(2 runs" in lines[5].get_label()
    # The open last bin (100 ms and more) sits at its lower edge; the first at 0.5 ms.
    assert lines[3].get_xdata()[0] == 0.5 and lines[3].get_xdata()[-1] == 100


def test_visibility_pools_a_cells_seeds_by_their_pairs(tmp_path):
    sweep = write_sweep(tmp_path / "sweep", seeds=1)
    first = {
        "cell": 0,
        "summary": {"t_visibility": [{"t_ms": 0.0, "t_to_ms": 1.0, "pairs": 10, "p": 1.0}]},
    }
    second = {
        "cell": 0,
        "summary": {"t_visibility": [{"t_ms": 0.0, "t_to_ms": 1.0, "pairs": 30, "p": 0.5}]},
    }
    for path in (sweep / "cells").iterdir():
        path.unlink()
    (sweep / "cells" / "a.json").write_text(json.dumps(first))
    (sweep / "cells" / "b.json").write_text(json.dumps(second))
    (line,) = plot.visibility([sweep]).axes[0].lines
    # (10 * 1.0 + 30 * 0.5) fresh pairs of 40.
    assert line.get_ydata().tolist() == [pytest.approx(25 / 40)]


def test_latency_cdf_per_operation_type_of_a_run(run_dir):
    events = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    ok = {}
    for e in events:
        if e["type"] == "ok" and not e.get("final"):
            ok[e["f"]] = ok.get(e["f"], 0) + 1
    fig = plot.latency([run_dir])
    ax = fig.axes[0]
    # One curve per type; the largest value (F = 1) is given in the legend, not drawn.
    assert {ln.get_label().split(" (")[0]: len(ln.get_xdata()) for ln in ax.lines} == {
        f: n - 1 for f, n in ok.items()
    }
    for line in ax.lines:
        fractions = line.get_ydata()
        assert fractions[-1] == pytest.approx(1 - 1 / (len(fractions) + 1))
    assert "(ms" in ax.get_xlabel() and "fraction of ok operations" in ax.get_ylabel()


def test_latency_of_several_runs_and_of_a_sweep(run_dir, sweep_dir):
    fig = plot.latency([run_dir, run_dir])
    assert len(fig.axes[0].lines) == 4  # reads and updates of each run
    fig = plot.latency([sweep_dir])
    reads, updates = fig.axes[:2]
    assert len(reads.lines) == len(updates.lines) == 6
    # Cell 3: read percentiles (1 + 3) * (1, 1.5, 3, 6) ms at 0.5, 0.9, 0.99, 0.999.
    assert reads.lines[3].get_xdata().tolist() == [4, 6, 12, 24]
    assert reads.lines[3].get_ydata().tolist() == [0.5, 0.9, 0.99, 0.999]
    assert updates.lines[3].get_xdata().tolist() == [8, 12, 24, 48]


# --- the command line -------------------------------------------------------------------------


def test_plot_command_default_output_and_same_bytes(run_dir, tmp_path, capsys):
    target = run_dir / "plots" / "latency.png"
    assert main(["plot", str(run_dir), "--kind", "latency"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {target}"
    first = target.read_bytes()
    assert first.startswith(b"\x89PNG\r\n\x1a\n")
    assert main(["plot", str(run_dir), "--kind", "latency"]) == 0
    assert target.read_bytes() == first
    svgs = []
    for name in ("a.svg", "b.svg"):
        out = tmp_path / name
        assert main(["plot", str(run_dir), "--kind", "visibility", "--out", str(out)]) == 0
        svgs.append(out.read_bytes())
    assert svgs[0] == svgs[1]
    assert b"<svg" in svgs[0] and b"<dc:date>" not in svgs[0]


def test_same_bytes_in_another_process_whatever_the_users_matplotlibrc(run_dir, tmp_path):
    here = tmp_path / "here.svg"
    assert main(["plot", str(run_dir), "--kind", "latency", "--out", str(here)]) == 0
    rc = tmp_path / "matplotlibrc"
    rc.write_text("font.size: 22\nlines.linewidth: 5\nsvg.fonttype: none\naxes.grid: False\n")
    there = tmp_path / "there.svg"
    env = {**os.environ, "MATPLOTLIBRC": str(rc), "PYTHONHASHSEED": "123"}
    command = [sys.executable, "-m", "capsim", "plot", str(run_dir), "--kind", "latency"]
    result = subprocess.run([*command, "--out", str(there)], env=env, capture_output=True)
    assert result.returncode == 0, result.stderr
    assert there.read_bytes() == here.read_bytes()


def test_plot_and_report_have_help(capsys):
    for command in (["plot"], ["report"]):
        with pytest.raises(SystemExit) as info:
            main([*command, "--help"])
        assert info.value.code == 0
        text = capsys.readouterr().out
        assert "usage: capsim" in text


BAD = {
    "unknown column": (
        ["--kind", "tradeoff", "--x", "nope", "--y", MINORITY],
        "sweep",
        "--x nope: no such column",
    ),
    "non-numeric column": (
        ["--kind", "tradeoff", "--x", "policy", "--y", MINORITY],
        "sweep",
        "not a numeric column",
    ),
    "unknown hue": (
        ["--kind", "tradeoff", "--x", STALE, "--y", MINORITY, "--hue", "zone"],
        "sweep",
        "--hue zone: no such column",
    ),
    "tradeoff without --y": (["--kind", "tradeoff", "--x", STALE], "sweep", "needs --x and --y"),
    "bad --better": (
        ["--kind", "tradeoff", "--x", STALE, "--y", MINORITY, "--better", "x"],
        "sweep",
        "--better x: expected",
    ),
    "tradeoff of a run": (
        ["--kind", "tradeoff", "--x", STALE, "--y", MINORITY],
        "run",
        "is a run folder",
    ),
    "timeline of a sweep": (["--kind", "timeline"], "sweep", "needs a run folder"),
    "option of another kind": (
        ["--kind", "timeline", "--x", STALE],
        "run",
        "--x is for --kind tradeoff",
    ),
    "bad window": (["--kind", "timeline", "--window", "soon"], "run", "--window soon"),
    "zero window": (["--kind", "timeline", "--window", "0s"], "run", "must be a positive"),
    "empty message window": (["--kind", "messages", "--from", "50s"], "run", "no messages"),
    "reversed message window": (
        ["--kind", "messages", "--from", "2s", "--to", "1s"],
        "run",
        "is after",
    ),
    "missing folder": (["--kind", "timeline"], "missing", "no such folder"),
    "not a capsim folder": (["--kind", "timeline"], "empty", "neither a run folder"),
    "bad out suffix": (["--kind", "latency", "--out", "{tmp}/x.jpg"], "run", "end in .png or .svg"),
    "out folder missing": (
        ["--kind", "latency", "--out", "{tmp}/no/x.png"],
        "run",
        "does not exist",
    ),
    "no messages.jsonl": (["--kind", "messages"], "untraced", "messages.jsonl: missing"),
    "malformed summary": (["--kind", "visibility"], "bad-summary", "not valid JSON"),
    "malformed aggregate": (["--kind", "latency"], "bad-aggregate", "fields, but the header"),
    "malformed roles": (["--kind", "timeline"], "bad-roles", "roles.jsonl:2"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    case, run_dir, sweep_dir, tmp_path, capsys
):
    args, folder, words = BAD[case]
    folders = {"run": run_dir, "sweep": sweep_dir, "missing": tmp_path / "nope"}
    if folder == "empty":
        folders[folder] = tmp_path / "empty"
        folders[folder].mkdir()
    elif folder == "untraced":
        folders[folder] = tmp_path / "run"
        shutil.copytree(run_dir, folders[folder])
        (folders[folder] / "messages.jsonl").unlink()
    elif folder in ("bad-summary", "bad-roles"):
        folders[folder] = tmp_path / "run"
        shutil.copytree(run_dir, folders[folder])
        if folder == "bad-summary":
            (folders[folder] / "summary.json").write_text('{"scenario": ')
        else:
            (folders[folder] / "roles.jsonl").write_text(
                '{"time": 1, "node": "n1", "role": "leader"}\n{"time": \n'
            )
    elif folder == "bad-aggregate":
        folders[folder] = tmp_path / "sweep"
        shutil.copytree(sweep_dir, folders[folder])
        with open(folders[folder] / "aggregate.csv", "a") as handle:
            handle.write("9,raft,2s\n")
    before = (
        sorted(p.name for p in (run_dir / "plots").glob("*"))
        if (run_dir / "plots").exists()
        else []
    )
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    status = main(["plot", str(folders[folder]), *args])
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("capsim: error: "), err
    assert words in lines[0]
    assert "Traceback" not in err
    after = (
        sorted(p.name for p in (run_dir / "plots").glob("*"))
        if (run_dir / "plots").exists()
        else []
    )
    assert after == before
    assert not list(tmp_path.glob("*.jpg")) and not list(tmp_path.glob("*.png"))
