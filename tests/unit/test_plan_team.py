"""`medinfra plan team`: staffing estimates from the topology against the reference table of hospital scales."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from medinfra.cli import main
from medinfra.plan.reference import SCALES_FILE, load_reference
from medinfra.plan.render import TIMES
from medinfra.plan.team import (
    COUNTED,
    WATCH_NONE,
    WATCH_ON_CALL,
    WATCH_ON_SITE,
    count,
    derived_scale,
    estimate_site,
    people,
    plan_team,
    watch,
)
from medinfra.topology import load_topology
from medinfra.topology.load import topology_schema
from medinfra.topology.model import Site, Topology
from tests.conftest import LAB_TOPOLOGY, ROOT, TERTIARY_TOPOLOGY, write_yaml

REFERENCE = load_reference()
GROUP_OF_TWO = 2


def county_data(name: str = "county", network: int = 40) -> dict[str, Any]:
    """A county hospital: a firewall, HIS application and database (round the clock), LIS and backup (office
    hours), one workstation; no remote-consultation relay."""
    net = f"10.{network}"
    return {
        "site": {"name": name, "title": "County Hospital / 县人民医院"},
        "sla_classes": {
            "24x7-critical": {"rpo_minutes": 60, "rto_minutes": 240, "support_hours": "24x7"},
            "business-hours": {"rpo_minutes": 1440, "rto_minutes": 1440, "support_hours": "business-hours"},
        },
        "zones": [
            {"name": "mgmt", "cidr": f"{net}.10.0/24", "gateway": f"{net}.10.254", "trust": "high", "purpose": "mgmt"},
            {"name": "his", "cidr": f"{net}.20.0/24", "gateway": f"{net}.20.254", "trust": "high", "purpose": "his"},
            {"name": "clinical", "cidr": f"{net}.50.0/24", "gateway": f"{net}.50.254", "trust": "medium",
             "purpose": "clinical"},
        ],
        "hosts": [
            {"name": "fw", "zone": "mgmt", "address": f"{net}.10.254", "services": ["zone_firewall"],
             "sla": "24x7-critical", "data_classification": "internal"},
            {"name": "backup-01", "zone": "mgmt", "address": f"{net}.10.12", "services": ["backup_server"],
             "sla": "business-hours", "data_classification": "phi", "data_paths": ["/srv/backup"]},
            {"name": "his-app", "zone": "his", "address": f"{net}.20.10", "services": ["his_app"],
             "sla": "24x7-critical", "data_classification": "phi", "data_paths": ["/srv/his"]},
            {"name": "his-db", "zone": "his", "address": f"{net}.20.11", "services": ["his_db"],
             "sla": "24x7-critical", "data_classification": "phi", "data_paths": ["/var/lib/postgresql"]},
            {"name": "lis-01", "zone": "his", "address": f"{net}.20.20", "services": ["lis_app"],
             "sla": "business-hours", "data_classification": "phi", "data_paths": ["/srv/lis"]},
            {"name": "ws-01", "zone": "clinical", "address": f"{net}.50.10", "services": ["workstation"],
             "sla": "business-hours", "data_classification": "internal"},
        ],
        "flows": [
            {"from": "clinical", "to": "his-app", "proto": "tcp", "ports": [443], "purpose": "HIS web"},
            {"from": "his-app", "to": "his-db", "proto": "tcp", "ports": [5432], "purpose": "HIS database"},
            {"from": "lis-01", "to": "his-app", "proto": "tcp", "ports": [2575], "purpose": "HL7 lab results"},
        ],
        "interfaces": [
            {"name": "lis-his-results", "from": "lis-01", "to": "his-app", "protocol": "hl7v2-mllp", "port": 2575,
             "tls": False, "owner": "his-team", "vendor": {"name": "County HIS Co."}, "sla": "24x7-critical",
             "identity": {"sending_application": "LIS", "sending_facility": "LAB", "receiving_application": "HIS",
                          "receiving_facility": "COUNTY"}},
        ],
    }


def with_servers(data: dict[str, Any], servers: int) -> dict[str, Any]:
    """`data` with office-hours application servers added in the HIS zone until it has `servers` servers."""
    data = copy.deepcopy(data)
    present = sum(1 for h in data["hosts"] if h["services"] != ["workstation"])
    for n in range(servers - present):
        data["hosts"].append({"name": f"app-{n}", "zone": "his", "address": f"10.40.20.{100 + n}",
                              "services": ["ris"], "sla": "business-hours", "data_classification": "internal"})
    return data


def topology(tmp_path: Path, data: dict[str, Any], name: str = "hospital.yml") -> Topology:
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    return load_topology(write_yaml(tmp_path / name, data))


def site_estimate(t: Topology) -> Any:
    return estimate_site(count(t, REFERENCE), REFERENCE)


# The reference table and constants: data, consistent with the topology's vocabulary


def test_the_reference_is_the_issues_table_with_its_source() -> None:
    assert [(s.key, s.people) for s in REFERENCE.scales] == [
        ("county", (2, 3)), ("prefecture", (4, 6)), ("provincial", (8, 15))]
    assert "issue 25" in REFERENCE.source.en and "team per campus" in REFERENCE.source.en
    assert "40 h a week" in REFERENCE.constants_source.en and "县级医院 2-3 人" in REFERENCE.source.zh
    bounds = [s.up_to_servers for s in REFERENCE.scales]
    assert bounds[-1] is None and bounds[:-1] == sorted(b for b in bounds if b is not None)


def test_the_reference_names_only_real_counts_services_and_scales() -> None:
    services = set(topology_schema()["$defs"]["service"]["enum"])
    assert REFERENCE.endpoint_services | REFERENCE.application_services | {REFERENCE.relay_service} <= services
    assert {name for role in REFERENCE.roles for name in role.per} <= set(COUNTED)
    assert [r.key for r in REFERENCE.roles] == ["ops", "network", "application", "security"]
    declared = topology_schema()["properties"]["site"]["properties"]["scale"]["enum"]
    assert declared == [s.key for s in REFERENCE.scales]
    assert (ROOT / "src" / "medinfra" / "plan" / SCALES_FILE).is_file()


def test_one_seat_round_the_clock_takes_about_five_fte() -> None:
    duty = REFERENCE.duty
    assert duty.available_hours == pytest.approx(34.0)
    assert duty.seat_fte == pytest.approx(168 / 34) and round(duty.seat_fte) == 5
    assert duty.off_hours == 128


# The example topologies land inside the reference range of their scale


def test_lab_counts_and_a_prefecture_level_two_team() -> None:
    site = site_estimate(load_topology(LAB_TOPOLOGY))
    counts = site.counts
    assert (counts.hosts, counts.servers, counts.systems, counts.servers_24x7) == (13, 11, 5, 10)
    assert (counts.relays, counts.interfaces, counts.vendors, counts.zones) == (1, 4, 2, 7)
    assert (counts.legacy_hosts, counts.database_pairs) == (1, 1)
    assert counts.classes_24x7 == ("24x7-critical", "24x7-standard")
    assert site.scale.scale.key == "prefecture" and not site.scale.declared
    assert 4 <= site.people <= 6 and site.within_reference
    assert site.watch.mode == WATCH_ON_CALL and site.rota_covered
    ops = site.roles[0]
    assert ops.role.key == "ops" and ops.fte == pytest.approx(0.4 + 11 * 0.08 + 1 * 0.3 + 1 * 0.1)


def test_tertiary_is_a_provincial_level_three_team_with_an_on_site_watch() -> None:
    site = site_estimate(load_topology(TERTIARY_TOPOLOGY))
    assert site.counts.servers == 33 and site.counts.servers_24x7 == 32 and site.counts.vendors == 6
    assert site.scale.scale.key == "provincial"
    assert 8 <= site.people <= 15 and site.within_reference
    assert 8 <= site.low <= site.people <= site.high <= 15
    assert site.watch.mode == WATCH_ON_SITE and site.watch.fte == pytest.approx(128 / 34)
    assert site.rota_covered


def test_a_county_hospital_takes_two_to_three_and_needs_a_shared_watch(tmp_path: Path) -> None:
    site = site_estimate(topology(tmp_path, county_data()))
    assert site.counts.servers == 5 and site.counts.relays == 0 and site.counts.servers_24x7 == 3
    assert site.scale.scale.key == "county"
    assert 2 <= site.low <= site.people <= site.high <= 3 and site.within_reference
    # Two or three people cannot keep an on-call rota of one week in four.
    assert site.watch.mode == WATCH_ON_CALL and not site.rota_covered


def test_a_county_hospital_without_round_the_clock_systems_has_no_watch(tmp_path: Path) -> None:
    data = county_data()
    for host in data["hosts"]:
        host["sla"] = "business-hours"
    data["interfaces"][0]["sla"] = "business-hours"
    del data["sla_classes"]["24x7-critical"]
    site = site_estimate(topology(tmp_path, data))
    assert site.counts.classes_24x7 == () and site.watch.mode == WATCH_NONE and site.watch.fte == 0
    assert site.rota_covered and 2 <= site.people <= 3


# Boundaries of the scale decision and of the watch


@pytest.mark.parametrize(("servers", "scale"), [
    (0, "county"), (6, "county"), (7, "prefecture"), (24, "prefecture"), (25, "provincial"), (500, "provincial"),
])
def test_scale_bounds(servers: int, scale: str) -> None:
    assert derived_scale(servers, REFERENCE.scales)[0].key == scale


@pytest.mark.parametrize(("servers", "scale"), [(6, "county"), (7, "prefecture")])
def test_scale_bound_counted_from_a_topology(tmp_path: Path, servers: int, scale: str) -> None:
    site = site_estimate(topology(tmp_path, with_servers(county_data(), servers)))
    assert site.counts.servers == servers and site.scale.scale.key == scale


def test_a_declared_scale_wins_and_says_what_the_servers_alone_give(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    data = county_data()
    data["site"]["scale"] = "prefecture"
    path = write_yaml(tmp_path / "hospital.yml", data)
    site = site_estimate(load_topology(path))
    assert site.scale.declared and site.scale.scale.key == "prefecture" and site.scale.derived.key == "county"
    assert not site.within_reference  # a county's work, judged against a level-2 team
    assert main(["plan", "team", "-i", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Scale: prefecture-level level-2 hospital (reference 4-6 people): declared in site.scale (its 5 servers " \
           "alone: county hospital)" in out
    assert "below the reference 4-6" in out


def test_site_scale_survives_the_plain_data_round_trip() -> None:
    site = Site("x", "X", None, None, (), scale="county")
    assert Site.from_dict(site.to_dict()) == site
    assert Site.from_dict({"name": "x", "title": "X"}).scale is None


@pytest.mark.parametrize(("servers_24x7", "mode"), [(0, WATCH_NONE), (1, WATCH_ON_CALL), (19, WATCH_ON_CALL),
                                                     (20, WATCH_ON_SITE)])
def test_watch_bounds(servers_24x7: int, mode: str) -> None:
    counts = replace(count(load_topology(LAB_TOPOLOGY), REFERENCE), servers_24x7=servers_24x7)
    assert watch(counts, REFERENCE.duty).mode == mode


def test_on_call_rota_needs_four_people() -> None:
    site = site_estimate(load_topology(LAB_TOPOLOGY))
    short = replace(site, roles=site.roles[:1])  # only operations: fewer people than a rota needs
    assert site.people >= 4 and site.rota_covered
    assert short.people < 4 and not short.rota_covered


# Hospital groups: a team per campus


def test_two_campuses_are_a_group_of_teams_per_campus() -> None:
    plan = plan_team([load_topology(LAB_TOPOLOGY), load_topology(TERTIARY_TOPOLOGY)], REFERENCE)
    assert plan.group is not None
    lab, tertiary = plan.sites
    assert plan.group.people == lab.people + tertiary.people
    assert plan.group.reference == (4 + 8, 6 + 15) and plan.group.within_reference
    assert plan.group.total == pytest.approx(lab.total + tertiary.total)
    assert plan.group.short_rotas == ()


def test_two_county_campuses_can_share_one_watch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = write_yaml(tmp_path / "a.yml", county_data("county-a", 40))
    second = write_yaml(tmp_path / "b.yml", county_data("county-b", 41))
    plan = plan_team([load_topology(first), load_topology(second)], REFERENCE)
    assert plan.group is not None and len(plan.group.short_rotas) == GROUP_OF_TWO
    assert plan.group.shared_rota == sum(s.people for s in plan.sites) >= 4 and plan.group.shared_rota_covered
    assert main(["plan", "team", "-i", str(first), "-i", str(second)]) == 0
    out = capsys.readouterr().out
    assert "Hospital group: 2 campuses, a team per campus" in out
    people = plan.group.shared_rota
    assert f"Shared watch: county-a, county-b cannot keep an on-call rota alone; together their {people} people " \
           f"can, one week in {people} each." in out


# The command line: text, JSON, both languages, located errors


def test_text_says_each_role_with_its_formula_and_the_rota_arithmetic(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "team", "-i", str(LAB_TOPOLOGY.parent)]) == 0
    out = capsys.readouterr().out.replace(TIMES, "*")  # ruff would take the sign for an x
    assert "Scale: prefecture-level level-2 hospital (reference 4-6 people): 11 servers, more than 6 and at most " \
           "24" in out
    assert "  operations  1.7 FTE = 0.4 + 11 servers * 0.08 + 1 database pair * 0.3 + 1 legacy host * 0.1" in out
    assert "  network     0.9 FTE = 0.1 + 7 zones * 0.08 + 1 relay * 0.2" in out
    assert "  duty watch  0.6 FTE = 128 h * 0.15 ÷ 34 h: on call from home for 10 servers in 24x7 classes" in out
    assert "One seat round the clock: 168 h a week ÷ 34 h an FTE covers (40 h * 0.85) = 4.9 FTE, about 5 people." \
           in out
    assert "Nights and weekends on call from home: 5 people take one week in 5 each; the rota needs at least 4: " \
           "covered by the estimate." in out
    assert "Reference: The reference table of hospital scales as medinfra issue 25 states it" in out


def test_text_in_chinese(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "team", "-i", str(TERTIARY_TOPOLOGY), "--lang", "zh"]) == 0
    out = capsys.readouterr().out
    assert "规模：省级三级医院（参考 8-15 人）：服务器 33，多于 24 台" in out
    assert "值班 3.8 FTE = 128 小时 ÷ 34 小时：全天候等级服务器 32，现场值守（至少 20 台）" in out
    assert "夜间与周末现场值守" in out and "测算已覆盖" in out
    assert "operations" not in out


def test_county_text_says_the_watch_needs_sharing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_yaml(tmp_path / "hospital.yml", county_data())
    assert main(["plan", "team", "-i", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Scale: county hospital (reference 2-3 people): 5 servers, at most 6" in out
    assert "the rota needs at least 4: not covered by the estimate: share the watch with another campus or buy it " \
           "in" in out


def test_json_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "team", "-i", str(LAB_TOPOLOGY.parent), "-i", str(TERTIARY_TOPOLOGY), "--format", "json",
                 "--lang", "zh"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["format"] == "medinfra-plan-team/1" and document["lang"] == "zh"
    lab, tertiary = document["sites"]
    assert lab["site"] == "lab" and lab["scale"]["key"] == "prefecture" and lab["within_reference"] is True
    assert lab["counts"]["servers"] == 11 and lab["counts"]["classes_24x7"] == ["24x7-critical", "24x7-standard"]
    assert [r["role"] for r in lab["roles"]] == ["ops", "network", "application", "security", "duty"]
    assert lab["roles"][0]["terms"][0] == {"count": "servers", "value": 11, "weight": 0.08}
    assert lab["roles"][-1]["mode"] == "on_call" and lab["rota"]["covered"] is True
    assert sum(r["fte"] for r in lab["roles"]) == pytest.approx(lab["total"]["fte"], abs=0.02)
    assert tertiary["scale"]["name"] == "省级三级医院" and 8 <= tertiary["total"]["people"] <= 15
    assert tertiary["rota"]["mode"] == "on_site" and tertiary["rota"]["seat_fte"] == pytest.approx(4.94)
    group = document["group"]
    assert group["campuses"] == ["lab", "tertiary"] and group["reference"] == [12, 21]
    assert group["total"]["people"] == lab["total"]["people"] + tertiary["total"]["people"]
    assert group["shared_rota"] is None


def test_one_site_has_no_group_in_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "team", "-i", str(LAB_TOPOLOGY), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["group"] is None


def test_bad_inventories_are_located_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = county_data()
    data["site"]["scale"] = "metropolis"
    data["hosts"][2]["zone"] = "icu"
    bad = write_yaml(tmp_path / "bad.yml", data)
    assert main(["plan", "team", "-i", str(bad), "-i", str(tmp_path / "missing.yml")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{bad}:" in err and "site.scale: 'metropolis' is not one of ['county', 'prefecture', 'provincial']" in err
    assert "missing.yml" in err


def test_the_same_site_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copied = write_yaml(tmp_path / "hospital.yml", yaml.safe_load(LAB_TOPOLOGY.read_text(encoding="utf-8")))
    assert main(["plan", "team", "-i", str(LAB_TOPOLOGY), "-i", str(copied)]) == 2
    err = capsys.readouterr().err
    assert f"{copied}: site.name: site 'lab' is also the site of {LAB_TOPOLOGY}" in err


@pytest.mark.parametrize(("fte", "expected"), [(0.0, 1), (0.1, 1), (1.44, 1), (2.44, 2), (2.45, 3), (2.49, 3),
                                               (4.67, 5)])
def test_people_are_the_shown_fte_rounded_half_up(fte: float, expected: int) -> None:
    assert people(fte) == expected
