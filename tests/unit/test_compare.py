"""Migrate pre-flight (``aegir compare``): a site's enabled packages against a target platform's scan."""

from __future__ import annotations

import dataclasses
import json

import pytest

from aegir.drupal.compare import (
    MISSING_REASON,
    SITE_LOCAL_REASON,
    Comparison,
    PackageChange,
    compare_site,
    format_table,
    resolve_profile,
)


def site_pkg(name, version=None, schema=0, *, type="module", status="enabled", site_local=False):
    return {
        "name": name,
        "type": type,
        "status": status,
        "schema_version": schema,
        "version": version,
        "site_local": site_local,
    }


def target_pkg(name, version=None, schema=0, *, type="module", scope="base", path=None):
    if path is None:
        path = f"sites/all/modules/{name}/{name}.module" if scope == "sites-all" else f"modules/{name}/{name}.module"
    return {
        "name": name,
        "type": type,
        "version": version,
        "schema_version": schema,
        "scope": scope,
        "path": path,
        "title": name.title(),
        "description": None,
    }


def profile(name, version="7.100", old_short_name=None):
    return {
        "name": name,
        "version": version,
        "languages": ["en"],
        "old_short_name": old_short_name,
        "path": f"profiles/{name}/{name}.info",
        "title": name.title(),
        "description": None,
    }


STANDARD = [profile("minimal"), profile("standard", old_short_name="default"), profile("testing")]


def compare(site, target, site_profile="standard", profiles=STANDARD, **kw):
    return compare_site(site, target, site_profile, profiles, **kw)


def only(comparison: Comparison, name: str) -> PackageChange:
    [row] = [c for c in comparison.changes if c.name == name]
    return row


# -- per-package rules --------------------------------------------------------------------------------------


def test_same_version_and_schema_is_no_change():
    c = compare([site_pkg("views", "7.x-3.29", 7302)], [target_pkg("views", "7.x-3.29", 7302, scope="sites-all")])
    assert only(c, "views") == PackageChange("views", "module", "no change", "7.x-3.29", "7.x-3.29", 7302, 7302, "")
    assert c.ok


def test_site_local_moves_with_the_site():
    site = [site_pkg("custom", "7.x-1.0", 7001, site_local=True)]
    # missing on the target, or with a different schema there: the site's own copy wins either way
    for target in ([], [target_pkg("custom", "7.x-0.1", 7000)]):
        row = only(compare(site, target), "custom")
        assert row.status == "no change"
        assert row.reason == SITE_LOCAL_REASON == "site-local (moves with the site)"
        assert (row.target_version, row.target_schema) == ("7.x-1.0", 7001)


def test_missing_on_the_target_is_a_warning():
    c = compare([site_pkg("ctools", "7.x-1.20", 7003)], [])
    row = only(c, "ctools")
    assert row.status == "warning"
    assert row.reason == MISSING_REASON == "missing on the target platform"
    assert (row.current_version, row.target_version, row.current_schema, row.target_schema) == (
        "7.x-1.20",
        None,
        7003,
        None,
    )
    assert c.ok  # a warning does not refuse the migrate
    assert c.warnings == (row,)


def test_match_is_on_type_and_name():
    # a theme called like the module does not stand in for it
    c = compare([site_pkg("zen", "7.x-5.6", type="theme")], [target_pkg("zen", "7.x-5.6", type="module")])
    assert only(c, "zen").status == "warning"
    assert only(c, "zen").target_schema is None


def test_schema_downgrade_is_an_error():
    c = compare([site_pkg("views", "7.x-3.29", 7302)], [target_pkg("views", "7.x-3.29", 7301)])
    row = only(c, "views")
    assert row.status == "error"
    assert row.reason == "schema downgrade: site has schema 7302, target provides 7301"
    assert (row.target_version, row.target_schema) == ("7.x-3.29", 7301)
    assert not c.ok
    assert c.errors == (row,)


def test_schema_downgrade_wins_over_a_higher_version():
    row = only(compare([site_pkg("views", "7.x-3.20", 7302)], [target_pkg("views", "7.x-3.29", 7300)]), "views")
    assert row.status == "error"


def test_target_without_schema_is_no_downgrade():
    row = only(compare([site_pkg("views", "7.x-3.29", 7302)], [target_pkg("views", "7.x-3.29", 0)]), "views")
    assert row.status == "no change"


def test_lower_version_on_the_target_is_a_warning():
    row = only(compare([site_pkg("views", "7.x-3.29", 7302)], [target_pkg("views", "7.x-3.20", 7302)]), "views")
    assert row.status == "warning"
    assert row.reason == "version lower on the target: 7.x-3.29 → 7.x-3.20"


def test_lower_version_wins_over_pending_updates():
    row = only(compare([site_pkg("views", "7.x-3.29", 7301)], [target_pkg("views", "7.x-3.20", 7302)]), "views")
    assert row.status == "warning"


def test_versions_compare_as_versions_not_text():
    row = only(compare([site_pkg("system", "7.99", 7081)], [target_pkg("system", "7.100", 7081)]), "system")
    assert row.status == "upgrade"
    row = only(compare([site_pkg("system", "7.100", 7081)], [target_pkg("system", "7.99", 7081)]), "system")
    assert row.status == "warning"


def test_higher_version_is_an_upgrade():
    row = only(compare([site_pkg("views", "7.x-3.20", 7302)], [target_pkg("views", "7.x-3.29", 7302)]), "views")
    assert row.status == "upgrade"
    assert row.reason == "version 7.x-3.20 → 7.x-3.29"


def test_pending_updates_are_an_upgrade():
    row = only(compare([site_pkg("views", "7.x-3.29", 7301)], [target_pkg("views", "7.x-3.29", 7302)]), "views")
    assert row.status == "upgrade"
    assert row.reason == "updates pending: schema 7301 → 7302"


def test_higher_version_and_pending_updates_are_both_named():
    row = only(compare([site_pkg("views", "7.x-3.20", 7301)], [target_pkg("views", "7.x-3.29", 7302)]), "views")
    assert row.status == "upgrade"
    assert row.reason == "version 7.x-3.20 → 7.x-3.29; updates pending: schema 7301 → 7302"


@pytest.mark.parametrize("unknown", [None, "", "Unknown"])
def test_unknown_versions_are_not_compared(unknown):
    # "unknown" sorts lowest in compare_versions; that says nothing about up or down here
    row = only(compare([site_pkg("views", unknown, 7302)], [target_pkg("views", "7.x-3.29", 7302)]), "views")
    assert row.status == "no change"
    row = only(compare([site_pkg("views", "7.x-3.29", 7302)], [target_pkg("views", unknown, 7302)]), "views")
    assert row.status == "no change"
    # schemas still count
    row = only(compare([site_pkg("views", unknown, 7301)], [target_pkg("views", "7.x-3.29", 7302)]), "views")
    assert (row.status, row.reason) == ("upgrade", "updates pending: schema 7301 → 7302")
    row = only(compare([site_pkg("views", unknown, 7303)], [target_pkg("views", None, 7302)]), "views")
    assert row.status == "error"


def test_disabled_packages_are_ignored():
    site = [
        site_pkg("old", "7.x-1.0", 7005, status="disabled"),  # would be a schema downgrade
        site_pkg("gone", "7.x-1.0", status="disabled"),  # would be missing
        site_pkg("garland", type="theme", status="disabled"),
    ]
    c = compare(site, [target_pkg("old", "7.x-1.0", 7001)])
    assert [ch.type for ch in c.changes] == ["profile"]
    assert c.ok


def test_themes_are_compared_like_modules():
    site = [site_pkg("zen", "7.x-5.5", type="theme"), site_pkg("bartik", "7.80", type="theme")]
    target = [target_pkg("zen", "7.x-5.6", type="theme", scope="sites-all")]
    c = compare(site, target)
    assert only(c, "zen").status == "upgrade"
    assert (only(c, "bartik").type, only(c, "bartik").status) == ("theme", "warning")


# -- which copy on the target counts --------------------------------------------------------------------------


def test_sites_all_copy_wins_over_core_and_profile():
    target = [
        target_pkg("views", "7.x-3.20", 7300, scope="base"),
        target_pkg("views", "7.x-3.29", 7302, scope="sites-all"),
        target_pkg("views", "7.x-3.25", 7301, scope="profile:standard", path="profiles/standard/modules/views.module"),
    ]
    row = only(compare([site_pkg("views", "7.x-3.29", 7302)], target), "views")
    assert (row.status, row.target_version) == ("no change", "7.x-3.29")
    # the order of the scan does not matter
    row = only(compare([site_pkg("views", "7.x-3.29", 7302)], target[::-1]), "views")
    assert row.target_version == "7.x-3.29"


def test_profile_copy_wins_over_core():
    target = [
        target_pkg("std_extra", "7.x-2.0", 7200, scope="profile:standard", path="profiles/standard/modules/x.module"),
        target_pkg("std_extra", "7.x-1.0", 7100, scope="base"),
    ]
    row = only(compare([site_pkg("std_extra", "7.x-2.0", 7200)], target), "std_extra")
    assert (row.status, row.target_version) == ("no change", "7.x-2.0")


def test_drupal8_top_level_copy_wins_over_core_and_sites_all():
    target = [
        target_pkg("media", "10.2.3", 10100, scope="base", path="core/modules/media/media.info.yml"),
        target_pkg("media", "8.x-1.0", 8001, scope="sites-all", path="sites/all/modules/media/media.info.yml"),
        target_pkg("media", "2.0.0", 9001, scope="base", path="modules/contrib/media/media.info.yml"),
    ]
    row = only(compare([site_pkg("media", "2.0.0", 9001)], target), "media")
    assert (row.status, row.target_version) == ("no change", "2.0.0")


def test_copies_in_another_profile_are_not_visible():
    target = [target_pkg("social_core", "1.0.0", 8001, scope="profile:social", path="profiles/social/m.info.yml")]
    row = only(compare([site_pkg("social_core", "1.0.0", 8001)], target), "social_core")
    assert row.status == "warning"
    assert row.reason == "missing on the target platform (only inside the directory of profile social)"
    assert row.target_schema is None


def test_profile_copies_follow_the_renamed_profile():
    # a Drupal 6 "default" site: on the target its profile is "standard", whose directory it now sees
    target = [target_pkg("std_extra", "7.x-1.0", 7100, scope="profile:standard", path="profiles/standard/x.module")]
    c = compare([site_pkg("std_extra", "7.x-1.0", 7100)], target, site_profile="default")
    assert only(c, "std_extra").status == "no change"


# -- the install profile ----------------------------------------------------------------------------------------


def test_profile_found_by_name():
    c = compare([], [])
    assert c.profile == c.target_profile == "standard"
    row = only(c, "standard")
    assert (row.type, row.status, row.reason) == ("profile", "no change", "")
    assert (row.target_version, row.target_schema) == ("7.100", 0)
    assert c.ok


def test_profile_renamed_via_old_short_name():
    c = compare([], [], site_profile="default")
    assert (c.profile, c.target_profile) == ("default", "standard")
    row = only(c, "default")
    assert (row.type, row.status) == ("profile", "no change")
    assert "standard" in row.reason
    assert row.reason == "renamed: default → standard on the target platform"
    assert c.ok


def test_same_name_wins_over_a_rename():
    profiles = [profile("standard", old_short_name="default"), profile("default", version="7.1")]
    c = compare([], [], site_profile="default", profiles=profiles)
    assert c.target_profile == "default"
    assert only(c, "default").reason == ""


def test_unresolved_profile_is_an_error():
    c = compare([site_pkg("views", "7.x-3.29", 7302)], [target_pkg("views", "7.x-3.29", 7302)], site_profile="social")
    assert c.target_profile is None
    row = only(c, "social")
    assert row == PackageChange(
        "social", "profile", "error", None, None, 0, None, "profile social is not on the target platform"
    )
    assert not c.ok
    assert c.errors == (row,)
    assert c.changes[0] == row


def test_no_profiles_on_the_target():
    c = compare([], [], profiles=[])
    assert not c.ok and c.errors[0].reason == "profile standard is not on the target platform"


def test_empty_site_profile_is_an_error():
    c = compare([], [], site_profile="")
    assert c.target_profile is None
    assert not c.ok and c.errors[0].type == "profile"


def test_profile_version_upgrade_and_downgrade():
    assert only(compare([], [], site_profile_version="7.80"), "standard").status == "upgrade"
    assert only(compare([], [], site_profile_version="7.80"), "standard").reason == "version 7.80 → 7.100"
    row = only(compare([], [], site_profile_version="7.105"), "standard")
    assert (row.status, row.reason) == ("warning", "version lower on the target: 7.105 → 7.100")
    assert only(compare([], [], site_profile_version="7.100"), "standard").status == "no change"
    row = only(compare([], [], site_profile="default", site_profile_version="6.38"), "default")
    assert row.status == "upgrade"
    assert row.reason == "renamed: default → standard on the target platform; version 6.38 → 7.100"


def test_drupal8_profile_module_is_the_profile_row():
    # Drupal 8+ lists the install profile among the enabled modules: no "missing module" warning for it
    profiles = [profile("standard", version="10.2.3"), profile("minimal", version="10.2.3")]
    site = [site_pkg("standard", None, 8000), site_pkg("node", "10.1.0", 10100)]
    target = [target_pkg("node", "10.2.3", 10101, path="core/modules/node/node.info.yml")]
    c = compare(site, target, profiles=profiles)
    assert [(ch.type, ch.name) for ch in c.changes] == [("module", "node"), ("profile", "standard")]
    row = only(c, "standard")
    assert (row.status, row.current_schema, row.target_version) == ("no change", 8000, "10.2.3")
    assert c.ok


def test_profile_module_is_not_the_profile_row_when_missing():
    c = compare([site_pkg("social", "1.0.0", 8001)], [], site_profile="social")
    assert [(ch.type, ch.status) for ch in c.changes] == [("profile", "error")]
    assert (c.errors[0].current_version, c.errors[0].current_schema) == ("1.0.0", 8001)


def test_resolve_profile():
    assert resolve_profile("standard", STANDARD)["name"] == "standard"
    assert resolve_profile("default", STANDARD)["name"] == "standard"
    assert resolve_profile("social", STANDARD) is None
    assert resolve_profile("", STANDARD) is None


# -- the comparison as a whole ------------------------------------------------------------------------------------


def mixed() -> Comparison:
    site = [
        site_pkg("zen", "7.x-5.5", type="theme"),  # upgrade
        site_pkg("views", "7.x-3.29", 7302),  # error: schema downgrade
        site_pkg("ctools", "7.x-1.20", 7003),  # warning: missing
        site_pkg("bartik", "7.100", type="theme"),  # no change
        site_pkg("token", "7.x-1.7", 7001),  # upgrade: updates pending
        site_pkg("custom", "7.x-1.0", 7000, site_local=True),  # no change
        site_pkg("block", "7.100", 7009),  # warning: lower version
        site_pkg("aggregator", "7.100", 7003),  # no change
        site_pkg("forum", "7.100", 7012, status="disabled"),  # ignored
    ]
    target = [
        target_pkg("zen", "7.x-5.6", type="theme", scope="sites-all"),
        target_pkg("views", "7.x-3.29", 7301, scope="sites-all"),
        target_pkg("bartik", "7.100", type="theme"),
        target_pkg("token", "7.x-1.7", 7002, scope="sites-all"),
        target_pkg("block", "7.99", 7009),
        target_pkg("aggregator", "7.100", 7003),
        target_pkg("forum", "7.100", 7001),
        target_pkg("garland", "7.100", type="theme"),
    ]
    return compare(site, target)


def test_ordering_severity_then_type_then_name():
    c = mixed()
    assert [(ch.status, ch.type, ch.name) for ch in c.changes] == [
        ("error", "module", "views"),
        ("warning", "module", "block"),
        ("warning", "module", "ctools"),
        ("upgrade", "module", "token"),
        ("upgrade", "theme", "zen"),
        ("no change", "module", "aggregator"),
        ("no change", "module", "custom"),
        ("no change", "profile", "standard"),
        ("no change", "theme", "bartik"),
    ]
    assert [ch.name for ch in c.warnings] == ["block", "ctools"]
    assert [ch.name for ch in c.errors] == ["views"]
    assert not c.ok


def test_order_does_not_depend_on_input_order():
    a = mixed()
    site = [site_pkg("b", "1.0.0"), site_pkg("a", "1.0.0"), site_pkg("c", "1.0.0", type="theme")]
    target = [target_pkg("a", "1.0.0"), target_pkg("b", "1.0.0"), target_pkg("c", "1.0.0", type="theme")]
    assert compare(site, target).changes == compare(site[::-1], target[::-1]).changes
    assert a == mixed()


def test_counts_and_summary():
    c = mixed()
    assert c.counts() == {"error": 1, "warning": 2, "upgrade": 2, "no change": 4}
    assert list(c.counts()) == ["error", "warning", "upgrade", "no change"]
    assert c.summary() == "1 error, 2 warnings, 2 upgrades, 4 no change"


def test_counts_have_all_keys_and_summary_plurals():
    c = compare([], [])
    assert c.counts() == {"error": 0, "warning": 0, "upgrade": 0, "no change": 1}
    assert c.summary() == "0 errors, 0 warnings, 0 upgrades, 1 no change"
    c = compare([site_pkg("a", "1.0.0"), site_pkg("b", "1.0.0")], [target_pkg("a", "2.0.0")], profiles=[])
    assert c.summary() == "1 error, 1 warning, 1 upgrade, 0 no change"


def test_rows_are_json_serialisable_in_field_order():
    c = mixed()
    rows = c.rows()
    assert len(rows) == len(c.changes)
    fields = [f.name for f in dataclasses.fields(PackageChange)]
    assert all(list(r) == fields for r in rows)
    assert rows[0] == {
        "name": "views",
        "type": "module",
        "status": "error",
        "current_version": "7.x-3.29",
        "target_version": "7.x-3.29",
        "current_schema": 7302,
        "target_schema": 7301,
        "reason": "schema downgrade: site has schema 7302, target provides 7301",
        "post_updates_pending": [],
    }
    assert json.loads(json.dumps(rows)) == rows
    assert json.loads(json.dumps(compare([], [], site_profile="x").rows()))[0]["target_schema"] is None


def test_results_are_frozen():
    c = mixed()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.changes[0].status = "no change"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.profile = "x"  # type: ignore[misc]


def test_inputs_are_not_modified():
    site = [site_pkg("views", "7.x-3.29", 7302), site_pkg("standard", None, 8000)]
    target = [target_pkg("views", "7.x-3.29", 7301)]
    profiles = [profile("standard")]
    before = json.dumps([site, target, profiles])
    compare(site, target, profiles=profiles)
    assert json.dumps([site, target, profiles]) == before


def test_inputs_may_be_iterators():
    c = compare_site(
        iter([site_pkg("views", "7.x-3.20", 7302)]),
        iter([target_pkg("views", "7.x-3.29", 7302)]),
        "default",
        iter(STANDARD),
    )
    assert only(c, "views").status == "upgrade" and c.target_profile == "standard"


# -- the table ----------------------------------------------------------------------------------------------------


def test_format_table_is_aligned():
    c = mixed()
    lines = format_table(c).splitlines()
    assert len(lines) == 2 + len(c.changes)
    header, rule, *body = lines
    assert header.split() == ["STATUS", "TYPE", "NAME", "VERSION", "SCHEMA", "REASON"]
    assert set(rule.replace(" ", "")) == {"-"}
    # every column starts at the same offset on every line
    starts = [header.index(h) for h in ("TYPE", "NAME", "VERSION", "SCHEMA", "REASON")]
    assert [i for i in range(1, len(rule)) if rule[i] == "-" and rule[i - 1] == " "] == starts
    for line in body:
        for s in starts:
            if s == starts[-1] and len(line) < s:
                continue  # an empty reason: no trailing blanks
            assert line[s - 2 : s] == "  " and line[s] != " ", (line, s)
    assert all(line == line.rstrip() for line in lines)
    views = next(line for line in body if " views " in line)
    assert views.startswith("error ")
    assert "7.x-3.29 " in views and "7302 → 7301" in views
    assert views.endswith("schema downgrade: site has schema 7302, target provides 7301")


def test_format_table_cells():
    c = mixed()
    text = format_table(c)
    zen = next(line for line in text.splitlines() if " zen " in line)
    assert "7.x-5.5 → 7.x-5.6" in zen
    ctools = next(line for line in text.splitlines() if " ctools " in line)
    assert "7.x-1.20 → -" in ctools and "7003 → -" in ctools
    assert "missing on the target platform" in ctools
    custom = next(line for line in text.splitlines() if " custom " in line)
    assert "site-local (moves with the site)" in custom
    unresolved = format_table(compare([], [], site_profile="social"))
    assert "profile social is not on the target platform" in unresolved.splitlines()[2]
    assert unresolved.splitlines()[2].split()[:4] == ["error", "profile", "social", "-"]


def test_format_table_changed_only():
    c = mixed()
    full = format_table(c).splitlines()
    changed = format_table(c, changed_only=True).splitlines()
    assert len(changed) == 2 + 5
    assert not any(line.startswith("no change") for line in changed)
    assert sum(line.startswith("no change") for line in full) == 4
    assert changed[2].startswith("error")


def test_format_table_without_rows_is_just_the_header():
    c = compare([site_pkg("a", "1.0.0")], [target_pkg("a", "1.0.0")])
    lines = format_table(c, changed_only=True).splitlines()
    assert len(lines) == 2
    assert lines[0].split() == ["STATUS", "TYPE", "NAME", "VERSION", "SCHEMA", "REASON"]


# -- Drupal 8+: hook_update_last_removed(), post-updates, hidden modules (issue 15, finding 5) ---------------


def d10_target(name, schema, *, last_removed=None, post_updates=(), version="10.3.1"):
    return {
        **target_pkg(name, version, schema, path=f"core/modules/{name}/{name}.info.yml"),
        "last_removed": last_removed,
        "post_updates": list(post_updates),
        "removed_post_updates": [],
    }


def d10_site(name, schema, post_updates=(), version="10.2.3"):
    return {**site_pkg(name, version, schema), "post_updates": list(post_updates)}


D10_PROFILES = [profile("standard", "10.3.1")]


def test_too_old_for_the_targets_last_removed_update_is_an_error():
    # Drupal 11 removed system's updates up to 10201: a site at 10101 must go through 10.3 first
    c = compare([d10_site("system", 10101)], [d10_target("system", 11100, last_removed=10201)], profiles=D10_PROFILES)
    row = only(c, "system")
    assert row.status == "error" and not c.ok
    assert row.reason.startswith("too old to update: site has schema 10101, the target removed the updates up to 10201")
    at_floor = only(compare([d10_site("system", 10201)], [d10_target("system", 11100, last_removed=10201)]), "system")
    assert at_floor.status == "upgrade"


def test_last_removed_schema_on_both_sides_is_no_change():
    """Real Drupal 10.2 → 10.3: block has no hook_update_N, only block_update_last_removed() (8003), which a
    fresh install records and the scan takes as the target's schema."""
    row = only(compare([d10_site("block", 8003)], [d10_target("block", 8003, last_removed=8003)]), "block")
    assert (row.status, row.current_schema, row.target_schema) == ("upgrade", 8003, 8003)  # a newer version only
    assert "schema" not in row.reason


def test_post_updates_the_site_has_not_run_are_pending():
    site = [d10_site("block", 8003, ["block_post_update_a", "block_post_update_removed"])]
    target = [d10_target("block", 8003, last_removed=8003, post_updates=["block_post_update_a", "block_post_update_b"])]
    c = compare(site, target, profiles=D10_PROFILES)
    row = only(c, "block")
    assert row.status == "upgrade" and row.post_updates_pending == ("block_post_update_b",)
    assert "post-updates pending: block_post_update_b" in row.reason
    assert c.updates_pending
    assert "block_post_update_b" in format_table(c)
    # all run: nothing pending; a site record without the list (older records, Drupal 7) compares no post-updates
    done = compare([d10_site("block", 8003, ["block_post_update_a", "block_post_update_b"])], target)
    assert only(done, "block").post_updates_pending == () and not done.updates_pending
    unknown = compare([site_pkg("block", "10.3.1", 8003)], target)
    assert only(unknown, "block").status == "no change" and not unknown.updates_pending


def test_updates_pending():
    assert compare([site_pkg("system", "7.80", 7084)], [target_pkg("system", "7.105", 7088)]).updates_pending
    assert not compare([site_pkg("system", "7.80", 7084)], [target_pkg("system", "7.105", 7084)]).updates_pending
    # a refused row (a downgrade) is nothing updatedb could do
    assert not compare([site_pkg("views", "7.x-3.29", 7302)], [target_pkg("views", "7.x-3.29", 7301)]).updates_pending


@pytest.fixture(scope="module")
def sample_scans(tmp_path_factory):
    from aegir.drupal.scan import scan_platform
    from aegir.transport.local import LocalTransport
    from tests.fixtures.drupal import make_platforms

    base = tmp_path_factory.mktemp("samples")
    kinds = ("d10", "d10-newer", "d11", "d11-newer")
    return {k: scan_platform(LocalTransport("localhost"), str(make_platforms.build(k, base / k))) for k in kinds}


def installed_site(kind: str, scan) -> list[dict]:
    """What a fresh site-install of the sample's standard profile leaves in key_value (system.schema and
    post_update existing_updates) for every module, as sitedb.site_packages reads it."""
    from tests.fixtures.drupal import make_platforms

    spec = make_platforms.spec(kind)
    versions = {p.name: p.version for p in scan.packages}
    return [
        d10_site(
            m.name,
            m.installed_schema(spec.major),
            m.post_update_functions() + [f for f, _ in m.removed_post_updates],
            versions.get(m.name),
        )
        for m in spec.modules
        if "/tests/" not in spec.module_dir(m)
    ]


@pytest.mark.parametrize(("current", "target"), [("d10", "d10-newer"), ("d11", "d11-newer"), ("d10", "d10")])
def test_a_drupal_10_or_11_minor_upgrade_is_no_schema_downgrade(sample_scans, current, target):
    """Drupal 10.2 → 10.3 (and 11.0 → 11.1): no error — block (last removed 8003, no hook_update_N) is no
    change, path_alias (required, hidden) is found — and the new updates and post-updates are pending."""
    site = installed_site(current, sample_scans[current])
    t = sample_scans[target]
    c = compare_site(site, t.package_dicts(), "standard", t.profile_dicts())
    assert c.ok, format_table(c, changed_only=True)
    assert c.warnings == ()
    assert only(c, "block").current_schema == only(c, "block").target_schema == 8003
    assert only(c, "path_alias").status in ("no change", "upgrade")
    if current == target:
        assert not c.updates_pending and {r.status for r in c.changes} == {"no change"}
    else:
        assert c.updates_pending
        assert (
            only(c, "system").status == "upgrade" and only(c, "system").target_schema > only(c, "system").current_schema
        )
        assert only(c, "block").post_updates_pending
