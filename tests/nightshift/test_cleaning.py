"""Tests of the cleaning stage: the salary grammar, sex, age and clean_clients."""
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nightshift.errors import SchemaError

from nightshift.cleaning import (
    CLIENT_COLUMNS,
    SALARY_REASONS,
    AgeError,
    SalaryError,
    SexError,
    clean_clients,
    parse_age,
    parse_salary,
    parse_sex,
)

# The documented conversions, written out independently of the module.
PER_MONTH = {
    "мес": 1, "мес.": 1, "месяц": 1,
    "год": Fraction(1, 12),
    "нед": Fraction("365.25") / 12 / 7, "нед.": Fraction("365.25") / 12 / 7, "неделю": Fraction("365.25") / 12 / 7,
    "день": Fraction("365.25") / 12,
    "час": 168,
    "сек": 168 * 3600, "сек.": 168 * 3600, "секунду": 168 * 3600,
}
MULTIPLIERS = {"к": 1000, "k": 1000, "тыс": 1000, "тыс.": 1000, "т.р.": 1000, "тр": 1000, "млн": 10**6, "млн.": 10**6}
CURRENCIES = ["р", "р.", "руб", "руб.", "рублей", "рубля", "₽", "rub"]
SPACES = [" ", "\u00a0", "\u202f", "\u2009"]  # space, no-break, narrow no-break, thin
BOUNDS = dict(salary_min=1000.0, salary_max=10_000_000.0, age_min=18, age_max=100)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("45 000 р/мес", 45_000),
        ("15000 руб/мес", 15_000),
        ("1,2 млн р/год", 100_000),
        ("300 к/сек", 300_000 * 168 * 3600),
        ("55 000", 55_000),
        ("45 тыс. руб/мес", 45_000),
        ("45 тыс руб в месяц", 45_000),
        ("45к", 45_000),
        ("45 k", 45_000),
        ("45.000 руб", 45_000),
        ("45,000", 45_000),
        ("45\u00a0000 р", 45_000),
        ("45\u202f000 р", 45_000),
        ("45\u2009000 р", 45_000),
        ("45 000 ₽", 45_000),
        ("45000₽/мес", 45_000),
        ("45 000 РУБ/МЕС", 45_000),
        ("45 000 Rub", 45_000),
        ("  45 000   рублей   в месяц ", 45_000),
        ("45 000 рубля в мес", 45_000),
        ("45 000 р. / месяц", 45_000),
        ("12 т.р.", 12_000),
        ("12тр/мес", 12_000),
        ("12 т. р.", 12_000),
        ("1.5 млн", 1_500_000),
        ("1,5 млн. руб. в год", 125_000),
        ("1.500 тыс", 1_500),  # a multiplier makes a single separator decimal
        ("1 500 тыс", 1_500_000),
        ("1 234 567", 1_234_567),
        ("1.234.567", 1_234_567),
        ("1 234,50 руб", 1_234.5),
        ("1.234,5", 1_234.5),
        ("1,234.5", 1_234.5),
        ("45000.50", 45_000.5),
        ("0,500", 0.5),  # a leading 0 is never a thousands group
        ("1200 руб/нед", 1200 * 365.25 / 12 / 7),
        ("1000 в неделю", 1000 * 365.25 / 12 / 7),
        ("2000 р/день", 2000 * 365.25 / 12),
        ("2000 в день", 2000 * 365.25 / 12),
        ("500/час", 500 * 168),
        ("500 руб в час", 500 * 168),
        ("1 р в секунду", 168 * 3600),
        ("600 000 в год", 50_000),
    ],
)
def test_parse_salary_reads_each_documented_form(text, expected):
    assert parse_salary(text) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("text", [None, "", "   ", "\u00a0\t"])
def test_parse_salary_blank_is_unknown_not_an_error(text):
    assert parse_salary(text) is None


@pytest.mark.parametrize(
    "text, reason",
    [
        ("по договорённости", "unparseable"),
        ("около 50000", "unparseable"),
        ("₽ 45000", "unparseable"),
        ("-5000", "negative"),
        ("− 5 000 руб", "negative"),
        ("1.2.3", "bad number"),
        ("45 00", "bad number"),
        ("1234 567", "bad number"),
        ("1.234,567.8", "bad number"),
        ("9" * 400, "bad number"),
        ("45000 usdt", "unknown unit"),
        ("45 тыс долларов", "foreign currency (USD)"),
        ("12 тр руб", "unknown unit"),
        ("40-50 тыс", "unknown unit"),
        ("45000 р/мес примерно", "unknown unit"),
        ("45000 р/квартал", "unknown period"),
        ("45000 в полгода", "unknown period"),
        ("45000 р/", "unknown period"),
    ],
)
def test_parse_salary_rejects_with_a_fixed_reason(text, reason):
    with pytest.raises(SalaryError) as caught:
        parse_salary(text)
    assert str(caught.value) == reason == caught.value.reason
    assert caught.value.text == text
    assert reason in SALARY_REASONS
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "text, code",
    [
        ("1500 USD", "USD"), ("1500usd", "USD"), ("$2000", "USD"), ("$ 2 000", "USD"), ("2000$", "USD"),
        ("US$ 1500", "USD"), ("2000 долл", "USD"), ("2 000 долл.", "USD"), ("3 тыс долларов", "USD"),
        ("1500 usd в месяц", "USD"), ("2000 $/мес", "USD"),
        ("€1800", "EUR"), ("1800 евро", "EUR"), ("1800 EUR/мес", "EUR"), ("1,5 тыс. €", "EUR"),
        ("£900", "GBP"), ("10000 юаней", "CNY"), ("300 000 тенге", "KZT"), ("5000 грн", "UAH"),
    ],
)
def test_parse_salary_names_a_foreign_currency_and_never_converts_it(text, code):
    with pytest.raises(SalaryError) as caught:
        parse_salary(text)
    assert caught.value.reason == f"foreign currency ({code})"
    assert caught.value.reason in SALARY_REASONS


def test_clean_clients_quarantines_foreign_salaries_with_their_currency():
    raw = pd.DataFrame({"client_id": ["1", "2", "3", "4"], "sex": ["М", "Ж", "М", "Ж"], "age": ["30", "31", "32", "33"],
                        "salary": ["1500 USD", "€1800", "2000 долл", "45 000 р/мес"]})
    cleaned = clean_clients(raw, **BOUNDS)
    assert cleaned.reason.tolist() == ["salary: foreign currency (USD)", "salary: foreign currency (EUR)",
                                       "salary: foreign currency (USD)", None]
    assert cleaned.salary_rub_month.iloc[:3].isna().all() and cleaned.raw_salary.iloc[0] == "1500 USD"


def _mixed_case(draw, text: str) -> str:
    return "".join(c.upper() if draw(st.booleans()) else c for c in text)


def _grouped(whole: int, separator: str) -> str:
    return f"{whole:,}".replace(",", separator)


@st.composite
def salary_texts(draw) -> tuple[str, Fraction]:
    """A salary written in any way the grammar allows, and its value in roubles per month."""
    multiplier = draw(st.sampled_from([None, *MULTIPLIERS]))
    if multiplier is None:
        whole = draw(st.integers(0, 10**9))
        decimals = draw(st.sampled_from([0, 0, 1, 2]))  # integer roubles, sometimes kopecks
    else:
        whole = draw(st.integers(0, 99_999))
        decimals = draw(st.integers(0, 2))
    fraction = draw(st.text("0123456789", min_size=decimals, max_size=decimals))
    decimal_point = draw(st.sampled_from([".", ","]))
    # A lone "." or "," before three digits reads as thousands without a multiplier and as a
    # decimal point with one; keep punctuation grouping to the forms where it is unambiguous.
    group_separators = ["", *SPACES]
    if decimals or multiplier is None:
        group_separators += [p for p in ".," if p != decimal_point or not decimals]
    number = _grouped(whole, draw(st.sampled_from(group_separators)))
    if decimals:
        number += decimal_point + fraction
    value = Fraction(f"{whole}.{fraction}" if decimals else whole)

    space = st.sampled_from([" ", "  ", "\t", *SPACES])
    maybe_space = st.one_of(st.just(""), space)
    text = draw(maybe_space) + number
    if multiplier is not None:
        text += draw(maybe_space) + multiplier
        value *= MULTIPLIERS[multiplier]
    if multiplier not in ("т.р.", "тр") and draw(st.booleans()):
        text += draw(maybe_space) + draw(st.sampled_from(CURRENCIES))
    if draw(st.booleans()):
        period = draw(st.sampled_from(sorted(PER_MONTH)))
        if draw(st.booleans()):
            text += draw(maybe_space) + "/" + draw(maybe_space) + period
        else:
            text += draw(space) + "в" + draw(space) + period
        value *= PER_MONTH[period]
    text += draw(maybe_space)
    return _mixed_case(draw, text), value


@settings(max_examples=500, deadline=None)
@given(salary_texts())
def test_parse_salary_reads_back_any_formatting(case):
    text, value = case
    assert parse_salary(text) == pytest.approx(float(value), rel=1e-12)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789 .,-/вкkрубтысмлн₽ecд\u00a0")) | st.characters()))
def test_parse_salary_fails_only_with_salary_error(text):
    try:
        value = parse_salary(text)
    except SalaryError as exc:
        assert exc.reason in SALARY_REASONS
    else:
        assert value is None or value >= 0


@pytest.mark.parametrize(
    "text, expected",
    [
        ("М", 1), ("Ж", 0), ("м", 1), ("ж", 0),  # Cyrillic
        ("M", 1), ("F", 0), ("m", 1), ("f", 0),  # Latin
        ("муж", 1), ("жен", 0), ("Мужской", 1), ("ЖЕНСКИЙ", 0),
        ("male", 1), ("Female", 0), (" М ", 1), ("\u00a0ж\t", 0),
    ],
)
def test_parse_sex_accepts_known_spellings(text, expected):
    assert parse_sex(text) == expected


@pytest.mark.parametrize(
    "text, reason",
    [(None, "missing"), ("", "missing"), ("  ", "missing"), ("X", "unrecognised"), ("мж", "unrecognised"),
     ("1", "unrecognised"), ("м.", "unrecognised"), ("мужчина", "unrecognised")],
)
def test_parse_sex_rejects_the_rest(text, reason):
    with pytest.raises(SexError, match=f"^{reason}$"):
        parse_sex(text)


@pytest.mark.parametrize(
    "text, expected", [("35", 35), (" 35 ", 35), ("35.0", 35), ("35,0", 35), ("18", 18), ("100", 100), ("+40", 40)]
)
def test_parse_age_accepts_whole_numbers_in_bounds(text, expected):
    assert parse_age(text) == expected


@pytest.mark.parametrize(
    "text, reason",
    [(None, "missing"), ("", "missing"), (" ", "missing"), ("35.5", "not an integer"), ("abc", "not an integer"),
     ("35 лет", "not an integer"), ("3 5", "not an integer"), ("17", "out of bounds"), ("101", "out of bounds"),
     ("-5", "out of bounds"), ("٣٥", "not an integer")],
)
def test_parse_age_rejects_the_rest(text, reason):
    with pytest.raises(AgeError, match=f"^{reason}$"):
        parse_age(text)


def test_parse_age_uses_the_given_bounds():
    assert parse_age("16", low=16, high=20) == 16
    with pytest.raises(AgeError, match="out of bounds"):
        parse_age("21", low=16, high=20)


def _raw(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(CLIENT_COLUMNS), dtype=object)


def test_clean_clients_types_valid_rows_and_explains_rejected_ones():
    raw = _raw(
        [
            ("1", "М", "35", "45 000 р/мес"),
            (" 2 ", "f", "40.0", None),  # unknown salary is valid
            ("3", "ж", "50", ""),
            ("12a", "М", "35", "45000"),
            (None, "М", "35", "45000"),
            ("-5", "М", "35", "45000"),
            ("1.5", "М", "35", "45000"),
            ("4", "?", "35", "45000"),
            ("5", None, "35", "45000"),
            ("6", "М", "35.5", "45000"),
            ("7", "М", "17", "45000"),
            ("8", "М", "35", "300 к/сек"),
            ("9", "М", "35", "500 р"),
            ("10", "М", "35", "по договорённости"),
            ("11", "М", "35", "-5000"),
            ("x", "?", "abc", "по договорённости"),  # the first failing column is reported
        ]
    )
    out = clean_clients(raw, **BOUNDS)

    assert list(out.columns) == [
        "client_id", "is_male", "age", "salary_rub_month", "reason",
        "raw_client_id", "raw_sex", "raw_age", "raw_salary",
    ]
    assert out.dtypes.astype(str).tolist() == [
        "Int64", "Int64", "Int64", "float64", "object", "object", "object", "object", "object",
    ]
    assert out["reason"].tolist() == [
        None, None, None,
        "client_id: not an integer", "client_id: missing", "client_id: not positive", "client_id: not an integer",
        "sex: unrecognised", "sex: missing",
        "age: not an integer", "age: out of bounds",
        "salary: out of bounds", "salary: out of bounds", "salary: unparseable", "salary: negative",
        "client_id: not an integer",
    ]
    valid = out.iloc[:3]
    assert valid["client_id"].tolist() == [1, 2, 3]
    assert valid["is_male"].tolist() == [1, 0, 0]
    assert valid["age"].tolist() == [35, 40, 50]
    assert valid["salary_rub_month"].iloc[0] == 45_000.0
    assert valid["salary_rub_month"].iloc[1:].isna().all()
    # A rejected value is NA, whatever the other columns of its row.
    assert out["client_id"].iloc[3:7].isna().all() and out["client_id"].iloc[7] == 4
    assert out["is_male"].iloc[7:9].isna().all() and out["is_male"].iloc[9] == 1
    assert out["age"].iloc[9:11].isna().all()
    assert out["salary_rub_month"].iloc[11:].isna().all()
    # The raw values are kept exactly as they came, None where missing.
    for name in CLIENT_COLUMNS:
        assert out[f"raw_{name}"].tolist() == raw[name].tolist()
    assert out["raw_client_id"].iloc[4] is None and out["raw_salary"].iloc[1] is None


def test_clean_clients_keeps_order_and_index_and_reads_nan_as_missing():
    raw = pd.DataFrame(
        {"client_id": ["30", "10", np.nan], "sex": ["М", np.nan, "Ж"], "age": ["40", "30", "20"],
         "salary": [np.nan, "20 000", "30 000"]},
        index=[7, 3, 5],
    )
    out = clean_clients(raw, **BOUNDS)
    assert out.index.tolist() == [7, 3, 5]
    assert out["client_id"].tolist() == [30, 10, pd.NA]
    assert out["reason"].tolist() == [None, "sex: missing", "client_id: missing"]
    assert out["raw_salary"].tolist() == [None, "20 000", "30 000"]
    assert out["raw_sex"].iloc[1] is None


def test_clean_clients_applies_the_bounds_inclusively():
    raw = _raw([("1", "М", "18", "1000"), ("2", "М", "100", "10 млн"), ("3", "М", "35", "999,99"),
                ("4", "М", "35", "10 000 001")])
    out = clean_clients(raw, **BOUNDS)
    assert out["reason"].tolist() == [None, None, "salary: out of bounds", "salary: out of bounds"]
    out = clean_clients(raw, salary_min=0, salary_max=1e9, age_min=20, age_max=99)
    assert out["reason"].tolist() == ["age: out of bounds", "age: out of bounds", None, None]


def test_clean_clients_client_id_edge_cases():
    ids = ["007", "0", "9223372036854775807", "9223372036854775808", "1" * 25, "1 000", "١٢٣"]
    out = clean_clients(_raw([(i, "М", "35", "") for i in ids]), **BOUNDS)
    assert out["client_id"].tolist() == [7, pd.NA, 9223372036854775807, pd.NA, pd.NA, pd.NA, pd.NA]
    assert out["reason"].tolist() == [
        None, "client_id: not positive", None, "client_id: out of range", "client_id: out of range",
        "client_id: not an integer", "client_id: not an integer",
    ]


@pytest.mark.parametrize(
    "ids, expected, reasons",
    [
        (["1", "42", "007"], [1, 42, 7], [None, None, None]),
        (["1", "0", "000"], [1, pd.NA, pd.NA], [None, "client_id: not positive", "client_id: not positive"]),
        (["1", "99999999999999999999"], [1, pd.NA], [None, "client_id: out of range"]),
        (["1", ""], [1, pd.NA], [None, "client_id: missing"]),
    ],
)
def test_clean_clients_batches_of_plain_digit_ids(ids, expected, reasons):
    out = clean_clients(_raw([(i, "М", "35", "") for i in ids]), **BOUNDS)
    assert out["client_id"].tolist() == expected
    assert out["reason"].tolist() == reasons


def test_clean_clients_on_an_empty_batch_has_the_same_schema():
    out = clean_clients(_raw([]), **BOUNDS)
    assert len(out) == 0
    assert out.dtypes.astype(str).tolist()[:5] == ["Int64", "Int64", "Int64", "float64", "object"]


def test_clean_clients_names_a_missing_column():
    raw = _raw([("1", "М", "35", "")]).drop(columns="salary")
    with pytest.raises(SchemaError, match="salary"):
        clean_clients(raw, **BOUNDS)


@pytest.mark.parametrize("column", CLIENT_COLUMNS)
def test_clean_clients_refuses_values_that_are_not_strings(column):
    raw = _raw([("1", "М", "35", "45000")])
    raw[column] = [1]
    with pytest.raises(TypeError, match=column):
        clean_clients(raw, **BOUNDS)


salary_or_blank = st.one_of(
    st.none(), st.just(""), salary_texts().map(lambda case: case[0]), st.sampled_from(["abc", "-1", "300 к/сек"])
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["1", "x", None]), st.sampled_from(["М", "f", "?", None]),
                          st.sampled_from(["35", "35.5", "5", None]), salary_or_blank), max_size=30))
def test_clean_clients_agrees_with_the_scalar_parsers_row_by_row(rows):
    out = clean_clients(_raw(rows), **BOUNDS)
    for (_, sex, age, salary), (_, row) in zip(rows, out.iterrows()):
        try:
            expected_salary = parse_salary(salary)
        except SalaryError:
            expected_salary = None
        if expected_salary is not None and not 1000 <= expected_salary <= 10_000_000:
            expected_salary = None
        if expected_salary is None:
            assert np.isnan(row["salary_rub_month"])
        else:
            assert row["salary_rub_month"] == expected_salary
        try:
            assert row["is_male"] == parse_sex(sex)
        except SexError:
            assert row["is_male"] is pd.NA
        try:
            assert row["age"] == parse_age(age)
        except AgeError:
            assert row["age"] is pd.NA


def test_utf8_misread_spots_utf8_text_decoded_as_a_single_byte_encoding():
    from nightshift.cleaning import misread_reason, utf8_misread

    # "Рњ" is what the UTF-8 bytes of "М" look like in cp1251; "М" itself is plain cp1251 text.
    assert utf8_misread("Рњ", "cp1251") and utf8_misread("45 000 СЂ/РјРµСЃ", "cp1251")
    assert not utf8_misread("М", "cp1251") and not utf8_misread("45000", "cp1251")
    assert not any(utf8_misread("Рњ", encoding) for encoding in ("utf-8", "UTF8", "utf-8-sig", "utf_8"))
    assert misread_reason("cp1251") == "encoding: utf-8 text read as cp1251"


def test_parse_values_gives_each_text_its_value_or_its_reason():
    from nightshift.cleaning import parse_values

    bounds = dict(salary_min=1000.0, salary_max=1e6, age_min=18, age_max=99)
    assert parse_values("salary", ["45к", "300 к/сек", "", None, "по договорённости"], **bounds) == (
        [45_000.0, None, None, None, None],
        [None, "salary: out of bounds", None, None, "salary: unparseable"])
    assert parse_values("client_id", [" +7", "0", "-3", "1e3", None, "99999999999999999999"], **bounds) == (
        [7, None, None, None, None, None],
        [None, "client_id: not positive", "client_id: not positive", "client_id: not an integer",
         "client_id: missing", "client_id: out of range"])
    assert parse_values("age", ["35.0", "100", None], **bounds) == (
        [35, None, None], [None, "age: out of bounds", "age: missing"])
    with pytest.raises(TypeError, match="must hold strings"):
        parse_values("sex", [1], **bounds)


def test_the_sample_data_bad_rows_are_exactly_what_the_parsers_reject_and_stay_under_the_gate(tmp_path):
    """At demo scale (20k clients, seed 7): a realistic share of bad rows, duplicates included, below 1 %."""
    import datetime as dt

    import pyarrow.parquet as pq

    import nightshift.sample as generator

    day = dt.date(2026, 2, 28)
    stats = generator.generate(str(tmp_path), day, days=1, clients=20_000, seed=7)

    raw = pd.read_csv(tmp_path / f"raw/clients/dt={day}/clients.csv", dtype=str, keep_default_na=False)
    cleaned = clean_clients(raw, **BOUNDS)
    duplicate = cleaned.client_id.notna() & cleaned.client_id.duplicated(keep=False)
    rejected = cleaned.reason.notna() | duplicate
    assert rejected.sum() == stats["bad_rows"] > 0  # every row meant to be good parses; every bad one is caught
    assert duplicate.sum() >= 2 and rejected.mean() < 0.01

    tx = pq.read_table(tmp_path / f"raw/transactions/dt={day}").to_pandas()
    start = pd.Timestamp(day)
    bad = tx.client_id.isna() | (tx.ts < start) | (tx.ts >= start + pd.Timedelta(days=1)) | ~np.isfinite(tx.amount)
    assert 0 < bad.sum() and bad.mean() < 0.01
    assert (tx.amount < 0).sum() > 0  # refunds are there, and are not bad rows


def test_labels_accept_zero_and_one_in_any_spelling():
    from nightshift.cleaning import parse_labels

    frame = pd.DataFrame({"client_id": ["101", " 102 ", "+103", "104"], "defaulted": ["1", "1.0", " 0 ", "0.00"]})
    got = parse_labels(frame, "raw/labels/dt=2026-01-01/labels.csv")
    assert got["client_id"].tolist() == [101, 102, 103, 104] and got["defaulted"].tolist() == [1, 1, 0, 0]
    assert str(got["client_id"].dtype) == "int64" and str(got["defaulted"].dtype) == "int64"


def test_bad_labels_fail_in_one_line_naming_file_count_and_three_examples():
    from nightshift.cleaning import parse_labels
    from nightshift.errors import SchemaError

    frame = pd.DataFrame({"client_id": ["1", "x2", "3", "4", "5", "6"],
                          "defaulted": ["2", "0", "yes", "", "0.5", "1"]})
    with pytest.raises(SchemaError) as raised:
        parse_labels(frame, "labels.csv")
    message = str(raised.value)
    assert "\n" not in message and message.startswith("labels.csv: 5 of 6 row(s)")
    assert "defaulted='2'" in message and "client_id='x2'" in message and "defaulted='yes'" in message
    assert "0.5" not in message, "three examples at most"
    with pytest.raises(SchemaError, match="missing column"):
        parse_labels(pd.DataFrame({"client_id": ["1"], "default": ["1"]}), "labels.csv")
    with pytest.raises(SchemaError, match="labelled more than once"):
        parse_labels(pd.DataFrame({"client_id": ["1", "1"], "defaulted": ["1", "0"]}), "labels.csv")
    with pytest.raises(SchemaError, match="no label rows"):
        parse_labels(pd.DataFrame({"client_id": [], "defaulted": []}), "labels.csv")


def test_read_plain_csv_reads_quoted_and_empty_fields_as_spark_does():
    from nightshift.cleaning import read_plain_csv

    data = 'client_id,sex,age,salary,branch\n1,М,30,"1,2 млн р/год",x\n2,,31, 45 000 ,y\n\n3,Ж,32,,z'.encode()
    table = read_plain_csv(data, ["client_id", "sex", "age", "salary", "branch"])
    assert table.column_names == list(CLIENT_COLUMNS)  # columns outside the contract are not read
    assert table.to_pylist() == [
        {"client_id": "1", "sex": "М", "age": "30", "salary": "1,2 млн р/год"},
        {"client_id": "2", "sex": None, "age": "31", "salary": " 45 000 "},  # empty is missing; spaces are kept
        {"client_id": "3", "sex": "Ж", "age": "32", "salary": None},
    ]


@pytest.mark.parametrize("data", [
    b"client_id,sex,age,salary\r\n1,M,30,45000\r\n",          # carriage returns
    b"client_id,sex,age,salary\n1,M,30,45000\n2,M,30\n",      # a field missing
    b'client_id,sex,age,salary\n1,M,30,"45\n000"\n',          # a quoted line break
    b'client_id,sex,age,salary\n1,M,30,"45 000\n',            # a quote never closed
    b'client_id,sex,age,salary\n1,M,30,"45"000\n',            # text after a closing quote
    "client_id,sex,age,salary\n1,М,30,45000\n".encode("cp1251"),  # not UTF-8
])
def test_read_plain_csv_leaves_what_only_sparks_reader_decides(data):
    from nightshift.cleaning import read_plain_csv

    assert read_plain_csv(data, list(CLIENT_COLUMNS)) is None
