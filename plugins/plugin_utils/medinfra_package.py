"""The medinfra Python package, which the controller plugins build on: a clear error when it is missing.

The plugins import medinfra inside try/except ImportError, the way collections treat a missing library: Ansible
can then still list and document them (ansible-doc), and using one names what to install instead of a traceback.
"""

from __future__ import annotations

from ansible.errors import AnsibleError

INSTALL_HINT = "pip install medinfra"


def require_medinfra(plugin: str, import_error: ImportError | None) -> None:
    """Raise AnsibleError naming the plugin and the install command when its import of medinfra failed."""
    if import_error is not None:
        raise AnsibleError(
            f"{plugin} needs the medinfra Python package on the controller ({INSTALL_HINT}): {import_error}"
        ) from import_error
