"""Windows, model cadence and training snapshots, across month and year edges."""
import datetime as dt

import pytest

from tasks.dates import model_date, training_snapshots, window_dates

D = dt.date


def test_window_is_the_days_before_the_score_date():
    assert window_dates(D(2026, 3, 2), 3) == [D(2026, 2, 27), D(2026, 2, 28), D(2026, 3, 1)]
    with pytest.raises(ValueError):
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
    with pytest.raises(ValueError, match="hourly"):
        model_date(D(2026, 3, 4), "hourly")


def test_training_snapshots_have_landed_labels_before_the_model_date():
    snaps = training_snapshots(D(2026, 3, 2), count=3, spacing_days=7, label_lag_days=30)
    assert snaps == [D(2026, 1, 16), D(2026, 1, 23), D(2026, 1, 30)]
    assert all(s + dt.timedelta(days=30) < D(2026, 3, 2) for s in snaps)
