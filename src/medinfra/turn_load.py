"""`medinfra turn loadtest`: many media sessions through one relay at once, and what they cost the relay.

Credentials are minted here from the relay's vaulted secret (as `medinfra turn credentials` does) and travel to the
vantage host inside the program on stdin, never on a command line. The vantage host runs the TURN client's media
engine (plugins/module_utils/turn.py); meanwhile the relay host samples its coturn process from /proc. Both run
through the audit's SSH transport (pyinfra, the inventory's connection settings, sudo with the password on stdin).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medinfra.monitoring.rtc_probe import MEDIA_SERVICE
from medinfra.package_data import hostside_source
from medinfra.problems import PrerequisiteError, Problem, UserInputError
from medinfra.turn import (
    PORT_VARIABLES,
    RELAY_GROUP,
    SECRET_VARIABLE,
    host_address,
    relay_ports,
    relay_problems,
    turn_module,
)

TRANSPORTS = ("udp", "tcp", "tls")
MAX_SESSIONS, MAX_DURATION, MAX_RATE = 500, 300, 500
LOAD_USER = "medinfra-loadtest"
# The media server's UDP echo (role rtc_probe): returns every datagram unchanged.
ECHO_PORT = 40001
PACKET_SIZE = 1000
CA_FILE = "/etc/medinfra/pki/ca.crt"
# How long the relay host samples coturn: the allocation phase (at most this much a session), the media, the
# engine's grace period and the releases, and a margin. Samples outside the engine's own run are not used.
SECONDS_PER_SESSION, MARGIN_SECONDS, SAMPLE_INTERVAL = 0.1, 5.0, 0.5
KIB_PER_MIB = 1024


@dataclass(frozen=True)
class LoadOptions:
    inventory: Path
    vantage: str
    sessions: int
    duration: int
    rate: int = 50
    transport: str = "udp"
    one_user: bool = False
    relay: str | None = None
    vault_password_file: Path | None = None
    peer: str | None = None
    peer_port: int = ECHO_PORT


def option_problems(options: LoadOptions) -> list[Problem]:
    """What is wrong with the options, each naming its option."""
    bounds = (("--sessions", options.sessions, MAX_SESSIONS), ("--duration", options.duration, MAX_DURATION),
              ("--rate", options.rate, MAX_RATE))
    problems = [Problem(option, (), f"{value} is not between 1 and {high}")
                for option, value, high in bounds if not 1 <= value <= high]
    if options.transport not in TRANSPORTS:
        problems.append(Problem("--transport", (), f"{options.transport!r} is not one of {', '.join(TRANSPORTS)}"))
    if not 0 < options.peer_port < 65536:
        problems.append(Problem("--peer-port", (), f"{options.peer_port} is not a port number"))
    return problems


def credential_ttl(options: LoadOptions) -> int:
    """Long enough for the whole run (the allocation phase, the media, the release), and never below the minimum
    `medinfra turn credentials` accepts."""
    return max(600, int(options.sessions * SECONDS_PER_SESSION + options.duration + 2 * MARGIN_SECONDS))


def session_credentials(secret: str, sessions: int, one_user: bool, ttl: int, now: float) -> list[list[str]]:
    """One [username, password] per session: one user for all (`--one-user`, the per-user quota applies) or a
    user of its own each (`medinfra-loadtest-1`, ...)."""
    rest_credentials = turn_module().rest_credentials
    if one_user:
        return [list(rest_credentials(secret, ttl, LOAD_USER, now))] * sessions
    return [list(rest_credentials(secret, ttl, f"{LOAD_USER}-{n}", now)) for n in range(1, sessions + 1)]


def relay_port(hostvars: Mapping[str, Any], transport: str) -> int:
    """The relay's port for a transport: TLS on the TLS listening port, UDP and TCP on the plain one."""
    return relay_ports(hostvars)["rtc_relay_tls_listening_port" if transport == "tls" else "rtc_relay_listening_port"]


def load_request(options: LoadOptions, relay: str, relay_vars: Mapping[str, Any], peer_address: str,
                 credentials: list[list[str]]) -> dict[str, Any]:
    """What the vantage host's `load_exercise` reads: the media probe configuration's shape, one relay port."""
    address = host_address(relay_vars, relay)
    port = relay_port(relay_vars, options.transport)
    return {
        "relays": [{"name": relay, "address": address, "server_name": address,
                    "transports": [{"transport": options.transport, "port": port}]}],
        "ca_file": CA_FILE, "credentials": credentials,
        "peer": {"address": peer_address, "port": options.peer_port},
        "seconds": options.duration, "rate": options.rate, "size": PACKET_SIZE,
    }


def host_program(function: str, **arguments: Any) -> str:
    """turn.py loaded as a module (run as the program itself, its `main` would take the command line) and one call
    of `function`, whose JSON result the program prints. The arguments travel inside the program, on stdin."""
    return (
        "import json, sys, types\n"
        "module = types.ModuleType('medinfra_turn')\n"
        "sys.modules['medinfra_turn'] = module\n"  # dataclasses look their module up there
        f"exec(compile({hostside_source('turn.py')!r}, 'medinfra_turn', 'exec'), module.__dict__)\n"
        f"print(json.dumps(module.{function}(**json.loads({json.dumps(arguments)!r}))))\n"
    )


def usage_figures(samples: Sequence[Sequence[float]], started: float, ended: float) -> dict[str, float | None]:
    """coturn's CPU (percent of one core) and peak resident memory (MiB) over the samples [wall time, CPU seconds,
    resident KiB] taken while the engine ran (from its start to the end of its media); None without two samples."""
    inside = [s for s in samples if started <= s[0] <= ended]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return {"cpu_percent": None, "peak_rss_mib": None, "sampled_seconds": None}
    seconds = inside[-1][0] - inside[0][0]
    return {
        "cpu_percent": 100 * (inside[-1][1] - inside[0][1]) / seconds,
        "peak_rss_mib": max(s[2] for s in inside) / KIB_PER_MIB,
        "sampled_seconds": seconds,
    }


def load_report(options: LoadOptions, relay: str, engine: Mapping[str, Any],
                usage: Mapping[str, Any]) -> dict[str, Any]:
    """The loadtest's figures from what the vantage host and the relay host returned."""
    sessions = list(engine.get("sessions") or [])
    refused = [(number, s) for number, s in enumerate(sessions, start=1) if not s["allocated"]]
    transport = dict((engine.get("transports") or {}).get(options.transport) or {})
    figures = usage_figures(usage.get("samples") or [], float(engine.get("started") or 0),
                            float(engine.get("media_ended") or 0))
    allocated = sum(bool(s["allocated"]) for s in sessions)
    held = sum(bool(s["held"]) for s in sessions)
    return {
        "relay": relay, "from": options.vantage, "transport": options.transport, "sessions": options.sessions,
        "one_user": options.one_user, "duration_seconds": options.duration, "rate": options.rate,
        "allocation_phase_seconds": engine.get("allocation_phase_seconds"),
        "allocations_per_second": engine.get("allocations_per_second"),
        "allocated": allocated, "held": held, "refused": len(refused),
        "first_refused": refused[0][0] if refused else None,
        "first_refused_code": refused[0][1]["code"] if refused else None,
        "first_refused_reason": refused[0][1]["error"] if refused else None,
        "loss_ratio": transport.get("loss_ratio"), "rtt_p50_seconds": transport.get("rtt_p50"),
        "rtt_p95_seconds": transport.get("rtt_p95"), "jitter_seconds": transport.get("jitter"),
        "connect_p50_seconds": transport.get("connect_p50"),
        "client_cpu_percent": engine.get("client_cpu_percent"),
        "relay_cpu_percent": figures["cpu_percent"], "relay_peak_rss_mib": figures["peak_rss_mib"],
        "relay_sampled_seconds": figures["sampled_seconds"], "relay_usage_error": usage.get("error"),
        "passed": allocated == options.sessions and held == options.sessions,
        "session_results": sessions,
    }


def number(value: Any, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
    return "n/a" if value is None else f"{value * scale:.{digits}f}{unit}"


def report_text(report: Mapping[str, Any]) -> str:
    code = f"{report['first_refused_code']} " if report["first_refused_code"] else ""
    refused = ("none refused" if not report["refused"] else
               f"{report['refused']} not allocated from session {report['first_refused']} "
               f"({code}{report['first_refused_reason']})")
    users = "one user" if report["one_user"] else "a user each"
    return "\n".join([
        f"loadtest of {report['relay']} from {report['from']}: {report['sessions']} sessions over "
        f"{report['transport']} ({users}), {report['duration_seconds']} s at {report['rate']} packets/s",
        f"allocation phase: {report['allocated']} allocated in {number(report['allocation_phase_seconds'], 1, 2)} s "
        f"({number(report['allocations_per_second'])} allocations/s); {refused}",
        f"held to the end: {report['held']}/{report['sessions']}",
        f"media: loss {number(report['loss_ratio'], 100, 2, ' %')}, RTT p50 "
        f"{number(report['rtt_p50_seconds'], 1000, 2, ' ms')}, p95 {number(report['rtt_p95_seconds'], 1000, 2, ' ms')}"
        f", jitter {number(report['jitter_seconds'], 1000, 3, ' ms')}",
        f"relay: CPU {number(report['relay_cpu_percent'], 1, 1, ' %')} of one core, peak RSS "
        f"{number(report['relay_peak_rss_mib'], 1, 1, ' MiB')}"
        + (f" ({report['relay_usage_error']})" if report["relay_usage_error"] else "")
        + f"; the client on {report['from']}: CPU {number(report['client_cpu_percent'], 1, 1, ' %')}",
        "PASS: every session allocated and held" if report["passed"] else "FAIL: not every session was held",
    ])


def one_host(inventory: Path, pattern: str, vault_password_file: Path | None, keys: tuple[str, ...],
             what: str, option: str) -> tuple[str, dict[str, Any]]:
    from medinfra.audit.targets import read_hosts

    found = read_hosts(inventory, pattern, vault_password_file, keys)
    if len(found) != 1:
        names = ", ".join(name for name, _ in found) or "none"
        raise UserInputError([Problem(str(inventory), (), f"needs exactly one {what} (found: {names}); "
                                                          f"name it with {option}")])
    return found[0]


def run_loadtest(options: LoadOptions) -> dict[str, Any]:
    """Mint the credentials, run the engine on the vantage host and the sampler on the relay host at once, and
    report. UserInputError for bad options or inventory data (located); a host that cannot run its part is
    reported as an error in the figures' place."""
    from medinfra.audit.pyinfra_transport import collect_all, quiet_hub
    from medinfra.audit.targets import load_targets

    problems = option_problems(options)
    if problems:
        raise UserInputError(problems)
    keys = (SECRET_VARIABLE, "medinfra_address", "ansible_host", *PORT_VARIABLES)
    with quiet_hub():
        relay, relay_vars = one_host(options.inventory, options.relay or RELAY_GROUP, options.vault_password_file,
                                     keys, f"host with the {RELAY_GROUP} service", "--relay")
        wrong = relay_problems(str(options.inventory), relay, relay_vars, options.vault_password_file is not None)
        if wrong:
            raise UserInputError(wrong)
        peer, peer_vars = one_host(options.inventory, options.peer or MEDIA_SERVICE, options.vault_password_file,
                                   ("medinfra_address", "ansible_host"), f"host with the {MEDIA_SERVICE} service",
                                   "--peer")
        targets = {t.name: t for t in load_targets(options.inventory, f"{options.vantage}:{relay}",
                                                   options.vault_password_file)}
    if options.vantage not in targets:
        raise UserInputError([Problem("--from", (), f"{options.vantage!r} is not a host of {options.inventory}")])
    unusable = [Problem(str(options.inventory), (name,), t.problem) for name, t in targets.items() if t.problem]
    if unusable:
        raise UserInputError(unusable)
    credentials = session_credentials(str(relay_vars[SECRET_VARIABLE]), options.sessions, options.one_user,
                                      credential_ttl(options), time.time())
    request = load_request(options, relay, relay_vars, host_address(peer_vars, peer), credentials)
    window = options.sessions * SECONDS_PER_SESSION + options.duration + MARGIN_SECONDS
    programs = {options.vantage: host_program("load_exercise", request=request),
                relay: host_program("relay_usage", seconds=window, interval=SAMPLE_INTERVAL)}
    results = {r.host: r for r in collect_all(list(targets.values()), programs, command_timeout=window * 2 + 60)}
    engine, usage = results[options.vantage], results[relay]
    if engine.evidence is None or "error" in engine.evidence:
        reason = engine.reason if engine.evidence is None else engine.evidence["error"]
        raise PrerequisiteError(f"{options.vantage}: the media engine did not run: {reason}")
    usage_document = usage.evidence if usage.evidence is not None else {"error": f"{usage.status}: {usage.reason}"}
    return load_report(options, relay, engine.evidence, usage_document)
