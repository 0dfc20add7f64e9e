"""baseline_hardening's drift lists (roles/baseline_hardening/vars/main.yml), rendered by Ansible's templating from
what the role's read tasks return on a drifted host: what is put back, removed or only reported."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

ROLE = ROOT / "roles" / "baseline_hardening"


def trusted(value: Any) -> Any:
    from ansible.template import trust_as_template

    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [trusted(item) for item in value]
    if isinstance(value, dict):
        return {key: trusted(item) for key, item in value.items()}
    return value


def render(name: str, **facts: Any) -> Any:
    """One of the role's variables, with its defaults and vars and the given task results."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    variables = {
        **yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()),
        **yaml.safe_load((ROLE / "vars" / "main.yml").read_text()),
    }
    variables = {key: trusted(value) for key, value in variables.items()} | facts
    return Templar(loader=DataLoader(), variables=variables).template(variables[name])


def md5(path: str) -> str:
    return hashlib.md5((ROLE / "files" / path).read_bytes()).hexdigest()  # dpkg records MD5


def find_result(*files: tuple[str, str, str, str]) -> dict[str, Any]:
    return {"files": [{"path": p, "mode": m, "pw_name": o, "gr_name": g} for p, m, o, g in files]}


@pytest.fixture
def pam_files() -> dict[str, Any]:
    """Packages shipped sshd and su; sshd has an @include added, su is as shipped, login differs in a version the
    role has no copy of, and mutation-extra belongs to no package."""
    lines = [
        f"shipped /etc/pam.d/sshd {md5('pam.d/sshd')}",
        f"shipped /etc/pam.d/su {md5('pam.d/su')}",
        "shipped /etc/pam.d/login 0123456789abcdef0123456789abcdef",
        "owned /etc/pam.d/sshd", "owned /etc/pam.d/su", "owned /etc/pam.d/login",
        "live /etc/pam.d/sshd ffffffffffffffffffffffffffffffff",
        f"live /etc/pam.d/su {md5('pam.d/su')}",
        "live /etc/pam.d/login eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
        "live /etc/pam.d/common-auth 11111111111111111111111111111111",
        "live /etc/pam.d/mutation-extra 22222222222222222222222222222222",
    ]
    debian_md5 = {name: md5(f"pam.d/{name}") for name in ("sshd", "su", "login")}
    return {"baseline_hardening_pam_files": {"stdout_lines": lines}, "baseline_hardening_pam_debian_md5": debian_md5}


def test_pam_service_files_put_back_reported_or_removed(pam_files: dict[str, Any]) -> None:
    assert render("baseline_hardening_pam_restore", **pam_files) == ["sshd"]
    assert render("baseline_hardening_pam_unrestorable", **pam_files) == ["login"]
    assert render("baseline_hardening_pam_unknown", **pam_files) == ["mutation-extra"]
    declared = pam_files | {"baseline_hardening_pam_keep": ["mutation-extra"]}
    assert render("baseline_hardening_pam_unknown", **declared) == []


def test_a_missing_service_file_is_put_back(pam_files: dict[str, Any]) -> None:
    lines = [line for line in pam_files["baseline_hardening_pam_files"]["stdout_lines"] if line != (
        f"live /etc/pam.d/su {md5('pam.d/su')}")]
    missing = pam_files | {"baseline_hardening_pam_files": {"stdout_lines": lines}}
    assert render("baseline_hardening_pam_restore", **missing) == ["sshd", "su"]


@pytest.mark.parametrize(("rows", "current", "differing"), [
    (["source abc", "reference abc"], True, []),
    (["source abc", "reference abd", "differs common-auth"], False, ["common-auth"]),
    (["source abc", "reference", "differs common-auth", "differs common-password"], False,
     ["common-auth", "common-password"]),
])
def test_pam_stacks_compared_with_the_reference(rows: list[str], current: bool, differing: list[str]) -> None:
    state = {"baseline_hardening_pam_stack_state": {"stdout_lines": rows}}
    assert render("baseline_hardening_pam_reference_current", **state) is current
    assert render("baseline_hardening_pam_stacks_differing", **state) == differing


def test_only_drifted_owners_and_modes_are_set() -> None:
    files = find_result(("/etc/shadow", "0644", "root", "shadow"), ("/etc/gshadow", "0640", "root", "shadow"),
                        ("/etc/passwd", "0644", "root", "root"), ("/etc/group", "0644", "root", "adm"),
                        ("/etc/security/group", "0644", "root", "root"))
    drifted = render("baseline_hardening_auth_files_drifted", baseline_hardening_auth_files=files)
    assert drifted == ["/etc/shadow", "/etc/group"]


def test_host_keys_drift() -> None:
    keys = find_result(("/etc/ssh/ssh_host_ed25519_key", "0600", "root", "root"),
                       ("/etc/ssh/ssh_host_ed25519_key.pub", "0664", "root", "root"),
                       ("/etc/ssh/ssh_host_rsa_key", "0640", "root", "root"),
                       ("/etc/ssh/ssh_host_rsa_key.pub", "0644", "root", "ssh"))
    drifted = render("baseline_hardening_ssh_host_keys_drifted", baseline_hardening_ssh_host_keys=keys)
    assert sorted(drifted) == ["/etc/ssh/ssh_host_ed25519_key.pub", "/etc/ssh/ssh_host_rsa_key",
                               "/etc/ssh/ssh_host_rsa_key.pub"]


def test_sudoers_drop_ins() -> None:
    dropins = find_result(("/etc/sudoers.d/README", "0440", "root", "root"),
                          ("/etc/sudoers.d/10-medinfra-hardening", "0440", "root", "root"),
                          ("/etc/sudoers.d/medinfra", "0644", "root", "root"),
                          ("/etc/sudoers.d/99-mutation", "0644", "root", "root"))
    facts = {"baseline_hardening_sudoers_dropins": dropins, "baseline_hardening_sudoers_keep": ["README", "medinfra"]}
    assert render("baseline_hardening_sudoers_unknown", **facts) == ["99-mutation"]
    # A removed drop-in's mode is not worth fixing first; a kept one's is.
    assert render("baseline_hardening_sudoers_dropins_drifted", **facts) == ["/etc/sudoers.d/medinfra"]
    # Rules for the connecting account only in an undeclared drop-in: removing it would lock Ansible out.
    connecting = {"files": [{"path": "/etc/sudoers.d/99-mutation"}]}
    assert render("baseline_hardening_sudoers_locking_out", **facts,
                  baseline_hardening_sudoers_connecting=connecting) == ["99-mutation"]
    # A second grant beside the declared one goes like any other.
    connecting = {"files": [{"path": "/etc/sudoers.d/99-mutation"}, {"path": "/etc/sudoers.d/medinfra"}]}
    assert render("baseline_hardening_sudoers_locking_out", **facts,
                  baseline_hardening_sudoers_connecting=connecting) == []


def test_second_roots_and_shadow_group_members() -> None:
    facts = {"ansible_facts": {
        "getent_passwd": {"root": ["x", "0", "0", "", "/root", "/bin/bash"],
                          "toor": ["x", "0", "100", "", "/home/toor", "/usr/sbin/nologin"],
                          "backdoor": ["x", "0", "0", "", "/root", "/bin/sh"],
                          "mutant": ["x", "1001", "42", "", "/home/mutant", "/usr/sbin/nologin"],
                          "medinfra": ["x", "1000", "1000", "", "/home/medinfra", "/bin/bash"]},
        "getent_group": {"shadow": ["x", "42", "medinfra,ops"]},
    }}
    assert sorted(render("baseline_hardening_uid0_extra", **facts)) == ["backdoor", "toor"]
    assert render("baseline_hardening_uid0_extra", **facts, baseline_hardening_uid0_accounts=["toor"]) == ["backdoor"]
    assert render("baseline_hardening_shadow_members", **facts) == ["medinfra", "ops"]
    assert render("baseline_hardening_shadow_primary", **facts) == ["mutant"]


def test_foreign_tmout_settings_become_no_ops() -> None:
    """The replace task's regexp and replacement, applied as Ansible's replace module does (re.MULTILINE)."""
    import re

    from ansible_collections.medinfra.hospital.plugins.module_utils.collector.host import shell_settings

    tasks = yaml.safe_load((ROLE / "tasks" / "auth.yml").read_text())
    task = next(t for t in tasks if t["name"].startswith("Auth | Neutralise foreign TMOUT"))["ansible.builtin.replace"]
    pattern = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["baseline_hardening_tmout_statement"]
    replacement = task["replace"].replace(r"\1", r"\g<1>").replace(r"\2", r"\g<2>")
    profile = ("TMOUT=0\nreadonly TMOUT\n  export TMOUT=60\ndeclare -r TMOUT=0\nunset TMOUT\n# TMOUT=0 in a comment\n"
               'if [ -n "$TMOUT" ]; then\n  echo "$TMOUT"\nfi\n')
    assert shell_settings(profile.splitlines())["tmout_readonly"] is True
    neutralised = re.sub(pattern, replacement, profile, flags=re.MULTILINE)
    assert shell_settings(neutralised.splitlines()) == {"tmout": None, "tmout_readonly": False, "umasks": []}
    assert 'if [ -n "$TMOUT" ]; then\n  echo "$TMOUT"\nfi\n' in neutralised
    assert re.sub(pattern, replacement, neutralised, flags=re.MULTILINE) == neutralised
