"""What the nftables evaluator does with what it does not model: `unknown` with the reason, never a pass.

The rulesets are recorded by nft 1.0.6 (tests/unit/fixtures/nft/<case>.json from <case>.nft, see record.sh and
test_firewall_eval.py). A test that edits a recorded ruleset does so because nft 1.0.6 never prints that JSON (it
refuses the ruleset, or prints the construct another way) and says which; the evaluator still meets such JSON from
another tool or another nft version, and must not read a pass into it.
"""

from __future__ import annotations

from typing import Any

import pytest

from medinfra.compliance.firewall import Probe, Verdict, probe_verdict
from tests.unit.test_firewall_eval import BASE, FINAL_DROP, HIS, MGMT, OUTSIDE, OUTSIDE6, load, verdict

POLICY_DROP = f"{BASE} policy drop"


def rule_of(ruleset: list[dict[str, Any]], handle: int) -> dict[str, Any]:
    """The recorded rule with this handle, to edit in place."""
    rule: dict[str, Any] = next(item["rule"] for item in ruleset if item.get("rule", {}).get("handle") == handle)
    return rule


# --- matches on what the probe does not say -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("probe", "rule", "reason"),
    [
        (
            Probe(OUTSIDE, "tcp", 1001),
            'rule 1 (handle 5): tcp dport 1001 fib {"result": "oif", "flags": ["daddr"]} true accept',
            'fib {"result": "oif", "flags": ["daddr"]}',
        ),
        (
            Probe(OUTSIDE, "tcp", 1002),
            'rule 2 (handle 6): tcp dport 1002 fib {"result": "type", "flags": ["daddr"]} local accept',
            'fib {"result": "type", "flags": ["daddr"]}',
        ),
        (
            Probe(OUTSIDE, "tcp", 1003),
            'rule 3 (handle 7): tcp dport 1003 numgen {"mode": "random", "mod": 2, "offset": 0} 0 accept',
            'numgen {"mode": "random", "mod": 2, "offset": 0}',
        ),
        (
            Probe(OUTSIDE, "tcp", 1004),
            'rule 4 (handle 8): tcp dport 1004 osf {"key": "name"} Linux accept',
            'osf {"key": "name"}',
        ),
        (
            Probe(OUTSIDE, "tcp", 1005),
            'rule 5 (handle 9): tcp dport 1005 socket {"key": "transparent"} 1 accept',
            'socket {"key": "transparent"}',
        ),
        (Probe(OUTSIDE, "tcp", 1006), "rule 6 (handle 10): tcp dport 1006 ct mark 1 accept", "ct mark"),
        (
            Probe(OUTSIDE, "tcp", 1007),
            "rule 7 (handle 12): tcp dport 1007 ip saddr . tcp dport { 203.0.113.7 . 1007 } accept",
            "ip saddr . tcp dport",
        ),
        # A raw payload nft cannot name (bytes 20-21 of the TCP header: options).
        (Probe(OUTSIDE, "tcp", 1008), "rule 8 (handle 13): tcp dport 1008 @th,160,16 1 accept", "@th,160,16"),
        # 16 is a ct state bit without a name; nft prints the number.
        (Probe(OUTSIDE, "tcp", 1009), "rule 9 (handle 14): tcp dport 1009 ct state 16 accept", "ct state 16"),
        # A protocol name outside the evaluator's table.
        (Probe(OUTSIDE, "tcp", 1010), "rule 10 (handle 15): tcp dport 1010 ip protocol ipip accept", 'value "ipip"'),
        # `ip saddr @map` tests the map's keys; the evaluator reads its elements, [key, data] pairs, as values.
        (
            Probe(OUTSIDE, "tcp", 3001),
            "rule 16 (handle 23): tcp dport 3001 ip saddr @trusted_sources accept",
            'address ["10.231.10.5", {"accept": null}]',
        ),
        (
            Probe("198.51.100.9", "tcp", 22),
            "rule 17 (handle 24): ip saddr 198.51.100.9 tcp dport @port_redirects accept",
            "port [2222, 22]",
        ),
        (
            Probe(OUTSIDE, "tcp", 3003, iifname="eth0"),
            "rule 18 (handle 25): tcp dport 3003 iifname @interface_verdicts accept",
            'interface ["eth0", {"accept": null}]',
        ),
        # The interface named "@wan" is printed as a reference to a set wan would be: no such set, no guess.
        (
            Probe(OUTSIDE, "tcp", 3004, iifname="eth0"),
            "rule 19 (handle 26): tcp dport 3004 iifname @wan accept",
            "set @wan is not in table inet medinfra",
        ),
        (
            Probe("198.51.100.10", "tcp", 22),
            "rule 20 (handle 27): ip saddr 198.51.100.10 tcp dport < 1024 accept",
            "tcp dport < 1024",
        ),
    ],
)
def test_an_unmodelled_match_before_an_accept_is_unknown(probe, rule, reason):
    assert probe_verdict(load("unmodelled_exprs"), probe) == Verdict(
        "unknown", f"{BASE} {rule}; not modelled: {reason}", (BASE,)
    )


@pytest.mark.parametrize(
    ("probe", "expected", "decided_by"),
    [
        # Every unmodelled match sits behind a port or source the probe does not have: none of them is asked.
        (Probe(OUTSIDE, "tcp", 22), "drop", POLICY_DROP),
        (Probe(OUTSIDE, "udp", 2001), "accept", "rule 11 (handle 17): meta l4proto { udp, 253 } th dport 2001 accept"),
        (Probe(OUTSIDE, "tcp", 2001), "drop", POLICY_DROP),  # tcp is neither udp nor protocol 253
        (Probe(OUTSIDE6, "tcp", 2002), "accept", "rule 12 (handle 18): meta nfproto ipv6 tcp dport 2002 accept"),
        (Probe(OUTSIDE, "tcp", 2002), "drop", POLICY_DROP),
        (Probe(OUTSIDE6, "tcp", 2003), "accept", "rule 13 (handle 19): meta protocol ip6 tcp dport 2003 accept"),
        (Probe(OUTSIDE, "tcp", 2003), "drop", POLICY_DROP),
        # Setting the mark changes nothing the verdict depends on.
        (Probe(OUTSIDE, "tcp", 2004), "accept", "rule 14 (handle 20): tcp dport 2004 meta mark set 1 accept"),
        # An element with a comment is printed as {"elem": {"val": ..., "comment": ...}}.
        (
            Probe(OUTSIDE, "tcp", 2005),
            "accept",
            "rule 15 (handle 22): tcp dport 2005 ip saddr { 198.51.100.1, 203.0.113.7 } accept",
        ),
        (Probe("198.51.100.2", "tcp", 2005), "drop", POLICY_DROP),
    ],
)
def test_modelled_matches_beside_the_unmodelled_ones(probe, expected, decided_by):
    decided_by = decided_by if decided_by == POLICY_DROP else f"{BASE} {decided_by}"
    assert probe_verdict(load("unmodelled_exprs"), probe) == Verdict(expected, decided_by, (BASE,))


def test_a_set_of_another_table_is_unknown():
    """nft refuses `ip saddr @s` for a set s of another table ("No such file or directory"): the recorded set is
    moved to another table here."""
    ruleset = load("hardened")
    zone_mgmt = next(item["set"] for item in ruleset if item.get("set", {}).get("name") == "zone_mgmt")
    zone_mgmt["table"] = "other"
    assert verdict("hardened", MGMT, "tcp", 22).verdict == "accept"  # as recorded
    assert probe_verdict(ruleset, Probe(MGMT, "tcp", 22)) == Verdict(
        "unknown",
        f"{BASE} rule 5 (handle 9): ip saddr @zone_mgmt tcp dport 22 counter accept; "
        "not modelled: set @zone_mgmt is not in table inet medinfra",
        (BASE,),
    )


def test_an_address_of_the_other_ip_version_is_unknown():
    """nft refuses an IPv6 prefix in an `ip saddr` set ("Address family for hostname not supported")."""
    ruleset = load("hardened")
    rule_of(ruleset, 13)["expr"][0]["match"]["right"]["set"][0] = {"prefix": {"addr": "2001:db8::", "len": 32}}
    text = (
        f"{BASE} rule 7 (handle 13): ip saddr {{ 2001:db8::/32, 10.231.30.0/24 }} tcp dport {{ 5432, 8000-8080 }} "
        "counter accept"
    )
    assert probe_verdict(ruleset, Probe(HIS, "tcp", 8080)) == Verdict(
        "unknown", f"{text}; not modelled: ip saddr compared with 2001:db8::/32", (BASE,)
    )
    # The port fails after the address: the doubt never reaches a verdict.
    assert probe_verdict(ruleset, Probe(HIS, "tcp", 22)) == Verdict("drop", FINAL_DROP, (BASE,))


def test_an_address_nft_never_prints_is_unknown():
    """nft prints a prefix as {"prefix": {"addr", "len"}}; here the wrapper is missing."""
    ruleset = load("hardened")
    rule_of(ruleset, 10)["expr"][0]["match"]["right"] = {"addr": "10.231.10.11", "len": 32}
    address = '{"addr": "10.231.10.11", "len": 32}'
    assert probe_verdict(ruleset, Probe(OUTSIDE, "tcp", 9100)) == Verdict(
        "unknown",
        f"{BASE} rule 6 (handle 10): ip saddr {address} tcp dport 9100 counter accept; not modelled: address {address}",
        (BASE,),
    )


def test_an_expression_that_is_not_one_keyed_object_is_unknown():
    """nft prints every expression of a rule as an object with one key."""
    ruleset = load("hardened")
    rule_of(ruleset, 14)["expr"] = [{"counter": None, "accept": None}]
    expression = '{"counter": null, "accept": null}'
    assert probe_verdict(ruleset, Probe(OUTSIDE, "tcp", 22)) == Verdict(
        "unknown", f"{BASE} rule 8 (handle 14): {expression}; not modelled: expression {expression}", (BASE,)
    )


# --- verdict maps nft never prints ---------------------------------------------------------------------------

VMAP_RULE = f"{BASE} rule 6 (handle 11): udp dport vmap"


def test_verdict_map_data_that_is_not_a_set_is_unknown():
    """nft prints a verdict map as {"set": [[key, verdict], ...]} or "@name"; here the set wrapper is missing."""
    ruleset = load("misc")
    rule_of(ruleset, 11)["expr"][0]["vmap"]["data"] = [[53, {"accept": None}], [123, {"drop": None}]]
    assert probe_verdict(ruleset, Probe(OUTSIDE, "udp", 53)) == Verdict(
        "unknown", f"{VMAP_RULE} 53,accept,123,drop; not modelled: verdict map 53,accept,123,drop", (BASE,)
    )


def test_a_verdict_map_element_without_a_verdict_is_unknown():
    """nft refuses `udp dport vmap { 53, 123 }` ("expecting colon"): the elements lose their verdicts here."""
    ruleset = load("misc")
    rule_of(ruleset, 11)["expr"][0]["vmap"]["data"] = {"set": [53, 123]}
    assert probe_verdict(ruleset, Probe(OUTSIDE, "udp", 53)) == Verdict(
        "unknown", f"{VMAP_RULE} {{ 53, 123 }}; not modelled: verdict map element 53", (BASE,)
    )


# --- base chains: priorities, policies, jumps, misprinted tables --------------------------------------------

LATE = "inet late input"
MEDINFRA_FIRST = Verdict("drop", f"{LATE} policy drop", (BASE, LATE))


def test_named_priorities_are_printed_as_numbers_and_order_the_base_chains():
    """`priority security` (50) is listed first, `priority filter + 10` (10) runs first."""
    ruleset = load("named_priorities")
    assert [item["chain"]["prio"] for item in ruleset if "chain" in item] == [50, 10]
    assert probe_verdict(ruleset, Probe(OUTSIDE, "tcp", 22)) == MEDINFRA_FIRST


@pytest.mark.parametrize(
    ("late", "medinfra", "expected"),
    [
        ("security", 10, MEDINFRA_FIRST),
        ("raw", 10, Verdict("drop", f"{LATE} policy drop", (LATE,))),  # -300: late runs first
        ("security", "filter", MEDINFRA_FIRST),
        (50, "filter + 10", Verdict("unknown", f"priority 'filter + 10' of {BASE} not understood", ())),
        (50, True, Verdict("unknown", f"priority True of {BASE} not understood", ())),
    ],
)
def test_a_priority_nft_prints_as_a_name_or_not_at_all(late, medinfra, expected):
    """nft 1.0.6 prints every priority as a number; JSON written for `nft -j -f` may name it."""
    ruleset = load("named_priorities")
    chains = {item["chain"]["table"]: item["chain"] for item in ruleset if "chain" in item}
    chains["late"]["prio"], chains["medinfra"]["prio"] = late, medinfra
    assert probe_verdict(ruleset, Probe(OUTSIDE, "tcp", 22)) == expected


def test_a_policy_other_than_accept_or_drop_is_unknown():
    """nft's grammar takes `policy accept` or `policy drop` only."""
    ruleset = load("ip_drop")
    next(item["chain"] for item in ruleset if "chain" in item)["policy"] = "queue"
    assert probe_verdict(ruleset, Probe(OUTSIDE, "tcp", 22)) == Verdict(
        "unknown", "ip v4only input: policy 'queue' not understood", ("ip v4only input",)
    )


@pytest.mark.parametrize(
    ("port", "expected", "decided_by"),
    [(22, "accept", f"{BASE} rule 2 (handle 5): tcp dport 22 accept"), (23, "drop", POLICY_DROP)],
)
def test_a_jumped_to_chain_that_decides_nothing_returns_after_the_jump(port, expected, decided_by):
    assert verdict("jump_falls_through", OUTSIDE, "tcp", port) == Verdict(
        expected, decided_by, (BASE, "inet medinfra count_ssh")
    )


SPARES = [f"inet spare{number}" for number in range(1, 8)]


def test_more_tables_with_misprinted_flags_than_are_evaluated_both_ways_is_unknown():
    ruleset = load("many_misprinted")
    assert [item["table"]["flags"] for item in ruleset if "table" in item] == [f"spare{n}" for n in range(1, 8)]
    for probe in (Probe(OUTSIDE, "tcp", 22), Probe(OUTSIDE6, "udp", 514)):
        assert probe_verdict(ruleset, probe) == Verdict("unknown", "7 tables have misprinted flags", ())


def test_six_tables_with_misprinted_flags_are_evaluated_both_ways():
    """The seventh table's flags as nftables >= 1.0.7 prints them: six are left to try dormant and not."""
    ruleset = load("many_misprinted")
    next(item["table"] for item in ruleset if item.get("table", {}).get("name") == "spare7")["flags"] = ["dormant"]
    notes = "; ".join(
        f"table {table} has flags '{table.split()[1]}', a misprint (nft 1.0.6) that hides whether it is dormant"
        for table in SPARES[:6]
    )
    assert probe_verdict(ruleset, Probe(OUTSIDE, "tcp", 22)) == Verdict(
        "unknown",
        f"{notes}: drop if it filters (inet spare1 input policy drop), accept if {', '.join(SPARES[:6])} is dormant "
        "(no input base chain filters)",
        ("inet spare1 input",),
    )
