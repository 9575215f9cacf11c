"""The transaction windows' maths (nightshift.windows), against pandas' groupby of the same days."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from nightshift.schema import DAILY_AGGREGATES, window_feature_names
from nightshift.windows import window_features, window_schema


def day(rng, clients: int, nulls: bool = False) -> pa.Table:
    """One day's per-client aggregates of `clients` distinct random clients, in random order."""
    ids = rng.choice(np.arange(1, 60), size=clients, replace=False)
    columns = {"client_id": pa.array(ids, pa.int64()),
               "tx_count": pa.array(rng.integers(1, 5, clients), pa.int64())}
    for name in DAILY_AGGREGATES[1:]:
        values = rng.integers(0, 100_000, clients) / 100
        mask = rng.random(clients) < 0.3 if nulls else None
        columns[name] = pa.array(values.astype(np.int64) if name == "refund_count" else values, mask=mask)
    return pa.table(columns)


def expected(days: list[tuple[int, pa.Table]], windows: list[int]) -> pd.DataFrame:
    """The windows as a pandas user would write them: rows of the window, groupby sum/max, 0 where none."""
    frame = pd.concat([table.to_pandas().assign(age=age) for age, table in days])
    out = pd.DataFrame(index=pd.Index(sorted(frame["client_id"].unique()), name="client_id"))
    for days_in in windows:
        inside = frame[frame["age"] <= days_in].groupby("client_id")
        for name in DAILY_AGGREGATES:
            out[f"{name}_{days_in}d"] = inside[name].max() if name == "max_amount" else inside[name].sum()
        out[f"active_days_{days_in}d"] = inside.size()
    return out.fillna(0.0).astype(float).reset_index()


@pytest.mark.parametrize("nulls", [False, True], ids=["values", "nulls"])
def test_each_window_sums_its_days_per_client_as_pandas_does(nulls):
    rng = np.random.default_rng(3)
    days = [(age, day(rng, int(rng.integers(5, 40)), nulls)) for age in range(1, 31)]

    ours = window_features(days, [7, 30])

    assert ours.schema == window_schema([7, 30])
    assert ours["client_id"].to_pylist() == sorted(ours["client_id"].to_pylist())  # one row per client, in order
    pd.testing.assert_frame_equal(ours.to_pandas(), expected(days, [7, 30]), rtol=1e-12)


def test_a_client_seen_only_before_the_short_window_has_zeros_in_it():
    rng = np.random.default_rng(5)
    old = day(rng, 3).set_column(0, "client_id", pa.array([900, 901, 902], pa.int64()))
    days = [(1, day(rng, 10)), (8, old), (30, day(rng, 4))]

    ours = window_features(days, [7, 30]).to_pandas().set_index("client_id")

    assert (ours.loc[[900, 901, 902], window_feature_names([7])] == 0.0).all().all()
    assert (ours.loc[[900, 901, 902], "active_days_30d"] == 1.0).all()
    pd.testing.assert_frame_equal(ours.reset_index(), expected(days, [7, 30]), rtol=1e-12)


def test_days_without_rows_give_an_empty_table_of_the_features_columns():
    empty = day(np.random.default_rng(1), 0)

    ours = window_features([(1, empty), (2, empty)], [7, 30])

    assert ours.num_rows == 0 and ours.schema == window_schema([7, 30])
    assert window_features([], [7]).schema == window_schema([7])
