"""pki on a live container: keys stay private, certificates carry the host's names and chain to the site CA,
renewal happens only when expiry is near and reloads the services that use the certificate."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.container import python_in

SCENARIO = Path(__file__).resolve().parents[1]

# Runs inside the container with its python3-cryptography (Debian's 38: naive datetimes): prints the facts compared.
INSPECT = """
import sys
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
ca = x509.load_pem_x509_certificate(open("/etc/medinfra/pki/ca.crt", "rb").read())
leaf = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
ca.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm))
sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
print("serial", leaf.serial_number)
print("days", (leaf.not_valid_after - leaf.not_valid_before).days)
print("dns", ",".join(sorted(sans.get_values_for_type(x509.DNSName))))
print("ips", ",".join(sorted(str(a) for a in sans.get_values_for_type(x509.IPAddress))))
print("ca", ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
"""


def inspect(host: Any, name: str) -> dict[str, str]:
    out = python_in(host, INSPECT, f"/etc/medinfra/pki/{name}.crt")
    return dict(line.split(" ", 1) for line in out.splitlines())


def converge_again(*extra: str) -> str:
    done = subprocess.run(
        # The inventory directory: Molecule's instances and the scenario's hospital.yml.
        ["ansible-playbook", "-i", str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent), str(SCENARIO / "renew.yml"),
         *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return done.stdout


def test_keys_are_private(host: Any) -> None:
    web = host.file("/etc/medinfra/pki/web.key")
    assert (web.user, web.group, web.mode) == ("root", "root", 0o600)
    demo = host.file("/etc/medinfra/pki/demo.key")
    assert (demo.user, demo.group, demo.mode) == ("root", "pki-demo", 0o640)


def test_ca_key_stays_on_the_controller_encrypted() -> None:
    key = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "pki" / "ca.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()


def test_certificate_names_the_host_and_chains_to_the_ca(host: Any) -> None:
    facts = inspect(host, "demo")
    hostname = host.check_output("hostname")
    assert hostname in facts["dns"].split(",")
    assert "demo.example.test" in facts["dns"].split(",")
    assert facts["ips"] == host.check_output("hostname -I").split()[0]
    assert facts["days"] == "365"
    assert facts["ca"] == "True"


def test_expiry_is_exported_for_the_node_exporter(host: Any) -> None:
    metric = host.file("/var/lib/prometheus/node-exporter/medinfra_certificate_web.prom").content_string
    assert 'medinfra_certificate_not_after_timestamp_seconds{certificate="web"}' in metric
    value = float(metric.strip().splitlines()[-1].split()[-1])
    now = float(host.check_output("date +%s"))
    assert 364 * 86400 < value - now <= 365 * 86400


@pytest.mark.parametrize("renew_days", [30, 200])
def test_not_renewed_while_far_from_expiry(host: Any, renew_days: int) -> None:
    before = inspect(host, "web")["serial"]
    output = converge_again("-e", f"pki_renew_days={renew_days}")
    assert inspect(host, "web")["serial"] == before
    # Every host in the recap: changed=0 ("changed=0" in the text would also pass beside a host with changed=1).
    changed = re.findall(r"^\S+\s+: ok=\d+\s+changed=(\d+)", output, flags=re.M)
    assert changed and [int(n) for n in changed] == [0] * len(changed), output[-2000:]


def test_renewed_near_expiry_and_the_service_reloads(host: Any) -> None:
    before = {name: inspect(host, name)["serial"] for name in ("web", "demo")}
    reloads = host.run("wc -l < /var/tmp/pki-demo.reloads").stdout.strip() or "0"
    converge_again("-e", "pki_renew_days=400")  # more than the 365 days of validity: due now
    after = {name: inspect(host, name)["serial"] for name in ("web", "demo")}
    assert all(after[name] != before[name] for name in before)
    assert int(host.check_output("wc -l < /var/tmp/pki-demo.reloads")) == int(reloads) + 1
