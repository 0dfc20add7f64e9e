"""Alertmanager webhook -> WeCom / DingTalk group robot relay (Python standard library only).

Alertmanager 0.25 can post only its own webhook JSON; the robots want {"msgtype": "markdown", ...}. Alertmanager
posts to http://LISTEN/<key>; the relay looks <key> up in its targets file ({key: {"kind": "wecom"|"dingtalk",
"url": ...}}, read from systemd's credential directory, never from the command line: the URLs carry the robots'
tokens) and posts the markdown body there. A robot's refusal answers 502, so Alertmanager retries. Logs name the key,
never a URL.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

MAX_REQUEST_BYTES = 1 << 20
# The robots' documented limits: WeCom markdown content 4096 bytes, DingTalk 20000 bytes.
MAX_BYTES = {"wecom": 4096, "dingtalk": 20000}
SHOWN_LABELS = ("instance", "interface", "sla", "severity", "owner")


def _line(text: Any) -> str:
    """One line of markdown-safe text: labels and annotations come from the monitored systems."""
    return " ".join(str(text).split()).replace("[", "(").replace("]", ")")


def _when(stamp: str, zone: ZoneInfo) -> str:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")
    except ValueError:
        return _line(stamp)


def markdown(payload: dict[str, Any], zone: ZoneInfo) -> tuple[str, str]:
    """(title, markdown text) of an Alertmanager webhook payload."""
    alerts = payload.get("alerts") or []
    status = str(payload.get("status", "firing")).upper()
    common = payload.get("commonLabels") or {}
    name = common.get("alertname") or ", ".join(sorted({str(a.get("labels", {}).get("alertname")) for a in alerts}))
    escalated = str(payload.get("receiver", "")).startswith("escalated-")
    title = f"{'[ESCALATED 升级] ' if escalated else ''}[{_line(status)}:{len(alerts)}] {_line(name)} 告警"
    lines = [f"### {title}"]
    if escalated:
        lines.append("**Not acknowledged in time: escalated to you. 未及时确认，已升级给您。**")
    for alert in alerts:
        labels = alert.get("labels") or {}
        annotations = alert.get("annotations") or {}
        state = "resolved 已恢复" if alert.get("status") == "resolved" else "firing 告警中"
        detail = ", ".join(f"{k}={_line(labels[k])}" for k in SHOWN_LABELS if k in labels)
        lines.append(f"- **{_line(labels.get('alertname', '?'))}** ({state}) {detail}")
        lines.append(f"  since 开始于 {_when(str(alert.get('startsAt', '')), zone)}")
        for key in ("summary", "description"):
            if annotations.get(key):
                lines.append(f"  {_line(annotations[key])}")
        if str(annotations.get("runbook_url", "")).startswith(("https://", "http://")):
            lines.append(f"  [Runbook 处置手册]({_line(annotations['runbook_url'])})")
    if payload.get("externalURL"):
        lines.append(f"[Alertmanager]({_line(payload['externalURL'])}) (silence to acknowledge 静默即确认)")
    return title, "\n".join(lines)


def _cut(text: str, limit: int) -> str:
    """Whole lines up to ``limit`` bytes (a cut link would not render), then a note that the rest is left out."""
    if len(text.encode("utf-8")) <= limit:
        return text
    note = "\n... (truncated 已截断)"
    kept, size = [], len(note.encode("utf-8"))
    for line in text.split("\n"):
        size += len(line.encode("utf-8")) + 1
        if size > limit:
            break
        kept.append(line)
    return "\n".join(kept) + note


def robot_body(kind: str, payload: dict[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    """The body a WeCom or DingTalk group robot accepts."""
    title, text = markdown(payload, zone)
    text = _cut(text, MAX_BYTES[kind])
    if kind == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": text}}
    return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}


def post(url: str, body: dict[str, Any], timeout: float) -> str | None:
    """Deliver ``body``; None when the robot accepted it, otherwise why not (without the URL)."""
    request = urllib.request.Request(
        url, data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        headers={"Content-Type": "application/json; charset=utf-8"}, method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = response.read(65536)
    except OSError as exc:
        return f"{type(exc).__name__}: {getattr(exc, 'reason', None) or getattr(exc, 'code', '')}"
    try:
        code = json.loads(answer or b"{}").get("errcode", 0)
    except (ValueError, AttributeError):
        return "the robot's answer is not JSON"
    return None if code == 0 else f"errcode {code}"


class Relay(BaseHTTPRequestHandler):
    targets: ClassVar[dict[str, dict[str, str]]] = {}
    zone = ZoneInfo("UTC")
    timeout = 10.0

    def do_POST(self) -> None:
        key = self.path.strip("/")
        target = self.targets.get(key)
        length = int(self.headers.get("Content-Length") or 0)
        if target is None or target.get("kind") not in MAX_BYTES:
            self.answer(404, "unknown target")
            return
        if not 0 < length <= MAX_REQUEST_BYTES:
            self.answer(413, "body too large or empty")
            return
        try:
            payload = json.loads(self.rfile.read(length))
            body = robot_body(target["kind"], payload, self.zone)
        except (ValueError, TypeError, AttributeError):
            self.answer(400, "not an Alertmanager webhook payload")
            return
        failure = post(target["url"], body, self.timeout)
        if failure:
            self.answer(502, f"{target['kind']} robot refused or unreachable: {failure}")
        else:
            self.answer(200, "delivered")

    def answer(self, status: int, message: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        self.wfile.write(message.encode("utf-8"))

    def log_message(self, format: str, *args: Any) -> None:
        # The path is the key, never a URL; the request line holds nothing secret.
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:9096", help="address:port (loopback)")
    parser.add_argument("--targets", help="targets file (default: the systemd credential 'targets')")
    parser.add_argument("--timezone", default="UTC", help="time zone the messages show times in")
    args = parser.parse_args(argv)
    credentials = Path(os.environ.get("CREDENTIALS_DIRECTORY", "/nonexistent"))
    targets = Path(args.targets) if args.targets else credentials / "targets"
    Relay.targets = json.loads(targets.read_text(encoding="utf-8"))
    Relay.zone = ZoneInfo(args.timezone)
    host, port = args.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Relay)
    sys.stderr.write(f"relaying to {len(Relay.targets)} robot(s) on {args.listen}\n")
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
