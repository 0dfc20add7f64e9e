"""Runbooks: the format (schema, located errors), one per alert rule, one per control, and text a person can use."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from medinfra.compliance.catalog import load_catalog
from medinfra.problems import UserInputError
from medinfra.runbook import ALERT_RUNBOOKS, Runbook, control_runbooks, load_alert_runbooks

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / ALERT_RUNBOOKS
# A folded YAML line break between two Chinese characters leaves a space that has no place in Chinese text.
CJK = "[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]"
FOLDED_SPACE = re.compile(f"{CJK} {CJK}")


def good(alert: str = "Example") -> dict[str, object]:
    return {
        "alert": alert,
        "meaning": {"en": "It means this.", "zh": "含义。"},
        "checks": [{"en": "Look.", "zh": "查看。", "command": "systemctl status prometheus --no-pager"},
                   {"en": "Ask.", "zh": "询问。"}],
        "fix": {"en": "Fix it.", "zh": "修复。"},
        "escalate": {"after_minutes": 30, "to": ["ops", "vendor"], "en": "Call.", "zh": "呼叫。"},
    }


def write(directory: Path, name: str, data: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def problems(directory: Path) -> list[str]:
    with pytest.raises(UserInputError) as caught:
        load_alert_runbooks(directory)
    return [str(problem) for problem in caught.value.problems]


def texts(runbook: Runbook) -> list[str]:
    return [runbook.meaning.zh, runbook.fix.zh, runbook.escalate.text.zh, *(check.text.zh for check in runbook.checks)]


def test_a_runbook_loads_as_frozen_data(tmp_path: Path) -> None:
    write(tmp_path, "Example", good())
    runbook = load_alert_runbooks(tmp_path)["Example"]
    assert (runbook.key, runbook.kind, runbook.source) == ("Example", "alert", str(tmp_path / "Example.yml"))
    assert [check.command for check in runbook.checks] == ["systemctl status prometheus --no-pager", None]
    assert runbook.escalate.after_minutes == 30 and runbook.escalate.to == ("ops", "vendor")
    assert runbook.escalate.text.zh == "呼叫。"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["escalate"].update(after_minutes=0), "Example.yml:15: escalate.after_minutes: 0 is less than"),
        (lambda d: d["escalate"].update(to=["boss"]), "escalate.to[0]: 'boss' is not one of"),
        (lambda d: d["meaning"].update(zh="no Chinese"), "meaning.zh: 'no Chinese' does not match"),
        (lambda d: d["fix"].update(en=" "), "fix.en: ' ' does not match"),
        (lambda d: d.update(checks=[]), "checks: [] should be non-empty"),
        (lambda d: d["checks"][0].update(command="a\nb"), "checks[0].command"),
        (lambda d: d.update(owner="me"), "(top level): Unevaluated properties are not allowed ('owner'"),
        (lambda d: d.pop("escalate"), "'escalate' is a required property"),
        (lambda d: d.update(alert="Other"), "alert: alert 'Other' must match the file name 'Example'"),
    ],
)
def test_faults_are_located(tmp_path: Path, change, expected: str) -> None:
    data = good()
    change(data)
    write(tmp_path, "Example", data)
    found = problems(tmp_path)
    assert any(expected in problem for problem in found), found
    assert all(problem.startswith(f"{tmp_path / 'Example.yml'}:") for problem in found)


def test_every_bad_file_is_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path, "One", {**good("One"), "checks": "none"})
    (tmp_path / "Two.yml").write_text("alert: [unclosed\n", encoding="utf-8")
    write(tmp_path, "Three", ["not", "a", "mapping"])
    found = problems(tmp_path)
    assert [Path(problem.split(":")[0]).name for problem in found] == ["One.yml", "Three.yml", "Two.yml"]


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    assert "not a directory of alert runbooks" in problems(tmp_path / "absent")[0]


def test_a_control_runbook_is_validated_and_loaded(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "compliance" / "frameworks", tmp_path / "frameworks")
    shutil.copytree(ROOT / "compliance" / "controls", tmp_path / "controls")
    path = tmp_path / "controls" / "aide_daily_check.yml"
    block = good()
    del block["alert"]
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^runbook:\n(  .*\n|\n)*", "", text)  # whatever the content helpers wrote
    path.write_text(text + yaml.safe_dump({"runbook": block}, allow_unicode=True), encoding="utf-8")
    runbook = control_runbooks(load_catalog(tmp_path))["aide_daily_check"]
    assert (runbook.key, runbook.kind, runbook.escalate.to) == ("aide_daily_check", "control", ("ops", "vendor"))

    block["escalate"]["to"] = ["nobody"]
    block["alert"] = "aide"
    path.write_text(text + yaml.safe_dump({"runbook": block}, allow_unicode=True), encoding="utf-8")
    with pytest.raises(UserInputError) as caught:
        load_catalog(tmp_path)
    found = [str(problem) for problem in caught.value.problems]
    assert any("runbook.escalate.to[0]: 'nobody' is not one of" in problem for problem in found), found
    assert any("runbook: Unevaluated properties are not allowed ('alert'" in problem for problem in found), found


def test_the_shipped_alert_runbooks_load_and_read_well() -> None:
    runbooks = load_alert_runbooks(RUNBOOKS)
    assert {"ExporterDown", "HostUnreachable", "DatabaseStandbyDown"} <= set(runbooks)
    for runbook in runbooks.values():
        assert not [text for text in texts(runbook) if FOLDED_SPACE.search(text)], runbook.key
        assert any(check.command for check in runbook.checks), f"{runbook.key}: no check with a command"


def alert_names() -> list[str]:
    """Every alert rule of the monitoring server's rule files (recording rules have no runbook)."""
    return [
        rule["alert"]
        for path in sorted((ROOT / "roles" / "monitoring_server" / "files").glob("*.rules.yml"))
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_every_alert_rule_has_exactly_one_runbook_and_every_runbook_an_alert() -> None:
    names = alert_names()
    assert len(names) >= 30 and len(names) == len(set(names))
    files = sorted(path.stem for path in RUNBOOKS.iterdir())
    assert files == sorted(names), {"without runbook": sorted(set(names) - set(files)),
                                    "without alert": sorted(set(files) - set(names))}
    assert sorted(load_alert_runbooks(RUNBOOKS)) == sorted(names)


def test_every_alert_runbook_command_is_valid_shell() -> None:
    """Copy-pasteable: a quoting slip would leave the night shift at a `>` prompt."""
    commands = [(runbook.key, check.command) for runbook in load_alert_runbooks(RUNBOOKS).values()
                for check in runbook.checks if check.command]
    assert len(commands) >= 60
    for key, command in commands:
        result = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{key}: {command}\n{result.stderr}"
