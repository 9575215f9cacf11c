"""Scoring stage (Spark): every client of the feature table scored with the model broadcast to executors."""
import functools

import luigi

from nightshift.dates import model_date
from nightshift.schema import KEY, PREDICTION_SCHEMA, pandas_dtypes, spark_ddl
from targets import fs
from targets.directory import ParquetTarget
from targets.model import MODEL_FILE
from tasks import config
from tasks.features import FeatureTable
from tasks.provenance import Recorded
from tasks.spark import SparkTask, session, ship
from tasks.train import TrainModel


class Predict(Recorded, SparkTask):
    """predictions/date=D: client_id, score, model_version for every row of FeatureTable(D)."""

    date = luigi.DateParameter()
    config_keys = ("model.retrain",)
    frozen_by_publish = True

    def requires(self):
        return {"table": FeatureTable(self.date), "model": TrainModel(model_date(self.date, config.model().retrain))}

    def output(self):
        return ParquetTarget(config.dataset_path("predictions", self.date))

    def run(self):
        from nightshift import executors, modeling

        model_target, table_target = self.input()["model"], self.input()["table"]
        meta = model_target.metadata()
        blob = model_target.model_bytes()
        # Verified before any Spark work (without unpickling it here: the executors do): a tampered or incompatible
        # model fails here and nothing is written.
        modeling.verify_model(blob, meta["sha256"], model_target.file(MODEL_FILE), meta.get("versions"))
        actual = {k: v for k, v in pandas_dtypes(table_target.schema()).items() if k != KEY}
        modeling.check_features(meta["feature_dtypes"], actual, table_target.uri)
        spark = session()
        features = meta["features"]
        score = functools.partial(executors.score_batches, model_blob=ship(spark, blob),
                                  digest=meta["sha256"], features=features, version=meta["model_version"])
        table = spark.read.parquet(table_target.spark_path)
        scored = table.select(KEY, *features).mapInPandas(score, spark_ddl(PREDICTION_SCHEMA))
        with self.output().temporary_path(self.manifest()) as tmp:
            scored.write.parquet(fs.spark_uri(tmp))
