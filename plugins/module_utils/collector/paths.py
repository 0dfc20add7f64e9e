"""The host paths medinfra's roles, host programs and the collector share: one map, `medinfra_paths`.

HOST_PATHS is the site default, which the inventory plugin publishes on group `all` (so a site's group_vars
replace it, as a whole map). The collector has no defaults of its own: both transports hand it the host's map.
"""

from __future__ import annotations

import os
import re
from types import MappingProxyType

HOST_PATHS = MappingProxyType({
    "pki": "/etc/medinfra/pki",  # the site CA and this host's certificates and keys (role pki)
    "state": "/var/lib/medinfra",  # medinfra's records on the host (the segmentation verdict)
    "backup_config": "/etc/medinfra/backup",  # backup sets, repository password, SSH key (role backup)
    "backup_state": "/var/lib/medinfra-backup",  # each backup set's last outcomes (the backup runner)
})

# Roles write these paths into systemd units (space-separated ReadWritePaths), coturn and audit rules:
# plain absolute paths only, no spaces, quotes or line breaks, bounded.
HOST_PATH = re.compile(r"(/[A-Za-z0-9._@+-]+)+")

HOST_PATH_LENGTH = 255


def path_problems(paths: object) -> list[str]:
    """What is wrong with a `medinfra_paths` map; empty when it is usable."""
    if not isinstance(paths, dict):
        return [f"must be a mapping of {sorted(HOST_PATHS)} to absolute paths, not {type(paths).__name__}"]
    problems = []
    missing = sorted(set(HOST_PATHS) - set(paths))
    if missing:
        problems.append(f"lacks {missing} (a site's map replaces the default whole: give every key)")
    unknown = sorted(str(key) for key in set(paths) - set(HOST_PATHS))
    if unknown:
        problems.append(f"has unknown keys {unknown}; known: {sorted(HOST_PATHS)}")
    for key in sorted(set(HOST_PATHS) & set(paths)):
        value = paths[key]
        if not (isinstance(value, str) and len(value) <= HOST_PATH_LENGTH and HOST_PATH.fullmatch(value)
                and os.path.normpath(value) == value):
            shown = repr(value)[:HOST_PATH_LENGTH]
            problems.append(f"{key}: {shown} is not a plain absolute path (letters, digits, '._@+-', "
                            f"no '.' or '..' parts, at most {HOST_PATH_LENGTH} characters)")
    return problems
