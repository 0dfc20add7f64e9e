"""The WeCom / DingTalk relay's bodies, limits and answers (the real delivery runs in the integration test)."""

from __future__ import annotations

import importlib.util
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import ROOT

SPEC = importlib.util.spec_from_file_location(
    "oncall_relay", ROOT / "roles" / "monitoring_server" / "files" / "medinfra-oncall-relay.py"
)
assert SPEC and SPEC.loader
relay: ModuleType = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(relay)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def payload(receiver: str = "oncall-wang-lei", alerts: int = 1, summary: str = "HIS does not answer") -> dict[str, Any]:
    return {
        "receiver": receiver,
        "status": "firing",
        "externalURL": "https://monitor-01:9093",
        "commonLabels": {"alertname": "HisDown"},
        "alerts": [
            {"status": "firing", "labels": {"alertname": "HisDown", "instance": f"his-app-{i}", "sla": "24x7-critical"},
             "annotations": {"summary": summary, "runbook_url": "https://kb/alerts/HisDown.html"},
             "startsAt": "2026-12-05T19:00:00Z"}
            for i in range(alerts)
        ],
    }


def test_wecom_body() -> None:
    body = relay.robot_body("wecom", payload(), SHANGHAI)
    assert body["msgtype"] == "markdown" and list(body["markdown"]) == ["content"]
    content = body["markdown"]["content"]
    assert content.startswith("### [FIRING:1] HisDown")
    assert "2026-12-06 03:00:00 CST" in content  # Sunday 03:00 in the site's time zone
    assert "[Runbook 处置手册](https://kb/alerts/HisDown.html)" in content


def test_dingtalk_body_and_escalation_mark() -> None:
    body = relay.robot_body("dingtalk", payload("escalated-li-na"), SHANGHAI)
    assert body["msgtype"] == "markdown" and set(body["markdown"]) == {"title", "text"}
    assert body["markdown"]["title"].startswith("[ESCALATED 升级] [FIRING:1] HisDown")
    assert "escalated to you" in body["markdown"]["text"]


def test_wecom_content_stays_within_4096_bytes() -> None:
    body = relay.robot_body("wecom", payload(alerts=200, summary="病人 " * 20), SHANGHAI)
    content = body["markdown"]["content"]
    assert len(content.encode("utf-8")) <= 4096 and content.endswith("(truncated 已截断)")


def test_hostile_labels_cannot_inject_links_or_lines() -> None:
    hostile = payload(summary="ok\n### [click](https://evil)")
    content = relay.robot_body("wecom", hostile, SHANGHAI)["markdown"]["content"]
    assert "[click](https://evil)" not in content and "\n### (click)" not in content


@pytest.fixture
def served() -> Iterator[str]:
    relay.Relay.targets = {"good": {"kind": "wecom", "url": "http://127.0.0.1:9/unreachable"}}
    server = ThreadingHTTPServer(("127.0.0.1", 0), relay.Relay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def status(url: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_answers(served: str) -> None:
    assert status(f"{served}/unknown", b"{}")[0] == 404
    assert status(f"{served}/good", b"not json")[0] == 400
    code, text = status(f"{served}/good", json.dumps(payload()).encode())
    # An unreachable robot: 502 so that Alertmanager retries, and no URL in the answer.
    assert code == 502 and "unreachable" in text and "127.0.0.1:9" not in text
