"""Audit rules in force: the kernel's loaded list where it can be read, else rules.d as augenrules loads it."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .base import Json, at_root, command_failure, config_lines, key_values, read_text, run, sorted_files, unavailable


def audit_rule_fields(words: list[str]) -> tuple[str, str, dict[str, str]]:
    """(list, action, fields) of one `-a`/`-A` or `-w` rule; a watch is an `always,exit` rule on its path."""
    if words[0] == "-w":
        return "exit", "always", {"path": words[1] if len(words) > 1 else ""}
    pair = (words[1] if len(words) > 1 else "").split(",")
    actions = [part for part in pair if part in ("always", "never")]
    lists = [part for part in pair if part not in ("always", "never")]
    fields = {}
    for index, word in enumerate(words):
        if word == "-F" and index + 1 < len(words):
            field = re.match(r"^([^!=<>&]+)(?:!=|>=|<=|&=|=|>|<|&)(.*)$", words[index + 1])
            if field:
                fields[field.group(1)] = field.group(2)
    return (lists[0] if lists else ""), (actions[0] if actions else ""), fields


def audit_suppression(never: tuple[str, dict[str, str]], rule: tuple[str, dict[str, str]]) -> bool:
    """Whether a `never` rule placed before `rule` on the same list keeps it from recording anything."""
    never_list, never_fields = never
    rule_list, rule_fields = rule
    if never_list == "task":
        return True  # no audit context for any task: no syscall rule ever fires
    if never_list != rule_list:
        return False
    target = never_fields.get("path") or never_fields.get("dir")
    if target is None:
        return True  # no path limit: it swallows whatever reaches it first (other fields only narrow whose)
    path = rule_fields.get("path") or rule_fields.get("dir") or ""
    if "dir" in never_fields:
        return path == target or path.startswith(target.rstrip("/") + "/")
    return path == target


def effective_audit_rules(lines: Iterable[str]) -> dict[str, Json]:
    """The kernel's rule lists after these `auditctl` lines run in order (augenrules' order for rules.d, or
    `auditctl -l`): `-D` clears, `-A` prepends, `-a`/`-w` append, `-e` sets the state. A rule is in force only if
    auditing is enabled and no earlier `never` rule on its list, no `never,task` rule and no exclude of its
    record types covers it; the others are listed with what suppressed them."""
    ordered: list[str] = []
    enabled: int | None = None
    backlog: int | None = None
    for line in lines:
        words = line.split()
        if not words:
            continue
        if words[0] == "-D":
            ordered = []
        elif words[0] == "-e" and len(words) > 1 and words[1].isdigit():
            enabled = int(words[1])
        elif words[0] == "-b" and len(words) > 1 and words[1].isdigit():
            backlog = int(words[1])
        elif words[0] == "-A":
            ordered.insert(0, line)
        elif words[0] in ("-a", "-w"):
            ordered.append(line)
    in_force: list[str] = []
    suppressed: list[dict[str, str]] = []
    nevers: list[tuple[str, tuple[str, dict[str, str]]]] = []
    excluded_all = ""
    for line in ordered:
        rule_list, action, fields = audit_rule_fields(line.split())
        if rule_list == "exclude" and action == "always":
            types = set(fields.get("msgtype", "").split(",")) if "msgtype" in fields else {"*"}
            if types & {"*", "SYSCALL", "PATH", "CWD", "EXECVE", "CONFIG_CHANGE"}:
                excluded_all = excluded_all or line
            continue
        if action == "never":
            nevers.append((line, (rule_list, fields)))
            continue
        covering = (text for text, never in nevers if audit_suppression(never, (rule_list, fields)))
        cause = excluded_all or next(covering, "")
        if enabled == 0:
            cause = "-e 0 (auditing disabled)"
        if cause:
            suppressed.append({"rule": line, "by": cause})
        else:
            in_force.append(line)
    return {"enabled": enabled, "backlog_limit": backlog, "rules": in_force, "suppressed": suppressed}


def audit_rules_on_disk(root: str = "/") -> list[str]:
    return [
        line
        for path in sorted_files("/etc/audit/rules.d/*.rules", root)
        for line in config_lines(read_text(at_root(path, root)))
    ]


def augenrules_order(lines: Iterable[str]) -> list[str]:
    """The rules augenrules loads from rules.d: one `-D` first wherever it was written, the rules in file order,
    and only the last `-e` at the end (augenrules moves these control lines)."""
    lines = list(lines)
    rules = [line for line in lines if not re.match(r"^\s*-(D\s*$|e\b|b\b|f\b)", line)]
    backlog = [line for line in lines if re.match(r"^\s*-b\b", line)]
    enable = [line for line in lines if re.match(r"^\s*-e\b", line)]
    return [*backlog[-1:], *rules, *enable[-1:]]


def collect_auditd() -> Json:
    config = key_values([at_root("/etc/audit/auditd.conf")], separator="=")
    on_disk = audit_rules_on_disk()
    facts: dict[str, Json] = {
        "config": config or unavailable("/etc/audit/auditd.conf missing"),
        "rules_on_disk": on_disk,
    }
    rc, out, err = run(["auditctl", "-s"])
    if rc == 0:
        status = {}
        for line in out.splitlines():
            key, _sep, value = line.partition(" ")
            status[key] = int(value) if value.strip().isdigit() else value.strip()
        facts["status"] = status
        rc, out, err = run(["auditctl", "-l"])
        facts["rules_loaded"] = out.splitlines() if rc == 0 else command_failure(["auditctl", "-l"], rc, err)
    else:
        reason = command_failure(["auditctl", "-s"], rc, err)
        facts["status"] = reason
        facts["rules_loaded"] = reason
    # What is in force: the kernel's loaded rules where they can be read; else what augenrules would load.
    loaded = facts["rules_loaded"]
    if isinstance(loaded, list):
        effective = effective_audit_rules(loaded)
        effective["enabled"] = facts["status"].get("enabled", effective["enabled"])
        effective["backlog_limit"] = facts["status"].get("backlog_limit", effective["backlog_limit"])
        if effective["enabled"] == 0:
            effective = effective_audit_rules([*loaded, "-e 0"])
        facts["effective"] = {"source": "auditctl -l", **effective}
    else:
        facts["effective"] = rules_d_effective(on_disk)
    return facts


def rules_d_effective(on_disk: list[str]) -> dict[str, Json]:
    """What augenrules would put in force from rules.d, where the kernel's own list cannot be read. auditd turns
    auditing on when it starts (enabled 1); only an `-e` line changes that."""
    effective = effective_audit_rules(augenrules_order(on_disk))
    if effective["enabled"] is None:
        effective["enabled"] = 1
    return {"source": "/etc/audit/rules.d", **effective}
