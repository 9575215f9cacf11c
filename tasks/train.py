"""Training stage: the labelled training set of model date M, and the model trained on it."""
import datetime as dt
import io
import platform

import luigi
import numpy as np
import pandas as pd

from targets import fs
from targets.directory import ParquetTarget
from targets.model import ModelTarget
from tasks import config, metrics, modeling
from tasks.dates import training_snapshots
from tasks.features import FeatureTable
from tasks.raw import RawLabels

SNAPSHOT = "snapshot"


def snapshots_for(model_day: dt.date) -> list[dt.date]:
    cfg = config.model()
    return training_snapshots(model_day, cfg.training_snapshots, cfg.snapshot_spacing_days, cfg.label_lag_days)


def read_labels(uri: str) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(fs.read_bytes(uri)), dtype={"client_id": "int64", "defaulted": "int64"})


class TrainingSet(luigi.Task):
    """training/date=M: feature rows of past snapshots whose labels have landed by M, with the label."""

    date = luigi.DateParameter(description="Model date M.")

    def requires(self):
        return {day: {"table": FeatureTable(day), "labels": RawLabels(day)} for day in snapshots_for(self.date)}

    def output(self):
        return ParquetTarget(config.dataset_path("training", self.date))

    def run(self):
        parts = []
        for day, inputs in sorted(self.input().items()):
            table = inputs["table"].read_pandas()
            labels = read_labels(inputs["labels"].file("labels.csv"))
            parts.append(table.merge(labels, on=modeling.KEY, how="inner").assign(**{SNAPSHOT: day.isoformat()}))
        self.output().write_pandas(pd.concat(parts, ignore_index=True))


def read_truth(day: dt.date) -> pd.DataFrame | None:
    uri = fs.join(config.truth_path(day), "truth.parquet")
    return pd.read_parquet(io.BytesIO(fs.read_bytes(uri))) if fs.is_file(uri) else None


def library_versions() -> dict[str, str]:
    import pyspark
    import sklearn

    return {"python": platform.python_version(), "scikit-learn": sklearn.__version__, "pandas": pd.__version__,
            "numpy": np.__version__, "pyspark": pyspark.__version__, "luigi": luigi.__version__}


class TrainModel(luigi.Task):
    """models/M/: the fitted model and metadata.json (features, holdout quality, reference histogram)."""

    date = luigi.DateParameter(description="Model date M.")

    def requires(self):
        return TrainingSet(self.date)

    def output(self):
        return ModelTarget(config.model_path(self.date))

    def run(self):
        data = self.input().read_pandas()
        features = [c for c in data.columns if c not in (modeling.KEY, modeling.LABEL, SNAPSHOT)]
        holdout_day = data[SNAPSHOT].max()
        train, holdout = data[data[SNAPSHOT] < holdout_day], data[data[SNAPSHOT] == holdout_day]
        model = modeling.fit_model(train, features, config.model().seed)
        holdout_scores = modeling.score(model, holdout, features)
        evaluation = metrics.quality(holdout[modeling.LABEL].to_numpy(), holdout_scores)
        edges = metrics.quantile_edges(holdout_scores)
        meta = {
            "model_date": self.date.isoformat(),
            "features": features,
            "feature_dtypes": {f: str(data[f].dtype) for f in features},
            "training_snapshots": sorted(data[SNAPSHOT].unique().tolist()),
            "holdout_snapshot": holdout_day,
            "rows": {"train": len(train), "holdout": len(holdout)},
            "default_rate": {"train": float(train[modeling.LABEL].mean()), "holdout": float(holdout[modeling.LABEL].mean())},
            "holdout_auc": evaluation["auc"],
            "brier": evaluation["brier"],
            "reference_histogram": {"edges": edges, "counts": metrics.histogram(holdout_scores, edges)},
            "versions": library_versions(),
        }
        truth = read_truth(dt.date.fromisoformat(holdout_day))
        if truth is not None:
            joined = holdout[[modeling.KEY, modeling.LABEL]].merge(truth, on=modeling.KEY, how="inner")
            oracle = metrics.quality(joined[modeling.LABEL].to_numpy(), joined["p_default"].to_numpy())
            meta.update(oracle_auc=oracle["auc"], oracle_brier=oracle["brier"])

        def finish(blob: bytes) -> dict:
            digest = modeling.sha256(blob)
            return {"model_version": f"{self.date.isoformat()}-{digest[:8]}", "sha256": digest, **meta}

        self.output().save(model, modeling.dump_model, finish)
