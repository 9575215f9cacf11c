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


class Counting(SparkTask):
    calls = 0

    def run(self):
        Counting.calls += 1


class Extended(Counting):
    """Overrides run() and calls the parent's: both are wrapped, the task must still report once."""

    def run(self):
        super().run()


class Inherited(Counting):
    """Defines no run() of its own."""


def _final_reports(task_class) -> list[str]:
    task = task_class()
    messages = []
    task.set_status_message = messages.append
    task.set_progress_percentage = lambda p: None
    task.run()
    return [m for m in messages if m.startswith(("done after", "failed after"))]


def test_a_spark_task_reports_its_end_once_however_its_run_is_inherited(monkeypatch):
    monkeypatch.setattr(spark, "_session", None)
    for task_class in (Counting, Extended, Inherited):
        assert _final_reports(task_class) == ["done after 0s: 0 Spark job(s)"], task_class.__name__
    assert Counting.calls == 3


def _layers(function) -> list[str]:
    """The modules whose wrappers a run() goes through, outermost first (functools.wraps keeps __wrapped__)."""
    layers = []
    while hasattr(function, "__wrapped__"):
        layers.append(function.__code__.co_filename.rsplit("/", 2)[-2] + "/" + function.__code__.co_filename.rsplit("/", 1)[-1])
        function = function.__wrapped__
    return layers


def test_every_spark_task_s_run_is_wrapped_once_for_progress_and_once_for_unreadable_inputs():
    from tasks import ClientFeatures, FeatureTable, Predict, TrainingSet, TransactionDaily, TransactionFeatures

    for cls in (ClientFeatures, FeatureTable, Predict, TrainingSet, TransactionDaily, TransactionFeatures):
        assert issubclass(cls, SparkTask)
        assert _layers(cls.run) == ["tasks/spark.py", "tasks/errors.py"], cls.__name__
