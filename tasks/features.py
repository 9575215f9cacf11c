"""Feature stage (Spark): client profile, per-day transaction aggregates, their windows, the feature table."""
import datetime as dt

import luigi
from pyspark.sql import DataFrame, functions as F, types as T
from pyspark.sql.window import Window

from targets import fs
from targets.directory import ParquetTarget
from tasks import config
from tasks.cleaning import CLIENT_COLUMNS, clean_clients
from tasks.dates import DAY, window_dates
from tasks.errors import DataQualityError, SchemaError
from tasks.raw import RawClients, RawTransactions
from tasks.spark import session

SHORT_WINDOW_DAYS = 7
RISKY_CATEGORIES = ("gambling", "cash_withdrawal")
DAILY_AGGREGATES = ("tx_count", "spend", "refund_count", "refund_sum", "max_amount", "risky_spend")

TRANSACTION_SCHEMA = {
    "client_id": ("bigint",),
    "ts": ("timestamp", "timestamp_ntz"),
    "amount": ("double",),
    "category": ("string",),
}

_CLEANED_SCHEMA = T.StructType(
    [
        T.StructField("client_id", T.LongType()),
        T.StructField("is_male", T.LongType()),
        T.StructField("age", T.LongType()),
        T.StructField("salary_rub_month", T.DoubleType()),
        T.StructField("reason", T.StringType()),
    ]
    + [T.StructField(f"raw_{name}", T.StringType()) for name in CLIENT_COLUMNS]
)


def read_clients_csv(spark, path: str, encoding: str) -> DataFrame:
    """The raw client snapshot as strings, failing clearly on a missing header column or an empty file."""
    frame = spark.read.options(header=True, inferSchema=False, encoding=encoding, mode="PERMISSIVE").csv(path)
    missing = [c for c in CLIENT_COLUMNS if c not in frame.columns]
    if missing:
        raise SchemaError(
            f"{path}: missing column(s) {missing}; expected header {','.join(CLIENT_COLUMNS)}, found {frame.columns}"
        )
    return frame.select(*CLIENT_COLUMNS)


def clean_client_snapshot(raw: DataFrame, cfg: config.raw) -> DataFrame:
    """Parse every row (pure pandas parser per batch) and reject all copies of a duplicated client_id."""
    bounds = dict(salary_min=cfg.salary_min, salary_max=cfg.salary_max, age_min=cfg.age_min, age_max=cfg.age_max)

    def _clean(batches):
        for batch in batches:
            yield clean_clients(batch, **bounds)

    cleaned = raw.mapInPandas(_clean, _CLEANED_SCHEMA)
    copies = F.count(F.lit(1)).over(Window.partitionBy("client_id"))
    duplicated = F.col("client_id").isNotNull() & (copies > 1)
    return cleaned.withColumn(
        "reason", F.when(F.col("reason").isNull() & duplicated, F.lit("client_id: duplicate")).otherwise(F.col("reason"))
    )


def check_quarantine_rate(path: str, total: int, rejected_by_reason: dict[str, int], max_rate: float) -> None:
    """Fail the day when the rejected share of `path` exceeds `[validate] max_quarantine_rate`."""
    if total == 0:
        raise SchemaError(f"{path}: no data rows")
    rejected = sum(rejected_by_reason.values())
    rate = rejected / total
    if rate > max_rate:
        counts = ", ".join(f"{reason}: {n}" for reason, n in sorted(rejected_by_reason.items()))
        raise DataQualityError(
            f"{path}: {rejected} of {total} rows rejected ({rate:.2%}), above max_quarantine_rate "
            f"{max_rate:.2%}; by reason: {counts}"
        )


def _reason_counts(flagged: DataFrame) -> tuple[int, dict[str, int]]:
    """All rows and the rejected ones by reason, in one Spark job (a null reason is a valid row)."""
    counts = {row["reason"]: row["count"] for row in flagged.groupBy("reason").count().collect()}
    total = sum(counts.values())
    counts.pop(None, None)
    return total, counts


class ClientFeatures(luigi.Task):
    """features/clients/date=D: is_male, age, salary_rub_month of every valid client of the D-1 snapshot."""

    date = luigi.DateParameter()

    def requires(self):
        return RawClients(self.date - DAY)

    def output(self):
        return ParquetTarget(config.dataset_path("features/clients", self.date))

    def quarantine(self):
        return ParquetTarget(config.dataset_path("quarantine/clients", self.date))

    def run(self):
        spark = session()
        cfg = config.raw()
        source = fs.spark_uri(self.input().file("clients.csv"))
        cleaned = clean_client_snapshot(read_clients_csv(spark, source, cfg.encoding), cfg).cache()
        rejected = cleaned.where(F.col("reason").isNotNull()).select(
            *[F.col(f"raw_{name}").alias(name) for name in CLIENT_COLUMNS], "reason"
        )
        with self.quarantine().temporary_path() as tmp:
            rejected.write.parquet(tmp)
        check_quarantine_rate(source, *_reason_counts(cleaned), config.validate().max_quarantine_rate)
        valid = cleaned.where(F.col("reason").isNull()).select(
            "client_id", F.col("is_male").cast("int"), F.col("age").cast("int"), "salary_rub_month"
        )
        with self.output().temporary_path() as tmp:
            valid.write.parquet(tmp)
        cleaned.unpersist()


def read_transactions(spark, path: str) -> DataFrame:
    """One day's raw transactions, failing clearly on a missing column or a wrong type."""
    frame = spark.read.parquet(path)
    types = dict(frame.dtypes)
    problems = [
        f"{name}: expected {' or '.join(allowed)}, found {types.get(name, 'nothing')}"
        for name, allowed in TRANSACTION_SCHEMA.items()
        if types.get(name) not in allowed
    ]
    if problems:
        raise SchemaError(f"{path}: " + "; ".join(problems))
    return frame.select(*TRANSACTION_SCHEMA)


def flag_transactions(raw: DataFrame, day: dt.date) -> DataFrame:
    """Add `reason` (null when fine): null client_id, ts outside the partition's day, non-finite amount."""
    start = F.lit(dt.datetime.combine(day, dt.time())).cast("timestamp_ntz")
    end = F.lit(dt.datetime.combine(day + DAY, dt.time())).cast("timestamp_ntz")
    ts = F.col("ts").cast("timestamp_ntz")
    amount = F.col("amount")
    return raw.withColumn(
        "reason",
        F.when(F.col("client_id").isNull(), "client_id: missing")
        .when(ts.isNull() | (ts < start) | (ts >= end), "ts: outside the partition's day")
        .when(amount.isNull() | F.isnan(amount) | (F.abs(amount) == float("inf")), "amount: not finite"),
    )


def aggregate_day(transactions: DataFrame, day: dt.date) -> DataFrame:
    """Per client aggregates of one day; refunds (negative amounts) are counted apart from spend."""
    amount = F.col("amount")
    spend = F.when(amount > 0, amount).otherwise(0.0)
    return transactions.groupBy("client_id").agg(
        F.count(F.lit(1)).alias("tx_count"),
        F.sum(spend).alias("spend"),
        F.sum(F.when(amount < 0, 1).otherwise(0)).alias("refund_count"),
        F.sum(F.when(amount < 0, -amount).otherwise(0.0)).alias("refund_sum"),
        F.max(spend).alias("max_amount"),
        F.sum(F.when(F.col("category").isin(*RISKY_CATEGORIES), spend).otherwise(0.0)).alias("risky_spend"),
    ).withColumn("day", F.lit(day))


class TransactionDaily(luigi.Task):
    """features/transactions_daily/date=d: per client aggregates of day d, computed once and reused by every window."""

    date = luigi.DateParameter()

    def requires(self):
        return RawTransactions(self.date)

    def output(self):
        return ParquetTarget(config.dataset_path("features/transactions_daily", self.date))

    def quarantine(self):
        return ParquetTarget(config.dataset_path("quarantine/transactions", self.date))

    def run(self):
        spark = session()
        source = self.input().spark_path
        flagged = flag_transactions(read_transactions(spark, source), self.date).cache()
        rejected = flagged.where(F.col("reason").isNotNull())
        with self.quarantine().temporary_path() as tmp:
            rejected.write.parquet(tmp)
        check_quarantine_rate(source, *_reason_counts(flagged), config.validate().max_quarantine_rate)
        daily = aggregate_day(flagged.where(F.col("reason").isNull()), self.date)
        with self.output().temporary_path() as tmp:
            daily.coalesce(1).write.parquet(tmp)
        flagged.unpersist()


def window_features(daily: DataFrame, score_date: dt.date, windows: list[int]) -> DataFrame:
    """Sum the per-day aggregates over each window ending the day before `score_date`."""
    columns = []
    for days in windows:
        inside = F.col("day") >= F.lit(score_date - days * DAY)
        for name in DAILY_AGGREGATES:
            agg = F.max if name == "max_amount" else F.sum
            columns.append(F.coalesce(agg(F.when(inside, F.col(name))), F.lit(0)).cast("double").alias(f"{name}_{days}d"))
        columns.append(F.count(F.when(inside, True)).cast("double").alias(f"active_days_{days}d"))
    return daily.groupBy("client_id").agg(*columns)


def feature_windows() -> list[int]:
    return sorted({SHORT_WINDOW_DAYS, config.features().window_days})


class TransactionFeatures(luigi.Task):
    """features/transactions/date=D: 7- and window_days-day windows of the daily aggregates before D."""

    date = luigi.DateParameter()

    def requires(self):
        return [TransactionDaily(day) for day in window_dates(self.date, max(feature_windows()))]

    def output(self):
        return ParquetTarget(config.dataset_path("features/transactions", self.date))

    def run(self):
        daily = session().read.parquet(*[target.spark_path for target in self.input()])
        with self.output().temporary_path() as tmp:
            window_features(daily, self.date, feature_windows()).write.parquet(tmp)


def transaction_feature_names() -> list[str]:
    return [f"{name}_{days}d" for days in feature_windows() for name in (*DAILY_AGGREGATES, "active_days")]


class FeatureTable(luigi.Task):
    """features/table/date=D: one row per valid client of the snapshot; no transactions means zeros."""

    date = luigi.DateParameter()

    def requires(self):
        return {"clients": ClientFeatures(self.date), "transactions": TransactionFeatures(self.date)}

    def output(self):
        return ParquetTarget(config.dataset_path("features/table", self.date))

    def run(self):
        spark = session()
        clients = spark.read.parquet(self.input()["clients"].spark_path)
        transactions = spark.read.parquet(self.input()["transactions"].spark_path)
        table = clients.join(transactions, "client_id", "left").fillna(0.0, subset=transaction_feature_names())
        with self.output().temporary_path() as tmp:
            table.write.parquet(tmp)
