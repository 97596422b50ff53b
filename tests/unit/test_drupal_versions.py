"""Versions compare as versions, not as Aegir's float ``version_code`` (aegir-backend.md §4.3)."""

from __future__ import annotations

import random

import pytest

from aegir.drupal.versions import compare_versions, drupal_major, parse_version

# each list is strictly ascending
ASCENDING = [
    # core, including the cases Aegir's version_code gets wrong
    ["7.59", "7.80", "7.99", "7.100", "7.105"],
    ["8.9.19", "8.9.20", "8.9.21"],
    ["9.5.11", "10.0.0-alpha1", "10.0.0-beta2", "10.0.0-rc1", "10.0.0", "10.1.0", "10.2.3", "10.3.x-dev", "11.0.0"],
    ["11.0.0-dev", "11.0.0-unstable1", "11.0.0-alpha3", "11.0.0-beta1", "11.0.0-rc1", "11.0.0-rc2", "11.0.0"],
    ["7.x-dev", "8.0.0"],
    # contrib with a core-compatibility prefix
    ["7.x-3.0-dev", "7.x-3.0-unstable2", "7.x-3.0-alpha1", "7.x-3.0-beta2", "7.x-3.0-beta10", "7.x-3.0-rc1"],
    ["7.x-3.0-rc1", "7.x-3.0", "7.x-3.0+5-dev", "7.x-3.1", "7.x-3.9", "7.x-3.10", "7.x-3.29", "7.x-3.x-dev"],
    ["6.x-2.x-dev", "7.x-1.0", "8.x-1.4", "8.x-1.10", "2.0.0"],
    ["6.x-1.0", "6.x-2.0", "6.x-2.x-dev", "6.x-3.0"],
    # semantic contrib
    ["1.0.0-alpha1", "1.0.0", "1.x-dev", "2.1.0-alpha3", "2.1.0", "4.0.4", "4.0.10", "4.1.0"],
]


@pytest.mark.parametrize("chain", ASCENDING, ids=lambda c: f"{c[0]}..{c[-1]}")
def test_ascending_chains(chain):
    for a, b in zip(chain, chain[1:], strict=False):
        assert compare_versions(a, b) == -1, (a, b)
        assert compare_versions(b, a) == 1, (b, a)
        assert parse_version(a) < parse_version(b)
    shuffled = chain[:]
    random.Random(7).shuffle(shuffled)
    assert sorted(shuffled, key=parse_version) == chain


@pytest.mark.parametrize(
    "a,b",
    [
        ("8.x-1.4", "1.4.0"),
        ("1.4", "1.4.0"),
        ("7.80", "7.80.0"),
        ("V1.2.0", "1.2.0"),
        ("7.x-3.0-BETA2", "7.x-3.0-beta2"),
    ],
)
def test_equal(a, b):
    assert compare_versions(a, b) == 0 and parse_version(a) == parse_version(b)


def test_unknown_sorts_lowest():
    assert compare_versions(None, "Unknown") == 0
    assert compare_versions("", None) == 0
    for v in ["0.0.1", "1.x-dev", "6.x-1.0-dev", "7.0", "garbage"]:
        assert compare_versions(None, v) == -1 and compare_versions("Unknown", v) == -1
        assert compare_versions(v, None) == 1


def test_unparsable_sort_below_versions_and_by_text():
    assert compare_versions("garbage", "0.0.0-dev") == -1
    assert compare_versions("abc", "abd") == -1
    assert compare_versions("abc", "abc") == 0


def test_every_pair_is_comparable():
    versions = [v for chain in ASCENDING for v in chain] + [None, "Unknown", "junk", "1.2.3.4.5"]
    keys = [parse_version(v) for v in versions]
    assert sorted(keys) == sorted(keys, key=lambda k: k)  # no TypeError between any two keys
    for a in versions:
        for b in versions:
            assert compare_versions(a, b) == -compare_versions(b, a)


@pytest.mark.parametrize("v,major", [("7.80", 7), ("6.38", 6), ("8.9.20", 8), ("10.2.3", 10), ("11.0.0-rc1", 11)])
def test_drupal_major(v, major):
    assert drupal_major(v) == major


@pytest.mark.parametrize("bad", ["", "x", "VERSION"])
def test_drupal_major_refuses(bad):
    with pytest.raises(ValueError):
        drupal_major(bad)
