"""A database pair member's replication judged against its pair (`derived.database`; pure, like the evaluator).

The host's evidence says what its PostgreSQL sees (`database.replication`); the inventory says which pair it belongs
to (`database_pair`): together they say whether the pair's other member is the one streaming, over SSL, within the
pair's RPO. Either member may lead after a failover, so the live role decides what is checked, not the declared one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medinfra.compliance.checks import is_unavailable


def unavailable(reason: str) -> dict[str, str]:
    return {"unavailable": reason}


def primary_problems(replication: Mapping[str, Any], partner: str, address: str | None, rpo: Any) -> dict[str, Any]:
    """On the live primary: the pair's other member in pg_stat_replication, streaming over SSL within the RPO."""
    senders = [s for s in replication.get("senders") or () if isinstance(s, Mapping)]
    row = next((s for s in senders if s.get("application_name") == partner or s.get("client_addr") == address), None)
    if row is None:
        others = ", ".join(f"{s.get('application_name')} ({s.get('client_addr')})" for s in senders) or "none"
        problem = f"{partner} ({address}) is not replicating from this primary: pg_stat_replication lists {others}"
        return {"streaming": False, "ssl": None, "lag_seconds": None, "problems": [problem]}
    lag = row.get("replay_lag_seconds")
    problems = []
    if row.get("state") != "streaming":
        problems.append(f"{partner}'s replication is in state {row.get('state')}, not streaming")
    if row.get("ssl") is not True:
        problems.append(f"{partner} replicates without SSL")
    if not isinstance(lag, int | float):
        problems.append(f"{partner}'s replay lag is unknown: it has not replayed the current WAL position")
    elif not isinstance(rpo, int | float):
        problems.append("the inventory gives the pair no rpo_seconds")
    elif lag > rpo:
        problems.append(f"{partner}'s replay lag of {lag} s exceeds the pair's RPO of {rpo} s")
    return {"streaming": row.get("state") == "streaming", "ssl": row.get("ssl"), "lag_seconds": lag,
            "problems": problems}


def standby_problems(replication: Mapping[str, Any], partner: str, address: str | None) -> dict[str, Any]:
    """On the live standby: its WAL receiver streams from the pair's other member, on a connection requiring SSL."""
    receiver = replication.get("wal_receiver")
    if not isinstance(receiver, Mapping):
        return {"streaming": False, "ssl": None, "problems": ["no WAL receiver runs: this standby receives no WAL"]}
    problems = []
    if receiver.get("status") != "streaming":
        problems.append(f"the WAL receiver's status is {receiver.get('status')}, not streaming")
    if receiver.get("sender_host") not in (partner, address):
        problems.append(f"it receives WAL from {receiver.get('sender_host')}, not from {partner} ({address})")
    if receiver.get("ssl") is not True:
        problems.append(f"its connection's sslmode {receiver.get('sslmode')} does not require SSL")
    return {"streaming": receiver.get("status") == "streaming", "ssl": receiver.get("ssl"), "problems": problems}


def database_view(database: Any, inventory: Mapping[str, Any], host: str) -> dict[str, Any]:
    """Whether this host is a member of a database pair and, if so, how its replication with the other member is."""
    pair = inventory.get("database_pair")
    if not isinstance(pair, Mapping) or host not in (pair.get("primary"), pair.get("standby")):
        return {"member": False}
    partner = str(pair["standby"] if host == pair.get("primary") else pair["primary"])
    addresses = pair.get("addresses")
    address = addresses.get(partner) if isinstance(addresses, Mapping) else None
    rpo = pair.get("rpo_seconds")
    view: dict[str, Any] = {"member": True, "cluster": pair.get("name"), "partner": partner, "rpo_seconds": rpo}
    section_read = isinstance(database, Mapping) and not is_unavailable(database)
    replication = database.get("replication") if section_read else database
    if is_unavailable(replication):
        view["replication"] = replication  # an error, not a failure: the audit could not see
    elif not isinstance(replication, Mapping):
        view["replication"] = unavailable("database.replication: absent from the evidence")
    elif replication.get("running") is not True:
        view["replication"] = {"role": None, "problems": ["PostgreSQL is not running on this member"]}
    elif replication.get("role") == "primary":
        view["replication"] = {"role": "primary", **primary_problems(replication, partner, address, rpo)}
    else:
        view["replication"] = {"role": "standby", **standby_problems(replication, partner, address)}
    return view
