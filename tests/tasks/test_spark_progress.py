"""SparkTask's progress reports: what the scheduler's web view shows while a Spark task runs."""
import time

from tasks import spark
from tasks.spark import SparkProgress, SparkTask


class Recorder:
    """Stands in for the worker's status reporter that Luigi attaches to a running task."""

    task_id = "Recorder"

    def __init__(self):
        self.messages, self.percentages = [], []
        self.set_status_message = self.messages.append
        self.set_progress_percentage = self.percentages.append


def test_progress_is_reported_during_and_after_spark_jobs(root):
    session = spark.session()
    task = Recorder()

    def slow(rows):
        time.sleep(1.5)  # long enough for a few polls
        return rows

    with SparkProgress(task, interval=0.2):
        session.sparkContext.parallelize(range(8), 4).mapPartitions(slow).count()

    running = [m for m in task.messages if m.startswith("Spark job")]
    assert running, task.messages
    assert "tasks done" in running[-1] and "/4 tasks done" in running[0]
    assert task.messages[-1].startswith("done after") and task.messages[-1].endswith("1 Spark job(s)")
    assert task.percentages[-1] == 100 and all(0 <= p <= 100 for p in task.percentages)


def test_without_a_session_nothing_is_reported_and_none_is_started(monkeypatch):
    monkeypatch.setattr(spark, "_session", None)
    task = Recorder()
    with SparkProgress(task, interval=0.05):
        time.sleep(0.3)
    assert task.messages == ["done after 0s: 0 Spark job(s)"]
    assert spark._session is None


def test_spark_tasks_run_is_wrapped_once():
    from tasks import FeatureTable, Predict, TransactionDaily

    for cls in (FeatureTable, Predict, TransactionDaily):
        assert issubclass(cls, SparkTask) and cls.run.reports_progress
