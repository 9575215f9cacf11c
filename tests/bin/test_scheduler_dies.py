"""luigid killed (SIGKILL) while a task runs: the task ends cleanly, the run says the scheduler went away, the rerun finishes."""
import os
import signal
import subprocess
import time

from targets import fs
from tasks import Predict, Publish, ValidatePredictions
from tests.conftest import REPO, SCORE_DATE


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {timeout:.0f}s")


def test_luigid_killed_mid_run_fails_the_run_clearly_and_the_rerun_finishes(luigid, scored_root):
    ops = luigid
    assert ops.run("invalidate", "Predict", "--date", SCORE_DATE, "--downstream").returncode == 0
    ops.logs.mkdir(exist_ok=True)
    log = ops.logs / f"run-daily-{SCORE_DATE}.log"
    run = subprocess.Popen([*ops.env(), str(REPO / "bin" / "run-daily"), "--date", str(SCORE_DATE)], cwd="/",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        running = wait_for(lambda: ops.tasks("RUNNING"), 300, "Predict running under luigid")
        assert [t["name"] for t in running.values()] == ["Predict"]
        pid = int((ops.var / "luigid.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        started = time.monotonic()
        out, err = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
    waited = time.monotonic() - started

    assert run.returncode == 40, out + err
    assert f"exit 40" in out
    text = log.read_text()
    assert "the central scheduler http://127.0.0.1:" in text and "went away" in text, text[-3000:]
    assert waited < 180, f"the run hung {waited:.0f}s after luigid died"
    # The running task finished (its target is whole) or failed (nothing of it is left); nothing half-written.
    predictions = Predict(date=SCORE_DATE).output()
    assert predictions.exists() or not fs.exists(predictions.uri)
    assert [n for n in fs.list_dir(fs.parent(predictions.uri)) if ".inprogress-" in n] == []
    assert not Publish(date=SCORE_DATE).complete()

    # luigid is gone: run-daily falls back to the local scheduler and finishes the night.
    rerun = ops.run("run-daily", "--date", SCORE_DATE)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert ValidatePredictions(date=SCORE_DATE).complete() and Publish(date=SCORE_DATE).complete()
