"""Histories: JSON lines on disk, columns in memory, invocations paired with completions."""

from __future__ import annotations

import json
import math

import pytest

from capsim.history import FAIL, INFO, OK, History, HistoryError


def sample_history() -> History:
    h = History()
    h.append(
        process=0,
        type="invoke",
        f="write",
        key="k1",
        value=1,
        time=0.0,
        client="c1",
        zone="a",
        node="n1",
    )
    h.append(
        process=1,
        type="invoke",
        f="cas",
        key="k1",
        value=[1, 2],
        time=0.1,
        client="c2",
        zone="b",
        node="n2",
        side="minority",
    )
    h.append(
        process=0,
        type="ok",
        f="write",
        key="k1",
        value=1,
        time=0.2,
        client="c1",
        zone="a",
        node="n1",
    )
    h.append(
        process=1,
        type="fail",
        f="cas",
        key="k1",
        value=[1, 2],
        time=0.3,
        client="c2",
        zone="b",
        node="n1",
        error="mismatch",
        side="minority",
    )
    h.append(
        process=2,
        type="invoke",
        f="read",
        key="k2",
        value=None,
        time=0.4,
        client="c1",
        zone="a",
        node="n1",
        final=True,
    )
    return h


def test_jsonl_has_the_documented_fields_in_order(tmp_path):
    path = tmp_path / "h.jsonl"
    sample_history().to_jsonl(path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert list(lines[0]) == [
        "process",
        "type",
        "f",
        "key",
        "value",
        "time",
        "client",
        "zone",
        "node",
        "shard",
    ]
    assert lines[1]["value"] == [1, 2] and lines[1]["side"] == "minority"
    assert lines[3]["error"] == "mismatch"
    assert lines[4]["final"] is True and lines[4]["value"] is None


def test_round_trip_through_jsonl(tmp_path):
    path = tmp_path / "h.jsonl"
    h = sample_history()
    h.to_jsonl(path)
    again = History.from_jsonl(path)
    assert list(again) == list(h)


def test_operations_pair_invocations_with_completions():
    ops = sample_history().operations()
    assert len(ops) == 3
    assert ops.type.tolist() == [OK, FAIL, INFO]
    assert ops.invoke_time.tolist() == [0.0, 0.1, 0.4]
    assert ops.complete_time[:2].tolist() == [0.2, 0.3] and math.isinf(ops.complete_time[2])
    assert ops.value(1) == [1, 2] and ops.error(1) == "mismatch"
    assert ops.final.tolist() == [False, False, True]
    assert ops.side.tolist() == [0, 2, 0]


def test_a_second_invocation_while_one_is_open_is_an_error():
    h = History()
    h.append(process=0, type="invoke", f="read", key="k", time=0.0)
    h.append(process=0, type="invoke", f="read", key="k", time=0.1)
    with pytest.raises(HistoryError, match="still open"):
        h.operations()


def test_a_completion_without_an_invocation_is_an_error():
    h = History()
    h.append(process=4, type="ok", f="read", key="k", time=0.0)
    with pytest.raises(HistoryError, match="never invoked"):
        h.operations()


def test_truncated_file_names_the_line(tmp_path):
    path = tmp_path / "h.jsonl"
    sample_history().to_jsonl(path)
    text = path.read_text()
    path.write_text(text[: len(text) - 20])
    with pytest.raises(HistoryError, match=r"h\.jsonl:5: not a JSON object.*truncated"):
        History.from_jsonl(path)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('{"process": 0, "type": "begin", "f": "read", "time": 0}', "'begin'"),
        ('{"process": 0, "type": "ok", "f": "fly", "time": 0}', "'fly'"),
        ('{"process": "p", "type": "ok", "f": "read", "time": 0}', "'process' must be an integer"),
        ('{"process": 0, "type": "ok", "f": "read"}', "lacks 'time'"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_malformed_events_are_named(tmp_path, line, words):
    path = tmp_path / "h.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(HistoryError, match="h.jsonl:1: ") as info:
        History.from_jsonl(path)
    assert words in str(info.value)


def test_a_million_operations_fit_in_columns():
    h = History()
    for i in range(200_000):  # 400,000 events: memory is columns, not dicts
        h.append_codes(i, 0, 0, 0, None, float(i), 0, 0, 0, 0)
        h.append_codes(i, 1, 0, 0, 1, float(i) + 0.5, 0, 0, 0, 0)
    ops = h.operations()
    assert len(ops) == 200_000 and (ops.type == OK).all()
    assert h.time.itemsize == 8 and h.type.itemsize == 1
