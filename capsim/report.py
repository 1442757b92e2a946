"""One self-contained HTML page about a run or a sweep: summary tables and plots.

The page has no external resources and no JavaScript: plots are PNG images embedded as
``data:`` URIs, the style sheet is inline, and it reads the same printed, offline or in
a mail. The same folder gives the same bytes (no dates; plots as :mod:`capsim.plot`
draws them). :func:`report` writes it (``capsim report DIR``), :func:`render` returns it.
"""

from __future__ import annotations

import base64
import html
import json
import os
import struct
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from capsim import plot
from capsim.plot import PlotError
from capsim.schema import one_line

__all__ = ["report", "render"]

#: Messages the run page's space-time diagram draws at most.
REPORT_MESSAGES = 150

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: #1b1b1b; background: #fff; max-width: 1180px; margin: 0 auto; padding: 1em 1.5em 3em;
  line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
p.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #d6d6d6; padding: 0.25em 0.6em; vertical-align: top; }
td { white-space: nowrap; }
th { background: #f3f3f3; text-align: left; font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.bad { color: #a00000; font-weight: 600; }
.note { color: #555; font-size: 0.92em; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.92em; max-width: 60em; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: 0.6em; overflow-x: auto;
  font-size: 0.85em; }
code { font-size: 0.95em; }
nav a { margin-right: 1em; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.3em; }
.boxes { display: flex; flex-wrap: wrap; gap: 0 2.5em; align-items: flex-start; }
.boxes section { max-width: 36em; }
th.metric { font-size: 0.85em; }
td small { color: #666; }
.scroll { overflow-x: auto; max-width: 100%; }
"""


def report(path: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the report of the run or sweep folder ``path`` to ``out`` (default:
    ``path/report.html``) all at once; returns where it went. Raises
    :class:`~capsim.plot.PlotError` for a folder that is neither."""
    folder = Path(path)
    plot.dir_kind(folder)
    target = Path(out) if out is not None else folder / "report.html"
    if target.suffix.lower() not in (".html", ".htm"):
        raise PlotError(f"--out {target}: the file name must end in .html")
    if not target.absolute().parent.is_dir():
        raise PlotError(f"--out {target}: the folder {target.absolute().parent} does not exist")
    if target.is_dir():
        raise PlotError(f"--out {target}: is a folder")
    page = render(folder)
    plot.write_atomic(target, page.encode("utf-8"))
    return target


def render(path: str | os.PathLike) -> str:
    """The HTML page for the run or sweep folder ``path``."""
    folder = Path(path)
    if plot.dir_kind(folder) == "run":
        title, body = _run_page(folder)
    else:
        title, body = _sweep_page(folder)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + body
        + '\n<p class="note">Written by <code>capsim report</code>. Definitions of every '
        "figure: the README's <em>What capsim measures</em>.</p>\n</body>\n</html>\n"
    )


# --- pieces ------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:
            return "–"
        if abs(value) >= 10_000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    return str(value)


def _get(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], numeric_from: int = 1) -> str:
    """A table; cells from column ``numeric_from`` on are right-aligned figures."""
    heads = "".join(f"<th>{_e(h).replace('.', '.<wbr>')}</th>" for h in header)
    out = ["<table>", f"<tr>{heads}</tr>"]
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            text = value if isinstance(value, _Raw) else _e(_fmt(value))
            cls = ' class="n"' if i >= numeric_from else ""
            cells.append(f"<td{cls}>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


class _Raw(str):
    """Already-escaped HTML for a table cell."""


def _png_size(data: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    return width, height


def _figure(make: Callable[[], Any], alt: str, caption: str, anchor: str) -> str:
    """A plot as an embedded PNG with its caption, or a note saying why there is none."""
    try:
        fig = make()
    except PlotError as exc:
        return f'<p class="note" id="{anchor}">No {_e(alt)} plot: {_e(exc)}</p>'
    data = plot.image_bytes(fig, "png")
    width, height = _png_size(data)
    encoded = base64.b64encode(data).decode("ascii")
    return (
        f'<figure id="{anchor}">\n<img src="data:image/png;base64,{encoded}" '
        f'width="{width}" height="{height}" alt="{_e(alt)}">\n'
        f"<figcaption>{caption}</figcaption>\n</figure>"
    )


# --- a run -------------------------------------------------------------------------------


def _run_page(folder: Path) -> tuple[str, str]:
    summary = plot.read_summary(folder)
    name = summary.get("scenario", folder.name)
    ops = summary.get("ops") or {}
    versions = summary.get("versions") or {}
    parts = [
        f"<h1>{_e(name)}</h1>",
        f'<p class="meta">Run folder <code>{_e(folder.name)}</code>: policy '
        f"<strong>{_e(summary.get('policy'))}</strong>, seed {_e(summary.get('seed'))}, "
        f"simulated {_e(_fmt(summary.get('sim_time_s')))} s, "
        f"{_e(_fmt(ops.get('total')))} operations in the main phase; capsim "
        f"{_e(versions.get('capsim', '?'))}; trace digest "
        f"<code>{_e(summary.get('trace_digest', '?'))}</code></p>",
        '<nav><a href="#tables">Tables</a><a href="#timeline">Timeline</a>'
        '<a href="#latency">Latency</a><a href="#visibility">t-visibility</a>'
        '<a href="#messages">Messages</a></nav>',
    ]
    failure = summary.get("failure")
    if failure:
        parts.append(
            '<h2 class="bad">The policy failed</h2>\n<pre>'
            + _e(json.dumps(failure, indent=2))
            + '</pre>\n<p class="note">Everything below measures the run up to the failure.'
            "</p>"
        )
    parts.append(
        '<h2 id="tables">Summary</h2>\n<div class="boxes">\n<section>\n'
        "<h3>Availability (main phase)</h3>"
    )
    avail = summary.get("availability") or {}
    rows = [
        ("all operations", avail.get("overall")),
        ("reads", avail.get("read")),
        ("updates (write, cas, add)", avail.get("write")),
        ("invoked while a fault was in force", avail.get("during_faults")),
        ("invoked outside faults", avail.get("outside_faults")),
        ("majority side of a partition", _get(avail, "by_side.majority")),
        ("minority side of a partition", _get(avail, "by_side.minority")),
    ]
    rows += [(f"zone {z}", v) for z, v in sorted((avail.get("by_zone") or {}).items())]
    parts.append(_table(["operations", "fraction served"], rows))
    parts.append(
        '<p class="note">Served: <code>ok</code>, or a compare-and-set that failed because '
        "its expected value did not match (a definite answer). <code>fail</code> and "
        "<code>info</code> (timed out) count against it.</p>"
    )

    parts.append(_next_box("Operations"))
    final = summary.get("final") or {}
    parts.append(
        _table(
            ["phase", "total", "ok", "fail", "info"],
            [
                ["main", *(ops.get(k) for k in ("total", "ok", "fail", "info"))],
                ["final reads", *(final.get(k) for k in ("total", "ok", "fail", "info"))],
            ],
        )
    )

    parts.append(_next_box("Latency of ok operations (ms)"))
    latency = summary.get("latency_ms") or {}
    rows = []
    for label, key in (("reads", "read"), ("updates (write, cas, add)", "write")):
        row = latency.get(key) or {}
        rows.append([label, *(row.get(p) for p in ("p50", "p90", "p99", "p999"))])
    for f, row in (latency.get("by_f") or {}).items():
        if isinstance(row, dict) and row.get("p50") is not None:
            rows.append([f"{f} only", *(row.get(p) for p in ("p50", "p90", "p99", "p999"))])
    parts.append(_table(["operations", "p50", "p90", "p99", "p999"], rows))

    parts.append(_next_box("Consistency"))
    parts.append(_consistency(summary))

    parts.append(_next_box("Durability and messages"))
    durability = summary.get("durability") or {}
    messages = summary.get("messages") or {}
    lost = durability.get("lost_writes")
    rows = [
        ("acknowledged writes", durability.get("acknowledged_writes")),
        ("lost writes", "n/a (set workload only)" if lost is None else lost),
        ("messages sent", messages.get("sent")),
        ("messages delivered", messages.get("delivered")),
        ("messages dropped", messages.get("dropped")),
        ("messages duplicated", messages.get("duplicated")),
        ("messages per operation (main phase)", messages.get("per_op")),
    ]
    for reason, count in sorted((messages.get("dropped_by_reason") or {}).items()):
        if count:
            rows.append((f"dropped: {reason}", count))
    parts.append(_table(["figure", "value"], rows))

    windows = _get(summary, "faults.windows") or []
    parts.append(_next_box("Faults"))
    if windows:
        parts.append(
            _table(
                [
                    "fault",
                    "kind",
                    "start (s)",
                    "end (s)",
                    "availability",
                    "operations",
                    "recovery (s)",
                ],
                [
                    [
                        w.get("fault")
                        if w.get("instance") is None
                        else f"{w.get('fault')}.{w.get('instance')}",
                        w.get("kind"),
                        w.get("start"),
                        w.get("end"),
                        w.get("availability"),
                        w.get("ops"),
                        w.get("recovery_s"),
                    ]
                    for w in windows
                ],
                numeric_from=2,
            )
        )
        parts.append(
            '<p class="note">Availability of the operations invoked while each fault was in '
            "force; recovery: the time after it ended until operations invoked in the next "
            "second were at least 99% served.</p>"
        )
    else:
        parts.append('<p class="note">No fault lasted during this run.</p>')

    for title, key in (("By zone of the client", "by_zone"), ("By shard", "by_shard")):
        breakdown = _get(summary, f"breakdown.{key}") or {}
        if len(breakdown) < 2:
            continue
        parts.append(_next_box(title))
        parts.append(
            _table(
                [
                    "",
                    "operations",
                    "availability",
                    "stale reads",
                    "read p99 (ms)",
                    "update p99 (ms)",
                ],
                [
                    [
                        name,
                        row.get("ops"),
                        row.get("availability"),
                        row.get("stale_read_fraction"),
                        row.get("read_p99_ms"),
                        row.get("write_p99_ms"),
                    ]
                    for name, row in breakdown.items()
                ],
            )
        )

    parts.append("</section>\n</div>")
    parts.append('<h2 id="timeline">Timeline</h2>')
    parts.append(
        _figure(
            lambda: plot.timeline(folder),
            "timeline",
            "Top: availability per window of invocation time, for all clients and for "
            "each side of a partition while one is in force. Middle: every operation's "
            "latency at its invocation time; a cross failed, a triangle timed out (its "
            "outcome is unknown). Bottom: the fraction of ok reads that were stale. "
            "Shaded: faults in force; dotted: a new leader or primary (when the run "
            "recorded roles).",
            "timeline-plot",
        )
    )
    parts.append('<h2 id="latency">Latency</h2>')
    parts.append(
        _figure(
            lambda: plot.latency([folder]),
            "latency",
            "The fraction of ok operations of each type that completed within a given "
            "latency (a cumulative distribution; the y axis stretches the tail).",
            "latency-plot",
        )
    )
    parts.append('<h2 id="visibility">t-visibility</h2>')
    parts.append(
        _figure(
            lambda: plot.visibility([folder]),
            "t-visibility",
            "For each pair of an acknowledged write and a later read of its key, binned "
            "by the time from the acknowledgement to the read: the fraction of reads that "
            "saw the write or a newer one (after PBS, Bailis et al. 2012). A linearizable "
            "system stays at 1.",
            "visibility-plot",
        )
    )
    parts.append('<h2 id="messages">Messages</h2>')
    if (folder / "messages.jsonl").is_file():
        start = _first_fault_start(windows)
        parts.append(
            _figure(
                lambda: plot.messages(folder, start=start, limit=REPORT_MESSAGES),
                "messages",
                f"The first {REPORT_MESSAGES} messages sent from {start:g} s"
                + (" (just before the first fault)" if start > 0 else "")
                + ": one line per container and client, one arrow per message from send to "
                "arrival; dashed red lines ending in a cross were dropped. "
                "<code>capsim plot DIR --kind messages --from T --to T</code> draws any "
                "other window.",
                "messages-plot",
            )
        )
    else:
        parts.append(
            '<p class="note">No messages.jsonl: run with <code>capsim run --trace --out '
            "DIR</code> to record every message and draw them here.</p>"
        )
    return f"capsim report: {name}", "\n".join(parts)


def _next_box(title: str) -> str:
    """Close one summary box and open the next (they flow side by side)."""
    return f"</section>\n<section>\n<h3>{_e(title)}</h3>"


def _first_fault_start(windows: list[dict[str, Any]]) -> float:
    starts = [w["start"] for w in windows if isinstance(w.get("start"), int | float)]
    return max(0.0, round(min(starts) - 0.02, 6)) if starts else 0.0


def _consistency(summary: dict[str, Any]) -> str:
    consistency = summary.get("consistency") or {}
    staleness = summary.get("staleness") or {}
    sessions = summary.get("sessions") or {}
    check = consistency.get("check")
    linearizable = consistency.get("linearizable")
    if check == "skipped":
        verdict = f"not checked ({consistency.get('reason', 'skipped')})"
    elif check == "unknown":
        verdict = f"unknown (the step budget ran out after {_fmt(consistency.get('steps'))} steps)"
    elif linearizable is False:
        keys = ", ".join(str(k) for k in consistency.get("failing_keys") or [])
        verdict = _Raw(
            f'<span class="bad">NO: {_e(consistency.get("violations"))} key(s) fail '
            f"({_e(keys)})</span>"
        )
    else:
        verdict = {True: "yes", None: "unknown"}.get(linearizable, str(linearizable))
    convergence = summary.get("convergence_s")
    rows = [
        ("linearizable", verdict),
        ("stale reads (fraction of ok reads)", staleness.get("stale_read_fraction")),
        (
            "writes missed per read: mean / max",
            f"{_fmt(staleness.get('k_mean'))} / {_fmt(staleness.get('k_max'))}",
        ),
        (
            "time behind per read: mean / p99 (ms)",
            f"{_fmt(staleness.get('t_mean_ms'))} / {_fmt(staleness.get('t_p99_ms'))}",
        ),
        ("read-your-writes violations", sessions.get("read_your_writes")),
        ("monotonic-read violations", sessions.get("monotonic_reads")),
        (
            "converged after the final heal",
            f"in {_fmt(convergence)} s" if convergence is not None else "never (or not measurable)",
        ),
        ("keys whose replicas disagree at the end", _get(summary, "final.divergent_keys")),
    ]
    table = _table(["figure", "value"], rows)
    witness = consistency.get("witness")
    if witness:
        try:
            from capsim.checkers import format_violation

            text = format_violation(witness)
        except Exception:  # a witness from another version: show it as data
            text = json.dumps(witness, indent=2)
        table += "\n<p>A short failing sub-history:</p>\n<pre>" + _e(text) + "</pre>"
    return table


# --- a sweep -----------------------------------------------------------------------------

#: Metrics the sweep page tabulates, in this order, when the sweep has them.
KEY_METRICS = (
    "availability.overall",
    "availability.all",
    "availability.by_side.minority",
    "availability.by_side.majority",
    "availability.write",
    "staleness.stale_read_fraction",
    "staleness.t_p99_ms",
    "latency_ms.read.p99",
    "latency_ms.write.p99",
    "durability.lost_writes",
)
#: Tradeoffs the sweep page draws when both columns have values: (x, y).
TRADEOFFS = (
    ("staleness.stale_read_fraction", "availability.by_side.minority"),
    ("latency_ms.write.p99", "availability.write"),
    ("staleness.stale_read_fraction", "availability.overall"),
    ("staleness.stale_read_fraction", "availability.all"),
)


def _sweep_page(folder: Path) -> tuple[str, str]:
    sweep = plot.read_sweep(folder)
    manifest = sweep.manifest if isinstance(sweep.manifest, dict) else {}
    runs = len(sweep.results)
    failed = [r for r in sweep.results if r.get("status", "ok") != "ok"]
    seeds = manifest.get("seeds")
    seed_text = (
        f"{len(seeds)} seeds"
        if isinstance(seeds, list)
        else f"seeds: {_fmt(seeds)}"
        if seeds is not None
        else "seeds per cell: see the table"
    )
    scenario = manifest.get("scenario")
    parts = [
        f"<h1>Sweep {_e(folder.name)}</h1>",
        f'<p class="meta">{len(sweep.aggregate)} cells, {_e(seed_text)}, {runs:,} runs '
        f"({len(failed):,} failed)"
        + (f"; scenario <code>{_e(scenario)}</code>" if scenario else "")
        + "</p>",
        '<nav><a href="#grid">Grid</a><a href="#cells">Cells</a><a href="#plots">Plots</a></nav>',
        '<h2 id="grid">Grid</h2>',
    ]
    grid_rows = []
    for column in sweep.grid:
        values = list(dict.fromkeys(row[column] for row in sweep.aggregate))
        grid_rows.append([column, ", ".join(plot.compact(v) for v in values)])
    parts.append(_table(["field", "values"], grid_rows, numeric_from=2))

    metrics = [
        m
        for m in KEY_METRICS
        if m in sweep.metrics and any(plot.to_number(r[m]) is not None for r in sweep.aggregate)
    ]
    parts.append('<h2 id="cells">Cells</h2>')
    parts.append(
        '<p class="note">Each figure: the mean over the cell\'s seeds, with its 95% '
        "confidence interval in brackets. Every metric is in <code>aggregate.csv</code>, "
        "every run in <code>results.csv</code>.</p>"
    )
    rows = []
    for row in sweep.aggregate:
        cells: list[Any] = [row["cell"], *(plot.compact(row[c]) for c in sweep.grid)]
        cells += [row.get("seeds"), row.get("failed")]
        for m in metrics:
            cells.append(_with_interval(row, m))
        rows.append(cells)
    table = _table(
        ["cell", *sweep.grid, "seeds", "failed", *metrics], rows, numeric_from=1 + len(sweep.grid)
    )
    parts.append(f'<div class="scroll">\n{table}\n</div>')  # wide: it scrolls, the page not
    if failed:
        parts.append("<h2>Runs that did not finish ok</h2>")
        parts.append(
            _table(
                ["cell", "seed", "status", *sweep.grid, "error"],
                [
                    [
                        r.get("cell"),
                        r.get("seed"),
                        r.get("status"),
                        *(plot.compact(r.get(c, "")) for c in sweep.grid),
                        _run_error(folder, r.get("cell"), r.get("seed")),
                    ]
                    for r in failed
                ],
                numeric_from=99,
            )
        )

    parts.append('<h2 id="plots">Plots</h2>')
    hue = sweep.grid[0] if sweep.grid else None
    drawn = 0
    for x, y in TRADEOFFS:
        if drawn == 2 or x not in sweep.metrics or y not in sweep.metrics:
            continue
        if not any(
            plot.to_number(r[x]) is not None and plot.to_number(r[y]) is not None
            for r in sweep.aggregate
        ):
            continue
        drawn += 1
        parts.append(
            _figure(
                lambda x=x, y=y: plot.tradeoff(folder, x, y, hue=hue),
                f"tradeoff of {y} against {x}",
                f"Each point is a cell: the mean of <code>{_e(y)}</code> against the mean of "
                f"<code>{_e(x)}</code> over its seeds, with 95% confidence intervals. The "
                "dashed line is the Pareto frontier: the circled cells are those no other "
                "cell beats in both." + (f" Colours: <code>{_e(hue)}</code>." if hue else ""),
                f"tradeoff-{drawn}",
            )
        )
    if not drawn:
        parts.append(
            '<p class="note">No tradeoff plot: the sweep lacks the availability and '
            "staleness or latency columns it would use; draw one with <code>capsim plot "
            "DIR --kind tradeoff --x COLUMN --y COLUMN</code>.</p>"
        )
    parts.append(
        _figure(
            lambda: plot.latency([folder]),
            "latency per cell",
            "Per cell, the mean over seeds of each latency percentile of ok reads and updates.",
            "latency-plot",
        )
    )
    parts.append(
        _figure(
            lambda: plot.visibility([folder]),
            "t-visibility per cell",
            "Per cell, pooled over its seeds: the fraction of write-read pairs in which the "
            "read saw the write (or a newer one), by the time from the write's "
            "acknowledgement to the read.",
            "visibility-plot",
        )
    )
    return f"capsim report: sweep {folder.name}", "\n".join(parts)


def _run_error(folder: Path, cell: str | None, seed: str | None) -> str:
    """The one-line error a failed run's ``cells/<cell>-<seed>.json`` records, if any."""
    path = folder / "cells" / f"{cell}-{seed}.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    error = record.get("error") if isinstance(record, dict) else None
    return one_line(str(error), 200) if error else ""


def _with_interval(row: dict[str, str], metric: str) -> str:
    """A mean, with its 95% confidence interval below it (already-escaped HTML)."""
    mean = plot.to_number(row.get(metric))
    if mean is None:
        return "–"
    low, high = (
        plot.to_number(row.get(f"{metric}.ci_low")),
        plot.to_number(row.get(f"{metric}.ci_high")),
    )
    if low is None or high is None:
        return _Raw(_e(_fmt(mean)))
    return _Raw(f"{_e(_fmt(mean))}<br><small>[{_e(_fmt(low))}, {_e(_fmt(high))}]</small>")
