"""Plots of runs and sweeps: matplotlib figures, saved as PNG or SVG (no GUI backend:
figures are drawn on the Agg canvas, and pyplot is never imported).

Every function reads a folder that capsim wrote and returns a
:class:`matplotlib.figure.Figure`; :func:`save` writes one, byte for byte the same for
the same input (no dates in the metadata, a fixed SVG id salt, matplotlib's default
style whatever the user's ``matplotlibrc`` says). A *run folder* holds ``summary.json``
(``capsim run --out``); a *sweep folder* holds ``sweep.json`` or ``results.csv``
(``capsim sweep --out``).

* :func:`tradeoff` (sweep): one point per cell, the mean over its seeds with the 95%
  confidence interval as error bars in x and y, coloured by a grid column, and the
  Pareto frontier of the cells (those no other cell beats in both metrics).
* :func:`timeline` (run): availability per window by side of a partition, every
  operation's latency (ok, fail and info marked differently), the stale-read fraction
  per window, fault intervals shaded and labelled (after Jepsen's latency plots) and
  leader or primary changes marked (from ``roles.jsonl`` when the run wrote one).
* :func:`visibility` (runs or sweeps): t-visibility curves, one per run or cell.
* :func:`latency` (runs or sweeps): latency CDFs, per operation type (a run), per run
  (several) or per cell (a sweep).
* :func:`messages` (a ``--trace`` run): a space-time (Lamport) diagram of
  ``messages.jsonl``.

Errors a user can cause (a missing file, an unknown column, a run folder where a sweep
folder is needed) raise :class:`PlotError`, which the command line prints as one line.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import heapq
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.style
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, Patch
from matplotlib.ticker import ScalarFormatter

from capsim.errors import CapsimError
from capsim.history import ADD, FAIL, INFO, OK, READ, History, Operations

__all__ = [
    "KINDS",
    "PlotError",
    "dir_kind",
    "pareto_front",
    "better_direction",
    "parse_better",
    "axis_label",
    "tradeoff",
    "timeline",
    "visibility",
    "latency",
    "messages",
    "plot",
    "save",
    "image_bytes",
    "read_sweep",
    "read_summary",
    "to_number",
    "compact",
    "write_atomic",
]

#: The kinds of plot ``capsim plot --kind`` draws.
KINDS = ("tradeoff", "timeline", "visibility", "latency", "messages")
#: Messages a diagram draws at most unless told otherwise (``--max-messages``).
MAX_MESSAGES = 300

_RC = {
    "svg.hashsalt": "capsim",  # SVG ids from content, not from uuid4
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "legend.framealpha": 0.9,
}
#: Colours in drawing order (matplotlib's tab10), and markers to tell series apart in grey.
COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
_FAULT_COLORS = {
    "partition": "#d62728",
    "crash": "#7f7f7f",
    "pause": "#9467bd",
    "clock": "#bcbd22",
    "link": "#ff7f0e",
    "zone-outage": "#8c564b",
    "heal": "#2ca02c",
    "restart": "#1f77b4",
    "upgrade": "#17becf",
}
_OUTCOME_STYLE = {
    # outcome: (legend text, colour, marker)
    OK: ("ok", "#1f77b4", "."),
    FAIL: ("fail (definitely not done)", "#d62728", "x"),
    INFO: ("info (timed out: unknown)", "#ff7f0e", "^"),
}


class PlotError(CapsimError):
    """A folder, file, column or option that cannot be plotted (exit status 2)."""


# --- reading what capsim wrote ------------------------------------------------------------


def dir_kind(path: str | os.PathLike) -> str:
    """``"run"`` for a folder with ``summary.json``, ``"sweep"`` for one with
    ``sweep.json`` or ``results.csv``; anything else raises :class:`PlotError`."""
    folder = Path(path)
    if not folder.exists():
        raise PlotError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise PlotError(f"{folder}: is a file, not a folder; pass a run or sweep folder")
    if (folder / "summary.json").is_file():
        return "run"
    if (folder / "sweep.json").is_file() or (folder / "results.csv").is_file():
        return "sweep"
    raise PlotError(
        f"{folder}: neither a run folder (summary.json, from capsim run --out) nor a sweep "
        "folder (sweep.json and results.csv, from capsim sweep --out)"
    )


def _need(path: Path, what: str) -> Path:
    if not path.is_file():
        raise PlotError(f"{path}: missing ({what})")
    return path


def _read_json(path: Path, what: str) -> Any:
    _need(path, what)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise PlotError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise PlotError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except OSError as exc:
        raise PlotError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-empty line of a JSON-lines file."""
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise PlotError(f"{path}:{number}: not valid JSON: {exc.msg}") from None
                if not isinstance(record, dict):
                    raise PlotError(f"{path}:{number}: expected a JSON object")
                yield number, record
    except UnicodeDecodeError:
        raise PlotError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise PlotError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _time(path: Path, number: int, record: dict[str, Any], field: str) -> float:
    value = record.get(field)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PlotError(f"{path}:{number}: '{field}' must be a finite number of seconds")
    return float(value)


def read_summary(folder: Path) -> dict[str, Any]:
    """A run folder's ``summary.json``."""
    summary = _read_json(folder / "summary.json", "the run's summary")
    if not isinstance(summary, dict):
        raise PlotError(f"{folder / 'summary.json'}: expected a JSON object")
    return summary


@functools.lru_cache(maxsize=2)
def _history(path: str, stamp: tuple[int, int]) -> Operations:
    del stamp  # part of the cache key: a rewritten file is read again
    return History.from_jsonl(path).operations()


def _operations(folder: Path) -> Operations:
    """The run's operations, read once for the several plots of a report."""
    path = _need(folder / "history.jsonl", "the run's operations; capsim run --out writes it")
    stat = path.stat()
    return _history(str(path.resolve()), (stat.st_mtime_ns, stat.st_size))


def _fault_records(folder: Path) -> list[dict[str, Any]]:
    path = _need(folder / "faults.jsonl", "the faults applied; capsim run --out writes it")
    records = []
    for number, record in _jsonl(path):
        _time(path, number, record, "time")
        if not isinstance(record.get("event"), str):
            raise PlotError(f"{path}:{number}: 'event' must be text")
        records.append(record)
    return records


def _roles(folder: Path) -> list[dict[str, Any]] | None:
    """Leader and primary changes from ``roles.jsonl`` (``None`` if the run wrote none):
    each record in which a replica becomes ``leader`` or ``primary`` of its shard, unless
    that replica already led the shard in that term and has not stepped down or crashed
    (``role`` null) since, in time order."""
    path = folder / "roles.jsonl"
    if not path.is_file():
        return None
    records = []
    for number, record in _jsonl(path):
        t = _time(path, number, record, "time")
        role = record.get("role")
        if not isinstance(role, str | None) or not isinstance(record.get("node"), str):
            raise PlotError(f"{path}:{number}: 'node' must be text and 'role' text or null")
        records.append((t, number, {**record, "time": t}))
    records.sort(key=lambda r: (r[0], r[1]))
    leading: dict[str, tuple[str, Any]] = {}
    out = []
    for _, _, record in records:
        shard = json.dumps(record.get("shard"))
        who = (record["node"], record.get("term"))
        if str(record["role"]).lower() not in ("leader", "primary"):
            if shard in leading and leading[shard][0] == record["node"]:
                del leading[shard]  # the leader stepped down or crashed (role null)
            continue
        if leading.get(shard) != who:
            leading[shard] = who
            out.append(record)
    return out


def _main_end(records: list[dict[str, Any]], ops: Operations) -> float:
    """When the main phase ended: the final phase's record, else the last invocation."""
    for record in records:
        if record.get("kind") == "final" and record.get("fault") is None:
            return float(record["time"])
    main = ~ops.final
    return float(ops.invoke_time[main].max()) if main.any() else 1.0


def _workload(ops: Operations) -> str:
    return "set" if bool((ops.f == ADD).any()) else "register"


@dataclass
class Sweep:
    """A sweep folder as tables: ``aggregate`` (one row per cell: means and 95%
    confidence intervals), ``results`` (one row per cell and seed), their ``columns``,
    the ``grid`` columns and the ``metrics`` (columns with ``.ci_low``/``.ci_high``)."""

    path: Path
    manifest: dict[str, Any] | None
    results: list[dict[str, str]]
    result_columns: list[str]
    aggregate: list[dict[str, str]]
    columns: list[str]
    grid: list[str]
    metrics: list[str]


def _read_csv(path: Path, what: str) -> tuple[list[str], list[dict[str, str]]]:
    _need(path, what)
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            try:
                header = next(reader)
            except StopIteration:
                raise PlotError(f"{path}: empty; expected a header line") from None
            if len(set(header)) != len(header):
                raise PlotError(f"{path}:1: a column name appears twice")
            rows = []
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise PlotError(
                        f"{path}:{reader.line_num}: {len(row)} fields, but the header has "
                        f"{len(header)}"
                    )
                rows.append(dict(zip(header, row, strict=True)))
    except UnicodeDecodeError:
        raise PlotError(f"{path}: not UTF-8 text") from None
    except csv.Error as exc:
        raise PlotError(f"{path}: not valid CSV: {exc}") from None
    except OSError as exc:
        raise PlotError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return header, rows


def read_sweep(path: str | os.PathLike) -> Sweep:
    """Read a sweep folder's ``aggregate.csv``, ``results.csv`` and ``sweep.json``."""
    folder = Path(path)
    if dir_kind(folder) != "sweep":
        raise PlotError(
            f"{folder}: is a run folder (summary.json); this needs a sweep folder "
            "(sweep.json, results.csv and aggregate.csv from capsim sweep --out)"
        )
    manifest = None
    if (folder / "sweep.json").is_file():
        manifest = _read_json(folder / "sweep.json", "the sweep's manifest")
    result_columns, results = _read_csv(folder / "results.csv", "one row per cell and seed")
    columns, aggregate = _read_csv(
        folder / "aggregate.csv", "per cell the mean and 95% interval of each metric"
    )
    if "cell" not in columns:
        raise PlotError(f"{folder / 'aggregate.csv'}: has no 'cell' column")
    for number, row in enumerate(aggregate, 2):
        if to_number(row["cell"]) is None:
            raise PlotError(f"{folder / 'aggregate.csv'}:{number}: 'cell' must be a number")
    metrics = [c for c in columns if f"{c}.ci_low" in columns]
    derived = {f"{m}.ci_low" for m in metrics} | {f"{m}.ci_high" for m in metrics}
    grid = [c for c in columns if c not in ("cell", "seeds", "failed") and c not in derived]
    grid = [c for c in grid if c not in metrics]
    return Sweep(folder, manifest, results, result_columns, aggregate, columns, grid, metrics)


def to_number(text: str | None) -> float | None:
    """A CSV field as a float; ``None`` for an empty, null or non-finite one."""
    if text is None:
        return None
    text = text.strip()
    if text.lower() in ("", "null", "none", "nan", "na"):
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _column(sweep: Sweep, name: str, option: str) -> list[float | None]:
    if name not in sweep.columns:
        near = [c for c in sweep.metrics + sweep.grid if name.lower() in c.lower()][:8]
        hint = f"; similar: {', '.join(near)}" if near else ""
        shown = ", ".join(sweep.metrics[:12]) + (" ..." if len(sweep.metrics) > 12 else "")
        raise PlotError(
            f"{option} {name}: no such column in {sweep.path / 'aggregate.csv'}{hint} "
            f"(metrics: {shown or 'none'})"
        )
    values = [to_number(row[name]) for row in sweep.aggregate]
    if all(v is None for v in values):
        texts = [row[name] for row in sweep.aggregate if row[name].strip()]
        if texts:
            raise PlotError(f"{option} {name}: not a numeric column (e.g. {texts[0]!r})")
        raise PlotError(f"{option} {name}: no cell has a value in this column")
    return values


def _cell_label(sweep: Sweep, row: dict[str, str], skip: Sequence[str] = ()) -> str:
    """``path=value, ...`` of a cell's grid values (not those in ``skip``)."""
    parts = [f"{c}={_short(compact(row[c]))}" for c in sweep.grid if c not in skip]
    return ", ".join(parts)


_NAMED = re.compile(r"^\{name: ([^,{}]+)(?:, params: (\{.*\}))?\}$")


def compact(value: str) -> str:
    """A grid value as a person reads it: ``{name: quorum, params: {r: 1, w: 1}}`` is
    shown as ``quorum {r: 1, w: 1}`` and ``{name: raft}`` as ``raft``."""
    match = _NAMED.match(value.strip())
    if not match:
        return value
    return match.group(1) + (f" {match.group(2)}" if match.group(2) else "")


def _short(text: str, limit: int = 40) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- what a metric means -----------------------------------------------------------------

_LOW_IS_BETTER = (
    "stale",
    "latency",
    "lost",
    "_ms",
    "violation",
    "k_mean",
    "k_max",
    "convergence",
    "recovery",
    "dropped",
    "per_op",
    "divergent",
    "unchecked",
    "read_your_writes",
    "monotonic_reads",
    "ops.fail",
    "ops.info",
)
_HIGH_IS_BETTER = ("availability", "acknowledged_writes", "ops.ok", "t_visibility", "linearizable")


def better_direction(column: str) -> str | None:
    """``"high"`` or ``"low"``: which way a metric improves, from its name (availability:
    higher; staleness, latency, lost writes, violations, convergence and recovery times,
    messages: lower); ``None`` if the name does not say."""
    name = column.lower()
    if any(word in name for word in _HIGH_IS_BETTER):
        return "high"
    if any(word in name for word in _LOW_IS_BETTER) or name.endswith("_s"):
        return "low"  # a duration: convergence_s, recovery_s
    return None


def parse_better(text: str) -> dict[str, str]:
    """``"x:high,y:low"`` as ``{"x": "high", "y": "low"}`` (either axis may be left out)."""
    out: dict[str, str] = {}
    for part in text.split(","):
        axis, _, direction = part.strip().partition(":")
        axis, direction = axis.strip().lower(), direction.strip().lower()
        if axis not in ("x", "y") or direction not in ("high", "low") or axis in out:
            raise PlotError(
                f"--better {text}: expected x:high or x:low and y:high or y:low, separated "
                "by a comma (e.g. x:high,y:low)"
            )
        out[axis] = direction
    return out


def _unit(column: str) -> str | None:
    name = column.lower()
    leaf = name.rsplit(".", 1)[-1]
    if "latency_ms" in name or leaf.endswith("_ms"):
        return "ms"
    if leaf.endswith("_s"):
        return "s"
    if "availability" in name:
        return "fraction served, 0 to 1"
    if leaf == "stale_read_fraction":
        return "fraction of ok reads"
    if "fraction" in leaf:
        return "fraction, 0 to 1"
    if leaf in ("k_mean", "k_max"):
        return "acknowledged writes missed"
    if leaf == "per_op":
        return "messages per operation"
    if leaf in (
        "total",
        "ok",
        "fail",
        "info",
        "lost_writes",
        "acknowledged_writes",
        "unchecked_writes",
        "sent",
        "delivered",
        "dropped",
        "duplicated",
        "main_phase",
        "violations",
        "reads",
        "read_your_writes",
        "monotonic_reads",
        "divergent_keys",
        "steps",
    ):
        return "count"
    return None


def axis_label(column: str, grid: bool = False) -> str:
    """An axis label for a column: its name and its unit, e.g. ``latency_ms.read.p99
    (ms)``; a grid column is labelled as such."""
    if grid:
        return f"{column} (as set in the sweep's grid)"
    unit = _unit(column)
    return f"{column} ({unit})" if unit else f"{column} (as in the run summary)"


def pareto_front(
    points: Sequence[tuple[float, float]], better: tuple[str, str] = ("high", "low")
) -> list[int]:
    """Indices of the points no other point dominates, in order of x.

    A point dominates another when it is at least as good in both coordinates and
    strictly better in one; ``better`` says, per coordinate, whether ``"high"`` or
    ``"low"`` values are better. Equal points do not dominate each other."""
    sign = [1.0 if b == "high" else -1.0 for b in better]
    scored = [(sign[0] * x, sign[1] * y) for x, y in points]
    front = []
    for i, (a, b) in enumerate(scored):
        dominated = any(
            (c >= a and d >= b) and (c > a or d > b) for j, (c, d) in enumerate(scored) if j != i
        )
        if not dominated:
            front.append(i)
    front.sort(key=lambda i: (points[i][0], points[i][1]))
    return front


def _staircase(
    points: list[tuple[float, float]], better: tuple[str, str]
) -> tuple[list[float], list[float]]:
    """The frontier's boundary: through each frontier point (sorted by x), turning at the
    corner that both neighbours dominate, so the line encloses what the cells achieve."""
    sign = [1.0 if b == "high" else -1.0 for b in better]

    def at_least_as_good(p, q):  # p is no worse than q in both coordinates
        return sign[0] * p[0] >= sign[0] * q[0] and sign[1] * p[1] >= sign[1] * q[1]

    xs, ys = [points[0][0]], [points[0][1]]
    for (x1, y1), (x2, y2) in zip(points, points[1:], strict=False):
        corner = (x1, y2)
        if not (at_least_as_good((x1, y1), corner) and at_least_as_good((x2, y2), corner)):
            corner = (x2, y1)
        xs += [corner[0], x2]
        ys += [corner[1], y2]
    return xs, ys


# --- figures -----------------------------------------------------------------------------


@contextlib.contextmanager
def _style() -> Iterator[None]:
    """matplotlib's default style and capsim's settings, whatever the user's rc says."""
    with matplotlib.style.context("default"), matplotlib.rc_context(_RC):
        yield


def _styled(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _style():
            return fn(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _run_name(folder: Path, summary: dict[str, Any]) -> str:
    return f"{summary.get('scenario', folder.name)} ({summary.get('policy', '?')}, " + (
        f"seed {summary.get('seed', '?')})"
    )


@_styled
def tradeoff(
    path: str | os.PathLike,
    x: str,
    y: str,
    hue: str | None = None,
    better: dict[str, str] | None = None,
) -> Figure:
    """One point per cell of a sweep: the mean of metric ``x`` against the mean of
    metric ``y`` over the cell's seeds, with the 95% confidence intervals from
    ``aggregate.csv`` as error bars, coloured by the grid column ``hue``, and the Pareto
    frontier of the cells drawn.

    ``better`` maps ``"x"`` and ``"y"`` to ``"high"`` or ``"low"``; by default each is
    inferred from the metric's name (:func:`better_direction`), and a name that does
    not say is an error asking for it. Cells without a value for ``x`` or ``y`` are left
    out, with a note."""
    sweep = read_sweep(path)
    xs, ys = _column(sweep, x, "--x"), _column(sweep, y, "--y")
    if hue is not None and hue not in sweep.columns:
        raise PlotError(
            f"--hue {hue}: no such column in {sweep.path / 'aggregate.csv'} "
            f"(grid columns: {', '.join(sweep.grid) or 'none'})"
        )
    directions = []
    for axis, column in (("x", x), ("y", y)):
        direction = (better or {}).get(axis) or better_direction(column)
        if direction is None:
            raise PlotError(
                f"--{axis} {column}: cannot tell whether a higher or a lower value is "
                f"better; pass --better {axis}:high or --better {axis}:low"
            )
        directions.append(direction)
    better_xy = (directions[0], directions[1])

    def interval(column: str, row: dict[str, str], mean: float) -> tuple[float, float]:
        low = to_number(row.get(f"{column}.ci_low"))
        high = to_number(row.get(f"{column}.ci_high"))
        if low is None or high is None:
            return 0.0, 0.0
        return max(mean - low, 0.0), max(high - mean, 0.0)

    cells = []
    for row, vx, vy in zip(sweep.aggregate, xs, ys, strict=True):
        if vx is None or vy is None:
            continue
        cells.append((row, vx, vy, interval(x, row, vx), interval(y, row, vy)))
    left_out = len(sweep.aggregate) - len(cells)
    if not cells:
        raise PlotError(f"no cell of {sweep.path} has a value for both {x} and {y}")

    fig = _figure(8.5, 6.2)
    ax = fig.add_subplot()
    groups: dict[str, list] = {}
    for cell in cells:
        key = cell[0][hue] if hue else ""
        groups.setdefault(key, []).append(cell)
    for n, (key, members) in enumerate(groups.items()):
        label = f"{hue} = {_short(compact(key))}" if hue else "cell (mean over seeds)"
        ax.errorbar(
            [c[1] for c in members],
            [c[2] for c in members],
            xerr=np.array([c[3] for c in members]).T,
            yerr=np.array([c[4] for c in members]).T,
            fmt=MARKERS[n % len(MARKERS)],
            color=COLORS[n % len(COLORS)],
            markersize=7,
            capsize=3,
            elinewidth=1,
            label=_short(label, 60),
            zorder=3,
            gid=f"series-{n}",
        )
    points = [(c[1], c[2]) for c in cells]
    front = pareto_front(points, better_xy)
    words = {"high": "higher", "low": "lower"}
    fx, fy = _staircase([points[i] for i in front], better_xy)
    ax.plot(
        fx,
        fy,
        color="black",
        linestyle="--",
        linewidth=1.2,
        alpha=0.6,
        zorder=2,
        gid="pareto-frontier",
        label=f"Pareto frontier ({len(front)} of {len(cells)} cells; better: "
        f"{words[better_xy[0]]} x, {words[better_xy[1]]} y)",
    )
    ax.scatter(
        [points[i][0] for i in front],
        [points[i][1] for i in front],
        s=170,
        facecolors="none",
        edgecolors="black",
        linewidths=1.2,
        zorder=4,
        label="on the frontier",
    )
    skip = [hue] if hue else []
    if len(cells) <= 16 and [c for c in sweep.grid if c not in skip]:
        # Name each point by the grid values the colours do not show; cells on the same
        # spot share one label, a line each.
        labels: dict[tuple[float, float], list[str]] = {}
        for row, vx, vy, _, _ in cells:
            text = f"cell {row['cell']}: {_cell_label(sweep, row, skip)}".rstrip(": ")
            labels.setdefault((vx, vy), []).append(_short(text, 56))
        xs_all = [p[0] for p in labels]
        right_edge = min(xs_all) + 0.75 * (max(xs_all) - min(xs_all))
        for (vx, vy), texts in labels.items():
            flip = len(xs_all) > 1 and vx > right_edge  # keep the text inside the axes
            ax.annotate(
                "\n".join(texts),
                (vx, vy),
                xytext=(-8 if flip else 8, 6),
                textcoords="offset points",
                ha="right" if flip else "left",
                fontsize=7,
                color="#333333",
            )
    ax.set_xlabel(axis_label(x, x in sweep.grid) + f", {words[better_xy[0]]} is better")
    ax.set_ylabel(axis_label(y, y in sweep.grid) + f", {words[better_xy[1]]} is better")
    seeds = sorted({row.get("seeds", "") for row, *_ in cells})
    per_cell = (
        f"{seeds[0]} seeds per cell" if len(seeds) == 1 and seeds[0] else "seeds per cell vary"
    )
    ax.set_title(
        f"Tradeoff: {y} against {x}\n{sweep.path.name}: {len(cells)} cells, {per_cell}; "
        "points are means, bars 95% confidence intervals"
    )
    notes = []
    if left_out:
        notes.append(f"{left_out} cell(s) without a value for both metrics are not shown")
    failed = sum(int(to_number(row.get("failed")) or 0) for row in sweep.aggregate)
    if failed:
        notes.append(f"{failed} run(s) failed and are not in the means")
    if notes:
        fig.text(0.01, 0.005, "; ".join(notes), fontsize=7, color="#7f0000", ha="left")
    ax.legend(loc="best")
    return fig


def _nice_window(span: float) -> float:
    """A round window length giving about 50 windows over ``span`` seconds."""
    target = span / 50
    for step in (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30):
        if step >= target:
            return float(step)
    return float(60 * math.ceil(target / 60))


def _windowed(
    times: np.ndarray, good: np.ndarray, window: float, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per window ``[i*window, (i+1)*window)``: the fraction of ``good`` (NaN if empty)
    and the count."""
    index = np.clip(np.floor(times / window).astype(np.int64), 0, n - 1)
    total = np.bincount(index, minlength=n)
    hits = np.bincount(index, weights=good.astype(np.float64), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(total > 0, hits / np.maximum(total, 1), np.nan)
    return fraction, total


def _shade_faults(
    axes, records: list[dict[str, Any]], end: float, label_ax=None, start: float = -math.inf
) -> list:
    """Shade each fault's interval on every axis and name it at the top of ``label_ax``
    (as Jepsen's latency plots shade the nemesis's activity); instant faults (heal,
    restart) are lines. Only faults that touch ``[start, end]`` are drawn, and a label only
    where it does not run into the one before (the legend counts every fault). Returns
    legend handles, one per kind of fault drawn."""
    from capsim.metrics import fault_windows

    details = {
        (r.get("fault"), r.get("instance")): _fault_detail(r)
        for r in records
        if r.get("event") in ("start", "apply")
    }
    marks = []  # (time, kind, label text, lasting until)
    for w in fault_windows(records, end):
        if w["end"] < start or w["start"] > end:
            continue
        number = w["fault"] if w.get("instance") is None else f"{w['fault']}.{w['instance']}"
        detail = details.get((w["fault"], w.get("instance")), "")
        kind = str(w.get("kind") or "fault")
        marks.append((max(w["start"], start), kind, f"#{number} {kind}{detail}", w["end"]))
        for ax in axes:
            ax.axvspan(
                w["start"],
                w["end"],
                color=_FAULT_COLORS.get(kind, "#7f7f7f"),
                alpha=0.13,
                lw=0,
                zorder=0,
                gid=f"fault-{w['fault']}",
            )
    for record in records:
        if record.get("event") != "apply" or record.get("fault") is None:
            continue
        if not start <= record["time"] <= end:
            continue
        kind = str(record.get("kind") or "fault")
        marks.append(
            (record["time"], kind, f"#{record['fault']} {kind}{_fault_detail(record)}", None)
        )
        for ax in axes:
            ax.axvline(
                record["time"],
                color=_FAULT_COLORS.get(kind, "#444444"),
                linewidth=1.2,
                alpha=0.8,
                zorder=1,
            )
    counts: dict[str, int] = {}
    for _, kind, _, _ in marks:
        counts[kind] = counts.get(kind, 0) + 1
    if label_ax is not None and marks:
        left = max(start, min(m[0] for m in marks))
        room = (end - left) / 9  # about as wide as a label
        last = -math.inf
        for time, kind, text, _ in sorted(marks, key=lambda m: m[0]):
            if time - last >= room:
                _fault_label(label_ax, time, text, _FAULT_COLORS.get(kind, "#444444"))
                last = time
    return [
        Patch(
            color=_FAULT_COLORS.get(k, "#7f7f7f"),
            alpha=0.3,
            label=(f"{k} in force" if k in _LASTING else k) + (f" ({n})" if n > 1 else ""),
        )
        for k, n in counts.items()
    ]


def _fault_detail(record: dict[str, Any]) -> str:
    """What a fault record names, for a label: ``" halves: n1"``, ``" n3"``."""
    targets = [str(t) for t in record.get("targets") or []]
    shown = ", ".join(targets[:2]) + (f" +{len(targets) - 2}" if len(targets) > 2 else "")
    shape = record.get("shape")
    if shape and shape != "groups":
        return f" {shape}" + (f": {shown}" if shown else "")
    return f" {shown}" if shown else ""


_LASTING = {"partition", "crash", "pause", "clock", "link", "zone-outage", "upgrade"}


def _fault_label(ax, x: float, text: str, color: str) -> None:
    ax.text(
        x,
        0.985,
        f" {text}",
        transform=ax.get_xaxis_transform(),
        va="top",
        ha="left",
        fontsize=7,
        color=color,
        zorder=5,
        clip_on=True,  # a label near the right edge is cut, not drawn over the legend
        bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7},
    )


@_styled
def timeline(path: str | os.PathLike, window: float | None = None) -> Figure:
    """A run's main phase over time, three panels sharing the time axis:

    * availability (as ``capsim run`` defines it) per window of ``window`` seconds
      (default: a round length giving about 50 windows), for all clients and for each
      side of a partition in force;
    * every operation's latency by invocation time, ok, fail and info marked
      differently (a timed-out operation's latency is the client's timeout);
    * the stale-read fraction per window (ok reads stale with respect to some write).

    Fault intervals are shaded and named on every panel, instant faults (heal,
    restart) drawn as lines, and leader or primary changes from ``roles.jsonl`` marked
    when the run wrote one."""
    folder = Path(path)
    if dir_kind(folder) != "run":
        raise PlotError(f"{folder}: is a sweep folder; --kind timeline needs a run folder")
    summary = read_summary(folder)
    ops = _operations(folder)
    records = _fault_records(folder)
    roles = _roles(folder)
    end = _main_end(records, ops)
    if window is None:
        window = _nice_window(end)
    if not window > 0:
        raise PlotError(f"--window {window}: must be a positive duration")
    n = max(1, math.ceil(end / window - 1e-9))
    if n > 100_000:
        raise PlotError(f"--window {window:g}: {n:,} windows; choose a longer window")
    main = ~ops.final
    times = ops.invoke_time[main]
    from capsim.metrics import read_staleness, succeeded

    served = succeeded(ops)[main]
    centers = (np.arange(n) + 0.5) * window

    fig = _figure(11, 8.8)
    axes = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1.5, 1]})
    ax_avail, ax_lat, ax_stale = axes

    sides = ops.side[main]
    series = [
        ("all clients", np.ones(len(times), bool), "black", "o"),
        ("majority side of a partition", sides == 1, COLORS[0], "s"),
        ("minority side of a partition", sides == 2, COLORS[3], "v"),
    ]
    for label, mask, color, marker in series:
        if not mask.any():
            continue
        fraction, _ = _windowed(times[mask], served[mask], window, n)
        ax_avail.plot(
            centers,
            fraction,
            color=color,
            marker=marker,
            markersize=3,
            linewidth=1.2,
            label=label,
            gid=f"availability-{label}",
        )
    ax_avail.set_ylim(-0.05, 1.08)
    ax_avail.set_ylabel("availability\n(fraction served)")
    ax_avail.set_title(
        f"Timeline of {_run_name(folder, summary)}: main phase, 0 to {end:g} s\n"
        f"availability per {window:g} s window of invocation time; faults shaded",
    )

    latency_ms = (ops.complete_time[main] - times) * 1000.0
    outcome = ops.type[main]
    finite = np.isfinite(latency_ms)
    for code in (OK, FAIL, INFO):
        mask = (outcome == code) & finite
        text, color, marker = _OUTCOME_STYLE[code]
        ax_lat.scatter(
            times[mask],
            latency_ms[mask],
            s=6 if code == OK else 14,
            c=color,
            marker=marker,
            linewidths=0.8,
            label=f"{text}: {int(mask.sum()):,}",
            rasterized=True,
            zorder=2,
            gid=f"latency-{TYPE_NAMES[code]}",
        )
    ax_lat.set_yscale("symlog", linthresh=0.1, linscale=0.5)
    ax_lat.set_ylim(bottom=-0.02)  # a latency of 0 (a local answer) stays visible
    ax_lat.set_ylabel("latency (ms; log scale\nabove 0.1 ms)")

    stale = read_staleness(ops, _workload(ops))
    read_times = ops.invoke_time[stale.read]
    fraction, counts = _windowed(read_times, stale.k > 0, window, n)
    ax_stale.plot(
        centers,
        fraction,
        color="black",
        marker="o",
        markersize=3,
        linewidth=1.2,
        label="stale reads / ok reads in the window",
        gid="staleness",
    )
    ax_stale.set_ylim(-0.05, 1.08)
    ax_stale.set_ylabel("stale reads\n(fraction of ok reads)")
    ax_stale.set_xlabel("simulated time (s)")
    ax_stale.set_xlim(0, end)

    handles = _shade_faults(axes, records, end, label_ax=ax_avail)
    if roles:
        for record in roles:
            for ax in axes:
                ax.axvline(
                    record["time"],
                    color="#e377c2",
                    linestyle=":",
                    linewidth=1.2,
                    zorder=1,
                    gid="leader-change",
                )
        if len(roles) <= 20:
            for record in roles:
                term = f" t{record['term']}" if record.get("term") is not None else ""
                shard = record.get("shard")
                where = f"/{shard}" if shard not in (None, 0) else ""
                ax_lat.annotate(
                    f"{record['node']}{where}{term}",
                    (record["time"], 1.0),
                    xycoords=("data", "axes fraction"),
                    xytext=(2, -2),
                    textcoords="offset points",
                    va="top",
                    fontsize=7,
                    color="#e377c2",
                    rotation=90,
                )
        handles.append(
            Line2D(
                [],
                [],
                color="#e377c2",
                linestyle=":",
                label=f"new leader or primary ({len(roles)})",
            )
        )
    outside = {"loc": "upper left", "bbox_to_anchor": (1.005, 1.0), "borderaxespad": 0}
    ax_avail.legend(title="clients", **outside)
    ax_lat.legend(
        handles=[*ax_lat.get_legend_handles_labels()[0], *handles],
        title="operation outcome",
        markerscale=1.5,
        **outside,
    )
    ax_stale.legend(**outside)
    return fig


TYPE_NAMES = {OK: "ok", FAIL: "fail", INFO: "info"}


def _curves(folder: Path) -> list[tuple[str, list[dict[str, Any]]]]:
    """``(label, t-visibility bins)`` of a run, or of each cell of a sweep (bins pooled
    over the cell's ``ok`` runs: pairs add up, and ``p`` is the fresh pairs over all
    pairs), read from ``cells/*.json``."""
    if dir_kind(folder) == "run":
        summary = read_summary(folder)
        bins = (summary.get("staleness") or {}).get("t_visibility")
        if not isinstance(bins, list):
            raise PlotError(f"{folder / 'summary.json'}: has no staleness.t_visibility curve")
        return [(_run_name(folder, summary), bins)]
    sweep = read_sweep(folder)
    rows = {int(to_number(row["cell"]) or 0): row for row in sweep.aggregate}
    pooled: dict[int, dict[tuple, list[int]]] = {}
    runs: dict[int, int] = {}
    files = sorted((folder / "cells").rglob("*.json")) if (folder / "cells").is_dir() else []
    for file in files:
        data = _read_json(file, "a run of the sweep")
        if isinstance(data, dict) and data.get("status", "ok") != "ok":
            continue  # as in aggregate.csv, a failed run is not in the cell's figures
        bins = _find(data, "t_visibility")
        cell = data.get("cell") if isinstance(data, dict) else None
        if not isinstance(cell, int) or isinstance(cell, bool):
            digits = re.findall(r"\d+", file.stem)
            cell = int(digits[0]) if digits else None
        if cell is None or not isinstance(bins, list):
            continue
        into = pooled.setdefault(cell, {})
        runs[cell] = runs.get(cell, 0) + 1
        for b in bins:
            if not isinstance(b, dict) or not isinstance(b.get("pairs"), int):
                raise PlotError(f"{file}: a t_visibility bin without a count of 'pairs'")
            key = (b.get("t_ms"), b.get("t_to_ms"))
            fresh = round((b.get("p") or 0.0) * b["pairs"])  # p was fresh pairs / pairs
            acc = into.setdefault(key, [0, 0])
            acc[0] += fresh
            acc[1] += b["pairs"]
    if not pooled:
        raise PlotError(
            f"{folder / 'cells'}: no t-visibility curves found (each run's JSON there "
            "should hold the summary's staleness.t_visibility)"
        )
    out = []
    for cell in sorted(pooled):
        bins = [
            {"t_ms": lo, "t_to_ms": hi, "pairs": int(n), "p": (f / n) if n else None}
            for (lo, hi), (f, n) in pooled[cell].items()
        ]
        row = rows.get(cell)
        label = _cell_label(sweep, row) if row is not None else ""
        runs_text = f"{runs[cell]} run{'s' if runs[cell] != 1 else ''}"
        out.append((f"cell {cell}: {label} ({runs_text})".replace(":  (", " ("), bins))
    return out


def _find(data: Any, key: str) -> Any:
    """The first value stored under ``key`` anywhere in nested JSON (breadth first)."""
    queue = [data]
    while queue:
        item = queue.pop(0)
        if isinstance(item, dict):
            if key in item:
                return item[key]
            queue.extend(item.values())
        elif isinstance(item, list):
            queue.extend(item)
    return None


@_styled
def visibility(paths: Sequence[str | os.PathLike]) -> Figure:
    """t-visibility curves (PBS, Bailis et al. 2012) of runs, or of each cell of a sweep:
    for write-read pairs binned by how long after the write's acknowledgement the read
    began, the fraction in which the read saw the write (or a newer one). Each bin is
    drawn at its geometric middle (the first, 0 to 1 ms, at 0.5 ms; the last, open one
    at its lower edge); bins without pairs are left out."""
    fig = _figure(8.5, 5.5)
    ax = fig.add_subplot()
    curves = [c for path in paths for c in _curves(Path(path))]
    drawn = 0
    for n, (label, bins) in enumerate(curves):
        xs, ys, pairs = [], [], 0
        for b in bins:
            if b.get("p") is None or not b.get("pairs"):
                continue
            lo, hi = float(b["t_ms"]), b.get("t_to_ms")
            xs.append(math.sqrt(lo * hi) if lo > 0 and hi else (hi / 2 if hi else lo))
            ys.append(float(b["p"]))
            pairs += int(b["pairs"])
        if not xs:
            continue
        drawn += 1
        ax.plot(
            xs,
            ys,
            marker=MARKERS[n % len(MARKERS)],
            color=COLORS[n % len(COLORS)],
            linewidth=1.4,
            markersize=5,
            label=_short(f"{label}: {pairs:,} pairs", 100),
            gid=f"series-{n}",
        )
    if not drawn:
        raise PlotError(
            "no write-read pairs to plot: the runs have no acknowledged write "
            "followed by an ok read of its key"
        )
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.04)
    ax.set_xlabel("time from a write's acknowledgement to a read's invocation, t (ms, log scale)")
    ax.set_ylabel("P(read sees the write or a newer one)\n(fraction of write-read pairs)")
    ax.set_title(
        "t-visibility: how soon an acknowledged write becomes visible to reads\n"
        "(probabilistically bounded staleness; 1.0 = never stale)"
    )
    fig.legend(loc="outside lower center", ncols=2 if len(curves) > 3 else 1)
    return fig


_PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999))


@_styled
def latency(paths: Sequence[str | os.PathLike]) -> Figure:
    """Latency CDFs of ``ok`` main-phase operations. One run: a curve per operation type
    (read, write, cas, add). Several runs: reads (solid) and updates (dashed) per run.
    A sweep: per cell, the mean over seeds of each percentile (p50, p90, p99, p999) of
    reads and of updates, in two panels. The y axis is a logit scale, so the tail
    (0.99, 0.999) gets as much room as the middle."""
    folders = [Path(p) for p in paths]
    kinds = [dir_kind(f) for f in folders]
    if "sweep" in kinds:
        if len(folders) > 1:
            raise PlotError("--kind latency takes one sweep folder, or one or more run folders")
        return _latency_sweep(read_sweep(folders[0]))
    fig = _figure(8.5, 5.5)
    ax = fig.add_subplot()
    drawn = 0
    for n, folder in enumerate(folders):
        summary = read_summary(folder)
        ops = _operations(folder)
        ok = (ops.type == OK) & ~ops.final
        lat = (ops.complete_time - ops.invoke_time) * 1000.0
        if len(folders) == 1:
            groups = [
                (name, ok & (ops.f == code), COLORS[code], "-")
                for code, name in enumerate(("read", "write", "cas", "add"))
            ]
        else:
            updates = ok & (ops.f != READ)
            name = _run_name(folder, summary)
            color = COLORS[n % len(COLORS)]
            groups = [
                (f"{name}: reads", ok & (ops.f == READ), color, "-"),
                (f"{name}: updates", updates, color, "--"),
            ]
        for label, mask, color, style in groups:
            values = np.sort(lat[mask])
            if len(values) < 2:
                continue
            # The empirical CDF at each value; the largest (F = 1) cannot sit on a logit
            # axis and is given in the legend instead.
            fractions = np.arange(1, len(values) + 1) / len(values)
            ax.step(
                values[:-1],
                fractions[:-1],
                where="post",
                color=color,
                linestyle=style,
                linewidth=1.4,
                gid=f"series-{drawn}",
                label=_short(f"{label} ({len(values):,} ops, max {values[-1]:.3g} ms)", 90),
            )
            drawn += 1
    if not drawn:
        raise PlotError("no ok operations to plot")
    _latency_axes(ax)
    names = ", ".join(dict.fromkeys(_run_name(f, read_summary(f)) for f in folders))
    ax.set_title(f"Latency CDF of ok operations (main phase)\n{_short(names, 110)}")
    ax.legend(loc="lower right")
    return fig


_CDF_TICKS = (0.01, 0.1, 0.5, 0.9, 0.99, 0.999)


def _latency_axes(ax) -> None:
    ax.set_xscale("symlog", linthresh=0.1, linscale=0.5)
    ax.autoscale_view()  # the data's limits with margins, before the left one is pinned
    ax.set_xlim(-0.02, ax.get_xlim()[1])  # a latency of 0 (a local answer) stays visible
    ax.set_yscale("logit")
    ax.set_ylim(0.005, 0.9995)
    ax.set_yticks(_CDF_TICKS, [f"{q:g}" for q in _CDF_TICKS])
    ax.yaxis.set_minor_formatter("")
    ax.set_xlabel("latency, invocation to completion (ms; log scale above 0.1 ms)")
    ax.set_ylabel("fraction of ok operations at or below\n(logit scale)")


def _latency_sweep(sweep: Sweep) -> Figure:
    fig = _figure(11, 5.5)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, which, title in zip(
        axes, ("read", "write"), ("reads", "updates (write, cas, add)"), strict=True
    ):
        names = [f"latency_ms.{which}.{p}" for p, _ in _PERCENTILES]
        missing = [c for c in names if c not in sweep.columns]
        if missing:
            raise PlotError(f"{sweep.path / 'aggregate.csv'}: no column {missing[0]}")
        for n, row in enumerate(sweep.aggregate):
            xs = [to_number(row[c]) for c in names]
            pts = [(v, q) for v, (_, q) in zip(xs, _PERCENTILES, strict=True) if v is not None]
            if not pts:
                continue
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                marker=MARKERS[n % len(MARKERS)],
                color=COLORS[n % len(COLORS)],
                linewidth=1.3,
                gid=f"series-{n}",
                label=_short(f"cell {row['cell']}: {_cell_label(sweep, row)}".rstrip(": "), 70),
            )
        _latency_axes(ax)
        ax.set_title(f"{title}: p50, p90, p99, p999")
        ax.set_ylim(0.3, 0.9995)
        ax.set_yticks([q for _, q in _PERCENTILES], [f"{p} ({q:g})" for p, q in _PERCENTILES])
    axes[1].set_ylabel("")
    legend: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    labels = sorted(legend, key=lambda t: int(t.split(":")[0].split()[1]))
    fig.legend([legend[t] for t in labels], labels, loc="outside lower center", ncols=2)
    fig.suptitle(
        f"Latency of ok operations per cell of {sweep.path.name} "
        "(mean over seeds of each percentile)"
    )
    return fig


def _natural(name: str) -> tuple:
    """Containers (n1, n2, ..., n10) first in numeric order, then clients, then others."""
    rank = 0 if name.startswith("n") else 1 if name.startswith("c") else 2
    return (rank, [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)])


@_styled
def messages(
    path: str | os.PathLike,
    start: float | None = None,
    stop: float | None = None,
    limit: int = MAX_MESSAGES,
) -> Figure:
    """A space-time (Lamport) diagram of a ``--trace`` run's ``messages.jsonl``: one
    horizontal line per container and client, one arrow per message from its sender at
    its send time to its receiver at its arrival time, coloured by kind. A dropped
    message is a dashed red line from its sender to the receiver it was meant for, ending
    in a cross at the time it was dropped (its send time, for one a partition cut).
    Messages sent in ``[start, stop]`` are drawn, at most ``limit`` of them (the
    earliest sent); the title says so when some are left out."""
    folder = Path(path)
    if dir_kind(folder) != "run":
        raise PlotError(f"{folder}: is a sweep folder; --kind messages needs a run folder")
    summary = read_summary(folder)
    file = _need(folder / "messages.jsonl", "record one with capsim run --trace --out DIR")
    if limit < 1:
        raise PlotError(f"--max-messages {limit}: must be at least 1")
    lo = -math.inf if start is None else start
    hi = math.inf if stop is None else stop
    if lo > hi:
        raise PlotError(f"--from {start:g} is after --to {stop:g}")
    kept: list[tuple] = []  # a max-heap (negated) of the earliest `limit` messages
    total = 0
    for number, record in _jsonl(file):
        sent = _time(file, number, record, "sent_at")
        if not lo <= sent <= hi:
            continue
        arrived = _time(file, number, record, "time")
        total += 1
        ident = record.get("id")
        ident = ident if isinstance(ident, int) and not isinstance(ident, bool) else number
        item = (
            -sent,
            -ident,
            arrived,
            str(record.get("src")),
            str(record.get("dst")),
            str(record.get("kind")),
            str(record.get("outcome", "delivered")),
        )
        if len(kept) < limit:
            heapq.heappush(kept, item)
        elif item > kept[0]:
            heapq.heapreplace(kept, item)
    if not total:
        where = "" if start is None and stop is None else f" sent between {lo:g} and {hi:g} s"
        raise PlotError(f"{file}: no messages{where}")
    drawn = sorted(((-s, -i, a, src, dst, kind, out) for s, i, a, src, dst, kind, out in kept))

    names = sorted({m[3] for m in drawn} | {m[4] for m in drawn}, key=_natural)
    row = {name: i for i, name in enumerate(names)}
    kinds = sorted({m[5] for m in drawn})
    palette = [c for c in COLORS if c != "#d62728"]  # red is for drops
    color = {k: palette[i % len(palette)] for i, k in enumerate(kinds)}
    fig = _figure(11, max(3.5, 1.2 + 0.42 * len(names)))
    ax = fig.add_subplot()
    for name in names:
        ax.axhline(row[name], color="#999999", linewidth=0.8, zorder=0)
    drops = []
    for sent, ident, arrived, src, dst, kind, outcome in drawn:
        y0, y1 = row[src], row[dst]
        if outcome == "delivered":
            arrow = FancyArrowPatch(
                (sent, y0),
                (arrived, y1),
                arrowstyle="-|>",
                mutation_scale=9,
                linewidth=0.9,
                color=color[kind],
                shrinkA=0,
                shrinkB=0,
                zorder=2,
                gid=f"message-{ident}",
            )
        else:
            arrow = FancyArrowPatch(
                (sent, y0),
                (arrived, y1),
                arrowstyle="-",
                linestyle="--",
                linewidth=0.9,
                color="#d62728",
                shrinkA=0,
                shrinkB=0,
                zorder=2,
                gid=f"message-{ident}",
            )
            drops.append((arrived, y1, outcome))
        ax.add_patch(arrow)
        if len(drawn) <= 30:
            ax.annotate(
                kind,
                ((sent + arrived) / 2, (y0 + y1) / 2),
                fontsize=6,
                color=color[kind],
                ha="center",
                va="center",
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7},
            )
    if drops:
        ax.scatter(
            [d[0] for d in drops],
            [d[1] for d in drops],
            marker="x",
            color="#d62728",
            s=30,
            zorder=3,
        )
    first = min(m[0] for m in drawn)
    last = max(max(m[0], m[2]) for m in drawn)
    pad = max((last - first) * 0.02, 1e-6)
    left = first - pad if start is None else min(start, first)
    right = last + pad if stop is None else max(stop, last)
    records = _fault_records(folder) if (folder / "faults.jsonl").is_file() else []
    fault_handles = _shade_faults([ax], records, right, start=left) if records else []
    ax.set_xlim(left, right)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_yticks(range(len(names)), names)
    ax.xaxis.set_major_formatter(ScalarFormatter(useOffset=False))
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(
        "simulated time (s): an arrow leaves its sender when sent, reaches its receiver on arrival"
    )
    ax.set_ylabel("container (n...) or client (c...)")
    shown = (
        f"{len(drawn):,} messages"
        if len(drawn) == total
        else (f"the first {len(drawn):,} of {total:,} messages")
    )
    title = (
        f"Messages of {_run_name(folder, summary)}: {shown} sent from "
        f"{first:.4f} to {max(m[0] for m in drawn):.4f} s"
    )
    if len(drawn) < total:
        title += (
            f"\nCAPPED: {total - len(drawn):,} later messages in the window are not drawn; "
            "narrow it with --from/--to or raise --max-messages"
        )
    ax.set_title(title)
    handles = [
        Line2D(
            [],
            [],
            color=color[k],
            marker=">",
            markersize=5,
            label=f"{k} ({sum(1 for m in drawn if m[5] == k and m[6] == 'delivered')})",
        )
        for k in kinds
    ]
    reasons = sorted({d[2] for d in drops})
    if drops:
        handles.append(
            Line2D(
                [],
                [],
                color="#d62728",
                linestyle="--",
                marker="x",
                label=f"dropped ({len(drops)}: {', '.join(r.split(':', 1)[-1] for r in reasons)}); "
                "× at its receiver, when dropped",
            )
        )
    ax.legend(
        handles=[*handles, *fault_handles],
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        title="message kind (delivered)",
    )
    return fig


def plot(paths: Sequence[str | os.PathLike] | str | os.PathLike, kind: str, **options) -> Figure:
    """Draw plot ``kind`` (one of :data:`KINDS`) of ``paths``, a folder or several.

    Options by kind: ``tradeoff``: ``x``, ``y``, ``hue``, ``better``; ``timeline``:
    ``window``; ``messages``: ``start``, ``stop``, ``limit``."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    paths = list(paths)
    if kind not in KINDS:
        raise PlotError(f"--kind {kind}: unknown; one of {', '.join(KINDS)}")
    if not paths:
        raise PlotError("no folder given")
    if kind in ("tradeoff", "timeline", "messages") and len(paths) > 1:
        raise PlotError(f"--kind {kind} takes one folder, got {len(paths)}")
    for path in paths:
        dir_kind(path)
    if kind == "tradeoff":
        if not options.get("x") or not options.get("y"):
            raise PlotError("--kind tradeoff needs --x and --y: columns of aggregate.csv")
        return tradeoff(
            paths[0], options["x"], options["y"], options.get("hue"), options.get("better")
        )
    if kind == "timeline":
        return timeline(paths[0], options.get("window"))
    if kind == "messages":
        return messages(
            paths[0],
            options.get("start"),
            options.get("stop"),
            options.get("limit") or MAX_MESSAGES,
        )
    if kind == "visibility":
        return visibility(paths)
    return latency(paths)


def image_bytes(fig: Figure, fmt: str = "png") -> bytes:
    """``fig`` as PNG or SVG bytes, the same bytes for the same figure (no date, fixed
    SVG ids)."""
    buffer = io.BytesIO()
    metadata: dict[str, Any] = {"Date": None} if fmt == "svg" else {"Software": None}
    with _style():
        fig.savefig(buffer, format=fmt, metadata=metadata)
    return buffer.getvalue()


def save(fig: Figure, out: str | os.PathLike) -> Path:
    """Write ``fig`` to ``out`` (``.png`` or ``.svg``) all at once: a temporary file
    beside it that then takes its place, so a failure never leaves half an image."""
    target = Path(out)
    fmt = target.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise PlotError(f"--out {target}: the file name must end in .png or .svg")
    folder = target.absolute().parent
    if not folder.is_dir():
        raise PlotError(f"--out {target}: the folder {folder} does not exist")
    if target.is_dir():
        raise PlotError(f"--out {target}: is a folder")
    data = image_bytes(fig, fmt)
    write_atomic(target, data)
    return target


def write_atomic(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a temporary file in the same folder."""
    folder = target.absolute().parent
    try:
        handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder)
    except OSError as exc:
        raise PlotError(f"{target}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, target)
    except OSError as exc:
        raise PlotError(f"{target}: cannot write: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
