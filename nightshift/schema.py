"""The data contracts every stage shares, defined once: keys, column lists, schemas and file names."""
import numpy as np
import pyarrow as pa

KEY = "client_id"
LABEL = "defaulted"
SNAPSHOT = "snapshot"  # the scoring date a training row was taken from
# Feature rows scikit-learn scores per call, whether Spark hands them over in Arrow batches or a worker reads them
# from a file: 100k, not 10k, pays its per-call overhead 10x less often (500k rows: 0.58 s instead of 0.92 s).
SCORE_BATCH_ROWS = 100_000
# Rows per parquet file of a feature table a Python worker writes: Predict scores one file per Spark task, so a
# million clients in two files keep both cores busy.
FEATURE_FILE_ROWS = 500_000

# Raw drops (raw/{clients,transactions,labels}/dt=d/).
CLIENTS_FILE = "clients.csv"
CLIENT_COLUMNS = (KEY, "sex", "age", "salary")
CORRUPT_RECORD = "_corrupt_record"  # the column Spark's CSV reader fills with a malformed line
LABELS_FILE = "labels.csv"
LABEL_COLUMNS = (KEY, LABEL)
TRUTH_FILE = "truth.parquet"  # the generator's true probabilities (truth/dt=d/), never read by scoring


def _is_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


# Transactions column -> (what is expected, test on the arrow type in a file's footer).
TRANSACTION_SCHEMA = {
    KEY: ("int64", pa.types.is_int64),
    # Spark cannot read nanosecond parquet timestamps (pandas' default) at all.
    "ts": ("timestamp in s, ms or us", lambda kind: pa.types.is_timestamp(kind) and kind.unit != "ns"),
    "amount": ("double", pa.types.is_float64),
    "category": ("string", _is_text),
}
RISKY_CATEGORIES = ("gambling", "cash_withdrawal")

# Outputs under [paths] root.
CLIENT_FEATURES_SCHEMA = pa.schema([(KEY, pa.int64()), ("is_male", pa.int32()), ("age", pa.int32()),
                                    ("salary_rub_month", pa.float64())])
# A rejected client row: its raw texts, why, and the whole line when its field count was wrong.
CLIENT_QUARANTINE_SCHEMA = pa.schema([*((name, pa.string()) for name in CLIENT_COLUMNS), ("reason", pa.string()),
                                      ("line", pa.string())])
DAILY_AGGREGATES = ("tx_count", "spend", "refund_count", "refund_sum", "max_amount", "risky_spend")
SHORT_WINDOW_DAYS = 7
PREDICTION_SCHEMA = pa.schema([(KEY, pa.int64()), ("score", pa.float64()), ("model_version", pa.string())])
PREDICTION_COLUMNS = tuple(PREDICTION_SCHEMA.names)

# Files inside output folders; a leading "_" keeps Spark and pyarrow from reading them as data.
QUARANTINE_COUNTS = "_counts.json"
SNAPSHOTS_FILE = "_snapshots.json"
REPORT_FILE = "validation.json"
HTML_FILE = "report.html"
APPROVAL_FILE = "approval.json"
HISTORY_FILE = "index.html"
PERFORMANCE_FILE = "performance.json"

_SPARK_TYPES = {"int64": "bigint", "int32": "int", "double": "double", "float": "float", "string": "string",
                "large_string": "string", "bool": "boolean"}


def spark_ddl(schema: pa.Schema) -> str:
    """The schema as Spark's DDL string (`client_id bigint, score double, ...`), for mapInPandas and readers."""
    return ", ".join(f"{field.name} {_SPARK_TYPES[str(field.type)]}" for field in schema)


def pandas_dtypes(schema: pa.Schema) -> dict[str, str]:
    """Column types in the numpy dtype names a model's metadata records (int32, float64, ...)."""
    return {field.name: np.dtype(field.type.to_pandas_dtype()).name for field in schema}


def window_feature_names(windows: list[int]) -> list[str]:
    """The transaction feature columns for a set of window lengths: `spend_7d`, `active_days_30d`, ..."""
    return [f"{name}_{days}d" for days in windows for name in (*DAILY_AGGREGATES, "active_days")]
