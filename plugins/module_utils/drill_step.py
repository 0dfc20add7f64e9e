"""One step of a drill, run as root on a host by `medinfra drill run` (standard library only; Python 3.11).

The controller sends this source with `main(PARAMS)` appended (PARAMS a JSON literal, never a command line) and
reads one JSON object from stdout: {"ok": bool, "detail": str, "seconds": float}. Actions:

- stop_unit / start_unit / restart_unit: systemctl on one unit.
- isolate: an nftables table of its own that drops everything but SSH from the given sources (and loopback), and a
  transient systemd timer that deletes the table after max_seconds: a drill whose controller dies must not leave
  the host cut off. unisolate: stop that timer, delete the table.
- command: a shell command that must exit 0.
- expect: a shell command retried every `every` seconds until it exits 0 or `within` seconds have passed.
- alerts: the monitoring server's Alertmanager asked (TLS against the site CA, as the internal "prometheus" user)
  until the expected alerts are active, or `within` seconds have passed.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import sys
import time
import urllib.request
from typing import Any

ISOLATION_TABLE = "medinfra_drill_isolate"
ISOLATION_TIMER = "medinfra-drill-unisolate"
OUTPUT_KEPT = 300
API_TIMEOUT = 10
API_LIMIT = 4 * 1024 * 1024
ALERTS_EVERY = 5.0


def tail(text: str) -> str:
    """The end of a program's output, on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= OUTPUT_KEPT else "…" + flat[-OUTPUT_KEPT:]


def run(argv: list[str], stdin: str = "", timeout: float = 60) -> tuple[int, str]:
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout:g} s"
    except OSError as exc:
        return -1, f"{argv[0]}: {exc.strerror or exc}"
    return done.returncode, tail(done.stdout + " " + done.stderr)


def wait(seconds: float) -> None:
    """Sleep between attempts, first writing a blank line (JSON allows it before the answer): when the controller
    has gone (Ctrl-C, killed), the write fails and this program ends instead of polling on for nobody."""
    try:
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:
        sys.exit(0)
    time.sleep(seconds)


def result(ok: bool, detail: str, began: float) -> dict[str, Any]:
    return {"ok": ok, "detail": detail, "seconds": round(time.monotonic() - began, 3)}


def unit_action(verb: str, unit: str, began: float) -> dict[str, Any]:
    code, output = run(["systemctl", verb, unit])
    if code != 0:
        return result(False, f"systemctl {verb} {unit} exited {code}: {output}", began)
    _exit, state = run(["systemctl", "is-active", unit])
    return result(True, f"systemctl {verb} {unit}: now {state or 'unknown'}", began)


def isolation_rules(sources: list[str], ssh_port: int) -> str:
    """The table: before any other table's chains (priority -300), both directions, SSH from `sources` only."""
    v4 = [s for s in sources if ":" not in s]
    v6 = [s for s in sources if ":" in s]
    accept_in = "".join(
        f"    {family} saddr {{ {', '.join(group)} }} tcp dport {ssh_port} accept\n"
        for family, group in (("ip", v4), ("ip6", v6)) if group
    )
    accept_out = "".join(
        f"    {family} daddr {{ {', '.join(group)} }} tcp sport {ssh_port} accept\n"
        for family, group in (("ip", v4), ("ip6", v6)) if group
    )
    return (
        f"table inet {ISOLATION_TABLE} {{\n"
        "  chain input {\n    type filter hook input priority -300; policy drop;\n    iif \"lo\" accept\n"
        f"{accept_in}  }}\n"
        "  chain output {\n    type filter hook output priority -300; policy drop;\n    oif \"lo\" accept\n"
        f"{accept_out}  }}\n"
        "  chain forward {\n    type filter hook forward priority -300; policy drop;\n  }\n"
        "}\n"
    )


def table_exists() -> bool:
    return run(["nft", "list", "table", "inet", ISOLATION_TABLE])[0] == 0


def isolate(params: dict[str, Any], began: float) -> dict[str, Any]:
    if not params["sources"]:
        return result(False, "no management source to keep SSH open for: refusing to isolate", began)
    if table_exists():
        return result(False, f"table inet {ISOLATION_TABLE} already exists: an earlier drill's isolation?", began)
    # The timer first: if it cannot be made, nothing is isolated.
    code, output = run(["systemd-run", f"--unit={ISOLATION_TIMER}", f"--on-active={int(params['max_seconds'])}",
                        "--timer-property=AccuracySec=1s", "nft", "delete", "table", "inet", ISOLATION_TABLE])
    if code != 0:
        return result(False, f"systemd-run (the isolation's own end) exited {code}: {output}", began)
    code, output = run(["nft", "-f", "-"], isolation_rules(params["sources"], int(params["ssh_port"])))
    if code != 0:
        run(["systemctl", "stop", f"{ISOLATION_TIMER}.timer"])
        return result(False, f"nft exited {code}: {output}", began)
    return result(True, f"isolated: only SSH (port {params['ssh_port']}) from {', '.join(params['sources'])}; "
                  f"lifted by itself after {int(params['max_seconds'])} s", began)


def unisolate(began: float) -> dict[str, Any]:
    run(["systemctl", "stop", f"{ISOLATION_TIMER}.timer"])
    if not table_exists():
        return result(True, "not isolated (the table is gone)", began)
    code, output = run(["nft", "delete", "table", "inet", ISOLATION_TABLE])
    if code != 0:
        return result(False, f"nft delete table exited {code}: {output}", began)
    return result(True, f"table inet {ISOLATION_TABLE} removed", began)


def shell(command: str, began: float, timeout: float) -> dict[str, Any]:
    code, output = run(["/bin/sh", "-c", command], timeout=timeout)
    if code != 0:
        return result(False, f"exited {code}: {output}", began)
    return result(True, f"exited 0{': ' + output if output else ''}", began)


def expect(params: dict[str, Any], began: float) -> dict[str, Any]:
    deadline, attempts, output = began + float(params["within"]), 0, ""
    while True:
        attempts += 1
        remaining = max(deadline - time.monotonic(), 1.0)
        code, output = run(["/bin/sh", "-c", params["command"]], timeout=remaining)
        if code == 0:
            return result(True, f"succeeded at attempt {attempts}", began)
        if time.monotonic() + float(params["every"]) > deadline:
            return result(False, f"still failing after {attempts} attempts in {params['within']:g} s "
                          f"(last: exit {code}: {output})", began)
        wait(float(params["every"]))


def active_alerts(params: dict[str, Any]) -> list[dict[str, Any]]:
    with open(params["password_file"], encoding="utf-8") as handle:
        password = handle.read().strip()
    context = ssl.create_default_context(cafile=params["ca_file"])
    request = urllib.request.Request(f"https://{params['address']}/api/v2/alerts?active=true")
    token = base64.b64encode(f"prometheus:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=API_TIMEOUT, context=context) as response:
        alerts = json.loads(response.read(API_LIMIT))
    return [a for a in alerts if isinstance(a, dict) and isinstance(a.get("labels"), dict)]


def matching(alerts: list[dict[str, Any]], names: list[str], labels: dict[str, str]) -> dict[str, list[str]]:
    """For each expected alert name, the instances of the active alerts of that name that carry every label."""
    found: dict[str, list[str]] = {}
    for alert in alerts:
        have = alert["labels"]
        if have.get("alertname") in names and all(have.get(k) == v for k, v in labels.items()):
            found.setdefault(have["alertname"], []).append(str(have.get("instance", "?")))
    return found


def expect_alerts(params: dict[str, Any], began: float) -> dict[str, Any]:
    deadline, names, problem = began + float(params["within"]), params["alerts"], ""
    found: dict[str, list[str]] = {}
    while True:
        try:
            found = matching(active_alerts(params), names, params["labels"])
            problem = ""
        except (OSError, ValueError) as exc:  # URLError and ssl errors are OSErrors; bad JSON a ValueError
            problem = f"; Alertmanager at {params['address']}: {exc}"
        enough = any(found.values()) if params["any"] else all(found.get(name) for name in names)
        if enough:
            seen = "; ".join(f"{name} on {', '.join(sorted(set(where)))}" for name, where in sorted(found.items()))
            return result(True, f"active: {seen}", began)
        if time.monotonic() + ALERTS_EVERY > deadline:
            missing = [name for name in names if not found.get(name)]
            return result(False, f"not active within {params['within']:g} s: {', '.join(missing)}{problem}", began)
        wait(ALERTS_EVERY)


def main(params: dict[str, Any]) -> None:
    began = time.monotonic()
    action = params["action"]
    if action in ("stop_unit", "start_unit", "restart_unit"):
        outcome = unit_action(action.removesuffix("_unit"), params["unit"], began)
    elif action == "isolate":
        outcome = isolate(params, began)
    elif action == "unisolate":
        outcome = unisolate(began)
    elif action == "command":
        outcome = shell(params["command"], began, float(params.get("timeout", 120)))
    elif action == "expect":
        outcome = expect(params, began)
    elif action == "alerts":
        outcome = expect_alerts(params, began)
    else:
        outcome = result(False, f"unknown action {action!r}", began)
    print(json.dumps(outcome))
