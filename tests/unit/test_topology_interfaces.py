"""Clinical interfaces in the topology: located errors, the warnings `topology validate` prints, and what the
audit's interface controls read of them (the inventory's `medinfra_interfaces_in`), from the real lab topology."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from medinfra.audit.targets import inventory_view
from medinfra.cli import main
from medinfra.compliance.catalog import load_catalog
from medinfra.compliance.evaluate import evaluate_control, evidence_root, site_views
from medinfra.compliance.model import HostEvidence, Status
from medinfra.inventory import build_inventory
from medinfra.problems import UserInputError
from medinfra.topology import Topology, load_topology
from medinfra.topology.interfaces import default_ae_titles, served_interfaces
from medinfra.topology.load import load_topology_warnings
from tests.conftest import write_yaml

EVIDENCE = {"schema": "medinfra-evidence/1", "facts": {}}
NOW = datetime(2026, 12, 6, tzinfo=UTC)


def interface(data: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(i for i in data["interfaces"] if i["name"] == name)
    return found


def flow_index(data: dict[str, Any], source: str, destination: str) -> int:
    return next(i for i, f in enumerate(data["flows"]) if (f["from"], f["to"]) == (source, destination))


def problems(tmp_path: Path, data: dict[str, Any]) -> list[str]:
    with pytest.raises(UserInputError) as caught:
        load_topology(write_yaml(tmp_path / "hospital.yml", data))
    return [f"{'.'.join(map(str, p.path))}: {p.message}" for p in caught.value.problems]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: interface(d, "ws-pacs-dicom").pop("identity"), "interfaces.1: 'identity' is a required property"),
        (lambda d: interface(d, "ws-pacs-dicom")["identity"].update(called_ae="A" * 17), "interfaces.1.identity"),
        (lambda d: interface(d, "lis-his-results")["identity"].update(sending_application="LIS|X"), "interfaces.0"),
        (lambda d: interface(d, "his-fhir")["identity"].pop("fhir_version"), "'fhir_version' is a required property"),
        (lambda d: interface(d, "his-fhir").update(protocol="smtp"), "interfaces.2.protocol"),
        (lambda d: interface(d, "his-fhir").update(port=70000), "interfaces.2.port"),
        (lambda d: interface(d, "his-fhir").update({"from": "radiology"}), "interfaces.2.from: 'radiology' is not a"),
        (lambda d: interface(d, "his-fhir").update(to="his"), "interfaces.2.to: 'his' is not a host"),
        (lambda d: interface(d, "his-fhir").update(to="ws-01"), "interfaces.2.to: an interface joins two different"),
        (lambda d: interface(d, "his-fhir").update(sla="gold"), "interfaces.2.sla: unknown SLA class 'gold'"),
        (lambda d: interface(d, "his-fhir").update(name="pacs-web"), "duplicate interface name pacs-web"),
        (lambda d: interface(d, "his-fhir").update(owner="his\nteam"), "interfaces.2.owner: 'his\\x0ateam' contains"),
    ],
)
def test_a_broken_interface_is_a_located_error(
    tmp_path: Path, topology_data: dict[str, Any], change: Any, expected: str
) -> None:
    change(topology_data)
    found = problems(tmp_path, topology_data)
    assert any(expected in problem for problem in found), found


def test_the_lab_declares_its_interfaces_without_warnings(tmp_path: Path, topology_data: dict[str, Any]) -> None:
    topology, warnings = load_topology_warnings(write_yaml(tmp_path / "hospital.yml", topology_data))
    assert [i.name for i in topology.interfaces] == ["lis-his-results", "ws-pacs-dicom", "his-fhir", "pacs-web"]
    assert warnings == []


def test_an_interface_no_flow_allows_and_plaintext_phi_across_zones_are_warnings(
    tmp_path: Path, topology_data: dict[str, Any]
) -> None:
    del topology_data["flows"][flow_index(topology_data, "lis-legacy", "his-app")]
    interface(topology_data, "ws-pacs-dicom")["tls"] = False
    path = write_yaml(tmp_path / "hospital.yml", topology_data)
    _, warnings = load_topology_warnings(path)
    assert [(w.path, w.message) for w in warnings] == [
        (
            ("interfaces", 0),
            "no flow lets lis-legacy reach his-app on tcp/2575: the firewall drops this interface; declare the flow",
        ),
        (("interfaces", 1, "tls"), "carries PHI from zone clinical to pacs without TLS"),
    ]
    lines = path.read_text().splitlines()
    assert "lis-his-results" in lines[warnings[0].line - 1]


def test_plaintext_without_phi_or_inside_a_zone_is_no_warning(tmp_path: Path, topology_data: dict[str, Any]) -> None:
    interface(topology_data, "ws-pacs-dicom").update(tls=False, phi=False)
    assert interface(topology_data, "lis-his-results")["tls"] is False  # inside the HIS zone
    _, warnings = load_topology_warnings(write_yaml(tmp_path / "hospital.yml", topology_data))
    assert warnings == []


def test_validate_prints_warnings_and_still_exits_0(
    tmp_path: Path, topology_data: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    interface(topology_data, "ws-pacs-dicom")["tls"] = False
    path = write_yaml(tmp_path / "hospital.yml", topology_data)
    assert main(["topology", "validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert f"warning: {path}:" in captured.err
    assert "interfaces[1].tls: carries PHI from zone clinical to pacs without TLS" in captured.err
    assert "4 interfaces, 1 warning(s)" in captured.out


def test_default_ae_titles_are_found_whatever_their_case(topology_data: dict[str, Any]) -> None:
    topology = load_topology_from(topology_data)
    dicom = topology.interface("ws-pacs-dicom")
    assert default_ae_titles(dicom) == []
    orthanc = type(dicom)(**{**dicom.__dict__, "identity": {"calling_ae": "echoscu", "called_ae": "ORTHANC"}})
    assert default_ae_titles(orthanc) == ["ORTHANC", "echoscu"]


def load_topology_from(data: dict[str, Any]) -> Topology:
    with tempfile.TemporaryDirectory() as directory:
        return load_topology(write_yaml(Path(directory) / "hospital.yml", data))


def test_his_app_serves_the_hl7_results_and_fhir(topology_data: dict[str, Any]) -> None:
    topology = load_topology_from(topology_data)
    served = served_interfaces(topology, topology.host("his-app"))
    assert [(s["name"], s["from"], s["protocol"], s["port"]) for s in served] == [
        ("lis-his-results", "lis-legacy", "hl7v2-mllp", 2575),
        ("his-fhir", "ws-01", "fhir", 443),
    ]
    assert [(s["flow_declared"], s["crosses_zones"], s["plaintext_phi_across_zones"]) for s in served] == [
        (True, False, False),
        (True, True, False),
    ]
    assert served_interfaces(topology, topology.host("his-db")) == []


def his_app_finding(data: dict[str, Any], control: str, site: dict[str, Any] | None = None) -> Status:
    """The control on his-app with the inventory view the hospital inventory plugin builds from ``data``."""
    inventory = build_inventory(load_topology_from(data))
    view = inventory_view({**inventory.all_vars, **inventory.host_vars["his-app"], "group_names": []})
    host = HostEvidence("his-app", EVIDENCE, view)
    root = evidence_root(host, site if site is not None else site_views([host])["his-app"])
    assert root is not None
    catalog = load_catalog().by_id()
    return evaluate_control(catalog[control], host, root, [], NOW).status


def test_removing_the_flow_of_an_interface_fails_interface_flows_declared(topology_data: dict[str, Any]) -> None:
    assert his_app_finding(topology_data, "interface_flows_declared") is Status.PASS
    del topology_data["flows"][flow_index(topology_data, "lis-legacy", "his-app")]
    assert his_app_finding(topology_data, "interface_flows_declared") is Status.FAIL


def test_fhir_from_another_zone_without_tls_fails_interface_phi_encrypted(topology_data: dict[str, Any]) -> None:
    assert his_app_finding(topology_data, "interface_phi_encrypted") is Status.PASS
    interface(topology_data, "his-fhir")["tls"] = False
    assert his_app_finding(topology_data, "interface_phi_encrypted") is Status.FAIL


def test_interface_health_needs_an_audited_monitoring_server(topology_data: dict[str, Any]) -> None:
    """Audited alone, his-app's interfaces cannot be judged: an error, never a pass."""
    assert his_app_finding(topology_data, "interfaces_healthy") is Status.ERROR


def server_evidence(interfaces: Any) -> dict[str, Any]:
    prometheus = {"running": True, "node_targets": [], "interfaces": interfaces}
    return {"schema": "medinfra-evidence/1", "facts": {"monitoring": {"prometheus": prometheus}}}


def his_app_site(topology_data: dict[str, Any], interfaces: Any) -> Any:
    inventory = build_inventory(load_topology_from(topology_data))
    view = inventory_view({**inventory.all_vars, **inventory.host_vars["his-app"], "group_names": []})
    server = HostEvidence("monitor-01", server_evidence(interfaces), {"services": ["monitoring_server"]})
    return site_views([HostEvidence("his-app", EVIDENCE, view), server])["his-app"]["interfaces"]


def test_probe_verdicts_reach_the_interfaces_the_host_serves(topology_data: dict[str, Any]) -> None:
    seen = {
        "lis-his-results": {"up": False, "result": "ack_negative", "latency_seconds": 0.002},
        "ws-pacs-dicom": {"up": True, "result": "ok", "latency_seconds": 0.03},
    }
    assert his_app_site(topology_data, seen) == [
        {"name": "lis-his-results", "up": False, "result": "ack_negative", "latency_seconds": 0.002},
        {"name": "his-fhir", "up": False, "result": "not probed", "latency_seconds": None},
    ]


def test_a_server_whose_prometheus_could_not_be_asked_makes_the_verdict_unknown(topology_data: dict[str, Any]) -> None:
    site = his_app_site(topology_data, {"unavailable": "Prometheus did not answer"})
    reason = "monitor-01: monitoring.prometheus.interfaces: unavailable on the host: Prometheus did not answer"
    assert [item["up"] for item in site] == [{"unavailable": reason}] * 2


def test_a_failing_verdict_from_either_of_two_servers_stands(topology_data: dict[str, Any]) -> None:
    inventory = build_inventory(load_topology_from(topology_data))
    view = inventory_view({**inventory.all_vars, **inventory.host_vars["his-app"], "group_names": []})
    up = {"up": True, "result": "ok", "latency_seconds": 0.001}
    failing = {"up": False, "result": "ack_missing", "latency_seconds": None}
    for first, second in ((up, failing), (failing, up)):
        servers = [
            HostEvidence(name, server_evidence({"lis-his-results": seen}), {"services": ["monitoring_server"]})
            for name, seen in (("monitor-01", first), ("monitor-02", second))
        ]
        site = site_views([HostEvidence("his-app", EVIDENCE, view), *servers])["his-app"]["interfaces"]
        assert site[0] == {"name": "lis-his-results", **failing}
