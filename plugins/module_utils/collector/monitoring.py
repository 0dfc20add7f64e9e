"""The monitoring programs as they run: listen addresses, web config (TLS, basic auth), scrape targets."""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import re
import ssl
import urllib.parse
import urllib.request

from .base import HOST, NOT_RECORDED, Json, at_root, file_facts, read_text, safe, unavailable
from .processes import Process, command_flags, find_processes, listens_everywhere

# Component -> names of its executable (Debian's first, then upstream's); the kernel keeps 15 characters
# of the name as the process's comm (prometheus-node-exporter -> prometheus-node).
MONITORING_PROGRAMS: dict[str, tuple[str, ...]] = {
    "node_exporter": ("prometheus-node-exporter", "node_exporter"),
    "prometheus": ("prometheus",),
    "alertmanager": ("prometheus-alertmanager", "alertmanager"),
    "blackbox_exporter": ("prometheus-blackbox-exporter", "blackbox_exporter"),
}

# --web.listen-address when the command line does not set it: every interface.
DEFAULT_LISTEN_ADDRESS = {
    "node_exporter": ":9100",
    "prometheus": ":9090",
    "alertmanager": ":9093",
    "blackbox_exporter": ":9115",
}

FILE_SD_DIRECTORY = "/etc/prometheus/file_sd"
# The password Prometheus itself presents to the monitoring server's services (role monitoring_server's
# monitoring_server_secrets_dir): root reads it to ask Prometheus what its interface probes saw.
PROMETHEUS_PASSWORD_FILE = "/etc/prometheus/secrets/internal.password"
# The probes' verdict and round trip per interface, as Prometheus last scraped them (the metric contract of
# plugins/module_utils/interface_probe.py). Series of a stopped probe go stale and vanish: "not probed".
INTERFACE_QUERIES = {"result": "medinfra_interface_result == 1", "latency": "medinfra_interface_latency_seconds"}
API_TIMEOUT = 10
API_LIMIT = 4 * 1024 * 1024

BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")

# A YAML `key: value` line: the key plain or quoted; a plain key ends at the first colon followed by a blank.
YAML_KEY = re.compile(r"""^(?:"((?:[^"\\]|\\.)*)"|'((?:[^']|'')*)'|([^\s#'"{\[\-][^#]*?|-[^\s#]*?))\s*:(?:\s+(.*))?$""")

YAML_NULLS = frozenset({"", "~", "null", "Null", "NULL"})


def yaml_scalar(text: str) -> Json:
    """A plain, single- or double-quoted YAML scalar as text, its trailing comment removed; None for null."""
    text = text.strip()
    if text.startswith('"'):
        match = re.match(r'"((?:[^"\\]|\\.)*)"', text)
        if match:
            try:
                return str(json.loads(f'"{match.group(1)}"'))
            except ValueError:
                return match.group(1)
    if text.startswith("'"):
        match = re.match(r"'((?:[^']|'')*)'", text)
        if match:
            return match.group(1).replace("''", "'")
    value = "" if text.startswith("#") else re.split(r"\s#", text, maxsplit=1)[0].strip()
    return None if value in YAML_NULLS else value


def yaml_key(match: re.Match[str]) -> str:
    double, single, plain = match.group(1), match.group(2), match.group(3)
    if double is not None:
        return str(yaml_scalar(f'"{double}"'))
    if single is not None:
        return single.replace("''", "'")
    return plain


def yaml_flow_mapping(text: str) -> dict[str, Json] | None:
    """`{a: b, "c": 'd'}` on one line, one level deep; None when the text is not such a mapping."""
    text = text.strip()
    if not text.startswith("{") or "}" not in text:
        return None
    inner = text[1 : text.rindex("}")]
    mapping: dict[str, Json] = {}
    for item in re.findall(r"""(?:"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^,])+""", inner):
        match = YAML_KEY.match(item.strip())
        if match:
            mapping[yaml_key(match)] = yaml_scalar(match.group(4) or "")
    return mapping


def yaml_open_brackets(line: str) -> int:
    """How many flow brackets ({ [) a YAML line leaves open, outside quotes and comments."""
    depth, quote, previous = 0, "", " "
    for char in line:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and previous in " \t":
            break
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
        previous = char
    return depth


def yaml_logical_lines(text: str) -> list[str]:
    """The lines of a YAML text, with a flow collection that spans lines joined onto its first line."""
    lines: list[str] = []
    depth = 0
    for raw in text.splitlines():
        if depth > 0:
            lines[-1] += " " + raw.strip()
        else:
            lines.append(raw)
        depth = max(depth + yaml_open_brackets(raw), 0)
    return lines


def read_flat_yaml(text: str) -> dict[str, Json]:
    """The top two levels of a YAML mapping such as a Prometheus web config, without a YAML library.

    Top-level keys map to a scalar or to a mapping of their direct children (scalars, or one-line flow
    mappings); anything deeper (lists, nested mappings, block scalars) is skipped. JSON, which is YAML,
    is read as JSON.
    """
    try:
        loaded = json.loads(text)
    except ValueError:
        loaded = None
    if isinstance(loaded, dict):
        return loaded
    document: dict[str, Json] = {}
    top_indent: int | None = None
    section: dict[str, Json] | None = None
    child_indent: int | None = None
    for raw in yaml_logical_lines(text):
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "%")) or stripped in ("---", "..."):
            continue
        indent = len(line) - len(line.lstrip(" "))
        if top_indent is None:
            top_indent = indent
        match = YAML_KEY.match(stripped)
        if indent <= top_indent:
            section = None
            if match is None:
                continue
            key, value = yaml_key(match), (match.group(4) or "").strip()
            if value.startswith("{"):
                document[key] = yaml_flow_mapping(value)
            elif yaml_scalar(value) is None:
                section = document[key] = {}
                child_indent = None
            else:
                document[key] = yaml_scalar(value)
            continue
        if section is None:
            continue
        if child_indent is None:
            child_indent = indent
        if indent != child_indent or match is None:
            continue  # deeper levels and list items
        value = (match.group(4) or "").strip()
        section[yaml_key(match)] = yaml_flow_mapping(value) if value.startswith("{") else yaml_scalar(value)
    return document


def web_config_facts(path: str | None) -> Json:
    """What a Prometheus web config (--web.config.file) enforces: TLS, its minimum version, basic auth.

    Of the basic-auth users only their number and whether every hash is bcrypt leave this function.
    """
    if path is None:
        return {"configured": False}
    if not os.path.exists(at_root(path)):
        return {"configured": True, "present": False}
    text = read_text(at_root(path))
    if text is None:
        return unavailable(f"{path} not readable")
    config = read_flat_yaml(text)
    tls = config.get("tls_server_config")
    tls = tls if isinstance(tls, dict) else {}
    users = config.get("basic_auth_users")
    users = users if isinstance(users, dict) else {}
    min_version = tls.get("min_version")
    info = file_facts(path)
    return {
        "configured": True,
        "present": True,
        "file": {key: info.get(key) for key in ("mode", "owner", "group")},
        "tls": bool((tls.get("cert_file") or tls.get("cert")) and (tls.get("key_file") or tls.get("key"))),
        "cert_file": tls.get("cert_file"),
        "key_file": tls.get("key_file"),
        # The exporter toolkit's default when TLS is on and min_version is not written is TLS 1.2.
        "min_version": str(min_version) if min_version else ("TLS12" if tls else None),
        "min_version_set": bool(min_version),
        "basic_auth_users": len(users),
        "basic_auth_bcrypt_only": all(str(value).startswith(BCRYPT_PREFIXES) for value in users.values()),
    }


def absolute_path(path: str | None, cwd: str) -> str | None:
    if not path:
        return None
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(cwd, path))


def program_facts(component: str, processes: list[Process]) -> Json:
    """A Prometheus program's listen addresses and web config, from the command line of its first process."""
    if not processes:
        return {"running": False, "processes": 0}
    argv, cwd = processes[0].argv, processes[0].cwd
    flags = command_flags(argv[1:])

    def last(name: str) -> str | None:
        values = flags.get(name)
        return values[-1] if values else None

    listen = [address for address in flags.get("web.listen-address", []) if address] or [
        DEFAULT_LISTEN_ADDRESS[component]
    ]
    web_config_file = absolute_path(last("web.config.file"), cwd)
    facts: dict[str, Json] = {
        "running": True,
        "processes": len(processes),
        "listen_addresses": listen,
        "wildcard_addresses": [address for address in listen if listens_everywhere(address)],
        "web_config_file": web_config_file,
        "web_config": safe(lambda: web_config_facts(web_config_file)),
    }
    if component == "node_exporter":
        facts["textfile_directory"] = last("collector.textfile.directory")
    elif component in ("prometheus", "blackbox_exporter"):
        facts["config_file"] = absolute_path(last("config.file"), cwd)
    elif component == "alertmanager":
        # Gossip between Alertmanagers; on by default on every interface, "" turns it off.
        cluster = last("cluster.listen-address")
        facts["cluster_listen_address"] = "0.0.0.0:9094" if cluster is None else cluster
    return facts


def file_sd_targets(path: str) -> Json:
    """Every target of a Prometheus file_sd JSON file with its instance label (the target when unset)."""
    text = read_text(at_root(path))
    if text is None:
        return unavailable(f"{path} {'not readable' if os.path.exists(at_root(path)) else 'missing'}")
    try:
        groups = json.loads(text)
    except ValueError:
        return unavailable(f"{path} is not JSON")
    if not isinstance(groups, list) or not all(
        isinstance(group, dict) and isinstance(group.get("targets", []), list) for group in groups
    ):
        return unavailable(f"{path} is not a list of target groups")
    targets = []
    for group in groups:
        labels = group.get("labels") if isinstance(group.get("labels"), dict) else {}
        for target in group.get("targets", []):
            targets.append({"instance": str(labels.get("instance", target)), "target": str(target)})
    return targets


def collect_monitoring(proc: str = "/proc", file_sd: str = FILE_SD_DIRECTORY) -> Json:
    """The node exporter and the monitoring server's programs as they run, and who Prometheus scrapes."""
    found = find_processes(MONITORING_PROGRAMS, proc)
    facts: dict[str, Json] = {
        component: safe(functools.partial(program_facts, component, processes))
        for component, processes in found.items()
    }
    prometheus = facts["prometheus"]
    if isinstance(prometheus, dict) and prometheus.get("running"):
        prometheus["node_targets"] = file_sd_targets(os.path.join(file_sd, "node.json"))
        blackbox = file_sd_targets(os.path.join(file_sd, "blackbox.json"))
        prometheus["blackbox_targets"] = len(blackbox) if isinstance(blackbox, list) else blackbox
    return facts


def query_prometheus(address: str, ca_file: str, password: str, query: str) -> str:
    """The raw answer of Prometheus' instant-query API at ``address`` (TLS verified against the site CA)."""
    context = ssl.create_default_context(cafile=ca_file)
    url = f"https://{address}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    request = urllib.request.Request(url)
    token = base64.b64encode(f"prometheus:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=API_TIMEOUT, context=context) as response:
        return str(response.read(API_LIMIT).decode("utf-8", "replace"))


def vector_series(answer: str) -> list[tuple[dict[str, str], str]]:
    """(labels, value) of each series of an instant-query answer; ValueError when it is not a successful vector."""
    document = json.loads(answer)
    data = document.get("data") if isinstance(document, dict) else None
    if document.get("status") != "success" or not isinstance(data, dict) or data.get("resultType") != "vector":
        raise ValueError(f"not a successful vector answer: status {document.get('status')!r}")
    series = []
    for item in data.get("result") or []:
        metric, value = item.get("metric"), item.get("value")
        if isinstance(metric, dict) and isinstance(value, list) and len(value) == 2:
            series.append(({str(k): str(v) for k, v in metric.items()}, str(value[1])))
    return series


def interface_states(result_answer: str, latency_answer: str) -> Json:
    """Each probed interface's verdict ({up, result, latency_seconds}) from the two answers of INTERFACE_QUERIES."""
    states: dict[str, dict[str, Json]] = {}
    for labels, _value in vector_series(result_answer):
        name, result = labels.get("interface"), labels.get("result")
        if name and result:
            states[name] = {"up": result == "ok", "result": result, "latency_seconds": None}
    for labels, value in vector_series(latency_answer):
        state = states.get(labels.get("interface", ""))
        if state is not None:
            with contextlib.suppress(ValueError):  # "NaN" parses; anything else leaves the round trip unknown
                state["latency_seconds"] = round(float(value), 6)
    return states


def prometheus_api(prometheus: Json, pki: str) -> tuple[str, str, str] | dict[str, str]:
    """(address, CA file, password) to ask the running Prometheus over its own API, or why it cannot be asked."""
    listen = prometheus.get("listen_addresses") if isinstance(prometheus, dict) else None
    address = listen[0] if isinstance(listen, list) and listen else None
    password = read_text(PROMETHEUS_PASSWORD_FILE)
    if not isinstance(address, str) or listens_everywhere(address):
        return unavailable(f"Prometheus listens on {address!r}, not on an address of its own to ask")
    if password is None:
        return unavailable(f"{PROMETHEUS_PASSWORD_FILE} not readable")
    return address, os.path.join(pki, "ca.crt"), password.strip()


def probed_interfaces(prometheus: dict[str, Json], pki: str) -> Json:
    """What the running Prometheus last saw of every interface probe, asked over its own API."""
    if HOST.root != "/":
        return unavailable(f"Prometheus' answers: {NOT_RECORDED}")
    api = prometheus_api(prometheus, pki)
    if isinstance(api, dict):
        return api
    answers = {name: query_prometheus(*api, query) for name, query in INTERFACE_QUERIES.items()}
    return interface_states(answers["result"], answers["latency"])


def query_series(queries: dict[str, str], pki: str, proc: str = "/proc") -> Json:
    """The series ([{labels, value}]) of each named instant query, asked of this host's running Prometheus
    (`medinfra drill failover` reads the HIS probes after a failover this way)."""
    processes = find_processes({"prometheus": MONITORING_PROGRAMS["prometheus"]}, proc)["prometheus"]
    api = prometheus_api(program_facts("prometheus", processes), pki)
    if isinstance(api, dict):
        return api
    return {
        name: [{"labels": labels, "value": value} for labels, value in vector_series(query_prometheus(*api, query))]
        for name, query in queries.items()
    }
