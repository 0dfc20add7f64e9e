"""load_catalog reports every problem of a catalog with its place: file:line: path: message."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from medinfra.compliance.catalog import load_catalog, load_waivers
from medinfra.problems import UserInputError

CONTROL = """\
---
id: {id}
title:
  en: SSH refuses direct root login
  zh: SSH 禁止 root 用户直接登录
description:
  en: PermitRootLogin is no.
  zh: PermitRootLogin 为 no。
rationale:
  en: Administrators log in as themselves.
  zh: 管理员以个人账户登录。
severity: high
area: identification_authentication
check:
{check}
remediation:
  role: baseline_hardening
  variables: [baseline_hardening_ssh_enabled]
  tags: [ssh]
  en: Apply baseline_hardening.
  zh: 应用 baseline_hardening 角色。
references:
  hipaa: ["164.312(d)"]
  gbt22239: [{gbt_clause}]
  cis_debian12: ["5.1.20"]
"""
GOOD_CHECK = """\
  fact: sshd.permitrootlogin
  equals: "no"
"""
FRAMEWORKS = {
    "hipaa": """\
---
id: hipaa
title: {en: HIPAA, zh: HIPAA 安全规则}
source: 45 CFR 164
clauses:
  - id: "164.312(d)"
    title: {en: Person or entity authentication, zh: 人员或实体鉴别}
    coverage: automated
""",
    "gbt22239": """\
---
id: gbt22239
title: {en: GB/T 22239-2019, zh: 网络安全等级保护基本要求}
source: GB/T 22239-2019
clauses:
  - id: 8.1.4.1.a
    title: {en: Identification and authentication, zh: 身份鉴别}
    coverage: partial
    note: {en: People check the rest., zh: 其余由人员检查。}
""",
    "cis_debian12": """\
---
id: cis_debian12
title: {en: CIS Debian Linux 12, zh: CIS Debian Linux 12 基准}
source: CIS Debian Linux 12 Benchmark v1.1.0
clauses:
  - id: "5.1.20"
    title: {en: Ensure sshd PermitRootLogin is disabled, zh: 确保已禁用 sshd PermitRootLogin}
    coverage: automated
""",
}

UNCOVERED_AUTOMATED_CLAUSE = """\
  - id: "164.312(b)"
    title: {en: Audit controls, zh: 审计控制}
    coverage: automated
"""
MANUAL_CLAUSE = """\
  - id: "164.308(a)(7)(ii)(A)"
    title: {en: Data backup plan, zh: 数据备份计划}
    coverage: manual
    note: {en: No backup role yet., zh: 尚无备份角色。}
"""


def write_catalog(root: Path, controls: dict[str, str], frameworks: dict[str, str] | None = None) -> Path:
    (root / "controls").mkdir()
    (root / "frameworks").mkdir()
    for name, text in controls.items():
        (root / "controls" / f"{name}.yml").write_text(text, encoding="utf-8")
    for name, text in (frameworks or FRAMEWORKS).items():
        (root / "frameworks" / f"{name}.yml").write_text(text, encoding="utf-8")
    return root


def control(id_: str = "root_login", check: str = GOOD_CHECK, gbt_clause: str = "8.1.4.1.a") -> str:
    return CONTROL.format(id=id_, check=check, gbt_clause=gbt_clause)


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing needle."""
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


def problems(root: Path) -> list[str]:
    with pytest.raises(UserInputError) as caught:
        load_catalog(root)
    return [str(problem) for problem in caught.value.problems]


def test_small_catalog_loads(tmp_path):
    catalog = load_catalog(write_catalog(tmp_path, {"root_login": control()}))
    assert [c.id for c in catalog.controls] == ["root_login"]
    assert catalog.covering("cis_debian12", "5.1.20") == ("root_login",)


def test_control_id_must_match_file_name(tmp_path):
    text = control(id_="root_login")
    root = write_catalog(tmp_path, {"sshd_root": text})
    file = root / "controls" / "sshd_root.yml"
    assert problems(root) == [
        f"{file}:{line_of(text, 'id: root_login')}: id: id 'root_login' must match the file name 'sshd_root'"
    ]


def test_reference_to_unknown_clause(tmp_path):
    text = control(gbt_clause="8.1.4.1.z")
    root = write_catalog(tmp_path, {"root_login": text})
    found = problems(root)
    file = root / "controls" / "root_login.yml"
    assert (
        f"{file}:{line_of(text, 'gbt22239:')}: references.gbt22239[0]: '8.1.4.1.z' is not a clause of "
        f"{root / 'frameworks' / 'gbt22239.yml'}" in found
    )
    # The clause the control meant to cover is now covered by nobody, which is reported too.
    assert any("gbt22239.yml" in p and "'partial' but no control references '8.1.4.1.a'" in p for p in found)


def test_schema_violation_unknown_operator(tmp_path):
    check = """\
  fact: sshd.permitrootlogin
  equalz: "no"
"""
    text = control(check=check)
    root = write_catalog(tmp_path, {"root_login": text})
    found = problems(root)
    file = root / "controls" / "root_login.yml"
    line = line_of(text, "fact: sshd.permitrootlogin")  # the check's mapping starts here
    assert f"{file}:{line}: check: Additional properties are not allowed ('equalz' was unexpected)" in found
    # A control that fails its schema is left out, so the clauses it covered are reported as uncovered too.
    assert any(p.startswith(f"{root / 'frameworks' / 'hipaa.yml'}:") for p in found)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(/etc/issue", "invalid regular expression: missing ), unterminated subpattern at position 0"),
        # 0.3 s on 22 characters built to fail it, twice that per character more (a day at 40): the 4,096-character
        # cap cannot bound it.
        (
            "^(\\w+\\s?)*$",
            "a repeat inside an unbounded repeat can take exponential time on evidence built to fail it; rewrite it "
            "without the nesting",
        ),
    ],
)
def test_bad_regular_expression(tmp_path, pattern, message):
    text = control(check=f"  fact: sshd.banner\n  matches: '{pattern}'\n")
    root = write_catalog(tmp_path, {"root_login": text})
    file = root / "controls" / "root_login.yml"
    assert problems(root) == [f"{file}:{line_of(text, 'matches:')}: check.matches: {message}"]


def test_bad_regular_expression_deep_inside_a_quantifier(tmp_path):
    check = """\
  fact: auditd.rules_on_disk
  some:
    all:
      - matches: '^-w /etc/shadow'
      - not_matches: '[unclosed'
"""
    text = control(check=check)
    root = write_catalog(tmp_path, {"root_login": text})
    file = root / "controls" / "root_login.yml"
    assert problems(root) == [
        f"{file}:{line_of(text, 'not_matches')}: check.some.all[1].not_matches: invalid regular expression: "
        "unterminated character set at position 0"
    ]


def test_automated_clause_nobody_covers(tmp_path):
    frameworks = dict(FRAMEWORKS)
    frameworks["hipaa"] = FRAMEWORKS["hipaa"] + UNCOVERED_AUTOMATED_CLAUSE
    root = write_catalog(tmp_path, {"root_login": control()}, frameworks)
    file = root / "frameworks" / "hipaa.yml"
    line = line_of(frameworks["hipaa"], "164.312(b)") + 2
    assert problems(root) == [f"{file}:{line}: clauses[1].coverage: 'automated' but no control references '164.312(b)'"]


def test_manual_clause_needs_no_control(tmp_path):
    frameworks = dict(FRAMEWORKS)
    frameworks["hipaa"] = FRAMEWORKS["hipaa"] + MANUAL_CLAUSE
    catalog = load_catalog(write_catalog(tmp_path, {"root_login": control()}, frameworks))
    assert catalog.covering("hipaa", "164.308(a)(7)(ii)(A)") == ()


def test_all_problems_are_reported_at_once(tmp_path):
    bad_regex = """\
  fact: sshd.banner
  matches: '(['
"""
    root = write_catalog(tmp_path, {"a_bad": control(id_="a_bad", check=bad_regex), "b_renamed": control(id_="bbb")})
    found = problems(root)
    assert any("a_bad.yml" in p and "invalid regular expression" in p for p in found)
    assert any("b_renamed.yml" in p and "must match the file name" in p for p in found)


WAIVER = """\
waivers:
  - control: root_login
    hosts: [lis-legacy]
    justification: "Vendor tool breaks without it until June"
    approver: "Head of IT operations"
    risk: low
    risk_acceptance: "Accepted for the first half of 2026 only"
    compensating_control: none
    expires: 2026-06-30
"""


def waiver_problems(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "catalog").mkdir()
    catalog = load_catalog(write_catalog(tmp_path / "catalog", {"root_login": control()}))
    path = tmp_path / "waivers.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserInputError) as caught:
        load_waivers(path, catalog)
    return [str(problem) for problem in caught.value.problems]


def test_a_well_formed_waiver_loads(tmp_path):
    (tmp_path / "catalog").mkdir()
    catalog = load_catalog(write_catalog(tmp_path / "catalog", {"root_login": control()}))
    (tmp_path / "waivers.yml").write_text(WAIVER, encoding="utf-8")
    (waiver,) = load_waivers(tmp_path / "waivers.yml", catalog)
    assert waiver.expires.isoformat() == "2026-06-30"


def test_a_second_expires_cannot_extend_a_lapsed_waiver(tmp_path):
    text = WAIVER + "    expires: 2099-12-31\n"
    file = tmp_path / "waivers.yml"
    assert waiver_problems(tmp_path, text) == [
        f"{file}:10: waivers[0].expires: duplicate key 'expires' (first at line 9): "
        "a second value would replace the first"
    ]


def test_waivers_alias_bomb_is_refused_at_once(tmp_path):
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    pairs = zip("abcdefg", "bcdefgh", strict=True)
    levels += [f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]" for prev, name in pairs]
    text = "\n".join([*levels, "waivers: [{control: x, hosts: *h}]"]) + "\n"
    assert len(text) < 400
    started = time.perf_counter()
    found = waiver_problems(tmp_path, text)
    assert time.perf_counter() - started < 1.0
    assert found == [
        f"{tmp_path / 'waivers.yml'}:2: b[0]: alias *a: medinfra's YAML files have no use for anchors and aliases, "
        "and one alias can repeat a value billions of times; write the value out"
    ]


def test_waivers_that_are_not_a_list(tmp_path):
    expected = f"{tmp_path / 'waivers.yml'}:1: waivers: 5 is not of type 'array'"
    assert waiver_problems(tmp_path, "waivers: 5\n") == [expected]


def test_duplicate_key_in_a_control(tmp_path):
    text = control().replace("severity: high\n", "severity: high\nseverity: low\n")
    root = write_catalog(tmp_path, {"root_login": text})
    file = root / "controls" / "root_login.yml"
    line = line_of(text, "severity: low")
    assert problems(root)[0] == (
        f"{file}:{line}: severity: duplicate key 'severity' (first at line {line - 1}): "
        "a second value would replace the first"
    )


def test_alias_in_a_control(tmp_path):
    text = control().replace("severity: high", "severity: &s high\nextra: *s")
    root = write_catalog(tmp_path, {"root_login": text})
    assert f"{root / 'controls' / 'root_login.yml'}:{line_of(text, 'extra')}: extra: alias *s" in problems(root)[0]
