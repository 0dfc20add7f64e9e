"""Everything over real TLS with a throwaway CA: the FHIR and HTTPS probes against an http.server, certificate and
host name checks, C-ECHO over TLS with a client certificate against dcmtk's storescp, and the exporter itself (basic
auth, the metric contract in Prometheus text format, counters)."""

from __future__ import annotations

import base64
import datetime
import http.client
import ipaddress
import json
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from plugins.module_utils import interface_probe as probe

CAPABILITY_STATEMENT = Path(__file__).parent / "fixtures" / "interface_probe" / "capabilitystatement-r4.json"
PASSWORD = "s3cret-scrape-Passw0rd"
HL7_IDENTITY = {
    "sending_application": "LIS",
    "sending_facility": "LAB",
    "receiving_application": "HIS",
    "receiving_facility": "LABHOSP",
}


# ---------------------------------------------------------------- a throwaway PKI


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path  # a CA that signed nothing we serve
    server_crt: Path  # his-app, pacs-01, localhost, 127.0.0.1
    server_key: Path
    client_crt: Path
    client_key: Path


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def certificate(
    subject: str,
    key: rsa.RSAPrivateKey,
    issuer: tuple[x509.Name, rsa.RSAPrivateKey] | None,
    names: list[x509.GeneralName] | None = None,
    usage: list[x509.ObjectIdentifier] | None = None,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0] if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is None:
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        usage_flags = {"key_cert_sign": True, "crl_sign": True, "digital_signature": True}
        builder = builder.add_extension(ski, critical=False)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(names or []), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage or []), critical=False)
        usage_flags = {"key_cert_sign": False, "crl_sign": False, "digital_signature": True}
    key_usage = x509.KeyUsage(
        content_commitment=False,
        key_encipherment=issuer is not None,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
        **usage_flags,
    )
    builder = builder.add_extension(key_usage, critical=True)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def write_pem(path: Path, item: x509.Certificate | rsa.RSAPrivateKey) -> Path:
    if isinstance(item, x509.Certificate):
        path.write_bytes(item.public_bytes(serialization.Encoding.PEM))
    else:
        encoding, fmt = serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL
        path.write_bytes(item.private_bytes(encoding, fmt, serialization.NoEncryption()))
        path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca_key, other_key, server_key, client_key = new_key(), new_key(), new_key(), new_key()
    ca = certificate("medinfra test site CA", ca_key, None)
    other = certificate("some other CA", other_key, None)
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in ("his-app", "pacs-01", "localhost")]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    server = certificate("his-app", server_key, (ca.subject, ca_key), names, [ExtendedKeyUsageOID.SERVER_AUTH])
    client_names: list[x509.GeneralName] = [x509.DNSName("monitoring-01")]
    client = certificate(
        "monitoring-01", client_key, (ca.subject, ca_key), client_names, [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    return Pki(
        ca=write_pem(directory / "ca.crt", ca),
        other_ca=write_pem(directory / "other-ca.crt", other),
        server_crt=write_pem(directory / "server.crt", server),
        server_key=write_pem(directory / "server.key", server_key),
        client_crt=write_pem(directory / "client.crt", client),
        client_key=write_pem(directory / "client.key", client_key),
    )


def tls_server_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_crt, pki.server_key)
    return context


def interface(name: str, protocol: str, port: int, **changes: object) -> probe.Interface:
    fields: dict[str, object] = {
        "name": name,
        "protocol": protocol,
        "host": "127.0.0.1",
        "server_name": "his-app",
        "port": port,
        "tls": True,
        "identity": {},
        "timeout_seconds": 3.0,
        "latency_budget_seconds": 0.5,
    }
    fields.update(changes)
    return probe.Interface(**fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------- FHIR and HTTPS against http.server over TLS


class FhirHandler(BaseHTTPRequestHandler):
    """A FHIR server's /metadata in several states, and plain pages for the HTTPS probe."""

    accepts: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        FhirHandler.accepts.append(self.headers.get("Accept", ""))
        capability = json.loads(CAPABILITY_STATEMENT.read_text())
        pages: dict[str, tuple[int, object]] = {
            "/fhir/metadata": (200, capability),
            "/stu3/metadata": (200, {**capability, "fhirVersion": "3.0.2"}),
            "/patient/metadata": (200, {"resourceType": "Patient", "id": "1"}),
            "/html/metadata": (200, "<html>login</html>"),
            "/": (302, ""),
            "/ok": (200, "fine"),
            "/error": (503, "maintenance"),
        }
        if self.path == "/big":
            self.send_response(200)
            self.end_headers()
            chunk = b"x" * 65536
            for _ in range(probe.MAX_MESSAGE_BYTES // len(chunk) + 2):
                self.wfile.write(chunk)
            return
        status, content = pages.get(self.path, (404, "not found"))
        body = (json.dumps(content) if isinstance(content, dict) else str(content)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json" if isinstance(content, dict) else "text/html")
        self.send_header("Content-Length", str(len(body)))
        if status == 302:
            self.send_header("Location", "/ok")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def https_port(pki: Pki) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FhirHandler)
    server.daemon_threads = True
    server.socket = tls_server_context(pki).wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def fhir(port: int, base_path: str = "/fhir", **changes: object) -> probe.Interface:
    return interface("his-fhir", "fhir", port, identity={"base_path": base_path, "fhir_version": "4.0.1"}, **changes)


def test_fhir_capability_statement_of_the_declared_version_is_ok(pki: Pki, https_port: int) -> None:
    FhirHandler.accepts.clear()
    outcome = probe.run_probe(fhir(https_port), str(pki.ca))
    assert (outcome.result, outcome.detail) == ("ok", "")
    assert outcome.latency_seconds is not None and 0 < outcome.latency_seconds < 1
    assert FhirHandler.accepts == ["application/fhir+json"]


@pytest.mark.parametrize(
    ("base_path", "result", "detail"),
    [
        ("/stu3", "fhir_version", "fhirVersion '3.0.2', expected '4.0.1'"),
        ("/patient", "fhir_version", "a 'Patient', not a CapabilityStatement"),
        ("/html", "fhir_version", "not JSON"),
        ("/nothing", "http_status", "HTTP 404"),
    ],
)
def test_fhir_failures(pki: Pki, https_port: int, base_path: str, result: str, detail: str) -> None:
    outcome = probe.run_probe(fhir(https_port, base_path), str(pki.ca))
    assert outcome.result == result and not outcome.up
    assert detail in outcome.detail
    assert outcome.latency_seconds is not None  # an answer came, a wrong one


@pytest.mark.parametrize(
    ("path", "result"), [("/", "ok"), ("/ok", "ok"), ("/error", "http_status"), ("/big", "protocol_error")]
)
def test_https_status(pki: Pki, https_port: int, path: str, result: str) -> None:
    outcome = probe.run_probe(interface("pacs-web", "https", https_port, identity={"path": path}), str(pki.ca))
    assert outcome.result == result


def test_hostname_mismatch_and_unknown_ca_are_tls_failed(pki: Pki, https_port: int) -> None:
    mismatch = probe.run_probe(fhir(https_port, server_name="his-db"), str(pki.ca))
    assert mismatch.result == "tls_failed" and "his-db" in mismatch.detail
    unknown_ca = probe.run_probe(fhir(https_port), str(pki.other_ca))
    assert unknown_ca.result == "tls_failed" and "certificate verify failed" in unknown_ca.detail


def test_plain_tcp_peer_on_a_tls_interface_is_tls_failed(pki: Pki) -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def answer_plaintext() -> None:
        with listener:
            connection, _ = listener.accept()
            with connection:
                connection.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n")
                time.sleep(1)

    threading.Thread(target=answer_plaintext, daemon=True).start()
    outcome = probe.run_probe(fhir(listener.getsockname()[1]), str(pki.ca))
    assert outcome.result == "tls_failed"


def test_hl7_over_tls(pki: Pki, tmp_path: Path) -> None:
    """MLLP inside TLS (tls: true): a TLS listener answering with the stand-in's own logic."""
    listener = tls_server_context(pki).wrap_socket(socket.create_server(("127.0.0.1", 0)), server_side=True)

    def serve() -> None:
        with listener:
            connection, _ = listener.accept()
            with connection:
                message = probe.MllpReader(connection).next(time.monotonic() + 3)
                connection.sendall(probe.standin_answer(message or b"", str(tmp_path / "mode")) or b"")

    threading.Thread(target=serve, daemon=True).start()
    hl7 = interface("lis-his-results", "hl7v2-mllp", listener.getsockname()[1], identity=HL7_IDENTITY)
    outcome = probe.run_probe(hl7, str(pki.ca))
    assert (outcome.result, outcome.detail) == ("ok", "")


# ---------------------------------------------------------------- DICOM over TLS (dcmtk storescp)


def credentials(tmp_path: Path, pki: Pki, client: bool) -> Path:
    directory = tmp_path / "credentials"
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(pki.server_crt, directory / "server.crt")
    shutil.copy(pki.server_key, directory / "server.key")
    (directory / "password").write_text(PASSWORD + "\n")
    if client:
        shutil.copy(pki.client_crt, directory / "client.crt")
        shutil.copy(pki.client_key, directory / "client.key")
    return directory


def test_dicom_echo_over_tls_with_client_certificate(pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storescp = shutil.which("storescp")
    if storescp is None:
        pytest.fail("storescp (Debian package dcmtk) is not installed: run scripts/install-deps.sh")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    # dcmtk requires and verifies the client's certificate by default (--require-peer-cert).
    command = [storescp, "+tls", str(pki.server_key), str(pki.server_crt), "+cf", str(pki.ca)]
    command += ["--aetitle", "LABPACS01", "-od", str(tmp_path), str(port)]
    scp = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 5
        while scp.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        assert scp.poll() is None, scp.communicate()[0]
        pacs = interface(
            "ws-pacs-dicom",
            "dicom",
            port,
            server_name="pacs-01",
            identity={"calling_ae": "WS01", "called_ae": "LABPACS01"},
        )
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials(tmp_path, pki, client=True)))
        with_certificate = probe.run_probe(pacs, str(pki.ca))
        assert (with_certificate.result, with_certificate.detail) == ("ok", "")
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials(tmp_path / "none", pki, client=False)))
        without = probe.run_probe(pacs, str(pki.ca))
        assert without.result == "tls_failed", without
    finally:
        scp.terminate()
        scp.communicate(timeout=5)


# ---------------------------------------------------------------- the exporter


@pytest.fixture
def exporter(pki: Pki, https_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, Path]]:
    """The exporter on a loopback port with two interfaces: his-fhir (the TLS server above) and lis-his-results
    (a real mllp-standin, whose mode file is returned)."""
    mode_file = tmp_path / "mode"
    standin = probe.StandinServer(("127.0.0.1", 0), str(mode_file))
    threading.Thread(target=standin.serve_forever, args=(0.05,), daemon=True).start()
    config = tmp_path / "interface-probe.json"
    entries = {
        "his-fhir": {
            "protocol": "fhir",
            "host": "127.0.0.1",
            "server_name": "his-app",
            "port": https_port,
            "tls": True,
            "identity": {"base_path": "/fhir", "fhir_version": "4.0.1"},
            "timeout_seconds": 3,
            "latency_budget_seconds": 1,
        },
        "lis-his-results": {
            "protocol": "hl7v2-mllp",
            "host": "127.0.0.1",
            "port": standin.server_address[1],
            "tls": False,
            "identity": HL7_IDENTITY,
            "timeout_seconds": 0.3,
            "latency_budget_seconds": 0.5,
        },
    }
    config.write_text(json.dumps({"ca_file": str(pki.ca), "interfaces": entries}))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials(tmp_path, pki, client=False)))
    server = probe.make_exporter(str(config), ("127.0.0.1", 0))
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server.server_address[1], mode_file
    server.shutdown()
    server.server_close()
    standin.shutdown()
    standin.server_close()


def scrape(pki: Pki, port: int, path: str, password: str | None = PASSWORD) -> tuple[int, dict[str, str], str]:
    context = ssl.create_default_context(cafile=str(pki.ca))
    connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)
    headers = {}
    if password is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"prometheus:{password}".encode()).decode()
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


SAMPLE = re.compile(r'^(medinfra_interface_[a-z_]+)(\{result="([a-z_]+)"\})? ([0-9.e+-]+)$')


def parse_metrics(text: str) -> dict[str, float]:
    """Samples by series (`name` or `name{result="R"}`), checking each family's HELP and TYPE lines come first."""
    samples: dict[str, float] = {}
    declared: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            declared[line.split()[2]] = ""
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name in declared and kind in ("gauge", "counter")
            declared[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            assert declared.get(match[1]), f"{match[1]} has no HELP/TYPE before it"
            assert match[1].endswith("_total") == (declared[match[1]] == "counter")
            samples[match[1] + (match[2] or "")] = float(match[4])
    return samples


def test_exporter_requires_basic_auth(pki: Pki, exporter: tuple[int, Path]) -> None:
    port, _ = exporter
    status, headers, _ = scrape(pki, port, "/probe?interface=his-fhir", password=None)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic ")
    assert scrape(pki, port, "/probe?interface=his-fhir", password="wrong")[0] == 401
    assert scrape(pki, port, "/probe?interface=his-fhir", password=PASSWORD + "x")[0] == 401
    assert scrape(pki, port, "/metrics", password=None)[0] == 401  # nothing answered before auth


def test_exporter_answers_the_metric_contract(pki: Pki, exporter: tuple[int, Path]) -> None:
    port, _ = exporter
    status, headers, text = scrape(pki, port, "/probe?interface=his-fhir")
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = parse_metrics(text)
    latency = samples.pop("medinfra_interface_latency_seconds")
    assert 0 < latency < 1
    assert samples == {
        "medinfra_interface_up": 1,
        'medinfra_interface_result{result="ok"}': 1,
        "medinfra_interface_latency_budget_seconds": 1,
        "medinfra_interface_probes_total": 1,
        "medinfra_interface_failures_total": 0,
    }
    samples = parse_metrics(scrape(pki, port, "/probe?interface=his-fhir")[2])
    assert (samples["medinfra_interface_probes_total"], samples["medinfra_interface_failures_total"]) == (2, 0)
    # Prometheus' own linter on the exposition.
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool (Debian package prometheus) is not installed: run scripts/install-deps.sh")
    lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert (lint.returncode, lint.stdout, lint.stderr) == (0, "", "")


def test_exporter_counts_failures_per_interface(pki: Pki, exporter: tuple[int, Path]) -> None:
    port, mode_file = exporter
    assert parse_metrics(scrape(pki, port, "/probe?interface=lis-his-results")[2])["medinfra_interface_up"] == 1
    mode_file.write_text("AE")
    negative = parse_metrics(scrape(pki, port, "/probe?interface=lis-his-results")[2])
    assert negative['medinfra_interface_result{result="ack_negative"}'] == 1
    assert negative["medinfra_interface_up"] == 0
    assert "medinfra_interface_latency_seconds" in negative  # an answer came, a negative one
    mode_file.write_text("silent")
    missing = parse_metrics(scrape(pki, port, "/probe?interface=lis-his-results")[2])
    assert [series for series in missing if series.startswith("medinfra_interface_result")] == [
        'medinfra_interface_result{result="ack_missing"}'
    ]
    assert "medinfra_interface_latency_seconds" not in missing
    assert missing["medinfra_interface_latency_budget_seconds"] == 0.5
    assert (missing["medinfra_interface_probes_total"], missing["medinfra_interface_failures_total"]) == (3, 2)
    # Another interface's counters are its own.
    fhir_samples = parse_metrics(scrape(pki, port, "/probe?interface=his-fhir")[2])
    assert (fhir_samples["medinfra_interface_probes_total"], fhir_samples["medinfra_interface_failures_total"]) == (
        1,
        0,
    )


def test_exporter_counters_hold_under_concurrent_scrapes(pki: Pki, exporter: tuple[int, Path]) -> None:
    port, _ = exporter
    threads = [threading.Thread(target=scrape, args=(pki, port, "/probe?interface=lis-his-results")) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    samples = parse_metrics(scrape(pki, port, "/probe?interface=lis-his-results")[2])
    assert samples["medinfra_interface_probes_total"] == 9


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/probe?interface=nope", 404),
        ("/metrics", 404),
        ("/probe", 400),
        ("/probe?interface=his-fhir&interface=lis-his-results", 400),
        ("/probe?interface=his-fhir&module=x", 400),
        ("/probe?interface", 400),
    ],
)
def test_exporter_bad_requests(pki: Pki, exporter: tuple[int, Path], path: str, status: int) -> None:
    assert scrape(pki, exporter[0], path)[0] == status


def test_exporter_refuses_to_start_without_valid_credentials_or_config(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "probe.json"
    config.write_text(json.dumps({"interfaces": {"s": {"protocol": "sftp", "host": "127.0.0.1", "port": 22}}}))
    # Every case fails before the port is bound (a success would serve forever).
    arguments = ["exporter", "--config", str(config), "--listen", "127.0.0.1:1"]

    def refused(fault: str) -> None:
        assert probe.main(arguments) == 2
        err = capsys.readouterr().err
        assert fault in err and "Traceback" not in err and PASSWORD not in err

    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    refused("$CREDENTIALS_DIRECTORY is not set")
    directory = credentials(tmp_path, pki, client=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(directory))
    (directory / "password").write_text("  \n")
    refused(f"{directory}/password: is empty")
    (directory / "password").unlink()
    refused(f"{directory}/password: cannot be read")
    (directory / "password").write_text(PASSWORD)
    shutil.copy(pki.client_key, directory / "server.key")  # a key that does not match the certificate
    refused("server.crt, server.key: not a usable certificate and key")
    config.unlink()
    refused(f"{config}: cannot be read")


def test_exporter_tls_is_at_least_1_2(pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert probe.server_context(credentials(tmp_path, pki, client=False)).minimum_version == ssl.TLSVersion.TLSv1_2
