"""bin/run-daily under cron's bare environment: quiet when done, lock, logs, catch-up, exit codes."""
import datetime as dt
from collections import Counter
import fcntl
import os
import subprocess
import time

import sqlalchemy as sa

from tests.conftest import REPO, SCORE_DATE, add_drifted_day
from tests.tasks.test_publish import next_day_drop  # noqa: F401  (the fixture)

DAY = dt.timedelta(days=1)


def marker_dates(root) -> list[dt.date]:
    with sa.create_engine(f"sqlite:///{root}/nightshift.db").connect() as conn:
        return [dt.date.fromisoformat(str(d)) for (d,) in conn.execute(sa.text("SELECT score_date FROM publish_log"))]


def test_done_day_is_quiet_logged_and_falls_back_to_the_local_scheduler(ops, scored_root):
    ops.logs.mkdir()
    old = ops.logs / "run-daily-2025-01-01.log"
    old.write_text("a run long ago\n")
    month_ago = time.time() - 40 * 86400
    os.utime(old, (month_ago, month_ago))

    result = ops.run("run-daily", "--date", SCORE_DATE)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""  # cron mails nothing for a good night...
    assert "no central scheduler answers" in result.stderr  # ...but warns when luigid is down
    log = (ops.logs / f"run-daily-{SCORE_DATE}.log").read_text()
    assert "local scheduler" in log and "--local-scheduler" in log
    assert f"catch-up {SCORE_DATE}..{SCORE_DATE}" in log
    assert "exit 0 (ok)" in log
    assert not old.exists(), "logs older than [cron] log_keep_days are pruned"


def test_second_start_while_one_runs_exits_10_at_once(ops, root):
    ops.var.mkdir()
    with open(ops.var / "run-daily.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = ops.run("run-daily", "--date", SCORE_DATE, timeout=60)
    assert result.returncode == 10
    assert "still running" in result.stderr
    assert not (ops.logs / f"run-daily-{SCORE_DATE}.log").exists()


def test_missing_drops_exit_20_and_cron_gets_the_summary(ops, scored_root):
    # The scored night's Monday model serves the whole week; the next two nights' drops have not landed.
    ops.set("model", "retrain", "weekly")
    ops.set("cron", "catchup_days", 3)
    late = SCORE_DATE + 2 * DAY
    result = ops.run("run-daily", "--date", late)
    assert result.returncode == 20, result.stdout + result.stderr
    assert "exit 20 (missing data" in result.stdout
    assert "Luigi Execution Summary" in result.stdout
    assert "RawClients" in result.stdout
    assert f"DailyScoring(date={late - DAY},{late})" in result.stdout


def test_a_missed_night_is_caught_up(ops, scored_root):
    # Weekly models: the night after SCORE_DATE (a Monday) uses the same, already trained model.
    ops.set("model", "retrain", "weekly")
    ops.set("cron", "catchup_days", 2)
    from tasks import Publish

    assert Publish(date=SCORE_DATE).output().remove()  # SCORE_DATE never reached production

    result = ops.run("run-daily", "--date", SCORE_DATE + DAY)

    # SCORE_DATE is published again; SCORE_DATE + 1 waits for its drops (exit 20 tells cron).
    assert result.returncode == 20, result.stdout + result.stderr
    assert SCORE_DATE in marker_dates(scored_root)
    log = (ops.logs / f"run-daily-{SCORE_DATE + DAY}.log").read_text()
    assert f"Publish(date={SCORE_DATE})" in log
    assert "--start 2026-03-02 --stop 2026-03-04" in log


def test_bad_date_is_refused(ops, root):
    result = ops.run("run-daily", "--date", "2026-13-01", timeout=60)
    assert result.returncode == 2
    assert "YYYY-MM-DD" in result.stderr


def test_invalid_settings_stop_it_at_once_with_one_line(ops, root):
    ops.set("features", "window_days", "0")
    started = time.monotonic()
    result = ops.run("run-daily", "--date", SCORE_DATE, timeout=60)
    assert result.returncode == 40
    assert time.monotonic() - started < 15
    assert result.stderr == (f"run-daily {SCORE_DATE}: ConfigurationError: invalid settings, nothing was run: "
                             "[features] window_days = 0: must be > 0\n")
    assert not ops.logs.exists() and not ops.var.exists() and list(root.iterdir()) == []


def _start_run_daily(ops, date) -> subprocess.Popen:
    return subprocess.Popen([*ops.env(), str(REPO / "bin" / "run-daily"), "--date", str(date)], cwd="/",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_two_real_run_daily_processes_the_second_exits_10_at_once_and_the_first_finishes(
        ops, scored_root, next_day_drop):
    add_drifted_day(scored_root, next_day_drop)  # an ordinary next night: features, scoring, gate, publish to do
    ops.set("model", "retrain", "weekly")
    night = SCORE_DATE + DAY
    log = ops.logs / f"run-daily-{night}.log"
    first = _start_run_daily(ops, night)
    try:
        _wait_for(lambda: log.exists() and "=== run-daily" in log.read_text(), "the first run to take the lock")

        started = time.monotonic()
        second = ops.run("run-daily", "--date", night, timeout=60)
        assert time.monotonic() - started < 15
        assert second.returncode == 10, second.stderr
        assert second.stderr.strip() == (f"run-daily {night}: another run-daily is still running (pid {first.pid}, "
                                         f"lock {ops.var / 'run-daily.lock'}); not starting")
        assert first.poll() is None, "the first run goes on"
        out, err = first.communicate(timeout=900)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, out + err
    assert night in marker_dates(scored_root)
    assert log.read_text().count("=== run-daily") == 2, "one start and one finish: the second never logged"


def test_a_manual_run_beside_the_cron_run_leaves_the_running_task_to_it(luigid, scored_root, next_day_drop):
    add_drifted_day(scored_root, next_day_drop)
    luigid.set("model", "retrain", "weekly")
    night = SCORE_DATE + DAY
    cron = _start_run_daily(luigid, night)
    try:
        _wait_for(lambda: luigid.tasks("RUNNING"), "the cron run to start a task on luigid")
        manual = subprocess.run([*luigid.env(), str(REPO / ".venv" / "bin" / "luigi"), "--module", "tasks",
                                 "DailyScoring", "--date", str(night), "--scheduler-port", str(luigid.port)],
                                cwd=REPO, capture_output=True, text=True, timeout=600)
        out, err = cron.communicate(timeout=900)
    finally:
        if cron.poll() is None:
            cron.kill()
    # luigid hands each task to one worker: the two runs share the night's tasks, none is computed twice, and the
    # night is published once. Which run takes which task is a race: a run whose tasks the other one ran reports
    # them as "not granted run permission" (exit 25, not run) or as run by another worker (exit 10, already
    # running) although the night is complete; the next cron run finds it done and exits 0.
    assert cron.returncode in (0, 10, 25), out + err
    assert manual.returncode in (0, 10, 25), manual.stdout + manual.stderr
    assert night in marker_dates(scored_root)
    running = Counter(name for name, event in luigid.history_rows() if event == "RUNNING")
    assert running["Publish"] == 1 and set(running.values()) == {1}, running
    again = luigid.run("run-daily", "--date", night)
    assert again.returncode == 0, again.stdout + again.stderr
