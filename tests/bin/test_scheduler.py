"""A real luigid run by bin/scheduler: lifecycle, runs reported to it, failures, history, Spark progress."""
import socket
import urllib.request

import luigi
import pytest
import luigi.execution_summary
import sqlalchemy as sa

from tasks import DailyScoring, config
from tests.bin.conftest import families_of
from tests.conftest import SCORE_DATE, families


def test_start_status_stop(ops, root):
    started = ops.run("scheduler", "start", timeout=60)
    try:
        assert started.returncode == 0, started.stderr
        assert ops.url in started.stdout
        again = ops.run("scheduler", "start", timeout=60)
        assert again.returncode == 0 and "already running" in again.stdout
        status = ops.run("scheduler", "status", timeout=60)
        assert status.returncode == 0 and "luigid running" in status.stdout
        with urllib.request.urlopen(ops.url + "/static/visualiser/index.html", timeout=10) as page:
            assert page.status == 200  # the web view
        with pytest.raises(ConnectionRefusedError):  # bound to 127.0.0.1 only, not to every address
            socket.create_connection(("127.0.0.2", ops.port), timeout=5)
    finally:
        stopped = ops.run("scheduler", "stop", timeout=60)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert (ops.var / "luigid-state.pickle").exists()
    assert not (ops.var / "luigid.pid").exists()
    assert ops.run("scheduler", "status", timeout=60).returncode == 3


def test_cron_runs_show_in_the_scheduler_done_then_failed(luigid, scored_root):
    # The night reached everything but production (no Spark needed to redo that).
    assert luigid.run("invalidate", "Publish", "--date", SCORE_DATE).returncode == 0
    done = luigid.run("run-daily", "--date", SCORE_DATE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == "" and done.stdout == ""  # central scheduler found: no warning
    assert {"RangeDaily", "DailyScoring", "Publish"} <= families_of(luigid.tasks("DONE"))
    log = (luigid.logs / f"run-daily-{SCORE_DATE}.log").read_text()
    assert f"central scheduler {luigid.url}" in log

    # Redo the gate with a threshold nothing passes: the day fails and the view shows which task.
    invalidated = luigid.run("invalidate", "ValidatePredictions", "--date", SCORE_DATE, "--downstream")
    assert invalidated.returncode == 0, invalidated.stderr
    luigid.set("validate", "psi_warn", 0.0)
    luigid.set("validate", "psi_fail", 1e-9)
    failed = luigid.run("run-daily", "--date", SCORE_DATE)

    assert failed.returncode == 30, failed.stdout + failed.stderr
    assert "exit 30 (a task failed)" in failed.stdout and "ValidatePredictions" in failed.stdout
    assert families_of(luigid.tasks("FAILED")) == {"ValidatePredictions"}
    assert "Publish" not in families_of(luigid.tasks("DONE"))
    history = luigid.history_rows()
    assert ("ValidatePredictions", "FAILED") in history
    assert ("DailyScoring", "DONE") in history and ("Publish", "RUNNING") in history


def test_invalidated_predict_reruns_at_once_through_the_scheduler_with_progress(luigid, scored_root):
    def run() -> dict:
        result = luigi.build([DailyScoring(date=SCORE_DATE)], local_scheduler=False, scheduler_host="127.0.0.1",
                             scheduler_port=luigid.port, detailed_summary=True)
        return luigi.execution_summary._summary_dict(result.worker)

    first = run()  # everything is done: the scheduler marks it all DONE now
    assert first["completed"] == set() and not first["failed"]
    url = config.publish().database_url()
    with sa.create_engine(url).connect() as conn:
        before = conn.execute(sa.text("SELECT COUNT(*) FROM predictions")).scalar()

    # Straight away, well inside luigid's default 10 s done-cooldown (set to 0 in luigi.cfg).
    invalidated = luigid.run("invalidate", "Predict", "--date", SCORE_DATE, "--downstream")
    assert invalidated.returncode == 0, invalidated.stderr
    assert "redoes: DailyScoring(2026-03-02), MonitorModel(2026-03-02), Predict(2026-03-02), " \
           "Publish(2026-03-02), ValidatePredictions(2026-03-02)" in invalidated.stdout
    second = run()

    assert families(second["completed"]) == ["DailyScoring", "MonitorModel", "Predict", "Publish", "ValidatePredictions"]
    assert not second["failed"]
    with sa.create_engine(url).connect() as conn:
        rows = conn.execute(sa.text("SELECT COUNT(*), COUNT(DISTINCT client_id) FROM predictions "
                                    "WHERE score_date = :d"), {"d": SCORE_DATE}).one()
    assert rows[0] == rows[1] == before, "the day is published once"
    predict = next(t for t in luigid.tasks("DONE").values() if t["name"] == "Predict")
    assert predict["status_message"].startswith("done after") and "Spark job(s)" in predict["status_message"]
    assert predict["progress_percentage"] == 100
    assert ("Predict", "RUNNING") in luigid.history_rows()
