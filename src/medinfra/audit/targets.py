"""Audit targets from an Ansible inventory: the hosts, vars and connection settings Ansible would use.

Read through ansible-core's own inventory and variable managers, so inventory plugins (ours
included), group_vars, host_vars and vaulted values behave exactly as in a playbook run.
"""

from __future__ import annotations

import marshal
import secrets
import shlex
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.util import MAGIC_NUMBER
from pathlib import Path
from typing import Any

from medinfra.collection import ansible_collection_paths
from medinfra.collector import default_paths
from medinfra.package_data import hostside_module
from medinfra.problems import Problem, UserInputError
from medinfra.safe_text import one_line

# The host as the inventory describes it, which controls may use in `applies_when`. `address` is how
# Ansible reaches the host; the evaluator's site pre-pass matches it against monitoring scrape targets.
INVENTORY_VIEW = {
    "address": "ansible_host",
    "zone": "medinfra_zone",
    "services": "medinfra_services",
    "sla": "medinfra_sla",
    "data_classification": "medinfra_data_classification",
    "legacy": "medinfra_legacy",
    "groups": "group_names",
    "site": "medinfra_site",
    "zones": "medinfra_zones",
    "flows_in": "medinfra_flows_in",
    "interfaces_in": "medinfra_interfaces_in",
    "forwarded_flows": "medinfra_forwarded_flows",
    "data_paths": "medinfra_data_paths",
    # The database pair of a member or service host (its other member, addresses, RPO), else None.
    "database_pair": "medinfra_database_pair",
    # Where the host keeps medinfra's shared files: the collector reads them there (site default when unset).
    "paths": "medinfra_paths",
}


@dataclass(frozen=True)
class SshSettings:
    """What pyinfra needs to reach a host the way Ansible's ssh connection would."""

    hostname: str
    port: int | None = None
    user: str | None = None
    key_file: str | None = None
    password: str | None = field(default=None, repr=False)
    known_hosts_file: str | None = None
    strict_host_key_checking: str = "yes"
    become: bool = False
    become_user: str | None = None
    become_password: str | None = field(default=None, repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        """What a host's text must never show: the passwords medinfra gives it."""
        return tuple(s for s in (self.password, self.become_password) if s)


@dataclass(frozen=True)
class Target:
    name: str
    inventory: Mapping[str, Any]
    ssh: SshSettings | None
    problem: str = ""

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.ssh.secrets if self.ssh is not None else ()


# The connection variables that hold passwords (Ansible's names and their older aliases).
SECRET_VARIABLES = ("ansible_password", "ansible_ssh_pass", "ansible_become_password", "ansible_become_pass")


def host_secrets(hostvars: Mapping[str, Any]) -> tuple[str, ...]:
    """The passwords a host's variables give it, which nothing the host sends back may show."""
    return tuple(str(hostvars[name]) for name in SECRET_VARIABLES if hostvars.get(name))


def inventory_view(hostvars: Mapping[str, Any]) -> dict[str, Any]:
    """The inventory's description of a host, from its variables (shared by both transports)."""
    view = {key: hostvars.get(variable) for key, variable in INVENTORY_VIEW.items()}
    view["services"] = list(view["services"] or [])
    view["legacy"] = bool(view["legacy"])
    view["groups"] = sorted(view["groups"] or [])
    view["zones"] = list(view["zones"] or [])
    view["flows_in"] = list(view["flows_in"] or [])
    view["interfaces_in"] = list(view["interfaces_in"] or [])
    view["forwarded_flows"] = list(view["forwarded_flows"] or [])
    view["data_paths"] = list(view["data_paths"] or [])
    view["paths"] = default_paths() if view["paths"] is None else view["paths"]
    return view


def ssh_options(args: str) -> dict[str, str]:
    """`-o Key=Value` options from ansible_ssh_common_args / extra_args, keys lower-cased."""
    options: dict[str, str] = {}
    words = shlex.split(args)
    for index, word in enumerate(words):
        value = None
        if word == "-o" and index + 1 < len(words):
            value = words[index + 1]
        elif word.startswith("-o") and len(word) > 2:
            value = word[2:]
        if value and "=" in value:
            key, _, option = value.partition("=")
            options[key.strip().lower()] = option.strip()
    return options


def ssh_settings(name: str, hostvars: Mapping[str, Any], host_key_checking: bool) -> SshSettings | str:
    """SSH settings for one host, or why medinfra audit cannot reach it the way Ansible would."""
    connection = hostvars.get("ansible_connection") or "ssh"
    if connection not in ("ssh", "paramiko", "smart"):
        return f"connection {connection!r} is not SSH; audit this host with playbooks/audit.yml"
    method = hostvars.get("ansible_become_method") or "sudo"
    become = bool(hostvars.get("ansible_become", False))
    if become and method != "sudo":
        return f"become method {method!r} is not supported (sudo only); audit this host with playbooks/audit.yml"
    options = ssh_options(
        " ".join(str(hostvars.get(k) or "") for k in ("ansible_ssh_common_args", "ansible_ssh_extra_args"))
    )
    become_password = hostvars.get("ansible_become_password") or hostvars.get("ansible_become_pass")
    if become and become_password and ("\n" in str(become_password) or "\r" in str(become_password)):
        # sudo -S reads a password up to the first line break: the rest would be taken as further attempts.
        return "the become password holds a line break, which sudo -S cannot read as one password"
    port = hostvars.get("ansible_port") or hostvars.get("ansible_ssh_port")
    if "proxyjump" in options or "proxycommand" in options:
        return "SSH through a jump host is not supported by medinfra audit yet; use playbooks/audit.yml"
    return SshSettings(
        hostname=str(hostvars.get("ansible_host") or name),
        port=int(port) if port else None,
        user=hostvars.get("ansible_user") or hostvars.get("ansible_ssh_user"),
        key_file=hostvars.get("ansible_ssh_private_key_file") or hostvars.get("ansible_private_key_file"),
        password=hostvars.get("ansible_password") or hostvars.get("ansible_ssh_pass"),
        known_hosts_file=options.get("userknownhostsfile"),
        strict_host_key_checking=options.get("stricthostkeychecking", "yes" if host_key_checking else "no"),
        become=become,
        become_user=hostvars.get("ansible_become_user") if hostvars.get("ansible_become_user") != "root" else None,
        become_password=become_password,
    )


# -I -S: the collector needs nothing but the standard library, so skip site-packages and PYTHON* vars.
# The program is not `-`: python would run whatever stdin starts with, and a sudo that does not prompt (NOPASSWD,
# cached credentials, already root) leaves the password line there, which then came back in a SyntaxError. This
# fixed bootstrap drops everything up to a start marker (the password line, if sudo did not read it) and runs the
# rest. sudo reads its password one byte at a time up to the newline, so it never takes more than that line;
# after a wrong password it reads further lines as new attempts and then fails without running python at all.
# After the marker comes the program as `program_payload` packs it: the host runs the controller's bytecode when
# its Python has the same bytecode magic number, else compiles the source sent beside it.
BOOTSTRAP = """import sys, marshal, zlib, __main__
skipped, start, payload = sys.stdin.buffer.read().partition(b"%s\\n")
del skipped
if not start:
    sys.exit("medinfra: no program after the start marker on stdin")
header, _, payload = zlib.decompress(payload).partition(b"\\n")
magic, size = header.split()
ours = getattr(sys.modules.get("_frozen_importlib_external"), "MAGIC_NUMBER", b"").hex().encode()
program = payload[int(size):]
code = marshal.loads(payload[:int(size)]) if magic == ours else compile(program, "<medinfra program>", "exec")
exec(code, __main__.__dict__)
"""


@lru_cache(maxsize=16)
def program_payload(source: str) -> bytes:
    """What follows the start marker on stdin: a header (bytecode magic number, bytecode length), the program
    compiled here, and its source, zlib-compressed together (a third of the source's size).

    Compiling the 120 KB collector costs a host about 30 ms of CPU, the largest part of the collector's own; a
    host whose Python has the controller's magic number (CPython keeps it for a whole minor version, as for its
    .pyc files) runs this bytecode instead. Cached: every host gets the same few programs.
    """
    # dont_inherit: not this module's __future__ flags, only the program's own; optimize=0: asserts kept, as
    # the host's `python3` would compile it.
    code = marshal.dumps(compile(source, "<medinfra program>", "exec", dont_inherit=True, optimize=0))
    header = f"{MAGIC_NUMBER.hex()} {len(code)}\n".encode()
    return zlib.compress(header + code + source.encode("utf-8"))


def collector_command(ssh: SshSettings, source: str, marker: str | None = None) -> tuple[str, bytes]:
    """(command line, stdin) that runs the program `source`, under sudo when Ansible would become.

    stdin is the sudo password line (when there is one), a start marker line and the program (`program_payload`);
    the command line holds the bootstrap and the marker, never a secret. `marker` is a fresh random one unless
    given (tests). The password never goes onto the command line or into a file on the host (pyinfra's askpass
    would do that).
    """
    marker = marker or f"medinfra-start-{secrets.token_hex(16)}"
    program = f"python3 -I -S -c {shlex.quote(BOOTSTRAP % marker)}"
    stdin = f"{marker}\n".encode() + program_payload(source)
    if not ssh.become:
        return program, stdin
    user = f"-u {shlex.quote(ssh.become_user)} " if ssh.become_user else ""
    if ssh.become_password:
        return f"sudo -H -S -p '' {user}{program}", f"{ssh.become_password}\n".encode() + stdin
    return f"sudo -H -n {user}{program}", stdin


CONNECTION_VARS = (
    "ansible_connection",
    "ansible_host",
    "ansible_port",
    "ansible_ssh_port",
    "ansible_user",
    "ansible_ssh_user",
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
    "ansible_password",
    "ansible_ssh_pass",
    "ansible_ssh_common_args",
    "ansible_ssh_extra_args",
    "ansible_become",
    "ansible_become_method",
    "ansible_become_user",
    "ansible_become_password",
    "ansible_become_pass",
    *INVENTORY_VIEW.values(),
)


# The largest variable medinfra reads is a host's list of flows: hundreds of values, not a hundred thousand.
MAX_VARIABLE_VALUES = 100_000


def value_count(value: Any, limit: int) -> int:
    """How many values `value` holds, counting a shared (aliased) one each time it appears, as templating would
    expand it; stops counting past `limit`."""
    seen, pending = 0, [value]
    while pending and seen <= limit:
        item = pending.pop()
        seen += 1
        if isinstance(item, Mapping):
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return seen


def read_hosts(
    inventory: Path, pattern: str | None, vault_password_file: Path | None, keys: tuple[str, ...]
) -> list[tuple[str, dict[str, Any]]]:
    """(name, {key: templated value}) of every host matching `pattern`, for the `keys` the host has, read the way
    a playbook would (inventory plugins, group_vars, host_vars, vaulted values)."""
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.parsing.vault import VaultSecretsContext, get_file_vault_secret
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    if not inventory.exists():
        raise UserInputError([Problem(str(inventory), (), "inventory not found")])
    # Ansible's own configuration (ANSIBLE_CONFIG, ./ansible.cfg, ...) and collections paths: the topology names its
    # plugin, `medinfra.hospital.hospital`, which Ansible's `auto` inventory plugin loads from the collection.
    ansible_collection_paths()
    loader = DataLoader()
    try:
        if vault_password_file is not None:
            secret = get_file_vault_secret(filename=str(vault_password_file), loader=loader)
            secret.load()
            loader.set_vault_secrets([("default", secret)])
            # Templating decrypts vaulted values through this process-wide context (as ansible-playbook sets it up).
            context = VaultSecretsContext.current(optional=True)
            if context is None:
                VaultSecretsContext.initialize(VaultSecretsContext([("default", secret)]))
            else:
                context.secrets.append(("default", secret))
        manager = InventoryManager(loader=loader, sources=[str(inventory)])
        if pattern:
            manager.subset(pattern)
        variables = VariableManager(loader=loader, inventory=manager)
        found = []
        for host in manager.get_hosts("all"):
            raw = variables.get_vars(host=host, include_hostvars=False)
            templar = Templar(loader=loader, variables=raw)
            for key in keys:
                if key in raw and value_count(raw[key], MAX_VARIABLE_VALUES) > MAX_VARIABLE_VALUES:
                    message = (f"more than {MAX_VARIABLE_VALUES:,} values (YAML aliases can repeat a few bytes "
                               "billions of times); medinfra will not expand it")
                    raise UserInputError([Problem(one_line(str(inventory)), (one_line(host.name), key), message)])
            found.append((host.name, {key: templar.template(raw[key]) for key in keys if key in raw}))
    except AnsibleError as exc:
        raise UserInputError(
            [Problem(str(inventory), (), f"Ansible could not read the inventory: {exc.message}")]
        ) from None
    return found


def load_targets(inventory: Path, limit: str | None, vault_password_file: Path | None = None) -> list[Target]:
    """Every host of the inventory matching the limit, with its connection settings templated."""
    from ansible import constants

    targets = []
    for name, hostvars in read_hosts(inventory, limit, vault_password_file, CONNECTION_VARS):
        view = inventory_view(hostvars)
        settings = ssh_settings(name, hostvars, bool(constants.HOST_KEY_CHECKING))
        wrong_paths = hostside_module("collector.paths").path_problems(view["paths"])
        if wrong_paths:
            targets.append(Target(name, view, None, "medinfra_paths " + "; ".join(wrong_paths)))
        elif isinstance(settings, str):
            targets.append(Target(name, view, None, settings))
        else:
            targets.append(Target(name, view, settings))
    if not targets:
        where = f" matching --limit {limit!r}" if limit else ""
        raise UserInputError([Problem(str(inventory), (), f"no hosts{where}")])
    return targets
