"""The whole document: every section, each recorded as unavailable with a reason when it breaks."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable, Mapping

from .accounts import collect_accounts, collect_login_defs, collect_sudo
from .audit import collect_auditd
from .backup import collect_backup
from .base import COLLECTOR_VERSION, EVIDENCE_SCHEMA, Json, iso_utc, safe
from .database import collect_database
from .firewall import collect_nftables
from .host import (
    collect_aide,
    collect_banner,
    collect_chrony,
    collect_files,
    collect_host,
    collect_kernel_modules,
    collect_limits,
    collect_mounts,
    collect_segmentation,
    collect_shell,
    collect_sysctl,
)
from .logs import collect_logging
from .monitoring import collect_monitoring, probed_interfaces
from .network import collect_network
from .pam import collect_pam
from .paths import path_problems
from .pki import collect_pki, with_pki_placement
from .services import collect_services, collect_sockets
from .ssh import collect_sshd
from .tls import collect_tls
from .turn import collect_turn, with_turn_tls_endpoints
from .updates import collect_packages, collect_updates, installed_packages


def cpu_seconds() -> float:
    """CPU seconds of this process since it started (interpreter and program load included) and of the commands
    it ran and waited for: what an audit costs the host, besides its SSH session."""
    own, commands = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + commands.ru_utime + commands.ru_stime


def collect(paths: Mapping[str, str]) -> dict[str, Json]:
    """The evidence document; `paths` is the host's `medinfra_paths` (ValueError when it is not usable)."""
    problems = path_problems(paths)
    if problems:
        raise ValueError("medinfra_paths " + "; ".join(problems))
    started = time.monotonic()
    installed = safe(installed_packages)
    if not isinstance(installed, dict):
        installed = {}
    independent: dict[str, Callable[[], Json]] = {
        "host": collect_host,
        "sshd": collect_sshd,
        "sysctl": collect_sysctl,
        "auditd": collect_auditd,
        "accounts": collect_accounts,
        "login_defs": collect_login_defs,
        "sudo": collect_sudo,
        "pam": collect_pam,
        "sockets": collect_sockets,
        "nftables": collect_nftables,
        "network": collect_network,
        "segmentation": lambda: collect_segmentation(paths["state"]),
        "services": collect_services,
        "packages": lambda: collect_packages(installed),
        "updates": lambda: collect_updates(installed),
        "files": collect_files,
        "mounts": collect_mounts,
        "kernel_modules": collect_kernel_modules,
        "aide": lambda: collect_aide(installed),
        "chrony": lambda: collect_chrony(installed),
        "logging": collect_logging,
        "limits": collect_limits,
        "shell": collect_shell,
        "banner": collect_banner,
        "pki": lambda: collect_pki(paths["pki"]),
        "monitoring": collect_monitoring,
        "turn": collect_turn,
        "database": lambda: collect_database(paths["state"]),
    }
    # One after another: on a host audited with a hundred others, CPU is what is scarce, not time.
    facts = {name: safe(section) for name, section in independent.items()}
    facts["tls"] = safe(lambda: collect_tls(facts["sockets"]))
    facts["turn"] = safe(lambda: with_turn_tls_endpoints(facts["turn"], facts["tls"]))
    facts["monitoring"], facts["turn"] = with_pki_placement(facts["monitoring"], facts["turn"], paths["pki"])
    prometheus = facts["monitoring"].get("prometheus") if isinstance(facts["monitoring"], dict) else None
    if isinstance(prometheus, dict) and prometheus.get("running"):
        prometheus["interfaces"] = safe(lambda: probed_interfaces(prometheus, paths["pki"]))
    facts["backup"] = safe(
        lambda: collect_backup(facts["services"], facts["network"], paths["backup_config"], paths["backup_state"])
    )
    return {
        "schema": EVIDENCE_SCHEMA,
        "collector_version": COLLECTOR_VERSION,
        "collected_at": iso_utc(time.time()),
        "collection_seconds": round(time.monotonic() - started, 3),
        "collection_cpu_seconds": round(cpu_seconds(), 3),
        "running_as_root": os.geteuid() == 0,
        "facts": facts,
    }


def main(paths: Mapping[str, str]) -> None:
    """Print the document: how `medinfra audit` runs the bundled collector (`python3 -`) on a host, with the
    host's paths written into the program (`medinfra.collector.collector_program`)."""
    json.dump(collect(paths), sys.stdout, sort_keys=True, separators=(",", ":"))
    sys.stdout.write("\n")
