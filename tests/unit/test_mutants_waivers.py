"""Kills mutants of compliance/model.py (waivers, the catalog's clause mapping) left by the other tests
(`make mutation`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from medinfra.compliance.catalog import load_catalog
from medinfra.compliance.model import Catalog, Waiver
from medinfra.package_data import CATALOG_DIR

WAIVER = Waiver(
    control="root_login_off",
    hosts=("lis-*",),
    groups=("legacy",),
    justification="vendor support",
    approver="CISO",
    risk="high",
    risk_acceptance="accepted until the upgrade",
    compensating_control="jump host only",
    expires=date(2026, 11, 22),
)


def test_a_waiver_holds_through_its_expiry_date_and_lapses_the_day_after() -> None:
    assert not WAIVER.expired(date(2026, 11, 21))
    assert not WAIVER.expired(date(2026, 11, 22))
    assert WAIVER.expired(date(2026, 11, 23))


def test_a_waiver_covers_hosts_by_pattern_or_by_group() -> None:
    assert WAIVER.covers("lis-legacy", ())
    assert WAIVER.covers("pacs-old", ["zone_pacs", "legacy"])
    assert not WAIVER.covers("his-db", ["zone_his"])
    assert not WAIVER.covers("LIS-legacy", ())  # patterns are case-sensitive, as host names in the inventory


def test_covering_lists_the_controls_that_reference_a_clause_in_catalog_order() -> None:
    template = load_catalog(CATALOG_DIR).controls[0]
    catalog = Catalog(
        (
            replace(template, id="a", references={"hipaa": ("1", "2")}),
            replace(template, id="b", references={"hipaa": ("2",), "gbt22239": ("1",)}),
            replace(template, id="c", references={}),
        ),
        {},
    )
    assert catalog.covering("hipaa", "2") == ("a", "b")
    assert catalog.covering("hipaa", "1") == ("a",)
    assert catalog.covering("gbt22239", "1") == ("b",)
    assert catalog.covering("cis_debian12", "1") == ()
