"""Findings as JUnit XML, so CI systems (GitLab, Jenkins) show each host's controls as test results.

One testsuite per host, one testcase per (host, control): fail is a failure, error an error, not applicable and
waived are skipped (the waiver stays visible in the message). A host that was not audited is a suite with one
error. Reasons and evidence come from the hosts, so all text is escaped and characters XML 1.0 cannot carry are
replaced: the file must parse whatever a host sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from xml.sax.saxutils import escape, quoteattr

from medinfra.audit.results import Tally
from medinfra.compliance.model import Finding, Status
from medinfra.report.model import ControlInfo, HostInfo, Report
from medinfra.report.texts import evidence_text, expired_note, waiver_note
from medinfra.safe_output import OutputDirectory

# Everything outside XML 1.0's Char production; not even a character reference may carry these.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(value: str) -> str:
    """The text with characters XML cannot hold written as visible escapes (\\x01), so nothing is lost silently."""
    return NOT_XML.sub(lambda match: ascii(match[0])[1:-1], value)


def attr(value: str) -> str:
    return quoteattr(clean(value))


def text(value: str) -> str:
    return escape(clean(value))


def details(item: Finding, control: ControlInfo) -> str:
    """The body of a failure, error or waived case: why, what the host showed, how to fix it."""
    lines = [item.reason, f"evidence: {evidence_text(item.evidence)}"]
    if item.status is not Status.ERROR:
        lines.append(f"remediation ({control.remediation_role}): {control.remediation.en}")
    if item.expired_waiver is not None:
        lines.append(expired_note(item.expired_waiver))
    return text("\n".join(lines))


def outcome(item: Finding, control: ControlInfo) -> str:
    """The element inside a testcase; a pass has none."""
    if item.status is Status.FAIL:
        return f"<failure message={attr(item.reason)} type={attr(control.severity)}>{details(item, control)}</failure>"
    if item.status is Status.ERROR:
        return f'<error message={attr(item.reason)} type="error">{details(item, control)}</error>'
    if item.waiver is not None:  # the status is waived
        return f"<skipped message={attr(waiver_note(item.waiver))}>{details(item, control)}</skipped>"
    if item.status is Status.NOT_APPLICABLE:
        return f"<skipped message={attr(item.reason)}/>"
    return ""


def suite_open(host: HostInfo, started_at: str, tests: int, failures: int, errors: int, skipped: int) -> str:
    # The run's start as timestamp: the host's own clock (collected-at) is only reported, it may be wrong.
    name = attr(host.name)
    return (
        f'<testsuite name={name} hostname={name} tests="{tests}" failures="{failures}" errors="{errors}" '
        f'skipped="{skipped}" timestamp={attr(started_at)}>\n'
        f'<properties><property name="zone" value={attr(host.zone)}/>'
        f'<property name="audit-status" value={attr(host.status)}/>'
        f'<property name="collected-at" value={attr(host.collected_at or "")}/></properties>\n'
    )


def counts(tally: Tally) -> tuple[int, int, int, int]:
    """tests, failures, errors, skipped."""
    found = tally.counts
    return (
        sum(found.values()),
        found.get(Status.FAIL, 0),
        found.get(Status.ERROR, 0),
        found.get(Status.NOT_APPLICABLE, 0) + found.get(Status.WAIVED, 0),
    )


def host_suite(report: Report, host: HostInfo, findings: Sequence[Finding], names: dict[str, str]) -> str:
    if host.status != "audited":
        return (
            suite_open(host, report.started_at, 1, 0, 1, 0)
            + f"<testcase classname={attr('medinfra.' + host.name)} name={attr(host.name + ': audit')}>"
            f"<error message={attr(f'{host.status}: {host.reason}')} type={attr(host.status)}>"
            f"{text(f'{host.name} was not assessed: no control was checked')}</error></testcase>\n</testsuite>\n"
        )
    classname = attr(f"medinfra.{host.name}")
    cases = "".join(
        f"<testcase classname={classname} name={names[item.control]}>"
        f"{outcome(item, report.controls[item.control])}</testcase>\n"
        for item in findings
    )
    return suite_open(host, report.started_at, *counts(host.tally)) + cases + "</testsuite>\n"


def suites(report: Report) -> Iterator[str]:
    by_host: dict[str, list[Finding]] = {}
    for item in report.findings:
        by_host.setdefault(item.host, []).append(item)
    names = {cid: attr(f"{cid}: {control.title.en}") for cid, control in report.controls.items()}
    for host in report.hosts:
        yield host_suite(report, host, by_host.get(host.name, ()), names)


def write_junit(report: Report, directory: OutputDirectory, name: str) -> None:
    tests, failures, errors, skipped = counts(report.overall)
    unassessed = sum(1 for host in report.hosts if host.status != "audited")
    with directory.open_text(name) as handle:
        handle.write(
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<testsuites name={attr(f"medinfra {report.site}")} tests="{tests + unassessed}" '
            f'failures="{failures}" errors="{errors + unassessed}" skipped="{skipped}" '
            f'time="{report.seconds:.2f}" timestamp={attr(report.started_at)}>\n'
        )
        handle.writelines(suites(report))
        handle.write("</testsuites>\n")
