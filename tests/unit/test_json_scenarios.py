"""Scenario files in JSON: the YAML structure, read as strict JSON under the same rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capsim.cli import main
from capsim.errors import ScenarioError
from capsim.scenario import load_scenario, read_json, read_yaml

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"


def write(tmp_path: Path, text: str, name: str = "s.json") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_json_file_loads_to_the_same_scenario_as_its_yaml_twin(tmp_path):
    data = read_yaml(QUICKSTART.read_text())
    twin = write(tmp_path, json.dumps(data, indent=2), "quickstart.json")
    assert load_scenario(twin) == load_scenario(QUICKSTART)


def test_capsim_run_gives_a_json_file_the_same_summary_as_its_yaml_twin(tmp_path, capsys):
    data = read_yaml(QUICKSTART.read_text())
    twin = write(tmp_path, json.dumps(data), "quickstart.json")
    short = ["--set", "duration=3s", "--set", "faults[0].at=1s", "--set", "faults[0].duration=1s"]
    assert main(["run", str(QUICKSTART), "--json", "--quiet", *short]) == 0
    from_yaml = json.loads(capsys.readouterr().out)
    assert main(["run", str(twin), "--json", "--quiet", *short]) == 0
    from_json = json.loads(capsys.readouterr().out)
    assert from_json["trace_digest"] == from_yaml["trace_digest"]
    assert from_json["availability"] == from_yaml["availability"]


def test_numbers_with_exponents_are_numbers_in_json(tmp_path):
    text = '{"duration": 1e1, "workload": {"keys": 1E1}, "policy": {"params": {"batch": 1e2}}}'
    scenario = load_scenario(write(tmp_path, text))
    assert scenario.duration == 10.0
    assert scenario.workload.keys == 10
    # Policy parameters are not typed by the scenario: JSON gives the number itself...
    assert scenario.policy.params == {"batch": 100.0}
    # ...where YAML 1.1 reads 1e2 (no dot) as text.
    assert read_yaml("batch: 1e2") == {"batch": "1e2"}


def test_json_values_are_read_exactly():
    text = '{"a": [1, -0.5, 2.5e-3, true, false, null, "x\\u00e9\\ud83d\\ude00\\n"], "b": {}}'
    assert read_json(text) == {"a": [1, -0.5, 0.0025, True, False, None, "xé😀\n"], "b": {}}
    assert isinstance(read_json("[7]")[0], int)


def test_an_upper_case_extension_and_a_byte_order_mark_are_fine(tmp_path):
    path = tmp_path / "s.JSON"
    path.write_bytes(b'\xef\xbb\xbf{"duration": 2}')
    assert load_scenario(path).duration == 2.0


def test_set_overrides_a_json_scenario(tmp_path):
    path = write(tmp_path, '{"duration": 10}')
    assert load_scenario(path, overrides=["duration=4s"]).duration == 4.0


BAD = [
    # (file text, what the one-line error must say)
    (
        '{\n  "duration": 5,\n  "duration": 6\n}',
        "line 3: the key 'duration' is given twice (first on line 2)",
    ),
    (
        '{\n  "a": {"x": 1,\n        "x": 2}}',
        "line 3: the key 'x' is given twice (first on line 2)",
    ),
    ('{"duration": NaN}', "line 1: NaN is not allowed"),
    ('{\n"settle":\n-Infinity}', "line 3: -Infinity is not allowed"),
    ('{"duration": Infinity}', "line 1: Infinity is not allowed"),
    ('{"duration": 1e999}', "line 1: '1e999' is too large for a number"),
    ('{"seed": ' + "9" * 5000 + "}", "line 1: an integer of 5,000 digits is too large"),
    ('{"faults": [1, 2,]}', "line 1: not valid JSON (a comma before a closing bracket)"),
    ('{"duration": 5,}', "line 1: not valid JSON (a comma before a closing bracket)"),
    ("{'duration': 5}", "line 1: not valid JSON (expected a key in double quotes)"),
    ('// a comment\n{"duration": 5}', "line 1: not valid JSON (expected a value"),
    ('{"duration": 5}\n{"seed": 1}', "line 2: not valid JSON (more after the end of the value)"),
    ('{"duration": 5', "line 1: not valid JSON (the file ends inside an object or array)"),
    ('{"duration" 5}', "line 1: not valid JSON (expected ':' after the key)"),
    ('{"name": "a\tb"}', "line 1: not valid JSON (invalid control character)"),
    ('{"name": "a\\qb"}', "line 1: not valid JSON (invalid \\escape)"),
    ('{"name": "\\ud800"}', "line 1: a string holds half of a UTF-16 surrogate pair"),
    ('{"duration": 05}', "line 1: not valid JSON (expected ',' or '}')"),
    ("", "line 1: no JSON value in the file"),
    ("[" * 101 + "]" * 101, "line 1: nested deeper than 100 levels"),
    # Valid JSON, then the scenario's own rules, naming the field.
    ('{"duration": "5 parsecs"}', "duration: expected a duration"),
    ('{"colour": "red"}', "colour: unknown field"),
    ("[]", "a scenario must be a mapping of sections, got a list"),
]


@pytest.mark.parametrize("text, message", BAD, ids=[m[:40] for _, m in BAD])
def test_a_bad_json_file_is_one_line_naming_the_file_and_line(tmp_path, capsys, text, message):
    path = write(tmp_path, text)
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"capsim: error: {path}: ")
    assert message in err


def test_run_writes_nothing_for_a_bad_json_file(tmp_path, capsys):
    path = write(tmp_path, '{"duration": 5, "duration": 6}')
    out_dir = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out_dir)]) == 2
    assert "given twice" in capsys.readouterr().err
    assert not out_dir.exists()


def test_more_values_than_the_limit_are_refused(monkeypatch):
    monkeypatch.setitem(__import__("capsim.scenario").scenario.LIMITS, "yaml_values", 1000)
    read_json("[" + ",".join(["0"] * 999) + "]")  # the list and 999 numbers: 1,000 values
    with pytest.raises(ScenarioError, match="more than 1,000 values"):
        read_json("[" + ",".join(["0"] * 1000) + "]")


def test_nesting_up_to_the_limit_is_fine():
    assert read_json("[" * 100 + "]" * 100) is not None
