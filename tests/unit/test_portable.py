"""Portable arithmetic: accurate to a few ulp, and the same bits on every machine."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import dispatchable_features

from capsim import portable


def ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    return np.abs(got - want) / np.spacing(np.abs(want))


def test_exp_is_within_two_ulp_of_the_c_library_over_the_whole_range():
    x = np.concatenate(
        [
            np.linspace(-745, 709.78, 20001),
            np.linspace(-1, 1, 20001),
            np.linspace(-1e-12, 1e-12, 101),
        ]
    )
    want = np.array([math.exp(v) for v in x])
    normal = want > 2.3e-308  # subnormal results carry fewer bits
    assert ulps(portable.exp(x), want)[normal].max() <= 2


def test_log_is_within_four_ulp_of_the_c_library():
    x = np.concatenate(
        [
            np.geomspace(5e-324, 1.7e308, 20001),
            np.linspace(0.5, 2.0, 20001),
            [1.0 - 2**-53, 1.0 + 2**-52],
        ]
    )
    want = np.array([math.log(v) for v in x])
    got = portable.log(x)
    assert got[np.flatnonzero(x == 1.0)].tolist() == [0.0] * int((x == 1.0).sum())
    nonzero = want != 0
    assert ulps(got, want)[nonzero].max() <= 4


def test_edge_values_follow_ieee_conventions():
    assert portable.exp([0.0, 800.0, -800.0, np.inf, -np.inf]).tolist() == [
        1.0,
        math.inf,
        0.0,
        math.inf,
        0.0,
    ]
    assert np.isnan(portable.exp([np.nan])[0])
    got = portable.log([0.0, np.inf, -1.0, np.nan])
    assert got[0] == -math.inf and got[1] == math.inf and np.isnan(got[2:]).all()


def test_cos_and_sin_of_whole_turns_match_the_c_library():
    u = np.linspace(0, 1, 40001, endpoint=False)
    cos, sin = portable.cos_sin_2pi(u)
    assert np.abs(cos - np.cos(2 * np.pi * u)).max() < 2e-15
    assert np.abs(sin - np.sin(2 * np.pi * u)).max() < 2e-15
    # Quarter turns are exact: the reduction works on u itself.
    cos, sin = portable.cos_sin_2pi([0.0, 0.25, 0.5, 0.75])
    assert cos.tolist() == [1.0, 0.0, -1.0, 0.0]
    assert sin.tolist() == [0.0, 1.0, 0.0, -1.0]


def test_variates_have_the_right_moments():
    rng = np.random.default_rng(3)
    z = portable.normals(rng, 400_001)
    assert len(z) == 400_001
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    # P(|Z| > 1.96) = 0.05 for a standard normal.
    assert abs((np.abs(z) > 1.959964).mean() - 0.05) < 0.002
    e = portable.exponentials(rng, 2.0, 400_000)
    assert abs(e.mean() - 2.0) < 0.02 and e.min() > 0
    # P(E > mean * ln 2) = 1/2 for an exponential.
    assert abs((e > 2.0 * math.log(2)).mean() - 0.5) < 0.005
    u = portable.open_uniforms(rng, 100_000)
    assert u.min() > 0 and u.max() <= 1


# Bits computed once; a machine whose arithmetic follows IEEE 754 reproduces them all.
PINNED = {
    "exp(-3.5)": (lambda: portable.exp([-3.5])[0], "0x1.eec1018e4ff66p-6"),
    "exp(700.25)": (lambda: portable.exp([700.25])[0], "0x1.2fd8e4cbfa413p+1010"),
    "log(1e-300)": (lambda: portable.log([1e-300])[0], "-0x1.5963447f87fb5p+9"),
    "log(0.75)": (lambda: portable.log([0.75])[0], "-0x1.269621134db92p-2"),
    "cos(2pi*0.1)": (lambda: portable.cos_sin_2pi([0.1])[0][0], "0x1.9e3779b97f4a8p-1"),
    "power(3, 0.3)": (lambda: portable.power([3.0], 0.3)[0], "0x1.63f08b6f382aep+0"),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_pinned_bits(name):
    fn, bits = PINNED[name]
    assert float(fn()).hex() == bits


SCRIPT = textwrap.dedent(
    """
    import hashlib, sys
    import numpy as np
    from numpy._core._multiarray_umath import __cpu_features__
    from capsim import portable
    rng = np.random.default_rng(11)
    x = rng.uniform(-700, 700, 200_000)
    h = hashlib.sha256()
    for part in (portable.exp(x), portable.log(np.abs(x)), *portable.cos_sin_2pi(x),
                 portable.normals(rng, 100_000), portable.exponentials(rng, 1.0, 100_000)):
        h.update(part.tobytes())
    print(h.hexdigest(), sorted(f for f, on in __cpu_features__.items() if on))
    """
)


def test_same_bits_with_numpy_dispatch_narrowed_to_the_baseline():
    features = dispatchable_features()
    env = dict(os.environ, NPY_DISABLE_CPU_FEATURES=" ".join(features))
    narrowed = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    ).stdout.split(" ", 1)
    full = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    ).stdout.split(" ", 1)
    for feature in features:  # the narrowing really happened
        assert f"'{feature}'" in full[1] and f"'{feature}'" not in narrowed[1]
    assert narrowed[0] == full[0]
