"""Scoring: the cadence's model, a verified model file, the model's features, model_version on every row."""
import datetime as dt
import os
import re

import numpy as np
import pytest
import sqlalchemy as sa

from targets import fs
from targets.directory import ParquetTarget
from tasks import Predict, TrainModel, config
from tasks.errors import FeatureMismatch, ModelIntegrityError
from tests.conftest import SCORE_DATE, build, families


def test_every_day_of_a_week_asks_for_that_weeks_monday_model(root, overlay):
    overlay.set("model", "retrain", "weekly")
    week = [dt.date(2026, 3, 2) + dt.timedelta(days=k) for k in range(7)]
    assert {Predict(date=d).requires()["model"] for d in week} == {TrainModel(date=dt.date(2026, 3, 2))}
    assert Predict(date=dt.date(2026, 3, 9)).requires()["model"] == TrainModel(date=dt.date(2026, 3, 9))
    overlay.set("model", "retrain", "monthly")
    assert Predict(date=dt.date(2026, 3, 31)).requires()["model"] == TrainModel(date=dt.date(2026, 3, 1))


def test_predictions_and_the_published_table_carry_the_model_version(scored_root):
    meta = TrainModel(date=SCORE_DATE).output().metadata()
    assert re.fullmatch(rf"{SCORE_DATE}-[0-9a-f]{{8}}", meta["model_version"])
    predictions = Predict(date=SCORE_DATE).output().read_pandas()
    assert list(predictions.columns) == ["client_id", "score", "model_version"]
    assert set(predictions["model_version"]) == {meta["model_version"]}
    with sa.create_engine(config.publish().database_url()).connect() as conn:
        published = conn.execute(sa.text("SELECT DISTINCT model_version FROM predictions")).fetchall()
    assert published == [(meta["model_version"],)]


@pytest.mark.parametrize("damage", ["truncated", "changed"])
def test_a_tampered_model_is_refused_and_nothing_is_scored(scored_root, damage):
    predict = Predict(date=SCORE_DATE)
    assert fs.delete(predict.output().uri)
    model = TrainModel(date=SCORE_DATE).output()
    blob = model.model_bytes()
    bad = blob[: len(blob) // 2] if damage == "truncated" else blob[:-10] + bytes(b ^ 0xFF for b in blob[-10:])
    fs.write_bytes(model.file("model.pkl"), bad)
    with pytest.raises(ModelIntegrityError, match=r"model\.pkl: sha256 .* does not match metadata\.json"):
        predict.run()
    result = build(predict)
    assert families(result["failed"]) == ["Predict"]
    assert not fs.exists(predict.output().uri), "a refused model must leave no predictions"


def test_a_feature_table_that_differs_from_the_model_is_refused_naming_the_difference(scored_root):
    predict = Predict(date=SCORE_DATE)
    assert fs.delete(predict.output().uri)
    table = ParquetTarget(config.dataset_path("features/table", SCORE_DATE))
    frame = table.read_pandas()
    changed = frame.drop(columns=["spend_7d"]).assign(age=frame["age"].astype("float64"))
    assert table.remove()
    table.write_pandas(changed)
    with pytest.raises(FeatureMismatch) as err:
        predict.run()
    assert "missing ['spend_7d']" in str(err.value) and "age: model int32, table float64" in str(err.value)
    assert table.uri in str(err.value)
    assert not fs.exists(predict.output().uri)


def test_workers_reading_the_feature_files_score_every_row_as_spark_reading_them_does(scored_root, tmp_path):
    import pyarrow.parquet as pq

    from tasks.predict import score_table
    from tasks.spark import session, ship

    model = TrainModel(date=SCORE_DATE).output()
    meta = model.metadata()
    table = Predict(date=SCORE_DATE).input()["table"].read_arrow()
    # Three files of uneven size: one Spark task per file must still cover every row once.
    split = ParquetTarget(str(tmp_path / "table"))
    with split.temporary_path() as tmp:
        os.makedirs(tmp)
        for part, (start, stop) in enumerate([(0, 7), (7, 300), (300, table.num_rows)]):
            pq.write_table(table.slice(start, stop - start), f"{tmp}/part-{part}.parquet")
    spark = session()
    bound = dict(model_blob=ship(spark, model.model_bytes()), digest=meta["sha256"], features=meta["features"],
                 version=meta["model_version"])
    by_workers, by_spark = (score_table(spark, split, bound, workers_read=flag).toPandas()
                            .sort_values("client_id").reset_index(drop=True) for flag in (True, False))
    assert len(by_workers) == table.num_rows == by_workers["client_id"].nunique()
    published = Predict(date=SCORE_DATE).output().read_pandas().sort_values("client_id").reset_index(drop=True)
    for other in (by_spark, published):
        # The same rows and model; scores equal but for the last bits BLAS may round differently per batch size.
        assert by_workers[["client_id", "model_version"]].equals(other[["client_id", "model_version"]])
        assert np.abs(by_workers["score"] - other["score"]).max() < 1e-12
