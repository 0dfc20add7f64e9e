"""The database pair on live containers: Patroni took over the primary's data, the standby streams over TLS,
HAProxy sends writes to the leader, a stopped leader is replaced and the old one rejoins as a replica."""

from __future__ import annotations

import json
import time
from typing import Any

import testinfra

MEMBERS = ("dbha-primary", "dbha-standby")
PATRONICTL = "patronictl -c /etc/patroni/config.yml list --format json"
THROUGH_PROXY = (
    "PGPASSFILE=/etc/medinfra/database-ha/drill.pgpass psql -AtX -v ON_ERROR_STOP=1 "
    '"host=127.0.0.1 port=5432 dbname=medinfra_drill user=medinfra_drill sslmode=require connect_timeout=5" -c {}'
)


def member(name: str) -> Any:
    return testinfra.get_host(f"podman://{name}")


def sql(name: str, query: str, database: str = "postgres") -> str:
    return str(member(name).check_output(f"runuser -u postgres -- psql -AtX -d {database} -c \"{query}\"")).strip()


def cluster() -> list[dict[str, Any]]:
    return list(json.loads(member(MEMBERS[0]).check_output(PATRONICTL)))


def wait_for(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {cluster()}"
        time.sleep(1)


def leader() -> str:
    return str(next(row["Member"] for row in cluster() if row["Role"] == "Leader"))


def replica_streams() -> bool:
    return any(row["Role"] == "Replica" and row["State"] == "streaming" for row in cluster())


def test_the_takeover_kept_the_primary_data_and_copied_it_to_the_standby() -> None:
    for name in MEMBERS:
        assert sql(name, "SELECT v FROM t", "kept") == "before takeover"
    assert member("dbha-primary").file("/etc/postgresql/15/main/start.conf").contains("^manual")


def test_replication_streams_over_tls() -> None:
    wait_for(replica_streams, 60)
    rows = sql(leader(), "SELECT r.state, s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)")
    assert rows == "streaming|t"


def test_writes_through_the_proxy_reach_the_leader_and_the_replica(host: Any) -> None:
    host.check_output(THROUGH_PROXY.format("\"INSERT INTO heartbeat VALUES ('molecule', 1)\""))
    replica = next(name for name in MEMBERS if name != leader())
    wait_for(lambda: sql(replica, "SELECT count(*) FROM heartbeat WHERE drill_id = 'molecule'",
                         "medinfra_drill") == "1", 10)


def test_a_stopped_leader_is_replaced_and_rejoins(host: Any) -> None:
    wait_for(replica_streams, 60)
    old = leader()
    member(old).check_output("systemctl stop patroni")
    new = next(name for name in MEMBERS if name != old)
    wait_for(lambda: leader() == new, 45)
    wait_for(lambda: host.run(THROUGH_PROXY.format("\"INSERT INTO heartbeat VALUES ('molecule', 2)\"")).rc == 0, 20)
    member(old).check_output("systemctl start patroni")
    wait_for(lambda: replica_streams() and leader() == new, 90)
    assert sql(old, "SELECT pg_is_in_recovery()") == "t"
