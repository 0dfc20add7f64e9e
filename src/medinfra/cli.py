"""The `medinfra` command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from medinfra import __version__
from medinfra.paths import CATALOG_DIR
from medinfra.problems import PrerequisiteError, UserInputError

DEFAULT_INVENTORY = Path("inventories/lab")
EXIT_USER_ERROR = 2


def topology_file(inventory: Path) -> Path:
    """Accept an inventory directory or its hospital.yml."""
    return inventory / "hospital.yml" if inventory.is_dir() else inventory


def say(message: str) -> None:
    print(message, flush=True)


def cmd_topology_validate(args: argparse.Namespace) -> int:
    from medinfra.topology.load import load_topology

    failed = False
    for path in args.paths:
        try:
            topology = load_topology(topology_file(path))
        except UserInputError as exc:
            failed = True
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            print(f"{path}: {len(exc.problems)} problem(s)", file=sys.stderr)
            continue
        print(
            f"{topology.source}: valid: site {topology.site.name!r}, {len(topology.zones)} zones, "
            f"{len(topology.hosts)} hosts, {len(topology.flows)} flows"
        )
    return EXIT_USER_ERROR if failed else 0


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


def cmd_lab_image(_args: argparse.Namespace) -> int:
    from medinfra.lab.image import ensure_image
    from medinfra.lab.prereq import check_lab_prerequisites

    check_lab_prerequisites()
    # Progress to stderr: stdout is only the tag, for scripts (`export MEDINFRA_LAB_IMAGE=$(medinfra lab image)`).
    print(ensure_image(lambda message: print(message, file=sys.stderr, flush=True)))
    return 0


def cmd_lab_ssh(args: argparse.Namespace) -> int:
    from medinfra.lab.lab import ssh

    ssh(topology_file(args.inventory), args.host, args.command)
    return 0


def cmd_roles_doc(args: argparse.Namespace) -> int:
    from medinfra.roledoc import render_readme

    for role in sorted(p for p in args.roles_dir.iterdir() if (p / "meta" / "argument_specs.yml").exists()):
        readme = role / "README.md"
        text = render_readme(role)
        if readme.read_text(encoding="utf-8") != text:
            readme.write_text(text, encoding="utf-8")
            print(f"updated {readme}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    # First: pyinfra's transport patches the standard library for gevent before sockets exist.
    from medinfra.audit.pyinfra_transport import collect_all, quiet_hub
    from medinfra.audit.results import AuditRun, HostResult, exit_code, judge, summary_text, write_results
    from medinfra.audit.targets import load_targets
    from medinfra.collector import collector_source
    from medinfra.compliance.catalog import load_catalog, load_waivers

    catalog = load_catalog(args.catalog)
    waivers = load_waivers(args.waivers, catalog) if args.waivers else ()
    with quiet_hub():
        targets = load_targets(args.inventory, args.limit, args.vault_password_file)
    started = datetime.now(UTC)
    clock = time.monotonic()

    def progress(result: HostResult, done: int, total: int) -> None:
        if not args.quiet:
            note = f": {result.reason}" if result.reason else ""
            print(f"[{done:>{len(str(total))}}/{total}] {result.host} {result.status} ({result.seconds:.1f} s){note}",
                  file=sys.stderr, flush=True)

    results = collect_all(targets, collector_source(), connect_timeout=args.timeout, parallel=args.forks,
                          progress=progress)
    views = {target.name: target.inventory for target in targets}
    findings = judge(results, views, catalog, waivers, datetime.now(UTC))
    run = AuditRun("pyinfra", str(args.inventory), started, results, findings, catalog, waivers,
                   time.monotonic() - clock)
    path = write_results(run, args.out)
    print(summary_text(run))
    print(f"findings: {path}")
    return exit_code(run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medinfra", description="Hospital infrastructure as code and compliance.")
    parser.add_argument("--version", action="version", version=f"medinfra {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    topology = commands.add_parser("topology", help="work with hospital.yml topologies")
    topology_commands = topology.add_subparsers(dest="topology_command", required=True)
    validate = topology_commands.add_parser("validate", help="check topologies; exit 2 on any problem")
    validate.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="hospital.yml or its inventory directory")
    validate.set_defaults(handler=cmd_topology_validate)

    roles = commands.add_parser("roles", help="role tooling")
    roles_commands = roles.add_subparsers(dest="roles_command", required=True)
    doc = roles_commands.add_parser("doc", help="regenerate each role README's variable table from argument_specs")
    doc.add_argument("--roles-dir", type=Path, default=Path("roles"))
    doc.set_defaults(handler=cmd_roles_doc)

    audit = commands.add_parser(
        "audit",
        help="collect evidence from every host over SSH (pyinfra) and judge it against the control catalog",
        description="Exit 0: all pass or waived; 1: failures or errors; 2: bad input; 3: some hosts not audited.",
    )
    audit.add_argument("-i", "--inventory", type=Path, default=DEFAULT_INVENTORY,
                       help="Ansible inventory (directory or file), read as ansible-playbook would")
    audit.add_argument("-l", "--limit", help="Ansible host pattern to audit a subset")
    audit.add_argument("-o", "--out", type=Path, default=Path("audit-results"),
                       help="directory for findings.json and evidence/ (default: audit-results)")
    audit.add_argument("--waivers", type=Path, help="YAML file of accepted exceptions (compliance/schemas/waivers)")
    audit.add_argument("--catalog", type=Path, default=CATALOG_DIR, help="catalog root with controls/ and frameworks/")
    audit.add_argument("--vault-password-file", type=Path, help="for inventories with vaulted connection variables")
    audit.add_argument("--timeout", type=float, default=10, help="SSH connect timeout per host, seconds (default 10)")
    audit.add_argument("--forks", type=int, default=100, help="hosts audited at once (default 100)")
    audit.add_argument("-q", "--quiet", action="store_true", help="no per-host progress on stderr")
    audit.set_defaults(handler=cmd_audit)

    lab = commands.add_parser("lab", help="the podman lab hospital")
    lab_commands = lab.add_subparsers(dest="lab_command", required=True)
    image = lab_commands.add_parser("image", help="build the lab image if needed and print its tag")
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
            sub.add_argument("host")
            sub.add_argument("command", nargs=argparse.REMAINDER)
        sub.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from medinfra.lab.podman import LabError

    try:
        code: int = args.handler(args)
    except UserInputError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USER_ERROR
    except (PrerequisiteError, LabError) as exc:
        print(f"medinfra: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
