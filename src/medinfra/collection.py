"""The Ansible collection medinfra.hospital (roles, playbooks, plugins) where Ansible itself finds it.

Roles are collection content, not Python package data: they are found through Ansible's configured collections
paths (ansible.cfg's `collections_path`, ANSIBLE_COLLECTIONS_PATH, ~/.ansible/collections, ...), with the
collection finder Ansible's own commands install, so medinfra reads the same roles a playbook would run.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from medinfra.problems import PrerequisiteError

COLLECTION = "medinfra.hospital"


def ansible_collection_paths() -> list[str]:
    """The paths Ansible searches for collections, with its collection finder installed (once, as its commands
    do), so that `medinfra.hospital.*` plugins and modules load from the installed collection."""
    from ansible.plugins.loader import init_plugin_loader
    from ansible.utils.collection_loader import AnsibleCollectionConfig

    if AnsibleCollectionConfig.collection_finder is None:
        init_plugin_loader()
    return [str(path) for path in AnsibleCollectionConfig.collection_paths]


def collection_directory() -> Path:
    """The installed collection's root (galaxy.yml or MANIFEST.json, roles/, playbooks/, plugins/)."""
    from ansible import constants

    ansible_collection_paths()
    try:
        package = importlib.import_module(f"ansible_collections.{COLLECTION}")
    except ImportError:
        package = None
    location = getattr(package, "__file__", None)  # the finder gives a collection a synthetic file in its root
    if location is None:
        raise PrerequisiteError(
            f"the Ansible collection {COLLECTION} is not installed in Ansible's collections paths "
            f"({':'.join(constants.COLLECTIONS_PATHS) or 'none configured'}) nor beside Python's packages: install "
            "it with `ansible-galaxy collection install`, or set ANSIBLE_COLLECTIONS_PATH (or collections_path in "
            "ansible.cfg) to the directory that holds its ansible_collections/"
        )
    return Path(location).parent
