"""The knowledge base: its page model from a topology, the history's last audit and drills, escaping of hostile
texts, the search index, and how it is written into its directory."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from medinfra.audit.results import AuditRun, HostResult, findings_document
from medinfra.cli import main
from medinfra.compliance.catalog import load_catalog
from medinfra.compliance.model import Bilingual, Catalog, Finding, Status
from medinfra.drill import publish_drill
from medinfra.history import open_history
from medinfra.kb.build import build_kb
from medinfra.kb.model import NO_HISTORY, host_pages, zone_matrix
from medinfra.kb.site import KnowledgeBase, render_site, search_entries, write_site
from medinfra.kb.sources import read_history
from medinfra.oncall.load import load_oncall
from medinfra.oncall.schedule import on_duty
from medinfra.package_data import CATALOG_DIR
from medinfra.problems import UserInputError
from medinfra.runbook import Check, Escalation, Runbook
from medinfra.topology.load import load_topology
from medinfra.topology.model import Topology
from tests.conftest import LAB_TOPOLOGY, ROOT, write_yaml

# The catalog takes a second or two to load and validate: once for the module.
CATALOG = load_catalog(CATALOG_DIR)
BUILT = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
AUDITED = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)
HOSTILE = '<script>alert("kb")</script></script><img src=x onerror=alert(1)>'


def lab_audit(topology: Topology, started: datetime = AUDITED) -> dict[str, Any]:
    """A findings document of the lab's hosts (as `medinfra audit` writes it): his-db fails its restore drill and
    one SSH control, lis-legacy was not reached, every other host passes."""
    full = CATALOG
    wanted = ("backup_restore_drill_recent", "failover_drill_recent", "sshd_root_login_disabled")
    catalog = Catalog(tuple(c for c in full.controls if c.id in wanted), full.frameworks)
    results, findings = [], []
    for host in topology.hosts:
        if host.name == "lis-legacy":
            results.append(HostResult(host.name, "unreachable", "SSH: connection timed out", None, 10.0))
            continue
        results.append(HostResult(host.name, "audited", "", {"collected_at": "2026-12-06T22:00:01Z"}, 0.2))
        failing = host.name == "his-db"
        for control in catalog.controls:
            status = Status.FAIL if failing and control.id != "failover_drill_recent" else Status.PASS
            evidence = {"backup.sets[data].last_drill": "2026-10-01T04:30:00Z"} if "restore" in control.id else {}
            findings.append(Finding(host.name, control.id, status, "" if status is Status.PASS else "drill too old",
                                    evidence))
    views = {h.name: {"zone": h.zone, "site": topology.site.name, "groups": [], "services": list(h.services)}
             for h in topology.hosts}
    return findings_document(AuditRun("pyinfra", "inventories/lab", started, results, findings, catalog,
                                      seconds=3.0, views=views))


def lab_history(path: Path, topology: Topology) -> str:
    """A history holding one audit of the lab and a failed then a passed failover drill of the HIS database pair."""
    location = str(path)
    with open_history(location) as store:
        store.record(lab_audit(topology))
    for index, passed in enumerate((False, True)):
        document = {"format": "medinfra-drill/1", "kind": "failover", "site": topology.site.name,
                    "started": f"2026-12-0{5 + index}T20:00:00Z", "finished": f"2026-12-0{5 + index}T20:01:40Z",
                    "passed": passed, "result": {"cluster": "his-db", "rto_seconds": 12.5}}
        publish_drill(document, path.parent / "drills", location, None)
    return location


def runbook(key: str, kind: str, text: str = "Disk full") -> Runbook:
    return Runbook(key, kind, Bilingual(f"{text} meaning", f"{text} 的含义"),  # type: ignore[arg-type]
                   (Check(Bilingual("Look at the disk", "查看磁盘"), "df -h /"),),
                   Bilingual("Free space: `journalctl --vacuum-size=200M`",
                             "释放空间：`journalctl --vacuum-size=200M`"),
                   Escalation(30, ("ops",), Bilingual("Call ops", "呼叫运维")))


def knowledge_base(topology: Topology, **changes: Any) -> KnowledgeBase:
    full = CATALOG
    base = KnowledgeBase(
        topology=topology,
        pages=host_pages(topology, None, NO_HISTORY),
        matrix=zone_matrix(topology),
        alerts=[],
        controls=full.controls[:2],
        alert_runbooks={},
        control_runbooks={},
        oncall=None,
        rota=[],
        on_duty=None,
        history=NO_HISTORY,
        built_at=BUILT,
    )
    return replace(base, **changes)


@pytest.fixture(scope="module")
def lab() -> Topology:
    return load_topology(LAB_TOPOLOGY)


def test_a_host_page_holds_its_zone_sla_flows_interfaces_and_pair(lab: Topology) -> None:
    pages = {page.host.name: page for page in host_pages(lab, None, NO_HISTORY)}
    db = pages["his-db"]
    assert (db.zone.name, db.sla.name, db.sla.rpo_minutes, db.pair) == ("his", "24x7-critical", 15, "his-db")
    assert any(f.source == "his-app" and str(f.ports[0]) == "5432" for f in db.flows_in)
    assert any(f.destination == "backup-01" for f in db.flows_out)
    assert pages["his-db-2"].pair == "his-db" and pages["his-app"].pair is None
    assert "lis-his-results" in {i.name for i in pages["his-app"].interfaces}
    assert not pages["guest-01"].interfaces
    assert db.backups is None and db.audit is None and db.failover is None


def test_the_zone_matrix_is_what_the_zone_firewall_forwards(lab: Topology) -> None:
    matrix = zone_matrix(lab)
    his_to_dr = matrix.cells[("his", "his-dr")].rules
    assert any(r.proto == "tcp" and any(p.start == 5432 for p in r.ports) for r in his_to_dr)
    assert ("guest", "his") not in matrix.cells and ("clinical", "his") in matrix.cells
    # Every declared flow lands in the cell of its zones, none elsewhere.
    assert sum(len(cell.rules) for cell in matrix.cells.values()) == len(lab.flows)


def test_the_last_audit_and_the_failover_drills_come_from_the_history(lab: Topology, tmp_path: Path) -> None:
    history = read_history(lab_history(tmp_path / "history.sqlite", lab), lab.site.name)
    assert history.read and history.last_run == ("#1", AUDITED)
    assert [(d.kind, d.name, d.passed) for d in history.drills] == [("failover", "his-db", True),
                                                                    ("failover", "his-db", False)]
    pages = {page.host.name: page for page in host_pages(lab, None, history)}
    db = pages["his-db"]
    assert db.audit is not None and db.audit.run == "#1"
    assert db.audit.failing == ("backup_restore_drill_recent", "sshd_root_login_disabled")
    assert db.audit.score == pytest.approx(1 / 3)
    restore = db.audit.restore_drill
    assert restore is not None and (restore.status, restore.reason) == ("fail", "drill too old")
    assert "2026-10-01T04:30:00Z" in restore.evidence
    assert db.failover is not None and db.failover.passed and db.failover.seconds == 100
    assert pages["his-db-2"].failover == db.failover and pages["his-app"].failover is None
    legacy = pages["lis-legacy"].audit
    assert legacy is not None and (legacy.status, legacy.score) == ("unreachable", None)
    # Another site's history reads as empty, not as this site's.
    other = read_history(str(tmp_path / "history.sqlite"), "another-site")
    assert (other.audits, other.last_run, other.drills) == ({}, None, ())


def test_a_findings_file_gives_the_last_audit_instead_of_the_history(lab: Topology, tmp_path: Path) -> None:
    findings = tmp_path / "findings.json"
    findings.write_text(json.dumps(lab_audit(lab, datetime(2026, 12, 7, 1, 0, tzinfo=UTC))), encoding="utf-8")
    history = read_history(None, lab.site.name, findings)
    assert history.last_run == (str(findings), datetime(2026, 12, 7, 1, 0, tzinfo=UTC))
    assert history.audits["his-app"].score == 1.0 and history.drills == ()
    findings.write_text('{"format": "nonsense"}', encoding="utf-8")
    with pytest.raises(UserInputError):
        read_history(None, lab.site.name, findings)


def hostile_topology(data: dict[str, Any]) -> Topology:
    data["site"]["title"] = HOSTILE
    data["hosts"][4]["description"] = HOSTILE
    data["zones"][1]["description"] = HOSTILE
    data["flows"][0]["purpose"] = HOSTILE
    data["interfaces"][0]["vendor"]["contact"] = HOSTILE
    data["interfaces"][0]["owner"] = HOSTILE
    return Topology.from_dict(data, source="hospital.yml")


def test_untrusted_texts_render_as_text_never_as_markup(topology_data: dict[str, Any]) -> None:
    topology = hostile_topology(topology_data)
    controls = CATALOG.controls[:1]
    hostile_runbook = runbook(controls[0].id, "control", HOSTILE)
    kb = knowledge_base(topology, controls=controls, control_runbooks={controls[0].id: hostile_runbook},
                        on_duty={"ops": (HOSTILE,)})
    files = render_site(kb)
    host = topology.hosts[4].name
    for name in ("index.html", "zones.html", f"hosts/{host}.html", f"controls/{controls[0].id}.html"):
        page = files[name]
        # Only the page's own three scripts: the language, the search index (JSON) and the behaviour.
        assert page.count("<script") == 3, name
        assert "<img" not in page and "</script></script>" not in page, name
        assert "&lt;script&gt;alert(&#34;kb&#34;)&lt;/script&gt;" in page, name
        index = re.search(r'<script type="application/json" id="kb-index">(.*?)</script>', page, re.S)
        assert index is not None
        entries = json.loads(index.group(1))["entries"]
        assert any(HOSTILE in entry[4] for entry in entries)  # the index keeps the text itself, JSON-escaped
    control_page = files[f"controls/{controls[0].id}.html"]
    assert "<code>journalctl --vacuum-size=200M</code>" in control_page  # backticks in a runbook become code
    assert control_page.count("&lt;img src=x onerror=alert(1)&gt;") >= 3  # meaning, check, escalation holder


def test_the_search_index_finds_hosts_alerts_controls_interfaces_and_vendors(lab: Topology) -> None:
    from medinfra.kb.sources import AlertRule

    alert = AlertRule("DiskWillFillIn24h", "g", "warning", "10m", "expr", "Disk fills", "d", "", "f.rules.yml")
    controls = CATALOG.controls[:3]
    kb = knowledge_base(lab, alerts=[alert], controls=controls,
                        alert_runbooks={alert.name: runbook(alert.name, "alert", "磁盘将满 Disk")})
    entries = {(e.kind, e.url): e for e in search_entries(kb)}
    assert entries[("host", "hosts/his-db.html")].title_en == "his-db (his)"
    found = entries[("alert", "alerts/DiskWillFillIn24h.html")]
    assert "磁盘将满 Disk 的含义" in found.title_zh and "meaning" in found.title_en
    assert entries[("control", f"controls/{controls[0].id}.html")].title_zh.endswith(controls[0].title.zh)
    kinds = {kind for kind, _ in entries}
    assert kinds == {"host", "alert", "control", "interface", "vendor", "zone"}
    vendors = [e for e in search_entries(kb) if e.kind == "vendor"]
    assert any("Example HIS Co." in e.title_en and "his-support@example.test" in e.words for e in vendors)
    # Every page the index points at exists.
    files = render_site(kb)
    assert {e.url.partition("#")[0] for e in search_entries(kb)} <= set(files)


def test_without_a_rota_the_pages_say_so_and_runbooks_name_roles_only(lab: Topology) -> None:
    controls = CATALOG.controls[:1]
    files = render_site(knowledge_base(lab, controls=controls,
                                       control_runbooks={controls[0].id: runbook(controls[0].id, "control")}))
    assert 'id="oncall-missing"' in files["oncall.html"]
    page = files[f"controls/{controls[0].id}.html"]
    assert '<b class="role">ops</b>' in page and 'class="holder"' not in page and "no oncall.yml" in page


def test_a_control_without_a_runbook_says_so(lab: Topology) -> None:
    files = render_site(knowledge_base(lab))
    assert all('id="no-runbook"' in text for name, text in files.items() if name.startswith("controls/"))


def test_writing_replaces_a_previous_kb_and_refuses_anything_else(tmp_path: Path) -> None:
    out = tmp_path / "kb"
    write_site(out, {"index.html": "a", "hosts/old.html": "b", "hosts/kept.html": "c"})
    manifest = json.loads((out / "kb-manifest.json").read_text(encoding="utf-8"))
    assert manifest["format"] == "medinfra-kb/1" and set(manifest["files"]) == {"index.html", "hosts/old.html",
                                                                               "hosts/kept.html"}
    victim = tmp_path / "victim"
    victim.write_text("keep me", encoding="utf-8")
    (out / "hosts" / "kept.html").unlink()
    (out / "hosts" / "kept.html").symlink_to(victim)
    write_site(out, {"index.html": "a2", "hosts/kept.html": "c2"})
    assert not (out / "hosts" / "old.html").exists()  # a host removed from the topology loses its page
    assert (out / "hosts" / "kept.html").read_text(encoding="utf-8") == "c2"
    assert not (out / "hosts" / "kept.html").is_symlink() and victim.read_text(encoding="utf-8") == "keep me"
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "findings.json").write_text("{}", encoding="utf-8")
    with pytest.raises(UserInputError, match="is not a knowledge base medinfra built"):
        write_site(reports, {"index.html": "x"})
    assert sorted(p.name for p in reports.iterdir()) == ["findings.json"]
    (tmp_path / "link").symlink_to(out)
    with pytest.raises(UserInputError, match="symlink"):
        write_site(tmp_path / "link", {"index.html": "x"})
    (tmp_path / "hosts-link").mkdir()
    linked = tmp_path / "linked"
    write_site(linked, {"index.html": "a"})
    shutil.rmtree(linked / "hosts")
    (linked / "hosts").symlink_to(tmp_path / "hosts-link")
    with pytest.raises(UserInputError, match="symlink"):
        write_site(linked, {"index.html": "a", "hosts/x.html": "x"})
    assert not list((tmp_path / "hosts-link").iterdir())


def lab_copy(tmp_path: Path, oncall: bool) -> Path:
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    shutil.copy(LAB_TOPOLOGY, inventory / "hospital.yml")
    shutil.copytree(ROOT / "inventories" / "lab" / "group_vars", inventory / "group_vars",
                    ignore=shutil.ignore_patterns("lab_*"))
    if oncall:
        shutil.copy(ROOT / "inventories" / "lab" / "oncall.yml", inventory / "oncall.yml")
    return inventory


def test_kb_build_writes_the_site_from_an_inventory_and_a_history(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  lab: Topology) -> None:
    inventory = lab_copy(tmp_path, oncall=True)
    (inventory / "host_vars").mkdir()
    write_yaml(inventory / "host_vars" / "his-app.yml", {"backup_drill_on_calendar": "Sat *-*-* 02:00:00"})
    write_yaml(inventory / "host_vars" / "pacs-01.yml", {"backup_enabled": False})
    history = lab_history(tmp_path / "history.sqlite", lab)
    out = tmp_path / "kb"
    built = build_kb(inventory, out, history, None, now=BUILT)
    assert (built.pages, built.hosts, built.rota) == (3 + 13 + built.alerts + built.controls, 13, True)
    db = (out / "hosts" / "his-db.html").read_text(encoding="utf-8")
    assert "databases (pg_dump)" in db and "hisdb" in db and "backup-01" in db  # group_vars/his_db.yml
    assert 'id="audit-score"' in db and "33.3%" in db and "backup_restore_drill_recent" in db
    assert re.search(r'id="failover-drill".*passed.*his-db · 2026-12-06 20:00', db)
    app = (out / "hosts" / "his-app.html").read_text(encoding="utf-8")
    assert "/srv/his" in app and "Example HIS Co." in app and "his-support@example.test" in app
    assert "Sat *-*-* 02:00:00" in app and "every 7 min" in app  # a host's own vars; half the RPO of 15 min
    assert "This host has no backup set." in (out / "hosts" / "pacs-01.html").read_text(encoding="utf-8")
    oncall = (out / "oncall.html").read_text(encoding="utf-8")
    assert 'id="role-duty"' in oncall and 'id="escalation"' in oncall and "oncall-missing" not in oncall
    # Who holds each role at build time, in the on-duty table and beside each runbook's escalation roles.
    holders = on_duty(load_oncall(inventory / "oncall.yml"), BUILT)
    table = oncall[oncall.index('id="on-duty"'):oncall.index("</table>", oncall.index('id="on-duty"'))]
    assert holders and all(duty.person.name in table for duty in holders)
    ops = next(duty.person.name for duty in holders if duty.role == "ops")
    assert f'href="../oncall.html#role-ops">{ops}</a>' in (out / "alerts" / "ExporterDown.html").read_text("utf-8")
    # A vendor has no shift: its desks are the ones to call.
    hl7 = (out / "alerts" / "Hl7AckMissing.html").read_text("utf-8")
    assert re.search(r'<b class="role">vendor</b>.*no shift, call.*Example HIS Co\. support desk', hl7)
    # Rebuilding into the same directory is allowed; without oncall.yml the KB says so instead of failing.
    (inventory / "oncall.yml").unlink()
    assert main(["kb", "build", "-i", str(inventory), "-o", str(out), "--no-history"]) == 0
    assert f"knowledge base in {out}" in capsys.readouterr().out
    assert 'id="oncall-missing"' in (out / "oncall.html").read_text(encoding="utf-8")
    assert "No history was read" in (out / "hosts" / "his-db.html").read_text(encoding="utf-8")


def test_kb_build_refuses_a_foreign_directory_and_a_bad_rota_located(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    inventory = lab_copy(tmp_path, oncall=False)
    foreign = tmp_path / "reports"
    foreign.mkdir()
    (foreign / "report.en.html").write_text("mine", encoding="utf-8")
    assert main(["kb", "build", "-i", str(inventory), "-o", str(foreign), "--no-history"]) == 2
    assert "is not a knowledge base medinfra built" in capsys.readouterr().err
    write_yaml(inventory / "oncall.yml", {"people": "nobody"})
    assert main(["kb", "build", "-i", str(inventory), "-o", str(tmp_path / "kb"), "--no-history"]) == 2
    assert f"{inventory / 'oncall.yml'}" in capsys.readouterr().err
    assert not (tmp_path / "kb").exists() or not (tmp_path / "kb" / "index.html").exists()
