"""The feature stage on bad raw data, driven through the real tasks on small files written here.

Each case runs one task (ClientFeatures or TransactionDaily, FeatureTable for the gate) on real local Spark and
asserts what a user sees: the error text, the quarantined rows and reasons, and that nothing downstream was written.
"""
import datetime as dt
import json
import math

import luigi
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from targets import fs
from targets.directory import ParquetTarget, parquet_rows
from tasks import ClientFeatures, FeatureTable, TransactionDaily, TransactionFeatures, config
from tasks.errors import ConfigurationError
from tasks.features import QUARANTINE_COUNTS, quarantine_counts
from tasks.raw import drop_rows
from tasks.spark import settings as _spark_settings
from tests.conftest import SCORE_DATE, build, families, make_sample_data


def spark_settings() -> dict:
    return _spark_settings(config.spark())

SNAPSHOT = SCORE_DATE - dt.timedelta(days=1)  # ClientFeatures(D) reads the D-1 snapshot
DAY = SNAPSHOT                                 # the transaction day tested
HEADER = "client_id,sex,age,salary"

# (line of clients.csv, reason it must be quarantined with)
BAD_CLIENTS = [
    ("1007,М,35,300 к/сек", "salary: out of bounds"),
    ("1008,Ж,40,по договорённости", "salary: unparseable"),
    ("1009,Ж,7,40 000", "age: out of bounds"),
    ("1010,X,30,40 000", "sex: unrecognised"),
    ("1011,М,33,40 000", "client_id: duplicate"),
    ("1011,М,33,35 000 р/мес", "client_id: duplicate"),
    ("abc,Ж,30,40 000", "client_id: not an integer"),
    ("1012,М,44,1,2 млн р/год", "row: wrong number of fields"),  # the salary's comma, unquoted
    ("1013,Ж,38,450 000 р/мес", "salary: out of bounds"),        # above the salary_max set below
]
GOOD_CLIENTS = {
    # line: (client_id, is_male, age, salary_rub_month)
    "1001,М,35,45 000 р/мес": (1001, 1, 35, 45_000.0),
    '1002,Ж,41,"1,2 млн р/год"': (1002, 0, 41, 100_000.0),
    "1003,M,29,15000 руб/мес": (1003, 1, 29, 15_000.0),
    "1004,F,52,": (1004, 0, 52, math.nan),
    "1005,Ж,18,55 000": (1005, 0, 18, 55_000.0),
    "1006,м,99,45к": (1006, 1, 99, 45_000.0),
}


@pytest.fixture
def failures():
    """(task, exception) of every task that fails while the test runs."""
    seen = []

    def record(task, exc):
        seen.append((task, exc))

    luigi.Task.event_handler(luigi.Event.FAILURE)(record)
    yield seen
    luigi.Task._event_callbacks[luigi.Task][luigi.Event.FAILURE].discard(record)


def drop_folder(root, kind, day):
    folder = root / "raw" / kind / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_clients(root, data, day=SNAPSHOT, name="clients.csv"):
    """A client drop: `data` is the file's text (UTF-8) or its bytes."""
    folder = drop_folder(root, "clients", day)
    (folder / name).write_bytes(data.encode() if isinstance(data, str) else data)
    (folder / "_SUCCESS").write_bytes(b"")
    return folder / name


def clients_csv(*lines, filler=0):
    """A client snapshot with the given lines and `filler` plain valid clients (ids from 5000)."""
    rows = [*lines, *(f"{5000 + i},Ж,30,50 000" for i in range(filler))]
    return "\n".join([HEADER, *rows]) + "\n"


def write_transactions(root, tables, day=DAY):
    """A transactions drop: one parquet file per table (or per pandas frame), named part-0000k.parquet."""
    folder = drop_folder(root, "transactions", day)
    for k, table in enumerate(tables):
        if isinstance(table, pd.DataFrame):
            table = pa.Table.from_pandas(table, preserve_index=False)
        pq.write_table(table, folder / f"part-{k:05d}.parquet")
    (folder / "_SUCCESS").write_bytes(b"")
    return folder


def transactions(rows):
    """An arrow table with the contract's types from (client_id, ts, amount, category) tuples."""
    ids, ts, amounts, categories = zip(*rows)
    return pa.table({
        "client_id": pa.array(ids, pa.int64()),
        "ts": pa.array([dt.datetime.fromisoformat(t) if t else None for t in ts], pa.timestamp("us")),
        "amount": pa.array(amounts, pa.float64()),
        "category": pa.array(categories, pa.string()),
    })


def at(hour, minute=0, day=DAY):
    return dt.datetime.combine(day, dt.time(hour, minute)).isoformat()


def target(kind, date=SCORE_DATE):
    return ParquetTarget(config.dataset_path(kind, date))


def only_failure(failures, family):
    assert [task.task_family for task, _ in failures] == [family], failures
    return str(failures[0][1])


# --- rows that are quarantined, and the ones that are kept ------------------------------------------------------

GOOD_TX = [
    (1001, at(10), 100.0, "grocery"),
    (1001, at(12), -30.0, "online_shopping"),  # a refund: kept, counted apart
    (1001, at(13), 500.0, "gambling"),
    (1003, at(0), 200.0, "transport"),          # midnight belongs to its day
    (1003, at(23, 59), -15.5, "grocery"),
]
BAD_TX = [
    (None, at(11), 50.0, "grocery", "client_id: missing"),
    (0, at(11), 50.0, "grocery", "client_id: not positive"),
    (1001, "2026-02-28T23:59:00", 50.0, "grocery", "ts: outside the partition's day"),
    (1001, SCORE_DATE.isoformat() + "T00:00:00", 50.0, "grocery", "ts: outside the partition's day"),
    (1001, None, 50.0, "grocery", "ts: missing"),
    (1003, at(14), math.nan, "grocery", "amount: not finite"),
    (1003, at(15), math.inf, "travel", "amount: not finite"),
    (1003, at(16), None, "travel", "amount: missing"),
    (1003, at(17), 20.0, None, "category: missing"),     # would count as spend but never as risky spend
    (1003, at(18), 20.0, "  ", "category: missing"),
]
FILLER_TX = [(1005, at(h % 24, h % 60), 10.0, "grocery") for h in range(200)]


def test_bad_rows_are_quarantined_with_their_values_and_reason_and_counted(root, overlay):
    overlay.set("raw", "salary_max", 400_000)  # the plausibility bounds are configuration
    overlay.set("raw", "age_max", 99)
    bad_clients = [*BAD_CLIENTS, ("1014,Ж,100,40 000", "age: out of bounds")]
    write_clients(root, clients_csv(*GOOD_CLIENTS, *(line for line, _ in bad_clients), filler=200))
    write_transactions(root, [transactions(GOOD_TX + FILLER_TX), transactions([row[:4] for row in BAD_TX])])

    result = build(ClientFeatures(date=SCORE_DATE), TransactionDaily(date=DAY))
    assert families(result["completed"]) == ["ClientFeatures", "TransactionDaily"], result["failed"]

    features = target("features/clients").read_pandas().set_index("client_id").sort_index()
    good = pd.DataFrame(list(GOOD_CLIENTS.values()), columns=["client_id", "is_male", "age", "salary_rub_month"])
    assert set(features.index) == set(good.client_id) | {5000 + i for i in range(200)}
    pd.testing.assert_frame_equal(
        features.loc[good.client_id], good.set_index("client_id"), check_dtype=False, check_names=False
    )

    quarantined = target("quarantine/clients").read_pandas()
    assert sorted(zip(quarantined.client_id, quarantined.reason)) == sorted(
        (line.split(",")[0], reason) for line, reason in bad_clients
    )
    by_salary = quarantined.set_index("salary")
    assert by_salary.loc["300 к/сек", "reason"] == "salary: out of bounds"  # the original text, not a clipped number
    assert set(quarantined[quarantined.client_id == "1011"].salary) == {"40 000", "35 000 р/мес"}  # every copy
    malformed = quarantined[quarantined.reason == "row: wrong number of fields"]
    assert list(malformed.line) == ["1012,М,44,1,2 млн р/год"]  # the whole line, as it was
    assert quarantined.line.notna().sum() == 1

    daily = target("features/transactions_daily", DAY).read_pandas().set_index("client_id")
    assert daily.loc[1001, ["tx_count", "spend", "refund_count", "refund_sum", "max_amount", "risky_spend"]].tolist() \
        == [3, 600.0, 1, 30.0, 500.0, 500.0]
    assert daily.loc[1003, ["tx_count", "spend", "refund_count", "refund_sum"]].tolist() == [2, 200.0, 1, 15.5]
    assert daily.loc[1005, "tx_count"] == 200
    assert set(daily.index) == {1001, 1003, 1005}

    bad_tx = target("quarantine/transactions", DAY).read_pandas()
    assert sorted(bad_tx.reason) == sorted(row[4] for row in BAD_TX)
    assert list(bad_tx.columns) == ["client_id", "ts", "amount", "category", "reason"]
    amounts = bad_tx.set_index("reason")["amount"]
    assert math.isnan(amounts["amount: missing"]) and amounts["amount: not finite"].tolist().count(math.inf) == 1

    counts = quarantine_counts(SCORE_DATE)
    assert counts["clients"] == {
        "age: out of bounds": 2, "client_id: duplicate": 2, "client_id: not an integer": 1,
        "row: wrong number of fields": 1, "salary: out of bounds": 2, "salary: unparseable": 1,
        "sex: unrecognised": 1,
    }
    assert counts["transactions"] == {
        "amount: missing": 1, "amount: not finite": 2, "category: missing": 2, "client_id: missing": 1,
        "client_id: not positive": 1, "ts: missing": 1, "ts: outside the partition's day": 2,
    }
    client_rows = len(GOOD_CLIENTS) + len(bad_clients) + 200
    tx_rows = len(GOOD_TX) + len(FILLER_TX) + len(BAD_TX)
    assert counts["rows"] == {"clients": client_rows, "transactions": tx_rows}
    assert counts["rate"] == pytest.approx(max(len(bad_clients) / client_rows, len(BAD_TX) / tx_rows))
    assert len(counts["missing"]) == 6  # the other days of the 7-day window were not built here
    assert target("quarantine/clients").read_file(QUARANTINE_COUNTS)


def test_a_row_gets_the_first_of_its_reasons_row_level_faults_before_any_column(root):
    # (raw bytes of a line, the reason it must get): undecodable bytes, then a wrong field count, then the columns
    # in order client_id, sex, age, salary; a duplicate only where nothing else is wrong.
    rows = [
        (b"1101,\xff,35,45 000", "encoding: undecodable bytes"),
        (b"1102,\xff,35,45 000,extra", "encoding: undecodable bytes"),
        (b"abc,X,7,45 000,extra", "row: wrong number of fields"),
        (b"abc,X,7,300 \xd0\xba/\xd1\x81\xd0\xb5\xd0\xba", "client_id: not an integer"),
        (b"0,X,7,45 000", "client_id: not positive"),
        (b"1103,X,7,300 \xd0\xba/\xd1\x81\xd0\xb5\xd0\xba", "sex: unrecognised"),
        (b"1104,M,7,300 \xd0\xba/\xd1\x81\xd0\xb5\xd0\xba", "age: out of bounds"),
        (b"1105,M,35,300 \xd0\xba/\xd1\x81\xd0\xb5\xd0\xba", "salary: out of bounds"),
        (b"1106,M,35,45 000", "client_id: duplicate"),
        (b"+1106,M,35,45 000", "client_id: duplicate"),   # the same id, spelt otherwise
        (b"1107,M,35,45 000", "client_id: duplicate"),
        (b"1107,X,35,45 000", "sex: unrecognised"),       # its own reason first, but it still makes 1107 repeated
    ]
    filler = "".join(f"{5000 + i},F,30,50 000\n" for i in range(300)).encode()
    write_clients(root, HEADER.encode() + b"\n" + b"\n".join(line for line, _ in rows) + b"\n" + filler)

    result = build(ClientFeatures(date=SCORE_DATE))

    assert families(result["completed"]) == ["ClientFeatures"], result["failed"]
    quarantined = target("quarantine/clients").read_pandas()
    assert sorted(quarantined.reason) == sorted(reason for _, reason in rows)
    valid = target("features/clients").read_pandas()
    assert len(valid) == 300 and not {1106, 1107} & set(valid.client_id)


def test_a_snapshot_above_the_quarantine_rate_fails_with_counts_per_reason_and_nothing_downstream(
    root, failures, caplog
):
    source = write_clients(root, clients_csv(*GOOD_CLIENTS, *(line for line, _ in BAD_CLIENTS)))
    # The windows are already built, so only the snapshot stands between FeatureTable and its inputs.
    target("features/transactions").write_pandas(pd.DataFrame({"client_id": [1001], "tx_count_7d": [1.0]}))

    result = build(FeatureTable(date=SCORE_DATE))

    assert families(result["failed"]) == ["ClientFeatures"]
    message = only_failure(failures, "ClientFeatures")
    assert str(source) in message
    rejected = len(BAD_CLIENTS) - 1  # 450 000 р/мес is plausible under the default salary_max
    assert f"{rejected} of {len(BAD_CLIENTS) + len(GOOD_CLIENTS)} rows rejected" in message
    assert "max_quarantine_rate 5.00%" in message
    for reason, n in [("client_id: duplicate", 2), ("salary: out of bounds", 1), ("sex: unrecognised", 1),
                      ("row: wrong number of fields", 1)]:
        assert f"{reason} ({n})" in message
    assert "quarantine/clients/date=2026-03-02" in message
    logged = [r for r in caplog.records if r.name == "luigi-interface" and r.levelname == "ERROR"]
    assert len(logged) == 1 and not logged[0].exc_info  # the message, not a traceback
    assert logged[0].getMessage().endswith(f"DataQualityError: {message}")
    assert not target("features/clients").exists()
    assert not target("features/table").exists()
    assert len(target("quarantine/clients").read_pandas()) == rejected


def test_a_transaction_day_above_the_quarantine_rate_fails_and_writes_no_aggregates(root, failures):
    folder = write_transactions(root, [transactions(GOOD_TX + [row[:4] for row in BAD_TX])])

    result = build(TransactionDaily(date=DAY))

    assert families(result["failed"]) == ["TransactionDaily"]
    message = only_failure(failures, "TransactionDaily")
    assert str(folder) in message and f"{len(BAD_TX)} of {len(BAD_TX) + len(GOOD_TX)} rows rejected" in message
    assert "ts: outside the partition's day (2)" in message and "amount: not finite (2)" in message
    assert not target("features/transactions_daily", DAY).exists()


def test_a_day_replaced_after_a_failed_run_is_read_anew_by_the_rerun(root, failures):
    # Spark's cache outlives a run (all runs of a Connect server share it; here, the tests' session): a read the
    # failed run left cached would give the rerun the rows of the file that was replaced.
    write_transactions(root, [transactions(GOOD_TX + [row[:4] for row in BAD_TX])])
    assert families(build(TransactionDaily(date=DAY))["failed"]) == ["TransactionDaily"]

    write_transactions(root, [transactions(GOOD_TX)])  # the corrected drop, under the same file name
    result = build(TransactionDaily(date=DAY))

    assert families(result["completed"]) == ["TransactionDaily"], failures[1:]
    daily = target("features/transactions_daily", DAY).read_pandas()
    assert daily.tx_count.sum() == len(GOOD_TX)


# --- encodings --------------------------------------------------------------------------------------------------

def cyrillic_snapshot():
    return clients_csv(*GOOD_CLIENTS, filler=20)


def test_a_cp1251_snapshot_is_read_with_the_encoding_setting(root, overlay):
    overlay.set("raw", "encoding", "cp1251")
    write_clients(root, cyrillic_snapshot().encode("cp1251"))

    result = build(ClientFeatures(date=SCORE_DATE))

    assert families(result["completed"]) == ["ClientFeatures"]
    features = target("features/clients").read_pandas().set_index("client_id")
    assert features.loc[1002, "salary_rub_month"] == 100_000.0 and features.loc[1001, "is_male"] == 1
    assert len(target("quarantine/clients").read_pandas()) == 0


def test_a_cp1251_snapshot_read_as_utf8_fails_naming_the_file_and_the_setting(root, failures):
    source = write_clients(root, cyrillic_snapshot().encode("cp1251"))

    result = build(ClientFeatures(date=SCORE_DATE))

    assert families(result["failed"]) == ["ClientFeatures"]
    message = only_failure(failures, "ClientFeatures")
    assert str(source) in message
    assert "not valid utf-8" in message and "[raw] encoding" in message and "cp1251" in message
    assert not target("features/clients").exists() and not target("quarantine/clients").exists()


def test_a_utf8_snapshot_read_as_cp1251_fails_naming_the_setting(root, overlay, failures):
    overlay.set("raw", "encoding", "cp1251")
    source = write_clients(root, cyrillic_snapshot())

    build(ClientFeatures(date=SCORE_DATE))

    message = only_failure(failures, "ClientFeatures")
    assert str(source) in message and "UTF-8 text but [raw] encoding = cp1251" in message
    assert not target("features/clients").exists()


# --- files that cannot be read at all ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "data, expected",
    [
        ("client_id,sex,age\n1001,М,35\n", "missing column(s) salary: expected the header client_id,sex,age,salary"),
        ("client_id,sex,age,income\n1001,М,35,45 000\n", "missing column(s) salary"),
        ("id,sex,age,salary\n1001,М,35,45 000\n", "missing column(s) client_id"),
        ("client_id;sex;age;salary\n1001;М;35;45 000\n", "the fields look separated by ';', expected ','"),
        ("client_id\tsex\tage\tsalary\n", "the fields look separated by '\\t'"),
        ("", "empty file (0 bytes)"),
        ("\n\n", "empty file (2 bytes)"),
        (HEADER + "\n", "no data rows"),
        ("client_id,sex,age,salary,age\n1001,М,35,1,35\n", "column(s) age appear more than once"),
    ],
    ids=["missing", "renamed", "renamed-id", "semicolons", "tabs", "empty", "blank-lines", "header-only", "repeated"],
)
def test_an_unreadable_snapshot_fails_naming_the_file_and_what_was_expected(root, failures, data, expected):
    source = write_clients(root, data)

    result = build(ClientFeatures(date=SCORE_DATE))

    assert families(result["failed"]) == ["ClientFeatures"]
    message = only_failure(failures, "ClientFeatures")
    assert message.startswith(str(source)) and expected in message
    assert not target("features/clients").exists() and not target("quarantine/clients").exists()


def test_a_snapshot_with_another_file_name_fails_listing_what_is_there(root, failures):
    write_clients(root, clients_csv(*GOOD_CLIENTS), name="Clients_2026-03-01.csv")

    build(ClientFeatures(date=SCORE_DATE))

    message = only_failure(failures, "ClientFeatures")
    assert "clients.csv: cannot read the client snapshot" in message and "Clients_2026-03-01.csv" in message


def test_an_unknown_encoding_setting_is_named_before_any_task_runs(root, overlay):
    overlay.set("raw", "encoding", "win-1251")
    write_clients(root, clients_csv(*GOOD_CLIENTS))

    with pytest.raises(ConfigurationError, match=r"\[raw\] encoding = 'win-1251': not a known encoding"):
        build(ClientFeatures(date=SCORE_DATE))
    assert not ClientFeatures(date=SCORE_DATE).quarantine().exists()


def good_frame():
    return transactions(GOOD_TX).to_pandas().astype({"ts": "datetime64[us]"})


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: good_frame().astype({"amount": str}), "column amount is string, expected double"),
        (lambda: good_frame().astype({"client_id": "int32"}), "column client_id is int32, expected int64"),
        (lambda: good_frame().drop(columns="category"), "column category missing, expected string"),
        (lambda: good_frame().rename(columns={"ts": "timestamp"}), "column ts missing, expected timestamp"),
        (lambda: pa.Table.from_pandas(good_frame().astype({"ts": "datetime64[ns]"}), preserve_index=False),
         "column ts is timestamp[ns], expected timestamp in s, ms or us"),
    ],
    ids=["amount-string", "id-int32", "no-category", "ts-renamed", "ts-nanoseconds"],
)
def test_a_transaction_file_of_the_wrong_schema_fails_naming_file_column_and_type(root, failures, make, expected):
    folder = write_transactions(root, [transactions(GOOD_TX), make()])

    result = build(TransactionDaily(date=DAY))

    assert families(result["failed"]) == ["TransactionDaily"]
    message = only_failure(failures, "TransactionDaily")
    assert f"{folder}/part-00001.parquet: {expected}" in message
    assert "part-00000" not in message  # the good file is not blamed
    assert not target("features/transactions_daily", DAY).exists()
    assert not target("quarantine/transactions", DAY).exists()


@pytest.mark.parametrize(
    "files, expected",
    [
        ({}, "no data files; expected parquet files with client_id int64, ts timestamp"),
        ({"part-00000.parquet": b""}, "part-00000.parquet: not a readable parquet file"),
        ({"part-00000.csv": b"client_id,ts\n1,2\n"}, "part-00000.csv: not a readable parquet file"),
    ],
    ids=["no-files", "empty-file", "not-parquet"],
)
def test_an_empty_or_foreign_transaction_drop_fails_naming_the_file(root, failures, files, expected):
    folder = drop_folder(root, "transactions", DAY)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "_SUCCESS").write_bytes(b"")

    build(TransactionDaily(date=DAY))

    message = only_failure(failures, "TransactionDaily")
    assert message.startswith(str(folder)) and expected in message
    assert not target("features/transactions_daily", DAY).exists()


def test_a_transaction_file_without_rows_fails(root, failures):
    folder = write_transactions(root, [transactions(GOOD_TX).slice(0, 0)])

    build(TransactionDaily(date=DAY))

    assert only_failure(failures, "TransactionDaily") == (
        f"{folder}: no data rows in part-00000.parquet; a day without transactions is accepted with [validate] "
        "min_volume_ratio = 0"
    )


# --- the business time zone ([raw] timezone) -------------------------------------------------------------------

MOSCOW = "Europe/Moscow"
# (Moscow wall-clock on DAY unless dated, in the day as Moscow cuts it): 00:00-03:00 Moscow is the previous UTC day.
MOSCOW_TIMES = [("00:00", True), ("00:30", True), ("02:59", True), ("03:00", True), ("12:00", True),
                ("23:59", True), ("2026-02-28T23:30", False), ("2026-03-02T00:10", False)]


def moscow_rows(aware: bool):
    import zoneinfo

    zone = zoneinfo.ZoneInfo(MOSCOW)
    stamps = [dt.datetime.fromisoformat(t if "T" in t else f"{DAY}T{t}") for t, _ in MOSCOW_TIMES]
    if aware:  # parquet timestamps adjusted to UTC: the instants
        values = pa.array([s.replace(tzinfo=zone) for s in stamps], pa.timestamp("us", tz="UTC"))
    else:      # wall-clock timestamps (not adjusted): Moscow local time as written
        values = pa.array(stamps, pa.timestamp("us"))
    n = len(stamps)
    return pa.table({"client_id": pa.array(range(1001, 1001 + n), pa.int64()), "ts": values,
                     "amount": pa.array([10.0] * n, pa.float64()), "category": pa.array(["grocery"] * n)})


@pytest.mark.parametrize("aware", [True, False], ids=["instants", "wall-clock"])
def test_a_moscow_cut_day_is_judged_in_moscow_time(root, overlay, aware):
    overlay.set("validate", "max_quarantine_rate", "1")
    overlay.set("raw", "timezone", MOSCOW)
    write_transactions(root, [moscow_rows(aware)])

    assert families(build(TransactionDaily(date=DAY))["completed"]) == ["TransactionDaily"]
    flagged = sorted(target("quarantine/transactions", DAY).read_pandas().client_id)
    assert flagged == [1001 + i for i, (_, inside) in enumerate(MOSCOW_TIMES) if not inside]
    assert target("features/transactions_daily", DAY).read_pandas().tx_count.sum() == sum(i for _, i in MOSCOW_TIMES)
    assert spark_settings()["spark.sql.session.timeZone"] == MOSCOW


def test_moscow_instants_judged_in_utc_lose_the_hours_before_3am(root, overlay):
    overlay.set("validate", "max_quarantine_rate", "1")
    write_transactions(root, [moscow_rows(aware=True)])  # [raw] timezone stays UTC

    build(TransactionDaily(date=DAY))
    flagged = set(target("quarantine/transactions", DAY).read_pandas().client_id)
    early = {1001 + i for i, (t, _) in enumerate(MOSCOW_TIMES) if t in ("00:00", "00:30", "02:59")}
    assert early <= flagged and 1001 + 3 not in flagged  # 03:00 Moscow is 00:00 UTC


@pytest.fixture(scope="session")
def moscow_drop(tmp_path_factory):
    """Two days of sample drops whose transaction partitions are cut in Moscow time."""
    target_root = tmp_path_factory.mktemp("moscow")
    make_sample_data(target_root, DAY, days=2, timezone=MOSCOW)
    return target_root


@pytest.mark.parametrize("zone, fails", [(MOSCOW, False), ("UTC", True)])
def test_a_moscow_cut_sample_drop_passes_the_gate_only_in_moscow_time(root, overlay, failures, moscow_drop, zone,
                                                                      fails):
    import shutil

    overlay.set("raw", "timezone", zone)
    shutil.copytree(moscow_drop / "raw" / "transactions" / f"dt={DAY}", root / "raw" / "transactions" / f"dt={DAY}")
    ts = pq.read_table(root / "raw" / "transactions" / f"dt={DAY}").column("ts").to_pandas().dt.tz_convert(MOSCOW)
    outside_moscow_day = int((ts.dt.date != DAY).sum())  # the generator's deliberate junk only
    early = int(((ts.dt.date == DAY) & (ts.dt.hour < 3)).sum())
    assert early > 0.1 * len(ts)

    result = build(TransactionDaily(date=DAY))
    if fails:
        message = only_failure(failures, "TransactionDaily")
        assert f"ts: outside the partition's day ({outside_moscow_day + early})" in message
    else:
        assert families(result["completed"]) == ["TransactionDaily"]
        counts = quarantine_counts(SCORE_DATE)["transactions"]
        assert counts.get("ts: outside the partition's day", 0) == outside_moscow_day


# --- volumes: a drop far smaller or larger than the days before -------------------------------------------------

def usual_days(root, rows=100, days=7, end=DAY):
    """`days` transaction drops of `rows` valid rows each, on the days before `end`."""
    for k in range(1, days + 1):
        day = end - dt.timedelta(days=k)
        write_transactions(root, [transactions([(1001 + i % 50, at(i % 24, i % 60, day), 10.0, "grocery")
                                                for i in range(rows)])], day=day)


def test_a_transaction_day_at_30_percent_of_usual_fails_and_is_accepted_with_the_ratio_at_0(root, overlay, failures):
    usual_days(root, rows=100)
    folder = write_transactions(root, [transactions(FILLER_TX[:30])])

    result = build(TransactionDaily(date=DAY))

    assert families(result["failed"]) == ["TransactionDaily"]
    message = only_failure(failures, "TransactionDaily")
    assert message.startswith(f"{folder}: 30 rows, 0.30 x the median 100 rows of the 7 drop(s) of the previous 7 days")
    assert "below [validate] min_volume_ratio = 0.5" in message
    assert not target("features/transactions_daily", DAY).exists()
    assert not target("quarantine/transactions", DAY).exists()  # the day's count is not recorded as history

    overlay.set("validate", "min_volume_ratio", 0)
    assert families(build(TransactionDaily(date=DAY))["completed"]) == ["TransactionDaily"]
    assert target("features/transactions_daily", DAY).read_pandas()["tx_count"].sum() == 30


def test_a_transaction_day_above_max_volume_ratio_fails_naming_it(root, failures):
    usual_days(root, rows=40, days=3)
    write_transactions(root, [transactions(GOOD_TX + FILLER_TX)])

    build(TransactionDaily(date=DAY))

    message = only_failure(failures, "TransactionDaily")
    assert "205 rows, 5.12 x the median 40 rows of the 3 drop(s)" in message
    assert "above [validate] max_volume_ratio = 2" in message


def test_an_empty_day_fails_by_default_and_with_min_volume_ratio_0_is_a_day_without_activity(root, overlay, failures):
    usual_days(root, rows=100, days=6)
    folder = write_transactions(root, [transactions(GOOD_TX).slice(0, 0)])
    windows = TransactionFeatures(date=DAY + dt.timedelta(days=1))  # the 7-day window ending with the empty day

    build(windows)
    assert "no data rows in part-00000.parquet" in only_failure(failures, "TransactionDaily")
    assert not target("features/transactions_daily", DAY).exists()

    overlay.set("validate", "min_volume_ratio", 0)
    result = build(windows)
    assert not result["failed"], failures
    assert len(target("features/transactions_daily", DAY).read_pandas()) == 0
    assert len(target("quarantine/transactions", DAY).read_pandas()) == 0
    features = windows.output().read_pandas().set_index("client_id")
    assert features["tx_count_7d"].sum() == 600 and features["active_days_7d"].max() == 6
    assert json.loads(target("quarantine/transactions", DAY).read_file(QUARANTINE_COUNTS))["rows"] == 0
    assert drop_rows("transactions", DAY) == 0 and str(folder).endswith(f"dt={DAY}")


def test_recorded_counts_are_the_history_before_the_files(root):
    usual_days(root, rows=100, days=2)
    earlier = DAY - dt.timedelta(days=1)
    quarantine = ParquetTarget(config.dataset_path("quarantine/transactions", earlier))
    quarantine.write_pandas(pd.DataFrame({"reason": pd.Series([], dtype=str)}))
    quarantine.write_file(QUARANTINE_COUNTS, b'{"rows": 1000}')
    assert drop_rows("transactions", earlier) == 1000  # an earlier run's count: one small read
    assert drop_rows("transactions", earlier - dt.timedelta(days=1)) == 100  # else the parquet footers
    assert drop_rows("transactions", earlier - dt.timedelta(days=2)) is None  # not delivered
    write_clients(root, clients_csv(*GOOD_CLIENTS, filler=3).replace("\n", "\r\n").encode("utf-8-sig"))
    assert drop_rows("clients", SNAPSHOT) == len(GOOD_CLIENTS) + 3  # else the file's lines


def test_ignored_columns_are_logged_once_per_drop(root, caplog):
    frame = good_frame().assign(merchant="shop", mcc=5411)
    folder = write_transactions(root, [frame, frame])
    source = write_clients(root, "client_id,branch,sex,age,salary\n" + "\n".join(
        f"{1001 + i},Москва,Ж,30,50 000" for i in range(10)) + "\n")

    with caplog.at_level("INFO", logger="luigi-interface"):
        result = build(ClientFeatures(date=SCORE_DATE), TransactionDaily(date=DAY))

    assert families(result["completed"]) == ["ClientFeatures", "TransactionDaily"]
    notes = [r.getMessage() for r in caplog.records if "ignoring column" in r.getMessage()]
    assert sorted(notes) == sorted([f"{folder}: ignoring column(s) not in the contract: mcc, merchant",
                                    f"{source}: ignoring column(s) not in the contract: branch"])


def test_a_snapshot_cut_to_60_percent_fails_naming_the_setting_and_nothing_is_published(sample_root, overlay, failures):
    from tasks import DailyScoring, Publish

    # Default settings: a snapshot's own bound (min_snapshot_ratio 0.9), not the transaction days' 0.5.
    source = sample_root / "raw" / "clients" / f"dt={SNAPSHOT}" / "clients.csv"
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = int((len(lines) - 1) * 0.6)
    source.write_text("".join(lines[:1 + kept]), encoding="utf-8")

    result = build(DailyScoring(date=SCORE_DATE))

    assert "ClientFeatures" in families(result["failed"])
    # The night's three snapshots (the scored one, two for training) run as one batch, which names the bad day.
    message = next(str(exc) for task, exc in failures if task.task_family == "ClientFeatures")
    assert message.startswith("1 of 3 days of ClientFeatures failed, the others are written: ")
    assert f"VolumeError: {source}: {kept} rows, 0.6" in message
    assert "median" in message and "below [validate] min_snapshot_ratio = 0.9" in message
    assert not target("features/clients").exists() and not target("quarantine/clients").exists()
    assert not ParquetTarget(config.dataset_path("predictions", SCORE_DATE)).exists()
    assert not Publish(date=SCORE_DATE).complete()


# --- several pending days in one run (tasks.batching) -------------------------------------------------------------

@pytest.fixture
def runs():
    """The task ids of every run() that starts while the test runs (a batch is one run)."""
    seen = []

    def record(task):
        seen.append(task.task_id)

    luigi.Task.event_handler(luigi.Event.START)(record)
    yield seen
    luigi.Task._event_callbacks[luigi.Task][luigi.Event.START].discard(record)


def written(tasks, data_order: list[str], rejected_order: list[str]) -> dict:
    """Each one-day task's output and quarantined rows (sorted), quarantine counts and manifest fingerprints."""
    out = {}
    for task in tasks:
        data, rejected = task.output(), task.quarantine()
        out[task.date] = {
            "data": data.read_pandas().sort_values(data_order).reset_index(drop=True),
            "rejected": rejected.read_pandas().sort_values(rejected_order).reset_index(drop=True),
            "counts": json.loads(rejected.read_file(QUARANTINE_COUNTS)),
            "fingerprints": (data.manifest()["fingerprint"], rejected.manifest()["fingerprint"]),
        }
    return out


def assert_each_alone_writes(together: dict, tasks, runs, data_order: list[str], rejected_order: list[str]):
    """Rebuild every task on its own (one run each) and compare with what the batch wrote."""
    for task in tasks:
        task.output().remove()
        task.quarantine().remove()
        assert not build(task)["failed"]
    assert len(runs) == 1 + len(tasks)
    alone = written(tasks, data_order, rejected_order)
    for date in together:
        pd.testing.assert_frame_equal(together[date]["data"], alone[date]["data"])
        pd.testing.assert_frame_equal(together[date]["rejected"], alone[date]["rejected"])
        assert together[date]["counts"] == alone[date]["counts"]
        assert together[date]["fingerprints"] == alone[date]["fingerprints"]


def test_pending_days_run_as_one_batch_that_writes_what_each_day_alone_writes(root, runs):
    usual_days(root, rows=200, days=4)
    write_transactions(root, [transactions(GOOD_TX + FILLER_TX), transactions([row[:4] for row in BAD_TX])])
    days = [TransactionDaily(date=DAY - dt.timedelta(days=k)) for k in range(5)]

    result = build(*days)
    assert not result["failed"]
    assert len(runs) == 1 and str(runs[0]).startswith("TransactionDaily"), runs  # one Spark run for the five days
    together = written(days, ["client_id"], ["reason", "ts"])
    assert together[DAY]["counts"]["rows"] == len(GOOD_TX + FILLER_TX + BAD_TX)
    assert sum(together[DAY]["counts"]["rejected"].values()) == len(BAD_TX)
    assert len(together[DAY]["rejected"]) == len(BAD_TX) and len(together[days[1].date]["rejected"]) == 0
    assert_each_alone_writes(together, days, runs, ["client_id"], ["reason", "ts"])


def test_a_bad_day_in_a_batch_fails_alone_and_the_next_run_redoes_only_it(root, overlay, failures, runs):
    usual_days(root, rows=100, days=6)
    write_transactions(root, [transactions(FILLER_TX[:30])])  # 30% of the usual volume
    days = [DAY - dt.timedelta(days=k) for k in range(3)]

    result = build(*(TransactionDaily(date=day) for day in days))
    message = only_failure(failures, "TransactionDaily")
    assert message.startswith("1 of 3 days of TransactionDaily failed, the others are written: VolumeError: ")
    assert f"dt={DAY}" in message and len(runs) == 1
    assert {TransactionDaily(date=day) for day in days} <= result["failed"]  # Luigi fails a batch's every day
    assert not target("features/transactions_daily", DAY).exists()
    assert not target("quarantine/transactions", DAY).exists()
    assert all(target(kind, day).exists() for day in days[1:]
               for kind in ("features/transactions_daily", "quarantine/transactions"))

    overlay.set("validate", "min_volume_ratio", 0)
    result = build(*(TransactionDaily(date=day) for day in days))
    assert not result["failed"] and runs[1:] == [TransactionDaily(date=DAY).task_id]
    assert len(target("features/transactions_daily", DAY).read_pandas()) == 1


@pytest.mark.parametrize("clean_at_once_bytes", [300 * 1024 ** 2, 1], ids=["one job", "a job per snapshot"])
def test_client_snapshots_run_as_one_batch_that_writes_what_each_day_alone_writes(root, runs, monkeypatch,
                                                                                 clean_at_once_bytes):
    from tasks import features

    monkeypatch.setattr(features, "CLEAN_AT_ONCE_BYTES", clean_at_once_bytes)  # big snapshots: one at a time
    write_clients(root, clients_csv(*GOOD_CLIENTS, *(line for line, _ in BAD_CLIENTS), filler=200))
    earlier = SNAPSHOT - dt.timedelta(days=1)
    write_clients(root, clients_csv(*GOOD_CLIENTS, filler=195), day=earlier)  # the same clients: no duplicates
    snapshots = [ClientFeatures(date=SCORE_DATE), ClientFeatures(date=SCORE_DATE - dt.timedelta(days=1))]

    result = build(*snapshots)
    assert not result["failed"]
    assert len(runs) == 1 and str(runs[0]).startswith("ClientFeatures"), runs  # one Spark run for both snapshots
    together = written(snapshots, ["client_id"], ["client_id", "salary"])
    earlier = together[snapshots[1].date]
    assert together[SCORE_DATE]["counts"]["rejected"]["client_id: duplicate"] == 2  # 1011 twice in its own day
    assert earlier["counts"]["rows"] == 201 and earlier["counts"]["rejected"] == {}
    assert len(earlier["data"]) == 201
    assert_each_alone_writes(together, snapshots, runs, ["client_id"], ["client_id", "salary"])


# --- who reads a snapshot: the Python workers (plain CSV) or Spark's reader ---------------------------------------

def clean_both_ways(root, source: str):
    """The snapshot's valid and rejected rows as the workers and as Spark's reader clean it, and whether the
    workers took it: {"workers": (valid, rejected) or None, "spark": (valid, rejected)}."""
    from tasks.features import clean_on_workers, clean_with_spark, read_csv_header
    from tasks.spark import session

    cfg = config.raw()
    snapshots = {SCORE_DATE: (source, read_csv_header(source, cfg.encoding))}
    out = {}
    for way, clean in (("workers", clean_on_workers), ("spark", clean_with_spark)):
        folders = [str(root / way / kind) for kind in ("rejected", "valid")]
        totals = clean(session(), snapshots, cfg, *folders)
        tables = [pq.read_table(f"{folder}/batch_day={SCORE_DATE}") if totals else None for folder in folders]
        out[way] = (totals, *tables) if totals else None
    return out


def test_a_plain_snapshot_is_cleaned_by_the_python_workers_as_spark_cleans_it(root):
    lines = [*GOOD_CLIENTS, *(line for line, reason in BAD_CLIENTS if reason != "row: wrong number of fields"),
             '1020,Ж,30,"45,000"', "1021,,,", "+1022,М,40,50 000", "1022,М,40,50 000", " 1023 , М , 40 , 50 000 "]
    source = write_clients(root, clients_csv(*lines, filler=100))

    ways = clean_both_ways(root, str(source))
    assert ways["workers"] is not None, "a plain UTF-8 snapshot is read by the workers"
    (totals, rejected, valid), (spark_totals, spark_rejected, spark_valid) = ways["workers"], ways["spark"]
    assert totals == spark_totals == {SCORE_DATE: len(lines) + 100}
    assert valid.schema.remove_metadata() == spark_valid.schema.remove_metadata()
    assert rejected.schema.remove_metadata() == spark_rejected.schema.remove_metadata()
    for ours, spark in ((valid, spark_valid), (rejected, spark_rejected)):
        order = ["client_id", "reason"] if "reason" in ours.column_names else ["client_id"]
        pd.testing.assert_frame_equal(ours.to_pandas().sort_values(order, ignore_index=True),
                                      spark.to_pandas().sort_values(order, ignore_index=True))
    reasons = dict(zip(rejected["client_id"].to_pylist(), rejected["reason"].to_pylist()))
    assert reasons["+1022"] == reasons["1022"] == "client_id: duplicate" and reasons["1021"] == "sex: missing"
    assert {1020, *(client_id for client_id, *_ in GOOD_CLIENTS.values())} <= set(valid["client_id"].to_pylist())
    assert len(valid) + len(rejected) == len(lines) + 100


@pytest.mark.parametrize("line", [
    "1012,М,44,1,2 млн р/год",          # a field too many
    '1030,М,44,"45 000\\" р/мес"',       # an escaped quote
    '1031,М,44,"45 ""000"""',            # doubled quotes
    '1032,М,44,45 "000"',               # a quote inside a field
    "1033,М,44,\ufffd45 000",           # U+FFFD, which Spark reports as undecodable
])
def test_a_snapshot_that_is_not_plain_csv_is_left_to_spark(root, line):
    source = write_clients(root, clients_csv(*GOOD_CLIENTS, line, filler=10))
    ways = clean_both_ways(root, str(source))
    assert ways["workers"] is None
    assert ways["spark"][0] == {SCORE_DATE: len(GOOD_CLIENTS) + 11}


@pytest.mark.parametrize("worker_join_rows", [1_000_000, 300])  # the sample's clients joined at once; in ranges
def test_the_feature_table_a_worker_joins_is_the_table_spark_joins(sample_root, tmp_path, monkeypatch,
                                                                   worker_join_rows):
    from tasks import features
    from tasks.features import join_with_spark, transaction_feature_names
    from tasks.spark import session

    monkeypatch.setattr(features, "WORKER_JOIN_ROWS", worker_join_rows)
    task = FeatureTable(date=SCORE_DATE)
    assert not build(task)["failed"]
    clients, transactions = task.input()["clients"], task.input()["transactions"]
    join_with_spark(session(), clients.uri, transactions.uri).write.parquet(str(tmp_path / "spark"))

    ours, spark = pq.read_table(task.output().uri), pq.read_table(tmp_path / "spark")
    assert ours.schema.remove_metadata() == spark.schema.remove_metadata()
    pd.testing.assert_frame_equal(ours.to_pandas().sort_values("client_id", ignore_index=True),
                                  spark.to_pandas().sort_values("client_id", ignore_index=True))
    assert len(ours) == len(clients.read_pandas())  # every valid client, once
    assert (len(fs.data_files(task.output().uri)) > 1) == (worker_join_rows < len(ours))
    without = ~ours.to_pandas()["client_id"].isin(transactions.read_pandas()["client_id"])
    assert without.any() and (ours.to_pandas().loc[without, transaction_feature_names()] == 0.0).all().all()


@pytest.mark.parametrize("window_part_rows", [4_000_000, 3_000])  # the sample's days summed by one worker; by several
def test_the_transaction_features_the_workers_sum_are_the_features_spark_sums(sample_root, tmp_path, monkeypatch,
                                                                              window_part_rows):
    from tasks import features
    from tasks.features import feature_windows, window_features
    from tasks.spark import session

    monkeypatch.setattr(features, "WINDOW_PART_ROWS", window_part_rows)
    task = TransactionFeatures(date=SCORE_DATE)
    assert not build(task)["failed"]
    days = task.input()
    daily = session().read.parquet(*[day.spark_path for day in days])
    window_features(daily, SCORE_DATE, feature_windows()).write.parquet(str(tmp_path / "spark"))

    ours, spark = pq.read_table(task.output().uri), pq.read_table(tmp_path / "spark")
    several_ranges = window_part_rows < sum(parquet_rows(day.uri) for day in days)
    assert (len(fs.data_files(task.output().uri)) > 1) == several_ranges
    assert ours.schema.remove_metadata() == spark.schema.remove_metadata()
    pd.testing.assert_frame_equal(ours.to_pandas().sort_values("client_id", ignore_index=True),
                                  spark.to_pandas().sort_values("client_id", ignore_index=True), rtol=1e-12)
    # TransactionDaily writes each day in client order, so that a worker reads only its range of clients.
    for day in days:
        ids = day.read_pandas()["client_id"]
        assert ids.is_monotonic_increasing and ids.is_unique
