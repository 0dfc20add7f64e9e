"""`medinfra lab netem ZONE`: a weak network for one lab zone, on the lab's zone firewall.

The firewall routes between zones with one interface per zone. The impairment applies to what leaves its interface in
the zone (the packets it forwards into the zone, and its own), as `tc qdisc ... root netem` on that interface would:
a round trip from a host in the zone through the firewall meets it once.

Two backends:
- kernel netem, where the kernel has it: `tc qdisc replace dev IFACE root netem ...`;
- otherwise (this project's machines: no CONFIG_NET_SCH_NETEM) nftables and NFQUEUE. Loss: a table of our own per
  zone, `inet medinfra_netem_ZONE`, whose postrouting chain drops LOSS % of the packets leaving the interface
  (`numgen random`); the table's comment records the settings. Delay: these kernels lack nftables' `queue`
  expression (CONFIG_NFT_QUEUE) but have the xtables NFQUEUE target, and the lab image has no iptables, so the
  controller's iptables-nft, run in the firewall's network namespace only, adds a chain of our own to `ip mangle`
  (medinfra-netem-QUEUE: `-o IFACE -j NFQUEUE --queue-bypass`); nfqueue_delay.py, run in the firewall container as
  the transient unit medinfra-netem-ZONE.service, lets each packet go after its delay. IPv4 only, as the lab is.

The queue rule has `--queue-bypass`: while no program holds the queue (the delayer died, or is being replaced)
packets pass undelayed instead of being dropped. A dead delayer then shows as a missing delay (and in `lab netem
ZONE`, which exits 1), not as a zone cut off from every other zone, which would break every test and probe that
crosses the firewall.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from medinfra.lab.lab import NAMESPACES, NETWORK_ONLY, in_container, init_process
from medinfra.lab.plan import container_name
from medinfra.lab.podman import LabError
from medinfra.problems import Problem, UserInputError
from medinfra.topology.load import load_topology
from medinfra.topology.model import Topology

Say = Callable[[str], None]
MAX_DELAY_MS = 10_000.0
# nftables' numgen draws whole numbers: loss is given to 0.01 %, drawn out of 10,000.
LOSS_STEPS = 10_000
QUEUE_BASE = 2600  # NFQUEUE numbers of the zones: QUEUE_BASE + the zone's index in the topology
DELAYER_PATH = "/usr/local/lib/medinfra/nfqueue_delay.py"
DELAYER_SOURCE = Path(__file__).with_name("nfqueue_delay.py")
SETTINGS_PREFIX = "medinfra lab netem:"
NETEM_UNKNOWN = "qdisc kind is unknown"
IPTABLES = "iptables-nft"  # the controller's (package iptables, a lab prerequisite), in the firewall's netns
_DURATION = re.compile(r"(?P<number>\d+(?:\.\d+)?)(?P<unit>ms|s)")
_LOSS = re.compile(r"(?P<number>\d+(?:\.\d{1,2})?)%?")


class ImpairmentError(ValueError):
    """A --delay, --jitter or --loss value that cannot be used; the message says why."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class Impairment:
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_percent: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.delay_ms <= MAX_DELAY_MS:
            raise ImpairmentError("--delay", f"delay {self.delay_ms:g} ms is outside 0-{MAX_DELAY_MS:g} ms")
        if self.jitter_ms < 0 or self.jitter_ms > self.delay_ms:
            # Beyond the delay a normal draw is cut at 0 so often that the mean delay is no longer the delay.
            message = f"jitter {self.jitter_ms:g} ms must be between 0 and the delay ({self.delay_ms:g} ms)"
            raise ImpairmentError("--jitter", message)
        if not 0 <= self.loss_percent <= 100:
            raise ImpairmentError("--loss", f"loss {self.loss_percent:g} % is outside 0-100 %")

    @property
    def none(self) -> bool:
        return self.delay_ms == 0 and self.loss_percent == 0

    @property
    def delays(self) -> bool:
        return self.delay_ms > 0

    def __str__(self) -> str:
        if self.none:
            return "none"
        parts = [f"delay {self.delay_ms:g}ms", f"jitter {self.jitter_ms:g}ms"] if self.delays else []
        return ", ".join([*parts, f"loss {self.loss_percent:g}%"])


def parse_duration(text: str) -> float:
    """``200ms``, ``1s``, ``1.5s`` or ``0``, in milliseconds."""
    if text.strip() == "0":
        return 0.0
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ImpairmentError("--delay", f"{text!r} is not a duration such as 200ms, 1s or 0")
    number = float(match["number"])
    return number * 1000 if match["unit"] == "s" else number


def parse_loss(text: str) -> float:
    """``5%``, ``5`` or ``0.5%``: a percentage, to 0.01 %."""
    match = _LOSS.fullmatch(text.strip())
    if match is None:
        raise ImpairmentError("--loss", f"{text!r} is not a loss such as 5% or 0.5 (a percentage, to two decimals)")
    return float(match["number"])


@dataclass(frozen=True)
class ZoneLink:
    """Where a zone's impairment lives: the zone firewall's container, its address in the zone, and our names."""

    zone: str
    gateway: IPv4Address
    container: str
    queue: int
    topology_file: Path
    zone_index: int
    firewall_index: int

    @property
    def table(self) -> str:
        return "medinfra_netem_" + self.zone.replace("-", "_")

    @property
    def unit(self) -> str:
        return f"medinfra-netem-{self.zone}.service"

    @property
    def chain(self) -> str:
        """Our chain in iptables' table ip mangle (names are at most 28 characters: the queue, not the zone)."""
        return f"medinfra-netem-{self.queue}"


def zone_link(topology: Topology, topology_file: Path, zone: str) -> ZoneLink:
    """The zone's way through the firewall; located problems when there is none."""
    source = str(topology_file)
    names = [z.name for z in topology.zones]
    if zone not in names:
        raise UserInputError([Problem(source, ("zones",), f"no zone {zone!r}; zones: {', '.join(names)}")])
    index = names.index(zone)
    firewalls = topology.zone_firewalls()
    if not firewalls:
        message = f"no host has the service zone_firewall: zone {zone!r} has no firewall to impair"
        raise UserInputError([Problem(source, ("hosts",), message)])
    gateway = topology.zones[index].gateway
    if gateway is None:
        message = f"zone {zone!r} has no gateway: the zone firewall has no interface in it"
        raise UserInputError([Problem(source, ("zones", index), message)])
    firewall = firewalls[0]
    return ZoneLink(
        zone, gateway, container_name(topology.site.name, firewall.name), QUEUE_BASE + index, topology_file, index,
        topology.hosts.index(firewall),
    )  # fmt: skip


def interface_holding(ip_addr_json: str, address: IPv4Address) -> str | None:
    """The interface that holds ``address``, from `ip -j addr`."""
    for interface in json.loads(ip_addr_json):
        for info in interface.get("addr_info", []):
            if info.get("family") == "inet" and info.get("local") == str(address):
                return str(interface["ifname"])
    return None


def tc_command(interface: str, impairment: Impairment) -> list[str]:
    """The kernel netem qdisc for the impairment, replacing whatever root qdisc the interface has."""
    command = ["tc", "qdisc", "replace", "dev", interface, "root", "netem"]
    if impairment.delays:
        command += ["delay", f"{impairment.delay_ms:g}ms"]
        if impairment.jitter_ms:
            command += [f"{impairment.jitter_ms:g}ms", "distribution", "normal"]
    return [*command, "loss", f"{impairment.loss_percent:g}%"]


def settings_comment(impairment: Impairment) -> str:
    """What the table's comment records, read back by `lab netem ZONE`."""
    return (
        f"{SETTINGS_PREFIX} delay={impairment.delay_ms:g}ms jitter={impairment.jitter_ms:g}ms "
        f"loss={impairment.loss_percent:g}%"
    )


def parse_settings_comment(comment: str) -> Impairment | None:
    match = re.fullmatch(
        re.escape(SETTINGS_PREFIX) + r" delay=([\d.]+)ms jitter=([\d.]+)ms loss=([\d.]+)%", comment.strip()
    )
    return Impairment(float(match[1]), float(match[2]), float(match[3])) if match else None


def nft_ruleset(link: ZoneLink, interface: str, impairment: Impairment) -> str:
    """Our table for the zone (loss, and the settings in its comment), replacing any earlier one in one transaction;
    never touches `inet medinfra`."""
    rules = []
    if impairment.loss_percent:
        below = round(impairment.loss_percent * LOSS_STEPS / 100)
        rules.append(f'oifname "{interface}" numgen random mod {LOSS_STEPS} < {below} counter drop')
    body = "".join(f"\t\t{rule}\n" for rule in rules)
    return (
        f"table inet {link.table}\n"
        f"delete table inet {link.table}\n"
        f"table inet {link.table} {{\n"
        f'\tcomment "{settings_comment(impairment)}"\n'
        "\tchain egress {\n"
        "\t\ttype filter hook postrouting priority filter; policy accept;\n"
        f"{body}"
        "\t}\n"
        "}\n"
    )


def queue_rule(link: ZoneLink, interface: str) -> list[str]:
    """The iptables rule (in our chain) that hands the zone's egress to the delayer's queue."""
    return [
        "-A", link.chain, "-o", interface, "-j", "NFQUEUE", "--queue-num", str(link.queue), "--queue-bypass",
    ]  # fmt: skip


def delayer_command(link: ZoneLink, impairment: Impairment) -> list[str]:
    """systemd-run for the delayer: Type=notify, so it returns once the queue is bound (or the start failed)."""
    return [
        "systemd-run", f"--unit={link.unit}", "--property=Type=notify", "--property=Restart=on-failure",
        f"--description=medinfra lab netem: delay for zone {link.zone}",
        "python3", DELAYER_PATH, "--queue", str(link.queue),
        "--delay-ms", f"{impairment.delay_ms:g}", "--jitter-ms", f"{impairment.jitter_ms:g}",
    ]  # fmt: skip


@dataclass(frozen=True)
class ZoneImpairment:
    """What is in force on a zone, as read from the firewall."""

    zone: str
    container: str
    interface: str
    backend: str  # "netem", "nftables+nfqueue" or "none"
    impairment: Impairment  # for the nftables backend (the netem backend shows its qdisc line instead)
    table: str = ""
    unit: str = ""
    delayer: str = ""  # the delayer unit's ActiveState, for the nftables backend with a delay
    queue_rule: bool = False  # whether the NFQUEUE rule is in place, for the nftables backend with a delay
    qdisc: str = ""  # the root qdisc line, for the netem backend

    @property
    def problems(self) -> list[str]:
        """Why the delay in force is not the one set (the loss is in force whenever the table is)."""
        if self.backend != "nftables+nfqueue" or not self.impairment.delays:
            return []
        found = []
        if self.delayer != "active":
            found.append(f"the delayer is {self.delayer or 'missing'}: packets pass without delay (queue bypass)")
        if not self.queue_rule:
            found.append("the NFQUEUE rule is gone (a flushed ruleset?): packets pass without delay")
        return found

    def __str__(self) -> str:
        where = f"zone {self.zone}: {self.container} {self.interface}"
        if self.backend == "none":
            return f"{where}: no impairment"
        if self.backend == "netem":
            return f"{where}: kernel netem: {self.qdisc}"
        delayer = f", {self.unit} {self.delayer}" if self.impairment.delays else ""
        shape = " (jitter: normal)" if self.impairment.jitter_ms else ""
        text = f"{where}: {self.impairment}{shape} [table inet {self.table}{delayer}]"
        return "\n".join([text, *(f"  WARNING: {p}" for p in self.problems)])


def root_qdisc(tc_show: str) -> str:
    """The root qdisc line of `tc qdisc show dev IFACE root`."""
    return next((line.strip() for line in tc_show.splitlines() if " root " in f"{line} "), "")


def has_rules(nft_json: str) -> bool:
    """Whether `nft -j list table ...` shows any rule."""
    return any("rule" in item for item in json.loads(nft_json).get("nftables", []))


def table_comment(nft_list: str) -> str:
    """The table's own comment in `nft list table ...` (nft 1.0.6's JSON listing leaves table comments out)."""
    match = re.search(r'^\s*comment "(.*)"$', nft_list.split("chain ", 1)[0], flags=re.M)
    return match[1] if match else ""


class _Firewall:
    """Commands in the zone firewall's container; a failure is a LabError naming the command."""

    def __init__(self, link: ZoneLink) -> None:
        self.link = link
        self.target = init_process(link.container)
        if self.target.pid == 0:
            message = (
                f"the lab is not running: container {link.container} is not up "
                f"(`medinfra lab up -i {link.topology_file.parent}`)"
            )
            raise UserInputError([Problem(str(link.topology_file), ("hosts", link.firewall_index), message)])

    def run(self, command: Sequence[str], check: bool = True, host_program: bool = False) -> tuple[int, str, str]:
        """``command`` in the container; with ``host_program``, the controller's program on its network stack."""
        result = in_container(self.target, command, timeout=60, namespaces=NETWORK_ONLY if host_program else NAMESPACES)
        if check and result.returncode != 0:
            raise LabError(f"{' '.join(command[:4])} in {self.link.container} failed: {result.stderr.strip()}")
        return result.returncode, result.stdout, result.stderr

    def interface(self) -> str:
        name = interface_holding(self.run(["ip", "-j", "addr"])[1], self.link.gateway)
        if name is None:
            message = (
                f"no interface of {self.link.container} holds the gateway {self.link.gateway}: "
                f"the lab is out of date (`medinfra lab up -i {self.link.topology_file.parent}`)"
            )
            raise UserInputError([Problem(str(self.link.topology_file), ("zones", self.link.zone_index, "gateway"),
                                          message)])
        return name

    def stop_delayer(self) -> None:
        self.run(["systemctl", "stop", self.link.unit], check=False)
        self.run(["systemctl", "reset-failed", self.link.unit], check=False)

    def start_delayer(self, impairment: Impairment) -> None:
        source = DELAYER_SOURCE.read_text(encoding="utf-8")
        install = 'mkdir -p "${2%/*}" && printf %s "$1" > "$2.new" && mv "$2.new" "$2"'
        self.run(["sh", "-c", install, "install", source, DELAYER_PATH])
        code, _, error = self.run(delayer_command(self.link, impairment), check=False)
        if code != 0:
            journal = self.run(["journalctl", "-u", self.link.unit, "-n", "5", "--no-pager", "-o", "cat"], False)
            raise LabError(f"the delayer {self.link.unit} did not start: {error.strip()}\n{journal[1].strip()}")

    def apply_table(self, ruleset: str) -> None:
        self.run(["sh", "-c", 'printf %s "$1" | nft -f -', "nft", ruleset])

    def delete_table(self) -> None:
        if self.run(["nft", "list", "table", "inet", self.link.table], check=False)[0] == 0:
            self.run(["nft", "delete", "table", "inet", self.link.table])

    def iptables(self, *arguments: str, check: bool = True) -> tuple[int, str, str]:
        return self.run([IPTABLES, "--wait", "-t", "mangle", *arguments], check, host_program=True)

    def add_queue_rule(self, interface: str) -> None:
        chain = self.link.chain
        if self.iptables("-N", chain, check=False)[0] != 0:
            self.iptables("-F", chain)  # it exists: replace its rule
        self.iptables(*queue_rule(self.link, interface))
        if self.iptables("-C", "POSTROUTING", "-j", chain, check=False)[0] != 0:
            self.iptables("-A", "POSTROUTING", "-j", chain)

    def queue_rule_present(self) -> bool:
        code, rules, _ = self.iptables("-S", self.link.chain, check=False)
        return code == 0 and "NFQUEUE" in rules

    def remove_queue_rule(self) -> None:
        chain = self.link.chain
        while self.iptables("-D", "POSTROUTING", "-j", chain, check=False)[0] == 0:
            pass
        if self.iptables("-F", chain, check=False)[0] == 0:
            self.iptables("-X", chain)
        # iptables-nft made table ip mangle for our chain; the firewall role reports any table not its own.
        code, listing, _ = self.run(["nft", "-j", "list", "table", "ip", "mangle"], check=False)
        if code == 0 and not has_rules(listing):
            self.run(["nft", "delete", "table", "ip", "mangle"])

    def root_qdisc(self, interface: str) -> str:
        return root_qdisc(self.run(["tc", "qdisc", "show", "dev", interface, "root"])[1])

    def delete_netem(self, interface: str) -> None:
        if " netem " in f" {self.root_qdisc(interface)} ":
            self.run(["tc", "qdisc", "del", "dev", interface, "root"])


def _firewall(topology_file: Path, zone: str) -> _Firewall:
    return _Firewall(zone_link(load_topology(topology_file), topology_file, zone))


def status(topology_file: Path, zone: str) -> ZoneImpairment:
    """What impairs ``zone`` now, read from the firewall."""
    firewall = _firewall(topology_file, zone)
    return _status(firewall, firewall.interface())


def _status(firewall: _Firewall, interface: str) -> ZoneImpairment:
    link = firewall.link
    qdisc = firewall.root_qdisc(interface)
    if " netem " in f" {qdisc} ":
        # The qdisc line itself says what is in force (tc's own words): nothing to parse.
        return ZoneImpairment(link.zone, link.container, interface, "netem", Impairment(), qdisc=qdisc)
    code, listing, _ = firewall.run(["nft", "list", "table", "inet", link.table], check=False)
    settings = parse_settings_comment(table_comment(listing)) if code == 0 else None
    if settings is None:
        return ZoneImpairment(link.zone, link.container, interface, "none", Impairment())
    state = firewall.run(["systemctl", "show", "--property=ActiveState", "--value", link.unit], check=False)[1]
    return ZoneImpairment(
        link.zone, link.container, interface, "nftables+nfqueue", settings, link.table, link.unit, state.strip(),
        firewall.queue_rule_present(),
    )  # fmt: skip


def apply(topology_file: Path, zone: str, impairment: Impairment, say: Say | None = None) -> ZoneImpairment:
    """Put ``impairment`` in force on ``zone`` (replacing what was), and return what is in force then."""
    firewall = _firewall(topology_file, zone)
    interface = firewall.interface()
    if impairment.none:
        return _clear(firewall, interface)
    code, _, error = firewall.run(tc_command(interface, impairment), check=False)
    if code == 0:  # kernel netem: nothing of the other backend may stay (a firewall moved to a newer kernel)
        firewall.remove_queue_rule()
        firewall.delete_table()
        firewall.stop_delayer()
        return _status(firewall, interface)
    if NETEM_UNKNOWN not in error:
        raise LabError(f"tc qdisc replace ... netem in {firewall.link.container} failed: {error.strip()}")
    if say is not None:
        say(f"{firewall.link.container}: the kernel has no netem qdisc; using nftables and NFQUEUE")
    firewall.stop_delayer()  # lets the packets it held go; until the new one binds, the queue is bypassed
    if impairment.delays:
        firewall.start_delayer(impairment)
        firewall.add_queue_rule(interface)
    else:
        firewall.remove_queue_rule()
    firewall.apply_table(nft_ruleset(firewall.link, interface, impairment))
    return _status(firewall, interface)


def clear(topology_file: Path, zone: str) -> ZoneImpairment:
    """Remove every impairment of ``zone``: the netem qdisc, our table and the delayer."""
    firewall = _firewall(topology_file, zone)
    return _clear(firewall, firewall.interface())


def _clear(firewall: _Firewall, interface: str) -> ZoneImpairment:
    firewall.delete_netem(interface)
    firewall.remove_queue_rule()
    firewall.delete_table()
    firewall.stop_delayer()
    return _status(firewall, interface)
