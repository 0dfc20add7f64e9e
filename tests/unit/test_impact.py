"""medinfra impact: what an outage or upgrade breaks, on the example tertiary hospital's 11 interfaces.

The expectations come from reading inventories/example-tertiary/hospital.yml (its flows and interfaces), not from
running the code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from medinfra.cli import main
from medinfra.impact import (
    EXPORTER_DOWN,
    HOST_DOWN_ALERTS,
    HOST_UNREACHABLE,
    IMPACT_FORMAT,
    INTERFACE_DOWN,
    Impact,
    impact,
    impact_text,
    resolve,
)
from medinfra.topology import load_topology
from medinfra.topology.model import Topology, Vendor
from tests.conftest import ROOT, TERTIARY_TOPOLOGY

RULES = ROOT / "roles" / "monitoring_server" / "files" / "medinfra-alerts.rules.yml"
PACS = "Example PACS Co."
CONTACTS = {
    "Example LIS Co.": "lis-support@example.test",
    "Example HIS Co.": "his-support@example.test, +86 10 5555 0101",
    PACS: "pacs-support@example.test, +86 10 5555 0303",
    "Example EMR Co.": "emr-support@example.test",
    "Regional Health Platform": "rhp-ops@example.test",
    "Medical Insurance Bureau": "insurance-it@example.test",
}
HIS_ZONE = ["his-app-01", "his-app-02", "his-app-03", "his-app-04", "his-db-01", "his-db-02", "hl7-engine-01"]
WORKSTATIONS = [f"ws-{n:03}" for n in range(1, 13)]
MODALITIES = ["modality-ct-01", "modality-mr-01", "modality-dr-01", "modality-us-01"]


@pytest.fixture(scope="module")
def tertiary() -> Topology:
    return load_topology(TERTIARY_TOPOLOGY)


def of(topology: Topology, target: str) -> Impact:
    return impact(topology, target, resolve(topology, target))


def down(result: Impact) -> list[str]:
    return [i.name for i in result.down_interfaces]


def at_risk(result: Impact) -> list[str]:
    return [a.interface.name for a in result.at_risk]


def vendors(*names: str) -> list[Vendor]:
    return [Vendor(name, CONTACTS[name]) for name in names]


def test_his_db_01_breaks_no_interface_but_puts_its_applications_interfaces_at_risk(tertiary: Topology) -> None:
    result = of(tertiary, "his-db-01")
    assert result.kind == "host" and [h.name for h in result.hosts] == ["his-db-01"]
    assert down(result) == []
    assert at_risk(result) == ["his-lis-orders", "lis-his-results", "his-ris-orders", "his-emr-fhir"]
    # Only the database's own clients by name; the zone-wide flows into `his` (clinical, nursing, lis, office,
    # portal) reach the HIS applications' ports, not the database's, and management flows are no dependency.
    assert result.at_risk_hosts == ("his-app-01", "his-app-02")
    reasons = {a.interface.name: [str(r) for r in a.reasons] for a in result.at_risk}
    assert reasons["his-emr-fhir"] == ["his-app-01 needs his-db-01: HIS application to its database"]
    assert reasons["his-ris-orders"] == ["his-app-02 needs his-db-01: HIS application to its database"]
    assert list(result.owners) == ["integration-team", "imaging-team", "his-team"]
    assert list(result.vendors) == vendors("Example LIS Co.", "Example HIS Co.", PACS, "Example EMR Co.")
    assert result.sla_classes == ("24x7-critical",)
    assert [(a.name, a.subject) for a in result.alerts] == [(EXPORTER_DOWN, "his-db-01"),
                                                           (HOST_UNREACHABLE, "his-db-01")]
    assert {"Clinicians use the HIS web", "HIS application to its database"} <= {f.purpose for f in result.down_flows}


def test_his_db_02_puts_insurance_and_nursing_at_risk(tertiary: Topology) -> None:
    result = of(tertiary, "his-db-02")
    assert down(result) == []
    assert at_risk(result) == ["insurance-settlement", "nursing-his"]
    assert result.at_risk_hosts == ("his-app-03", "his-app-04", "his-db-01")  # his-db-01 replicates to it
    assert list(result.vendors) == vendors("Medical Insurance Bureau", "Example HIS Co.")
    assert result.sla_classes == ("24x7-critical", "24x7-standard")


def test_a_vendor_upgrade_takes_down_its_interfaces_and_puts_its_neighbours_at_risk(tertiary: Topology) -> None:
    result = of(tertiary, PACS)
    assert result.kind == "vendor"
    assert [h.name for h in result.hosts] == ["pacs-01", "pacs-02", "ris-01"]
    assert down(result) == ["his-ris-orders", "ct-pacs-store", "mr-pacs-store", "dr-pacs-store", "us-pacs-store"]
    # The HIS zone sends imaging orders to the pacs zone on 2575, which ris-01 serves: every HIS host needs it.
    assert at_risk(result) == ["his-lis-orders", "lis-his-results", "his-emr-fhir", "regional-platform",
                               "insurance-settlement", "nursing-his"]
    assert result.at_risk_hosts == (*WORKSTATIONS, *MODALITIES, *HIS_ZONE)
    assert list(result.vendors) == vendors(PACS, "Example LIS Co.", "Example HIS Co.", "Example EMR Co.",
                                           "Regional Health Platform", "Medical Insurance Bureau")
    assert list(result.owners) == ["imaging-team", "integration-team", "his-team", "finance-it"]
    names = [(a.name, a.subject) for a in result.alerts]
    assert names[:5] == [("InterfaceDown", name) for name in down(result)]
    # An outage refuses the probe's connection (connect_failed): no protocol-specific alert.
    assert not {name for name, _ in names} & {"Hl7AckMissing", "DicomAssociationRejected"}
    assert {(EXPORTER_DOWN, "ris-01"), (HOST_UNREACHABLE, "pacs-02")} <= set(names)


def test_a_zone_target_takes_down_its_hosts_and_their_interfaces(tertiary: Topology) -> None:
    result = of(tertiary, "lis")
    assert result.kind == "zone"
    assert [h.name for h in result.hosts] == ["lis-app-01", "lis-app-02", "lis-db-01", "lis-legacy-01"]
    assert down(result) == ["his-lis-orders", "lis-his-results"]
    assert at_risk(result) == ["his-ris-orders", "his-emr-fhir", "regional-platform", "insurance-settlement",
                               "nursing-his"]
    assert result.at_risk_hosts == tuple(HIS_ZONE)  # HL7 lab orders to lis-app-01's port 2575
    assert result.sla_classes == ("24x7-critical", "24x7-standard", "business-hours")
    alerts = {(a.name, a.subject) for a in result.alerts}
    # The legacy host runs no node exporter: only its ping probe sees it, and the output says so.
    assert (HOST_UNREACHABLE, "lis-legacy-01") in alerts and (EXPORTER_DOWN, "lis-legacy-01") not in alerts
    assert (EXPORTER_DOWN, "lis-db-01") in alerts
    assert any("lis-legacy-01 is legacy" in note for note in result.unseen)


def test_an_interface_target_takes_down_its_serving_host(tertiary: Topology) -> None:
    result = of(tertiary, "ct-pacs-store")
    assert result.kind == "interface" and [h.name for h in result.hosts] == ["pacs-01"]
    assert down(result) == ["ct-pacs-store", "mr-pacs-store"]
    assert at_risk(result) == ["dr-pacs-store", "us-pacs-store"]  # modalities store to the pacs zone on 11112
    assert list(result.vendors) == vendors(PACS)
    assert list(result.owners) == ["imaging-team"]


def test_management_is_no_clinical_dependency_and_a_blind_monitoring_fires_nothing(tertiary: Topology) -> None:
    result = of(tertiary, "mgmt")
    assert result.at_risk == () and result.dependencies == ()
    assert result.alerts == ()
    assert result.unseen == ("no monitoring server that is not itself down: no alert fires",)


def test_unknown_and_ambiguous_targets(tertiary: Topology) -> None:
    with pytest.raises(ValueError, match=r"'his-db' is no host, zone, interface or vendor .*did you mean 'his-db-0"):
        resolve(tertiary, "his-db")
    with pytest.raises(ValueError, match=r"'lis' is no host .*it is a zone"):
        resolve(tertiary, "lis", "host")
    twin = replace(tertiary, interfaces=(replace(tertiary.interfaces[0], name="his-db-01"), *tertiary.interfaces[1:]))
    with pytest.raises(ValueError, match="is a host and an interface: say which with --kind host or --kind interface"):
        resolve(twin, "his-db-01")
    assert resolve(twin, "his-db-01", "interface") == "interface"


def test_names_are_escaped_in_the_text(tertiary: Topology) -> None:
    first = tertiary.interfaces[0]
    hostile = replace(tertiary, interfaces=(replace(first, vendor=Vendor("Evil\x1b[2J", "x\nFAKE")),
                                            *tertiary.interfaces[1:]))
    text = impact_text(impact(hostile, "lis-app-01", "host"))
    assert "\x1b" not in text and "Evil\\x1b[2J" in text and "x\\x0aFAKE" in text


def defined_alerts(rules_file: Path) -> set[str]:
    rules = yaml.safe_load(rules_file.read_text(encoding="utf-8"))
    return {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}


def test_every_alert_named_exists_in_the_rules_files() -> None:
    assert set(HOST_DOWN_ALERTS) <= defined_alerts(RULES)
    assert INTERFACE_DOWN in defined_alerts(RULES.with_name("medinfra-interfaces.rules.yml"))


def test_json_and_errors_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["impact", "his-db-02", "-i", str(TERTIARY_TOPOLOGY.parent), "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["format"] == IMPACT_FORMAT and document["site"] == "tertiary"
    assert document["target"] == {"name": "his-db-02", "kind": "host", "hosts": ["his-db-02"]}
    assert set(document) == {"format", "site", "target", "down", "at_risk", "notify", "sla_classes", "dependents",
                             "alerts", "unseen"}
    assert document["down"] == {"hosts": ["his-db-02"], "interfaces": [], "flows": document["down"]["flows"]}
    nursing = document["at_risk"]["interfaces"][1]
    assert nursing == {"name": "nursing-his", "protocol": "https", "from": "nursing-gw-01", "to": "his-app-04",
                       "port": 443, "sla": "24x7-critical", "owner": "his-team",
                       "vendor": {"name": "Example HIS Co.", "contact": CONTACTS["Example HIS Co."]},
                       "change_window": None, "dependents": ["mobile nursing", "medication administration"],
                       "reasons": ["his-app-04 needs his-db-02: HIS application to its replica"]}
    assert document["at_risk"]["hosts"][0] == {"name": "his-app-03", "needs": [
        {"host": "his-db-02", "purpose": "HIS application to its replica"}]}
    assert document["notify"]["owners"] == ["finance-it", "his-team"]
    assert document["alerts"] == [{"alert": EXPORTER_DOWN, "for": "his-db-02"},
                                  {"alert": HOST_UNREACHABLE, "for": "his-db-02"}]

    assert main(["impact", "nosuch", "-i", str(TERTIARY_TOPOLOGY.parent)]) == 2
    err = capsys.readouterr().err
    assert f"{TERTIARY_TOPOLOGY}: (top level): 'nosuch' is no host, zone, interface or vendor" in err
    assert "vendors: Example LIS Co., Example HIS Co., Example PACS Co." in err and "Traceback" not in err


def test_the_installed_command() -> None:
    medinfra = Path(sys.executable).with_name("medinfra")
    result = subprocess.run([str(medinfra), "impact", PACS, "-i", str(TERTIARY_TOPOLOGY.parent)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Target: vendor Example PACS Co., down or upgraded: hosts pacs-01, pacs-02, ris-01"
    for section in ("Down:", "At risk (one step: hosts that depend on a target host, and their interfaces):",
                    "Notify:", "SLA classes: 24x7-critical, 24x7-standard", "Alerts:"):
        assert section in lines
    assert any(line.split() == ["Medical", "Insurance", "Bureau", "insurance-it@example.test"] for line in lines)


def test_an_interface_no_monitoring_server_may_probe_fires_no_alert(tertiary: Topology) -> None:
    unprobed = replace(tertiary, flows=tuple(f for f in tertiary.flows if "Interface probes (DICOM" not in f.purpose
                                             and "Interface probes (HL7, DICOM)" not in f.purpose))
    result = of(unprobed, "ct-pacs-store")
    assert ("InterfaceDown", "ct-pacs-store") not in {(a.name, a.subject) for a in result.alerts}
    assert "no flow lets a monitoring server probe ct-pacs-store, so InterfaceDown does not fire" in result.unseen
    assert ("InterfaceDown", "ct-pacs-store") in {(a.name, a.subject) for a in of(tertiary, "ct-pacs-store").alerts}
