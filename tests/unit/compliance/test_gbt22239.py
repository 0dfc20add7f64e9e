"""The GB/T 22239-2019 framework lists every level-3 item of 8.1.2 to 8.1.5, as the standard numbers them.

Clause ids are the section number plus the item letter; the items the standard prints as one paragraph without
a letter (可信验证, 恶意代码防范 and the other single-item control points) have the bare section number. Each
item carries its GB/T 28448-2019 evaluation unit (测评单元), numbered per layer in the order of GB/T 22239's items.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache

import pytest

from medinfra.compliance.catalog import load_catalog
from medinfra.compliance.model import Framework
from tests.unit.compliance.test_catalog_errors import FRAMEWORKS, control, problems, write_catalog

# Level 3, 8.1.2 to 8.1.5: each control point and its item letters ("" for a paragraph without a letter).
EXPECTED_ITEMS: dict[str, str] = {
    "8.1.2.1": "abcde",  # 网络架构
    "8.1.2.2": "ab",  # 通信传输
    "8.1.2.3": "",  # 可信验证
    "8.1.3.1": "abcd",  # 边界防护
    "8.1.3.2": "abcde",  # 访问控制
    "8.1.3.3": "abcd",  # 入侵防范
    "8.1.3.4": "ab",  # 恶意代码和垃圾邮件防范
    "8.1.3.5": "abcd",  # 安全审计
    "8.1.3.6": "",  # 可信验证
    "8.1.4.1": "abcd",  # 身份鉴别
    "8.1.4.2": "abcdefg",  # 访问控制
    "8.1.4.3": "abcd",  # 安全审计
    "8.1.4.4": "abcdef",  # 入侵防范
    "8.1.4.5": "",  # 恶意代码防范
    "8.1.4.6": "",  # 可信验证
    "8.1.4.7": "ab",  # 数据完整性
    "8.1.4.8": "ab",  # 数据保密性
    "8.1.4.9": "abc",  # 数据备份恢复
    "8.1.4.10": "ab",  # 剩余信息保护
    "8.1.4.11": "ab",  # 个人信息保护
    "8.1.5.1": "ab",  # 系统管理
    "8.1.5.2": "ab",  # 审计管理
    "8.1.5.3": "ab",  # 安全管理
    "8.1.5.4": "abcdef",  # 集中管控
}
# Single-paragraph control points outside 8.1.2-8.1.5 that the framework lists (物理访问控制, 安全策略).
OTHER_SINGLE_PARAGRAPHS = ("8.1.1.2", "8.1.6.1")
SINGLE_PARAGRAPHS = (
    tuple(section for section, letters in EXPECTED_ITEMS.items() if not letters) + OTHER_SINGLE_PARAGRAPHS
)
# GB/T 28448-2019's layer code for each section of 8.1, and how many units the layer has at level 3.
LAYERS = {
    "8.1.1": ("PES1", 22),
    "8.1.2": ("CNS1", 8),
    "8.1.3": ("ABS1", 20),
    "8.1.4": ("CES1", 35),
    "8.1.5": ("SMC1", 12),
}
# GB/T 28448-2019 skips L3-CES1-16: 8.1.4.3.d is L3-CES1-15 and 8.1.4.4.a is L3-CES1-17 (34 units, 01 to 35).
MISSING_UNITS = {"L3-CES1-16"}
UNIT = re.compile(r"^L3-(?P<layer>[A-Z]{3}\d)-(?P<number>\d{2})$")
# Items whose evaluation unit is known for certain, as a spot check of the numbering.
KNOWN_UNITS = {
    "8.1.1.1.a": "L3-PES1-01",
    "8.1.1.2": "L3-PES1-03",
    "8.1.2.1.a": "L3-CNS1-01",
    "8.1.2.3": "L3-CNS1-08",
    "8.1.3.1.a": "L3-ABS1-01",
    "8.1.3.2.a": "L3-ABS1-05",
    "8.1.3.6": "L3-ABS1-20",
    "8.1.4.1.a": "L3-CES1-01",
    "8.1.4.2.a": "L3-CES1-05",
    "8.1.4.3.d": "L3-CES1-15",
    "8.1.4.4.a": "L3-CES1-17",
    "8.1.4.5": "L3-CES1-23",
    "8.1.4.6": "L3-CES1-24",
    "8.1.4.11.b": "L3-CES1-35",
    "8.1.5.1.a": "L3-SMC1-01",
    "8.1.5.4.f": "L3-SMC1-12",
}


def expected_ids() -> list[str]:
    return [
        f"{section}.{letter}" if letter else section
        for section, letters in EXPECTED_ITEMS.items()
        for letter in letters or [""]
    ]


@cache
def framework() -> Framework:
    return load_catalog().frameworks["gbt22239"]


def section_of(clause_id: str) -> str:
    return clause_id.rsplit(".", 1)[0] if clause_id[-1].isalpha() else clause_id


def test_every_level3_item_of_8_1_2_to_8_1_5_is_listed_exactly_once():
    counts = Counter(clause.id for clause in framework().clauses)
    assert [cid for cid, n in counts.items() if n > 1] == []
    assert [cid for cid in expected_ids() if cid not in counts] == []
    listed = [
        cid
        for cid in counts
        if cid.split(".")[:3] in (["8", "1", "2"], ["8", "1", "3"], ["8", "1", "4"], ["8", "1", "5"])
    ]
    assert sorted(set(listed) - set(expected_ids())) == [], "items the standard does not have"
    assert len(expected_ids()) == 74


def test_clauses_follow_the_order_of_the_standard():
    def key(clause_id: str) -> tuple[int | str, ...]:
        return tuple(int(part) if part.isdigit() else part for part in clause_id.split("."))

    ids = [clause.id for clause in framework().clauses]
    assert ids == sorted(ids, key=key)


def test_single_paragraph_items_have_no_letter():
    ids = {clause.id for clause in framework().clauses}
    for section in SINGLE_PARAGRAPHS:
        assert section in ids, section
        assert not any(cid.startswith(section + ".") and cid[len(section) + 1 :].isalpha() for cid in ids), section


def test_clause_ids_are_sections_plus_a_letter():
    for clause in framework().clauses:
        assert re.fullmatch(r"8\.1\.\d+\.\d+(\.[a-z])?", clause.id), clause.id
        if not clause.id[-1].isalpha():
            assert clause.id in SINGLE_PARAGRAPHS, f"{clause.id}: a bare section id must be a single-paragraph item"


def test_every_item_of_8_1_2_to_8_1_5_has_its_evaluation_unit():
    for clause in framework().clauses:
        if section_of(clause.id).rsplit(".", 1)[0] in ("8.1.2", "8.1.3", "8.1.4", "8.1.5"):
            assert clause.evaluation_unit, clause.id


@pytest.mark.parametrize("section", sorted(LAYERS))
def test_evaluation_units_are_sequential_and_unique_per_layer(section):
    layer, total = LAYERS[section]
    clauses = [c for c in framework().clauses if c.id.startswith(section + ".") and c.evaluation_unit]
    numbers = []
    for clause in clauses:
        match = UNIT.match(clause.evaluation_unit or "")
        assert match, f"{clause.id}: {clause.evaluation_unit!r}"
        assert match["layer"] == layer, f"{clause.id}: {clause.evaluation_unit} is not in layer {layer}"
        numbers.append(int(match["number"]))
    assert len(numbers) == len(set(numbers)), f"{section}: duplicate evaluation units"
    assert numbers == sorted(numbers), f"{section}: evaluation units out of the standard's order"
    if section == "8.1.1":
        return  # only some physical items are listed
    expected = [n for n in range(1, total + 1) if f"L3-{layer}-{n:02d}" not in MISSING_UNITS]
    assert numbers == expected


def test_known_evaluation_units():
    units = {clause.id: clause.evaluation_unit for clause in framework().clauses}
    assert {cid: units.get(cid) for cid in KNOWN_UNITS} == KNOWN_UNITS


def test_evaluation_units_are_unique_across_the_framework():
    units = [clause.evaluation_unit for clause in framework().clauses if clause.evaluation_unit]
    assert len(units) == len(set(units))


def test_trusted_verification_has_the_level3_wording():
    by_id = {clause.id: clause for clause in framework().clauses}
    for section in ("8.1.2.3", "8.1.3.6", "8.1.4.6"):
        title = by_id[section].title
        assert "在应用程序的关键执行环节进行动态可信验证" in title.zh, section
        assert "所有执行环节" not in title.zh, f"{section}: level-4 wording"
        assert "dynamic trusted verification at the key execution points" in " ".join(title.en.split()), section


def test_every_title_is_the_control_point_and_the_standards_text():
    for clause in framework().clauses:
        point, _, text = clause.title.zh.partition("：")
        assert point and text, clause.id
        assert not text.endswith(("。", "；")), clause.id
        point_en, _, text_en = clause.title.en.partition(": ")
        assert point_en and text_en, clause.id


def test_what_key_only_ssh_sysctl_and_mount_options_do_not_prove():
    catalog = load_catalog()
    refs = {item.id: set(item.references["gbt22239"]) for item in catalog.controls}
    assert "8.1.4.1.d" not in refs["sshd_password_authentication_disabled"]
    for control_id in (
        "aslr_enabled",
        "fs_link_protection_enabled",
        "icmp_broadcasts_ignored",
        "icmp_redirects_refused",
        "tcp_syncookies_enabled",
        "martian_packets_logged",
        "audit_rules_kernel_modules",
    ):
        assert "8.1.4.4.f" not in refs[control_id], control_id
    for control_id in ("tmp_mount_options", "dev_shm_mount_options", "pam_tmpdir_enabled", "core_dumps_restricted"):
        assert not refs[control_id] & {"8.1.4.10.a", "8.1.4.10.b"}, control_id
    assert catalog.covering("gbt22239", "8.1.4.1.d") == ()
    assert catalog.covering("gbt22239", "8.1.4.10.a") == catalog.covering("gbt22239", "8.1.4.10.b") == ()


def test_not_covered_clauses_say_why():
    for clause in framework().clauses:
        if clause.coverage == "not_covered":
            assert clause.note is not None and clause.note.en.strip() and clause.note.zh.strip(), clause.id


GBT_WITH_UNITS = """\
---
id: gbt22239
title: {{en: GB/T 22239-2019, zh: 网络安全等级保护基本要求}}
source: GB/T 22239-2019
clauses:
  - id: 8.1.4.1.a
    evaluation_unit: {first}
    title: {{en: "Identification and authentication: identify users", zh: 身份鉴别：应对登录的用户进行身份标识和鉴别}}
    coverage: partial
    note: {{en: People check the rest., zh: 其余由人员检查。}}
  - id: 8.1.4.6
    evaluation_unit: {second}
    title: {{en: "Trusted verification: verify", zh: 可信验证：可基于可信根进行可信验证}}
    coverage: not_covered
    note: {{en: Not addressed., zh: 未涉及。}}
"""


def small_catalog(tmp_path, first: str, second: str):
    frameworks = {**FRAMEWORKS, "gbt22239": GBT_WITH_UNITS.format(first=first, second=second)}
    return write_catalog(tmp_path, {"root_login": control()}, frameworks)


def test_loader_reads_the_evaluation_unit(tmp_path):
    catalog = load_catalog(small_catalog(tmp_path, "L3-CES1-01", "L3-CES1-24"))
    units = {clause.id: clause.evaluation_unit for clause in catalog.frameworks["gbt22239"].clauses}
    assert units == {"8.1.4.1.a": "L3-CES1-01", "8.1.4.6": "L3-CES1-24"}
    # Optional: other frameworks' clauses have none.
    assert all(clause.evaluation_unit is None for clause in catalog.frameworks["hipaa"].clauses)


def test_loader_rejects_a_malformed_or_duplicate_evaluation_unit(tmp_path):
    (tmp_path / "bad").mkdir()
    found = problems(small_catalog(tmp_path / "bad", "CES1-01", "L3-CES1-24"))
    assert any("gbt22239.yml:7: clauses[0].evaluation_unit:" in p and "does not match" in p for p in found), found
    (tmp_path / "dup").mkdir()
    found = problems(small_catalog(tmp_path / "dup", "L3-CES1-01", "L3-CES1-01"))
    assert any(
        "clauses[1].evaluation_unit: evaluation unit 'L3-CES1-01' also given to '8.1.4.1.a'" in p for p in found
    ), found
