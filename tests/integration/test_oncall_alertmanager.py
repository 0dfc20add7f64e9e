"""A real Alertmanager 0.25 with the rota compiled for now: the alert reaches the person on duty as WeCom and
DingTalk robot markdown (through the relay), escalates after its wait, and does not escalate once silenced."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from medinfra.oncall.alertmanager import compile_alertmanager
from medinfra.oncall.load import load_oncall
from medinfra.oncall.schedule import on_duty
from tests.conftest import LAB_TOPOLOGY, ROOT
from tests.unit.test_oncall_alertmanager import render_alertmanager

pytestmark = pytest.mark.integration

ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")
RELAY = ROOT / "roles" / "monitoring_server" / "files" / "medinfra-oncall-relay.py"
ESCALATION_WAIT = "6s"  # set by the test: oncall.yml's minimum is a minute
PEOPLE = ("alice", "bob")
ROTA = """
people:
  - {id: alice, name: "Alice (duty)", roles: [duty], channels: [
      {type: webhook, kind: wecom, url: {vault: wecom_alice}},
      {type: webhook, kind: dingtalk, url: {vault: ding_alice}}]}
  - {id: bob, name: "Bob (duty)", roles: [duty], channels: [
      {type: webhook, kind: wecom, url: {vault: wecom_bob}},
      {type: webhook, kind: dingtalk, url: {vault: ding_bob}}]}
  - {id: carol, name: "Carol (second line)", roles: [ops], channels: [
      {type: webhook, kind: wecom, url: {vault: wecom_carol}}]}
round_the_clock: [duty, ops]
rotations:
  - {name: duty-day, role: duty, start: 2026-01-05, people: [alice, bob],
     shifts: [{days: daily, start: "08:00", end: "20:00"}]}
  - {name: duty-night, role: duty, start: 2026-01-05, people: [bob, alice],
     shifts: [{days: daily, start: "20:00", end: "08:00"}]}
  - {name: ops, role: ops, start: 2026-01-05, people: [carol], shifts: [{days: daily, start: "08:00", end: "08:00"}]}
escalation:
  - {from: duty, after_minutes: 1, to: {role: ops}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Robots(BaseHTTPRequestHandler):
    """Stands in for the WeCom and DingTalk robot APIs: records each body by its path, answers errcode 0."""

    received: ClassVar[list[tuple[str, dict[str, Any]]]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            self.received.append((self.path, body))
        answer = b'{"errcode": 0, "errmsg": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} within {seconds} s; received: {[(p, b) for p, b in Robots.received]}")


def api(port: int, path: str, body: Any) -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
    return json.loads(text) if text else None


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    if not ALERTMANAGER.is_file():
        pytest.fail(f"{ALERTMANAGER} is missing: install the Debian package `prometheus-alertmanager`")
    shutil.copy(LAB_TOPOLOGY, tmp_path / "hospital.yml")
    (tmp_path / "oncall.yml").write_text(ROTA, encoding="utf-8")
    oncall = load_oncall(tmp_path / "oncall.yml")
    robots = ThreadingHTTPServer(("127.0.0.1", 0), Robots)
    Robots.received = []
    threading.Thread(target=robots.serve_forever, daemon=True).start()
    robot = f"http://127.0.0.1:{robots.server_address[1]}"
    urls = {f"{kind}_{p}": f"{robot}/{kind}/{p}" for p in ("alice", "bob", "carol") for kind in ("wecom", "ding")}
    relay_port, am_port = free_port(), free_port()
    now = datetime.now(UTC)
    compiled = compile_alertmanager(oncall, now, {"pager": "duty", "oncall": "duty"}, urls,
                                    f"http://127.0.0.1:{relay_port}", email=False, weeks=1).to_dict()
    for route in compiled["routes"].values():
        for step in route:
            if "group_wait" in step:
                step["group_wait"] = ESCALATION_WAIT
    config = render_alertmanager(compiled, tmp_path / "alertmanager.yml")
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps(compiled["relay_targets"]), encoding="utf-8")
    targets.chmod(0o600)
    processes = [
        subprocess.Popen([sys.executable, str(RELAY), "--listen", f"127.0.0.1:{relay_port}", "--targets", str(targets),
                          "--timezone", oncall.timezone], stderr=(tmp_path / "relay.log").open("w")),
        subprocess.Popen([str(ALERTMANAGER), f"--config.file={config}", f"--storage.path={tmp_path / 'data'}",
                          f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=",
                          "--log.level=debug"], stderr=(tmp_path / "alertmanager.log").open("w")),
    ]
    try:
        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{am_port}/-/ready", timeout=2):
                    return True
            except OSError:
                return False

        wait_for(ready, 20, "Alertmanager ready")
        duty = {d.role: d.person.id for d in on_duty(oncall, now)}
        yield {"port": am_port, "duty": duty["duty"], "ops": duty["ops"], "log": tmp_path / "alertmanager.log",
               "relay_log": tmp_path / "relay.log", "secrets": list(urls.values())}
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        robots.shutdown()


def alert(name: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "sla": "24x7-critical", "severity": "critical", "instance": "his-app"},
        "annotations": {"summary": f"{name}: the HIS does not answer", "runbook_url": f"https://kb.test/alerts/{name}.html"},
        "startsAt": datetime.now(UTC).isoformat(),
    }


def bodies(path: str, name: str) -> list[dict[str, Any]]:
    return [b for p, b in list(Robots.received) if p == path and name in json.dumps(b, ensure_ascii=False)]


def test_the_person_on_duty_is_paged_and_unacknowledged_alerts_escalate(stack: dict[str, Any]) -> None:
    started = time.monotonic()
    duty, other, ops = stack["duty"], next(p for p in PEOPLE if p != stack["duty"]), stack["ops"]
    api(stack["port"], "/api/v2/alerts", [alert("HisDown"), alert("PacsDown")])
    wait_for(lambda: bodies(f"/wecom/{duty}", "HisDown") and bodies(f"/ding/{duty}", "HisDown")
             and bodies(f"/wecom/{duty}", "PacsDown"), 15, f"{duty} (on duty now) paged on WeCom and DingTalk")

    # The night shift's person acknowledges PacsDown: a silence, before the escalation's wait is over.
    now = datetime.now(UTC)
    api(stack["port"], "/api/v2/silences", {
        "matchers": [{"name": "alertname", "value": "PacsDown", "isRegex": False, "isEqual": True}],
        "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
        "createdBy": duty, "comment": "acknowledged: working on it",
    })
    assert time.monotonic() - started < 5, "the silence must come before the escalation wait ends"

    wecom = bodies(f"/wecom/{duty}", "HisDown")[0]
    assert wecom["msgtype"] == "markdown" and set(wecom["markdown"]) == {"content"}
    assert "[FIRING:1] HisDown" in wecom["markdown"]["content"]
    assert "https://kb.test/alerts/HisDown.html" in wecom["markdown"]["content"]
    ding = bodies(f"/ding/{duty}", "HisDown")[0]
    assert ding["msgtype"] == "markdown" and set(ding["markdown"]) == {"title", "text"}
    assert "HisDown" in ding["markdown"]["title"] and "sla=24x7-critical" in ding["markdown"]["text"]
    assert not bodies(f"/wecom/{other}", "HisDown") and not bodies(f"/ding/{other}", "HisDown"), "only who is on duty"

    wait_for(lambda: bodies(f"/wecom/{ops}", "HisDown"), 20, f"HisDown escalated to {ops} (ops)")
    escalated = bodies(f"/wecom/{ops}", "HisDown")[0]["markdown"]["content"]
    assert "ESCALATED" in escalated
    time.sleep(4)  # well past the escalation wait of PacsDown's group too
    assert not bodies(f"/wecom/{ops}", "PacsDown"), "a silenced (acknowledged) alert must not escalate"
    # The robots' URLs (their tokens) reach the relay as a file only: in no log.
    for log in (stack["log"], stack["relay_log"]):
        text = log.read_text(encoding="utf-8")
        assert not any(url in text for url in stack["secrets"]), log
    assert time.monotonic() - started < 60
