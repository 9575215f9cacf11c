"""Feature stage (Spark): client profile, per-day transaction aggregates, their windows, the feature table.

Raw rows that cannot be used are not dropped silently: they go, with their original values and a `reason`, to
quarantine/{clients,transactions}/date=D/ (plus `_counts.json`: rows read and rejected per reason), and a partition
whose rejected share exceeds `[validate] max_quarantine_rate` fails its task. A file that cannot be read at all
(missing or renamed column, wrong delimiter or encoding, empty file, wrong parquet type) fails before anything is
written, with a SchemaError naming the file, the column and what was expected. A drop whose row count is far from the
median of the same drop on the days before fails with a VolumeError (tasks/raw.py), also before anything is written.
"""
import collections
import datetime as dt
import functools
import json
import logging
from typing import Callable

import luigi

from nightshift.dates import DAY, window_dates
from nightshift.schema import (
    CLIENT_COLUMNS, CLIENT_FEATURES_SCHEMA, CLIENT_QUARANTINE_SCHEMA, CLIENTS_FILE, CORRUPT_RECORD, DAILY_AGGREGATES,
    KEY, QUARANTINE_COUNTS, RISKY_CATEGORIES, SHORT_WINDOW_DAYS, TRANSACTION_SCHEMA, window_feature_names,
)
from targets import fs
from targets.directory import ParquetTarget, parquet_rows
from tasks import config
from tasks.errors import DataQualityError, SchemaError
from tasks.provenance import Recorded
from tasks.raw import RawClients, RawTransactions, check_drop_volume, csv_header, transaction_rows
from tasks.batching import BATCH_DAY, Batchable, DayFailures, day_folder, take_day, write_by_day
from tasks.spark import SparkTask, cached, session

logger = logging.getLogger("luigi-interface")

_OTHER_DELIMITERS = (";", "\t", "|")

def read_csv_header(uri: str, encoding: str) -> list[str]:
    """The column names of a client CSV drop, read from its first line; SchemaError when they are not the contract's.

    The error names the file and says what is missing, duplicated or oddly delimited (`csv_header` says why a file
    has no header to read).
    """
    expected = ",".join(CLIENT_COLUMNS)
    text, names = csv_header(uri, encoding, f"the header {expected} and a row per client", "the client snapshot",
                             "; set [raw] encoding to the file's encoding")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SchemaError(f"{uri}: column(s) {', '.join(repeated)} appear more than once in the header {text!r}")
    missing = [name for name in CLIENT_COLUMNS if name not in names]
    if missing:
        hint = next(
            (f"; the fields look separated by {d!r}, expected ','" for d in _OTHER_DELIMITERS if len(names) == 1 and d in text),
            "",
        )
        raise SchemaError(
            f"{uri}: missing column(s) {', '.join(missing)}: expected the header {expected}, found {text!r}{hint}"
        )
    return names


def log_ignored_columns(uri: str, ignored) -> None:
    """Say once per drop, at INFO, which delivered columns the pipeline does not read."""
    if ignored:
        logger.info("%s: ignoring column(s) not in the contract: %s", uri, ", ".join(sorted(ignored)))


def read_clients_csv(spark, headers: dict[str, list[str]], encoding: str):
    """The raw client snapshots (file: its header's names, from `read_csv_header`) as strings plus
    `_corrupt_record` (the line, where its field count is wrong) and BATCH_DAY, the scoring date a snapshot serves
    (the day after it).

    Files with the same header are read by one scan, so one snapshot and a batch of them run the same plan, whose
    generated code the kept session compiles once. For the same reason BATCH_DAY comes from the drop's folder name
    (Spark's partition discovery), not from a date constant, which Spark would compile into the code.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    # Spark 4 accepts only a few charsets by name; the legacy switch lets it use any Java charset, e.g. cp1251.
    spark.conf.set("spark.sql.legacy.javaCharsets", "true")
    by_header = collections.defaultdict(list)
    for uri, names in headers.items():
        by_header[tuple(names)].append(uri)
    scans = []
    for names, uris in by_header.items():
        schema = T.StructType([T.StructField(name, T.StringType()) for name in [*names, CORRUPT_RECORD]])
        frame = (
            spark.read.schema(schema)
            # The headers were checked; enforceSchema takes the names from them and skips each file's first line.
            .options(header=True, enforceSchema=True, encoding=encoding, mode="PERMISSIVE",
                     columnNameOfCorruptRecord=CORRUPT_RECORD)
            .option("basePath", fs.spark_uri(fs.parent(fs.parent(uris[0]))))
            .csv([fs.spark_uri(uri) for uri in uris])
        )
        scans.append(frame.select(*CLIENT_COLUMNS, CORRUPT_RECORD,
                                  F.date_add(config.RAW_PARTITION, 1).alias(BATCH_DAY)))
    return functools.reduce(lambda a, b: a.unionByName(b), scans)


def _plain_id(text):
    """Spark's test for a client id it reads itself (`PLAIN_CLIENT_ID`, not zero); the parser answers for the rest."""
    from nightshift.cleaning import PLAIN_CLIENT_ID

    return text.rlike(PLAIN_CLIENT_ID) & (text.try_cast("bigint") != 0)


def _distinct_texts(raw, encoding: str) -> dict[str, list[str]]:
    """The texts the driver must parse, per column, in one pass: every distinct sex, age and salary; the client
    ids that are not plain digits; and, under a single-byte encoding, the malformed lines (for the misread check).
    """
    from pyspark.sql import functions as F

    from nightshift.cleaning import is_utf8

    wanted = [F.struct(F.lit(name).alias("column"), F.col(name).alias("text")) for name in CLIENT_COLUMNS]
    if not is_utf8(encoding):
        wanted.append(F.struct(F.lit(CORRUPT_RECORD).alias("column"), F.col(CORRUPT_RECORD).alias("text")))
    pairs = raw.select(F.explode(F.array(*wanted)).alias("pair")).select("pair.*")
    pairs = pairs.where(F.col("text").isNotNull() & ~((F.col("column") == KEY) & _plain_id(F.col("text"))))
    texts = {name: [] for name in (*CLIENT_COLUMNS, CORRUPT_RECORD)}
    for row in pairs.distinct().collect():
        texts[row["column"]].append(row["text"])
    return texts


def clean_client_snapshot(spark, raw, cfg: config.raw):
    """Typed columns (client_id, is_male, age, salary_rub_month), `reason` (null for a valid row), the raw values
    (raw_client_id, ...), `raw_line` (the whole line of a malformed row) and BATCH_DAY of every row of `raw`, the
    snapshot(s) read by `read_clients_csv` with the BATCH_DAY each row belongs to.

    Each distinct text is parsed once, on the driver, by nightshift.cleaning (a snapshot of a million clients holds
    a few thousand distinct salaries, a handful of sexes and ages); the rows are then joined to the answers, so no
    Python runs per row. A row's reason is the first of: undecodable bytes (U+FFFD, which Spark puts in place of
    bytes invalid in `[raw] encoding`), UTF-8 text read as a single-byte encoding, a wrong number of fields, then
    each column's own reason in column order (client_id, sex, age, salary). Duplicates are `flag_duplicates`'.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from nightshift.cleaning import (
        MALFORMED_ROW, REPLACEMENT_CHARACTER, UNDECODABLE, misread_reason, parse_values, utf8_misread,
    )

    bounds = _bounds(cfg)
    kinds = {KEY: T.LongType(), "sex": T.LongType(), "age": T.LongType(), "salary": T.DoubleType()}
    texts = _distinct_texts(raw, cfg.encoding)
    frame = raw
    misread, typed, reasons = [], {}, []
    for name in CLIENT_COLUMNS:
        results, why = parse_values(name, [*texts[name], None], **bounds)
        (missing_result, missing_reason), results, why = (results[-1], why[-1]), results[:-1], why[:-1]
        # A StructType, not DDL text: a Spark Connect client would ask the server to parse the text.
        answers = spark.createDataFrame(
            [(text, result, reason, utf8_misread(text, cfg.encoding))
             for text, result, reason in zip(texts[name], results, why)],
            T.StructType([T.StructField("_text", T.StringType()), T.StructField(f"_{name}", kinds[name]),
                          T.StructField(f"_{name}_reason", T.StringType()),
                          T.StructField(f"_{name}_misread", T.BooleanType())]),
        )
        frame = frame.join(F.broadcast(answers), F.col(name) == F.col("_text"), "left").drop("_text")
        value, reason = F.col(f"_{name}"), F.col(f"_{name}_reason")
        if name == KEY:  # plain digits are read here; the parser answered for every other id
            value = F.when(_plain_id(F.col(KEY)), F.col(KEY).try_cast("bigint")).otherwise(value)
        missing = F.col(name).isNull()
        typed[name] = F.when(missing, F.lit(missing_result).cast(kinds[name])).otherwise(value)
        reasons.append(F.when(missing, F.lit(missing_reason)).otherwise(reason))
        misread.append(F.coalesce(F.col(f"_{name}_misread"), F.lit(False)))
    lines = [line for line in texts[CORRUPT_RECORD] if utf8_misread(line, cfg.encoding)]
    misread.append(F.col(CORRUPT_RECORD).isin(*lines) if lines else F.lit(False))
    undecodable = [F.coalesce(F.col(name).contains(REPLACEMENT_CHARACTER), F.lit(False))
                   for name in (*CLIENT_COLUMNS, CORRUPT_RECORD)]
    reason = F.coalesce(
        F.when(functools.reduce(lambda a, b: a | b, undecodable), F.lit(UNDECODABLE)),
        F.when(functools.reduce(lambda a, b: a | b, misread), F.lit(misread_reason(cfg.encoding))),
        F.when(F.col(CORRUPT_RECORD).isNotNull(), F.lit(MALFORMED_ROW)),
        *reasons,
    )
    return frame.select(
        typed[KEY].alias(KEY), typed["sex"].alias("is_male"), typed["age"].alias("age"),
        typed["salary"].alias("salary_rub_month"), reason.alias("reason"),
        *[F.col(name).alias(f"raw_{name}") for name in CLIENT_COLUMNS], F.col(CORRUPT_RECORD).alias("raw_line"),
        BATCH_DAY,
    )


def flag_duplicates(spark, cleaned):
    """Reject every copy of a client_id that appears more than once in its day's snapshot ("client_id: duplicate",
    unless the row already has a reason). Returns the flagged rows and the rows read per BATCH_DAY.

    The ids alone are counted, so the wide rows are never shuffled, and one Spark operation brings back both the
    rows per day and the repeated ids (usually none): a row with `rows` set is a day's total, one without is a
    repeated id. Two operations cost a second round trip and plan."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from nightshift.cleaning import DUPLICATE

    per_id = cleaned.groupBy(BATCH_DAY, KEY).count()
    no_count = F.lit(None).cast("long")
    per_day = per_id.groupBy(BATCH_DAY).agg(F.sum("count").alias("rows")).select(BATCH_DAY, no_count.alias(KEY), "rows")
    repeated = per_id.where(F.col(KEY).isNotNull() & (F.col("count") > 1)).select(BATCH_DAY, KEY, no_count.alias("rows"))
    totals, marks = {}, []
    for row in per_day.unionByName(repeated).collect():
        if row["rows"] is None:
            marks.append((row[BATCH_DAY], row[KEY], True))
        else:
            totals[row[BATCH_DAY]] = row["rows"]
    if not marks:
        return cleaned, totals
    marks = spark.createDataFrame(marks, T.StructType([T.StructField(BATCH_DAY, T.DateType()),
                                                       T.StructField(KEY, T.LongType()),
                                                       T.StructField("_repeated", T.BooleanType())]))
    reason = F.when(F.col("reason").isNull() & F.col("_repeated"), F.lit(DUPLICATE)).otherwise(F.col("reason"))
    return cleaned.join(F.broadcast(marks), [BATCH_DAY, KEY], "left").withColumn("reason", reason).drop("_repeated"), totals


def check_has_rows(path: str, total: int) -> None:
    """Fail a file with no data rows."""
    if total == 0:
        raise SchemaError(f"{path}: no data rows (the file holds at most a header)")


def check_readable(path: str, total: int, rejected_by_reason: dict[str, int], max_rate: float, encoding: str) -> None:
    """Fail a file read in the wrong encoding: more undecodable rows than the gate allows.

    Spark decodes bytes that are invalid in `[raw] encoding` as U+FFFD without a word; a cp1251 export read as UTF-8
    would otherwise fail the quarantine gate as thousands of "sex: unrecognised".
    """
    from nightshift.cleaning import UNDECODABLE, misread_reason

    undecodable = rejected_by_reason.get(UNDECODABLE, 0)
    misread = rejected_by_reason.get(misread_reason(encoding), 0)
    if undecodable / total > max_rate:
        raise SchemaError(
            f"{path}: {undecodable} of {total} rows hold bytes that are not valid {encoding}; the file is in another "
            f"encoding than [raw] encoding = {encoding} (a Windows export is usually cp1251): set [raw] encoding to it"
        )
    if misread / total > max_rate:
        raise SchemaError(
            f"{path}: {misread} of {total} rows are UTF-8 text but [raw] encoding = {encoding}: set [raw] encoding = utf-8"
        )


def check_quarantine_rate(
    path: str, total: int, rejected_by_reason: dict[str, int], max_rate: float, quarantine: str | None = None
) -> None:
    """Fail the day when the rejected share of `path` exceeds `[validate] max_quarantine_rate`."""
    if total == 0:
        raise SchemaError(f"{path}: no data rows")
    rejected = sum(rejected_by_reason.values())
    rate = rejected / total
    if rate > max_rate:
        counts = ", ".join(f"{reason} ({n})" for reason, n in sorted(rejected_by_reason.items(), key=lambda kv: (-kv[1], kv[0])))
        where = f"; the rejected rows are in {quarantine}" if quarantine else ""
        raise DataQualityError(
            f"{path}: {rejected} of {total} rows rejected ({rate:.2%}), above [validate] max_quarantine_rate "
            f"{max_rate:.2%}; by reason: {counts}{where}"
        )


def rejected_by_reason(uri: str) -> dict[str, int]:
    """Rows per reason of a folder of quarantined rows, read back with pyarrow (a small share of a drop)."""
    import pyarrow.compute as pc

    reasons = ParquetTarget(uri).read_arrow(columns=["reason"]).column("reason")
    return {entry["values"].as_py(): entry["counts"].as_py() for entry in pc.value_counts(reasons)}


def write_quarantine(target: ParquetTarget, write: Callable[[str], None], source: str, total: int,
                     manifest: dict | None = None, check: Callable[[dict[str, int]], None] | None = None
                     ) -> dict[str, int]:
    """The rejected rows, put into a folder by `write(folder)`, with `_counts.json` (source, rows read, rejected per
    reason) beside them.

    The rows per reason are counted from the written rows, not by another pass of Spark over the drop. `check`
    sees them before the folder is committed: a drop it fails leaves no quarantine behind. Returns them.
    """
    with target.temporary_path(manifest) as tmp:
        write(tmp)
        counts = rejected_by_reason(tmp)
        if check is not None:
            check(counts)
        summary = {"source": source, "rows": total, "rejected": counts}
        fs.write_bytes(fs.join(tmp, QUARANTINE_COUNTS), json.dumps(summary, indent=2, ensure_ascii=False).encode())
    return counts


def on_workers(spark, job: Callable, tasks: int) -> dict[int, int]:
    """Run `job` (an executors function over an `id` column, bound with functools.partial) as `tasks` Spark tasks,
    ids 0..tasks-1, each on a Python worker that reads and writes its files itself: {id: the rows it reports}."""
    rows = spark.range(0, tasks, 1, tasks).mapInPandas(job, "id long, rows long").collect()
    return {row["id"]: row["rows"] for row in rows}


def workers_read(cfg: config.raw, *uris: str) -> bool:
    """Whether the Python workers may read the snapshots themselves: UTF-8 files on the local filesystem."""
    from nightshift.cleaning import is_utf8

    return is_utf8(cfg.encoding) and fs.is_local(*uris)


def _bounds(cfg: config.raw) -> dict:
    return dict(salary_min=cfg.salary_min, salary_max=cfg.salary_max, age_min=cfg.age_min, age_max=cfg.age_max)


def clean_on_workers(spark, snapshots: dict[dt.date, tuple[str, list[str]]], cfg: config.raw, rejected_days: str,
                     valid_days: str) -> dict[dt.date, int]:
    """Clean the plain snapshots (day: its file and its header's names) on the Python workers, one Spark task per
    file, in jobs of at most CLEAN_AT_ONCE_BYTES of files (`cleaning_rounds`): each worker reads its file with
    pyarrow and cleans it with nightshift.cleaning's pandas parsers (`clean_snapshot`), and puts the day's valid
    and rejected rows under `valid_days` and `rejected_days` as write_by_day does. Returns the rows read of each day
    so cleaned; a file that is not plain CSV (`read_plain_csv`: escapes, malformed lines, bytes that are not UTF-8)
    is left out, for `clean_with_spark`.

    A snapshot of a million clients takes about 1.5 s of one worker this way, against 4 s of Spark's CSV reader,
    its joins to the parsed texts and its duplicate count on both cores (docs/benchmark.md).
    """
    from nightshift import executors

    filesystem, _ = fs.resolve(rejected_days)
    totals = {}
    for days in cleaning_rounds({day: filesystem.get_file_info(fs.resolve(source)[1]).size
                                 for day, (source, _) in snapshots.items()}, CLEAN_AT_ONCE_BYTES):
        clean = functools.partial(
            executors.clean_client_files, filesystem=filesystem, bounds=_bounds(cfg),
            paths=[fs.resolve(snapshots[day][0])[1] for day in days], headers=[snapshots[day][1] for day in days],
            valid_folders=[fs.resolve(day_folder(valid_days, day))[1] for day in days],
            rejected_folders=[fs.resolve(day_folder(rejected_days, day))[1] for day in days],
        )
        totals.update({days[index]: rows for index, rows in on_workers(spark, clean, len(days)).items() if rows >= 0})
    return totals


# Bytes of snapshot files the workers clean at the same time. A worker holds about six times its file: 1.67 GB for
# the 274 MB snapshot of 10M clients; two of those beside the Spark server would not fit the 6 GiB a night may use.
CLEAN_AT_ONCE_BYTES = 300 * 1024 ** 2


def cleaning_rounds(sizes: dict[dt.date, int], limit: int) -> list[list[dt.date]]:
    """The days (with their files' sizes) in Spark jobs run one after the other: each job's files add up to at most
    `limit` bytes, or hold one file that is bigger alone."""
    rounds, size = [], 0
    for day, bytes_ in sizes.items():
        if not rounds or size + bytes_ > limit:
            rounds.append([])
            size = 0
        rounds[-1].append(day)
        size += bytes_
    return rounds


def clean_with_spark(spark, snapshots: dict[dt.date, tuple[str, list[str]]], cfg: config.raw, rejected_days: str,
                     valid_days: str) -> dict[dt.date, int]:
    """Clean the snapshots (day: its file and its header's names) with Spark's CSV reader, in one Spark job per pass,
    and write each day's rejected and valid rows under `rejected_days` and `valid_days` (write_by_day). Returns the
    rows read of each day. Reads any file: malformed lines, another encoding, undecodable bytes
    (clean_client_snapshot)."""
    from pyspark.sql import functions as F

    raw = read_clients_csv(spark, dict(snapshots.values()), cfg.encoding)
    sources = [fs.spark_uri(source) for source, _ in snapshots.values()]
    with cached(clean_client_snapshot(spark, raw, cfg), *sources) as cleaned:
        flagged, totals = flag_duplicates(spark, cleaned)
        write_by_day(flagged.where(F.col("reason").isNotNull()).select(
            *[F.col(f"raw_{name}").alias(name) for name in CLIENT_COLUMNS], "reason", F.col("raw_line").alias("line"),
            BATCH_DAY,
        ), rejected_days)
        write_by_day(flagged.where(F.col("reason").isNull()).select(
            KEY, F.col("is_male").cast("int"), F.col("age").cast("int"), "salary_rub_month", BATCH_DAY,
        ), valid_days)
    return totals


class ClientFeatures(Batchable, Recorded, SparkTask):
    """features/clients/date=D: is_male, age, salary_rub_month of every valid client of the D-1 snapshot.

    A plain UTF-8 snapshot on the local filesystem is cleaned on a Python worker (`clean_on_workers`), any other by
    Spark's CSV reader (`clean_with_spark`); both write the same rows (docs/architecture.md).

    Pending days that Luigi hands over together (a backfill, a first night's training snapshots: tasks.batching)
    are cleaned in one Spark job per pass; each day is still checked, quarantined, gated and written on its own.
    """

    config_keys = ("raw.encoding", "raw.salary_min", "raw.salary_max", "raw.age_min", "raw.age_max")
    frozen_by_publish = True

    def requires(self):
        return RawClients(self.date - DAY)

    def output(self):
        return ParquetTarget(config.dataset_path("features/clients", self.date))

    def quarantine(self):
        return ParquetTarget(config.dataset_path("quarantine/clients", self.date))

    def run(self):
        spark = session()
        cfg = config.raw()
        max_rate = config.validate().max_quarantine_rate
        failures, snapshots = DayFailures(), {}
        for day in self.members():
            with failures.collecting():
                source = day.input().file(CLIENTS_FILE)
                snapshots[day.date] = source, read_csv_header(source, cfg.encoding)
                log_ignored_columns(source, [name for name in snapshots[day.date][1] if name not in CLIENT_COLUMNS])
        if not snapshots:
            failures.raise_for(self)
            return
        first = self.members()[0]
        with fs.scratch_dir(first.quarantine().uri) as rejected_days, fs.scratch_dir(first.output().uri) as valid_days:
            totals = {}
            if workers_read(cfg, rejected_days, *(source for source, _ in snapshots.values())):
                totals = clean_on_workers(spark, snapshots, cfg, rejected_days, valid_days)
            # What the workers left (not plain CSV, or not on the local filesystem) Spark's reader reads.
            rest = {date: snapshot for date, snapshot in snapshots.items() if date not in totals}
            spark_rejected, spark_valid = fs.join(rejected_days, "spark"), fs.join(valid_days, "spark")
            if rest:
                totals.update(clean_with_spark(spark, rest, cfg, spark_rejected, spark_valid))
            # In date order: a day's volume is judged against the days before, the batch's committed ones.
            for day in self.members():
                if day.date not in snapshots:
                    continue
                rejected, valid = (spark_rejected, spark_valid) if day.date in rest else (rejected_days, valid_days)
                with failures.collecting():
                    day.write_outputs(snapshots[day.date][0], totals.get(day.date, 0),
                                      take_day(rejected, day.date, CLIENT_QUARANTINE_SCHEMA),
                                      take_day(valid, day.date, CLIENT_FEATURES_SCHEMA), max_rate, cfg.encoding)
        failures.raise_for(self)

    def write_outputs(self, source: str, total: int, rejected, valid, max_rate: float, encoding: str) -> None:
        """The day's checks, its quarantine and its features (`rejected` and `valid` put their rows in a folder)."""
        check_has_rows(source, total)
        check_drop_volume("clients", self.date - DAY, total, source)
        manifest = self.manifest()  # the quarantine's and the features'
        counts = write_quarantine(self.quarantine(), rejected, source, total, manifest,
                                  check=lambda counts: check_readable(source, total, counts, max_rate, encoding))
        check_quarantine_rate(source, total, counts, max_rate, self.quarantine().uri)
        with self.output().temporary_path(manifest) as tmp:
            valid(tmp)


def check_transaction_files(uri: str) -> bool:
    """Check the data files of a transactions partition, each from its parquet footer (no data is read); whether
    their `ts` is wall-clock time (a parquet timestamp not adjusted to UTC, which Spark reads as TIMESTAMP_NTZ).

    SchemaError names every file with a missing column or a wrong type and what was expected, a file that is not
    parquet (empty, truncated), a partition without data files, and one whose files disagree on `ts`.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    expected = ", ".join(f"{name} {kind}" for name, (kind, _) in TRANSACTION_SCHEMA.items())
    names = fs.data_files(uri)
    if not names:
        raise SchemaError(f"{uri}: no data files; expected parquet files with {expected}")
    filesystem, path = fs.resolve(uri)
    problems, ignored, wall_clock = [], set(), {}
    for name in names:
        try:
            schema = pq.read_schema(f"{path}/{name}", filesystem=filesystem)
        except (pa.ArrowInvalid, OSError) as exc:
            problems.append(f"{fs.join(uri, name)}: not a readable parquet file ({exc})")
            continue
        types = {field.name: field.type for field in schema}
        ignored.update(set(types) - set(TRANSACTION_SCHEMA))
        if pa.types.is_timestamp(types.get("ts", pa.null())):
            wall_clock[name] = types["ts"].tz is None
        for column, (kind, accepts) in TRANSACTION_SCHEMA.items():
            if column not in types:
                problems.append(f"{fs.join(uri, name)}: column {column} missing, expected {kind}")
            elif not accepts(types[column]):
                problems.append(f"{fs.join(uri, name)}: column {column} is {types[column]}, expected {kind}")
    if len(set(wall_clock.values())) > 1:
        problems.append(f"{uri}: column ts is wall-clock time (no time zone) in "
                        f"{', '.join(n for n, local in wall_clock.items() if local)} and an instant (UTC) in "
                        f"{', '.join(n for n, local in wall_clock.items() if not local)}; expected one kind per day")
    if problems:
        raise SchemaError("; ".join(problems))
    log_ignored_columns(uri, ignored)
    return next(iter(wall_clock.values()))


def read_transactions(spark, uri: str):
    """One day's raw transactions, after `check_transaction_files` passed, with their day as BATCH_DAY (from the
    folder name, as `read_clients_csv` does)."""
    from pyspark.sql import functions as F

    frame = spark.read.option("basePath", fs.spark_uri(fs.parent(uri))).parquet(fs.spark_uri(uri))
    return frame.select(*TRANSACTION_SCHEMA, F.col(config.RAW_PARTITION).alias(BATCH_DAY))


def flag_transactions(raw, day: dt.date, zone: str, wall_clock: bool):
    """Add `reason` (null when fine): missing or non-positive client_id, ts missing or outside the partition's day
    in `zone` ([raw] timezone), amount missing or not finite, category missing (null or blank: such a row would
    count as spend but never as risky spend). Negative amounts are refunds, not errors.

    An instant (a parquet timestamp adjusted to UTC: Spark's TIMESTAMP) is compared with the instants that start
    and end the day in `zone`; a `wall_clock` timestamp (not adjusted: TIMESTAMP_NTZ) is read as that zone's local
    time and compared with midnight. Neither depends on Spark's session time zone.
    """
    import zoneinfo

    from pyspark.sql import functions as F

    # Literals from text and epoch seconds: a Python datetime would pass through the machine's local zone.
    if wall_clock:
        start, end = (F.lit(f"{d.isoformat()} 00:00:00").cast("timestamp_ntz") for d in (day, day + DAY))
    else:
        tz = zoneinfo.ZoneInfo(zone)
        start, end = (F.timestamp_seconds(F.lit(int(dt.datetime.combine(d, dt.time(), tz).timestamp())))
                      for d in (day, day + DAY))
    ts = F.col("ts")
    amount = F.col("amount")
    return raw.withColumn(
        "reason",
        F.when(F.col("client_id").isNull(), "client_id: missing")
        .when(F.col("client_id") <= 0, "client_id: not positive")
        .when(ts.isNull(), "ts: missing")
        .when((ts < start) | (ts >= end), "ts: outside the partition's day")
        .when(amount.isNull(), "amount: missing")
        .when(F.isnan(amount) | (F.abs(amount) == float("inf")), "amount: not finite")
        .when(F.col("category").isNull() | (F.trim(F.col("category")) == ""), "category: missing"),
    )


def aggregate_days(transactions):
    """Per client aggregates of each day (`BATCH_DAY`, kept as `day`); refunds (negative amounts) are counted apart
    from spend.

    tx_count counts every transaction, refunds included; spend, max_amount and risky_spend sum or take the positive
    amounts only; refund_count and refund_sum (positive roubles) are the refunds.
    """
    from pyspark.sql import functions as F

    amount = F.col("amount")
    spend = F.when(amount > 0, amount).otherwise(0.0)
    return transactions.groupBy(BATCH_DAY, "client_id").agg(
        F.count(F.lit(1)).alias("tx_count"),
        F.sum(spend).alias("spend"),
        F.sum(F.when(amount < 0, 1).otherwise(0)).alias("refund_count"),
        F.sum(F.when(amount < 0, -amount).otherwise(0.0)).alias("refund_sum"),
        F.max(spend).alias("max_amount"),
        F.sum(F.when(F.col("category").isin(*RISKY_CATEGORIES), spend).otherwise(0.0)).alias("risky_spend"),
    ).withColumn("day", F.col(BATCH_DAY))


def check_empty_day(source: str, rows: int, min_volume_ratio: float) -> None:
    """A transactions day without rows fails unless `[validate] min_volume_ratio` = 0 accepts days without activity."""
    if rows == 0 and min_volume_ratio > 0:
        raise SchemaError(f"{source}: no data rows in {', '.join(fs.data_files(source))}; a day without "
                          f"transactions is accepted with [validate] min_volume_ratio = 0")


# Parquet row groups of the per-day aggregates: about 47k clients each.
DAILY_ROW_GROUP_BYTES = 1024 * 1024


class TransactionDaily(Batchable, Recorded, SparkTask):
    """features/transactions_daily/date=d: per client aggregates of day d, computed once and reused by every window.

    Pending days that Luigi hands over together (a backfill, a first night: tasks.batching) are read, flagged and
    aggregated in one Spark job per pass; each day is still checked, quarantined, gated and written on its own.
    """

    def requires(self):
        return RawTransactions(self.date)

    def output(self):
        return ParquetTarget(config.dataset_path("features/transactions_daily", self.date))

    def quarantine(self):
        return ParquetTarget(config.dataset_path("quarantine/transactions", self.date))

    def checked_drop(self) -> tuple[int, bool]:
        """The day's rows and whether its `ts` is wall-clock time, from its parquet footers, once its files, emptiness
        and volume passed their checks: a day is judged before a row of it is read."""
        source = self.input().uri
        wall_clock = check_transaction_files(source)
        rows = transaction_rows(source)
        check_empty_day(source, rows, config.validate().min_volume_ratio)
        check_drop_volume("transactions", self.date, rows, source)
        return rows, wall_clock

    def run(self):
        from pyspark.sql import functions as F

        spark = session()
        zone, max_rate = config.raw().timezone, config.validate().max_quarantine_rate
        failures, drops = DayFailures(), {}
        for day in self.members():
            with failures.collecting():
                drops[day] = day.checked_drop()
        if drops:
            flagged = functools.reduce(lambda a, b: a.unionByName(b), [
                flag_transactions(read_transactions(spark, day.input().uri), day.date, zone, wall_clock)
                for day, (_, wall_clock) in drops.items()
            ])
            first = next(iter(drops))
            # Two passes over the days' files, each filtering the flagged rows its own way: cheaper than caching them.
            rejected = flagged.where(F.col("reason").isNotNull())
            # All of a day's valid rows go to one Spark task, which writes the day's one file: the windows read
            # 30 days of them every night. In client order, in row groups of DAILY_ROW_GROUP_BYTES: a worker
            # summing a range of clients (windows_on_workers) reads only the row groups that hold it.
            daily = aggregate_days(flagged.where(F.col("reason").isNull()).repartition(BATCH_DAY)) \
                .sortWithinPartitions(BATCH_DAY, KEY)
            with fs.scratch_dir(first.quarantine().uri) as rejected_days, fs.scratch_dir(first.output().uri) as daily_days:
                write_by_day(rejected, rejected_days)
                write_by_day(daily, daily_days, {"parquet.block.size": str(DAILY_ROW_GROUP_BYTES)})
                for day, (total, _) in drops.items():
                    source, manifest = day.input().uri, day.manifest()  # the quarantine's and the aggregate's
                    with failures.collecting():
                        counts = write_quarantine(day.quarantine(), take_day(rejected_days, day.date, rejected),
                                                  source, total, manifest)
                        if total:
                            check_quarantine_rate(source, total, counts, max_rate, day.quarantine().uri)
                        with day.output().temporary_path(manifest) as tmp:
                            take_day(daily_days, day.date, daily)(tmp)
        failures.raise_for(self)


def window_features(daily, score_date: dt.date, windows: list[int]):
    """Sum the per-day aggregates over each window ending the day before `score_date`."""
    from pyspark.sql import functions as F

    columns = []
    for days in windows:
        inside = F.col("day") >= F.lit(score_date - days * DAY)
        for name in DAILY_AGGREGATES:
            agg = F.max if name == "max_amount" else F.sum
            columns.append(F.coalesce(agg(F.when(inside, F.col(name))), F.lit(0)).cast("double").alias(f"{name}_{days}d"))
        columns.append(F.count(F.when(inside, True)).cast("double").alias(f"active_days_{days}d"))
    return daily.groupBy("client_id").agg(*columns)


def client_ranges(folder: str, rows: int, part_rows: int) -> list[tuple[int | None, int | None]]:
    """Ranges of client ids [low, high) (None: no bound) that split `rows` rows into parts of about `part_rows`, cut
    at quantiles of the client ids of the parquet `folder`; one range of every client when one part holds them."""
    parts = max(1, -(-rows // part_rows))
    if parts == 1:
        return [(None, None)]
    import numpy as np
    import pyarrow.dataset as pads

    filesystem, path = fs.resolve(folder)
    clients = pads.dataset(path, filesystem=filesystem, format="parquet").to_table(columns=[KEY])[KEY].to_numpy()
    cuts = sorted({int(cut) for cut in np.quantile(clients, np.arange(1, parts) / parts)}) if len(clients) else []
    return list(zip([None, *cuts], [*cuts, None]))


def feature_windows() -> list[int]:
    return sorted({SHORT_WINDOW_DAYS, config.features().window_days})


class TransactionFeatures(Recorded, SparkTask):
    """features/transactions/date=D: 7- and window_days-day windows of the daily aggregates before D."""

    date = luigi.DateParameter()
    config_keys = ("features.window_days",)
    frozen_by_publish = True

    def requires(self):
        return [TransactionDaily(day) for day in window_dates(self.date, max(feature_windows()))]

    def output(self):
        return ParquetTarget(config.dataset_path("features/transactions", self.date))

    def run(self):
        spark = session()
        days = {(self.date - day).days: target for day, target in zip(window_dates(self.date, max(feature_windows())),
                                                                       self.input())}
        with self.output().temporary_path(self.manifest()) as tmp:
            if fs.is_local(tmp, *(target.uri for target in days.values())):
                windows_on_workers(spark, {age: target.uri for age, target in days.items()}, tmp)
            else:
                daily = spark.read.parquet(*[target.spark_path for target in days.values()])
                window_features(daily, self.date, feature_windows()).write.parquet(tmp)


# Rows of per-day aggregates one Python worker sums at a time in `windows_on_workers`: about 0.4 GB of its memory.
WINDOW_PART_ROWS = 4_000_000


def windows_on_workers(spark, days: dict[int, str], out: str) -> None:
    """The transaction features summed by the Python workers (`executors.window_feature_files`) from and to folders on
    the local filesystem: `days` maps each day's age (1 for the day before the scoring date) to its per-day aggregates.

    One Spark task per range of clients, as many ranges as WINDOW_PART_ROWS rows of the days need, cut at quantiles
    of the busiest day's clients. A worker reads only its range of each day's rows: TransactionDaily writes them in
    client order, in small row groups. Spark's grouping took 4.4 s of a 1M-client night and 67 s at 10M, the
    workers' take 1.8 s and 13 s (docs/benchmark.md).
    """
    from nightshift import executors

    filesystem, _ = fs.resolve(out)
    rows = {uri: parquet_rows(uri) or 0 for uri in days.values()}
    bounds = client_ranges(max(rows, key=rows.get), sum(rows.values()), WINDOW_PART_ROWS)
    job = functools.partial(executors.window_feature_files, filesystem=filesystem, windows=feature_windows(),
                            days=[(age, fs.resolve(uri)[1]) for age, uri in sorted(days.items())], bounds=bounds,
                            out=fs.resolve(out)[1])
    on_workers(spark, job, len(bounds))


def transaction_feature_names() -> list[str]:
    return window_feature_names(feature_windows())


class FeatureTable(Recorded, SparkTask):
    """features/table/date=D: one row per valid client of the snapshot; no transactions means zeros."""

    date = luigi.DateParameter()
    config_keys = ("features.window_days",)
    frozen_by_publish = True

    def requires(self):
        return {"clients": ClientFeatures(self.date), "transactions": TransactionFeatures(self.date)}

    def output(self):
        return ParquetTarget(config.dataset_path("features/table", self.date))

    def run(self):
        spark = session()
        clients, transactions = self.input()["clients"], self.input()["transactions"]
        with self.output().temporary_path(self.manifest()) as tmp:
            if fs.is_local(clients.uri, transactions.uri, tmp):
                join_on_workers(spark, clients.uri, transactions.uri, tmp)
            else:
                join_with_spark(spark, clients.uri, transactions.uri).write.parquet(fs.spark_uri(tmp))


def join_with_spark(spark, clients: str, transactions: str):
    """The feature table as Spark joins it, from folders anywhere Spark reads (HDFS, object stores)."""
    return spark.read.parquet(fs.spark_uri(clients)).join(spark.read.parquet(fs.spark_uri(transactions)), KEY, "left") \
        .fillna(0.0, subset=transaction_feature_names())


# Clients one Python worker joins at a time in `join_on_workers`: both tables' rows and the result, about 0.5 GB.
# The whole 10M-client table joined at once took the night's process tree to 8.5 GiB (goal 6 GiB).
WORKER_JOIN_ROWS = 1_000_000


def join_on_workers(spark, clients: str, transactions: str, out: str) -> None:
    """The feature table (every client with its transaction features, zeros where it had none) joined and written
    by the Python workers with pyarrow (`executors.join_feature_files`), from and to folders on the local
    filesystem: one Spark task per range of WORKER_JOIN_ROWS clients.

    Spark's join of the two shuffled the tables and wrote the result in 0.4-0.5 s at 100k clients, 2.1 s at 1M and
    34 s at 10M; the workers' takes 0.2 s, 0.8 s and 5.6 s (docs/benchmark.md).
    """
    from nightshift import executors

    filesystem, _ = fs.resolve(out)
    bounds = client_ranges(clients, parquet_rows(clients) or 0, WORKER_JOIN_ROWS)
    join = functools.partial(executors.join_feature_files, filesystem=filesystem, clients=fs.resolve(clients)[1],
                             transactions=fs.resolve(transactions)[1], out=fs.resolve(out)[1],
                             zeros=transaction_feature_names(), bounds=bounds)
    on_workers(spark, join, len(bounds))


def night_volumes(date: dt.date) -> list[dict]:
    """The volume check of every raw drop scoring date D reads (the D-1 snapshot, each transaction day of the
    longest window), from recorded counts: see tasks.raw.drop_volume."""
    from tasks.raw import drop_volume

    return [drop_volume("clients", date - DAY),
            *(drop_volume("transactions", day) for day in window_dates(date, max(feature_windows())))]


def _quarantine_partition(target: ParquetTarget) -> dict:
    """Rows read and rejected per reason of one quarantine folder: reasons from its parquet, rows from _counts.json."""
    reasons = collections.Counter(target.read_arrow(columns=["reason"]).column("reason").to_pylist())
    rows = None
    if fs.is_file(target.file(QUARANTINE_COUNTS)):
        rows = json.loads(target.read_file(QUARANTINE_COUNTS))["rows"]
    rejected = sum(reasons.values())
    return {"path": target.uri, "rows": rows, "rejected": rejected, "reasons": dict(reasons),
            "rate": rejected / rows if rows else None}


def quarantine_counts(date: dt.date) -> dict:
    """What the feature stage quarantined for scoring date D, for the validation report.

    Reads quarantine/clients/date=D (the D-1 snapshot) and quarantine/transactions/date=d for every day d of the
    longest transaction window before D. Returns::

        {"clients": {reason: n, ...}, "transactions": {reason: n, ...},   # rejected rows per reason, summed
         "rows": {"clients": n, "transactions": n},                        # raw rows read
         "rate": r,          # highest rejected share of one partition: what [validate] max_quarantine_rate gates
         "partitions": [{"path", "rows", "rejected", "reasons", "rate"}, ...],
         "missing": [path, ...]}                                           # quarantine folders not (yet) written

    A partition written before `_counts.json` existed has rows and rate None. Only pyarrow reads, no Spark.
    """
    kinds = {
        "clients": [date],
        "transactions": window_dates(date, max(feature_windows())),
    }
    result = {"clients": {}, "transactions": {}, "rows": {}, "rate": 0.0, "partitions": [], "missing": []}
    for kind, days in kinds.items():
        reasons = collections.Counter()
        rows = 0
        for day in days:
            target = ParquetTarget(config.dataset_path(f"quarantine/{kind}", day))
            if not target.exists():
                result["missing"].append(target.uri)
                continue
            part = _quarantine_partition(target)
            result["partitions"].append(part)
            reasons.update(part["reasons"])
            rows += part["rows"] or 0
            if part["rate"] is not None:
                result["rate"] = max(result["rate"], part["rate"])
        result[kind] = dict(sorted(reasons.items()))
        result["rows"][kind] = rows
    return result
