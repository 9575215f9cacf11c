"""The whole night on real local Spark and SQLite: publish, idempotent rerun, redo after deleting targets."""
import sqlalchemy as sa

from targets import fs
from targets.directory import ParquetTarget
from tasks import DailyScoring, FeatureTable, Predict, Publish, ValidatePredictions, config
from tests.conftest import SCORE_DATE, build, families


def published(url: str) -> list[tuple]:
    with sa.create_engine(url).connect() as conn:
        return conn.execute(sa.text("SELECT score_date, client_id, score FROM predictions")).fetchall()


def test_daily_scoring_publishes_then_reruns_nothing_then_redoes_deleted_steps(sample_root):
    first = build(DailyScoring(date=SCORE_DATE))
    assert not first["failed"], first["failed"]
    assert "Publish" in families(first["completed"])

    url = config.publish().database_url()
    valid_clients = ParquetTarget(config.dataset_path("features/table", SCORE_DATE)).read_pandas()
    rows = published(url)
    assert len(rows) == len(valid_clients) > 0
    assert sorted(r[1] for r in rows) == sorted(valid_clients["client_id"])
    assert all(0.0 <= r[2] <= 1.0 for r in rows)

    second = build(DailyScoring(date=SCORE_DATE))
    assert second["completed"] == set()
    assert not second["failed"]

    assert fs.delete(Predict(date=SCORE_DATE).output().uri)
    assert fs.delete(ValidatePredictions(date=SCORE_DATE).output().uri)
    assert Publish(date=SCORE_DATE).output().remove()
    third = build(DailyScoring(date=SCORE_DATE))
    assert families(third["completed"]) == ["DailyScoring", "Predict", "Publish", "ValidatePredictions"]
    again = published(url)
    assert len(again) == len(rows)
    assert len({r[1] for r in again}) == len(again), "a client was published twice"
    assert FeatureTable(date=SCORE_DATE).complete()
