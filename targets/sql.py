"""Publish marker: a row in the database's publish_log, the proof that a day reached production."""
import datetime as dt
from functools import lru_cache

import luigi
import sqlalchemy as sa


@lru_cache(maxsize=None)
def engine(url: str) -> sa.engine.Engine:
    """One engine (connection pool) per database URL for the process."""
    return sa.create_engine(url, future=True)


class PublishMarker(luigi.Target):
    """Exists exactly when `publish_log` holds a row for `score_date`."""

    def __init__(self, url: str, score_date: dt.date, table: str = "publish_log"):
        self.url = url
        self.score_date = score_date
        self.table = table

    def __repr__(self) -> str:
        return f"PublishMarker({self.table}, {self.score_date})"

    def exists(self) -> bool:
        eng = engine(self.url)
        if not sa.inspect(eng).has_table(self.table):
            return False
        with eng.connect() as conn:
            row = conn.execute(
                sa.text(f"SELECT 1 FROM {self.table} WHERE score_date = :d"), {"d": self.score_date}
            ).first()
        return row is not None

    def remove(self) -> bool:
        """Delete the marker row (the day's published rows stay until the next publish replaces them)."""
        eng = engine(self.url)
        if not sa.inspect(eng).has_table(self.table):
            return False
        with eng.begin() as conn:
            result = conn.execute(sa.text(f"DELETE FROM {self.table} WHERE score_date = :d"), {"d": self.score_date})
        return result.rowcount > 0
