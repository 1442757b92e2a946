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
    """Progress on stderr for long runs: simulated time and events every few seconds,
    read from the running world by a thread (so a run stuck at one instant still shows
    its events growing). Silent for runs that finish within ``QUIET_S``."""

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
        if self.done.wait(self.QUIET_S):
            return
        while True:
            now = world.engine.now
            line = (
                f"capsim: simulated {now:,.3f} of about {self.total:,.3f} s "
                f"({100 * min(now / self.total, 1):.0f}%), {world.events:,} events; "
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
    from capsim.bench import TARGET_RATIO, run_bench
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
