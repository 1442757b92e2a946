"""Every third-party history in shared/peer-histories gets the verdict its upstream asserts.

The histories (Porcupine's etcd and kv logs, Knossos's EDN files) live outside the
repository, in ``shared/peer-histories`` next to its parent directory, and are never copied
in. Each subfolder's ``EXPECTED.tsv`` lists ``file``, ``model``, ``expected`` and
``source``; the model column may name an initial value, as in ``cas-register (init 0)``.
The tests skip when the folder is absent.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from capsim.checkers import check_file, parse_value

PEER_ROOT = Path(__file__).resolve().parents[3] / "shared" / "peer-histories"
# EXPECTED.tsv model names that are not capsim model names.
MODEL_NAMES = {"etcd-register": "cas-register"}


def expected_rows() -> list[tuple[str, str, str]]:
    rows = []
    for sub in ("porcupine", "knossos"):
        table = PEER_ROOT / sub / "EXPECTED.tsv"
        if table.exists():
            with open(table, encoding="utf-8") as handle:
                for row in csv.DictReader(handle, delimiter="\t"):
                    rows.append((f"{sub}/{row['file']}", row["model"], row["expected"]))
    return rows


ROWS = expected_rows()


def model_and_initial(column: str):
    """``("cas-register", 0)`` from ``"cas-register (init 0)"``."""
    name, _, rest = column.partition(" (init ")
    initial = parse_value(rest.rstrip(")")) if rest else None
    return MODEL_NAMES.get(name, name), initial


@pytest.mark.skipif(not ROWS, reason=f"no peer histories at {PEER_ROOT}")
def test_all_230_peer_histories_are_listed():
    assert len(ROWS) == 230


@pytest.mark.skipif(not ROWS, reason=f"no peer histories at {PEER_ROOT}")
@pytest.mark.parametrize(("path", "model_column", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_peer_history_verdict(path, model_column, expected):
    model, initial = model_and_initial(model_column)
    result = check_file(PEER_ROOT / path, model=model, initial=initial)
    assert result.verdict == expected
    if expected == "not-linearizable":
        violation = result.violation
        assert violation["minimal"]
        assert 1 <= len(violation["ops"]) <= result.ops


@pytest.mark.skipif(not ROWS, reason=f"no peer histories at {PEER_ROOT}")
@pytest.mark.parametrize(
    ("path", "model", "verdict"),
    [
        ("porcupine/jepsen/etcd_002.log", "cas-register", "linearizable"),
        ("porcupine/kv/c10-bad.txt", "kv", "not-linearizable"),
        ("knossos/mutex/bad/etcd.edn", "mutex", "not-linearizable"),
    ],
)
def test_models_are_inferred_from_format_or_content(path, model, verdict):
    # Without a model, etcd logs are a CAS register, kv logs a kv map, and a Knossos file
    # of acquires and releases a mutex.
    result = check_file(PEER_ROOT / path)
    assert (result.model, result.verdict) == (model, verdict)
