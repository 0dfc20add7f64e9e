"""Boundaries a reviewer's seeded bugs crossed unnoticed: each test here fails under one of them.

`scripts/seeded_bugs.py` (make seeded-bugs) applies each bug to a copy of the checkout and runs this file.
"""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medinfra.audit.results import AuditRun, HostResult, exit_code, judge
from medinfra.cli import main
from medinfra.compliance.checks import run_check
from medinfra.compliance.evaluate import evaluate
from medinfra.compliance.model import Catalog, HostEvidence, Status, Waiver
from medinfra.exits import EXIT_FAILURES, EXIT_OK, EXIT_UNREACHABLE
from medinfra.report.csv_export import field
from medinfra.segmentation.rules import Allow, host_ruleset, rule_line
from medinfra.signing import MANIFEST, SIGNATURE, generate_keypair, verify_directory
from medinfra.topology.load import load_topology
from medinfra.topology.model import PortRange
from tests.conftest import LAB_TOPOLOGY, write_yaml
from tests.unit.test_audit import control, evidence
from tests.unit.test_signing import sign, write_sample
from tests.unit.test_topology_validation import assert_located, host_index, problems_of

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ROOT_LOGIN_OFF = control("root_login_off", {"fact": "sshd.permitrootlogin", "equals": "no"})


def waiver(expires: date, hosts: tuple[str, ...] = ("*",)) -> Waiver:
    return Waiver(
        "root_login_off", hosts, (), "vendor needs root until the upgrade", "CISO", "high",
        "accepted by the security committee", "vendor VPN only", expires,
    )


# --- 1. an applicability condition that cannot be judged decides nothing: the finding is an error, neither
# not_applicable nor the verdict of the control's own check


def judged_alone(applies_when: dict[str, Any], inventory: dict[str, Any]) -> tuple[Status, str]:
    # The check itself passes: a finding other than ERROR would mean the condition's error was taken for a yes.
    catalog = Catalog((control("root_login_off", ROOT_LOGIN_OFF.check, applies_when),), {})
    (finding,) = evaluate([HostEvidence("his-app", evidence(), inventory)], catalog, [], NOW)
    return finding.status, finding.reason


def test_an_applicability_condition_that_errors_makes_the_control_an_error() -> None:
    condition = {"fact": "inventory.services", "not_contains": "zone_firewall"}
    status, reason = judged_alone(condition, {"services": "zone_firewall"})  # a text where a list belongs
    assert status is Status.ERROR
    assert reason == "inventory.services: 'zone_firewall' where a list was expected"
    assert judged_alone(condition, {"services": [["nested"]]})[0] is Status.ERROR
    assert judged_alone({"fact": "inventory.zone", "at_least": 1}, {"zone": ["his"]})[0] is Status.ERROR


def test_an_applicability_condition_decides_exactly_when_it_can() -> None:
    condition = {"fact": "inventory.services", "not_contains": "zone_firewall"}
    assert judged_alone(condition, {"services": []})[0] is Status.PASS
    status, reason = judged_alone(condition, {"services": ["zone_firewall"]})
    assert (status, reason) == (Status.NOT_APPLICABLE, "does not apply: inventory.services: 'zone_firewall' found")
    # An absent fact fails the condition (the catalog refuses facts the evidence schema lacks, so this is a host
    # whose inventory omits it): not applicable, said as such.
    status, reason = judged_alone(condition, {})
    assert (status, reason) == (Status.NOT_APPLICABLE, "does not apply: inventory.services: absent from the evidence")


# --- 2. a zone's network and broadcast addresses are no host's


@pytest.mark.parametrize("address", ["10.231.20.0", "10.231.20.255"])
def test_a_host_on_its_zones_network_or_broadcast_address_is_refused(
    tmp_path: Path, topology_data: dict[str, Any], address: str
) -> None:
    index = host_index(topology_data, "his-db")
    topology_data["hosts"][index]["address"] = address
    problems = problems_of(tmp_path, topology_data)
    assert_located(tmp_path, problems, f"hosts[{index}].address", f"{address} is outside zone 'his' (10.231.20.0/24)")


@pytest.mark.parametrize("address", ["10.231.20.1", "10.231.20.253"])
def test_the_first_and_last_usable_addresses_are_a_hosts(
    tmp_path: Path, topology_data: dict[str, Any], address: str
) -> None:
    topology_data["hosts"][host_index(topology_data, "his-db")]["address"] = address
    topology = load_topology(write_yaml(tmp_path / "hospital.yml", topology_data))
    assert str(topology.host("his-db").address) == address


@pytest.mark.parametrize("gateway", ["10.231.20.0", "10.231.20.255"])
def test_a_gateway_on_the_network_or_broadcast_address_is_refused(
    tmp_path: Path, topology_data: dict[str, Any], gateway: str
) -> None:
    zone = next(i for i, z in enumerate(topology_data["zones"]) if z["name"] == "his")
    topology_data["zones"][zone]["gateway"] = gateway
    problems = problems_of(tmp_path, topology_data)
    assert_located(tmp_path, problems, f"zones[{zone}].gateway", f"{gateway} is not a usable address of 10.231.20.0/24")


# --- 3. a manifest line that is not an entry fails verification, even under a valid signature


def sign_manifest_as_is(directory: Path, private_key: Path, manifest: bytes) -> None:
    """What a signer with the key (or a buggy one) could publish: a signature over exactly these bytes."""
    key = serialization.load_pem_private_key(private_key.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    (directory / MANIFEST).write_bytes(manifest)
    (directory / SIGNATURE).write_bytes(base64.b64encode(key.sign(manifest)) + b"\n")


@pytest.mark.parametrize(
    "bad_line",
    [
        b"not a manifest line",
        b"0" * 63 + b"  findings.json",  # one hex digit short
        b"0" * 64 + b" findings.json",  # one space, not two
        b"0" * 64 + b"  ../outside.json",
        b"\\" + b"0" * 64 + b"  a\\x",  # an escape sha256sum does not define
    ],
    ids=["not-an-entry", "short-digest", "one-space", "outside", "bad-escape"],
)
def test_a_validly_signed_manifest_with_a_malformed_line_fails_naming_the_line(
    tmp_path: Path, bad_line: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = generate_keypair(tmp_path / "keys" / "audit")
    directory = write_sample(tmp_path / "reports")
    sign(directory, private)
    lines = (directory / MANIFEST).read_bytes().splitlines(keepends=True)
    # In the middle, in place of the entry it garbles: ignoring it would leave every listed file matching.
    sign_manifest_as_is(directory, private, b"".join([*lines[:2], bad_line + b"\n", *lines[3:]]))
    result = verify_directory(directory, public)
    assert result.malformed == (3,)
    assert not result.signature_valid and not result.ok
    assert main(["verify", str(directory), "--pubkey", str(public)]) == 1
    assert f"malformed: {MANIFEST} line 3" in capsys.readouterr().out.splitlines()


def test_a_repeated_entry_and_a_missing_final_newline_are_malformed(tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path / "keys" / "audit")
    directory = write_sample(tmp_path / "reports")
    sign(directory, private)
    manifest = (directory / MANIFEST).read_bytes()
    lines = manifest.splitlines(keepends=True)
    sign_manifest_as_is(directory, private, manifest + lines[0])
    assert verify_directory(directory, public).malformed == (len(lines) + 1,)
    sign_manifest_as_is(directory, private, manifest.rstrip(b"\n"))
    result = verify_directory(directory, public)
    assert result.malformed == (len(lines),) and not result.ok
    sign_manifest_as_is(directory, private, manifest)  # the same bytes as the signer's: nothing malformed
    assert verify_directory(directory, public).ok


# --- 4. every start a spreadsheet runs as a formula is neutralised, and only those


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_each_formula_start_gets_an_apostrophe(start: str) -> None:
    written = field(start + "HYPERLINK(1)")
    unquoted = written[1:-1] if written.startswith('"') else written  # tab stays bare; CR makes the field quoted
    assert unquoted == "'" + start + "HYPERLINK(1)"


@pytest.mark.parametrize("value", ["1+1", "a=b", "x@y", "ok-ish", "", "'=already"])
def test_a_value_not_starting_a_formula_is_kept(value: str) -> None:
    assert field(value) == value


# --- 5. the audit's exit code, each row of the README's table that a finished run decides


def run_of(results: list[HostResult], waivers: tuple[Waiver, ...] = ()) -> AuditRun:
    catalog = Catalog((ROOT_LOGIN_OFF,), {})
    views = {r.host: {"services": []} for r in results}
    return AuditRun("pyinfra", "inv", NOW, results, judge(results, views, catalog, waivers, NOW), catalog, waivers)


def audited(host: str, root_login: Any) -> HostResult:
    return HostResult(host, "audited", "", evidence(root_login=root_login), 0.1)


PASSING, FAILING, ERRING = audited("a", "no"), audited("b", "yes"), audited("c", ["no", "yes"])
UNREACHABLE = HostResult("d", "unreachable", "SSH: connection refused", None, 0.1)


def test_exit_0_when_every_applicable_control_passes_or_is_waived() -> None:
    assert exit_code(run_of([PASSING])) == EXIT_OK
    waived = run_of([PASSING, FAILING], (waiver(NOW.date(), ("b",)),))
    assert [f.status for f in waived.findings] == [Status.PASS, Status.WAIVED]
    assert exit_code(waived) == EXIT_OK


def test_exit_1_on_failures_or_errors_alone() -> None:
    only_errors = run_of([PASSING, ERRING])
    assert [f.status for f in only_errors.findings] == [Status.PASS, Status.ERROR]
    assert exit_code(only_errors) == EXIT_FAILURES
    assert exit_code(run_of([PASSING, FAILING])) == EXIT_FAILURES
    expired = run_of([FAILING], (waiver(NOW.date() - timedelta(days=1), ("b",)),))
    assert exit_code(expired) == EXIT_FAILURES


def test_exit_3_when_a_host_was_not_audited_or_the_run_not_recorded() -> None:
    assert exit_code(run_of([PASSING, UNREACHABLE])) == EXIT_UNREACHABLE
    assert exit_code(run_of([FAILING, UNREACHABLE])) == EXIT_UNREACHABLE  # incomplete outranks failing
    assert exit_code(run_of([PASSING]), recorded=False) == EXIT_UNREACHABLE


# --- 6. a waiver holds through its expiry date (the audit's date, in UTC) and not a day longer


def test_a_waiver_expires_the_day_after_its_date() -> None:
    accepted = waiver(date(2026, 12, 7))
    assert [accepted.expired(date(2026, 12, day)) for day in (6, 7, 8)] == [False, False, True]


@pytest.mark.parametrize(
    ("now", "status"),
    [
        (datetime(2026, 12, 6, 12, 0, tzinfo=UTC), Status.WAIVED),
        (datetime(2026, 12, 7, 0, 0, tzinfo=UTC), Status.WAIVED),
        (datetime(2026, 12, 7, 23, 59, 59, tzinfo=UTC), Status.WAIVED),  # the last second of the expiry day
        (datetime(2026, 12, 8, 0, 0, tzinfo=UTC), Status.FAIL),
    ],
    ids=["day-before", "expiry-day-start", "expiry-day-end", "day-after"],
)
def test_a_waiver_is_active_through_its_expiry_day(now: datetime, status: Status) -> None:
    accepted = waiver(date(2026, 12, 7))
    catalog = Catalog((ROOT_LOGIN_OFF,), {})
    (finding,) = evaluate([HostEvidence("lis-legacy", evidence(root_login="yes"), {})], catalog, [accepted], now)
    assert finding.status is status
    expected = (accepted, None) if status is Status.WAIVED else (None, accepted)
    assert (finding.waiver, finding.expired_waiver) == expected


# --- 7. every port of a flow reaches the nftables text


def test_every_port_and_range_of_a_rule_is_rendered() -> None:
    topology = load_topology(LAB_TOPOLOGY)
    source, destination = IPv4Network("10.231.10.11/32"), IPv4Network("10.231.30.10/32")
    ports = (PortRange(104, 104), PortRange(2761, 2762), PortRange(11112, 11112))
    line = rule_line(topology, Allow((source,), (destination,), "tcp", ports, "DICOM"), match_destination=True)
    assert line == (
        "    ip saddr 10.231.10.11 ip daddr 10.231.30.10"
        ' tcp dport { 104, 2761-2762, 11112 } counter accept comment "DICOM"'
    )
    one = rule_line(topology, Allow((source,), (destination,), "udp", ports[1:2], "x"), match_destination=False)
    assert one == '    ip saddr 10.231.10.11 udp dport 2761-2762 counter accept comment "x"'


def test_a_hosts_ruleset_opens_every_port_of_its_flows() -> None:
    topology = load_topology(LAB_TOPOLOGY)
    text = host_ruleset(topology, topology.host("his-db"))
    replication = f"ip saddr {topology.host('his-db-2').address} tcp dport {{ 5432, 8008, 2379, 2380 }} counter accept"
    assert replication in text
    fw = host_ruleset(topology, topology.host("fw"))
    assert "ip daddr @zone_pacs tcp dport { 9100, 104, 443, 11112 } counter accept" in fw


# --- 8. every comparison of the check language at its exact boundary: equal, one below, one above


@pytest.mark.parametrize(
    ("operator", "limit", "value", "status"),
    [
        ("at_most", 3, 3, "pass"),
        ("at_most", 3, 2, "pass"),
        ("at_most", 3, 4, "fail"),
        ("at_most", 3, "3", "pass"),  # sshd -T's text for a number
        ("at_most", 0.5, 0.5, "pass"),
        ("at_most", 0.5, 0.51, "fail"),
        ("at_most", 0, -1, "pass"),
        ("at_least", 3, 3, "pass"),
        ("at_least", 3, 4, "pass"),
        ("at_least", 3, 2, "fail"),
        ("at_least", 3, "3", "pass"),
        ("at_least", 0.5, 0.49, "fail"),
        ("version_at_least", "1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u3", "pass"),
        ("version_at_least", "1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u2", "fail"),
        ("version_at_least", "1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u4", "pass"),
        ("version_at_least", "1.0", "1.0~rc1", "fail"),  # a tilde sorts before the release
    ],
)
def test_value_comparisons_at_their_boundary(operator: str, limit: Any, value: Any, status: str) -> None:
    assert run_check({"fact": "x", operator: limit}, {"x": value}, NOW).status == status


SECOND = timedelta(seconds=1)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("operator", "limit", "moment", "status"),
    [
        ("days_since_at_most", 7, NOW - timedelta(days=7), "pass"),
        ("days_since_at_most", 7, NOW - timedelta(days=7) + SECOND, "pass"),
        ("days_since_at_most", 7, NOW - timedelta(days=7) - SECOND, "fail"),
        ("days_since_at_least", 7, NOW - timedelta(days=7), "pass"),
        ("days_since_at_least", 7, NOW - timedelta(days=7) - SECOND, "pass"),
        ("days_since_at_least", 7, NOW - timedelta(days=7) + SECOND, "fail"),
        ("days_until_at_least", 10, NOW + timedelta(days=10), "pass"),
        ("days_until_at_least", 10, NOW + timedelta(days=10) + SECOND, "pass"),
        ("days_until_at_least", 10, NOW + timedelta(days=10) - SECOND, "fail"),
        ("days_since_at_most", 0, NOW, "pass"),
        ("days_since_at_most", 0, NOW - SECOND, "fail"),
    ],
)
def test_time_comparisons_at_their_boundary(operator: str, limit: float, moment: datetime, status: str) -> None:
    assert run_check({"fact": "t", operator: limit}, {"t": iso(moment)}, NOW).status == status


@pytest.mark.parametrize(("items", "status"), [(2, "pass"), (3, "pass"), (1, "fail"), (0, "fail")])
def test_min_items_at_its_boundary(items: int, status: str) -> None:
    root = {"users": [{"uid": 1000 + i} for i in range(items)]}
    check = {"fact": "users", "every": {"fact": "uid", "at_least": 1000}, "min_items": 2}
    assert run_check(check, root, NOW).status == status


def test_min_items_counts_the_items_the_where_filter_keeps() -> None:
    root = {"users": [{"uid": 0}, {"uid": 1000}, {"uid": 1001}]}
    check = {"fact": "users", "where": {"fact": "uid", "at_least": 1000}, "every": {"fact": "uid", "at_most": 1001}}
    assert run_check({**check, "min_items": 2}, root, NOW).status == "pass"
    assert run_check({**check, "min_items": 3}, root, NOW).status == "fail"
