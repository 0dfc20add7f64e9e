"""Action plugin: judge the evidence every host of the play returned and write medinfra findings.

Runs on the controller (run_once), after `medinfra.hospital.evidence` registered each host's result, and
ends in the same code as `medinfra audit` (medinfra.audit.results), so both transports agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.medinfra.hospital.plugins.plugin_utils.medinfra_package import require_medinfra

try:
    from medinfra.audit import received
    from medinfra.audit.results import AuditRun, HostResult, exit_code, interface_states, judge_run, summary_text
    from medinfra.audit.targets import INVENTORY_VIEW, SECRET_VARIABLES, host_secrets, inventory_view
    from medinfra.compliance.catalog import load_catalog, load_waivers
    from medinfra.history.store import default_history_location
    from medinfra.package_data import CATALOG_DIR
    from medinfra.problems import PrerequisiteError, UserInputError
    from medinfra.report.publish import FINDINGS_FILE, publish
    from medinfra.signing import load_private_key
except ImportError as exc:
    MEDINFRA_IMPORT_ERROR: ImportError | None = exc
else:
    MEDINFRA_IMPORT_ERROR = None


def plain(value: Any) -> Any:
    """Ansible's tagged values as plain JSON data."""
    return json.loads(json.dumps(value, default=str))


def host_result(name: str, registered: Any, secrets: tuple[str, ...]) -> HostResult:
    """What `medinfra.hospital.evidence` registered for one host, made safe by the same code as pyinfra's transport."""
    if not isinstance(registered, dict) or not registered:
        reason = "no evidence registered (host left the play before collection)"
        return received.host_result(name, "error", reason, None, 0.0, secrets)
    if registered.get("unreachable"):
        return received.host_result(name, "unreachable", str(registered.get("msg", "unreachable")), None, 0.0, secrets)
    evidence = registered.get("evidence")
    if registered.get("failed") or not isinstance(evidence, dict):
        return received.host_result(name, "error", str(registered.get("msg", "collector failed")), None, 0.0, secrets)
    seconds = evidence.get("collection_seconds")
    seconds = float(seconds) if isinstance(seconds, int | float) and not isinstance(seconds, bool) else 0.0
    return received.host_result(name, "audited", "", evidence, seconds, secrets)


def collected_at(evidence: Mapping[str, Any]) -> datetime | None:
    """When a host says it collected its evidence; None when it does not say so in ISO 8601 (UTC)."""
    try:
        moment = datetime.fromisoformat(str(evidence.get("collected_at")).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.utcoffset() is not None else None


def started_at(results: list[HostResult], now: datetime) -> datetime:
    times = [collected_at(r.evidence) for r in results if r.evidence is not None]
    return min((t for t in times if t is not None), default=now)


class ActionModule(ActionBase):  # type: ignore[misc]
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("out", "catalog", "waivers", "evidence_var", "inventory", "history", "sign"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        require_medinfra("medinfra.hospital.findings", MEDINFRA_IMPORT_ERROR)
        result: dict[str, Any] = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        evidence_var = args.get("evidence_var", "medinfra_audit_result")
        try:
            catalog = load_catalog(Path(args.get("catalog") or CATALOG_DIR))
            waivers = load_waivers(Path(args["waivers"]), catalog) if args.get("waivers") else ()
            sign_key = Path(args["sign"]) if args.get("sign") else None
            if sign_key is not None:
                load_private_key(sign_key)
        except UserInputError as exc:
            raise AnsibleActionFail("\n".join(str(p) for p in exc.problems)) from None
        hostvars = task_vars["hostvars"]
        names = list(task_vars.get("ansible_play_hosts_all", []))
        results = [
            host_result(
                name,
                plain(hostvars[name].get(evidence_var)),
                host_secrets(plain({v: hostvars[name].get(v) for v in SECRET_VARIABLES})),
            )
            for name in names
        ]
        views = {
            name: inventory_view(plain({v: hostvars[name].get(v) for v in INVENTORY_VIEW.values()})) for name in names
        }
        now = datetime.now(UTC)
        judged = judge_run(results, views, catalog, waivers, now)
        begun = started_at(results, now)
        run = AuditRun(
            "ansible",
            str(args.get("inventory") or task_vars.get("inventory_dir", "")),
            begun,
            results,
            judged.findings,
            catalog,
            waivers,
            (now - begun).total_seconds(),
            views=views,
            interfaces=interface_states(judged),
        )
        # history: a path or postgresql:// URL; an empty string keeps this run out of the history.
        history = args.get("history", default_history_location()) or None
        try:
            published = publish(run, Path(args.get("out", "reports")), history, sign_key)
        except (UserInputError, PrerequisiteError) as exc:
            raise AnsibleActionFail(str(exc)) from None
        text = summary_text(run)
        result.update(
            changed=False,
            findings=str(published.directory / FINDINGS_FILE),
            files=[str(path) for path in published.files],
            exit_code=exit_code(run, recorded=published.history_error is None),
            summary=text.splitlines(),
        )
        if published.history_error is not None:
            # The reports are complete; only the history lacks this run. Said, not failed: the audit was done.
            result["history_error"] = published.history_error
            result["warnings"] = [f"this run was NOT recorded in the history: {published.history_error}"]
        return result
