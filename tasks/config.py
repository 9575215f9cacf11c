"""Configuration: one luigi.Config class per luigi.cfg section, and the one place paths are built."""
import datetime as dt
import os

import luigi

from tasks.errors import ConfigurationError


class paths(luigi.Config):
    root = luigi.Parameter(default="data", description="Root URI of every dataset, model, report and the SQLite file.")
    filesystem_options = luigi.Parameter(
        default="", description="pyarrow options for a URI root (read by targets/fs.py), key=value per line or |-separated: "
                                "endpoint_override, scheme, region for s3a://; user, replication for hdfs://.")


class spark(luigi.Config):
    master = luigi.Parameter(default="local[*]", description="Spark master URL, or sc://host:port for a Spark Connect "
                                                            "server (bin/spark-server runs one on 127.0.0.1).")
    conf = luigi.Parameter(default="", description="Extra Spark settings: key=value per line or separated by |.")
    driver_memory = luigi.Parameter(default="1g", description="spark.driver.memory (client mode).")
    log_level = luigi.Parameter(default="ERROR", description="Spark's log level on the console.")
    server_master = luigi.Parameter(default="local[*]", description="The master bin/spark-server's server runs on.")
    server_dir = luigi.Parameter(default="var/spark-server", description="bin/spark-server's pid file and log.")


class raw(luigi.Config):
    encoding = luigi.Parameter(default="utf-8", description="Encoding of the client CSV drops (e.g. cp1251).")
    salary_min = luigi.FloatParameter(default=1000.0, description="Lowest plausible salary, roubles per month.")
    salary_max = luigi.FloatParameter(default=10_000_000.0, description="Highest plausible salary, roubles per month.")
    age_min = luigi.IntParameter(default=18)
    age_max = luigi.IntParameter(default=100)
    timezone = luigi.Parameter(
        default="UTC", description="IANA zone the raw partitions are cut in: dt=d holds the instants of day d there. "
                                   "Also Spark's session zone and bin/run-daily's default date.")


class features(luigi.Config):
    window_days = luigi.IntParameter(default=30, description="Longest transaction window in days.")


class model(luigi.Config):
    retrain = luigi.ChoiceParameter(choices=["daily", "weekly", "monthly"], default="weekly")
    training_snapshots = luigi.IntParameter(default=4, description="Labelled snapshots per training set (last one is the holdout).")
    snapshot_spacing_days = luigi.IntParameter(default=7)
    label_lag_days = luigi.IntParameter(default=30, description="Days after a snapshot until its labels land.")
    seed = luigi.IntParameter(default=42)
    min_training_snapshots = luigi.IntParameter(
        default=2, description="Fewest labelled snapshots TrainingSet accepts (train + holdout); fewer fails the task.")
    max_rows_per_snapshot = luigi.IntParameter(
        default=100_000, description="Rows sampled (seeded) from each labelled snapshot into the training set.")


class validate(luigi.Config):
    psi_warn = luigi.FloatParameter(default=0.1)
    psi_fail = luigi.FloatParameter(default=0.25)
    max_quarantine_rate = luigi.FloatParameter(default=0.01)
    max_mean_shift = luigi.FloatParameter(
        default=0.25, description="Largest relative change of the mean score against the last published day.")
    volume_window_days = luigi.IntParameter(
        default=7, description="Days before a raw drop whose drops of the same kind give the median row count.")
    min_volume_ratio = luigi.FloatParameter(
        default=0.5, description="A raw drop below this x the median rows fails its task; 0 disables (and accepts "
                                 "an empty transactions day).")
    max_volume_ratio = luigi.FloatParameter(
        default=2.0, description="A raw drop above this x the median rows fails its task; 0 disables.")
    min_snapshot_ratio = luigi.FloatParameter(
        default=0.9, description="A client snapshot below this x the median rows fails ClientFeatures (a client base "
                                 "moves by well under 1% a day; transaction days swing more); 0 disables.")


class publish(luigi.Config):
    url = luigi.Parameter(default="", description="SQLAlchemy URL; NIGHTSHIFT_PUBLISH_URL wins; empty = SQLite under root.")

    def database_url(self) -> str:
        url = os.environ.get("NIGHTSHIFT_PUBLISH_URL") or self.url
        if url:
            return url
        root = paths().root
        if "://" in root and not root.startswith("file://"):
            raise ConfigurationError(
                f"[paths] root is {root!r}: the default SQLite file needs a local root; "
                "set [publish] url or NIGHTSHIFT_PUBLISH_URL to the production database"
            )
        return "sqlite:///" + os.path.abspath(path("nightshift.db").removeprefix("file://"))


def _day(date: dt.date) -> str:
    return date.isoformat()


def path(*parts: str) -> str:
    """A path under `[paths] root`: the one function that joins dataset paths."""
    root = paths().root.rstrip("/")
    return "/".join([root, *parts])


# The partition column of the raw drops' folders, which Spark reads as a date column (partition discovery).
RAW_PARTITION = "dt"


def raw_path(kind: str, date: dt.date) -> str:
    """Folder of one upstream drop: raw/{clients,transactions,labels}/dt=YYYY-MM-DD."""
    return path("raw", kind, f"{RAW_PARTITION}={_day(date)}")


def truth_path(date: dt.date) -> str:
    return path("truth", f"dt={_day(date)}")


def dataset_path(kind: str, date: dt.date) -> str:
    """Folder of a dataset we produce: e.g. dataset_path('features/table', D) -> root/features/table/date=D."""
    return path(*kind.split("/"), f"date={_day(date)}")


def model_path(model_date: dt.date) -> str:
    return path("models", _day(model_date))


class alerts(luigi.Config):
    webhook_url = luigi.Parameter(default="", description="Slack-compatible webhook (JSON POST) for rejections and failures; empty = mail only.")


class cron(luigi.Config):
    catchup_days = luigi.IntParameter(default=3, description="bin/run-daily completes DailyScoring for this many days up to --date.")
    log_dir = luigi.Parameter(default="logs", description="bin/run-daily's logs, one file per run date (relative to the repo).")
    log_keep_days = luigi.IntParameter(default=30, description="Run logs older than this many days are deleted.")
    lock_file = luigi.Parameter(default="var/run-daily.lock", description="flock file: one bin/run-daily at a time.")


class monitor(luigi.Config):
    max_auc_drop = luigi.FloatParameter(
        default=0.05, description="A published day whose realized AUC is below the model's holdout AUC minus this is degraded.")
    min_auc = luigi.FloatParameter(default=0.0, description="A realized AUC below this floor is degraded (0 = off).")
    lookback_days = luigi.IntParameter(
        default=90, description="MonitorModel(D) checks the published days of the last N days whose labels have landed.")
    metrics_file = luigi.Parameter(
        default="", description="Prometheus textfile-collector output; empty = <root>/metrics/nightshift.prom.")

    def metrics_path(self) -> str:
        return self.metrics_file or path("metrics", "nightshift.prom")
