"""History formats: the EDN reader, each format's parser and rules, detection, conversion."""

from __future__ import annotations

import json
import math

import pytest

from capsim.checkers import (
    CheckerError,
    FormatError,
    check_file,
    convert,
    detect_format,
    parse_value,
    read_operations,
)
from capsim.checkers import edn as edn_module
from capsim.checkers.edn import Keyword, Symbol, dumps, loads, read_forms
from capsim.errors import CapsimError


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- EDN --------------------------------------------------------------------------------


def test_edn_reads_scalars_and_collections():
    value = loads('{:a 1, :b [1 2.5 "x\\"y\\n"], :c (nil true false), :d #{:k}, :e -3N}')
    assert value == {"a": 1, "b": (1, 2.5, 'x"y\n'), "c": (None, True, False), "d": {"k"}, "e": -3}
    assert isinstance(next(iter(value)), Keyword)
    assert repr(Keyword("read")) == ":read"


def test_edn_skips_comments_commas_discards_and_tags():
    text = '; a comment\n[1, #_ 2 3 ; trailing\n #inst "2020" sym \\a \\newline]'
    assert loads(text) == (1, 3, "2020", Symbol("sym"), "a", "\n")


def test_edn_reports_line_of_truncation_and_mismatched_brackets():
    with pytest.raises(
        FormatError,
        match=r"f\.edn:3: end of file inside the vector opened at line 1; is the file truncated",
    ):
        loads("[{:a 1}\n {:b 2}\n", "f.edn")
    with pytest.raises(FormatError, match=r"f\.edn:2: '\)' closes the vector opened at line 1"):
        loads("[1\n)", "f.edn")
    with pytest.raises(FormatError, match="unterminated string"):
        loads('["abc', "f.edn")
    with pytest.raises(FormatError, match="even number"):
        loads("{:a}", "f.edn")


def test_edn_forms_carry_their_lines_and_element_lines():
    forms = list(read_forms("\n[{:a 1}\n {:b 2}]\n{:c 3}", child_offsets=True))
    assert [(line, lines) for _, line, lines in forms] == [(2, [2, 3]), (4, [4, 4])]


def test_edn_writer_round_trips():
    value = {
        Keyword("f"): Keyword("txn"),
        Keyword("v"): ((Keyword("read"), "x", None), 2.5),
        Keyword("s"): 'a"b',
    }
    assert loads(dumps(value)) == value
    assert dumps(frozenset({1})) == "#{1}"


# --- capsim JSON lines ------------------------------------------------------------------


def _jsonl(*events):
    return "".join(json.dumps(e) + "\n" for e in events)


def test_jsonl_pairs_events_and_keeps_the_mismatch_rule(tmp_path):
    path = write(
        tmp_path,
        "h.jsonl",
        _jsonl(
            {"process": 0, "type": "invoke", "f": "write", "key": "k", "value": 1, "time": 0.5},
            {"process": 0, "type": "ok", "f": "write", "key": "k", "value": 1, "time": 1.0},
            {"process": 1, "type": "invoke", "f": "cas", "key": "k", "value": [1, 2], "time": 2},
            {
                "process": 1,
                "type": "fail",
                "f": "cas",
                "key": "k",
                "value": [1, 2],
                "time": 3,
                "error": "mismatch",
            },
            {"process": 2, "type": "invoke", "f": "read", "key": "k", "value": None, "time": 4},
        ),
    )
    ops, fmt = read_operations(path)
    assert fmt == "jsonl"
    assert [(op.f, op.type, op.key) for op in ops] == [
        ("write", "ok", "k"),
        ("cas", "fail", "k"),
        ("read", "info", "k"),
    ]
    assert ops[1].value == (1, 2) and ops[1].error == "mismatch"
    assert math.isinf(ops[2].ret)  # never completed
    assert (ops[0].call_time, ops[0].ret_time) == (0.5, 1.0)
    # The register holds 1 when the CAS [1 2] says it compared false: a violation.
    result = check_file(path)
    assert result.model == "cas-register"
    assert result.verdict == "not-linearizable"


def test_jsonl_malformed_line_names_file_and_line(tmp_path):
    good = {"process": 0, "type": "invoke", "f": "read", "time": 0}
    path = write(tmp_path, "bad.jsonl", _jsonl(good) + '{"process": 0, "type": "ok", "f": "re\n')
    with pytest.raises(CapsimError, match=r"bad\.jsonl:2: .*truncated"):
        check_file(path)


def test_jsonl_completion_without_invocation_names_the_file(tmp_path):
    path = write(tmp_path, "h.jsonl", _jsonl({"process": 3, "type": "ok", "f": "read", "time": 0}))
    with pytest.raises(FormatError, match=r"h\.jsonl:1: process 3 completes a read it never"):
        read_operations(path)


# --- Porcupine etcd logs ----------------------------------------------------------------

ETCD = """INFO  jepsen.util - 0\t:invoke\t:write\t1
INFO  jepsen.util - 0\t:ok\t:write\t1
INFO  jepsen.util - 1   :invoke :cas    [1 2]
INFO  jepsen.util - 1   :fail   :cas    [1 2]
INFO  jepsen.util - 2\t:invoke\t:read\tnil
INFO  jepsen.util - 2\t:fail\t:read\t:timed-out
INFO  jepsen.util - 3\t:invoke\t:write\t4
INFO  jepsen.util - 3\t:info\t:write\t:timed-out
some other log line
INFO  jepsen.util - 4\t:invoke\t:read\tnil
INFO  jepsen.util - 4\t:ok\t:read\t4
"""


def test_etcd_log_rules(tmp_path):
    path = write(tmp_path, "etcd.log", ETCD)
    ops, fmt = read_operations(path)
    assert fmt == "porcupine-etcd"
    by_process = {op.process: op for op in ops}
    # Tabs and runs of spaces both separate fields.
    assert by_process[1].value == (1, 2)
    # :fail :cas ran and compared false; :fail :read timed out and constrains nothing.
    assert (by_process[1].type, by_process[1].error) == ("fail", "mismatch")
    assert by_process[2].type == "fail" and by_process[2].error != "mismatch"
    # :info leaves the write indeterminate; times shown are line numbers.
    assert by_process[3].type == "info"
    assert (by_process[4].output, by_process[4].call_time) == (4, 10)
    # The CAS [1 2] "compared false" while the register certainly held 1.
    result = check_file(path)
    assert (result.model, result.verdict) == ("cas-register", "not-linearizable")


def test_etcd_ok_read_nil_means_never_written(tmp_path):
    text = "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:read\tnil\n"
    assert check_file(write(tmp_path, "e.log", text)).verdict == "linearizable"
    assert check_file(write(tmp_path, "e.log", text), initial=0).verdict == "not-linearizable"


def test_etcd_malformed_line_names_file_and_line(tmp_path):
    path = write(tmp_path, "etcd.log", ETCD.splitlines()[0] + "\nINFO  jepsen.util - 0\t:ok\n")
    with pytest.raises(FormatError, match=r"etcd\.log:2: malformed Jepsen log line"):
        read_operations(path)


def test_etcd_process_with_open_operation_cannot_invoke_again(tmp_path):
    text = (
        "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:invoke\t:read\tnil\n"
    )
    with pytest.raises(FormatError, match=r":2: process 0 invokes while its operation from line 1"):
        read_operations(write(tmp_path, "e.log", text))


# --- Porcupine kv logs ------------------------------------------------------------------

KV = """{:process 0, :type :invoke, :f :append, :key "1", :value "x 0 0 y"}
{:process 1, :type :invoke, :f :get, :key "1", :value nil}
{:process 0, :type :ok, :f :append, :key "1", :value "x 0 0 y"}
{:process 1, :type :ok, :f :get, :key "1", :value "x 0 0 y"}
{:process 2, :type :invoke, :f :put, :key "2", :value "z"}
"""


def test_kv_log(tmp_path):
    path = write(tmp_path, "c.txt", KV)
    ops, fmt = read_operations(path)
    assert fmt == "porcupine-kv"
    assert [(op.f, op.key, op.type) for op in ops] == [
        ("append", "1", "ok"),
        ("get", "1", "ok"),
        ("put", "2", "info"),
    ]
    assert ops[1].output == "x 0 0 y"
    result = check_file(path)
    assert (result.model, result.verdict, result.partitions) == ("kv", "linearizable", 2)


def test_kv_truncated_line_names_file_and_line(tmp_path):
    path = write(tmp_path, "c.txt", KV + '{:process 3, :type :invoke, :f :get, :key "1"')
    with pytest.raises(FormatError, match=r"c\.txt:6: end of file inside the map opened at line 6"):
        read_operations(path)


# --- Knossos EDN ------------------------------------------------------------------------

KNOSSOS = """; a comment before the collection
({:type :invoke, :f :write, :value 2, :process 0, :time 50}
 {:type :ok,
  :f :write,
  :value 2,
  :process 0,
  :time 10}
 {:process :nemesis, :type :info, :f :start, :value "cut off"}
 {:process 1, :type :invoke, :f :read, :value nil}
 {:process 1, :type :ok, :f :read, :value nil}
 {:process 2, :type :invoke, :f :write, :value 3}
 {:process 2, :type :fail, :f :write, :value 3, :error :mismatch}
 {:process 3, :type :invoke, :f :read, :value 9}
 {:process 3, :type :ok, :f :read, :value 2})
"""


def test_knossos_rules(tmp_path):
    path = write(tmp_path, "k.edn", KNOSSOS)
    ops, fmt = read_operations(path)
    assert fmt == "knossos-edn"
    # The nemesis entry is ignored; times are shown as given, but order is file order.
    assert [op.process for op in ops] == [0, 1, 2, 3]
    assert (ops[0].call_time, ops[0].ret_time) == (50, 10)
    assert ops[0].call < ops[0].ret < ops[1].call
    # A read of nil is unconstrained; the ok value replaces the invocation's.
    assert ops[1].type == "info"
    assert ops[3].output == 2 and ops[3].value == 2
    # Knossos drops every :fail, even one whose error is :mismatch.
    assert ops[2].type == "fail" and ops[2].error == ":mismatch"
    assert check_file(path, initial=0).verdict == "linearizable"


def test_knossos_failed_write_is_dropped_so_reading_it_is_a_violation(tmp_path):
    text = (
        "[{:process 0, :type :invoke, :f :write, :value 3}\n"
        " {:process 0, :type :fail, :f :write, :value 3, :error [:unavailable nil]}\n"
        " {:process 1, :type :invoke, :f :read, :value nil}\n"
        " {:process 1, :type :ok, :f :read, :value 3}]\n"
    )
    result = check_file(write(tmp_path, "k.edn", text), initial=0)
    assert result.verdict == "not-linearizable"
    assert [op["process"] for op in result.violation["ops"]] == [1]


def test_knossos_models_are_inferred_from_content(tmp_path):
    mutex = "[{:process 0, :type :invoke, :f :acquire}\n {:process 0, :type :ok, :f :acquire}]"
    assert check_file(write(tmp_path, "m.edn", mutex)).model == "mutex"
    txn = (
        "[{:process 0, :type :invoke, :f :txn, :value [[:read :x nil]]}\n"
        " {:process 0, :type :ok, :f :txn, :value [[:read :x 0]]}]"
    )
    path = write(tmp_path, "t.edn", txn)
    assert check_file(path).model == "multi-register"
    assert check_file(path).verdict == "not-linearizable"  # registers start nil
    assert check_file(path, initial={"x": 0, "y": 0}).verdict == "linearizable"


def test_knossos_one_map_per_line_like_jepsen_history_edn(tmp_path):
    text = (
        "{:process 0, :type :invoke, :f :write, :value 1}\n"
        "{:process 0, :type :ok, :f :write, :value 1}\n"
    )
    path = write(tmp_path, "history.edn", text)
    assert detect_format(path) == "knossos-edn"
    assert len(read_operations(path)[0]) == 1


def test_knossos_entry_without_process_names_its_line(tmp_path):
    path = write(
        tmp_path, "k.edn", "[{:process 0, :type :invoke, :f :read}\n {:type :ok, :f :read}]"
    )
    with pytest.raises(FormatError, match=r"k\.edn:2: operation map lacks :process"):
        read_operations(path)


# --- detection and errors ---------------------------------------------------------------


def test_detection_and_bad_input(tmp_path):
    assert detect_format(write(tmp_path, "a", ETCD)) == "porcupine-etcd"
    assert detect_format(write(tmp_path, "b", KV)) == "porcupine-kv"
    assert detect_format(write(tmp_path, "c", KNOSSOS)) == "knossos-edn"
    assert detect_format(write(tmp_path, "d", '{"process": 0}\n')) == "jsonl"
    with pytest.raises(FormatError, match="cannot tell the history format"):
        detect_format(write(tmp_path, "e", "hello\n"))
    with pytest.raises(FormatError, match="empty"):
        check_file(write(tmp_path, "f", "\n"))
    with pytest.raises(FormatError, match="no such file"):
        check_file(tmp_path / "missing.jsonl")
    with pytest.raises(FormatError, match="unknown format 'xml'"):
        check_file(write(tmp_path, "g", ETCD), fmt="xml")
    with pytest.raises(CheckerError, match="has no operation 'write'"):
        check_file(write(tmp_path, "h", ETCD), model="mutex")


def test_parse_value_for_the_command_line():
    assert parse_value("0") == 0
    assert parse_value("null") is None
    assert parse_value('"0"') == "0"
    assert parse_value('{"x": 0}') == {"x": 0}
    assert parse_value("{:x 0 :y 0}") == {"x": 0, "y": 0}
    assert parse_value("free") == "free"


# --- conversion ---------------------------------------------------------------------------


def test_convert_etcd_to_jsonl_keeps_the_verdict_and_the_mismatch(tmp_path):
    source = write(tmp_path, "etcd.log", ETCD)
    target = tmp_path / "etcd.jsonl"
    assert convert(source, target, to="jsonl") == 10  # 5 invocations, 5 completions
    assert check_file(target).verdict == check_file(source).verdict == "not-linearizable"
    events = [json.loads(line) for line in target.read_text().splitlines()]
    assert {"process": 1, "type": "fail", "error": "mismatch"}.items() <= events[3].items()


def test_convert_jsonl_to_knossos_needs_one_key(tmp_path):
    source = write(
        tmp_path,
        "h.jsonl",
        _jsonl(
            {"process": 0, "type": "invoke", "f": "write", "key": "a", "value": 1, "time": 0},
            {"process": 0, "type": "ok", "f": "write", "key": "a", "value": 1, "time": 1},
            {"process": 1, "type": "invoke", "f": "read", "key": "b", "time": 2},
            {"process": 1, "type": "ok", "f": "read", "key": "b", "value": 5, "time": 3},
        ),
    )
    with pytest.raises(FormatError, match="pass key= to pick one"):
        convert(source, tmp_path / "out.edn", to="knossos-edn")
    target = tmp_path / "a.edn"
    convert(source, target, to="knossos-edn", key="a")
    ops, fmt = read_operations(target)
    assert fmt == "knossos-edn"
    assert [(op.f, op.value, op.type, op.call_time) for op in ops] == [("write", 1, "ok", 0.0)]


def test_convert_kv_round_trip_and_cas_is_not_expressible(tmp_path):
    source = write(tmp_path, "c.txt", KV)
    target = tmp_path / "c2.txt"
    convert(source, target, to="porcupine-kv")
    again, fmt = read_operations(target)
    assert fmt == "porcupine-kv"
    original, _ = read_operations(source)
    assert [(op.f, op.key, op.value, op.output, op.type) for op in again] == [
        (op.f, op.key, op.value, op.output, op.type) for op in original
    ]
    with pytest.raises(FormatError, match="porcupine-kv has no 'cas'"):
        convert(write(tmp_path, "etcd.log", ETCD), tmp_path / "x.txt", to="porcupine-kv")
    with pytest.raises(FormatError, match="capsim's jsonl format has no 'append'"):
        convert(source, tmp_path / "x.jsonl", to="jsonl")


def test_convert_knossos_nil_read_stays_unconstrained_in_jsonl(tmp_path):
    text = (
        "[{:process 0, :type :invoke, :f :write, :value 1}\n"
        " {:process 0, :type :ok, :f :write, :value 1}\n"
        " {:process 1, :type :invoke, :f :read, :value nil}\n"
        " {:process 1, :type :ok, :f :read, :value nil}]"
    )
    target = tmp_path / "k.jsonl"
    convert(write(tmp_path, "k.edn", text), target, to="jsonl")
    # In capsim a read of null would be a stale read here; converted, it stays indeterminate.
    assert check_file(target).verdict == "linearizable"


# --- hostile files: one error naming the file and the line --------------------------------


def format_error(path, **kwargs) -> str:
    with pytest.raises(FormatError) as info:
        read_operations(path, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{path}:") and "\n" not in message and len(message) < 400
    return message


def knossos(*entries: str) -> str:
    return "[" + "\n ".join(entries) + "]\n"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[" * 5000 + "]" * 5000, ":1: nested deeper than 128 levels"),
        (
            knossos("{:process 0, :type :invoke, :f :write, :value " + "[" * 120 + "]" * 120 + "}"),
            ":1: a value is nested deeper than 100 levels",
        ),
        (knossos("{:process 0, :type :invoke, :type :ok, :f :read}"), "the key :type is given"),
        (knossos("{:process 0, :type :invoke, :f :write, :value ##NaN}"), "finite number"),
        (knossos('{:process 0, :type :invoke, :f :write, :value "\\ud800"}'), "surrogate"),
        (knossos("{:process 0, :type :invoke, :f :read, :time {:a 1}}"), ":time must be"),
        (
            knossos("{:process 99999999999999999999, :type :invoke, :f :read}"),
            ":process must be a 64-bit integer",
        ),
        (
            knossos("{:process 0, :type :invoke, :f :cas, :value nil}"),
            ":1: a cas value must be [expected new], got nil",
        ),
        (
            knossos("{:process 0, :type :invoke, :f :txn, :value [1 2]}"),
            "a transaction must be a list of [f key value] steps",
        ),
        (
            knossos(
                "{:process 0, :type :invoke, :f :add, :value 1}",
                "{:process 0, :type :ok, :f :add, :value 1}",
                "{:process 1, :type :invoke, :f :read, :value nil}",
                "{:process 1, :type :ok, :f :read, :value 7}",
            ),
            ":4: a set read must return a list of elements, got 7",
        ),
        (knossos("{:process 0, :type :ok, :f :read}"), ":1: process 0 completes a read it never"),
        ("[{:process 0, :type :invoke, :f :read}\n", ":2: end of file inside the vector"),
        ("[{:process 0, :type :invoke, :f :read}]]\n", ":1: unexpected ']' with nothing open"),
        ("{:process 0, :type :invoke, :f :get, :key 1, :value " + "9" * 5000 + "}", "too long"),
    ],
)
def test_malformed_edn_histories_name_the_line(tmp_path, text, words):
    message = format_error(write(tmp_path, "h.edn", text))
    assert words in message, message


@pytest.mark.parametrize("value", [5, [1, 2, 3], None])
def test_a_jsonl_cas_that_may_take_effect_needs_expected_and_new(tmp_path, value):
    events = [
        {"process": 0, "type": "invoke", "f": "write", "value": 1, "time": 0},
        {"process": 0, "type": "ok", "f": "write", "value": 1, "time": 1},
        {"process": 1, "type": "invoke", "f": "cas", "value": value, "time": 2},
    ]
    message = format_error(write(tmp_path, "h.jsonl", _jsonl(*events)))
    assert ":3: a cas value must be [expected new]" in message
    failed = {"process": 1, "type": "fail", "f": "cas", "value": value, "time": 3}
    ops, _ = read_operations(write(tmp_path, "ok.jsonl", _jsonl(*events, failed)))
    assert ops[1].type == "fail"  # it did not happen, so its value does not matter


def test_an_edn_map_as_key_is_a_key_like_any_other(tmp_path):
    text = (
        '{:process 0, :type :invoke, :f :put, :key {:a 1}, :value "x"}\n'
        '{:process 0, :type :ok, :f :put, :key {:a 1}, :value "x"}\n'
        "{:process 1, :type :invoke, :f :get, :key {:a 1}, :value nil}\n"
        '{:process 1, :type :ok, :f :get, :key {:a 1}, :value "x"}\n'
    )
    assert check_file(write(tmp_path, "kv.txt", text)).verdict == "linearizable"


def test_too_many_edn_values_are_refused_before_memory_runs_out(tmp_path, monkeypatch):
    monkeypatch.setattr(edn_module, "MAX_VALUES", 1000)  # a million, made quick to test
    path = write(tmp_path, "big.edn", "[" + "{} " * 1001 + "]")
    assert ":1: more than 1,000 values" in format_error(path)


@pytest.mark.parametrize("fmt", [None, "jsonl", "knossos-edn", "porcupine-kv", "porcupine-etcd"])
def test_a_file_that_never_ends_is_read_up_to_a_bound(fmt):
    with pytest.raises(FormatError, match=r"^/dev/zero(:1)?: .*(1 MiB|16 MiB|format)"):
        read_operations("/dev/zero", fmt=fmt)


def test_binary_garbage_is_not_utf8_at_its_line(tmp_path):
    path = tmp_path / "h.edn"
    path.write_bytes(b"[{:process 0, :type :invoke, :f :read}\n \xff\xfe]")
    assert ":2: not UTF-8 text (byte 2 of the line is 0xff)" in format_error(path)


def test_an_etcd_log_with_a_nonsense_process_names_the_line(tmp_path):
    text = "INFO  jepsen.util - " + "9" * 30 + " :invoke :read nil\n"
    assert ":1: process must be a 64-bit integer" in format_error(write(tmp_path, "e.log", text))
    text = "INFO  jepsen.util - 0 :invoke :write [[[[1]\n"
    assert ":1: malformed value" in format_error(write(tmp_path, "e.log", text))


def test_convert_of_a_process_beyond_64_bits_is_an_error_not_an_overflow(tmp_path):
    source = write(
        tmp_path, "h.edn", knossos("{:process 9223372036854775808, :type :invoke, :f :read}")
    )
    with pytest.raises(FormatError, match=":1: :process must be a 64-bit integer"):
        convert(source, tmp_path / "out.jsonl", to="jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_edn_writes_a_lone_surrogate_as_an_escape():
    assert dumps("\ud800") == '"\\ud800"'
