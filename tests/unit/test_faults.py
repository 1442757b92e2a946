"""Partition shapes as pure functions: groups and directed cuts, worked out by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from capsim.faults import partition_cuts, partition_groups

IDS = ["n1", "n2", "n3", "n4", "n5"]


def both_ways(a, b):
    return {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}


def test_groups_cut_every_pair_across_groups():
    groups = partition_groups("groups", IDS, groups=[["n1", "n2"], ["n3"]])
    assert groups == [["n1", "n2"], ["n3"], ["n4", "n5"]]
    cuts = partition_cuts("groups", groups)
    assert cuts == (
        both_ways(["n1", "n2"], ["n3"])
        | both_ways(["n1", "n2"], ["n4", "n5"])
        | both_ways(["n3"], ["n4", "n5"])
    )
    assert len(cuts) == 2 * (2 * 1 + 2 * 2 + 1 * 2)


def test_isolate():
    groups = partition_groups("isolate", IDS, targets=["n2"])
    assert partition_cuts("isolate", groups) == both_ways(["n2"], ["n1", "n3", "n4", "n5"])


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7])
def test_halves_minority_is_n_over_two(n):
    ids = IDS[:n] if n <= 5 else [f"n{i}" for i in range(1, n + 1)]
    minority, majority = partition_groups("halves", ids, rng=np.random.default_rng(n))
    assert len(minority) == n // 2 and len(majority) == n - n // 2
    assert sorted(minority + majority) == sorted(ids)


def test_halves_refuse_more_targets_than_fit_in_the_minority():
    with pytest.raises(ValueError, match="minority"):
        partition_groups("halves", IDS, targets=["n1", "n2", "n3"], rng=np.random.default_rng(0))


def test_bridge_cuts_only_between_the_halves():
    groups = partition_groups("bridge", IDS, targets=["n5"], rng=np.random.default_rng(1))
    half_a, half_b, bridge = groups
    assert bridge == ["n5"] and len(half_a) == len(half_b) == 2
    assert partition_cuts("bridge", groups) == both_ways(half_a, half_b)


def test_majorities_ring_of_five_and_seven():
    for n, visible in ((5, 3), (7, 5)):
        ids = [f"n{i}" for i in range(1, n + 1)]
        groups = partition_groups("majorities-ring", ids, rng=np.random.default_rng(2))
        cuts = partition_cuts("majorities-ring", groups)
        views = {a: frozenset(b for b in ids if (a, b) not in cuts) for a in ids}
        assert all(len(v) == visible and a in v for a, v in views.items())
        assert all(len(v) > n // 2 for v in views.values())  # a majority each
        assert len(set(views.values())) == n  # all different


def test_one_way_cuts_one_direction():
    groups = partition_groups("one-way", IDS, groups=[["n1"], ["n2", "n3"]])
    assert partition_cuts("one-way", groups) == {("n1", "n2"), ("n1", "n3")}
    groups = partition_groups("one-way", IDS, targets=["n4"])
    assert partition_cuts("one-way", groups) == {("n4", c) for c in IDS if c != "n4"}


def test_no_cut_pairs_a_container_with_itself():
    rng = np.random.default_rng(0)
    for shape in ("isolate", "halves", "bridge", "majorities-ring", "one-way"):
        cuts = partition_cuts(shape, partition_groups(shape, IDS, rng=rng))
        assert all(a != b for a, b in cuts)
        assert cuts <= set(itertools.permutations(IDS, 2))
