"""Run the collector on many hosts at once through pyinfra's SSH connector (gevent, one process).

Import this module before anything opens sockets: it patches the standard library for gevent,
as pyinfra's own command line does.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator, Mapping, Sequence  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from paramiko import SSHException  # noqa: E402
from pyinfra.api.config import Config  # noqa: E402
from pyinfra.api.exceptions import ConnectError, PyinfraError  # noqa: E402
from pyinfra.api.inventory import Inventory  # noqa: E402
from pyinfra.api.state import State  # noqa: E402

from medinfra.audit.received import (  # noqa: E402
    OUTPUT_LIMIT,
    STDERR_KEPT,
    ProgramOutput,
    host_result,
    program_result,
    read_bounded,
    read_tail,
)
from medinfra.audit.results import HostResult  # noqa: E402
from medinfra.audit.targets import SshSettings, Target, collector_command  # noqa: E402
from medinfra.collector import collector_program  # noqa: E402

# pyinfra logs connection errors itself; the audit reports them once, in its own words.
logging.getLogger("pyinfra").setLevel(logging.CRITICAL)


@contextmanager
def quiet_hub() -> Iterator[None]:
    """Keep gevent from printing errors that callers handle, e.g. ansible-core's import-time probe of
    getaddrinfo with an int subclass, which gevent's resolver rejects and ansible-core expects."""
    hub = gevent.get_hub()
    stream = hub.exception_stream
    hub.exception_stream = None
    try:
        yield
    finally:
        hub.exception_stream = stream


def host_data(ssh: SshSettings) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ssh_hostname": ssh.hostname,
        "ssh_strict_host_key_checking": ssh.strict_host_key_checking,
        "ssh_allow_agent": False,
        "ssh_look_for_keys": ssh.key_file is None and ssh.password is None,
    }
    optional = {
        "ssh_port": ssh.port,
        "ssh_user": ssh.user,
        "ssh_key": ssh.key_file,
        "ssh_password": ssh.password,
        "ssh_known_hosts_file": ssh.known_hosts_file,
    }
    data.update({key: value for key, value in optional.items() if value is not None})
    return data


def run_program(client: Any, command: str, stdin: bytes, timeout: float) -> ProgramOutput:
    """Run `command` on an SSH connection (paramiko's client, which pyinfra holds) with `stdin`, reading its output
    with bounds: pyinfra's own runner keeps all of it in memory and fails on text that is not UTF-8."""
    channel = client.get_transport().open_session(timeout=timeout)
    try:
        with gevent.Timeout(timeout):
            channel.exec_command(command)
            channel.sendall(stdin)
            channel.shutdown_write()
            stderr = gevent.spawn(read_tail, channel.recv_stderr, STDERR_KEPT)
            stdout, over_limit = read_bounded(channel.recv, OUTPUT_LIMIT)
            if over_limit:
                stderr.kill()
                return ProgramOutput(stdout, b"", -1, over_limit=True)
            exit_status = channel.recv_exit_status()
            stderr_tail, stderr_cut = stderr.get()
            return ProgramOutput(stdout, stderr_tail, exit_status, stderr_cut=stderr_cut)
    finally:
        channel.close()


def collect_one(host: Any, target: Target, source: str, timeout: float) -> HostResult:
    assert target.ssh is not None
    started = time.monotonic()

    def unreachable(reason: str) -> HostResult:
        return host_result(target.name, "unreachable", reason, None, time.monotonic() - started, target.secrets)

    try:
        host.connect(raise_exceptions=True, show_errors=False)
    except ConnectError as exc:
        return unreachable(f"SSH: {exc}")
    try:
        command, stdin = collector_command(target.ssh, source)
        output = run_program(host.connector.client, command, stdin, timeout)
    except (PyinfraError, SSHException, OSError, gevent.Timeout) as exc:
        return unreachable(f"collector run: {type(exc).__name__}: {exc}")
    finally:
        host.disconnect()
    return program_result(target.name, output, time.monotonic() - started, target.secrets)


def collect_all(
    targets: Sequence[Target],
    source: str | Mapping[str, str],
    *,
    connect_timeout: float = 10,
    command_timeout: float = 120,
    parallel: int = 100,
    progress: Callable[[HostResult, int, int], None] | None = None,
) -> list[HostResult]:
    """Evidence from every reachable target; the others are reported, never raised.

    `source` is the script every host runs, or one script per host name.
    """
    results: dict[str, HostResult] = {}
    reachable = [t for t in targets if t.ssh is not None]
    for target in targets:
        if target.ssh is None:
            results[target.name] = host_result(target.name, "error", target.problem, None, 0.0, ())
    if reachable:
        names = [(t.name, host_data(t.ssh)) for t in reachable if t.ssh is not None]
        inventory = Inventory((names, {}))  # type: ignore[no-untyped-call]
        config = Config(  # type: ignore[no-untyped-call]
            CONNECT_TIMEOUT=connect_timeout, PARALLEL=min(parallel, len(names)), FAIL_PERCENT=None
        )
        state = State(inventory, config)
        by_name = {target.name: target for target in reachable}
        jobs = {
            state.pool.spawn(
                collect_one, host, by_name[host.name], source if isinstance(source, str) else source[host.name],
                command_timeout,
            ): host.name
            for host in inventory
        }
        for done, job in enumerate(gevent.iwait(list(jobs)), start=1):
            name = jobs[job]
            result = (
                job.get()
                if job.successful()
                else host_result(name, "error", f"transport failure: {job.exception}", None, 0.0, by_name[name].secrets)
            )
            results[result.host] = result
            if progress is not None:
                progress(result, done, len(reachable))
    return [results[target.name] for target in targets]


def collect_evidence(targets: Sequence[Target], **options: Any) -> list[HostResult]:
    """`collect_all` running the collector on each host with the host's own `medinfra_paths` (its inventory view):
    one program text per distinct map, shared by the hosts that have it."""
    programs: dict[str, str] = {}
    by_host: dict[str, str] = {}
    for target in targets:
        if target.ssh is not None:
            key = json.dumps(target.inventory["paths"], sort_keys=True)
            if key not in programs:
                programs[key] = collector_program(target.inventory["paths"])
            by_host[target.name] = programs[key]
    return collect_all(targets, by_host, **options)


def run_one(target: Target, source: str, timeout: float = 120) -> HostResult:
    """`collect_all` for one program on one host: what a drill runs step by step (or beside other steps, in a
    greenlet of its own) over the audit's own SSH connections and become settings."""
    return collect_all([target], source, command_timeout=timeout)[0]
