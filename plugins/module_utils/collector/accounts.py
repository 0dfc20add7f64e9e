"""Accounts (never their hashes), login.defs, and sudo as sudo reads its files."""

from __future__ import annotations

import grp
import os
import re
from collections.abc import Iterable, Mapping

from .base import Json, at_root, config_lines, group_entries, key_values, passwd_entries, read_text, unavailable

NO_LOGIN_SHELLS = frozenset({"", "/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false"})


def shadow_state(field: str) -> tuple[str, str]:
    """(state, scheme) of a shadow password field; the hash itself never leaves this function."""
    if field == "":
        return "empty", ""
    if field.startswith(("!", "*")):
        return "locked", ""
    scheme = {"$y$": "yescrypt", "$6$": "sha512", "$5$": "sha256", "$2b$": "bcrypt", "$1$": "md5"}
    for prefix, name in scheme.items():
        if field.startswith(prefix):
            return "set", name
    return "set", "des" if len(field) == 13 else "unknown"


def collect_accounts() -> Json:
    shadow: dict[str, list[str]] = {}
    shadow_text = read_text(at_root("/etc/shadow"))
    for line in config_lines(shadow_text, comment=""):
        fields = line.split(":")
        if len(fields) >= 8:
            shadow[fields[0]] = fields
    users = []
    for entry in sorted(passwd_entries(), key=lambda e: (e.pw_uid, e.pw_name)):
        record: dict[str, Json] = {
            "name": entry.pw_name,
            "uid": entry.pw_uid,
            "gid": entry.pw_gid,
            "home": entry.pw_dir,
            "shell": entry.pw_shell,
            "login_shell": entry.pw_shell not in NO_LOGIN_SHELLS,
            "passwd_field_shadowed": entry.pw_passwd in ("x", "*", "!"),
        }
        fields = shadow.get(entry.pw_name, [])
        if shadow_text is None:
            record["password"] = "unknown"
        elif not fields:
            record["password"] = "no_shadow_entry"
        else:
            state, scheme = shadow_state(fields[1])
            record.update(
                password=state,
                hash_scheme=scheme,
                max_days=int(fields[4]) if fields[4].isdigit() else None,
                min_days=int(fields[3]) if fields[3].isdigit() else None,
                warn_days=int(fields[5]) if fields[5].isdigit() else None,
                inactive_days=int(fields[6]) if fields[6].isdigit() else None,
            )
        users.append(record)
    uids: dict[int, list[str]] = {}
    for user in users:
        uids.setdefault(user["uid"], []).append(user["name"])
    groups = sorted(group_entries(), key=lambda g: (g.gr_gid, g.gr_name))
    gids: dict[int, list[str]] = {}
    for group in groups:
        gids.setdefault(group.gr_gid, []).append(group.gr_name)
    return {
        "shadow_readable": shadow_text is not None,
        "users": users,
        "uid0": uids.get(0, []),
        "gid0_groups": gids.get(0, []),
        "empty_password": [u["name"] for u in users if u.get("password") == "empty"],
        "duplicate_uids": sorted(str(uid) for uid, names in uids.items() if len(names) > 1),
        "duplicate_gids": sorted(str(gid) for gid, names in gids.items() if len(names) > 1),
        "duplicate_user_names": sorted({u["name"] for u in users if [v["name"] for v in users].count(u["name"]) > 1}),
        "system_accounts_with_login_shell": [u["name"] for u in users if u["uid"] < 1000 and u["login_shell"]],
        "login_users": [u["name"] for u in users if u["login_shell"] and u.get("password") != "locked"],
        "shadow_group_members": group_members("shadow", groups, users),
    }


def group_members(name: str, groups: Iterable[grp.struct_group], users: Iterable[Mapping[str, Json]]) -> list[str]:
    """Who is in a group: listed in /etc/group, or having it as primary group (which /etc/group does not show)."""
    group = next((g for g in groups if g.gr_name == name), None)
    if group is None:
        return []
    primary = [str(u["name"]) for u in users if u["gid"] == group.gr_gid]
    return sorted({*group.gr_mem, *primary})


def collect_login_defs() -> Json:
    values = key_values([at_root("/etc/login.defs")])
    return values or unavailable("/etc/login.defs missing")


SUDOERS = "/etc/sudoers"


def sudoers_included(directory: str, root: str = "/") -> list[str]:
    """Files sudo reads from an includedir: in order, skipping names with a dot or ending in `~` (as sudo does)."""
    try:
        names = sorted(os.listdir(at_root(directory, root)))
    except OSError:
        return []
    return [
        os.path.join(directory, name)
        for name in names
        if "." not in name and not name.endswith("~") and os.path.isfile(at_root(os.path.join(directory, name), root))
    ]


def sudoers_lines(path: str, root: str = "/", depth: int = 0) -> list[tuple[str, str]]:
    """(file, logical line) in the order sudo reads them: continuations joined, comments dropped, `@include`
    and `@includedir` (and their `#` spellings) followed where they stand."""
    text = read_text(at_root(path, root))
    if text is None:
        return []
    lines: list[tuple[str, str]] = []
    for raw in re.sub(r"\\\n", " ", text).splitlines():
        line = raw.strip()
        include = re.match(r"^[@#](include|includedir)\s+(\S+)", line)
        if include:
            if depth < 8:
                target = include.group(2)
                target = target if target.startswith("/") else os.path.join(os.path.dirname(path), target)
                files = sudoers_included(target, root) if include.group(1) == "includedir" else [target]
                for included in files:
                    lines.extend(sudoers_lines(included, root, depth + 1))
            continue
        line = re.sub(r"(^|\s)#(?!\d).*$", "", line).strip()
        if line:
            lines.append((path, line))
    return lines


def sudo_defaults(entries: Iterable[tuple[str, str]]) -> tuple[dict[str, Json], list[dict[str, str]]]:
    """The global Defaults in force (the last setting of each wins) and every scoped one (`Defaults:user`,
    `Defaults>runas`, `Defaults@host`, `Defaults!command`), which overrides the global value for its scope."""
    effective: dict[str, Json] = {}
    scoped: list[dict[str, str]] = []
    for path, line in entries:
        match = re.match(r"^Defaults([:>@!]\S+)?\s+(.*)$", line)
        if not match:
            continue
        for setting in re.findall(r'(?:[^,"]|"[^"]*")+', match.group(2)):
            setting = setting.strip()
            if not setting:
                continue
            if match.group(1):
                scoped.append({"scope": match.group(1), "setting": setting, "file": path})
                continue
            parts = re.match(r"^(!*)([^=+\-\s]+)\s*([+-]?=)?\s*(.*)$", setting)
            if parts is None:
                continue
            name, operator, value = parts.group(2, 3, 4)
            if operator:
                effective[name] = value.strip().strip('"')
            else:
                effective[name] = setting.count("!") % 2 == 0
    return effective, scoped


def collect_sudo(root: str = "/") -> Json:
    entries = sudoers_lines(SUDOERS, root)
    effective, scoped = sudo_defaults(entries)
    rules = [(path, line) for path, line in entries if not re.match(r"^(Defaults|\w+_Alias)\b", line)]
    negated_scoped = {item["setting"].lstrip("!") for item in scoped if item["setting"].startswith("!")}
    logfile = effective.get("logfile")
    return {
        "files_read": sorted({path for path, _line in entries}),
        "defaults": effective,
        "scoped_defaults": scoped,
        "use_pty": effective.get("use_pty") is True and "use_pty" not in negated_scoped,
        "logfile": logfile if isinstance(logfile, str) and logfile else None,
        "authenticate_disabled": effective.get("authenticate") is False or "authenticate" in negated_scoped,
        "nopasswd_principals": sorted({line.split()[0] for _path, line in rules if "NOPASSWD" in line}),
        "rule_count": len(rules),
    }
