"""What the kernel's nftables input or forward hook does with one new connection, from `nft -j list ruleset`.

A compliance PASS is built on the `accept`/`drop` this module returns, so it walks the ruleset as the kernel
does rather than judging a rule by its shape: `ip saddr 0.0.0.0/0`, a `jump` to a chain that accepts, or a set
`{ 0.0.0.0/1, 128.0.0.0/1 }` open a port however harmless the rule looks, and an `accept` ends only its own
base chain (a later base chain, in any table, can still drop the packet).

Every match is three-valued: it matches, it does not, or it cannot be modelled. A match that cannot be modelled
only matters when a verdict follows it in the same rule; then the answer is `unknown`, never a guess. A statement
this module does not know is treated as a possible verdict for the same reason.

nftables 1.0.6 (Debian 12) misprints a table with exactly one flag: `"flags"` then holds freed memory (seen: the
table's own name, another table's name, a truncated document). Such a table may be dormant or not, so the
ruleset is evaluated both ways and a verdict is given only when the two agree.

Pure: no I/O, standard library only.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any

MAX_JUMP_DEPTH = 16  # the kernel's NFT_JUMP_STACK_SIZE
MAX_UNREADABLE_TABLES = 6  # 2**6 evaluations at most; more tables with misprinted flags -> unknown
_NAMED_PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}
_CT_STATES = {"invalid": 1, "established": 2, "related": 4, "new": 8, "untracked": 64}
# The names nft prints for IP protocol numbers (from /etc/protocols) that a ruleset may compare with.
_PROTOCOLS = {
    "icmp": 1,
    "igmp": 2,
    "tcp": 6,
    "udp": 17,
    "dccp": 33,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "icmpv6": 58,
    "ipv6-icmp": 58,
    "comp": 108,
    "sctp": 132,
    "udplite": 136,
}
# Headers a TCP or UDP packet does not carry: nft guards a match on them with an l4proto test that fails.
_OTHER_TRANSPORTS = frozenset({"icmp", "icmpv6", "igmp", "dccp", "gre", "esp", "ah", "comp", "sctp", "udplite"})
_NFPROTOS = {"ipv4": 2, "ipv6": 10}
_ETHERTYPES = {"ip": 0x0800, "arp": 0x0806, "vlan": 0x8100, "ip6": 0x86DD}
_HOOK_FAMILIES = {4: frozenset({"inet", "ip"}), 6: frozenset({"inet", "ip6"})}
_HOOKS = frozenset({"input", "forward"})
# Statements that neither decide nor stop a rule.
_HARMLESS_STATEMENTS = frozenset({"counter", "log", "notrack", "dup", "ct helper"})
# Statements that act as a match which may fail (over the rate, the quota, the connection count, a full set).
_MAY_STOP_RULE = frozenset({"limit", "quota", "ct count", "set", "map", "meter"})
_SIMPLE_VERDICTS = frozenset({"accept", "drop", "continue", "return"})
# Meta keys nft prints without the `meta` keyword.
_UNQUALIFIED_META = frozenset({"iif", "oif", "iifname", "oifname", "iifgroup", "oifgroup"})
_IFNAME_KEYS = frozenset({"iif", "oif", "iifname", "oifname"})
_BINARY_OPERATORS = ("&", "|", "^", "<<", ">>")


@dataclass(frozen=True)
class Probe:
    """One new connection through `hook` ("input": to this host; "forward": routed through it). `daddr=None`: no
    destination address is known, so a rule that matches on one cannot be decided. `iifname`/`oifname=None`: the
    interface is not known, so a rule that matches on one cannot be decided, but for "lo", which a packet from
    another host never arrives on. `sport=None`: any port a client may send from, so a rule that matches on the
    source port cannot be decided (`tcp sport 50000-60999 accept` admits the clients that happen to use one)."""

    saddr: str
    protocol: str
    dport: int
    daddr: str | None = None
    sport: int | None = None
    iifname: str | None = None
    oifname: str | None = None
    ct_state: str = "new"
    hook: str = "input"


@dataclass(frozen=True)
class Verdict:
    """`verdict` is "accept", "drop", "reject" or "unknown"; `decided_by` names the deciding rule or policy
    (or what could not be modelled, and where); `path` lists the chains walked, base chains and jump targets."""

    verdict: str
    decided_by: str
    path: tuple[str, ...]


class _Unmodelled(Exception):
    """Raised with the text of what this module cannot model; it becomes an `unknown` verdict where it matters."""


@dataclass(frozen=True)
class _Index:
    """The ruleset's objects by key; chains, rules and sets are keyed (family, table, name)."""

    tables: dict[tuple[str, str], dict[str, Any]]
    chains: dict[tuple[str, str, str], dict[str, Any]]
    rules: dict[tuple[str, str, str], list[dict[str, Any]]]
    sets: dict[tuple[str, str, str], dict[str, Any]]


@dataclass(frozen=True)
class _Scope:
    """The probe as typed values, and the table whose named sets `@name` refers to."""

    probe: Probe
    saddr: IPv4Address | IPv6Address
    daddr: IPv4Address | IPv6Address | None
    index: _Index
    table: tuple[str, str]

    @property
    def version(self) -> int:
        return self.saddr.version

    def elements(self, reference: str) -> list[Any]:
        named = self.index.sets.get((*self.table, reference[1:]))
        if named is None:
            raise _Unmodelled(f"set {reference} is not in table {' '.join(self.table)}")
        elements = named.get("elem", [])
        return elements if isinstance(elements, list) else [elements]


@dataclass(frozen=True)
class _Field:
    """The probe's value for one match key, and how to read the ruleset's literals for that key."""

    text: str
    value: Any
    parse: Callable[[Any], Any]
    ifname: bool = False  # an interface: iif/oif, or iifname/oifname where a trailing `*` matches any suffix
    bitmask: bool = False  # op `in` is a flag test, `==` an exact compare


@dataclass(frozen=True)
class _Action:
    """What a rule does: kind is a verdict, "jump"/"goto" (detail: the chain) or "unknown" (detail: why)."""

    kind: str
    detail: str = ""


@dataclass(frozen=True)
class _Outcome:
    verdict: str
    decided_by: str
    path: tuple[str, ...] = ()


# --- public API --------------------------------------------------------------------------------------------


def probe_verdict(ruleset: list[dict[str, Any]], probe: Probe) -> Verdict:
    """The verdict of the probe's hook on it, from the list under `nft -j list ruleset`'s "nftables" key.

    Raises ValueError for a probe that is not a TCP or UDP packet with valid addresses; a ruleset that cannot
    be read gives `unknown`, because an audit must report it rather than stop."""
    saddr, daddr = _probe_addresses(probe)
    try:
        index = _index(ruleset)
        unreadable = [key for key in _unreadable_tables(index) if _filters(index, key, probe.hook, saddr.version)]
        if len(unreadable) > MAX_UNREADABLE_TABLES:
            return Verdict("unknown", f"{len(unreadable)} tables have misprinted flags", ())
        worlds = [
            frozenset(key for key, dormant in zip(unreadable, choice, strict=True) if dormant)
            for choice in itertools.product((False, True), repeat=len(unreadable))
        ]
        outcomes = [(world, _evaluate(index, probe, saddr, daddr, _dormant_tables(index) | world)) for world in worlds]
    except _Unmodelled as exc:
        return Verdict("unknown", str(exc), ())
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        return Verdict("unknown", f"ruleset JSON not understood ({type(exc).__name__}: {exc})", ())
    return _combine(outcomes, unreadable, index)


def render_rule(expressions: list[dict[str, Any]]) -> str:
    """Compact nft-like text of a rule's `expr` list, for findings a person reads (not for nft to parse)."""
    return " ".join(_render_statement(expression) for expression in expressions)


# --- probe and ruleset -------------------------------------------------------------------------------------


def _probe_addresses(probe: Probe) -> tuple[IPv4Address | IPv6Address, IPv4Address | IPv6Address | None]:
    """The probe's addresses, after checking that the probe is a packet this module can follow."""
    if probe.protocol not in ("tcp", "udp"):
        raise ValueError(f"probe protocol must be tcp or udp, not {probe.protocol!r}")
    for port in (probe.dport, *(() if probe.sport is None else (probe.sport,))):
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"probe port out of range: {port!r}")
    if probe.hook not in _HOOKS:
        raise ValueError(f"probe hook must be one of {sorted(_HOOKS)}, not {probe.hook!r}")
    if probe.ct_state not in _CT_STATES:
        raise ValueError(f"probe ct_state must be one of {sorted(_CT_STATES)}, not {probe.ct_state!r}")
    saddr = ip_address(probe.saddr)
    daddr = None if probe.daddr is None else ip_address(probe.daddr)
    if daddr is not None and daddr.version != saddr.version:
        raise ValueError("probe saddr and daddr must be of the same IP version")
    return saddr, daddr


def _index(ruleset: Sequence[Mapping[str, Any]]) -> _Index:
    index = _Index({}, {}, {}, {})
    for item in ruleset:
        if "table" in item:
            table = item["table"]
            index.tables[(table["family"], table["name"])] = table
        elif "chain" in item:
            chain = item["chain"]
            index.chains[(chain["family"], chain["table"], chain["name"])] = chain
        elif "rule" in item:
            rule = item["rule"]
            index.rules.setdefault((rule["family"], rule["table"], rule["chain"]), []).append(rule)
        elif "set" in item or "map" in item:
            named = item.get("set") or item["map"]
            index.sets[(named["family"], named["table"], named["name"])] = named
    return index


def _table_flags(table: Mapping[str, Any]) -> str:
    """The table's state: active, dormant, or unreadable for a single flag printed as a string (see the
    module docstring: nft 1.0.6 prints freed memory there, so only the word "dormant" itself is trusted)."""
    flags = table.get("flags")
    if flags is None:
        return "active"
    if isinstance(flags, list):
        return "dormant" if "dormant" in flags else "active"
    return "dormant" if flags == "dormant" else "unreadable"


def _dormant_tables(index: _Index) -> frozenset[tuple[str, str]]:
    return frozenset(key for key, table in index.tables.items() if _table_flags(table) == "dormant")


def _unreadable_tables(index: _Index) -> list[tuple[str, str]]:
    return [key for key, table in index.tables.items() if _table_flags(table) == "unreadable"]


def _table_label(key: tuple[str, str]) -> str:
    return " ".join(key)


def _hook_chains(index: _Index, hook: str, version: int) -> Iterator[dict[str, Any]]:
    for (family, _, _), chain in index.chains.items():
        if chain.get("hook") == hook and family in _HOOK_FAMILIES[version]:
            yield chain


def _filters(index: _Index, table: tuple[str, str], hook: str, version: int) -> bool:
    return any((chain["family"], chain["table"]) == table for chain in _hook_chains(index, hook, version))


def _priority(chain: Mapping[str, Any]) -> int:
    prio = chain.get("prio", 0)
    if isinstance(prio, int) and not isinstance(prio, bool):
        return prio
    if isinstance(prio, str) and prio in _NAMED_PRIORITIES:
        return _NAMED_PRIORITIES[prio]
    raise _Unmodelled(f"priority {prio!r} of {_chain_label(chain, chain['name'])} not understood")


def _chain_label(chain: Mapping[str, Any], name: str) -> str:
    return f"{chain['family']} {chain['table']} {name}"


# --- the hook: base chains in priority order ---------------------------------------------------------------


def _evaluate(
    index: _Index,
    probe: Probe,
    saddr: IPv4Address | IPv6Address,
    daddr: IPv4Address | IPv6Address | None,
    dormant: frozenset[tuple[str, str]],
) -> _Outcome:
    """Run the base chains in ascending priority (the listing's order among equals); `accept` passes the packet
    on to the next one, anything else is final."""
    chains = [c for c in _hook_chains(index, probe.hook, saddr.version) if (c["family"], c["table"]) not in dormant]
    path: list[str] = []
    last: _Outcome | None = None
    for chain in sorted(chains, key=_priority):
        scope = _Scope(probe, saddr, daddr, index, (chain["family"], chain["table"]))
        outcome = _base_chain(scope, chain)
        path.extend(outcome.path)
        if outcome.verdict != "accept":
            return _Outcome(outcome.verdict, outcome.decided_by, tuple(path))
        last = outcome
    if last is None:
        return _Outcome("accept", f"no {probe.hook} base chain filters")
    return _Outcome("accept", last.decided_by, tuple(path))


def _combine(
    outcomes: list[tuple[frozenset[tuple[str, str]], _Outcome]], unreadable: list[tuple[str, str]], index: _Index
) -> Verdict:
    """One verdict from the evaluations with each misprinted-flags table dormant or not: the first evaluation
    (every such table filtering) when all agree, otherwise `unknown` naming two that differ."""
    _, first = outcomes[0]
    if not unreadable:
        return Verdict(first.verdict, first.decided_by, first.path)
    note = "; ".join(
        f"table {_table_label(key)} has flags {index.tables[key]['flags']!r}, a misprint (nft 1.0.6) that hides "
        "whether it is dormant"
        for key in unreadable
    )
    for dormant, outcome in outcomes[1:]:
        if outcome.verdict != first.verdict:
            asleep = ", ".join(_table_label(key) for key in sorted(dormant))
            return Verdict(
                "unknown",
                f"{note}: {first.verdict} if it filters ({first.decided_by}), {outcome.verdict} if {asleep} is "
                f"dormant ({outcome.decided_by})",
                first.path,
            )
    return Verdict(first.verdict, f"{first.decided_by} (the same whether or not it is dormant: {note})", first.path)


# --- one base chain: rules, jumps, gotos, returns ----------------------------------------------------------


def _base_chain(scope: _Scope, chain: Mapping[str, Any]) -> _Outcome:
    """Walk one base chain with an explicit jump stack, as nft_do_chain does, guarding against loops."""
    base = chain["name"]
    label = _chain_label(chain, base)
    policy = _Outcome(str(chain.get("policy", "accept")), f"{label} policy {chain.get('policy', 'accept')}", (label,))
    if policy.verdict not in ("accept", "drop"):
        return _Outcome("unknown", f"{label}: policy {policy.verdict!r} not understood", (label,))
    if chain.get("type", "filter") != "filter":
        if scope.index.rules.get((*scope.table, base)) or policy.verdict != "accept":
            return _Outcome(
                "unknown", f"{label}: a {chain.get('type')} chain on the {scope.probe.hook} hook is not modelled",
                (label,),
            )
        return policy
    path = [label]
    stack: list[tuple[str, int]] = []
    entered: set[tuple[str, tuple[tuple[str, int], ...]]] = {(base, ())}
    current, position = base, 0
    while True:
        rules = scope.index.rules.get((*scope.table, current), [])
        if position >= len(rules):
            if not stack:
                return _Outcome(policy.verdict, policy.decided_by, tuple(path))
            current, position = stack.pop()
            continue
        rule = rules[position]
        position += 1
        action = _rule_action(rule["expr"], scope)
        if action is None:
            continue
        place = f"{_chain_label(chain, current)} rule {position} (handle {rule.get('handle')}): "
        place += render_rule(rule["expr"])
        if action.kind == "unknown":
            return _Outcome("unknown", f"{place}; {action.detail}", tuple(path))
        if action.kind in ("accept", "drop", "reject"):
            return _Outcome(action.kind, place, tuple(path))
        if action.kind == "return":
            if not stack:
                return _Outcome(policy.verdict, policy.decided_by, tuple(path))
            current, position = stack.pop()
            continue
        if (*scope.table, action.detail) not in scope.index.chains:
            return _Outcome("unknown", f"{place}; no chain {action.detail!r} in the table", tuple(path))
        if action.kind == "jump":
            stack.append((current, position))
        state = (action.detail, tuple(stack))
        if len(stack) > MAX_JUMP_DEPTH or state in entered:
            return _Outcome("unknown", f"{place}; a jump loop, or more than {MAX_JUMP_DEPTH} levels", tuple(path))
        entered.add(state)
        path.append(_chain_label(chain, action.detail))
        current, position = action.detail, 0


def _rule_action(expressions: list[Any], scope: _Scope) -> _Action | None:
    """What the rule does to the probe; None when it does not match or decides nothing (`continue`).

    Expressions run left to right: a failed match stops the rule, so what follows it cannot matter. A match or
    statement that may or may not let the packet through (`doubt`) only matters if a verdict follows."""
    doubt: str | None = None
    for expression in expressions:
        try:
            key, value = _single(expression)
        except _Unmodelled as exc:
            return _Action("unknown", f"not modelled: {exc}")
        if key == "match":
            try:
                if not _match(value, scope):
                    return None
            except _Unmodelled as exc:
                doubt = doubt or f"not modelled: {exc}"
            continue
        if key in _MAY_STOP_RULE:
            doubt = doubt or f"'{_render_statement(expression)}' may not match"
            continue
        if _harmless(key, value):
            continue
        try:
            action = _verdict_of(key, value, scope)
        except _Unmodelled as exc:
            return _Action("unknown", f"not modelled: {exc}")
        if action is None or action.kind == "continue":
            return None
        return _Action("unknown", doubt) if doubt else action
    return None


def _single(expression: Any) -> tuple[str, Any]:
    if isinstance(expression, Mapping) and len(expression) == 1:
        ((key, value),) = expression.items()
        return str(key), value
    raise _Unmodelled(f"expression {json.dumps(expression)}")


def _harmless(key: str, value: Any) -> bool:
    """Statements that cannot change the verdict; a `mangle` of a meta or ct key (mark, priority, nftrace...)
    changes nothing this module reads."""
    if key in _HARMLESS_STATEMENTS:
        return True
    return key == "mangle" and isinstance(value.get("key"), Mapping) and bool({"meta", "ct"} & set(value["key"]))


def _verdict_of(key: str, value: Any, scope: _Scope) -> _Action | None:
    """The action of a verdict statement; None for a `vmap` whose map has no element for the probe."""
    if key in _SIMPLE_VERDICTS:
        return _Action(key)
    if key == "reject":
        return _Action("reject")
    if key in ("jump", "goto"):
        return _Action(key, str(value["target"]))
    if key == "vmap":
        data = _vmap_lookup(value, scope)
        return None if data is None else _verdict_of(*_single(data), scope)
    raise _Unmodelled(f"statement '{_render_statement({key: value})}'")


def _vmap_lookup(vmap: Mapping[str, Any], scope: _Scope) -> Any:
    """The verdict a verdict map gives the probe's key, or None (no element: the rule stops)."""
    key = _field(vmap.get("key"), scope)
    if key is None:
        return None
    elements = _set_elements(vmap.get("data"), scope)
    if elements is None:
        raise _Unmodelled(f"verdict map {_render_value(vmap.get('data'))}")
    for element in elements:
        if not (isinstance(element, list) and len(element) == 2):
            raise _Unmodelled(f"verdict map element {json.dumps(element)}")
        if _element_matches(key, element[0]):
            return element[1]
    return None


# --- matches -----------------------------------------------------------------------------------------------


def _match(match: Mapping[str, Any], scope: _Scope) -> bool:
    """Whether a `match` expression matches the probe. A header the probe lacks (`ip` on IPv6, `tcp` on UDP)
    fails whatever the operator, as nft's implicit protocol test before the match does."""
    op = match.get("op", "==")
    key = _field(match.get("left"), scope)
    if key is None:
        return False
    right = match.get("right")
    if op == "in" and key.bitmask and _set_elements(right, scope) is None:
        return bool(key.value & key.parse(right))
    if op not in ("==", "!=", "in"):
        raise _Unmodelled(f"{key.text} {op} {_render_value(right)}")
    hit = _contains(key, right, scope)
    return not hit if op == "!=" else hit


def _contains(key: _Field, right: Any, scope: _Scope) -> bool:
    elements = _set_elements(right, scope)
    if elements is None:
        return _element_matches(key, right)
    return any(_element_matches(key, element) for element in elements)


def _set_elements(right: Any, scope: _Scope) -> list[Any] | None:
    """The elements of an anonymous set or a named `@set` of the rule's table; None for any other value."""
    if isinstance(right, Mapping) and set(right) == {"set"}:
        elements = right["set"]
        return elements if isinstance(elements, list) else [elements]
    if isinstance(right, str) and right.startswith("@"):
        return scope.elements(right)
    return None


def _element_matches(key: _Field, element: Any) -> bool:
    if isinstance(element, Mapping) and "elem" in element:
        return _element_matches(key, element["elem"]["val"])
    if isinstance(element, Mapping) and "prefix" in element and isinstance(key.value, IPv4Address | IPv6Address):
        prefix = element["prefix"]
        network = ip_network(f"{prefix['addr']}/{prefix['len']}", strict=False)
        if network.version != key.value.version:
            raise _Unmodelled(f"{key.text} compared with {network}")
        return key.value in network
    if isinstance(element, Mapping) and "range" in element and not key.ifname:
        low, high = (key.parse(bound) for bound in element["range"])
        return bool(low <= key.value <= high)
    if key.ifname:
        return _ifname_matches(key.parse(element), key.value, wildcard=key.text.endswith("name"))
    return bool(key.parse(element) == key.value)


def _ifname_matches(pattern: str, name: str | None, wildcard: bool) -> bool:
    """nft's interface-name compare: a trailing unescaped `*` matches any suffix (iifname, oifname), `\\*` is a
    literal star. An unknown interface is not "lo" (the probes come from and go to other hosts), and nothing else
    can be said of it."""
    if name is None:
        if pattern == "lo":
            return False
        raise _Unmodelled(f"interface {pattern!r} (which interface the probe uses is not known)")
    if wildcard and pattern.endswith("*") and not pattern.endswith("\\*"):
        return name.startswith(pattern[:-1].replace("\\*", "*"))
    return name == pattern.replace("\\*", "*")


def _field(left: Any, scope: _Scope) -> _Field | None:
    """The probe's value for a match's left side; None when the probe lacks that header."""
    kind, body = _single(left)
    if kind == "payload" and isinstance(body, Mapping) and "protocol" in body:
        return _payload_field(str(body["protocol"]), str(body.get("field")), scope)
    if kind == "meta" and isinstance(body, Mapping):
        return _meta_field(str(body.get("key")), scope)
    if kind == "ct" and isinstance(body, Mapping) and set(body) == {"key"} and body["key"] == "state":
        return _Field("ct state", _CT_STATES[scope.probe.ct_state], _ct_mask, bitmask=True)
    raise _Unmodelled(_render_value(left))


def _payload_field(protocol: str, name: str, scope: _Scope) -> _Field | None:
    text = f"{protocol} {name}"
    probe = scope.probe
    if protocol in ("ip", "ip6"):
        if (protocol == "ip") != (scope.version == 4):
            return None
        if name == "saddr":
            return _Field(text, scope.saddr, _address_parser(scope.version))
        if name == "daddr":
            if scope.daddr is None:
                raise _Unmodelled(f"{text} (the probe gives no destination address)")
            return _Field(text, scope.daddr, _address_parser(scope.version))
        if name == ("protocol" if protocol == "ip" else "nexthdr"):
            return _Field(text, _PROTOCOLS[probe.protocol], _named_number(_PROTOCOLS))
    elif protocol in ("tcp", "udp", "th"):
        if protocol not in ("th", probe.protocol):
            return None
        if name == "sport" and probe.sport is None:
            raise _Unmodelled(f"{text} (a client may send from any port)")
        if name in ("dport", "sport"):
            return _Field(text, probe.dport if name == "dport" else probe.sport, _port)
    elif protocol in _OTHER_TRANSPORTS:
        return None
    raise _Unmodelled(text)


def _meta_field(key: str, scope: _Scope) -> _Field:
    probe = scope.probe
    if key == "l4proto":
        return _Field("meta l4proto", _PROTOCOLS[probe.protocol], _named_number(_PROTOCOLS))
    if key == "nfproto":
        return _Field("meta nfproto", _NFPROTOS[f"ipv{scope.version}"], _named_number(_NFPROTOS))
    if key == "protocol":
        return _Field("meta protocol", _ETHERTYPES["ip" if scope.version == 4 else "ip6"], _named_number(_ETHERTYPES))
    if key in _IFNAME_KEYS:
        name = probe.iifname if key.startswith("i") else probe.oifname
        if key in ("oif", "oifname") and probe.hook == "input":
            raise _Unmodelled(f"{key} on the input hook")
        # nft prints an interface index (iif, oif) as its name; only names (iifname, oifname) take a wildcard.
        return _Field(key, name, _string, ifname=True)
    raise _Unmodelled(f"meta {key}")


# --- literals ----------------------------------------------------------------------------------------------


def _address_parser(version: int) -> Callable[[Any], IPv4Address | IPv6Address]:
    def parse(value: Any) -> IPv4Address | IPv6Address:
        if isinstance(value, str):
            address = ip_address(value)
            if address.version == version:
                return address
        raise _Unmodelled(f"address {json.dumps(value)}")

    return parse


def _port(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535:
        return value
    raise _Unmodelled(f"port {json.dumps(value)}")


def _named_number(names: Mapping[str, int]) -> Callable[[Any], int]:
    """A parser for a key whose values nft prints by name or, without a name, as a number."""

    def parse(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value in names:
            return names[value]
        raise _Unmodelled(f"value {json.dumps(value)}")

    return parse


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _Unmodelled(f"interface {json.dumps(value)}")


def _ct_mask(value: Any) -> int:
    """A ct state value as the kernel's bitmask: a name, a list (flags, for `in`) or an `|` of names."""
    if isinstance(value, str) and value in _CT_STATES:
        return _CT_STATES[value]
    if isinstance(value, list):
        return _or_masks(value)
    if isinstance(value, Mapping) and set(value) == {"|"}:
        return _or_masks(value["|"])
    raise _Unmodelled(f"ct state {json.dumps(value)}")


def _or_masks(values: Any) -> int:
    mask = 0
    for value in values:
        mask |= _ct_mask(value)
    return mask


# --- rendering ---------------------------------------------------------------------------------------------


def _render_statement(expression: Any) -> str:
    if not (isinstance(expression, Mapping) and len(expression) == 1):
        return json.dumps(expression)
    ((key, value),) = expression.items()
    if key == "match" and isinstance(value, Mapping):
        return _render_match(value)
    if key == "counter":
        return f"counter name {value}" if isinstance(value, str) else "counter"
    if key == "log" and isinstance(value, Mapping):
        prefix = f' prefix "{value["prefix"]}"' if "prefix" in value else ""
        level = f" level {value['level']}" if "level" in value else ""
        return f"log{prefix}{level}"
    if key == "limit" and isinstance(value, Mapping):
        return _render_limit(value)
    if key == "reject":
        kind = value.get("type") if isinstance(value, Mapping) else None
        detail = f" {value['expr']}" if isinstance(value, Mapping) and "expr" in value else ""
        return f"reject with {kind}{detail}" if kind else "reject"
    if key == "vmap" and isinstance(value, Mapping):
        return f"{_render_value(value.get('key'))} vmap {_render_value(value.get('data'))}"
    if key == "mangle" and isinstance(value, Mapping):
        return f"{_render_value(value.get('key'))} set {_render_value(value.get('value'))}"
    return _render_value(expression)


def _render_match(match: Mapping[str, Any]) -> str:
    left = match.get("left")
    meta = left.get("meta") if isinstance(left, Mapping) else None
    quote = isinstance(meta, Mapping) and meta.get("key") in _IFNAME_KEYS
    op = match.get("op", "==")
    operator = "" if op in ("==", "in") else f"{op} "
    right = match.get("right")
    # `@name` is read as a named set (see _set_elements), so it is shown as nft shows a set, not as a quoted name.
    reference = isinstance(right, str) and right.startswith("@")
    return f"{_render_value(left)} {operator}{_render_value(right, quote and not reference)}"


def _render_limit(limit: Mapping[str, Any]) -> str:
    over = "over " if limit.get("inv") else ""
    unit = f" {limit['rate_unit']}" if limit.get("rate_unit", "packets") != "packets" else ""
    text = f"limit rate {over}{limit.get('rate')}{unit}/{limit.get('per')}"
    if limit.get("burst"):
        text += f" burst {limit['burst']} {limit.get('burst_unit', 'packets')}"
    return text


def _render_value(value: Any, quote: bool = False) -> str:
    if isinstance(value, str):
        return f'"{value}"' if quote else value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return ",".join(_render_value(item, quote) for item in value)
    if isinstance(value, Mapping) and len(value) == 1:
        ((key, body),) = value.items()
        return _render_object(str(key), body, quote)
    return json.dumps(value)


def _render_object(key: str, body: Any, quote: bool) -> str:
    if key == "set" and isinstance(body, list):
        return "{ " + ", ".join(_render_element(element, quote) for element in body) + " }"
    if key == "prefix" and isinstance(body, Mapping):
        return f"{body.get('addr')}/{body.get('len')}"
    if key == "range" and isinstance(body, list):
        return "-".join(_render_value(bound, quote) for bound in body)
    if key == "elem" and isinstance(body, Mapping):
        return _render_value(body.get("val"), quote)
    if key == "concat" and isinstance(body, list):
        return " . ".join(_render_value(part, quote) for part in body)
    if key in _BINARY_OPERATORS and isinstance(body, list):
        return f" {key} ".join(_render_value(part, quote) for part in body)
    if key == "payload" and isinstance(body, Mapping):
        if "protocol" in body:
            return f"{body['protocol']} {body.get('field')}"
        return f"@{body.get('base')},{body.get('offset')},{body.get('len')}"
    if key == "meta" and isinstance(body, Mapping):
        name = str(body.get("key"))
        return name if name in _UNQUALIFIED_META else f"meta {name}"
    if key == "ct" and isinstance(body, Mapping):
        return " ".join(["ct", *(str(body[part]) for part in ("dir", "key") if part in body)])
    if key in ("jump", "goto") and isinstance(body, Mapping):
        return f"{key} {body.get('target')}"
    if body is None:
        return key
    return f"{key} {json.dumps(body)}"


def _render_element(element: Any, quote: bool) -> str:
    """A set element; a map's element is a [key, data] pair."""
    if isinstance(element, list) and len(element) == 2:
        return f"{_render_value(element[0], quote)} : {_render_value(element[1])}"
    return _render_value(element, quote)
