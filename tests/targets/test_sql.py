"""The publish marker and the small reads the gate makes from the production database."""
import datetime as dt

import pytest
import sqlalchemy as sa

from targets.sql import PublishMarker, column_summary, engine, previous_publication
from tasks.publish import publish_day

DAY = dt.date(2026, 3, 2)


@pytest.fixture
def url(production_url):
    return production_url


def test_marker_exists_exactly_when_publish_log_has_the_day(url):
    marker = PublishMarker(url, DAY)
    assert not marker.exists(), "no table yet"
    assert previous_publication(url, DAY) is None
    publish_day(url, DAY, [(1, 0.2, "m"), (2, 0.4, "m")])
    assert marker.exists()
    assert not PublishMarker(url, DAY + dt.timedelta(days=1)).exists()
    assert previous_publication(url, DAY + dt.timedelta(days=3)) == DAY
    assert previous_publication(url, DAY) is None, "only days before"
    assert marker.remove()
    assert not marker.exists()
    assert not marker.remove()
    with engine(url).connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM predictions")).scalar() == 2, "rows stay until replaced"


def test_column_summary_counts_bins_like_numpy_with_the_last_bin_closed(url):
    publish_day(url, DAY, [(1, 0.0, "m"), (2, 0.1, "m"), (3, 0.25, "m"), (4, 0.5, "m"), (5, 1.0, "m")])
    summary = column_summary(url, "predictions", "score", DAY, [0.0, 0.1, 0.5, 1.0])
    assert summary["rows"] == 5
    assert summary["mean"] == pytest.approx(0.37)
    assert summary["counts"] == [1, 2, 2]
    empty = column_summary(url, "predictions", "score", DAY - dt.timedelta(days=1), [0.0, 0.5, 1.0])
    assert empty == {"mean": None, "rows": 0, "counts": [0, 0]}
