"""Named random streams: keyed by name and seed, independent of order and process."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from capsim.rng import stream


def test_same_name_and_seed_give_the_same_draws():
    assert (
        stream(7, "network.loss").random(5).tolist() == stream(7, "network.loss").random(5).tolist()
    )


def test_names_and_seeds_give_different_streams():
    a = stream(7, "a").random(5)
    assert not np.allclose(a, stream(7, "b").random(5))
    assert not np.allclose(a, stream(8, "a").random(5))
    assert not np.allclose(stream(0, "a").random(5), stream(2**32, "a").random(5))


def test_creating_another_stream_first_shifts_nothing():
    first = stream(3, "x").random(3)
    stream(3, "y").random(100)
    assert np.array_equal(first, stream(3, "x").random(3))


def test_streams_are_the_same_in_another_process_and_hash_seed():
    code = "from capsim.rng import stream; print(stream(11, 'workload.c1').random(3).tolist())"
    outputs = set()
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout
        outputs.add(out)
    assert outputs == {str(stream(11, "workload.c1").random(3).tolist()) + "\n"}


def test_negative_seed_is_refused():
    with pytest.raises(ValueError):
        stream(-1, "x")
