"""The scenario reference and JSON Schema: generated from the specs, and true to the loader."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import pytest
from jsonschema import Draft7Validator, Draft202012Validator
from pydantic import AfterValidator

from capsim import schemadoc
from capsim.cli import main
from capsim.distributions import DISTRIBUTIONS
from capsim.errors import ScenarioError
from capsim.faults import FAULTS
from capsim.scenario import Scenario, parse_scenario, read_yaml
from capsim.schema import WholeNumber, spec

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "scenarios" / "README.md"


@pytest.fixture(scope="module")
def schema() -> dict:
    return schemadoc.json_schema()


@pytest.fixture(scope="module")
def validator(schema) -> Draft202012Validator:
    return Draft202012Validator(schema)


@pytest.fixture(scope="module")
def draft7(schema) -> Draft7Validator:
    """The schema as a draft-07 reader sees it (VS Code's YAML extension is one)."""
    as_draft7 = dict(schema, **{"$schema": "http://json-schema.org/draft-07/schema#"})
    Draft7Validator.check_schema(as_draft7)
    return Draft7Validator(as_draft7)


@pytest.fixture(scope="module")
def page() -> str:
    return schemadoc.markdown()


# --- the reference page -----------------------------------------------------------------


def test_scenarios_readme_is_the_generated_reference(page):
    assert REFERENCE.read_text(encoding="utf-8") == page, (
        f"scenarios/README.md is out of date with the schema: run `{schemadoc.REGENERATE}`"
    )


def test_capsim_schema_markdown_prints_the_reference(capsys, page):
    assert main(["schema", "--markdown"]) == 0
    assert capsys.readouterr().out == page


def test_every_field_of_every_section_fault_and_distribution_has_a_row(page):
    sections = page.split("\n## ")
    classes = [cls for _, cls in schemadoc._sections()]
    classes += list(FAULTS.values()) + list(DISTRIBUTIONS.values())
    for cls in classes:
        docs = schemadoc.field_docs(cls)
        for name, info in cls.__pydantic_fields__.items():
            if name in ("kind", "dist") and cls in (*FAULTS.values(), *DISTRIBUTIONS.values()):
                continue
            key = info.alias or name
            rows = [line for line in page.splitlines() if line.startswith(f"| `{key}` |")]
            meaning = " ".join(schemadoc._md(docs[name]).split())
            assert any(
                row.endswith(f"| {meaning.replace('|', chr(92) + '|')} |") for row in rows
            ), f"{cls.__name__}.{name}"
    assert len(sections) > 10


@pytest.mark.parametrize(
    "row",
    [
        # Worked out from the specs by hand: type and bounds, default with its unit.
        "| `duration` | [duration](#value-types), over 0 s, at most 1e9 s | `30s` |",
        "| `containers` | whole number, from 1 to 100,000 | `5` |",
        "| `rate` | [rate](#value-types), from 1e-9 to 1e9 per second | `20/s` |",
        "| `loss` | number, from 0 to 1 | `0` |",
        "| `fifo` | `true` or `false` | `false` |",
        "| `same_zone` | [distribution](#distributions) | `{dist: exponential, mean: 0.5ms}` |",
        "| `mode` | `crash` or `isolate` | `crash` |",
        "| `at` | [duration](#value-types), from 0 to 1e9 s | required |",
        "| `sigma` | number, from 0 to 10 | required |",
        "| `bandwidth` | [bandwidth](#value-types), at least 1bps, or `null` | `null` |",
    ],
)
def test_rows_give_type_unit_bounds_and_default(page, row):
    assert any(line.startswith(row) for line in page.splitlines()), row


def test_every_link_in_the_page_leads_to_a_heading(page):
    headings = {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in page.splitlines()
        if line.startswith("#")
    }
    links = set(re.findall(r"\]\(#([^)]+)\)", page))
    assert links and links <= headings, links - headings


def test_a_field_without_a_description_is_an_error():
    @spec
    class Undocumented:
        """A section whose second field nobody described."""

        size: WholeNumber = 1
        """How big."""
        colour: WholeNumber = 2

    with pytest.raises(schemadoc.SchemaDocError, match="no description for colour"):
        schemadoc.field_docs(Undocumented)


def test_a_validator_the_generator_does_not_know_is_an_error():
    odd = Annotated[float, AfterValidator(lambda value: value)]
    with pytest.raises(schemadoc.SchemaDocError, match="X.y: the validator .* is unknown"):
        schemadoc._Walker({}).walk(odd, "X.y")


# --- the JSON Schema --------------------------------------------------------------------


def test_capsim_schema_prints_a_valid_draft_2020_12_schema(capsys, schema):
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == schema
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(printed)


def test_every_scenario_file_and_the_readme_example_validate(validator, draft7):
    files = sorted((ROOT / "scenarios").glob("*.yaml"))
    assert files
    for path in files:
        data = read_yaml(path.read_text())
        assert [e.message for e in validator.iter_errors(data)] == [], path.name
        assert draft7.is_valid(data), path.name
    readme = (ROOT / "README.md").read_text()
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert validator.is_valid(read_yaml(example))


def test_durations_and_rates_are_numbers_or_text_with_units(schema):
    duration = schema["properties"]["duration"]
    number, text = duration["anyOf"]
    assert number == {"type": "number", "exclusiveMinimum": 0, "maximum": 1e9}
    for good in ("250us", "5ms", "1.5s", "2m", "1h", "3", " 2 s ", "1e3ms"):
        assert re.search(text["pattern"], good), good
    for bad in ("5 parsecs", "5sec", "-1s", "0s", "ms", "1.2.3s"):
        assert not re.search(text["pattern"], bad), bad
    rate = schema["$defs"]["WorkloadSpec"]["properties"]["rate"]["anyOf"][1]["pattern"]
    for good in ("200", "200/s", "5/ms", "20/1s", "60/1m", "5/250ms", "0.5/s"):
        assert re.search(rate, good), good
    for bad in ("0/s", "20/fortnight", "/s", "200/", "-3/s"):
        assert not re.search(rate, bad), bad


# Each case is accepted (or refused) by the loader, and the schema must say the same.
AGREE = [
    "{}",
    "duration: 250us",
    "duration: 1.5e3",  # YAML 1.1 text that reads as a number
    "settle: 0",
    "workload: {rate: 5/250ms}",
    "workload: {rate: '1e3'}",
    "network: {bandwidth: 100Mbps}",
    "network: {bandwidth: 100 Mbps}",
    "network: {bandwidth: 10MB/s}",
    "cluster: {service_time: 1ms}",
    "cluster: {service_time: {dist: uniform, low: 1ms, high: 2ms}}",
    "network: {latency: {kinds: {write: 5ms, ack: {same_zone: 1ms}}}}",
    "cluster: {service_time: {dist: mixture, components: [{weight: 0.9, dist: constant,"
    " value: 1ms}, {weight: 0.1, dist: exponential, mean: 10ms}]}}",
    "cluster: {service_time: {dist: mixture, components: [[0.5, 1ms], [0.5, 2ms]]}}",
    "cluster: {service_time: {dist: exponential, rate: 1000/s}}",
    "faults: [{kind: partition, at: 1s, duration: 2s, shape: isolate, target: [n1, n2]}]",
    "faults: [{kind: link, at: 1s, groups: [[n1], [n2, n3]], loss: 0.5}]",
    "sweep: {grid: {policy.params.w: [1, 2], 'faults[0].at': [1s]}, seeds: [1, 5]}",
    "seed: 18446744073709551615",
    "workload: {keys: 1e6}",
    "policy: {name: 'mymodule:MyPolicy'}",
]
DISAGREE = [
    "colour: red",  # unknown field
    "cluster: {containerz: 3}",
    "cluster: {containers: three}",  # wrong type
    "final_reads: 1",
    "network: {fifo: 'true'}",
    "cluster: {zones: a}",
    "workload: {keys: 2.5}",
    "faults: [{kind: crash, at: 1s, target: 3}]",
    "duration: 5 parsecs",  # bad unit
    "duration: 5sec",
    "workload: {rate: 20/fortnight}",
    "network: {bandwidth: 100 Mbits}",
    "duration: -1s",  # out of bounds
    "duration: 0",
    "network: {loss: 1.5}",
    "cluster: {containers: 0}",
    "seed: -1",
    "cluster: {service_time: {dist: lognormal, median: 1ms, sigma: 11}}",
    "faults: [{kind: meteor, at: 1s}]",  # unknown kind
    "faults: [{kind: crash}]",  # missing field
    "cluster: {service_time: {mean: 1ms}}",  # no 'dist'
    "cluster: {service_time: {dist: exponential, mean: 1ms, rate: 5}}",
    "cluster: {service_time: {dist: mixture, components: [{dist: constant, value: 1ms}]}}",
    "sweep: {grid: {seed: [1]}}",
    "sweep: {grid: {'a..b': [1]}}",
    "policy: {name: 'bad name!'}",
    "images: [{name: 'kv store'}]",
    "cluster: {zones: [a, a]}",
    "network: {latency: {kinds: {write: {}}}}",
]


@pytest.mark.parametrize(
    "text, accepted", [(t, True) for t in AGREE] + [(t, False) for t in DISAGREE]
)
def test_the_schema_accepts_what_the_loader_accepts(validator, draft7, text, accepted):
    data = read_yaml(text)
    try:
        parse_scenario(data)
        loaded = True
    except ScenarioError:
        loaded = False
    assert loaded is accepted
    assert validator.is_valid(data) is accepted
    # Written so that a draft-07 reader, which ignores prefixItems, agrees.
    assert draft7.is_valid(data) is accepted


def test_bounds_hold_for_numbers_written_as_numbers(validator):
    # Text cannot carry a bound in a pattern ("2e9" is text in YAML 1.1), a JSON number can.
    for data in ({"duration": 2e9}, {"workload": {"rate": 2e9}}, {"workload": {"keys": 1e8}}):
        with pytest.raises(ScenarioError):
            parse_scenario(data)
        assert not validator.is_valid(data), data


def test_the_schema_has_a_description_for_every_property(schema):
    for name, definition in [("top level", schema), *schema["$defs"].items()]:
        for key, prop in definition.get("properties", {}).items():
            assert "const" in prop or prop.get("description"), f"{name}.{key}"


def test_the_top_level_has_exactly_the_scenario_fields(schema):
    assert set(schema["properties"]) == set(Scenario.__pydantic_fields__)
    assert schema["additionalProperties"] is False
