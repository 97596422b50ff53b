"""Aegir's database naming rule (§2.6): from the uri, 16 characters, collision suffixes."""

from __future__ import annotations

import itertools

from aegir.services.db import db_name_base, db_name_candidates


def test_name_from_the_uri():
    assert db_name_base("www.example.com") == "examplecom"
    assert db_name_base("my-very-long-site-name.example.org") == "myverylongsitena"
    assert len(db_name_base("a" * 80 + ".com")) == 16


def test_collision_suffixes_stay_within_16_characters():
    names = list(itertools.islice(db_name_candidates("my-very-long-site-name.example.org"), 0, 102))
    assert names[0] == "myverylongsitena"
    assert names[1] == "myverylongsite_0" and names[11] == "myverylongsit_10"
    assert all(len(n) <= 16 for n in names) and len(set(names)) == len(names) == 101
