"""Every remediation in the catalog names a role, variables and tags that exist; a wrong name is reported."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from medinfra.compliance.catalog import load_catalog
from medinfra.fix.targets import playbooks_for, read_role_playbooks, read_role_targets, remediation_problems
from medinfra.package_data import CATALOG_DIR
from tests.conftest import ROOT

ROLES = read_role_targets(ROOT / "roles")
CATALOG = load_catalog(CATALOG_DIR)


def test_every_remediation_names_an_existing_role_variable_and_tag() -> None:
    assert remediation_problems(CATALOG.controls, ROLES) == []


def test_the_roles_areas_are_read_from_their_tasks() -> None:
    areas = {"ssh", "auth", "sysctl", "audit", "logging", "time", "updates", "integrity"}
    assert areas <= ROLES["baseline_hardening"].tags
    assert "segmentation" in ROLES["network_segmentation"].tags
    assert "network_segmentation_management_sources" in ROLES["network_segmentation"].variables


def test_unknown_role_variable_and_tag_are_each_reported_where_they_are(tmp_path: Path) -> None:
    control = CATALOG.controls[0]
    wrong_role = replace(control, remediation=replace(control.remediation, role="no_such_role"))
    wrong_names = replace(control, remediation=replace(control.remediation, variables=("nope_var",),
                                                       tags=("ssh", "no_such_tag")))
    foreign_tags = replace(control, remediation=replace(control.remediation, role="backup", variables=(),
                                                        tags=("ssh",)))
    shown = [(p.path, p.message.split(" (")[0]) for p in remediation_problems([wrong_role, wrong_names, foreign_tags],
                                                                                ROLES)]
    assert shown == [
        (("remediation", "role"), "no role 'no_such_role' in the collection"),
        (("remediation", "variables", 0), f"role {control.remediation.role} has no variable 'nope_var'"),
        (("remediation", "tags", 1), "no task of any role is tagged 'no_such_tag'"),
        (("remediation", "tags"), "none of these tags is role backup's own"),
    ]


def test_a_fix_runs_each_role_s_own_playbook_in_site_order() -> None:
    owners = read_role_playbooks(ROOT / "playbooks")
    assert owners["baseline_hardening"] == "hardening.yml" and owners["network_segmentation"] == "segmentation.yml"
    assert playbooks_for(["auth", "ssh"], ROLES, owners) == ["hardening.yml"]
    assert playbooks_for(["rtc_relay", "pki", "segmentation", "ssh"], ROLES, owners) == [
        "hardening.yml", "segmentation.yml", "monitoring.yml", "rtc_relay.yml"]
    assert playbooks_for(["no_such_tag"], ROLES, owners) == []
