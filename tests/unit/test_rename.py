"""Rename fix-ups: which columns are rewritten and the exact SQL."""

from __future__ import annotations

import pytest

from aegir.drupal import phpserial
from aegir.drupal.rename import content_columns, quote, replacements, site_name_fix, statements

COLUMNS = [
    ("field_data_body", "body_value", "longtext"),
    ("field_data_body", "body_summary", "longtext"),
    ("field_data_body", "body_format", "varchar"),
    ("field_revision_body", "body_value", "longtext"),
    ("field_data_field_count", "field_count_value", "int"),
    ("block_custom", "body", "longtext"),
    ("node", "title", "varchar"),
    ("node__body", "body_value", "longtext"),
    ("node_revision__body", "body_summary", "longtext"),
    ("block_content__body", "body_value", "longtext"),
    ("cache_data", "data", "longblob"),
]


def test_drupal_7_columns():
    assert content_columns(COLUMNS, 7) == [
        ("block_custom", "body"),
        ("field_data_body", "body_summary"),
        ("field_data_body", "body_value"),
        ("field_revision_body", "body_value"),
    ]


def test_drupal_10_columns():
    assert content_columns(COLUMNS, 10) == [
        ("block_content__body", "body_value"),
        ("node__body", "body_value"),
        ("node_revision__body", "body_summary"),
    ]


def test_replacements_cover_paths_and_links():
    assert replacements("a.example.com", "b.example.com") == [
        ("sites/a.example.com/", "sites/b.example.com/"),
        ("//a.example.com/", "//b.example.com/"),
    ]


def test_statements_are_parameterised_and_touch_only_matching_rows():
    sql = statements([("field_data_body", "body_value")], "a.test", "b.test", 7)
    update, params = sql[0]
    assert update == (
        "UPDATE `field_data_body` SET `body_value` = REPLACE(REPLACE(`body_value`, %s, %s), %s, %s) "
        "WHERE `body_value` LIKE %s OR `body_value` LIKE %s"
    )
    assert params == ("sites/a.test/", "sites/b.test/", "//a.test/", "//b.test/", "%sites/a.test/%", "%//a.test/%")
    # Drupal 7 also moves site-local modules' filenames
    assert sql[-1][0].startswith("UPDATE `system` SET `filename`") and sql[-1][1][-1] == "sites/a.test/%"
    assert len(statements([], "a.test", "b.test", 10)) == 0


def test_identifiers_are_checked():
    assert quote("node__body") == "`node__body`"
    with pytest.raises(ValueError):
        quote("x`; DROP TABLE y")


def test_site_name_follows_the_uri_as_aegir_does():
    d7 = phpserial.dumps("a.test")
    assert phpserial.loads(site_name_fix(d7, "a.test", "bb.test", 7)) == "bb.test"  # length prefix recomputed
    assert phpserial.loads(site_name_fix(phpserial.dumps("Shop a.test"), "a.test", "b.test", 7)) == "Shop b.test"
    assert site_name_fix(phpserial.dumps("My shop"), "a.test", "b.test", 7) is None
    d10 = phpserial.dumps({"name": "a.test", "mail": "x@a.test"})
    assert phpserial.loads(site_name_fix(d10, "a.test", "b.test", 10)) == {"name": "b.test", "mail": "x@a.test"}
    assert site_name_fix(phpserial.dumps({"name": "Shop a.test"}), "a.test", "b.test", 10) is None
