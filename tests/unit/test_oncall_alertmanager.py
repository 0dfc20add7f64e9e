"""The rota compiled into Alertmanager: amtool proves the routing tree for each case (weekday day, night, the
weekend, escalation), and an evaluator of Alertmanager's documented time-interval semantics (amtool evaluates none)
proves which of the routed receivers are active at each instant."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import pytest
import yaml

from medinfra.oncall.alertmanager import compile_alertmanager, horizon
from medinfra.oncall.load import load_oncall
from medinfra.oncall.model import Channel, Escalation, OnCall, Person, Rotation, Shift
from medinfra.oncall.schedule import on_duty
from tests.conftest import LAB_TOPOLOGY, ROOT

ROLE = ROOT / "roles" / "monitoring_server"
AMTOOL = Path("/usr/bin/amtool")
SHANGHAI = ZoneInfo("Asia/Shanghai")
LAB = load_oncall(LAB_TOPOLOGY.parent / "oncall.yml")
# As role monitoring_server's defaults (monitoring_server_oncall_routes).
ROUTES = {"pager": "duty", "oncall": "duty", "network": "network"}
WECOM_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=wecom-secret-token"
URLS = {"oncall_wecom_wang_lei": WECOM_URL, "oncall_dingtalk_liu_yang": "https://oapi.dingtalk.com/robot/send?access_token=ding-secret"}
# A Monday: the compiled horizon starts here, and the cases below fall in its first two weeks.
COMPILED_AT = datetime(2026, 11, 30, 12, 0, tzinfo=SHANGHAI)


def render_alertmanager(compiled: Mapping[str, Any], path: Path, smtp: Mapping[str, str] | None = None) -> Path:
    """The role's template rendered as Ansible renders it (trim_blocks), with the rota compiled."""
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True)
    environment.filters["to_json"] = json.dumps
    environment.filters["combine"] = lambda base, extra: {**base, **extra}
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    text = environment.from_string((ROLE / "templates" / "alertmanager.yml.j2").read_text(encoding="utf-8")).render(
        ansible_managed="test",
        monitoring_server_receivers=defaults["monitoring_server_receivers"],
        monitoring_server_owner_receivers={},
        monitoring_server_office_hours=defaults["monitoring_server_office_hours"],
        monitoring_server_timezone="Asia/Shanghai",
        monitoring_server_oncall=compiled,
        monitoring_server_smtp=smtp or {},
    )
    path.write_text(text, encoding="utf-8")
    return path


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    if not AMTOOL.is_file():
        pytest.fail(f"{AMTOOL} is missing: install the Debian package `prometheus-alertmanager`")
    return subprocess.run([str(AMTOOL), *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def lab_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiled = compile_alertmanager(LAB, COMPILED_AT, ROUTES, URLS, "http://127.0.0.1:9096", email=True)
    smtp = {"smtp_smarthost": "mail.lab.medinfra.test:587", "smtp_from": "alertmanager@lab.medinfra.test"}
    path = render_alertmanager(compiled.to_dict(), tmp_path_factory.mktemp("am") / "alertmanager.yml", smtp)
    result = amtool("check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    return path


# ---- an evaluator of Alertmanager 0.25's time intervals (docs: configuration, <time_interval>) ----

def _in_ranges(value: int, ranges: list[str] | None, names: Mapping[str, int] | None = None) -> bool:
    if not ranges:
        return True
    for text in ranges:
        low, _, high = str(text).partition(":")
        first = names[low] if names and low in names else int(low)
        last = (names[high] if names and high in names else int(high)) if high else first
        if first <= value <= last:
            return True
    return False


WEEKDAYS = {name: i for i, name in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                                               "sunday"))}


def _clock(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def interval_active(entries: list[dict[str, Any]], at: datetime) -> bool:
    for entry in entries:
        local = at.astimezone(ZoneInfo(entry.get("location", "UTC")))
        minute = local.hour * 60 + local.minute
        times = entry.get("times")
        if times and not any(_clock(t["start_time"]) <= minute < _clock(t["end_time"]) for t in times):
            continue
        if (
            _in_ranges(local.weekday(), entry.get("weekdays"), WEEKDAYS)
            and _in_ranges(local.day, entry.get("days_of_month"))
            and _in_ranges(local.month, entry.get("months"))
            and _in_ranges(local.year, entry.get("years"))
        ):
            return True
    return False


def routed(config: Path, labels: Mapping[str, str]) -> list[str]:
    """amtool's receivers for ``labels`` (the routing tree, whatever the time)."""
    result = amtool("config", "routes", "test", f"--config.file={config}", *(f"{k}={v}" for k, v in labels.items()))
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().split(",")


def routes_reaching(route: dict[str, Any], labels: Mapping[str, str]) -> list[dict[str, Any]]:
    """The leaf routes an alert reaches (Alertmanager's Route.Match), with group_wait inherited on the way; time
    intervals are not (measured on 0.25: a child of a route never active still notified)."""
    if not all(_matches(m, labels) for m in route.get("matchers", [])):
        return []
    found: list[dict[str, Any]] = []
    for child in route.get("routes", []):
        inherited = {**child, "group_wait": child.get("group_wait", route.get("group_wait"))}
        reached = routes_reaching(inherited, labels)
        found += reached
        if reached and not child.get("continue"):
            break
    return found or [route]


def _matches(matcher: str, labels: Mapping[str, str]) -> bool:
    found = re.fullmatch(r'(\w+)(=~|=)"(.*)"', matcher)
    assert found, matcher
    name, operator, value = found.groups()
    actual = labels.get(name, "")
    return re.fullmatch(value, actual) is not None if operator == "=~" else actual == value


def active_receivers(config: Path, labels: Mapping[str, str], at: datetime) -> dict[str, str]:
    """Receiver -> group_wait of the routes that would notify at ``at``."""
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    intervals = {i["name"]: i["time_intervals"] for i in document["time_intervals"]}
    active = {}
    for route in routes_reaching(document["route"], labels):
        names = route.get("active_time_intervals") or []
        # A route with active_time_intervals notifies while any of them is active.
        if not names or any(interval_active(intervals[n], at) for n in names):
            active[route["receiver"]] = route.get("group_wait") or document["route"]["group_wait"]
    return active


CRITICAL = {"alertname": "HisDown", "sla": "24x7-critical", "severity": "critical", "instance": "his-app"}
# (instant, the duty watch then, the ops and network holders the escalations reach)
CASES = {
    "weekday day": (datetime(2026, 12, 3, 10, 0, tzinfo=SHANGHAI), "wang-lei", "li-na", "zhang-wei"),
    "weekday night": (datetime(2026, 12, 3, 3, 0, tzinfo=SHANGHAI), "chen-jing", "li-na", "zhang-wei"),
    "sunday 03:00": (datetime(2026, 12, 6, 3, 0, tzinfo=SHANGHAI), "chen-jing", "li-na", "zhang-wei"),
    "weekend day": (datetime(2026, 12, 5, 12, 0, tzinfo=SHANGHAI), "liu-yang", "li-na", "zhang-wei"),
    "monday after the weekly handover": (datetime(2026, 12, 7, 8, 0, tzinfo=SHANGHAI), "li-na", "wang-lei", "li-na"),
    "monday before the handover": (datetime(2026, 12, 7, 7, 59, tzinfo=SHANGHAI), "chen-jing", "li-na", "zhang-wei"),
}


def test_amtool_routes_a_critical_alert_to_the_rota_and_its_escalations(lab_config: Path) -> None:
    receivers = routed(lab_config, CRITICAL)
    duty = {f"oncall-{p}" for p in ("wang-lei", "li-na", "zhang-wei", "chen-jing", "liu-yang")}
    escalated = {"escalated-li-na", "escalated-wang-lei", "escalated-zhang-wei"}
    assert receivers[0] == "pager", receivers  # the SLA route's own receiver first, as without a rota
    assert set(receivers) == {"pager"} | duty | escalated, receivers


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_person_on_duty_gets_it_then(case: str, lab_config: Path) -> None:
    at, duty, ops, network = CASES[case]
    # The expectation from on_duty, the tested schedule.
    assert {d.role: d.person.id for d in on_duty(LAB, at)}["duty"] == duty
    # amtool: every receiver below is in the routing tree of this alert.
    reachable = set(routed(lab_config, CRITICAL))
    active = active_receivers(lab_config, CRITICAL, at)
    assert set(active) <= reachable
    assert active == {
        "pager": "0s",
        f"oncall-{duty}": "0s",
        # Escalations: the ops holder after 15 minutes, the network holder after 45.
        f"escalated-{ops}": "15m",
        f"escalated-{network}": "45m",
    }


def test_escalation_receivers_are_present_with_their_waits(lab_config: Path) -> None:
    document = yaml.safe_load(lab_config.read_text(encoding="utf-8"))
    pager = next(r for r in document["route"]["routes"] if r["receiver"] == "pager")
    waits = [r.get("group_wait") for r in pager["routes"] if r.get("group_wait")]
    assert waits == ["15m", "45m"]
    assert all(child["continue"] for child in pager["routes"])
    names = {r["name"] for r in document["receivers"]}
    assert {"escalated-li-na", "escalated-wang-lei", "escalated-zhang-wei"} <= names


def test_other_routes_keep_their_meaning(lab_config: Path) -> None:
    office = {"alertname": "LisSlow", "sla": "business-hours", "severity": "warning"}
    assert routed(lab_config, office) == ["office"]
    standard = {"alertname": "ExporterDown", "sla": "24x7-standard", "severity": "critical"}
    assert routed(lab_config, standard)[0] == "oncall"
    at = CASES["sunday 03:00"][0]
    assert "oncall-chen-jing" in active_receivers(lab_config, standard, at)
    assert active_receivers(lab_config, office, at) == {}  # office hours only


def test_media_quality_reaches_the_network_engineer_on_duty_at_night(lab_config: Path) -> None:
    """A media alert from the guest Wi-Fi's probe (a business-hours host) at 03:00 on a Sunday: the office route
    waits for Monday, the network route and the network engineer on the rota get it now."""
    media = {"alertname": "RtcPacketLoss", "team": "network", "sla": "business-hours", "severity": "warning",
             "instance": "guest-01"}
    at, _, _, network = CASES["sunday 03:00"]
    assert {d.role: d.person.id for d in on_duty(LAB, at)}["network"] == network
    receivers = routed(lab_config, media)
    assert receivers[0] == "network" and "office" in receivers, receivers
    assert set(active_receivers(lab_config, media, at)) == {"network", f"oncall-{network}"}
    # Without the label it is an office alert like any other.
    assert routed(lab_config, {**media, "team": ""}) == ["office"]


def test_secrets_stay_out_of_alertmanager_yml_except_generic_webhooks(lab_config: Path) -> None:
    text = lab_config.read_text(encoding="utf-8")
    assert "wecom-secret-token" not in text and "ding-secret" not in text
    assert "http://127.0.0.1:9096/wang-lei-wecom-1" in text


def test_relay_targets_and_skipped_channels() -> None:
    compiled = compile_alertmanager(LAB, COMPILED_AT, ROUTES, URLS, "http://127.0.0.1:9096", email=False)
    assert compiled.relay_targets == {
        "wang-lei-wecom-1": {"kind": "wecom", "url": WECOM_URL},
        "liu-yang-dingtalk-0": {"kind": "dingtalk", "url": URLS["oncall_dingtalk_liu_yang"]},
    }
    assert "zhang-wei: wecom webhook (vault variable oncall_wecom_zhang_wei is not set)" in compiled.skipped
    assert "wang-lei: email (no SMTP server configured)" in compiled.skipped
    assert not any("secret" in text for text in compiled.skipped)


def test_horizon_starts_on_monday_so_a_week_s_runs_agree() -> None:
    monday = compile_alertmanager(LAB, COMPILED_AT, ROUTES, URLS, "http://x", email=True, weeks=2).to_dict()
    sunday = compile_alertmanager(LAB, COMPILED_AT + timedelta(days=6, hours=11), ROUTES, URLS, "http://x", email=True,
                                  weeks=2).to_dict()
    assert monday == sunday
    start, end = horizon(LAB, COMPILED_AT, 26)
    assert (start.isoformat(), end.isoformat()) == ("2026-11-30T00:00:00+08:00", "2027-05-31T00:00:00+08:00")


def tiny(escalation: Escalation | None = None) -> OnCall:
    people = tuple(Person(p, p, ("duty", "ops"), (Channel("generic", url=f"https://{p}.test/hook"),)) for p in "ab")
    vendor = Person("v", "Vendor", ("vendor",), (Channel("email", address="v@x.test"),), vendor="X")
    night = Shift((0, 1, 2, 3, 4, 5, 6), time(18, 0), time(8, 0))
    rotation = Rotation("n", "duty", date(2026, 1, 26), 7, ("a", "b"), (night,))
    return OnCall("t", "Asia/Shanghai", (*people, vendor), (rotation,), escalations=(escalation,) if escalation else ())


def test_night_shifts_across_midnight_and_month_ends() -> None:
    at = datetime(2026, 1, 26, tzinfo=UTC)
    compiled = compile_alertmanager(tiny(), at, {"pager": "duty"}, {}, "http://x", email=True, weeks=2)
    intervals = {i["name"]: i["time_intervals"] for i in compiled.time_intervals}
    night = [{"start_time": "00:00", "end_time": "08:00"}, {"start_time": "18:00", "end_time": "24:00"}]
    assert intervals["oncall-duty-a"] == [
        {"years": ["2026"], "months": ["1"], "days_of_month": ["26"], "location": "Asia/Shanghai",
         "times": [{"start_time": "18:00", "end_time": "24:00"}]},
        {"years": ["2026"], "months": ["1"], "days_of_month": ["27:31"], "location": "Asia/Shanghai", "times": night},
        # February is another entry: a days_of_month range stays inside its month.
        {"years": ["2026"], "months": ["2"], "days_of_month": ["1"], "location": "Asia/Shanghai", "times": night},
        # Sunday night's shift ends Monday 08:00, in the next person's week.
        {"years": ["2026"], "months": ["2"], "days_of_month": ["2"], "location": "Asia/Shanghai",
         "times": [{"start_time": "00:00", "end_time": "08:00"}]},
    ]
    # Generic webhooks go to Alertmanager directly.
    receivers = {r["name"]: r for r in compiled.receivers}
    assert receivers["oncall-a"]["webhook_configs"] == [{"url": "https://a.test/hook", "send_resolved": True}]


def test_escalation_to_a_person_at_any_time() -> None:
    compiled = compile_alertmanager(tiny(Escalation("duty", 20, to_person="v")), datetime(2026, 2, 2, tzinfo=UTC),
                                    {"pager": "duty"}, {}, "http://x", True, 1)
    step = compiled.routes["pager"][1]
    assert step["group_wait"] == "20m"
    assert step["routes"] == [{"receiver": "escalated-v", "continue": True}]
    assert {"name": "escalated-v", "email_configs": [{"to": "v@x.test", "send_resolved": True}]} in compiled.receivers
