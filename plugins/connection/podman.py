"""Pipelined podman connection: one `podman exec -i` per module instead of four podman calls.

Molecule's podman driver names the connection `podman`; molecule/base.yml replaces that with
`medinfra.hospital.podman`, this plugin, instead of the collection's containers.podman.podman, which does not
pipeline: for every task on every host it runs `podman mount`, then `podman exec` to make a temporary directory,
to run the module and to remove the directory. podman's start-up, paid four times per task and host, was most of
a Molecule scenario's CPU time on 2 cores.
"""

from __future__ import annotations

# The collection's options, word for word (Ansible reads DOCUMENTATION from this file's source, so it cannot be
# imported): the same inventory variables, ansible.cfg keys and environment variables configure both plugins, except
# that ansible_host does not name the container (see remote_addr).
DOCUMENTATION = """
    name: podman
    short_description: Run tasks in an existing podman container, pipelined
    description:
      - containers.podman.podman with pipelining; the container is mounted only when a file is copied.
      - Molecule's podman driver uses it through C(provisioner.connection_options) in C(molecule/base.yml).
    author: medinfra maintainers (!UNKNOWN)
    requirements:
      - the containers.podman collection, whose connection this one extends
    options:
      remote_addr:
        description:
          - The ID of the container you want to access.
          - The inventory name unless C(ansible_podman_host) names another container. C(ansible_host) stays the
            host's network address, as the hospital inventory plugin sets it from the topology.
        default: inventory_hostname
        vars:
          - name: inventory_hostname
          - name: ansible_podman_host
      remote_user:
        description:
            - User specified via name or UID which is used to execute commands inside the container. If you
              specify the user via UID, you must set C(ANSIBLE_REMOTE_TMP) to a path that exits
               inside the container and is writable by Ansible.
        ini:
          - section: defaults
            key: remote_user
        env:
          - name: ANSIBLE_REMOTE_USER
        vars:
          - name: ansible_user
      podman_extra_args:
        description:
          - Extra arguments to pass to the podman command line.
        default: ''
        ini:
          - section: defaults
            key: podman_extra_args
        vars:
          - name: ansible_podman_extra_args
        env:
          - name: ANSIBLE_PODMAN_EXTRA_ARGS
      podman_executable:
        description:
          - Executable for podman command.
        default: podman
        vars:
          - name: ansible_podman_executable
        env:
          - name: ANSIBLE_PODMAN_EXECUTABLE
"""

# After the documentation, as Ansible expects.
import shlex  # noqa: E402
from typing import Any  # noqa: E402

from ansible.plugins.connection import ConnectionBase, ensure_connect  # noqa: E402
from ansible_collections.containers.podman.plugins.connection.podman import (  # noqa: E402
    Connection as CollectionConnection,
)


class Connection(CollectionConnection):  # type: ignore[misc]
    transport = "podman"
    has_pipelining = True
    always_pipeline_modules = True

    def _connect(self) -> Any:
        # The collection's plugin takes the container from the play context, i.e. ansible_host, which is the
        # topology's address in an inventory of the hospital plugin; this option is the inventory name.
        self._container_id = self.get_option("remote_addr")
        # Only file transfers need the container mounted; running a module does not.
        ConnectionBase._connect(self)
        self._connected = True
        return self

    def _mount(self) -> None:
        if self._mount_point is None:
            CollectionConnection._connect(self)

    @ensure_connect  # type: ignore[untyped-decorator]
    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = False) -> tuple[int, bytes, bytes]:
        ConnectionBase.exec_command(self, cmd, in_data=in_data, sudoable=sudoable)
        # A pipelined module arrives on stdin, which `podman exec` passes on only with --interactive.
        args = ["exec", "--interactive"] if in_data is not None else ["exec"]
        if self.user:
            args += ["--user", self.user]
        result: tuple[int, bytes, bytes] = self._podman(args, shlex.split(cmd), in_data)
        return result

    def put_file(self, in_path: str, out_path: str) -> None:
        self._mount()
        super().put_file(in_path, out_path)

    def fetch_file(self, in_path: str, out_path: str) -> None:
        self._mount()
        super().fetch_file(in_path, out_path)
