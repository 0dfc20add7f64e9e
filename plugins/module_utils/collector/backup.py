"""Backup sets: their configuration, timers and the state the backup runner leaves."""

from __future__ import annotations

import glob
import json
import os
import time
from collections.abc import Mapping

from .base import Json, at_root, file_facts, iso_utc, on_host, read_text, unavailable
from .network import local_addresses

BACKUP_JOBS = ("run", "check", "drill")


def backup_moment(state: Mapping[str, Json], metric: str) -> str | None:
    value = state.get(f"medinfra_backup_{metric}")
    return iso_utc(float(value)) if isinstance(value, int | float) and value > 0 else None


def backup_outcome(state: Mapping[str, Json], metric: str) -> bool | None:
    value = state.get(f"medinfra_backup_{metric}")
    return value == 1 if isinstance(value, int | float) else None


def backup_set_facts(
    document: Mapping[str, Json], state: Mapping[str, Json], units: Mapping[str, Json], addresses: list[str],
    now: float,
) -> Json:
    """One backup set as its role wrote it and its runner last recorded it (SET.json in medinfra_paths.backup_state)."""
    name = str(document.get("name", ""))
    server_address = str(document.get("server_address", ""))
    last_success = state.get("medinfra_backup_last_success_timestamp_seconds")
    age_minutes = round((now - float(last_success)) / 60, 1) if isinstance(last_success, int | float) else None
    rpo = document.get("rpo_minutes")
    rto = document.get("rto_minutes")
    restore = state.get("medinfra_backup_restore_drill_duration_seconds")
    restore_seconds = float(restore) if isinstance(restore, int | float) else None
    return {
        "name": name,
        "paths": document.get("paths", []),
        "databases": document.get("databases", []),
        "repository": document.get("repository"),
        "server": document.get("server"),
        "server_address": server_address,
        # Off the host: the repository's server is none of this host's own addresses.
        "off_host": bool(server_address) and server_address not in addresses and server_address != "localhost",
        "rpo_minutes": rpo,
        "last_run_success": backup_outcome(state, "last_run_success"),
        "last_success": backup_moment(state, "last_success_timestamp_seconds"),
        "last_success_age_minutes": age_minutes,
        "within_rpo": age_minutes is not None and isinstance(rpo, int | float) and age_minutes <= rpo,
        "check_success": backup_outcome(state, "check_success"),
        "last_check": backup_moment(state, "check_timestamp_seconds"),
        "drill_success": backup_outcome(state, "restore_drill_success"),
        "last_drill": backup_moment(state, "restore_drill_timestamp_seconds"),
        # The RTO a restore from backup achieved (the last passing drill's duration) beside the one declared.
        "rto_minutes": rto,
        "drill_restore_seconds": restore_seconds,
        "drill_within_rto": None if restore_seconds is None or not isinstance(rto, int | float)
        else restore_seconds <= rto * 60,
        "timers": {job: units.get(f"medinfra-backup-{job}@{name}.timer", {"enabled": "absent", "active": "absent"})
                   for job in BACKUP_JOBS},
    }


def collect_backup(services: Json, network: Json, directory: str, state_directory: str,
                   now: float | None = None) -> Json:
    """The host's backup sets (role backup) with their last outcomes, and its repository password file."""
    units = services.get("units", {}) if isinstance(services, dict) else {}
    addresses = local_addresses(network)
    moment = time.time() if now is None else now
    sets = []
    for path in sorted(on_host(found) for found in glob.glob(at_root(f"{directory}/sets/*.json"))):
        try:
            document = json.loads(read_text(at_root(path)) or "")
        except ValueError:
            sets.append({"name": os.path.basename(path)[:-5], **unavailable(f"{path} is not JSON")})
            continue
        try:
            state = json.loads(read_text(at_root(f"{state_directory}/{document.get('name')}.json")) or "{}")
        except ValueError:
            state = {}
        sets.append(backup_set_facts(document, state, units, addresses, moment))
    return {"sets": sets, "password_file": file_facts(f"{directory}/repository-password")}
