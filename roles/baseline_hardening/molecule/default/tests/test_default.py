"""Running state after baseline_hardening: what the host does, not what its files say."""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import subprocess
from pathlib import Path

import pytest

CONTAINER = "hardening-host"  # as molecule.yml and hospital.yml name it


def effective_sshd(host) -> dict[str, str]:
    out = host.check_output("sshd -T")
    return {k: v for k, _, v in (line.partition(" ") for line in out.splitlines())}


def test_sshd_effective_settings(host) -> None:
    sshd = effective_sshd(host)
    assert sshd["permitrootlogin"] == "no"
    assert sshd["passwordauthentication"] == "no"
    assert sshd["kbdinteractiveauthentication"] == "no"
    assert sshd["permitemptypasswords"] == "no"
    assert sshd["authenticationmethods"] == "publickey"
    assert sshd["maxauthtries"] == "3"
    assert sshd["maxsessions"] == "2"
    assert sshd["logingracetime"] == "30"
    assert sshd["clientaliveinterval"] == "300"
    assert sshd["clientalivecountmax"] == "2"
    assert sshd["allowgroups"] == "ssh-users"
    assert sshd["x11forwarding"] == "no"
    assert sshd["allowtcpforwarding"] == "no"
    assert sshd["allowagentforwarding"] == "no"
    assert sshd["banner"] == "/etc/issue.net"
    for key in ("ciphers", "macs", "kexalgorithms", "hostkeyalgorithms"):
        offered = sshd[key].split(",")
        weak = [a for a in offered if "cbc" in a or "sha1" in a or a == "ssh-rsa" or "nistp" in a]
        assert not weak, (key, weak)


def test_drop_ins_cannot_weaken_sshd(host) -> None:
    host.run("mkdir -p /etc/ssh/sshd_config.d")
    host.run(
        "printf 'PermitRootLogin yes\\nPasswordAuthentication yes\\nMatch all\\n  PasswordAuthentication yes\\n' "
        "> /etc/ssh/sshd_config.d/99-weaken.conf"
    )
    try:
        sshd = effective_sshd(host)
        assert sshd["permitrootlogin"] == "no"
        assert sshd["passwordauthentication"] == "no"
    finally:
        host.run("rm -f /etc/ssh/sshd_config.d/99-weaken.conf")


def test_banner_is_bilingual(host) -> None:
    banner = host.file("/etc/issue.net").content_string
    assert "仅限授权人员" in banner and "Authorised users only" in banner


def test_sshd_running_and_enabled(host) -> None:
    ssh = host.service("ssh")
    assert ssh.is_running and ssh.is_enabled


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("net.ipv4.ip_forward", "0"),
        ("net.ipv4.conf.all.rp_filter", "1"),
        ("net.ipv4.conf.all.accept_redirects", "0"),
        ("net.ipv4.conf.all.send_redirects", "0"),
        ("net.ipv4.conf.all.accept_source_route", "0"),
        ("net.ipv4.conf.all.log_martians", "1"),
        ("net.ipv4.tcp_syncookies", "1"),
        ("net.ipv4.icmp_echo_ignore_broadcasts", "1"),
    ],
)
def test_live_network_sysctls(host, key: str, value: str) -> None:
    assert host.check_output(f"sysctl -n {key}") == value


def test_kernel_sysctls_persisted_for_boot(host) -> None:
    # Kernel-wide values belong to the host kernel inside a container; the boot file carries them.
    settings = host.file("/etc/sysctl.d/60-medinfra-hardening.conf").content_string
    for line in (
        "kernel.randomize_va_space=2",
        "kernel.kptr_restrict=2",
        "fs.suid_dumpable=0",
        "kernel.yama.ptrace_scope=1",
        "kernel.dmesg_restrict=1",
    ):
        assert line in settings.replace(" ", "")


def test_auditd_enabled_with_its_rules(host) -> None:
    assert host.service("auditd").is_enabled
    # auditctl cannot load rules in a container; the rules must still be what augenrules would load.
    rules = host.file("/etc/audit/rules.d/50-medinfra.rules").content_string
    for key in ("-k identity", "-k sudoers", "-k sshd", "-k time-change", "-k privileged", "-k phi"):
        assert key in rules
    assert "-w /srv/his -p rwa -k phi" in rules


def test_services_active_and_enabled(host) -> None:
    for unit in ("rsyslog", "sysstat", "apt-daily-upgrade.timer", "dailyaidecheck.timer", "medinfra-rkhunter.timer"):
        assert host.service(unit).is_enabled, unit
        assert host.service(unit).is_running, unit
    # chrony cannot set a container's clock: enabled, and skipped by its own CAP_SYS_TIME condition.
    assert host.service("chrony").is_enabled
    chrony = host.file("/etc/chrony/chrony.conf").content_string
    # hospital.yml's time server (site.time_servers), and no other source.
    assert [line for line in chrony.splitlines() if line.startswith(("server ", "pool "))] == [
        "server 10.231.10.10 iburst"
    ], chrony
    assert host.check_output("systemctl is-system-running") == "running"


def test_maintenance_window_and_security_only_upgrades(host) -> None:
    timer = host.check_output("systemctl show -P TimersCalendar apt-daily-upgrade.timer")
    # The role's window ("*-*-* 03:00", systemd's normal form), replacing Debian's calendar rather than adding to it.
    assert re.findall(r"OnCalendar=(.+?) ;", timer) == ["*-*-* 03:00:00"], timer
    config = host.check_output("apt-config dump Unattended-Upgrade::Origins-Pattern")
    assert "Debian-Security" in config and 'label=Debian"' not in config
    sources = host.check_output("cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true")
    assert "bookworm-security" in sources


def test_aide_database_initialised(host) -> None:
    db = host.file("/var/lib/aide/aide.db")
    assert db.exists and db.size > 100_000
    assert db.mode & 0o077 == 0
    # Recorded with SHA-512 alone, not Debian's every-hash default.
    attributes = host.check_output("zcat /var/lib/aide/aide.db | grep -m1 '^@@db_spec'").split()
    assert "sha512" in attributes and "md5" not in attributes and "tiger" not in attributes


def test_file_modes(host) -> None:
    assert host.file("/etc/ssh/sshd_config").mode == 0o600
    assert host.file("/etc/sudoers.d/10-medinfra-hardening").mode == 0o440
    assert host.file("/etc/shadow").mode & 0o007 == 0
    assert host.file("/etc/audit/rules.d/50-medinfra.rules").mode == 0o640
    assert host.file("/etc/sudoers.d").mode == 0o750
    assert host.file("/home/medinfra").mode == 0o750
    assert host.file("/var/lib/rkhunter/db/rkhunter.dat").exists


def set_password(host, password: str):
    return host.run(f"printf '%s\\n%s\\n' {shlex.quote(password)} {shlex.quote(password)} | passwd medinfra 2>&1")


def test_auth_policy_in_force(host) -> None:
    assert "pam_faillock.so preauth" in host.file("/etc/pam.d/common-auth").content_string
    assert "nullok" not in host.file("/etc/pam.d/common-auth").content_string
    assert "pam_pwquality.so" in host.file("/etc/pam.d/common-password").content_string
    # passwd through the live PAM stack (enforce_for_root: root is checked too). A short password is refused with
    # pam_pwquality's reason; a strong one, new each run, is accepted (the dictionary check can load its dictionary).
    weak = set_password(host, "Short1!")
    assert weak.rc == 10, weak  # passwd: password unchanged
    assert "BAD PASSWORD: The password is shorter than 14 characters" in weak.stdout, weak.stdout
    strong = set_password(host, f"Vq7#mJ2!pXz9-{secrets.token_hex(6)}")
    assert strong.rc == 0 and "passwd: password updated successfully" in strong.stdout, strong.stdout
    settings = [line.split() for line in host.file("/etc/login.defs").content_string.splitlines()
                if line.startswith(("PASS_MAX_DAYS", "UMASK"))]
    # Defaults baseline_hardening_password_max_days 90 and baseline_hardening_umask "027", once each.
    assert sorted(settings) == [["PASS_MAX_DAYS", "90"], ["UMASK", "027"]], settings
    assert int(dict(settings)["PASS_MAX_DAYS"]) == 90
    assert host.check_output("sudo -u medinfra bash -lc umask") == "0027"
    assert host.check_output("bash -lc 'echo $TMOUT'") == "900"


def test_system_accounts_have_no_shell(host) -> None:
    # Debian's base-passwd creates every one of them: each must exist, or the check would pass on nothing.
    for user in ("daemon", "bin", "sys", "www-data", "nobody"):
        assert host.user(user).exists, user
        assert host.user(user).shell in ("/usr/sbin/nologin", "/bin/false", "/usr/bin/false"), user


def test_sudo_uses_pty_and_logs(host) -> None:
    out = host.check_output("sudo -l -U medinfra")
    assert "use_pty" in out
    host.run("sudo -u medinfra sudo -n true")
    assert "COMMAND=/usr/bin/true" in host.file("/var/log/sudo.log").content_string


def test_insecure_packages_absent(host) -> None:
    for package in ("telnet", "rsh-client", "inetutils-ftp", "tftp-hpa", "xinetd"):
        assert not host.package(package).is_installed, package


def container_address() -> str:
    result = subprocess.run(
        ["podman", "inspect", CONTAINER, "--format", "json"], capture_output=True, text=True, check=True
    )
    return str(json.loads(result.stdout)[0]["NetworkSettings"]["Networks"]["podman"]["IPAddress"])


def ssh(user: str, *options: str) -> subprocess.CompletedProcess[str]:
    key = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "login_key"
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            *options,
            f"{user}@{container_address()}",
            "id -un",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_fresh_key_login_works() -> None:
    result = ssh("medinfra")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "medinfra"


def test_root_login_is_refused_even_with_an_authorised_key() -> None:
    result = ssh("root")
    assert result.returncode == 255, result  # ssh's own failure, not the remote command's
    assert "Permission denied" in result.stderr


def test_password_login_is_refused() -> None:
    result = ssh(
        "medinfra", "-o", "PreferredAuthentications=password,keyboard-interactive", "-o", "PubkeyAuthentication=no"
    )
    assert result.returncode == 255, result
    # The server offers public keys only.
    assert "Permission denied (publickey)" in result.stderr
