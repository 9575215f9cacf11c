"""Publish stage: one database transaction replaces the day's rows and writes its publish_log marker."""
import csv
import datetime as dt
import io
import itertools
import json
from typing import Iterable, Iterator

import luigi
import pyarrow as pa
import sqlalchemy as sa

from nightshift.schema import PREDICTION_COLUMNS, REPORT_FILE
from targets.sql import UNREACHABLE, PublishMarker, add_missing_column, describe, engine, unreachable_reason
from tasks import config
from tasks.errors import ExplainsFailures, PublishError
from tasks.predict import Predict
from tasks.provenance import Recorded
from tasks.validate import ValidatePredictions

CHUNK_ROWS = 10_000
SQLITE_INSERT_ROWS = 333  # 3 parameters a row: within 999, the fewest a statement may have in any SQLite

METADATA = sa.MetaData()
PREDICTIONS = sa.Table(
    "predictions", METADATA,
    sa.Column("score_date", sa.Date, nullable=False),
    sa.Column("client_id", sa.BigInteger, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Index("ix_predictions_score_date", "score_date"),
)
PUBLISH_LOG = sa.Table(
    "publish_log", METADATA,
    sa.Column("score_date", sa.Date, primary_key=True),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("published_at", sa.DateTime, nullable=False),
    # Beyond the contract columns: how the batch passed the gate, and who overrode it if a person did.
    sa.Column("verdict", sa.String(16), nullable=True),
    sa.Column("approved_by", sa.String(128), nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    # What the published batch was made from (docs/provenance.md); absent in tables made by older releases.
    sa.Column("manifest", sa.Text, nullable=True),
    # The day's mean, rows and histogram over its model's reference bins (JSON), which the next night's gate
    # compares with: a read of one row instead of a pass over the day's rows. Absent in older releases' tables.
    sa.Column("score_summary", sa.Text, nullable=True),
)
LATEST_VIEW = (
    "CREATE VIEW predictions_latest AS SELECT * FROM predictions "
    "WHERE score_date = (SELECT MAX(score_date) FROM publish_log)"
)

Record = tuple[int, float, str]


def arrow_records(table: pa.Table) -> Iterator[Record]:
    """(client_id, score, model_version) rows of a predictions table, batch by batch."""
    for batch in table.select(list(PREDICTION_COLUMNS)).to_batches(max_chunksize=CHUNK_ROWS):
        yield from zip(*(column.to_pylist() for column in batch.columns))


def _chunks(records: Iterable[Record]) -> Iterator[list[Record]]:
    it = iter(records)
    while chunk := list(itertools.islice(it, CHUNK_ROWS)):
        yield chunk


def _tally(seen: dict, chunk: list[Record]) -> None:
    """Count a loaded chunk into `seen`: rows, and the model versions publish_log records."""
    seen["rows"] += len(chunk)
    seen["versions"].update(version for _, _, version in chunk)


class _CsvStream(io.RawIOBase):
    """A read-only file over CSV text made chunk by chunk, so COPY streams without the whole day in memory."""

    def __init__(self, day: dt.date, records: Iterable[Record], seen: dict):
        self._lines = self._generate(day.isoformat(), records, seen)
        self._buffer = b""
        self.error: BaseException | None = None

    @staticmethod
    def _generate(day: str, records: Iterable[Record], seen: dict) -> Iterator[bytes]:
        for chunk in _chunks(records):
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\n")
            # repr() round-trips a double exactly: PostgreSQL stores the very score SQLite would.
            writer.writerows((day, cid, repr(float(score)), version) for cid, score, version in chunk)
            _tally(seen, chunk)
            yield text.getvalue().encode()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                piece = next(self._lines, None)
            except BaseException as exc:  # psycopg2 reports it as a cancelled COPY; the caller re-raises the cause
                self.error = exc
                raise
            if piece is None:
                break
            self._buffer += piece
        if size < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


def bulk_load(conn: sa.engine.Connection, day: dt.date, records: Iterable[Record]) -> dict:
    """Load the day's rows inside the caller's transaction: COPY on PostgreSQL, multi-row INSERTs on SQLite
    (`_sqlite_load`), SQLAlchemy's executemany elsewhere."""
    seen = {"rows": 0, "versions": set()}
    if conn.dialect.name == "postgresql":
        cursor = conn.connection.cursor()
        stream = _CsvStream(day, records, seen)
        try:
            cursor.copy_expert("COPY predictions (score_date, client_id, score, model_version) FROM STDIN WITH (FORMAT csv)",
                               stream)
        except Exception as exc:
            if stream.error is not None:
                raise stream.error from exc
            raise
        finally:
            cursor.close()
        return seen
    if conn.dialect.name == "sqlite":
        return _sqlite_load(conn, day, records, seen)
    for chunk in _chunks(records):
        conn.execute(PREDICTIONS.insert(), [{"score_date": day, "client_id": int(cid), "score": float(score),
                                             "model_version": version} for cid, score, version in chunk])
        _tally(seen, chunk)
    return seen


def _sqlite_load(conn: sa.engine.Connection, day: dt.date, records: Iterable[Record], seen: dict) -> dict:
    """bulk_load on SQLite: INSERTs of SQLITE_INSERT_ROWS rows each, through the driver's cursor.

    SQLAlchemy's per-row parameter handling costs more than SQLite's insert itself, and so does the driver's
    executemany, a statement per row: a million rows take 1.4 s that way and 0.45 s in INSERTs of 333 rows. The
    records are Python ints, floats and strs already (arrow_records); the day is the same in every row and is
    written into the statement as the text the Date column holds.
    """
    values = f"('{day.isoformat()}', ?, ?, ?)"
    statements: dict[int, str] = {}
    cursor = conn.connection.cursor()
    try:
        for chunk in _chunks(records):
            for start in range(0, len(chunk), SQLITE_INSERT_ROWS):
                rows = chunk[start:start + SQLITE_INSERT_ROWS]
                if len(rows) not in statements:
                    statements[len(rows)] = (f"INSERT INTO {PREDICTIONS.name} (score_date, client_id, score, model_version)"
                                             f" VALUES {', '.join([values] * len(rows))}")
                cursor.execute(statements[len(rows)], tuple(itertools.chain.from_iterable(rows)))
            _tally(seen, chunk)
    finally:
        cursor.close()
    return seen


def replace_day(conn: sa.engine.Connection, day: dt.date, records: Iterable[Record], verdict: str | None = None,
                approval: dict | None = None, manifest: dict | None = None, summary: dict | None = None) -> int:
    """Inside the caller's transaction: delete the day's rows, load the new ones, write the marker, (re)make the view."""
    METADATA.create_all(conn)
    for column in ("manifest", "score_summary"):
        add_missing_column(conn, PUBLISH_LOG.name, column, "TEXT")
    conn.execute(PREDICTIONS.delete().where(PREDICTIONS.c.score_date == day))
    conn.execute(PUBLISH_LOG.delete().where(PUBLISH_LOG.c.score_date == day))
    loaded = bulk_load(conn, day, records)
    approval = approval or {}
    conn.execute(PUBLISH_LOG.insert().values(
        score_date=day, rows=loaded["rows"], model_version=",".join(sorted(loaded["versions"])),
        published_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
        verdict=verdict, approved_by=approval.get("by"), note=approval.get("reason"),
        manifest=None if manifest is None else json.dumps({**manifest, "rows": loaded["rows"]}, sort_keys=True, default=str),
        score_summary=None if summary is None else json.dumps(summary),
    ))
    conn.execute(sa.text("DROP VIEW IF EXISTS predictions_latest"))
    conn.execute(sa.text(LATEST_VIEW))
    return loaded["rows"]


def publish_day(url: str, day: dt.date, records: Iterable[Record], verdict: str | None = None,
                approval: dict | None = None, manifest: dict | None = None, summary: dict | None = None) -> int:
    """Replace `day` in the database at `url` in one transaction: all of it is visible afterwards, or none."""
    with engine(url).begin() as conn:
        return replace_day(conn, day, records, verdict, approval, manifest, summary)


class Publish(Recorded, ExplainsFailures, luigi.Task):
    """The day's validated predictions in the production tables; done when publish_log has the day."""

    date = luigi.DateParameter()
    rebuild_when_stale = False  # published history changes only when someone asks (bin/invalidate)

    def requires(self):
        return {"validation": ValidatePredictions(self.date), "predictions": Predict(self.date)}

    def output(self):
        return PublishMarker(config.publish().database_url(), self.date)

    def run(self):
        report = json.loads(self.input()["validation"].read_file(REPORT_FILE))
        table = self.input()["predictions"].read_arrow()
        url = self.output().url
        # The figures the gate measured on these very predictions, binned by the model's reference edges.
        summary = {"edges": report["reference_histogram"]["edges"], "mean": report["mean_score"],
                   "rows": report["rows"], "counts": report["histogram"]}
        try:
            publish_day(url, self.date, arrow_records(table), report["verdict"], report.get("approval"),
                        self.manifest(), summary)
        except UNREACHABLE as exc:
            raise PublishError(
                f"cannot write to the production database {describe(url)} ({unreachable_reason(url, exc)}): nothing was "
                f"published for {self.date}, the validated predictions are kept; when the database is back, run "
                f"the night again (bin/run-daily --date {self.date}): nothing before Publish is redone"
            ) from exc
