"""The interface probe's configuration and the Prometheus job `interfaces`, from the topology: the lab's monitoring
server reaches all four lab interfaces; an interface without a flow from the server is skipped with the reason, in
both the configuration and the targets; the filters hand both to Ansible and turn bad input into filter errors."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.medinfra.hospital.plugins.filter import interfaces as filters_module

from medinfra.monitoring.interfaces import interface_targets, probe_config
from medinfra.topology.load import load_topology
from medinfra.topology.model import Topology
from tests.conftest import LAB_TOPOLOGY

LAB = load_topology(LAB_TOPOLOGY)
SERVER = LAB.host("monitor-01")
CA = "/etc/medinfra/pki/ca.crt"
# What the inventory plugin gives the roles as medinfra_topology.
LAB_DATA: dict[str, Any] = LAB.to_dict()
LAB_INTERFACES = ["lis-his-results", "ws-pacs-dicom", "his-fhir", "pacs-web"]


def without_flow_to(topology: Topology, host: str, port: int) -> Topology:
    """The topology with the monitoring server's flow to `host` on `port` taken away (other ports stay)."""
    data = copy.deepcopy(topology.to_dict())
    for flow in data["flows"]:
        if flow["from"] == SERVER.name and flow["to"] == host:
            flow["ports"] = [p for p in flow["ports"] if p != str(port)]
    return Topology.from_dict(data)


def test_lab_probe_config_reaches_every_interface() -> None:
    config = probe_config(LAB, SERVER, CA, 5)
    assert config["ca_file"] == CA
    assert list(config["interfaces"]) == LAB_INTERFACES
    assert config["interfaces"]["lis-his-results"] == {
        "protocol": "hl7v2-mllp",
        "host": "10.231.20.10",
        "server_name": "his-app",
        "port": 2575,
        "tls": False,
        "identity": {
            "sending_application": "LIS",
            "sending_facility": "LAB",
            "receiving_application": "HIS",
            "receiving_facility": "LABHOSP",
        },
        "timeout_seconds": 5,
        "latency_budget_seconds": 0.5,
    }
    dicom = config["interfaces"]["ws-pacs-dicom"]
    assert (dicom["host"], dicom["server_name"], dicom["port"]) == ("10.231.30.10", "pacs-01", 11112)
    assert dicom["tls"] is True
    assert dicom["identity"] == {"calling_ae": "WS01-VIEWER", "called_ae": "LABPACS01"}
    assert dicom["latency_budget_seconds"] == 1.0
    assert config["interfaces"]["his-fhir"]["identity"] == {"base_path": "/fhir", "fhir_version": "4.0.1"}
    # pacs-web declares no budget: the model's default applies.
    assert config["interfaces"]["pacs-web"]["latency_budget_seconds"] == LAB.interfaces[3].latency_budget_ms / 1000


def test_lab_targets_label_every_interface() -> None:
    targets, skipped = interface_targets(LAB, SERVER)
    assert skipped == []
    assert [t["targets"] for t in targets] == [[name] for name in LAB_INTERFACES]
    assert targets[0]["labels"] == {
        "interface": "lis-his-results",
        "protocol": "hl7v2-mllp",
        "from": "lis-legacy",
        "to": "his-app",
        "owner": "his-team",
        "vendor": "Example HIS Co.",
        "sla": "24x7-critical",
    }
    assert {t["labels"]["sla"] for t in targets} == {"24x7-critical", "business-hours"}
    assert {t["labels"]["owner"] for t in targets} == {"his-team", "imaging-team"}


def test_an_interface_without_flow_is_skipped_everywhere() -> None:
    topology = without_flow_to(LAB, "his-app", 2575)
    targets, skipped = interface_targets(topology, SERVER)
    assert [t["targets"][0] for t in targets] == ["ws-pacs-dicom", "his-fhir", "pacs-web"]
    assert skipped == ["lis-his-results (hl7v2-mllp to his-app:2575): no flow from monitor-01"]
    assert list(probe_config(topology, SERVER, CA, 5)["interfaces"]) == ["ws-pacs-dicom", "his-fhir", "pacs-web"]


def test_vendorless_interface_has_an_empty_vendor_label() -> None:
    data = LAB.to_dict()
    data["interfaces"][0]["vendor"] = None
    targets, _ = interface_targets(Topology.from_dict(data), SERVER)
    assert targets[0]["labels"]["vendor"] == ""


def test_another_server_reaches_only_what_its_flows_allow() -> None:
    """ws-01 reaches only what the clinical zone's flows allow: pacs-01 and the HIS web, not HL7."""
    targets, skipped = interface_targets(LAB, LAB.host("ws-01"))
    assert [t["targets"][0] for t in targets] == ["ws-pacs-dicom", "his-fhir", "pacs-web"]
    assert skipped == ["lis-his-results (hl7v2-mllp to his-app:2575): no flow from ws-01"]


@pytest.mark.parametrize("timeout", [0, -1, 61])
def test_timeout_out_of_range_is_refused(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout_seconds"):
        probe_config(LAB, SERVER, CA, timeout)


def test_filters_return_plain_data() -> None:
    filters = filters_module.FilterModule().filters()
    config = filters["interface_probe_config"](LAB_DATA, "monitor-01", CA, 5)
    assert list(config["interfaces"]) == LAB_INTERFACES
    result = filters["interface_targets"](LAB_DATA, "monitor-01")
    assert [t["targets"][0] for t in result["targets"]] == LAB_INTERFACES
    assert result["skipped"] == []


@pytest.mark.parametrize("name", ["interface_probe_config", "interface_targets"])
def test_filters_name_an_unknown_server(name: str) -> None:
    arguments = ("no-such-host", CA) if name == "interface_probe_config" else ("no-such-host",)
    with pytest.raises(AnsibleFilterError, match=f"medinfra.hospital.{name}: 'no-such-host' is not a host"):
        filters_module.FilterModule().filters()[name](LAB_DATA, *arguments)


def test_config_filter_refuses_a_bad_timeout() -> None:
    with pytest.raises(AnsibleFilterError, match="timeout_seconds"):
        filters_module.interface_probe_config(LAB_DATA, "monitor-01", CA, 0)
