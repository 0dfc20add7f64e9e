"""A stock Debian 12 host after the roles every host gets: what they need, they installed themselves."""

from __future__ import annotations

from typing import Any

import pytest

# Installed by the roles, absent from the plain image (the lab image bakes them in; this host shows the roles do not
# depend on that).
INSTALLED_BY_ROLES = (
    "python3-cryptography",  # pki: community.crypto makes the keys on the host
    "prometheus-node-exporter",  # monitoring_agent
    "auditd",  # baseline_hardening
    "chrony",
    "rsyslog",
    "aide",
    "libpam-pwquality",
    "unattended-upgrades",
)


def test_the_image_was_plain(host: Any) -> None:
    """apt's history on the host: the packages came in during the converge, not with the image."""
    history = host.file("/var/log/apt/history.log").content_string
    for package in INSTALLED_BY_ROLES:
        assert f" {package}:" in history, package


@pytest.mark.parametrize("package", INSTALLED_BY_ROLES)
def test_installed(host: Any, package: str) -> None:
    assert host.package(package).is_installed


@pytest.mark.parametrize("unit", ["prometheus-node-exporter.service", "medinfra-nftables.service", "auditd.service"])
def test_services_enabled(host: Any, unit: str) -> None:
    assert host.service(unit).is_enabled


def test_exporter_runs(host: Any) -> None:
    # auditd cannot run in a container (no audit namespace); the exporter must.
    assert host.service("prometheus-node-exporter.service").is_running


def test_exporter_serves_tls_with_the_site_certificate(host: Any) -> None:
    address = "10.88.239.15"  # hospital.yml's address, the one the exporter listens on
    listening = host.check_output("ss -Hltn 'sport = :9100'")
    # One socket, on that address: the local address is ss's fourth column.
    assert [line.split()[3] for line in listening.splitlines()] == [f"{address}:9100"], listening
    assert host.file("/etc/medinfra/pki/node-exporter.crt").exists


def test_zone_firewall_in_force(host: Any) -> None:
    assert "table inet medinfra" in host.check_output("nft list tables").splitlines()  # the line, not a prefix
