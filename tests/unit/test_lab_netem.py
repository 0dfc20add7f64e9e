"""`medinfra lab netem`: parsing, the rules and commands it writes, and the delayer's netlink messages, from the
output of the real programs recorded on the lab's zone firewall (Debian 12, nftables 1.0.6, iproute2 6.1)."""

from __future__ import annotations

import copy
import dataclasses
import random
import statistics
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from medinfra.cli import main
from medinfra.lab import nfqueue_delay as nfq
from medinfra.lab.netem import (
    Impairment,
    ImpairmentError,
    ZoneImpairment,
    delayer_command,
    has_rules,
    interface_holding,
    nft_ruleset,
    parse_duration,
    parse_loss,
    parse_settings_comment,
    queue_rule,
    root_qdisc,
    settings_comment,
    table_comment,
    tc_command,
    zone_link,
)
from medinfra.problems import UserInputError
from medinfra.topology.load import load_topology
from tests.conftest import LAB_TOPOLOGY, write_yaml

# `ip -j addr` in the helper lab's zone firewall (zones mgmt, dmz, guest): podman named the interfaces in the order
# it attached the networks, not the zones' order, so guest (10.242.60.254) is eth0.
IP_ADDR = (
    '[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":'
    '"UNKNOWN","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00","broadcast":'
    '"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo",'
    '"valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"::1","prefixlen":128,'
    '"scope":"host","valid_life_time":4294967295,"preferred_life_time":4294967295}]},{"ifindex":2,"link_index":18,'
    '"ifname":"eth2","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP",'
    '"group":"default","txqlen":1000,"link_type":"ether","address":"02:00:0a:f2:28:fe","broadcast":'
    '"ff:ff:ff:ff:ff:ff","link_netnsid":0,"addr_info":[{"family":"inet","local":"10.242.40.254","prefixlen":24,'
    '"broadcast":"10.242.40.255","scope":"global","label":"eth2","valid_life_time":4294967295,'
    '"preferred_life_time":4294967295},{"family":"inet6","local":"fe80::aff:fef2:28fe","prefixlen":64,"scope":"link",'
    '"valid_life_time":4294967295,"preferred_life_time":4294967295}]},{"ifindex":3,"link_index":19,"ifname":"eth0",'
    '"flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","group":'
    '"default","txqlen":1000,"link_type":"ether","address":"02:00:0a:f2:3c:fe","broadcast":"ff:ff:ff:ff:ff:ff",'
    '"link_netnsid":0,"addr_info":[{"family":"inet","local":"10.242.60.254","prefixlen":24,"broadcast":'
    '"10.242.60.255","scope":"global","label":"eth0","valid_life_time":4294967295,"preferred_life_time":4294967295},'
    '{"family":"inet6","local":"fe80::aff:fef2:3cfe","prefixlen":64,"scope":"link","valid_life_time":4294967295,'
    '"preferred_life_time":4294967295}]},{"ifindex":4,"link_index":21,"ifname":"eth1","flags":["BROADCAST",'
    '"MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","group":"default","txqlen":1000,'
    '"link_type":"ether","address":"02:00:0a:f2:0a:fe","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":0,"addr_info":'
    '[{"family":"inet","local":"10.242.10.254","prefixlen":24,"broadcast":"10.242.10.255","scope":"global","label":'
    '"eth1","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":'
    '"fe80::aff:fef2:afe","prefixlen":64,"scope":"link","valid_life_time":4294967295,"preferred_life_time":'
    "4294967295}]}]"
)
# `nft list table inet medinfra_netem_guest` after `lab netem guest --delay 200ms --jitter 50ms --loss 5`.
NFT_LISTING = """table inet medinfra_netem_guest {
\tcomment "medinfra lab netem: delay=200ms jitter=50ms loss=5%"
\tchain egress {
\t\ttype filter hook postrouting priority filter; policy accept;
\t\toifname "eth0" numgen random mod 10000 < 500 counter packets 0 bytes 0 drop
\t}
}
"""
# `nft -j list table ip mangle` with the delayer's chain, as iptables-nft made it.
MANGLE_JSON = (
    '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, '
    '{"table": {"family": "ip", "name": "mangle", "handle": 17}}, {"chain": {"family": "ip", "table": "mangle", '
    '"name": "medinfra-netem-2602", "handle": 1}}, {"chain": {"family": "ip", "table": "mangle", "name": '
    '"POSTROUTING", "handle": 3, "type": "filter", "hook": "postrouting", "prio": -150, "policy": "accept"}}, '
    '{"rule": {"family": "ip", "table": "mangle", "chain": "medinfra-netem-2602", "handle": 2, "expr": [{"match": '
    '{"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "eth0"}}, {"counter": {"packets": 0, "bytes": 0}}, '
    '{"xt": {"type": "target", "name": "NFQUEUE"}}]}}, {"rule": {"family": "ip", "table": "mangle", "chain": '
    '"POSTROUTING", "handle": 4, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": '
    '"medinfra-netem-2602"}}]}}]}'
)
EMPTY_MANGLE_JSON = (
    '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, '
    '{"table": {"family": "ip", "name": "mangle", "handle": 17}}, {"chain": {"family": "ip", "table": "mangle", '
    '"name": "POSTROUTING", "handle": 3, "type": "filter", "hook": "postrouting", "prio": -150, "policy": "accept"}}]}'
)
# `tc qdisc show dev eth0 root` in a lab container: podman's veths have no queue.
TC_SHOW = "qdisc noqueue 0: root refcnt 2 \n"
# One datagram the kernel sent the delayer's socket: NFQNL_MSG_PACKET for queue 2602, packet id 1, at postrouting:
# the relay's STUN Binding success (10.242.40.10:3478 -> 10.242.60.10), whole (48 bytes < the 64-byte copy range).
RECORDED_PACKET = bytes.fromhex(
    "7400000000030000000000000000000002000a2a0b000100000000010800040008000500000000020800060000000003100009000006"
    "000002000af2280a000034000a0045000030dbbe40003f11e6060af2280a0af23c0a0d96ccca001ce507010100002112a4420000000000"
    "00000000000000"
)


@pytest.mark.parametrize(("text", "ms"), [("200ms", 200.0), ("1s", 1000.0), ("1.5s", 1500.0), ("0", 0.0),
                                          ("0ms", 0.0), ("2.5ms", 2.5)])
def test_durations(text: str, ms: float) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["200", "-5ms", "5m", "", "1 s", "1e3ms", "ms"])
def test_bad_durations_name_the_option(text: str) -> None:
    with pytest.raises(ImpairmentError, match="is not a duration") as error:
        parse_duration(text)
    assert error.value.option == "--delay"


@pytest.mark.parametrize(("text", "percent"), [("5%", 5.0), ("5", 5.0), ("0.25%", 0.25), ("100", 100.0), ("0", 0)])
def test_losses(text: str, percent: float) -> None:
    assert parse_loss(text) == percent


@pytest.mark.parametrize("text", ["5.125%", "-1", "five", "%", "5%%"])
def test_bad_losses(text: str) -> None:
    with pytest.raises(ImpairmentError, match="is not a loss") as error:
        parse_loss(text)
    assert error.value.option == "--loss"


@pytest.mark.parametrize(("settings", "option"), [((10_001, 0, 0), "--delay"), ((20, 50, 0), "--jitter"),
                                                  ((0, 0, 100.5), "--loss"), ((-1, 0, 0), "--delay")])
def test_bounds(settings: tuple[float, float, float], option: str) -> None:
    with pytest.raises(ImpairmentError) as error:
        Impairment(*settings)
    assert error.value.option == option


def test_the_largest_impairment_is_accepted() -> None:
    assert str(Impairment(10_000, 10_000, 100)) == "delay 10000ms, jitter 10000ms, loss 100%"
    assert str(Impairment(0, 0, 5)) == "loss 5%"
    assert Impairment().none and not Impairment(0, 0, 0.01).none


@pytest.fixture
def topology() -> Any:
    return load_topology(LAB_TOPOLOGY)


def test_zone_link_names_the_firewall_queue_table_unit_and_chain(topology: Any) -> None:
    link = zone_link(topology, LAB_TOPOLOGY, "guest")
    assert (link.container, link.gateway, link.queue) == ("lab-fw", IPv4Address("10.231.60.254"), 2606)
    assert (link.table, link.unit, link.chain) == (
        "medinfra_netem_guest", "medinfra-netem-guest.service", "medinfra-netem-2606")
    assert zone_link(topology, LAB_TOPOLOGY, "his-dr").table == "medinfra_netem_his_dr"


def test_an_unknown_zone_is_located(topology: Any) -> None:
    with pytest.raises(UserInputError) as error:
        zone_link(topology, LAB_TOPOLOGY, "icu")
    [problem] = error.value.problems
    assert problem.file == str(LAB_TOPOLOGY) and problem.path == ("zones",)
    assert "no zone 'icu'; zones: mgmt, his, his-dr, pacs, dmz, clinical, guest" in problem.message


def write_topology(tmp_path: Path, data: dict[str, Any]) -> Path:
    return write_yaml(tmp_path / "hospital.yml", data)


def test_a_topology_without_a_zone_firewall_is_refused(topology: Any) -> None:
    # A hospital.yml with no zone_firewall but gateways fails validation first; the check still guards the API.
    hosts = tuple(dataclasses.replace(h, services=()) if h.name == "fw" else h for h in topology.hosts)
    with pytest.raises(UserInputError) as error:
        zone_link(dataclasses.replace(topology, hosts=hosts), LAB_TOPOLOGY, "guest")
    [problem] = error.value.problems
    assert problem.path == ("hosts",) and "no host has the service zone_firewall" in problem.message


def test_a_zone_without_a_gateway_is_located(tmp_path: Path, topology_data: dict[str, Any]) -> None:
    data = copy.deepcopy(topology_data)
    del data["zones"][6]["gateway"]
    path = write_topology(tmp_path, data)
    with pytest.raises(UserInputError) as error:
        zone_link(load_topology(path), path, "guest")
    [problem] = error.value.problems
    assert problem.path == ("zones", 6) and "zone 'guest' has no gateway" in problem.message


def test_the_interface_is_the_one_holding_the_gateway() -> None:
    assert interface_holding(IP_ADDR, IPv4Address("10.242.60.254")) == "eth0"
    assert interface_holding(IP_ADDR, IPv4Address("10.242.40.254")) == "eth2"
    assert interface_holding(IP_ADDR, IPv4Address("10.242.99.254")) is None


def test_tc_command_lines() -> None:
    assert tc_command("eth0", Impairment(200, 50, 5)) == [
        "tc", "qdisc", "replace", "dev", "eth0", "root", "netem",
        "delay", "200ms", "50ms", "distribution", "normal", "loss", "5%",
    ]  # fmt: skip
    assert tc_command("eth1", Impairment(1000, 0, 0)) == [
        "tc", "qdisc", "replace", "dev", "eth1", "root", "netem", "delay", "1000ms", "loss", "0%",
    ]  # fmt: skip
    assert tc_command("eth1", Impairment(0, 0, 0.25))[-3:] == ["netem", "loss", "0.25%"]


def test_nft_ruleset_replaces_only_its_own_table(topology: Any) -> None:
    link = zone_link(topology, LAB_TOPOLOGY, "guest")
    ruleset = nft_ruleset(link, "eth0", Impairment(200, 50, 5))
    assert ruleset == (
        "table inet medinfra_netem_guest\n"
        "delete table inet medinfra_netem_guest\n"
        "table inet medinfra_netem_guest {\n"
        '\tcomment "medinfra lab netem: delay=200ms jitter=50ms loss=5%"\n'
        "\tchain egress {\n"
        "\t\ttype filter hook postrouting priority filter; policy accept;\n"
        '\t\toifname "eth0" numgen random mod 10000 < 500 counter drop\n'
        "\t}\n"
        "}\n"
    )
    assert "inet medinfra\n" not in ruleset and "inet medinfra " not in ruleset
    assert "numgen" not in nft_ruleset(link, "eth0", Impairment(200, 0, 0))
    assert "< 25 counter drop" in nft_ruleset(link, "eth0", Impairment(0, 0, 0.25))


def test_the_settings_are_read_back_from_the_table_listing() -> None:
    assert table_comment(NFT_LISTING) == "medinfra lab netem: delay=200ms jitter=50ms loss=5%"
    assert parse_settings_comment(table_comment(NFT_LISTING)) == Impairment(200, 50, 5)
    assert parse_settings_comment(settings_comment(Impairment(1500, 2.5, 0.25))) == Impairment(1500, 2.5, 0.25)
    assert parse_settings_comment("someone else's comment") is None
    assert table_comment("table inet x {\n\tchain c {\n\t\tcomment \"rule\"\n\t}\n}\n") == ""


def test_queue_rule_and_mangle_listing(topology: Any) -> None:
    link = zone_link(topology, LAB_TOPOLOGY, "guest")
    assert queue_rule(link, "eth0") == [
        "-A", "medinfra-netem-2606", "-o", "eth0", "-j", "NFQUEUE", "--queue-num", "2606", "--queue-bypass",
    ]  # fmt: skip
    assert has_rules(MANGLE_JSON) and not has_rules(EMPTY_MANGLE_JSON)
    assert root_qdisc(TC_SHOW) == "qdisc noqueue 0: root refcnt 2"


def test_delayer_unit_waits_for_the_bound_queue(topology: Any) -> None:
    command = delayer_command(zone_link(topology, LAB_TOPOLOGY, "guest"), Impairment(200, 50, 5))
    assert command[:4] == ["systemd-run", "--unit=medinfra-netem-guest.service", "--property=Type=notify",
                           "--property=Restart=on-failure"]
    assert command[-8:] == ["python3", "/usr/local/lib/medinfra/nfqueue_delay.py", "--queue", "2606",
                            "--delay-ms", "200", "--jitter-ms", "50"]


def test_status_warns_when_the_delay_is_not_in_force() -> None:
    settings = Impairment(200, 50, 5)
    base = ("guest", "lab-fw", "eth0", "nftables+nfqueue", settings, "medinfra_netem_guest",
            "medinfra-netem-guest.service")
    healthy = ZoneImpairment(*base, "active", True)
    assert healthy.problems == []
    assert str(healthy) == ("zone guest: lab-fw eth0: delay 200ms, jitter 50ms, loss 5% (jitter: normal) "
                            "[table inet medinfra_netem_guest, medinfra-netem-guest.service active]")
    assert ZoneImpairment(*base, "failed", True).problems == [
        "the delayer is failed: packets pass without delay (queue bypass)"]
    assert "NFQUEUE rule is gone" in ZoneImpairment(*base, "active", False).problems[0]
    assert ZoneImpairment("guest", "lab-fw", "eth0", "none", Impairment()).problems == []


# The delayer's netlink messages, byte for byte (nlmsghdr in host order, x86-64 little-endian; the rest big-endian).
def test_bind_message_bytes() -> None:
    assert nfq.bind_message(2602, 1).hex() == (
        "3000000002030500010000000000000000000a2a"  # nlmsghdr 48 bytes, type 3<<8|2, REQUEST|ACK, seq 1; nfgenmsg
        "0800010001000000"  # NFQA_CFG_CMD: BIND, pf 0
        "0900020000000040" "02000000"  # NFQA_CFG_PARAMS: copy range 64, copy packet (5 bytes, padded)
        "0800030000002710"  # NFQA_CFG_QUEUE_MAXLEN 10000
    )


def test_verdict_message_bytes() -> None:
    assert nfq.verdict_message(2602, 7).hex() == (
        "2000000001030100000000000000000000000a2a"  # nlmsghdr 32 bytes, type 3<<8|1, REQUEST; nfgenmsg queue 2602
        "0c00020000000001" "00000007"  # NFQA_VERDICT_HDR: NF_ACCEPT, packet id 7
    )


def test_a_recorded_packet_is_decoded() -> None:
    [(kind, body)] = list(nfq.netlink_messages(RECORDED_PACKET))
    assert kind == (nfq.NFNL_SUBSYS_QUEUE << 8) | nfq.NFQNL_MSG_PACKET
    packet = nfq.decode_packet(body)
    assert (packet.queue, packet.packet_id, packet.hw_protocol, packet.hook) == (2602, 1, 0x0800, 4)
    ip = packet.payload
    assert len(ip) == 48 and ip[9] == 17  # the whole UDP datagram
    assert IPv4Address(ip[12:16]) == IPv4Address("10.242.40.10")  # from the relay
    assert IPv4Address(ip[16:20]) == IPv4Address("10.242.60.10")  # to the guest
    assert int.from_bytes(ip[20:22], "big") == 3478
    assert ip[28:30] == b"\x01\x01"  # a STUN Binding success


def test_truncated_netlink_data_is_an_error() -> None:
    with pytest.raises(ValueError, match="overruns"):
        list(nfq.netlink_messages(RECORDED_PACKET[:60]))
    with pytest.raises(ValueError, match="without NFQA_PACKET_HDR"):
        nfq.decode_packet(bytes(4))


def test_an_acknowledgement_and_an_error() -> None:
    assert nfq.netlink_error((0).to_bytes(4, "little", signed=True)) == 0
    assert nfq.netlink_error((-1).to_bytes(4, "little", signed=True)) == -1


def test_delays_are_normal_around_the_delay_and_cut() -> None:
    rng = random.Random(26)
    draws = [nfq.draw_delay(0.2, 0.05, rng) for _ in range(20_000)]
    assert 0.198 < statistics.median(draws) < 0.202
    assert 0.048 < statistics.stdev(draws) < 0.052
    assert min(draws) >= 0.0 and max(draws) <= 0.4
    assert nfq.draw_delay(0.2, 0.0, rng) == 0.2
    assert min(nfq.draw_delay(0.01, 0.01, rng) for _ in range(1000)) == 0.0  # cut at 0, never negative


def test_cli_bad_values_exit_2_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_code:
        main(["lab", "netem", "guest", "--delay", "200"])
    assert exit_code.value.code == 2
    assert "argument --delay: '200' is not a duration" in capsys.readouterr().err
    assert main(["lab", "netem", "guest", "--delay", "20ms", "--jitter", "50ms"]) == 2
    assert "--jitter: (top level): jitter 50 ms must be between 0 and the delay (20 ms)" in capsys.readouterr().err
    assert main(["lab", "netem", "guest", "--clear", "--loss", "3"]) == 2
    assert "--clear" in capsys.readouterr().err


def test_cli_unknown_zone_exits_2_before_touching_the_lab(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "netem", "icu", "-i", str(LAB_TOPOLOGY.parent), "--loss", "5"]) == 2
    assert f"{LAB_TOPOLOGY}: zones: no zone 'icu'" in capsys.readouterr().err
