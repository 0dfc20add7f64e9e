"""PAM stacks as libpam runs them: includes followed, module-line arguments over the modules' conf files."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from .base import Json, at_root, config_lines, key_values, read_text, sorted_files, unavailable

PAM_SERVICES = ("common-auth", "common-account", "common-password", "common-session", "su", "sshd", "login", "sudo")

PAM_DIRECTORY = "/etc/pam.d"

PAM_LINE = re.compile(r"(-?\w+)\s+(\[[^\]]*\]|\S+)\s+(\S+)\s*(.*)")


def pam_stack(
    service: str, root: str = "/", only_type: str | None = None, depth: int = 0
) -> list[dict[str, Json]] | None:
    """A service's stack as libpam runs it: `@include` inlined, `include`/`substack` controls replaced by the
    included file's lines of that type; each entry says which file it came from. None if the file is missing."""
    text = read_text(at_root(f"{PAM_DIRECTORY}/{service}", root))
    if text is None:
        return None
    entries: list[dict[str, Json]] = []
    for line in config_lines(text):
        if line.startswith("@include"):
            included = pam_stack(line.split()[-1], root, only_type, depth + 1) if depth < 8 else None
            entries.extend(included or [])
            continue
        match = PAM_LINE.match(line)
        if not match:
            continue
        kind, control, module, args = match.groups()
        kind = kind.lstrip("-")
        if only_type is not None and kind != only_type:
            continue
        if control in ("include", "substack"):
            included = pam_stack(module, root, kind, depth + 1) if depth < 8 else None
            entries.extend(included or [])
            continue
        entries.append(
            {"type": kind, "control": control, "module": module.rsplit("/", 1)[-1], "args": args.split(),
             "file": service}
        )
    return entries


def module_settings(conf: Mapping[str, str], args: Iterable[str]) -> dict[str, str]:
    """A PAM module's settings as it applies them: its conf file, then the module line's arguments, which win."""
    settings = dict(conf)
    for arg in args:
        key, equals, value = arg.partition("=")
        settings[key] = value if equals else ""
    return settings


def collect_pam(root: str = "/") -> Json:
    try:
        directory = at_root(PAM_DIRECTORY, root)
        names = sorted(n for n in os.listdir(directory) if os.path.isfile(os.path.join(directory, n)))
    except OSError as exc:
        return unavailable(f"{PAM_DIRECTORY}: {exc.strerror}")
    services: dict[str, Json] = {}
    for name in sorted({*PAM_SERVICES, *names}):
        stack = pam_stack(name, root)
        services[name] = stack if stack is not None else unavailable(f"{PAM_DIRECTORY}/{name} missing")
    stacks = {name: entries for name, entries in services.items() if isinstance(entries, list)}
    pwquality_files = ["/etc/security/pwquality.conf", *sorted_files("/etc/security/pwquality.conf.d/*.conf", root)]
    pwquality = key_values([at_root(path, root) for path in pwquality_files], separator="=")
    faillock = key_values([at_root("/etc/security/faillock.conf", root)], separator="=")
    entries = [e for service in stacks.values() for e in service]
    pwquality_lines = [
        {"service": name, "control": e["control"], "settings": module_settings(pwquality, e["args"])}
        for name, service in stacks.items()
        for e in service
        if e["module"] == "pam_pwquality.so" and e["type"] == "password"
    ]
    return {
        "services": services,
        "modules": {name: sorted({e["module"] for e in service}) for name, service in stacks.items()},
        "pam_unix_args": sorted({arg for e in entries if e["module"] == "pam_unix.so" for arg in e["args"]}),
        "pwquality": pwquality,
        "pwquality_lines": pwquality_lines,
        "faillock": faillock,
    }
