"""The lab for real: podman containers running systemd, SSH, Ansible, routing between zones.

Runs in file order: bring up, converge, check, break and repair, then tear down.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import statistics
import subprocess
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import jsonschema
import pytest
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret

from medinfra.compliance.catalog import load_catalog
from medinfra.lab import netem
from medinfra.lab.plan import LABEL
from medinfra.lab.podman import podman, podman_json
from medinfra.monitoring.interfaces import interface_targets
from medinfra.monitoring.targets import parse_probes, scrape_targets
from medinfra.package_data import hostside_source
from medinfra.segmentation.verify import SAMPLE_PORTS
from medinfra.toolenv import run_tool
from medinfra.topology import load_topology
from medinfra.turn import turn_module
from tests.browser import render
from tests.conftest import LAB_TOPOLOGY, ROOT
from tests.integration.mutations import ADDED, MUTATIONS, RELOAD_FIREWALL, SAVED
from tests.integration.packaging import Installed, installed  # noqa: F401 (a session fixture, shared)
from tests.oscal_schema import POAM_SCHEMA_NAME, oscal_validator
from tests.unit.compliance.test_evidence_schema import schema_errors

pytestmark = pytest.mark.integration

INVENTORY = LAB_TOPOLOGY.parent
SSH_CONFIG = INVENTORY / ".lab" / "ssh_config"
TOPOLOGY = load_topology(LAB_TOPOLOGY)
HOSTS = len(TOPOLOGY.hosts)
# Failures the hardened lab still shows, each with its cause: rsyslog does not forward over TLS yet
# (the site CA can issue its certificate; the central log host's receiving side is not configured);
# the lab has no Debian security mirror, so pending security updates cannot be judged;
# baseline_hardening does not yet mount /tmp noexec (and cannot inside a container, where podman
# mounts /tmp); the lab's containers keep their PHI data paths on the controller's plain disk (LUKS needs a
# block device per host, which medinfra's roles do not provision).
KNOWN_GAPS = {
    "log_forwarding_encrypted",
    "security_updates_applied",
    "tmp_mount_options",
    "phi_storage_encrypted",
}
# What a stock Debian 12 host cannot pass; each needs baseline_hardening.
LEGACY_MUST_FAIL = {
    "sshd_root_login_disabled",
    "sshd_password_authentication_disabled",
    "sshd_max_auth_tries_limited",
    "password_quality_enforced",
    "account_lockout_configured",
    "pam_unix_nullok_removed",
    "audit_rules_identity",
    "ip_forwarding_disabled",
    "filesystem_kernel_modules_disabled",
    "shell_idle_timeout",
    "sudo_log_file_configured",
    "log_forwarding_configured",
    "host_firewall_default_drop",  # legacy hosts keep no host firewall; the zone firewall filters for them
    "firewall_ssh_management_only",
}


def medinfra(*args: str) -> subprocess.CompletedProcess[str]:
    return run_tool(ROOT, "medinfra", *args, timeout=900)


def lab_ssh(host: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-F", str(SSH_CONFIG), host, command], capture_output=True, text=True, check=False, timeout=60
    )


@pytest.fixture(scope="module")
def lab() -> Iterator[str]:
    result = medinfra("lab", "up", "-i", str(INVENTORY))
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        yield result.stdout
    finally:
        medinfra("lab", "down", "-i", str(INVENTORY))


def test_lab_up_prints_time_to_ready(lab: str) -> None:
    assert re.search(rf"lab 'lab': {HOSTS} hosts ready in \d+\.\d s", lab), lab


def test_lab_up_again_changes_nothing(lab: str) -> None:
    result = medinfra("lab", "up", "-i", str(INVENTORY))
    assert result.returncode == 0, result.stderr
    assert "0 created" in result.stdout and f"{HOSTS} already running" in result.stdout
    assert "removing" not in result.stdout


def ansible_playbook(playbook: str, *args: str) -> subprocess.CompletedProcess[str]:
    # `lab up` keeps the lab's secrets vault-encrypted; the password file sits beside the SSH key.
    vault = ("--vault-password-file", str(INVENTORY / ".lab" / "vault-password"))
    return run_tool(ROOT, "ansible-playbook", "-i", str(INVENTORY), *vault, playbook, *args, timeout=1800)


def recap(output: str) -> dict[str, dict[str, int]]:
    counts = {}
    for line in output.split("PLAY RECAP", 1)[1].splitlines():
        match = re.match(r"^(\S+)\s+:\s+(.*)$", line.strip())
        if match:
            counts[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return counts


def assert_changes_nothing(playbook: str, hosts: tuple[str, ...] = ()) -> None:
    """A second run of ``playbook`` on the converged lab (on ``hosts`` only, if given) succeeds and changes nothing."""
    result = ansible_playbook(playbook, *(("--limit", ",".join(hosts)) if hosts else ()))
    assert result.returncode == 0, result.stdout[-3000:]
    changed = {host: c["changed"] for host, c in recap(result.stdout).items()}
    assert changed and set(changed.values()) == {0}, changed
    assert not hosts or set(changed) == set(hosts), changed


# The two longest second runs (hardening, monitoring: 6 and 3 minutes on all hosts) go to one host of each kind whose
# settings differ, which keeps `make test` under 45 minutes; site.yml has converged every host, and the shorter areas
# run again on all of them.
HARDENING_KINDS = ("fw", "bastion-01", "monitor-01", "his-db", "turn")  # router, time server, log server, PHI, DMZ
MONITORING_KINDS = ("monitor-01", "his-app", "pacs-01", "turn")  # server; HIS, PACS and TURN probe targets


def test_site_playbook_reaches_every_host_and_hardens_all_but_legacy(lab: str) -> None:
    result = ansible_playbook("playbooks/site.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    counts = recap(result.stdout)
    assert set(counts) == {h.name for h in TOPOLOGY.hosts}
    for host in TOPOLOGY.hosts:
        assert counts[host.name]["failed"] == 0 and counts[host.name]["unreachable"] == 0, host.name
        # The reach play alone is 3 tasks; hardening adds dozens, except on the legacy host.
        assert (counts[host.name]["ok"] == 3) == host.legacy, (host.name, counts[host.name])


def test_hardening_again_over_ssh_changes_nothing(lab: str) -> None:
    assert_changes_nothing("playbooks/hardening.yml", HARDENING_KINDS)


def test_legacy_host_is_left_alone(lab: str) -> None:
    legacy = lab_ssh("lis-legacy", "sudo sshd -T | grep -E '^(permitrootlogin|passwordauthentication) '")
    hardened = lab_ssh("his-db", "sudo sshd -T | grep -E '^(permitrootlogin|passwordauthentication) '")
    # Debian's own defaults on the legacy host; the role's on the hardened one.
    assert sorted(legacy.stdout.splitlines()) == ["passwordauthentication yes", "permitrootlogin without-password"], (
        legacy.stdout)
    assert sorted(hardened.stdout.splitlines()) == ["passwordauthentication no", "permitrootlogin no"], hardened.stdout


def test_segmentation_again_changes_nothing(lab: str) -> None:
    assert_changes_nothing("playbooks/segmentation.yml")


@pytest.fixture(scope="module")
def segmentation(lab: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], list]:
    """`medinfra segmentation verify` on the converged lab; it also leaves its verdict on each host for the audit."""
    out = tmp_path_factory.mktemp("segmentation") / "attempts.json"
    result = medinfra("segmentation", "verify", "-i", str(INVENTORY), "--json", str(out))
    return result, json.loads(out.read_text(encoding="utf-8")) if out.exists() else []


def test_monitoring_again_changes_nothing(lab: str) -> None:
    assert_changes_nothing("playbooks/monitoring.yml", MONITORING_KINDS)


def test_prometheus_scrapes_every_exporter_over_tls_and_probes_the_services(lab: str) -> None:
    server = TOPOLOGY.host("monitor-01")
    defaults = yaml.safe_load((ROOT / "roles/monitoring_server/defaults/main.yml").read_text())
    probes = parse_probes(defaults["monitoring_server_service_probes"], "defaults")
    expected = scrape_targets(TOPOLOGY, server, probes, 9100)
    interfaces, skipped = interface_targets(TOPOLOGY, server)
    assert len(interfaces) == len(TOPOLOGY.interfaces) and skipped == []
    # and Prometheus and Alertmanager themselves, and the interface probe once per interface
    total = len(expected.node) + len(expected.blackbox) + 2 + len(interfaces)
    result = ansible_playbook("playbooks/monitoring_status.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"targets: {total} of {total} healthy over TLS with auth" in result.stdout, result.stdout[-2000:]
    # The stand-ins answer the HIS, PACS web and DICOM probes, coturn the TURN TLS probe; its own allocation probe
    # reaches Prometheus through the relay's node exporter.
    assert "service probes failing: none" in result.stdout, result.stdout[-2000:]
    turn = TOPOLOGY.host("turn")
    assert f"TURN allocation probes: {turn.name} allocates" in result.stdout, result.stdout[-2000:]


TLS_CONNECT = (
    "python3 -c 'import socket,ssl,sys; c=ssl.create_default_context(cafile=\"/etc/medinfra/pki/ca.crt\");"
    " s=c.wrap_socket(socket.create_connection((sys.argv[1], 9100), timeout=3), server_hostname=sys.argv[1]);"
    " print(s.version())' "
)


def test_node_exporters_answer_only_the_monitoring_server(lab: str) -> None:
    backup = TOPOLOGY.host("backup-01")
    # TLS 1.3: the exporter's ceiling and the client's first choice.
    assert lab_ssh("monitor-01", TLS_CONNECT + str(backup.address)).stdout.strip() == "TLSv1.3"
    # bastion-01 shares backup-01's zone, yet only the monitoring server may open the exporter port.
    blocked = lab_ssh("bastion-01", TLS_CONNECT + str(backup.address))
    # Exit 1: python3's uncaught timeout on bastion-01 (ssh itself failing would be 255).
    assert blocked.returncode == 1 and "TimeoutError: timed out" in blocked.stderr, blocked.stderr


# Runs on the monitoring server: asks its Prometheus or Alertmanager (URL in argv) with the password Prometheus itself
# presents, as the audit's collector does.
MONITORING_API = (
    "import base64, ssl, sys, urllib.request\n"
    "password = open('/etc/prometheus/secrets/internal.password').read().strip()\n"
    "token = base64.b64encode(('prometheus:' + password).encode()).decode()\n"
    "context = ssl.create_default_context(cafile='/etc/medinfra/pki/ca.crt')\n"
    "request = urllib.request.Request(sys.argv[1], headers={'Authorization': 'Basic ' + token})\n"
    "print(urllib.request.urlopen(request, context=context, timeout=10).read().decode())\n"
)
MONITOR = TOPOLOGY.host("monitor-01")
HL7_MODE = "/etc/medinfra/mllp-standin.mode"
ORTHANC_CONFIG = "/etc/orthanc/orthanc.json"


def monitoring_api(url: str) -> Any:
    result = in_container("monitor-01", f"python3 -c {shlex.quote(MONITORING_API)} {shlex.quote(url)}")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def prometheus_series(query: str) -> list[dict[str, Any]]:
    url = f"https://{MONITOR.address}:9090/api/v1/query?query={urllib.parse.quote(query)}"
    answer = monitoring_api(url)
    assert answer["status"] == "success", answer
    series: list[dict[str, Any]] = answer["data"]["result"]
    return series


def interface_results() -> dict[str, str]:
    """Each interface's probe result as Prometheus last scraped it."""
    series = prometheus_series("medinfra_interface_result == 1")
    return {s["metric"]["interface"]: s["metric"]["result"] for s in series}


def firing(alertname: str) -> tuple[set[str], set[str]]:
    """The interfaces ``alertname`` fires for in Prometheus, and those Alertmanager holds it for."""
    query = f'ALERTS{{alertname="{alertname}",alertstate="firing"}}'
    in_prometheus = {s["metric"].get("interface", "") for s in prometheus_series(query)}
    alerts = monitoring_api(f"https://{MONITOR.address}:9093/api/v2/alerts?filter=alertname%3D%22{alertname}%22")
    in_alertmanager = {a["labels"].get("interface", "") for a in alerts if a["status"]["state"] == "active"}
    return in_prometheus, in_alertmanager


def wait_for(what: str, condition: Any, seconds: float) -> float:
    """Seconds until ``condition()`` holds (polled every 5 s); fails with ``what`` after ``seconds``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"{what} not within {seconds:.0f} s"
        time.sleep(5)
    return time.monotonic() - started


LAB_INTERFACES = {i.name for i in TOPOLOGY.interfaces}


def test_every_lab_interface_answers_its_protocol_probe(lab: str) -> None:
    """Real HL7 ACKs from the MLLP stand-in, a DICOM C-ECHO over TLS with Orthanc, a FHIR CapabilityStatement, HTTPS."""
    wait_for("every interface up", lambda: interface_results() == dict.fromkeys(LAB_INTERFACES, "ok"), 120)
    latencies = {s["metric"]["interface"]: float(s["value"][1])
                 for s in prometheus_series("medinfra_interface_latency_seconds")}
    assert set(latencies) == LAB_INTERFACES and all(0 < v < 1 for v in latencies.values()), latencies


def test_each_interface_failure_fires_its_alert_within_two_scrapes(lab: str, tmp_path: Path) -> None:
    """The HL7 peer stops, then comes back silent, then answers AE; Orthanc stops accepting the declared called AE.
    Each fires its alert in Prometheus and reaches Alertmanager within two scrape intervals of the interfaces job
    (30 s) plus the rule's evaluation; then everything is restored and the probes pass again."""
    budget = 2 * 30 + 30
    orthanc = "systemctl restart orthanc.service"
    wrong_ae = f"sed -i 's/\"DicomAet\" *: *\"LABPACS01\"/\"DicomAet\" : \"NOTLABPACS\"/' {ORTHANC_CONFIG} && {orthanc}"
    right_ae = f"sed -i 's/\"DicomAet\" *: *\"NOTLABPACS\"/\"DicomAet\" : \"LABPACS01\"/' {ORTHANC_CONFIG} && {orthanc}"
    hl7, dicom = "lis-his-results", "ws-pacs-dicom"
    seconds: dict[str, float] = {}

    def fires(alert: str, interface: str, result: str) -> None:
        """Wait for the probe's result, then for ``alert`` on ``interface`` in Prometheus and in Alertmanager."""
        started = time.monotonic()
        wait_for(f"{interface} {result}", lambda: interface_results().get(interface) == result, budget)
        wait_for(alert, lambda: all(interface in seen for seen in firing(alert)), budget)
        seconds[alert] = round(time.monotonic() - started)

    try:
        assert in_container("his-app", "systemctl stop medinfra-mllp-standin.service").returncode == 0
        assert in_container("pacs-01", wrong_ae).returncode == 0
        fires("InterfaceDown", hl7, "connect_failed")
        fires("DicomAssociationRejected", dicom, "association_rejected")
        assert in_container("his-app", f"echo silent > {HL7_MODE} && systemctl start medinfra-mllp-standin.service"
                            ).returncode == 0
        fires("Hl7AckMissing", hl7, "ack_missing")
        assert in_container("his-app", f"echo AE > {HL7_MODE}").returncode == 0
        fires("Hl7AckNegative", hl7, "ack_negative")
        # The precise alerts fire for their interface only.
        assert firing("Hl7AckNegative")[0] == {hl7} and firing("DicomAssociationRejected")[0] == {dicom}
        # The audit judges what the monitoring server's Prometheus saw: both serving hosts fail interfaces_healthy.
        found = audit_hosts(("his-app", "pacs-01", "monitor-01"), tmp_path)
        for host in ("his-app", "pacs-01"):
            assert found[(host, "interfaces_healthy")]["status"] == "fail", found[(host, "interfaces_healthy")]
        served = {i["name"]: i for h in json.loads((tmp_path / "findings.json").read_text())["hosts"]
                  for i in h.get("interfaces", ())}
        assert (served[hl7]["result"], served[dicom]["result"]) == ("ack_negative", "association_rejected")
    finally:
        in_container("his-app", f"echo AA > {HL7_MODE} && systemctl start medinfra-mllp-standin.service")
        in_container("pacs-01", right_ae)
    print(f"seconds from each change to its alert in Alertmanager: {seconds}")
    wait_for("every interface up again", lambda: interface_results() == dict.fromkeys(LAB_INTERFACES, "ok"), budget)


def test_rtc_relay_again_changes_nothing(lab: str) -> None:
    assert_changes_nothing("playbooks/rtc_relay.yml")


# The hosts role backup makes clients of: managed PHI hosts but the backup server, each with the default set "data".
BACKUP_CLIENTS = sorted(h.name for h in TOPOLOGY.hosts
                        if h.data_classification == "phi" and not h.legacy and "backup_server" not in h.services)
BACKUP_CONTROLS = ("backup_set_configured", "backup_within_rpo", "backup_repository_encrypted",
                   "backup_target_off_host", "backup_restore_drill_recent", "backup_integrity_checked")


def backup_state(host: str) -> dict[str, float]:
    result = lab_ssh(host, "sudo cat /var/lib/medinfra-backup/data.json")
    return dict(json.loads(result.stdout)) if result.returncode == 0 else {}


@pytest.fixture(scope="module")
def backups(lab: str) -> dict[str, dict[str, float]]:
    """Each client's runner state once its timers have run a backup, a check and a restore drill (the lab's
    timers start them one to three minutes after deployment; nothing here starts a job by hand)."""
    done = [f"medinfra_backup_{outcome}" for outcome in ("last_run_success", "check_success", "restore_drill_success")]
    deadline = time.monotonic() + 600
    while True:
        states = {host: backup_state(host) for host in BACKUP_CLIENTS}
        if all(all(key in state for key in done) for state in states.values()) or time.monotonic() > deadline:
            return states
        time.sleep(10)


def back_up_now(host: str) -> None:
    """One backup run of the set "data", started once no run is active (a start while the timer's run is active
    would join that run and report its result)."""
    unit = "medinfra-backup-run@data.service"
    wait_for(f"{unit} idle on {host}", lambda: lab_ssh(host, f"systemctl is-active {unit}").stdout.strip()
             not in {"active", "activating", "deactivating"}, 600)
    started = lab_ssh(host, f"sudo systemctl start {unit}")
    assert started.returncode == 0, (host, started.stderr)
    assert backup_state(host)["medinfra_backup_last_run_success"] == 1, (host, backup_state(host))


def test_backup_again_changes_nothing(lab: str) -> None:
    assert_changes_nothing("playbooks/backup.yml")


def test_backups_checks_and_restore_drills_run_from_their_timers(backups: dict[str, dict[str, float]]) -> None:
    assert BACKUP_CLIENTS == ["his-app", "his-db", "his-db-2", "pacs-01"]
    for host, state in backups.items():
        assert state.get("medinfra_backup_last_run_success") == 1, (host, state)
        assert state.get("medinfra_backup_check_success") == 1, (host, state)
        assert state.get("medinfra_backup_restore_drill_success") == 1, (host, state)
        assert state["medinfra_backup_snapshots"] >= 1, (host, state)
        triggered = lab_ssh(host, "systemctl show --property=LastTriggerUSecMonotonic"
                                  " medinfra-backup-run@data.timer medinfra-backup-drill@data.timer")
        # One value per timer asked about: a time since boot ("3h 51min 14.403425s") once it fired, "0" before.
        fired = re.findall(r"^LastTriggerUSecMonotonic=(.*)$", triggered.stdout, flags=re.M)
        assert len(fired) == 2 and all(re.fullmatch(r"(\d+(\.\d+)?(us|ms|s|min|h|d|w) ?)+", t)
                                       for t in fired), (host, triggered.stdout)
    # The database host's drill restored the HIS database from its dump into a scratch database and queried it.
    drill = lab_ssh("his-db", "sudo journalctl --no-pager -o cat -u medinfra-backup-drill@data.service")
    assert '"databases_restored": ["hisdb"]' in drill.stdout, drill.stdout[-2000:]


def test_prometheus_shows_each_backup_and_drill(backups: dict[str, dict[str, float]]) -> None:
    for _ in range(6):  # the node exporters' textfiles reach Prometheus at its next scrape
        result = ansible_playbook("playbooks/monitoring_status.yml")
        assert result.returncode == 0, result.stdout[-3000:]
        ages = re.search(r"backups \(newest\): (.*?)\"", result.stdout)
        drills = re.search(r"restore drills: (.*?)\"", result.stdout)
        assert ages and drills, result.stdout[-3000:]
        if all(f"{host}/data" in ages.group(1) and f"{host}/data passed" in drills.group(1) for host in BACKUP_CLIENTS):
            break
        time.sleep(15)
    for host in BACKUP_CLIENTS:
        minutes = re.search(rf"{host}/data (\d+(?:\.\d+)?) min ago", ages.group(1))
        assert minutes and float(minutes.group(1)) < 15, ages.group(1)  # the 24x7-critical RPO
        assert f"{host}/data passed" in drills.group(1), drills.group(1)


# The HIS database pair: Patroni, etcd, PostgreSQL 15 streaming over TLS, HAProxy on his-app (role database_ha).
PAIR = ("his-db", "his-db-2")
DECLARED_RTO, DECLARED_RPO = 3600, 900  # the lab's 24x7-critical SLA: RTO 60 min, RPO 15 min
PAIR_CONTROLS = ("replication_within_rpo", "failover_drill_recent")


def test_database_ha_again_changes_nothing(lab: str) -> None:
    assert_changes_nothing("playbooks/database_ha.yml")


def patroni_members() -> dict[str, dict[str, Any]]:
    for host in PAIR:
        listed = lab_ssh(host, "sudo patronictl -c /etc/patroni/config.yml list -f json")
        if listed.returncode == 0:
            return {member["Member"]: member for member in json.loads(listed.stdout)}
    raise AssertionError(f"patronictl list failed on both members: {listed.stderr}")


def leader() -> str:
    leaders = [name for name, member in patroni_members().items() if member["Role"] == "Leader"]
    assert len(leaders) == 1, patroni_members()
    return leaders[0]


def standby_streaming(primary: str, standby: str) -> tuple[str | None, float | None]:
    """(state, lag in seconds) of ``standby`` in pg_stat_replication on ``primary``: PostgreSQL's own view, not
    Patroni's (Patroni 3.0.2 shows lag 0 for a replica that does not stream)."""
    sql = ("SELECT state, CASE WHEN replay_lsn = pg_current_wal_lsn() THEN 0 ELSE extract(epoch FROM replay_lag) END "
           f"FROM pg_stat_replication WHERE application_name = '{standby}'")
    done = lab_ssh(primary, f"sudo runuser -u postgres -- psql -XAtF ' ' -c \"{sql}\"")
    assert done.returncode == 0, done.stderr
    if not done.stdout.strip():
        return None, None
    state, *lag = done.stdout.split()
    return state, float(lag[0]) if lag else None


def assert_pair_healthy(within: float = 0) -> str:
    """Streaming with lag under the RPO (within ``within`` seconds); returns the leader."""
    deadline = time.monotonic() + within
    while True:
        primary = leader()
        standby = next(name for name in PAIR if name != primary)
        state, lag = standby_streaming(primary, standby)
        if (state == "streaming" and lag is not None and lag < DECLARED_RPO) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert state == "streaming" and lag is not None and lag < DECLARED_RPO, (primary, standby, state, lag)
    return primary


def failover_drill(host: str, tmp_path: Path, *options: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`medinfra drill failover HOST` and the record it left on the first member."""
    started = time.monotonic()
    result = medinfra("drill", "failover", host, "-i", str(INVENTORY), "--vault-password-file",
                      str(INVENTORY / ".lab" / "vault-password"), "--evidence", str(tmp_path), "--no-history", *options)
    print(f"drill failover {host} {' '.join(options)}: exit {result.returncode} after "
          f"{time.monotonic() - started:.1f} s\n{result.stdout}{result.stderr}")
    record = lab_ssh(PAIR[0], "sudo cat /var/lib/medinfra/failover-drill.json").stdout
    return result, json.loads(record or "{}")


def test_failover_drill_stopping_the_leader_meets_the_rto_and_loses_nothing(lab: str, tmp_path: Path) -> None:
    before = assert_pair_healthy(within=120)
    result, record = failover_drill("his-db", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"RTO achieved\s+\d+\.\d+ s\s+declared 3600 s", result.stdout), result.stdout
    print(f"RTO achieved {record['rto_seconds']} s (declared {DECLARED_RTO} s), RPO achieved "
          f"{record['rpo_seconds']} s, {record['heartbeats_acknowledged']} acknowledged, "
          f"{record['heartbeats_lost']} lost")
    assert record["failed_host"] == before and record["method"] == "stop"
    assert record["rto_seconds"] < DECLARED_RTO / 20  # a wide margin: under 3 minutes against 60
    assert record["heartbeats_lost"] == 0 and record["rpo_seconds"] == 0
    # Acknowledged writes on both sides of the outage (100 ms apart) are what the RTO and RPO are measured from.
    assert record["heartbeats_acknowledged"] >= 20 and record["redundancy_restored"] and record["passed"]
    assert assert_pair_healthy() == record["new_primary"] != before
    assert list(tmp_path.glob("*/drill.json")), "no evidence written"


def test_failover_drill_back_in_the_other_direction(lab: str, tmp_path: Path) -> None:
    before = assert_pair_healthy()
    other = next(name for name in PAIR if name != before)
    # Named by the standby: the drill fails whichever member leads now, and says so.
    result, record = failover_drill(other, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{other} is the standby now" in result.stdout
    print(f"RTO achieved {record['rto_seconds']} s back to {other}, RPO {record['rpo_seconds']} s")
    assert record["failed_host"] == before and record["new_primary"] == other
    assert record["rto_seconds"] < DECLARED_RTO / 20 and record["heartbeats_lost"] == 0
    assert assert_pair_healthy() == other


def test_failover_drill_with_the_standby_stopped_is_refused_and_the_audit_fails_replication(
    lab: str, tmp_path: Path
) -> None:
    primary = assert_pair_healthy()
    standby = next(name for name in PAIR if name != primary)
    assert lab_ssh(standby, "sudo systemctl stop patroni").returncode == 0
    try:
        result, _ = failover_drill(primary, tmp_path)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "preflight failed, nothing was changed" in result.stderr
        assert f"{standby} is not replicating from {primary}" in result.stderr
        assert leader() == primary
        assert lab_ssh(primary, "systemctl is-active patroni").stdout.strip() == "active"
        assert not list(tmp_path.glob("*/drill.json"))
        # The audit of the leader sees the same: no standby streams, so its replication is not within the RPO.
        finding = audit_hosts([primary], tmp_path / "audit")[(primary, "replication_within_rpo")]
        assert finding["status"] == "fail", finding
    finally:
        assert lab_ssh(standby, "sudo systemctl start patroni").returncode == 0
    assert assert_pair_healthy(within=300) == primary


def test_his_db_lost_plan_fires_the_standby_alert_and_writes_go_on(lab: str, tmp_path: Path) -> None:
    """The lab's emergency plan (drill-plans/lab/his-db-lost.yml) for real: his-db's Patroni stopped, writes
    through his-app's service address work again, DatabaseStandbyDown active in Alertmanager, his-db streams again
    once restored."""
    assert leader() == "his-db", "the plan rehearses losing the declared primary"
    started = time.monotonic()
    result = medinfra("drill", "run", "drill-plans/lab/his-db-lost.yml", "-i", str(INVENTORY),
                      "--vault-password-file", str(INVENTORY / ".lab" / "vault-password"),
                      "--evidence", str(tmp_path), "--no-history")
    print(f"drill run his-db-lost: exit {result.returncode} after {time.monotonic() - started:.1f} s\n{result.stdout}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"PASS\s+[\d.]+ s\s+expect alerts DatabaseStandbyDown", result.stdout), result.stdout
    assert assert_pair_healthy(within=120) == "his-db-2"


# Runs on a lab host: the TURN client's source and the request arrive on stdin, the outcomes leave as JSON.
TURN_CLIENT = (
    "import json, sys, types; d = json.load(sys.stdin); m = types.ModuleType('medinfra_turn');"
    " sys.modules['medinfra_turn'] = m; exec(compile(d['module'], 'medinfra_turn', 'exec'), m.__dict__);"
    " print(json.dumps(m.exercise(d['request'])))"
)
UDP_ECHO = (
    "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 40000))\n"
    "while True:\n    data, peer = s.recvfrom(65535); s.sendto(b'echo:' + data, peer)\n"
)


def test_sla_report_from_the_live_lab(lab: str, tmp_path: Path) -> None:
    """The month so far, read from the lab's Prometheus and Alertmanager over TLS with the vaulted admin password."""
    zone = ZoneInfo(TOPOLOGY.site.timezone or "UTC")
    month = datetime.now(zone).strftime("%Y-%m")
    out = tmp_path / "sla.json"
    result = medinfra("sla", "report", "-i", str(INVENTORY), "--month", month, "--format", "json", "-o", str(out),
                      "--vault-password-file", str(INVENTORY / ".lab" / "vault-password"))
    # The lab did not exist for most of the month: those seconds are "no data", so the 24x7 classes miss (exit 1).
    assert result.returncode in (0, 1), result.stdout + result.stderr
    report = json.loads(out.read_text())
    schema = json.loads((ROOT / "src" / "medinfra" / "schemas" / "sla-report.schema.json").read_text())
    jsonschema.validate(report, schema)
    assert report["site"] == "lab" and report["resolution_seconds"] == 30 and not report["period"]["complete"]
    assert report["met"] == (result.returncode == 0)
    his = next(s for s in report["systems"] if s["host"] == "his-app")
    assert his["sla"] == TOPOLOGY.host("his-app").sla and "his_app" in his["services"]
    assert his["up_seconds"] > 0 and his["availability_percent"] > 0
    # Every counted second is up, down or without data.
    assert his["up_seconds"] + his["down_seconds"] + his["no_data_seconds"] == his["counted_seconds"]
    today = datetime.now(zone).date().isoformat()
    assert next(d for d in his["daily"] if d["date"] == today)["availability_percent"] > 0
    # Probed systems are topology hosts; the rest are named as not probed.
    assert {s["host"] for s in report["systems"]} | set(report["not_probed"]) == {h.name for h in TOPOLOGY.hosts}


@pytest.fixture(scope="module")
def turn_secret(lab: str) -> str:
    """The lab's TURN secret, decrypted from the file `lab up` wrote (to mint credentials the CLI never would)."""
    text = (INVENTORY / "group_vars" / "all" / "lab_secrets.yml").read_text(encoding="utf-8")
    block = re.search(r"^rtc_relay_auth_secret: !vault \|\n((?:[ \t]+\S.*\n?)+)", text, flags=re.M)
    assert block, "lab up wrote no rtc_relay_auth_secret"
    password = (INVENTORY / ".lab" / "vault-password").read_text(encoding="utf-8").strip().encode()
    vault = VaultLib([("default", VaultSecret(password))])
    return vault.decrypt("".join(line.strip() + "\n" for line in block.group(1).splitlines())).decode()


def turn_from(client: str, username: str, password: str, **request: Any) -> dict[str, Any]:
    """A real TURN client on a lab host, over TLS to the relay, verified against the site CA."""
    relay = str(TOPOLOGY.host("turn").address)
    request = {"server": relay, "port": 5349, "transport": "tls", "ca_file": "/etc/medinfra/pki/ca.crt",
               "server_name": relay, "username": username, "password": password, **request}
    result = subprocess.run(
        ["ssh", "-F", str(SSH_CONFIG), client, "python3", "-c", shlex.quote(TURN_CLIENT)],
        input=json.dumps({"module": hostside_source("turn.py"), "request": request}),
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def issue_turn_credentials() -> dict[str, Any]:
    """What the telemedicine application would be handed: `medinfra turn credentials`, from the vault (600 s)."""
    result = medinfra("turn", "credentials", "-i", str(INVENTORY), "--ttl", "600", "--user", "dr-li",
                      "--vault-password-file", str(INVENTORY / ".lab" / "vault-password"))
    assert result.returncode == 0, result.stderr
    [server] = json.loads(result.stdout)["iceServers"]
    return dict(server)


@pytest.fixture(scope="module")
def turn_credentials(lab: str) -> dict[str, Any]:
    return issue_turn_credentials()


# Internal IPv4 peers, then the lab's own addresses (a HIS database, the monitoring server, a workstation, the
# patient's own network, the relay itself and its gateway): each 403.
FORBIDDEN_PEERS = (
    "127.0.0.1", "0.0.0.0", "10.1.2.3", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    *(str(TOPOLOGY.host(name).address) for name in ("his-db", "monitor-01", "ws-01", "guest-01", "turn")),
    str(TOPOLOGY.zone("dmz").gateway),
)
# The lab's topology is IPv4 only, so its relay has no IPv6 relay address and cannot reach these at all (443, peer
# address family mismatch). The 403 they get from a dual-stack relay is proven in the role's Molecule scenario.
IPV6_PEERS = ("::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1")


@pytest.fixture(scope="module")
def patient_call(lab: str, turn_credentials: dict[str, Any]) -> dict[str, Any]:
    """From the guest Wi-Fi, through the firewall: allocate over TLS, ask for every forbidden peer, and relay a
    frame to the media server, which echoes it back."""
    media = str(TOPOLOGY.host("media-01").address)
    echo = base64.b64encode(UDP_ECHO.encode()).decode()
    started = lab_ssh("media-01", f"sudo systemd-run --unit=turn-echo python3 -c "
                                  f"\"import base64; exec(base64.b64decode('{echo}'))\"")
    assert started.returncode == 0, started.stderr
    return turn_from("guest-01", turn_credentials["username"], turn_credentials["credential"],
                     peers=[*FORBIDDEN_PEERS, *IPV6_PEERS, media],
                     echo={"peer": media, "port": 40000, "payload": "frame 1"})


def test_turn_credentials_name_the_relay_and_expire(turn_credentials: dict[str, Any]) -> None:
    turn = TOPOLOGY.host("turn")
    assert f"turns:{turn.address}:5349?transport=tcp" in turn_credentials["urls"]
    expiry, user = turn_credentials["username"].split(":")
    assert user == "dr-li" and 590 <= int(expiry) - time.time() <= 600


def test_patient_call_relays_to_the_media_server_over_tls(patient_call: dict[str, Any]) -> None:
    media = TOPOLOGY.host("media-01")
    assert patient_call["tls_version"] == "TLSv1.2" and patient_call["allocate"]["ok"], patient_call
    assert patient_call["echo"] == {"from": f"{media.address}:40000", "payload": "echo:frame 1"}, patient_call


@pytest.mark.parametrize("peer", FORBIDDEN_PEERS)
def test_relay_refuses_internal_peer(patient_call: dict[str, Any], peer: str) -> None:
    assert patient_call["permissions"][peer] == {"ok": False, "code": 403, "reason": "Forbidden IP"}


@pytest.mark.parametrize("peer", IPV6_PEERS)
def test_relay_cannot_reach_ipv6_peers(patient_call: dict[str, Any], peer: str) -> None:
    assert patient_call["permissions"][peer]["code"] == 443, patient_call["permissions"][peer]


def test_relay_refuses_expired_and_wrong_credentials(turn_secret: str, turn_credentials: dict[str, Any]) -> None:
    expired = turn_module().rest_credentials(turn_secret, -60, "dr-li")
    assert turn_from("ws-01", *expired)["allocate"]["code"] == 401
    wrong = turn_from("ws-01", turn_credentials["username"], "d3Jvbmc=")
    assert wrong["allocate"] == {"ok": False, "code": 401, "reason": "Unauthorized"}


def test_relay_refuses_tls_below_1_2(lab: str) -> None:
    turn = TOPOLOGY.host("turn")
    handshake = (
        "python3 -c 'import socket,ssl,sys,warnings; warnings.simplefilter(\"ignore\");"
        " c=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); c.check_hostname=False; c.verify_mode=ssl.CERT_NONE;"
        " c.set_ciphers(\"ALL:@SECLEVEL=0\"); c.minimum_version=ssl.TLSVersion.TLSv1;"
        " c.maximum_version=getattr(ssl.TLSVersion, sys.argv[2]);"
        " print(c.wrap_socket(socket.create_connection((sys.argv[1], 5349), timeout=5)).version())' "
    )
    for ceiling in ("TLSv1", "TLSv1_1"):
        refused = lab_ssh("guest-01", f"{handshake} {turn.address} {ceiling}")
        # Exit 1: the handshake's SSLError on guest-01 (ssh itself failing would be 255).
        assert refused.returncode == 1 and "ssl.SSLError" in refused.stderr, (ceiling, refused.stdout, refused.stderr)
    assert lab_ssh("guest-01", f"{handshake} {turn.address} TLSv1_2").stdout.strip() == "TLSv1.2"


# The lab's intended reachability, written by hand from hospital.yml's flows: the oracle for segmentation verify,
# independent of the plan's own idea of what is intended (medinfra.segmentation.rules.intended).
EXPECTED_REACHABILITY = yaml.safe_load(
    Path(__file__).with_name("expected_lab_reachability.yml").read_text(encoding="utf-8"))
ZONE_OF = {host: zone for zone, hosts in EXPECTED_REACHABILITY["zones"].items() for host in hosts}


def covers(endpoint: str, host: str) -> bool:
    """A zone covers its hosts (by the oracle's own list); a host name covers that host."""
    return endpoint in (host, ZONE_OF[host])


def port_ranges(rule: dict[str, Any]) -> list[tuple[int, int]]:
    ranges = [str(port).partition("-") for port in rule.get("ports", ())]
    return [(int(first), int(last or first)) for first, _, last in ranges]


def allowed_by(source: str, destination: str, proto: str, port: int | None) -> dict[str, Any] | None:
    """The hand-written entry that allows this attempt, or None (blocked)."""
    return next((rule for rule in EXPECTED_REACHABILITY["allowed"]
                 if rule["proto"] == proto and covers(rule["from"], source) and covers(rule["to"], destination)
                 and (proto == "icmp" or any(first <= (port or 0) <= last for first, last in port_ranges(rule)))),
                None)


def oracle_outcome(source: str, destination: str, proto: str, port: int | None) -> tuple[str, str, str]:
    """(expected, observed, verdict) of one attempt by the oracle. Blocked: a dropped UDP datagram gets silence, a
    dropped TCP connection or echo request no answer. Allowed: reached (connected, refused or answered by the
    destination itself), but silence where a listener ignores the probe's payload, which verify calls unconfirmed."""
    rule = allowed_by(source, destination, proto, port)
    if rule is None:
        return "blocked", "silent" if proto == "udp" else "blocked", "ok"
    return ("allowed", "silent", "unconfirmed") if rule.get("silent") else ("allowed", "reached", "ok")


def test_segmentation_verify_matches_the_hand_written_reachability(segmentation) -> None:
    """Every attempt's expectation, observation and verdict are the oracle's; every allowed entry verify can try
    was tried; every host tried the sample ports towards every other zone."""
    result, attempts = segmentation
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # The oracle's zones are hospital.yml's, host for host (the zone firewall routes, it is no endpoint).
    assert {h.name: h.zone for h in TOPOLOGY.hosts if "zone_firewall" not in h.services} == ZONE_OF
    assert {h.name for h in TOPOLOGY.hosts if h.legacy} == set(EXPECTED_REACHABILITY["legacy"])
    found = {(a["source"], a["destination"], a["proto"], a["port"]): (a["expected"], a["observed"], a["verdict"])
             for a in attempts}
    assert len(found) == len(attempts), "an attempt was made twice"
    assert all((a["source_zone"], a["destination_zone"]) == (ZONE_OF[a["source"]], ZONE_OF[a["destination"]])
               for a in attempts)
    wanted = {key: oracle_outcome(*key) for key in found}
    assert found == wanted, {key: (found[key], wanted[key]) for key in found if found[key] != wanted[key]}
    # Each allowed entry verify tries: every port, both ends of a range, from some host it covers to another.
    for rule in (r for r in EXPECTED_REACHABILITY["allowed"] if r.get("probed", True)):
        ports = [port for first, last in port_ranges(rule) for port in sorted({first, last})] or [None]
        for port in ports:
            assert any(covers(rule["from"], source) and covers(rule["to"], destination) and (proto, tried) ==
                       (rule["proto"], port) for source, destination, proto, tried in found), (rule, port)
    # Undeclared: from every host, the sample ports towards a host of every zone with another managed host in it.
    for source in ZONE_OF:
        for zone, members in EXPECTED_REACHABILITY["zones"].items():
            targets = [h for h in members if h != source
                       and not (h in EXPECTED_REACHABILITY["legacy"] and zone == ZONE_OF[source])]
            tried = {(d, proto, port) for s, d, proto, port in found if s == source and d in targets}
            assert not targets or any(
                all((d, proto, port) in tried or allowed_by(source, d, proto, port) for proto, port in SAMPLE_PORTS)
                for d in targets), (source, zone, sorted(tried, key=str))
    # The printed tally agrees: nothing unexpected, and the unconfirmed ones are the oracle's silent listeners.
    tally = re.search(r"^(\d+) as intended, (\d+) unexpected, (\d+) unconfirmed", result.stdout, flags=re.M)
    assert tally, result.stdout[-2000:]
    unconfirmed = sum(verdict == "unconfirmed" for _, _, verdict in wanted.values())
    assert tuple(int(n) for n in tally.groups()) == (len(attempts) - unconfirmed, 0, unconfirmed), tally.group(0)


def test_a_lockout_rolls_back_by_itself(lab: str) -> None:
    """Apply a table that shuts the controller out of his-app: the play fails, the host restores itself."""
    before = lab_ssh("his-app", "sudo nft list table inet medinfra | head -3")
    assert before.returncode == 0 and "medinfra ruleset" in before.stdout
    locked = ansible_playbook(
        "playbooks/segmentation.yml", "-l", "his-app",
        "-e", json.dumps({"network_segmentation_management_sources": [], "network_segmentation_rollback_seconds": 20}),
    )
    # ansible-playbook's 2 (a host failed): the rescue's fail task, not an unreachable host (4).
    assert locked.returncode == 2, locked.stdout[-3000:]
    assert "cut the controller off" in locked.stdout and "restores the previous table by itself" in locked.stdout
    deadline = time.monotonic() + 60
    while (after := lab_ssh("his-app", "sudo nft list table inet medinfra | head -3")).returncode != 0:
        assert time.monotonic() < deadline, "his-app did not come back within 60 s"
        time.sleep(3)
    assert after.stdout == before.stdout  # the same table version is in force again
    # ... and a normal run finds nothing to change.
    again = ansible_playbook("playbooks/segmentation.yml", "-l", "his-app")
    assert again.returncode == 0 and recap(again.stdout)["his-app"]["failed"] == 0, again.stdout[-3000:]


class AuditOutput(NamedTuple):
    code: int
    document: dict[str, Any]
    directory: Path


@pytest.fixture(scope="module")
def audits(
    lab: str, segmentation: Any, backups: dict[str, dict[str, float]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, AuditOutput]:
    """The converged lab audited through both transports (after its first backups and restore drills), before later
    tests recreate the router."""
    # The database drills stopped PostgreSQL on the pair: a backup its timer started in those minutes failed, as it
    # should, and stays the last run for up to the interval. The audit judges the lab as its timers keep it.
    for host in PAIR:
        back_up_now(host)
    out = tmp_path_factory.mktemp("audit")
    history = out / "history.sqlite"
    assert medinfra("keys", "generate", "--out", str(out / "keys" / "audit")).returncode == 0
    runs = {
        "pyinfra": medinfra(
            "audit", "-i", str(INVENTORY), "-o", str(out / "pyinfra"), "-q", "--history", str(history),
            "--sign", str(out / "keys" / "audit.key"),
        ),
        # Recorded second in the same history: its report shows the pyinfra run as the previous one.
        "ansible": ansible_playbook(
            "playbooks/audit.yml",
            "-e", f"medinfra_audit_out={out / 'ansible'}",
            "-e", f"medinfra_audit_history={history}",
        ),
    }
    documents = {}
    for transport, result in runs.items():
        path = out / transport / "findings.json"
        assert path.exists(), result.stdout[-3000:] + result.stderr[-3000:]
        documents[transport] = AuditOutput(result.returncode, json.loads(path.read_text(encoding="utf-8")), path.parent)
    return documents


def statuses(document: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(f["host"], f["control"]): f["status"] for f in document["findings"]}


def test_audit_finds_hardened_hosts_compliant_and_the_legacy_host_not(audits: dict[str, Any]) -> None:
    code, document, _ = audits["pyinfra"]
    assert code == 1  # every host reached; failures (the legacy host) present
    assert {h["name"]: h["status"] for h in document["hosts"]} == {h.name: "audited" for h in TOPOLOGY.hosts}
    per_host = document["summary"]["per_host"]
    hardened = [f for f in document["findings"] if f["host"] != "lis-legacy"]
    decided = [f for f in hardened if f["status"] != "not_applicable"]
    assert sum(f["status"] == "pass" for f in decided) / len(decided) >= 0.95
    unexplained = {(f["host"], f["control"]) for f in decided if f["status"] != "pass"} - {
        (f["host"], f["control"]) for f in decided if f["control"] in KNOWN_GAPS
    }
    assert not unexplained, unexplained
    legacy = [f for f in document["findings"] if f["host"] == "lis-legacy" and f["status"] == "fail"]
    failed = {f["control"] for f in legacy}
    assert failed >= LEGACY_MUST_FAIL, LEGACY_MUST_FAIL - failed
    assert all(f["evidence"] and f["reason"] for f in legacy)
    assert per_host["lis-legacy"]["score"] < 0.6


def test_audit_shows_the_relay_controls_passing(audits: dict[str, Any]) -> None:
    found = statuses(audits["pyinfra"][1])
    for control in ("turn_auth_required", "turn_tls", "turn_internal_peers_denied", "turn_config_secret_protected"):
        assert found[("turn", control)] == "pass", control
        assert found[("his-db", control)] == "not_applicable", control


def test_audit_shows_the_backup_controls_passing(audits: dict[str, Any]) -> None:
    found = statuses(audits["pyinfra"][1])
    for control in BACKUP_CONTROLS:
        for host in BACKUP_CLIENTS:
            assert found[(host, control)] == "pass", (host, control)
        assert found[("backup-01", control)] == "not_applicable", control
        assert found[("ws-01", control)] == "not_applicable", control  # no PHI
    # The legacy LIS holds PHI that nothing backs up: the audit says so.
    assert found[("lis-legacy", "backup_set_configured")] == "fail"


def test_audit_shows_the_database_pair_controls_passing(audits: dict[str, Any]) -> None:
    """After the failover drills: both members stream (whichever leads) and carry a passing drill record."""
    found = statuses(audits["pyinfra"][1])
    for control in PAIR_CONTROLS:
        for host in PAIR:
            assert found[(host, control)] == "pass", (host, control)
        for host in ("his-app", "ws-01"):  # the service host proxies, it holds no replica
            assert found[(host, control)] == "not_applicable", (host, control)


def test_both_transports_write_the_same_findings(audits: dict[str, Any]) -> None:
    (_py_code, py_doc, _), (ans_code, ans_doc, _) = audits["pyinfra"], audits["ansible"]
    assert py_doc["transport"] == "pyinfra" and ans_doc["transport"] == "ansible"
    assert statuses(py_doc) == statuses(ans_doc)
    assert py_doc["summary"]["per_framework"] == ans_doc["summary"]["per_framework"]
    assert ans_code == 0  # the playbook reports findings; it fails only when it cannot audit


def test_navigator_audit_in_the_execution_environment_finds_what_the_cli_found(
    audits: dict[str, AuditOutput], ee_image: str, tmp_path: Path
) -> None:
    """The collection's audit playbook, run by ansible-navigator in the EE (ansible-navigator.yml), as AWX would."""
    started = time.monotonic()
    result = run_tool(
        ROOT, "ansible-navigator", "run", "medinfra.hospital.audit", "-i", str(INVENTORY),
        "--vault-password-file", str(INVENTORY / ".lab" / "vault-password"),
        "--execution-environment-image", ee_image,
        # Only the checkout and the inventory are mounted by default; the findings go to tmp_path.
        "--execution-environment-volume-mounts", f"{tmp_path}:{tmp_path}",
        "-e", f"medinfra_audit_out={tmp_path}", "-e", "medinfra_audit_history=",
        timeout=900,
    )  # fmt: skip
    path = tmp_path / "findings.json"
    assert path.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    print(f"ansible-navigator audit of {HOSTS} hosts in the EE: {time.monotonic() - started:.0f} s")
    document = json.loads(path.read_text(encoding="utf-8"))
    assert result.returncode == 0, result.stdout[-3000:]
    assert statuses(document) == statuses(audits["pyinfra"].document)
    assert {h["name"]: h["status"] for h in document["hosts"]} == {h.name: "audited" for h in TOPOLOGY.hosts}


def test_installed_medinfra_audits_the_lab_as_the_checkout_does(
    audits: dict[str, AuditOutput], installed: Installed, tmp_path: Path  # noqa: F811
) -> None:
    """The wheel's medinfra, run outside the checkout with no ansible.cfg: the packaged catalog and collector, the
    inventory read by Ansible's `auto` plugin through the installed collection; the same findings."""
    result = installed.run("medinfra", "audit", "-i", str(INVENTORY), "-o", str(tmp_path), "-q", "--no-history")
    assert result.returncode == audits["pyinfra"].code, result.stdout[-3000:] + result.stderr[-3000:]
    document = json.loads((tmp_path / "findings.json").read_text(encoding="utf-8"))
    assert {h["name"]: h["status"] for h in document["hosts"]} == {h.name: "audited" for h in TOPOLOGY.hosts}
    assert statuses(document) == statuses(audits["pyinfra"].document)


def test_a_playbook_by_fqcn_from_the_installed_collection_audits_a_lab_host(
    lab: str, installed: Installed, tmp_path: Path  # noqa: F811
) -> None:
    vault = ("--vault-password-file", str(INVENTORY / ".lab" / "vault-password"))
    result = installed.run(
        "ansible-playbook", "-i", str(INVENTORY), *vault, "medinfra.hospital.audit", "--limit", "his-app",
        "-e", f"medinfra_audit_out={tmp_path}", "-e", "medinfra_audit_history=",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert recap(result.stdout)["his-app"]["failed"] == 0
    document = json.loads((tmp_path / "findings.json").read_text(encoding="utf-8"))
    assert [(h["name"], h["status"]) for h in document["hosts"]] == [("his-app", "audited")]
    assert {f["control"] for f in document["findings"]} == {c.id for c in load_catalog().controls}


def test_live_evidence_and_findings_match_their_schemas(audits: dict[str, AuditOutput]) -> None:
    """What the collector wrote on every real lab host, through both transports, is what the schema says."""
    for transport, (_, document, directory) in audits.items():
        assert schema_errors("findings", document) == [], transport
        files = sorted((directory / "evidence").glob("*.json"))
        assert {path.stem for path in files} == {host.name for host in TOPOLOGY.hosts}, transport
        for path in files:
            assert schema_errors("evidence", json.loads(path.read_text(encoding="utf-8"))) == [], (transport, path)


def test_knowledge_base_shows_each_host_as_the_last_recorded_audit_left_it(
    audits: dict[str, AuditOutput], tmp_path: Path
) -> None:
    """`medinfra kb build` on the lab's history: each host's page names the controls the last recorded run (the
    playbook's, recorded after the pyinfra run) found failing there, and the legacy host has some."""
    history = audits["ansible"].directory.parent / "history.sqlite"
    out = tmp_path / "kb"
    result = medinfra("kb", "build", "-i", str(INVENTORY), "-o", str(out), "--history", str(history),
                      "--vault-password-file", str(INVENTORY / ".lab" / "vault-password"))
    assert result.returncode == 0, result.stdout + result.stderr
    findings = audits["ansible"].document["findings"]
    for host in ("lis-legacy", "his-app", "his-db-2"):
        failing = sorted({f["control"] for f in findings if f["host"] == host and f["status"] in ("fail", "error")})
        page = (out / "hosts" / f"{host}.html").read_text(encoding="utf-8")
        shown = re.findall(r'<a href="[^"]*controls/[^"]+\.html">([a-z0-9_]+)</a>',
                           page[page.index('<section id="audit">'):])
        assert sorted(shown) == failing, host
        assert host != "lis-legacy" or failing
    assert (out / "alerts" / "DatabaseStandbyDown.html").exists()


def test_lab_reports_validate_render_and_verify(audits: dict[str, AuditOutput], tmp_path: Path) -> None:
    """What an auditor opens: the signed report set, OSCAL valid, HTML in Chromium in both languages."""
    pyinfra_dir, ansible_dir = audits["pyinfra"].directory, audits["ansible"].directory
    verified = medinfra("verify", str(pyinfra_dir), "--pubkey", str(pyinfra_dir.parent / "keys" / "audit.pub"))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    for directory in (pyinfra_dir, ansible_dir):
        oscal_validator().validate(json.loads((directory / "assessment-results.oscal.json").read_text("utf-8")))
    (pyinfra_dir / "findings.csv").write_bytes((pyinfra_dir / "findings.csv").read_bytes() + b"\n")
    tampered = medinfra("verify", str(pyinfra_dir), "--pubkey", str(pyinfra_dir.parent / "keys" / "audit.pub"))
    assert tampered.returncode == 1 and "altered: findings.csv" in tampered.stdout
    for lang in ("en", "zh"):
        page = render(
            ansible_dir / f"report.{lang}.html", tmp_path / f"lab-{lang}.png",
            ["#score-overall .score", "#clauses-hipaa tr.clause", "#control-sshd_root_login_disabled tr.finding",
             "#changes"],
        )
        assert page.console == [] and len(page.requests) == 1
        assert page.texts["#score-overall .score"][0].endswith("%")
        assert len(page.texts["#clauses-hipaa tr.clause"]) == len(load_catalog().frameworks["hipaa"].clauses)
        legacy_row = page.texts["#control-sshd_root_login_disabled tr.finding"]
        shown = "sshd.connections[0].settings.permitrootlogin"  # the connection from an unlisted source
        assert any("lis-legacy" in row and shown in row for row in legacy_row), legacy_row
        assert page.texts["#changes"], "the ansible run's report compares with the pyinfra run before it"


def audit_hosts(hosts: Iterable[str], out: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """One pyinfra audit of these lab hosts: every finding by (host, control)."""
    result = medinfra("audit", "-i", str(INVENTORY), "-l", ",".join(sorted(hosts)), "-o", str(out), "-q",
                      "--no-history")
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-2000:]
    document = json.loads((out / "findings.json").read_text(encoding="utf-8"))
    return {(f["host"], f["control"]): f for f in document["findings"]}


def in_container(host: str, command: str) -> subprocess.CompletedProcess[str]:
    return podman("exec", f"lab-{host}", "sh", "-c", command, check=False)


def host_state(hosts: Iterable[str]) -> dict[str, str]:
    """What a fix may change on each host, byte for byte: the files the mutations touch or add, every account,
    and the firewall rules in force."""
    files = " ".join((*SAVED, *ADDED))
    # -s (stateless): without counters, which move with every packet.
    command = (f"for f in {files}; do echo \"$f\" $(stat -c %a:%U:%G \"$f\" 2>/dev/null) "
               "$(sha256sum < \"$f\" 2>/dev/null); done; getent passwd; nft -s list ruleset")
    return {host: in_container(host, command).stdout for host in sorted(hosts)}


def fix(*args: str) -> tuple[int, dict[str, Any]]:
    result = medinfra("fix", "-i", str(INVENTORY), "--vault-password-file", str(INVENTORY / ".lab" / "vault-password"),
                      "--no-history", "-q", "--format", "json", *args)
    assert result.returncode in (0, 1, 2), result.stdout[-3000:] + result.stderr[-3000:]
    return result.returncode, json.loads(result.stdout) if result.stdout.strip() else {}


def test_real_misconfigurations_fail_their_controls_and_one_fix_repairs_them(audits: Any, tmp_path: Path) -> None:
    """Hostile changes on hardened hosts (a Match block, a suppressing audit rule, #clear, an accepting jump...):
    each named control fails with evidence naming the cause. `medinfra fix` without --apply changes nothing;
    outside its window it refuses; with --apply the roles' tagged areas repair every change a role owns, the
    re-audit shows each fixed and nothing newly failing, and a second fix finds nothing a role can repair."""
    hosts = {m.host for m in MUTATIONS}
    before = statuses(audits["pyinfra"][1])
    assert {before[(m.host, m.control)] for m in MUTATIONS} == {"pass"}, "the mutations start from passing controls"
    saved = " ".join(SAVED)
    for host in hosts:
        assert in_container(host, f"tar -cpf /root/medinfra-mutation.tar {saved}").returncode == 0
    try:
        for mutation in MUTATIONS:
            applied = in_container(mutation.host, mutation.command)
            assert applied.returncode == 0, (mutation.change, applied.stderr)
        broken = audit_hosts(hosts, tmp_path / "broken")
        missed = []
        for mutation in MUTATIONS:
            finding = broken[(mutation.host, mutation.control)]
            shown = finding["reason"] + json.dumps(finding["evidence"], ensure_ascii=False)
            if finding["status"] != "fail" or mutation.shows not in shown:
                missed.append((mutation.host, mutation.control, mutation.change, finding["status"], shown[:300]))
        print(f"mutation test: {len(MUTATIONS) - len(missed)} of {len(MUTATIONS)} real changes caught")
        assert not missed, missed

        drifted = host_state(hosts)
        code, checked = fix(str(tmp_path / "broken"), "--poam", str(tmp_path / "poam.json"))
        assert code == 0, checked
        assert host_state(hosts) == drifted, "fix without --apply changed a host"
        poam = json.loads((tmp_path / "poam.json").read_text(encoding="utf-8"))
        assert list(oscal_validator(POAM_SCHEMA_NAME).iter_errors(poam)) == []
        open_controls = {p["value"] for item in poam["plan-of-action-and-milestones"]["poam-items"]
                         for p in item["props"] if p["name"] == "control"}
        assert {m.control for m in MUTATIONS} <= open_controls
        planned = {(h, c) for run in checked["plan"]["runs"] for h in run["hosts"] for c in run["controls"]}
        manual = {(h, item["control"]) for item in checked["plan"]["left_alone"] for h in item["hosts"]}
        mutated = {(m.host, m.control) for m in MUTATIONS}
        assert mutated <= planned, f"left to people: {mutated & manual}"

        closed = datetime.now(ZoneInfo(TOPOLOGY.site.timezone or "UTC")) + timedelta(hours=2)
        code, refused = fix(str(tmp_path / "broken"), "--apply", "--window", f"{closed:%H:00}-{closed:%H:30}")
        assert code == 2 and "commands" not in refused
        assert host_state(hosts) == drifted, "a refused fix changed a host"

        code, applied = fix(str(tmp_path / "broken"), "--apply", "-o", str(tmp_path / "fixed"))
        reaudit = applied["reaudit"]
        print(f"fix: {len(reaudit['fixed'])} fixed, {len(reaudit['still_failing'])} still failing, "
              f"{len(reaudit['newly_failing'])} newly failing, {len(applied['commands'])} playbook runs")
        assert [c["exit"] for c in applied["commands"]] == [0] * len(applied["commands"]), applied["commands"]
        assert reaudit["still_failing"] == [] and reaudit["not_judged"] == []
        # Only a known gap may come back: log_forwarding_encrypted does not apply while forwarding is commented out,
        # and fails again (plain TCP) once the fix restores forwarding, as it did before the mutations.
        newly = {(f["host"], f["control"]) for f in reaudit["newly_failing"]}
        assert {before[key] for key in newly} <= {"fail"}, newly
        assert mutated <= {(f["host"], f["control"]) for f in reaudit["fixed"]}
        assert code == (1 if newly else 0)  # anything newly failing is for someone to look at
        fixed_document = json.loads((tmp_path / "fixed" / "findings.json").read_text(encoding="utf-8"))
        assert fixed_document["fixes"] == json.loads((tmp_path / "broken" / "findings.json").read_text())["run_id"]

        code, again = fix(str(tmp_path / "fixed"))
        assert code == 0 and again["plan"]["runs"] == [], again["plan"]
    finally:
        for host in hosts:
            restored = in_container(
                host, f"tar -xpf /root/medinfra-mutation.tar -C / && rm -f {' '.join(ADDED)} && {RELOAD_FIREWALL}"
            )
            assert restored.returncode == 0, restored.stderr
    repaired = audit_hosts(hosts, tmp_path / "repaired")
    assert {(m.host, m.control): repaired[(m.host, m.control)]["status"] for m in MUTATIONS} == {
        (m.host, m.control): "pass" for m in MUTATIONS
    }


def test_a_round_the_clock_host_that_fails_stops_the_fix_before_the_next(audits: Any, tmp_path: Path) -> None:
    """his-app and his-db (24x7-critical) are fixed one at a time: his-app cannot be reached, so his-db is not
    touched."""
    pair = ("his-app", "his-db")
    for host in pair:
        assert in_container(host, "chmod 0644 /etc/shadow").returncode == 0
    try:
        broken = audit_hosts(pair, tmp_path / "broken")
        assert {broken[(h, "shadow_files_protected")]["status"] for h in pair} == {"fail"}
        assert in_container("his-app", "nft insert rule inet medinfra input tcp dport 22 drop").returncode == 0
        code, result = fix(str(tmp_path / "broken"), "--apply", "--controls", "shadow_files_protected",
                           "--timeout", "3", "-o", str(tmp_path / "fixed"))
        assert code == 1
        assert [(c["argv"][c["argv"].index("--limit") + 1], c["exit"] != 0) for c in result["commands"]] == [
            ("his-app", True)
        ]
        assert [argv[argv.index("--limit") + 1] for argv in result["not_started"]] == ["his-db"]
        assert in_container("his-db", "stat -c %a /etc/shadow").stdout.strip() == "644", "his-db was touched"
    finally:
        assert in_container("his-app", RELOAD_FIREWALL).returncode == 0
        for host in pair:
            assert in_container(host, "chmod 0640 /etc/shadow").returncode == 0


def test_each_host_answers_ssh_on_its_zone_address_with_a_pinned_key(lab: str) -> None:
    for host in TOPOLOGY.hosts:
        result = lab_ssh(host.name, 'echo "$(hostname) $SSH_CONNECTION"')
        assert result.returncode == 0, result.stderr
        name, _client, _client_port, server, server_port = result.stdout.split()
        assert (name, server, server_port) == (host.name, str(host.address), "22")
    known_hosts = (INVENTORY / ".lab" / "known_hosts").read_text()
    assert len(known_hosts.splitlines()) == len(TOPOLOGY.hosts)
    assert oct((INVENTORY / ".lab" / "id_ed25519").stat().st_mode & 0o777) == "0o600"


def reach(host: str, address: str, port: int, timeout: int = 3) -> subprocess.CompletedProcess[str]:
    """A TCP connection from a lab host: refused by the destination still means the packets got there."""
    return lab_ssh(
        host,
        "python3 -c 'import socket, sys\ntry: socket.create_connection((sys.argv[1], int(sys.argv[2])), "
        f"{timeout})\nexcept ConnectionRefusedError: pass' {address} {port}",
    )


def test_zones_reach_each_other_only_through_the_router(lab: str) -> None:
    # A declared flow (clinicians use the HIS web): clinical -> his-app tcp/443.
    route = lab_ssh("ws-01", "ip route get 10.231.20.10")
    assert "via 10.231.50.254" in route.stdout, route.stdout
    assert reach("ws-01", "10.231.20.10", 443).returncode == 0
    # The controller's bridges do not forward between zones: a host that routes through them gets nowhere.
    bypass = lab_ssh(
        "ws-01",
        "sudo ip route replace 10.231.20.0/24 via 10.231.50.1 && python3 -c 'import socket; "
        'socket.create_connection(("10.231.20.10", 443), 3)\'; rc=$?; '
        "sudo ip route replace 10.231.20.0/24 via 10.231.50.254; exit $rc",
    )
    assert bypass.returncode == 1 and "TimeoutError: timed out" in bypass.stderr, bypass.stderr  # python3's exit
    # The router is the only way across: with it stopped, the same connection fails.
    podman("stop", "--time", "2", "lab-fw")
    try:
        cut_off = reach("ws-01", "10.231.20.10", 443)
        assert cut_off.returncode == 1, cut_off.stderr  # python3 failed on ws-01; ssh itself (255) still worked
    finally:
        up = medinfra("lab", "up", "-i", str(INVENTORY))
        assert up.returncode == 0, up.stderr
    assert "removing leftover container lab-fw (exited)" in up.stdout
    assert reach("ws-01", "10.231.20.10", 443, timeout=5).returncode == 0


# --- issue 26: TURN over TLS on 443 and the relay's metrics ---


def test_patient_call_over_443_through_the_zone_firewall(lab: str) -> None:
    """The fallback URL comes last, and it works from the guest network: the zone firewall forwards 443 (the flow),
    the relay redirects it to 5349, TLS 1.2 verified against the site CA, a real allocation. Credentials of its own:
    the module's were issued half an hour earlier with 600 s to live."""
    turn_credentials = issue_turn_credentials()
    turn = TOPOLOGY.host("turn")
    assert turn_credentials["urls"][-1] == f"turns:{turn.address}:443?transport=tcp"
    result = turn_from("guest-01", turn_credentials["username"], turn_credentials["credential"], port=443)
    assert result["tls_version"] == "TLSv1.2" and result["allocate"]["ok"], result


def test_relay_metrics_are_written_for_the_node_exporter(lab: str) -> None:
    read = lab_ssh("turn", "sudo systemctl start medinfra-turn-stats.service"
                           " && cat /var/lib/prometheus/node-exporter/medinfra_turn_stats.prom")
    assert read.returncode == 0, read.stderr
    values = {name: float(value) for name, value in re.findall(r"^(medinfra_turn_\S+) (\S+)$", read.stdout, re.M)}
    assert values["medinfra_turn_allocations_quota"] == 1200, values  # the role's default total quota
    assert 0 <= values["medinfra_turn_allocations"] <= 1200, values
    assert 'medinfra_turn_relayed_bytes_total{direction="to_peers"}' in values, values


# --- issue 26: media probe and loadtest ---
# Media through the relay to the media server's permanent UDP echo (role rtc_probe, port 40001, identical bytes back).
MEDIA_ECHO_PORT = 40001
MEDIA_CLIENT = TURN_CLIENT.replace("m.exercise(", "m.media_exercise(")


def turn_loadtest(*options: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    result = medinfra("turn", "loadtest", "-i", str(INVENTORY), "--from", "guest-01", "--duration", "3",
                      "--format", "json", "--vault-password-file", str(INVENTORY / ".lab" / "vault-password"),
                      *options)
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-2000:]
    return result, dict(json.loads(result.stdout))


def test_media_from_a_clinical_workstation_over_udp_tcp_and_tls(lab: str, turn_secret: str) -> None:
    """The media probe's measurement from ws-01 (request on stdin): every transport allocates, binds a channel and
    gets its 150 packets echoed; the figures are real measurements, not placeholders."""
    relay, media = str(TOPOLOGY.host("turn").address), str(TOPOLOGY.host("media-01").address)
    username, password = turn_module().rest_credentials(turn_secret, 600, "medinfra-rtc-probe-ws-01")
    request = {"relays": [{"name": "turn", "address": relay, "server_name": relay,
                           "transports": [{"transport": "udp", "port": 3478}, {"transport": "tcp", "port": 3478},
                                          {"transport": "tls", "port": 5349}]}],
               "ca_file": "/etc/medinfra/pki/ca.crt", "username": username, "password": password,
               "peer": {"address": media, "port": MEDIA_ECHO_PORT}, "seconds": 3, "rate": 50, "size": 1000}
    result = subprocess.run(
        ["ssh", "-F", str(SSH_CONFIG), "ws-01", "python3", "-c", shlex.quote(MEDIA_CLIENT)],
        input=json.dumps({"module": hostside_source("turn.py"), "request": request}),
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    assert [(s["transport"], s["ready"], s["error"]) for s in measured["sessions"]] == [
        ("udp", True, ""), ("tcp", True, ""), ("tls", True, "")], measured
    for session in measured["sessions"]:
        assert session["sent"] == 150 and session["loss_ratio"] < 0.01 and session["held"], session
        assert 0 < session["connect_seconds"] < 5 and 0 < session["rtt_p50"] <= session["rtt_p95"], session
        assert session["jitter"] is not None, session
    assert measured["credentials_expiry"] == int(username.split(":")[0])


def test_loadtest_of_20_sessions_from_the_guest_network_holds_them_all(lab: str) -> None:
    result, report = turn_loadtest("--sessions", "20")
    assert result.returncode == 0, report
    assert (report["allocated"], report["held"], report["refused"]) == (20, 20, 0), report
    assert report["loss_ratio"] < 0.01, report
    assert report["allocations_per_second"] > 0 and report["relay_peak_rss_mib"] > 0, report
    assert report["relay_cpu_percent"] is not None, report


def test_loadtest_with_one_user_is_stopped_by_the_per_user_quota_at_session_13(lab: str) -> None:
    """rtc_relay_user_quota is 12: one TURN user gets 12 allocations, the 13th and 14th get 486."""
    result, report = turn_loadtest("--sessions", "14", "--one-user")
    assert result.returncode == 1, report
    assert (report["allocated"], report["first_refused"], report["first_refused_code"]) == (12, 13, 486), report
    assert [s["code"] for s in report["session_results"][12:]] == [486, 486]
    assert report["held"] == 12 and report["loss_ratio"] < 0.01, report


# --- issue 26: what a doctor feels through the relay, from the vantages, on a weak network ---
PROBE_TEXTFILE = "/var/lib/prometheus/node-exporter/medinfra_rtc.prom"
PROBE_CONFIG = "/etc/medinfra/rtc-probe/probe.json"
# What the guest vantage measures when its zone's network is poor: its budgets are 300 ms, 2 %, 30 ms and 1 s.
MEDIA_ALERTS = {"RtcRoundTripSlow", "RtcPacketLoss", "RtcJitterHigh", "RtcTlsConnectSlow"}
METRIC_LINE = re.compile(r'^(medinfra_rtc_\w+)(?:\{(.*)\})? (\S+)$', re.M)


def probe_series(text: str) -> dict[tuple[str, str, str, str], float]:
    """(metric, transport, port, quantile) -> value of a probe's textfile."""
    found = {}
    for name, labels, value in METRIC_LINE.findall(text):
        tags = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        found[name, tags.get("transport", ""), tags.get("port", ""), tags.get("quantile", "")] = float(value)
    return found


def probe_now(host: str) -> dict[tuple[str, str, str, str], float]:
    """The vantage's probe, run now by its own unit with its own credentials, as the node exporter serves it."""
    read = lab_ssh(host, f"sudo systemctl start medinfra-rtc-probe.service; sudo cat {PROBE_TEXTFILE}")
    assert read.returncode == 0, read.stderr
    return probe_series(read.stdout)


def measure_from(host: str, **changes: Any) -> dict[tuple[str, int], dict[str, Any]]:
    """The probe's measurement on ``host`` with its installed configuration and credentials, changed as given
    (longer, faster, fewer transports), read on stdin by the installed probe: (transport, port) -> session."""
    edit = ("import json, sys; c = json.load(open(sys.argv[1])); c.update(json.loads(sys.argv[2]));"
            " keep = c.pop('keep', None);"
            " c['relays'] = [dict(r, transports=[t for t in r['transports'] if keep is None or [t['transport'],"
            " t['port']] in keep]) for r in c['relays']]; print(json.dumps(c))")
    command = (f"sudo python3 -c {shlex.quote(edit)} {PROBE_CONFIG} {shlex.quote(json.dumps(changes))}"
               " | /usr/local/lib/medinfra/medinfra-turn-probe media-exercise")
    result = lab_ssh(host, command)
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    assert "error" not in measured, measured
    return {(s["transport"], int(s["port"])): s for s in measured["sessions"]}


def media_alerts(state: str) -> set[str]:
    query = f'ALERTS{{alertname=~"Rtc.*",instance="guest-01",alertstate="{state}"}}'
    return {s["metric"]["alertname"] for s in prometheus_series(query)}


def test_each_vantage_measures_every_transport_its_zone_may_use(lab: str) -> None:
    clinical, guest = probe_now("ws-01"), probe_now("guest-01")
    success = "medinfra_rtc_probe_success"
    # The clinical zone may use TURN over UDP, TCP and TLS; the guest zone over UDP, TLS and TLS on 443, not TCP.
    assert {(t, p) for (m, t, p, _), v in clinical.items() if m == success and v == 1} == {
        ("udp", "3478"), ("tcp", "3478"), ("tls", "5349")}, clinical
    assert {(t, p) for (m, t, p, _), v in guest.items() if m == success and v == 1} == {
        ("udp", "3478"), ("tls", "5349"), ("tls", "443")}, guest
    assert not [key for key in guest if key[1:3] == ("tcp", "3478")]  # never probed into the firewall
    for figures in (clinical, guest):
        rtts = [v for (m, _, _, q), v in figures.items() if m == "medinfra_rtc_rtt_seconds" and q == "0.5"]
        assert rtts and all(0 < rtt < 0.1 for rtt in rtts), figures
        assert figures["medinfra_rtc_probe_credentials_expiry_timestamp_seconds", "", "", ""] > time.time() + 7 * 86400


def test_the_443_fallback_works_when_the_guest_zone_may_only_use_https(lab: str) -> None:
    """The zone firewall drops the guest zone's UDP and its TCP to 3478 and 5349 (a table of the test's own, ahead
    of the segmentation's): only TURN over TLS on 443 still gets media through."""
    guest, relay = TOPOLOGY.zone("guest").network, TOPOLOGY.host("turn").address
    block = (f"table inet medinfra_test_https_only {{\n chain forward {{\n type filter hook forward priority -10;\n"
             f" ip saddr {guest} ip daddr {relay} meta l4proto udp drop\n"
             f" ip saddr {guest} ip daddr {relay} tcp dport {{ 3478, 5349 }} drop\n }}\n}}\n")
    added = in_container("fw", f"printf %s {shlex.quote(block)} | nft -f -")
    assert added.returncode == 0, added.stderr
    try:
        sessions = measure_from("guest-01", seconds=2)
    finally:
        removed = in_container("fw", "nft delete table inet medinfra_test_https_only")
    assert removed.returncode == 0, removed.stderr
    assert {key: bool(s["held"]) and s["echoed"] > 0 for key, s in sessions.items()} == {
        ("udp", 3478): False, ("tls", 5349): False, ("tls", 443): True}, sessions
    assert sessions["tls", 443]["loss_ratio"] < 0.05, sessions["tls", 443]


def test_probe_figures_follow_a_weak_network_and_its_alerts_fire_and_clear(lab: str) -> None:
    topology_file = INVENTORY / "hospital.yml"
    baseline = measure_from("guest-01", keep=[["udp", 3478]], seconds=5, rate=100)["udp", 3478]
    assert baseline["loss_ratio"] < 0.01 and baseline["rtt_p50"] < 0.02, baseline
    try:
        applied = netem.apply(topology_file, "guest", netem.Impairment(200, 50, 5))
        assert not applied.problems, applied.problems
        # 2000 packets: 3-8 % of them lost has probability 1 - 2e-5 at 5 %; the median of 1900 normal draws around
        # 200 ms strays ~1.5 ms; RFC 3550 jitter of a 50 ms deviation is about 56 ms.
        weak = measure_from("guest-01", keep=[["udp", 3478]], seconds=20, rate=100)["udp", 3478]
        assert 0.18 <= weak["rtt_p50"] <= 0.26, weak
        assert 0.03 <= weak["loss_ratio"] <= 0.08, weak
        assert weak["jitter"] > 0.03 > baseline["jitter"], (weak, baseline)
        # Beyond every budget, the alerts fire (two probes in a row, 30 s apart in the lab, then Prometheus' for).
        stronger = netem.apply(topology_file, "guest", netem.Impairment(400, 100, 15))
        assert not stronger.problems, stronger.problems
        took = wait_for("the media alerts firing", lambda: media_alerts("firing") >= MEDIA_ALERTS, 360)
        print(f"media alerts firing {took:.0f} s after the impairment")
        notified = monitoring_api(f"https://{MONITOR.address}:9093/api/v2/alerts?filter=team%3D%22network%22")
        reached = {a["labels"]["alertname"]: {r["name"] for r in a["receivers"]} for a in notified}
        assert all("network" in reached.get(name, set()) for name in MEDIA_ALERTS), reached
    finally:
        cleared = netem.clear(topology_file, "guest")
    assert cleared.impairment == netem.Impairment(0, 0, 0), cleared
    took = wait_for("the media alerts clearing", lambda: not media_alerts("firing") | media_alerts("pending"), 300)
    print(f"media alerts cleared {took:.0f} s after the impairment was lifted")


# --- issue 26: lab netem ---
# Before the tests that break and remove the lab: these need the converged relay. Nothing here keeps state: the
# zone is cleared in a finally.
STUN_RTT = Path(__file__).with_name("stun_rtt.py").read_text(encoding="utf-8")


def stun_round_trips(count: int, interval_ms: float) -> tuple[int, list[float]]:
    """``count`` STUN Binding requests from guest-01 to the relay (the declared flow guest -> turn udp 3478, through
    the zone firewall), one every ``interval_ms``: how many got no answer, and the round-trip times in ms."""
    relay = TOPOLOGY.host("turn").address
    result = lab_ssh("guest-01", f"python3 -c {shlex.quote(STUN_RTT)} {relay} 3478 {count} {interval_ms} 1")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    return answer["sent"] - len(answer["rtt_ms"]), answer["rtt_ms"]


def lab_netem(*options: str) -> str:
    result = medinfra("lab", "netem", "guest", "-i", str(INVENTORY), *options)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_netem_delays_and_drops_what_the_firewall_sends_into_the_zone_and_clear_restores_it(lab: str) -> None:
    lost, rtts = stun_round_trips(500, 5)
    assert lost <= 5 and statistics.median(rtts) < 20, (lost, statistics.median(rtts))
    try:
        assert "delay 200ms, jitter 50ms, loss 0%" in lab_netem("--delay", "200ms", "--jitter", "50ms")
        _, rtts = stun_round_trips(500, 5)
        # Normal jitter around 200 ms: the median of 500 draws strays ~3 ms; the band is 20 ms below, 60 above.
        assert 180 <= statistics.median(rtts) <= 260, statistics.median(rtts)
        assert "loss 5%" in lab_netem("--loss", "5%")  # replaces the delay, no --clear between
        lost, rtts = stun_round_trips(2000, 2)
        # 3-8 % of 2000: Binomial(2000, 0.05) falls outside 60-160 with probability about 2e-5.
        assert 60 <= lost <= 160, lost
        assert statistics.median(rtts) < 20, statistics.median(rtts)
    finally:
        cleared = lab_netem("--clear")
    assert "no impairment" in cleared
    lost, rtts = stun_round_trips(500, 5)
    # With 5 % loss still in force, 5 or fewer of 500 lost has probability about 3e-5.
    assert lost <= 5 and statistics.median(rtts) < 20, (lost, statistics.median(rtts))


def test_lab_up_recovers_from_a_killed_run(lab: str) -> None:
    podman("kill", "lab-guest-01")
    podman("rm", "--force", "lab-turn")
    result = medinfra("lab", "up", "-i", str(INVENTORY))
    assert result.returncode == 0, result.stderr
    assert "removing leftover container lab-guest-01" in result.stdout
    assert "2 created" in result.stdout
    status = medinfra("lab", "status", "-i", str(INVENTORY))
    assert status.returncode == 0, status.stdout
    assert f"{HOSTS}/{HOSTS} hosts reachable over SSH" in status.stdout


def test_lab_down_removes_what_it_made_and_nothing_else(lab: str) -> None:
    bystander = "medinfra-test-bystander"
    podman("network", "create", "--internal", bystander)
    try:
        result = medinfra("lab", "down", "-i", str(INVENTORY))
        assert result.returncode == 0, result.stderr
        assert f"removed {HOSTS} containers and {len(TOPOLOGY.zones)} networks" in result.stdout
        assert podman_json("ps", "--all", "--filter", f"label={LABEL}=lab", "--format", "json") == []
        assert podman_json("network", "ls", "--filter", f"label={LABEL}=lab", "--format", "json") == []
        assert podman("network", "exists", bystander, check=False).returncode == 0
        assert not (INVENTORY / "group_vars" / "all" / "lab_connection.yml").exists()
        assert not (INVENTORY / ".lab").exists()
        status = medinfra("lab", "status", "-i", str(INVENTORY))
        assert status.returncode == 1 and f"0/{HOSTS} hosts reachable" in status.stdout
    finally:
        podman("network", "rm", bystander)
