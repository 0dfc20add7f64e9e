"""Database pairs: a primary, its hot standby (``standby_of``) and the service address clients use.

The one home of the ports a pair needs (PostgreSQL, Patroni's REST API, etcd): the inventory publishes them with the
pair (``medinfra_database_pair``), the database_ha role listens on them and the topology check demands their flows.
The quorum of a pair is its two members and the host of its service address: the side that keeps the clients keeps
the database, and a member cut off from both others never promotes itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations
from typing import Any

from medinfra.topology.checks import Finding
from medinfra.topology.model import Topology

POSTGRESQL_PORT = 5432
PATRONI_REST_PORT = 8008
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380


@dataclass(frozen=True)
class DatabasePair:
    name: str  # the primary's declared name: the cluster's name (Patroni's scope, the metrics' `cluster` label)
    primary: str
    standby: str
    service_host: str
    service_port: int

    @property
    def members(self) -> tuple[str, str]:
        return (self.primary, self.standby)

    @property
    def quorum(self) -> tuple[str, str, str]:
        return (self.primary, self.standby, self.service_host)


@dataclass(frozen=True)
class RequiredFlow:
    source: str
    destination: str
    port: int
    purpose: str


def database_pairs(topology: Topology) -> tuple[DatabasePair, ...]:
    """Every declared pair, in the order of the standbys in hospital.yml."""
    pairs = []
    for standby in topology.hosts:
        if standby.standby_of is None:
            continue
        primary = topology.host(standby.standby_of)
        assert primary.service_address is not None  # check_standbys demands it
        pairs.append(
            DatabasePair(
                name=primary.name,
                primary=primary.name,
                standby=standby.name,
                service_host=primary.service_address.host,
                service_port=primary.service_address.port,
            )
        )
    return tuple(pairs)


def pair_of(topology: Topology, host: str) -> DatabasePair | None:
    """The pair ``host`` belongs to, as a member or as the host of its service address."""
    return next((p for p in database_pairs(topology) if host in p.quorum), None)


def required_flows(pair: DatabasePair) -> list[RequiredFlow]:
    """What the pair's firewalls must let through: either member may lead, so replication runs both ways."""
    flows = [
        RequiredFlow(source, destination, port, purpose)
        for source, destination in permutations(pair.members)
        for port, purpose in ((POSTGRESQL_PORT, "replication"), (PATRONI_REST_PORT, "Patroni's REST API"))
    ]
    flows += [
        RequiredFlow(pair.service_host, member, port, purpose)
        for member in pair.members
        for port, purpose in ((POSTGRESQL_PORT, "clients through the proxy"), (PATRONI_REST_PORT, "the proxy's checks"))
    ]
    flows += [
        RequiredFlow(source, destination, port, "etcd")
        for source, destination in permutations(pair.quorum, 2)
        for port in (ETCD_CLIENT_PORT, ETCD_PEER_PORT)
    ]
    return flows


def pair_problems(topology: Topology) -> list[Finding]:
    """Flows a pair needs that no declared flow allows, located at the standby's ``standby_of``."""
    # Imported here: the segmentation rules import the topology package, which loads topologies with this module.
    from medinfra.segmentation.rules import intended

    findings: list[Finding] = []
    index_of = {host.name: index for index, host in enumerate(topology.hosts)}
    for pair in database_pairs(topology):
        missing = [
            f"{flow.source} -> {flow.destination} tcp/{flow.port} ({flow.purpose})"
            for flow in required_flows(pair)
            if not intended(topology, topology.host(flow.source), topology.host(flow.destination), "tcp", flow.port)
        ]
        if missing:
            findings.append(
                (
                    ("hosts", index_of[pair.standby], "standby_of"),
                    f"the pair {pair.primary}/{pair.standby} needs flows that none declares: {'; '.join(missing)}",
                )
            )
    return findings


def pair_warnings(topology: Topology) -> list[Finding]:
    """Pairs that will work but share a fate: both members in one zone."""
    index_of = {host.name: index for index, host in enumerate(topology.hosts)}
    return [
        (
            ("hosts", index_of[pair.standby], "zone"),
            f"{pair.standby} stands by for {pair.primary} in the same zone {topology.host(pair.primary).zone!r}: "
            "a fault of that zone takes both",
        )
        for pair in database_pairs(topology)
        if topology.host(pair.primary).zone == topology.host(pair.standby).zone
    ]


def pair_vars(topology: Topology, pair: DatabasePair) -> dict[str, Any]:
    """The pair as the inventory gives it to its members and its service host (``medinfra_database_pair``)."""
    primary_sla = topology.sla_classes[topology.host(pair.primary).sla]
    return {
        "name": pair.name,
        "primary": pair.primary,
        "standby": pair.standby,
        "service_host": pair.service_host,
        "service_port": pair.service_port,
        "addresses": {name: str(topology.host(name).address) for name in pair.quorum},
        "ports": {
            "postgresql": POSTGRESQL_PORT,
            "patroni": PATRONI_REST_PORT,
            "etcd_client": ETCD_CLIENT_PORT,
            "etcd_peer": ETCD_PEER_PORT,
        },
        "rpo_seconds": primary_sla.rpo_minutes * 60,
        "rto_seconds": primary_sla.rto_minutes * 60,
    }
