"""Every read of the SLA report: the inventory (the monitoring server, its admin password from the vault, the site
CA on the controller), Prometheus' HTTP API and Alertmanager's, over TLS verified against the site CA.

The password goes only into the Authorization header: an error names the URL (without credentials) and what
failed, never the password, and never with a traceback.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from pathlib import Path
from typing import IO, Any

import yaml

from medinfra.problems import Problem, UserInputError
from medinfra.safe_text import one_line
from medinfra.sla.compute import Matcher, Period, Series, Silence, StepValues
from medinfra.topology.model import Topology

MONITORING_SERVICE = "monitoring_server"
# The role monitoring_server's defaults (roles/monitoring_server/defaults/main.yml); an inventory may override them.
PROMETHEUS_PORT, ALERTMANAGER_PORT, ADMIN_USER = 9090, 9093, "admin"
# Where the pki role keeps the site CA on the controller unless the inventory says (pki_ca_directory).
CA_DIRECTORY = ".pki"
INVENTORY_KEYS = (
    "monitoring_server_admin_user", "monitoring_server_admin_password", "monitoring_server_listen_address",
    "monitoring_server_prometheus_port", "monitoring_server_alertmanager_port", "pki_ca_directory",
)
# Steps per range query: a day at 30 s (Prometheus refuses more than 11,000 points per series in one answer).
CHUNK_STEPS = 2880
TIMEOUT_SECONDS = 60.0
# The values a range query returns at each step: the newest sample within the step before it. The window is a
# millisecond short of the step because Prometheus 2 includes both ends of a range, so a sample exactly on the
# previous step would otherwise fill a one-step gap.
PROBES = 'probe_success{job="blackbox"}'
ALERTS = 'ALERTS{alertstate="firing"}'
BACKUPS = 'medinfra_backup_last_success_timestamp_seconds{job="node"}'


class SourceError(Exception):
    """Prometheus or Alertmanager could not be read; the message names the URL and what failed."""


@dataclass(frozen=True)
class Endpoints:
    prometheus: str
    alertmanager: str
    user: str
    password: str = field(repr=False)
    ca_file: Path


def monitoring_server(topology: Topology, inventory: Path) -> str:
    for host in topology.hosts:
        if MONITORING_SERVICE in host.services:
            return host.name
    raise UserInputError([Problem(topology.source, ("hosts",), f"no host runs {MONITORING_SERVICE}: no Prometheus "
                                                               f"to read the SLA figures from ({inventory})")])


def endpoints(topology: Topology, inventory: Path, vault_password_file: Path | None) -> Endpoints:
    """The monitoring server's Prometheus and Alertmanager URLs and credentials, as its role run sees them."""
    from medinfra.audit.targets import read_hosts  # imports Ansible: only when a report is made

    server = monitoring_server(topology, inventory)
    found = dict(read_hosts(inventory, server, vault_password_file, INVENTORY_KEYS))
    variables: Mapping[str, Any] = found.get(server, {})
    password = variables.get("monitoring_server_admin_password")
    if not isinstance(password, str) or not password:
        message = ("monitoring_server_admin_password is not set for it (the vault's; give --vault-password-file "
                   "if the inventory is vaulted)")
        raise UserInputError([Problem(str(inventory), (server,), message)])
    address = str(variables.get("monitoring_server_listen_address") or topology.host(server).address)
    host = f"[{address}]" if ":" in address else address
    directory = Path(str(variables.get("pki_ca_directory") or (topology_dir(inventory) / CA_DIRECTORY)))
    ca_file = directory / "ca.crt"
    if not ca_file.is_file():
        message = "the site CA certificate is not there (pki_ca_directory; the pki role writes it on the controller)"
        raise UserInputError([Problem(str(ca_file), (), message)])
    return Endpoints(
        prometheus=f"https://{host}:{port(variables, 'monitoring_server_prometheus_port', PROMETHEUS_PORT, inventory)}",
        alertmanager=f"https://{host}:"
        f"{port(variables, 'monitoring_server_alertmanager_port', ALERTMANAGER_PORT, inventory)}",
        user=str(variables.get("monitoring_server_admin_user") or ADMIN_USER),
        password=password,
        ca_file=ca_file,
    )


def topology_dir(inventory: Path) -> Path:
    return inventory if inventory.is_dir() else inventory.parent


def port(variables: Mapping[str, Any], key: str, default: int, inventory: Path) -> int:
    value = variables.get(key, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if not 0 < number < 65536:
        raise UserInputError([Problem(str(inventory), (key,), f"{one_line(str(value))!r} is not a port number")])
    return number


class RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: urllib would follow it with the Authorization header, the admin password, to wherever
    it points."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: Message, newurl: str) -> None:
        return None


class Client:
    """GET JSON from Prometheus and Alertmanager with basic auth, verifying their certificates against the site CA."""

    def __init__(self, endpoints: Endpoints, timeout: float = TIMEOUT_SECONDS) -> None:
        try:
            context = ssl.create_default_context(cafile=str(endpoints.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise UserInputError([Problem(str(endpoints.ca_file), (), f"not a CA certificate: {exc}")]) from None
        self.endpoints = endpoints
        self.timeout = timeout
        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), RefuseRedirects)
        token = base64.b64encode(f"{endpoints.user}:{endpoints.password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}

    def get(self, base: str, path: str, params: Mapping[str, str] | None = None) -> Any:
        url = f"{base}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        request = urllib.request.Request(url, headers=self.headers)
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            hint = " (check monitoring_server_admin_user and _password)" if exc.code == 401 else ""
            reason = f"HTTP {exc.code} {one_line(str(exc.reason))}{hint}{detail(exc)}"
            raise SourceError(f"{one_line(url)}: {reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise SourceError(f"{one_line(url)}: {one_line(str(cause))}") from None
        try:
            return json.loads(body)
        except ValueError:
            raise SourceError(f"{one_line(url)}: the answer is not JSON") from None

    def prometheus(self, path: str, params: Mapping[str, str]) -> Any:
        answer = self.get(self.endpoints.prometheus, path, params)
        if not isinstance(answer, dict) or answer.get("status") != "success":
            error = answer.get("error") if isinstance(answer, dict) else None
            raise SourceError(f"{self.endpoints.prometheus}{path} {params.get('query', '')}: "
                              f"{one_line(str(error or 'unexpected answer'))}")
        return answer["data"]


def detail(exc: urllib.error.HTTPError) -> str:
    """Prometheus says why it refused a query in its JSON body."""
    try:
        body = json.loads(exc.read(4096))
    except (ValueError, OSError):
        return ""
    return f": {one_line(str(body.get('error')))}" if isinstance(body, dict) and body.get("error") else ""


def window(step: int) -> str:
    return f"{step * 1000 - 1}ms"


def range_series(client: Client, selector: str, period: Period) -> list[Series]:
    """The selector's newest sample within each step, at every step time from one step before the period (to see an
    outage that began earlier) to its last step, a day at a time (each answer stays a few megabytes)."""
    expression = f"last_over_time({selector}[{window(period.step)}])"
    first, last = period.start - period.step, period.end - period.step
    count = (last - first) // period.step + 1
    merged: dict[tuple[tuple[str, str], ...], StepValues] = {}
    chunk = first
    while chunk <= last:
        chunk_end = min(last, chunk + (CHUNK_STEPS - 1) * period.step)
        data = client.prometheus("/api/v1/query_range", {
            "query": expression, "start": str(chunk), "end": str(chunk_end), "step": f"{period.step}s"})
        for item in data.get("result", []):
            labels = tuple(sorted((str(k), str(v)) for k, v in item.get("metric", {}).items()))
            values = merged.get(labels)
            if values is None:
                values = merged[labels] = StepValues(first, period.step, count)
            for at, value in item.get("values", []):
                values.set(int(float(at)), float(value))
        chunk = chunk_end + period.step
    return [Series(dict(labels), values) for labels, values in merged.items()]


def external_labels(client: Client) -> dict[str, str]:
    """Prometheus' external labels: Alertmanager sees alerts with them, so silences may match on them."""
    data = client.prometheus("/api/v1/status/config", {})
    try:
        config = yaml.safe_load(data.get("yaml", "")) or {}
        labels = (config.get("global") or {}).get("external_labels") or {}
    except (yaml.YAMLError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in labels.items()}


def alert_series(client: Client, period: Period) -> list[Series]:
    extra = external_labels(client)
    return [Series({**extra, **{k: v for k, v in s.labels.items() if k not in ("__name__", "alertstate")}}, s.values)
            for s in range_series(client, ALERTS, period)]


def moment(text: Any) -> int:
    return int(datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp())


def silences(client: Client) -> list[Silence]:
    url = f"{client.endpoints.alertmanager}/api/v2/silences"
    answer = client.get(client.endpoints.alertmanager, "/api/v2/silences")
    try:
        return [
            Silence(
                id=str(item["id"]),
                matchers=tuple(Matcher(str(m["name"]), str(m["value"]), bool(m.get("isRegex", False)),
                                       bool(m.get("isEqual", True))) for m in item["matchers"]),
                starts_at=moment(item["startsAt"]), ends_at=moment(item["endsAt"]),
                created_by=str(item.get("createdBy", "")), comment=str(item.get("comment", "")),
            )
            for item in answer
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceError(f"{url}: unexpected silence ({one_line(str(exc))})") from None


@dataclass(frozen=True)
class Fetched:
    probes: list[Series]
    alerts: list[Series]
    silences: list[Silence]
    backups: list[Series]


def fetch(client: Client, period: Period) -> Fetched:
    return Fetched(
        probes=range_series(client, PROBES, period),
        alerts=alert_series(client, period),
        silences=silences(client),
        backups=range_series(client, BACKUPS, period),
    )
