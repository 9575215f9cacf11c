"""Date maths of the graph: transaction windows, model cadence, training snapshots. No luigi here."""
import datetime as dt
from typing import Callable

from nightshift.errors import ConfigurationError

DAY = dt.timedelta(days=1)


def window_dates(score_date: dt.date, days: int) -> list[dt.date]:
    """The `days` calendar days before `score_date`, oldest first (data up to D-1 scores D)."""
    if days < 1:
        raise ConfigurationError(f"[features] window_days = {days}: a window needs at least one day")
    return [score_date - k * DAY for k in range(days, 0, -1)]


def model_date(score_date: dt.date, retrain: str) -> dt.date:
    """The date of the model that scores `score_date` under a cadence.

    `daily`: the day itself; `weekly`: the Monday on or before it; `monthly`: the first of its month.
    All scoring dates of one period share one model.
    """
    if retrain == "daily":
        return score_date
    if retrain == "weekly":
        return score_date - score_date.weekday() * DAY
    if retrain == "monthly":
        return score_date.replace(day=1)
    raise ConfigurationError(f"[model] retrain = {retrain!r}: must be one of daily, weekly, monthly")


def training_snapshots(model_day: dt.date, count: int, spacing_days: int, label_lag_days: int) -> list[dt.date]:
    """Scoring dates whose labels had landed before `model_day`, newest last (the newest is the holdout).

    The labels of snapshot S land `label_lag_days` after it, and a run on M sees data up to M-1, so
    the newest usable snapshot is `M - label_lag_days - 1`; the others go back `spacing_days` at a time.
    """
    if count < 2:
        raise ConfigurationError(f"[model] training_snapshots = {count}: training needs at least 2 (train + holdout)")
    newest = newest_snapshot(model_day, label_lag_days)
    return [newest - k * spacing_days * DAY for k in range(count - 1, -1, -1)]


def newest_snapshot(model_day: dt.date, label_lag_days: int) -> dt.date:
    """The newest snapshot whose labels have landed before a run on `model_day` (which sees data up to M-1)."""
    return model_day - (label_lag_days + 1) * DAY


def labelled_snapshots(
    model_day: dt.date, count: int, spacing_days: int, label_lag_days: int, has_labels: Callable[[dt.date], bool]
) -> list[dt.date]:
    """The training snapshots of model date M among the label drops that exist, newest last.

    Only snapshots at or before `newest_snapshot(M)` are candidates, so a label drop that lands at or
    after M is never used, even when a backfill finds it already on disk. The newest existing drop of
    the last `spacing_days` candidates is the anchor (the holdout); the others go back `spacing_days`
    at a time from it, and a grid day without a drop is skipped, so the result may hold fewer than
    `count` snapshots: the caller decides how few is too few.
    """
    if count < 2:
        raise ConfigurationError(f"[model] training_snapshots = {count}: training needs at least 2 (train + holdout)")
    if spacing_days < 1:
        raise ConfigurationError(f"[model] snapshot_spacing_days = {spacing_days}: must be at least 1")
    newest = newest_snapshot(model_day, label_lag_days)
    anchor = next((newest - k * DAY for k in range(spacing_days) if has_labels(newest - k * DAY)), None)
    if anchor is None:
        return []
    grid = [anchor - k * spacing_days * DAY for k in range(count - 1, -1, -1)]
    return [day for day in grid if day == anchor or has_labels(day)]
