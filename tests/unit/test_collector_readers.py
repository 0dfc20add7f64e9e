"""The collector's readers, in process (so coverage sees them), on hosts recorded from the lab
(tests/fixtures/hostroots, written by scripts/record-host-root.py, which ran the collector on each host and recorded
what it read and ran).

Three kinds of test: every section the readers compute from a recording equals what the collector reported on the
host itself (so the recording is complete and the seam reads it as the host); the facts the controls rely on have the
values the hardened hosts and the legacy host really have; and the bundled program's parsers (what `medinfra audit`
sends to hosts), fed the recorded outputs and files directly, agree with the readers.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from medinfra.collector import collector_module, default_paths
from medinfra.hostside.collector import HOST_PATHS, base
from medinfra.hostside.collector import collect as collect_document
from tests.conftest import ROOT

HOSTROOTS = ROOT / "tests" / "fixtures" / "hostroots"
HARDENED = ("his-db", "his-app", "turn", "monitor-01")
LEGACY = "lis-legacy"
HOSTS = (*HARDENED, LEGACY)
bundled = collector_module()

# Facts that differ between the host and the recording by nature: the interpreter that ran the collector, ages
# counted from "now", and what live connections answered (TLS handshakes, Prometheus' API), which no file records.
VOLATILE = (
    ("host", "python"),
    ("packages", "installed"),  # not kept in collected.json: root/var/lib/dpkg/status holds it
    ("backup", "sets", "*", "last_success_age_minutes"),
    ("backup", "sets", "*", "within_rpo"),
    ("turn", "tls_endpoints"),
    ("monitoring", "prometheus", "interfaces"),
)


@dataclass(frozen=True)
class Recording:
    root: Path
    commands: dict[tuple[str, ...], tuple[int, str, str]]
    files: dict[str, dict[str, Any]]
    digests: dict[str, str]
    collected: dict[str, Any]  # the document the collector printed on the host, without its TLS handshakes

    def output(self, *argv: str) -> str:
        rc, stdout, _stderr = self.commands[argv]
        assert rc == 0, f"{argv} failed on the host"
        return stdout

    def output_starting(self, *argv: str) -> str:
        """The output of the one recorded command whose argv starts so (sshd's -C spec, psql's query)."""
        (found,) = [command for command in self.commands if command[: len(argv)] == argv]
        return self.output(*found)

    def text(self, path: str) -> str:
        return (self.root / path.lstrip("/")).read_text(encoding="utf-8")


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@cache
def recording(host: str) -> Recording:
    directory = HOSTROOTS / host
    commands = {tuple(item["argv"]): (item["rc"], item["stdout"], item["stderr"])
                for item in load(directory / "commands.json")}
    return Recording(directory / "root", commands, load(directory / "files.json"), load(directory / "digests.json"),
                     load(directory / "collected.json"))


@contextmanager
def reading(host: str) -> Iterator[Recording]:
    """The in-process readers read this recorded host while it lasts."""
    recorded = recording(host)
    with base.recorded_host(str(recorded.root), recorded.commands, recorded.files, recorded.digests):
        yield recorded


@cache
def document(host: str) -> dict[str, Any]:
    """The whole evidence document, every reader run in process on the recording (once per host)."""
    with reading(host):
        collected: dict[str, Any] = collect_document(default_paths())
    return collected


def facts(host: str) -> dict[str, Any]:
    return copy.deepcopy(document(host)["facts"])


def without(tree: Any, path: tuple[str, ...]) -> None:
    """Remove one (possibly wildcard `*` over a list) key path from a nested document, where it is present."""
    if not path:
        return
    if path[0] == "*" and isinstance(tree, list):
        for item in tree:
            without(item, path[1:])
    elif isinstance(tree, dict) and path[0] in tree:
        if len(path) == 1:
            del tree[path[0]]
        else:
            without(tree[path[0]], path[1:])


def comparable(all_facts: dict[str, Any]) -> dict[str, Any]:
    kept = copy.deepcopy(all_facts)
    kept.pop("tls", None)
    for path in VOLATILE:
        without(kept, path)
    return kept


def test_no_link_in_a_recording_leads_into_this_machine() -> None:
    """Copies of the checkout and pytest's directory walk follow links: a process's cwd -> / and its open
    /dev/urandom made mutmut's copy walk this machine, block on /proc/kmsg and write 33 GB."""
    unsafe = []
    for host_root in sorted(HOSTROOTS.glob("*/root")):
        for link in (path for path in host_root.rglob("*") if path.is_symlink()):
            target = os.path.normpath(os.readlink(link))
            leaves = link.is_dir() and not link.resolve().is_relative_to(host_root.resolve())
            if leaves or (target != "/dev/null" and target.startswith(("/dev/", "/proc/", "/sys/"))):
                unsafe.append(f"{link.relative_to(HOSTROOTS)} -> {target}")
    assert unsafe == []
    assert os.readlink(HOSTROOTS / "his-db/root/etc/systemd/system/getty@tty1.service") == "/dev/null"  # masked
    assert (HOSTROOTS / "his-db/root/lib").is_symlink()  # links inside the recording stay


def test_the_recordings_are_the_lab_hosts_the_tests_name() -> None:
    assert sorted(path.name for path in HOSTROOTS.iterdir() if path.is_dir()) == sorted(HOSTS)
    assert default_paths() == dict(HOST_PATHS)  # what the recorder handed the collector on every host


@pytest.mark.parametrize("host", HOSTS)
def test_every_reader_on_the_recording_reports_what_it_reported_on_the_host(host: str) -> None:
    on_host = comparable(recording(host).collected["facts"])
    here = comparable(facts(host))
    assert sorted(here) == sorted(on_host)
    for section in sorted(on_host):
        assert here[section] == on_host[section], f"{host}: section {section} differs from the host's"


@pytest.mark.parametrize("host", HOSTS)
def test_what_a_recording_cannot_answer_is_unavailable_not_guessed(host: str) -> None:
    assert facts(host)["tls"] == {"unavailable": f"TLS handshakes: {base.NOT_RECORDED}"}
    with reading(host):
        assert base.run(["sshd", "-V"])[0] == 127  # a command not recorded is not there, never run here
    assert base.HOST.root == "/" and base.HOST.commands is None  # left as on a host


# ------------------------------------------------------------------ what the controls read, hardened and legacy


@pytest.mark.parametrize("host", HOSTS)
def test_host_identity(host: str) -> None:
    identity = facts(host)["host"]
    assert identity["hostname"] == host
    assert (identity["os_id"], identity["os_version_id"]) == ("debian", "12")
    assert identity["container"] is True and identity["virtualization"] == "podman"
    assert identity["secure_boot"] == "no_efi" and identity["apparmor"] == {"enabled": False}


@pytest.mark.parametrize("host", HARDENED)
def test_sshd_hardened_refuses_root_and_passwords(host: str) -> None:
    sshd = facts(host)["sshd"]
    assert (sshd["permitrootlogin"], sshd["passwordauthentication"]) == ("no", "no")
    assert sshd["allowgroups"] == ["ssh-users"]
    assert "aes256-gcm@openssh.com" in sshd["ciphers"] and "3des-cbc" not in sshd["ciphers"]
    assert int(sshd["maxauthtries"]) <= 4


def test_sshd_legacy_lets_root_in_by_key_and_everyone_by_password() -> None:
    sshd = facts(LEGACY)["sshd"]
    assert (sshd["permitrootlogin"], sshd["passwordauthentication"]) == ("without-password", "yes")
    assert sshd["allowgroups"] == [] and sshd["maxauthtries"] == "6"
    # One connection only (no Match block): the settings everyone gets.
    assert sshd["match_blocks"] == 0 and [c["connection"] for c in sshd["connections"]] == [
        "user=root,host=unlisted.invalid,addr=203.0.113.10,laddr=0.0.0.0,lport=22"
    ]


@pytest.mark.parametrize(("host", "redirects", "forward"), [*((h, 0, 0) for h in HARDENED), (LEGACY, 1, 1)])
def test_sysctl_redirects_and_forwarding(host: str, redirects: int, forward: int) -> None:
    sysctl = facts(host)["sysctl"]
    assert sysctl["net.ipv4.conf.all.send_redirects"] == redirects
    assert sysctl["net.ipv4.ip_forward"] == forward
    assert sysctl["kernel.randomize_va_space"] == 2
    assert "unavailable" in sysctl["kernel.yama.ptrace_scope"]  # no Yama in the lab's kernel


@pytest.mark.parametrize("host", HARDENED)
def test_audit_rules_hardened_are_immutable_and_watch_identity(host: str) -> None:
    effective = facts(host)["auditd"]["effective"]
    assert effective["source"] == "/etc/audit/rules.d"  # auditctl needs CAP_AUDIT_CONTROL, which containers lack
    assert effective["enabled"] == 2 and effective["backlog_limit"] == 8192
    assert "-w /etc/shadow -p wa -k identity" in effective["rules"] and effective["suppressed"] == []


def test_audit_rules_legacy_only_the_package_defaults() -> None:
    auditd = facts(LEGACY)["auditd"]
    assert auditd["rules_on_disk"][:2] == ["-D", "-b 8192"]
    assert auditd["effective"]["rules"] == [] and auditd["effective"]["enabled"] == 1
    assert auditd["status"] == {"unavailable": "auditctl -s: You must be root to run this program."}


@pytest.mark.parametrize("host", HOSTS)
def test_accounts_root_alone_and_locked(host: str) -> None:
    accounts = facts(host)["accounts"]
    assert accounts["shadow_readable"] is True and accounts["uid0"] == ["root"]
    root = next(user for user in accounts["users"] if user["name"] == "root")
    assert (root["password"], root["hash_scheme"]) == ("locked", "")
    assert accounts["empty_password"] == [] and accounts["duplicate_uids"] == []
    extra = {"orthanc", "postgres"} if host == LEGACY else set()
    assert set(accounts["system_accounts_with_login_shell"]) == {"root", "sync"} | extra


@pytest.mark.parametrize(("host", "max_days"), [*((h, "90") for h in HARDENED), (LEGACY, "99999")])
def test_login_defs_password_age(host: str, max_days: str) -> None:
    assert facts(host)["login_defs"]["PASS_MAX_DAYS"] == max_days


@pytest.mark.parametrize(("host", "logfile"), [*((h, "/var/log/sudo.log") for h in HARDENED), (LEGACY, None)])
def test_sudo_logs_on_hardened_hosts(host: str, logfile: str | None) -> None:
    sudo = facts(host)["sudo"]
    assert sudo["logfile"] == logfile
    assert sudo["use_pty"] is True and sudo["authenticate_disabled"] is False
    assert sudo["nopasswd_principals"] == ["medinfra"]  # the lab's automation account, on every host


@pytest.mark.parametrize("host", HOSTS)
def test_pam_lockout_and_null_passwords(host: str) -> None:
    pam = facts(host)["pam"]
    if host == LEGACY:
        assert pam["faillock"] == {} and "nullok" in pam["pam_unix_args"]
        assert "pam_faillock.so" not in pam["modules"]["common-auth"]
    else:
        assert (pam["faillock"]["deny"], pam["faillock"]["unlock_time"]) == ("5", "900")
        assert "nullok" not in pam["pam_unix_args"] and "pam_faillock.so" in pam["modules"]["common-auth"]
    assert "yescrypt" in pam["pam_unix_args"]


LISTENING = {
    "his-db": {22, 2379, 2380, 5432, 8008, 9100},  # etcd, PostgreSQL and Patroni's API, the node exporter
    "his-app": {22, 443, 2379, 2380, 2575, 5432, 9100},  # HTTPS, etcd, HL7 (MLLP), the database's local proxy
    "turn": {22, 3478, 5349, 9100},
    "monitor-01": {22, 9090, 9093, 9100, 9115, 9129},
    LEGACY: {22},
}


@pytest.mark.parametrize("host", sorted(LISTENING))
def test_listening_tcp_ports(host: str) -> None:
    listening = facts(host)["sockets"]["listening"]
    assert {s["port"] for s in listening if s["protocol"] == "tcp"} == LISTENING[host]
    sshd = [s for s in listening if s["port"] == 22]
    assert {(s["address"], s["process"], s["uid"]) for s in sshd} == {("0.0.0.0", "sshd", 0), ("::", "sshd", 0)}


def test_the_database_listens_on_its_zone_address_and_loopback_not_everywhere() -> None:
    postgres = [s for s in facts("his-db")["sockets"]["listening"] if s["port"] == 5432]
    assert {(s["address"], s["loopback_only"]) for s in postgres} == {("10.231.20.11", False), ("127.0.0.1", True)}


@pytest.mark.parametrize("host", HARDENED)
def test_nftables_hardened_input_drops_by_default(host: str) -> None:
    nftables = facts(host)["nftables"]
    assert {"family": "inet", "name": "medinfra", "dormant": False} in nftables["tables"]
    (chain,) = [c for c in nftables["chains"] if c["hook"] == "input" and c["table"] == "medinfra"]
    assert (chain["table"], chain["policy"], chain["dormant"]) == ("medinfra", "drop", False) and chain["rules"] > 5


def test_nftables_legacy_has_no_ruleset() -> None:
    assert facts(LEGACY)["nftables"] == {"tables": [], "chains": [], "rule_count": 0, "ruleset": []}


ADDRESSES = {"his-db": "10.231.20.11/24", "his-app": "10.231.20.10/24", "turn": "10.231.40.10/24",
             "monitor-01": "10.231.10.11/24", LEGACY: "10.231.20.20/24"}


@pytest.mark.parametrize("host", HOSTS)
def test_network_own_address_and_routes_through_the_zone_gateway(host: str) -> None:
    network = facts(host)["network"]
    (eth0,) = [i for i in network["interfaces"] if i["name"] == "eth0"]
    assert ADDRESSES[host] in eth0["addresses"] and eth0["state"] == "UP"
    gateway = ADDRESSES[host].rsplit(".", 1)[0] + ".254"
    routed = [r for r in network["routes"] if r["gateway"] is not None]
    assert routed and {r["gateway"] for r in routed} == {gateway} and {r["device"] for r in routed} == {"eth0"}


@pytest.mark.parametrize(("host", "auditd", "exporter", "apt_daily"), [
    *((h, "enabled", "enabled", "enabled") for h in HARDENED), (LEGACY, "disabled", None, "masked"),
])
def test_services_enabled(host: str, auditd: str, exporter: str | None, apt_daily: str) -> None:
    units = facts(host)["services"]["units"]
    assert units["auditd.service"]["enabled"] == auditd
    assert units["ssh.service"] == {"enabled": "enabled", "active": "active", "sub": "running"}
    assert units.get("prometheus-node-exporter.service", {}).get("enabled") == exporter
    # The lab image masks apt's timers; hardening unmasks them for unattended security updates.
    assert units["apt-daily.timer"]["enabled"] == apt_daily


@pytest.mark.parametrize("host", HOSTS)
def test_packages_and_their_checksums(host: str) -> None:
    packages = facts(host)["packages"]
    assert packages["count"] == len(packages["installed"]) > 300
    assert packages["installed"]["openssh-server"].startswith("1:9.2p1")
    assert packages["verify"]["packages"] == [
        "openssh-server", "sudo", "libpam-modules", "libpam-modules-bin", "libpam-runtime", "login", "passwd",
    ]
    assert packages["verify"]["changed_files"] == []  # every program's recorded digest matches dpkg's


@pytest.mark.parametrize(("host", "security"), [*((h, True) for h in HARDENED), (LEGACY, False)])
def test_updates_security_source(host: str, security: bool) -> None:
    updates = facts(host)["updates"]
    assert updates["security_source_configured"] is security
    assert updates["unattended_upgrades_installed"] is True and updates["unsigned_sources"] == []
    assert updates["periodic_unattended_upgrade"] == "1"


@pytest.mark.parametrize(("host", "sshd_config"), [*((h, "0600") for h in HARDENED), (LEGACY, "0644")])
def test_sensitive_file_modes(host: str, sshd_config: str) -> None:
    files = facts(host)["files"]
    assert files["/etc/ssh/sshd_config"]["mode"] == sshd_config
    assert {key: files["/etc/shadow"][key] for key in ("mode", "owner", "group")} == {
        "mode": "0640", "owner": "root", "group": "shadow"}
    assert files["/boot/grub/grub.cfg"] == {"path": "/boot/grub/grub.cfg", "exists": False}  # containers boot none


@pytest.mark.parametrize("host", HOSTS)
def test_mounts(host: str) -> None:
    mounts = {m["mountpoint"]: m for m in facts(host)["mounts"]["mounts"]}
    assert mounts["/"]["fstype"] == "overlay"
    assert {"nosuid", "nodev", "noexec"} <= set(mounts["/dev/shm"]["options"])
    assert not any(m["encrypted"] for m in mounts.values())


@pytest.mark.parametrize("host", HOSTS)
def test_kernel_modules_disabled_on_hardened_hosts(host: str) -> None:
    modprobe = facts(host)["kernel_modules"]["modprobe"]
    if host == LEGACY:
        assert modprobe == {}
    else:
        assert modprobe["usb_storage"] == {"install_disabled": True, "blacklisted": True}
        assert {"cramfs", "dccp", "sctp"} <= set(modprobe)


@pytest.mark.parametrize(("host", "database"), [*((h, True) for h in HARDENED), (LEGACY, False)])
def test_aide_database_initialised_on_hardened_hosts(host: str, database: bool) -> None:
    aide = facts(host)["aide"]
    assert aide["installed"] is True and aide["database_present"] is database
    assert (aide["database_updated_at"] is not None) is database


@pytest.mark.parametrize(("host", "sources"), [*((h, ["10.231.10.10"]) for h in HARDENED),
                                               (LEGACY, ["2.debian.pool.ntp.org"])])
def test_chrony_time_sources(host: str, sources: list[str]) -> None:
    chrony = facts(host)["chrony"]
    assert chrony["sources"] == sources and chrony["serves"] == []
    assert chrony["tracking"] == {"unavailable": "chronyc -n tracking: exit 1"}  # chronyd does not run in containers


@pytest.mark.parametrize("host", HOSTS)
def test_logging_forwards_to_the_monitoring_server(host: str) -> None:
    logging = facts(host)["logging"]
    if host == LEGACY:
        assert logging["forwards"] == [] and logging["journald"] == {}
        return
    assert logging["journald"]["Storage"] == "persistent"
    # The monitoring server receives the others' logs: it forwards to no one.
    central = {"target": "10.231.10.11", "port": 514, "protocol": "tcp", "tls": False}
    assert logging["forwards"] == ([] if host == "monitor-01" else [central])


@pytest.mark.parametrize(("host", "core"), [*((h, "0") for h in HARDENED), (LEGACY, None)])
def test_limits_core_dumps(host: str, core: str | None) -> None:
    assert facts(host)["limits"]["all_users_hard_core"] == core


@pytest.mark.parametrize("host", HOSTS)
def test_shell_timeout_and_umask(host: str) -> None:
    shell = facts(host)["shell"]
    expected = {"tmout": None, "tmout_readonly": False, "umasks": []} if host == LEGACY else {
        "tmout": 900, "tmout_readonly": True, "umasks": ["027"]}
    assert shell == expected


@pytest.mark.parametrize(("host", "reveals"), [*((h, False) for h in HARDENED), (LEGACY, True)])
def test_banner(host: str, reveals: bool) -> None:
    banner = facts(host)["banner"]
    assert banner["reveals_os"] is reveals and banner["issue_net_present"] is True


@pytest.mark.parametrize("host", HARDENED)
def test_pki_certificates_issued_by_the_site_ca_with_protected_keys(host: str) -> None:
    pki = facts(host)["pki"]
    assert pki["ca"]["present"] is True and pki["ca"]["is_ca"] is True and pki["ca"]["key_type"] == "ec"
    exporter = pki["certificates"]["node-exporter"]
    assert exporter["issued_by_site_ca"] is True
    assert f"IP:{ADDRESSES[host].split('/')[0]}" in exporter["sans"] and f"DNS:{host}" in exporter["sans"]
    assert {key: exporter["key"][key] for key in ("mode", "owner", "group")} == {
        "mode": "0640", "owner": "root", "group": "prometheus"}


def test_pki_none_on_the_legacy_host() -> None:
    assert facts(LEGACY)["pki"] == {"directory_present": False}


@pytest.mark.parametrize("host", HOSTS)
def test_monitoring_exporter_on_every_hardened_host_and_server_on_monitor(host: str) -> None:
    monitoring = facts(host)["monitoring"]
    exporter = monitoring["node_exporter"]
    if host == LEGACY:
        assert all(program == {"running": False, "processes": 0} for program in monitoring.values())
        return
    assert exporter["listen_addresses"] == [ADDRESSES[host].split("/")[0] + ":9100"]
    assert exporter["wildcard_addresses"] == [] and exporter["web_config"]["tls"] is True
    server = monitoring["prometheus"]
    assert server["running"] is (host == "monitor-01")


def test_monitoring_server_programs_and_their_web_configs() -> None:
    monitoring = facts("monitor-01")["monitoring"]
    prometheus = monitoring["prometheus"]
    assert prometheus["listen_addresses"] == ["10.231.10.11:9090"]
    web = prometheus["web_config"]
    assert web["tls"] is True and (web["min_version"], web["min_version_set"]) == ("TLS12", True)
    assert web["basic_auth_users"] == 2 and web["file"] == {"mode": "0640", "owner": "root", "group": "prometheus"}
    assert web["basic_auth_bcrypt_only"] is True and web["cert_file_in_pki"] is True
    assert {t["instance"] for t in prometheus["node_targets"]} >= {"his-db", "his-app", "turn", "monitor-01"}
    assert prometheus["interfaces"] == {"unavailable": f"Prometheus' answers: {base.NOT_RECORDED}"}
    assert monitoring["blackbox_exporter"]["listen_addresses"] == ["127.0.0.1:9115"]
    assert monitoring["alertmanager"]["cluster_listen_address"] == ""


def test_turn_relay_runs_unprivileged_and_denies_internal_peers() -> None:
    turn = facts("turn")["turn"]
    assert (turn["installed"], turn["running"], turn["user"]) == (True, True, "turnserver")
    assert turn["config"] == {"path": "/etc/turnserver.conf", "exists": True, "mode": "0640", "owner": "root",
                              "group": "turnserver", "world_readable": False}
    assert turn["use_auth_secret"] is True and turn["static_auth_secret_set"] is True and turn["lt_cred_mech"] is False
    assert turn["internal_networks_not_denied"] == [] and turn["unparsed_peer_ranges"] == []
    assert turn["allowed_peer_ranges"] == ["10.231.40.20"] and turn["allowed_peers_single_addresses"] is True
    assert (turn["no_tcp_relay"], turn["no_cli"], turn["no_multicast_peers"]) == (True, True, True)
    assert (turn["listening_ips"], turn["tls_listening_port"]) == (["10.231.40.10"], 5349)
    assert (turn["cert_in_pki"], turn["pkey_in_pki"]) == (True, True)


def test_turn_legacy_has_the_package_defaults_only() -> None:
    turn = facts(LEGACY)["turn"]
    assert (turn["installed"], turn["running"], turn["user"]) == (True, False, None)
    assert turn["static_auth_secret_set"] is False and turn["denied_peer_ranges"] == []
    assert len(turn["internal_networks_not_denied"]) == len(bundled.TURN_INTERNAL_NETWORKS)


def test_database_primary_streams_to_its_standby_over_ssl() -> None:
    replication = facts("his-db")["database"]["replication"]
    assert (replication["running"], replication["role"], replication["wal_receiver"]) == (True, "primary", None)
    (standby,) = replication["senders"]
    assert (standby["application_name"], standby["client_addr"]) == ("his-db-2", "10.231.21.11")
    assert (standby["state"], standby["ssl"], standby["caught_up"]) == ("streaming", True, True)


@pytest.mark.parametrize("host", ("his-app", LEGACY))
def test_database_none_where_no_postgresql_socket(host: str) -> None:
    database = facts(host)["database"]
    assert database["replication"] == {"running": False}
    assert database["failover_drill"]["present"] is False


def test_backup_set_of_the_database_goes_off_host() -> None:
    backup = facts("his-db")["backup"]
    (data,) = backup["sets"]
    assert (data["name"], data["databases"], data["server"]) == ("data", ["hisdb"], "backup-01")
    assert data["off_host"] is True and (data["rpo_minutes"], data["rto_minutes"]) == (15, 60)
    assert {job: timer["enabled"] for job, timer in data["timers"].items()} == dict.fromkeys(
        ("run", "check", "drill"), "enabled")
    assert data["last_run_success"] is True and data["last_success"] is not None
    assert {key: backup["password_file"][key] for key in ("exists", "mode", "owner")} == {
        "exists": True, "mode": "0600", "owner": "root"}


def test_backup_none_on_the_legacy_host() -> None:
    assert facts(LEGACY)["backup"] == {
        "sets": [], "password_file": {"path": "/etc/medinfra/backup/repository-password", "exists": False}}


@pytest.mark.parametrize("host", HOSTS)
def test_segmentation_not_verified_from_the_lab_hosts_when_recorded(host: str) -> None:
    assert facts(host)["segmentation"] == {"recorded": False}


# ------------------------------------------------------------------ the bundled program's parsers, same recordings


@pytest.mark.parametrize("host", HOSTS)
def test_sshd_parser_on_the_recorded_sshd_T_agrees_with_the_reader(host: str) -> None:
    recorded = recording(host)
    parsed = bundled.parse_sshd_settings(recorded.output_starting("sshd", "-T", "-C"))
    sshd = facts(host)["sshd"]
    assert parsed == {key: value for key, value in sshd.items() if key not in ("match_blocks", "connections")}
    blocks = bundled.match_criteria(bundled.sshd_config_lines("/etc/ssh/sshd_config", str(recorded.root)))
    assert len(blocks) == sshd["match_blocks"]


@pytest.mark.parametrize("host", HOSTS)
def test_nftables_and_network_parsers_agree_with_the_readers(host: str) -> None:
    recorded = recording(host)
    ruleset = recorded.output("nft", "-j", "list", "ruleset")
    flags = {(argv[3], argv[4]): bundled.table_flags(recorded.output(*argv))
             for argv in recorded.commands if argv[:3] == ("nft", "list", "table")}
    assert bundled.nftables_facts(ruleset, flags) == facts(host)["nftables"]
    network = bundled.network_facts(recorded.output(*bundled.ADDRESS_COMMAND), recorded.output(*bundled.ROUTE_COMMAND))
    assert network == facts(host)["network"]


@pytest.mark.parametrize("host", HOSTS)
def test_file_parsers_on_the_recorded_tree_agree_with_the_readers(host: str) -> None:
    """The parsers that take a tree themselves (`root`), given the recorded one, as the readers read it."""
    root = str(recording(host).root)
    here = facts(host)
    assert bundled.collect_sudo(root) == here["sudo"]
    assert bundled.collect_pam(root) == here["pam"]
    assert bundled.collect_shell(root) == here["shell"]
    assert bundled.rsyslog_forwards(root) == here["logging"]["forwards"]
    assert bundled.rules_d_effective(bundled.audit_rules_on_disk(root)) == here["auditd"]["effective"]
    apt = bundled.apt_settings(root)
    assert apt == {key: here["updates"][key] for key in apt}


@pytest.mark.parametrize("host", HARDENED)
def test_certificate_parser_on_the_recorded_pki_agrees_with_the_reader(host: str) -> None:
    recorded = recording(host)
    pki = facts(host)["pki"]
    for name, certificate in pki["certificates"].items():
        parsed = bundled.certificate_file(str(recorded.root / f"etc/medinfra/pki/{name}.crt"))
        assert {key: parsed[key] for key in ("subject", "issuer", "sans", "not_after", "key_bits")} == {
            key: certificate[key] for key in ("subject", "issuer", "sans", "not_after", "key_bits")}


@pytest.mark.parametrize("host", ("turn", LEGACY))
def test_turn_config_parser_agrees_with_the_reader(host: str) -> None:
    parsed = bundled.turn_config_facts(recording(host).text("/etc/turnserver.conf"))
    turn = facts(host)["turn"]
    assert parsed == {key: turn[key] for key in parsed}


def test_replication_parser_on_the_recorded_psql_output_agrees_with_the_reader() -> None:
    output = recording("his-db").output_starting("runuser", "-u", "postgres", "--", "psql")
    assert bundled.parse_replication(output) == facts("his-db")["database"]["replication"]
