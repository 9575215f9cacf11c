"""Backfill with Luigi's range tools: five days, each day's transaction aggregates computed once, then nothing."""
import datetime as dt
import shutil
import subprocess

import pytest
from luigi.tools.range import RangeDaily

from tasks import DailyScoring, TransactionDaily
from tests.conftest import REPO, SCORE_DATE, build, families, make_sample_data

DAY = dt.timedelta(days=1)
START, STOP = SCORE_DATE, SCORE_DATE + 5 * DAY  # 5 nights; SCORE_DATE is already scored


@pytest.fixture(scope="module")
def later_drops(tmp_path_factory):
    """Raw drops of the four days after the sample's last one (same generator, same sizes)."""
    target = tmp_path_factory.mktemp("later")
    make_sample_data(target, STOP - 2 * DAY, days=16)
    return target


# Luigi clamps a range to [now - days_back, now + days_forward]: `now` is pinned so today's date changes nothing.
NOW = int(dt.datetime.combine(STOP, dt.time(6), tzinfo=dt.timezone.utc).timestamp())
DAYS_BACK = 10


def test_five_day_backfill_computes_each_day_once_then_nothing(overlay, ops, scored_root, later_drops):
    for kind in ("clients", "transactions"):
        for day in range((STOP - START).days - 1):
            name = f"dt={SCORE_DATE + day * DAY}"
            shutil.copytree(later_drops / "raw" / kind / name, scored_root / "raw" / kind / name)
    overlay.set("model", "retrain", "weekly")  # SCORE_DATE is a Monday: one model (already trained) for all

    before = sorted(p.name for p in (scored_root / "features" / "transactions_daily").iterdir())
    first = build(RangeDaily(of=DailyScoring, start=START, stop=STOP, days_back=DAYS_BACK, now=NOW))

    assert not first["failed"], first["failed"]
    new_days = [START + k * DAY for k in range(1, 5)]
    per_night = ["ClientFeatures", "DailyScoring", "FeatureTable", "MonitorModel", "Predict", "Publish", "TransactionFeatures",
                 "ValidatePredictions"]
    assert families(first["completed"]) == sorted(["RangeDaily"] + per_night * 4 + ["TransactionDaily"] * 4)
    daily = sorted(t.date for t in first["completed"] if isinstance(t, TransactionDaily))
    assert daily == [SCORE_DATE + k * DAY for k in range(4)], "each new day aggregated exactly once"
    for family in per_night:
        dates = sorted(t.date for t in first["completed"] if t.task_family == family)
        assert dates == new_days, family
    after = sorted(p.name for p in (scored_root / "features" / "transactions_daily").iterdir())
    assert sorted(set(after) - set(before)) == [f"date={day}" for day in daily]
    assert sorted(p.name for p in (scored_root / "predictions").iterdir()) == [
        f"date={START + k * DAY}" for k in range(5)]

    second = build(RangeDaily(of=DailyScoring, start=START, stop=STOP, days_back=DAYS_BACK, now=NOW))
    assert families(second["completed"]) == []
    assert families(second["already_done"]) == ["RangeDaily"]

    # The command an operator types: nothing left to do, exit 0.
    ops.set("model", "retrain", "weekly")
    cli = subprocess.run([*ops.env(), str(REPO / ".venv" / "bin" / "luigi"), "--module", "tasks", "RangeDaily",
                          "--of", "DailyScoring", "--start", str(START), "--stop", str(STOP), "--days-back",
                          str(DAYS_BACK), "--now", str(NOW), "--local-scheduler"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-3000:]
    summary = cli.stderr[cli.stderr.index("===== Luigi Execution Summary ====="):]
    assert "Scheduled 1 tasks of which:\n* 1 complete ones were encountered:\n    - 1 RangeDaily(" in summary, summary
    assert "ran successfully" not in summary
    assert "This progress looks :) because there were no failed tasks" in summary
