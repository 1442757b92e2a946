"""The ``capsim`` command line.

Every command has ``--help``. Errors a user can cause (a missing or malformed file, an
unknown name, a nonsensical value) print one line, ``capsim: error: ...``, and exit with
status 2. A policy that fails during a run prints one report (time, container, shard,
what it was handling, its own frames) and exits with status 1. A Python traceback means
a bug in capsim.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from capsim.errors import CapsimError, PolicyError

__all__ = ["main"]

EPILOG = "Docs: README.md. Exit status 2 means bad input; the message names the file and field."


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except CapsimError as exc:
        from capsim.schema import one_line

        print(f"capsim: error: {one_line(str(exc), 600)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("capsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with where to find help) and status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _parser() -> argparse.ArgumentParser:
    from capsim.version import __version__

    parser = _Parser(
        prog="capsim",
        description="A CAP and partition fault-injection simulator: run replicated systems "
        "under failure in simulated time, deterministically from a seed.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"capsim {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="run a scenario and print its summary",
        description="Run a scenario file and print a summary of availability, latency, "
        "durability and messages. Same scenario and seed give the same output, byte for "
        "byte, apart from the 'perf' block.",
        epilog=EPILOG,
    )
    run.add_argument("scenario", metavar="SCENARIO", help="a scenario file (YAML or JSON)")
    _add_set(run)
    run.add_argument(
        "--seed",
        type=_seed,
        default=None,
        help="random seed (default: the scenario's 'seed', else 0)",
    )
    run.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="write summary.json, history.jsonl, timeseries.csv, faults.jsonl, "
        "scenario.resolved.yaml, versions.json, node.log, lost_writes.jsonl and "
        "roles.jsonl to DIR, "
        "all at once; an existing DIR is replaced only if capsim wrote it",
    )
    run.add_argument(
        "--replace",
        action="store_true",
        help="let --out replace an existing folder that capsim did not write",
    )
    run.add_argument(
        "--allow-large",
        action="store_true",
        help="run even if the scenario is estimated to need more than 20 million "
        "operations, 8 GB of memory or 2 billion events (refused by default)",
    )
    run.add_argument(
        "--quiet",
        action="store_true",
        help="no progress lines on stderr (shown for runs longer than a few seconds)",
    )
    run.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    run.add_argument(
        "--trace",
        action="store_true",
        help="record every message; with --out, also write messages.jsonl",
    )
    run.set_defaults(handler=_cmd_run)

    validate = sub.add_parser(
        "validate",
        help="check a scenario file without running it",
        description="Load and check a scenario file (schema, names, policy and its "
        "parameters) without running it. Exit 0 if valid, 2 with the first problem if not.",
        epilog=EPILOG,
    )
    validate.add_argument("scenario", metavar="SCENARIO", help="a scenario file (YAML or JSON)")
    _add_set(validate)
    validate.set_defaults(handler=_cmd_validate)

    schema = sub.add_parser(
        "schema",
        help="print the scenario file's JSON Schema (or, with --markdown, its reference)",
        description="Print a JSON Schema (draft 2020-12) of the scenario file, generated from "
        "capsim's own schema, for editors' completion and checking (e.g. VS Code's YAML "
        "extension: see README.md). It checks types, units, bounds and unknown fields; "
        "'capsim validate' checks the rest.",
        epilog=EPILOG,
    )
    schema.add_argument(
        "--markdown",
        action="store_true",
        help="print the scenario file reference instead, as Markdown "
        "(scenarios/README.md is this output)",
    )
    schema.set_defaults(handler=_cmd_schema)

    _add_sweep(sub)

    bench = sub.add_parser(
        "bench",
        help="measure simulator speed against a bare SimPy loop",
        description="Run the fixed benchmark scenario (5 containers, about 200,000 "
        "operations, a partition in the middle) per policy, and a reference loop of bare "
        "SimPy timeouts in the same process (five readings around each policy's runs, the "
        "median taken). Prints delivered messages per second, the reference rate (and the "
        "range of its readings) and their ratio (targets: at least 0.25 for single-primary, 0.15 "
        "for the others).",
        epilog=EPILOG,
    )
    bench.add_argument(
        "--policy",
        action="append",
        default=None,
        metavar="NAME",
        help="benchmark only this policy: a built-in name, or your own module:Class (repeatable)",
    )
    bench.add_argument(
        "--ops",
        type=_positive_int,
        default=200_000,
        help="client operations in the benchmark scenario (default 200000)",
    )
    bench.add_argument(
        "--repeat",
        type=_positive_int,
        default=1,
        help="runs per policy; the median is reported (default 1)",
    )
    bench.add_argument("--json", action="store_true", help="print the results as JSON")
    bench.set_defaults(handler=_cmd_bench)

    from capsim.checkers import FORMATS, MODELS, WRITABLE_FORMATS

    check = sub.add_parser(
        "check",
        help="check a history for linearizability",
        description="Check a history for linearizability: capsim's history.jsonl, "
        "Porcupine's etcd and kv logs, or Knossos's EDN files (told from the content). "
        "Exit status: 0 linearizable, 1 not linearizable (a minimal failing sub-history "
        "is printed), 3 unknown (the step budget or --timeout ran out), 2 bad input.",
        epilog=EPILOG,
    )
    check.add_argument("history", metavar="HISTORY", help="a history file")
    check.add_argument(
        "--model",
        choices=sorted(MODELS),
        default=None,
        help="the object the history is of (default: from the format, else "
        "from the operations: cas-register, set, kv, ...)",
    )
    check.add_argument(
        "--initial",
        default=None,
        metavar="VALUE",
        help="initial value, as JSON or EDN (default: the model's: null, an empty set or map)",
    )
    check.add_argument(
        "--format",
        dest="fmt",
        choices=sorted(FORMATS),
        default=None,
        help="the history's format (default: told from the content)",
    )
    check.add_argument(
        "--timeout",
        type=_positive_float,
        default=None,
        metavar="S",
        help="give up (verdict unknown) after S seconds of wall time",
    )
    check.add_argument(
        "--max-steps",
        type=_positive_int,
        default=None,
        metavar="N",
        help="give up (verdict unknown) after N search steps",
    )
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(handler=_cmd_check)

    history = sub.add_parser(
        "history",
        help="work with history files (convert)",
        description="Work with history files.",
        epilog=EPILOG,
    )
    history_sub = history.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    convert = history_sub.add_parser(
        "convert",
        help="convert a history to another tool's format",
        description="Convert a history between capsim's JSON lines and other tools' "
        "formats, so a capsim history can be cross-checked with Knossos or Porcupine. "
        "Semantics are weakened, never strengthened, where the target cannot express them.",
        epilog=EPILOG,
    )
    convert.add_argument("input", metavar="IN", help="the history to read")
    convert.add_argument("output", metavar="OUT", help="the file to write (replaced whole)")
    convert.add_argument(
        "--to", required=True, choices=list(WRITABLE_FORMATS), help="the format to write"
    )
    convert.add_argument(
        "--from",
        dest="fmt",
        choices=sorted(FORMATS),
        default=None,
        help="the input's format (default: told from the content)",
    )
    convert.add_argument(
        "--key", default=None, help="keep only this key (Knossos files hold one object)"
    )
    convert.set_defaults(handler=_cmd_convert)
    history.set_defaults(handler=lambda args: _help(history))
    _add_plot_and_report(sub)
    _add_explore(sub)
    _add_analytic(sub)
    return parser


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _add_analytic(sub) -> None:
    """``capsim pbs`` and ``capsim fidelity`` (capsim.analytic)."""
    from capsim.analytic.commands import add_fidelity_options, add_pbs_options

    pbs = sub.add_parser(
        "pbs",
        help="PBS: how stale are partial quorums (k-staleness, P(consistent) after t)",
        description="Probabilistically Bounded Staleness (Bailis et al., VLDB 2012) for N "
        "replicas, reads of R and writes of W: the probability that a read returns none of "
        "the last k versions, the probability that a read t ms after a write commits "
        "returns it (the WARS model), the t at which that reaches a target, and read and "
        "write latency percentiles; by the model's vectorized Monte Carlo, or (--engine "
        "des) by running the quorum policy's wars and partial modes through the simulator.",
        epilog=EPILOG,
    )
    add_pbs_options(pbs, _positive_int, _seed)
    pbs.set_defaults(handler=lambda args: _analytic("cmd_pbs", args))

    fidelity = sub.add_parser(
        "fidelity",
        help="check the simulator against the analytic models and published figures",
        description="Run every comparison of the simulator with the analytic models (PBS "
        "figures, the WARS Monte Carlo, k-staleness of partial quorums, the binomial "
        "availability of quorums under churn) with fixed seeds and 99% intervals, and "
        "print the table: model value, simulated value, interval, result. About a "
        "minute of CPU; --quick runs the small version. Exit status 1 if a comparison "
        "fails (a documented, known difference does not count).",
        epilog=EPILOG,
    )
    add_fidelity_options(fidelity, _seed)
    fidelity.set_defaults(handler=lambda args: _analytic("cmd_fidelity", args))


def _analytic(name: str, args: argparse.Namespace) -> int:
    from capsim.analytic import commands

    return getattr(commands, name)(args)


def _add_explore(sub) -> None:
    """``capsim explore`` (capsim.testing)."""
    explore = sub.add_parser(
        "explore",
        help="search fault schedules for one that breaks an invariant, and shrink it",
        description="Keep a scenario's cluster, policy and workload, search fault schedules "
        "with Hypothesis (partitions, crashes, pauses, clock and link faults, aimed at "
        "containers, zones or the current leader or primary), and shrink the first one that "
        "breaks an invariant to a smallest schedule. Two examples in three are storms: a "
        "random nemesis aimed at the leader that chases its elections; a storm that breaks "
        "an invariant is frozen into the faults it drew and pruned. Exit status 1 after "
        "writing the "
        "reproducer (scenario.yaml, which 'capsim run' replays, evidence.json, run/ and "
        "timeline.png) to --out; 0 if the examples broke nothing; 2 for bad input. Same "
        "scenario and seed, same search (up to where --budget cuts it).",
        epilog=EPILOG,
    )
    explore.add_argument("scenario", metavar="SCENARIO", help="a scenario file (YAML or JSON)")
    _add_set(explore)
    explore.add_argument(
        "--invariant",
        dest="invariants",
        action="append",
        default=[],
        metavar="NAME",
        help="check this invariant (repeatable): linearizable, no-lost-writes, convergence, "
        "single-leader, state-machine-safety (default: those the policy claims)",
    )
    explore.add_argument(
        "--examples",
        type=_positive_int,
        default=None,
        metavar="N",
        help="try at most N fault schedules (default 1000; --profile ci 25, thorough 20000)",
    )
    explore.add_argument(
        "--budget",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="stop searching after SECONDS of wall time (default 90; ci 30, thorough 3600); "
        "shrinking a failure may take up to a quarter of that more",
    )
    explore.add_argument(
        "--seed",
        type=_seed,
        default=None,
        help="the seed of every run and of the search (default: the scenario's 'seed')",
    )
    explore.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="where to write the reproducer (default: explore-NAME, NAME the scenario's "
        "name); an existing DIR is replaced only if capsim wrote it",
    )
    explore.add_argument(
        "--replace",
        action="store_true",
        help="let --out replace an existing folder that capsim did not write",
    )
    explore.add_argument(
        "--profile",
        choices=["ci", "thorough"],
        default=None,
        help="ci: a quick check (25 examples, 30 s); thorough: a long hunt (20000 examples, "
        "an hour); default: 1000 examples, 90 s",
    )
    explore.add_argument(
        "--faults",
        metavar="KINDS",
        default=None,
        help="the fault kinds to draw, comma-separated, from partition, crash, pause, clock, "
        "link, heal, restart (default: partition,crash,pause,clock,link)",
    )
    explore.add_argument(
        "--max-faults",
        type=_positive_int,
        default=4,
        metavar="N",
        help="at most N faults in a schedule drawn as such (default 4; a storm's faults are "
        "pruned after it breaks an invariant)",
    )
    explore.add_argument(
        "--no-storms",
        dest="storms",
        action="store_false",
        help="draw only schedules of at most --max-faults faults, no random nemeses",
    )
    explore.add_argument(
        "--quiet", action="store_true", help="no progress line on stderr while searching"
    )
    explore.add_argument(
        "--json", action="store_true", help="print what the search did and found as JSON"
    )
    explore.set_defaults(handler=_cmd_explore)


def _cmd_explore(args: argparse.Namespace) -> int:
    from capsim.testing.command import run_explore

    return run_explore(args, _load)


def _add_plot_and_report(sub) -> None:
    """``capsim plot`` and ``capsim report`` (capsim.plot, capsim.report)."""
    plot = sub.add_parser(
        "plot",
        help="plot a run or a sweep (PNG or SVG)",
        description="Plot a run folder (capsim run --out) or a sweep folder (capsim sweep "
        "--out). Kinds: tradeoff (sweep: one point per cell with 95% confidence intervals "
        "and the Pareto frontier), timeline (run: availability by side, latency of every "
        "operation, staleness, faults shaded, leader changes), visibility (t-visibility "
        "curves of runs or cells), latency (latency CDFs), messages (a space-time diagram "
        "of a --trace run). Same input, same bytes.",
        epilog=EPILOG,
    )
    plot.add_argument(
        "folders",
        metavar="DIR",
        nargs="+",
        help="a run or sweep folder (visibility and latency take several runs)",
    )
    plot.add_argument(
        "--kind",
        required=True,
        choices=["tradeoff", "timeline", "visibility", "latency", "messages"],
        help="which plot to draw",
    )
    plot.add_argument(
        "--out",
        metavar="FILE",
        default=None,
        help="the image to write, .png or .svg (default: DIR/plots/KIND.png)",
    )
    plot.add_argument(
        "--x",
        metavar="COLUMN",
        help="tradeoff: the metric on the x axis, a column of DIR/aggregate.csv such as "
        "staleness.stale_read_fraction",
    )
    plot.add_argument(
        "--y",
        metavar="COLUMN",
        help="tradeoff: the metric on the y axis, e.g. availability.by_side.minority",
    )
    plot.add_argument(
        "--hue", metavar="COLUMN", help="tradeoff: colour the cells by this grid column"
    )
    plot.add_argument(
        "--better",
        metavar="x:high,y:low",
        default=None,
        help="tradeoff: which way each axis improves (default: from the metric's name; "
        "availability is better high; staleness, latency and lost writes low)",
    )
    plot.add_argument(
        "--window",
        metavar="DURATION",
        default=None,
        help="timeline: the window of availability and staleness, e.g. 500ms (default: "
        "a round length giving about 50 windows)",
    )
    plot.add_argument(
        "--from",
        dest="start",
        metavar="TIME",
        default=None,
        help="messages: draw messages sent from this simulated time, e.g. 1.5s",
    )
    plot.add_argument(
        "--to",
        dest="stop",
        metavar="TIME",
        default=None,
        help="messages: draw messages sent until this simulated time",
    )
    plot.add_argument(
        "--max-messages",
        type=_positive_int,
        default=None,
        metavar="N",
        help="messages: draw at most N messages, the earliest sent (default 300); the "
        "title says how many were left out",
    )
    plot.set_defaults(handler=_cmd_plot)

    report = sub.add_parser(
        "report",
        help="write one self-contained HTML page about a run or a sweep",
        description="Write one HTML page with the summary tables and the plots of a run "
        "folder or a sweep folder: images embedded, no external resources, no JavaScript. "
        "Same input, same bytes.",
        epilog=EPILOG,
    )
    report.add_argument("folder", metavar="DIR", help="a run or sweep folder")
    report.add_argument(
        "--out", metavar="FILE", default=None, help="the page to write (default: DIR/report.html)"
    )
    report.set_defaults(handler=_cmd_report)


def _duration_option(option: str, text: str | None) -> float | None:
    from capsim.units import parse_duration

    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise CapsimError(f"{option} {text}: {exc}") from None


def _cmd_plot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from capsim import plot

    better = plot.parse_better(args.better) if args.better is not None else None
    for option, value, kind in (
        ("--x", args.x, "tradeoff"),
        ("--y", args.y, "tradeoff"),
        ("--hue", args.hue, "tradeoff"),
        ("--better", args.better, "tradeoff"),
        ("--window", args.window, "timeline"),
        ("--from", args.start, "messages"),
        ("--to", args.stop, "messages"),
        ("--max-messages", args.max_messages, "messages"),
    ):
        if value is not None and args.kind != kind:
            raise CapsimError(f"{option} is for --kind {kind}, not --kind {args.kind}")
    fig = plot.plot(
        args.folders,
        args.kind,
        x=args.x,
        y=args.y,
        hue=args.hue,
        better=better,
        window=_duration_option("--window", args.window),
        start=_duration_option("--from", args.start),
        stop=_duration_option("--to", args.stop),
        limit=args.max_messages,
    )
    if args.out is None:
        out = Path(args.folders[0]) / "plots" / f"{args.kind}.png"
        try:
            out.parent.mkdir(exist_ok=True)
        except OSError as exc:
            raise CapsimError(f"{out.parent}: cannot create: {exc.strerror or exc}") from None
    else:
        out = Path(args.out)
    plot.save(fig, out)
    print(f"wrote {out}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from capsim.report import report

    out = report(args.folder, args.out)
    print(f"wrote {Path(out)}")
    return 0


def _number(kind: type, minimum: float, what: str):
    """An argparse type: a ``kind`` number of at least ``minimum`` (``what`` names it)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not value >= minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_seed = _number(int, 0, "a seed: an integer of 0 or more")
_positive_int = _number(int, 1, "a positive integer")
_positive_float = _number(float, 1e-300, "a positive number")


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        metavar="PATH=VALUE",
        action="append",
        default=[],
        dest="overrides",
        help="override a field of the scenario, e.g. --set duration=5s, --set "
        "workload.rate=50/s, --set faults[0].duration=2s, --set 'policy={name: raft}' "
        "(the value is YAML; repeat for several fields)",
    )


def _add_sweep(sub) -> None:
    """``capsim sweep`` (capsim.sweep)."""
    sweep = sub.add_parser(
        "sweep",
        help="run a scenario over a grid of values and many seeds",
        description="Run a scenario for every cell of a grid (the scenario's sweep: block, "
        "and --grid axes) and every seed, on a local process pool or a Dask cluster. Every "
        "cell is validated before anything runs. Each finished run is written at once to "
        "DIR/cells/; then DIR/results.csv (a row per run) and DIR/aggregate.csv (per cell: "
        "mean and 95% confidence interval of every metric). Exit status 1 if a run failed.",
        epilog=EPILOG,
    )
    sweep.add_argument("scenario", metavar="SCENARIO", help="a scenario file (YAML or JSON)")
    sweep.add_argument(
        "--out",
        metavar="DIR",
        required=True,
        help="the sweep's folder; an existing DIR is replaced only if capsim wrote it "
        "(or with --replace), unless --resume",
    )
    sweep.add_argument(
        "--grid",
        metavar="PATH=V1,V2,...",
        action="append",
        default=[],
        help="an axis of the grid: a field and its values, read as a YAML flow sequence, "
        "e.g. --grid workload.rate=10,20,40 or --grid 'policy={name: raft},{name: quorum, "
        "params: {r: 1, w: 1}}'; replaces the scenario's axis of the same path, else is "
        "added after its axes (repeatable)",
    )
    sweep.add_argument(
        "--seeds",
        type=_positive_int,
        default=None,
        metavar="N",
        help="run each cell with N seeds, the scenario's seed and the ones after it "
        "(default: sweep.seeds, else 1)",
    )
    _add_set(sweep)
    sweep.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        metavar="N",
        help="worker processes (default: every core); with --executor dask and no "
        "--scheduler, the local cluster's workers",
    )
    sweep.add_argument(
        "--executor",
        choices=["local", "dask"],
        default="local",
        help="local: a process pool on this machine (default); dask: a Dask distributed "
        "cluster (needs pip install 'capsim[dask]')",
    )
    sweep.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="with --executor dask: the scheduler to use, e.g. tcp://host:8786 (default: "
        "start a local cluster of --workers processes)",
    )
    sweep.add_argument(
        "--resume",
        action="store_true",
        help="continue the sweep in DIR: run only the runs without a file in DIR/cells/ "
        "(refused if the grid, seeds or scenario differ from DIR/sweep.json)",
    )
    sweep.add_argument(
        "--replace",
        action="store_true",
        help="let --out replace an existing folder that capsim did not write",
    )
    sweep.add_argument(
        "--allow-large",
        action="store_true",
        help="run cells estimated to need more than 20 million operations, 8 GB of memory "
        "or 2 billion events (refused by default)",
    )
    sweep.add_argument(
        "--quiet",
        action="store_true",
        help="no progress line on stderr (shown only on a terminal); failed runs are "
        "still reported",
    )
    sweep.set_defaults(handler=_cmd_sweep)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from capsim.sweep import command

    return command(args)


def _load(path: str, overrides: list[str] | None = None):
    from capsim.runner import prepare
    from capsim.scenario import load_scenario

    scenario = load_scenario(path, overrides=overrides or ())
    try:
        prepare(scenario, allow_large=True)
    except CapsimError as exc:
        if hasattr(exc, "with_source"):
            raise exc.with_source(path) from None
        raise
    return scenario


def _cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from capsim.runner import check_output, check_size, run

    scenario = _load(args.scenario, args.overrides)
    if not args.allow_large:
        try:
            check_size(scenario)
        except CapsimError as exc:
            raise exc.with_source(args.scenario) from None
    if args.out is not None:
        check_output(Path(args.out), replace=args.replace)
    watcher = None if args.quiet else _Progress(scenario)
    try:
        result = run(
            scenario,
            seed=args.seed,
            trace=args.trace,
            allow_large=True,
            progress=watcher.watch if watcher else None,
        )
        failure = None
    except PolicyError as exc:
        result, failure = exc.result, exc
    finally:
        if watcher is not None:
            watcher.stop()
    if args.out is not None and result is not None:
        try:
            result.write(args.out, replace=args.replace)
        except OSError as exc:
            raise CapsimError(f"--out {args.out}: cannot write: {exc.strerror or exc}") from None
    if failure is not None:
        print(failure.report(), file=sys.stderr)
        if args.out is not None:
            print(f"capsim: the run up to the failure is in {args.out}/", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.summary, indent=2, allow_nan=False))
    else:
        _print_summary(result.summary, out_dir=args.out)
    return 0


class _Progress:
    """Progress on stderr for long runs: simulated time, operations (and how many a
    wall-second) and events every few seconds, read from the running world by a thread
    (so a run stuck at one instant still shows its events growing). Silent for runs that
    finish within ``QUIET_S``."""

    QUIET_S = 3.0
    EVERY_S = 2.0

    def __init__(self, scenario) -> None:
        import threading

        self.total = scenario.duration + scenario.settle + 2 * scenario.workload.timeout
        self.done = threading.Event()
        self.thread: threading.Thread | None = None
        self.tty = sys.stderr.isatty()
        self.printed = False

    def watch(self, world) -> None:
        import threading

        self.thread = threading.Thread(target=self._loop, args=(world,), daemon=True)
        self.thread.start()

    def _loop(self, world) -> None:
        import time

        if self.done.wait(self.QUIET_S):
            return
        started = time.monotonic() - self.QUIET_S
        while True:
            now = world.engine.now
            ops = len(world.history) // 2  # events / 2: operations invoked, about
            rate = ops / max(time.monotonic() - started, 1e-9)
            line = (
                f"capsim: simulated {now:,.3f} of about {self.total:,.3f} s "
                f"({100 * min(now / self.total, 1):.0f}%), {ops:,} operations "
                f"({rate:,.0f}/s), {world.events:,} events; "
                "Ctrl-C stops the run and writes nothing"
            )
            print(
                ("\r" if self.tty else "") + line,
                end="" if self.tty else "\n",
                file=sys.stderr,
                flush=True,
            )
            self.printed = True
            if self.done.wait(self.EVERY_S if self.tty else 5 * self.EVERY_S):
                return

    def stop(self) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join()
        if self.printed and self.tty:
            print(file=sys.stderr)


def _cmd_schema(args: argparse.Namespace) -> int:
    from capsim.schemadoc import markdown, render_json_schema

    sys.stdout.write(markdown() if args.markdown else render_json_schema())
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from capsim.runner import LIMITS, describe_size, estimate

    scenario = _load(args.scenario, args.overrides)
    cluster = scenario.cluster
    size = estimate(scenario)
    large = any(size[name] > limit for name, limit in LIMITS.items())
    print(
        f"{args.scenario}: valid: '{scenario.name}', {cluster.containers} containers in "
        f"{len(cluster.zones)} zones, {cluster.shards} shard(s) x {cluster.rf} replicas, "
        f"policy {scenario.policy.name}, {scenario.workload.kind} workload, "
        f"{len(scenario.faults)} fault(s), {scenario.duration:g} s; about "
        f"{describe_size(size)}" + ("; too large to run without --allow-large" if large else "")
    )
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from capsim.checkers import check_file, parse_value

    initial = parse_value(args.initial) if args.initial is not None else None
    result = check_file(
        args.history,
        model=args.model,
        fmt=args.fmt,
        initial=initial,
        max_steps=args.max_steps,
        timeout_s=args.timeout,
    )
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(result.describe())
    return result.exit_code


def _cmd_convert(args: argparse.Namespace) -> int:
    import os
    import tempfile
    from pathlib import Path

    from capsim.checkers import convert

    out = Path(args.output)
    if out.is_dir():
        raise CapsimError(f"{out}: is a folder, not a file")
    if out.exists() and not out.is_file():
        raise CapsimError(
            f"{out}: is not a regular file (a device, a pipe, ...); refusing to replace it"
        )
    folder = out.absolute().parent
    if not folder.is_dir():
        raise CapsimError(f"{out}: the folder {folder} does not exist")
    handle, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=folder)
    os.close(handle)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)  # as if created by open(), not mkstemp's 0600
    try:
        try:
            count = convert(args.input, tmp, to=args.to, fmt=args.fmt, key=args.key)
        except CapsimError as exc:
            # Name the file the user asked for, not the temporary one written first.
            message = str(exc).replace(tmp, str(out)).replace("pass key=", "pass --key")
            raise CapsimError(message) from None
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"wrote {count} events to {out} ({args.to})")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from capsim.bench import TARGET_RATIO, TARGETS, run_bench
    from capsim.policies import POLICIES, resolve_policy
    from capsim.scenario import PolicySpec

    for name in args.policy or []:
        if name not in POLICIES and ":" not in name:
            raise CapsimError(
                f"--policy: unknown policy {name!r}; built-in: {sorted(POLICIES)}, "
                "or your own as module:Class (importable from here)"
            )
        try:
            resolve_policy(PolicySpec(name=name, path="."))
        except CapsimError as exc:
            raise CapsimError(f"--policy: {exc}") from None

    def progress(message: str) -> None:
        if not args.json:
            print(f"  ... {message}", file=sys.stderr, flush=True)

    report = run_bench(args.policy, ops=args.ops, repeat=args.repeat, progress=progress)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="capsim bench: delivered messages per second vs bare SimPy")
    columns = ("policy", "messages/s", "reference/s (range)", "ratio", "target")
    for column in columns:
        table.add_column(column, justify="right" if column != "policy" else "left", no_wrap=True)
    for r in report["results"]:
        mark = "" if r["ratio"] >= r["target"] else " below"
        table.add_row(
            r["policy"],
            f"{r['messages_per_s']:,.0f}",
            f"{r['baseline_events_per_s'] / 1e6:.2f}M ({r['baseline_min'] / 1e6:.2f}-"
            f"{r['baseline_max'] / 1e6:.2f})",
            f"{r['ratio']:.3f}{mark}",
            f"{r['target']:.2f}",
        )
    Console().print(table)
    for r in report["results"]:
        print(
            f"{r['policy']}: {r['ops']:,} operations, {r['messages']:,} messages delivered "
            f"in {r['wall_s']:.2f} s (median of {args.repeat})"
        )
    special = ", ".join(f"{name} {value}" for name, value in sorted(TARGETS.items()))
    print(f"target ratio: at least {TARGET_RATIO} ({special})")
    return 0


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _print_summary(summary: dict[str, Any], out_dir: str | None = None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    console.print(
        f"[bold]{escape(str(summary['scenario']))}[/bold]  "
        f"policy [bold]{escape(str(summary['policy']))}[/bold]  "
        f"seed {summary['seed']}  simulated {summary['sim_time_s']:g} s  "
        f"wall {summary['perf']['wall_s']:.2f} s"
    )
    ops = summary["ops"]
    avail = summary["availability"]
    table = Table(title="Availability (main phase)")
    table.add_column("operations")
    table.add_column("served", justify="right")
    rows = [
        ("all", avail["overall"]),
        ("reads", avail["read"]),
        ("updates (write, cas, add)", avail["write"]),
        ("invoked during faults", avail["during_faults"]),
        ("invoked outside faults", avail["outside_faults"]),
        ("majority side of a partition", avail["by_side"]["majority"]),
        ("minority side of a partition", avail["by_side"]["minority"]),
    ]
    for name, value in rows:
        table.add_row(name, _fmt(value))
    console.print(table)

    table = Table(title="Operations")
    for column in ("phase", "total", "ok", "fail", "info"):
        table.add_column(column, justify="right" if column != "phase" else "left")
    table.add_row("main", *(str(ops[k]) for k in ("total", "ok", "fail", "info")))
    final = summary["final"]
    table.add_row("final reads", *(str(final[k]) for k in ("total", "ok", "fail", "info")))
    console.print(table)

    table = Table(title="Latency of ok operations (ms)")
    for column in ("operation", "p50", "p90", "p99", "p999"):
        table.add_column(column, justify="right" if column != "operation" else "left")
    for name in ("read", "write"):
        row = summary["latency_ms"][name]
        table.add_row(name, *(_fmt(row.get(k), 3) for k in ("p50", "p90", "p99", "p999")))
    console.print(table)

    console.print(_consistency_table(summary))
    witness = summary["consistency"].get("witness")
    if witness:
        console.print(escape(_describe_witness(witness)), soft_wrap=True)

    durability = summary["durability"]
    messages = summary["messages"]
    table = Table(title="Durability and messages")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("acknowledged writes", _fmt(durability["acknowledged_writes"]))
    lost = durability["lost_writes"]
    table.add_row("lost writes", "n/a (set workload only)" if lost is None else _fmt(lost))
    table.add_row("messages sent", _fmt(messages["sent"]))
    table.add_row("messages per operation (main phase)", _fmt(messages["per_op"], 2))
    table.add_row("messages dropped", _fmt(messages["dropped"]))
    table.add_row("messages duplicated", _fmt(messages["duplicated"]))
    console.print(table)
    if durability.get("lost"):
        shown = ", ".join(f"{k}:{e}" for k, e in durability["lost"])
        more = lost - len(durability["lost"])
        console.print(
            "lost: " + escape(shown) + (f" and {more} more (see lost_writes.jsonl)" if more else "")
        )
    by_version = summary.get("breakdown", {}).get("by_version")
    if by_version:
        table = Table(title="A/B traffic, by image version (main phase)")
        for column in ("version", "ops", "availability", "stale reads", "read p99 ms"):
            table.add_column(column, justify="left" if column == "version" else "right")
        table.add_column("write p99 ms", justify="right")
        for version, row in by_version.items():
            table.add_row(
                escape(version),
                _fmt(row["ops"]),
                _fmt(row["availability"]),
                _fmt(row["stale_read_fraction"]),
                _fmt(row["read_p99_ms"], 3),
                _fmt(row["write_p99_ms"], 3),
            )
        console.print(table)
    scaling = summary.get("scaling")
    if scaling:
        table = Table(title="Scale actions (requested to serving)")
        for column in ("action", "requested s", "duration s", "shards", "bytes", "availability"):
            table.add_column(column, justify="left" if column == "action" else "right")
        table.add_column("stale reads", justify="right")
        for action in scaling["actions"]:
            changed = [f"+{c}" for c in action["added"]] + [f"-{c}" for c in action["removed"]]
            table.add_row(
                escape(" ".join(changed) or "-"),
                _fmt(action["requested"], 3),
                "not serving" if action["duration_s"] is None else _fmt(action["duration_s"], 3),
                _fmt(action["shards_moved"]),
                _fmt(action["bytes"]),
                _fmt(action["availability"]),
                _fmt(action["stale_read_fraction"]),
            )
        console.print(table)
    invariants = summary.get("invariants")
    if invariants and invariants["checked"]:
        table = Table(title="Invariants the policy claims")
        table.add_column("invariant")
        table.add_column("verdict")
        evidence = invariants["evidence"]
        for name in invariants["checked"]:
            if name in invariants["failed"]:
                verdict = "FAILED: " + evidence[name]["message"]
            else:
                verdict = "held" if name in invariants["held"] else "unknown"
            table.add_row(name, escape(verdict))
        console.print(table)
    faults = summary["faults"]
    console.print(f"faults applied: {faults['applied']}, skipped: {faults['skipped']}")
    console.print(f"trace digest: {summary['trace_digest']}")
    if out_dir:
        console.print(f"wrote {escape(out_dir)}/")


def _consistency_table(summary: dict[str, Any]):
    """The C of CAP: linearizability, staleness, session guarantees, convergence."""
    from rich.table import Table

    consistency = summary["consistency"]
    staleness = summary["staleness"]
    sessions = summary["sessions"]
    verdict = {True: "yes", False: "NO", None: "unknown"}[consistency["linearizable"]]
    if consistency["check"] == "skipped":
        verdict = f"not checked ({consistency.get('reason', 'skipped')})"
    elif consistency["check"] == "unknown":
        verdict = f"unknown (step budget ran out after {consistency['steps']:,} steps)"
    elif consistency["linearizable"] is False:
        keys = ", ".join(consistency["failing_keys"])
        verdict = f"NO: {consistency['violations']} key(s) fail ({keys})"
    table = Table(title="Consistency")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("linearizable", verdict)
    table.add_row("stale reads (fraction of ok reads)", _fmt(staleness["stale_read_fraction"]))
    table.add_row(
        "versions behind: mean / max",
        f"{_fmt(staleness['k_mean'], 3)} / {_fmt(staleness['k_max'])}",
    )
    table.add_row(
        "time behind: mean / p99 (ms)",
        f"{_fmt(staleness['t_mean_ms'], 3)} / {_fmt(staleness['t_p99_ms'], 3)}",
    )
    table.add_row("read-your-writes violations", _fmt(sessions["read_your_writes"]))
    table.add_row("monotonic-read violations", _fmt(sessions["monotonic_reads"]))
    convergence = summary["convergence_s"]
    table.add_row(
        "converged after the final heal",
        f"in {convergence:g} s" if convergence is not None else "never (or not measurable)",
    )
    divergent = summary["final"].get("divergent_keys")
    if divergent is not None:
        table.add_row("keys whose replicas disagree at the end", str(divergent))
    return table


def _describe_witness(witness: dict[str, Any]) -> str:
    """The checker's short failing sub-history, one operation per line."""
    from capsim.checkers import format_violation

    return format_violation(witness)


if __name__ == "__main__":
    sys.exit(main())
