"""Monitoring targets from the topology, exporter credentials, and the filter plugin that hands both to Ansible.

The lab topology with the monitoring_server role's own probe table is the reference case. Hypothesis then draws
other probe tables and other servers: every probe target must still be one a topology flow allows, and every
(host, service, probe) must be either a target or reported as skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.medinfra.hospital.plugins.filter import monitoring as filters_module
from hypothesis import given, settings
from hypothesis import strategies as st

from medinfra.monitoring.credentials import bcrypt_hash, derived_salt
from medinfra.monitoring.targets import MODULES, ServiceProbe, Targets, parse_probes, scrape_targets
from medinfra.segmentation.rules import intended
from medinfra.topology.load import load_topology
from medinfra.topology.model import Host, Topology
from tests.conftest import LAB_TOPOLOGY, ROOT, TERTIARY_TOPOLOGY

WHERE = "monitoring_server_service_probes"
DEFAULTS = ROOT / "roles" / "monitoring_server" / "defaults" / "main.yml"
TABLE: dict[str, list[dict[str, Any]]] = yaml.safe_load(DEFAULTS.read_text(encoding="utf-8"))[WHERE]
LAB = load_topology(LAB_TOPOLOGY)
SERVER = LAB.host("monitor-01")
NODE_PORT = 9100

BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
PASSWORD = "correct-horse-battery-staple"
COST = 10  # the cheapest cost accepted; the hash format is the same as at the roles' 12


def lab_targets(table: Mapping[str, Sequence[Mapping[str, Any]]] = TABLE, node_port: int = NODE_PORT) -> Targets:
    return scrape_targets(LAB, SERVER, parse_probes(table, WHERE), node_port)


def expected_target(host: Host, probe: ServiceProbe) -> str:
    """What the blackbox exporter is asked to probe, spelled out here rather than taken from targets.py."""
    if probe.module == "https":
        return f"https://{host.address}:{probe.port}{probe.path}"
    return f"{host.address}:{probe.port}"


def target_port(target: str) -> int:
    match = re.fullmatch(r"(?:https://)?\d+\.\d+\.\d+\.\d+:(\d+)(?:/.*)?", target)
    assert match, f"not an address with a port: {target!r}"
    return int(match.group(1))


def check_targets(
    topology: Topology, server: Host, probes: Mapping[str, Sequence[ServiceProbe]], targets: Targets
) -> None:
    """What must hold for any topology, server and probe table."""
    # Every probe is one the topology allows: the zone firewall would drop anything else, a false alarm.
    for entry in targets.blackbox:
        (target,) = entry["targets"]
        labels = entry["labels"]
        host = topology.host(labels["host"])
        assert (labels["zone"], labels["sla"]) == (host.zone, host.sla), entry
        if labels["module"] == "icmp":
            assert (labels["service"], target) == ("host", str(host.address)), entry
            assert host != server, "the server does not ping itself"
            assert intended(topology, server, host, "icmp", None), entry
        else:
            assert labels["module"] in MODULES and labels["service"] in host.services, entry
            assert any(
                (p.module, expected_target(host, p)) == (labels["module"], target) for p in probes[labels["service"]]
            ), entry
            assert host == server or intended(topology, server, host, "tcp", target_port(target)), entry

    # Every (host, service, probe) of the table is either a target or listed as skipped, never both. Two services
    # behind one address and module (HIS and EMR web on one host's 443) are probed once, under the first's name.
    service_of: dict[tuple[str, str, str], str] = {}
    for entry in targets.blackbox:
        key = (entry["labels"]["host"], entry["labels"]["module"], entry["targets"][0])
        assert key not in service_of, f"probed twice: {key}"
        service_of[key] = entry["labels"]["service"]
    allowed: set[tuple[str, str, str]] = set()
    skipped: list[str] = []
    for host in topology.hosts:
        for service in host.services:
            for probe in probes.get(service, ()):
                key = (host.name, probe.module, expected_target(host, probe))
                skip = f"{host.name}:{probe.port} ({service}, {probe.module}): no flow from {server.name}"
                assert (key in service_of) != (skip in targets.skipped), (host.name, service, probe, targets.skipped)
                if skip in targets.skipped:
                    skipped.append(skip)
                else:
                    allowed.add(key)
                    first = service_of[key]
                    assert host.services.index(first) <= host.services.index(service), (key, first, service)

    # ICMP exactly where a flow allows it from the server.
    pinged = {key for key in service_of if key[1] == "icmp"}
    assert sorted(target for _, _, target in pinged) == sorted(
        str(h.address) for h in topology.hosts if h != server and intended(topology, server, h, "icmp", None)
    )

    # Nothing else.
    assert set(service_of) == allowed | pinged
    assert sorted(targets.skipped) == sorted(skipped)


# --- parse_probes -------------------------------------------------------------------------------------------------


def test_the_role_default_probe_table_parses() -> None:
    probes = parse_probes(TABLE, WHERE)
    assert set(probes) == set(TABLE)
    assert probes["pacs"] == [ServiceProbe("https", 443, "/"), ServiceProbe("tcp_tls", 104, "/")]
    assert probes["lis_app"] == [ServiceProbe("tcp", 2575)]
    assert probes["turn_relay"] == [ServiceProbe("tcp_tls", 5349)]


@pytest.mark.parametrize(
    ("entry", "fault"),
    [
        ({"module": "tcp_tls", "port": 70000}, "port: 70000 is not a port number"),
        ({"module": "tcp_tls", "port": 65536}, "port: 65536 is not a port number"),
        ({"module": "tcp_tls", "port": 0}, "port: 0 is not a port number"),
        ({"module": "tcp_tls", "port": -104}, "port: -104 is not a port number"),
        ({"module": "tcp_tls", "port": "104"}, "port: '104' is not a port number"),
        ({"module": "tcp_tls", "port": 104.0}, "port: 104.0 is not a port number"),
        ({"module": "tcp_tls"}, "port: None is not a port number"),
        ({"module": "udp", "port": 104}, "module: 'udp' is not one of https, tcp_tls, tcp"),
        # ICMP probes follow the topology's icmp flows; the table cannot ask for them.
        ({"module": "icmp", "port": 104}, "module: 'icmp' is not one of https, tcp_tls, tcp"),
        ({"module": "HTTPS", "port": 443}, "module: 'HTTPS' is not one of https, tcp_tls, tcp"),
        ({"port": 104}, "module: None is not one of https, tcp_tls, tcp"),
        # bool is an int in Python: `port: true` must not become port 1.
        ({"module": "tcp_tls", "port": True}, "port: True is not a port number"),
    ],
)
def test_a_bad_probe_names_its_place_and_fault(entry: dict[str, Any], fault: str) -> None:
    table = {"his_app": [{"module": "https", "port": 443}], "pacs": [{"module": "https", "port": 443}, entry]}
    with pytest.raises(ValueError, match="^" + re.escape(f"{WHERE}.pacs[1].{fault}") + "$"):
        parse_probes(table, WHERE)


@pytest.mark.parametrize(
    "table",
    [{"pacs": {"module": "https", "port": 443}}, {"pacs": ["https"]}, {"pacs": None}],
    ids=["mapping-not-list", "string-entry", "null"],
)
def test_a_misshapen_probe_table_names_its_place(table: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(f"{WHERE}.pacs")):
        parse_probes(table, WHERE)


# --- scrape_targets on the lab ------------------------------------------------------------------------------------


def test_every_host_that_is_not_legacy_is_a_node_target_with_its_labels() -> None:
    node = lab_targets().node
    managed = [h for h in LAB.hosts if not h.legacy]
    members = {"his-db": "his-db", "his-db-2": "his-db"}  # the lab's pair; its service host his-app is no member
    assert node == [
        {"targets": [f"{h.address}:{NODE_PORT}"], "labels": {"instance": h.name, "zone": h.zone, "sla": h.sla,
                                                             **({"database_cluster": members[h.name]}
                                                                if h.name in members else {})}}
        for h in managed
    ]
    assert {entry["labels"]["instance"] for entry in node} == {h.name for h in managed}


def test_the_legacy_lis_is_not_scraped() -> None:
    assert LAB.host("lis-legacy").legacy
    node = lab_targets().node
    assert "lis-legacy" not in {entry["labels"]["instance"] for entry in node}
    assert f"{LAB.host('lis-legacy').address}:{NODE_PORT}" not in {t for entry in node for t in entry["targets"]}


def test_the_node_exporter_port_is_the_one_given() -> None:
    assert all(entry["targets"][0].endswith(":9200") for entry in lab_targets(node_port=9200).node)


def test_the_lab_probes_exactly_what_its_flows_allow() -> None:
    targets = lab_targets()
    probed = {
        (e["labels"]["host"], e["labels"]["service"], e["labels"]["module"], e["targets"][0]) for e in targets.blackbox
    }
    assert probed == {
        ("his-app", "host", "icmp", "10.231.20.10"),
        ("his-app", "his_app", "https", "https://10.231.20.10:443/"),
        ("his-db", "host", "icmp", "10.231.20.11"),
        ("his-db-2", "host", "icmp", "10.231.21.11"),  # the standby's zone his-dr lets management ping it
        # Legacy hosts are not scraped but are still probed where a flow allows it.
        ("lis-legacy", "host", "icmp", "10.231.20.20"),
        ("pacs-01", "pacs", "https", "https://10.231.30.10:443/"),
        ("pacs-01", "pacs", "tcp_tls", "10.231.30.10:104"),
        ("turn", "turn_relay", "tcp_tls", "10.231.40.10:5349"),
    }
    # Only his-app may reach the LIS's HL7 port.
    assert targets.skipped == ["lis-legacy:2575 (lis_app, tcp): no flow from monitor-01"]
    check_targets(LAB, SERVER, parse_probes(TABLE, WHERE), targets)


def test_a_probe_on_a_port_no_flow_opens_is_skipped() -> None:
    targets = lab_targets({"his_app": [{"module": "https", "port": 443}, {"module": "https", "port": 8443}]})
    assert "https://10.231.20.10:443/" in {e["targets"][0] for e in targets.blackbox}
    assert targets.skipped == ["his-app:8443 (his_app, https): no flow from monitor-01"]


def test_services_on_the_server_itself_are_probed_without_a_flow() -> None:
    table = {
        "log_server": [{"module": "tcp_tls", "port": 6514}],
        "monitoring_server": [{"module": "https", "port": 9090, "path": "/-/ready"}],
    }
    assert not intended(LAB, SERVER, SERVER, "tcp", 6514)
    assert not intended(LAB, SERVER, SERVER, "tcp", 9090)
    targets = lab_targets(table)
    own = [e for e in targets.blackbox if e["labels"]["host"] == "monitor-01"]
    assert sorted((e["labels"]["service"], e["targets"][0]) for e in own) == [
        ("log_server", "10.231.10.11:6514"),
        ("monitoring_server", "https://10.231.10.11:9090/-/ready"),
    ]
    assert targets.skipped == []
    check_targets(LAB, SERVER, parse_probes(table, WHERE), targets)


def test_two_services_behind_one_port_are_probed_once_under_the_first_name() -> None:
    data = LAB.to_dict()
    next(h for h in data["hosts"] if h["name"] == "his-app")["services"] = ["his_app", "emr_web"]
    result = filters_module.scrape_targets(data, "monitor-01", TABLE)
    assert [
        (e["labels"]["service"], e["labels"]["module"], e["targets"][0])
        for e in result["blackbox"]
        if e["labels"]["host"] == "his-app"
    ] == [("host", "icmp", "10.231.20.10"), ("his_app", "https", "https://10.231.20.10:443/")]


@pytest.mark.parametrize("path", [LAB_TOPOLOGY, TERTIARY_TOPOLOGY], ids=["lab", "example-tertiary"])
def test_every_monitoring_server_of_the_example_sites_gets_only_allowed_targets(path: Path) -> None:
    topology = load_topology(path)
    probes = parse_probes(TABLE, WHERE)
    servers = [h for h in topology.hosts if "monitoring_server" in h.services]
    assert servers
    for server in servers:
        targets = scrape_targets(topology, server, probes, NODE_PORT)
        check_targets(topology, server, probes, targets)
        assert [e["labels"]["instance"] for e in targets.node] == [h.name for h in topology.hosts if not h.legacy]


# Probe tables drawn over the lab's services (and one it does not have), with ports its flows open and others.
SERVICES = sorted({service for host in LAB.hosts for service in host.services} | {"not_in_the_topology"})
FLOW_PORTS = sorted({port for flow in LAB.flows for r in flow.ports for port in (r.start, r.end)})
probe_entries = st.fixed_dictionaries(
    {"module": st.sampled_from(MODULES), "port": st.one_of(st.sampled_from(FLOW_PORTS), st.integers(1, 65535))},
    optional={"path": st.sampled_from(["/", "/health", "/-/ready?full=1"])},
)
probe_tables = st.dictionaries(
    st.sampled_from(SERVICES),
    st.lists(probe_entries, max_size=3, unique_by=lambda entry: (entry["module"], entry["port"])),
    max_size=len(SERVICES),
)


@settings(max_examples=300, deadline=None)
@given(table=probe_tables, server=st.sampled_from(LAB.hosts))
def test_any_probe_table_and_server_yield_only_allowed_targets(table: dict[str, Any], server: Host) -> None:
    probes = parse_probes(table, WHERE)
    targets = scrape_targets(LAB, server, probes, NODE_PORT)
    check_targets(LAB, server, probes, targets)
    assert targets.node == lab_targets().node  # node targets depend on the topology alone


# --- credentials --------------------------------------------------------------------------------------------------


def test_bcrypt_hash_is_deterministic_for_password_and_seed() -> None:
    first = bcrypt_hash(PASSWORD, "his-app", COST)
    assert bcrypt_hash(PASSWORD, "his-app", COST) == first
    assert bcrypt_hash(PASSWORD, "his-db", COST) != first
    assert bcrypt_hash(PASSWORD + "!", "his-app", COST) != first


def test_bcrypt_hash_verifies_with_bcrypt() -> None:
    hashed = bcrypt_hash(PASSWORD, "monitor-01/admin", COST).encode()
    assert bcrypt.checkpw(PASSWORD.encode(), hashed)
    assert not bcrypt.checkpw(b"wrong-" + PASSWORD.encode(), hashed)


def test_the_default_cost_is_12() -> None:
    hashed = bcrypt_hash(PASSWORD, "his-app")
    assert re.fullmatch(r"\$2b\$12\$[./A-Za-z0-9]{53}", hashed)
    assert bcrypt.checkpw(PASSWORD.encode(), hashed.encode())


def test_an_empty_password_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^the password is empty$"):
        bcrypt_hash("", "his-app", COST)


@pytest.mark.parametrize("cost", [-1, 0, 4, 9, 17, 31])
def test_costs_outside_10_to_16_are_refused(cost: int) -> None:
    with pytest.raises(ValueError, match=f"^bcrypt cost must be between 10 and 16, got {cost}$"):
        bcrypt_hash(PASSWORD, "his-app", cost)


@pytest.mark.parametrize("cost", [10, 11, 15, 16])
def test_costs_from_10_to_16_are_accepted(cost: int) -> None:
    assert derived_salt(PASSWORD, "his-app", cost).decode().startswith(f"$2b${cost:02d}$")  # no 2^16-round hash


@settings(max_examples=300, deadline=None)
@given(password=st.text(min_size=1, max_size=60), seed=st.text(max_size=60))
def test_the_salt_is_29_characters_of_the_bcrypt_alphabet(password: str, seed: str) -> None:
    salt = derived_salt(password, seed, 12).decode("ascii")
    assert len(salt) == 29
    assert salt.startswith("$2b$12$")
    assert all(char in BCRYPT_ALPHABET for char in salt[7:])
    # The last character holds only 2 bits of the salt; it is normalised, so bcrypt keeps the salt as it is.
    assert salt[-1] in ".Oeu"


@settings(max_examples=10, deadline=None)
@given(
    password=st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=18),
    seed=st.text(max_size=20),
)
def test_bcrypt_keeps_the_derived_salt(password: str, seed: str) -> None:
    hashed = bcrypt_hash(password, seed, COST)  # at most 72 bytes: bcrypt refuses longer passwords
    assert hashed[:29] == derived_salt(password, seed, COST).decode("ascii")
    assert bcrypt.checkpw(password.encode(), hashed.encode())


# --- the filter plugin --------------------------------------------------------------------------------------------


def test_the_filters_are_registered() -> None:
    filters = filters_module.FilterModule().filters()
    assert filters["scrape_targets"] is filters_module.scrape_targets
    assert filters["bcrypt"] is filters_module.bcrypt


def test_the_filter_reads_the_inventory_view_and_returns_plain_json() -> None:
    data = LAB.to_dict()
    result = filters_module.scrape_targets(data, "monitor-01", TABLE)
    expected = lab_targets()
    assert result == {"node": expected.node, "blackbox": expected.blackbox, "skipped": expected.skipped}
    assert json.loads(json.dumps(result)) == result  # file_sd JSON is written from it with to_nice_json
    assert all(
        entry["targets"][0].endswith(":9200")
        for entry in filters_module.scrape_targets(data, "monitor-01", TABLE, 9200)["node"]
    )


@pytest.mark.parametrize(
    ("topology", "server", "table", "message"),
    [
        ("lab", "ghost", TABLE, "'ghost' is not a host of medinfra_topology"),
        (
            "lab",
            "monitor-01",
            {"pacs": [{"module": "https", "port": 70000}]},
            f"{WHERE}.pacs[0].port: 70000 is not a port number",
        ),
        (
            "lab",
            "monitor-01",
            {"lis_app": [{"module": "tcp", "port": 2575}, {"module": "mllp", "port": 2575}]},
            f"{WHERE}.lis_app[1].module: 'mllp' is not one of https, tcp_tls, tcp",
        ),
        ("broken", "monitor-01", TABLE, "medinfra_topology is incomplete or malformed: KeyError("),
    ],
    ids=["unknown-server", "bad-port", "bad-module", "broken-topology"],
)
def test_filter_errors_name_the_fault(topology: str, server: str, table: dict[str, Any], message: str) -> None:
    data = LAB.to_dict() if topology == "lab" else {"site": {"name": "lab"}, "hosts": []}
    with pytest.raises(AnsibleFilterError, match="^" + re.escape(f"medinfra.hospital.scrape_targets: {message}")):
        filters_module.scrape_targets(data, server, table)


def test_filter_names_a_misshapen_probe_table() -> None:
    table: Any = {"pacs": {"module": "https", "port": 443}}  # a mapping where a list of probes belongs
    with pytest.raises(AnsibleFilterError, match="^" + re.escape(f"medinfra.hospital.scrape_targets: {WHERE}.pacs")):
        filters_module.scrape_targets(LAB.to_dict(), "monitor-01", table)


def test_the_bcrypt_filter_is_the_library_hash() -> None:
    assert filters_module.bcrypt(PASSWORD, "his-app", COST) == bcrypt_hash(PASSWORD, "his-app", COST)
    assert filters_module.bcrypt(PASSWORD, "his-app", "10") == bcrypt_hash(PASSWORD, "his-app", COST)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("password", "cost", "message"),
    [
        ("", COST, "the password is empty"),
        (PASSWORD, 9, "bcrypt cost must be between 10 and 16, got 9"),
        (PASSWORD, "twelve", "invalid literal for int()"),
        ("x" * 73, COST, "password cannot be longer than 72 bytes"),
    ],
    ids=["empty-password", "low-cost", "cost-not-a-number", "password-over-72-bytes"],
)
def test_bcrypt_filter_errors_name_the_fault(password: str, cost: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match="^" + re.escape(f"medinfra.hospital.bcrypt: {message}")):
        filters_module.bcrypt(password, "his-app", cost)
