"""Publish marker: a row in the database's publish_log, the proof that a day reached production."""
import datetime as dt
import json
import logging
from functools import lru_cache

import luigi
import sqlalchemy as sa

logger = logging.getLogger("luigi-interface")

# Seconds a PostgreSQL connection attempt may take: a firewalled host would otherwise hang the
# scheduling of a night for the kernel's TCP timeout (minutes) on every marker check.
CONNECT_TIMEOUT = 10

# What "the database cannot be reached" looks like through SQLAlchemy: refused or timed-out connections,
# unknown hosts and databases, failed logins, an SQLite file that cannot be opened.
UNREACHABLE = (sa.exc.OperationalError, sa.exc.InterfaceError)

_warned: set[str] = set()


@lru_cache(maxsize=None)
def engine(url: str) -> sa.engine.Engine:
    """One engine (connection pool) per database URL for the process."""
    connect_args = {}
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
    # pre_ping: a pooled connection the server dropped (restart, terminated backend) is replaced, not reused.
    return sa.create_engine(url, future=True, pool_pre_ping=True, connect_args=connect_args)


def describe(url: str) -> str:
    """The database of `url` as `host:port/dbname` (an SQLite file as its path); never user or password."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite file {parsed.database or ':memory:'}"
    port = parsed.port or {"postgresql": 5432, "mysql": 3306, "mssql": 1433, "oracle": 1521}.get(
        parsed.get_backend_name(), "default port")
    return f"{parsed.host or 'localhost'}:{port}/{parsed.database or ''}"


def unreachable_reason(url: str, exc: BaseException) -> str:
    """The driver's first line about a failed connection, with the URL's user and password blanked out."""
    cause = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    reason = lines[0] if lines else type(cause).__name__
    parsed = sa.engine.make_url(url)
    for secret in (parsed.password, parsed.username):
        if secret:
            reason = reason.replace(str(secret), "***")
    return reason


def previous_publication(url: str, before: dt.date, table: str = "publish_log") -> dt.date | None:
    """The latest day published before `before` (None when nothing was, or the table does not exist yet)."""
    eng = engine(url)
    if not sa.inspect(eng).has_table(table):
        return None
    with eng.connect() as conn:
        day = conn.execute(sa.text(f"SELECT MAX(score_date) FROM {table} WHERE score_date < :d"), {"d": before}).scalar()
    if isinstance(day, str):  # SQLite returns the aggregate of a DATE column as text
        day = dt.date.fromisoformat(day)
    return day


def _as_date(value) -> dt.date:
    return dt.date.fromisoformat(value[:10]) if isinstance(value, str) else value  # SQLite keeps DATE as text


def published_days(url: str, start: dt.date, end: dt.date, table: str = "publish_log") -> dict[dt.date, dict]:
    """Days published in [start, end] (inclusive) with their marker: rows, model_version, published_at."""
    eng = engine(url)
    if not sa.inspect(eng).has_table(table):
        return {}
    with eng.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT score_date, rows, model_version, published_at FROM {table} "
                                    "WHERE score_date >= :a AND score_date <= :b ORDER BY score_date"),
                            {"a": start, "b": end}).fetchall()
    return {_as_date(r[0]): {"rows": int(r[1]), "model_version": r[2], "published_at": str(r[3])} for r in rows}


def published_scores(url: str, day: dt.date, table: str = "predictions"):
    """What production got for `day`: a pyarrow table (client_id int64, score double, model_version string)."""
    import pyarrow as pa

    ids, scores, versions = [], [], []
    with engine(url).connect() as conn:
        result = conn.execution_options(stream_results=True).execute(
            sa.text(f"SELECT client_id, score, model_version FROM {table} WHERE score_date = :d"), {"d": day})
        while chunk := result.fetchmany(50_000):
            for cid, score, version in chunk:
                ids.append(cid)
                scores.append(score)
                versions.append(version)
    return pa.table({"client_id": pa.array(ids, pa.int64()), "score": pa.array(scores, pa.float64()),
                     "model_version": pa.array(versions, pa.string())})


def publication(url: str, day: dt.date, table: str = "publish_log") -> dict | None:
    """The marker row of `day`: rows, model_version, published_at (None when the day is not published)."""
    return published_days(url, day, day, table).get(day)


def column_summary(url: str, table: str, column: str, day: dt.date, edges: list[float]) -> dict:
    """Mean, row count and histogram (bins [e_i, e_i+1), the last one closed) of one day's column, computed in the database."""
    bins = []
    for i, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        upper = "<=" if i == len(edges) - 2 else "<"
        bins.append(f"SUM(CASE WHEN {column} >= :e{i} AND {column} {upper} :e{i + 1} THEN 1 ELSE 0 END)")
    query = f"SELECT AVG({column}), COUNT(*), {', '.join(bins)} FROM {table} WHERE score_date = :d"
    params = {"d": day, **{f"e{i}": float(e) for i, e in enumerate(edges)}}
    with engine(url).connect() as conn:
        row = conn.execute(sa.text(query), params).first()
    return {"mean": None if row[0] is None else float(row[0]), "rows": int(row[1]),
            "counts": [int(c or 0) for c in row[2:]]}


def stored_summary(url: str, day: dt.date, table: str = "publish_log") -> dict | None:
    """The `score_summary` (JSON) the marker row of `day` holds, or None: a day published by an older release, or a
    table from before the column existed."""
    eng = engine(url)
    if not has_column(eng, table, "score_summary"):
        return None
    with eng.connect() as conn:
        text = conn.execute(sa.text(f"SELECT score_summary FROM {table} WHERE score_date = :d"), {"d": day}).scalar()
    return json.loads(text) if text else None


def has_column(bind, table: str, column: str) -> bool:
    """Whether `table` (which exists) has `column`; `bind` is an engine or a connection."""
    return column in {c["name"] for c in sa.inspect(bind).get_columns(table)}


def add_missing_column(conn: sa.engine.Connection, table: str, column: str, sql_type: str) -> bool:
    """ALTER TABLE a table made by an older release to hold a nullable column it lacks; True when added."""
    if has_column(conn, table, column):
        return False
    conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))
    return True


class PublishMarker(luigi.Target):
    """Exists exactly when `publish_log` holds a row for `score_date`."""

    def __init__(self, url: str, score_date: dt.date, table: str = "publish_log"):
        self.url = url
        self.score_date = score_date
        self.table = table

    def __repr__(self) -> str:
        return f"PublishMarker({self.table}, {self.score_date})"

    def exists(self) -> bool:
        """Whether the day is in production; a database that cannot be reached counts as "not published yet".

        So a night whose database is down still computes, validates and keeps everything up to Publish, and
        Publish itself fails naming the database (the only task that needs it); the rerun runs only Publish.
        """
        try:
            eng = engine(self.url)
            if not sa.inspect(eng).has_table(self.table):
                return False
            with eng.connect() as conn:
                row = conn.execute(
                    sa.text(f"SELECT 1 FROM {self.table} WHERE score_date = :d"), {"d": self.score_date}
                ).first()
        except UNREACHABLE as exc:
            if self.url not in _warned:  # once per process: luigi asks every task's complete() several times
                _warned.add(self.url)
                logger.warning("production database %s unreachable (%s): its publish markers cannot be read, so "
                               "every day counts as not published and Publish fails until it is back",
                               describe(self.url), unreachable_reason(self.url, exc))
            return False
        _warned.discard(self.url)
        return row is not None

    def remove(self) -> bool:
        """Delete the marker row (the day's published rows stay until the next publish replaces them)."""
        eng = engine(self.url)
        if not sa.inspect(eng).has_table(self.table):
            return False
        with eng.begin() as conn:
            result = conn.execute(sa.text(f"DELETE FROM {self.table} WHERE score_date = :d"), {"d": self.score_date})
        return result.rowcount > 0

    def manifest(self) -> dict | None:
        """The manifest recorded with the day's marker row (None: not published, or published before manifests)."""
        eng = engine(self.url)
        inspector = sa.inspect(eng)
        if not inspector.has_table(self.table):
            return None
        if "manifest" not in {c["name"] for c in inspector.get_columns(self.table)}:
            return None
        with eng.connect() as conn:
            text = conn.execute(sa.text(f"SELECT manifest FROM {self.table} WHERE score_date = :d"),
                                {"d": self.score_date}).scalar()
        if text is None:
            return None
        try:
            manifest = json.loads(text)
        except ValueError as exc:
            return {"unreadable": f"{self.table} {self.score_date}: {exc}"}
        if not isinstance(manifest, dict):
            return {"unreadable": f"{self.table} {self.score_date}: not a JSON object"}
        return manifest

    def write_manifest(self, manifest: dict) -> bool:
        """Record `manifest` on the day's marker row (adopting a day published before manifests); True if it exists."""
        with engine(self.url).begin() as conn:
            add_missing_column(conn, self.table, "manifest", "TEXT")
            result = conn.execute(sa.text(f"UPDATE {self.table} SET manifest = :m WHERE score_date = :d"),
                                  {"m": json.dumps(manifest, sort_keys=True, default=str), "d": self.score_date})
        return result.rowcount > 0
