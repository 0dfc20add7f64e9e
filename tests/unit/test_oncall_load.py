"""oncall.yml: the shipped rotas load; each kind of mistake is an error at its file, line and path."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from medinfra.oncall.load import load_oncall
from medinfra.problems import Problem, UserInputError
from tests.conftest import LAB_TOPOLOGY, TERTIARY_TOPOLOGY, write_yaml
from tests.unit.test_topology_validation import assert_located as assert_located_in

LAB_ONCALL = LAB_TOPOLOGY.parent / "oncall.yml"
TERTIARY_ONCALL = TERTIARY_TOPOLOGY.parent / "oncall.yml"


@pytest.mark.parametrize("path", [LAB_ONCALL, TERTIARY_ONCALL])
def test_shipped_rotas_load(path: Path) -> None:
    oncall = load_oncall(path)
    assert oncall.timezone == "Asia/Shanghai"
    assert set(oncall.round_the_clock) >= {"duty"}
    roles = {role for person in oncall.people for role in person.roles}
    assert roles == {"ops", "network", "application", "security", "duty", "vendor"}
    assert oncall.escalations


def test_webhook_urls_are_not_in_the_repr() -> None:
    oncall = load_oncall(LAB_ONCALL)
    person = oncall.person("wang-lei")
    assert any(c.url_vault == "oncall_wecom_wang_lei" for c in person.channels)
    from medinfra.oncall.model import Channel

    assert "secret-token" not in repr(Channel("wecom", url="https://qyapi.weixin.qq.com/x?key=secret-token"))


def problems_of(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> list[Problem]:
    shutil.copy(LAB_TOPOLOGY, tmp_path / "hospital.yml")
    data = yaml.safe_load(LAB_ONCALL.read_text(encoding="utf-8"))
    change(data)
    path = write_yaml(tmp_path / "oncall.yml", data)
    with pytest.raises(UserInputError) as caught:
        load_oncall(path)
    return caught.value.problems


def assert_located(tmp_path: Path, problems: list[Problem], where: str, words: str) -> None:
    assert_located_in(tmp_path, problems, where, words, "oncall.yml")


def rotation(data: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in data["rotations"] if r["name"] == name)
    return found


def test_unknown_person_in_a_rotation(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, lambda d: rotation(d, "duty-night")["people"].append("nobody"))
    assert_located(tmp_path, problems, "rotations[1].people[3]", "unknown person 'nobody'")


def test_person_without_the_rotations_role(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, lambda d: rotation(d, "ops-week")["people"].append("zhao-min"))
    assert_located(tmp_path, problems, "rotations[3].people[2]", "zhao-min does not hold role ops")


def test_overlapping_shifts_of_one_role(tmp_path: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        rotation(data, "duty-weekend")["shifts"][0]["end"] = "19:00"

    problems = problems_of(tmp_path, change)
    # The weekend day shift now starts first; the night shift starting at 18:00 is the one that overlaps it.
    words = "overlaps rotations[2].shifts[0] for role duty (sat 18:00-sat 19:00)"
    assert_located(tmp_path, problems, "rotations[1].shifts[0]", words)
    assert any("(sun 18:00-sun 19:00)" in p.message for p in problems)


def test_gap_in_a_round_the_clock_role(tmp_path: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        rotation(data, "duty-night")["shifts"][0]["end"] = "07:30"

    problems = problems_of(tmp_path, change)
    assert_located(tmp_path, problems, "round_the_clock[0]", "nobody holds it mon 07:30-mon 08:00")
    # Sunday night's shift ends Monday morning: the gap after it wraps around the week's end.
    assert any("sun 07:30-sun 08:00" in p.message for p in problems)


def test_round_the_clock_role_without_a_rotation(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, lambda d: d["round_the_clock"].append("security"))
    assert_located(tmp_path, problems, "round_the_clock[2]", "nobody holds it mon 00:00-mon 09:00")


@pytest.mark.parametrize("value", ["24:00", "8:00", "18:60", "noon"])
def test_bad_times(tmp_path: Path, value: str) -> None:
    problems = problems_of(tmp_path, lambda d: rotation(d, "duty-office")["shifts"][0].update(start=value))
    assert_located(tmp_path, problems, "rotations[0].shifts[0].start", "is not a time of day HH:MM")


def test_bad_start_date(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, lambda d: rotation(d, "duty-office").update(start="2026-02-30"))
    assert_located(tmp_path, problems, "rotations[0].start", "is not a 'date'")


def test_unknown_channel_type(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, lambda d: d["people"][0]["channels"].append({"type": "sms", "to": "+86"}))
    assert_located(tmp_path, problems, "people[0].channels[2]", "unknown channel type 'sms'")


def test_unknown_webhook_kind(tmp_path: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["people"][0]["channels"][1]["kind"] = "feishu"

    problems = problems_of(tmp_path, change)
    assert_located(tmp_path, problems, "people[0].channels[1]", "unknown webhook kind 'feishu'")


def test_escalation_to_an_unknown_role(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, lambda d: d["escalation"][0].update(to={"role": "manager"}))
    assert_located(tmp_path, problems, "escalation[0].to.role", "'manager' is not one of")


def test_escalation_to_a_role_nobody_rotates(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, lambda d: d["escalation"][0].update(to={"role": "vendor"}))
    assert_located(tmp_path, problems, "escalation[0].to.role", "escalation to role vendor, which no rotation gives")


def test_escalation_to_an_unknown_person(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, lambda d: d["escalation"][1].update(to={"person": "boss"}))
    assert_located(tmp_path, problems, "escalation[1].to.person", "escalation to unknown person 'boss'")


def test_vendor_not_in_the_topology(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, lambda d: d["people"][6].update(vendor="Unknown Co."))
    assert_located(tmp_path, problems, "people[6].vendor", "unknown vendor 'Unknown Co.'")


def test_duplicate_person(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, lambda d: d["people"].append(copy.deepcopy(d["people"][0])))
    assert_located(tmp_path, problems, "people[8].id", "duplicate person id 'wang-lei'")


def test_no_topology_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "oncall.yml"
    shutil.copy(LAB_ONCALL, path)
    with pytest.raises(UserInputError, match=r"no hospital\.yml beside it"):
        load_oncall(path)


def test_the_inventory_plugin_publishes_the_rota() -> None:
    from medinfra.oncall.model import OnCall
    from tests.unit.test_inventory_plugin import ansible_inventory, unwrap

    result = ansible_inventory("-i", str(LAB_TOPOLOGY.parent), "--list")
    assert result.returncode == 0, result.stderr
    assert "oncall.yml" not in result.stderr  # ignore_patterns: not parsed as an inventory of its own
    published = unwrap(json.loads(result.stdout))["_meta"]["hostvars"]["monitor-01"]["medinfra_oncall"]
    oncall = load_oncall(LAB_ONCALL)
    assert OnCall.from_dict(published) == OnCall.from_dict(oncall.to_dict()) == oncall


def test_an_invalid_rota_fails_the_inventory_with_located_messages(tmp_path: Path) -> None:
    from tests.unit.test_inventory_plugin import ansible_inventory

    problems_of(tmp_path, lambda d: rotation(d, "duty-night")["people"].append("nobody"))
    result = ansible_inventory("-i", str(tmp_path), "--list")
    assert result.returncode != 0
    assert f"{tmp_path / 'oncall.yml'}:" in result.stderr and "unknown person 'nobody'" in result.stderr
