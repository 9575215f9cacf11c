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
        from nightshift import modeling

        model_target, table_target = self.input()["model"], self.input()["table"]
        meta = model_target.metadata()
        blob = model_target.model_bytes()
        # Verified before any Spark work (without unpickling it here: the executors do): a tampered or incompatible
        # model fails here and nothing is written.
        modeling.verify_model(blob, meta["sha256"], model_target.file(MODEL_FILE), meta.get("versions"))
        actual = {k: v for k, v in pandas_dtypes(table_target.schema()).items() if k != KEY}
        modeling.check_features(meta["feature_dtypes"], actual, table_target.uri)
        spark = session()
        bound = dict(model_blob=ship(spark, blob), digest=meta["sha256"], features=meta["features"],
                     version=meta["model_version"])
        scored = score_table(spark, table_target, bound, workers_read=fs.is_local(table_target.uri))
        with self.output().temporary_path(self.manifest()) as tmp:
            scored.write.parquet(fs.spark_uri(tmp))


def score_table(spark, table: ParquetTarget, bound: dict, workers_read: bool):
    """Predictions (client_id, score, model_version) of every row of the feature table, computed by executors.

    With `workers_read`, each Python worker reads whole parquet files of the table itself (`score_files`): the
    feature rows never pass through the JVM, which at 1M clients saves about 0.9 s of the 1.9 s that scoring
    took when the JVM read the table and sent the rows over in Arrow batches. That needs the executors to see
    the files at the driver's path, as Spark's own reads do: Predict asks for it when the table is on the local
    filesystem (one machine, or a mount every node has at the same place). Elsewhere (HDFS, object stores)
    Spark reads the table (`score_batches`), and the workers need no storage client or credentials of their own.
    """
    from nightshift import executors

    if workers_read:
        filesystem, folder = fs.resolve(table.uri)
        paths = [f"{folder}/{name}" for name in fs.data_files(table.uri)]
        score = functools.partial(executors.score_files, **bound, filesystem=filesystem, paths=paths)
        rows = spark.range(0, len(paths), 1, max(len(paths), 1))  # one file per Spark task
    else:
        score = functools.partial(executors.score_batches, **bound)
        rows = spark.read.parquet(table.spark_path).select(KEY, *bound["features"])
    return rows.mapInPandas(score, spark_ddl(PREDICTION_SCHEMA))
