"""SLA targets in the topology (schema, checks, defaults) and the report's JSON, CSV and HTML forms."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from medinfra.cli import main
from medinfra.problems import UserInputError
from medinfra.sla.compute import Series, month_period, sla_report
from medinfra.sla.render import csv_text, document, html_text, json_text
from medinfra.sla.source import Client, Endpoints, SourceError
from medinfra.topology import load_topology
from medinfra.topology.model import DEFAULT_HOURS, SlaClass
from tests.conftest import ROOT
from tests.unit.test_sla_compute import at, november, probe, topology

REPORT_SCHEMA = json.loads((ROOT / "src" / "medinfra" / "schemas" / "sla-report.schema.json").read_text())


def hospital(tmp_path: Path, **changes: Any) -> Path:
    data = yaml.safe_load((ROOT / "inventories" / "lab" / "hospital.yml").read_text())
    data["sla_classes"]["business-hours"].update(changes.pop("business", {}))
    data["sla_classes"]["24x7-critical"].update(changes.pop("critical", {}))
    path = tmp_path / "hospital.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(UserInputError) as caught:
        load_topology(path)
    return [str(p) for p in caught.value.problems]


def test_both_inventories_declare_targets_for_every_class() -> None:
    for name in ("lab", "example-tertiary"):
        for sla in load_topology(ROOT / "inventories" / name / "hospital.yml").sla_classes.values():
            assert 99 <= sla.availability_percent <= 100 and sla.acknowledge_minutes <= sla.resolve_limit_minutes
            assert (sla.hours is not None) == (sla.support_hours == "business-hours")


def test_defaults_are_strict_and_business_hours_default_to_office_hours() -> None:
    sla = SlaClass.from_dict("b", {"rpo_minutes": 60, "rto_minutes": 120, "support_hours": "business-hours"})
    assert (sla.availability_percent, sla.acknowledge_minutes, sla.resolve_limit_minutes) == (99.9, 15, 120)
    assert sla.hours is not None and sla.hours.to_dict() == DEFAULT_HOURS and sla.hours.days == frozenset(range(5))
    assert SlaClass.from_dict("c", {"rpo_minutes": 1, "rto_minutes": 1}).hours is None
    assert SlaClass.from_dict("b", sla.to_dict()) == sla


def test_hours_on_a_24x7_class_are_refused_with_their_place(tmp_path: Path) -> None:
    path = hospital(tmp_path, critical={"hours": {"weekdays": ["monday"], "start": "08:00", "end": "18:00"}})
    (found,) = problems(path)
    assert "sla_classes.24x7-critical.hours" in found and "a 24x7 class counts every second" in found


def test_hours_must_end_after_they_start(tmp_path: Path) -> None:
    path = hospital(tmp_path, business={"hours": {"weekdays": ["monday:friday"], "start": "18:00", "end": "08:00"}})
    (found,) = problems(path)
    assert "sla_classes.business-hours.hours.end" in found and "is not after start 18:00" in found


@pytest.mark.parametrize(("change", "where"), [
    ({"availability_percent": 101}, "availability_percent"),
    ({"acknowledge_minutes": 0}, "acknowledge_minutes"),
    ({"hours": {"weekdays": ["mon"], "start": "08:00", "end": "18:00"}}, "hours.weekdays[0]"),
    ({"hours": {"weekdays": ["monday"], "start": "8:00", "end": "18:00"}}, "hours.start"),
])
def test_malformed_targets_are_refused_by_the_schema(tmp_path: Path, change: dict[str, Any], where: str) -> None:
    (found,) = problems(hospital(tmp_path, business=change))
    assert f"sla_classes.business-hours.{where}:" in found


def sample_report() -> Any:
    period = november()
    hostile = Series({"host": "his-app", "service": "=HYPERLINK(\"http://x\")"}, probe(period, "his-app", "x", down=[
        (at(3, 2), at(3, 2, 10))]).values)
    return sla_report(topology(), period, [hostile], [], [], [])


def test_the_json_has_its_documented_shape() -> None:
    text = json_text(sample_report())
    jsonschema.validate(json.loads(text), REPORT_SCHEMA)
    doc = document(sample_report())
    assert doc["format"] == "medinfra-sla-report/1" and doc["systems"][0]["outages"][0]["duration_seconds"] == 600
    assert len(doc["systems"][0]["daily"]) == 30


def test_csv_cells_cannot_run_as_formulas() -> None:
    text = csv_text(sample_report())
    outage = next(line for line in text.splitlines() if line.startswith("outage,"))
    assert "'=HYPERLINK" in outage and ",=HYPERLINK" not in text
    assert text.endswith("\r\n")


@pytest.mark.parametrize(("lang", "title"), [("en", "SLA report"), ("zh", "SLA 服务水平月报")])
def test_html_is_self_contained_and_escapes_what_it_shows(lang: str, title: str) -> None:
    page = html_text(sample_report(), lang, f"sla.{'zh' if lang == 'en' else 'en'}.html")
    assert title in page and "default-src 'none'" in page and "<svg" in page
    assert "=HYPERLINK(&#34;http://x&#34;)" in page and 'HYPERLINK("http' not in page
    assert "src=" not in page and "<script" not in page


def test_the_cli_refuses_a_month_that_has_not_begun(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sla", "report", "-i", str(ROOT / "inventories" / "lab"), "--month", "2999-01"])
    assert code == 2 and "has not begun" in capsys.readouterr().err


def test_the_cli_refuses_sign_without_a_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["sla", "report", "--month", "2026-11", "--sign", str(tmp_path / "k.key")])
    assert code == 2 and "needs -o DIR" in capsys.readouterr().err


def test_a_month_period_in_utc_without_a_site_zone() -> None:
    period = month_period("2026-02", "UTC", 30, 2_000_000_000)
    assert period.end - period.start == 28 * 86400


def test_a_redirect_is_refused_and_the_password_goes_nowhere_else() -> None:
    """urllib follows a redirect with the Authorization header: the reader must not hand the admin password on."""
    seen: list[str | None] = []

    class Redirecting(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/elsewhere"):
                seen.append(self.headers.get("Authorization"))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"{}")
                return
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/elsewhere")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirecting) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        client = Client(Endpoints(base, base, "admin", "s3cret-admin", Path("/etc/ssl/certs/ca-certificates.crt")))
        with pytest.raises(SourceError, match="HTTP 302") as refused:
            client.get(base, "/api/v1/query")
        server.shutdown()
    assert seen == [] and "s3cret-admin" not in str(refused.value)
