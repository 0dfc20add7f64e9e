"""Backups on live containers: restic over chrooted SFTP to the backup server, a real PostgreSQL dumped and
restored, a corrupted pack caught by `restic check`, a failing pg_dump recorded as a failure, restore drills, and
the repository password nowhere but its 0600 file."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import testinfra

PASSWORD = "molecule-repository-password-not-a-secret"
RUNNER = "/usr/local/lib/medinfra/medinfra-backup"
# The runner outside systemd, as an operator would run it: the password still comes from its file.
AS_OPERATOR = f"RESTIC_PASSWORD_FILE=/etc/medinfra/backup/repository-password {RUNNER}"
TEXTFILE = "/var/lib/prometheus/node-exporter/medinfra_backup_data.prom"
REPOSITORY = "/srv/backup/restic-bk-db/repo/data"
KINDS = ("run", "check", "drill")


@pytest.fixture(scope="module")
def db() -> Any:
    return testinfra.get_host("podman://bk-db")


@pytest.fixture(scope="module")
def server() -> Any:
    return testinfra.get_host("podman://bk-server")


def metrics(host: Any) -> dict[str, float]:
    text = host.file(TEXTFILE).content_string
    return {m.group(1): float(m.group(2)) for m in re.finditer(r'^(\w+)\{set="data"\} (\S+)$', text, re.M)}


def start(host: Any, kind: str) -> Any:
    """Run one of the set's jobs as its timer would, and wait for it.

    A run its timer began earlier (every 7 minutes) would absorb `systemctl start` of the same oneshot unit, which
    then returns that run's result, taken before the test's change: so wait until the unit is idle first."""
    unit = f"medinfra-backup-{kind}@data.service"
    host.check_output(f"while [ \"$(systemctl show -P ActiveState {unit})\" = activating ]; do sleep 1; done")
    return host.run(f"systemctl start {unit}")


def snapshot_count(host: Any) -> int:
    out = host.check_output("RESTIC_PASSWORD_FILE=/etc/medinfra/backup/repository-password restic --no-cache"
                            " --repo sftp:medinfra-backup-server:/repo/data"
                            " -o 'sftp.command=ssh -F /etc/medinfra/backup/ssh_config medinfra-backup-server -s sftp'"
                            " snapshots --json --tag data")
    return len(re.findall(r'"short_id"', out))


def sql(host: Any, query: str) -> str:
    return str(host.check_output(f"runuser -u postgres -- psql -tA -d hisdb -c \"{query}\"")).strip()


@pytest.fixture(scope="module")
def first_backup(db: Any) -> dict[str, float]:
    # A new scan arrives: 1 MB the repository has never seen.
    db.check_output("head -c 1000000 /dev/urandom > /srv/his/images/ct-$(date +%s%N).dcm")
    result = start(db, "run")
    assert result.rc == 0, db.run("journalctl -u medinfra-backup-run@data.service -n 30 --no-pager").stdout
    return metrics(db)


@pytest.mark.parametrize("kind", KINDS)
def test_timers_are_enabled_and_persistent(db: Any, kind: str) -> None:
    timer = db.service(f"medinfra-backup-{kind}@data.timer")
    assert timer.is_enabled and timer.is_running
    assert db.run(f"systemctl show -P Persistent medinfra-backup-{kind}@data.timer").stdout.strip() == "yes"


def test_backups_run_every_half_rpo(db: Any) -> None:
    # 24x7-critical: RPO 15 minutes, so a backup every 7 minutes.
    calendar = db.check_output("systemctl show -P TimersCalendar medinfra-backup-run@data.timer")
    assert re.findall(r"OnCalendar=(.+?) ;", calendar) == ["*-*-* *:00/7:00"], calendar


def test_backup_succeeds_and_is_recorded(first_backup: dict[str, float]) -> None:
    assert first_backup["medinfra_backup_last_run_success"] == 1
    assert abs(first_backup["medinfra_backup_last_success_timestamp_seconds"] - time.time()) < 600
    assert first_backup["medinfra_backup_snapshots"] >= 1
    assert first_backup["medinfra_backup_added_bytes"] >= 1_000_000  # the new scan at least


def test_files_restore_byte_for_byte(db: Any, first_backup: dict[str, float]) -> None:
    original = db.check_output("cd /srv/his && find . -type f -print0 | sort -z | xargs -0 sha256sum")
    db.check_output("echo tampered >> /srv/his/documents/summary.txt && rm /srv/his/documents/2026/report-7.pdf")
    db.check_output("rm -rf /var/tmp/restore-test")
    restored = db.run(f"{AS_OPERATOR} restore data --target /var/tmp/restore-test")
    assert restored.rc == 0, restored.stderr
    copy = db.check_output("cd /var/tmp/restore-test/srv/his && find . -type f -print0 | sort -z | xargs -0 sha256sum")
    assert copy == original
    db.check_output("cp -a /var/tmp/restore-test/srv/his/. /srv/his/ && rm -rf /var/tmp/restore-test")


def test_dropped_table_comes_back_from_the_dump(db: Any, first_backup: dict[str, float]) -> None:
    rows = sql(db, "SELECT count(*), sum(patient_id) FROM encounters")
    db.check_output("runuser -u postgres -- psql -d hisdb -c 'DROP TABLE encounters'")
    db.check_output(f"rm -rf /var/tmp/restore-db && {AS_OPERATOR} restore data --target /var/tmp/restore-db")
    db.check_output("runuser -u postgres -- pg_restore -d hisdb --table=encounters"
                    " < /var/tmp/restore-db/var/backups/medinfra/postgresql/data/hisdb.dump")
    db.check_output("rm -rf /var/tmp/restore-db")
    assert sql(db, "SELECT count(*), sum(patient_id) FROM encounters") == rows
    assert rows.startswith("1000|")


def test_restore_drill_passes_and_is_recorded(db: Any, first_backup: dict[str, float]) -> None:
    result = start(db, "drill")
    assert result.rc == 0, db.run("journalctl -u medinfra-backup-drill@data.service -n 30 --no-pager").stdout
    journal = db.check_output("journalctl -u medinfra-backup-drill@data.service -n 20 --no-pager -o cat")
    assert '"databases_restored": ["hisdb"]' in journal
    found = metrics(db)
    assert found["medinfra_backup_restore_drill_success"] == 1
    assert abs(found["medinfra_backup_restore_drill_timestamp_seconds"] - time.time()) < 600
    # The drill leaves no scratch database and no restored files behind.
    assert sql(db, "SELECT count(*) FROM pg_database WHERE datname LIKE 'medinfra_drill_%'") == "0"
    assert db.check_output("ls -A /var/tmp/medinfra-backup-drill") == ""


def test_failing_pg_dump_is_a_failure_and_no_snapshot(db: Any, first_backup: dict[str, float]) -> None:
    before = metrics(db)
    snapshots = snapshot_count(db)
    db.check_output("runuser -u postgres -- psql -c 'ALTER DATABASE hisdb RENAME TO hisdb_elsewhere'")
    try:
        result = start(db, "run")
    finally:
        db.check_output("runuser -u postgres -- psql -c 'ALTER DATABASE hisdb_elsewhere RENAME TO hisdb'")
    assert result.rc == 1, result.stderr  # systemctl's "job failed": the runner exited 1
    after = metrics(db)
    assert after["medinfra_backup_last_run_success"] == 0
    last_success = before["medinfra_backup_last_success_timestamp_seconds"]
    assert after["medinfra_backup_last_success_timestamp_seconds"] == last_success
    assert after["medinfra_backup_last_run_timestamp_seconds"] > last_success
    assert snapshot_count(db) == snapshots
    journal = db.check_output("journalctl -u medinfra-backup-run@data.service -n 20 --no-pager -o cat")
    assert "pg_dump of hisdb exited" in journal


def test_check_catches_a_corrupted_pack(db: Any, server: Any, first_backup: dict[str, float]) -> None:
    assert start(db, "check").rc == 0
    assert metrics(db)["medinfra_backup_check_success"] == 1
    pack = server.check_output(f"find {REPOSITORY}/data -type f -size +1M | head -1")
    assert pack, "no pack file of more than 1 MB"
    server.check_output(f"cp -p {pack} /root/pack.orig && chmod u+w {pack}"
                        f" && printf 'corrupted' | dd of={pack} bs=1 seek=4096 conv=notrunc status=none")
    try:
        # The whole repository: the timer's daily thirtieth might not include this pack.
        corrupt = db.run(f"{AS_OPERATOR} check data --subset 1/1")
        found = metrics(db)
    finally:
        server.check_output(f"cp -p /root/pack.orig {pack} && rm /root/pack.orig")
    assert corrupt.rc == 1, corrupt.stderr  # the runner's failed check
    assert "pack" in corrupt.stderr.lower(), corrupt.stderr
    assert found["medinfra_backup_check_success"] == 0
    assert db.run(f"{AS_OPERATOR} check data --subset 1/1").rc == 0
    assert metrics(db)["medinfra_backup_check_success"] == 1


def test_repository_is_encrypted_on_the_server(server: Any, first_backup: dict[str, float]) -> None:
    found = server.run(f"grep -rl 'discharge summary' {REPOSITORY}")
    assert found.rc == 1 and found.stdout == ""
    assert server.file(f"{REPOSITORY}/config").exists


def test_password_only_in_its_file(db: Any, first_backup: dict[str, float]) -> None:
    password_file = db.file("/etc/medinfra/backup/repository-password")
    assert (password_file.mode, password_file.user, password_file.content_string) == (0o600, "root", PASSWORD)
    for place in ("/etc/systemd/system", "/etc/medinfra/backup/sets", "/var/lib/medinfra-backup",
                  "/var/lib/prometheus/node-exporter"):
        assert db.run(f"grep -rlF {PASSWORD} {place}").stdout == "", place
    assert PASSWORD not in db.check_output("journalctl --no-pager -o cat")
    # While a backup runs, no process carries the password on its command line or in its environment.
    db.check_output("systemctl start --no-block medinfra-backup-run@data.service")
    seen = db.check_output("for i in $(seq 1 20); do cat /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null"
                           " | tr '\\0' '\\n'; sleep 0.1; done")
    assert "restic" in seen or "medinfra-backup" in seen
    assert PASSWORD not in seen
    db.run("systemctl start medinfra-backup-run@data.service")


def test_client_account_is_sftp_only_and_chrooted(db: Any, server: Any) -> None:
    ssh = "ssh -F /etc/medinfra/backup/ssh_config medinfra-backup-server"
    shell = db.run(f"{ssh} echo shell-access </dev/null")
    assert "shell-access" not in shell.stdout
    listing = db.check_output("echo 'ls -a /' | sftp -F /etc/medinfra/backup/ssh_config -b - medinfra-backup-server")
    assert "repo" in listing and "etc" not in listing.split()
    # No password authentication, even for the account's own name.
    refused = db.run("ssh -o BatchMode=yes -o PubkeyAuthentication=no -o StrictHostKeyChecking=no"
                     " -o UserKnownHostsFile=/dev/null restic-bk-db@10.238.10.10 true")
    assert refused.rc == 255 and "Permission denied" in refused.stderr  # ssh's own failure
    account = server.user("restic-bk-db")
    assert account.shell == "/usr/sbin/nologin" and account.password == "!"
    assert server.file("/srv/backup/restic-bk-db").user == "root"
    assert server.file("/srv/backup/restic-bk-db/repo").mode == 0o700


def test_units_are_sandboxed(db: Any) -> None:
    exposure = db.check_output("systemd-analyze security --no-pager medinfra-backup-run@data.service | tail -1")
    score = float(re.search(r": ([0-9]+\.[0-9]+) ", exposure).group(1))  # type: ignore[union-attr]
    assert score <= 3.0, exposure
