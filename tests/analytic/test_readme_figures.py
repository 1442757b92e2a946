"""The README's ``capsim pbs`` example is what the command prints."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from capsim.cli import main

ROOT = Path(__file__).resolve().parents[2]
NUMBER = re.compile(r"-?\d[\d,]*\.?\d*(?:e-?\d+)?")


def same_reading(expected: str, got: str) -> bool:
    """Equal text, and numbers equal to 1e-4 relative (float32 exp and log may differ in
    the last bit on another CPU, moving a Monte Carlo figure in its last digits)."""
    if NUMBER.sub("#", expected) != NUMBER.sub("#", got):
        return False
    for a, b in zip(NUMBER.findall(expected), NUMBER.findall(got), strict=True):
        x, y = float(a.replace(",", "")), float(b.replace(",", ""))
        if abs(x - y) > 1e-4 * max(abs(x), abs(y), 1.0):
            return False
    return True


def test_readme_quotes_capsim_pbs_as_it_prints(capsys):
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```\n$ capsim pbs ", 1)[1].split("```", 1)[0]
    command, *expected = block.splitlines()
    assert main(["pbs", *shlex.split(command)]) == 0
    got = capsys.readouterr().out.splitlines()
    assert len(got) == len(expected)
    for want, line in zip(expected, got, strict=True):
        assert same_reading(want, line), (want, line)
