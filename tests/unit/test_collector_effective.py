"""The collector's effective-state parsers on trees recorded from lab hosts (tests/unit/fixtures/hosts), then on
the same trees with the real misconfigurations a naive reading passes: each must change the verdict's fact."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medinfra.collector import collector_module

collector = collector_module()
HOSTS = Path(__file__).parent / "fixtures" / "hosts"


def recorded(host: str, tmp_path: Path) -> Path:
    """A writable copy of the files recorded from a lab host."""
    root = tmp_path / host
    shutil.copytree(HOSTS / host / "root", root, symlinks=True)
    return root


def command_output(host: str, name: str) -> str:
    text = (HOSTS / host / "commands" / f"{name}.txt").read_text(encoding="utf-8")
    return text.split("\n", 1)[1]


def write(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")


def append(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.write_text(target.read_text(encoding="utf-8") + text, encoding="utf-8")


def prepend(root: Path, path: str, line: str) -> None:
    target = root / path.lstrip("/")
    target.write_text(line + "\n" + target.read_text(encoding="utf-8"), encoding="utf-8")


# ------------------------------------------------------------------ sshd


def test_sshd_settings_from_the_real_sshd_T() -> None:
    settings = collector.parse_sshd_settings(command_output("his-app", "sshd-T"))
    assert settings["permitrootlogin"] == "no" and settings["passwordauthentication"] == "no"
    assert settings["allowgroups"] == ["ssh-users"]
    assert "aes256-gcm@openssh.com" in settings["ciphers"]
    legacy = collector.parse_sshd_settings(command_output("lis-legacy", "sshd-T"))
    assert legacy["permitrootlogin"] == "without-password"


def test_a_connection_reaches_every_match_block(tmp_path: Path) -> None:
    root = recorded("backup-01", tmp_path)
    blocks = collector.match_criteria(collector.sshd_config_lines("/etc/ssh/sshd_config", str(root)))
    assert blocks == [[("group", "medinfra-backup")]]  # the backup server's SFTP drop-in, through Include
    connections = collector.match_connections(blocks, member=lambda group: "restic-his-db")
    assert [c["user"] for c in connections] == ["root", "restic-his-db"]

    append(root, "/etc/ssh/sshd_config", "Match Address 10.0.0.0/8,!10.9.0.0/16 User medinfra\n  PermitRootLogin yes\n")
    blocks = collector.match_criteria(collector.sshd_config_lines("/etc/ssh/sshd_config", str(root)))
    connections = collector.match_connections(blocks, member=lambda group: None)
    specs = {collector.connection_spec(c) for c in connections}
    # The first, middle and last host of the network: a narrower block before it cannot hide all of it.
    for address in ("10.0.0.1", "10.128.0.0", "10.255.255.254"):
        assert f"user=medinfra,host=unlisted.invalid,addr={address},laddr=0.0.0.0,lport=22" in specs
    assert "user=root,host=unlisted.invalid,addr=203.0.113.10,laddr=0.0.0.0,lport=22" in specs


def test_match_all_and_local_port_blocks() -> None:
    blocks = collector.match_criteria(["Match all", "match LocalPort 2222 Host *.lab"])
    assert blocks == [[], [("localport", "2222"), ("host", "*.lab")]]
    connections = collector.match_connections(blocks)
    assert {"user": "root", "host": "x.lab", "addr": "203.0.113.10", "laddr": "0.0.0.0", "lport": "2222"} in connections


# ------------------------------------------------------------------ sudo


def test_sudo_as_recorded(tmp_path: Path) -> None:
    facts = collector.collect_sudo(str(recorded("his-app", tmp_path)))
    assert facts["use_pty"] is True and facts["logfile"] == "/var/log/sudo.log"
    assert facts["authenticate_disabled"] is False
    assert "/etc/sudoers.d/README" not in facts["files_read"]  # a name with a dot: sudo skips it


@pytest.mark.parametrize(
    ("name", "text", "fact", "value"),
    [
        ("99-local", "Defaults !use_pty\n", "use_pty", False),  # the last Defaults wins
        ("99-local", "Defaults:alice !use_pty\n", "use_pty", False),  # scoped: alice's sessions get no pty
        ("99-local.disabled", "Defaults !use_pty\n", "use_pty", True),  # sudo never reads it
        ("99-local~", "Defaults !use_pty\n", "use_pty", True),
        ("99-local", "Defaults:%vendors !authenticate\n", "authenticate_disabled", True),
        ("99-local", 'Defaults logfile=""\n', "logfile", None),
        ("00-early", "Defaults !use_pty\n", "use_pty", True),  # overridden by the hardening file after it
    ],
)
def test_sudoers_changes_as_sudo_applies_them(tmp_path: Path, name: str, text: str, fact: str, value: object) -> None:
    root = recorded("his-app", tmp_path)
    write(root, f"/etc/sudoers.d/{name}", text)
    assert collector.collect_sudo(str(root))[fact] == value


# ------------------------------------------------------------------ PAM


def test_pam_stacks_as_recorded(tmp_path: Path) -> None:
    facts = collector.collect_pam(str(recorded("his-app", tmp_path)))
    lines = facts["pwquality_lines"]
    assert {line["service"] for line in lines} >= {"common-password", "passwd", "chpasswd"}
    assert {line["settings"]["minlen"] for line in lines} == {"14"}
    assert {line["control"] for line in lines} == {"requisite"}
    assert "nullok" not in facts["pam_unix_args"]
    sshd_auth = [e for e in facts["services"]["sshd"] if e["type"] == "auth"]
    assert [e["module"] for e in sshd_auth][:2] == ["pam_faillock.so", "pam_unix.so"]  # @include common-auth
    assert {e["file"] for e in sshd_auth} == {"common-auth"}
    legacy = collector.collect_pam(str(recorded("lis-legacy", tmp_path)))
    assert "nullok" in legacy["pam_unix_args"]
    assert legacy["pwquality_lines"] and not any("minlen" in line["settings"] for line in legacy["pwquality_lines"])


def test_module_line_arguments_override_pwquality_conf(tmp_path: Path) -> None:
    root = recorded("his-app", tmp_path)
    target = root / "etc/pam.d/common-password"
    target.write_text(target.read_text().replace("pam_pwquality.so retry=3", "pam_pwquality.so retry=3 minlen=6"))
    lines = collector.collect_pam(str(root))["pwquality_lines"]
    assert {line["settings"]["minlen"] for line in lines} == {"6"}


def test_included_files_and_substacks_are_followed(tmp_path: Path) -> None:
    root = recorded("his-app", tmp_path)
    write(root, "/etc/pam.d/extra-auth", "auth sufficient pam_unix.so nullok\npassword optional pam_pwquality.so\n")
    prepend(root, "/etc/pam.d/sshd", "@include extra-auth")
    prepend(root, "/etc/pam.d/su", "auth substack extra-auth")
    facts = collector.collect_pam(str(root))
    assert "nullok" in facts["pam_unix_args"]
    su_auth = [e for e in facts["services"]["su"] if e["type"] == "auth"]
    assert su_auth[0] == {"type": "auth", "control": "sufficient", "module": "pam_unix.so", "args": ["nullok"],
                          "file": "extra-auth"}
    assert not any(e["type"] == "password" and e["file"] == "extra-auth" for e in facts["services"]["su"])
    optional = [line["service"] for line in facts["pwquality_lines"] if line["control"] == "optional"]
    assert "sshd" in optional  # @include brings the password line too; the control says it enforces nothing


def test_an_include_loop_ends() -> None:
    assert collector.pam_stack("no-such-service") is None


# ------------------------------------------------------------------ audit


def effective(root: Path) -> dict[str, object]:
    return collector.effective_audit_rules(collector.augenrules_order(collector.audit_rules_on_disk(str(root))))


def test_audit_rules_as_augenrules_loads_them(tmp_path: Path) -> None:
    root = recorded("his-app", tmp_path)
    rules = effective(root)
    # rules.d/audit.rules (Debian's) holds a -D that sorts after 50-medinfra.rules: augenrules moves it first.
    assert "-w /etc/shadow -p wa -k identity" in rules["rules"] and rules["suppressed"] == []


@pytest.mark.parametrize(
    ("name", "rule", "suppressed"),
    [
        ("00-local.rules", "-a never,exit -F path=/etc/shadow", ["-w /etc/shadow -p wa -k identity"]),
        ("99-local.rules", "-A never,exit -F path=/etc/shadow", ["-w /etc/shadow -p wa -k identity"]),
        ("00-local.rules", "-a exit,never -F dir=/etc/ -F auid>=1000", None),  # a whole tree, any order of words
        ("00-local.rules", "-a never,task", None),
        ("00-local.rules", "-a always,exclude -F msgtype=SYSCALL", None),
        ("99-local.rules", "-e 0", None),
    ],
)
def test_suppressing_audit_rules(tmp_path: Path, name: str, rule: str, suppressed: list[str] | None) -> None:
    root = recorded("his-app", tmp_path)
    write(root, f"/etc/audit/rules.d/{name}", rule + "\n")
    rules = effective(root)
    hidden = [item["rule"] for item in rules["suppressed"]]
    if suppressed is None:
        assert "-w /etc/shadow -p wa -k identity" in hidden and "-w /etc/shadow -p wa -k identity" not in rules["rules"]
    else:
        assert hidden == suppressed


def test_a_never_rule_after_the_watch_suppresses_nothing(tmp_path: Path) -> None:
    root = recorded("his-app", tmp_path)
    write(root, "/etc/audit/rules.d/99-local.rules", "-a never,exit -F path=/etc/shadow\n")
    assert effective(root)["suppressed"] == []


# ------------------------------------------------------------------ logging, shell, apt, accounts


def test_rsyslog_comments_hide_a_forward(tmp_path: Path) -> None:
    root = recorded("his-app", tmp_path)
    assert [f["target"] for f in collector.rsyslog_forwards(str(root))] == ["10.231.10.11"]
    conf = root / "etc/rsyslog.d/60-medinfra-forward.conf"
    text = conf.read_text()
    conf.write_text(text.replace("action(", "/* action(", 1).replace('"-1")', '"-1") */', 1))
    assert collector.rsyslog_forwards(str(root)) == []
    assert collector.rsyslog_uncommented('a(x="#not a comment") # gone\n/* b\n c */d') == 'a(x="#not a comment")\nd'


def test_tmout_as_a_login_shell_ends_up_with_it(tmp_path: Path) -> None:
    root = recorded("his-app", tmp_path)
    assert collector.collect_shell(str(root))["tmout"] == 900
    write(root, "/etc/profile.d/00-local.sh", "TMOUT=0\nreadonly TMOUT\n")
    shell = collector.collect_shell(str(root))
    assert shell["tmout"] == 0 and shell["tmout_readonly"] is True  # the hardening file cannot change it later
    assert collector.shell_settings(["TMOUT=900", "TMOUT=0", "readonly TMOUT"])["tmout"] == 0  # the last one


def test_apt_settings_agree_with_the_recorded_apt_config_dump(tmp_path: Path) -> None:
    ours = collector.apt_config(str(recorded("his-app", tmp_path)))
    checked = 0
    for line in command_output("his-app", "apt-config-dump").splitlines():
        key, _, value = line.partition(" ")
        if key.startswith(("APT::Periodic::", "Unattended-Upgrade::")) and value.strip('";'):
            assert value.rstrip(";").strip('"') in ours.get(key.rstrip(":").lower(), []), key
            checked += 1
    assert checked >= 3


def test_primary_group_members_count(tmp_path: Path) -> None:
    groups = [collector.grp.struct_group(("shadow", "x", 42, [])), collector.grp.struct_group(("adm", "x", 4, ["a"]))]
    users = [{"name": "mallory", "gid": 42}, {"name": "alice", "gid": 1000}]
    assert collector.group_members("shadow", groups, users) == ["mallory"]
    assert collector.group_members("adm", groups, users) == ["a"]
