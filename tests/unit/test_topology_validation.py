"""Schema and semantic validation of hospital.yml: one broken topology per error class."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from medinfra import yamldoc
from medinfra.cli import main
from medinfra.problems import Problem, UserInputError
from medinfra.topology import Topology, load_topology
from medinfra.topology.checks import _earlier_overlaps, check_flows, check_zones
from medinfra.topology.load import topology_schema
from tests.conftest import LAB_TOPOLOGY, TERTIARY_TOPOLOGY, write_yaml


def problems_of(tmp_path: Path, data: Any) -> list[Problem]:
    path = write_yaml(tmp_path / "hospital.yml", data)
    with pytest.raises(UserInputError) as caught:
        load_topology(path)
    return caught.value.problems


def assert_located(tmp_path: Path, problems: list[Problem], where: str, words: str, file: str = "hospital.yml") -> None:
    """A problem saying ``words`` names the file (hospital.yml), its line and the path ``where`` inside it."""
    rendered = [str(p) for p in problems]
    matching = [p for p in problems if words in p.message]
    assert matching, rendered
    problem = matching[0]
    assert problem.line is not None and problem.line > 0
    assert str(problem).startswith(f"{tmp_path / file}:{problem.line}: {where}: "), rendered


def host_index(data: dict[str, Any], name: str) -> int:
    return next(i for i, h in enumerate(data["hosts"]) if h["name"] == name)


@pytest.mark.parametrize("path", [LAB_TOPOLOGY, TERTIARY_TOPOLOGY])
def test_shipped_topologies_are_valid(path: Path) -> None:
    topology = load_topology(path)
    assert topology.hosts and topology.zones and topology.flows
    for host in topology.hosts:
        assert host.address in topology.zone(host.zone).network


def test_tertiary_is_a_realistic_size() -> None:
    topology = load_topology(TERTIARY_TOPOLOGY)
    assert len(topology.hosts) >= 50
    assert len(topology.zones) >= 8
    assert any(h.legacy for h in topology.hosts)


def test_lab_has_the_zones_and_hosts_the_demo_needs() -> None:
    topology = load_topology(LAB_TOPOLOGY)
    assert {z.name for z in topology.zones} == {"mgmt", "his", "his-dr", "pacs", "dmz", "clinical", "guest"}
    services = {s for h in topology.hosts for s in h.services}
    assert {
        "bastion",
        "monitoring_server",
        "backup_server",
        "his_app",
        "his_db",
        "pacs",
        "turn_relay",
        "workstation",
        "zone_firewall",
    } <= services
    assert [h.name for h in topology.hosts if h.legacy] == ["lis-legacy"]
    # The HIS database's hot standby sits in its own zone; clients reach the pair through his-app.
    standby = topology.host("his-db-2")
    assert (standby.standby_of, standby.zone) == ("his-db", "his-dr")
    service = topology.host("his-db").service_address
    assert service is not None and (service.host, service.port) == ("his-app", 5432)
    assert len(topology.hosts) == 13


Mutation = Callable[[dict[str, Any]], None]


def _set(path: tuple[Any, ...], value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        target = data
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return mutate


def _host(name: str, key: str, value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        data["hosts"][host_index(data, name)][key] = value

    return mutate


def _add_zone(name: str, third_octet: int) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        cidr = f"10.231.{third_octet}.0/24"
        data["zones"].append({"name": name, "cidr": cidr, "trust": "low", "purpose": "office"})

    return mutate


def _add_sla(name: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        data["sla_classes"][name] = {"rpo_minutes": 1, "rto_minutes": 1}

    return mutate


def _both(first: Mutation, second: Mutation) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        first(data)
        second(data)

    return mutate


# (error class, mutation, expected path, words the message must contain)
CASES: list[tuple[str, Mutation, str, str]] = [
    ("missing required key", lambda d: d["hosts"][0].pop("zone"), "hosts[0]", "'zone' is a required property"),
    ("unknown key", _set(("zones", 0, "vlan"), 12), "zones[0]", "Additional properties are not allowed ('vlan'"),
    ("bad enum", _set(("zones", 1, "trust"), "very"), "zones[1].trust", "'very' is not one of"),
    ("unknown service", _host("his-db", "services", ["mysql"]), "hosts[5].services[0]", "'mysql' is not one of"),
    ("port of wrong type", _set(("flows", 0, "ports"), ["ssh"]), "flows[0].ports[0]", "is not a port"),
    ("tcp flow without ports", lambda d: d["flows"][0].pop("ports"), "flows[0]", "'ports' is a required property"),
    ("invalid CIDR", _set(("zones", 2, "cidr"), "10.231.30.7/24"), "zones[2].cidr", "has host bits set"),
    ("overlapping CIDRs", _set(("zones", 5, "cidr"), "10.231.0.0/16"), "zones[5].cidr", "overlaps 10.231.10.0/24"),
    (
        "address outside zone",
        _host("his-db", "address", "10.231.30.11"),
        "hosts[5].address",
        "outside zone 'his' (10.231.20.0/24)",
    ),
    ("invalid address", _host("his-db", "address", "10.231.20.300"), "hosts[5].address", "not a valid IPv4 address"),
    ("unknown zone", _host("his-db", "zone", "icu"), "hosts[5].zone", "unknown zone 'icu'"),
    ("unknown SLA class", _host("his-db", "sla", "gold"), "hosts[5].sla", "unknown SLA class 'gold'"),
    ("duplicate host name", _host("his-db", "name", "his-app"), "hosts[5]", "duplicate host name his-app"),
    (
        "duplicate address",
        _host("his-db", "address", "10.231.20.10"),
        "hosts[5].address",
        "duplicate address 10.231.20.10 (already used by hosts[4])",
    ),
    ("duplicate zone name", _set(("zones", 5, "name"), "dmz"), "zones[5]", "duplicate zone name dmz"),
    ("host named like a zone", _host("ws-01", "name", "clinical"), "hosts[11].name", "is also a zone name"),
    ("host named like a group", _host("ws-01", "name", "phi"), "hosts[11].name", "is also an inventory group"),
    ("host named like a service", _host("ws-01", "name", "his_app"), "hosts[11].name", "service 'his_app'"),
    (
        "host named like a zone's group",
        _host("ws-01", "name", "zone_his"),
        "hosts[11].name",
        "is also an inventory group, the group of zone 'his' (zones[1].name)",
    ),
    (
        "zones that become one group",
        _both(_add_zone("his_x", 70), _add_zone("his-x", 80)),
        "zones[8].name",
        "zone 'his-x' becomes inventory group 'zone_his_x', which is already the group of zone 'his_x' (zones[7].name)",
    ),
    (
        "zone named like a service group",
        _add_zone("firewall", 70),
        "zones[7].name",
        "zone 'firewall' becomes inventory group 'zone_firewall', which is already the group of the hosts with "
        "service 'zone_firewall'",
    ),
    (
        "SLA classes that become one group",
        _add_sla("24x7_critical"),
        "sla_classes.24x7_critical",
        "becomes inventory group 'sla_24x7_critical', which is already the group of SLA class '24x7-critical'",
    ),
    # Python's `$` matches before a final newline, so the schema's patterns let these through.
    ("newline after a host name", _host("his-db", "name", "his-db\n"), "hosts[5].name", "'his-db\\x0a' contains"),
    ("newline in data_paths", _host("his-db", "data_paths", ["/srv/his\n"]), "hosts[5].data_paths[0]", "line breaks"),
    (
        "audit rule in data_paths",
        _host("his-db", "data_paths", ["/srv/his\n-w /etc/shadow -p r"]),
        "hosts[5].data_paths[0]",
        "does not match",
    ),
    ("whitespace in data_paths", _host("his-db", "data_paths", ["/srv/his -k x"]), "hosts[5].data_paths[0]", "match"),
    ("newline in time_servers", _set(("site", "time_servers"), ["10.231.10.10\n"]), "site.time_servers[0]", "line"),
    (
        "chrony directive in time_servers",
        _set(("site", "time_servers"), ["10.231.10.10\nallow all"]),
        "site.time_servers[0]",
        "does not match",
    ),
    ("options in time_servers", _set(("site", "time_servers"), ["ntp minpoll 0"]), "site.time_servers[0]", "match"),
    ("escape in the title", _set(("site", "title"), "lab\x1b[2J"), "site.title", "'lab\\x1b[2J' contains"),
    ("newline in the domain", _set(("site", "domain"), "lab.medinfra.test\n"), "site.domain", "line breaks"),
    ("newline in a flow purpose", _set(("flows", 0, "purpose"), "SSH\n}"), "flows[0].purpose", "line breaks"),
    ("bidi override in an address", _host("his-db", "address", "10.231.20.11\u202e"), "hosts[5].address", "bidi"),
    ("escape in a description", _set(("zones", 0, "description"), "a\x1b]0;x\x07"), "zones[0].description", "cont"),
    (
        "flow from unknown endpoint",
        _set(("flows", 3, "from"), "radiology"),
        "flows[3].from",
        "'radiology' is neither a zone nor a host",
    ),
    ("flow to unknown endpoint", _set(("flows", 3, "to"), "icu"), "flows[3].to", "'icu' is neither a zone nor a host"),
    ("reversed port range", _set(("flows", 0, "ports"), ["2000-1000"]), "flows[0].ports[0]", "bad port range"),
    ("port range past 65535", _set(("flows", 0, "ports"), ["60000-70000"]), "flows[0].ports[0]", "bad port range"),
    ("port zero", _set(("flows", 0, "ports"), [0]), "flows[0].ports[0]", "is not a port"),
    (
        "gateway outside zone",
        _set(("zones", 1, "gateway"), "10.231.99.254"),
        "zones[1].gateway",
        "not a usable address of 10.231.20.0/24",
    ),
    (
        "host on the gateway",
        _host("his-db", "address", "10.231.20.254"),
        "hosts[5].address",
        "is the gateway of zone 'his'",
    ),
]


@pytest.mark.parametrize(("mutate", "where", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_error_class_gives_a_located_message(
    tmp_path: Path, topology_data: dict[str, Any], mutate: Mutation, where: str, words: str
) -> None:
    mutate(topology_data)
    assert_located(tmp_path, problems_of(tmp_path, topology_data), where, words)


def test_line_numbers_point_at_the_offending_entry(tmp_path: Path, topology_data: dict[str, Any]) -> None:
    topology_data["hosts"][host_index(topology_data, "his-db")]["address"] = "10.231.30.11"
    problems = problems_of(tmp_path, topology_data)
    lines = (tmp_path / "hospital.yml").read_text().splitlines()
    assert "10.231.30.11" in lines[problems[0].line - 1]


def test_every_problem_is_reported_not_only_the_first(tmp_path: Path, topology_data: dict[str, Any]) -> None:
    topology_data["hosts"][0]["zone"] = "nowhere"
    topology_data["flows"][0]["to"] = "nobody"
    topology_data["zones"][5]["cidr"] = "10.231.10.0/25"
    paths = {p.path for p in problems_of(tmp_path, topology_data)}
    assert {("hosts", 0, "zone"), ("flows", 0, "to"), ("zones", 5, "cidr")} <= paths


@pytest.mark.parametrize(
    ("text", "words"),
    [("site: [unclosed\n", "invalid YAML"), ("- just\n- a list\n", "must be a YAML mapping"), ("", "must be a YAML")],
)
def test_malformed_files(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "hospital.yml"
    path.write_text(text)
    with pytest.raises(UserInputError) as caught:
        load_topology(path)
    assert words in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="file not found"):
        load_topology(tmp_path / "absent.yml")


@given(start=st.integers(-5, 70000), end=st.integers(-5, 70000))
def test_port_ranges_are_accepted_exactly_when_sane(start: int, end: int) -> None:
    zones = [{"name": "a"}]
    flows = [{"from": "a", "to": "a", "proto": "tcp", "ports": [f"{start}-{end}"]}]
    if start < 0 or end < 0:
        return  # the schema's pattern rejects signs before the semantic check runs
    findings = check_flows(flows, zones, [])
    assert (not findings) == (1 <= start <= end <= 65535)


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_descriptions_may_span_lines(tmp_path: Path, topology_data: dict[str, Any]) -> None:
    topology_data["zones"][0]["description"] = "Management:\n\tbastions and monitoring\n"
    load_topology(write_yaml(tmp_path / "hospital.yml", topology_data))


def test_a_key_with_a_line_break_is_refused(tmp_path: Path, topology_data: dict[str, Any]) -> None:
    topology_data["sla_classes"]["spare\n"] = {"rpo_minutes": 1, "rto_minutes": 1}
    problems = problems_of(tmp_path, topology_data)
    assert [p.path for p in problems] == [("sla_classes", "spare\n")]
    assert "key 'spare\\x0a' contains line breaks" in problems[0].message
    assert "\n" not in str(problems[0])


def test_a_lone_surrogate_in_a_host_name_is_a_located_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """libyaml refuses the escape outright; PyYAML's own parser (the fallback) reads it, the schema refuses it."""
    text = LAB_TOPOLOGY.read_text(encoding="utf-8").replace("name: his-db,", r'name: "his-\udc80db",')
    path = tmp_path / "hospital.yml"
    path.write_text(text, encoding="utf-8")
    line = next(number for number, content in enumerate(text.splitlines(), 1) if "udc80" in content)
    assert main(["topology", "validate", str(path)]) == 2
    assert f"{path}:{line}: (top level): invalid YAML: found invalid Unicode" in capsys.readouterr().err
    monkeypatch.setattr(yamldoc, "_LOADER", yaml.SafeLoader)
    assert main(["topology", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    err.encode("utf-8")
    assert f"{path}:{line}: hosts[5].name: 'his-\\udc80db' does not match" in err


def test_a_lone_surrogate_in_free_text_is_a_located_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = LAB_TOPOLOGY.read_text(encoding="utf-8").replace('purpose: "Administration over SSH"', r'purpose: "\ud800"')
    monkeypatch.setattr(yamldoc, "_LOADER", yaml.SafeLoader)
    with pytest.raises(UserInputError) as caught:
        load_topology(write_text(tmp_path / "hospital.yml", text))
    first = caught.value.problems[0]
    assert (first.path, first.message) == (
        ("flows", 0, "purpose"),
        "'\\ud800' contains line breaks, control, bidi or surrogate characters (shown escaped)",
    )


def test_overlaps_name_a_few_zones_and_count_the_rest(topology_data: dict[str, Any]) -> None:
    zones = topology_data["zones"]
    zones.append({"name": "all-of-it", "cidr": "10.231.0.0/16", "trust": "low", "purpose": "office"})
    findings, _ = check_zones(zones)
    assert findings == [
        (
            ("zones", 7, "cidr"),
            "10.231.0.0/16 overlaps 10.231.10.0/24 of zones[0] (mgmt), 10.231.20.0/24 of zones[1] (his), "
            "10.231.21.0/24 of zones[2] (his-dr), 10.231.30.0/24 of zones[3] (pacs), 10.231.40.0/24 of zones[4] "
            "(dmz) and 2 more",
        )
    ]


def _block(address: int, prefix: int) -> str:
    return str(IPv4Network((address, prefix), strict=False))


CIDRS = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.128/25", "10.2.0.0/16", "11.0.0.0/8", "0.0.0.0/0"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(CIDRS) | st.builds(_block, st.integers(0, 2**32 - 1), st.integers(0, 32)), max_size=12))
def test_the_sweep_flags_exactly_the_zones_an_earlier_zone_overlaps(cidrs: list[str]) -> None:
    networks = [(index, IPv4Network(cidr)) for index, cidr in enumerate(cidrs)]
    found = _earlier_overlaps(networks)
    for index, network in networks:
        earlier = {other for other, net in networks[:index] if net.overlaps(network)}
        assert (index in found) == bool(earlier)
        assert set(found.get(index, [])) <= earlier


def test_zone_checks_are_near_linear() -> None:
    """20,000 zones took over 300 s when every pair of CIDRs was compared."""
    zones = [
        {"name": f"z{i}", "cidr": f"10.{i // 256}.{i % 256}.0/24", "gateway": f"10.{i // 256}.{i % 256}.1"}
        for i in range(20_000)
    ]
    # CPU time of this process, not wall time: the machine is shared, and `make test-unit` runs under coverage.
    started = time.process_time()
    findings, networks = check_zones(zones)
    assert time.process_time() - started < 10
    assert findings == [] and len(networks) == 20_000


# --- Topology.to_dict / from_dict: the inventory's medinfra_topology and the filters' model are one shape

SERVICES = sorted(set(topology_schema()["$defs"]["service"]["enum"]) - {"zone_firewall"})
# Names without '_' (so no two become one group) behind prefixes no group or service starts with.
SUFFIXES = st.from_regex(r"[a-z0-9-]{0,8}", fullmatch=True)
# Descriptions may span lines; everything else is one line of printable text.
LINE = st.text(st.characters(categories=("L", "N", "P", "S", "Zs"), exclude_characters="\u2028\u2029"), min_size=1)
FREE_TEXT = st.none() | st.text(st.characters(categories=("L", "N", "P", "S", "Zs"), include_characters="\n\t"))


def _optional(draw: st.DrawFn, key: str, values: st.SearchStrategy[Any]) -> dict[str, Any]:
    """{key: value} or nothing: hospital.yml leaves optional keys out, to_dict writes them as None."""
    value = draw(st.none() | values)
    return {} if value is None else {key: value}


@st.composite
def hospital_documents(draw: st.DrawFn) -> dict[str, Any]:
    """Valid hospital.yml documents: zones 10.<i>.0.0/<16..27>, hosts at .10 onwards of their zone."""
    zone_names = ["q" + s for s in draw(st.lists(SUFFIXES, min_size=1, max_size=4, unique=True))]
    sla_names = ["s" + s for s in draw(st.lists(SUFFIXES, min_size=1, max_size=3, unique=True))]
    host_names = ["x" + s for s in draw(st.lists(SUFFIXES, max_size=6, unique=True))]
    zones = []
    for index, name in enumerate(zone_names):
        zones.append({
            "name": name,
            "cidr": f"10.{index}.0.0/{draw(st.integers(16, 27))}",
            "trust": draw(st.sampled_from(["untrusted", "low", "medium", "high"])),
            "purpose": draw(st.sampled_from(["his", "pacs", "mgmt", "guest"])),
            **_optional(draw, "gateway", st.just(f"10.{index}.0.1")),
            **_optional(draw, "description", FREE_TEXT),
        })
    hosts = []
    for index, name in enumerate(host_names):
        zone = draw(st.integers(0, len(zones) - 1))
        hosts.append({
            "name": name,
            "zone": zone_names[zone],
            "address": f"10.{zone}.0.{10 + index}",
            "services": draw(st.lists(st.sampled_from(SERVICES), max_size=3, unique=True)),
            "sla": draw(st.sampled_from(sla_names)),
            "data_classification": draw(st.sampled_from(["phi", "internal", "public"])),
            **_optional(draw, "data_paths", st.lists(st.sampled_from(["/srv/a", "/srv/b", "/var/lib/c"]), unique=True)),
            **_optional(draw, "legacy", st.booleans()),
            **_optional(draw, "description", FREE_TEXT),
        })
    if len(hosts) >= 3 and draw(st.booleans()):
        # A database pair: the second host stands by for the first, the third carries its service address.
        primary, standby = hosts[0], hosts[1]
        standby.update(standby_of=primary["name"], services=list(primary["services"]), legacy=False)
        primary.update(service_address={"host": hosts[2]["name"], "port": draw(st.integers(1, 65535))}, legacy=False)
        hosts[2]["legacy"] = False
    endpoints = st.sampled_from(zone_names + host_names)
    port = st.integers(1, 65535) | st.builds(lambda a, b: f"{min(a, b)}-{max(a, b)}", st.integers(1, 65535),
                                             st.integers(1, 65535))
    flows = []
    for _ in range(draw(st.integers(0, 5))):
        proto = draw(st.sampled_from(["tcp", "udp", "icmp"]))
        ports = {} if proto == "icmp" else {"ports": draw(st.lists(port, min_size=1, max_size=3))}
        flows.append({"from": draw(endpoints), "to": draw(endpoints), "proto": proto, **ports, "purpose": draw(LINE)})
    if any("standby_of" in host for host in hosts):  # the flows a pair needs, between any two of its quorum
        quorum = [host["name"] for host in hosts[:3]]
        flows += [
            {"from": a, "to": b, "proto": "tcp", "ports": [5432, 8008, "2379-2380"], "purpose": "pair"}
            for a in quorum for b in quorum if a != b
        ]
    interfaces = []
    identities = {
        "dicom": st.fixed_dictionaries({"calling_ae": st.just("CT01"), "called_ae": st.just("PACS01")}),
        "hl7v2-mllp": st.fixed_dictionaries({
            key: st.sampled_from(["HIS", "LIS", "LAB 1"])
            for key in ("sending_application", "sending_facility", "receiving_application", "receiving_facility")
        }),
        "fhir": st.fixed_dictionaries({"base_path": st.just("/fhir"), "fhir_version": st.just("4.0.1")}),
        "https": st.fixed_dictionaries({}, optional={"path": st.just("/api")}),
        "sftp": st.builds(dict),  # a new dict each time: a shared one would be written as a YAML alias
    }
    for index in range(draw(st.integers(0, 3)) if len(host_names) >= 2 else 0):
        source, destination = draw(st.lists(st.sampled_from(host_names), min_size=2, max_size=2, unique=True))
        protocol = draw(st.sampled_from(sorted(identities)))
        interfaces.append({
            "name": f"if{index}",
            "from": source,
            "to": destination,
            "protocol": protocol,
            "port": draw(st.integers(1, 65535)),
            "tls": draw(st.booleans()),
            **_optional(draw, "phi", st.booleans()),
            **_optional(draw, "identity", identities[protocol]),
            "owner": draw(LINE.filter(lambda text: len(text) <= 80)),
            **_optional(draw, "vendor", st.fixed_dictionaries({"name": st.just("Vendor Co.")},
                                                             optional={"contact": st.just("support@vendor.test")})),
            "sla": draw(st.sampled_from(sla_names)),
            **_optional(draw, "change_window", st.just("Sun 02:00-04:00")),
            **_optional(draw, "latency_budget_ms", st.integers(1, 600000)),
            **_optional(draw, "dependents", st.lists(st.sampled_from(["wards", "radiology"]), unique=True)),
            **_optional(draw, "description", FREE_TEXT),
        })
        if protocol in ("dicom", "hl7v2-mllp", "fhir"):
            interfaces[-1]["identity"] = draw(identities[protocol])
    return {
        "site": {
            "name": "site" + draw(SUFFIXES),
            "title": draw(LINE),
            **_optional(draw, "domain", st.just("hospital.example")),
            **_optional(draw, "timezone", st.sampled_from(["UTC", "Europe/Berlin"])),
            **_optional(draw, "time_servers", st.lists(st.sampled_from(["ntp1", "10.0.0.5"]), unique=True)),
        },
        "sla_classes": {
            name: {
                "rpo_minutes": draw(st.integers(0, 10_000)),
                "rto_minutes": draw(st.integers(1, 10_000)),
                **_optional(draw, "support_hours", st.sampled_from(["24x7", "business-hours"])),
                **_optional(draw, "description", FREE_TEXT),
            }
            for name in sla_names
        },
        "zones": zones,
        "hosts": hosts,
        "flows": flows,
        **({"interfaces": interfaces} if interfaces else {}),
    }


@settings(max_examples=150, deadline=None)
@given(hospital_documents())
def test_to_dict_and_from_dict_lose_nothing(document: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        topology = load_topology(write_yaml(Path(directory) / "hospital.yml", document))  # the generator is valid
    data = topology.to_dict()
    assert json.loads(json.dumps(data)) == data  # plain JSON, as Ansible variables carry it
    assert Topology.from_dict(data) == topology
    assert Topology.from_dict(json.loads(json.dumps(data))).to_dict() == data
    # Every value the document gave is in the plain data, under the document's own keys.
    defaults = {"data_paths": [], "legacy": False, "description": None, "standby_of": None, "service_address": None}
    assert data["hosts"] == [{**defaults, **h} for h in document["hosts"]]


@pytest.mark.parametrize("path", [LAB_TOPOLOGY, TERTIARY_TOPOLOGY])
def test_a_shipped_topology_to_dict_is_stable(path: Path) -> None:
    topology = load_topology(path)
    data = topology.to_dict()
    assert Topology.from_dict(data) == topology
    assert Topology.from_dict(data).to_dict() == data
    assert data["source"] == str(path)
    assert [h.description for h in topology.hosts] == [h["description"] for h in data["hosts"]]
