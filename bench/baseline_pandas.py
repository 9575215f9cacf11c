#!/usr/bin/env python3
"""Benchmark baseline: the single pandas script a team would put in cron instead of nightshift.

Usage:
    bench/baseline_pandas.py --root DIR --date YYYY-MM-DD --model-dir DIR --db FILE.db [--windows 7,30]

It reads the raw drops under DIR directly (the D-1 client snapshot, the 30 transaction days before D),
computes the same features as tasks/features.py (7- and 30-day windows of tx_count, spend, refund_count,
refund_sum, max_amount, risky_spend, active_days; clients parsed by nightshift.cleaning.clean_clients, every
copy of a duplicated client_id rejected), scores them with the model nightshift trained (models/M/) and
replaces the day's rows of a `predictions` table in a SQLite file, in one transaction. No state, no
checkpoints: every night recomputes everything.
"""
import argparse
import datetime as dt
import json
import os
import pickle
import sqlite3
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from nightshift.cleaning import CLIENT_COLUMNS, clean_clients  # noqa: E402

DAY = dt.timedelta(days=1)
WINDOWS = (7, 30)
RISKY = ("gambling", "cash_withdrawal")
AGGREGATES = ("tx_count", "spend", "refund_count", "refund_sum", "max_amount", "risky_spend")
BOUNDS = dict(salary_min=1000.0, salary_max=10_000_000.0, age_min=18, age_max=100)


def read_clients(root: str, score_date: dt.date) -> pd.DataFrame:
    """Valid clients of the D-1 snapshot: client_id, is_male, age, salary_rub_month."""
    path = os.path.join(root, "raw", "clients", f"dt={(score_date - DAY).isoformat()}", "clients.csv")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
    cleaned = clean_clients(raw[list(CLIENT_COLUMNS)], **BOUNDS)
    duplicated = cleaned["client_id"].notna() & cleaned["client_id"].duplicated(keep=False)
    valid = cleaned[cleaned["reason"].isna() & ~duplicated]
    return pd.DataFrame({
        "client_id": valid["client_id"].astype("int64"),
        "is_male": valid["is_male"].astype("int32"),
        "age": valid["age"].astype("int32"),
        "salary_rub_month": valid["salary_rub_month"].astype("float64"),
    })


def read_transactions(root: str, score_date: dt.date, days: int) -> pd.DataFrame:
    """The clean transactions of the `days` days before D, with a `day` column."""
    frames = []
    for k in range(days, 0, -1):
        day = score_date - k * DAY
        folder = os.path.join(root, "raw", "transactions", f"dt={day.isoformat()}")
        frame = pd.read_parquet(folder, columns=["client_id", "ts", "amount", "category"])
        start = pd.Timestamp(day)
        ts = frame["ts"]
        if getattr(ts.dt, "tz", None) is not None:
            ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
        good = frame["client_id"].notna() & (ts >= start) & (ts < start + pd.Timedelta(days=1)) \
            & np.isfinite(frame["amount"])
        frames.append(frame.loc[good, ["client_id", "amount", "category"]].assign(day=np.int16(days - k)))
    return pd.concat(frames, ignore_index=True)


def transaction_features(tx: pd.DataFrame, days: int, windows=WINDOWS) -> pd.DataFrame:
    """Per client sums over each window (`day` counts 0..days-1, the newest last)."""
    amount = tx["amount"].to_numpy()
    spend = np.where(amount > 0, amount, 0.0)
    frame = pd.DataFrame({
        "client_id": tx["client_id"].to_numpy(),
        "day": tx["day"].to_numpy(),
        "tx_count": 1.0,
        "spend": spend,
        "refund_count": (amount < 0).astype(np.float64),
        "refund_sum": np.where(amount < 0, -amount, 0.0),
        "max_amount": spend,
        "risky_spend": np.where(tx["category"].isin(RISKY).to_numpy(), spend, 0.0),
    })
    out = []
    for window in windows:
        part = frame[frame["day"] >= days - window]
        grouped = part.groupby("client_id")
        sums = grouped[["tx_count", "spend", "refund_count", "refund_sum", "risky_spend"]].sum()
        sums["max_amount"] = grouped["max_amount"].max()
        sums["active_days"] = grouped["day"].nunique().astype(np.float64)
        sums = sums[[*AGGREGATES, "active_days"]]
        sums.columns = [f"{name}_{window}d" for name in sums.columns]
        out.append(sums)
    return pd.concat(out, axis=1)


def feature_table(root: str, score_date: dt.date, windows=WINDOWS) -> pd.DataFrame:
    """One row per valid client; a client without transactions has zeros."""
    days = max(windows)
    clients = read_clients(root, score_date)
    features = transaction_features(read_transactions(root, score_date, days), days, windows)
    table = clients.merge(features, left_on="client_id", right_index=True, how="left")
    return table.fillna({name: 0.0 for name in features.columns})


def publish(db: str, score_date: dt.date, scores: pd.DataFrame) -> None:
    """Replace the day's rows of `predictions` in one transaction."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute("CREATE TABLE IF NOT EXISTS predictions "
                         "(score_date TEXT, client_id INTEGER, score REAL, model_version TEXT)")
            conn.execute("CREATE INDEX IF NOT EXISTS ix_predictions_score_date ON predictions (score_date)")
            conn.execute("DELETE FROM predictions WHERE score_date = ?", (score_date.isoformat(),))
            conn.executemany("INSERT INTO predictions VALUES (?, ?, ?, ?)", zip(
                [score_date.isoformat()] * len(scores), scores["client_id"].tolist(), scores["score"].tolist(),
                scores["model_version"].tolist()))
    finally:
        conn.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--date", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--windows", default="7,30", help="transaction windows in days (nightshift: 7 and window_days)")
    parser.add_argument("--scores-out", help="also write client_id,score as parquet here (for cross-checks)")
    args = parser.parse_args(argv)

    timings, start = {}, time.perf_counter()
    table = feature_table(args.root, args.date, tuple(int(w) for w in args.windows.split(",")))
    timings["features"] = time.perf_counter() - start
    with open(os.path.join(args.model_dir, "metadata.json")) as fh:
        meta = json.load(fh)
    with open(os.path.join(args.model_dir, "model.pkl"), "rb") as fh:
        model = pickle.load(fh)
    mark = time.perf_counter()
    table = table.astype({name: dtype for name, dtype in meta["feature_dtypes"].items()})
    scores = pd.DataFrame({"client_id": table["client_id"].to_numpy(),
                           "score": model.predict_proba(table[meta["features"]])[:, 1],
                           "model_version": meta["model_version"]})
    timings["score"] = time.perf_counter() - mark
    mark = time.perf_counter()
    publish(args.db, args.date, scores)
    timings["publish"] = time.perf_counter() - mark
    if args.scores_out:
        scores[["client_id", "score"]].to_parquet(args.scores_out, index=False)
    timings["total"] = time.perf_counter() - start
    print(json.dumps({"rows": len(scores), "timings": timings}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
