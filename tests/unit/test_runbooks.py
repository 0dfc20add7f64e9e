"""Runbooks: the format (schema, located errors), one per alert rule, one per control, and text a person can use."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from medinfra.audit.results import AuditRun, HostResult, findings_document, judge
from medinfra.cli import main
from medinfra.compliance.catalog import load_catalog
from medinfra.problems import UserInputError
from medinfra.report.findings_file import document_problems
from medinfra.report.html import minutes, render_html
from medinfra.report.i18n import ui
from medinfra.report.model import build_report
from medinfra.report.oscal import write_oscal
from medinfra.report.publish import publish
from medinfra.runbook import ALERT_RUNBOOKS, Runbook, build_runbook, control_runbooks, load_alert_runbooks
from medinfra.safe_output import OutputDirectory
from tests.oscal_schema import oscal_validator
from tests.unit.test_audit import CATALOG, NOW, evidence

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / ALERT_RUNBOOKS
ROLE = ROOT / "roles" / "monitoring_server"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
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
    assert not shell_syntax_errors(commands)


def shell_syntax_errors(commands: list[tuple[str, str]]) -> list[str]:
    """`bash -n`'s complaints about each command, run once over all of them (each in a function body of its own) and
    command by command only when that finds a fault, to name it: a bash per command took 10 s for the catalog."""
    script = "".join(f"f{n}() {{\n{command}\n}}\n" for n, (_, command) in enumerate(commands))
    if subprocess.run(["bash", "-n", "-c", script], capture_output=True, check=False).returncode == 0:
        return []
    errors = []
    for key, command in commands:
        result = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            errors.append(f"{key}: {command}\n{result.stderr}")
    return errors or ["the commands parse one by one but not together: " + script]


def role_tasks(*names: str) -> list[dict[str, Any]]:
    """The monitoring server role's own tasks of these names, as it runs them."""
    block = yaml.safe_load((ROLE / "tasks" / "main.yml").read_text(encoding="utf-8"))[0]["block"]
    tasks = {task["name"]: task for task in block}
    return [tasks[name] for name in names]


def install_rules(tmp_path: Path, kb_url: str) -> subprocess.CompletedProcess[str]:
    """Run the role's URL check and rule installation with Ansible into tmp_path/rules (the role's files, defaults
    and vars; only the destination differs)."""
    check, install = role_tasks("Monitoring server | The knowledge base URL can end an alert's runbook_url",
                                "Monitoring server | Alert rules, their runbook links into the site's knowledge base")
    copy = {**install["ansible.builtin.copy"], "dest": f"{tmp_path}/rules/{{{{ item }}}}"}
    install = {**install, "ansible.builtin.copy": copy}
    install.pop("notify")
    role = tmp_path / "roles" / "rules"
    (role / "tasks").mkdir(parents=True)
    (tmp_path / "rules").mkdir()
    (role / "files").symlink_to(ROLE / "files")
    (role / "tasks" / "main.yml").write_text(yaml.safe_dump([check, install]), encoding="utf-8")
    variables = {**yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8")),
                 **yaml.safe_load((ROLE / "vars" / "main.yml").read_text(encoding="utf-8"))}
    play = [{"hosts": "localhost", "gather_facts": False, "vars": {
        "monitoring_server_kb_url": kb_url,
        "monitoring_server_kb_placeholder": variables["monitoring_server_kb_placeholder"],
        "monitoring_server_config_dir": str(tmp_path)}, "roles": ["rules"]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play), encoding="utf-8")
    environment = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
                   "ANSIBLE_ROLES_PATH": str(tmp_path / "roles")}
    return subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", str(tmp_path / "play.yml")],
                          capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=300, check=False)


def test_the_role_points_every_runbook_url_at_the_knowledge_base(tmp_path: Path) -> None:
    base = "https://kb.hospital.example/handbook/"
    result = install_rules(tmp_path, base)
    assert result.returncode == 0, result.stdout + result.stderr  # its validate: promtool check rules
    urls = {
        rule["alert"]: rule["annotations"]["runbook_url"]
        for path in sorted((tmp_path / "rules").glob("*.rules.yml"))
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert sorted(urls) == sorted(alert_names())
    for alert, url in urls.items():
        # The knowledge base's page for the alert: strip the base, find the runbook it renders.
        assert url.startswith(base), url
        assert url.removeprefix(base) == f"alerts/{alert}.html"
        assert (RUNBOOKS / f"{alert}.yml").is_file()
    shipped = (ROLE / "files" / "medinfra-alerts.rules.yml").read_text(encoding="utf-8")
    installed = (tmp_path / "rules" / "medinfra-alerts.rules.yml").read_text(encoding="utf-8")
    assert installed == shipped.replace("https://medinfra-kb.invalid/", base)


@pytest.mark.parametrize("url", ["https://kb.example/no-slash", "https://kb.example/{{ $labels.x }}/",
                                 "javascript:alert(1)//"])
def test_a_knowledge_base_url_that_would_break_the_rules_is_refused(tmp_path: Path, url: str) -> None:
    result = install_rules(tmp_path, url)
    assert result.returncode != 0
    assert "monitoring_server_kb_url" in result.stdout
    assert not list((tmp_path / "rules").iterdir())


def test_every_shipped_runbook_url_has_the_placeholder_base() -> None:
    """The promtool tests (tests/promtool) assert the placeholder form; the role replaces exactly that base."""
    placeholder = yaml.safe_load((ROLE / "vars" / "main.yml").read_text(encoding="utf-8"))[
        "monitoring_server_kb_placeholder"]
    for path in sorted((ROLE / "files").glob("*.rules.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    assert rule["annotations"]["runbook_url"] == f"{placeholder}alerts/{rule['alert']}.html"
        tests = (ROOT / "tests" / "promtool").glob(f"{path.name.removesuffix('.rules.yml')}*.test.yml")
        assert any("runbook_url" in test.read_text(encoding="utf-8") for test in tests), path.name


# The audit report: each control's entry shows its runbook, escaped, and links to the knowledge base's page.
HOSTILE = "<script>alert(1)</script>"


def hostile_runbook() -> Runbook:
    block = good()
    del block["alert"]
    block["meaning"] = {"en": f"Means {HOSTILE} & more", "zh": f"含义 {HOSTILE}"}
    block["checks"][0]["command"] = f'echo "{HOSTILE}" && systemctl status ssh --no-pager'
    block["fix"] = {"en": f"Run `medinfra fix {HOSTILE}` then wait.", "zh": "执行 `medinfra fix RUN` 修复。"}
    return build_runbook(block, "root_login_off", "control", "root_login_off.yml")


def runbook_run() -> AuditRun:
    catalog = replace(CATALOG, controls=tuple(
        replace(c, runbook=hostile_runbook()) if c.id == "root_login_off" else c for c in CATALOG.controls))
    results = [HostResult("his-01", "audited", "", evidence(root_login="yes"), 0.1)]
    views = {"his-01": {"groups": [], "zone": "his", "site": "test", "services": []}}
    return AuditRun("pyinfra", "inv", NOW, results, judge(results, views, catalog, (), NOW), catalog, (), 1.0,
                    views=views)


def test_the_findings_document_carries_the_runbook_and_stays_valid() -> None:
    document = findings_document(runbook_run())
    assert document["controls"]["root_login_off"]["runbook"]["checks"][0]["command"].startswith('echo "<script>')
    assert "runbook" not in document["controls"]["forwarding_off"]
    assert document_problems("findings.json", document) == []
    shown = build_report(document).controls["root_login_off"].runbook
    assert shown is not None and shown.escalate.to == ("ops", "vendor")
    assert shown.checks == hostile_runbook().checks


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_html_report_shows_each_runbook_escaped_with_a_stable_anchor(lang: str) -> None:
    report = build_report(findings_document(runbook_run()))
    page = render_html(report, lang, kb_url="https://kb.hospital.example/h/")
    assert page.count("<script") == 1  # the page's own
    entry = page[page.index('id="runbook-root_login_off"'):]
    entry = entry[:entry.index("</details>")]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in entry
    assert '<code class="command">echo &#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34; &amp;&amp; systemctl' in entry
    assert '<a class="kb-link" href="https://kb.hospital.example/h/controls/root_login_off.html">' in entry
    if lang == "en":
        assert "<code>medinfra fix &lt;script&gt;alert(1)&lt;/script&gt;</code> then wait." in entry
        assert "after 30 min → ops, vendor: Call." in entry
    else:
        assert "<code>medinfra fix RUN</code> 修复。" in entry and "运维, 厂商" in entry
    assert 'id="runbook-forwarding_off"' not in page
    assert "kb-link" not in render_html(report, lang)


@pytest.mark.parametrize(("value", "en", "zh"), [(30, "30 min", "30 分钟"), (90, "90 min", "90 分钟"),
                                                (120, "2 h", "2 小时"), (1440, "1 d", "1 天"), (2880, "2 d", "2 天")])
def test_escalation_delays_read_as_people_say_them(value: int, en: str, zh: str) -> None:
    assert (minutes(value, ui("en")), minutes(value, ui("zh"))) == (en, zh)


def test_oscal_carries_the_runbook_and_validates(tmp_path: Path) -> None:
    report = build_report(findings_document(runbook_run()))
    with OutputDirectory.open(tmp_path) as out:
        write_oscal(report, out, "oscal.json")
    document = json.loads((tmp_path / "oscal.json").read_text(encoding="utf-8"))
    assert [f"{list(e.absolute_path)}: {e.message}" for e in oscal_validator().iter_errors(document)] == []
    text = json.dumps(document, ensure_ascii=False)
    assert '"id": "root_login_off_runbook", "name": "runbook"' in text and "执行 `medinfra fix RUN` 修复。" in text


def test_medinfra_report_links_runbooks_to_a_knowledge_base_it_is_given(tmp_path: Path) -> None:
    published = publish(runbook_run(), tmp_path / "run", None, None)
    out = tmp_path / "again"
    assert main(["report", str(published.directory), "-o", str(out), "--lang", "en", "--no-history",
                 "--kb-url", "file:///srv/medinfra/kb/"]) == 0
    assert 'href="file:///srv/medinfra/kb/controls/root_login_off.html"' in (out / "report.en.html").read_text("utf-8")
    for wrong in ("javascript:alert(1)//", "https://kb.example/no-slash", 'https://kb.example/"/'):
        with pytest.raises(SystemExit) as caught:
            main(["report", str(published.directory), "-o", str(out), "--no-history", "--kb-url", wrong])
        assert caught.value.code == 2


def test_every_control_has_a_runbook() -> None:
    """Every control of the shipped catalog carries its `runbook:` block (compliance/controls/<id>.yml)."""
    catalog = load_catalog()
    missing = sorted(control.id for control in catalog.controls if control.runbook is None)
    assert not missing, f"{len(missing)} of {len(catalog.controls)} controls without a runbook: {missing}"
    assert sorted(control_runbooks(catalog)) == sorted(control.id for control in catalog.controls)


def test_the_control_runbooks_read_well() -> None:
    """What the schema cannot say, for the controls that have a runbook: no folded spaces in Chinese, every command
    valid shell."""
    runbooks = control_runbooks(load_catalog()).values()
    for runbook in runbooks:
        assert not [text for text in texts(runbook) if FOLDED_SPACE.search(text)], runbook.key
    assert not shell_syntax_errors([(runbook.key, check.command) for runbook in runbooks
                                    for check in runbook.checks if check.command])
