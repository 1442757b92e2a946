"""``capsim explore``: the command line's side of :func:`capsim.testing.explore`.

Exit status 1 after writing the shrunk reproducer to ``--out`` (default
``explore-<scenario name>``), 0 when the examples broke nothing, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from capsim.errors import CapsimError
from capsim.testing.explore import Progress, explore
from capsim.testing.strategies import FAULT_KINDS

__all__ = ["run_explore", "ProgressLine"]


class ProgressLine:
    """Progress on stderr: examples tried, time, and the best candidate so far; redrawn in
    place on a terminal (at most every ``every_s``), a line every ``log_every_s`` else."""

    def __init__(self, stream=None, every_s: float = 0.5, log_every_s: float = 10.0):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = every_s if self.tty else log_every_s
        self.next_s = self.every_s
        self.drawn = False

    def __call__(self, progress: Progress) -> None:
        if progress.elapsed_s < self.next_s:
            return
        self.next_s = progress.elapsed_s + self.every_s
        line = self.text(progress)
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
            self.drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    @staticmethod
    def text(progress: Progress) -> str:
        """One progress line."""
        if progress.found is not None:
            smallest = progress.smallest
            size = (
                ""
                if smallest is None
                else f"; smallest so far: {smallest} fault" + ("s" if smallest != 1 else "")
            )
            return (
                f"capsim explore: {progress.found} fails; shrinking: {progress.shrink_runs} "
                f"runs, {progress.elapsed_s:.1f} s{size}"
            )
        return (
            f"capsim explore: {progress.examples} examples, {progress.elapsed_s:.1f} s, "
            f"{progress.leader_examples} with a fault against the leader or primary; "
            f"best so far: {progress.best or 'nothing'}"
        )

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def _kinds(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if not kinds or unknown:
        raise CapsimError(
            f"--faults {text}: unknown fault kind(s) {unknown or []}; "
            f"kinds: {','.join(FAULT_KINDS)}"
        )
    return kinds


def run_explore(args: argparse.Namespace, load) -> int:
    """``capsim explore`` with parsed ``args``; ``load(path, overrides)`` loads and checks
    the scenario as ``capsim run`` does."""
    from capsim.runner import check_output

    scenario = load(args.scenario, args.overrides)
    kinds = _kinds(args.faults)
    out = Path(args.out) if args.out else Path("explore-" + _safe(scenario.name))
    check_output(out, replace=args.replace)
    line = None if args.quiet else ProgressLine()
    try:
        exploration = explore(
            scenario,
            invariants=args.invariants or None,
            examples=args.examples,
            budget_s=args.budget,
            seed=args.seed,
            profile=args.profile or "default",
            kinds=kinds or _default_kinds(),
            max_faults=args.max_faults,
            storm=getattr(args, "storms", True),
            progress=line,
        )
    finally:
        if line is not None:
            line.close()
    if exploration.found:
        try:
            exploration.write(out, replace=args.replace)
        except OSError as exc:
            raise CapsimError(f"--out {out}: cannot write: {exc.strerror or exc}") from None
    if args.json:
        data = exploration.to_json()
        data["reproducer"] = str(out / "scenario.yaml") if exploration.found else None
        print(json.dumps(data, indent=2, allow_nan=False))
    else:
        print(exploration.report(out if exploration.found else None))
    return 1 if exploration.found else 0


def _safe(name: str) -> str:
    """A scenario's name as a folder name: letters, digits, ``.``, ``_`` and ``-``."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip(".-")[:100]
    return cleaned or "scenario"


def _default_kinds() -> tuple[str, ...]:
    from capsim.testing.strategies import DEFAULT_KINDS

    return DEFAULT_KINDS
