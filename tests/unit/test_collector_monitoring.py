"""The collector's pki and monitoring sections on a fake host: real certificates, web configs, a fake /proc."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from medinfra.collector import collector_module
from medinfra.compliance.catalog import load_catalog
from medinfra.compliance.evaluate import evaluate
from medinfra.compliance.model import HostEvidence, Status

collector = collector_module()

NOW = dt.datetime.now(dt.UTC)
BCRYPT = "$2b$12$KIXQJQj6ZQ3Zw8Qe3Yk2UOvJmQyqYz1aVbQmUo1nW7lS3bq5yJ3e2"
SHA512 = "$6$rounds=5000$salt$7x8yq0hOa1Jm9xkM2Xy7Q0"


# ---------------------------------------------------------------- certificates


@dataclass
class Ca:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


def make_ca(common_name: str) -> Ca:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=30))
        .not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Ca(name, key, certificate)


def issue(ca: Ca, common_name: str, days: int, sans: list[x509.GeneralName] | None = None) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca.key, hashes.SHA256())


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def write_pair(directory: Path, name: str, certificate: x509.Certificate, key_mode: int = 0o640) -> None:
    (directory / f"{name}.crt").write_bytes(pem(certificate))
    key = directory / f"{name}.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\nnot a real key\n-----END PRIVATE KEY-----\n")
    key.chmod(key_mode)


@pytest.fixture(scope="module")
def site_ca() -> Ca:
    return make_ca("medinfra lab CA")


@pytest.fixture
def pki_dir(tmp_path: Path, site_ca: Ca) -> Path:
    """A host as the pki role leaves it, plus certificates that must not pass."""
    directory = tmp_path / "pki"
    directory.mkdir()
    (directory / "ca.crt").write_bytes(pem(site_ca.certificate))
    sans: list[x509.GeneralName] = [
        x509.DNSName("his-db"),
        x509.DNSName("his-db.lab.medinfra.test"),
        x509.IPAddress(ipaddress.ip_address("10.231.20.11")),
    ]
    write_pair(directory, "node-exporter", issue(site_ca, "his-db.lab.medinfra.test", 365, sans))
    other = make_ca("Some other CA")
    write_pair(directory, "foreign", issue(other, "his-db", 365), key_mode=0o600)
    # Same name as the site CA, different key: only the key identifier tells them apart.
    impostor = make_ca("medinfra lab CA")
    write_pair(directory, "impostor", issue(impostor, "his-db", 365))
    write_pair(directory, "expiring", issue(site_ca, "his-db", 10), key_mode=0o644)
    return directory


def test_pki_section_reads_the_ca_and_every_issued_certificate(pki_dir: Path, site_ca: Ca) -> None:
    facts = collector.collect_pki(str(pki_dir))
    assert facts["directory_present"] is True
    ca = facts["ca"]
    assert ca["present"] is True
    assert ca["subject"] == "CN=medinfra lab CA"
    assert ca["is_ca"] is True
    assert ca["self_signed"] is True
    assert sorted(facts["certificates"]) == ["expiring", "foreign", "impostor", "node-exporter"]

    good = facts["certificates"]["node-exporter"]
    assert good["issued_by_site_ca"] is True
    assert good["subject"] == "CN=his-db.lab.medinfra.test"
    assert good["issuer"] == "CN=medinfra lab CA"
    assert good["sans"] == ["DNS:his-db", "DNS:his-db.lab.medinfra.test", "IP:10.231.20.11"]
    assert good["key_type"] == "ec"
    assert good["key_bits"] == 256
    expiry = dt.datetime.fromisoformat(good["not_after"].replace("Z", "+00:00"))
    assert 364 <= (expiry - NOW).days <= 365
    assert good["key"]["exists"] is True
    assert good["key"]["mode"] == "0640"

    assert facts["certificates"]["foreign"]["issued_by_site_ca"] is False
    assert facts["certificates"]["foreign"]["issuer"] == "CN=Some other CA"
    assert facts["certificates"]["foreign"]["key"]["mode"] == "0600"
    assert facts["certificates"]["impostor"]["issued_by_site_ca"] is False  # same issuer name, other key
    expiring = facts["certificates"]["expiring"]
    assert expiring["issued_by_site_ca"] is True
    left = dt.datetime.fromisoformat(expiring["not_after"].replace("Z", "+00:00")) - NOW
    assert 9 <= left.days <= 10
    assert "BEGIN PRIVATE KEY" not in json.dumps(facts)


def test_extensions_agree_with_the_cryptography_package(site_ca: Ca) -> None:
    sans: list[x509.GeneralName] = [
        x509.DNSName("pacs-01"),
        x509.IPAddress(ipaddress.ip_address("10.231.30.10")),
        x509.IPAddress(ipaddress.ip_address("fd00::10")),
    ]
    certificate = issue(site_ca, "pacs-01", 30, sans)
    der = certificate.public_bytes(serialization.Encoding.DER)
    ours = collector.certificate_extensions(der)
    assert ours["sans"] == ["DNS:pacs-01", "IP:10.231.30.10", "IP:fd00::10"]
    aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki is not None
    assert ours["authority_key_id"] == aki.hex()
    assert ours["is_ca"] is False
    ca_der = site_ca.certificate.public_bytes(serialization.Encoding.DER)
    ca_facts = collector.certificate_extensions(ca_der)
    ski = site_ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert ca_facts["subject_key_id"] == ski.hex()
    assert ca_facts["is_ca"] is True
    assert ca_facts["sans"] == []


def test_pki_without_ca_or_directory_and_with_a_broken_certificate(tmp_path: Path, site_ca: Ca) -> None:
    assert collector.collect_pki(str(tmp_path / "nowhere")) == {"directory_present": False}
    directory = tmp_path / "pki"
    directory.mkdir()
    write_pair(directory, "node-exporter", issue(site_ca, "his-db", 365))
    (directory / "broken.crt").write_text("-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n")
    (directory / "empty.crt").write_text("nothing here\n")
    facts = collector.collect_pki(str(directory))
    assert facts["ca"] == {"present": False}
    assert facts["certificates"]["node-exporter"]["issued_by_site_ca"] is False  # no CA to be issued by
    assert set(facts["certificates"]["broken"]) == {"unavailable"}
    assert "no PEM certificate" in facts["certificates"]["empty"]["unavailable"]


def test_missing_key_file_is_reported(tmp_path: Path, site_ca: Ca) -> None:
    directory = tmp_path / "pki"
    directory.mkdir()
    (directory / "ca.crt").write_bytes(pem(site_ca.certificate))
    (directory / "prometheus.crt").write_bytes(pem(issue(site_ca, "monitor-01", 365)))
    facts = collector.collect_pki(str(directory))
    assert facts["certificates"]["prometheus"]["key"]["exists"] is False


# ---------------------------------------------------------------- web configs

CANONICAL = f"""---
tls_server_config:
  cert_file: /etc/medinfra/pki/node-exporter.crt
  key_file: /etc/medinfra/pki/node-exporter.key
  min_version: TLS12
basic_auth_users:
  prometheus: {BCRYPT}
"""
QUOTED = f"""# managed by Ansible
%YAML 1.2
---
"tls_server_config":   # TLS only
    cert_file: "/etc/medinfra/pki/node-exporter.crt"
    'key_file': '/etc/medinfra/pki/node-exporter.key'  # 0640 root:prometheus
    min_version: "TLS13"
    cipher_suites:
      - TLS_AES_128_GCM_SHA256
    client_auth_type: NoClientCert
http_server_config:
    http2: true
    headers:
      Strict-Transport-Security: max-age=31536000
basic_auth_users:
    # the scraper
    "prometheus": '{BCRYPT}'
    grafana: "{BCRYPT.replace("$2b$", "$2y$")}"
...
"""
FLOW = f"""tls_server_config: {{cert_file: /etc/medinfra/pki/prometheus.crt,
  key_file: '/etc/medinfra/pki/prometheus.key', min_version: TLS12}}
basic_auth_users: {{admin: "{BCRYPT}"}}
"""
JSON_SPELLING = json.dumps(
    {
        "tls_server_config": {
            "cert_file": "/etc/medinfra/pki/prometheus.crt",
            "key_file": "/etc/medinfra/pki/prometheus.key",
            "min_version": "TLS13",
        },
        "basic_auth_users": {"admin": BCRYPT, "ops": BCRYPT.replace("$2b$", "$2a$")},
    },
    indent=2,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (CANONICAL, {"tls": True, "min_version": "TLS12", "min_version_set": True, "basic_auth_users": 1,
                     "basic_auth_bcrypt_only": True, "cert_file": "/etc/medinfra/pki/node-exporter.crt"}),
        (QUOTED, {"tls": True, "min_version": "TLS13", "basic_auth_users": 2, "basic_auth_bcrypt_only": True,
                  "key_file": "/etc/medinfra/pki/node-exporter.key"}),
        (FLOW, {"tls": True, "min_version": "TLS12", "basic_auth_users": 1, "basic_auth_bcrypt_only": True,
                "key_file": "/etc/medinfra/pki/prometheus.key"}),
        (JSON_SPELLING, {"tls": True, "min_version": "TLS13", "basic_auth_users": 2, "basic_auth_bcrypt_only": True}),
        # TLS without min_version: the exporter toolkit's default, TLS 1.2, marked as not written.
        ("tls_server_config:\n  cert_file: /a.crt\n  key_file: /a.key\n",
         {"tls": True, "min_version": "TLS12", "min_version_set": False, "basic_auth_users": 0}),
        # Basic auth without TLS: passwords in clear.
        (f"basic_auth_users:\n  prometheus: {BCRYPT}\n", {"tls": False, "min_version": None, "basic_auth_users": 1}),
        # A certificate without its key is not TLS.
        ("tls_server_config:\n  cert_file: /a.crt\n", {"tls": False}),
        # A SHA-512 crypt hash is not bcrypt (and the exporter would refuse it).
        (f"basic_auth_users:\n  a: {BCRYPT}\n  b: '{SHA512}'\n",
         {"basic_auth_users": 2, "basic_auth_bcrypt_only": False}),
        ("tls_server_config:\nbasic_auth_users: {}\n", {"tls": False, "basic_auth_users": 0}),
        ("# nothing configured yet\n", {"tls": False, "basic_auth_users": 0}),
    ],
    ids=["canonical", "quoted-comments-extras", "flow", "json", "default-min-version", "no-tls", "cert-only",
         "not-bcrypt", "empty-sections", "comments-only"],
)
def test_web_config_spellings(tmp_path: Path, text: str, expected: dict[str, Any]) -> None:
    path = tmp_path / "web.yml"
    path.write_text(text)
    path.chmod(0o640)
    facts = collector.web_config_facts(str(path))
    assert facts["configured"] is True
    assert facts["present"] is True
    assert facts["file"]["mode"] == "0640"
    assert {key: facts[key] for key in expected} == expected
    dumped = json.dumps(facts)
    assert "$2" not in dumped  # no hash, nor a piece of one, leaves the host
    assert "$6$" not in dumped


@pytest.mark.parametrize("text", [CANONICAL, QUOTED, FLOW, JSON_SPELLING])
def test_flat_yaml_reader_agrees_with_pyyaml(text: str) -> None:
    ours = collector.read_flat_yaml(text)
    theirs = yaml.safe_load(text.replace("%YAML 1.2\n", "%YAML 1.1\n"))
    for section in ("tls_server_config", "basic_auth_users"):
        for key, value in theirs[section].items():
            if isinstance(value, str):
                assert ours[section][key] == value, (section, key)


def test_web_config_absent_or_not_configured(tmp_path: Path) -> None:
    assert collector.web_config_facts(None) == {"configured": False}
    assert collector.web_config_facts(str(tmp_path / "missing.yml")) == {"configured": True, "present": False}


# ---------------------------------------------------------------- processes and flags


@pytest.mark.parametrize(
    ("address", "everywhere"),
    [
        ("10.231.20.11:9100", False),
        ("[fd00::11]:9100", False),
        ("localhost:9100", False),
        (":9100", True),
        ("0.0.0.0:9100", True),
        ("[::]:9100", True),
        ("[::0]:9100", True),
        ("*:9100", True),
        ("10.231.20.11", False),  # no port: the program refuses to start, but it names one address
    ],
)
def test_wildcard_listen_addresses(address: str, everywhere: bool) -> None:
    assert collector.listens_everywhere(address) is everywhere


def test_command_flags_both_spellings_switches_and_repeats() -> None:
    flags = collector.command_flags(
        [
            "--web.listen-address=10.0.0.1:9100",
            "--web.listen-address",
            "[fd00::1]:9100",
            "--web.disable-exporter-metrics",
            "--config.file",
            "/etc/prometheus/prometheus.yml",
            "-v",
            "stray",
        ]
    )
    assert flags["web.listen-address"] == ["10.0.0.1:9100", "[fd00::1]:9100"]
    assert flags["web.disable-exporter-metrics"] == [""]
    assert flags["config.file"] == ["/etc/prometheus/prometheus.yml"]
    assert flags["v"] == ["stray"]


@dataclass
class FakeHost:
    root: Path

    @property
    def proc(self) -> Path:
        return self.root / "proc"

    @property
    def file_sd(self) -> Path:
        return self.root / "file_sd"

    def process(self, pid: int, comm: str, argv: list[str], exe: str | None = None, cwd: str | None = None) -> None:
        directory = self.proc / str(pid)
        directory.mkdir(parents=True)
        (directory / "comm").write_text(comm + "\n")
        (directory / "cmdline").write_bytes(b"".join(arg.encode() + b"\0" for arg in argv))
        if exe is not None:
            os.symlink(exe, directory / "exe")
        if cwd is not None:
            os.symlink(cwd, directory / "cwd")

    def web_config(self, name: str, text: str = CANONICAL) -> str:
        path = self.root / "etc" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o640)
        return str(path)

    def targets(self, name: str, groups: Any) -> None:
        self.file_sd.mkdir(exist_ok=True)
        (self.file_sd / name).write_text(groups if isinstance(groups, str) else json.dumps(groups))

    def collect(self) -> dict[str, Any]:
        facts: dict[str, Any] = collector.collect_monitoring(str(self.proc), str(self.file_sd))
        return facts


NODE_GROUPS = [
    {"targets": ["10.231.20.11:9100"], "labels": {"instance": "his-db", "zone": "his", "sla": "24x7-critical"}},
    {"targets": ["10.231.20.10:9100", "10.231.30.10:9100"], "labels": {"zone": "his"}},
]
BLACKBOX_GROUPS = [
    {"targets": ["https://10.231.20.10:443/"], "labels": {"host": "his-app", "service": "his_app", "module": "https"}},
    {"targets": ["10.231.20.11"], "labels": {"host": "his-db", "service": "host", "module": "icmp"}},
]


@pytest.fixture
def monitor(tmp_path: Path) -> FakeHost:
    """A monitoring server: all four programs, each found a different way, plus processes to ignore."""
    host = FakeHost(tmp_path)
    host.process(1, "systemd", ["/sbin/init"], exe="/usr/lib/systemd/systemd")
    host.process(2, "kthreadd", [])  # kernel thread: no command line, no exe
    host.process(
        101,
        "prometheus-node",
        [
            "/usr/bin/prometheus-node-exporter",
            "--web.listen-address=10.231.10.11:9100",
            f"--web.config.file={host.web_config('node-exporter-web.yml')}",
            "--collector.textfile.directory=/var/lib/prometheus/node-exporter",
            "--collector.systemd",
        ],
    )
    host.web_config("web.yml", FLOW)
    host.process(
        102,
        "prometheus",
        [
            "/usr/bin/prometheus",
            "--config.file",
            "/etc/prometheus/prometheus.yml",
            "--web.config.file=web.yml",  # relative: to the process's working directory
            "--web.listen-address=10.231.10.11:9090",
        ],
        cwd=str(tmp_path / "etc"),
    )
    host.process(103, "prometheus-aler", ["/usr/bin/prometheus-alertmanager", "--web.listen-address=:9093"])
    # comm renamed (or truncated differently): found through /proc/<pid>/exe.
    host.process(
        104,
        "blackbox",
        ["/usr/bin/prometheus-blackbox-exporter", f"--web.config.file={host.web_config('blackbox-web.yml')}"],
        exe="/usr/bin/prometheus-blackbox-exporter (deleted)",
    )
    host.process(105, "prometheus-node", [])  # a zombie: not a running exporter
    host.process(200, "bash", ["-bash"], exe="/usr/bin/bash")
    host.targets("node.json", NODE_GROUPS)
    host.targets("blackbox.json", BLACKBOX_GROUPS)
    return host


def test_monitoring_section_on_a_monitoring_server(monitor: FakeHost) -> None:
    facts = monitor.collect()
    node = facts["node_exporter"]
    assert node["running"] is True
    assert node["processes"] == 1  # the zombie does not count
    assert node["listen_addresses"] == ["10.231.10.11:9100"]
    assert node["wildcard_addresses"] == []
    assert node["web_config_file"] == str(monitor.root / "etc" / "node-exporter-web.yml")
    assert node["web_config"]["tls"] is True
    assert node["web_config"]["basic_auth_bcrypt_only"] is True
    assert node["textfile_directory"] == "/var/lib/prometheus/node-exporter"

    prometheus = facts["prometheus"]
    assert prometheus["config_file"] == "/etc/prometheus/prometheus.yml"
    assert prometheus["web_config_file"] == str(monitor.root / "etc" / "web.yml")
    assert prometheus["web_config"]["cert_file"] == "/etc/medinfra/pki/prometheus.crt"
    assert prometheus["node_targets"] == [
        {"instance": "his-db", "target": "10.231.20.11:9100"},
        {"instance": "10.231.20.10:9100", "target": "10.231.20.10:9100"},  # Prometheus' default instance label
        {"instance": "10.231.30.10:9100", "target": "10.231.30.10:9100"},
    ]
    assert prometheus["blackbox_targets"] == 2

    alertmanager = facts["alertmanager"]
    assert alertmanager["running"] is True
    assert alertmanager["wildcard_addresses"] == [":9093"]
    assert alertmanager["web_config"] == {"configured": False}
    assert alertmanager["cluster_listen_address"] == "0.0.0.0:9094"  # its default: gossip on every interface

    blackbox = facts["blackbox_exporter"]
    assert blackbox["running"] is True
    assert blackbox["listen_addresses"] == [":9115"]  # the default when the flag is absent
    assert blackbox["web_config"]["tls"] is True
    assert "$2" not in json.dumps(facts)


def test_monitoring_section_on_a_host_without_programs(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    host.process(1, "systemd", ["/sbin/init"])
    host.targets("node.json", NODE_GROUPS)  # files alone do not make a Prometheus
    facts = host.collect()
    for component in ("node_exporter", "prometheus", "alertmanager", "blackbox_exporter"):
        assert facts[component] == {"running": False, "processes": 0}


def test_node_exporter_defaults_to_every_interface_and_a_missing_web_config(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    host.process(
        300, "prometheus-node", ["/usr/bin/prometheus-node-exporter", "--web.config.file=/nonexistent/web.yml"]
    )
    node = host.collect()["node_exporter"]
    assert node["listen_addresses"] == [":9100"]
    assert node["wildcard_addresses"] == [":9100"]
    assert node["web_config"] == {"configured": True, "present": False}
    assert node["textfile_directory"] is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "missing"),
        ("{not json", "is not JSON"),
        ('{"targets": []}', "not a list of target groups"),
        ('[{"targets": "10.0.0.1:9100"}]', "not a list of target groups"),
    ],
)
def test_unreadable_node_targets_are_unavailable(tmp_path: Path, content: str | None, reason: str) -> None:
    host = FakeHost(tmp_path)
    host.process(10, "prometheus", ["/usr/bin/prometheus"])
    if content is not None:
        host.targets("node.json", content)
    prometheus = host.collect()["prometheus"]
    assert reason in prometheus["node_targets"]["unavailable"]
    assert "missing" in prometheus["blackbox_targets"]["unavailable"]


def test_no_proc_is_nothing_running(tmp_path: Path) -> None:
    facts = collector.collect_monitoring(str(tmp_path / "no-proc"), str(tmp_path / "file_sd"))
    assert facts["node_exporter"] == {"running": False, "processes": 0}


# ---------------------------------------------------------------- collector output -> controls


def test_collected_facts_decide_the_controls(monitor: FakeHost, pki_dir: Path) -> None:
    """Evidence as the collector writes it, judged by the real catalog: what the roles leave passes."""
    catalog = load_catalog()
    # As collect() does: each certificate placed against the host's PKI directory (the default here).
    monitoring, _ = collector.with_pki_placement(monitor.collect(), {}, "/etc/medinfra/pki")
    pki = collector.collect_pki(str(pki_dir))

    def judge(facts: dict[str, Any], services: list[str]) -> dict[str, Status]:
        evidence = {"schema": "medinfra-evidence/1", "facts": facts}
        host = HostEvidence("monitor-01", evidence, {"services": services, "legacy": False})
        return {f.control: f.status for f in evaluate([host], catalog, [], NOW)}

    # The web configs point at certificates under /etc/medinfra/pki; alertmanager has none.
    statuses = judge({"monitoring": monitoring, "pki": pki}, ["monitoring_server"])
    assert statuses["node_exporter_tls_auth"] is Status.PASS
    assert statuses["monitoring_web_tls_auth"] is Status.FAIL
    assert statuses["pki_certificates_current"] is Status.FAIL  # foreign, impostor, expiring, 0644 key

    for name in ("foreign", "impostor", "expiring"):
        (pki_dir / f"{name}.crt").unlink()
    statuses = judge({"monitoring": monitoring, "pki": collector.collect_pki(str(pki_dir))}, [])
    assert statuses["pki_certificates_current"] is Status.PASS
    assert statuses["monitoring_web_tls_auth"] is Status.NOT_APPLICABLE


# --- what the monitoring server's Prometheus last saw of the interface probes (answers recorded from the lab's
# Prometheus: all four lab interfaces passing, then with the HL7 stand-in answering AE)
PROMETHEUS_ANSWERS = Path(__file__).parent / "fixtures" / "prometheus"


def recorded(name: str) -> str:
    return (PROMETHEUS_ANSWERS / f"{name}.json").read_text(encoding="utf-8")


def test_interface_states_from_prometheus_answers() -> None:
    states = collector.interface_states(recorded("interface-result-all-ok"), recorded("interface-latency-all-ok"))
    assert sorted(states) == ["his-fhir", "lis-his-results", "pacs-web", "ws-pacs-dicom"]
    assert {state["up"] for state in states.values()} == {True}
    assert {state["result"] for state in states.values()} == {"ok"}
    assert states["ws-pacs-dicom"]["latency_seconds"] == 0.002493


def test_a_negative_acknowledgement_is_a_failed_interface_with_its_result() -> None:
    states = collector.interface_states(recorded("interface-result-hl7-ae"), recorded("interface-latency-hl7-ae"))
    assert states["lis-his-results"]["up"] is False
    assert states["lis-his-results"]["result"] == "ack_negative"
    assert [name for name, state in sorted(states.items()) if state["up"]] == ["his-fhir", "pacs-web", "ws-pacs-dicom"]


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ('{"status":"error","errorType":"bad_data","error":"parse error"}', "not a successful vector answer"),
        ('{"status":"success","data":{"resultType":"matrix","result":[]}}', "not a successful vector answer"),
        ("<html>proxy error</html>", "Expecting value"),
    ],
)
def test_an_answer_that_is_not_a_vector_is_refused(answer: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        collector.interface_states(answer, recorded("interface-latency-all-ok"))


def test_a_prometheus_listening_everywhere_is_not_asked() -> None:
    """The collector asks Prometheus at its own listen address; a wildcard says nothing about where to ask."""
    state = collector.probed_interfaces({"listen_addresses": [":9090"]}, "/etc/medinfra/pki")
    assert state == {"unavailable": "Prometheus listens on ':9090', not on an address of its own to ask"}
