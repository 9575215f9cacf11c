"""Training stage: the labelled training set of model date M, and the model trained on it."""
import datetime as dt
import functools
import io
import json
import logging
import platform

import luigi

from nightshift.dates import labelled_snapshots, newest_snapshot
from nightshift.schema import KEY, LABEL, LABEL_COLUMNS, LABELS_FILE, SNAPSHOT, SNAPSHOTS_FILE, TRUTH_FILE, pandas_dtypes
from targets import fs
from targets.directory import ParquetTarget
from targets.model import MODEL_FILE, ModelTarget
from tasks import config
from tasks.errors import ConfigurationError, ExplainsFailures, NotEnoughSnapshots, SchemaError
from tasks.features import FeatureTable
from tasks.provenance import Recorded
from tasks.raw import RawLabels, csv_header
from tasks.spark import SparkTask, session

logger = logging.getLogger("luigi-interface")


def snapshots_for(model_day: dt.date) -> list[dt.date]:
    """The labelled snapshots TrainingSet(M) uses: only existing label drops (a file check, no Spark)."""
    cfg = config.model()
    return labelled_snapshots(model_day, cfg.training_snapshots, cfg.snapshot_spacing_days, cfg.label_lag_days,
                              lambda day: RawLabels(day).complete())


def check_enough_snapshots(model_day: dt.date, found: list[dt.date]) -> None:
    """Fail with what exists and what is needed when fewer than `[model] min_training_snapshots` are labelled."""
    cfg = config.model()
    needed = max(cfg.min_training_snapshots, 2)
    if len(found) >= needed:
        return
    newest = newest_snapshot(model_day, cfg.label_lag_days)
    raise NotEnoughSnapshots(
        f"TrainingSet {model_day}: {len(found)} labelled snapshot(s) {[d.isoformat() for d in found]} found under "
        f"{config.path('raw', 'labels')}, at least {needed} needed ([model] min_training_snapshots; "
        f"{cfg.training_snapshots} wanted, every {cfg.snapshot_spacing_days} days). A snapshot S counts when "
        f"raw/labels/dt=S has its _SUCCESS flag and S <= {newest} (model date - label_lag_days "
        f"{cfg.label_lag_days} - 1)"
    )


def read_labels_spark(spark, uri: str):
    """A label drop as (client_id bigint, defaulted int); the one reader of labels.csv for every task that needs it.

    `defaulted` may be 0 or 1 in any numeric spelling (`1`, `1.0`, ` 0 `); `client_id` must be an integer. Spark 4
    casts in ANSI mode, where `.cast` of `yes` throws a Java traceback that never names the file, so values are read
    with `try_cast` (null when unreadable) and every bad row is counted. SchemaError names the file, the column(s),
    the number of bad rows and up to three of them as they were written.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    expected = ",".join(LABEL_COLUMNS)
    _, names = csv_header(uri, "utf-8", f"the header {expected}", "the labels")
    missing = [c for c in LABEL_COLUMNS if names.count(c) != 1]
    if missing:
        raise SchemaError(f"{uri}: missing column(s) {missing}; expected header {expected}, found {names}")
    # The header's names as the schema (the others renamed apart): Spark reads no line to find them, which through
    # a Connect server it did again for every plan built on the file.
    schema = T.StructType([T.StructField(name if name in LABEL_COLUMNS else f"_ignored{i}", T.StringType())
                           for i, name in enumerate(names)])
    frame = spark.read.schema(schema).options(header=True, enforceSchema=True).csv(fs.spark_uri(uri))
    client_id = F.col(KEY).try_cast("bigint")
    label = F.col(LABEL).try_cast("double")
    typed = frame.select(client_id.alias(KEY), label.alias(LABEL), F.col(KEY).alias("raw_id"),
                         F.col(LABEL).alias("raw_label"))
    bad_id, bad_label = F.col(KEY).isNull(), ~F.coalesce(F.col(LABEL).isin(0.0, 1.0), F.lit(False))
    bad = typed.where(bad_id | bad_label)
    count = bad.count()
    if count:
        examples = ", ".join(f"({row['raw_id']!r}, {row['raw_label']!r})" for row in bad.limit(3).collect())
        raise SchemaError(f"{uri}: {count} of {frame.count()} row(s) where {KEY} is not an integer or {LABEL} is not "
                          f"0/1, e.g. ({KEY}, {LABEL}) = {examples}")
    return typed.select(KEY, F.col(LABEL).cast("int").alias(LABEL))


def sample_snapshot(table, labels, day: dt.date, max_rows: int, seed: int):
    """Labelled feature rows of one snapshot, at most `max_rows` of them, chosen by a seeded hash of client_id.

    The hash also takes the snapshot date, so each snapshot draws its own clients; the same seed and
    data always give the same rows, whatever the partitioning.
    """
    from pyspark.sql import functions as F

    joined = table.join(labels, KEY, "inner").withColumn(SNAPSHOT, F.lit(day.isoformat()))
    rank = F.xxhash64(F.col(KEY), F.lit(day.isoformat()), F.lit(seed))
    return joined.orderBy(rank, KEY).limit(max_rows)


class TrainingSet(Recorded, SparkTask):
    """training/date=M: a seeded sample of the labelled feature rows of past snapshots whose labels landed by M."""

    date = luigi.DateParameter(description="Model date M.")
    config_keys = ("model.training_snapshots", "model.snapshot_spacing_days", "model.label_lag_days",
                   "model.min_training_snapshots", "model.max_rows_per_snapshot", "model.seed")

    def requires(self):
        found = snapshots_for(self.date)
        if len(found) < max(config.model().min_training_snapshots, 2):
            return {}  # run() explains; building features for a set that cannot train would be wasted
        return {day: {"table": FeatureTable(day), "labels": RawLabels(day)} for day in found}

    def output(self):
        return ParquetTarget(config.dataset_path("training", self.date))

    def run(self):
        # The snapshots requires() chose, not a new listing: label drops may land while the graph runs.
        chosen = sorted(self.input())
        check_enough_snapshots(self.date, chosen or snapshots_for(self.date))
        if not chosen:
            raise NotEnoughSnapshots(f"TrainingSet {self.date}: label drops landed after the run was scheduled with too "
                                     f"few of them; rerun to train on {snapshots_for(self.date)}")
        spark, cfg = session(), config.model()
        if cfg.max_rows_per_snapshot < 1:
            raise ConfigurationError(f"[model] max_rows_per_snapshot = {cfg.max_rows_per_snapshot}: must be at least 1")
        parts, counts = [], {}
        for day, inputs in sorted(self.input().items()):
            table = spark.read.parquet(inputs["table"].spark_path)
            labels_file = inputs["labels"].file(LABELS_FILE)
            labels = read_labels_spark(spark, labels_file)
            labelled = table.join(labels, KEY, "inner").count()
            if labelled == 0:
                raise SchemaError(f"{labels_file}: no labelled client is in "
                                  f"{inputs['table'].uri} (0 rows after joining on {KEY})")
            # The sample is the first max_rows of the labelled rows in a total order: that many, or all of them.
            counts[day.isoformat()] = {"labelled": labelled, "sampled": min(labelled, cfg.max_rows_per_snapshot)}
            parts.append(sample_snapshot(table, labels, day, cfg.max_rows_per_snapshot, cfg.seed))
        with self.output().temporary_path(self.manifest()) as tmp:
            functools.reduce(lambda a, b: a.unionByName(b), parts).coalesce(1).write.parquet(fs.spark_uri(tmp))
            fs.write_bytes(fs.join(tmp, SNAPSHOTS_FILE), json.dumps(counts, indent=2).encode())


def read_truth(day: dt.date):
    """The generator's true probabilities of a snapshot (client_id, p_default), or None outside sample data."""
    import pandas as pd

    uri = fs.join(config.truth_path(day), TRUTH_FILE)
    return pd.read_parquet(io.BytesIO(fs.read_bytes(uri))) if fs.is_file(uri) else None


def library_versions() -> dict[str, str]:
    import pandas as pd

    from nightshift import modeling
    import pyarrow as pa
    import pyspark

    return {"python": platform.python_version(), **modeling.installed_versions(), "pandas": pd.__version__,
            "pyarrow": pa.__version__, "pyspark": pyspark.__version__, "luigi": luigi.__version__}


class TrainModel(Recorded, ExplainsFailures, luigi.Task):
    """models/M/: the fitted model and metadata.json (features, holdout quality, reference histogram)."""

    date = luigi.DateParameter(description="Model date M.")
    config_keys = ("model.seed", "model.max_rows_per_snapshot")

    def requires(self):
        return TrainingSet(self.date)

    def output(self):
        return ModelTarget(config.model_path(self.date))

    def run(self):
        from nightshift import modeling

        table = self.input().read_arrow()
        data = table.to_pandas()
        dtypes = {k: v for k, v in pandas_dtypes(table.schema).items()
                  if k not in (KEY, LABEL, SNAPSHOT)}
        holdout_day = dt.date.fromisoformat(data[SNAPSHOT].max())
        model, report = modeling.train_and_evaluate(data, list(dtypes), config.model().seed, read_truth(holdout_day))
        sampled = json.loads(self.input().read_file(SNAPSHOTS_FILE))
        meta = {
            "model_date": self.date.isoformat(),
            **report,
            "feature_dtypes": dtypes,
            "rows_per_snapshot": sampled,
            "max_rows_per_snapshot": config.model().max_rows_per_snapshot,
            "seed": config.model().seed,
            "versions": library_versions(),
        }
        if len(report["training_snapshots"]) < config.model().training_snapshots:
            logger.warning("TrainModel %s: trained on %d of %d wanted snapshots %s", self.date,
                           len(report["training_snapshots"]), config.model().training_snapshots,
                           report["training_snapshots"])

        def finish(blob: bytes) -> dict:
            digest = modeling.sha256(blob)
            return {"model_version": modeling.model_version(self.date, digest), "model_file": MODEL_FILE,
                    "sha256": digest, **meta}

        self.output().save(model, modeling.dump_model, finish, self.manifest(rows=len(data)))
