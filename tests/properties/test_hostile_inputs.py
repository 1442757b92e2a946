"""Hostile input to ``capsim validate``, ``capsim check`` and ``capsim history convert``.

Whatever the file holds (a mutated scenario, garbage of every JSON and YAML type, random
bytes, a truncated or deeply nested file, a malformed history in any format), the command
ends with a verdict or with exactly one line ``capsim: error: <file>...`` and status 2:
never a traceback, and ``convert`` leaves no output file behind on error. The strategies
mutate valid files, so most examples are one mistake away from something that works.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from capsim.cli import main

VALID_SCENARIO = {
    "name": "hostile",
    "seed": 3,
    "duration": "10s",
    "settle": "1s",
    "final_reads": True,
    "images": [
        {"name": "kv", "version": "1", "startup": "1s", "params": {}},
        {"name": "kv", "version": "2", "startup": "2s"},
    ],
    "cluster": {
        "containers": 5,
        "zones": ["a", "b", "c"],
        "placement": {"n1": "b"},
        "image": "kv:1",
        "shards": 2,
        "replication_factor": 3,
        "vnodes": 8,
        "service_time": "0ms",
        "disk": {"sync": "1ms", "lies": False, "writeback": "5s"},
    },
    "network": {
        "latency": {
            "same_zone": {"dist": "exponential", "mean": "1ms"},
            "cross_zone": {"dist": "lognormal", "median": "2ms", "sigma": 0.3},
            "client": "0ms",
            "kinds": {
                "write": {"same_zone": "1ms", "cross_zone": "5ms"},
                "ack": {"dist": "pareto", "xm": "1ms", "alpha": 2},
            },
        },
        "loss": 0.01,
        "duplicate": 0.0,
        "fifo": False,
        "bandwidth": "100Mbps",
        "message_bytes": 200,
    },
    "policy": {"name": "single-primary", "params": {"primary": "n1"}},
    "workload": {
        "kind": "register",
        "mode": "open",
        "rate": "20/1s",
        "read_fraction": 0.5,
        "cas_fraction": 0.1,
        "keys": 8,
        "key_distribution": "zipf",
        "zipf_s": 1.1,
        "timeout": "500ms",
        "retries": {"attempts": 2, "backoff": "10ms", "multiplier": 2, "max_backoff": "1s"},
        "clients": [{"zone": "a", "count": 2, "home": "n1"}, {"zone": "b"}],
        "start": "0s",
    },
    "faults": [
        {"kind": "partition", "at": "2s", "duration": "2s", "groups": [["n1", "n2"], ["c"]]},
        {"kind": "crash", "at": "3s", "target": "n2", "duration": "1s"},
        {"kind": "clock", "at": "1s", "target": "n3", "offset": "-50ms", "rate": 1.01},
        {
            "kind": "link",
            "at": "1s",
            "target": "n4",
            "loss": 0.1,
            "latency": {"dist": "uniform", "low": "1ms", "high": "2ms"},
        },
        {"kind": "zone-outage", "at": "5s", "zone": "c", "mode": "isolate", "duration": "1s"},
        {"kind": "upgrade", "at": "6s", "image": "kv:2", "target": ["n1", "n2"]},
        {
            "kind": "random",
            "at": "1s",
            "rate": "1/2s",
            "duration": {
                "dist": "mixture",
                "components": [
                    {"weight": 0.5, "dist": "constant", "value": "1s"},
                    {"weight": 0.5, "dist": "exponential", "rate": "2/s"},
                ],
            },
            "faults": ["partition", "crash"],
            "shapes": ["halves", "isolate"],
            "until": "8s",
        },
        {"kind": "churn", "at": "1s", "mttf": "5s", "mttr": "1s", "target": "b"},
        {"kind": "heal", "at": "9s"},
    ],
    "check": {"linearizable": True, "max_ops": 1000, "max_steps": 100000},
}

VALID_EVENTS = [
    {"process": 0, "type": "invoke", "f": "write", "key": "k1", "value": 1, "time": 0.0},
    {"process": 1, "type": "invoke", "f": "cas", "key": "k1", "value": [1, 2], "time": 0.1},
    {"process": 0, "type": "ok", "f": "write", "key": "k1", "value": 1, "time": 0.2},
    {"process": 1, "type": "fail", "f": "cas", "key": "k1", "value": [1, 2], "time": 0.3,
     "error": "mismatch"},
    {"process": 2, "type": "invoke", "f": "read", "key": "k1", "value": None, "time": 0.4,
     "client": "c1", "zone": "a", "node": "n1", "shard": 0, "side": "majority"},
    {"process": 2, "type": "ok", "f": "read", "key": "k1", "value": 1, "time": 0.5,
     "final": True},
]  # fmt: skip

VALID_KNOSSOS = """[{:process 0, :type :invoke, :f :write, :value 1, :time 10}
 {:process 0, :type :ok, :f :write, :value 1, :time 20}
 {:process 1, :type :invoke, :f :cas, :value [1 2]}
 {:process :nemesis, :type :info, :f :start}
 {:process 1, :type :ok, :f :cas, :value [1 2]}
 {:process 2, :type :invoke, :f :read, :value nil}
 {:process 2, :type :ok, :f :read, :value 2}]
"""

VALID_ETCD = """INFO  jepsen.util - 0\t:invoke\t:write\t1
INFO  jepsen.util - 0\t:ok\t:write\t1
INFO  jepsen.util - 1\t:invoke\t:cas\t[1 2]
INFO  jepsen.util - 1\t:fail\t:cas\t[1 2]
INFO  jepsen.util - 2\t:invoke\t:read\tnil
INFO  jepsen.util - 2\t:ok\t:read\t1
"""

VALID_KV = """{:process 0, :type :invoke, :f :put, :key "a", :value "x"}
{:process 0, :type :ok, :f :put, :key "a", :value "x"}
{:process 1, :type :invoke, :f :append, :key "a", :value "y"}
{:process 1, :type :ok, :f :append, :key "a", :value "y"}
{:process 2, :type :invoke, :f :get, :key "a", :value nil}
{:process 2, :type :ok, :f :get, :key "a", :value "xy"}
"""


# --- strategies -------------------------------------------------------------------------

UNITS = ["", "us", "µs", "ms", "s", "m", "min", "h", "x", "parsec", "/s", "/1s", "/0s", "/-1s",
         "/1m", "/250ms", "/", "/ms", "Mbps", "MB/s", "e400s", "/1e-320s", " s"]  # fmt: skip
YAML_ONLY = [
    "!!set {a, b, c}",
    "!!binary aGVsbG8=",
    "2001-12-14",
    "2001-12-14 21:59:43.10 -5",
    "!!python/object/apply:os.system ['echo hostile']",
    "!!python/name:os.system",
    "!!omap [{a: 1}, {b: 2}]",
    "!!pairs [{a: 1}]",
    "!custom 1",
    "!!int abc",
    "!!float x",
    "!!bool maybe",
    "*nowhere",
    "&a [*a]",
    "{? [a]: 1}",
    "{1: a, 2: b}",
    "{null: 1}",
    "<<",
    "{<<: {x: 1}, y: 2}",
    "[" * 150 + "]" * 150,
    "!!str " + "9" * 5000,
    "9" * 5000,
    ".nan",
    "-.inf",
    "0x7fffffffffffffffffff",
    "190:20:30",
    "yes",
    "~",
]


def numbers():
    """Numbers of every kind a file may hold: small, negative, huge, NaN, infinite; shrinks
    towards 0."""
    return st.one_of(
        st.integers(-3, 3),
        st.sampled_from([2**31, 2**63, 2**64, 10**30, 10**400, -(10**20), 10**9, 10**5 + 1]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([1e308, 5e-324, -0.0, 1e-320, 0.5, 1.5]),
    )


def garbage():
    """A value of any plain-data type, as nonsensical as possible; shrinks towards None."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        numbers(),
        st.text(max_size=12),
        st.builds(
            lambda n, u: f"{n}{u}",
            st.one_of(st.integers(-10, 10**6), st.floats(allow_nan=True)),
            st.sampled_from(UNITS),
        ),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=6,
    )


def _paths(node, prefix=()):
    """Every place in a tree of dicts and lists, as key/index tuples."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def _mutated(data, path, action, value):
    """``data`` with the place at ``path`` replaced, dropped, doubled or given a sibling."""
    out = copy.deepcopy(data)
    if not path:
        return value if action == "replace" else out
    parent = out
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "replace":
        parent[last] = value
    elif action == "drop":
        del parent[last]
    elif action == "double" and isinstance(parent, list):
        parent.insert(last, copy.deepcopy(parent[last]))
    elif isinstance(parent, dict):
        parent[f"unknown_{len(parent)}"] = value
    return out


PLACEHOLDER = "@@raw@@"


@st.composite
def mutated_scenarios(draw):
    """The valid scenario with one place replaced (by plain garbage or by raw YAML that only
    YAML can say), dropped, doubled or given an unknown sibling, as YAML text. Shrinks
    towards replacing the whole file, then to simpler garbage."""
    paths = list(_paths(VALID_SCENARIO))
    path = draw(st.sampled_from(paths))
    action = draw(st.sampled_from(["replace", "replace", "replace", "drop", "double", "add"]))
    raw = draw(st.one_of(st.none(), st.sampled_from(YAML_ONLY)))
    value = PLACEHOLDER if raw is not None else draw(garbage())
    data = _mutated(VALID_SCENARIO, path, action, value)
    text = yaml.safe_dump(data, default_flow_style=False, allow_unicode=True, sort_keys=False)
    if raw is not None:
        text = text.replace(f"'{PLACEHOLDER}'", raw)
    return text.encode("utf-8")


def _valid_scenario_bytes() -> bytes:
    return yaml.safe_dump(VALID_SCENARIO, sort_keys=False).encode("utf-8")


@st.composite
def damaged(draw, original: bytes):
    """``original`` truncated, with bytes inserted or overwritten, a line doubled, or nested
    deep; shrinks towards a truncation at offset 0."""
    how = draw(st.sampled_from(["truncate", "insert", "overwrite", "double-line", "nest"]))
    at = draw(st.integers(0, len(original)))
    if how == "truncate":
        return original[:at]
    if how == "insert":
        return original[:at] + draw(st.binary(min_size=1, max_size=8)) + original[at:]
    if how == "overwrite":
        chunk = draw(st.binary(min_size=1, max_size=8))
        return original[:at] + chunk + original[at + len(chunk) :]
    lines = original.splitlines(keepends=True) or [b""]
    i = draw(st.integers(0, len(lines) - 1))
    if how == "double-line":
        return b"".join(lines[: i + 1] + lines[i:])
    depth = draw(st.sampled_from([50, 101, 150, 5000]))
    return b"".join(lines[:i]) + b"[" * depth + b"]" * depth + b"\n" + b"".join(lines[i:])


def scenario_files():
    """Scenario file contents, from a one-place mutation of a valid file to random bytes."""
    return st.one_of(
        mutated_scenarios(),
        damaged(_valid_scenario_bytes()),
        st.binary(max_size=64),
        st.builds(lambda text: text.encode("utf-8"), st.text(max_size=64)),
    )


@st.composite
def mutated_jsonl(draw):
    """The valid JSON-lines history with one field of one event replaced by garbage (NaN and
    infinities written as JSON's forbidden literals), dropped, or its event dropped or
    doubled; shrinks towards the first event's first field."""
    events = copy.deepcopy(VALID_EVENTS)
    i = draw(st.integers(0, len(events) - 1))
    action = draw(st.sampled_from(["replace", "replace", "drop-field", "drop-event", "double"]))
    if action == "drop-event":
        del events[i]
    elif action == "double":
        events.insert(i, copy.deepcopy(events[i]))
    else:
        field = draw(st.sampled_from(sorted({k for e in events for k in e})))
        if action == "replace":
            events[i][field] = draw(garbage())
        else:
            events[i].pop(field, None)
    return "".join(json.dumps(e) + "\n" for e in events).encode("utf-8")


@st.composite
def mutated_edn(draw):
    """A valid Knossos, Porcupine kv or etcd history with one token replaced by EDN garbage;
    shrinks towards the first token of the Knossos file."""
    text = draw(st.sampled_from([VALID_KNOSSOS, VALID_KV, VALID_ETCD]))
    tokens = text.split(" ")
    i = draw(st.integers(0, len(tokens) - 1))
    replacement = draw(
        st.sampled_from(
            [
                "nil",
                "##NaN",
                "##Inf",
                "{:a 1 :a 2}",
                "[1",
                "]",
                "((",
                "#{[1] [1]}",
                ":",
                "99999999999999999999999",
                "9" * 5000,
                '"\\ud800"',
                "\\u0041",
                "#_",
                "#inst",
                "{}",
                "[[[[[[[[]]]]]]]]",
                "[" * 200,
                ":process",
                ":cas",
                ":txn",
                "[1 2 3]",
                ":info",
                ":ok",
                ":invoke",
                "-1",
                "1.5",
                "true",
                '"x"',
                ";",
                "",
            ]
        )  # fmt: skip
    )
    tokens[i] = replacement
    return " ".join(tokens).encode("utf-8")


def history_files():
    """History file contents in every format, damaged in every way; random bytes too."""
    valid = [
        "".join(json.dumps(e) + "\n" for e in VALID_EVENTS).encode(),
        VALID_KNOSSOS.encode(),
        VALID_ETCD.encode(),
        VALID_KV.encode(),
    ]
    return st.one_of(
        mutated_jsonl(),
        mutated_edn(),
        st.sampled_from(valid).flatmap(damaged),
        st.binary(max_size=64),
        st.lists(st.text(max_size=20), max_size=4).map(lambda ls: "\n".join(ls).encode()),
    )


# One example of each class the strategies aim at, always run whatever the profile draws.
SCENARIO_EXAMPLES = [
    b"workload: {rate: 1}\nworkload: {rate: 2}\n",
    b"cluster: {zones: !!set {a, b, c}}\n",
    b"x: !!python/object/apply:os.system ['echo hostile']\n",
    b"a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + b"".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n".encode()
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    ),
    b"cluster: {zones: " + b"[" * 5000 + b"]" * 5000 + b"}\n",
    b"cluster: {containers: 1000000000}\n",
    b"workload: {rate: 5/0s, retries: {multiplier: .inf}}\n",
    b"duration: 1" + b"0" * 400 + b"\n",
    b"\xff\xfe\x00garbage",
]
HISTORY_EXAMPLES = [
    b"\x00\xff\xfe" * 10,
    b'{"process": 0, "type": "invoke", "f": "write", "time": 0, "value": '
    + b"[" * 5000
    + b"]" * 5000
    + b"}\n",
    b'{"process": 0, "type": "invoke", "f": "write", "time": 0, "value": NaN}\n',
    b'{"process": 0, "type": [1], "f": "write", "time": 0}\n',
    b'{"process": 0, "type": "invoke", "f": "read", "time": 0, "shard": "x"}\n',
    b'{"process": 3, "type": "ok", "f": "read", "time": 0}\n',
    b'{"process": 1' + b"0" * 30 + b', "type": "invoke", "f": "read", "time": 0}\n',
    b"[" + b"[" * 5000 + b"]" * 5000 + b"]\n",
    b"[{:process 0, :type :invoke, :f :cas, :value nil}]\n",
    b"[{:process 0, :type :invoke, :f :txn, :value [1 2]}]\n",
    b"[{:process 0, :type :invoke, :f :read}\n",
    b'{:process 0, :type :invoke, :f :put, :key {:a 1}, :value "x"}\n',
]
# The project's profile sets how hard to look; these inputs are cheap, so look harder.
HARDER = settings(max_examples=max(settings.default.max_examples, 150))


def examples(contents, **fixed):
    """Run each of ``contents`` (with ``fixed`` arguments) as an explicit example."""

    def decorate(test):
        for content in contents:
            test = example(content=content, **fixed)(test)
        return test

    return decorate


# --- running the command line in-process ------------------------------------------------


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def assert_one_error_line(err: str, path: Path) -> None:
    assert err.startswith("capsim: error: "), err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert str(path) in err, err
    assert len(err) < 2000, err


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def test_the_valid_files_are_valid(folder):
    path = folder / "valid.yaml"
    path.write_bytes(_valid_scenario_bytes())
    assert run_cli(["validate", str(path)])[0] == 0
    for i, content in enumerate(
        [
            "".join(json.dumps(e) + "\n" for e in VALID_EVENTS),
            VALID_KNOSSOS,
            VALID_ETCD,
            VALID_KV,
        ]
    ):
        path = folder / f"valid-{i}.txt"
        path.write_text(content)
        code, _, err = run_cli(["check", str(path)])
        assert code in (0, 1), err


@HARDER
@given(content=scenario_files())
@examples(SCENARIO_EXAMPLES)
def test_validate_gives_a_verdict_or_one_error_line(folder, content):
    path = folder / "scenario.yaml"
    path.write_bytes(content)
    code, _, err = run_cli(["validate", str(path)])
    assert code in (0, 2)
    if code == 2:
        assert_one_error_line(err, path)
    else:
        assert err == ""


@HARDER
@given(content=history_files())
@examples(HISTORY_EXAMPLES)
def test_check_gives_a_verdict_or_one_error_line(folder, content):
    path = folder / "history.txt"
    path.write_bytes(content)
    code, out, err = run_cli(["check", str(path), "--max-steps", "20000"])
    assert code in (0, 1, 2, 3)
    if code == 2:
        assert_one_error_line(err, path)
    else:
        assert err == "" and out


@HARDER
@given(content=history_files(), to=st.sampled_from(["jsonl", "knossos-edn", "porcupine-kv"]))
@examples(HISTORY_EXAMPLES, to="jsonl")
def test_convert_writes_whole_or_leaves_nothing(folder, content, to):
    path = folder / "in.txt"
    path.write_bytes(content)
    target = folder / "converted" / "out.txt"
    target.parent.mkdir(exist_ok=True)
    if target.exists():
        target.unlink()
    code, _, err = run_cli(["history", "convert", str(path), str(target), "--to", to])
    assert code in (0, 2)
    if code == 2:
        assert_one_error_line(err, path if str(path) in err else target)
        assert os.listdir(target.parent) == []
    else:
        assert target.exists() and os.listdir(target.parent) == ["out.txt"]
