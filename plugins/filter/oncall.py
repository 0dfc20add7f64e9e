"""Filter for role monitoring_server (logic in medinfra.oncall.alertmanager): the on-call rota as Alertmanager
routes, receivers and time intervals.

Documented by the sidecar file oncall_alertmanager.yml (ansible-doc -t filter medinfra.hospital.oncall_alertmanager).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.medinfra.hospital.plugins.plugin_utils.medinfra_package import require_medinfra

try:
    from medinfra.oncall.alertmanager import compile_alertmanager
    from medinfra.oncall.model import OnCall
except ImportError as exc:
    MEDINFRA_IMPORT_ERROR: ImportError | None = exc
else:
    MEDINFRA_IMPORT_ERROR = None


def oncall_alertmanager(
    oncall: Mapping[str, Any],
    now: str,
    routes: Mapping[str, str],
    urls: Mapping[str, str],
    relay_url: str,
    email: bool,
    weeks: int = 26,
) -> dict[str, Any]:
    require_medinfra("medinfra.hospital.oncall_alertmanager", MEDINFRA_IMPORT_ERROR)
    try:
        model = OnCall.from_dict(oncall)
        moment = datetime.fromisoformat(str(now))
        if moment.tzinfo is None:  # Ansible's now(utc=true) is naive
            moment = moment.replace(tzinfo=UTC)
        compiled = compile_alertmanager(
            model, moment, dict(routes), dict(urls or {}), str(relay_url), bool(email), int(weeks)
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"medinfra.hospital.oncall_alertmanager: {exc!r}") from None
    return compiled.to_dict()


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"oncall_alertmanager": oncall_alertmanager}
