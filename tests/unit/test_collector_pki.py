"""Where the collector finds certificates: the host's own PKI directory (medinfra_paths.pki), wherever it is."""

from __future__ import annotations

from medinfra.collector import collector_module

collector = collector_module()


def test_certificates_are_judged_against_the_hosts_own_pki_directory() -> None:
    """A site with medinfra_paths.pki = /srv/pki: its files there are in the PKI, the usual path is not."""
    monitoring = {"node_exporter": {"web_config": {"cert_file": "/srv/pki/node-exporter.crt",
                                                   "key_file": "/srv/pki/node-exporter.key"}},
                  "prometheus": {"running": False, "processes": 0}}
    turn = {"cert": "/etc/medinfra/pki/turn.crt", "pkey": "/srv/pki/sub/turn.key"}
    monitoring, turn = collector.with_pki_placement(monitoring, turn, "/srv/pki")
    web = monitoring["node_exporter"]["web_config"]
    assert (web["cert_file_in_pki"], web["key_file_in_pki"]) == (True, True)
    assert "web_config" not in monitoring["prometheus"]
    assert (turn["cert_in_pki"], turn["pkey_in_pki"]) == (False, False)  # elsewhere, and one level too deep
    assert collector.in_pki_directory("/srv/pki/../pki/x.crt", "/srv/pki") is True
    assert collector.in_pki_directory("relative/x.crt", "/srv/pki") is False
    assert collector.in_pki_directory(None, "/srv/pki") is False
