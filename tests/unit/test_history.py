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


# --- hostile files: one error naming the file and the line --------------------------------

EVENT = {"process": 0, "type": "invoke", "f": "write", "key": "k", "value": 1, "time": 0.0}


def history_error(tmp_path, content: bytes | str) -> str:
    path = tmp_path / "h.jsonl"
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    with pytest.raises(HistoryError) as info:
        History.from_jsonl(path)
    message = str(info.value)
    assert message.startswith(f"{path}:") and "\n" not in message and len(message) < 400
    return message


def line(**changes) -> str:
    event = {**EVENT, **changes}
    return json.dumps({k: v for k, v in event.items() if v is not DROP}) + "\n"


DROP = object()


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"key": {"a": 1}}, "'key' must be text"),
        ({"client": [1]}, "'client' must be text"),
        ({"shard": "x"}, "'shard' must be an integer"),
        ({"shard": -1}, "'shard' must be an integer"),
        ({"side": {}}, "'side' must be 'majority', 'minority' or null"),
        ({"type": ["ok"]}, "'type' must be one of"),
        ({"f": {"f": "read"}}, "'f' must be one of"),
        ({"final": "yes"}, "'final' must be true or false"),
        ({"error": 5}, "'error' must be text"),
        ({"process": 2**70}, "'process' must be an integer (64-bit)"),
        ({"process": True}, "'process' must be an integer"),
        ({"time": 10**400}, "'time' must be a finite number"),
        ({"time": "0"}, "'time' must be a finite number"),
        ({"time": DROP}, "lacks 'time'"),
    ],
)
def test_wrong_types_in_every_field_name_the_line(tmp_path, changes, words):
    message = history_error(tmp_path, line() + line(**{"process": 1, **changes}))
    assert ":2: " in message and words in message, message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"process": 0, "type": "invoke", "f": "write", "time": NaN}', "NaN is not a number"),
        ('{"process": 0, "type": "invoke", "f": "write", "time": 0, "value": Infinity}', "Inf"),
        ('{"process": 0, "type": "invoke", "f": "write", "time": 1e999}', "too large"),
        ('{"process": 0, "type": "invoke", "f": "write", "time": 0, "value": [-1e400]}', "large"),
        ('{"process": 0, "type": "invoke", "f": "write", "time": 0, "value": "\\udc00"}', "pair"),
        ('{"process": ' + "9" * 5000 + ', "type": "invoke", "f": "read", "time": 0}', "digits"),
    ],
)
def test_numbers_and_characters_nothing_could_use_are_errors(tmp_path, text, words):
    assert words in history_error(tmp_path, text + "\n")


@pytest.mark.parametrize("depth", [101, 10_000, 400_000])
def test_deep_nesting_is_an_error_not_a_recursion_error(tmp_path, depth):
    value = "[" * depth + "]" * depth
    text = '{"process": 0, "type": "invoke", "f": "write", "time": 0, "value": ' + value + "}\n"
    assert "nested deeper than 100 levels" in history_error(tmp_path, text)


def test_binary_garbage_names_the_line(tmp_path):
    message = history_error(tmp_path, line().encode() + b"\x00\xff\xfe garbage\n")
    assert ":2: not UTF-8 text (byte 2 of the line is 0xff)" in message


def test_an_endless_line_is_cut_at_one_mebibyte(tmp_path):
    with pytest.raises(HistoryError, match=r"^/dev/zero:1: the line is longer than 1 MiB"):
        History.from_jsonl("/dev/zero")


def test_a_completion_never_invoked_names_its_line_when_read(tmp_path):
    text = line() + line(type="ok") + "\n" + line(process=4, type="ok", f="read")
    assert ":4: process 4 completes a read it never invoked" in history_error(tmp_path, text)
    text = line() + line(f="read", type="ok")
    message = history_error(tmp_path, text)
    assert ":2: process 0 completes a read but invoked a write on line 1" in message
    assert "still open" in history_error(tmp_path, line() + line(time=1.0))


def test_a_history_read_back_knows_the_line_of_each_event(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text("\n" + line() + "\n\n" + line(type="ok"))
    history = History.from_jsonl(path)
    assert list(history.lines) == [2, 5] and len(history.operations()) == 1
