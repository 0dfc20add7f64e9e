"""Audit runs kept over time: SQLite for a file path, PostgreSQL for a postgresql:// URL or a libpq key=value
connection string, one SQL text for both.

Commands that only read (`history`, `diff`, `report`, the trend an audit shows) open the store read-only and
create nothing. Writers take the write lock up front and wait for it (many audits may finish at once).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import sqlite3
import stat
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, Self
from urllib.parse import quote, unquote

from medinfra.audit.results import FINDINGS_FORMAT, FINDINGS_MAX_BYTES
from medinfra.problems import DocPath, PrerequisiteError, Problem, UserInputError, refused
from medinfra.safe_text import REDACTED, clean, one_line
from medinfra.safe_text import redact as redact_secrets

# 1: audit runs; 2: drill records (medinfra_drills). An older history is migrated step by step when opened to write.
SCHEMA_VERSION = 2
POSTGRES_SCHEMES = ("postgresql", "postgres")
# How long a writer waits for another to finish: recording a 1,000-host run takes about a second.
BUSY_TIMEOUT = 60.0
# Stored as text in this fixed form: it sorts chronologically and reads the same in both databases.
STARTED_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# Level 1: 60,000 findings (23 MB of JSON) compress to 4 MB in 0.1 s; level 6 saves another 1 MB but takes three
# times as long, and recording must stay well under a second.
GZIP_LEVEL = 1
CONNECT_TIMEOUT = 10
# Words someone may give meaning "no history": refused rather than taken for a file name in the working directory.
NOT_A_LOCATION = frozenset({"none", "null", "no", "off", "false"})
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
DRILL_COLUMNS = ("drill_uuid", "site", "kind", "name", "started_at", "finished_at", "passed", "evidence")
# The statements that take a history from the version before each key to that version.
MIGRATIONS: Mapping[int, tuple[str, ...]] = {
    2: (
        """CREATE TABLE IF NOT EXISTS medinfra_drills (
            id {id_type},
            drill_uuid TEXT UNIQUE NOT NULL,
            site TEXT NOT NULL,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT NOT NULL,
            passed INTEGER NOT NULL,
            evidence TEXT NOT NULL,
            document {blob_type} NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS medinfra_drills_site ON medinfra_drills (site, started_at, id)",
    ),
}


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


@dataclass(frozen=True)
class DrillInfo:
    """One recorded drill (failover or plan rehearsal); its document is in `HistoryStore.drill_document`."""

    id: int
    drill_uuid: str
    site: str
    kind: str
    name: str
    started_at: datetime
    finished_at: datetime
    passed: bool
    evidence: str

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


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
    # Starts a transaction that writes. SQLite's IMMEDIATE takes the write lock first, waiting for it (busy
    # timeout): a plain BEGIN would read, then fail with "database is locked" when it wants to write.
    begin_write: str
    # One row if the table named by the parameter exists.
    table_exists: str

    def sql(self, text: str) -> str:
        return text.replace("?", self.placeholder)


# AUTOINCREMENT: run ids are shown to people, so SQLite must never reuse the id of a deleted run.
SQLITE = Dialect(
    "?", "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB", (sqlite3.Error,), "BEGIN IMMEDIATE",
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
)


@dataclass(frozen=True)
class Location:
    """Where the history is: `target` for the database driver, `shown` with any password redacted."""

    target: str
    shown: str
    postgres: bool
    secrets: frozenset[str] = frozenset()


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
# libpq's key=value form (host=db dbname=history password=...): a key, then '=' right at the start.
_CONNINFO_START = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]*\s*=")
_CONNINFO_PAIR = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^'\\]|\\.)*'|(?:[^\s\\]|\\.)*)\s*", re.DOTALL)
_BACKSLASHED = re.compile(r"\\(.)", re.DOTALL)
_PASSWORD_ON = re.compile(r"(?i)(password\s*=\s*).*", re.DOTALL)


def _url_location(scheme: str, text: str) -> Location:
    """A postgresql:// URL in any spelling of its scheme, its password (user info or query) redacted."""
    rest = text[len(scheme) + 3 :]
    secrets: set[str] = set()
    user_info, at, host = rest.rpartition("@")
    if at and ":" in user_info:
        user, password = user_info.split(":", 1)
        secrets.add(password)
        rest = f"{user}:{REDACTED}@{host}"
    base, question, query = rest.partition("?")
    pairs = []
    for pair in query.split("&") if question else ():
        key, equals, value = pair.partition("=")
        if equals and unquote(key).strip().lower() == "password":
            secrets.add(value)
            pair = f"{key}={REDACTED}"
        pairs.append(pair)
    shown = f"{scheme.lower()}://{base}{question}{'&'.join(pairs)}"
    known = frozenset(text for secret in secrets if secret for text in (secret, unquote(secret)))
    if scheme.lower() not in POSTGRES_SCHEMES:
        raise refused(shown, f"unsupported scheme {scheme!r}: a history is a SQLite file path or a postgresql:// URL")
    return Location("postgresql://" + text[len(scheme) + 3 :], shown, True, known)


def _conninfo_location(text: str) -> Location:
    """A libpq key=value connection string, its password value redacted; refused (redacted) if it does not parse."""
    pairs, secrets, position = [], set(), 0
    while position < len(text):
        match = _CONNINFO_PAIR.match(text, position)
        if match is None or match.end() == position:
            raise refused(_PASSWORD_ON.sub(rf"\1{REDACTED}", text), "not a valid key=value connection string")
        key, value = match[1], match[2]
        if key.lower() == "password":
            secrets.update({value, _BACKSLASHED.sub(r"\1", value.strip("'"))})
            value = REDACTED
        pairs.append(f"{key}={value}")
        position = match.end()
    return Location(text, " ".join(pairs), True, frozenset(secret for secret in secrets if secret))


def parse_location(text: str) -> Location:
    """A history location: a postgresql:// URL, a libpq key=value string, else a SQLite file path."""
    if "\0" in text:
        raise refused(one_line(_PASSWORD_ON.sub(rf"\1{REDACTED}", text)), "contains a NUL character")
    if scheme := _SCHEME.match(text):
        return _url_location(scheme[1], text)
    if _CONNINFO_START.match(text):
        return _conninfo_location(text)
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        raise refused(one_line(text), "is not a file name this system can encode") from None
    if not text.strip():
        raise refused(repr(text), "is empty: give a SQLite file path or a postgresql:// URL")
    if text.strip().lower() in NOT_A_LOCATION:
        # Once silently a SQLite file named `none` in the working directory.
        raise refused(one_line(text), "is not a history location: to keep a run out of the history, use --no-history "
                      "(medinfra audit) or an empty medinfra_audit_history (the audit playbook); for a file of that "
                      "name, write ./" + one_line(text.strip()))
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # `~name` of a user this system does not know
        raise refused(one_line(text), "names the home directory of an unknown user") from None
    return Location(str(path), text, False)


def default_history_location() -> str:
    if location := os.environ.get("MEDINFRA_HISTORY"):
        return location
    data_home = os.environ.get("XDG_DATA_HOME", "")
    # The XDG base directory spec says to ignore a relative XDG_DATA_HOME.
    base = Path(data_home) if os.path.isabs(data_home) else Path.home() / ".local" / "share"
    return str(base / "medinfra" / "history.sqlite")


def redact(location: str) -> str:
    """The location as it may be shown: any password (URL user info or query, key=value) replaced by ***."""
    try:
        return parse_location(location).shown
    except UserInputError as exc:
        return exc.problems[0].file


def reason(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """A database error as one line, with any password scrubbed in case a driver ever echoes it."""
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    line = next((part.strip() for part in text.splitlines() if part.strip()), text)
    return one_line(redact_secrets(line, secrets))


def invalid(path: DocPath, message: str) -> UserInputError:
    return UserInputError([Problem(DOCUMENT, path, message)])


def parse_started(text: str) -> datetime:
    return datetime.strptime(text, STARTED_FORMAT).replace(tzinfo=UTC)


def run_values(document: Mapping[str, Any]) -> tuple[Any, ...]:
    """The runs-table columns (RUN_COLUMNS order) for a findings document; UserInputError if it is not one.

    Texts are stored cleaned (safe_text.clean): they come from hosts and inventories, and a lone surrogate or a
    control character has no place in a database column (the drivers refuse the one, terminals obey the other).
    """
    if document.get("format") != FINDINGS_FORMAT:
        raise invalid(("format",), f"expected {FINDINGS_FORMAT!r}, got {document.get('format')!r}")
    try:
        hosts, summary = document["hosts"], document["summary"]
        overall = summary["overall"]
        run_uuid = document.get("run_id")
        return (
            clean(str(run_uuid)) if run_uuid else None,
            clean(str(document.get("site") or document["inventory"])),
            clean(str(document["inventory"])),
            clean(str(document["transport"])),
            parse_started(document["started_at"]).strftime(STARTED_FORMAT),
            sum(1 for h in hosts if h["status"] == "audited"),
            len(hosts),
            overall["score"],
            json.dumps({name: counts["score"] for name, counts in summary["per_framework"].items()}, sort_keys=True),
            json.dumps({status: int(n) for status, n in overall.items() if status != "score"}, sort_keys=True),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise invalid((), f"missing or malformed field: {exc}") from exc


def site_and_start(document: Mapping[str, Any]) -> tuple[str, datetime]:
    """The site a findings document's run is recorded under and when it started."""
    values = run_values(document)
    return values[1], parse_started(values[4])


def result_rows(document: Mapping[str, Any]) -> list[tuple[str, ...]]:
    try:
        return [tuple(clean(str(f[key])) for key in ("host", "control", "status")) for f in document["findings"]]
    except (KeyError, TypeError) as exc:
        raise invalid(("findings",), f"missing or malformed field: {exc}") from exc


def run_info(row: Sequence[Any]) -> RunInfo:
    """A RunInfo from a row of `id` followed by RUN_COLUMNS; ValueError or TypeError if the row is damaged."""
    run_id, run_uuid, site, inventory, transport, started, audited, total, score, frameworks, counts = row
    framework_scores, tallies = json.loads(frameworks), json.loads(counts)
    if not isinstance(framework_scores, dict) or not isinstance(tallies, dict):
        raise TypeError("framework scores and counts must be JSON objects")
    return RunInfo(
        id=int(run_id),
        run_uuid=None if run_uuid is None else str(run_uuid),
        site=str(site),
        inventory=str(inventory),
        transport=str(transport),
        started_at=parse_started(started),
        hosts_audited=int(audited),
        hosts_total=int(total),
        score=float(score) if score is not None else None,
        framework_scores=framework_scores,
        counts=tallies,
    )


def drill_time(text: Any) -> datetime:
    """An ISO-8601 time with its offset, in UTC; ValueError for anything else (a naive time is ambiguous)."""
    if not isinstance(text, str):
        raise ValueError(f"expected an ISO-8601 time, got {type(text).__name__}")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return moment.astimezone(UTC)


def drill_values(document: Mapping[str, Any], evidence: str) -> tuple[Any, ...]:
    """The drills-table columns (DRILL_COLUMNS order) of a drill document already checked for its shape."""
    result = document["result"]
    name = result.get("name") or result.get("cluster") or document["kind"]
    return (
        clean(str(document["drill_id"])),
        clean(str(document["site"])),
        clean(str(document["kind"])),
        clean(str(name)),
        drill_time(document["started"]).strftime(STARTED_FORMAT),
        drill_time(document["finished"]).strftime(STARTED_FORMAT),
        1 if document["passed"] else 0,
        clean(evidence),
    )


def drill_info(row: Sequence[Any]) -> DrillInfo:
    """A DrillInfo from a row of `id` followed by DRILL_COLUMNS; ValueError or TypeError if the row is damaged."""
    drill_id, uuid, site, kind, name, started, finished, passed, evidence = row
    return DrillInfo(int(drill_id), str(uuid), str(site), str(kind), str(name), parse_started(started),
                     parse_started(finished), bool(passed), str(evidence))


def _is_text(value: Any, optional: bool = False) -> bool:
    return isinstance(value, str) or (optional and value is None)


def _is_score(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def stored_shape_problem(document: Any) -> tuple[DocPath, str] | None:
    """The first part of a stored findings document that `diff` and the reports' changes cannot read, if any."""
    if not isinstance(document, dict):
        return (), "is not a JSON object"
    for key in ("hosts", "findings"):
        if not isinstance(document.get(key), list):
            return (key,), "is missing or not a list"
    for index, host in enumerate(document["hosts"]):
        if not (isinstance(host, dict) and _is_text(host.get("name")) and _is_text(host.get("status"))
                and _is_text(host.get("reason"), optional=True)):
            return ("hosts", index), "needs text name and status (and reason)"
    for index, item in enumerate(document["findings"]):
        if not (isinstance(item, dict) and all(_is_text(item.get(key)) for key in ("host", "control", "status"))
                and _is_text(item.get("reason"), optional=True)):
            return ("findings", index), "needs text host, control and status (and reason)"
    summary = document.get("summary", {})
    scopes = summary.get("per_framework", {}) if isinstance(summary, dict) else None
    if not isinstance(summary, dict) or not isinstance(scopes, dict):
        return ("summary",), "is not an object of scores"
    for path, tally in ((("summary", "overall"), summary.get("overall", {})),
                        *((("summary", "per_framework", name), value) for name, value in scopes.items())):
        if not isinstance(tally, dict) or not _is_score(tally.get("score")):
            return path, "needs a numeric score (or null)"
    controls = document.get("controls", {})
    if not isinstance(controls, dict):
        return ("controls",), "is not an object"
    for control, record in controls.items():
        title = record.get("title", {}) if isinstance(record, dict) else None
        if not isinstance(title, dict) or not all(_is_text(title.get(lang), optional=True) for lang in ("en", "zh")):
            return ("controls", control, "title"), "needs English and Chinese text"
    return None


class HistoryStore:
    """Recorded audit runs. `location` is safe to show: any password is redacted."""

    def __init__(self, connection: Connection, dialect: Dialect, location: str, secrets: Iterable[str] = ()) -> None:
        self.location = location
        self._connection = connection
        self._dialect = dialect
        self._secrets = tuple(secrets)
        # Read-only, on a database where nothing was ever recorded: every read finds nothing.
        self._empty = False
        self._version = SCHEMA_VERSION

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._connection.close()

    def _problem(self, path: DocPath, message: str) -> UserInputError:
        return UserInputError([Problem(self.location, path, message)])

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Database errors become one located line for the user, never a driver traceback."""
        try:
            yield
        except self._dialect.errors as exc:
            raise refused(self.location, f"{doing}: {reason(exc, self._secrets)}") from exc

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[Cursor]:
        # Both connections are in autocommit mode, so BEGIN/COMMIT mark transactions the same way in each.
        with self._guard(doing):
            cursor = self._connection.cursor()
            cursor.execute(self._dialect.begin_write)
            try:
                yield cursor
            except BaseException:
                # A broken connection cannot roll back; the original error is the one worth reporting.
                with suppress(*self._dialect.errors):
                    cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def _query(self, doing: str, sql: str, params: Sequence[Any] = ()) -> Sequence[Sequence[Any]]:
        if self._empty:
            return []
        with self._guard(doing):
            cursor = self._connection.cursor()
            cursor.execute(self._dialect.sql(sql), params)
            return cursor.fetchall()

    def _check_version(self, version: Any) -> None:
        if version is not None and version > SCHEMA_VERSION:
            raise PrerequisiteError(
                f"{self.location}: history schema version {version}, this medinfra reads version {SCHEMA_VERSION}; "
                "use a medinfra that matches it"
            )

    def ensure_schema(self) -> None:
        """Create the tables if missing and migrate an older history (idempotent, in one transaction); refuse a
        history written by a newer medinfra."""
        types = {"id_type": self._dialect.id_type, "blob_type": self._dialect.blob_type}
        with self._transaction("opening history") as cursor:
            for statement in SCHEMA:
                cursor.execute(statement.format(**types))
            cursor.execute("SELECT MAX(version) FROM medinfra_schema")
            row = cursor.fetchone()
            version = row[0] if row else None
            self._check_version(version)
            if version != SCHEMA_VERSION:
                for step in range((version or 1) + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[step]:
                        cursor.execute(statement.format(**types))
                cursor.execute(self._dialect.sql("INSERT INTO medinfra_schema (version) VALUES (?)"), (SCHEMA_VERSION,))

    def read_schema(self) -> None:
        """For a read-only store: refuse a newer history; one without tables reads as empty (nothing is created)."""
        with self._guard("opening history"):
            cursor = self._connection.cursor()
            cursor.execute(self._dialect.sql(self._dialect.table_exists), ("medinfra_schema",))
            if cursor.fetchone() is None:
                self._empty = True
                return
            cursor.execute("SELECT MAX(version) FROM medinfra_schema")
            row = cursor.fetchone()
        version = row[0] if row else None
        self._check_version(version)
        # A read-only store migrates nothing: an older history simply has no drills yet.
        self._version = SCHEMA_VERSION if version is None else int(version)

    def _select(self, where: str, params: Sequence[Any], limit: int | None = None) -> list[RunInfo]:
        """Runs matching `where`, newest first; runs that started in the same second are ordered by id."""
        sql = f"SELECT id, {', '.join(RUN_COLUMNS)} FROM medinfra_runs {where} ORDER BY started_at DESC, id DESC"
        if limit is not None:
            sql, params = f"{sql} LIMIT ?", (*params, limit)
        runs = []
        for row in self._query("reading runs", sql, params):
            try:
                runs.append(run_info(row))
            except (TypeError, ValueError) as exc:
                key = row[0] if isinstance(row[0], int) else one_line(str(row[0]))
                raise self._problem(("runs", key), f"damaged row: {reason(exc)}") from None
        return runs

    def record(self, document: Mapping[str, Any]) -> RunInfo:
        """Store a findings document; a run whose run_id (UUID) is already recorded is returned, not stored twice."""
        values, results = run_values(document), result_rows(document)
        if values[0] is not None and (known := self.find(values[0])) is not None:
            return known
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        blob = gzip.compress(text.encode("utf-8", "surrogatepass"), compresslevel=GZIP_LEVEL)
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
            raise refused(self.location, f"no run {run_id}")
        return found[0]

    def find(self, run_uuid: str) -> RunInfo | None:
        """The run recorded with this run id (the findings document's UUID), if any."""
        found = self._select("WHERE run_uuid = ?", (clean(run_uuid),), 1)
        return found[0] if found else None

    def document(self, run_id: int) -> dict[str, Any]:
        """The findings document as recorded; a damaged one (not gzip or JSON, or not the shape medinfra reads back)
        is a located problem."""
        rows = self._query("reading run", "SELECT document FROM medinfra_runs WHERE id = ?", (run_id,))
        if not rows:
            raise refused(self.location, f"no run {run_id}")
        where: DocPath = ("runs", run_id, "document")
        try:
            text = inflate(bytes(rows[0][0])).decode("utf-8", "surrogatepass")
            document = json.loads(text)
        except (OSError, EOFError, zlib.error, ValueError, TypeError) as exc:
            raise self._problem(where, f"damaged: {reason(exc)}") from None
        except RecursionError:
            raise self._problem(where, "damaged: nested too deeply") from None
        if (shape := stored_shape_problem(document)) is not None:
            path, message = shape
            raise self._problem((*where, *(one_line(p) if isinstance(p, str) else p for p in path)), message)
        return document  # type: ignore[no-any-return]

    def earlier(self, site: str, started_at: datetime, before_id: int | None, limit: int) -> list[RunInfo]:
        """Up to `limit` runs of `site` that started before `started_at`, oldest first. Runs that started in the
        same second count as earlier if their id is below `before_id` (all of them when the run is not recorded)."""
        started = started_at.strftime(STARTED_FORMAT)
        if before_id is None:
            found = self._select("WHERE site = ? AND started_at <= ?", (site, started), limit)
        else:
            where = "WHERE site = ? AND (started_at < ? OR (started_at = ? AND id < ?))"
            found = self._select(where, (site, started, started, before_id), limit)
        return found[::-1]

    def record_drill(self, document: Mapping[str, Any], evidence: str) -> DrillInfo:
        """Store a drill document (checked by medinfra.drill.evidence); one already recorded is returned as it is."""
        values = drill_values(document, evidence)
        if known := self._drills("WHERE drill_uuid = ?", (values[0],)):
            return known[0]
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        blob = gzip.compress(text.encode("utf-8", "surrogatepass"), compresslevel=GZIP_LEVEL)
        columns = ", ".join((*DRILL_COLUMNS, "document"))
        marks = ", ".join("?" * (len(DRILL_COLUMNS) + 1))
        with self._transaction("recording drill") as cursor:
            cursor.execute(self._dialect.sql(f"INSERT INTO medinfra_drills ({columns}) VALUES ({marks}) RETURNING id"),
                           (*values, blob))
            row = cursor.fetchone()
            assert row is not None, "INSERT ... RETURNING gives a row"
        return self._drills("WHERE id = ?", (int(row[0]),))[0]

    def _drills(self, where: str, params: Sequence[Any], limit: int | None = None) -> list[DrillInfo]:
        if self._version < 2:
            return []
        sql = f"SELECT id, {', '.join(DRILL_COLUMNS)} FROM medinfra_drills {where} ORDER BY started_at DESC, id DESC"
        if limit is not None:
            sql, params = f"{sql} LIMIT ?", (*params, limit)
        drills = []
        for row in self._query("reading drills", sql, params):
            try:
                drills.append(drill_info(row))
            except (TypeError, ValueError) as exc:
                key = row[0] if isinstance(row[0], int) else one_line(str(row[0]))
                raise self._problem(("drills", key), f"damaged row: {reason(exc)}") from None
        return drills

    def drills(self, site: str | None = None, limit: int | None = None) -> list[DrillInfo]:
        """Recorded drills, newest first, of one site or all."""
        if site is None:
            return self._drills("", (), limit)
        return self._drills("WHERE site = ?", (site,), limit)

    def drill_document(self, drill_id: int) -> dict[str, Any]:
        """A recorded drill's document as it was published."""
        rows = [] if self._version < 2 else self._query(
            "reading drill", "SELECT document FROM medinfra_drills WHERE id = ?", (drill_id,))
        if not rows:
            raise refused(self.location, f"no drill {drill_id}")
        try:
            document = json.loads(inflate(bytes(rows[0][0])).decode("utf-8", "surrogatepass"))
        except (OSError, EOFError, zlib.error, ValueError, TypeError, RecursionError) as exc:
            raise self._problem(("drills", drill_id, "document"), f"damaged: {reason(exc)}") from None
        if not isinstance(document, dict):
            raise self._problem(("drills", drill_id, "document"), "is not a JSON object")
        return document

    def previous(self, run_id: int) -> RunInfo | None:
        """The run of the same site before this one, if any."""
        run = self.get(run_id)
        before = self.earlier(run.site, run.started_at, run.id, limit=1)
        return before[-1] if before else None


def inflate(blob: bytes) -> bytes:
    """A stored document's JSON, refusing one that inflates past FINDINGS_MAX_BYTES (or is cut short)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip
    data = inflater.decompress(blob, FINDINGS_MAX_BYTES + 1)
    if len(data) > FINDINGS_MAX_BYTES:
        raise ValueError(f"inflates to more than {FINDINGS_MAX_BYTES // (1024 * 1024)} MB")
    if not inflater.eof:
        raise EOFError("the compressed data is cut short")
    return data


def _regular(path: Path, found: os.stat_result) -> None:
    if not stat.S_ISREG(found.st_mode):
        raise refused(str(path), "cannot open history: not a regular file")


def sqlite_connection(path: Path, read_only: bool) -> sqlite3.Connection:
    """A connection to the SQLite file; read-only opens nothing new (a missing file is an empty history)."""
    if read_only:
        try:
            _regular(path, os.stat(path))
        except FileNotFoundError:
            return sqlite3.connect(":memory:", isolation_level=None)
        return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=BUSY_TIMEOUT,
                               isolation_level=None)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Created 0600 before SQLite opens it: runs list each host's security weaknesses.
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    try:
        _regular(path, os.fstat(descriptor))
    finally:
        os.close(descriptor)
    return sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)


def sqlite_store(path: Path, shown: str, read_only: bool) -> HistoryStore:
    try:
        connection = sqlite_connection(path, read_only)
    except FileExistsError as exc:
        # What mkdir(exist_ok=True) raises when the would-be directory is a file.
        raise refused(shown, f"cannot open history: {exc.filename} is not a directory") from exc
    except (OSError, sqlite3.Error) as exc:
        raise refused(shown, f"cannot open history: {reason(exc)}") from exc
    return HistoryStore(connection, SQLITE, shown)


def postgres_store(location: Location, read_only: bool) -> HistoryStore:
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo
    except ImportError as exc:
        raise PrerequisiteError(
            f"{location.shown}: a PostgreSQL history needs the PostgreSQL driver: pip install 'medinfra[postgres]'"
        ) from exc
    dialect = Dialect(
        "%s", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "BYTEA", (psycopg.Error,), "BEGIN",
        "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?",
    )
    try:
        target = location.target
        # Without a timeout an unreachable server keeps the command waiting for minutes.
        if "connect_timeout" not in conninfo_to_dict(target):
            target = make_conninfo(target, connect_timeout=CONNECT_TIMEOUT)
        connection = psycopg.connect(target, autocommit=True)
        if read_only:
            connection.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    except psycopg.Error as exc:
        raise refused(location.shown, f"cannot open history: {reason(exc, location.secrets)}") from exc
    return HistoryStore(connection, dialect, location.shown, location.secrets)


def open_history(text: str, *, read_only: bool = False) -> HistoryStore:
    """The history at a file path (SQLite) or a PostgreSQL URL or key=value string.

    Read-only creates nothing: a history that does not exist yet reads as one without runs. Otherwise the file
    and the tables are created if missing.
    """
    location = parse_location(text)
    if location.postgres:
        store = postgres_store(location, read_only)
    else:
        store = sqlite_store(Path(location.target), location.shown, read_only)
    try:
        if read_only:
            store.read_schema()
        else:
            store.ensure_schema()
    except BaseException:
        store.close()
        raise
    return store
