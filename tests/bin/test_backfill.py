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


def days_back() -> int:
    return (dt.date.today() - START).days + 2  # Luigi drops range days older than now - days_back


def test_five_day_backfill_computes_each_day_once_then_nothing(overlay, ops, scored_root, later_drops):
    for kind in ("clients", "transactions"):
        for day in range((STOP - START).days - 1):
            name = f"dt={SCORE_DATE + day * DAY}"
            shutil.copytree(later_drops / "raw" / kind / name, scored_root / "raw" / kind / name)
    overlay.set("model", "retrain", "weekly")  # SCORE_DATE is a Monday: one model (already trained) for all

    first = build(RangeDaily(of=DailyScoring, start=START, stop=STOP, days_back=days_back()))

    assert not first["failed"], first["failed"]
    daily = sorted(t.date for t in first["completed"] if isinstance(t, TransactionDaily))
    assert daily == [SCORE_DATE + k * DAY for k in range(4)], "each new day aggregated exactly once"
    scored = sorted(t.date for t in first["completed"] if isinstance(t, DailyScoring))
    assert scored == [START + k * DAY for k in range(1, 5)]
    assert "TrainModel" not in families(first["completed"])

    second = build(RangeDaily(of=DailyScoring, start=START, stop=STOP, days_back=days_back()))
    assert families(second["completed"]) == []

    # The command an operator types: nothing left to do, exit 0.
    ops.set("model", "retrain", "weekly")
    cli = subprocess.run([*ops.env(), str(REPO / ".venv" / "bin" / "luigi"), "--module", "tasks", "RangeDaily",
                          "--of", "DailyScoring", "--start", str(START), "--stop", str(STOP), "--days-back",
                          str(days_back()), "--local-scheduler"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert "already done" in cli.stderr or "complete" in cli.stderr
