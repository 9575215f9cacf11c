"""The transaction windows' maths: per client sums of the per-day aggregates over the days before a scoring date.

What tasks.features.window_features asks of Spark, in numpy for a Python worker that reads the days itself.
"""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nightshift.schema import DAILY_AGGREGATES, KEY, window_feature_names


def window_schema(windows: list[int]) -> pa.Schema:
    """The transaction features' columns as Spark writes them: client_id, then every window's doubles (never null)."""
    return pa.schema([pa.field(KEY, pa.int64()),
                      *(pa.field(name, pa.float64(), nullable=False) for name in window_feature_names(windows))])


def window_features(days: list[tuple[int, pa.Table]], windows: list[int]) -> pa.Table:
    """One row per client of `days`, in client order: over each window of `windows` days, the sum of every daily
    aggregate (the largest max_amount) and the days with a row (active_days), 0.0 where the window has none.

    `days` pairs each day's per-client aggregates (one row per client and day, client_id never null) with its age:
    1 for the day before the scoring date, 2 for the day before that; a window of w days holds the ages 1..w. A null
    aggregate counts as nothing, as Spark's sum and max skip nulls.
    """
    schema = window_schema(windows)
    days = [(age, table) for age, table in days if table.num_rows]
    if not days:
        return schema.empty_table()
    ids = np.concatenate([table[KEY].to_numpy() for _, table in days])
    # Each day's rows arrive in client order (TransactionDaily sorts them), so a stable sort merges sorted runs.
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
    ages = np.concatenate([np.full(table.num_rows, age, np.int32) for age, table in days])[order]
    # Only the windows shorter than the days read need a mask: the longest holds every row.
    masks = {days_in: None if ages.max() <= days_in else ages <= days_in for days_in in windows}
    columns = {}
    for name in DAILY_AGGREGATES:
        largest = name == "max_amount"
        empty = -np.inf if largest else 0.0
        values = np.concatenate([pc.fill_null(table[name], empty).to_numpy().astype(np.float64)
                                 for _, table in days])[order]
        for days_in, mask in masks.items():
            inside = values if mask is None else np.where(mask, values, empty)
            if largest:
                result = np.maximum.reduceat(inside, starts)
                result[result == -np.inf] = 0.0
            else:
                result = np.add.reduceat(inside, starts)
            columns[f"{name}_{days_in}d"] = result
    for days_in, mask in masks.items():
        inside = np.ones(len(ids)) if mask is None else mask.astype(np.float64)
        columns[f"active_days_{days_in}d"] = np.add.reduceat(inside, starts)
    return pa.table({KEY: ids[starts], **{name: columns[name] for name in schema.names[1:]}}, schema=schema)
