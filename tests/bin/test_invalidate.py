"""bin/invalidate and bin/status on a scored night: what they list, delete, refuse and print."""
from targets import fs
from tasks import Predict, Publish, ValidatePredictions
from tests.conftest import SCORE_DATE


def test_dry_run_lists_and_keeps_everything(ops, scored_root):
    result = ops.run("invalidate", "Predict", "--date", SCORE_DATE, "--downstream", "--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.index("Publish(date=2026-03-02)") < out.index("ValidatePredictions(date=") < out.index("Predict(date=")
    assert "Would delete 4 target(s)" in out
    assert "would redo: DailyScoring(2026-03-02), MonitorModel(2026-03-02), Predict(2026-03-02), " \
           "Publish(2026-03-02), ValidatePredictions(2026-03-02)" in out
    assert Predict(date=SCORE_DATE).complete() and Publish(date=SCORE_DATE).complete()


def test_without_downstream_only_that_target_goes(ops, scored_root):
    result = ops.run("invalidate", "ValidatePredictions", "--date", SCORE_DATE)
    assert result.returncode == 0, result.stderr
    assert not ValidatePredictions(date=SCORE_DATE).complete()
    assert Predict(date=SCORE_DATE).complete() and Publish(date=SCORE_DATE).complete()
    assert fs.exists(Predict(date=SCORE_DATE).output().uri)


def test_refuses_what_is_not_a_task_of_the_graph(ops, scored_root):
    unknown = ops.run("invalidate", "Predictions", "--date", SCORE_DATE)
    assert unknown.returncode == 1
    assert "not a task of DailyScoring(2026-03-02)'s graph" in unknown.stderr
    assert "valid names: ClientFeatures, FeatureTable, MonitorModel, Predict, Publish" in unknown.stderr
    raw = ops.run("invalidate", "RawClients", "--date", SCORE_DATE)
    assert raw.returncode == 1 and "never deletes raw data" in raw.stderr
    several = ops.run("invalidate", "TransactionDaily", "--date", SCORE_DATE)
    assert several.returncode == 1 and "--task-date" in several.stderr
    one = ops.run("invalidate", "TransactionDaily", "--date", SCORE_DATE, "--task-date", "2026-03-01", "--dry-run")
    assert one.returncode == 0 and "TransactionDaily(date=2026-03-01)" in one.stdout
    assert fs.exists(fs.join(str(scored_root), "raw", "clients", "dt=2026-03-01", "_SUCCESS"))


def test_status_marks_done_and_pending(ops, scored_root):
    done = ops.run("status", "--date", SCORE_DATE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[done]    DailyScoring(2026-03-02)  (")
    assert "folded" in done.stdout.splitlines()[0]
    assert Publish(date=SCORE_DATE).output().remove()
    pending = ops.run("status", "--date", SCORE_DATE)
    assert pending.returncode == 1
    lines = pending.stdout.splitlines()
    assert lines[0] == "[pending] DailyScoring(2026-03-02)"
    assert "├── [pending] Publish(2026-03-02)" in lines[1]
    assert any("└── [done]    MonitorModel(2026-03-02)" in line for line in lines)
    assert any("[done]    Predict(2026-03-02)" in line for line in lines)
    assert any("[done]    ValidatePredictions(2026-03-02)" in line for line in lines)
