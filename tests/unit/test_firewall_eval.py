"""The nftables input-hook evaluator on real `nft -j list ruleset` output (nftables 1.0.6).

Each fixture tests/unit/fixtures/nft/<case>.json was recorded from <case>.nft by record.sh, in a throwaway
network namespace; a test that needs a ruleset the kernel refuses to load (a reachable jump loop) edits a
recorded one and says so.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from medinfra.compliance.firewall import Probe, Verdict, probe_verdict, render_rule

FIXTURES = Path(__file__).parent / "fixtures" / "nft"
MGMT = "10.231.10.5"
HIS = "10.231.20.50"
OUTSIDE = "203.0.113.7"
OUTSIDE6 = "2001:db8::7"
BASE = "inet medinfra input"
FINAL_DROP = "inet medinfra input rule 9 (handle 15): counter drop"


@cache
def _recorded(case: str) -> str:
    return (FIXTURES / f"{case}.json").read_text()


def load(case: str) -> list[dict[str, Any]]:
    """A fresh copy of the recorded ruleset (a test may edit it)."""
    ruleset: list[dict[str, Any]] = json.loads(_recorded(case))["nftables"]
    return ruleset


def verdict(case: str, *args: Any, **kwargs: Any) -> Verdict:
    return probe_verdict(load(case), Probe(*args, **kwargs))


def test_every_fixture_is_recorded_from_its_text_by_nft_1_0_6():
    texts = {path.stem for path in FIXTURES.glob("*.nft")}
    assert texts == {path.stem for path in FIXTURES.glob("*.json")}
    for case in texts:
        assert load(case)[0]["metainfo"]["version"] == "1.0.6", case


# --- 1. the hardened ruleset the role generates ----------------------------------------------------------


@pytest.mark.parametrize(
    ("probe", "expected", "decided_by"),
    [
        (
            Probe(MGMT, "tcp", 22),
            "accept",
            f"{BASE} rule 5 (handle 9): ip saddr @zone_mgmt tcp dport 22 counter accept",
        ),
        (Probe(HIS, "tcp", 22), "drop", FINAL_DROP),
        (Probe(OUTSIDE, "tcp", 22), "drop", FINAL_DROP),
        (Probe(OUTSIDE6, "tcp", 22), "drop", FINAL_DROP),
        (
            Probe("10.231.10.11", "tcp", 9100),
            "accept",
            f"{BASE} rule 6 (handle 10): ip saddr 10.231.10.11 tcp dport 9100 counter accept",
        ),
        (Probe(HIS, "tcp", 9100), "drop", FINAL_DROP),
        (Probe(MGMT, "udp", 514), "drop", FINAL_DROP),
        (Probe(HIS, "udp", 8000), "drop", FINAL_DROP),  # the flow rule is tcp only
        (
            Probe(HIS, "tcp", 8080),
            "accept",
            f"{BASE} rule 7 (handle 13): ip saddr {{ 10.231.20.0/24, 10.231.30.0/24 }} "
            "tcp dport { 5432, 8000-8080 } counter accept",
        ),
        (Probe(HIS, "tcp", 8081), "drop", FINAL_DROP),
        (
            Probe(OUTSIDE, "tcp", 22, ct_state="established"),
            "accept",
            f"{BASE} rule 1 (handle 4): ct state established,related accept",
        ),
        (
            Probe(OUTSIDE, "tcp", 22, ct_state="invalid"),
            "drop",
            f"{BASE} rule 2 (handle 5): ct state invalid counter drop",
        ),
    ],
)
def test_hardened_ruleset(probe, expected, decided_by):
    """The limit+log rule without a verdict and the icmpv6 accept do not make any of these unknown."""
    assert probe_verdict(load("hardened"), probe) == Verdict(expected, decided_by, (BASE,))


# --- 2-5. rules that look narrow and are not -------------------------------------------------------------


def test_a_saddr_match_on_0_0_0_0_slash_0_matches_everyone():
    result = verdict("open_ssh", OUTSIDE, "tcp", 22)
    assert result.verdict == "accept"
    assert result.decided_by == f"{BASE} rule 9 (handle 15): ip saddr 0.0.0.0/0 tcp dport 22 accept"
    assert verdict("open_ssh", OUTSIDE6, "tcp", 22).verdict == "drop"  # an ip match fails on IPv6


def test_a_jump_to_a_chain_that_accepts_everything():
    result = verdict("jump_allow_all", OUTSIDE, "udp", 514)
    assert result == Verdict(
        "accept", "inet medinfra allow_all rule 1 (handle 5): accept", (BASE, "inet medinfra allow_all")
    )


def test_ct_state_new_accept_accepts_every_new_connection():
    result = verdict("ct_new", OUTSIDE6, "udp", 4444)
    assert (result.verdict, result.decided_by) == ("accept", f"{BASE} rule 9 (handle 15): ct state new accept")


def test_two_halves_of_the_address_space_cover_it():
    # nft merges an anonymous set's adjacent halves: the recorded rule says { 0.0.0.0/0 }.
    assert verdict("split_set", OUTSIDE, "tcp", 22).decided_by == (
        f"{BASE} rule 9 (handle 17): ip saddr {{ 0.0.0.0/0 }} tcp dport 22 accept"
    )
    # A named set keeps both halves as elements.
    halves = next(item["set"] for item in load("split_set") if item.get("set", {}).get("name") == "halves")
    assert halves["elem"] == [
        {"prefix": {"addr": "0.0.0.0", "len": 1}},
        {"prefix": {"addr": "128.0.0.0", "len": 1}},
    ]
    for source in (OUTSIDE, "10.0.0.1", "255.255.255.254"):
        result = verdict("split_set", source, "tcp", 2222)
        assert (result.verdict, result.decided_by) == (
            "accept",
            f"{BASE} rule 10 (handle 18): ip saddr @halves tcp dport 2222 accept",
        )
    assert verdict("split_set", OUTSIDE6, "tcp", 2222).verdict == "drop"


# --- 6. dormant tables -----------------------------------------------------------------------------------


def test_a_dormant_table_does_not_filter():
    """nft 1.0.6 prints a table's flags correctly only when it has two or more (here dormant and owner)."""
    assert load("dormant_owner")[1]["table"]["flags"] == ["dormant", "owner"]
    for probe in (Probe(OUTSIDE, "tcp", 22), Probe(OUTSIDE6, "udp", 514), Probe(HIS, "tcp", 4444)):
        assert probe_verdict(load("dormant_owner"), probe) == Verdict("accept", "no input base chain filters", ())


def test_a_single_misprinted_table_flag_gives_a_verdict_only_where_dormant_and_active_agree():
    """With the single flag `dormant`, nft 1.0.6 prints freed memory (a name) instead of the flag."""
    flags = load("dormant")[1]["table"]["flags"]
    assert isinstance(flags, str)
    assert flags != "dormant"
    outside = verdict("dormant", OUTSIDE, "tcp", 22)
    assert outside.verdict == "unknown"
    assert "table inet medinfra has flags" in outside.decided_by
    assert "drop if it filters" in outside.decided_by
    assert "accept if inet medinfra is dormant" in outside.decided_by
    mgmt = verdict("dormant", MGMT, "tcp", 22)
    assert mgmt.verdict == "accept"
    assert mgmt.decided_by.startswith(f"{BASE} rule 5 (handle 9): ip saddr @zone_mgmt tcp dport 22 counter accept")
    assert "the same whether or not it is dormant" in mgmt.decided_by


@pytest.mark.parametrize("flags", ["dormant", ["dormant"]])
def test_flags_that_say_dormant_are_trusted(flags):
    ruleset = load("dormant")
    ruleset[1]["table"]["flags"] = flags  # as nftables >= 1.0.7 prints it
    assert probe_verdict(ruleset, Probe(OUTSIDE, "tcp", 22)) == Verdict("accept", "no input base chain filters", ())


# --- 7-8. several base chains on the hook ----------------------------------------------------------------


def test_an_accept_in_an_earlier_base_chain_is_not_final():
    result = verdict("other_accept", OUTSIDE, "tcp", 22)
    assert result == Verdict("drop", FINAL_DROP, ("inet other input", BASE))
    assert verdict("other_accept", MGMT, "tcp", 22).verdict == "accept"


def test_a_later_base_chain_with_policy_drop_drops_what_medinfra_accepted():
    result = verdict("other_drop", MGMT, "tcp", 22)
    assert result == Verdict("drop", "inet late input policy drop", (BASE, "inet late input"))


# --- 9. goto, return, loops ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("probe", "expected", "decided_by", "path"),
    [
        (
            Probe(MGMT, "tcp", 22),
            "accept",
            "inet medinfra mgmt_services rule 1 (handle 5): tcp dport 22 accept",
            (BASE, "inet medinfra mgmt", "inet medinfra mgmt_services"),
        ),
        # mgmt was entered by goto: its return ends the base chain, so `tcp dport 9100 accept` is not reached.
        (Probe(MGMT, "tcp", 9100), "drop", f"{BASE} policy drop", (BASE, "inet medinfra mgmt")),
        # mgmt_services falls off its end: back to the caller of input's goto, i.e. the policy.
        (
            Probe(MGMT, "tcp", 80),
            "drop",
            f"{BASE} policy drop",
            (BASE, "inet medinfra mgmt", "inet medinfra mgmt_services"),
        ),
        (Probe(OUTSIDE, "tcp", 9100), "accept", f"{BASE} rule 4 (handle 13): tcp dport 9100 accept", (BASE,)),
        (Probe("192.0.2.1", "tcp", 9100), "drop", f"{BASE} policy drop", (BASE,)),  # return in the base chain
        (
            Probe("10.231.40.3", "udp", 514),
            "accept",
            "inet medinfra syslog_in rule 2 (handle 9): accept",
            (BASE, "inet medinfra syslog_in"),
        ),
        # jumped to: its return continues after the jump.
        (
            Probe(HIS, "udp", 514),
            "drop",
            f"{BASE} rule 6 (handle 15): udp dport 514 counter drop",
            (BASE, "inet medinfra syslog_in"),
        ),
    ],
)
def test_goto_and_return(probe, expected, decided_by, path):
    assert probe_verdict(load("goto_return"), probe) == Verdict(expected, decided_by, path)


@pytest.mark.parametrize(("verb", "chain"), [("jump", "jump_a"), ("goto", "goto_a")])
def test_a_loop_is_unknown_not_a_recursion_error(verb, chain):
    """The kernel refuses a loop reachable from a base chain, so the recorded loop is wired in here."""
    ruleset = load("loop")
    assert verdict("loop", OUTSIDE, "tcp", 22).verdict == "accept"  # as recorded: the loop is unreachable
    entry = copy.deepcopy(next(item for item in ruleset if item.get("rule", {}).get("chain") == "input"))
    entry["rule"]["expr"] = [{verb: {"target": chain}}]
    ruleset.insert(ruleset.index(next(item for item in ruleset if item.get("rule", {}).get("chain") == "input")), entry)
    result = probe_verdict(ruleset, Probe(OUTSIDE, "tcp", 22))
    assert result.verdict == "unknown"
    assert "a jump loop, or more than 16 levels" in result.decided_by
    assert len(result.path) <= 18


def test_a_jump_to_a_missing_chain_is_unknown():
    ruleset = load("jump_allow_all")
    jump = next(
        item["rule"] for item in ruleset if {"jump": {"target": "allow_all"}} in item.get("rule", {}).get("expr", [])
    )
    jump["expr"] = [{"jump": {"target": "nowhere"}}]
    result = probe_verdict(ruleset, Probe(OUTSIDE, "tcp", 22))
    assert result.verdict == "unknown"
    assert "no chain 'nowhere'" in result.decided_by


# --- 10. what is not modelled ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("probe", "rule", "reason"),
    [
        (
            Probe(OUTSIDE, "tcp", 3000),
            "rule 9 (handle 15): tcp dport 3000 tcp flags syn accept",
            "not modelled: tcp flags",
        ),
        (
            Probe(OUTSIDE, "tcp", 8443),
            "rule 10 (handle 16): tcp dport 8443 limit rate 5/second burst 5 packets accept",
            "'limit rate 5/second burst 5 packets' may not match",
        ),
        (Probe(OUTSIDE, "tcp", 22), "rule 11 (handle 17): meta skuid 0 accept", "not modelled: meta skuid"),
        (Probe(OUTSIDE6, "udp", 3000), "rule 11 (handle 17): meta skuid 0 accept", "not modelled: meta skuid"),
    ],
)
def test_an_unmodelled_match_before_a_verdict_is_unknown(probe, rule, reason):
    result = probe_verdict(load("unmodelled"), probe)
    assert result == Verdict("unknown", f"{BASE} {rule}; {reason}", (BASE,))


def test_an_unmodelled_match_after_a_failed_one_does_not_matter():
    # `tcp dport 3000` fails first for port 22, so `tcp flags syn` is never asked; the skuid rule is.
    assert "meta skuid" in verdict("unmodelled", OUTSIDE, "tcp", 22).decided_by
    assert verdict("unmodelled", MGMT, "tcp", 22).verdict == "accept"  # decided before the unknown rules


def test_a_daddr_match_needs_the_probe_daddr():
    assert verdict("misc", "10.231.12.1", "tcp", 8080).decided_by.endswith(
        "ip daddr 10.231.10.1 tcp dport 8080 accept; not modelled: ip daddr (the probe gives no destination address)"
    )
    assert verdict("misc", "10.231.12.1", "tcp", 8080, daddr="10.231.10.1").verdict == "accept"
    assert verdict("misc", "10.231.12.1", "tcp", 8080, daddr="10.231.10.2").verdict == "drop"


def test_a_nat_chain_on_the_input_hook():
    """iptables-nft leaves an empty nat INPUT chain: harmless. One with rules is not modelled."""
    assert verdict("nat_empty", MGMT, "tcp", 22) == Verdict(
        "accept", "ip nat INPUT policy accept", (BASE, "ip nat INPUT")
    )
    assert verdict("nat_empty", OUTSIDE, "tcp", 22).verdict == "drop"
    result = verdict("nat_rule", MGMT, "tcp", 22)
    assert result == Verdict(
        "unknown", "ip nat INPUT: a nat chain on the input hook is not modelled", (BASE, "ip nat INPUT")
    )
    assert verdict("nat_rule", OUTSIDE, "tcp", 22).verdict == "drop"  # dropped before the nat chain


def test_an_unknown_statement_is_taken_for_a_possible_verdict():
    ruleset = load("hardened")
    rule = next(item["rule"] for item in ruleset if item.get("rule", {}).get("handle") == 14)  # limit + log
    rule["expr"] = [{"queue": {"num": 1}}]
    result = probe_verdict(ruleset, Probe(OUTSIDE, "tcp", 22))
    assert result.verdict == "unknown"
    assert result.decided_by.endswith("not modelled: statement 'queue {\"num\": 1}'")


def test_a_ruleset_that_is_not_nft_json_is_unknown():
    result = probe_verdict([{"rule": {"family": "inet"}}], Probe(OUTSIDE, "tcp", 22))
    assert result.verdict == "unknown"
    assert result.decided_by.startswith("ruleset JSON not understood")


# --- 11. no tables, one family ---------------------------------------------------------------------------


def test_an_empty_ruleset_accepts():
    assert load("empty") == [load("hardened")[0]]  # the metainfo only
    assert verdict("empty", OUTSIDE, "tcp", 22) == Verdict("accept", "no input base chain filters", ())


def test_an_ip_table_filters_ipv4_only():
    assert verdict("ip_drop", OUTSIDE, "tcp", 22) == Verdict(
        "drop", "ip v4only input policy drop", ("ip v4only input",)
    )
    assert verdict("ip_drop", OUTSIDE6, "tcp", 22) == Verdict("accept", "no input base chain filters", ())


# --- 12. interface names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("iifname", "decided_by"),
    [
        ("probe0", 'rule 3 (handle 4): iifname != "lo" accept'),  # neither "lo" nor "eth*"
        ("eth0", 'rule 2 (handle 3): iifname "eth*" accept'),
        ("lo", 'rule 1 (handle 2): iifname "lo" accept'),
    ],
)
def test_iifname(iifname, decided_by):
    assert verdict("iifname", OUTSIDE, "tcp", 22, iifname=iifname).decided_by == f"{BASE} {decided_by}"


# --- modelled expressions beyond the brief ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("probe", "expected", "rule"),
    [
        # `!= established,related` is an exact compare with established|related: it matches established too.
        (Probe(OUTSIDE, "tcp", 7, ct_state="established"), "accept", "rule 1"),
        (Probe("2001:db8:10::5", "udp", 22), "accept", "rule 2"),  # th dport: either transport
        (Probe("2001:db8:11::5", "tcp", 22), "drop", "policy"),
        (Probe("10.231.10.25", "tcp", 22), "accept", "rule 3"),  # a range element
        (Probe("10.231.11.9", "tcp", 22), "accept", "rule 3"),  # a prefix element with a comment
        (Probe("10.231.10.30", "tcp", 22), "drop", "policy"),
        (Probe(OUTSIDE, "tcp", 8443), "accept", "rule 5"),  # a named verdict map
        (Probe(OUTSIDE, "tcp", 8444), "drop", "rule 5"),
        (Probe(OUTSIDE, "tcp", 8445), "drop", "policy"),  # no element: the rule does not match
        (Probe(OUTSIDE, "udp", 53), "accept", "rule 6"),  # an anonymous verdict map
        (Probe(OUTSIDE, "udp", 123), "drop", "rule 6"),
        (Probe(OUTSIDE, "tcp", 9005), "reject", "rule 7"),
        (Probe(OUTSIDE, "udp", 514), "drop", "policy"),
        (Probe(OUTSIDE, "udp", 515), "accept", "rule 8"),
        (Probe(OUTSIDE, "tcp", 515), "drop", "policy"),  # a udp != match fails on tcp
    ],
)
def test_modelled_expressions(probe, expected, rule):
    result = probe_verdict(load("misc"), probe)
    assert result.verdict == expected
    assert result.decided_by.startswith(f"{BASE} {rule}")


@pytest.mark.parametrize(
    "probe",
    [
        Probe(OUTSIDE, "icmp", 0),
        Probe(OUTSIDE, "tcp", 70000),
        Probe("not an address", "tcp", 22),
        Probe(OUTSIDE, "tcp", 22, daddr="2001:db8::1"),
        Probe(OUTSIDE, "tcp", 22, ct_state="NEW"),
    ],
)
def test_a_probe_that_is_not_a_tcp_or_udp_packet_is_an_error(probe):
    with pytest.raises(ValueError, match=r"."):
        probe_verdict(load("hardened"), probe)


# --- 13. rendering ---------------------------------------------------------------------------------------


def rule_expr(case: str, handle: int) -> list[dict[str, Any]]:
    return next(item["rule"]["expr"] for item in load(case) if item.get("rule", {}).get("handle") == handle)


@pytest.mark.parametrize(
    ("case", "handle", "text"),
    [
        ("hardened", 4, "ct state established,related accept"),
        ("hardened", 6, 'iifname "lo" accept'),
        ("hardened", 8, "icmpv6 type { nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept"),
        ("hardened", 14, 'limit rate 10/minute burst 5 packets log prefix "medinfra-in-drop: " level info'),
        ("misc", 5, "ct state != established | related tcp dport 7 accept"),
        ("misc", 11, "udp dport vmap { 53 : accept, 123 : drop }"),
        ("misc", 12, "tcp dport 9000-9009 ip protocol tcp reject with tcp reset"),
        ("goto_return", 12, "ip saddr 192.0.2.0/24 return"),
        ("goto_return", 11, "ip saddr 10.231.10.0/24 goto mgmt"),
        ("nat_rule", 2, 'tcp dport 2222 snat {"addr": "10.231.10.1"}'),
    ],
)
def test_render_rule(case, handle, text):
    assert render_rule(rule_expr(case, handle)) == text


def test_an_unknown_interface_is_not_lo_and_nothing_more():
    """Without the host's routes the probe's interface is unknown: `iifname "lo"` cannot match a packet from another
    host, but `iifname "eth*" accept` may, so no verdict is given rather than a drop."""
    result = verdict("iifname", OUTSIDE, "tcp", 22)
    assert result.verdict == "unknown", result
    assert 'iifname "eth*" accept' in result.decided_by and "interface the probe uses is not known" in result.decided_by


# --- 13. the forward hook (a zone firewall) ---------------------------------------------------------------

CLINICAL = "10.231.50.128"
HIS_APP = "10.231.20.10"
FORWARD = "inet medinfra forward"


def forward_probe(**changes: Any) -> Probe:
    fields = {"daddr": HIS_APP, "hook": "forward", "iifname": "eth1", "oifname": "eth2", **changes}
    return Probe(CLINICAL, "tcp", 443, **fields)


def test_a_routed_packet_is_judged_by_the_forward_chain_with_its_interfaces():
    assert probe_verdict(load("forward"), forward_probe()) == Verdict(
        "accept",
        f'{FORWARD} rule 2 (handle 5): iifname "eth1" oifname "eth2" ip saddr 10.231.50.0/24 ip daddr 10.231.20.10 '
        "tcp dport 443 accept",
        (FORWARD,),
    )
    # The same packet arriving by another interface misses that rule and is dropped at the end.
    assert probe_verdict(load("forward"), forward_probe(iifname="eth3")).decided_by == (
        f"{FORWARD} rule 4 (handle 7): counter drop"
    )


def test_an_unknown_output_interface_gives_no_verdict():
    result = probe_verdict(load("forward"), forward_probe(oifname=None))
    assert result.verdict == "unknown" and 'oifname "eth2"' in result.decided_by, result


def test_the_input_hook_ignores_forward_chains_and_the_forward_hook_input_chains():
    inbound = Probe(CLINICAL, "tcp", 443, iifname="eth1")
    assert probe_verdict(load("forward"), inbound) == Verdict("drop", "inet medinfra input policy drop", (BASE,))
    assert probe_verdict(load("hardened"), forward_probe()) == Verdict("accept", "no forward base chain filters", ())


def test_an_output_interface_on_the_input_hook_is_not_modelled():
    ruleset = load("iifname")
    rule = next(item["rule"] for item in ruleset if "rule" in item and "eth*" in json.dumps(item))
    rule["expr"][0]["match"]["left"]["meta"]["key"] = "oifname"
    result = probe_verdict(ruleset, Probe(OUTSIDE, "tcp", 22, iifname="eth0"))
    assert result.verdict == "unknown" and "oifname on the input hook" in result.decided_by, result


def test_a_probe_on_another_hook_is_refused():
    with pytest.raises(ValueError, match="hook"):
        probe_verdict(load("hardened"), Probe(OUTSIDE, "tcp", 22, hook="output"))


def test_a_match_on_the_source_port_gives_no_verdict_unless_the_probe_names_one():
    """A client may send from any port: a rule that accepts some source ports admits the clients that use them."""
    unknown = probe_verdict(load("ssh_by_source_port"), Probe(OUTSIDE, "tcp", 22))
    assert unknown.verdict == "unknown" and "a client may send from any port" in unknown.decided_by, unknown
    assert probe_verdict(load("ssh_by_source_port"), Probe(OUTSIDE, "tcp", 22, sport=55000)).verdict == "accept"
    assert probe_verdict(load("ssh_by_source_port"), Probe(OUTSIDE, "tcp", 22, sport=40000)).verdict == "drop"


def test_an_interface_index_match_on_an_unknown_interface_gives_no_verdict():
    """`iif` (an index, printed as its name) is as undecidable as `iifname` when the probe's interface is unknown,
    and takes no wildcard when it is known."""
    ruleset = load("iifname")
    rule = next(item["rule"] for item in ruleset if "rule" in item and "eth*" in json.dumps(item))
    rule["expr"][0]["match"]["left"]["meta"]["key"] = "iif"
    assert probe_verdict(ruleset, Probe(OUTSIDE, "tcp", 22)).verdict == "unknown"
    # Known: `iif "eth*"` names an interface called eth*, which eth0 is not; the next rule decides.
    known = probe_verdict(ruleset, Probe(OUTSIDE, "tcp", 22, iifname="eth0"))
    assert known.decided_by.endswith('iifname != "lo" accept'), known
