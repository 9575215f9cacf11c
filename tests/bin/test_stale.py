"""Stale targets end to end: a re-delivered drop, changed settings, migration; bin/status and bin/invalidate."""
import datetime as dt
import json
import shutil
import subprocess
import sys

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from targets.directory import MANIFEST
from targets.sql import engine
from tasks import DailyScoring, Predict, Publish, TransactionDaily, TransactionFeatures
from tests.conftest import DRIFT_DATE, REPO, SCORE_DATE, add_drifted_day, build, families

DAY = dt.timedelta(days=1)
REDELIVERED = SCORE_DATE - DAY  # inside the windows of SCORE_DATE (published) and DRIFT_DATE (next night)


def redeliver(root, day: dt.date, factor: float) -> None:
    """The upstream rewrites a transactions partition with other amounts, then flags it again."""
    folder = root / "raw" / "transactions" / f"dt={day}"
    for path in sorted(folder.glob("*.parquet")):
        table = pq.read_table(path)
        amounts = pc.multiply(table["amount"], factor)
        pq.write_table(table.set_column(table.schema.get_field_index("amount"), "amount", amounts), path)
    (folder / "_SUCCESS").write_text("")


def published_row(root, day: dt.date) -> tuple:
    with engine(f"sqlite:///{root}/nightshift.db").connect() as conn:
        return tuple(conn.execute(sa.text("SELECT rows, model_version, published_at, manifest FROM publish_log "
                                          "WHERE score_date = :d"), {"d": day}).first())


def manifest_of(task) -> dict:
    with open(task.output().file(MANIFEST)) as f:
        return json.load(f)


def sorted_frame(path):
    frame = pq.read_table(path).to_pandas()
    return frame.sort_values("client_id").reset_index(drop=True)[sorted(frame.columns)]


def test_a_redelivered_drop_is_named_rebuilt_by_the_next_night_and_the_published_night_stays(
        ops, scored_root, drifted_drop, overlay, tmp_path):
    add_drifted_day(scored_root, drifted_drop)
    before = {"publish": published_row(scored_root, SCORE_DATE),
              "features": manifest_of(TransactionFeatures(date=SCORE_DATE)),
              "predict": manifest_of(Predict(date=SCORE_DATE))}
    redeliver(scored_root, REDELIVERED, 3.0)

    status = ops.run("status", "--date", DRIFT_DATE)
    assert f"TransactionDaily({REDELIVERED}) [stale, rebuilt by the next run that needs it]: " \
           f"input re-delivered: raw/transactions/dt={REDELIVERED}" in status.stdout, status.stdout + status.stderr
    published = ops.run("status", "--date", SCORE_DATE)
    assert published.returncode == 0, "the published night is done, as before"
    assert f"DailyScoring({SCORE_DATE}) is published, stale" in published.stdout
    assert f"TransactionFeatures({SCORE_DATE}) [published, stale]: input stale: " \
           f"features/transactions_daily/date={REDELIVERED}" in published.stdout, published.stdout

    # The drifted day is scored by SCORE_DATE's (Monday's) model and let through the gate: this test is
    # about which targets are rebuilt, not about the drift.
    overlay.set("model", "retrain", "weekly")
    for key, value in (("psi_warn", 50), ("psi_fail", 100), ("max_mean_shift", 100)):
        overlay.set("validate", key, value)
    result = build(DailyScoring(date=DRIFT_DATE))
    assert not result["failed"], result["failed"]
    rebuilt = sorted(t.date for t in result["completed"] if isinstance(t, TransactionDaily))
    assert rebuilt == [REDELIVERED, DRIFT_DATE - DAY], "the re-delivered day and the new day, nothing else"

    assert published_row(scored_root, SCORE_DATE) == before["publish"], "the published night is untouched"
    assert manifest_of(TransactionFeatures(date=SCORE_DATE)) == before["features"]
    assert manifest_of(Predict(date=SCORE_DATE)) == before["predict"]
    assert Publish(date=SCORE_DATE).complete()

    fresh = tmp_path / "fresh"
    shutil.copytree(scored_root / "raw", fresh / "raw")
    overlay.set("paths", "root", str(fresh))
    assert not build(TransactionFeatures(date=DRIFT_DATE))["failed"]
    incremental = sorted_frame(str(scored_root / "features" / "transactions" / f"date={DRIFT_DATE}"))
    scratch = sorted_frame(str(fresh / "features" / "transactions" / f"date={DRIFT_DATE}"))
    assert not scratch.empty
    # Sums may add in another order: equal up to rounding, while the re-delivery tripled a day's amounts.
    pd.testing.assert_frame_equal(incremental, scratch, rtol=1e-9)


def test_changed_settings_are_named_and_invalidate_stale_makes_the_rerun_redo_exactly_their_dependents(
        ops, scored_root, overlay):
    assert "stale" not in ops.run("status", "--date", SCORE_DATE).stdout

    ops.set("raw", "salary_max", "5000000")
    out = ops.run("status", "--date", SCORE_DATE).stdout
    assert f"ClientFeatures({SCORE_DATE}) [published, stale]: setting changed: [raw] salary_max 10000000.0 → " \
           f"5000000.0" in out, out
    ops.set("raw", "salary_max", "10000000")

    ops.set("features", "window_days", "5")
    out = ops.run("status", "--date", SCORE_DATE).stdout
    assert f"TransactionFeatures({SCORE_DATE}) [published, stale]: setting changed: [features] window_days 7 → 5" \
           in out, out
    ops.set("features", "window_days", "7")

    ops.set("model", "seed", "7")
    out = ops.run("status", "--date", SCORE_DATE).stdout
    assert f"TrainModel({SCORE_DATE}) [stale, rebuilt by the next run that needs it]: setting changed: " \
           f"[model] seed 42 → 7" in out, out
    assert f"DailyScoring({SCORE_DATE}) is published, stale" in out

    dry = ops.run("invalidate", "--stale", "--date", SCORE_DATE, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    expected = (f"would redo: DailyScoring({SCORE_DATE}), MonitorModel({SCORE_DATE}), Predict({SCORE_DATE}), "
                f"Publish({SCORE_DATE}), TrainModel({SCORE_DATE}), TrainingSet({SCORE_DATE}), "
                f"ValidatePredictions({SCORE_DATE})")
    assert expected in dry.stdout, dry.stdout
    assert Publish(date=SCORE_DATE).complete(), "a dry run deletes nothing"
    done = ops.run("invalidate", "--stale", "--date", SCORE_DATE)
    assert done.returncode == 0 and "Deleted 6 target(s)" in done.stdout, done.stdout + done.stderr
    assert not Publish(date=SCORE_DATE).complete(), "the publish marker goes with the night's stale targets"

    overlay.set("model", "seed", "7")
    result = build(DailyScoring(date=SCORE_DATE))
    assert not result["failed"], result["failed"]
    assert families(result["completed"]) == ["DailyScoring", "MonitorModel", "Predict", "Publish", "TrainModel",
                                             "TrainingSet", "ValidatePredictions"]
    assert "stale" not in ops.run("status", "--date", SCORE_DATE).stdout
    assert json.loads(published_row(scored_root, SCORE_DATE)[3])["task"] == "Publish"


def test_targets_without_manifests_are_unknown_not_stale_and_adopt_records_them(ops, scored_root):
    for manifest in scored_root.rglob(MANIFEST):
        manifest.unlink()
    with engine(f"sqlite:///{scored_root}/nightshift.db").begin() as conn:
        conn.execute(sa.text("ALTER TABLE publish_log DROP COLUMN manifest"))  # as an older release made it
    code = (f"import sys, datetime, tasks; d = datetime.date.fromisoformat('{SCORE_DATE}'); "
            "done = [t.complete() for t in (tasks.Predict(date=d), tasks.FeatureTable(date=d), "
            "tasks.TrainModel(date=d), tasks.ValidatePredictions(date=d))]; "
            "print(all(done), sorted(m for m in ('pyspark', 'sklearn') if m in sys.modules))")
    checked = subprocess.run([*ops.env(), sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert checked.stdout.strip() == "True []", checked.stdout + checked.stderr

    status = ops.run("status", "--date", SCORE_DATE)
    assert status.returncode == 0 and "stale target" not in status.stdout
    assert "target(s) without a manifest" in status.stdout and "--adopt" in status.stdout
    adopted = ops.run("invalidate", "--stale", "--adopt", "--date", SCORE_DATE)
    assert adopted.returncode == 0, adopted.stderr
    assert f"adopted Publish({SCORE_DATE})" in adopted.stdout
    after = ops.run("status", "--date", SCORE_DATE).stdout
    assert "without a manifest" not in after and "stale" not in after, after
    assert json.loads(published_row(scored_root, SCORE_DATE)[3])["adopted"] is True
    assert ops.run("invalidate", "--stale", "--date", SCORE_DATE).stdout.strip() == \
        f"DailyScoring({SCORE_DATE}): no stale target"
