"""Audit runs kept over time: SQLite for a file path, PostgreSQL for a postgresql:// URL, one SQL text for both."""

from __future__ import annotations

import gzip
import json
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, Self
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from medinfra.audit.results import FINDINGS_FORMAT
from medinfra.problems import DocPath, PrerequisiteError, Problem, UserInputError

SCHEMA_VERSION = 1
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# Stored as text in this fixed form: it sorts chronologically and reads the same in both databases.
STARTED_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# Level 1: 60,000 findings (23 MB of JSON) compress to 4 MB in 0.1 s; level 6 saves another 1 MB but takes three
# times as long, and recording must stay well under a second.
GZIP_LEVEL = 1
CONNECT_TIMEOUT = 10
DOCUMENT = "findings document"
RUN_COLUMNS = (
    "run_uuid",
    "site",
    "inventory",
    "transport",
    "started_at",
    "hosts_audited",
    "hosts_total",
    "score",
    "framework_scores",
    "counts",
)
# Table names carry a prefix so a shared PostgreSQL database can hold them next to other applications' tables.
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS medinfra_schema (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS medinfra_runs (
        id {id_type},
        run_uuid TEXT UNIQUE,
        site TEXT NOT NULL,
        inventory TEXT NOT NULL,
        transport TEXT NOT NULL,
        started_at TEXT NOT NULL,
        hosts_audited INTEGER NOT NULL,
        hosts_total INTEGER NOT NULL,
        score DOUBLE PRECISION,
        framework_scores TEXT NOT NULL,
        counts TEXT NOT NULL,
        document {blob_type} NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS medinfra_runs_site ON medinfra_runs (site, started_at, id)",
    """CREATE TABLE IF NOT EXISTS medinfra_results (
        run_id BIGINT NOT NULL REFERENCES medinfra_runs (id) ON DELETE CASCADE,
        host TEXT NOT NULL,
        control TEXT NOT NULL,
        status TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS medinfra_results_run ON medinfra_results (run_id, host, control)",
)


@dataclass(frozen=True)
class RunInfo:
    """One recorded run, without its findings (those are in `HistoryStore.document`)."""

    id: int
    run_uuid: str | None
    site: str
    inventory: str
    transport: str
    started_at: datetime
    hosts_audited: int
    hosts_total: int
    score: float | None
    framework_scores: dict[str, float | None]
    counts: dict[str, int]


class Cursor(Protocol):
    """The part of a DB-API cursor used here; sqlite3's and psycopg's both fit."""

    def execute(self, query: str, params: Sequence[Any] = ..., /) -> object: ...

    def executemany(self, query: str, params: Iterable[Sequence[Any]], /) -> object: ...

    def fetchone(self) -> Sequence[Any] | None: ...

    def fetchall(self) -> Sequence[Sequence[Any]]: ...


class Connection(Protocol):
    def cursor(self) -> Cursor: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Dialect:
    """What differs between the databases; the SQL is written once, with `?` placeholders."""

    placeholder: str
    id_type: str
    blob_type: str
    errors: tuple[type[Exception], ...]

    def sql(self, text: str) -> str:
        return text.replace("?", self.placeholder)


# AUTOINCREMENT: run ids are shown to people, so SQLite must never reuse the id of a deleted run.
SQLITE = Dialect("?", "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", (sqlite3.Error,))


def default_history_location() -> str:
    if location := os.environ.get("MEDINFRA_HISTORY"):
        return location
    data_home = os.environ.get("XDG_DATA_HOME", "")
    # The XDG base directory spec says to ignore a relative XDG_DATA_HOME.
    base = Path(data_home) if os.path.isabs(data_home) else Path.home() / ".local" / "share"
    return str(base / "medinfra" / "history.sqlite")


def is_postgres(location: str) -> bool:
    return location.startswith(POSTGRES_SCHEMES)


def redact(location: str) -> str:
    """The location as it may be shown: a URL's password, in user info or query, replaced by ***."""
    if not is_postgres(location):
        return location
    parts = urlsplit(location)
    user, at, host = parts.netloc.rpartition("@")
    netloc = f"{user.split(':', 1)[0]}:***@{host}" if at and ":" in user else parts.netloc
    query = re.sub(r"(^|&)password=[^&]*", r"\1password=***", parts.query)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def passwords(url: str) -> set[str]:
    found = {urlsplit(url).password or "", *parse_qs(urlsplit(url).query).get("password", [])}
    return {text for secret in found if secret for text in (secret, unquote(secret))}


def reason(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """A database error as one line, with any password scrubbed in case a driver ever echoes it."""
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    line = next((part.strip() for part in text.splitlines() if part.strip()), text)
    for secret in secrets:
        line = line.replace(secret, "***")
    return line


def problem(location: str, message: str) -> UserInputError:
    return UserInputError([Problem(location, (), message)])


def invalid(path: DocPath, message: str) -> UserInputError:
    return UserInputError([Problem(DOCUMENT, path, message)])


def parse_started(text: str) -> datetime:
    return datetime.strptime(text, STARTED_FORMAT).replace(tzinfo=UTC)


def run_values(document: Mapping[str, Any]) -> tuple[Any, ...]:
    """The runs-table columns (RUN_COLUMNS order) for a findings document; UserInputError if it is not one."""
    if document.get("format") != FINDINGS_FORMAT:
        raise invalid(("format",), f"expected {FINDINGS_FORMAT!r}, got {document.get('format')!r}")
    try:
        hosts, summary = document["hosts"], document["summary"]
        overall = summary["overall"]
        run_uuid = document.get("run_id")
        return (
            str(run_uuid) if run_uuid else None,
            str(document.get("site") or document["inventory"]),
            str(document["inventory"]),
            str(document["transport"]),
            parse_started(document["started_at"]).strftime(STARTED_FORMAT),
            sum(1 for h in hosts if h["status"] == "audited"),
            len(hosts),
            overall["score"],
            json.dumps({name: counts["score"] for name, counts in summary["per_framework"].items()}, sort_keys=True),
            json.dumps({status: int(n) for status, n in overall.items() if status != "score"}, sort_keys=True),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise invalid((), f"missing or malformed field: {exc}") from exc


def result_rows(document: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    try:
        return [(str(f["host"]), str(f["control"]), str(f["status"])) for f in document["findings"]]
    except (KeyError, TypeError) as exc:
        raise invalid(("findings",), f"missing or malformed field: {exc}") from exc


def run_info(row: Sequence[Any]) -> RunInfo:
    """A RunInfo from a row of `id` followed by RUN_COLUMNS."""
    run_id, run_uuid, site, inventory, transport, started, audited, total, score, frameworks, counts = row
    return RunInfo(
        id=int(run_id),
        run_uuid=run_uuid,
        site=site,
        inventory=inventory,
        transport=transport,
        started_at=parse_started(started),
        hosts_audited=int(audited),
        hosts_total=int(total),
        score=float(score) if score is not None else None,
        framework_scores=json.loads(frameworks),
        counts=json.loads(counts),
    )


class HistoryStore:
    """Recorded audit runs. `location` is safe to show: any password is redacted."""

    def __init__(self, connection: Connection, dialect: Dialect, location: str, secrets: Iterable[str] = ()) -> None:
        self.location = location
        self._connection = connection
        self._dialect = dialect
        self._secrets = tuple(secrets)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._connection.close()

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Database errors become one located line for the user, never a driver traceback."""
        try:
            yield
        except self._dialect.errors as exc:
            raise problem(self.location, f"{doing}: {reason(exc, self._secrets)}") from exc

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[Cursor]:
        # Both connections are in autocommit mode, so the same BEGIN/COMMIT text marks transactions in each.
        with self._guard(doing):
            cursor = self._connection.cursor()
            cursor.execute("BEGIN")
            try:
                yield cursor
            except BaseException:
                # A broken connection cannot roll back; the original error is the one worth reporting.
                with suppress(*self._dialect.errors):
                    cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def _query(self, doing: str, sql: str, params: Sequence[Any] = ()) -> Sequence[Sequence[Any]]:
        with self._guard(doing):
            cursor = self._connection.cursor()
            cursor.execute(self._dialect.sql(sql), params)
            return cursor.fetchall()

    def ensure_schema(self) -> None:
        """Create the tables if missing (idempotent) and refuse a history written by a newer medinfra."""
        types = {"id_type": self._dialect.id_type, "blob_type": self._dialect.blob_type}
        with self._transaction("opening history") as cursor:
            for statement in SCHEMA:
                cursor.execute(statement.format(**types))
            cursor.execute("SELECT MAX(version) FROM medinfra_schema")
            row = cursor.fetchone()
            version = row[0] if row else None
            if version is None:
                cursor.execute(self._dialect.sql("INSERT INTO medinfra_schema (version) VALUES (?)"), (SCHEMA_VERSION,))
        if version not in (None, SCHEMA_VERSION):
            raise PrerequisiteError(
                f"{self.location}: history schema version {version}, this medinfra reads version {SCHEMA_VERSION}; "
                "use a medinfra that matches it"
            )

    def _select(self, where: str, params: Sequence[Any], limit: int | None = None) -> list[RunInfo]:
        """Runs matching `where`, newest first; runs that started in the same second are ordered by id."""
        sql = f"SELECT id, {', '.join(RUN_COLUMNS)} FROM medinfra_runs {where} ORDER BY started_at DESC, id DESC"
        if limit is not None:
            sql, params = f"{sql} LIMIT ?", (*params, limit)
        return [run_info(row) for row in self._query("reading runs", sql, params)]

    def record(self, document: Mapping[str, Any]) -> RunInfo:
        """Store a findings document; a run whose run_id (UUID) is already recorded is returned, not stored twice."""
        values, results = run_values(document), result_rows(document)
        if values[0] is not None and (known := self.find(values[0])) is not None:
            return known
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        blob = gzip.compress(text.encode("utf-8"), compresslevel=GZIP_LEVEL)
        columns = ", ".join((*RUN_COLUMNS, "document"))
        marks = ", ".join("?" * (len(RUN_COLUMNS) + 1))
        sql = self._dialect.sql
        with self._transaction("recording run") as cursor:
            cursor.execute(sql(f"INSERT INTO medinfra_runs ({columns}) VALUES ({marks}) RETURNING id"), (*values, blob))
            row = cursor.fetchone()
            assert row is not None, "INSERT ... RETURNING gives a row"
            run_id = int(row[0])
            cursor.executemany(
                sql("INSERT INTO medinfra_results (run_id, host, control, status) VALUES (?, ?, ?, ?)"),
                [(run_id, *result) for result in results],
            )
        return self.get(run_id)

    def runs(self, site: str | None = None, limit: int | None = None) -> list[RunInfo]:
        """Recorded runs, newest first, of one site or all."""
        if site is None:
            return self._select("", (), limit)
        return self._select("WHERE site = ?", (site,), limit)

    def get(self, run_id: int) -> RunInfo:
        found = self._select("WHERE id = ?", (run_id,))
        if not found:
            raise problem(self.location, f"no run {run_id}")
        return found[0]

    def find(self, run_uuid: str) -> RunInfo | None:
        """The run recorded with this run id (the findings document's UUID), if any."""
        found = self._select("WHERE run_uuid = ?", (run_uuid,), 1)
        return found[0] if found else None

    def document(self, run_id: int) -> dict[str, Any]:
        """The findings document exactly as recorded."""
        rows = self._query("reading run", "SELECT document FROM medinfra_runs WHERE id = ?", (run_id,))
        if not rows:
            raise problem(self.location, f"no run {run_id}")
        document: dict[str, Any] = json.loads(gzip.decompress(bytes(rows[0][0])))
        return document

    def _site_runs_until(self, run: RunInfo, inclusive: bool, limit: int) -> list[RunInfo]:
        """Runs of `run`'s site that started before it (same second: lower id), newest first."""
        same_second = "id <= ?" if inclusive else "id < ?"
        started = run.started_at.strftime(STARTED_FORMAT)
        where = f"WHERE site = ? AND (started_at < ? OR (started_at = ? AND {same_second}))"
        return self._select(where, (run.site, started, started, run.id), limit)

    def previous(self, run_id: int) -> RunInfo | None:
        """The run of the same site before this one, if any."""
        before = self._site_runs_until(self.get(run_id), inclusive=False, limit=1)
        return before[0] if before else None

    def trend(self, run_id: int, limit: int = 20) -> list[RunInfo]:
        """Up to `limit` runs of the same site ending with this one, oldest first."""
        return self._site_runs_until(self.get(run_id), inclusive=True, limit=limit)[::-1]


def sqlite_store(path: Path) -> HistoryStore:
    location = str(path)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created 0600 before SQLite opens it: runs list each host's security weaknesses.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        connection = sqlite3.connect(path, isolation_level=None)
    except FileExistsError as exc:
        # What mkdir(exist_ok=True) raises when the would-be directory is a file.
        raise problem(location, f"cannot open history: {exc.filename} is not a directory") from exc
    except (OSError, sqlite3.Error) as exc:
        raise problem(location, f"cannot open history: {reason(exc)}") from exc
    return HistoryStore(connection, SQLITE, location)


def postgres_store(url: str) -> HistoryStore:
    location, secrets = redact(url), passwords(url)
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo
    except ImportError as exc:
        raise PrerequisiteError(
            f"{location}: a PostgreSQL history needs psycopg: pip install 'psycopg[binary]>=3.1,<4'"
        ) from exc
    dialect = Dialect("%s", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "BYTEA", (psycopg.Error,))
    try:
        # Without a timeout an unreachable server keeps the command waiting for minutes.
        if "connect_timeout" not in conninfo_to_dict(url):
            url = make_conninfo(url, connect_timeout=CONNECT_TIMEOUT)
        connection = psycopg.connect(url, autocommit=True)
    except psycopg.Error as exc:
        raise problem(location, f"cannot open history: {reason(exc, secrets)}") from exc
    return HistoryStore(connection, dialect, location, secrets)


def open_history(location: str) -> HistoryStore:
    """The history at a file path (SQLite, created if missing) or a postgresql:// URL; tables are created if missing."""
    store = postgres_store(location) if is_postgres(location) else sqlite_store(Path(location).expanduser())
    try:
        store.ensure_schema()
    except BaseException:
        store.close()
        raise
    return store
