"""The `medinfra` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from medinfra import __version__
from medinfra.completion import SHELLS, script
from medinfra.exits import AUDIT_EXITS, EXIT_FAILURES, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE
from medinfra.package_data import CATALOG_DIR
from medinfra.problems import PrerequisiteError, UserInputError, refused
from medinfra.safe_text import cleaned, one_line
from medinfra.terminal import COLOR_CHOICES, Palette, palette

if TYPE_CHECKING:
    from medinfra.audit.results import AuditRun
    from medinfra.compliance.model import Waiver
    from medinfra.fix.run import Window
    from medinfra.report.model import Report
    from medinfra.report.publish import Published
    from medinfra.topology.model import Topology

DEFAULT_INVENTORY = Path("inventories/lab")
FORMATS = ("text", "json")
VAULT_HELP = "file holding the Ansible vault password, for inventories with vaulted variables"
KB_URL_HELP = ("base URL of the site's knowledge base (the role variable monitoring_server_kb_url, ending in /): the "
               "HTML report links each control's runbook to its page <URL>controls/<id>.html")
# The JSON documents `history` and `diff` print (the audit's is results.SUMMARY_FORMAT).
HISTORY_FORMAT, DIFF_FORMAT, FIX_FORMAT = "medinfra-history/1", "medinfra-diff/1", "medinfra-fix/1"
# The longest wait a timeout option accepts: a host or a probe slower than an hour is a host to look at.
MAX_SECONDS = 3600


def topology_file(inventory: Path) -> Path:
    """Accept an inventory directory or its hospital.yml."""
    return inventory / "hospital.yml" if inventory.is_dir() else inventory


def site_topology(inventory: Path) -> Topology | None:
    """The inventory's topology, when it has one (an audit also reads inventories without hospital.yml)."""
    from medinfra.topology import load_topology

    path = topology_file(inventory)
    return load_topology(path) if path.name == "hospital.yml" and path.is_file() else None


def count(text: str) -> int:
    """An argparse type: a whole number of at least 1 (hosts at once, runs listed, a run id)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{one_line(text[:40])!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than 1")
    return value


def seconds(text: str) -> float:
    """An argparse type: a duration in seconds, more than 0 and at most an hour (NaN and infinity are not)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{one_line(text[:40])!r} is not a number of seconds") from None
    if not 0 < value <= MAX_SECONDS:  # also false for NaN
        raise argparse.ArgumentTypeError(f"{text} is not more than 0 and at most {MAX_SECONDS} seconds")
    return value


Parsed = TypeVar("Parsed")


def parsed_argument(parse: Callable[[str], Parsed], text: str) -> Parsed:
    """An option's value through its parser: a ValueError becomes argparse's usage error (exit 2) saying why."""
    try:
        return parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def window(text: str) -> Window:
    from medinfra.fix.run import parse_window

    return parsed_argument(parse_window, text)


def kb_base(text: str) -> str:
    """--kb-url: the site knowledge base's base URL (`medinfra kb build`), which each control's runbook links into."""
    from medinfra.runbook import kb_url

    return parsed_argument(kb_url, text)


def say(message: str) -> None:
    print(message, flush=True)


def print_json(value: object) -> None:
    """One JSON document on stdout, its texts cleaned as the text forms' are (safe_text), never coloured."""
    print(json.dumps(cleaned(value), ensure_ascii=False, indent=2))


def colours(args: argparse.Namespace) -> Palette:
    return palette(args.color, sys.stdout)


def cmd_topology_validate(args: argparse.Namespace) -> int:
    from medinfra.topology.load import load_topology_warnings

    failed = False
    for path in args.paths:
        try:
            topology, warnings = load_topology_warnings(topology_file(path))
        except UserInputError as exc:
            failed = True
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            print(f"{one_line(str(path))}: {len(exc.problems)} problem(s)", file=sys.stderr)
            continue
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(
            f"{one_line(topology.source)}: valid: site {topology.site.name!r}, {len(topology.zones)} zones, "
            f"{len(topology.hosts)} hosts, {len(topology.flows)} flows, {len(topology.interfaces)} interfaces"
            + (f", {len(warnings)} warning(s)" if warnings else "")
        )
    return EXIT_USAGE if failed else 0


def cmd_impact(args: argparse.Namespace) -> int:
    from medinfra.impact import impact, impact_record, impact_text, resolve
    from medinfra.topology import load_topology

    topology = load_topology(topology_file(args.inventory))
    try:
        kind = resolve(topology, args.target, args.kind)
    except ValueError as exc:
        raise refused(topology.source, str(exc)) from None
    result = impact(topology, args.target, kind)
    if args.format == "json":
        print_json(impact_record(result, topology.site.name))
    else:
        print(impact_text(result))
    return 0


def cmd_plan_team(args: argparse.Namespace) -> int:
    from medinfra.plan.load import load_sites
    from medinfra.plan.reference import load_reference
    from medinfra.plan.render import team_record, team_text
    from medinfra.plan.team import plan_team

    reference = load_reference()
    plan = plan_team(load_sites([topology_file(path) for path in args.inventory or [DEFAULT_INVENTORY]]), reference)
    if args.format == "json":
        print_json(team_record(plan, reference, args.lang))
    else:
        print(team_text(plan, reference, args.lang))
    return 0


def cmd_lab_up(args: argparse.Namespace) -> int:
    from medinfra.lab.lab import up

    up(topology_file(args.inventory), say)
    return 0


def cmd_lab_down(args: argparse.Namespace) -> int:
    from medinfra.lab.lab import down

    down(topology_file(args.inventory), say)
    return 0


def cmd_lab_status(args: argparse.Namespace) -> int:
    from medinfra.lab.lab import status

    statuses = status(topology_file(args.inventory))
    zones: dict[str, list[str]] = {}
    for item in statuses:
        reach = "reachable" if item.ssh_ok else "UNREACHABLE"
        line = f"  {item.container.host:<16} {item.container.address!s:<15} {item.state:<8} {reach}"
        zones.setdefault(item.container.zone, []).append(line)
    for zone, lines in zones.items():
        print(f"zone {zone}:")
        print("\n".join(lines))
    reachable = sum(1 for s in statuses if s.ssh_ok)
    print(f"{reachable}/{len(statuses)} hosts reachable over SSH")
    return 0 if reachable == len(statuses) else 1


def cmd_lab_image(args: argparse.Namespace) -> int:
    from medinfra.lab.image import EE_BASE_IMAGE, LAB_IMAGE, ensure_image
    from medinfra.lab.prereq import check_lab_prerequisites

    check_lab_prerequisites()
    recipe = EE_BASE_IMAGE if args.ee_base else LAB_IMAGE
    # Progress to stderr: stdout is only the tag, for scripts (`export MEDINFRA_LAB_IMAGE=$(medinfra lab image)`).
    print(ensure_image(lambda message: print(message, file=sys.stderr, flush=True), recipe))
    return 0


def cmd_lab_ssh(args: argparse.Namespace) -> int:
    from medinfra.lab.lab import ssh

    ssh(topology_file(args.inventory), args.host, args.command)
    return 0


def cmd_lab_netem(args: argparse.Namespace) -> int:
    from medinfra.lab import netem

    path = topology_file(args.inventory)
    settings = (args.delay, args.jitter, args.loss)
    if args.clear and any(value is not None for value in settings):
        raise refused("--clear", "takes no --delay, --jitter or --loss: it removes every impairment of the zone")
    if args.clear:
        state = netem.clear(path, args.zone)
    elif all(value is None for value in settings):
        state = netem.status(path, args.zone)
    else:
        try:
            impairment = netem.Impairment(args.delay or 0.0, args.jitter or 0.0, args.loss or 0.0)
        except netem.ImpairmentError as error:
            raise refused(error.option, str(error)) from None
        state = netem.apply(path, args.zone, impairment, say)
    print(state)
    return 1 if state.problems else 0


def netem_duration(text: str) -> float:
    """An argparse type: ``200ms``, ``1s`` or ``0``, in milliseconds (a bad value is a usage error, exit 2)."""
    from medinfra.lab.netem import parse_duration

    return parsed_argument(parse_duration, text)


def netem_loss(text: str) -> float:
    """An argparse type: ``5%`` or ``5``, a percentage."""
    from medinfra.lab.netem import parse_loss

    return parsed_argument(parse_loss, text)


def cmd_roles_doc(args: argparse.Namespace) -> int:
    from medinfra.roledoc import render_readme
    from medinfra.safe_output import write_file

    if args.roles_dir is None:
        from medinfra.collection import collection_directory

        roles_dir = collection_directory() / "roles"
    else:
        roles_dir = args.roles_dir
    if not roles_dir.is_dir():
        raise refused(one_line(str(roles_dir)), "is not a directory of roles")
    for role in sorted(p for p in roles_dir.iterdir() if (p / "meta" / "argument_specs.yml").exists()):
        readme = role / "README.md"
        try:
            text = render_readme(role)
        except ValueError as exc:
            raise refused(str(readme), str(exc).split(": ", 1)[-1]) from None
        if not readme.is_file() or readme.read_text(encoding="utf-8") != text:
            write_file(readme, text, 0o644)
            print(f"updated {readme}")
    return 0


def chosen_history(args: argparse.Namespace) -> str:
    """The history location given or the default; refused (exit 2, password redacted) if it cannot be one."""
    from medinfra.history.store import default_history_location, parse_location

    # An empty --history is refused (parse_location), not taken for the default: `--history "$UNSET"` is a mistake.
    location: str = default_history_location() if args.history is None else args.history
    parse_location(location)
    return location


def history_location(args: argparse.Namespace) -> str | None:
    """For commands that may skip the history (`--no-history`)."""
    return None if args.no_history else chosen_history(args)


def print_published(published: Published) -> None:
    if published.history.run is not None:
        print(f"history: run #{published.history.run.id} recorded")
    if published.history.changes is not None and published.history.previous is not None:
        changes = published.history.changes
        print(f"since run #{published.history.previous.id}: {len(changes.new_failures)} new failure(s), "
              f"{len(changes.fixed)} resolved (fixed, waived or not applicable), "
              f"{len(changes.hosts_added)} host(s) added, {len(changes.hosts_removed)} removed")
    print(f"reports in {published.directory}/:")
    for path in published.files:
        if path.parent == published.directory:
            print(f"  {path}")
    if published.manifest is not None:
        print(f"  {published.manifest} (signed; check with: medinfra verify {published.directory} --pubkey KEY.pub)")


def published_record(published: Published, history: str | None) -> dict[str, object]:
    """Where an audit left its reports and how its history went, for the JSON summary."""
    from medinfra.history.diff import diff_record, run_record
    from medinfra.history.store import redact

    context = published.history
    return {
        "reports": {
            "directory": str(published.directory),
            "files": [str(path) for path in published.files],
            "manifest": None if published.manifest is None else str(published.manifest),
        },
        "history": {
            "location": None if history is None else redact(history),
            "recorded": None if context.run is None else run_record(context.run),
            "error": published.history_error,
            "previous": None if context.previous is None else run_record(context.previous),
            "changes": None if context.changes is None else diff_record(context.changes),
        },
    }


def audit_run(args: argparse.Namespace, limit: str | None, fixes: str | None = None,
              waivers: Sequence[Waiver] = ()) -> tuple[AuditRun, Published]:
    """Audit the inventory's hosts matching `limit` and publish the run (reports, signature, history): what
    `audit` does, and what `fix --apply` does to prove its changes. `waivers` apply unless --waivers gives a file."""
    # First: pyinfra's transport patches the standard library for gevent before sockets exist.
    from medinfra.audit.pyinfra_transport import collect_evidence, quiet_hub
    from medinfra.audit.results import AuditRun, HostResult, interface_states, judge_run
    from medinfra.audit.targets import load_targets
    from medinfra.compliance.catalog import load_catalog, load_waivers
    from medinfra.report.publish import check_output_directory, publish
    from medinfra.signing import load_private_key

    # Every input is checked before any host is contacted, and the output directory last (it is created).
    catalog = load_catalog(args.catalog)
    if args.waivers:
        waivers = load_waivers(args.waivers, catalog)
    if args.sign is not None:
        load_private_key(args.sign)
    history = history_location(args)
    with quiet_hub():
        targets = load_targets(args.inventory, limit, args.vault_password_file)
    check_output_directory(args.out)
    started = datetime.now(UTC)
    clock = time.monotonic()

    def progress(result: HostResult, done: int, total: int) -> None:
        if not args.quiet:
            note = f": {result.reason}" if result.reason else ""
            line = f"[{done:>{len(str(total))}}/{total}] {result.host} {result.status} ({result.seconds:.1f} s){note}"
            print(one_line(line), file=sys.stderr, flush=True)

    results = collect_evidence(targets, connect_timeout=args.timeout, parallel=args.forks, progress=progress)
    views = {target.name: target.inventory for target in targets}
    judged = judge_run(results, views, catalog, waivers, datetime.now(UTC))
    run = AuditRun("pyinfra", str(args.inventory), started, results, judged.findings, catalog, waivers,
                   time.monotonic() - clock, views=views, fixes=fixes, interfaces=interface_states(judged))
    published = publish(run, args.out, history, args.sign, site_topology(args.inventory), args.kb_url)
    if published.history_error is not None:
        print(f"medinfra: history: this run was NOT recorded ({published.history_error}); the reports are complete",
              file=sys.stderr)
    return run, published


def cmd_audit(args: argparse.Namespace) -> int:
    from medinfra.audit.results import exit_code, summary_record, summary_text

    run, published = audit_run(args, args.limit)
    code = exit_code(run, recorded=published.history_error is None)
    if args.format == "json":
        print_json({**summary_record(run), "exit": {"code": code, "meaning": AUDIT_EXITS[code]},
                    **published_record(published, history_location(args))})
    else:
        print(summary_text(run, colours(args)))
        print_published(published)
    return code


def fix_findings(args: argparse.Namespace) -> dict[str, Any]:
    """The findings document to fix: a report directory (its signature checked when it is signed, or when a key is
    given), a findings.json, or a run of the history by number or run uuid."""
    from medinfra.fix.run import source_kind
    from medinfra.report.findings_file import read_findings
    from medinfra.report.publish import FINDINGS_FILE
    from medinfra.signing import MANIFEST, SIGNATURE, verify_directory

    kind = source_kind(args.source)
    if kind in ("run-id", "run-uuid"):
        from medinfra.history import open_history

        with open_history(chosen_history(args), read_only=True) as store:
            found = store.find(args.source) if kind == "run-uuid" else store.get(int(args.source))
            if found is None:
                raise refused(args.source, f"no run with this uuid in {store.location}")
            return store.document(found.id)
    source = Path(args.source)
    directory = source if kind == "directory" else source.parent
    signed = any((directory / name).exists() for name in (MANIFEST, SIGNATURE))
    if signed and args.pubkey is None:
        raise refused(str(directory), "is signed: give --pubkey KEY.pub to check its signature before fixing from it")
    if args.pubkey is not None:
        result = verify_directory(directory, args.pubkey)
        if not result.ok:
            changed = [*result.altered, *result.added, *result.removed]
            what = "the signature is not valid" if not result.signature_valid else f"files differ: {changed[:5]}"
            raise refused(str(directory), f"failed verification against {args.pubkey}: {what}; nothing was run")
    return read_findings(source / FINDINGS_FILE if kind == "directory" else source)


def write_plan_of_action(args: argparse.Namespace, report: Report, topology: Topology) -> None:
    """--poam FILE: the OSCAL POA&M of what stays open, linked to the audit's assessment results beside it."""
    from medinfra.fix.run import source_kind
    from medinfra.report.oscal import OSCAL_FILE
    from medinfra.report.poam import write_poam
    from medinfra.safe_output import OutputDirectory

    source, kind, target = Path(args.source), source_kind(args.source), args.poam.absolute()
    href = OSCAL_FILE  # a run of the history: its assessment results are wherever `medinfra report` renders them
    if kind in ("directory", "file"):
        results = source if kind == "directory" else source.parent
        href = os.path.relpath(results.absolute() / OSCAL_FILE, target.parent)
    with OutputDirectory.open(target.parent) as out:
        path = write_poam(report, out, target.name, topology, datetime.now(UTC), href)
    print(f"plan of action and milestones: {path}", file=sys.stderr if args.format == "json" else sys.stdout)


def cmd_fix(args: argparse.Namespace) -> int:
    from medinfra.collection import collection_directory
    from medinfra.compliance.catalog import load_catalog
    from medinfra.fix.plan import host_policies, open_items, plan_fix
    from medinfra.fix.run import (
        compare,
        outcome_record,
        outcome_text,
        plan_record,
        plan_text,
        planned_failures,
        playbook_steps,
        reaudit_hosts,
        run_steps,
        window_refusal,
        with_current_remediation,
    )
    from medinfra.fix.targets import playbooks_for, read_role_playbooks, read_role_targets, remediation_problems
    from medinfra.report.model import build_report
    from medinfra.topology import load_topology

    catalog = load_catalog(args.catalog)
    topology = load_topology(topology_file(args.inventory))
    document = fix_findings(args)
    if document.get("site") != topology.site.name:
        raise refused(args.source, f"holds findings of site {document.get('site')!r}, the inventory is site "
                                   f"{topology.site.name!r}: fix with the inventory that was audited")
    collection = collection_directory()
    roles = read_role_targets(collection / "roles")
    if problems := remediation_problems(catalog.controls, roles):
        raise UserInputError(problems)
    role_playbooks = read_role_playbooks(collection / "playbooks")
    before = build_report(document)
    report = with_current_remediation(before, catalog)
    controls = tuple(args.controls.split(",")) if args.controls else ()
    unknown = sorted(set(controls) - set(report.controls))
    if unknown:
        raise refused(args.source, f"--controls names controls this run did not judge: {', '.join(unknown)}")
    patterns = tuple(args.hosts.split(",")) if args.hosts else ()
    plan = plan_fix(open_items(report), host_policies(topology), controls, patterns)

    def playbooks(tags: Sequence[str]) -> list[Path]:
        return [collection / "playbooks" / name for name in playbooks_for(tags, roles, role_playbooks)]

    steps = playbook_steps(plan, playbooks, args.inventory, check=not args.apply,
                           vault_password_file=args.vault_password_file)
    if args.poam is not None:
        write_plan_of_action(args, report, topology)
    # With --format json stdout holds one document: the playbooks' output goes to stderr.
    terminal = sys.stderr if args.format == "json" else sys.stdout
    print(f"fix plan for run {one_line(str(document.get('run_id')))} of site {topology.site.name}:", file=terminal)
    print(plan_text(plan, steps), file=terminal, flush=True)
    record: dict[str, Any] = {"format": FIX_FORMAT, "run_id": document.get("run_id"), "applied": args.apply,
                              "plan": plan_record(plan, steps)}
    if args.apply and steps and (refusal := window_refusal(args.window, datetime.now(UTC), topology.site.timezone)):
        print(f"medinfra: fix refused: {refusal}", file=sys.stderr)
        return EXIT_USAGE
    done = run_steps(steps, stop_at_failure=args.apply, output=terminal)
    failed = [step for step, code in done if code != 0]
    record["commands"] = [{"argv": list(step.argv), "exit": code} for step, code in done]
    record["not_started"] = [list(step.argv) for step in steps[len(done):]]
    for step in steps[len(done):]:
        print(f"not started (an earlier run failed): {one_line(' '.join(step.argv))}", file=terminal)
    code = EXIT_FAILURES if failed else EXIT_OK
    if args.apply and done:
        hosts = sorted({host for step, _ in done for host in step.hosts})
        audited = reaudit_hosts(hosts, topology, [host.name for host in before.hosts if host.status == "audited"])
        # The audit's own waivers judge the re-audit too: a failure waived then is not a new failure now.
        waivers = [info.waiver for info in before.waivers]
        run, published = audit_run(args, ",".join(audited), fixes=str(document["run_id"]), waivers=waivers)
        outcome = compare(before.findings, run.findings, hosts, planned_failures(plan))
        record["reaudit"] = {"run_id": run.run_id, "hosts": audited, "changed": hosts, **outcome_record(outcome),
                             **published_record(published, history_location(args))}
        print(outcome_text(outcome), file=terminal)
        if args.format == "text":
            print_published(published)
        if not outcome.clean:
            code = EXIT_FAILURES
    if args.format == "json":
        print_json(record)
    return code


def cmd_report(args: argparse.Namespace) -> int:
    from medinfra.report.findings_file import read_findings
    from medinfra.report.model import HistoryContext
    from medinfra.report.pdf import print_pdf
    from medinfra.report.publish import FINDINGS_FILE, history_context, write_reports
    from medinfra.safe_output import OutputDirectory
    from medinfra.signing import load_private_key, sign_directory

    source = args.results / FINDINGS_FILE if args.results.is_dir() else args.results
    document = read_findings(source)
    if args.sign is not None:
        load_private_key(args.sign)
    location = history_location(args)
    context = history_context(location, document) if location is not None else HistoryContext()
    langs = ("en", "zh") if args.lang == "both" else (args.lang,)
    with OutputDirectory.open(args.out or source.parent) as out:
        files = write_reports(document, out, context, langs, kb_url=args.kb_url)
        if args.pdf:
            files += [print_pdf(path, out) for path in files if path.suffix == ".html"]
        for path in files:
            print(path)
        if args.sign is not None:
            print(sign_directory(out, args.sign))
    return 0


def cmd_turn_credentials(args: argparse.Namespace) -> int:
    from medinfra.turn import group_credentials

    inventories = args.inventory or [DEFAULT_INVENTORY]
    servers = group_credentials(inventories, args.vault_password_file, args.ttl, args.user, time.time(), args.site,
                                args.relay)
    print(json.dumps({"iceServers": servers}, indent=2))
    return 0


def cmd_turn_loadtest(args: argparse.Namespace) -> int:
    from medinfra.turn_load import LoadOptions, report_text, run_loadtest

    options = LoadOptions(args.inventory, args.vantage, args.sessions, args.duration, args.rate, args.transport,
                          args.one_user, args.relay, args.vault_password_file, args.peer, args.peer_port)
    report = run_loadtest(options)
    print(json.dumps(report, indent=1) if args.format == "json" else report_text(report))
    return 0 if report["passed"] else 1


def cmd_segmentation_verify(args: argparse.Namespace) -> int:
    from medinfra.audit.pyinfra_transport import collect_all, quiet_hub
    from medinfra.audit.targets import load_targets
    from medinfra.package_data import hostside_source
    from medinfra.safe_output import OutputDirectory
    from medinfra.segmentation.verify import Observation, host_observations, matrix_text, plan, probe_script, summary
    from medinfra.topology.load import load_topology

    topology = load_topology(topology_file(args.inventory))
    probes = plan(topology)
    if args.json is not None:  # a bad --json fails now, before any host is contacted
        with OutputDirectory.open(args.json.parent) as directory:
            directory.probe()
    with quiet_hub():
        targets = [t for t in load_targets(args.inventory, None, args.vault_password_file) if t.name in probes]
    source = hostside_source("reachability.py")
    scripts = {
        target.name: probe_script(source, target.name, probes[target.name], args.timeout,
                                  None if args.no_record else str(target.inventory["paths"]["state"]))
        for target in targets if target.problem == ""
    }
    clock = time.monotonic()
    results = collect_all(targets, scripts, connect_timeout=10, command_timeout=60 + 4 * args.timeout)
    found: list[Observation] = []
    unprobed: list[tuple[str, str]] = []
    for result in results:
        try:
            if result.evidence is None:
                raise ValueError(f"{result.status}: {result.reason}")
            found += host_observations(topology, result.host, result.evidence)
        except ValueError as exc:
            unprobed.append((result.host, str(exc)))
    counts = summary(found)
    paint = colours(args)
    print(f"segmentation of {topology.site.name}: {len(found)} connection attempts from {len(results)} hosts "
          f"in {time.monotonic() - clock:.1f} s")
    print(matrix_text(topology, found))
    for label, verdict in (("UNEXPECTED", "unexpected"), ("unconfirmed (UDP, no answer)", "unconfirmed")):
        for item in (o for o in found if o.verdict == verdict):
            print(f"{paint.status(label, verdict)}: {item.label()}")
    for host, reason in unprobed:
        print(f"{paint.status('NOT PROBED')}: {one_line(host)}: {one_line(reason)}")
    tally = ", ".join(
        paint.count(f"{counts[key]} {label}", status, counts[key])
        for key, label, status in (("ok", "as intended", "pass"), ("unexpected", "unexpected", "fail"),
                                   ("unconfirmed", "unconfirmed", "error"))
    )
    recorded = "" if args.no_record else "; recorded for the audit in each host's state directory (segmentation.json)"
    print(tally + recorded)
    if args.json is not None:
        with OutputDirectory.open(args.json.parent) as directory:
            directory.write_text(args.json.name, json.dumps([vars(o) for o in found], indent=1) + "\n")
    if counts["unexpected"]:
        return EXIT_FAILURES
    return EXIT_UNREACHABLE if unprobed else 0


def cmd_drill_run(args: argparse.Namespace) -> int:
    """Rehearse an emergency plan: its steps in order, every break undone at the end, the result published."""
    # First: pyinfra's transport patches the standard library for gevent before sockets exist.
    from medinfra.audit.pyinfra_transport import quiet_hub
    from medinfra.audit.targets import load_targets
    from medinfra.drill.evidence import publish_drill
    from medinfra.drill.plan import load_plan
    from medinfra.drill.remote import SshExecutor
    from medinfra.drill.runner import plan_document, run_plan, step_line
    from medinfra.safe_output import OutputDirectory
    from medinfra.signing import load_private_key

    # Everything is checked before the first step runs: plan, key, history, evidence directory, inventory.
    topology = site_topology(args.inventory)
    if topology is None:
        raise refused(str(args.inventory), "has no hospital.yml: a drill takes its site, management zones and "
                      "monitoring server from the topology")
    plan = load_plan(args.plan, {host.name for host in topology.hosts})
    if args.sign is not None:
        load_private_key(args.sign)
    history = history_location(args)
    with OutputDirectory.open(args.evidence) as evidence:
        evidence.probe()
    with quiet_hub():
        targets = load_targets(args.inventory, None, args.vault_password_file)
    executor = SshExecutor({target.name: target for target in targets}, topology, args.timeout)
    print(f"drill {plan.name} on site {one_line(topology.site.name)}: {len(plan.steps)} steps", flush=True)
    with quiet_hub():  # gevent would print a Ctrl-C the runner handles
        run = run_plan(plan, executor, lambda result: print(one_line(step_line(result, len(plan.steps))), flush=True))
    published = publish_drill(plan_document(topology.site.name, plan, run), args.evidence, history, args.sign)
    seconds = (run.finished - run.started).total_seconds()
    print(f"drill {plan.name}: {'PASSED' if run.passed else 'FAILED'} in {seconds:.1f} s")
    print(f"evidence: {published.file}" + (" (signed)" if published.manifest is not None else ""))
    if published.record is not None:
        print(f"history: drill #{published.record.id} recorded")
    if published.history_error is not None:
        print(f"medinfra: history: this drill was NOT recorded ({published.history_error})", file=sys.stderr)
    if run.interrupted:
        return 130
    return EXIT_OK if run.passed else EXIT_FAILURES


def cmd_drill_failover(args: argparse.Namespace) -> int:
    # First: pyinfra's transport patches the standard library for gevent before sockets exist.
    from medinfra.audit.pyinfra_transport import quiet_hub
    from medinfra.drill.evidence import DRILL_FORMAT, publish_drill
    from medinfra.drill.failover import Drill, DrillError, evidence_result, result_text
    from medinfra.fix.run import window_refusal
    from medinfra.signing import load_private_key

    # Every input is checked before any host is contacted.
    topology = site_topology(args.inventory)
    if args.sign is not None:
        load_private_key(args.sign)
    history = history_location(args)
    if refusal := window_refusal(args.window, datetime.now(UTC), topology.site.timezone if topology else None):
        print(f"medinfra: drill refused: {refusal}", file=sys.stderr)
        return EXIT_USAGE
    with quiet_hub():
        drill = Drill(args.inventory, args.host, args.vault_password_file, say)
        try:
            result = drill.run(args.host, args.method)
        except DrillError as exc:
            print(f"medinfra: drill failover {one_line(args.host)}: {exc}", file=sys.stderr)
            return EXIT_USAGE if exc.refused else EXIT_FAILURES
    print(result_text(result))
    record = evidence_result(result)
    document = {"format": DRILL_FORMAT, "kind": "failover",
                "site": topology.site.name if topology else drill.pair.name, "started": record["started"],
                "finished": record["finished"], "passed": result.passed, "drill_id": result.drill_id,
                "result": record}
    published = publish_drill(document, args.evidence, history, args.sign)
    print(f"evidence: {published.file}" + ("" if published.manifest is None else f" (signed: {published.manifest})"))
    if published.history_error is not None:
        print(f"medinfra: history: this drill was NOT recorded ({published.history_error})", file=sys.stderr)
    return EXIT_OK if result.passed else EXIT_FAILURES


def cmd_keys_generate(args: argparse.Namespace) -> int:
    from medinfra.signing import generate_keypair

    # `keys/` would silently become the prefix `keys` (files keys.key and keys.pub beside the directory).
    if os.path.basename(args.out) in ("", ".", ".."):
        message = "needs a file name after the directory, e.g. keys/audit"
        raise refused(one_line(args.out), message)
    private, public = generate_keypair(Path(args.out))
    print(f"private key: {private}")
    print(f"public key:  {public}")
    print(f"Keep {private} private (mode 0600): whoever holds it can sign results. Share only {public}.")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from medinfra.signing import MANIFEST, SIGNATURE, verify_directory

    result = verify_directory(args.directory, args.pubkey)
    if result.ok:
        print(f"verified: {result.files} files, signature valid")
        return 0
    if not result.signature_valid:
        missing = [name for name in (MANIFEST, SIGNATURE) if not (args.directory / name).exists()]
        reason = " and ".join(missing) + " missing" if missing else "manifest or signature altered"
        print(f"signature: INVALID ({reason})")
    for number in result.malformed:
        print(f"malformed: {MANIFEST} line {number}")
    for label, paths in (("altered", result.altered), ("added", result.added), ("removed", result.removed)):
        for path in paths:
            # Names come from the directory or manifest someone sent: escaped, so none can paint a line of its own.
            print(f"{label}: {one_line(path)}")
    return 1


def cmd_sla_report(args: argparse.Namespace) -> int:
    from medinfra.sla.run import Request, make_report, rendered, write_report
    from medinfra.sla.source import SourceError

    if args.sign is not None and args.out is None:
        raise refused("--sign", "needs -o DIR: the signed report and its manifest go into a directory of their own")
    request = Request(args.inventory, args.month, args.format, args.lang, args.out, args.vault_password_file,
                      args.sign)
    try:
        report = make_report(request)
    except SourceError as exc:
        print(f"medinfra: sla report: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    files = write_report(report, request)
    if files:
        print("\n".join(f"written: {path}" for path in files))
    else:
        sys.stdout.write(rendered(report, args.format, args.lang, ""))
    return EXIT_OK if report.met else EXIT_FAILURES


def note(args: argparse.Namespace, message: str) -> None:
    """A remark beside the result: on stdout for text, on stderr when stdout is a JSON document."""
    print(message, file=sys.stderr if args.format == "json" else sys.stdout)


def history_drills(args: argparse.Namespace) -> int:
    from medinfra.history import open_history
    from medinfra.history.diff import drill_record, drills_table

    with open_history(chosen_history(args), read_only=True) as store:
        drills = store.drills(args.site, args.limit)
    if args.format == "json":
        print_json({"format": HISTORY_FORMAT, "location": store.location,
                    "drills": [drill_record(d) for d in drills]})
    elif drills:
        print(drills_table(drills, colours(args)))
    if not drills:
        note(args, f"no drills recorded in {one_line(store.location)}" + (f" for site {one_line(args.site)}"
                                                                          if args.site else ""))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from medinfra.history import open_history
    from medinfra.history.diff import run_record, runs_table

    if args.drills:
        return history_drills(args)
    with open_history(chosen_history(args), read_only=True) as store:
        runs = store.runs(args.site, args.limit)
    if args.format == "json":
        print_json({"format": HISTORY_FORMAT, "location": store.location, "runs": [run_record(r) for r in runs]})
    elif runs:
        print(runs_table(runs, colours(args)))
    if not runs:
        note(args, f"no runs recorded in {one_line(store.location)}" + (f" for site {one_line(args.site)}"
                                                                        if args.site else ""))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from medinfra.history import RunInfo, diff_runs, diff_text, open_history
    from medinfra.history.diff import diff_record, run_label, run_record

    newer: RunInfo | None = None
    older: RunInfo | None = None
    with open_history(chosen_history(args), read_only=True) as store:
        if args.run_a is None:
            latest = store.runs(limit=1)
            newer = latest[0] if latest else None
        else:
            newer = store.get(args.run_a if args.run_b is None else args.run_b)
        if newer is not None:
            older = store.previous(newer.id) if args.run_b is None else store.get(args.run_a)
        documents = None if newer is None or older is None else (store.document(older.id), store.document(newer.id))
    diff = None if documents is None else diff_runs(*documents)
    if args.format == "json":
        print_json({
            "format": DIFF_FORMAT,
            "location": store.location,
            "older": None if older is None else run_record(older),
            "newer": None if newer is None else run_record(newer),
            "changes": None if diff is None else diff_record(diff),
        })
    if newer is None:
        note(args, f"no runs recorded in {one_line(store.location)}")
    elif older is None or documents is None or diff is None:
        note(args, f"{run_label(newer)} is the first recorded run of its site: nothing to compare it with")
    elif args.format == "text":
        print(f"{run_label(older)} → {run_label(newer)}")
        print(diff_text(diff, documents[1].get("controls", {}), colours(args)))
    return 0


def cmd_kb_build(args: argparse.Namespace) -> int:
    from medinfra.kb.build import build_kb

    built = build_kb(args.inventory, args.out, history_location(args), args.reports, args.vault_password_file)
    rota = "" if built.rota else " (no oncall.yml: no rota)"
    print(f"knowledge base in {built.directory}: {built.pages} pages ({built.hosts} hosts, {built.alerts} alerts, "
          f"{built.controls} controls){rota}; open {built.directory / 'index.html'}")
    return 0


def cmd_oncall_who(args: argparse.Namespace) -> int:
    from medinfra.oncall.load import ONCALL_FILE, load_oncall
    from medinfra.oncall.who import parse_time, who_record, who_text

    path = topology_file(args.inventory).parent / ONCALL_FILE
    oncall = load_oncall(path)
    try:
        at = parse_time(args.at, datetime.now(UTC), oncall.timezone)
    except ValueError:
        example = "2026-12-06T03:00 or 2026-12-06T03:00+08:00"
        raise refused("--at", f"{args.at!r} is not an ISO time such as {example}") from None
    if args.format == "json":
        print_json(who_record(oncall, at))
    else:
        print(who_text(oncall, at))
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    print(script(build_parser(), args.shell), end="")
    return 0


def add_history_options(parser: argparse.ArgumentParser, can_skip: bool = True) -> None:
    parser.add_argument("--history", metavar="PATH_OR_URL",
                        help="where runs are recorded: a SQLite file, or a postgresql:// URL (default: "
                             "$MEDINFRA_HISTORY, else ${XDG_DATA_HOME:-~/.local/share}/medinfra/history.sqlite; "
                             "'none' is refused, not taken for a file name)")
    if can_skip:
        parser.add_argument("--no-history", action="store_true", help="do not use the history store")


def add_audit_options(parser: argparse.ArgumentParser, waivers_help: str) -> None:
    """What an audit reads and how it reaches hosts: `audit`, and `fix --apply` for its re-audit."""
    parser.add_argument("--waivers", type=Path, help=waivers_help)
    parser.add_argument("--catalog", type=Path, default=CATALOG_DIR, help="catalog root with controls/ and frameworks/")
    parser.add_argument("--vault-password-file", type=Path, help=VAULT_HELP)
    parser.add_argument("--timeout", type=seconds, default=10, help="SSH connect timeout per host, s (default 10)")
    parser.add_argument("--forks", type=count, default=100, help="hosts audited at once (default 100)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-host progress on stderr")
    parser.add_argument("--sign", type=Path, metavar="KEY",
                        help="Ed25519 private key: write MANIFEST.sha256 and its signature over every output file")
    parser.add_argument("--kb-url", type=kb_base, metavar="URL", help=KB_URL_HELP)


def add_output_options(parser: argparse.ArgumentParser, formats: bool = True) -> None:
    """--format (text or one JSON document on stdout) and --color, for commands that print results."""
    if formats:
        parser.add_argument("--format", choices=FORMATS, default="text",
                            help="text for people, or one JSON document on stdout for scripts (default: text)")
    parser.add_argument("--color", choices=COLOR_CHOICES, default="auto",
                        help="colour PASS, FAIL, ERROR in the text: auto (a terminal and NO_COLOR unset), always or "
                             "never (default: auto; JSON is never coloured)")


def subcommands(parser: argparse.ArgumentParser, dest: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    return parser.add_subparsers(dest=dest, required=True, metavar="COMMAND", help="(COMMAND -h for its help)")


def add_drill_options(parser: argparse.ArgumentParser) -> None:
    """What every drill takes: the inventory, where its evidence goes and how it is signed, the history."""
    parser.add_argument("-i", "--inventory", type=Path, default=DEFAULT_INVENTORY,
                        help="Ansible inventory (directory holding hospital.yml), read as ansible-playbook would")
    parser.add_argument("--evidence", type=Path, default=Path("drills"), metavar="DIR",
                        help="directory for the drill's evidence, one subdirectory per drill (default: drills)")
    parser.add_argument("--sign", type=Path, metavar="KEY", help="Ed25519 private key: sign the drill's evidence")
    parser.add_argument("--vault-password-file", type=Path, help=VAULT_HELP)
    add_history_options(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medinfra", description="Hospital infrastructure as code and compliance.")
    parser.add_argument("--version", action="version", version=f"medinfra {__version__}")
    commands = subcommands(parser, "command")

    topology = commands.add_parser("topology", help="work with hospital.yml topologies")
    topology_commands = subcommands(topology, "topology_command")
    validate = topology_commands.add_parser("validate", help="check topologies; exit 2 on any problem")
    validate.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="hospital.yml or its inventory directory")
    validate.set_defaults(handler=cmd_topology_validate)

    impact = commands.add_parser(
        "impact",
        help="what breaks when a host, zone, interface or vendor's systems are down or upgraded",
        description="Reads the topology only: the interfaces and flows that go down, the hosts and interfaces that "
        "depend on them (one step), their SLA classes, owners and vendor contacts to notify, and the alerts that "
        "will fire. Exit 0; 2: bad input or an unknown TARGET.",
    )
    impact.add_argument("target", metavar="TARGET",
                        help="a host, zone or interface name, or a vendor's name as the interfaces spell it")
    impact.add_argument("-i", "--inventory", type=Path, default=DEFAULT_INVENTORY,
                        help="inventory directory holding hospital.yml, or the file (default: inventories/lab)")
    impact.add_argument("--kind", choices=("host", "zone", "interface", "vendor"),
                        help="what TARGET names, when the name is more than one kind")
    # --format only: nothing in the answer is a PASS or FAIL to colour.
    impact.add_argument("--format", choices=FORMATS, default="text",
                        help="text for people, or one JSON document (medinfra-impact/1) on stdout (default: text)")
    impact.set_defaults(handler=cmd_impact)

    plan = commands.add_parser("plan", help="plan from the topology: team sizing")
    plan_commands = subcommands(plan, "plan_command")
    team = plan_commands.add_parser(
        "team",
        help="staffing estimate per role (ops, network, application, security, duty watch) and the rota it implies",
        description="Reads the topology only and compares the estimate with the reference table of hospital scales "
        "(src/medinfra/plan/scales.yml). Several inventories are a hospital group, one campus each. Exit 0; 2: bad "
        "input.",
    )
    team.add_argument("-i", "--inventory", type=Path, action="append", metavar="INVENTORY",
                      help="inventory directory holding hospital.yml, or the file; repeat for each campus of a "
                           "group (default: inventories/lab)")
    team.add_argument("--format", choices=FORMATS, default="text",
                      help="text for people, or one JSON document (medinfra-plan-team/1) on stdout (default: text)")
    team.add_argument("--lang", choices=("en", "zh"), default="en", help="language of the texts (default en)")
    team.set_defaults(handler=cmd_plan_team)

    roles = commands.add_parser("roles", help="role tooling")
    roles_commands = subcommands(roles, "roles_command")
    doc = roles_commands.add_parser("doc", help="regenerate each role README's variable table from argument_specs")
    doc.add_argument("--roles-dir", type=Path, metavar="DIR",
                     help="the roles to document (default: the roles of the installed collection medinfra.hospital)")
    doc.set_defaults(handler=cmd_roles_doc)

    audit = commands.add_parser(
        "audit",
        help="collect evidence from every host over SSH (pyinfra) and judge it against the control catalog",
        description="Exit " + "; ".join(f"{code}: {meaning}" for code, meaning in AUDIT_EXITS.items()) + ".",
    )
    audit.add_argument("-i", "--inventory", type=Path, default=DEFAULT_INVENTORY,
                       help="Ansible inventory (directory or file), read as ansible-playbook would")
    audit.add_argument("-l", "--limit", help="Ansible host pattern to audit a subset")
    audit.add_argument("-o", "--out", type=Path, default=Path("reports"),
                       help="directory for findings.json, evidence/ and every report format (default: reports)")
    add_audit_options(audit, "YAML file of accepted exceptions (compliance/schemas/waivers)")
    add_history_options(audit)
    add_output_options(audit)
    audit.set_defaults(handler=cmd_audit)

    fix = commands.add_parser(
        "fix",
        help="repair what an audit found failing: the roles' tags on exactly the failing hosts, then a re-audit",
        description="Without --apply: print the plan and run it with --check --diff (nothing changes). With --apply: "
        "run it (round-the-clock hosts one at a time, stopping at the first failure), re-audit the hosts it "
        "changed and print per control and host: fixed, still failing, newly failing. Exit 0: everything planned "
        "was fixed (or the check ran cleanly); 1: a playbook failed, or failures remain or appeared; 2: bad input, "
        "or refused outside --window.",
    )
    fix.add_argument("source", metavar="RUN_OR_DIR",
                     help="the audit to fix: its report directory or findings.json, or its run number or uuid in "
                          "the history")
    fix.add_argument("-i", "--inventory", type=Path, default=DEFAULT_INVENTORY,
                     help="the inventory that was audited (directory holding hospital.yml)")
    fix.add_argument("--controls", metavar="ID,...", help="fix only these controls")
    fix.add_argument("--hosts", metavar="PATTERN,...", help="fix only hosts matching these shell patterns")
    fix.add_argument("--apply", action="store_true", help="change the hosts (default: check mode, nothing changes)")
    fix.add_argument("--window", type=window, metavar="HH:MM-HH:MM",
                     help="maintenance window in the site's time zone (topology site.timezone, else UTC); --apply "
                          "outside it is refused")
    fix.add_argument("--pubkey", type=Path, metavar="KEY.pub",
                     help="check the report directory's signature first (required when it is signed)")
    fix.add_argument("--poam", type=Path, metavar="FILE",
                     help="also write an OSCAL plan of action and milestones of every open finding to FILE")
    # Not inside reports/: an audit signs its directory recursively, and would sign a stale fix with it.
    fix.add_argument("-o", "--out", type=Path, default=Path("reports-fix"),
                     help="directory for the re-audit's reports after --apply (default: reports-fix)")
    add_audit_options(fix, "waivers for the re-audit (default: those the audit applied)")
    add_history_options(fix)
    add_output_options(fix)
    fix.set_defaults(handler=cmd_fix)

    segmentation = commands.add_parser("segmentation", help="network segmentation tooling")
    segmentation_commands = subcommands(segmentation, "segmentation_command")
    verify_segmentation = segmentation_commands.add_parser(
        "verify",
        help="try every declared flow and a sample of undeclared ports between zones, from the hosts themselves",
        description="Exit 0: every attempt as the topology intends; 1: something unexpected; 3: hosts not probed.",
    )
    verify_segmentation.add_argument("-i", "--inventory", type=Path, default=DEFAULT_INVENTORY,
                                     help="inventory directory holding hospital.yml")
    verify_segmentation.add_argument("--timeout", type=seconds, default=2.0, help="seconds per attempt (default 2)")
    verify_segmentation.add_argument("--no-record", action="store_true",
                                     help="do not write the verdict on the hosts (the audit reads it from there)")
    verify_segmentation.add_argument("--json", type=Path, metavar="FILE", help="also write every attempt as JSON")
    verify_segmentation.add_argument("--vault-password-file", type=Path, help=VAULT_HELP)
    add_output_options(verify_segmentation, formats=False)
    verify_segmentation.set_defaults(handler=cmd_segmentation_verify)

    turn = commands.add_parser("turn", help="TURN relay tooling")
    turn_commands = subcommands(turn, "turn_command")
    credentials = turn_commands.add_parser(
        "credentials",
        help="mint time-limited TURN REST credentials for the telemedicine application (RTCIceServer JSON)",
        description="Reads the site's rtc_relay_auth_secret from the inventory's vault; prints credentials that "
        "stop working after --ttl seconds, never the secret.",
    )
    credentials.add_argument("--ttl", type=int, required=True, metavar="SECONDS", help="lifetime (60 to 86400)")
    credentials.add_argument("--user", default="", help="a name for the application's user (logged by the relay)")
    credentials.add_argument("-i", "--inventory", type=Path, action="append",
                             help="inventory directory holding hospital.yml; repeat it for each site or campus of a "
                             f"hospital group (default: {DEFAULT_INVENTORY})")
    credentials.add_argument("--site", help="the caller's site (site.name): its relays come first, then the others")
    credentials.add_argument("--relay", help="one relay host (default: every host with the turn_relay service)")
    credentials.add_argument("--vault-password-file", type=Path, help=VAULT_HELP)
    credentials.set_defaults(handler=cmd_turn_credentials)
    loadtest = turn_commands.add_parser(
        "loadtest",
        help="many media sessions through a relay at once: allocations/s, refusals, loss, RTT, relay CPU and memory",
        description="Mints short-lived credentials from the relay's vaulted secret, runs the TURN client's media "
        "engine on --from (credentials on stdin, never argv) against the media server's UDP echo, and samples "
        "coturn's CPU time and memory on the relay host meanwhile. Exit 0 when every session was allocated and "
        "held to the end, 1 otherwise, 2 for bad input.",
    )
    loadtest.add_argument("-i", "--inventory", type=Path, default=DEFAULT_INVENTORY,
                          help="inventory directory holding hospital.yml")
    loadtest.add_argument("--from", dest="vantage", required=True, metavar="HOST",
                          help="the inventory host the sessions start from (a patient's or clinician's network)")
    loadtest.add_argument("--sessions", type=int, required=True, metavar="N", help="sessions at once (1 to 500)")
    loadtest.add_argument("--duration", type=int, required=True, metavar="SECONDS",
                          help="seconds of media on each session (1 to 300)")
    loadtest.add_argument("--rate", type=int, default=50, help="packets a second per session (default: 50)")
    loadtest.add_argument("--transport", choices=("udp", "tcp", "tls"), default="udp",
                          help="how the sessions reach the relay (default: udp)")
    loadtest.add_argument("--one-user", action="store_true",
                          help="every session with the same TURN user (the relay's per-user quota applies)")
    loadtest.add_argument("--relay", help="the relay host (default: the one host with the turn_relay service)")
    loadtest.add_argument("--peer", metavar="HOST",
                          help="the echoing peer (default: the one host with the media_server service)")
    loadtest.add_argument("--peer-port", type=int, default=40001, help="the peer's UDP echo port (default: 40001)")
    loadtest.add_argument("--vault-password-file", type=Path, help=VAULT_HELP)
    loadtest.add_argument("--format", choices=FORMATS, default="text", help="text for people, or one JSON document")
    loadtest.set_defaults(handler=cmd_turn_loadtest)

    report = commands.add_parser(
        "report",
        help="render the reports of an earlier run again (another language, PDF, another directory)",
        description="Reads RESULTS/findings.json; writes report.<lang>.html, OSCAL, JUnit and CSV.",
    )
    report.add_argument("results", type=Path, metavar="RESULTS", help="results directory or its findings.json")
    report.add_argument("-o", "--out", type=Path, help="output directory (default: next to findings.json)")
    report.add_argument("--lang", choices=("en", "zh", "both"), default="both", help="HTML language (default both)")
    report.add_argument("--pdf", action="store_true", help="also print each HTML to PDF with headless Chromium")
    report.add_argument("--sign", type=Path, metavar="KEY", help="sign the output directory afterwards")
    report.add_argument("--kb-url", type=kb_base, metavar="URL", help=KB_URL_HELP)
    add_history_options(report)
    report.set_defaults(handler=cmd_report)

    drill = commands.add_parser(
        "drill", help="rehearse failures on the real hosts and keep the evidence: plan drills (应急预案演练), failovers"
    )
    drill_commands = subcommands(drill, "drill_command")
    drill_run = drill_commands.add_parser(
        "run",
        help="run a drill plan: break things, expect the alerts and the recovery, restore; publish the result",
        description="Steps run in order and each is printed with its measured seconds; a failed step ends the "
        "drill, and every break still in effect is undone at the end. The result goes to the evidence directory "
        "(signed with --sign) and the history. Exit 0: passed; 1: a step failed; 2: bad input (nothing was run); "
        "130: interrupted (restored and published all the same).",
    )
    drill_run.add_argument("plan", type=Path, metavar="PLAN.yml",
                           help="the drill plan (schema: drill-plan.schema.json)")
    add_drill_options(drill_run)
    drill_run.add_argument("--timeout", type=seconds, default=10, help="SSH connect timeout per host, s (default 10)")
    drill_run.set_defaults(handler=cmd_drill_run)

    failover = drill_commands.add_parser(
        "failover",
        help="fail the leading member of HOST's database pair and measure the RTO and RPO clients saw",
        description="Preflight (changes nothing when it fails): Patroni's view, pg_stat_replication on the leader "
        "(the other member streaming, lag below the RPO), the proxy on the service host. Then heartbeats every "
        "100 ms through the service address, the leader failed, the takeover awaited (up to the declared RTO), "
        "write unavailability and lost acknowledged heartbeats measured, the HIS probes read from the monitoring "
        "server, and the old leader brought back as standby. Exit 0: within the declared RTO and RPO and "
        "redundancy restored; 1: otherwise; 2: bad input, refused by the preflight or outside --window.",
    )
    failover.add_argument("host", metavar="HOST", help="a member of the database pair (either: the leader fails)")
    add_drill_options(failover)
    failover.add_argument("--method", choices=("stop", "isolate"), default="stop",
                          help="stop: stop Patroni on the leader; isolate: drop its PostgreSQL, Patroni and etcd "
                               "ports with an nftables table (SSH kept) (default: stop)")
    failover.add_argument("--window", type=window, metavar="HH:MM-HH:MM",
                          help="maintenance window in the site's time zone (topology site.timezone, else UTC); "
                               "a drill outside it is refused")
    failover.set_defaults(handler=cmd_drill_failover)

    keys = commands.add_parser("keys", help="Ed25519 keys for signing audit results")
    keys_commands = subcommands(keys, "keys_command")
    generate = keys_commands.add_parser("generate", help="write PREFIX.key (private, 0600) and PREFIX.pub")
    generate.add_argument("--out", required=True, metavar="PREFIX", help="e.g. keys/audit")
    generate.set_defaults(handler=cmd_keys_generate)

    verify = commands.add_parser(
        "verify",
        help="check a signed results directory against its MANIFEST.sha256 and signature",
        description="Exit 0: signature valid and no file altered, added or removed; 1: otherwise; 2: bad input.",
    )
    verify.add_argument("directory", type=Path, metavar="DIR", help="results directory, e.g. audit-results")
    verify.add_argument("--pubkey", type=Path, required=True, metavar="KEY", help="the signer's .pub file")
    verify.set_defaults(handler=cmd_verify)

    history = commands.add_parser("history", help="list recorded audit runs (or --drills), newest first")
    add_history_options(history, can_skip=False)
    history.add_argument("--site", help="only this site's runs")
    history.add_argument("--drills", action="store_true",
                         help="list recorded drills (failover and plan rehearsals) instead of audit runs")
    history.add_argument("--limit", type=count, default=20, metavar="N", help="at most N runs (default 20)")
    add_output_options(history)
    history.set_defaults(handler=cmd_history)
    diff = commands.add_parser(
        "diff",
        help="what changed between two recorded runs: new failures, fixes, hosts, scores",
        description="With no run ids: the latest run against the run before it of the same site; with one: that run "
        "against the run before it; with two: RUN_A (older) against RUN_B (newer).",
    )
    diff.add_argument("run_a", nargs="?", type=count, metavar="RUN_A", help="a run id (see medinfra history)")
    diff.add_argument("run_b", nargs="?", type=count, metavar="RUN_B", help="a later run id to compare RUN_A with")
    add_history_options(diff, can_skip=False)
    add_output_options(diff)
    diff.set_defaults(handler=cmd_diff)

    sla = commands.add_parser("sla", help="SLA reports from the monitoring server")
    sla_report = subcommands(sla, "sla_command").add_parser(
        "report",
        help="availability, outages, acknowledge/resolve times and RPO per SLA class for one month",
        description="Reads the month (in the site's time zone) from the monitoring server's Prometheus and "
        "Alertmanager over TLS (site CA, admin password from the vault) at the scrape interval (30 s). Exit 0: every "
        "class met its targets; 1: one missed; 2: bad input; 3: Prometheus or Alertmanager could not be read.",
    )
    sla_report.add_argument("-i", "--inventory", type=Path, default=DEFAULT_INVENTORY,
                            help="inventory directory (or its hospital.yml)")
    sla_report.add_argument("--month", required=True, metavar="YYYY-MM", help="the month to report, e.g. 2026-11")
    sla_report.add_argument("--format", choices=("html", "csv", "json"), default="html", help="default: html")
    sla_report.add_argument("--lang", choices=("zh", "en"), default="zh", help="language of the HTML (default: zh)")
    sla_report.add_argument("-o", "--out", type=Path, metavar="FILE",
                            help="write here (default: stdout); with --sign a directory of its own")
    sla_report.add_argument("--vault-password-file", type=Path, help=VAULT_HELP)
    sla_report.add_argument("--sign", type=Path, metavar="KEY",
                            help="Ed25519 private key: sign the report directory (medinfra verify DIR --pubkey)")
    sla_report.set_defaults(handler=cmd_sla_report)

    kb = commands.add_parser("kb", help="the site's offline, bilingual knowledge base (site handbook)")
    kb_build = subcommands(kb, "kb_command").add_parser(
        "build", help="write the static HTML handbook: hosts, zone matrix, runbooks of alerts and controls, rota")
    kb_build.add_argument("-i", "--inventory", type=Path, default=DEFAULT_INVENTORY,
                          help="inventory directory holding hospital.yml (and oncall.yml) (default: inventories/lab)")
    kb_build.add_argument("-o", "--out", type=Path, required=True, metavar="DIR",
                          help="directory to write; if it exists it must be empty or a knowledge base built before")
    kb_build.add_argument("--reports", type=Path, metavar="FILE_OR_DIR",
                          help="an audit's findings.json (or its directory) for the last audit result, instead of "
                               "the history's last run of the site")
    kb_build.add_argument("--vault-password-file", type=Path, help=VAULT_HELP)
    add_history_options(kb_build)
    kb_build.set_defaults(handler=cmd_kb_build)

    lab = commands.add_parser("lab", help="the podman lab hospital")
    lab_commands = subcommands(lab, "lab_command")
    image = lab_commands.add_parser("image", help="build the lab image if needed and print its tag")
    image.add_argument(
        "--ee-base", action="store_true", help="the base image of the execution environment (`make ee`) instead"
    )
    image.set_defaults(handler=cmd_lab_image)
    for name, handler, text in (
        ("up", cmd_lab_up, "create or repair the lab (idempotent) and print time to ready"),
        ("down", cmd_lab_down, "remove the lab's containers, networks and connection files"),
        ("status", cmd_lab_status, "hosts by zone, container state and SSH reachability"),
        ("ssh", cmd_lab_ssh, "open SSH to a lab host (or run a command there)"),
    ):
        sub = lab_commands.add_parser(name, help=text)
        sub.add_argument(
            "-i",
            "--inventory",
            type=Path,
            default=DEFAULT_INVENTORY,
            help="inventory directory holding hospital.yml (default: inventories/lab)",
        )
        if name == "ssh":
            sub.add_argument("host", help="the lab host's name in hospital.yml")
            sub.add_argument("command", nargs=argparse.REMAINDER, help="a command to run there (default: a shell)")
        sub.set_defaults(handler=handler)
    add_lab_netem(lab_commands)

    oncall = commands.add_parser("oncall", help="the on-call rota (oncall.yml beside hospital.yml)")
    oncall_commands = subcommands(oncall, "oncall_command")
    who = oncall_commands.add_parser(
        "who", help="who holds each on-call role at a time, and how they are reached (never a webhook URL)",
        description="Validates oncall.yml (exit 2 with located problems) and lists each role's holder, their "
        "channel kinds and shift, the roles nobody holds then, and the escalation steps.",
    )
    who.add_argument("-i", "--inventory", type=Path, default=DEFAULT_INVENTORY,
                     help="inventory directory holding hospital.yml and oncall.yml (default: inventories/lab)")
    who.add_argument("--at", metavar="TIME",
                     help="ISO time, in the site's time zone unless it names one (default: now)")
    who.add_argument("--format", choices=FORMATS, default="text",
                     help="text for people, or one JSON document (medinfra-oncall-who/1) on stdout (default: text)")
    who.set_defaults(handler=cmd_oncall_who)

    completion = commands.add_parser(
        "completion",
        help="print a shell completion script",
        description="bash: eval \"$(medinfra completion bash)\" in ~/.bashrc; "
        "zsh: source <(medinfra completion zsh) in ~/.zshrc.",
    )
    completion.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    completion.set_defaults(handler=cmd_completion)
    return parser


def add_lab_netem(lab_commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    netem = lab_commands.add_parser(
        "netem",
        help="impair a lab zone's network: delay, jitter, loss (or --clear; alone: what is in force)",
        description="Impairs what the lab's zone firewall sends into ZONE (the egress of its interface there), as "
        "netem on that interface would: a round trip from the zone through the firewall meets the delay and the "
        "loss once. Kernel netem where the kernel has it; otherwise an nftables table of its own (inet "
        "medinfra_netem_ZONE: loss) and an NFQUEUE delayer run in the firewall container (unit "
        "medinfra-netem-ZONE.service: delay, jitter drawn per packet from a normal distribution, packets may be "
        "reordered, as with netem). New settings replace the old ones whole (an option left out is 0). The role "
        "network_segmentation replaces only its own table inet medinfra and leaves this one (it warns about it); a "
        "restart of Debian's nftables.service (flush ruleset) removes it: run the command again. Exit 1 when the "
        "delayer is not running.",
    )
    netem.add_argument("zone", help="the zone's name in hospital.yml")
    netem.add_argument("-i", "--inventory", type=Path, default=DEFAULT_INVENTORY,
                       help="inventory directory holding hospital.yml (default: inventories/lab)")
    netem.add_argument("--delay", type=netem_duration, metavar="TIME",
                       help="added delay, e.g. 200ms or 1s, at most 10s (default: 0)")
    netem.add_argument("--jitter", type=netem_duration, metavar="TIME",
                       help="standard deviation of the delay, at most the delay (default: 0)")
    netem.add_argument("--loss", type=netem_loss, metavar="PERCENT",
                       help="share of packets dropped, e.g. 5%% or 0.5, 0-100 (default: 0)")
    netem.add_argument("--clear", action="store_true", help="remove every impairment of the zone")
    netem.set_defaults(handler=cmd_lab_netem)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from medinfra.lab.podman import LabError

    try:
        code: int = args.handler(args)
    except UserInputError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    except (PrerequisiteError, LabError) as exc:
        print(f"medinfra: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as other command-line tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code


if __name__ == "__main__":
    sys.exit(main())
