"""Scoring stage (Spark): every client of the feature table scored with the model broadcast to executors."""
import luigi
import pandas as pd
from pyspark.sql import types as T

from targets import fs
from targets.directory import ParquetTarget
from targets.model import MODEL_FILE
from tasks import config, modeling
from tasks.dates import model_date
from tasks.features import FeatureTable
from tasks.spark import SparkTask, session
from tasks.train import TrainModel

PREDICTION_SCHEMA = T.StructType(
    [
        T.StructField("client_id", T.LongType()),
        T.StructField("score", T.DoubleType()),
        T.StructField("model_version", T.StringType()),
    ]
)


def arrow_dtypes(schema: T.StructType) -> dict[str, str]:
    """Spark column types in the pandas dtype names the model's metadata records."""
    names = {"bigint": "int64", "int": "int32", "double": "float64", "float": "float32"}
    return {field.name: names.get(field.dataType.simpleString(), field.dataType.simpleString()) for field in schema}


class Predict(SparkTask):
    """predictions/date=D: client_id, score, model_version for every row of FeatureTable(D)."""

    date = luigi.DateParameter()

    def requires(self):
        return {"table": FeatureTable(self.date), "model": TrainModel(model_date(self.date, config.model().retrain))}

    def output(self):
        return ParquetTarget(config.dataset_path("predictions", self.date))

    def run(self):
        model_target, table_target = self.input()["model"], self.input()["table"]
        meta = model_target.metadata()
        blob = model_target.model_bytes()
        # Verified before any Spark work: a tampered model fails here and nothing is written.
        modeling.load_model(blob, meta["sha256"], model_target.file(MODEL_FILE))
        spark = session()
        table = spark.read.parquet(table_target.spark_path)
        features, version, digest = meta["features"], meta["model_version"], meta["sha256"]
        actual = {k: v for k, v in arrow_dtypes(table.schema).items() if k != modeling.KEY}
        modeling.check_features(meta["feature_dtypes"], actual, table_target.uri)
        shipped = spark.sparkContext.broadcast(blob)

        def _score(batches):
            model = modeling.load_model(shipped.value, digest, "broadcast model")
            for batch in batches:
                yield pd.DataFrame(
                    {"client_id": batch[modeling.KEY], "score": modeling.score(model, batch, features),
                     "model_version": version}
                )

        scored = table.select(modeling.KEY, *features).mapInPandas(_score, PREDICTION_SCHEMA)
        with self.output().temporary_path() as tmp:
            scored.write.parquet(fs.spark_uri(tmp))
