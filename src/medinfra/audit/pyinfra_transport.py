"""Run the collector on many hosts at once through pyinfra's SSH connector (gevent, one process).

Import this module before anything opens sockets: it patches the standard library for gevent,
as pyinfra's own command line does.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402 - after the gevent patch, as pyinfra requires
import logging  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator, Mapping, Sequence  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from pyinfra.api.config import Config  # noqa: E402
from pyinfra.api.exceptions import ConnectError, PyinfraError  # noqa: E402
from pyinfra.api.inventory import Inventory  # noqa: E402
from pyinfra.api.state import State  # noqa: E402

from medinfra.audit.results import HostResult  # noqa: E402
from medinfra.audit.targets import SshSettings, Target, collector_command  # noqa: E402

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


def parse_output(output: Any) -> tuple[dict[str, Any] | None, str]:
    stdout = "\n".join(output.stdout_lines)
    try:
        document = json.loads(stdout)
    except ValueError:
        stderr = " ".join(output.stderr_lines)[-300:]
        return None, f"collector printed no JSON document: {stderr or stdout[-300:] or 'no output'}"
    if not isinstance(document, dict):
        return None, "collector output is not a JSON object"
    return document, ""


def collect_one(host: Any, target: Target, source: str, timeout: float) -> HostResult:
    assert target.ssh is not None
    started = time.monotonic()
    try:
        host.connect(raise_exceptions=True, show_errors=False)
    except ConnectError as exc:
        return HostResult(target.name, "unreachable", f"SSH: {exc}", None, time.monotonic() - started)
    try:
        command, stdin = collector_command(target.ssh, source)
        ok, output = host.run_shell_command(command, _stdin=stdin, _timeout=timeout, _shell_executable=None)
    except (PyinfraError, OSError, gevent.Timeout) as exc:
        return HostResult(
            target.name, "unreachable", f"collector run: {type(exc).__name__}: {exc}", None, time.monotonic() - started
        )
    finally:
        host.disconnect()
    document, problem = parse_output(output)
    if document is None:
        exit_note = "" if ok else " (collector exited non-zero)"
        return HostResult(target.name, "error", problem + exit_note, None, time.monotonic() - started)
    return HostResult(target.name, "audited", "", document, time.monotonic() - started)


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
            results[target.name] = HostResult(target.name, "error", target.problem, None, 0.0)
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
            result = (
                job.get()
                if job.successful()
                else HostResult(jobs[job], "error", f"transport failure: {job.exception}", None, 0.0)
            )
            results[result.host] = result
            if progress is not None:
                progress(result, done, len(reachable))
    return [results[target.name] for target in targets]
