"""nftables: `nft -j list ruleset`, its tables, base chains and the ruleset the controller evaluates."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from .base import Json, command_failure, run


def collect_nftables() -> Json:
    rc, out, err = run(["nft", "-j", "list", "ruleset"])
    if rc != 0:
        return command_failure(["nft", "-j", "list", "ruleset"], rc, err)
    flags: dict[tuple[str, str], list[str]] = {}
    for item in json.loads(out).get("nftables", []):
        table = item.get("table")
        if isinstance(table, dict) and "flags" in table:
            argv = ["nft", "list", "table", str(table["family"]), str(table["name"])]
            rc, text, err = run(argv)
            if rc != 0:
                return command_failure(argv, rc, err)
            flags[(table["family"], table["name"])] = table_flags(text)
    return nftables_facts(out, flags)


def table_flags(text: str) -> list[str]:
    """A table's flags from `nft list table` text, e.g. `flags dormant`."""
    for line in text.splitlines()[1:]:
        if line.rstrip().endswith("{"):
            break  # a set, map or chain: their flags are not the table's
        match = re.match(r"^\s*flags\s+(.+?)\s*$", line)
        if match:
            return [flag.strip() for flag in match.group(1).split(",")]
    return []


def nftables_facts(text: str, flags: Mapping[tuple[str, str], list[str]] | None = None) -> Json:
    """`nft -j list ruleset` output: tables, base chains with their policy, and the ruleset itself. nft 1.0.6
    misprints a table's flags in JSON (`"flags": "inet"` for a dormant table): `flags` are the table's flags
    as `nft list table` prints them, and replace the JSON's."""
    items = json.loads(text).get("nftables", [])
    for item in items:
        table = item.get("table")
        if isinstance(table, dict) and flags and (table.get("family"), table.get("name")) in flags:
            table["flags"] = flags[(table["family"], table["name"])]
    tables = []
    dormant: set[tuple[str, str]] = set()
    chains: dict[tuple[str, str, str], dict[str, Json]] = {}
    for item in items:
        if "table" in item:
            table = item["table"]
            flags = table.get("flags", [])
            is_dormant = "dormant" in ([flags] if isinstance(flags, str) else flags)
            if is_dormant:
                dormant.add((table["family"], table["name"]))
            tables.append({"family": table["family"], "name": table["name"], "dormant": is_dormant})
        elif "chain" in item:
            chain = item["chain"]
            chains[(chain["family"], chain["table"], chain["name"])] = {
                "family": chain["family"],
                "table": chain["table"],
                "name": chain["name"],
                "hook": chain.get("hook", ""),
                "type": chain.get("type", ""),
                "policy": chain.get("policy", ""),
                "dormant": (chain["family"], chain["table"]) in dormant,  # a dormant table filters nothing
                "rules": 0,
            }
        elif "rule" in item:
            rule = item["rule"]
            key = (rule["family"], rule["table"], rule["chain"])
            if key in chains:
                chains[key]["rules"] += 1
    return {
        "tables": tables,
        "chains": list(chains.values()),
        "rule_count": sum(c["rules"] for c in chains.values()),
        # The whole ruleset, which the controller evaluates for probe packets as the kernel would.
        "ruleset": [item for item in items if "metainfo" not in item],
    }
