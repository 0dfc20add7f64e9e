"""Lynis cross-validation: the report parser, Lynis's verdicts and the comparison, on real recordings.

The fixtures are one run of Lynis 3.0.8 (`lynis audit system --quick`) and of `medinfra audit` on the converged
lab's his-app (hardened) and lis-legacy (stock Debian 12), recorded by `benchmarks/lynis_agreement.py --record`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from medinfra.compliance.lynis import (
    Item,
    Overlap,
    OverlapCatalog,
    Report,
    agreement,
    compare,
    load_overlaps,
    lynis_verdict,
    medinfra_verdict,
    parse_report,
    selects,
    statuses_by_host,
    summarise,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "lynis"
OVERLAP_FILE = ROOT / "compliance" / "lynis_overlap.yml"
HOSTS = ("his-app", "lis-legacy")


@pytest.fixture(scope="module")
def catalog() -> OverlapCatalog:
    return load_overlaps(yaml.safe_load(OVERLAP_FILE.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def reports() -> dict[str, Report]:
    return {host: parse_report((FIXTURES / f"{host}.lynis-report.dat").read_text(encoding="utf-8")) for host in HOSTS}


@pytest.fixture(scope="module")
def statuses() -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for host in HOSTS:
        document = json.loads((FIXTURES / f"{host}.findings.json").read_text(encoding="utf-8"))
        found.update(statuses_by_host(document["findings"]))
    return found


def entry(catalog: OverlapCatalog, control: str, test: str, setting: str | None = None) -> Overlap:
    matches = [
        overlap
        for overlap in catalog.overlaps
        if overlap.control == control and overlap.lynis_test == test and setting in (None, overlap.setting)
    ]
    assert len(matches) == 1, (control, test, setting, matches)
    return matches[0]


def rows_by_key(catalog: OverlapCatalog, reports: dict[str, Report], statuses: dict[str, dict[str, str]], host: str):
    rows = compare(host, reports[host], statuses[host], catalog.overlaps)
    return rows, {(row.overlap.control, row.overlap.lynis_test, row.overlap.setting): row for row in rows}


# --- parser -------------------------------------------------------------------------------------------------------


def test_parser_reads_the_recorded_reports(reports: dict[str, Report]) -> None:
    hardened, legacy = reports["his-app"], reports["lis-legacy"]
    assert hardened.value("lynis_version") == legacy.value("lynis_version") == "3.0.8"
    assert (hardened.value("hardening_index"), legacy.value("hardening_index")) == ("86", "66")
    assert (len(hardened.executed), len(hardened.skipped)) == (255, 198)
    assert (len(legacy.executed), len(legacy.skipped)) == (247, 206)
    assert hardened.executed.isdisjoint(hardened.skipped)
    assert {"SSH-7408", "KRNL-6000", "DEB-0280"} <= legacy.executed
    assert {"MACF-6208", "ACCT-9630"} <= legacy.skipped
    assert "HTTP-6710" in hardened.executed and "HTTP-6710" in legacy.skipped  # nginx only on his-app
    assert hardened.value("no_such_key") is None


def test_parser_splits_suggestions_warnings_and_details_records(reports: dict[str, Report]) -> None:
    legacy = reports["lis-legacy"]
    kinds = [item.kind for item in legacy.items_for("SSH-7408")]
    assert kinds.count("suggestion") == kinds.count("details") == 10
    assert Item("suggestion", "SSH-7408", "Consider hardening SSH configuration", "MaxAuthTries (set 6 to 3)") in (
        legacy.items_for("SSH-7408")
    )
    assert Item("details", "SSH-7408", "sshd option MaxAuthTries", "MaxAuthTries", "6", "3") in legacy.items
    (warning,) = legacy.items_for("PKGS-7388")
    assert warning.kind == "warning" and warning.details == ""  # "-" means no details
    sysctl = {
        item.details: (item.found, item.wanted) for item in legacy.items_for("KRNL-6000") if item.kind == "details"
    }
    assert len(sysctl) == 16
    assert sysctl["net.ipv4.conf.all.rp_filter"] == ("0", "1")
    assert sysctl["fs.protected_fifos"] == ("1", "2")
    (kernel_suggestion,) = [item for item in legacy.items_for("KRNL-6000") if item.kind == "suggestion"]
    assert kernel_suggestion.details == ""  # the keys are only in the details records


def test_parser_keeps_colons_in_descriptions_and_ignores_lines_it_does_not_know() -> None:
    report = parse_report(
        "# Lynis Report\n\nnot a key value line\n"
        "tests_executed=KRNL-6000|SSH-7408|\ntests_skipped=\n"
        "details[]=KRNL-6000|sysctl|desc:Restrict access: perf_event_open();field:kernel.perf_event_paranoid;"
        "prefval:3;value:2;|\n"
        "suggestion[]=SSH-7408|Consider hardening SSH configuration|LogLevel (set INFO to VERBOSE)|-|\n"
    )
    assert report.executed == {"KRNL-6000", "SSH-7408"} and report.skipped == frozenset()
    (record,) = report.items_for("KRNL-6000")
    assert record == Item(
        "details", "KRNL-6000", "Restrict access: perf_event_open()", "kernel.perf_event_paranoid", "2", "3"
    )
    assert record.describe() == "kernel.perf_event_paranoid=2 (Lynis wants 3)"
    (suggestion,) = report.items_for("SSH-7408")
    assert suggestion.describe() == "suggestion: Consider hardening SSH configuration [LogLevel (set INFO to VERBOSE)]"


# --- Lynis's verdicts ---------------------------------------------------------------------------------------------


def test_ssh_options_are_told_apart(catalog: OverlapCatalog, reports: dict[str, Report]) -> None:
    max_tries = entry(catalog, "sshd_max_auth_tries_limited", "SSH-7408")
    legacy = lynis_verdict(reports["lis-legacy"], max_tries)
    assert legacy.verdict == "fail"
    assert "MaxAuthTries=6 (Lynis wants 3)" in legacy.evidence
    assert all("MaxAuthTries" in line for line in legacy.evidence)  # not the other nine options
    assert lynis_verdict(reports["his-app"], max_tries).verdict == "pass"  # Port 22 is flagged there, unmapped
    # Debian's default PermitRootLogin prohibit-password (shown as without-password) is good enough for Lynis.
    root_login = entry(catalog, "sshd_root_login_disabled", "SSH-7408")
    assert lynis_verdict(reports["lis-legacy"], root_login).verdict == "pass"
    assert lynis_verdict(reports["his-app"], root_login).verdict == "pass"
    forwarding = lynis_verdict(reports["lis-legacy"], entry(catalog, "sshd_forwarding_disabled", "SSH-7408"))
    assert {line for line in forwarding.evidence if "=" in line} == {
        "AllowTcpForwarding=YES (Lynis wants NO)",
        "AllowAgentForwarding=YES (Lynis wants NO)",
        "X11Forwarding=YES (Lynis wants NO)",
    }


def test_sysctl_keys_are_read_from_the_details_records(catalog: OverlapCatalog, reports: dict[str, Report]) -> None:
    rp_filter = entry(catalog, "reverse_path_filtering_enabled", "KRNL-6000")
    assert lynis_verdict(reports["lis-legacy"], rp_filter).evidence == (
        "net.ipv4.conf.all.rp_filter=0 (Lynis wants 1)",
    )
    assert lynis_verdict(reports["his-app"], rp_filter).verdict == "pass"
    links = entry(catalog, "fs_link_protection_enabled", "KRNL-6000")
    for host in HOSTS:
        assert lynis_verdict(reports[host], links).evidence == ("fs.protected_fifos=1 (Lynis wants 2)",)
    # his-app has KRNL-6000's suggestion (other keys differ), yet none of the keys this entry selects.
    assert lynis_verdict(reports["his-app"], entry(catalog, "source_routing_refused", "KRNL-6000")).verdict == "pass"


def test_text_selectors_pick_one_setting_of_a_test(catalog: OverlapCatalog, reports: dict[str, Report]) -> None:
    for setting in ("PASS_MIN_DAYS", "PASS_MAX_DAYS"):
        aging = entry(catalog, "login_defs_password_aging", "AUTH-9286", setting)
        assert lynis_verdict(reports["lis-legacy"], aging).verdict == "fail"
        assert lynis_verdict(reports["his-app"], aging).verdict == "pass"
    maximum = entry(catalog, "login_defs_password_aging", "AUTH-9286", "PASS_MAX_DAYS")
    assert lynis_verdict(reports["lis-legacy"], maximum).evidence == (
        "suggestion: Configure maximum password age in /etc/login.defs",
    )
    # his-app's HTTP-6710 suggestion is about ciphers, not about weak protocols.
    assert reports["his-app"].items_for("HTTP-6710")
    assert lynis_verdict(reports["his-app"], entry(catalog, "tls_protocols_modern", "HTTP-6710")).verdict == "pass"


def test_skipped_and_unregistered_tests_are_not_run(catalog: OverlapCatalog, reports: dict[str, Report]) -> None:
    apparmor = entry(catalog, "apparmor_enforcing", "MACF-6208")
    assert lynis_verdict(reports["his-app"], apparmor).verdict == "not_run"
    assert lynis_verdict(reports["lis-legacy"], entry(catalog, "tls_protocols_modern", "HTTP-6710")).evidence == (
        "HTTP-6710 skipped",
    )
    unknown = Overlap("aslr_enabled", "KRNL-9999", "", None, None, "m", "l")
    assert lynis_verdict(reports["his-app"], unknown).evidence == ("KRNL-9999 not registered",)


def test_details_records_alone_count_only_for_a_details_selector() -> None:
    plain = Overlap("c", "HTTP-6710", "", None, None, "m", "l")
    by_text = Overlap("c", "HTTP-6710", "", None, re.compile("protocol"), "m", "l")
    by_details = Overlap("c", "HTTP-6710", "", re.compile("protocol"), None, "m", "l")
    record = Item("details", "HTTP-6710", "nginx", "protocol", "tlsv1.2")
    assert not selects(plain, record) and not selects(by_text, record) and selects(by_details, record)
    suggestion = Item("suggestion", "HTTP-6710", "Disable weak protocol in nginx configuration", "")
    assert selects(plain, suggestion) and selects(by_text, suggestion) and not selects(by_details, suggestion)
    assert not selects(plain, Item("suggestion", "HTTP-6712", "other test", ""))


# --- the comparison -----------------------------------------------------------------------------------------------


def test_medinfra_statuses_and_agreement_rules() -> None:
    assert [medinfra_verdict(s) for s in ("pass", "fail", "waived", "error", "not_applicable", None)] == [
        "pass",
        "fail",
        "fail",
        "error",
        "not_applicable",
        "absent",
    ]
    assert agreement("pass", "pass") is True and agreement("fail", "pass") is False
    assert agreement("not_applicable", "fail") is None and agreement("error", "pass") is None
    assert agreement("pass", "not_run") is None


def test_agreement_on_the_hardened_host(catalog, reports, statuses) -> None:
    rows, by_key = rows_by_key(catalog, reports, statuses, "his-app")
    summary = summarise("his-app", rows)
    assert (summary.agree, summary.compared, summary.total, summary.disagree()) == (55, 60, 64, 5)
    assert {(r.overlap.control, r.overlap.lynis_test) for r in rows if r.agree is False} == {
        ("fs_link_protection_enabled", "KRNL-6000"),  # Lynis wants fs.protected_fifos 2, medinfra accepts 1
        ("network_protocol_modules_disabled", "NETW-3200"),  # Lynis knows only `install ... /bin/true`
        ("auditd_installed_enabled", "ACCT-9628"),  # auditd cannot run in a container
        ("chrony_enabled", "TIME-3104"),  # nor can chronyd
        ("security_updates_applied", "PKGS-7392"),  # no security lists: medinfra fails, Lynis stays silent
    }
    assert all(r.medinfra == "pass" for r in rows if r.overlap.lynis_test == "SSH-7408")
    assert by_key[("chrony_synchronised", "TIME-3104", "")].agree is None  # not applicable in containers


def test_agreement_on_the_legacy_host(catalog, reports, statuses) -> None:
    rows, by_key = rows_by_key(catalog, reports, statuses, "lis-legacy")
    summary = summarise("lis-legacy", rows)
    assert (summary.agree, summary.compared, summary.total) == (45, 58, 64)
    root_login = by_key[("sshd_root_login_disabled", "SSH-7408", "PermitRootLogin")]
    assert (root_login.medinfra, root_login.lynis, root_login.agree) == ("fail", "pass", False)
    both_fail = [
        ("sshd_max_auth_tries_limited", "SSH-7408", "MaxAuthTries"),
        ("sshd_log_level_verbose", "SSH-7408", "LogLevel"),
        ("reverse_path_filtering_enabled", "KRNL-6000", "rp_filter"),
        ("login_defs_password_aging", "AUTH-9286", "PASS_MAX_DAYS"),
        ("security_update_source_configured", "PKGS-7388", ""),
        ("aide_database_initialised", "FINT-4316", ""),
        ("sshd_config_protected", "FILE-7524", "/etc/ssh/sshd_config"),
    ]
    for key in both_fail:
        assert (by_key[key].medinfra, by_key[key].lynis, by_key[key].agree) == ("fail", "fail", True), key
    assert {(r.overlap.control, r.overlap.lynis_test) for r in rows if r.agree is False} == {
        ("sshd_root_login_disabled", "SSH-7408"),
        ("sshd_login_grace_time_limited", "SSH-7408"),
        ("core_dumps_restricted", "KRNL-6000"),
        ("fs_link_protection_enabled", "KRNL-6000"),
        ("filesystem_kernel_modules_disabled", "FILE-6430"),
        ("password_quality_enforced", "AUTH-9262"),
        ("passwd_group_files_protected", "FILE-7524"),
        ("rkhunter_daily_scan", "HRDN-7230"),
        ("chrony_enabled", "TIME-3104"),
        ("rsyslog_running", "LOGG-2130"),
        ("security_updates_applied", "PKGS-7392"),
        ("unattended_security_upgrades", "PKGS-7420"),
        ("host_firewall_default_drop", "FIRE-4590"),
    }


# --- the overlap file ---------------------------------------------------------------------------------------------


def test_every_control_and_test_in_the_overlap_file_exists(catalog: OverlapCatalog, reports, statuses) -> None:
    assert catalog.lynis_version == reports["his-app"].value("lynis_version")
    assert len(catalog.overlaps) == 64 and len(catalog.unreported) == 11
    for control in catalog.controls():
        assert (ROOT / "compliance" / "controls" / f"{control}.yml").is_file(), control
        assert all(control in statuses[host] for host in HOSTS), f"{control} not in the recorded audit"
    registered = set().union(*(report.executed | report.skipped for report in reports.values()))
    assert catalog.tests() <= registered, sorted(catalog.tests() - registered)


def test_ssh_selectors_match_every_option_they_name(catalog: OverlapCatalog) -> None:
    for overlap in catalog.overlaps:
        if overlap.lynis_test == "SSH-7408":
            assert overlap.details is not None
            for option in overlap.setting.split(", "):
                assert overlap.details.search(f"{option} (set YES to NO)"), (overlap.control, option)
            assert not overlap.details.search("Port (set 22 to )")


def overlap_data(**changes: Any) -> dict[str, Any]:
    item = {"control": "aslr_enabled", "lynis_test": "KRNL-6000", "medinfra": "m", "lynis": "l", **changes}
    return {"overlaps": [item]}


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (overlap_data(detail="^x$"), "unknown key"),
        (overlap_data(details="(unclosed"), "not a regular expression"),
        (overlap_data(lynis_test="KRNL 6000"), "not a Lynis test id"),
        (overlap_data(medinfra=""), "medinfra is required"),
        ({"overlaps": [overlap_data()["overlaps"][0]] * 2}, "listed twice"),
        (
            {**overlap_data(), "unreported": [{"control": "aslr_enabled", "lynis_test": "KRNL-6000", "note": "n"}]},
            "also in overlaps",
        ),
        (["not", "a", "mapping"], "expected a mapping"),
        ({"overlaps": "aslr_enabled"}, "^overlaps: expected a list of mappings$"),
        ({"overlaps": [["aslr_enabled"]]}, "^overlaps: expected a list of mappings$"),
        (overlap_data(setting=1), r"^overlaps\[0\]: setting must be a string$"),
    ],
)
def test_overlap_file_problems_are_refused(data: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        load_overlaps(data)
