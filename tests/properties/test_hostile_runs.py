"""Hostile input to `capsim run`: enormous but valid scenarios and every kind of --out.

Whatever the scenario and the output path, a run ends in exit 0 with a complete output
folder, or in exit 2 with one line naming the file and nothing written; an enormous run
is refused up front with its estimated size, never started.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from capsim.cli import main
from capsim.runner import OUTPUT_FILES, OUTPUT_MARKER


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@st.composite
def sizes(draw) -> dict:
    """A scenario that is either small (runs in well under a second) or enormous in one
    dimension (operations, containers, duration, keys): shrinks towards small ones."""
    scenario: dict = {"duration": draw(st.sampled_from(["0.5s", "1s", "2s"])), "settle": "0.2s"}
    cluster = {"containers": draw(st.integers(1, 7))}
    workload = {"rate": draw(st.floats(0.5, 40)), "keys": draw(st.integers(1, 20))}
    enormous = draw(st.sampled_from([None, "rate", "containers", "duration", "clients"]))
    if enormous == "rate":
        workload["rate"] = draw(st.floats(1e7, 1e9))
    elif enormous == "containers":
        cluster["containers"] = draw(st.integers(30_000, 100_000))
    elif enormous == "duration":
        scenario["duration"] = draw(st.floats(1e8, 1e9))
    elif enormous == "clients":
        workload["clients_per_zone"] = draw(st.integers(20_000, 33_000))  # <= 100,000 in all
        workload["rate"] = 200
        scenario["duration"] = "10s"
    scenario["cluster"] = cluster
    scenario["workload"] = workload
    scenario["_enormous"] = enormous
    return scenario


OUT_KINDS = ["absent", "capsim-folder", "foreign-folder", "file", "device", "cwd"]


def prepare_out(base: Path, kind: str) -> str:
    out = base / "out"
    if kind == "capsim-folder":
        out.mkdir()
        (out / OUTPUT_MARKER).write_text("")
        (out / "summary.json").write_text("{}")
    elif kind == "foreign-folder":
        out.mkdir()
        (out / "notes.txt").write_text("keep me")
    elif kind == "file":
        out.write_text("keep me")
    elif kind == "device":
        return os.devnull
    elif kind == "cwd":
        return "."
    return str(out)


@settings(max_examples=40, deadline=None)
@given(scenario=sizes(), out_kind=st.sampled_from(OUT_KINDS))
def test_a_run_writes_everything_or_nothing_and_never_starts_an_enormous_run(
    tmp_path_factory, scenario, out_kind
):
    base = tmp_path_factory.mktemp("run")
    enormous = scenario.pop("_enormous")
    path = base / "s.yaml"
    path.write_text(yaml.safe_dump(scenario))
    out = prepare_out(base, out_kind)
    before = sorted(p.name for p in base.iterdir())
    before_file = (base / "out").read_bytes() if out_kind == "file" else None
    cwd = os.getcwd()
    os.chdir(base)  # "." is the base folder itself
    try:
        code, stdout, err = run_cli(["run", str(path), "--out", out, "--quiet"])
    finally:
        os.chdir(cwd)
    if enormous or out_kind in ("foreign-folder", "file", "device", "cwd"):
        assert code == 2, (code, err)
        assert err.startswith("capsim: error: ") and err.count("\n") == 1, err
        if enormous:
            assert "too large to run by default" in err and "--allow-large" in err
        assert sorted(p.name for p in base.iterdir()) == before  # nothing written
        if out_kind == "foreign-folder":
            assert [p.name for p in (base / "out").iterdir()] == ["notes.txt"]
        if out_kind == "file":
            assert (base / "out").read_bytes() == before_file
        return
    assert code == 0, err
    written = sorted(p.name for p in Path(out).iterdir())
    assert written == sorted([*OUTPUT_FILES, OUTPUT_MARKER])
    assert sorted(p.name for p in base.iterdir()) == ["out", "s.yaml"]  # no temporaries
    assert "trace digest" in stdout
