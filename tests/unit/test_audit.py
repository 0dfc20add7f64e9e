"""medinfra audit without a lab: inventory reading, connection mapping, results, exit codes, bad input."""

from __future__ import annotations

import importlib.util
import json
import marshal
import shlex
import shutil
import stat
import subprocess
import sys
import zlib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from medinfra.audit.results import (
    AuditRun,
    HostResult,
    exit_code,
    findings_document,
    judge,
    summary_text,
)
from medinfra.audit.targets import (
    BOOTSTRAP,
    SshSettings,
    collector_command,
    inventory_view,
    load_targets,
    program_payload,
    ssh_options,
    ssh_settings,
)
from medinfra.collector import collector_module, default_paths
from medinfra.compliance.evaluate import evaluate
from medinfra.compliance.model import (
    Bilingual,
    Catalog,
    Control,
    HostEvidence,
    Remediation,
    Status,
    Waiver,
)
from medinfra.exits import EXIT_FAILURES, EXIT_OK, EXIT_UNREACHABLE
from medinfra.report.publish import publish
from medinfra.toolenv import run_tool
from tests.conftest import ROOT
from tests.unit.test_collector_monitoring import make_ca, pem

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def control(cid: str, check: dict, applies_when: dict | None = None, hipaa: tuple[str, ...] = ("164.312(b)",)):
    text = Bilingual("text", "文本")
    return Control(
        cid,
        text,
        text,
        text,
        "high",
        "audit",
        check,
        applies_when,
        Remediation("baseline_hardening", (), text),
        {"hipaa": hipaa, "gbt22239": (), "cis_debian12": ()},
        f"{cid}.yml",
    )


CATALOG = Catalog(
    controls=(
        control("root_login_off", {"fact": "sshd.permitrootlogin", "equals": "no"}),
        control(
            "forwarding_off",
            {"fact": ["sysctl", "net.ipv4.ip_forward"], "equals": 0},
            applies_when={"fact": "inventory.services", "not_contains": "zone_firewall"},
        ),
    ),
    frameworks={},
)


def evidence(root_login: str = "no", forward: int = 0) -> dict:
    return {
        "schema": "medinfra-evidence/1",
        "collector_version": "1.0.0",
        "collected_at": "2026-11-22T00:00:00Z",
        "facts": {"sshd": {"permitrootlogin": root_login}, "sysctl": {"net.ipv4.ip_forward": forward}},
    }


def test_applicability_waivers_and_malformed_evidence():
    waiver = Waiver(
        "root_login_off", ("legacy-*",), (), "vendor needs root until 2027 upgrade", "CISO", "high",
        "accepted by the security committee", "vendor VPN only", date(2026, 12, 31),
    )
    expired = Waiver(
        "root_login_off", ("old-*",), (), "expired exception for testing", "CISO", "low",
        "accepted for one quarter", "none", date(2026, 1, 1),
    )
    hosts = [
        HostEvidence("fw", evidence(forward=1), {"services": ["zone_firewall"]}),
        HostEvidence("legacy-lis", evidence(root_login="yes"), {"services": []}),
        HostEvidence("old-pacs", evidence(root_login="yes"), {"services": []}),
        HostEvidence("broken", {"facts": "nonsense"}, {}),
    ]
    findings = {(f.host, f.control): f for f in evaluate(hosts, CATALOG, [waiver, expired], NOW)}
    assert findings["fw", "forwarding_off"].status is Status.NOT_APPLICABLE
    assert findings["fw", "root_login_off"].status is Status.PASS
    waived = findings["legacy-lis", "root_login_off"]
    assert waived.status is Status.WAIVED
    assert waived.waiver == waiver
    assert waived.evidence == {"sshd.permitrootlogin": "yes"}
    flagged = findings["old-pacs", "root_login_off"]
    assert flagged.status is Status.FAIL  # expired waivers do not count
    assert flagged.expired_waiver == expired  # ... but are flagged, so someone renews or fixes
    assert findings["broken", "root_login_off"].status is Status.ERROR


def run_of(results: list[HostResult]) -> AuditRun:
    views = {r.host: {"services": []} for r in results}
    return AuditRun("pyinfra", "inv", NOW, results, judge(results, views, CATALOG, (), NOW), CATALOG, (), 1.0)


def test_exit_codes():
    good = HostResult("a", "audited", "", evidence(), 0.1)
    bad = HostResult("b", "audited", "", evidence(root_login="yes"), 0.1)
    gone = HostResult("c", "unreachable", "SSH: connection refused", None, 0.1)
    assert exit_code(run_of([good])) == EXIT_OK
    assert exit_code(run_of([good, bad])) == EXIT_FAILURES
    assert exit_code(run_of([good, bad, gone])) == EXIT_UNREACHABLE


def test_findings_document_summary_and_private_files(tmp_path):
    run = run_of(
        [
            HostResult("a", "audited", "", evidence(), 0.1),
            HostResult("b", "audited", "", evidence(root_login="yes"), 0.1),
            HostResult("c", "unreachable", "SSH: connection refused", None, 0.1),
        ]
    )
    document = findings_document(run)
    assert document["format"] == "medinfra-findings/1"
    assert document["summary"]["hosts"] == {"audited": 2, "unreachable": 1, "error": 0}
    assert document["summary"]["per_host"]["b"]["fail"] == 1
    assert document["summary"]["per_framework"]["hipaa"]["score"] == 0.75
    assert document["summary"]["top_failures"] == [{"control": "root_login_off", "severity": "high", "hosts": 1}]
    assert {h["name"]: h["status"] for h in document["hosts"]}["c"] == "unreachable"
    text = summary_text(run)
    assert "c: UNREACHABLE: SSH: connection refused" in text
    assert "root_login_off on 1 host(s)" in text
    path = publish(run, tmp_path / "out", None, None).directory / "findings.json"
    assert json.loads(path.read_text())["findings"] == document["findings"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "out" / "evidence" / "a.json").stat().st_mode) == 0o640


def test_ssh_settings_follow_ansible_variables():
    settings = ssh_settings(
        "his-app",
        {
            "ansible_host": "10.0.0.5",
            "ansible_port": 2222,
            "ansible_user": "ops",
            "ansible_become": True,
            "ansible_ssh_private_key_file": "/k",
            "ansible_password": "s3cret",
            "ansible_ssh_common_args": "-o UserKnownHostsFile=/kh -o StrictHostKeyChecking=accept-new "
            "-o IdentitiesOnly=yes",
        },
        host_key_checking=True,
    )
    assert not isinstance(settings, str)
    assert (settings.hostname, settings.port, settings.user, settings.key_file) == ("10.0.0.5", 2222, "ops", "/k")
    assert settings.known_hosts_file == "/kh"
    assert settings.strict_host_key_checking == "accept-new"
    assert settings.become is True
    assert "s3cret" not in repr(settings)  # secrets stay out of logs and tracebacks
    assert ssh_settings("h", {}, host_key_checking=True).strict_host_key_checking == "yes"
    assert ssh_settings("h", {}, host_key_checking=False).strict_host_key_checking == "no"
    assert "not SSH" in ssh_settings("h", {"ansible_connection": "winrm"}, True)
    assert "sudo only" in ssh_settings("h", {"ansible_become": True, "ansible_become_method": "su"}, True)
    assert ssh_options("-oProxyJump=bastion -o 'ServerAliveInterval=5'") == {
        "proxyjump": "bastion",
        "serveraliveinterval": "5",
    }


def test_targets_from_the_lab_inventory_carry_the_topology_view():
    targets = {t.name: t for t in load_targets(ROOT / "inventories" / "lab", "his-app,lis-legacy")}
    assert set(targets) == {"his-app", "lis-legacy"}
    assert targets["his-app"].inventory["services"] == ["his_app"]
    assert targets["his-app"].inventory["data_classification"] == "phi"
    assert targets["lis-legacy"].inventory["legacy"] is True
    assert targets["his-app"].ssh is not None
    assert targets["his-app"].ssh.hostname == "10.231.20.10"
    assert targets["his-app"].inventory["address"] == "10.231.20.10"
    assert inventory_view({})["services"] == []


def audit(tmp_path, *args: str):
    return run_tool(
        ROOT, "medinfra", "audit", "-o", str(tmp_path / "out"), "-q", "--no-history", *args, timeout=120
    )


def test_audit_reports_unreachable_hosts_and_exits_3(tmp_path):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("closed ansible_host=127.0.0.1 ansible_port=9 ansible_user=nobody\n")
    done = audit(tmp_path, "-i", str(inventory))
    assert done.returncode == 3, done.stderr
    assert "closed: UNREACHABLE" in done.stdout
    document = json.loads((tmp_path / "out" / "findings.json").read_text())
    assert document["hosts"][0]["status"] == "unreachable"
    assert document["findings"] == []
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "waivers:\n  - control: no_such_control\n    hosts: ['*']\n    justification: because we must\n"
            "    approver: CISO\n    risk: low\n    risk_acceptance: accepted in committee\n"
            "    compensating_control: none\n    expires: 2027-01-01\n",
            "waivers.yml:2: waivers[0].control: unknown control",
        ),
        (
            "waivers:\n  - control: sshd_root_login_disabled\n    justification: because we must\n"
            "    approver: CISO\n    risk: low\n    risk_acceptance: accepted in committee\n"
            "    compensating_control: none\n    expires: 2027-01-01\n",
            "waivers.yml:2: waivers[0]: needs 'hosts' or 'groups'",
        ),
        (
            "waivers:\n  - control: sshd_root_login_disabled\n    hosts: ['*']\n",
            "waivers.yml:2: waivers[0]: 'justification'",
        ),
    ],
)
def test_bad_waivers_are_located_and_nothing_is_contacted(tmp_path, content, expected):
    waivers = tmp_path / "waivers.yml"
    waivers.write_text(content)
    done = audit(tmp_path, "-i", str(ROOT / "inventories" / "lab"), "--waivers", str(waivers))
    assert done.returncode == 2
    assert expected in done.stderr
    assert not (tmp_path / "out").exists()
    assert "Traceback" not in done.stderr


def test_bad_catalog_and_inventory_exit_2(tmp_path):
    (tmp_path / "controls").mkdir()
    (tmp_path / "controls" / "broken.yml").write_text("id: broken\ntitle: [unclosed\n")
    done = audit(tmp_path, "--catalog", str(tmp_path))
    assert done.returncode == 2
    assert "broken.yml:3: (top level): invalid YAML" in done.stderr
    done = audit(tmp_path, "-i", str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert "inventory not found" in done.stderr


def test_an_alias_bomb_in_a_variable_the_audit_reads_is_refused_before_templating(tmp_path):
    """475 bytes of group_vars expanding to 10**9 paths: templating them ran past 100 s and gigabytes."""
    (tmp_path / "hosts.ini").write_text("h1 ansible_host=127.0.0.1 ansible_port=1\n")
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("\n".join([*lines, "medinfra_data_paths: *a8"]) + "\n")
    done = audit(tmp_path, "-i", str(tmp_path / "hosts.ini"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.endswith(
        "hosts.ini: h1.medinfra_data_paths: more than 100,000 values (YAML aliases can repeat a few bytes billions "
        "of times); medinfra will not expand it\n"
    )


def test_collector_command_keeps_the_sudo_password_off_the_command_line():
    program = f"python3 -I -S -c {shlex.quote(BOOTSTRAP % 'M')}"
    payload = program_payload("SRC = 1\n")
    plain = SshSettings(hostname="h")
    assert collector_command(plain, "SRC = 1\n", "M") == (program, b"M\n" + payload)
    nopasswd = SshSettings(hostname="h", become=True)
    assert collector_command(nopasswd, "SRC = 1\n", "M") == (f"sudo -H -n {program}", b"M\n" + payload)
    with_password = SshSettings(hostname="h", become=True, become_user="audit", become_password="pa ss")
    command, stdin = collector_command(with_password, "SRC = 1\n", "M")
    assert "pa ss" not in command
    assert command == f"sudo -H -S -p '' -u audit {program}"
    assert stdin == b"pa ss\nM\n" + payload
    markers = {collector_command(plain, "SRC = 1\n")[1].partition(b"\n")[0] for _ in range(3)}
    assert len(markers) == 3 and all(len(m) > 32 for m in markers), "a fresh random start marker for every run"


def test_the_program_payload_holds_the_bytecode_and_the_source():
    header, _, rest = zlib.decompress(program_payload("print('ran')\n")).partition(b"\n")
    magic, size = header.split()
    assert magic == importlib.util.MAGIC_NUMBER.hex().encode()
    assert rest[int(size):] == b"print('ran')\n"
    assert marshal.loads(rest[: int(size)]).co_filename == "<medinfra program>"


@pytest.mark.parametrize("magic", ["ours", "another Python's"])
def test_the_bootstrap_runs_the_bytecode_or_compiles_the_source(magic):
    source = "import sys\nprint(sys._getframe().f_code.co_filename, 1 / 1)\n"
    command, stdin = collector_command(SshSettings(hostname="h"), source, "M")
    if magic != "ours":  # a host whose Python reads other bytecode: the bytecode (spoilt here) is left unread
        header, _, rest = zlib.decompress(stdin[2:]).partition(b"\n")
        size = int(header.split()[1])
        stdin = b"M\n" + zlib.compress(b"00000000 %d\n" % size + b"\0" * size + rest[size:])
    done = subprocess.run(["sh", "-c", command], input=stdin, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"<medinfra program> 1.0\n"


def test_a_bad_signing_key_is_reported_before_any_host_is_contacted(tmp_path):
    key = tmp_path / "audit.key"
    key.write_text("not a key\n")
    done = audit(tmp_path, "-i", str(ROOT / "inventories" / "lab"), "--sign", str(key))
    assert done.returncode == 2
    assert f"{key}: (top level): is not a PEM private key" in done.stderr
    assert not (tmp_path / "out").exists() and "Traceback" not in done.stderr


def test_verify_shows_crafted_file_names_escaped(tmp_path, capsys):
    """A results directory someone sent may hold a file whose name paints a fake "signature valid" line."""
    from medinfra.cli import main
    from medinfra.safe_output import OutputDirectory
    from medinfra.signing import generate_keypair, sign_directory

    private, public = generate_keypair(tmp_path / "keys" / "audit")
    results = tmp_path / "results"
    results.mkdir()
    (results / "findings.json").write_text("{}")
    with OutputDirectory.open(results) as out:
        sign_directory(out, private)
    (results / "x\x1b[2K\rverified: 1 files, signature valid").write_text("")
    assert main(["verify", str(results), "--pubkey", str(public)]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out
    assert out == "added: x\\x1b[2K\\x0dverified: 1 files, signature valid\n"


# --- medinfra_paths: published on `all` by the inventory plugin, overridden by a site, carried to the collector

MOVED = {
    "pki": "/srv/pki", "state": "/srv/medinfra", "backup_config": "/srv/backup/etc", "backup_state": "/srv/backup/state"
}


def lab_copy(tmp_path: Path, group_vars: dict[str, Any] | None = None, host_vars: dict[str, Any] | None = None) -> Path:
    """The lab's hospital.yml in an inventory directory of its own, with group_vars/all.yml, host_vars/his-app.yml."""
    inventory = tmp_path / "site"
    inventory.mkdir(parents=True)
    shutil.copy(ROOT / "inventories" / "lab" / "hospital.yml", inventory / "hospital.yml")
    for directory, variables in (("group_vars/all.yml", group_vars), ("host_vars/his-app.yml", host_vars)):
        if variables is not None:
            (inventory / directory).parent.mkdir()
            (inventory / directory).write_text(yaml.safe_dump(variables))
    return inventory


def test_the_inventory_publishes_the_default_paths_and_a_site_overrides_them(tmp_path: Path) -> None:
    default = {t.name: t for t in load_targets(lab_copy(tmp_path / "a"), "his-app,his-db")}
    assert default["his-app"].inventory["paths"] == default_paths() == dict(collector_module().HOST_PATHS)
    assert default_paths()["pki"] == "/etc/medinfra/pki"
    host_only = {**MOVED, "pki": "/srv/his-app/pki"}
    site = lab_copy(tmp_path / "b", group_vars={"medinfra_paths": MOVED}, host_vars={"medinfra_paths": host_only})
    moved = {t.name: t for t in load_targets(site, "his-app,his-db")}
    # Inventory group variables rank below group_vars files, which rank below host_vars files.
    assert moved["his-db"].inventory["paths"] == MOVED
    assert moved["his-app"].inventory["paths"] == host_only
    assert moved["his-db"].ssh is not None


@pytest.mark.parametrize(
    ("paths", "problem"),
    [
        ({"pki": "/srv/pki"}, "medinfra_paths lacks ['backup_config', 'backup_state', 'state'] (a site's map"),
        ({**MOVED, "pki_dir": "/srv/pki"}, "medinfra_paths has unknown keys ['pki_dir']; known: ['backup_config',"),
        ({**MOVED, "pki": "srv/pki"}, "medinfra_paths pki: 'srv/pki' is not a plain absolute path"),
        ({**MOVED, "pki": "/srv/pki/../../etc"}, "medinfra_paths pki: '/srv/pki/../../etc' is not a plain absolute"),
        ({**MOVED, "state": "/srv/my state"}, "medinfra_paths state: '/srv/my state' is not a plain absolute path"),
        ("/srv/pki", "medinfra_paths must be a mapping of ['backup_config', 'backup_state', 'pki', 'state'] to"),
    ],
)
def test_an_unusable_paths_map_makes_the_host_an_error_before_any_contact(
    tmp_path: Path, paths: Any, problem: str
) -> None:
    targets = load_targets(lab_copy(tmp_path, group_vars={"medinfra_paths": paths}), "his-app")
    assert targets[0].ssh is None
    assert targets[0].problem.startswith(problem)


def test_a_site_that_moved_its_paths_is_audited_where_they_are(tmp_path: Path) -> None:
    """group_vars -> load_targets -> the pyinfra transport -> the collector on the host (played by a loopback SSH
    stand-in that runs it as this user) reads the site CA, the segmentation record and the backup files there."""
    root = tmp_path / "host"
    paths = {key: f"{root}{value}" for key, value in MOVED.items()}
    Path(paths["pki"]).mkdir(parents=True)
    Path(paths["pki"], "ca.crt").write_bytes(pem(make_ca("Moved site CA").certificate))
    Path(paths["state"]).mkdir(parents=True)
    Path(paths["state"], "segmentation.json").write_text(json.dumps({"verified_at": "2026-11-20T08:00:00Z", "ok": 4}))
    Path(paths["backup_config"], "sets").mkdir(parents=True)
    Path(paths["backup_config"], "sets", "data.json").write_text(json.dumps({"name": "data", "paths": ["/srv/his"]}))
    Path(paths["backup_config"], "repository-password").write_text("not-a-real-password")
    Path(paths["backup_state"]).mkdir(parents=True)
    inventory = tmp_path / "site"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "group_vars" / "all.yml").write_text(yaml.safe_dump({"medinfra_paths": paths}))
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("sshd_standin.py")), "standin-password"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        options = f"-o StrictHostKeyChecking=no -o UserKnownHostsFile={tmp_path / 'known_hosts'}"
        (inventory / "hosts.ini").write_text(
            f"moved ansible_host=127.0.0.1 ansible_port={port} ansible_user=me ansible_password=standin-password "
            f"ansible_ssh_common_args='{options}'\n"
        )
        done = audit(tmp_path, "-i", str(inventory))
    finally:
        server.terminate()
        server.wait(10)
    assert "Traceback" not in done.stderr
    hosts = json.loads((tmp_path / "out" / "findings.json").read_text())["hosts"]
    assert [(h["name"], h["status"]) for h in hosts] == [("moved", "audited")], done.stderr
    facts = json.loads((tmp_path / "out" / "evidence" / "moved.json").read_text())["facts"]
    assert facts["pki"]["directory_present"] is True
    assert facts["pki"]["ca"]["subject"] == "CN=Moved site CA"
    assert facts["segmentation"] == {"recorded": True, "verified_at": "2026-11-20T08:00:00Z", "probes": None,
                                     "ok": 4, "unexpected": None, "unconfirmed": None}
    assert [s["name"] for s in facts["backup"]["sets"]] == ["data"]
    assert facts["backup"]["password_file"]["path"] == f"{paths['backup_config']}/repository-password"
