"""The evidence collector, run for real on this machine: versions, certificates, TLS handshakes."""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from medinfra.collector import (
    collector_module,
    collector_program,
    collector_source,
    default_paths,
    dependency_order,
    package_modules,
)
from medinfra.package_data import collector_sources
from tests.conftest import ROOT

collector = collector_module()

VERSION_PAIRS = [
    ("1.0", "1.0"),
    ("1.0", "1.1"),
    ("1.0~rc1", "1.0"),
    ("1:1.0", "2.0"),
    ("1.0-1", "1.0-1+deb12u1"),
    ("9.2p1-2+deb12u3", "9.2p1-2+deb12u10"),
    ("2.36-9+deb12u4", "2.36-9+deb12u10"),
    ("1.0a", "1.0"),
    ("1.0+b1", "1.0"),
    ("0.18.3-1+deb12u4", "0.18.3-1+deb12u3"),
    ("1.2.3", "1.2.3-0"),
    ("1~~", "1~~a"),
]


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg to compare with")
@pytest.mark.parametrize(("left", "right"), VERSION_PAIRS)
def test_debian_version_order_agrees_with_dpkg(left, right):
    ours = collector.compare_debian_versions(left, right)
    for relation, holds in (("lt", ours < 0), ("eq", ours == 0), ("gt", ours > 0)):
        dpkg = subprocess.run(["dpkg", "--compare-versions", left, relation, right], check=False).returncode == 0
        assert dpkg == holds, f"{left} {relation} {right}: dpkg says {dpkg}"


def test_shadow_state_never_returns_the_hash():
    assert collector.shadow_state("") == ("empty", "")
    assert collector.shadow_state("!$y$j9T$abc$def") == ("locked", "")
    assert collector.shadow_state("*") == ("locked", "")
    assert collector.shadow_state("$6$salt$hash") == ("set", "sha512")
    assert collector.shadow_state("$y$j9T$salt$hash") == ("set", "yescrypt")


def make_certificate(tmp_path: Path, key, days: int = 30) -> tuple[Path, Path]:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "his-app.lab"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "medinfra test"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, algorithm)
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.mark.parametrize(
    ("key", "key_type", "bits"),
    [
        (rsa.generate_private_key(65537, 2048), "rsa", 2048),
        (ec.generate_private_key(ec.SECP384R1()), "ec", 384),
        (ed25519.Ed25519PrivateKey.generate(), "ed25519", 256),
    ],
)
def test_certificate_facts_from_der(tmp_path, key, key_type, bits):
    cert_path, _ = make_certificate(tmp_path, key, days=30)
    der = ssl.PEM_cert_to_DER_cert(cert_path.read_text())
    facts = collector.certificate_facts(der)
    assert facts["key_type"] == key_type
    assert facts["key_bits"] == bits
    assert facts["subject"] == "CN=his-app.lab,O=medinfra test"
    assert facts["self_signed"] is True
    expiry = dt.datetime.fromisoformat(facts["not_after"].replace("Z", "+00:00"))
    assert 29 <= (expiry - dt.datetime.now(dt.UTC)).days <= 30


class TlsServer:
    """A real TLS listener on loopback, accepting handshakes until closed."""

    def __init__(self, cert: Path, key: Path, minimum: ssl.TLSVersion) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.context.minimum_version = minimum
        if minimum < ssl.TLSVersion.TLSv1_2:
            self.context.set_ciphers("ALL:@SECLEVEL=0")
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                conn.close()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_tls_probe_reports_protocol_key_and_legacy_acceptance(tmp_path):
    cert, key = make_certificate(tmp_path, rsa.generate_private_key(65537, 2048))
    modern = TlsServer(cert, key, ssl.TLSVersion.TLSv1_2)
    legacy = TlsServer(cert, key, ssl.TLSVersion.TLSv1)
    try:
        listener = {"address": "127.0.0.1", "process": "test"}
        good = collector.probe_tls({**listener, "port": modern.port})
        assert good["tls"] is True
        assert good["protocol"] == "TLSv1.3"
        assert good["certificate"]["key_bits"] == 2048
        assert good["accepts_tls1_1_or_older"] is False
        weak = collector.probe_tls({**listener, "port": legacy.port})
        assert weak["accepts_tls1_1_or_older"] is True
    finally:
        modern.sock.close()
        legacy.sock.close()


def test_plain_listener_is_not_tls():
    server = socket.create_server(("127.0.0.1", 0))
    try:
        result = collector.probe_tls({"address": "0.0.0.0", "port": server.getsockname()[1], "process": "x"})
    finally:
        server.close()
    assert result["tls"] is False
    assert result["reason"]


def test_collector_runs_standalone_and_never_fails():
    """Piped to python3 exactly as pyinfra sends it; every section is present, read or unavailable."""
    done = subprocess.run(
        [sys.executable, "-"], input=collector_program(default_paths()), capture_output=True, text=True, check=True,
        timeout=120,
    )
    document = json.loads(done.stdout)
    assert document["schema"] == "medinfra-evidence/1"
    assert document["collector_version"] == collector.COLLECTOR_VERSION
    expected = {
        "host",
        "sshd",
        "sysctl",
        "auditd",
        "accounts",
        "login_defs",
        "sudo",
        "pam",
        "sockets",
        "nftables",
        "network",
        "segmentation",
        "services",
        "packages",
        "updates",
        "files",
        "mounts",
        "kernel_modules",
        "aide",
        "chrony",
        "logging",
        "limits",
        "shell",
        "banner",
        "tls",
        "pki",
        "monitoring",
        "turn",
        "backup",
        "database",
    }
    assert set(document["facts"]) == expected
    text = done.stdout
    for prefix in ("$y$", "$6$", "$5$", "$1$", "$2a$", "$2b$", "$2y$"):  # no password hash ever leaves the host
        assert prefix not in text


def test_collector_uses_only_the_standard_library():
    """What the host runs: the bundle, and every module of the package AnsiballZ sends."""
    sources = [collector_source(), *collector_sources().values()]
    imported = {
        line.split()[1].split(".")[0]
        for source in sources
        for line in source.splitlines()
        if line.startswith(("import ", "from ")) and not line.startswith(("from __future__", "from ."))
    }
    assert imported and imported <= set(sys.stdlib_module_names)


def test_the_bundle_holds_each_module_once_and_no_name_twice():
    """One namespace on the host: two modules defining the same name would silently shadow one another."""
    modules = package_modules()
    order = dependency_order(modules)
    assert sorted(order) == sorted(modules) and order[0] == "base" and order[-1] == "collect"
    names: dict[str, str] = {}
    for module, text in modules.items():
        for node in ast.parse(text).body:
            defined = [node.name] if isinstance(node, ast.FunctionDef | ast.ClassDef) else [
                target.id for target in getattr(node, "targets", [getattr(node, "target", None)])
                if isinstance(target, ast.Name)
            ]
            for name in defined:
                assert name not in names, f"{name} in both {names.get(name)} and {module}"
                names[name] = module
    assert "from ." not in collector_source() and "main(" not in collector_source().splitlines()[-1]


def test_a_cycle_between_collector_modules_is_refused():
    with pytest.raises(ImportError, match="import cycle"):
        dependency_order({"a": "from .b import x\n", "b": "from .a import y\n"})


def test_apt_config_syntax():
    config: dict[str, list[str]] = {}
    collector.parse_apt_config(
        """// unattended-upgrades, as Debian ships it
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "0";
/* a block
   comment */
#clear Something::Else;
Unattended-Upgrade::Origins-Pattern {
        "origin=Debian,codename=${distro_codename},label=Debian-Security";
        // "origin=Debian,codename=${distro_codename}-updates";
};
Acquire::http::Proxy "http://proxy.lab:3128/";
APT { Periodic { Unattended-Upgrade "1"; }; };
""",
        config,
    )
    assert config["apt::periodic::update-package-lists"] == ["1"]
    assert config["apt::periodic::unattended-upgrade"] == ["0", "1"]  # later settings win: callers take the last
    assert config["unattended-upgrade::origins-pattern"] == [
        "origin=Debian,codename=${distro_codename},label=Debian-Security"
    ]
    assert config["acquire::http::proxy"] == ["http://proxy.lab:3128/"]


@pytest.mark.skipif(shutil.which("apt-config") is None, reason="needs apt-config to compare with")
def test_apt_config_agrees_with_apt_on_the_same_files(tmp_path):
    """This machine's apt over a tree we write, not over its own /etc/apt: that may set none of these keys, and a
    comparison over no keys would prove nothing."""
    parts = tmp_path / "etc/apt/apt.conf.d"
    parts.mkdir(parents=True)
    (parts / "20auto-upgrades").write_text(
        'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n'
    )
    (parts / "50unattended-upgrades").write_text(
        "// as Debian ships it, shortened\n"
        "Unattended-Upgrade::Origins-Pattern {\n"
        '        "origin=Debian,codename=${distro_codename},label=Debian-Security";\n'
        '        // "origin=Debian,codename=${distro_codename}-updates";\n'
        "};\n"
        "/* a block\n   comment */\n"
        'Unattended-Upgrade::Automatic-Reboot "false";\n'
    )
    main = tmp_path / "apt-config.conf"
    main.write_text(f'Dir::Etc::Parts "{parts}";\nDir::Etc::Main "/dev/null";\n')
    ours = collector.apt_config(str(tmp_path))
    dump = subprocess.run(
        ["apt-config", "dump"], capture_output=True, text=True, check=True, env={**os.environ, "APT_CONFIG": str(main)}
    ).stdout
    checked = []
    for line in dump.splitlines():
        key, _, value = line.partition(" ")
        if key.startswith(("APT::Periodic::", "Unattended-Upgrade::")) and value.strip('";'):
            assert value.rstrip(";").strip('"') in ours.get(key.rstrip(":").lower(), []), key
            checked.append(key.rstrip(":"))
    assert sorted(checked) == [
        "APT::Periodic::Unattended-Upgrade",
        "APT::Periodic::Update-Package-Lists",
        "Unattended-Upgrade::Automatic-Reboot",
        "Unattended-Upgrade::Origins-Pattern",
    ]


@pytest.mark.skipif(shutil.which("apt-config") is None, reason="needs apt-config to compare with")
def test_apt_clear_and_key_case_as_apt_applies_them(tmp_path):
    """`#clear` is a directive and keys ignore case: a later file can silently empty the security origins."""
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "50unattended-upgrades").write_text(
        'Unattended-Upgrade::Origins-Pattern { "origin=Debian,label=Debian-Security"; };\n'
        'APT::Periodic::Unattended-Upgrade "1";\n'
    )
    (parts / "60local").write_text(
        '#clear Unattended-Upgrade::Origins-Pattern;\napt::periodic::unattended-upgrade "0";\n'
    )
    main = tmp_path / "apt.conf"
    main.write_text(f'Dir::Etc::Parts "{parts}";\nDir::Etc::Main "/dev/null";\n')
    dump = subprocess.run(
        ["apt-config", "dump"], capture_output=True, text=True, check=True, env={**os.environ, "APT_CONFIG": str(main)}
    ).stdout
    assert 'APT::Periodic::Unattended-Upgrade "0";' in dump and "Debian-Security" not in dump
    ours: dict[str, list[str]] = {}
    for path in sorted(parts.iterdir()):
        collector.parse_apt_config(path.read_text(), ours)
    assert ours.get("unattended-upgrade::origins-pattern", []) == []
    assert ours["apt::periodic::unattended-upgrade"][-1] == "0"


# --- medinfra_paths: the collector has no defaults of its own; both transports hand it the host's map

EVIDENCE_MODULE = "medinfra.hospital.evidence"


def run_evidence_module(tmp_path: Path, args: dict[str, object]) -> dict[str, object]:
    """The Ansible module run by ansible-core itself on this machine (connection local), its result."""
    env = {
        **os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"), "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
    }
    done = subprocess.run(
        [str(Path(sys.executable).with_name("ansible")), "localhost", "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", "-m", EVIDENCE_MODULE,
         *(("-a", json.dumps(args)) if args else ())],
        capture_output=True, text=True, env=env, timeout=180, check=False,
    )
    result: dict[str, object] = json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return result


def test_the_collector_needs_a_usable_paths_map() -> None:
    assert collector.path_problems(default_paths()) == []
    with pytest.raises(ValueError, match=r"^medinfra_paths lacks \['backup_config', 'backup_state', 'state'\]"):
        collector.collect({"pki": "/srv/pki"})
    for bad in ("srv/pki", "/srv/pki/", "/srv//pki", "/srv/./pki", "/srv/my pki", "/srv/pki\nExecStart=/bin/sh",
                "/", "/" + "a" * 255, 7, None):
        assert collector.path_problems({**default_paths(), "pki": bad})[0].startswith("pki: "), bad
    assert len(collector.path_problems({**default_paths(), "pki": "/" + "a" * 10_000})[0]) < 500  # bounded


def test_the_evidence_module_reads_the_paths_it_is_given(tmp_path: Path) -> None:
    pki = tmp_path / "srv" / "pki"
    pki.mkdir(parents=True)
    certificate, _ = make_certificate(tmp_path, ec.generate_private_key(ec.SECP256R1()))
    shutil.copy(certificate, pki / "ca.crt")
    paths = {**default_paths(), "pki": str(pki)}
    result = run_evidence_module(tmp_path, {"paths": paths})
    assert result.get("failed") is not True, result.get("msg")
    evidence = result["evidence"]
    assert isinstance(evidence, dict)
    assert evidence["facts"]["pki"]["ca"]["subject"] == "CN=his-app.lab,O=medinfra test"
    unset = run_evidence_module(tmp_path, {})["evidence"]  # no map given: the site default, HOST_PATHS
    assert isinstance(unset, dict)
    assert unset["facts"]["pki"]["directory_present"] is os.path.isdir(default_paths()["pki"])
    refused = run_evidence_module(tmp_path, {"paths": {**paths, "state": "var/lib/medinfra"}})
    assert refused["failed"] is True
    assert refused["msg"] == (
        "medinfra_paths state: 'var/lib/medinfra' is not a plain absolute path (letters, digits, '._@+-', "
        "no '.' or '..' parts, at most 255 characters)"
    )
