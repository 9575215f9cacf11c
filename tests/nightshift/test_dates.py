"""Windows, model cadence and training snapshots, across month and year edges."""
import datetime as dt

import pytest

from nightshift.dates import labelled_snapshots, model_date, newest_snapshot, training_snapshots, window_dates
from nightshift.errors import ConfigurationError

D = dt.date


def test_window_is_the_days_before_the_score_date():
    assert window_dates(D(2026, 3, 2), 3) == [D(2026, 2, 27), D(2026, 2, 28), D(2026, 3, 1)]
    with pytest.raises(ConfigurationError):
        window_dates(D(2026, 3, 2), 0)


@pytest.mark.parametrize(
    "score, retrain, expected",
    [
        (D(2026, 3, 4), "daily", D(2026, 3, 4)),
        (D(2026, 3, 4), "weekly", D(2026, 3, 2)),  # Wednesday -> Monday
        (D(2026, 3, 2), "weekly", D(2026, 3, 2)),  # Monday is its own model date
        (D(2026, 1, 1), "weekly", D(2025, 12, 29)),  # across the year edge
        (D(2026, 3, 1), "weekly", D(2026, 2, 23)),  # Sunday, across the month edge
        (D(2026, 3, 31), "monthly", D(2026, 3, 1)),
        (D(2026, 1, 1), "monthly", D(2026, 1, 1)),
    ],
)
def test_model_date_by_cadence(score, retrain, expected):
    assert model_date(score, retrain) == expected


def test_unknown_cadence_is_refused():
    with pytest.raises(ConfigurationError, match="hourly"):
        model_date(D(2026, 3, 4), "hourly")


def test_training_snapshots_have_landed_labels_before_the_model_date():
    snaps = training_snapshots(D(2026, 3, 2), count=3, spacing_days=7, label_lag_days=30)
    assert snaps == [D(2026, 1, 16), D(2026, 1, 23), D(2026, 1, 30)]
    assert all(s + dt.timedelta(days=30) < D(2026, 3, 2) for s in snaps)


@pytest.mark.parametrize(
    "score, retrain, expected",
    [
        (D(2026, 1, 4), "weekly", D(2025, 12, 29)),  # Sunday of a week that began in the old year
        (D(2025, 12, 31), "monthly", D(2025, 12, 1)),
        (D(2028, 2, 29), "weekly", D(2028, 2, 28)),  # leap day
        (D(2028, 3, 1), "daily", D(2028, 3, 1)),
    ],
)
def test_model_date_across_more_edges(score, retrain, expected):
    assert model_date(score, retrain) == expected


def test_a_period_shares_one_model_and_the_next_period_gets_a_new_one():
    week = [D(2026, 3, 2) + dt.timedelta(days=k) for k in range(7)]
    assert {model_date(d, "weekly") for d in week} == {D(2026, 3, 2)}
    assert model_date(D(2026, 3, 9), "weekly") == D(2026, 3, 9)
    march = [D(2026, 3, 1) + dt.timedelta(days=k) for k in range(31)]
    assert {model_date(d, "monthly") for d in march} == {D(2026, 3, 1)}
    assert model_date(D(2026, 4, 1), "monthly") == D(2026, 4, 1)


def landed(*days):
    return lambda day: day in set(days)


def test_labelled_snapshots_use_only_drops_landed_before_the_model_date():
    m = D(2026, 3, 2)  # lag 30: the newest usable snapshot is 2026-01-30
    every_day = lambda day: True  # noqa: E731  later drops already on disk must be ignored
    assert labelled_snapshots(m, 3, 7, 30, every_day) == [D(2026, 1, 16), D(2026, 1, 23), D(2026, 1, 30)]
    assert newest_snapshot(m, 30) == D(2026, 1, 30)


def test_labelled_snapshots_anchor_on_the_newest_existing_drop_and_skip_missing_ones():
    m = D(2026, 3, 2)
    # The drop of 01-30 has not landed: the newest existing one within a spacing anchors the grid.
    drops = landed(D(2026, 1, 29), D(2026, 1, 22), D(2026, 1, 8), D(2026, 1, 1))
    assert labelled_snapshots(m, 4, 7, 30, drops) == [D(2026, 1, 8), D(2026, 1, 22), D(2026, 1, 29)]
    assert labelled_snapshots(m, 4, 7, 30, landed(D(2026, 1, 20))) == []  # nothing within a spacing of 01-30
    assert labelled_snapshots(m, 2, 1, 30, landed(D(2026, 1, 29), D(2026, 1, 30))) == [D(2026, 1, 29), D(2026, 1, 30)]
    with pytest.raises(ConfigurationError, match="at least 2"):
        labelled_snapshots(m, 1, 7, 30, landed())
