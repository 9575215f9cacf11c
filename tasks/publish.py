"""Publish stage: one database transaction replaces the day's rows and writes its publish_log marker."""
import datetime as dt

import luigi
import pandas as pd
import sqlalchemy as sa

from targets.sql import PublishMarker, engine
from tasks import config
from tasks.predict import Predict
from tasks.validate import ValidatePredictions

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
)
LATEST_VIEW = (
    "CREATE VIEW predictions_latest AS SELECT * FROM predictions "
    "WHERE score_date = (SELECT MAX(score_date) FROM publish_log)"
)


def replace_day(conn: sa.engine.Connection, day: dt.date, frame: pd.DataFrame) -> None:
    """Inside the caller's transaction: delete the day's rows, load the new ones, write the marker."""
    METADATA.create_all(conn)
    conn.execute(PREDICTIONS.delete().where(PREDICTIONS.c.score_date == day))
    conn.execute(PUBLISH_LOG.delete().where(PUBLISH_LOG.c.score_date == day))
    _insert_predictions(conn, day, frame)
    versions = sorted(frame["model_version"].unique())
    conn.execute(PUBLISH_LOG.insert().values(score_date=day, rows=len(frame), model_version=",".join(versions),
                                             published_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)))
    if not sa.inspect(conn).has_table("predictions_latest") and "predictions_latest" not in sa.inspect(conn).get_view_names():
        conn.execute(sa.text(LATEST_VIEW))


def _insert_predictions(conn: sa.engine.Connection, day: dt.date, frame: pd.DataFrame) -> None:
    if conn.dialect.name == "sqlite":
        # SQLAlchemy's per-row parameter handling costs more than SQLite's insert itself: give the driver
        # plain tuples (about half the publish time at 100k rows). PostgreSQL keeps psycopg2's batched path.
        insert = PREDICTIONS.insert().compile(dialect=conn.dialect)
        values = {"score_date": [day] * len(frame), **{c: frame[c].tolist() for c in ("client_id", "score", "model_version")}}
        conn.exec_driver_sql(str(insert), list(zip(*[values[name] for name in insert.positiontup])))
    else:
        rows = frame.assign(score_date=day)[["score_date", "client_id", "score", "model_version"]]
        conn.execute(PREDICTIONS.insert(), rows.to_dict("records"))


class Publish(luigi.Task):
    """The day's validated predictions in the production tables; done when publish_log has the day."""

    date = luigi.DateParameter()

    def requires(self):
        return {"validation": ValidatePredictions(self.date), "predictions": Predict(self.date)}

    def output(self):
        return PublishMarker(config.publish().database_url(), self.date)

    def run(self):
        frame = self.input()["predictions"].read_pandas()
        with engine(self.output().url).begin() as conn:
            replace_day(conn, self.date, frame)
