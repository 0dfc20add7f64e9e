"""Files a lab keeps beside its topology: SSH key, known_hosts, ssh_config, Ansible connection vars, and
the lab's secrets (vault-encrypted) with their vault password.

They live in ``<inventory>/.lab/`` (hidden, so Ansible's directory loader skips it; the site CA too) and
``<inventory>/group_vars/all/lab_{connection,secrets}.yml`` with ``<inventory>/host_vars/HOST/lab_secrets.yml`` (the
secrets each host has its own of); all are git-ignored and removed by `lab down`.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from medinfra.lab.plan import LabPlan
from medinfra.lab.podman import LabError
from medinfra.safe_output import PRIVATE_MODE, write_file

if TYPE_CHECKING:
    from ansible.parsing.vault import VaultLib

LAB_USER = "medinfra"
# What the roles take from the vault; the lab makes a random value for each, once.
LAB_SECRETS = (
    "pki_ca_passphrase",
    "monitoring_agent_scrape_password",
    "monitoring_server_admin_password",
    "monitoring_server_internal_password",
    "rtc_relay_auth_secret",
    "database_ha_superuser_password",
    "database_ha_replication_password",
    "database_ha_rest_password",
    "database_ha_drill_password",
)
# What the roles take from the vault per host (host_vars/HOST/lab_secrets.yml): each backup client's repository.
LAB_HOST_SECRETS = ("backup_repository_password",)
SECRETS_HEADER = (
    "---\n# Written by `medinfra lab up`: random secrets of this lab, encrypted with the vault password in\n"
    "# .lab/vault-password. Removed by `lab down`. Not committed. A real site keeps these in its own vault.\n"
)


@dataclass(frozen=True)
class LabState:
    inventory_dir: Path

    @property
    def directory(self) -> Path:
        return self.inventory_dir / ".lab"

    @property
    def private_key(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.directory / "ssh_config"

    @property
    def connection_vars(self) -> Path:
        return self.inventory_dir / "group_vars" / "all" / "lab_connection.yml"

    @property
    def secret_vars(self) -> Path:
        return self.inventory_dir / "group_vars" / "all" / "lab_secrets.yml"

    def host_secret_vars(self, host: str) -> Path:
        return self.inventory_dir / "host_vars" / host / "lab_secrets.yml"

    @property
    def vault_password_file(self) -> Path:
        """Give it to Ansible as ``--vault-password-file`` (or ANSIBLE_VAULT_PASSWORD_FILE)."""
        return self.directory / "vault-password"

    @property
    def ca_directory(self) -> Path:
        return self.directory / "pki"

    def ensure_secrets(self, hosts: Iterable[str]) -> None:
        """A vault password and a vault-encrypted value for every name in LAB_SECRETS, and in LAB_HOST_SECRETS for
        each host, that has none yet.

        Existing values are kept: the CA key is encrypted with the passphrase made the first time.
        """
        from ansible.parsing.vault import VaultLib, VaultSecret  # Ansible is slow to import; only lab up needs it

        self.directory.mkdir(mode=0o700, exist_ok=True)
        if not self.vault_password_file.exists():
            write_file(self.vault_password_file, secrets.token_urlsafe(32) + "\n", PRIVATE_MODE)
        vault = VaultLib([("default", VaultSecret(self.vault_password_file.read_text().strip().encode()))])
        _ensure_vaulted(self.secret_vars, LAB_SECRETS, vault)
        for host in hosts:
            _ensure_vaulted(self.host_secret_vars(host), LAB_HOST_SECRETS, vault)

    def ensure_key(self, site: str) -> str:
        """Create the lab's SSH key once (0600, never committed); return the public key."""
        self.directory.mkdir(mode=0o700, exist_ok=True)
        if not self.private_key.exists():
            result = subprocess.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    f"medinfra-lab-{site}",
                    "-f",
                    str(self.private_key),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise LabError(f"ssh-keygen failed: {result.stderr.strip()}")
        return self.private_key.with_suffix(".pub").read_text().strip()

    def write(self, plan: LabPlan, host_keys: dict[str, str]) -> None:
        key = self.private_key.resolve()
        known = self.known_hosts.resolve()
        by_host = {c.host: c for c in plan.containers}
        write_file(
            self.known_hosts,
            "".join(f"{name},{by_host[name].address} {host_key}\n" for name, host_key in sorted(host_keys.items())),
            PRIVATE_MODE,
        )
        blocks = [f"Host {c.host}\n  HostName {c.address}\n" for c in plan.containers]
        write_file(
            self.ssh_config,
            "".join(blocks)
            + (
                "Host *\n"
                f"  User {LAB_USER}\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
                f"  UserKnownHostsFile {known}\n  StrictHostKeyChecking yes\n  BatchMode yes\n"
                "  ConnectTimeout 10\n"
            ),
            PRIVATE_MODE,
        )
        controllers = "".join(f"  {n.zone}: {n.controller_address}\n" for n in plan.networks)
        self.connection_vars.parent.mkdir(parents=True, exist_ok=True)
        write_file(
            self.connection_vars,
            (
                "---\n"
                f"# Written by `medinfra lab up` for lab {plan.site!r}; removed by `lab down`. Not committed.\n"
                f"ansible_user: {LAB_USER}\n"
                "ansible_become: true\n"
                f"ansible_ssh_private_key_file: {key}\n"
                f"ansible_ssh_common_args: >-\n  -o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes"
                " -o IdentitiesOnly=yes\n"
                "# The controller reaches each zone from the first address of the zone's bridge.\n"
                f"medinfra_lab_controller_addresses:\n{controllers}"
                "# ... so the host firewalls let it in over SSH (role network_segmentation).\n"
                "network_segmentation_management_sources: "
                "\"{{ medinfra_lab_controller_addresses.values() | list }}\"\n"
                "# The lab's site CA, removed with the lab; and real TLS endpoints where vendor systems would be.\n"
                f"pki_ca_directory: {self.ca_directory.resolve()}\n"
                "lab_clinical_standins_enabled: true\n"
            ),
            PRIVATE_MODE,
        )

    def remove(self) -> None:
        for path in (
            self.private_key,
            self.private_key.with_suffix(".pub"),
            self.known_hosts,
            self.ssh_config,
            self.connection_vars,
            self.secret_vars,
            self.vault_password_file,
        ):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.ca_directory, ignore_errors=True)
        host_vars = self.inventory_dir / "host_vars"
        host_directories = sorted(host_vars.iterdir()) if host_vars.is_dir() else []
        for directory in host_directories:
            (directory / "lab_secrets.yml").unlink(missing_ok=True)
        for directory in (
            self.directory, self.connection_vars.parent, self.connection_vars.parent.parent, *host_directories,
            host_vars,
        ):
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()


def _ensure_vaulted(path: Path, names: Iterable[str], vault: VaultLib) -> None:
    """Add a random vault-encrypted value to the vars file for each name it does not set yet (0600)."""
    text = path.read_text() if path.exists() else SECRETS_HEADER
    for name in names:
        if not re.search(rf"^{name}:", text, flags=re.M):
            encrypted = vault.encrypt(secrets.token_urlsafe(24)).decode()
            text += f"{name}: !vault |\n" + "".join(f"  {line}\n" for line in encrypted.splitlines())
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, text, PRIVATE_MODE)
