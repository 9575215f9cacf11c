"""Sample data: writes realistic, seeded raw drops (clients, transactions, labels) and the truth behind them.

Usage (bin/make-sample-data, nightshift-sample-data and python -m nightshift.sample are the same command):
    bin/make-sample-data --root DIR --end YYYY-MM-DD --days N --clients N [--seed S] [--drift X]
        [--concept-drift-from YYYY-MM-DD] [--label-lag DAYS] [--bad-rate R] [--encoding utf-8|cp1251]
        [--tx-per-client-day R] [--timezone ZONE]

For each day d in end-N+1..end it writes, each partition folder with `_SUCCESS` last:

    raw/clients/dt=d/clients.csv                client_id,sex,age,salary (salary as the branch typed it)
    raw/transactions/dt=d/part-00000.parquet    client_id int64, ts timestamp[us], amount double, category string
    raw/labels/dt=S/labels.csv                  client_id,defaulted for the clients of snapshot S-1,
                                                only where S + label_lag <= end
    truth/dt=S/truth.parquet                    client_id int64, p_default double, for S in end-N+2..end+1

The true model
--------------
A client scored on date S (snapshot S-1, transactions of the 30 days S-30..S-1
that exist) defaults with probability p_default = sigmoid(logit), where

    logit = INTERCEPT
          + B_LOG_SALARY     * log(salary / SALARY_MEDIAN)       salary: true roubles per month
          + B_YOUNG          * max(0, YOUNG_AGE - age) / 10      per decade younger than YOUNG_AGE
          + B_MALE           * [sex is male]
          + B_SALARY_MISSING * [salary left empty in the snapshot]
          + B_LOG_TX         * log(1 + transactions)
          + B_SPEND_RATIO    * min(spend / salary, SPEND_RATIO_CAP)
          + B_LOG_REFUNDS    * log(1 + refunds)
          + B_RISKY_SHARE    * (gambling + cash_withdrawal spend) / spend

The behaviour terms are sums over the clean transactions actually written for
days S-30..S-1 (fewer days near the start of the range, exactly like a 30-day
window the pipeline computes): `transactions` counts every row, `spend` sums
the positive amounts, `refunds` counts the negative ones, and the risky share
is 0 for a client without spend. Deliberately bad transaction rows (null
client_id, ts outside its day, NaN/inf amount) are extra rows that do not
enter the truth. `salary` is the value the snapshot's text encodes (the
generator rounds the salary the way the branch types it, so a correct parser
recovers it exactly); a client with an empty salary still has a true salary.
The intercept gives a base default rate of about 6-7 % with the defaults.

Labels: defaulted ~ Bernoulli(p_default), drawn with the seed. Every distinct
client_id of snapshot S-1 is labelled and has a truth row, including clients
whose snapshot row is deliberately bad: the outcome happens whatever the CRM
says; the pipeline labels only the rows it could score.

--drift X changes only the last day (snapshot and transactions of `end`, so
the truth of end+1): true salaries are scaled by exp(-X) (and re-typed in the
client's usual format), ages move DRIFT_AGE_YEARS * X years younger, and the
gambling and cash_withdrawal shares of that day's transactions grow by exp(X).
Every other file is byte-identical to the run without drift.

--concept-drift-from D changes the relation, not the population: for every
scoring date S >= D (truth/dt=S and raw/labels/dt=S, i.e. snapshots from D-1
on) p_default uses CONCEPT_DRIFT_MODEL instead of TRUE_MODEL. Salary turns
from protective to risky (the well-paid are the leveraged borrowers a rate
shock hits), gambling and cash withdrawals stop signalling distress, and the
intercept is re-set so the base rate stays about where it was: the score
distribution and the default rate look unchanged, only the ranking is wrong.
A model trained on earlier labels loses well over 0.1 of realized AUC on the
labels from D on. Clients and transactions are byte-identical to the run
without it, and so are truth and labels before D.

Snapshot quirks (valid rows): `sex` is М/Ж, a few percent M/F; `salary` is
one of SALARY_FORMATS (thousands separated by a space or a no-break space
U+00A0 where the format has a separator), or empty (about 3 %). Bad rows (share
--bad-rate of each snapshot, duplicates included, same clients from day to
day) are listed in BAD_CLIENT_VALUES, plus duplicated client_id rows.
"""
import argparse
import datetime as dt
import os
import sys
import time
import zoneinfo
from collections import deque
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# --- the true model ---------------------------------------------------------
SALARY_MEDIAN = 55_000.0      # roubles per month
INTERCEPT = -3.35
B_LOG_SALARY = -0.80          # a poorer client is riskier
YOUNG_AGE = 35
B_YOUNG = 0.50
B_MALE = 0.15
B_SALARY_MISSING = 0.60
B_LOG_TX = -0.30              # an active client is a known client
B_SPEND_RATIO = 0.60          # spending beyond income
SPEND_RATIO_CAP = 5.0
B_LOG_REFUNDS = 0.25
B_RISKY_SHARE = 1.50          # gambling and cash withdrawals


class TrueModel(NamedTuple):
    """Weights of the true logit, one per term of the module docstring."""
    intercept: float
    log_salary: float
    young: float
    male: float
    salary_missing: float
    log_tx: float
    spend_ratio: float
    log_refunds: float
    risky_share: float


TRUE_MODEL = TrueModel(INTERCEPT, B_LOG_SALARY, B_YOUNG, B_MALE, B_SALARY_MISSING, B_LOG_TX, B_SPEND_RATIO,
                       B_LOG_REFUNDS, B_RISKY_SHARE)
# The two strongest signals of TRUE_MODEL reversed and muted: a model trained on TRUE_MODEL's labels then
# ranks at about 0.55 AUC instead of 0.74. The intercept keeps the base rate where TRUE_MODEL has it
# (about 6.7 % with a full window), so the drift shows in realized AUC, not in the default rate.
CONCEPT_DRIFT_MODEL = TRUE_MODEL._replace(intercept=-2.75, log_salary=0.60, risky_share=0.0)

# --- the population ---------------------------------------------------------
ID_BASE = 1_000_001
CHURN_RATE = 0.001            # per day: as many leave as join, on average
SALARY_SIGMA = 0.55
SALARY_CLIP = (10_000.0, 3_000_000.0)
SALARY_MISSING_RATE = 0.03
MALE_RATE = 0.46
LATIN_SEX_RATE = 0.04
AGE_MEAN, AGE_SD, AGE_RANGE = 42.0, 13.0, (18, 85)
ACTIVITY_SIGMA = 0.8          # per-client transaction rate, lognormal with mean 1
NBSP = "\u00a0"

# (format, weight); {n} = roubles per month with thousands separator `sep`,
# {k} = thousands of roubles per month, {y} = roubles per year, {m} = millions
# per year with a decimal comma (used for the yearly format when >= 1 млн).
SALARY_FORMATS = (
    ("{n} р/мес", 0.22),
    ("{n} руб/мес", 0.14),     # no separator
    ("{n} руб.", 0.10),
    ("{n}", 0.12),             # bare number, no separator: roubles per month
    ("{n}", 0.07),             # bare number with separator
    ("{k} тыс. руб/мес", 0.08),
    ("{k}к", 0.07),
    ("{y} р/год | {m} млн р/год", 0.12),
    ("{n} ₽", 0.08),
)
_FMT_SEPARATED = np.array([True, False, True, False, True, False, False, True, True])
NBSP_RATE = 0.2               # of the formats with a separator
MILLION_RATE = 0.7            # of yearly salaries >= 1 млн, typed as "1,2 млн р/год"

# Deliberately bad snapshot rows: kind -> (weight, column, values). The values
# are chosen per client, so a bad record stays bad from day to day.
BAD_CLIENT_VALUES = {
    "salary_unit": (0.20, "salary", ("{x} к/сек",)),
    "salary_text": (0.20, "salary", ("по договорённости", "уточнить", "#ЗНАЧ!", "см. анкету")),
    "salary_implausible": (0.15, "salary", ("-{n} р/мес", "450 000 000 р/мес", "45 000 000 000 руб.")),
    "age_text": (0.15, "age", ("abc", "сорок", "4О", "?")),
    "age_range": (0.15, "age", ("7", "3", "0", "150", "230")),
    "sex_code": (0.15, "sex", ("X", "?", "0")),
}
MAX_DUPLICATES = 2            # duplicated client_id rows per snapshot (both rows count as bad)
BAD_TX_RATE = 0.0005          # extra junk transaction rows

# --- transactions -------------------------------------------------------------
# category -> (share, median amount in roubles, sigma of log amount, refund probability)
CATEGORIES = {
    "grocery": (0.32, 900.0, 0.8, 0.015),
    "restaurants": (0.12, 1_500.0, 0.7, 0.015),
    "transport": (0.14, 350.0, 0.7, 0.005),
    "utilities": (0.06, 4_500.0, 0.5, 0.0),
    "online_shopping": (0.12, 2_500.0, 0.9, 0.100),
    "electronics": (0.03, 15_000.0, 0.8, 0.100),
    "travel": (0.02, 25_000.0, 0.8, 0.080),
    "cash_withdrawal": (0.14, 5_000.0, 0.7, 0.0),
    "gambling": (0.05, 2_000.0, 1.0, 0.0),
}
CATEGORY_NAMES = list(CATEGORIES)
RISKY = np.array([c in ("gambling", "cash_withdrawal") for c in CATEGORY_NAMES])
AMOUNT_SALARY_ELASTICITY = 0.35   # richer clients buy dearer things
WINDOW_DAYS = 30
DRIFT_AGE_YEARS = 8.0
DAY_US = 86_400_000_000

_STREAM_POPULATION, _STREAM_DAY, _STREAM_LABELS = 0, 1, 2


# --- formatting ----------------------------------------------------------------
def _csv_field(text: str) -> str:
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _thousands(values: np.ndarray, sep: str) -> list:
    return [f"{v:,}".replace(",", sep) for v in values.tolist()]


def render_salaries(raw: np.ndarray, fmt: np.ndarray, u_sep: np.ndarray, u_million: np.ndarray):
    """Type monthly salaries the way a branch does: returns (true roubles per month, CSV-ready strings).

    `raw` is the salary before rounding; each format rounds it to what it can
    express, and that rounded value is the client's true salary.
    """
    n = len(raw)
    q = np.maximum(np.rint(raw / 1000.0), 1.0).astype(np.int64) * 1000
    millions = np.rint(12.0 * raw / 100_000.0).astype(np.int64)        # tenths of a million per year
    use_million = (fmt == 7) & (millions >= 10) & (u_million < MILLION_RATE)
    true = q.astype(np.float64)
    true[use_million] = millions[use_million] * 100_000.0 / 12.0
    text = np.empty(n, dtype=object)
    nbsp = _FMT_SEPARATED[fmt] & (u_sep < NBSP_RATE)
    for code, (pattern, _) in enumerate(SALARY_FORMATS):
        for sep_is_nbsp in (False, True):
            sel = np.flatnonzero((fmt == code) & (nbsp == sep_is_nbsp) & ~use_million)
            if len(sel) == 0:
                continue
            sep = NBSP if sep_is_nbsp else (" " if _FMT_SEPARATED[code] else "")
            if code == 5:
                text[sel] = [f"{k} тыс. руб/мес" for k in (q[sel] // 1000).tolist()]
            elif code == 6:
                text[sel] = [f"{k}к" for k in (q[sel] // 1000).tolist()]
            elif code == 7:
                text[sel] = [f"{y} р/год" for y in _thousands(12 * q[sel], sep)]
            else:
                text[sel] = [pattern.format(n=v) for v in _thousands(q[sel], sep)]
    sel = np.flatnonzero(use_million)
    text[sel] = [
        _csv_field(f"{m // 10},{m % 10} млн р/год" if m % 10 else f"{m // 10} млн р/год")
        for m in millions[sel].tolist()
    ]
    return true, text


def _bad_value(kind: str, pick: int, true_salary: float) -> str:
    values = BAD_CLIENT_VALUES[kind][2]
    value = values[pick % len(values)]
    if "{x}" in value:
        value = value.format(x=50 + (pick // 7) % 850)
    if "{n}" in value:
        value = value.format(n=f"{int(true_salary):,}".replace(",", " "))
    return _csv_field(value)


# --- the population --------------------------------------------------------------
class Population:
    """Every client that is ever active in the range, indexed by slot = client_id - ID_BASE."""

    def __init__(self, rng: np.random.Generator, capacity: int):
        self.capacity = capacity
        self.male = rng.random(capacity) < MALE_RATE
        latin = rng.random(capacity) < LATIN_SEX_RATE
        self.age = np.clip(np.rint(rng.normal(AGE_MEAN, AGE_SD, capacity)), *AGE_RANGE).astype(np.int64)
        self.salary_raw = np.clip(
            SALARY_MEDIAN * np.exp(SALARY_SIGMA * rng.standard_normal(capacity)), *SALARY_CLIP)
        self.salary_missing = rng.random(capacity) < SALARY_MISSING_RATE
        weights = np.array([w for _, w in SALARY_FORMATS])
        self.fmt = rng.choice(len(SALARY_FORMATS), size=capacity, p=weights / weights.sum())
        self.u_sep = rng.random(capacity)
        self.u_million = rng.random(capacity)
        self.activity = np.exp(ACTIVITY_SIGMA * rng.standard_normal(capacity) - ACTIVITY_SIGMA ** 2 / 2)
        young = (self.age < 30).astype(np.float64)
        self.risk_tilt = np.exp(0.9 * rng.standard_normal(capacity) - 0.4 + 0.3 * young)
        self.refund_tilt = np.exp(0.7 * rng.standard_normal(capacity) - 0.245)
        self.bad_rank = rng.random(capacity)
        kinds = list(BAD_CLIENT_VALUES)
        kind_w = np.array([BAD_CLIENT_VALUES[k][0] for k in kinds])
        self.bad_kind = rng.choice(len(kinds), size=capacity, p=kind_w / kind_w.sum())
        self.bad_pick = rng.integers(0, 1 << 30, capacity)

        self.salary, salary_text = render_salaries(self.salary_raw, self.fmt, self.u_sep, self.u_million)
        salary_text[self.salary_missing] = ""
        self.salary_field = pa.array(salary_text, pa.string())
        sex = np.where(self.male, np.where(latin, "M", "М"), np.where(latin, "F", "Ж"))
        self.sex_field = pa.array(sex.astype(object), pa.string())
        self.age_field = pc.cast(pa.array(self.age), pa.string())

    def drifted(self, slots: np.ndarray, drift: float):
        """Salary (true, field) and age (true, field) of `slots` on a drifted day."""
        true, text = render_salaries(self.salary_raw[slots] * np.exp(-drift), self.fmt[slots],
                                     self.u_sep[slots], self.u_million[slots])
        text[self.salary_missing[slots]] = ""
        age = np.clip(self.age[slots] - int(round(DRIFT_AGE_YEARS * drift)), AGE_RANGE[0], 90)
        return true, pa.array(text, pa.string()), age, pc.cast(pa.array(age), pa.string())


# --- one day -------------------------------------------------------------------------
def _sparse_daily(slots, amount, cat, capacity):
    """Per-client aggregates of one day's clean transactions, kept only for clients with any."""
    positive = np.where(amount > 0, amount, 0.0)
    n = np.bincount(slots, minlength=capacity)
    nz = np.flatnonzero(n)
    spend = np.bincount(slots, weights=positive, minlength=capacity)[nz].astype(np.float64)
    refunds = np.bincount(slots, weights=(amount < 0).astype(np.float64), minlength=capacity)[nz]
    risky = np.bincount(slots, weights=positive * RISKY[cat], minlength=capacity)[nz].astype(np.float64)
    # small dtypes: 30 of these are kept in memory
    return nz.astype(np.int32), n[nz].astype(np.uint16), spend, refunds.astype(np.uint16), risky


def true_p_default(salary, age, male, missing, n_tx, spend, refunds, risky_spend,
                   model: TrueModel = TRUE_MODEL) -> np.ndarray:
    """The true default probability (see the module docstring), vectorised over clients."""
    risky_share = np.divide(risky_spend, spend, out=np.zeros_like(spend), where=spend > 0)
    logit = (model.intercept
             + model.log_salary * np.log(salary / SALARY_MEDIAN)
             + model.young * np.maximum(0.0, YOUNG_AGE - age) / 10.0
             + model.male * male
             + model.salary_missing * missing
             + model.log_tx * np.log1p(n_tx)
             + model.spend_ratio * np.minimum(spend / salary, SPEND_RATIO_CAP)
             + model.log_refunds * np.log1p(refunds)
             + model.risky_share * risky_share)
    return 1.0 / (1.0 + np.exp(-logit))


def _day_span(day: dt.date, zone: str | None) -> tuple[int, int]:
    """(first microsecond since the epoch, length in microseconds) of `day`: UTC wall-clock without a zone,
    else the instants of that day in `zone` (23 or 25 hours on a daylight-saving change)."""
    if zone is None:
        return (day - dt.date(1970, 1, 1)).days * DAY_US, DAY_US
    tz = zoneinfo.ZoneInfo(zone)
    start, end = (int(dt.datetime.combine(d, dt.time(), tz).timestamp()) * 1_000_000
                  for d in (day, day + dt.timedelta(days=1)))
    return start, end - start


def _transactions(rng, pop, slots, salary, day, tx_rate, drift, zone=None):
    """One day's transactions of the active `slots`: (table, clean slot/amount/category arrays).

    Without `zone`, ts is a wall-clock timestamp (parquet: not adjusted to UTC) within the day; with a zone, ts is
    an instant (adjusted to UTC) within the day as that zone cuts it."""
    counts = rng.poisson(tx_rate * pop.activity[slots])
    owner = np.repeat(np.arange(len(slots)), counts)
    tx_slot = slots[owner]
    n = len(tx_slot)
    share = np.array([v[0] for v in CATEGORIES.values()])
    weights = np.broadcast_to(share, (n, len(share))).copy()
    tilt = pop.risk_tilt[tx_slot] * (np.exp(drift) if drift else 1.0)
    weights[:, RISKY] *= tilt[:, None]
    cum = np.cumsum(weights, axis=1)
    u = rng.random(n) * cum[:, -1]
    cat = np.minimum((u[:, None] >= cum).sum(axis=1), len(share) - 1)
    mu = np.log([v[1] for v in CATEGORIES.values()])
    sigma = np.array([v[2] for v in CATEGORIES.values()])
    scale = (salary[owner] / SALARY_MEDIAN) ** AMOUNT_SALARY_ELASTICITY
    amount = np.round(np.exp(mu[cat] + sigma[cat] * rng.standard_normal(n)) * scale, 2)
    refund_p = np.array([v[3] for v in CATEGORIES.values()])[cat] * pop.refund_tilt[tx_slot]
    amount = np.where(rng.random(n) < refund_p, -amount, amount)
    day_us, span = _day_span(day, zone)
    ts = day_us + rng.integers(0, span, n)

    # junk rows the pipeline must reject: null client_id, ts outside the day, NaN/inf amount
    n_bad = rng.binomial(n, BAD_TX_RATE) if n else 0
    bad_kind = rng.integers(0, 3, n_bad)
    bad_slot = slots[rng.integers(0, len(slots), n_bad)] if len(slots) else np.zeros(n_bad, np.int64)
    bad_cat = rng.integers(0, len(share), n_bad)
    bad_amount = np.round(np.exp(mu[bad_cat] + sigma[bad_cat] * rng.standard_normal(n_bad)), 2)
    bad_amount = np.where(bad_kind == 2, np.array([np.nan, np.inf, -np.inf])[rng.integers(0, 3, n_bad)],
                          bad_amount)
    in_day = day_us + rng.integers(0, span, n_bad)
    # outside the day: the day before, the day after, or 1970-01-01 00:00 (a default value)
    outside = np.array([day_us - DAY_US, day_us + span, 0])[rng.integers(0, 3, n_bad)]
    outside = np.where(outside == 0, 0, outside + rng.integers(0, DAY_US, n_bad))
    bad_ts = np.where(bad_kind == 1, outside, in_day)

    all_slot = np.concatenate([tx_slot, bad_slot])
    all_ts = np.concatenate([ts, bad_ts])
    order = np.argsort(np.concatenate([ts, in_day]), kind="stable")
    null_id = np.concatenate([np.zeros(n, bool), bad_kind == 0])[order]
    table = pa.table({
        "client_id": pa.array(ID_BASE + all_slot[order], pa.int64(), mask=null_id),
        "ts": pa.array(all_ts[order], pa.timestamp("us", tz="UTC" if zone else None)),
        "amount": pa.array(np.concatenate([amount, bad_amount])[order], pa.float64()),
        "category": pa.array(np.array(CATEGORY_NAMES, dtype=object)[np.concatenate([cat, bad_cat])[order]],
                             pa.string()),
    })
    return table, tx_slot, amount, cat


def _snapshot(rng, pop, slots, bad_rate, salary_field, age_field):
    """The client CSV body rows of one day, and the number of deliberately bad rows in it."""
    n = len(slots)
    budget = int(np.floor(bad_rate * n + 0.5))
    n_dup = min(MAX_DUPLICATES, budget // 3)
    n_cor = budget - 2 * n_dup
    columns = {"sex": pc.take(pop.sex_field, slots), "age": age_field, "salary": salary_field}
    bad_pos = np.array([], np.int64)
    if n_cor > 0:
        bad_pos = np.sort(np.argpartition(pop.bad_rank[slots], n_cor - 1)[:n_cor])
        kinds = list(BAD_CLIENT_VALUES)
        bad_slots = slots[bad_pos]
        for column in columns:
            hit = [i for i, s in enumerate(bad_slots) if BAD_CLIENT_VALUES[kinds[pop.bad_kind[s]]][1] == column]
            if not hit:
                continue
            mask = np.zeros(n, bool)
            mask[bad_pos[hit]] = True
            values = [_bad_value(kinds[pop.bad_kind[s]], int(pop.bad_pick[s]), pop.salary[s])
                      for s in bad_slots[hit]]
            columns[column] = pc.replace_with_mask(columns[column], pa.array(mask), pa.array(values, pa.string()))
    row_slots = slots
    if n_dup:
        is_bad = np.zeros(n, bool)
        is_bad[bad_pos] = True
        good = np.flatnonzero(~is_bad)
        dup_pos = np.sort(rng.choice(good, n_dup, replace=False))
        dup = {c: pc.take(columns[c], pa.array(dup_pos)) for c in columns}
        # the first duplicate repeats its row; the others carry a conflicting, older salary
        if n_dup > 1:
            ds = slots[dup_pos[1:]]
            _, text = render_salaries(pop.salary_raw[ds] * rng.uniform(0.7, 0.95, len(ds)),
                                      rng.integers(0, len(SALARY_FORMATS), len(ds)),
                                      rng.random(len(ds)), rng.random(len(ds)))
            dup["salary"] = pa.concat_arrays([dup["salary"].slice(0, 1), pa.array(text, pa.string())])
        row_slots = np.concatenate([slots, slots[dup_pos]])
        order = pa.array(np.argsort(row_slots, kind="stable"))
        columns = {c: pc.take(pa.concat_arrays([columns[c], dup[c]]), order) for c in columns}
        row_slots = row_slots[order.to_numpy()]
    ids = pc.cast(pa.array(ID_BASE + row_slots, pa.int64()), pa.string())
    return [ids, columns["sex"], columns["age"], columns["salary"]], budget


def _csv_bytes(header: str, columns, encoding: str) -> bytes:
    """Header plus rows joined with commas (fields are already CSV-escaped)."""
    body = b""
    if len(columns[0]):
        wide = [pc.cast(c, pa.large_string()) for c in columns]      # 64-bit offsets: no 2 GB limit
        text = lambda value: pa.scalar(value, pa.large_string())
        lines = pc.binary_join_element_wise(pc.binary_join_element_wise(*wide, text(",")), text(""), text("\n"))
        if isinstance(lines, pa.ChunkedArray):
            lines = lines.combine_chunks()
        offsets = np.frombuffer(lines.buffers()[1], np.int64)[lines.offset:lines.offset + len(lines) + 1]
        body = lines.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]]
    data = header.encode() + b"\n" + body
    if encoding.lower().replace("-", "") != "utf8":
        # cp1251 has no rouble sign: branches on such systems type "руб."
        data = data.decode("utf-8").replace("₽", "руб.").encode(encoding)
    return data


# --- writing ---------------------------------------------------------------------------
def _write_partition(folder: str, files: dict) -> None:
    """Write files into a partition folder atomically enough: flag removed first, temp+rename, flag last."""
    os.makedirs(folder, exist_ok=True)
    flag = os.path.join(folder, "_SUCCESS")
    if os.path.exists(flag):
        os.remove(flag)
    for name in os.listdir(folder):
        if name.startswith(".") and ".tmp-" in name:      # leftovers of a killed run
            os.remove(os.path.join(folder, name))
    for name, write in files.items():
        tmp = os.path.join(folder, f".{name}.tmp-{os.getpid()}")
        write(tmp)
        os.replace(tmp, os.path.join(folder, name))
    tmp = os.path.join(folder, f"._SUCCESS.tmp-{os.getpid()}")
    open(tmp, "wb").close()
    os.replace(tmp, flag)


def _bytes_writer(data: bytes):
    def write(path):
        with open(path, "wb") as fh:
            fh.write(data)
    return write


def _parquet_writer(table: pa.Table):
    # dictionary-encode the category strings only: on random doubles it costs time and saves nothing
    strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
    return lambda path: pq.write_table(table, path, use_dictionary=strings)


# --- the run -------------------------------------------------------------------------------
def generate(root, end, days, clients, seed=0, drift=0.0, label_lag=30, bad_rate=0.004,
             encoding="utf-8", tx_per_client_day=0.3, concept_drift_from=None, timezone=None, log=None) -> dict:
    """Write days end-days+1..end under root; returns a summary of what was written.

    `timezone` (an IANA zone or None) cuts the transaction partitions in that zone (see `_transactions`).

    `concept_drift_from` (a date or None) is the first scoring date whose truth and labels follow
    CONCEPT_DRIFT_MODEL.
    """
    first = end - dt.timedelta(days=days - 1)
    pop_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_STREAM_POPULATION,)))
    joins = np.concatenate([[clients], pop_rng.poisson(CHURN_RATE * clients, days - 1)]).astype(np.int64)
    pop = Population(pop_rng, int(joins.sum()))
    active = np.zeros(pop.capacity, bool)
    active[:clients] = True
    next_slot = clients
    window = deque(maxlen=WINDOW_DAYS)
    stats = {"client_rows": 0, "bad_rows": 0, "transactions": 0, "label_drops": 0, "truth_drops": 0,
             "mean_p_last": float("nan"), "default_rate_labels": []}
    raw = lambda kind, day: os.path.join(root, "raw", kind, f"dt={day.isoformat()}")
    for i in range(days):
        day = first + dt.timedelta(days=i)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_STREAM_DAY, i)))
        if i:
            stay = np.flatnonzero(active)
            leave = rng.choice(stay, rng.binomial(len(stay), CHURN_RATE), replace=False)
            active[leave] = False
            active[next_slot:next_slot + joins[i]] = True
            next_slot += int(joins[i])
        slots = np.flatnonzero(active)
        day_drift = drift if (i == days - 1 and drift) else 0.0
        if day_drift:
            salary, salary_field, age, age_field = pop.drifted(slots, day_drift)
        else:
            salary, age = pop.salary[slots], pop.age[slots]
            salary_field, age_field = pc.take(pop.salary_field, slots), pc.take(pop.age_field, slots)

        columns, bad = _snapshot(rng, pop, slots, bad_rate, salary_field, age_field)
        _write_partition(raw("clients", day), {
            "clients.csv": _bytes_writer(_csv_bytes("client_id,sex,age,salary", columns, encoding))})
        table, tx_slot, amount, cat = _transactions(rng, pop, slots, salary, day, tx_per_client_day, day_drift,
                                                    timezone)
        _write_partition(raw("transactions", day), {"part-00000.parquet": _parquet_writer(table)})

        # truth of scoring date S = day + 1: this snapshot, transactions of the 30 days up to `day`
        window.append(_sparse_daily(tx_slot, amount, cat, pop.capacity))
        idx = np.concatenate([w[0] for w in window])
        sums = [np.bincount(idx, weights=np.concatenate([w[k] for w in window]).astype(np.float64),
                            minlength=pop.capacity)[slots].astype(np.float64) for k in range(1, 5)]
        score_date = day + dt.timedelta(days=1)
        drifted = concept_drift_from is not None and score_date >= concept_drift_from
        p = true_p_default(salary, age, pop.male[slots], pop.salary_missing[slots], *sums,
                           model=CONCEPT_DRIFT_MODEL if drifted else TRUE_MODEL)
        ids = ID_BASE + slots
        truth = pa.table({"client_id": pa.array(ids, pa.int64()), "p_default": pa.array(p, pa.float64())})
        _write_partition(os.path.join(root, "truth", f"dt={score_date.isoformat()}"),
                         {"truth.parquet": _parquet_writer(truth)})
        stats["truth_drops"] += 1
        if score_date + dt.timedelta(days=label_lag) <= end:
            label_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_STREAM_LABELS, i)))
            defaulted = (label_rng.random(len(p)) < p).astype(np.int64)
            label_cols = [pc.cast(pa.array(ids), pa.string()), pc.cast(pa.array(defaulted), pa.string())]
            _write_partition(raw("labels", score_date), {
                "labels.csv": _bytes_writer(_csv_bytes("client_id,defaulted", label_cols, "utf-8"))})
            stats["label_drops"] += 1
            stats["default_rate_labels"].append(float(defaulted.mean()) if len(p) else float("nan"))

        rows = len(columns[0])
        stats["client_rows"] += rows
        stats["bad_rows"] += bad
        stats["transactions"] += table.num_rows
        stats["mean_p_last"] = float(p.mean()) if len(p) else float("nan")
        if log:
            log(f"{day}  clients {rows} rows ({bad} bad)  transactions {table.num_rows}  "
                f"mean p_default({score_date}) {stats['mean_p_last']:.4f}  [{i + 1}/{days}]")
    stats["first"], stats["end"] = first, end
    return stats


def _date(text: str) -> dt.date:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def _zone(text: str) -> str:
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(f"expected an IANA time zone such as Europe/Moscow, got {text!r}") from None
    return text


def _number(kind, low, high=None, low_open=False):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        if not np.isfinite(value) or (value <= low if low_open else value < low) or \
                (high is not None and value > high):
            bound = f"{'>' if low_open else '>='} {low}" + (f" and <= {high}" if high is not None else "")
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value
    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make-sample-data",
        description="Write seeded sample raw drops (clients, transactions, labels) and their truth for "
                    "days END-DAYS+1..END.")
    parser.add_argument("--root", required=True, help="data root: raw/ and truth/ are written under it")
    parser.add_argument("--end", required=True, type=_date, help="last day written, YYYY-MM-DD")
    parser.add_argument("--days", required=True, type=_number(int, 1, 100_000), help="number of days")
    parser.add_argument("--clients", required=True, type=_number(int, 1), help="clients on the first day")
    parser.add_argument("--seed", type=_number(int, 0), default=0, help="random seed (default 0)")
    parser.add_argument("--drift", type=_number(float, -5.0, 5.0), default=0.0,
                        help="shift the last day's population towards risk (default 0: none)")
    parser.add_argument("--concept-drift-from", type=_date, default=None, metavar="YYYY-MM-DD",
                        help="from this scoring date on, truth and labels follow a changed relation "
                             "(salary turns risky, risky spend stops mattering; same base rate), so a "
                             "model trained before it loses AUC on the new labels (default: never)")
    parser.add_argument("--label-lag", type=_number(int, 0), default=30,
                        help="days after a snapshot until its labels land (default 30)")
    parser.add_argument("--bad-rate", type=_number(float, 0.0, 0.5), default=0.004,
                        help="share of deliberately bad client rows per snapshot (default 0.004; "
                             "the pipeline rejects a day at 0.01)")
    parser.add_argument("--encoding", choices=["utf-8", "cp1251"], default="utf-8",
                        help="encoding of the client CSV (default utf-8)")
    parser.add_argument("--tx-per-client-day", type=_number(float, 0.0, 50.0), default=0.3,
                        help="mean transactions per client per day (default 0.3)")
    parser.add_argument("--timezone", type=_zone, default=None, metavar="ZONE",
                        help="cut transaction partitions in this IANA zone (dt=d holds the instants of day d "
                             "there, written as UTC-adjusted timestamps); default: UTC wall-clock timestamps")
    args = parser.parse_args(argv)
    if args.bad_rate >= 0.01:
        print(f"make-sample-data: warning: --bad-rate {args.bad_rate} is at or above the pipeline's 1% "
              "quarantine gate; its days will be rejected", file=sys.stderr)

    started = time.monotonic()
    stats = generate(args.root, args.end, args.days, args.clients, seed=args.seed, drift=args.drift,
                     label_lag=args.label_lag, bad_rate=args.bad_rate, encoding=args.encoding,
                     tx_per_client_day=args.tx_per_client_day, concept_drift_from=args.concept_drift_from,
                     timezone=args.timezone,
                     log=lambda line: print(line, file=sys.stderr, flush=True))
    rates = stats["default_rate_labels"]
    label_rate = f"{np.mean(rates):.4f}" if rates else "n/a"
    print(f"make-sample-data: {args.days} days {stats['first']}..{stats['end']} under {args.root}: "
          f"{stats['client_rows']} client rows ({stats['bad_rows'] / max(stats['client_rows'], 1):.2%} bad), "
          f"{stats['transactions']} transactions, {stats['label_drops']} label drops "
          f"(default rate {label_rate}), truth up to {stats['end'] + dt.timedelta(days=1)} "
          f"(mean p_default {stats['mean_p_last']:.4f}); {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
