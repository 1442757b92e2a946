"""The ``capsim`` command line.

Every command has ``--help``. Errors a user can cause (a missing or malformed file, an
unknown name, a nonsensical value) print one line, ``capsim: error: ...``, and exit with
status 2; a Python traceback means a bug in capsim.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from capsim.errors import CapsimError

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
        print(f"capsim: error: {exc}", file=sys.stderr)
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
    run.add_argument("scenario", metavar="SCENARIO", help="a scenario file (YAML)")
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
        "scenario.resolved.yaml and versions.json to DIR (replaced as a whole)",
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
    validate.add_argument("scenario", metavar="SCENARIO", help="a scenario file (YAML)")
    validate.set_defaults(handler=_cmd_validate)

    bench = sub.add_parser(
        "bench",
        help="measure simulator speed against a bare SimPy loop",
        description="Run the fixed benchmark scenario (5 containers, about 200,000 "
        "operations, a partition in the middle) per policy, and a reference loop of bare "
        "SimPy timeouts in the same process. Prints delivered messages per second, events "
        "per second, the reference rate and their ratio (target: at least 0.15).",
        epilog=EPILOG,
    )
    bench.add_argument(
        "--policy",
        action="append",
        default=None,
        metavar="NAME",
        help="benchmark only this built-in policy (repeatable)",
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
    return parser


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


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


def _load(path: str):
    from capsim.runner import prepare
    from capsim.scenario import load_scenario

    scenario = load_scenario(path)
    try:
        prepare(scenario)
    except CapsimError as exc:
        if hasattr(exc, "with_source"):
            raise exc.with_source(path) from None
        raise
    return scenario


def _cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from capsim.runner import run

    scenario = _load(args.scenario)
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise CapsimError(f"--out {args.out}: exists and is not a folder")
    result = run(scenario, seed=args.seed, trace=args.trace)
    if args.out is not None:
        try:
            result.write(args.out)
        except OSError as exc:
            raise CapsimError(f"--out {args.out}: cannot write: {exc.strerror or exc}") from None
    if args.json:
        print(json.dumps(result.summary, indent=2, allow_nan=False))
    else:
        _print_summary(result.summary, out_dir=args.out)
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    scenario = _load(args.scenario)
    cluster = scenario.cluster
    print(
        f"{args.scenario}: valid: '{scenario.name}', {cluster.containers} containers in "
        f"{len(cluster.zones)} zones, {cluster.shards} shard(s) x {cluster.rf} replicas, "
        f"policy {scenario.policy.name}, {scenario.workload.kind} workload, "
        f"{len(scenario.faults)} fault(s), {scenario.duration:g} s"
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
    folder = out.resolve().parent
    if not folder.is_dir():
        raise CapsimError(f"{out}: the folder {folder} does not exist")
    handle, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=folder)
    os.close(handle)
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
    from capsim.bench import TARGET_RATIO, run_bench
    from capsim.policies import POLICIES

    for name in args.policy or []:
        if name not in POLICIES:
            raise CapsimError(f"--policy: unknown policy {name!r}; built-in: {sorted(POLICIES)}")

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
    for column in ("policy", "messages/s", "events/s", "reference/s", "ratio"):
        table.add_column(column, justify="right" if column != "policy" else "left")
    for r in report["results"]:
        mark = "" if r["ratio"] >= TARGET_RATIO else " (below target)"
        table.add_row(
            r["policy"],
            f"{r['messages_per_s']:,.0f}",
            f"{r['events_per_s']:,.0f}",
            f"{r['baseline_events_per_s']:,.0f}",
            f"{r['ratio']:.3f}{mark}",
        )
    Console().print(table)
    for r in report["results"]:
        print(
            f"{r['policy']}: {r['ops']:,} operations, {r['messages']:,} messages delivered "
            f"in {r['wall_s']:.2f} s (median of {args.repeat})"
        )
    print(f"target ratio: at least {TARGET_RATIO}")
    return 0


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _print_summary(summary: dict[str, Any], out_dir: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{summary['scenario']}[/bold]  policy [bold]{summary['policy']}[/bold]  "
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

    durability = summary["durability"]
    messages = summary["messages"]
    table = Table(title="Durability and messages")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("acknowledged writes", _fmt(durability["acknowledged_writes"]))
    lost = durability["lost_writes"]
    table.add_row("lost writes", "n/a (set workload only)" if lost is None else _fmt(lost))
    table.add_row("messages sent", _fmt(messages["sent"]))
    table.add_row("messages delivered", _fmt(messages["delivered"]))
    table.add_row("messages dropped", _fmt(messages["dropped"]))
    table.add_row("messages duplicated", _fmt(messages["duplicated"]))
    console.print(table)
    faults = summary["faults"]
    console.print(f"faults applied: {faults['applied']}, skipped: {faults['skipped']}")
    console.print(f"trace digest: {summary['trace_digest']}")
    if out_dir:
        console.print(f"wrote {out_dir}/")


if __name__ == "__main__":
    sys.exit(main())
